// The activation family: elementwise forward and backward of every activation in
// activation_functions.wgsl (prepended to this file), and the terms of PReLU's slope gradient.
//
// Bindings (group 0):
//   0: ew_x    storage, read        the activation's input x (its output y, from_output)
//   1: ew_dy   storage, read        the upstream gradient dL/dy (backward only)
//   2: ew_out  storage, read_write  y (forward), dL/dx (backward) or slope-gradient terms
//   3: ew      uniform              element count, rows and features of x
//
// Workgroup: 64 invocations, one element each. Dispatch: a 2-D grid of ceil(count / 64) workgroups,
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

@compute @workgroup_size(WG)
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

@compute @workgroup_size(WG)
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

// dx = dy · act'(x) computed from the forward output y (bound as ew_x), for ReLU, sigmoid
// and tanh (act_grad_from_output).
@compute @workgroup_size(WG)
fn activation_backward_from_output(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= ew.count {
        return;
    }
    ew_out[i] = ew_dy[i] * act_grad_from_output(ew_x[i]);
}

// PReLU's slope gradient, first step: the per-element terms dy·x where x ≤ 0 (0 elsewhere);
// the Rust side sums them per feature (or in total, for a shared slope) with the reduce
// family, in a fixed order.
@compute @workgroup_size(WG)
fn prelu_slope_terms(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= ew.count {
        return;
    }
    let x = ew_x[i];
    ew_out[i] = select(ew_dy[i] * x, 0.0, x > 0.0);
}
