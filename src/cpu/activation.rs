use crate::kernels::activation::Activation;

/// What some activations need beyond their input, in host form.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActivationParams<'a> {
    /// PReLU's slopes: one shared, or one per feature.
    pub prelu_slopes: Option<&'a [f32]>,
    /// RReLU: training (random slopes) or evaluation (mean slope).
    pub training: bool,
    /// RReLU's RNG seed.
    pub seed: u32,
    /// RReLU's RNG step.
    pub step: u32,
    /// Length of the last dimension (PReLU's per-feature slopes).
    pub features: usize,
}

/// The PCG hash (O'Neill): the counter-based RNG behind RReLU's slopes.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// RReLU's slope for element `index`.
pub fn rrelu_slope(lower: f32, upper: f32, params: &ActivationParams<'_>, index: usize) -> f64 {
    let (lower, upper) = (f64::from(lower), f64::from(upper));
    if !params.training {
        return (lower + upper) / 2.0;
    }
    let h = pcg_hash(index as u32 ^ pcg_hash(params.seed ^ pcg_hash(params.step)));
    let u = f64::from(h >> 8) / 16_777_216.0;
    lower + (upper - lower) * u
}

fn prelu_slope(params: &ActivationParams<'_>, index: usize) -> f64 {
    let slopes = params.prelu_slopes.expect("PReLU needs slopes");
    if slopes.len() == 1 {
        f64::from(slopes[0])
    } else {
        f64::from(slopes[index % params.features])
    }
}

/// The standard normal density and distribution function.
fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

const GELU_TANH_C: f64 = 0.044715;

fn sqrt_2_over_pi() -> f64 {
    (2.0 / std::f64::consts::PI).sqrt()
}

/// `activation(x)` for element `index`, in f64.
pub fn activation_value(
    activation: Activation,
    x: f64,
    params: &ActivationParams<'_>,
    index: usize,
) -> f64 {
    match activation {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                x
            } else {
                f64::from(negative_slope) * x
            }
        }
        Activation::Prelu => {
            if x > 0.0 {
                x
            } else {
                prelu_slope(params, index) * x
            }
        }
        Activation::Rrelu { lower, upper } => {
            if x >= 0.0 {
                x
            } else {
                rrelu_slope(lower, upper, params, index) * x
            }
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x.exp_m1()
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => x * normal_cdf(x),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + (sqrt_2_over_pi() * (x + GELU_TANH_C * x * x * x)).tanh())
        }
        Activation::Step { threshold } => {
            if x > f64::from(threshold) {
                1.0
            } else {
                0.0
            }
        }
    }
}

/// `d activation / dx` at `x` for element `index`, in f64 (PyTorch's values at kinks).
/// `None` for the step function, which has no useful derivative.
pub fn activation_derivative(
    activation: Activation,
    x: f64,
    params: &ActivationParams<'_>,
    index: usize,
) -> Option<f64> {
    Some(match activation {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(negative_slope)
            }
        }
        Activation::Prelu => {
            if x > 0.0 {
                1.0
            } else {
                prelu_slope(params, index)
            }
        }
        Activation::Rrelu { lower, upper } => {
            if x > 0.0 {
                1.0
            } else {
                rrelu_slope(lower, upper, params, index)
            }
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(alpha) * x.exp()
            }
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
        Activation::Tanh => 1.0 - x.tanh().powi(2),
        Activation::Gelu => normal_cdf(x) + x * normal_pdf(x),
        Activation::GeluTanh => {
            let k = sqrt_2_over_pi();
            let t = (k * (x + GELU_TANH_C * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * GELU_TANH_C * x * x)
        }
        Activation::Step { .. } => return None,
    })
}

/// `y = activation(x)` elementwise, computed in f64 and rounded once.
pub fn activation_forward(
    activation: Activation,
    x: &[f32],
    params: &ActivationParams<'_>,
) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| activation_value(activation, f64::from(v), params, i) as f32)
        .collect()
}

/// `dx = dy · activation'(x)` elementwise; `None` for the step function.
pub fn activation_backward(
    activation: Activation,
    x: &[f32],
    dy: &[f32],
    params: &ActivationParams<'_>,
) -> Option<Vec<f32>> {
    x.iter()
        .zip(dy)
        .enumerate()
        .map(|(i, (&v, &g))| {
            activation_derivative(activation, f64::from(v), params, i)
                .map(|d| (f64::from(g) * d) as f32)
        })
        .collect()
}

/// PReLU's slope gradient: `Σ dy·x` over the elements with `x ≤ 0` of each slope.
pub fn prelu_slope_grad(x: &[f32], dy: &[f32], slope_count: usize, features: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; slope_count];
    for (i, (&v, &g)) in x.iter().zip(dy).enumerate() {
        if v <= 0.0 {
            let slot = if slope_count == 1 { 0 } else { i % features };
            sums[slot] += f64::from(g) * f64::from(v);
        }
    }
    sums.into_iter().map(|s| s as f32).collect()
}
