// The optimiser update rules, shared by the standalone update (optim.wgsl) and the fused
// epilogues of the weight-gradient kernels (matmul_vector.wgsl, head.wgsl): the Rust side
// prepends this file to each, so a fused update computes exactly what the standalone one does.
//
// Specialisation: OPTIM selects the rule (0: none, the kernel only writes gradients); NESTEROV
// applies to SGD with momentum.
// Binding: 30: h  uniform  hyper-parameters and this step's numbers (written before each submit)

const OPTIM_NONE: u32 = 0u;
const OPTIM_SGD: u32 = 1u;
const OPTIM_MOMENTUM: u32 = 2u;
const OPTIM_ADAM: u32 = 3u;
const OPTIM_ADAMW: u32 = 4u;

override OPTIM: u32 = 0u;
override NESTEROV: bool = false;

// Mirrors `optim::Hyper` on the Rust side.
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

@group(0) @binding(30) var<uniform> h: Hyper;

// Whether the rule keeps a first (momentum or m) and a second (v) state buffer.
fn optim_uses_state1() -> bool {
    return OPTIM >= OPTIM_MOMENTUM;
}

fn optim_uses_state2() -> bool {
    return OPTIM >= OPTIM_ADAM;
}

// One element's update with PyTorch's formulas (torch.optim.SGD, Adam, AdamW without amsgrad):
// from the parameter p, its gradient g and its state (s1, s2), the new (p, s1, s2).
fn optim_update(p_in: f32, g_in: f32, s1: f32, s2: f32) -> vec3<f32> {
    if OPTIM == OPTIM_ADAM || OPTIM == OPTIM_ADAMW {
        var p = p_in;
        var g = g_in;
        if OPTIM == OPTIM_ADAMW {
            p = p * (1.0 - h.lr * h.weight_decay);
        } else {
            g = g + h.weight_decay * p;
        }
        let m = h.beta1 * s1 + (1.0 - h.beta1) * g;
        let v = h.beta2 * s2 + (1.0 - h.beta2) * g * g;
        let denom = sqrt(v) / h.bias_correction2_sqrt + h.eps;
        return vec3<f32>(p - h.step_size * m / denom, m, v);
    }
    var d = g_in + h.weight_decay * p_in;
    var buf = s1;
    if OPTIM == OPTIM_MOMENTUM {
        buf = d;
        if h.first_step == 0u {
            buf = h.momentum * s1 + (1.0 - h.dampening) * d;
        }
        if NESTEROV {
            d = d + h.momentum * buf;
        } else {
            d = buf;
        }
    }
    return vec3<f32>(p_in - h.lr * d, buf, s2);
}
