// The vector matmul family: C = op(A)·op(B) with operands read as vec4 and sixteen named vec4
// accumulators per invocation, plus the epilogues and prologues that let a captured training
// step fuse its kernels (see src/capture/fuse.rs). Prepended: grid-free helpers from
// vector_params.wgsl, pixels.wgsl, activation_functions.wgsl, optim_functions.wgsl and
// bias_grad.wgsl.
//
// Why this shape: private arrays indexed in a loop live in memory on llvmpipe, so the
// accumulators are sixteen separately named vec4s; each vec4 load moves four values per lane.
// Measured on lavapipe (Mesa 22.3.6) it still runs at ~1.6 GFLOP/s, like matmul_blocked: there
// every storage-buffer load is a loop over the SIMD lanes, ~6.5 ns per lane and value, and
// this loop makes 20 of them (vec4s) per 256 FMAs. matmul_broadcast.wgsl is this blocking over
// texel fetches (~12–20 GFLOP/s); this family serves CPU devices without subgroups of 8.
//
// Every output is one fma chain over k = 0, 1, …, K−1 starting from 0, then + bias, + C when
// accumulating, then the activation: the same operations in the same order as matmul_blocked
// and matmul_tiled, so all three give the same bits (eager autograd and a fused captured step
// agree exactly).
//
// Passes over k, as in matmul.wgsl: lavapipe stops an invocation's loops once it has run 65535
// loop iterations in all, so a long K is covered by several dispatches over k in
// [p.k_begin, p.k_end), each continuing every accumulator from `partial` (stored and reloaded
// exactly: still one fma chain); only the last pass (k_end = K) runs the epilogue. The bias
// gradient (BIAS_GRAD) runs in a single pass only (K ≤ the host's pass length).
//
// Entry points (one invocation computes 16 rows × 4 columns of C):
//   matmul_vector_ab   C = A·B,  A [M, K] (or gathered pixels), B [K, N]; K, N multiples of 4.
//                      Epilogue: bias, accumulate, activation; with GATHER_A and WRITE_LABELS
//                      it also writes the batch's labels.
//   matmul_vector_atb  C = Aᵀ·B, A [K, M] (or gathered pixels), B [K, N]; M, N multiples of 4.
//                      Epilogue: accumulate; BIAS_GRAD adds a row of workgroups that writes the
//                      column sums of B (a bias gradient); UPDATE_W / UPDATE_B apply the
//                      optimiser to the parameters whose gradients these are.
//   matmul_vector_abt  C = A·Bᵀ, A [M, K], B [N, K]; K a multiple of 4. Epilogue: accumulate,
//                      DACT multiplies by the derivative of the activation whose output is
//                      `saved` (the input gradient of the layer below, fused).
// Dispatch: (ceil(ceil(N / 4) / VEC_WG), ceil(M / 16) [+ 1 with BIAS_GRAD], 1).
//
// Bindings (group 0; each entry point uses the subset it mentions):
//   0: a             storage, read        op(A) as vec4 (unused with GATHER_A)
//   1: b             storage, read        op(B) as vec4
//   2: bias          storage, read        N values added to every row (HAS_BIAS)
//   3: c             storage, read_write  M×N output (also read when ACCUMULATE)
//   4: p             uniform              VectorParams (vector_params.wgsl)
//   5: saved         storage, read        M×N activation output (DACT)
//   6: pixels        storage, read        a data set's bytes, four per u32 (GATHER_A)
//   7: order         storage, read        the epoch's example order (GATHER_A)
//   8: ds_labels     storage, read        the data set's labels (WRITE_LABELS)
//   9: batch_labels  storage, read_write  the batch's labels (WRITE_LABELS)
//  10: bias_grad     storage, read_write  N column sums of B (BIAS_GRAD; bias_grad.wgsl)
//  11–13: w_param, w_state1, w_state2     the parameter C is the gradient of, and its state
//  14–16: b_param, b_state1, b_state2     the parameter bias_grad is the gradient of (bias_grad.wgsl)
//  17: partial       storage, read_write  M×N accumulators between passes (unused with one pass)
//  20, 21: the activation's (activation_functions.wgsl); 30: the optimiser's (optim_functions.wgsl)

override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override GATHER_A: bool = false;
override WRITE_LABELS: bool = false;
override DACT: bool = false;
override BIAS_GRAD: bool = false;
override UPDATE_W: bool = false;
override UPDATE_B: bool = false;
override VEC_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> saved: array<f32>;
@group(0) @binding(6) var<storage, read> pixels: array<u32>;
@group(0) @binding(7) var<storage, read> order: array<u32>;
@group(0) @binding(8) var<storage, read> ds_labels: array<u32>;
@group(0) @binding(9) var<storage, read_write> batch_labels: array<u32>;
@group(0) @binding(11) var<storage, read_write> w_param: array<f32>;
@group(0) @binding(12) var<storage, read_write> w_state1: array<f32>;
@group(0) @binding(13) var<storage, read_write> w_state2: array<f32>;
@group(0) @binding(17) var<storage, read_write> partial: array<f32>;

// Rows per block of the reduce family's sums (reduce.rs BLOCK), for the bias gradient.
const REDUCE_BLOCK: u32 = 1024u;
// Rows of C per invocation (kernels/matmul/vector.rs ROWS; the A·B and A·Bᵀ loops are unrolled for it).
const ROWS: u32 = 16u;

// The accumulators of row `row`, columns col..col+4, this pass starts from: 0, or where the
// previous pass left them (rows and columns outside C read 0).
fn start4(row: u32, col: u32) -> vec4<f32> {
    if p.k_begin == 0u || row >= p.m {
        return vec4<f32>(0.0);
    }
    var v = vec4<f32>(0.0);
    let index = row * p.n + col;
    for (var j = 0u; j < 4u; j += 1u) {
        if col + j < p.n {
            v[j] = partial[index + j];
        }
    }
    return v;
}

// Whether this pass ends the k loop (and so runs the epilogue).
fn last_pass() -> bool {
    return p.k_end == p.k;
}

// Keeps an accumulator for the next pass (not the last one).
fn keep(row: u32, col: u32, value: f32) {
    partial[row * p.n + col] = value;
}

// acc + a.x·b0 + a.y·b1 + a.z·b2 + a.w·b3, as four fmas in k order.
fn step4(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2, fma(vec4<f32>(av.y), b1, fma(vec4<f32>(av.x), b0, acc))));
}

// ---------------------------------------------------------------------------------------------
// matmul_vector_ab

// Where row `row` of op(A) starts, in vec4s of `a` or words of `pixels`. Rows past the edge
// read the last row (in bounds); their results are dropped by the store.
fn a_row_base(row: u32) -> u32 {
    return a_base(min(row, p.m - 1u), p.k / 4u);
}

// Where stored row `r` of A starts (`vec4s` vec4s per row), in vec4s of `a` or, gathered, in
// words of `pixels` through the epoch's order.
fn a_base(r: u32, vec4s: u32) -> u32 {
    if GATHER_A {
        return order[p.offset + r] * p.example_words;
    }
    return r * vec4s;
}

// The vec4 at `i` from a row base of `a_base`: read, or gathered and normalised from bytes.
fn load_a(base: u32, i: u32) -> vec4<f32> {
    if GATHER_A {
        return normalize_word(pixels[base + i], p.scale, p.shift);
    }
    return a[base + i];
}

fn store_ab(row: u32, col: u32, value: f32) {
    if row >= p.m || col >= p.n {
        return;
    }
    if !last_pass() {
        keep(row, col, value);
        return;
    }
    let index = row * p.n + col;
    var out = value;
    if HAS_BIAS {
        out += bias[col];
    }
    if ACCUMULATE {
        out += c[index];
    }
    c[index] = act_value(out, index);
}

fn store_ab4(row: u32, col: u32, v: vec4<f32>) {
    store_ab(row, col, v.x);
    store_ab(row, col + 1u, v.y);
    store_ab(row, col + 2u, v.z);
    store_ab(row, col + 3u, v.w);
}

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

// Where row `k` of A (stored K×M) starts, in vec4s of `a` or words of `pixels`.
fn at_row_base(k: u32) -> u32 {
    return a_base(k, p.m / 4u);
}

fn store_atb(row: u32, col: u32, value: f32) {
    if row >= p.m || col >= p.n {
        return;
    }
    if !last_pass() {
        keep(row, col, value);
        return;
    }
    let index = row * p.n + col;
    var g = value;
    if ACCUMULATE {
        g += c[index];
    }
    c[index] = g;
    if UPDATE_W {
        var s1 = 0.0;
        var s2 = 0.0;
        if optim_uses_state1() {
            s1 = w_state1[index];
        }
        if optim_uses_state2() {
            s2 = w_state2[index];
        }
        let r = optim_update(w_param[index], g, s1, s2);
        w_param[index] = r.x;
        if optim_uses_state1() {
            w_state1[index] = r.y;
        }
        if optim_uses_state2() {
            w_state2[index] = r.z;
        }
    }
}

fn store_atb4(row: u32, col: u32, v: vec4<f32>) {
    store_atb(row, col, v.x);
    store_atb(row, col + 1u, v.y);
    store_atb(row, col + 2u, v.z);
    store_atb(row, col + 3u, v.w);
}

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
        // Column sums of B with the reduce family's additions (reduce.wgsl and reduce.rs): sums
        // of blocks of REDUCE_BLOCK rows, then those in order (one pass: K ≤ the host's pass
        // length, so one level of blocks).
        var s = vec4<f32>(0.0);
        var k0 = 0u;
        while k0 < p.k {
            let k1 = min(k0 + REDUCE_BLOCK, p.k);
            var t = vec4<f32>(0.0);
            for (var k = k0; k < k1; k += 1u) {
                t += b[k * n4 + c4];
            }
            s += t;
            k0 = k1;
        }
        store_bias_grad(col, s.x);
        store_bias_grad(col + 1u, s.y);
        store_bias_grad(col + 2u, s.z);
        store_bias_grad(col + 3u, s.w);
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

fn store_abt(row: u32, col: u32, value: f32) {
    if row >= p.m || col >= p.n {
        return;
    }
    if !last_pass() {
        keep(row, col, value);
        return;
    }
    let index = row * p.n + col;
    var out = value;
    if ACCUMULATE {
        out += c[index];
    }
    if DACT {
        out = out * act_grad_from_output(saved[index]);
    }
    c[index] = out;
}

fn store_abt4(row: u32, col: u32, v: vec4<f32>) {
    store_abt(row, col, v.x);
    store_abt(row, col + 1u, v.y);
    store_abt(row, col + 2u, v.z);
    store_abt(row, col + 3u, v.w);
}

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
