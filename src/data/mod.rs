//! Data: IDX parsing behind validation, the MNIST files, and batches gathered on the device.

pub mod download;
pub mod gpu;
pub mod idx;
pub mod mnist;
