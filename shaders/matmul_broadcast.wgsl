// The broadcast matmul family: C = op(A)·op(B) with the fused prologues and epilogues of the
// vector family (matmul_vector.wgsl), for CPU devices whose subgroups hold at least eight
// invocations (lavapipe). Every operand is read through texel fetches, and the sixteen rows
// of op(A) an invocation needs, the same for its whole subgroup, are fetched once per subgroup
// and handed to every lane by subgroupBroadcast. Prepended: texels.wgsl (`texel`),
// vector_params.wgsl, pixels.wgsl, activation_functions.wgsl, optim_functions.wgsl and
// bias_grad.wgsl.
//
// Why (measured on lavapipe, Mesa 22.3.6, AVX2, eight lanes per SIMD vector): llvmpipe
// compiles a storage-buffer or workgroup-memory load as a loop over the lanes with a bounds
// check per lane and component, ~6.5 ns per lane and component; a texel fetch is one gather,
// ~2.5 ns per lane for four values; a subgroupBroadcast is a register shuffle (free); an FMA on
// eight lanes ~0.2 ns. So the Rust side copies each operand's bytes into a "linear texel view"
// (texels.wgsl: texel i holds elements 4i..4i+3 of the row-major tensor): a copy command at
// memory speed, not a dispatch. Outputs go the other way round: a vec4 storage-buffer store
// costs ~5 ns per lane, a storage-texture store ~11, so C (and an updated parameter and its
// state) are stored into their tensors' buffers as vec4s. Per four values of k an invocation
// of A·B makes 4 fetches of op(B) (its own four columns) and its subgroup 2 of op(A) (lane l
// fetches rows l and 8 + l), for 256 FMAs per lane. The same loop over storage buffers
// (matmul_vector.wgsl) runs at ~1.7 GFLOP/s; this one at ~10–20.
//
// Every output is one fma chain over k = 0, 1, …, K−1 from 0, then + bias, + C when
// accumulating, then the activation: the operations of matmul_vector.wgsl (and so of
// matmul_blocked and matmul_tiled) in the same order, so every family gives the same bits.
//
// The k loops are unrolled and the accumulators named; the epilogues are not: the sixteen
// rows are stored by a loop over an array of them, so an epilogue's code (an optimiser
// update, an activation) appears once. Unrolled sixteen times, Adam's update made the
// weight-gradient kernel three times slower on lavapipe (its code no longer fits the
// instruction cache).
//
// Index safety: the Rust side builds this shader without wgpu's injected bounds checks
// (`Device::pipeline_unchecked`). Every coordinate is in bounds by construction: rows of op(A) and
// columns of op(B) past the edge are clamped to the last one, k stays below K, and C (like the
// parameter and state C is the gradient of, which have its shape) is written only for rows
// below M and columns below N. Other storage buffers are indexed as in matmul_vector.wgsl
// (columns below N, `order` within the batch).
//
// Entry points (a workgroup is one subgroup of LANES invocations along N; an invocation
// computes ROWS rows × 4 columns of C; invocations past the last column compute the last one
// again, as every lane must take part in the broadcasts, and store nothing):
//   matmul_broadcast_ab   C = A·B,  A [M, K] (or gathered pixels), B [K, N]; K, N multiples
//                         of 4. Epilogue: bias, accumulate, activation; WRITE_LABELS.
//   matmul_broadcast_atb  C = Aᵀ·B, A [K, M] (or gathered pixels), B [K, N]; M, N multiples
//                         of 4. Epilogue: accumulate; BIAS_GRAD (an extra row of workgroups
//                         writes the column sums of B); UPDATE_W / UPDATE_B.
//   matmul_broadcast_abt  C = A·Bᵀ, A [M, K], B [N, K]; K, N multiples of 4. Epilogue:
//                         accumulate, DACT.
// Dispatch: (ceil(N / 4 / LANES), ceil(M / ROWS) [+ 1 with BIAS_GRAD], 1).
//
// Bindings (group 0; each entry point uses the subset it mentions; textures are linear
// texel views):
//   0: a             texture              op(A) (unused with GATHER_A)
//   1: b             texture              op(B)
//   2: bias          storage, read        N values added to every row (HAS_BIAS)
//   3: c             storage, read_write  C as vec4s, written
//   4: p             uniform              VectorParams (vector_params.wgsl; one pass)
//   5: c_in          texture              C before (ACCUMULATE)
//   6: pixels        texture (u32)        a data set's bytes, four per texel (GATHER_A)
//   7: order         storage, read        the epoch's example order (GATHER_A)
//   8: ds_labels     storage, read        the data set's labels (WRITE_LABELS)
//   9: batch_labels  storage, read_write  the batch's labels (WRITE_LABELS)
//  10: bias_grad     storage, read_write  N column sums of B (BIAS_GRAD; bias_grad.wgsl)
//  11–13: w_in, w_state1_in, w_state2_in          the parameter C is the gradient of, and
//  17–19: w_out, w_state1_out, w_state2_out       its state, before (texel views) and after
//                                                 (the tensors, storage vec4s) (UPDATE_W)
//  14–16: b_param, b_state1, b_state2             the bias bias_grad is the gradient of
//                                                 (bias_grad.wgsl)
//  22: saved         texture              M×N activation output (DACT)
//  20, 21: the activation's (activation_functions.wgsl); 30: the optimiser's (optim_functions.wgsl)

override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override GATHER_A: bool = false;
override WRITE_LABELS: bool = false;
override DACT: bool = false;
override BIAS_GRAD: bool = false;
override UPDATE_W: bool = false;
override UPDATE_B: bool = false;
// Invocations per workgroup: one subgroup (the host requires subgroups of at least 8).
const LANES: u32 = 8u;
// Rows of C per invocation: two fetches of op(A) per subgroup, one per eight rows.
const ROWS: u32 = 16u;
// Rows per block of the reduce family's sums (reduce.rs BLOCK), for the bias gradient.
const REDUCE_BLOCK: u32 = 1024u;

@group(0) @binding(0) var a: texture_2d<f32>;
@group(0) @binding(1) var b: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(5) var c_in: texture_2d<f32>;
@group(0) @binding(6) var pixels: texture_2d<u32>;
@group(0) @binding(7) var<storage, read> order: array<u32>;
@group(0) @binding(8) var<storage, read> ds_labels: array<u32>;
@group(0) @binding(9) var<storage, read_write> batch_labels: array<u32>;
@group(0) @binding(11) var w_in: texture_2d<f32>;
@group(0) @binding(12) var w_state1_in: texture_2d<f32>;
@group(0) @binding(13) var w_state2_in: texture_2d<f32>;
@group(0) @binding(17) var<storage, read_write> w_out: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> w_state1_out: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read_write> w_state2_out: array<vec4<f32>>;
@group(0) @binding(22) var saved: texture_2d<f32>;

// acc + a.x·b0 + a.y·b1 + a.z·b2 + a.w·b3, as four fmas in k order.
fn step4(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2, fma(vec4<f32>(av.y), b1, fma(vec4<f32>(av.x), b0, acc))));
}

// Where stored row `r` of A starts (`texels` per row): in texels of `a`, or, gathered, in
// texels of `pixels` through the epoch's order.
fn a_base(r: u32, texels: u32) -> u32 {
    if GATHER_A {
        return order[p.offset + r] * p.example_words;
    }
    return r * texels;
}

// Four values of A from a row base of `a_base`: fetched, or gathered and normalised from bytes.
fn load_a(base: u32, i: u32) -> vec4<f32> {
    if GATHER_A {
        return normalize_word(textureLoad(pixels, texel(base + i), 0).x, p.scale, p.shift);
    }
    return textureLoad(a, texel(base + i), 0);
}

// ---------------------------------------------------------------------------------------------
// matmul_broadcast_ab

// The epilogue of row `row`, columns 4·c4..4·c4+3: bias, accumulate, activation, stored in C.
fn store_ab(row: u32, c4: u32, v: vec4<f32>, bias4: vec4<f32>) {
    if row >= p.m {
        return;
    }
    let i = row * (p.n / 4u) + c4;
    var out = v;
    if HAS_BIAS {
        out += bias4;
    }
    if ACCUMULATE {
        out += textureLoad(c_in, texel(i), 0);
    }
    let e = 4u * i;
    out = vec4<f32>(act_value(out.x, e), act_value(out.y, e + 1u), act_value(out.z, e + 2u), act_value(out.w, e + 3u));
    c[i] = out;
}

@compute @workgroup_size(8)
fn matmul_broadcast_ab(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n4 = p.n / 4u;
    let c4_unclamped = wg.x * LANES + lid.x;
    let c4 = min(c4_unclamped, n4 - 1u);
    let r0 = wg.y * ROWS;
    if WRITE_LABELS && c4_unclamped == 0u {
        for (var i = 0u; i < ROWS; i += 1u) {
            let row = r0 + i;
            if row < p.m {
                batch_labels[row] = ds_labels[order[p.offset + row]];
            }
        }
    }
    // This lane's rows of op(A): r0 + lane and r0 + 8 + lane (past the edge: the last row).
    let base0 = a_base(min(r0 + lane, p.m - 1u), p.k / 4u);
    let base1 = a_base(min(r0 + 8u + lane, p.m - 1u), p.k / 4u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < p.k / 4u; k4 += 1u) {
        let kb = 4u * k4 * n4 + c4;
        let b0 = textureLoad(b, texel(kb), 0);
        let b1 = textureLoad(b, texel(kb + n4), 0);
        let b2 = textureLoad(b, texel(kb + 2u * n4), 0);
        let b3 = textureLoad(b, texel(kb + 3u * n4), 0);
        let am0 = load_a(base0, k4);
        let am1 = load_a(base1, k4);
        acc0 = step4(acc0, subgroupBroadcast(am0, 0u), b0, b1, b2, b3);
        acc1 = step4(acc1, subgroupBroadcast(am0, 1u), b0, b1, b2, b3);
        acc2 = step4(acc2, subgroupBroadcast(am0, 2u), b0, b1, b2, b3);
        acc3 = step4(acc3, subgroupBroadcast(am0, 3u), b0, b1, b2, b3);
        acc4 = step4(acc4, subgroupBroadcast(am0, 4u), b0, b1, b2, b3);
        acc5 = step4(acc5, subgroupBroadcast(am0, 5u), b0, b1, b2, b3);
        acc6 = step4(acc6, subgroupBroadcast(am0, 6u), b0, b1, b2, b3);
        acc7 = step4(acc7, subgroupBroadcast(am0, 7u), b0, b1, b2, b3);
        acc8 = step4(acc8, subgroupBroadcast(am1, 0u), b0, b1, b2, b3);
        acc9 = step4(acc9, subgroupBroadcast(am1, 1u), b0, b1, b2, b3);
        acc10 = step4(acc10, subgroupBroadcast(am1, 2u), b0, b1, b2, b3);
        acc11 = step4(acc11, subgroupBroadcast(am1, 3u), b0, b1, b2, b3);
        acc12 = step4(acc12, subgroupBroadcast(am1, 4u), b0, b1, b2, b3);
        acc13 = step4(acc13, subgroupBroadcast(am1, 5u), b0, b1, b2, b3);
        acc14 = step4(acc14, subgroupBroadcast(am1, 6u), b0, b1, b2, b3);
        acc15 = step4(acc15, subgroupBroadcast(am1, 7u), b0, b1, b2, b3);
    }
    if c4_unclamped >= n4 {
        return;
    }
    var bias4 = vec4<f32>(0.0);
    if HAS_BIAS {
        let col = 4u * c4;
        bias4 = vec4<f32>(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
    }
    var rows = array<vec4<f32>, ROWS>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, acc8, acc9, acc10, acc11, acc12, acc13, acc14, acc15);
    for (var r = 0u; r < ROWS; r += 1u) {
        store_ab(r0 + r, c4, rows[r], bias4);
    }
}

// ---------------------------------------------------------------------------------------------
// matmul_broadcast_atb

// Row `row`, columns 4·c4..4·c4+3 of the gradient C (+ C when accumulating), written to C;
// UPDATE_W also steps the parameter it is the gradient of.
fn store_atb(row: u32, c4: u32, v: vec4<f32>) {
    if row >= p.m {
        return;
    }
    let i = row * (p.n / 4u) + c4;
    var g = v;
    if ACCUMULATE {
        g += textureLoad(c_in, texel(i), 0);
    }
    c[i] = g;
    if UPDATE_W {
        let w = textureLoad(w_in, texel(i), 0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        if optim_uses_state1() {
            s1 = textureLoad(w_state1_in, texel(i), 0);
        }
        if optim_uses_state2() {
            s2 = textureLoad(w_state2_in, texel(i), 0);
        }
        let u0 = optim_update(w.x, g.x, s1.x, s2.x);
        let u1 = optim_update(w.y, g.y, s1.y, s2.y);
        let u2 = optim_update(w.z, g.z, s1.z, s2.z);
        let u3 = optim_update(w.w, g.w, s1.w, s2.w);
        w_out[i] = vec4<f32>(u0.x, u1.x, u2.x, u3.x);
        if optim_uses_state1() {
            w_state1_out[i] = vec4<f32>(u0.y, u1.y, u2.y, u3.y);
        }
        if optim_uses_state2() {
            w_state2_out[i] = vec4<f32>(u0.z, u1.z, u2.z, u3.z);
        }
    }
}

@compute @workgroup_size(8)
fn matmul_broadcast_atb(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n4 = p.n / 4u;
    let c4_unclamped = wg.x * LANES + lid.x;
    let c4 = min(c4_unclamped, n4 - 1u);
    if BIAS_GRAD && wg.y == p.row_blocks {
        if c4_unclamped >= n4 {
            return;
        }
        // Column sums of B with the reduce family's additions (reduce.wgsl and reduce.rs): sums
        // of blocks of REDUCE_BLOCK rows, then those in order (one level: K ≤ the host's pass
        // length).
        var s = vec4<f32>(0.0);
        var k0 = 0u;
        while k0 < p.k {
            let k1 = min(k0 + REDUCE_BLOCK, p.k);
            var t = vec4<f32>(0.0);
            for (var k = k0; k < k1; k += 1u) {
                t += textureLoad(b, texel(k * n4 + c4), 0);
            }
            s += t;
            k0 = k1;
        }
        let col = 4u * c4;
        store_bias_grad(col, s.x);
        store_bias_grad(col + 1u, s.y);
        store_bias_grad(col + 2u, s.z);
        store_bias_grad(col + 3u, s.w);
        return;
    }
    let m0 = wg.y * ROWS;
    // The sixteen rows' values at one k are four texels of stored row k of A: lane l fetches
    // texel l mod 4 at k + l / 4, so one fetch per lane covers two values of k (lanes 0–3 the
    // first, 4–7 the second).
    let m4 = min(m0 / 4u + (lane & 3u), p.m / 4u - 1u);
    let second = lane >> 2u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    // Eight values of k per iteration: lane l finds where stored row k + l of A starts (for a
    // gathered A, a lookup in the epoch's order) once, and subgroupShuffle hands each lane the
    // rows it fetches.
    var k = 0u;
    for (; k + 8u <= p.k; k += 8u) {
        let row_base = a_base(k + lane, p.m / 4u);
        // k + 0 (lanes 0–3) and k + 1 (lanes 4–7).
        let am0 = load_a(subgroupShuffle(row_base, 0u + second), m4);
        let b0 = textureLoad(b, texel((k + 0u) * n4 + c4), 0);
        let b1 = textureLoad(b, texel((k + 1u) * n4 + c4), 0);
        let a0_0 = subgroupBroadcast(am0, 0u);
        let a0_1 = subgroupBroadcast(am0, 1u);
        let a0_2 = subgroupBroadcast(am0, 2u);
        let a0_3 = subgroupBroadcast(am0, 3u);
        acc0 = fma(vec4<f32>(a0_0.x), b0, acc0);
        acc1 = fma(vec4<f32>(a0_0.y), b0, acc1);
        acc2 = fma(vec4<f32>(a0_0.z), b0, acc2);
        acc3 = fma(vec4<f32>(a0_0.w), b0, acc3);
        acc4 = fma(vec4<f32>(a0_1.x), b0, acc4);
        acc5 = fma(vec4<f32>(a0_1.y), b0, acc5);
        acc6 = fma(vec4<f32>(a0_1.z), b0, acc6);
        acc7 = fma(vec4<f32>(a0_1.w), b0, acc7);
        acc8 = fma(vec4<f32>(a0_2.x), b0, acc8);
        acc9 = fma(vec4<f32>(a0_2.y), b0, acc9);
        acc10 = fma(vec4<f32>(a0_2.z), b0, acc10);
        acc11 = fma(vec4<f32>(a0_2.w), b0, acc11);
        acc12 = fma(vec4<f32>(a0_3.x), b0, acc12);
        acc13 = fma(vec4<f32>(a0_3.y), b0, acc13);
        acc14 = fma(vec4<f32>(a0_3.z), b0, acc14);
        acc15 = fma(vec4<f32>(a0_3.w), b0, acc15);
        let a1_0 = subgroupBroadcast(am0, 4u);
        let a1_1 = subgroupBroadcast(am0, 5u);
        let a1_2 = subgroupBroadcast(am0, 6u);
        let a1_3 = subgroupBroadcast(am0, 7u);
        acc0 = fma(vec4<f32>(a1_0.x), b1, acc0);
        acc1 = fma(vec4<f32>(a1_0.y), b1, acc1);
        acc2 = fma(vec4<f32>(a1_0.z), b1, acc2);
        acc3 = fma(vec4<f32>(a1_0.w), b1, acc3);
        acc4 = fma(vec4<f32>(a1_1.x), b1, acc4);
        acc5 = fma(vec4<f32>(a1_1.y), b1, acc5);
        acc6 = fma(vec4<f32>(a1_1.z), b1, acc6);
        acc7 = fma(vec4<f32>(a1_1.w), b1, acc7);
        acc8 = fma(vec4<f32>(a1_2.x), b1, acc8);
        acc9 = fma(vec4<f32>(a1_2.y), b1, acc9);
        acc10 = fma(vec4<f32>(a1_2.z), b1, acc10);
        acc11 = fma(vec4<f32>(a1_2.w), b1, acc11);
        acc12 = fma(vec4<f32>(a1_3.x), b1, acc12);
        acc13 = fma(vec4<f32>(a1_3.y), b1, acc13);
        acc14 = fma(vec4<f32>(a1_3.z), b1, acc14);
        acc15 = fma(vec4<f32>(a1_3.w), b1, acc15);
        // k + 2 (lanes 0–3) and k + 3 (lanes 4–7).
        let am1 = load_a(subgroupShuffle(row_base, 2u + second), m4);
        let b2 = textureLoad(b, texel((k + 2u) * n4 + c4), 0);
        let b3 = textureLoad(b, texel((k + 3u) * n4 + c4), 0);
        let a2_0 = subgroupBroadcast(am1, 0u);
        let a2_1 = subgroupBroadcast(am1, 1u);
        let a2_2 = subgroupBroadcast(am1, 2u);
        let a2_3 = subgroupBroadcast(am1, 3u);
        acc0 = fma(vec4<f32>(a2_0.x), b2, acc0);
        acc1 = fma(vec4<f32>(a2_0.y), b2, acc1);
        acc2 = fma(vec4<f32>(a2_0.z), b2, acc2);
        acc3 = fma(vec4<f32>(a2_0.w), b2, acc3);
        acc4 = fma(vec4<f32>(a2_1.x), b2, acc4);
        acc5 = fma(vec4<f32>(a2_1.y), b2, acc5);
        acc6 = fma(vec4<f32>(a2_1.z), b2, acc6);
        acc7 = fma(vec4<f32>(a2_1.w), b2, acc7);
        acc8 = fma(vec4<f32>(a2_2.x), b2, acc8);
        acc9 = fma(vec4<f32>(a2_2.y), b2, acc9);
        acc10 = fma(vec4<f32>(a2_2.z), b2, acc10);
        acc11 = fma(vec4<f32>(a2_2.w), b2, acc11);
        acc12 = fma(vec4<f32>(a2_3.x), b2, acc12);
        acc13 = fma(vec4<f32>(a2_3.y), b2, acc13);
        acc14 = fma(vec4<f32>(a2_3.z), b2, acc14);
        acc15 = fma(vec4<f32>(a2_3.w), b2, acc15);
        let a3_0 = subgroupBroadcast(am1, 4u);
        let a3_1 = subgroupBroadcast(am1, 5u);
        let a3_2 = subgroupBroadcast(am1, 6u);
        let a3_3 = subgroupBroadcast(am1, 7u);
        acc0 = fma(vec4<f32>(a3_0.x), b3, acc0);
        acc1 = fma(vec4<f32>(a3_0.y), b3, acc1);
        acc2 = fma(vec4<f32>(a3_0.z), b3, acc2);
        acc3 = fma(vec4<f32>(a3_0.w), b3, acc3);
        acc4 = fma(vec4<f32>(a3_1.x), b3, acc4);
        acc5 = fma(vec4<f32>(a3_1.y), b3, acc5);
        acc6 = fma(vec4<f32>(a3_1.z), b3, acc6);
        acc7 = fma(vec4<f32>(a3_1.w), b3, acc7);
        acc8 = fma(vec4<f32>(a3_2.x), b3, acc8);
        acc9 = fma(vec4<f32>(a3_2.y), b3, acc9);
        acc10 = fma(vec4<f32>(a3_2.z), b3, acc10);
        acc11 = fma(vec4<f32>(a3_2.w), b3, acc11);
        acc12 = fma(vec4<f32>(a3_3.x), b3, acc12);
        acc13 = fma(vec4<f32>(a3_3.y), b3, acc13);
        acc14 = fma(vec4<f32>(a3_3.z), b3, acc14);
        acc15 = fma(vec4<f32>(a3_3.w), b3, acc15);
        // k + 4 (lanes 0–3) and k + 5 (lanes 4–7).
        let am2 = load_a(subgroupShuffle(row_base, 4u + second), m4);
        let b4 = textureLoad(b, texel((k + 4u) * n4 + c4), 0);
        let b5 = textureLoad(b, texel((k + 5u) * n4 + c4), 0);
        let a4_0 = subgroupBroadcast(am2, 0u);
        let a4_1 = subgroupBroadcast(am2, 1u);
        let a4_2 = subgroupBroadcast(am2, 2u);
        let a4_3 = subgroupBroadcast(am2, 3u);
        acc0 = fma(vec4<f32>(a4_0.x), b4, acc0);
        acc1 = fma(vec4<f32>(a4_0.y), b4, acc1);
        acc2 = fma(vec4<f32>(a4_0.z), b4, acc2);
        acc3 = fma(vec4<f32>(a4_0.w), b4, acc3);
        acc4 = fma(vec4<f32>(a4_1.x), b4, acc4);
        acc5 = fma(vec4<f32>(a4_1.y), b4, acc5);
        acc6 = fma(vec4<f32>(a4_1.z), b4, acc6);
        acc7 = fma(vec4<f32>(a4_1.w), b4, acc7);
        acc8 = fma(vec4<f32>(a4_2.x), b4, acc8);
        acc9 = fma(vec4<f32>(a4_2.y), b4, acc9);
        acc10 = fma(vec4<f32>(a4_2.z), b4, acc10);
        acc11 = fma(vec4<f32>(a4_2.w), b4, acc11);
        acc12 = fma(vec4<f32>(a4_3.x), b4, acc12);
        acc13 = fma(vec4<f32>(a4_3.y), b4, acc13);
        acc14 = fma(vec4<f32>(a4_3.z), b4, acc14);
        acc15 = fma(vec4<f32>(a4_3.w), b4, acc15);
        let a5_0 = subgroupBroadcast(am2, 4u);
        let a5_1 = subgroupBroadcast(am2, 5u);
        let a5_2 = subgroupBroadcast(am2, 6u);
        let a5_3 = subgroupBroadcast(am2, 7u);
        acc0 = fma(vec4<f32>(a5_0.x), b5, acc0);
        acc1 = fma(vec4<f32>(a5_0.y), b5, acc1);
        acc2 = fma(vec4<f32>(a5_0.z), b5, acc2);
        acc3 = fma(vec4<f32>(a5_0.w), b5, acc3);
        acc4 = fma(vec4<f32>(a5_1.x), b5, acc4);
        acc5 = fma(vec4<f32>(a5_1.y), b5, acc5);
        acc6 = fma(vec4<f32>(a5_1.z), b5, acc6);
        acc7 = fma(vec4<f32>(a5_1.w), b5, acc7);
        acc8 = fma(vec4<f32>(a5_2.x), b5, acc8);
        acc9 = fma(vec4<f32>(a5_2.y), b5, acc9);
        acc10 = fma(vec4<f32>(a5_2.z), b5, acc10);
        acc11 = fma(vec4<f32>(a5_2.w), b5, acc11);
        acc12 = fma(vec4<f32>(a5_3.x), b5, acc12);
        acc13 = fma(vec4<f32>(a5_3.y), b5, acc13);
        acc14 = fma(vec4<f32>(a5_3.z), b5, acc14);
        acc15 = fma(vec4<f32>(a5_3.w), b5, acc15);
        // k + 6 (lanes 0–3) and k + 7 (lanes 4–7).
        let am3 = load_a(subgroupShuffle(row_base, 6u + second), m4);
        let b6 = textureLoad(b, texel((k + 6u) * n4 + c4), 0);
        let b7 = textureLoad(b, texel((k + 7u) * n4 + c4), 0);
        let a6_0 = subgroupBroadcast(am3, 0u);
        let a6_1 = subgroupBroadcast(am3, 1u);
        let a6_2 = subgroupBroadcast(am3, 2u);
        let a6_3 = subgroupBroadcast(am3, 3u);
        acc0 = fma(vec4<f32>(a6_0.x), b6, acc0);
        acc1 = fma(vec4<f32>(a6_0.y), b6, acc1);
        acc2 = fma(vec4<f32>(a6_0.z), b6, acc2);
        acc3 = fma(vec4<f32>(a6_0.w), b6, acc3);
        acc4 = fma(vec4<f32>(a6_1.x), b6, acc4);
        acc5 = fma(vec4<f32>(a6_1.y), b6, acc5);
        acc6 = fma(vec4<f32>(a6_1.z), b6, acc6);
        acc7 = fma(vec4<f32>(a6_1.w), b6, acc7);
        acc8 = fma(vec4<f32>(a6_2.x), b6, acc8);
        acc9 = fma(vec4<f32>(a6_2.y), b6, acc9);
        acc10 = fma(vec4<f32>(a6_2.z), b6, acc10);
        acc11 = fma(vec4<f32>(a6_2.w), b6, acc11);
        acc12 = fma(vec4<f32>(a6_3.x), b6, acc12);
        acc13 = fma(vec4<f32>(a6_3.y), b6, acc13);
        acc14 = fma(vec4<f32>(a6_3.z), b6, acc14);
        acc15 = fma(vec4<f32>(a6_3.w), b6, acc15);
        let a7_0 = subgroupBroadcast(am3, 4u);
        let a7_1 = subgroupBroadcast(am3, 5u);
        let a7_2 = subgroupBroadcast(am3, 6u);
        let a7_3 = subgroupBroadcast(am3, 7u);
        acc0 = fma(vec4<f32>(a7_0.x), b7, acc0);
        acc1 = fma(vec4<f32>(a7_0.y), b7, acc1);
        acc2 = fma(vec4<f32>(a7_0.z), b7, acc2);
        acc3 = fma(vec4<f32>(a7_0.w), b7, acc3);
        acc4 = fma(vec4<f32>(a7_1.x), b7, acc4);
        acc5 = fma(vec4<f32>(a7_1.y), b7, acc5);
        acc6 = fma(vec4<f32>(a7_1.z), b7, acc6);
        acc7 = fma(vec4<f32>(a7_1.w), b7, acc7);
        acc8 = fma(vec4<f32>(a7_2.x), b7, acc8);
        acc9 = fma(vec4<f32>(a7_2.y), b7, acc9);
        acc10 = fma(vec4<f32>(a7_2.z), b7, acc10);
        acc11 = fma(vec4<f32>(a7_2.w), b7, acc11);
        acc12 = fma(vec4<f32>(a7_3.x), b7, acc12);
        acc13 = fma(vec4<f32>(a7_3.y), b7, acc13);
        acc14 = fma(vec4<f32>(a7_3.z), b7, acc14);
        acc15 = fma(vec4<f32>(a7_3.w), b7, acc15);
    }
    // The pairs left (fewer than four), then an odd last k.
    for (; k + 1u < p.k; k += 2u) {
        let am = load_a(a_base(k + second, p.m / 4u), m4);
        let b0 = textureLoad(b, texel(k * n4 + c4), 0);
        let b1 = textureLoad(b, texel((k + 1u) * n4 + c4), 0);
        let a0_0 = subgroupBroadcast(am, 0u);
        let a0_1 = subgroupBroadcast(am, 1u);
        let a0_2 = subgroupBroadcast(am, 2u);
        let a0_3 = subgroupBroadcast(am, 3u);
        acc0 = fma(vec4<f32>(a0_0.x), b0, acc0);
        acc1 = fma(vec4<f32>(a0_0.y), b0, acc1);
        acc2 = fma(vec4<f32>(a0_0.z), b0, acc2);
        acc3 = fma(vec4<f32>(a0_0.w), b0, acc3);
        acc4 = fma(vec4<f32>(a0_1.x), b0, acc4);
        acc5 = fma(vec4<f32>(a0_1.y), b0, acc5);
        acc6 = fma(vec4<f32>(a0_1.z), b0, acc6);
        acc7 = fma(vec4<f32>(a0_1.w), b0, acc7);
        acc8 = fma(vec4<f32>(a0_2.x), b0, acc8);
        acc9 = fma(vec4<f32>(a0_2.y), b0, acc9);
        acc10 = fma(vec4<f32>(a0_2.z), b0, acc10);
        acc11 = fma(vec4<f32>(a0_2.w), b0, acc11);
        acc12 = fma(vec4<f32>(a0_3.x), b0, acc12);
        acc13 = fma(vec4<f32>(a0_3.y), b0, acc13);
        acc14 = fma(vec4<f32>(a0_3.z), b0, acc14);
        acc15 = fma(vec4<f32>(a0_3.w), b0, acc15);
        let a1_0 = subgroupBroadcast(am, 4u);
        let a1_1 = subgroupBroadcast(am, 5u);
        let a1_2 = subgroupBroadcast(am, 6u);
        let a1_3 = subgroupBroadcast(am, 7u);
        acc0 = fma(vec4<f32>(a1_0.x), b1, acc0);
        acc1 = fma(vec4<f32>(a1_0.y), b1, acc1);
        acc2 = fma(vec4<f32>(a1_0.z), b1, acc2);
        acc3 = fma(vec4<f32>(a1_0.w), b1, acc3);
        acc4 = fma(vec4<f32>(a1_1.x), b1, acc4);
        acc5 = fma(vec4<f32>(a1_1.y), b1, acc5);
        acc6 = fma(vec4<f32>(a1_1.z), b1, acc6);
        acc7 = fma(vec4<f32>(a1_1.w), b1, acc7);
        acc8 = fma(vec4<f32>(a1_2.x), b1, acc8);
        acc9 = fma(vec4<f32>(a1_2.y), b1, acc9);
        acc10 = fma(vec4<f32>(a1_2.z), b1, acc10);
        acc11 = fma(vec4<f32>(a1_2.w), b1, acc11);
        acc12 = fma(vec4<f32>(a1_3.x), b1, acc12);
        acc13 = fma(vec4<f32>(a1_3.y), b1, acc13);
        acc14 = fma(vec4<f32>(a1_3.z), b1, acc14);
        acc15 = fma(vec4<f32>(a1_3.w), b1, acc15);
    }
    if p.k % 2u == 1u {
        // The last value of k, fetched by every lane.
        let k = p.k - 1u;
        let am = load_a(a_base(k, p.m / 4u), m4);
        let b0 = textureLoad(b, texel(k * n4 + c4), 0);
        let a0_0 = subgroupBroadcast(am, 0u);
        let a0_1 = subgroupBroadcast(am, 1u);
        let a0_2 = subgroupBroadcast(am, 2u);
        let a0_3 = subgroupBroadcast(am, 3u);
        acc0 = fma(vec4<f32>(a0_0.x), b0, acc0);
        acc1 = fma(vec4<f32>(a0_0.y), b0, acc1);
        acc2 = fma(vec4<f32>(a0_0.z), b0, acc2);
        acc3 = fma(vec4<f32>(a0_0.w), b0, acc3);
        acc4 = fma(vec4<f32>(a0_1.x), b0, acc4);
        acc5 = fma(vec4<f32>(a0_1.y), b0, acc5);
        acc6 = fma(vec4<f32>(a0_1.z), b0, acc6);
        acc7 = fma(vec4<f32>(a0_1.w), b0, acc7);
        acc8 = fma(vec4<f32>(a0_2.x), b0, acc8);
        acc9 = fma(vec4<f32>(a0_2.y), b0, acc9);
        acc10 = fma(vec4<f32>(a0_2.z), b0, acc10);
        acc11 = fma(vec4<f32>(a0_2.w), b0, acc11);
        acc12 = fma(vec4<f32>(a0_3.x), b0, acc12);
        acc13 = fma(vec4<f32>(a0_3.y), b0, acc13);
        acc14 = fma(vec4<f32>(a0_3.z), b0, acc14);
        acc15 = fma(vec4<f32>(a0_3.w), b0, acc15);
    }
    if c4_unclamped >= n4 {
        return;
    }
    var rows = array<vec4<f32>, ROWS>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, acc8, acc9, acc10, acc11, acc12, acc13, acc14, acc15);
    for (var r = 0u; r < ROWS; r += 1u) {
        store_atb(m0 + r, c4, rows[r]);
    }
}

// ---------------------------------------------------------------------------------------------
// matmul_broadcast_abt

// Row `row`, columns 4·c4..4·c4+3 of C (+ C when accumulating), times the derivative of the
// activation whose output is `saved` (DACT), written to C.
fn store_abt(row: u32, c4: u32, v: vec4<f32>) {
    if row >= p.m {
        return;
    }
    let i = row * (p.n / 4u) + c4;
    var out = v;
    if ACCUMULATE {
        out += textureLoad(c_in, texel(i), 0);
    }
    if DACT {
        let y = textureLoad(saved, texel(i), 0);
        out = out * vec4<f32>(act_grad_from_output(y.x), act_grad_from_output(y.y), act_grad_from_output(y.z), act_grad_from_output(y.w));
    }
    c[i] = out;
}

@compute @workgroup_size(8)
fn matmul_broadcast_abt(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n4 = p.n / 4u;
    let c4_unclamped = wg.x * LANES + lid.x;
    let c4 = min(c4_unclamped, n4 - 1u);
    let r0 = wg.y * ROWS;
    let k4n = p.k / 4u;
    let base0 = min(r0 + lane, p.m - 1u) * k4n;
    let base1 = min(r0 + 8u + lane, p.m - 1u) * k4n;
    // Stored rows 4·c4..4·c4+3 of B are this invocation's four columns of op(B).
    let bb = 4u * c4 * k4n;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < k4n; k4 += 1u) {
        // Columns of t are the four k values of the four output columns.
        let t = transpose(mat4x4<f32>(
            textureLoad(b, texel(bb + k4), 0),
            textureLoad(b, texel(bb + k4n + k4), 0),
            textureLoad(b, texel(bb + 2u * k4n + k4), 0),
            textureLoad(b, texel(bb + 3u * k4n + k4), 0),
        ));
        let am0 = textureLoad(a, texel(base0 + k4), 0);
        let am1 = textureLoad(a, texel(base1 + k4), 0);
        acc0 = step4(acc0, subgroupBroadcast(am0, 0u), t[0], t[1], t[2], t[3]);
        acc1 = step4(acc1, subgroupBroadcast(am0, 1u), t[0], t[1], t[2], t[3]);
        acc2 = step4(acc2, subgroupBroadcast(am0, 2u), t[0], t[1], t[2], t[3]);
        acc3 = step4(acc3, subgroupBroadcast(am0, 3u), t[0], t[1], t[2], t[3]);
        acc4 = step4(acc4, subgroupBroadcast(am0, 4u), t[0], t[1], t[2], t[3]);
        acc5 = step4(acc5, subgroupBroadcast(am0, 5u), t[0], t[1], t[2], t[3]);
        acc6 = step4(acc6, subgroupBroadcast(am0, 6u), t[0], t[1], t[2], t[3]);
        acc7 = step4(acc7, subgroupBroadcast(am0, 7u), t[0], t[1], t[2], t[3]);
        acc8 = step4(acc8, subgroupBroadcast(am1, 0u), t[0], t[1], t[2], t[3]);
        acc9 = step4(acc9, subgroupBroadcast(am1, 1u), t[0], t[1], t[2], t[3]);
        acc10 = step4(acc10, subgroupBroadcast(am1, 2u), t[0], t[1], t[2], t[3]);
        acc11 = step4(acc11, subgroupBroadcast(am1, 3u), t[0], t[1], t[2], t[3]);
        acc12 = step4(acc12, subgroupBroadcast(am1, 4u), t[0], t[1], t[2], t[3]);
        acc13 = step4(acc13, subgroupBroadcast(am1, 5u), t[0], t[1], t[2], t[3]);
        acc14 = step4(acc14, subgroupBroadcast(am1, 6u), t[0], t[1], t[2], t[3]);
        acc15 = step4(acc15, subgroupBroadcast(am1, 7u), t[0], t[1], t[2], t[3]);
    }
    if c4_unclamped >= n4 {
        return;
    }
    var rows = array<vec4<f32>, ROWS>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, acc8, acc9, acc10, acc11, acc12, acc13, acc14, acc15);
    for (var r = 0u; r < ROWS; r += 1u) {
        store_abt(r0 + r, c4, rows[r]);
    }
}
