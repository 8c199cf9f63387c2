//! Data: IDX parsing behind validation, the MNIST files, and batches gathered on the device.

pub mod digit;
#[cfg(feature = "download")]
pub mod download;
pub mod gpu;
pub mod idx;
pub mod mnist;
