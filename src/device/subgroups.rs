//! Where a device places a small workgroup's invocations in its subgroups, checked once when
//! the device opens (`shaders/subgroup_lanes.wgsl`).

use super::{Device, ShaderSource};
use crate::Result;

/// `shaders/subgroup_lanes.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "subgroup_lanes",
    wgsl: include_str!("../../shaders/subgroup_lanes.wgsl"),
    storage_buffers: &[("subgroup_lanes", 1)],
};

/// Invocations of the probed workgroup (the shader's `LANES`).
pub const LANES: usize = 8;

/// Whether what the probe wrote says the workgroup ran as lanes 0–7 of one subgroup: each
/// lane id once, and all eight active in invocation 0's subgroup.
pub(crate) fn one_subgroup(written: &[u32]) -> bool {
    let Some((ids, [ballot])) = written.split_at_checked(LANES) else {
        return false;
    };
    let mut seen = [false; LANES];
    for &id in ids {
        match seen.get_mut(id as usize) {
            Some(slot) if !*slot => *slot = true,
            _ => return false,
        }
    }
    ballot & 0xff == 0xff
}

/// Runs the probe on `device`: one dispatch, one readback.
pub(crate) async fn probe(device: &Device) -> Result<bool> {
    let pipeline = device.pipeline(&SHADER, "subgroup_lanes", &[])?;
    let bytes = ((LANES + 1) * 4) as u64;
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buffer = device.acquire_buffer("subgroup lanes", bytes, usage)?;
    let bind_group = device
        .wgpu_device()
        .create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("subgroup lanes"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: buffer.as_entire_binding(),
            }],
        });
    let mut encoder = device.encoder();
    encoder.dispatch(&pipeline, &bind_group, [1, 1, 1]);
    encoder.submit()?;
    let written: Vec<u32> = device.read_buffer_async(&buffer, 0, bytes).await?;
    device.release_buffer(buffer);
    Ok(one_subgroup(&written))
}

#[cfg(test)]
mod tests {
    use super::one_subgroup;

    #[test]
    fn the_lanes_must_be_0_to_7_of_one_subgroup() {
        assert!(one_subgroup(&[0, 1, 2, 3, 4, 5, 6, 7, 0xff]));
        // Any order of lanes, any further active lanes.
        assert!(one_subgroup(&[7, 6, 5, 4, 3, 2, 1, 0, 0xffff_ffff]));
        // Lanes 8–15 of a subgroup, a lane twice, two subgroups, too few values.
        assert!(!one_subgroup(&[8, 9, 10, 11, 12, 13, 14, 15, 0xff00]));
        assert!(!one_subgroup(&[0, 0, 2, 3, 4, 5, 6, 7, 0xff]));
        assert!(!one_subgroup(&[0, 1, 2, 3, 0, 1, 2, 3, 0x0f]));
        assert!(!one_subgroup(&[0, 1, 2]));
    }
}
