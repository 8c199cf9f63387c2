// The metrics family: row-wise argmax and the count of correct predictions, on the device.
//
// Bindings (group 0):
//   0: scores       storage, read        rows × cols (logits or probabilities)
//   1: labels       storage, read        the true class of each row (u32)
//   2: predictions  storage, read_write  argmax of each row (u32)
//   3: correct      storage, read_write  a u32 counter, incremented per correct row
//   4: p            uniform              rows, cols, and the pass's columns [begin, end)
//   5: state        storage, read_write  per row: the running maximum's bits and index
//
// Workgroup: 64 invocations, one row each. Dispatch: a 2-D grid over rows, per pass: lavapipe
// stops an invocation's loops once it has run 65535 loop iterations in all, so a long row is
// covered by several passes over consecutive columns, each continuing from the running
// maximum the previous one left in `state` (the same comparisons, in the same order, as one
// loop over the row). A row short enough for one pass never touches `state`.
// The counter uses an integer atomic add: exact, so the total does not depend on order.

struct MetricsParams {
    rows: u32,
    cols: u32,
    begin: u32,
    end: u32,
}

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> predictions: array<u32>;
@group(0) @binding(3) var<storage, read_write> correct: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> p: MetricsParams;
@group(0) @binding(5) var<storage, read_write> state: array<u32>;

// NaN test on the bits: compilers may assume floats are never NaN and fold `v != v` away
// (lavapipe does).
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// The first index of the row's maximum over columns [0, p.end); a NaN counts as the maximum
// (like torch.argmax). A pass that ends before the row does keeps its maximum in `state`.
fn row_argmax(row: u32) -> u32 {
    let base = row * p.cols;
    var best = 0.0;
    var index = 0u;
    var j = p.begin;
    if j == 0u {
        best = scores[base];
        j = 1u;
    } else {
        best = bitcast<f32>(state[2u * row]);
        index = state[2u * row + 1u];
    }
    for (; j < p.end; j += 1u) {
        let v = scores[base + j];
        if !is_nan(best) && (v > best || is_nan(v)) {
            best = v;
            index = j;
        }
    }
    if p.end < p.cols {
        state[2u * row] = bitcast<u32>(best);
        state[2u * row + 1u] = index;
    }
    return index;
}

// Whether this pass finishes the row.
fn last_pass() -> bool {
    return p.end == p.cols;
}

@compute @workgroup_size(WG)
fn argmax_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    let index = row_argmax(row);
    if last_pass() {
        predictions[row] = index;
    }
}

@compute @workgroup_size(WG)
fn count_correct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    let index = row_argmax(row);
    if last_pass() && index == labels[row] {
        atomicAdd(&correct[0], 1u);
    }
}
