// The metrics family: row-wise argmax and the count of correct predictions, on the device.
//
// Bindings (group 0):
//   0: scores       storage, read        rows × cols (logits or probabilities)
//   1: labels       storage, read        the true class of each row (u32)
//   2: predictions  storage, read_write  argmax of each row (u32)
//   3: correct      storage, read_write  a u32 counter, incremented per correct row
//   4: p            uniform              rows, cols
//
// Workgroup: 64 invocations, one row each. Dispatch: a 2-D grid over rows.
// The counter uses an integer atomic add: exact, so the total does not depend on order.

struct MetricsParams {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> predictions: array<u32>;
@group(0) @binding(3) var<storage, read_write> correct: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> p: MetricsParams;

// NaN test on the bits: compilers may assume floats are never NaN and fold `v != v` away
// (lavapipe does).
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// The first index of the row's maximum; a NaN counts as the maximum (like torch.argmax).
fn row_argmax(row: u32) -> u32 {
    let base = row * p.cols;
    var best = scores[base];
    var index = 0u;
    for (var j = 1u; j < p.cols; j += 1u) {
        let v = scores[base + j];
        if !is_nan(best) && (v > best || is_nan(v)) {
            best = v;
            index = j;
        }
    }
    return index;
}

@compute @workgroup_size(64)
fn argmax_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    predictions[row] = row_argmax(row);
}

@compute @workgroup_size(64)
fn count_correct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = flat_index(wg, groups, lid);
    if row >= p.rows {
        return;
    }
    if row_argmax(row) == labels[row] {
        atomicAdd(&correct[0], 1u);
    }
}
