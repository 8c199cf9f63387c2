// The classifier head: the last, narrow layer of a classifier (at most 32 classes) fused with
// softmax cross-entropy. Prepended: grid.wgsl, texels.wgsl, the activation functions (for the
// fused input gradient) and the optimiser rules (for the fused update).
//
// head_rows: one invocation per row (HEAD_WG rows per workgroup): logits = x·W + b, the row's
//   loss term and dlogits with softmax_ce_rows' arithmetic (loss.wgsl), the correct count
//   (COUNT), and with HAS_DX the row's input gradient dx = (dlogits·Wᵀ) ⊙ act'(x) (DACT: x is
//   the activation output of the layer below). Each workgroup sums its rows' loss terms in
//   order into partials[workgroup].
// head_rows_staged: the GPU profile's head_rows, a workgroup of 32 × 8 invocations per 8 rows,
//   one invocation per (class, row): the logits with W and x staged in workgroup memory by
//   tiles of STAGED_K, the softmax with the row's logits shared through workgroup memory (each
//   invocation of a row computes the row's maximum and sum in class order, alike), and dx one
//   invocation per (row, k) per tile of W. It writes each row's loss term into partials[row];
//   head_reduce (ROW_TERMS) sums them in groups of HEAD_WG rows, as head_rows' workgroups
//   would: the same bits as head_rows, loss included.
// head_reduce: invocation 0 sums the partials in order into `loss` and, with ACCUMULATE_LOSS,
//   adds it to `loss_acc` (an epoch's running sum); with GRADS, one invocation per element of
//   W_grad and b_grad: W_grad = xᵀ·dlogits, b_grad = column sums of dlogits, then (OPTIM ≠ 0)
//   the optimiser's update of W and b, which head_rows has finished reading.
//
// Every sum runs in the order of the unfused kernels: each logit and each dx, W_grad element
// is one fma chain in k order from 0 (as the matmul kernels), each b_grad element the reduce
// family's blocked sum in row order, and the softmax is softmax_ce_rows' arithmetic. So the
// fused head gives the unfused plan's bits, except the loss itself, whose terms are summed in
// another (fixed) order than the reduce family's.
//
// No passes over long loops (as the matmul and loss kernels have): lavapipe stops an
// invocation's loops once it has run 65535 iterations in all, so the host fuses a layer into
// the head only when its loops stay well below that (head::fits); others run unfused.
//
// Why two passes: rows, and gradient elements, are independent, so each pass spreads over
// many workgroups (one workgroup would run on one core of a CPU device: measured ~3 ms slower
// per lecture step on lavapipe), and the dispatch boundary orders "read W" before "update W".
//
// head_rows reads W, the same k·n values in every invocation, 2·k·n times per row: with
// W_TEXELS through a linear texel view of it (texels.wgsl, filled by the host before the
// pass), as on lavapipe a texel fetch costs a third of a storage-buffer load, and its own
// dlogits from a private copy rather than the buffer it wrote them to.
//
// Bindings (group 0):
//   0: x         storage, read        [rows, k] the layer's input
//   1: w         storage, read_write  [k, n] weights (updated by head_reduce with OPTIM)
//   2: bias      storage, read_write  [n]
//   3: labels    storage, read        [rows] class indices (u32)
//   4: logits    storage, read_write  [rows, n]
//   5: dlogits   storage, read_write  [rows, n] d loss / d logits
//   6: loss      storage, read_write  [1]
//   7: loss_acc  storage, read_write  [1] (ACCUMULATE_LOSS)
//   8: correct   storage, read_write  [1] u32 counter (COUNT)
//   9: p         uniform              HeadParams
//  10: dx        storage, read_write  [rows, k] (HAS_DX)
//  11: w_grad    storage, read_write  [k, n] (GRADS)
//  12: b_grad    storage, read_write  [n] (GRADS)
//  13–16: w_state1, w_state2, b_state1, b_state2  optimiser state (OPTIM)
//  17: partials  storage, read_write  one loss sum per head_rows workgroup
//  18: w_texels  texture              W as a linear texel view (W_TEXELS: k·n a multiple of 4)
//  20, 21: activation_functions.wgsl; 30: optim_functions.wgsl
//
// Dispatch: head_rows (ceil(rows / HEAD_WG), 1, 1) or head_rows_staged (ceil(rows / 8), 1, 1);
// head_reduce a 2-D grid over k·n + n.

override MEAN: bool = true;
override COUNT: bool = false;
override ACCUMULATE_LOSS: bool = false;
override DACT: bool = false;
// Whether the layer's input needs a gradient (dx).
override HAS_DX: bool = false;
// Whether head_reduce computes the parameter gradients (else only the loss).
override GRADS: bool = false;
// Rows per head_rows workgroup: few, so that a batch spreads over a CPU device's cores.
override HEAD_WG: u32 = 16u;
// Whether head_rows reads W from `w_texels`.
override W_TEXELS: bool = false;
// Whether `partials` holds one loss term per row (head_rows_staged) rather than one sum per
// head_rows workgroup.
override ROW_TERMS: bool = false;

// The largest HEAD_WG (the partial sums' workgroup array).
const MAX_WG: u32 = 64u;
const MAX_CLASSES: u32 = 32u;
// Rows per block of the reduce family's sums (reduce.rs BLOCK), for the bias gradient.
const REDUCE_BLOCK: u32 = 1024u;

// Mirrors `head::HeadParams` on the Rust side.
struct HeadParams {
    rows: u32,
    k: u32,
    n: u32,
    // head_rows workgroups (partial sums).
    groups: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> loss_acc: array<f32>;
@group(0) @binding(8) var<storage, read_write> correct: array<atomic<u32>>;
@group(0) @binding(9) var<uniform> p: HeadParams;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> w_grad: array<f32>;
@group(0) @binding(12) var<storage, read_write> b_grad: array<f32>;
@group(0) @binding(13) var<storage, read_write> w_state1: array<f32>;
@group(0) @binding(14) var<storage, read_write> w_state2: array<f32>;
@group(0) @binding(15) var<storage, read_write> b_state1: array<f32>;
@group(0) @binding(16) var<storage, read_write> b_state2: array<f32>;
@group(0) @binding(17) var<storage, read_write> partials: array<f32>;
@group(0) @binding(18) var w_texels: texture_2d<f32>;

var<workgroup> partial: array<f32, MAX_WG>;

// head_rows_staged's rows per workgroup, values of k per staged tile, and padded row of w_tile.
const STAGED_ROWS: u32 = 8u;
const STAGED_K: u32 = 32u;
const W_STRIDE: u32 = 33u;

var<workgroup> w_tile: array<f32, 1056>;
var<workgroup> x_tile: array<f32, 256>;
// The rows' logits, then their dlogits: [row][class].
var<workgroup> z_tile: array<f32, 256>;

// As metrics.wgsl: NaN by its bits, since compilers may fold `v != v`.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Element `e` of W (row-major), as head_rows reads it.
fn weight(e: u32) -> f32 {
    if W_TEXELS {
        return textureLoad(w_texels, texel(e >> 2u), 0)[e & 3u];
    }
    return w[e];
}

// The logits, dlogits (also into `dz`) and correct count of `row`; returns its loss term.
fn forward_row(row: u32, dz: ptr<function, array<f32, MAX_CLASSES>>) -> f32 {
    let n = p.n;
    var normaliser = 1.0;
    if MEAN {
        normaliser = f32(p.rows);
    }
    let scale = 1.0 / normaliser;
    var z: array<f32, MAX_CLASSES>;
    for (var j = 0u; j < n; j += 1u) {
        z[j] = 0.0;
    }
    let xb = row * p.k;
    for (var kk = 0u; kk < p.k; kk += 1u) {
        let xv = x[xb + kk];
        let wb = kk * n;
        for (var j = 0u; j < n; j += 1u) {
            z[j] = fma(xv, weight(wb + j), z[j]);
        }
    }
    let base = row * n;
    for (var j = 0u; j < n; j += 1u) {
        z[j] = z[j] + bias[j];
        logits[base + j] = z[j];
    }
    // softmax_ce_rows' arithmetic (loss.wgsl), on the same values.
    var m = z[0];
    for (var j = 1u; j < n; j += 1u) {
        m = max(m, z[j]);
    }
    var s = 0.0;
    for (var j = 0u; j < n; j += 1u) {
        s += exp(z[j] - m);
    }
    let label = labels[row];
    let inv_s = 1.0 / s;
    for (var j = 0u; j < n; j += 1u) {
        let q = exp(z[j] - m) * inv_s;
        let d = scale * select(q, q - 1.0, j == label);
        dlogits[base + j] = d;
        (*dz)[j] = d;
    }
    if COUNT {
        // metrics.wgsl's row_argmax: the first maximum, a NaN counting as the maximum.
        var best = z[0];
        var index = 0u;
        for (var j = 1u; j < n; j += 1u) {
            let v = z[j];
            if !is_nan(best) && (v > best || is_nan(v)) {
                best = v;
                index = j;
            }
        }
        if index == label {
            atomicAdd(&correct[0], 1u);
        }
    }
    return scale * (m + log(s) - z[label]);
}

// dx of `row` = dlogits·Wᵀ (⊙ act'), from the weights before their update and the row's
// dlogits `dz` (forward_row's).
fn input_grad_row(row: u32, dz: ptr<function, array<f32, MAX_CLASSES>>) {
    let n = p.n;
    for (var kk = 0u; kk < p.k; kk += 1u) {
        var acc = 0.0;
        for (var j = 0u; j < n; j += 1u) {
            acc = fma((*dz)[j], weight(kk * n + j), acc);
        }
        let i = row * p.k + kk;
        if DACT {
            acc = acc * act_grad_from_output(x[i]);
        }
        dx[i] = acc;
    }
}

@compute @workgroup_size(HEAD_WG)
fn head_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x * HEAD_WG + lid;
    var term = 0.0;
    if row < p.rows {
        var dz: array<f32, MAX_CLASSES>;
        term = forward_row(row, &dz);
        if HAS_DX {
            input_grad_row(row, &dz);
        }
    }
    partial[lid] = term;
    workgroupBarrier();
    if lid == 0u {
        var t = 0.0;
        for (var i = 0u; i < HEAD_WG; i += 1u) {
            t += partial[i];
        }
        partials[wg.x] = t;
    }
}

// Stages rows k0..k0+kt of W (each [n]) into w_tile, rows padded to W_STRIDE: four elements
// per invocation of the 256.
fn stage_w(li: u32, k0: u32, kt: u32) {
    for (var t = 0u; t < 4u; t += 1u) {
        let e = li + 256u * t;
        let kk = e / MAX_CLASSES;
        let j = e % MAX_CLASSES;
        if kk < kt && j < p.n {
            w_tile[kk * W_STRIDE + j] = w[(k0 + kk) * p.n + j];
        }
    }
}

@compute @workgroup_size(32, 8)
fn head_rows_staged(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n = p.n;
    let j = lid.x;
    let r = lid.y;
    let row = wg.x * STAGED_ROWS + r;
    let live = row < p.rows;
    // Rows past the batch load the last row (in bounds) and store nothing.
    let xrow = min(row, p.rows - 1u);
    // The logit of (row, j): one fma chain over k from 0, as forward_row's.
    var z = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += STAGED_K) {
        let kt = min(STAGED_K, p.k - k0);
        if j < kt {
            x_tile[r * STAGED_K + j] = x[xrow * p.k + k0 + j];
        }
        stage_w(li, k0, kt);
        workgroupBarrier();
        if j < n {
            for (var kk = 0u; kk < kt; kk += 1u) {
                z = fma(x_tile[r * STAGED_K + kk], w_tile[kk * W_STRIDE + j], z);
            }
        }
        workgroupBarrier();
    }
    let zb = r * MAX_CLASSES;
    if j < n {
        z = z + bias[j];
        if live {
            logits[row * n + j] = z;
        }
    }
    z_tile[zb + j] = z;
    workgroupBarrier();
    // softmax_ce_rows' arithmetic (loss.wgsl), as forward_row: the row's maximum and sum in
    // class order, computed alike by every invocation of the row.
    var normaliser = 1.0;
    if MEAN {
        normaliser = f32(p.rows);
    }
    let scale = 1.0 / normaliser;
    var m = z_tile[zb];
    for (var jj = 1u; jj < n; jj += 1u) {
        m = max(m, z_tile[zb + jj]);
    }
    var s = 0.0;
    for (var jj = 0u; jj < n; jj += 1u) {
        s += exp(z_tile[zb + jj] - m);
    }
    let label = labels[xrow];
    let inv_s = 1.0 / s;
    var d = 0.0;
    if j < n {
        let q = exp(z - m) * inv_s;
        d = scale * select(q, q - 1.0, j == label);
        if live {
            dlogits[row * n + j] = d;
        }
    }
    if live && j == 0u {
        if COUNT {
            // metrics.wgsl's row_argmax: the first maximum, a NaN counting as the maximum.
            var best = z_tile[zb];
            var index = 0u;
            for (var jj = 1u; jj < n; jj += 1u) {
                let v = z_tile[zb + jj];
                if !is_nan(best) && (v > best || is_nan(v)) {
                    best = v;
                    index = jj;
                }
            }
            if index == label {
                atomicAdd(&correct[0], 1u);
            }
        }
        partials[row] = scale * (m + log(s) - z_tile[zb + label]);
    }
    if HAS_DX {
        // Everyone has read the logits: the tile takes the dlogits.
        workgroupBarrier();
        z_tile[zb + j] = d;
        // dx of (row, k0 + j) = dlogits·Wᵀ (⊙ act'), one fma chain over the classes in order,
        // from the weights before their update (head_reduce updates them).
        for (var k0 = 0u; k0 < p.k; k0 += STAGED_K) {
            let kt = min(STAGED_K, p.k - k0);
            stage_w(li, k0, kt);
            workgroupBarrier();
            if live && j < kt {
                var acc = 0.0;
                for (var jj = 0u; jj < n; jj += 1u) {
                    acc = fma(z_tile[zb + jj], w_tile[j * W_STRIDE + jj], acc);
                }
                let i = row * p.k + k0 + j;
                if DACT {
                    acc = acc * act_grad_from_output(x[i]);
                }
                dx[i] = acc;
            }
            workgroupBarrier();
        }
    }
}

fn update_w(index: u32, g: f32) {
    var s1 = 0.0;
    var s2 = 0.0;
    if optim_uses_state1() {
        s1 = w_state1[index];
    }
    if optim_uses_state2() {
        s2 = w_state2[index];
    }
    let r = optim_update(w[index], g, s1, s2);
    w[index] = r.x;
    if optim_uses_state1() {
        w_state1[index] = r.y;
    }
    if optim_uses_state2() {
        w_state2[index] = r.z;
    }
}

fn update_b(index: u32, g: f32) {
    var s1 = 0.0;
    var s2 = 0.0;
    if optim_uses_state1() {
        s1 = b_state1[index];
    }
    if optim_uses_state2() {
        s2 = b_state2[index];
    }
    let r = optim_update(bias[index], g, s1, s2);
    bias[index] = r.x;
    if optim_uses_state1() {
        b_state1[index] = r.y;
    }
    if optim_uses_state2() {
        b_state2[index] = r.z;
    }
}

@compute @workgroup_size(WG)
fn head_reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i == 0u {
        var t = 0.0;
        for (var g = 0u; g < p.groups; g += 1u) {
            if ROW_TERMS {
                // head_rows' workgroup sums, from the rows' terms (0 past the batch).
                var sum = 0.0;
                for (var lane = 0u; lane < HEAD_WG; lane += 1u) {
                    let row = g * HEAD_WG + lane;
                    sum += select(0.0, partials[row], row < p.rows);
                }
                t += sum;
            } else {
                t += partials[g];
            }
        }
        loss[0] = t;
        if ACCUMULATE_LOSS {
            loss_acc[0] = loss_acc[0] + t;
        }
    }
    let n = p.n;
    let kn = p.k * n;
    if !GRADS || i >= kn + n {
        return;
    }
    if i < kn {
        // W_grad = xᵀ·dlogits, then the update.
        let kk = i / n;
        let j = i % n;
        var acc = 0.0;
        for (var row = 0u; row < p.rows; row += 1u) {
            acc = fma(x[row * p.k + kk], dlogits[row * n + j], acc);
        }
        w_grad[i] = acc;
        if OPTIM != OPTIM_NONE {
            update_w(i, acc);
        }
    } else {
        // The reduce family's additions (reduce.wgsl, reduce.rs): sums of blocks of
        // REDUCE_BLOCK rows, then those in order (one level of blocks: the host keeps rows small).
        let j = i - kn;
        var s = 0.0;
        var r0 = 0u;
        while r0 < p.rows {
            let r1 = min(r0 + REDUCE_BLOCK, p.rows);
            var t = 0.0;
            for (var row = r0; row < r1; row += 1u) {
                t += dlogits[row * n + j];
            }
            s += t;
            r0 = r1;
        }
        b_grad[j] = s;
        if OPTIM != OPTIM_NONE {
            update_b(j, s);
        }
    }
}
