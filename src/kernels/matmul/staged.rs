//! The staged matmul family (`shaders/matmul_staged.wgsl`), for GPUs: the vector family's
//! products, prologues and epilogues (`shaders/matmul_fused.wgsl`, shared), with op(A)'s and
//! op(B)'s tiles staged in workgroup memory and one vec4 of C per invocation, so a small
//! product still fills a GPU with invocations (the lecture's 64×128 first layer: 8 workgroups
//! of 256). It binds what the vector family binds, at the same numbers, and is prepared by the
//! same launcher (`VectorMatmul`, in `vector.rs`).
//!
//! Each output is the same fma chain in k order as every other family computes, so the
//! choice never changes a bit.

use super::vector;
use super::{MatmulDims, MatmulForm};
use crate::device::ShaderSource;

/// `shaders/matmul_staged.wgsl`, after what `shaders/matmul_vector.wgsl` is built on.
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul_staged",
    wgsl: fused_wgsl!("matmul_staged.wgsl"),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("matmul_staged_ab", 10),
        ("matmul_staged_atb", 13),
        ("matmul_staged_abt", 5),
    ],
};

/// Rows of C per workgroup (the shader's `TILE_ROWS`): the fused families' row block.
pub(crate) const TILE_ROWS: usize = 16;
/// Columns of C per workgroup (four times the shader's `TILE_COLS4`).
pub(crate) const TILE_COLS: usize = 64;
/// Values of k per staged tile (the shader's `TILE_K`).
pub(crate) const TILE_K: usize = 16;

/// Whether the family computes `op(A)·op(B)` of `m×k` by `k×n` in `form`: the vector
/// family's shapes (vec4 loads that line up).
pub fn supports(form: MatmulForm, dims: MatmulDims) -> bool {
    vector::supports(form, dims)
}
