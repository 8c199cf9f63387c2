// subgroup_lanes: how the device places a workgroup of LANES invocations in subgroups, read
// once when the device opens (`Device::small_workgroups_are_one_subgroup`). The broadcast
// matmul family needs its 8-invocation workgroups to be lanes 0–7 of one subgroup: it hands
// rows out from those lanes with subgroupBroadcast. Vulkan and WebGPU allow a driver to place
// a workgroup smaller than its subgroups otherwise, so this is checked, not assumed.
//
//   0: lanes  storage, read_write  LANES + 1 values: each invocation's subgroup_invocation_id
//                                  by local index, then invocation 0's ballot of the
//                                  invocations active in its subgroup (lanes 0–31)

const LANES: u32 = 8u;

@group(0) @binding(0) var<storage, read_write> lanes: array<u32>;

@compute @workgroup_size(LANES)
fn subgroup_lanes(
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let ballot = subgroupBallot(true);
    lanes[index] = lane;
    if index == 0u {
        lanes[LANES] = ballot.x;
    }
}
