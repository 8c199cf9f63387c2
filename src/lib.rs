//! # wgsl-nn
//!
//! A GPU compute engine for neural networks whose every kernel is hand-written WGSL, run
//! through [wgpu]: a device layer (adapter choice, pipeline cache, buffer pool, counters),
//! GPU tensors, WGSL kernels with typed launchers, and a CPU oracle they are tested against.
//!
//! ```no_run
//! use wgsl_nn::{Device, Tensor, matmul::{matmul, MatmulOptions}};
//!
//! # fn main() -> wgsl_nn::Result<()> {
//! let device = Device::new()?; // honours WGSL_NN_BACKEND and WGSL_NN_ADAPTER
//! let a = Tensor::from_slice(&device, &[1.0, 2.0, 3.0, 4.0], [2, 2])?;
//! let b = Tensor::from_slice(&device, &[5.0, 6.0, 7.0, 8.0], [2, 2])?;
//! let c = matmul(&a, &b, &MatmulOptions::default())?;
//! assert_eq!(c.to_vec()?, vec![19.0, 22.0, 43.0, 50.0]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! Both are on by default; `default-features = false` leaves the engine alone (wgpu, the
//! kernels, autograd, training, the MNIST loader), which builds for any target wgpu does,
//! with no C compiler.
//!
//! - `download`: `data::download::download_mnist`, which fetches MNIST over HTTPS (`ureq`
//!   with rustls, whose `ring` builds C code).
//! - `checkpoints`: safetensors files (`safetensors`, `serde_json`): `nn::save_checkpoint`,
//!   `nn::load_checkpoint`, `nn::CheckpointFile`, and a trainer's saved state
//!   (`Trainer::state`, `save_state`, `restore_state`, `resume_from`, `TrainingPosition`).

#![warn(missing_docs)]
// On the web wgpu's handles are JavaScript objects, neither `Send` nor `Sync`; the engine's
// shared handles stay `Arc`s so that natively (where they are both) it is thread-safe.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod autograd;
pub mod capture;
pub mod conformance;
pub mod cpu;
pub mod data;
pub mod device;
mod dtype;
mod error;
pub mod files;
mod graph;
pub mod kernels;
pub mod nn;
mod tensor;

#[cfg(not(target_arch = "wasm32"))]
pub use device::list_adapters;
pub use device::{
    AdapterSummary, BuiltPipeline, CounterSnapshot, Device, DeviceOptions, DispatchGrid,
    DispatchTime, Encoder, Profile, TimestampSupport, list_adapters_async,
};
pub use error::{Error, Result};
pub use kernels::{
    activation, conv, dropout, elementwise, gather, head, loss, matmul, metrics, optim, pool,
    reduce,
};
pub use tensor::{DType, Shape, Tensor};

/// Compiles the README's Rust examples as doctests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
