// Activation functions and their derivatives, shared by the activation kernels
// (activation.wgsl) and the matmul epilogue (matmul.wgsl): the Rust side prepends this file
// to both, so a fused epilogue computes exactly what the standalone kernel computes.
//
// Specialisation: ACTIVATION selects the function; ACT_P0 / ACT_P1 are its parameters.
// Bindings used only by PReLU and RReLU (bound to something in every pipeline, since WGSL
// counts a binding as used when any branch mentions it):
//   20: act_slopes  storage, read  PReLU slopes: one, or one per feature (index % features)
//   21: act_rt      uniform        RReLU seed and step, feature count

const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u; // ACT_P0 = negative slope
const ACT_PRELU: u32 = 3u;
const ACT_RRELU: u32 = 4u; // ACT_P0 = lower, ACT_P1 = upper
const ACT_ELU: u32 = 5u; // ACT_P0 = alpha
const ACT_SIGMOID: u32 = 6u;
const ACT_TANH: u32 = 7u;
const ACT_GELU: u32 = 8u; // exact: x·Φ(x)
const ACT_GELU_TANH: u32 = 9u; // tanh approximation
const ACT_STEP: u32 = 10u; // ACT_P0 = threshold; no derivative

override ACTIVATION: u32 = 0u;
override ACT_P0: f32 = 0.0;
override ACT_P1: f32 = 0.0;
// RReLU draws a slope per element while training and uses the mean slope otherwise.
override ACT_TRAINING: bool = false;

struct ActRuntime {
    seed: u32,
    step: u32,
    features: u32,
    slope_count: u32,
}

@group(0) @binding(20) var<storage, read> act_slopes: array<f32>;
@group(0) @binding(21) var<uniform> act_rt: ActRuntime;

// Uniform in [0, 1) with 24 random bits, for element `index`.
fn uniform01(index: u32) -> f32 {
    let h = pcg_hash(index ^ pcg_hash(act_rt.seed ^ pcg_hash(act_rt.step)));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

fn rrelu_slope(index: u32) -> f32 {
    if ACT_TRAINING {
        return ACT_P0 + (ACT_P1 - ACT_P0) * uniform01(index);
    }
    return (ACT_P0 + ACT_P1) * 0.5;
}

fn prelu_slope(index: u32) -> f32 {
    if act_rt.slope_count == 1u {
        return act_slopes[0];
    }
    return act_slopes[index % act_rt.features];
}

fn sigmoid(x: f32) -> f32 {
    // Both branches avoid exp overflow: e^{-|x|} ≤ 1.
    let e = exp(-abs(x));
    if x >= 0.0 {
        return 1.0 / (1.0 + e);
    }
    return e / (1.0 + e);
}

fn tanh_stable(x: f32) -> f32 {
    // tanh(±15) rounds to ±1 in f32; clamping keeps a driver's exp-based tanh from inf/inf.
    return tanh(clamp(x, -15.0, 15.0));
}

// erf by Abramowitz & Stegun 7.1.26: |error| ≤ 1.5e-7 for every x.
fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-z * z);
    return select(y, -y, x < 0.0);
}

const SQRT_HALF: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const SQRT_2_OVER_PI: f32 = 0.79788456080286536;
const GELU_TANH_C: f32 = 0.044715;

// The activation of `x`, element `index` of the output (for per-element slopes).
fn act_value(x: f32, index: u32) -> f32 {
    switch ACTIVATION {
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_LEAKY_RELU: { return select(ACT_P0 * x, x, x > 0.0); }
        case ACT_PRELU: { return select(prelu_slope(index) * x, x, x > 0.0); }
        case ACT_RRELU: { return select(rrelu_slope(index) * x, x, x >= 0.0); }
        case ACT_ELU: { return select(ACT_P0 * (exp(x) - 1.0), x, x > 0.0); }
        case ACT_SIGMOID: { return sigmoid(x); }
        case ACT_TANH: { return tanh_stable(x); }
        case ACT_GELU: { return 0.5 * x * (1.0 + erf_approx(x * SQRT_HALF)); }
        case ACT_GELU_TANH: {
            let inner = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
            return 0.5 * x * (1.0 + tanh_stable(inner));
        }
        case ACT_STEP: { return select(0.0, 1.0, x > ACT_P0); }
        default: { return x; }
    }
}

// d act / dx at `x` (PyTorch's choice at kinks: ReLU'(0) = 0, LeakyReLU'(0) and RReLU'(0)
// are the slope).
fn act_grad(x: f32, index: u32) -> f32 {
    switch ACTIVATION {
        case ACT_RELU: { return select(0.0, 1.0, x > 0.0); }
        case ACT_LEAKY_RELU: { return select(ACT_P0, 1.0, x > 0.0); }
        case ACT_PRELU: { return select(prelu_slope(index), 1.0, x > 0.0); }
        case ACT_RRELU: { return select(rrelu_slope(index), 1.0, x > 0.0); }
        case ACT_ELU: { return select(ACT_P0 * exp(x), 1.0, x > 0.0); }
        case ACT_SIGMOID: {
            let s = sigmoid(x);
            return s * (1.0 - s);
        }
        case ACT_TANH: {
            let t = tanh_stable(x);
            return 1.0 - t * t;
        }
        case ACT_GELU: {
            return 0.5 * (1.0 + erf_approx(x * SQRT_HALF)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
        }
        case ACT_GELU_TANH: {
            let inner = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
            let t = tanh_stable(inner);
            let d_inner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner;
        }
        default: { return 1.0; }
    }
}

// d act / dx from the activation's output y, for the activations whose derivative is a function
// of their output (dfdx's DF_USES_FX): ReLU (y > 0 exactly where x > 0), sigmoid (y·(1 − y)) and
// tanh (1 − y²). A backward pass that saves y instead of x lets the forward matmul write y
// directly (its epilogue applies the activation) and the input-gradient matmul multiply by this
// in its epilogue. Any other activation is never specialised here (the Rust side checks).
fn act_grad_from_output(y: f32) -> f32 {
    switch ACTIVATION {
        case ACT_RELU: { return select(0.0, 1.0, y > 0.0); }
        case ACT_SIGMOID: { return y * (1.0 - y); }
        case ACT_TANH: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}
