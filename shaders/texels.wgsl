// Shared by the kernels that fetch tensors through linear texel views (src/kernels/texels.rs;
// prepended by the Rust side): texel i of a view holds elements 4i..4i+3 of an f32 tensor (or
// element i of a u32 one) and lies at (i mod 2^TEXEL_SHIFT, i >> TEXEL_SHIFT).
override TEXEL_SHIFT: u32 = 11u;

fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i & ((1u << TEXEL_SHIFT) - 1u), i >> TEXEL_SHIFT);
}
