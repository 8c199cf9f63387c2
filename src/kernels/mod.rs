//! Typed launchers for the WGSL kernels: one module per file in `shaders/`.
//!
//! Each launcher validates shapes, picks the kernel variant and pipeline specialisation, and
//! builds its bind group once; recording it into an [`Encoder`](crate::Encoder) is then cheap
//! enough for a training loop.

pub mod matmul;

/// Workgroup counts for `n` items at `per_group` items per workgroup, checked against the
/// device's per-dimension limit.
pub(crate) fn groups(
    device: &crate::Device,
    what: &str,
    n: usize,
    per_group: usize,
) -> crate::Result<u32> {
    let count = n.div_ceil(per_group);
    let limit = device.limits().max_compute_workgroups_per_dimension;
    if count > limit as usize {
        return Err(crate::Error::TooLarge {
            what: what.to_string(),
            requested: format!("{count} workgroups in one dimension"),
            limit: format!("{limit}"),
            limit_name: "max_compute_workgroups_per_dimension",
        });
    }
    Ok(count as u32)
}
