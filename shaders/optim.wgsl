// The optimiser family: in-place parameter updates with PyTorch's formulas. Nothing is read
// back to the host; the step-dependent numbers (Adam's bias corrections, the first-step
// flag) arrive in a uniform written before each submit.
//
// Bindings (group 0):
//   0: param  storage, read_write  the parameter, updated in place
//   1: grad   storage, read        its gradient
//   2: state1 storage, read_write  momentum buffer (SGD) or first moment m (Adam)
//   3: state2 storage, read_write  second moment v (Adam)
//   4: h      uniform              hyper-parameters and this step's numbers
//   5: size   uniform              the element count
//
// Workgroup: 64 invocations, one element each. Dispatch: a 2-D grid over the count.

// 0: SGD, 1: SGD with momentum, 2: Adam, 3: AdamW (decoupled weight decay).
override KIND: u32 = 0u;
override NESTEROV: bool = false;

struct Hyper {
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    // Adam: lr / (1 − β1ᵗ) and √(1 − β2ᵗ), computed on the host in f64.
    step_size: f32,
    bias_correction2_sqrt: f32,
    // SGD with momentum: 1 on the first step (the buffer starts as the gradient).
    first_step: u32,
    _pad0: u32,
    _pad1: u32,
}

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
@group(0) @binding(4) var<uniform> h: Hyper;
@group(0) @binding(5) var<uniform> size: Size;

// SGD, optionally with momentum, dampening and Nesterov (torch.optim.SGD).
@compute @workgroup_size(64)
fn sgd_step(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= size.count {
        return;
    }
    let p = param[i];
    var d = grad[i] + h.weight_decay * p;
    if KIND == 1u {
        var buf = d;
        if h.first_step == 0u {
            buf = h.momentum * state1[i] + (1.0 - h.dampening) * d;
        }
        state1[i] = buf;
        if NESTEROV {
            d = d + h.momentum * buf;
        } else {
            d = buf;
        }
    }
    param[i] = p - h.lr * d;
}

// Adam and AdamW (torch.optim.Adam / AdamW, without amsgrad).
@compute @workgroup_size(64)
fn adam_step(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= size.count {
        return;
    }
    var p = param[i];
    var g = grad[i];
    if KIND == 3u {
        p = p * (1.0 - h.lr * h.weight_decay);
    } else {
        g = g + h.weight_decay * p;
    }
    let m = h.beta1 * state1[i] + (1.0 - h.beta1) * g;
    let v = h.beta2 * state2[i] + (1.0 - h.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / h.bias_correction2_sqrt + h.eps;
    param[i] = p - h.step_size * m / denom;
}
