// Prepended to conv_broadcast.wgsl on devices without subgroups (SwiftShader, the browser):
// the eight columns' values at one k step, as conv_columns_broadcast.wgsl gives them, each
// lane fetching all eight (unrolled: lavapipe's loop limit counts every iteration).
fn column(at: u32, stride: u32, col: u32) -> f32 {
    return fetch_cols(at + min(col, p.cols - 1u) * stride);
}

fn columns(at: u32, stride: u32, col0: u32, lane: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(
        vec4<f32>(column(at, stride, col0), column(at, stride, col0 + 1u), column(at, stride, col0 + 2u), column(at, stride, col0 + 3u)),
        vec4<f32>(column(at, stride, col0 + 4u), column(at, stride, col0 + 5u), column(at, stride, col0 + 6u), column(at, stride, col0 + 7u)),
    );
}
