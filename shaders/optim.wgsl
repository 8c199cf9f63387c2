// The optimiser family: in-place parameter updates with PyTorch's formulas (the rules live in
// optim_functions.wgsl, prepended, and are shared with the fused weight-gradient epilogues).
// Nothing is read back to the host; the step-dependent numbers (Adam's bias corrections, the
// first-step flag) arrive in a uniform written before each submit.
//
// Bindings (group 0):
//   0: param  storage, read_write  the parameter, updated in place
//   1: grad   storage, read        its gradient
//   2: state1 storage, read_write  momentum buffer (SGD) or first moment m (Adam)
//   3: state2 storage, read_write  second moment v (Adam)
//   5: size   uniform              the element count
//  30: h      uniform              hyper-parameters (optim_functions.wgsl)
//
// Workgroup: 64 invocations, one element each. Dispatch: a 2-D grid over the count.

struct Size {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> state1: array<f32>;
@group(0) @binding(3) var<storage, read_write> state2: array<f32>;
@group(0) @binding(5) var<uniform> size: Size;

@compute @workgroup_size(WG)
fn optim_step(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= size.count {
        return;
    }
    var s1 = 0.0;
    var s2 = 0.0;
    if optim_uses_state1() {
        s1 = state1[i];
    }
    if optim_uses_state2() {
        s2 = state2[i];
    }
    let r = optim_update(param[i], grad[i], s1, s2);
    param[i] = r.x;
    if optim_uses_state1() {
        state1[i] = r.y;
    }
    if optim_uses_state2() {
        state2[i] = r.z;
    }
}
