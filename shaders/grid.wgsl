// Shared by every elementwise-style kernel (prepended by the Rust side, as WGSL has no
// includes): the workgroup width WG of every such kernel (`@workgroup_size(WG)`; the Rust
// side's `kernels::WORKGROUP`, checked equal by tests/contract.rs) and the linear index of an
// invocation in a 2-D grid of WG-wide workgroups. Grids are 2-D because one dimension holds
// at most max_compute_workgroups_per_dimension groups.
const WG: u32 = 64u;

fn flat_index(wg: vec3<u32>, groups: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * groups.x + wg.x) * WG + lid.x;
}
