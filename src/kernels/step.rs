//! The inputs of a kernel that change from one training step to the next: the batch's offset
//! in the epoch's order, RReLU's RNG key, and an optimiser's step numbers (learning rate, bias
//! corrections, first-step flag). Each sits in a uniform the kernel binds; a kernel names
//! where ([`StepInput`]), and a replayed plan fills them on the device, by copies from its table
//! of per-step values, so a step's inputs need no host write of their own.

use std::sync::Arc;

use super::gather::BatchSource;
use super::optim::OptimizerShared;
use crate::device::Device;

/// A value that changes per step.
#[derive(Clone, Debug)]
pub(crate) enum StepValue {
    /// The first position of a batch in the epoch's order (a `u32`).
    BatchOffset(Arc<BatchSource>),
    /// RReLU's key: the run's seed and the global step (two `u32`s).
    RngKey,
    /// An optimiser's numbers for its next step (its `Hyper` uniform, whole).
    Optimizer(Arc<OptimizerShared>),
}

impl StepValue {
    /// Bytes the value takes.
    pub fn size(&self) -> u64 {
        match self {
            StepValue::BatchOffset(_) => 4,
            StepValue::RngKey => 8,
            StepValue::Optimizer(_) => std::mem::size_of::<super::optim::Hyper>() as u64,
        }
    }

    /// Whether `self` and `other` are one value (the same source, the same optimiser).
    pub fn same(&self, other: &StepValue) -> bool {
        match (self, other) {
            (StepValue::BatchOffset(a), StepValue::BatchOffset(b)) => Arc::ptr_eq(a, b),
            (StepValue::RngKey, StepValue::RngKey) => true,
            (StepValue::Optimizer(a), StepValue::Optimizer(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Where a kernel reads a per-step value: `value`'s bytes at `offset` in `buffer`.
#[derive(Clone, Debug)]
pub(crate) struct StepInput {
    pub value: StepValue,
    pub buffer: wgpu::Buffer,
    pub offset: u64,
}

/// Writes RReLU's key `(seed, step)` wherever `inputs` read one (queued; no host sync): the
/// eager form of what a plan's table does per step.
pub(crate) fn write_rng(device: &Device, inputs: &[StepInput], seed: u32, step: u32) {
    let key = rng_key(seed, step);
    for input in inputs {
        if matches!(input.value, StepValue::RngKey) {
            device.write_buffer(&input.buffer, input.offset, &key);
        }
    }
}

/// The bytes of RReLU's key, as the activation runtime holds them.
pub(crate) fn rng_key(seed: u32, step: u32) -> [u8; 8] {
    let mut key = [0; 8];
    key[..4].copy_from_slice(&seed.to_le_bytes());
    key[4..].copy_from_slice(&step.to_le_bytes());
    key
}
