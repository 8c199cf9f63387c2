//! Typed launchers for the WGSL kernels: one module per file in `shaders/`.
//!
//! Each launcher validates shapes, picks the kernel variant and pipeline specialisation, and
//! builds its bind group once; recording it into an [`Encoder`] is then cheap
//! enough for a training loop.

pub mod activation;
mod contract;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod gather;
pub mod head;
pub mod loss;
pub mod matmul;
pub mod metrics;
pub mod optim;
pub mod pool;
pub mod reduce;
pub(crate) mod step;
pub(crate) mod texels;

use std::sync::Arc;

#[doc(hidden)]
pub use contract::{Contract, contracts};

/// Declares a shader's binding numbers as named constants (the WGSL variable's name, upper
/// case) and the list of them that `tests/contract.rs` checks against the shader.
macro_rules! bindings {
    ($(#[$doc:meta])* $module:ident: $($name:ident = $n:expr),* $(,)?) => {
        $(#[$doc])*
        pub(crate) mod $module {
            $(pub const $name: u32 = $n;)*
            /// Every binding with its name.
            #[allow(dead_code)]
            pub const ALL: &[(&str, u32)] = &[$((stringify!($name), $name)),*];
        }
    };
}
pub(crate) use bindings;

use crate::device::Storage;
use crate::device::{Device, DispatchGrid, Encoder};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// One prepared dispatch: pipeline, bind group and grid, recorded as often as needed. It
/// holds the storage of every tensor it binds, so none can be recycled while it exists.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    bound: Vec<Arc<Storage>>,
    label: String,
    workgroup_size: Option<[u32; 3]>,
}

impl Dispatch {
    /// Builds the bind group for `entries` against the pipeline's own layout.
    pub fn new(
        device: &Device,
        pipeline: Arc<wgpu::ComputePipeline>,
        label: &str,
        entries: &[Entry<'_>],
        workgroups: [u32; 3],
    ) -> Self {
        let raw: Vec<wgpu::BindGroupEntry<'_>> = entries.iter().map(|e| e.raw.clone()).collect();
        let bind_group = bind(device, &pipeline, label, &raw);
        let bound = entries.iter().filter_map(|e| e.storage.cloned()).collect();
        let workgroup_size = device.workgroup_size(&pipeline);
        Self {
            pipeline,
            bind_group,
            workgroups,
            bound,
            label: label.to_string(),
            workgroup_size,
        }
    }

    pub fn record(&self, encoder: &mut Encoder) {
        encoder.dispatch(&self.pipeline, &self.bind_group, self.workgroups);
        encoder.keep_alive(&self.bound);
        encoder.note(|| DispatchGrid {
            entry_point: self.label.clone(),
            workgroups: self.workgroups,
            workgroup_size: self.workgroup_size,
        });
    }
}

/// A bind-group entry that remembers the tensor behind it, if any.
#[derive(Clone)]
pub(crate) struct Entry<'a> {
    raw: wgpu::BindGroupEntry<'a>,
    storage: Option<&'a Arc<Storage>>,
}

/// A kernel's uniform parameters in a buffer from the device's pool: bound like a tensor, so
/// the dispatch keeps it alive, and back in the pool when the last dispatch using it is gone.
#[derive(Clone, Debug)]
pub(crate) struct Uniform(Arc<Storage>);

impl Uniform {
    /// A pooled uniform buffer holding `data` (queued; it reaches the device with the next
    /// submit).
    pub fn new(device: &Device, label: &str, data: &[u8]) -> Result<Self> {
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let buffer = device.acquire_buffer(label, data.len() as u64, usage)?;
        device.write_buffer(&buffer, 0, data);
        Ok(Self(Storage::new(device, buffer)))
    }

    /// The buffer, for kernels that rewrite their parameters between submits.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.0.buffer()
    }
}

/// What a binding points at: a tensor or a uniform (kept alive by the dispatch), or any
/// other resource.
pub(crate) enum Resource<'a> {
    Tensor(&'a Tensor),
    Uniform(&'a Uniform),
    Other(wgpu::BindingResource<'a>),
}

impl<'a> From<&'a Uniform> for Resource<'a> {
    fn from(uniform: &'a Uniform) -> Self {
        Resource::Uniform(uniform)
    }
}

impl<'a> From<&'a Tensor> for Resource<'a> {
    fn from(tensor: &'a Tensor) -> Self {
        Resource::Tensor(tensor)
    }
}

impl<'a> From<wgpu::BindingResource<'a>> for Resource<'a> {
    fn from(resource: wgpu::BindingResource<'a>) -> Self {
        Resource::Other(resource)
    }
}

pub(crate) fn entry<'a>(binding: u32, resource: impl Into<Resource<'a>>) -> Entry<'a> {
    match resource.into() {
        Resource::Tensor(tensor) => Entry {
            raw: wgpu::BindGroupEntry {
                binding,
                resource: tensor.binding(),
            },
            storage: Some(tensor.storage()),
        },
        Resource::Uniform(uniform) => Entry {
            raw: wgpu::BindGroupEntry {
                binding,
                resource: uniform.0.buffer().as_entire_binding(),
            },
            storage: Some(&uniform.0),
        },
        Resource::Other(resource) => Entry {
            raw: wgpu::BindGroupEntry { binding, resource },
            storage: None,
        },
    }
}

pub(crate) fn bind(
    device: &Device,
    pipeline: &wgpu::ComputePipeline,
    label: &str,
    entries: &[wgpu::BindGroupEntry<'_>],
) -> wgpu::BindGroup {
    device
        .wgpu_device()
        .create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries,
        })
}

/// The most loop iterations a kernel runs in one invocation per dispatch over a user-sized
/// dimension. lavapipe (llvmpipe) keeps one loop counter per invocation, shared by all its
/// loops, nested or not, and silently ends every loop once the invocation has run 65535
/// iterations in all (measured: two loops of 40,000 run 40,000 and 25,534 times). Splitting a
/// loop into nested loops therefore does not help: a longer loop is covered by several
/// dispatches ("passes"), each continuing from the state the previous one stored (an f32
/// stored and reloaded exactly), so the values are combined in the same order, with the same
/// operations, as by one loop. The margin leaves room for a kernel's other, short loops.
pub const PASS_LENGTH: usize = 16_384;

/// The most loop iterations, all loops together, one invocation of a kernel may run in one
/// dispatch: three loops of [`PASS_LENGTH`] (the softmax kernels' max, exp-sum and output
/// loops in one pass), a quarter below the 65535 at which lavapipe stops them.
pub(crate) const INVOCATION_BUDGET: usize = 3 * PASS_LENGTH;

/// `count` distinct 16-byte tensors to bind where a specialisation declares a writable
/// storage binding it never uses. WebGPU forbids one buffer in two writable bindings of a
/// dispatch, so no two such bindings may share a stand-in (nor share one with a real
/// output). The kernel keeps them, so the pool never hands their buffers to a tensor bound
/// beside them.
pub(crate) fn stand_ins(device: &Device, count: usize) -> Result<Vec<Tensor>> {
    (0..count).map(|_| Tensor::uninit(device, [4])).collect()
}
/// The ranges `[begin, end)` of at most `per_pass` (positive) elements that cover `0..len` in
/// order; one empty range for `len == 0`, so every kernel runs at least once.
pub(crate) fn pass_ranges(len: usize, per_pass: usize) -> Vec<(u32, u32)> {
    if len == 0 {
        return vec![(0, 0)];
    }
    (0..len)
        .step_by(per_pass)
        .map(|begin| (begin as u32, (begin + per_pass).min(len) as u32))
        .collect()
}

/// A boolean pipeline constant (WGSL `override` flags are numbers on the host side).
pub(crate) fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The workgroup width of every kernel that uses `shaders/grid.wgsl` (its `WG`).
pub(crate) const WORKGROUP: usize = 64;

/// A 2-D grid of `ceil(count / WORKGROUP)` workgroups, rows no longer than the device's
/// per-dimension limit; kernels linearise it as `(wg.y · groups.x + wg.x) · WG + lid.x`
/// (`flat_index` in `shaders/grid.wgsl`).
pub(crate) fn grid(device: &Device, what: &str, count: usize) -> Result<[u32; 3]> {
    let total = count.div_ceil(WORKGROUP);
    if total == 0 {
        return Ok([0, 1, 1]);
    }
    let limit = device.limits().max_compute_workgroups_per_dimension as usize;
    let x = total.min(limit);
    let y = total.div_ceil(x);
    if y > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            requested: format!("{total} workgroups"),
            limit: format!("{limit}²"),
            limit_name: "max_compute_workgroups_per_dimension",
        });
    }
    Ok([x as u32, y as u32, 1])
}

/// Workgroup counts for `n` items at `per_group` items per workgroup, checked against the
/// device's per-dimension limit.
pub(crate) fn groups(device: &Device, what: &str, n: usize, per_group: usize) -> Result<u32> {
    let count = n.div_ceil(per_group);
    let limit = device.limits().max_compute_workgroups_per_dimension;
    if count > limit as usize {
        return Err(Error::TooLarge {
            what: what.to_string(),
            requested: format!("{count} workgroups in one dimension"),
            limit: format!("{limit}"),
            limit_name: "max_compute_workgroups_per_dimension",
        });
    }
    Ok(count as u32)
}

/// A prepared kernel, recordable through one interface: autograd keeps the kernels of a
/// forward op or a backward pass together and records them into one encoder.
pub(crate) trait Record {
    fn record_into(&self, encoder: &mut Encoder);

    /// Records the kernel alone into a fresh encoder and submits it: the one "prepare, record,
    /// submit" path of the eager launchers (no host sync).
    fn submit(&self, device: &Device) -> Result<()> {
        let mut encoder = device.encoder();
        self.record_into(&mut encoder);
        encoder.submit()
    }

    /// The per-step values the kernel reads, and where (a replayed plan copies them there
    /// from its table before the kernel runs). None by default.
    fn step_inputs(&self) -> Vec<step::StepInput> {
        Vec::new()
    }
}

macro_rules! recordable {
    ($($kernel:ty),* $(,)?) => {
        $(impl Record for $kernel {
            fn record_into(&self, encoder: &mut Encoder) {
                self.record(encoder);
            }
        })*
    };
    // Kernels with per-step inputs (a batch offset, an RReLU key).
    (stepped: $($kernel:ty),* $(,)?) => {
        $(impl Record for $kernel {
            fn record_into(&self, encoder: &mut Encoder) {
                self.record(encoder);
            }

            fn step_inputs(&self) -> Vec<step::StepInput> {
                <$kernel>::step_inputs(self)
            }
        })*
    };
}

recordable!(
    elementwise::Elementwise,
    reduce::Sum,
    activation::PreluSlopeGrad,
    loss::PointwiseLossKernel,
    loss::SoftmaxCrossEntropy,
    loss::SoftmaxKernel,
    loss::OneHot,
    metrics::Metric,
    head::Head,
    pool::PoolKernel,
    Dispatch,
);

recordable!(
    stepped: matmul::Matmul,
    matmul::vector::VectorMatmul,
    matmul::broadcast::BroadcastMatmul,
    activation::ActivationKernel,
    dropout::DropoutKernel,
);

impl Record for gather::BatchGather {
    fn record_into(&self, encoder: &mut Encoder) {
        self.record_dispatch(encoder);
    }

    fn step_inputs(&self) -> Vec<step::StepInput> {
        vec![self.offset_input()]
    }
}
