// The vector matmul family: C = op(A)·op(B) with operands read as vec4 and sixteen named vec4
// accumulators per invocation, for CPU devices; its prologues and epilogues (what lets a
// captured training step fuse its kernels, src/capture/rules/) are matmul_fused.wgsl's,
// prepended.
//
// Why this shape: private arrays indexed in a loop live in memory on llvmpipe, so the
// accumulators are sixteen separately named vec4s; each vec4 load moves four values per lane.
// Measured on lavapipe (Mesa 22.3.6) it still runs at ~1.6 GFLOP/s, like matmul_blocked: there
// every storage-buffer load is a loop over the SIMD lanes, ~6.5 ns per lane and value, and
// this loop makes 20 of them (vec4s) per 256 FMAs. matmul_broadcast.wgsl is this blocking over
// texel fetches (~12–20 GFLOP/s); this family serves CPU devices without subgroups of 8.
//
// One invocation computes 16 rows × 4 columns of C.
// Dispatch: (ceil(ceil(N / 4) / VEC_WG), ceil(M / 16) [+ 1 with BIAS_GRAD], 1).

override VEC_WG: u32 = 64u;

// Rows of C per invocation (kernels/matmul/vector.rs ROWS; the A·B and A·Bᵀ loops are unrolled for it).
const ROWS: u32 = 16u;

// ---------------------------------------------------------------------------------------------
// matmul_vector_ab

@compute @workgroup_size(VEC_WG)
fn matmul_vector_ab(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n4 = p.n / 4u;
    let c4 = wg.x * VEC_WG + lid.x;
    if c4 >= n4 {
        return;
    }
    let r0 = wg.y * ROWS;
    if WRITE_LABELS && c4 == 0u && p.k_begin == 0u {
        for (var i = 0u; i < ROWS; i += 1u) {
            let row = r0 + i;
            if row < p.m {
                batch_labels[row] = ds_labels[order[p.offset + row]];
            }
        }
    }
    let ab0 = a_row_base(r0 + 0u);
    let ab1 = a_row_base(r0 + 1u);
    let ab2 = a_row_base(r0 + 2u);
    let ab3 = a_row_base(r0 + 3u);
    let ab4 = a_row_base(r0 + 4u);
    let ab5 = a_row_base(r0 + 5u);
    let ab6 = a_row_base(r0 + 6u);
    let ab7 = a_row_base(r0 + 7u);
    let ab8 = a_row_base(r0 + 8u);
    let ab9 = a_row_base(r0 + 9u);
    let ab10 = a_row_base(r0 + 10u);
    let ab11 = a_row_base(r0 + 11u);
    let ab12 = a_row_base(r0 + 12u);
    let ab13 = a_row_base(r0 + 13u);
    let ab14 = a_row_base(r0 + 14u);
    let ab15 = a_row_base(r0 + 15u);
    var acc0 = start4(r0 + 0u, 4u * c4);
    var acc1 = start4(r0 + 1u, 4u * c4);
    var acc2 = start4(r0 + 2u, 4u * c4);
    var acc3 = start4(r0 + 3u, 4u * c4);
    var acc4 = start4(r0 + 4u, 4u * c4);
    var acc5 = start4(r0 + 5u, 4u * c4);
    var acc6 = start4(r0 + 6u, 4u * c4);
    var acc7 = start4(r0 + 7u, 4u * c4);
    var acc8 = start4(r0 + 8u, 4u * c4);
    var acc9 = start4(r0 + 9u, 4u * c4);
    var acc10 = start4(r0 + 10u, 4u * c4);
    var acc11 = start4(r0 + 11u, 4u * c4);
    var acc12 = start4(r0 + 12u, 4u * c4);
    var acc13 = start4(r0 + 13u, 4u * c4);
    var acc14 = start4(r0 + 14u, 4u * c4);
    var acc15 = start4(r0 + 15u, 4u * c4);
    for (var k4 = p.k_begin / 4u; k4 < p.k_end / 4u; k4 += 1u) {
        let kb = 4u * k4 * n4 + c4;
        let b0 = b[kb];
        let b1 = b[kb + n4];
        let b2 = b[kb + 2u * n4];
        let b3 = b[kb + 3u * n4];
        acc0 = step4(acc0, load_a(ab0, k4), b0, b1, b2, b3);
        acc1 = step4(acc1, load_a(ab1, k4), b0, b1, b2, b3);
        acc2 = step4(acc2, load_a(ab2, k4), b0, b1, b2, b3);
        acc3 = step4(acc3, load_a(ab3, k4), b0, b1, b2, b3);
        acc4 = step4(acc4, load_a(ab4, k4), b0, b1, b2, b3);
        acc5 = step4(acc5, load_a(ab5, k4), b0, b1, b2, b3);
        acc6 = step4(acc6, load_a(ab6, k4), b0, b1, b2, b3);
        acc7 = step4(acc7, load_a(ab7, k4), b0, b1, b2, b3);
        acc8 = step4(acc8, load_a(ab8, k4), b0, b1, b2, b3);
        acc9 = step4(acc9, load_a(ab9, k4), b0, b1, b2, b3);
        acc10 = step4(acc10, load_a(ab10, k4), b0, b1, b2, b3);
        acc11 = step4(acc11, load_a(ab11, k4), b0, b1, b2, b3);
        acc12 = step4(acc12, load_a(ab12, k4), b0, b1, b2, b3);
        acc13 = step4(acc13, load_a(ab13, k4), b0, b1, b2, b3);
        acc14 = step4(acc14, load_a(ab14, k4), b0, b1, b2, b3);
        acc15 = step4(acc15, load_a(ab15, k4), b0, b1, b2, b3);
    }
    let col = 4u * c4;
    store_ab4(r0 + 0u, col, acc0);
    store_ab4(r0 + 1u, col, acc1);
    store_ab4(r0 + 2u, col, acc2);
    store_ab4(r0 + 3u, col, acc3);
    store_ab4(r0 + 4u, col, acc4);
    store_ab4(r0 + 5u, col, acc5);
    store_ab4(r0 + 6u, col, acc6);
    store_ab4(r0 + 7u, col, acc7);
    store_ab4(r0 + 8u, col, acc8);
    store_ab4(r0 + 9u, col, acc9);
    store_ab4(r0 + 10u, col, acc10);
    store_ab4(r0 + 11u, col, acc11);
    store_ab4(r0 + 12u, col, acc12);
    store_ab4(r0 + 13u, col, acc13);
    store_ab4(r0 + 14u, col, acc14);
    store_ab4(r0 + 15u, col, acc15);
}

// ---------------------------------------------------------------------------------------------
// matmul_vector_atb

@compute @workgroup_size(VEC_WG)
fn matmul_vector_atb(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n4 = p.n / 4u;
    let c4 = wg.x * VEC_WG + lid.x;
    if c4 >= n4 {
        return;
    }
    let col = 4u * c4;
    if BIAS_GRAD && wg.y == p.row_blocks {
        bias_grad_columns(c4);
        return;
    }
    let m0 = wg.y * ROWS;
    let m4n = p.m / 4u;
    let m4_0 = min(m0 / 4u, m4n - 1u);
    let m4_1 = min(m0 / 4u + 1u, m4n - 1u);
    let m4_2 = min(m0 / 4u + 2u, m4n - 1u);
    let m4_3 = min(m0 / 4u + 3u, m4n - 1u);
    var acc0 = start4(m0 + 0u, col);
    var acc1 = start4(m0 + 1u, col);
    var acc2 = start4(m0 + 2u, col);
    var acc3 = start4(m0 + 3u, col);
    var acc4 = start4(m0 + 4u, col);
    var acc5 = start4(m0 + 5u, col);
    var acc6 = start4(m0 + 6u, col);
    var acc7 = start4(m0 + 7u, col);
    var acc8 = start4(m0 + 8u, col);
    var acc9 = start4(m0 + 9u, col);
    var acc10 = start4(m0 + 10u, col);
    var acc11 = start4(m0 + 11u, col);
    var acc12 = start4(m0 + 12u, col);
    var acc13 = start4(m0 + 13u, col);
    var acc14 = start4(m0 + 14u, col);
    var acc15 = start4(m0 + 15u, col);
    for (var k = p.k_begin; k < p.k_end; k += 1u) {
        let base = at_row_base(k);
        let a0 = load_a(base, m4_0);
        let a1 = load_a(base, m4_1);
        let a2 = load_a(base, m4_2);
        let a3 = load_a(base, m4_3);
        let bv = b[k * n4 + c4];
        acc0 = fma(vec4<f32>(a0.x), bv, acc0);
        acc1 = fma(vec4<f32>(a0.y), bv, acc1);
        acc2 = fma(vec4<f32>(a0.z), bv, acc2);
        acc3 = fma(vec4<f32>(a0.w), bv, acc3);
        acc4 = fma(vec4<f32>(a1.x), bv, acc4);
        acc5 = fma(vec4<f32>(a1.y), bv, acc5);
        acc6 = fma(vec4<f32>(a1.z), bv, acc6);
        acc7 = fma(vec4<f32>(a1.w), bv, acc7);
        acc8 = fma(vec4<f32>(a2.x), bv, acc8);
        acc9 = fma(vec4<f32>(a2.y), bv, acc9);
        acc10 = fma(vec4<f32>(a2.z), bv, acc10);
        acc11 = fma(vec4<f32>(a2.w), bv, acc11);
        acc12 = fma(vec4<f32>(a3.x), bv, acc12);
        acc13 = fma(vec4<f32>(a3.y), bv, acc13);
        acc14 = fma(vec4<f32>(a3.z), bv, acc14);
        acc15 = fma(vec4<f32>(a3.w), bv, acc15);
    }
    store_atb4(m0 + 0u, col, acc0);
    store_atb4(m0 + 1u, col, acc1);
    store_atb4(m0 + 2u, col, acc2);
    store_atb4(m0 + 3u, col, acc3);
    store_atb4(m0 + 4u, col, acc4);
    store_atb4(m0 + 5u, col, acc5);
    store_atb4(m0 + 6u, col, acc6);
    store_atb4(m0 + 7u, col, acc7);
    store_atb4(m0 + 8u, col, acc8);
    store_atb4(m0 + 9u, col, acc9);
    store_atb4(m0 + 10u, col, acc10);
    store_atb4(m0 + 11u, col, acc11);
    store_atb4(m0 + 12u, col, acc12);
    store_atb4(m0 + 13u, col, acc13);
    store_atb4(m0 + 14u, col, acc14);
    store_atb4(m0 + 15u, col, acc15);
}

// ---------------------------------------------------------------------------------------------
// matmul_vector_abt

@compute @workgroup_size(VEC_WG)
fn matmul_vector_abt(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n0 = (wg.x * VEC_WG + lid.x) * 4u;
    if n0 >= p.n {
        return;
    }
    let r0 = wg.y * ROWS;
    let k4n = p.k / 4u;
    let ab0 = min(r0 + 0u, p.m - 1u) * k4n;
    let ab1 = min(r0 + 1u, p.m - 1u) * k4n;
    let ab2 = min(r0 + 2u, p.m - 1u) * k4n;
    let ab3 = min(r0 + 3u, p.m - 1u) * k4n;
    let ab4 = min(r0 + 4u, p.m - 1u) * k4n;
    let ab5 = min(r0 + 5u, p.m - 1u) * k4n;
    let ab6 = min(r0 + 6u, p.m - 1u) * k4n;
    let ab7 = min(r0 + 7u, p.m - 1u) * k4n;
    let ab8 = min(r0 + 8u, p.m - 1u) * k4n;
    let ab9 = min(r0 + 9u, p.m - 1u) * k4n;
    let ab10 = min(r0 + 10u, p.m - 1u) * k4n;
    let ab11 = min(r0 + 11u, p.m - 1u) * k4n;
    let ab12 = min(r0 + 12u, p.m - 1u) * k4n;
    let ab13 = min(r0 + 13u, p.m - 1u) * k4n;
    let ab14 = min(r0 + 14u, p.m - 1u) * k4n;
    let ab15 = min(r0 + 15u, p.m - 1u) * k4n;
    let bb0 = min(n0, p.n - 1u) * k4n;
    let bb1 = min(n0 + 1u, p.n - 1u) * k4n;
    let bb2 = min(n0 + 2u, p.n - 1u) * k4n;
    let bb3 = min(n0 + 3u, p.n - 1u) * k4n;
    var acc0 = start4(r0 + 0u, n0);
    var acc1 = start4(r0 + 1u, n0);
    var acc2 = start4(r0 + 2u, n0);
    var acc3 = start4(r0 + 3u, n0);
    var acc4 = start4(r0 + 4u, n0);
    var acc5 = start4(r0 + 5u, n0);
    var acc6 = start4(r0 + 6u, n0);
    var acc7 = start4(r0 + 7u, n0);
    var acc8 = start4(r0 + 8u, n0);
    var acc9 = start4(r0 + 9u, n0);
    var acc10 = start4(r0 + 10u, n0);
    var acc11 = start4(r0 + 11u, n0);
    var acc12 = start4(r0 + 12u, n0);
    var acc13 = start4(r0 + 13u, n0);
    var acc14 = start4(r0 + 14u, n0);
    var acc15 = start4(r0 + 15u, n0);
    for (var k4 = p.k_begin / 4u; k4 < p.k_end / 4u; k4 += 1u) {
        // Columns of t are the four k values of the four output columns.
        let t = transpose(mat4x4<f32>(b[bb0 + k4], b[bb1 + k4], b[bb2 + k4], b[bb3 + k4]));
        acc0 = step4(acc0, a[ab0 + k4], t[0], t[1], t[2], t[3]);
        acc1 = step4(acc1, a[ab1 + k4], t[0], t[1], t[2], t[3]);
        acc2 = step4(acc2, a[ab2 + k4], t[0], t[1], t[2], t[3]);
        acc3 = step4(acc3, a[ab3 + k4], t[0], t[1], t[2], t[3]);
        acc4 = step4(acc4, a[ab4 + k4], t[0], t[1], t[2], t[3]);
        acc5 = step4(acc5, a[ab5 + k4], t[0], t[1], t[2], t[3]);
        acc6 = step4(acc6, a[ab6 + k4], t[0], t[1], t[2], t[3]);
        acc7 = step4(acc7, a[ab7 + k4], t[0], t[1], t[2], t[3]);
        acc8 = step4(acc8, a[ab8 + k4], t[0], t[1], t[2], t[3]);
        acc9 = step4(acc9, a[ab9 + k4], t[0], t[1], t[2], t[3]);
        acc10 = step4(acc10, a[ab10 + k4], t[0], t[1], t[2], t[3]);
        acc11 = step4(acc11, a[ab11 + k4], t[0], t[1], t[2], t[3]);
        acc12 = step4(acc12, a[ab12 + k4], t[0], t[1], t[2], t[3]);
        acc13 = step4(acc13, a[ab13 + k4], t[0], t[1], t[2], t[3]);
        acc14 = step4(acc14, a[ab14 + k4], t[0], t[1], t[2], t[3]);
        acc15 = step4(acc15, a[ab15 + k4], t[0], t[1], t[2], t[3]);
    }
    store_abt4(r0 + 0u, n0, acc0);
    store_abt4(r0 + 1u, n0, acc1);
    store_abt4(r0 + 2u, n0, acc2);
    store_abt4(r0 + 3u, n0, acc3);
    store_abt4(r0 + 4u, n0, acc4);
    store_abt4(r0 + 5u, n0, acc5);
    store_abt4(r0 + 6u, n0, acc6);
    store_abt4(r0 + 7u, n0, acc7);
    store_abt4(r0 + 8u, n0, acc8);
    store_abt4(r0 + 9u, n0, acc9);
    store_abt4(r0 + 10u, n0, acc10);
    store_abt4(r0 + 11u, n0, acc11);
    store_abt4(r0 + 12u, n0, acc12);
    store_abt4(r0 + 13u, n0, acc13);
    store_abt4(r0 + 14u, n0, acc14);
    store_abt4(r0 + 15u, n0, acc15);
}
