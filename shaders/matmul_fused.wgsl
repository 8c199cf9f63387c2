// What the fused matmul families share (matmul_vector.wgsl for CPU devices, matmul_staged.wgsl
// for GPUs, each appended to this file): their specialisations, bindings, the prologue that
// gathers op(A) from a data set's bytes, the passes over k, and every epilogue. The families
// differ only in how they walk k and share operands; each output is one fma chain over
// k = 0, 1, …, K−1 starting from 0, then + bias, + C when accumulating, then the activation, so
// every family gives the same bits. Prepended: vector_params.wgsl, pixels.wgsl,
// activation_functions.wgsl, optim_functions.wgsl and bias_grad.wgsl.
//
// Passes over k, as in matmul.wgsl: lavapipe stops an invocation's loops once it has run 65535
// loop iterations in all, so a long K is covered by several dispatches over k in
// [p.k_begin, p.k_end), each continuing every accumulator from `partial` (stored and reloaded
// exactly: still one fma chain); only the last pass (k_end = K) runs the epilogue. The bias
// gradient (BIAS_GRAD) runs in a single pass only (K ≤ the host's pass length).
//
// Forms and epilogues (the entry points are `matmul_<family>_ab`, `_atb`, `_abt`):
//   ab   C = A·B,  A [M, K] (or gathered pixels), B [K, N]; K, N multiples of 4.
//        Epilogue: bias, accumulate, activation; with GATHER_A and WRITE_LABELS it also writes
//        the batch's labels.
//   atb  C = Aᵀ·B, A [K, M] (or gathered pixels), B [K, N]; M, N multiples of 4.
//        Epilogue: accumulate; BIAS_GRAD adds a row of workgroups that writes the column sums
//        of B (a bias gradient); UPDATE_W / UPDATE_B apply the optimiser to the parameters
//        whose gradients these are.
//   abt  C = A·Bᵀ, A [M, K], B [N, K]; K a multiple of 4. Epilogue: accumulate, DACT
//        multiplies by the derivative of the activation whose output is `saved` (the input
//        gradient of the layer below, fused).
// Both families cover C in blocks of 16 rows (`p.row_blocks` of them; the bias gradient's
// workgroups are the row after the last).
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

// The bias gradient's four columns from 4·c4: column sums of B with the reduce family's
// additions (reduce.wgsl and reduce.rs): sums of blocks of REDUCE_BLOCK rows, then those in
// order (one pass: K ≤ the host's pass length, so one level of blocks).
fn bias_grad_columns(c4: u32) {
    let n4 = p.n / 4u;
    let col = 4u * c4;
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
}

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
