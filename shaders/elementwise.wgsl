// The elementwise family: add, subtract, multiply, scale and axpy over flat f32 arrays, and
// the broadcasts of a one-element tensor `s = y[0]` that autograd needs for scalar·tensor,
// tensor + scalar and the backward pass of sums, means and losses (whose upstream gradient
// lives on the device, so it is read there instead of back on the host).
//
// Bindings (group 0):
//   0: x    storage, read        first operand
//   1: y    storage, read        second operand (add, sub, mul), or the scalar s = y[0]
//   2: out  storage, read_write  result; axpy reads and updates it in place
//   3: p    uniform              count, alpha, beta
//
// Workgroup: 64 invocations, one element each. Dispatch: a 2-D grid over count.

const BINARY_ADD: u32 = 0u; // out = x + y
const BINARY_MUL: u32 = 1u; // out = x ⊙ y
const BINARY_SUB: u32 = 2u; // out = x − y
override BINARY_OP: u32 = BINARY_ADD;
const SCALAR_MUL: u32 = 0u; // out = alpha·s·x
const SCALAR_AXPBY: u32 = 1u; // out = alpha·x + beta·s
override SCALAR_OP: u32 = SCALAR_MUL;

struct ElementwiseParams {
    count: u32,
    alpha: f32,
    beta: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: ElementwiseParams;

@compute @workgroup_size(WG)
fn binary(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    if BINARY_OP == BINARY_MUL {
        out[i] = x[i] * y[i];
    } else if BINARY_OP == BINARY_SUB {
        out[i] = x[i] - y[i];
    } else {
        out[i] = x[i] + y[i];
    }
}

// out = alpha·s·x or alpha·x + beta·s, with s = y[0] broadcast to every element.
@compute @workgroup_size(WG)
fn scalar_broadcast(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    let s = y[0];
    if SCALAR_OP == SCALAR_AXPBY {
        out[i] = fma(p.alpha, x[i], p.beta * s);
    } else {
        out[i] = (p.alpha * s) * x[i];
    }
}

// out = alpha·s everywhere, with s = y[0]: the gradient of a sum or a mean.
@compute @workgroup_size(WG)
fn fill_scalar(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    out[i] = p.alpha * y[0];
}

// out = alpha · x
@compute @workgroup_size(WG)
fn scale(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    out[i] = p.alpha * x[i];
}

// out = alpha · x + out, in place (one rounding: fma).
@compute @workgroup_size(WG)
fn axpy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    out[i] = fma(p.alpha, x[i], out[i]);
}
