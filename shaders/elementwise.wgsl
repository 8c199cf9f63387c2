// The elementwise family: add, multiply, scale and axpy over flat f32 arrays.
//
// Bindings (group 0):
//   0: x    storage, read        first operand
//   1: y    storage, read        second operand (add, mul)
//   2: out  storage, read_write  result; axpy reads and updates it in place
//   3: p    uniform              count, alpha
//
// Workgroup: 64 invocations, one element each. Dispatch: a 2-D grid over count.

// 0: out = x + y, 1: out = x ⊙ y.
override BINARY_OP: u32 = 0u;

struct ElementwiseParams {
    count: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: ElementwiseParams;

@compute @workgroup_size(64)
fn binary(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    if BINARY_OP == 1u {
        out[i] = x[i] * y[i];
    } else {
        out[i] = x[i] + y[i];
    }
}

// out = alpha · x
@compute @workgroup_size(64)
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
@compute @workgroup_size(64)
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
