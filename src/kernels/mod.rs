//! Typed launchers for the WGSL kernels: one module per file in `shaders/`.
//!
//! Each launcher validates shapes, picks the kernel variant and pipeline specialisation, and
//! builds its bind group once; recording it into an [`Encoder`] is then cheap
//! enough for a training loop.

pub mod activation;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod metrics;
pub mod optim;
pub mod reduce;

use std::sync::Arc;

use crate::device::{Device, Encoder};
use crate::{Error, Result};

/// One prepared dispatch: pipeline, bind group and grid, recorded as often as needed.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Dispatch {
    /// Builds the bind group for `entries` against the pipeline's own layout.
    pub fn new(
        device: &Device,
        pipeline: Arc<wgpu::ComputePipeline>,
        label: &str,
        entries: &[wgpu::BindGroupEntry<'_>],
        workgroups: [u32; 3],
    ) -> Self {
        let bind_group = bind(device, &pipeline, label, entries);
        Self {
            pipeline,
            bind_group,
            workgroups,
        }
    }

    pub fn record(&self, encoder: &mut Encoder) {
        encoder.dispatch(&self.pipeline, &self.bind_group, self.workgroups);
    }
}

pub(crate) fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
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

/// A 2-D grid of `ceil(count / per_group)` workgroups, rows no longer than the device's
/// per-dimension limit; kernels linearise it as `(wg.y · groups.x + wg.x) · per_group + lid.x`.
pub(crate) fn grid(
    device: &Device,
    what: &str,
    count: usize,
    per_group: usize,
) -> Result<[u32; 3]> {
    let total = count.div_ceil(per_group);
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
