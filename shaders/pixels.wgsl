// Shared by the kernels that read images straight from a data set's bytes (gather.wgsl's
// gather and matmul_vector.wgsl's gathered operand; prepended by the Rust side): one pixel's
// normalised value x = byte · scale + shift, with scale = 1 / (255·std), shift = −mean / std.
// One fused rounding, so both kernels compute the same bits whatever a compiler does with a
// separate multiply and add.
fn normalize_byte(byte: u32, scale: f32, shift: f32) -> f32 {
    return fma(f32(byte), scale, shift);
}

// Four consecutive pixels, packed little-endian in one u32 word.
fn normalize_word(word: u32, scale: f32, shift: f32) -> vec4<f32> {
    return vec4<f32>(
        normalize_byte(word & 0xffu, scale, shift),
        normalize_byte((word >> 8u) & 0xffu, scale, shift),
        normalize_byte((word >> 16u) & 0xffu, scale, shift),
        normalize_byte(word >> 24u, scale, shift),
    );
}
