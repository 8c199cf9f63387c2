// Prepended to conv_broadcast.wgsl on devices whose 8-invocation workgroups are one subgroup:
// the eight columns' values at one k step. `at` addresses column 0's value and `stride` steps
// a column; lane l fetches column col0 + l (the last one past the edge) and every lane gets
// all eight by subgroupBroadcast.
fn columns(at: u32, stride: u32, col0: u32, lane: u32) -> array<vec4<f32>, 2> {
    let v = fetch_cols(at + min(col0 + lane, p.cols - 1u) * stride);
    return array<vec4<f32>, 2>(
        vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u)),
        vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u)),
    );
}
