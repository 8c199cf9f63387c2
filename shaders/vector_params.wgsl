// Shared by the vector and broadcast matmul families (matmul_vector.wgsl and
// matmul_broadcast.wgsl; prepended by the Rust side): their uniform, which mirrors
// `matmul_vector::VectorParams` on the Rust side.
struct VectorParams {
    m: u32,
    n: u32,
    k: u32,
    // GATHER_A: the batch's first position in `order`.
    offset: u32,
    // GATHER_A: normalisation (pixels.wgsl).
    scale: f32,
    shift: f32,
    // GATHER_A: words per example (pixels per example / 4).
    example_words: u32,
    // ceil(M / 16): the bias-gradient row of workgroups comes after these.
    row_blocks: u32,
    // This pass: k in [k_begin, k_end) (multiples of 4 where k is read as vec4; the broadcast
    // family runs one pass).
    k_begin: u32,
    k_end: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(4) var<uniform> p: VectorParams;
