// The activation family: elementwise forward and backward of every activation in
// activation_functions.wgsl (prepended to this file), and the PReLU slope gradient.
//
// Bindings (group 0):
//   0: ew_x    storage, read        the activation's input x
//   1: ew_dy   storage, read        the upstream gradient dL/dy (backward only)
//   2: ew_out  storage, read_write  y (forward), dL/dx (backward) or dL/dslope (slope grad)
//   3: ew      uniform              output element count, rows and features of x
//
// Workgroup: 64 invocations, one element each (activation_forward, activation_backward) or
// one slope each (prelu_slope_grad). Dispatch: a 2-D grid of ceil(count / 64) workgroups,
// rows of at most max_compute_workgroups_per_dimension (see flat_index).

struct EwParams {
    count: u32,
    rows: u32,
    features: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> ew_x: array<f32>;
@group(0) @binding(1) var<storage, read> ew_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> ew_out: array<f32>;
@group(0) @binding(3) var<uniform> ew: EwParams;

// Linear index over a 2-D grid of 64-wide workgroups.
fn flat_index(wg: vec3<u32>, groups: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * groups.x + wg.x) * 64u + lid.x;
}

@compute @workgroup_size(64)
fn activation_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= ew.count {
        return;
    }
    ew_out[i] = act_value(ew_x[i], i);
}

@compute @workgroup_size(64)
fn activation_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= ew.count {
        return;
    }
    ew_out[i] = ew_dy[i] * act_grad(ew_x[i], i);
}

// dL/dslope for PReLU: Σ dy·x over the elements with x ≤ 0 that share the slope, summed in
// index order (no atomics), so the same inputs always give the same bits.
// ew.count is the number of slopes (1, or the feature count); ew.features the row width.
@compute @workgroup_size(64)
fn prelu_slope_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let slope = flat_index(wg, groups, lid);
    if slope >= ew.count {
        return;
    }
    let features = ew.features;
    let total = ew.rows * features;
    var sum = 0.0;
    if ew.count == 1u {
        for (var i = 0u; i < total; i += 1u) {
            let x = ew_x[i];
            sum += select(ew_dy[i] * x, 0.0, x > 0.0);
        }
    } else {
        for (var r = 0u; r < ew.rows; r += 1u) {
            let i = r * features + slope;
            let x = ew_x[i];
            sum += select(ew_dy[i] * x, 0.0, x > 0.0);
        }
    }
    ew_out[slope] = sum;
}
