// The loss family: fused softmax-cross-entropy (loss and dlogits in one pass), row-wise
// softmax and log-softmax with their backward passes, and the pointwise losses (MSE, L1,
// binary cross-entropy on probabilities and on logits), each writing its gradient with its
// loss terms. Scalar losses are summed in index order (sum_terms): no float atomics, so the
// same inputs always give the same bits.
//
// Bindings (group 0; each entry point uses the subset its comment names):
//   0: input     storage, read        logits, predictions, or softmax output y (backward)
//   1: labels    storage, read        class indices (u32), one per row
//   2: targets    storage, read        targets (pointwise losses) or dy (softmax backward)
//   3: weights   storage, read        per-class weights (WEIGHTED)
//   4: grad      storage, read_write  dL/dinput, or the softmax output
//   5: terms     storage, read_write  per-row or per-element loss terms
//   6: stats     storage, read_write  per-row state carried between passes (see below)
//   7: p         uniform              rows, cols, count, the pass (begin, end, phase), scale
//   8: label_weights  storage, read_write  weights[labels[i]] per row (gather_label_weights)
//   9: norm      storage, read        Σ weights[labels], read by softmax_ce_rows (WEIGHTED, MEAN)
//
// Passes: lavapipe stops an invocation's loops once it has run 65535 loop iterations in all,
// so the row kernels (one invocation per row) cover a long row in several dispatches. Each
// pass runs its phases (p.phase: PHASE_MAX, PHASE_SUM or PHASE_DOT, PHASE_WRITE) over the
// columns [p.begin, p.end) only, continuing from the state the previous pass left in `stats`
// (the running max and exp-sum, or the dot product: f32s stored and reloaded exactly). The
// values are visited in the same order, with the same operations, as by one loop over the
// row; a row short enough for one pass (every phase over [0, cols)) never touches `stats`.

override WEIGHTED: bool = false;
override MEAN: bool = true;
// softmax_rows / softmax_backward: log-softmax instead of softmax.
override LOG: bool = false;
// pointwise_loss: which loss.
const LOSS_MSE: u32 = 0u;
const LOSS_L1: u32 = 1u;
const LOSS_BCE: u32 = 2u;
const LOSS_BCE_WITH_LOGITS: u32 = 3u;
override LOSS: u32 = LOSS_MSE;

struct LossParams {
    rows: u32,
    cols: u32,
    count: u32,
    // The pass: columns [begin, end) of each row, in the phases `phase` names.
    begin: u32,
    end: u32,
    phase: u32,
    _pad0: u32,
    _pad1: u32,
    scale: f32,
    _pad2: f32,
    _pad3: f32,
    _pad4: f32,
}

// The phases of a row kernel's pass (bits of p.phase).
const PHASE_MAX: u32 = 1u;
const PHASE_SUM: u32 = 2u;
const PHASE_DOT: u32 = 2u;
const PHASE_WRITE: u32 = 4u;

@group(0) @binding(0) var<storage, read> inputs: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> terms: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> p: LossParams;
@group(0) @binding(8) var<storage, read_write> label_weights: array<f32>;
@group(0) @binding(9) var<storage, read> norm: array<f32>;

fn in_phase(phase: u32) -> bool {
    return (p.phase & phase) != 0u;
}

// (m, s) = (max z, Σ exp(z − m)) of row `row` (starting at `base`) as far as this pass takes
// them: the max over columns [0, end) in PHASE_MAX, then the exp-sum over [0, end) in
// PHASE_SUM, each continuing from `stats` when the pass starts past column 0. Subtracting the
// max keeps every exp ≤ 1 for any logits (log-sum-exp). A pass that does not write keeps
// (m, s) in `stats` for the next one.
fn row_max_and_exp_sum(row: u32, base: u32) -> vec2<f32> {
    var m = 0.0;
    if in_phase(PHASE_MAX) {
        var j = p.begin;
        if j == 0u {
            m = inputs[base];
            j = 1u;
        } else {
            m = stats[2u * row];
        }
        for (; j < p.end; j += 1u) {
            m = max(m, inputs[base + j]);
        }
    } else {
        m = stats[2u * row];
    }
    var s = 0.0;
    if in_phase(PHASE_SUM) {
        if p.begin != 0u {
            s = stats[2u * row + 1u];
        }
        for (var j = p.begin; j < p.end; j += 1u) {
            s += exp(inputs[base + j] - m);
        }
    } else if !in_phase(PHASE_MAX) {
        s = stats[2u * row + 1u];
    }
    if !in_phase(PHASE_WRITE) {
        stats[2u * row] = m;
        stats[2u * row + 1u] = s;
    }
    return vec2<f32>(m, s);
}

// gather_label_weights: label_weights[i] = weights[labels[i]], whose sum (by the reduce
// family) is a weighted mean's normaliser.
// Uses labels, weights, label_weights, p. Dispatch: grid over rows.
@compute @workgroup_size(WG)
fn gather_label_weights(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    label_weights[row] = weights[labels[row]];
}

// softmax_ce_rows: one invocation per row of logits (rows × cols). With z the row, y its
// label, m = max z and s = Σ exp(z − m): the row's loss is w·(m + log s − z_y) and its
// gradient w·(exp(z − m)/s − [j = y]), both divided by the normaliser (the batch size, or
// Σ w for a weighted mean, or 1 for a sum). Subtracting the max first keeps exp ≤ 1 for any
// logits (log-sum-exp).
// Uses input, labels, weights, grad, terms, stats, p, norm. Dispatch: grid over rows, per pass.
@compute @workgroup_size(WG)
fn softmax_ce_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let label = labels[row];
    let ms = row_max_and_exp_sum(row, base);
    if !in_phase(PHASE_WRITE) {
        return;
    }
    let m = ms.x;
    let s = ms.y;
    var w = 1.0;
    if WEIGHTED {
        w = weights[label];
    }
    var normaliser = 1.0;
    if MEAN {
        normaliser = f32(p.rows);
        if WEIGHTED {
            normaliser = norm[0];
        }
    }
    let scale = w / normaliser;
    let inv_s = 1.0 / s;
    for (var j = p.begin; j < p.end; j += 1u) {
        let q = exp(inputs[base + j] - m) * inv_s;
        grad[base + j] = scale * select(q, q - 1.0, j == label);
    }
    if p.begin == 0u {
        terms[row] = scale * (m + log(s) - inputs[base + label]);
    }
}

// softmax_rows: one invocation per row; grad receives softmax(row) or, with LOG,
// log_softmax(row) = z − m − log Σ exp(z − m).
// Uses input, grad, stats, p. Dispatch: grid over rows, per pass.
@compute @workgroup_size(WG)
fn softmax_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let ms = row_max_and_exp_sum(row, base);
    if !in_phase(PHASE_WRITE) {
        return;
    }
    let m = ms.x;
    let s = ms.y;
    let log_s = log(s);
    for (var j = p.begin; j < p.end; j += 1u) {
        let shifted = inputs[base + j] - m;
        grad[base + j] = select(exp(shifted) / s, shifted - log_s, LOG);
    }
}

// softmax_backward: one invocation per row. With y the forward output and dy = targets:
// softmax: dx = y ⊙ (dy − Σ dy·y); log-softmax: dx = dy − exp(y) · Σ dy.
// Uses input, targets, grad, stats, p. Dispatch: grid over rows, per pass.
@compute @workgroup_size(WG)
fn softmax_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var dot = 0.0;
    if in_phase(PHASE_DOT) {
        if p.begin != 0u {
            dot = stats[row];
        }
        for (var j = p.begin; j < p.end; j += 1u) {
            dot += select(targets[base + j] * inputs[base + j], targets[base + j], LOG);
        }
    } else {
        dot = stats[row];
    }
    if !in_phase(PHASE_WRITE) {
        stats[row] = dot;
        return;
    }
    for (var j = p.begin; j < p.end; j += 1u) {
        let y = inputs[base + j];
        let dy = targets[base + j];
        grad[base + j] = select(y * (dy - dot), dy - exp(y) * dot, LOG);
    }
}

// log(1 + x) without the cancellation of evaluating 1 + x first (Kahan's trick).
fn log1p_accurate(x: f32) -> f32 {
    let u = 1.0 + x;
    if u == 1.0 {
        return x;
    }
    return log(u) * x / (u - 1.0);
}

// pointwise_loss: one invocation per element: its loss term into `terms` and
// d(scale · term)/dx into `grad` (scale is 1/count for a mean, 1 for a sum).
// BCE clamps each log at −100 and its gradient's denominator at 1e-12, like PyTorch.
// Uses input, targets, grad, terms, p. Dispatch: grid over count.
@compute @workgroup_size(WG)
fn pointwise_loss(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    let x = inputs[i];
    let t = targets[i];
    var term = 0.0;
    var g = 0.0;
    switch LOSS {
        case LOSS_MSE: {
            let d = x - t;
            term = d * d;
            g = 2.0 * d;
        }
        case LOSS_L1: {
            let d = x - t;
            term = abs(d);
            g = sign(d);
        }
        case LOSS_BCE: {
            let log_p = max(log(x), -100.0);
            let log_q = max(log(1.0 - x), -100.0);
            term = -(t * log_p + (1.0 - t) * log_q);
            g = (x - t) / max((1.0 - x) * x, 1e-12);
        }
        default: {
            // max(x, 0) − x·t + log(1 + e^{−|x|}) never overflows.
            let e = exp(-abs(x));
            term = max(x, 0.0) - x * t + log1p_accurate(e);
            let sig = select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
            g = sig - t;
        }
    }
    terms[i] = term;
    grad[i] = g * p.scale;
}

// one_hot: grad[row, c] = 1 if labels[row] = c else 0: targets for MSE or BCE on class labels.
// Uses labels, grad, p. Dispatch: grid over rows × cols.
@compute @workgroup_size(WG)
fn one_hot(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.rows * p.cols {
        return;
    }
    grad[i] = select(0.0, 1.0, labels[i / p.cols] == i % p.cols);
}
