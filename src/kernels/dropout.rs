//! Dropout in training on the device (`shaders/dropout.wgsl`), as PyTorch's `nn.Dropout(p)`:
//! each element kept with probability `1 − p` and scaled by `1 / (1 − p)`. The mask is a
//! counter-based hash of the element's index and a key (the run's seed and global step, which
//! a replayed plan writes per step like RReLU's, and a salt per dropout layer), so the
//! backward pass is the same kernel on the output's gradient and nothing is stored.

use super::step::{StepInput, StepValue};
use super::{Dispatch, Record, Resource, entry, grid};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/dropout.wgsl`, after the shared `shaders/grid.wgsl` and `shaders/hash.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "dropout",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/hash.wgsl"),
        include_str!("../../shaders/dropout.wgsl")
    ),
    storage_buffers: &[("dropout", 2)],
};

super::bindings! {
    /// The binding numbers of `shaders/dropout.wgsl`, by the WGSL variable each names.
    bind:
    X = 0,
    OUT = 1,
    PARAMS = 2,
}

/// The `DropoutParams` uniform of `shaders/dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct DropoutParams {
    pub seed: u32,
    pub step: u32,
    pub salt: u32,
    pub count: u32,
    pub p: f32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// `1 / (1 − p)`, computed in f64 and rounded once to f32: what kept elements are multiplied
/// by (one f32 product per element, as PyTorch's `x · mask · scale`).
pub fn scale(p: f32) -> f32 {
    (1.0 / (1.0 - f64::from(p))) as f32
}

/// Checks a drop probability: in `[0, 1)` (at 1 nothing would be kept and the scale infinite).
pub fn check_probability(p: f32) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "dropout probability {p} is outside [0, 1): give the fraction of elements to drop, \
             e.g. 0.5"
        )))
    }
}

/// A prepared dropout dispatch, with its key in a uniform of its own.
#[derive(Debug)]
pub struct DropoutKernel {
    dispatch: Dispatch,
    params: wgpu::Buffer,
    device: Device,
}

impl DropoutKernel {
    /// Prepares dropout with probability `p` and layer salt `salt` of `x` into `out` (the same
    /// shape), keyed by seed 0, step 0 until [`DropoutKernel::set_rng`] or a plan's table
    /// sets the key.
    pub fn new(x: &Tensor, out: &Tensor, p: f32, salt: u32) -> Result<Self> {
        check_probability(p)?;
        for t in [x, out] {
            t.expect_dtype("dropout", DType::F32)?;
        }
        if x.shape() != out.shape() {
            return Err(Error::shape("dropout", x.shape(), out.shape()));
        }
        let device = x.device();
        let count = x.numel();
        let params = DropoutParams {
            seed: 0,
            step: 0,
            salt,
            count: count as u32,
            p,
            scale: scale(p),
            _pad: [0; 2],
        };
        let buffer = device.uniform_buffer("dropout params", bytemuck::bytes_of(&params));
        let pipeline = device.pipeline(&SHADER, "dropout", &[])?;
        let entries = [
            entry(bind::X, x),
            entry(bind::OUT, out),
            entry(bind::PARAMS, Resource::Other(buffer.as_entire_binding())),
        ];
        let dispatch = Dispatch::new(
            device,
            pipeline,
            "dropout",
            &entries,
            grid(device, "dropout", count)?,
        );
        Ok(Self {
            dispatch,
            params: buffer,
            device: device.clone(),
        })
    }

    /// Records the dispatch.
    pub fn record(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }

    /// Sets the key's seed and step for the next recorded passes (queued; no host sync).
    pub fn set_rng(&self, seed: u32, step: u32) {
        super::step::write_rng(&self.device, &self.step_inputs(), seed, step);
    }

    /// Where the kernel reads its key's seed and step.
    pub(crate) fn step_inputs(&self) -> Vec<StepInput> {
        vec![StepInput {
            value: StepValue::RngKey,
            buffer: self.params.clone(),
            offset: std::mem::offset_of!(DropoutParams, seed) as u64,
        }]
    }
}

/// Dropout of `x` with probability `p` into a new tensor, keyed by `(seed, step, salt)`,
/// submitted (as [`crate::cpu::dropout::dropout`] with that key).
pub fn dropout(x: &Tensor, p: f32, seed: u32, step: u32, salt: u32) -> Result<Tensor> {
    let out = Tensor::uninit(x.device(), x.shape().clone())?;
    let kernel = DropoutKernel::new(x, &out, p, salt)?;
    kernel.set_rng(seed, step);
    kernel.submit(x.device())?;
    Ok(out)
}
