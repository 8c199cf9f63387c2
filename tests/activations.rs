//! Every activation, forward and backward, against the CPU oracle; the oracle's derivatives
//! against central finite differences; PReLU's slope gradient; RReLU's reproducibility; the
//! fused matmul epilogue; and the lecture's sigmoid neuron.
//!
//! Tolerances, per element, |gpu − oracle| ≤ abs + rel·|oracle|:
//! - piecewise-linear activations (identity, ReLU, leaky ReLU, PReLU, RReLU in evaluation,
//!   step): one correctly rounded multiply at most, so rel = u (unit roundoff), abs = 0;
//!   RReLU in training also rounds its slope (a few operations in f32): rel = 8u.
//! - transcendental ones use the device's exp/tanh, which Vulkan only requires to within
//!   3 + 2|x| ulp: abs = 2e-6, rel = 2e-5 (a wrong formula is off by far more, e.g. the
//!   tanh-approximate GELU differs from the exact one by up to 5e-4).
//! - backward multiplies by dy in [-1, 1): the same bounds, plus one rounding.

mod common;

use common::{F32_UNIT_ROUNDOFF, gpu, rng};
use rand::Rng;
use wgsl_nn::activation::{
    Activation, ActivationState, activation_backward, activation_forward, prelu_slope_grad,
};
use wgsl_nn::cpu::{self, ActivationParams};
use wgsl_nn::matmul::{MatmulKernel, MatmulOptions, matmul};
use wgsl_nn::{Error, Tensor};

const U: f64 = F32_UNIT_ROUNDOFF;

/// (abs, rel) tolerance of `activation`, as the module doc derives (the library's, which the
/// in-browser kernels check uses too).
use wgsl_nn::cpu::tolerance::activation as tolerance;

/// Awkward inputs: the kinks, signed zeros, tiny and huge values, then uniform in [-6, 6).
fn inputs(len: usize, seed: u64) -> Vec<f32> {
    let special = [
        0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 1.0, -1.0, 30.0, -30.0, 100.0, -100.0,
    ];
    let mut r = rng(seed);
    (0..len)
        .map(|i| {
            special
                .get(i)
                .copied()
                .unwrap_or_else(|| r.random_range(-6.0f32..6.0))
        })
        .collect()
}

fn check(gpu: &[f32], reference: &[f32], (abs, rel): (f64, f64), what: &str) -> f64 {
    let mut worst = 0.0f64;
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let error = (f64::from(g) - f64::from(r)).abs();
        let bound = abs + rel * f64::from(r).abs();
        assert!(
            error <= bound || (g.is_nan() && r.is_nan()),
            "{what}: element {i}: gpu {g} vs oracle {r}, |error| {error:e} > {bound:e}"
        );
        worst = worst.max(error);
    }
    worst
}

const SHAPES: [&[usize]; 5] = [&[1], &[7, 13], &[64, 128], &[1000, 37], &[256, 784]];

struct Setup {
    slopes_host: Vec<f32>,
    slopes: Tensor,
}

fn prelu_setup(features: usize, seed: u64) -> Setup {
    let mut r = rng(seed);
    let slopes_host: Vec<f32> = (0..features).map(|_| r.random_range(0.0f32..0.5)).collect();
    let slopes = Tensor::from_slice(gpu(), &slopes_host, [features]).unwrap();
    Setup {
        slopes_host,
        slopes,
    }
}

fn forward_matches_cpu(activation: Activation) {
    for training in [false, true] {
        for (s, shape) in SHAPES.iter().enumerate() {
            let numel: usize = shape.iter().product();
            let features = *shape.last().unwrap();
            let x_host = inputs(numel, s as u64);
            let x = Tensor::from_slice(gpu(), &x_host, shape.to_vec()).unwrap();
            let setup = prelu_setup(features, 9);
            let state = ActivationState {
                prelu_slopes: Some(&setup.slopes),
                training,
                seed: 42,
                step: 7,
            };
            let params = ActivationParams {
                prelu_slopes: Some(&setup.slopes_host),
                training,
                seed: 42,
                step: 7,
                features,
            };
            let y = activation_forward(&x, activation, &state)
                .unwrap()
                .to_vec()
                .unwrap();
            let reference = cpu::activation_forward(activation, &x_host, &params);
            let what = format!(
                "{} forward {shape:?} training={training}",
                activation.name()
            );
            let worst = check(&y, &reference, tolerance(activation, training), &what);
            eprintln!("{what}: max error {worst:e}");
        }
    }
}

fn backward_matches_cpu(activation: Activation) {
    for training in [false, true] {
        for (s, shape) in SHAPES.iter().enumerate() {
            let numel: usize = shape.iter().product();
            let features = *shape.last().unwrap();
            let x_host = inputs(numel, 100 + s as u64);
            let mut r = rng(200 + s as u64);
            let dy_host: Vec<f32> = (0..numel).map(|_| r.random_range(-1.0f32..1.0)).collect();
            let x = Tensor::from_slice(gpu(), &x_host, shape.to_vec()).unwrap();
            let dy = Tensor::from_slice(gpu(), &dy_host, shape.to_vec()).unwrap();
            let setup = prelu_setup(features, 10);
            let state = ActivationState {
                prelu_slopes: Some(&setup.slopes),
                training,
                seed: 3,
                step: 11,
            };
            let params = ActivationParams {
                prelu_slopes: Some(&setup.slopes_host),
                training,
                seed: 3,
                step: 11,
                features,
            };
            let dx = activation_backward(&x, &dy, activation, &state)
                .unwrap()
                .to_vec()
                .unwrap();
            let reference =
                cpu::activation_backward(activation, &x_host, &dy_host, &params).unwrap();
            let (abs, rel) = tolerance(activation, training);
            let what = format!(
                "{} backward {shape:?} training={training}",
                activation.name()
            );
            let worst = check(&dx, &reference, (abs, rel + U), &what);
            eprintln!("{what}: max error {worst:e}");
        }
    }
}

/// Central differences of the oracle's forward in f64 at points away from kinks.
fn oracle_derivative_matches_finite_differences(activation: Activation) {
    let slopes = [0.3f32];
    let params = ActivationParams {
        prelu_slopes: Some(&slopes),
        features: 1,
        ..Default::default()
    };
    let mut r = rng(77);
    for i in 0..200 {
        let x: f64 = r.random_range(-5.0..5.0);
        if x.abs() < 1e-2 {
            continue; // the kink of the piecewise activations
        }
        let h = 1e-6;
        let numeric = (cpu::activation_value(activation, x + h, &params, i)
            - cpu::activation_value(activation, x - h, &params, i))
            / (2.0 * h);
        let analytic = cpu::activation_derivative(activation, x, &params, i).unwrap();
        // Central differences err by O(h²·f''') plus rounding O(ε/h) ≈ 1e-10.
        assert!(
            (numeric - analytic).abs() <= 1e-7 * (1.0 + analytic.abs()),
            "{}: at x = {x}: finite differences {numeric} vs derivative {analytic}",
            activation.name()
        );
    }
}

macro_rules! activation_tests {
    ($($activation:expr => $forward:ident, $backward:ident, $fd:ident;)*) => {$(
        #[test]
        fn $forward() {
            forward_matches_cpu($activation);
        }

        #[test]
        fn $backward() {
            backward_matches_cpu($activation);
        }

        #[test]
        fn $fd() {
            oracle_derivative_matches_finite_differences($activation);
        }
    )*};
}

activation_tests! {
    Activation::Identity => identity_forward_matches_cpu, identity_backward_matches_cpu, identity_oracle_gradient_matches_finite_differences;
    Activation::Relu => relu_forward_matches_cpu, relu_backward_matches_cpu, relu_oracle_gradient_matches_finite_differences;
    Activation::LEAKY_RELU => leaky_relu_forward_matches_cpu, leaky_relu_backward_matches_cpu, leaky_relu_oracle_gradient_matches_finite_differences;
    Activation::Prelu => prelu_forward_matches_cpu, prelu_backward_matches_cpu, prelu_oracle_gradient_matches_finite_differences;
    Activation::RRELU => rrelu_forward_matches_cpu, rrelu_backward_matches_cpu, rrelu_oracle_gradient_matches_finite_differences;
    Activation::ELU => elu_forward_matches_cpu, elu_backward_matches_cpu, elu_oracle_gradient_matches_finite_differences;
    Activation::Sigmoid => sigmoid_forward_matches_cpu, sigmoid_backward_matches_cpu, sigmoid_oracle_gradient_matches_finite_differences;
    Activation::Tanh => tanh_forward_matches_cpu, tanh_backward_matches_cpu, tanh_oracle_gradient_matches_finite_differences;
    Activation::Gelu => gelu_forward_matches_cpu, gelu_backward_matches_cpu, gelu_oracle_gradient_matches_finite_differences;
    Activation::GeluTanh => gelu_tanh_forward_matches_cpu, gelu_tanh_backward_matches_cpu, gelu_tanh_oracle_gradient_matches_finite_differences;
}

#[test]
fn step_forward_matches_cpu() {
    forward_matches_cpu(Activation::STEP);
    forward_matches_cpu(Activation::Step { threshold: 0.5 });
}

#[test]
fn step_backward_is_a_no_gradient_error() {
    let x = Tensor::from_slice(gpu(), &[1.0, -1.0], [2]).unwrap();
    let error = activation_backward(&x, &x, Activation::STEP, &Default::default()).unwrap_err();
    assert!(matches!(error, Error::NoGradient { .. }), "{error:?}");
    assert!(error.to_string().contains("step"), "{error}");
}

#[test]
fn prelu_slope_grad_matches_cpu() {
    // 300×300 is past lavapipe's 65535-iteration loop limit for a shared slope.
    for shape in [[1usize, 1], [7, 13], [64, 128], [1000, 37], [300, 300]] {
        let numel = shape[0] * shape[1];
        let x_host = inputs(numel, 5);
        let mut r = rng(6);
        let dy_host: Vec<f32> = (0..numel).map(|_| r.random_range(-1.0f32..1.0)).collect();
        let x = Tensor::from_slice(gpu(), &x_host, shape).unwrap();
        let dy = Tensor::from_slice(gpu(), &dy_host, shape).unwrap();
        for slope_count in [1, shape[1]] {
            let slopes =
                Tensor::from_slice(gpu(), &vec![0.25; slope_count], [slope_count]).unwrap();
            let grad = prelu_slope_grad(&x, &dy, &slopes)
                .unwrap()
                .to_vec()
                .unwrap();
            let reference = cpu::prelu_slope_grad(&x_host, &dy_host, slope_count, shape[1]);
            // A sum of up to `numel` products: γ_n·Σ|dy·x| ≤ γ_n·n·max|x|, inputs ≤ 100.
            let terms = numel / slope_count;
            let abs = common::gamma(terms + 1) * terms as f64 * 100.0;
            check(
                &grad,
                &reference,
                (abs, 0.0),
                &format!("prelu slope grad {shape:?}/{slope_count}"),
            );
        }
    }
}

#[test]
fn prelu_without_slopes_or_with_the_wrong_count_is_an_error() {
    let x = Tensor::from_slice(gpu(), &[1.0; 6], [2, 3]).unwrap();
    let error = activation_forward(&x, Activation::Prelu, &Default::default()).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    let slopes = Tensor::from_slice(gpu(), &[0.25; 2], [2]).unwrap();
    let state = ActivationState {
        prelu_slopes: Some(&slopes),
        ..Default::default()
    };
    let error = activation_forward(&x, Activation::Prelu, &state)
        .unwrap_err()
        .to_string();
    assert!(error.contains("[3]") && error.contains("[2]"), "{error}");
}

#[test]
fn rrelu_training_is_reproducible_and_draws_slopes_in_range() {
    let x_host = vec![-1.0f32; 4096];
    let x = Tensor::from_slice(gpu(), &x_host, [4096]).unwrap();
    let run = |seed, step| {
        let state = ActivationState {
            training: true,
            seed,
            step,
            ..Default::default()
        };
        activation_forward(&x, Activation::RRELU, &state)
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let first = run(1, 0);
    assert_eq!(first, run(1, 0), "same seed and step, different slopes");
    assert_ne!(first, run(1, 1), "a new step must draw new slopes");
    assert_ne!(first, run(2, 0), "a new seed must draw new slopes");
    // y = slope·(−1): every slope in [1/8, 1/3], and their mean near the middle.
    for &y in &first {
        assert!(
            (1.0 / 8.0..=1.0 / 3.0).contains(&-y),
            "slope {} out of range",
            -y
        );
    }
    let mean = -first.iter().map(|&y| f64::from(y)).sum::<f64>() / first.len() as f64;
    assert!(
        (mean - (1.0 / 8.0 + 1.0 / 3.0) / 2.0).abs() < 0.005,
        "mean slope {mean}"
    );
}

#[test]
fn activation_names_round_trip_and_unknown_names_are_errors() {
    for activation in Activation::ALL {
        assert_eq!(
            Activation::from_name(activation.name()).unwrap(),
            activation
        );
    }
    let error = Activation::from_name("swish").unwrap_err().to_string();
    assert!(error.contains("swish") && error.contains("relu"), "{error}");
}

#[test]
fn matmul_fused_activation_matches_cpu() {
    let (m, k, n) = (37, 29, 70);
    let mut r = rng(12);
    let a_host: Vec<f32> = (0..m * k).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let b_host: Vec<f32> = (0..k * n).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let bias_host: Vec<f32> = (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let a = Tensor::from_slice(gpu(), &a_host, [m, k]).unwrap();
    let b = Tensor::from_slice(gpu(), &b_host, [k, n]).unwrap();
    let bias = Tensor::from_slice(gpu(), &bias_host, [n]).unwrap();
    let setup = prelu_setup(n, 13);
    let linear = cpu::matmul(
        &a_host,
        &b_host,
        Some(&bias_host),
        Default::default(),
        m,
        k,
        n,
    );
    for activation in Activation::ALL {
        for kernel in MatmulKernel::ALL {
            let state = ActivationState {
                prelu_slopes: Some(&setup.slopes),
                training: true,
                seed: 5,
                step: 1,
            };
            let options = MatmulOptions {
                bias: Some(&bias),
                kernel: Some(kernel),
                activation,
                activation_state: state,
                ..Default::default()
            };
            let fused = matmul(&a, &b, &options).unwrap().to_vec().unwrap();
            let params = ActivationParams {
                prelu_slopes: Some(&setup.slopes_host),
                training: true,
                seed: 5,
                step: 1,
                features: n,
            };
            let reference = cpu::activation_forward(activation, &linear, &params);
            // The matmul's own error (|Σ| ≤ k + 1 here, γ_{k+2} relative) passes through an
            // activation whose slope is at most 1.13 (GELU), then the activation's tolerance.
            let (abs, rel) = tolerance(activation, true);
            let matmul_error = 1.13 * common::gamma(k + 3) * (k + 1) as f64;
            if matches!(activation, Activation::Step { .. }) {
                // A value within the matmul's error of the threshold may legitimately flip.
                let flips = fused
                    .iter()
                    .zip(&linear)
                    .zip(&reference)
                    .filter(|((g, l), r)| g != r && f64::from(**l).abs() > matmul_error);
                assert_eq!(flips.count(), 0, "step epilogue with {kernel:?}");
                continue;
            }
            check(
                &fused,
                &reference,
                (abs + matmul_error, rel),
                &format!("{} epilogue, {kernel:?}", activation.name()),
            );
        }
    }
}

#[test]
fn lecture_sigmoid_neuron_forward_and_gradients() {
    // f = σ(w0·x0 + w1·x1 + w2) at w0 = 2, x0 = −1, w1 = −3, x1 = −2, w2 = −3: the lecture's
    // computational-graph example. z = 1, f = σ(1) ≈ 0.73, df/dz = f(1 − f) ≈ 0.20.
    let device = gpu();
    let inputs = Tensor::from_slice(device, &[-1.0, -2.0, 1.0], [1, 3]).unwrap(); // x0, x1, 1
    let weights = Tensor::from_slice(device, &[2.0, -3.0, -3.0], [3, 1]).unwrap(); // w0, w1, w2
    let z = matmul(&inputs, &weights, &Default::default()).unwrap();
    let f = activation_forward(&z, Activation::Sigmoid, &Default::default()).unwrap();
    let f_value = f.to_vec().unwrap()[0];
    assert!((f_value - 0.731_058_6).abs() < 1e-6, "f = {f_value}");
    assert_eq!(format!("{f_value:.2}"), "0.73");

    let one = Tensor::from_slice(device, &[1.0], [1, 1]).unwrap();
    let dz = activation_backward(&z, &one, Activation::Sigmoid, &Default::default()).unwrap();
    // dL/dw = inputsᵀ·dz (3×1) and dL/dx = dz·weightsᵀ (1×3).
    let dw = matmul(
        &inputs,
        &dz,
        &MatmulOptions::form(wgsl_nn::matmul::MatmulForm::AtB),
    )
    .unwrap();
    let dx = matmul(
        &dz,
        &weights,
        &MatmulOptions::form(wgsl_nn::matmul::MatmulForm::ABt),
    )
    .unwrap();
    let dw = dw.to_vec().unwrap();
    let dx = dx.to_vec().unwrap();
    let rounded = |v: f32| format!("{v:.2}");
    // (w0, x0, w1, x1, w2) ≈ (−0.20, 0.39, −0.39, −0.59, 0.20)
    assert_eq!(
        [
            rounded(dw[0]),
            rounded(dx[0]),
            rounded(dw[1]),
            rounded(dx[1]),
            rounded(dw[2])
        ],
        ["-0.20", "0.39", "-0.39", "-0.59", "0.20"]
    );
}

#[test]
fn rrelu_set_rng_draws_new_slopes_without_rebuilding() {
    use wgsl_nn::activation::ActivationKernel;
    let x = Tensor::from_slice(gpu(), &[-1.0; 256], [256]).unwrap();
    let y = Tensor::uninit(gpu(), [256]).unwrap();
    let state = ActivationState {
        training: true,
        seed: 1,
        step: 0,
        ..Default::default()
    };
    let kernel = ActivationKernel::forward(&x, &y, Activation::RRELU, &state).unwrap();
    let run = || {
        let mut encoder = gpu().encoder();
        kernel.record(&mut encoder);
        encoder.submit().unwrap();
        y.to_vec().unwrap()
    };
    let first = run();
    kernel.set_rng(1, 1);
    let second = run();
    assert_ne!(first, second, "a new step must draw new slopes");
    kernel.set_rng(1, 0);
    assert_eq!(run(), first, "the same key must draw the same slopes");
}

#[test]
fn prelu_oracle_slope_gradient_matches_finite_differences() {
    // L(a) = Σ dy·prelu_a(x) for one shared slope and per-feature slopes.
    let x = [-1.5f32, 0.5, -0.25, 2.0, -3.0, 0.0];
    let dy = [0.3f32, -0.7, 0.2, 0.9, -0.4, 0.6];
    for features in [1usize, 3] {
        let slopes: Vec<f32> = (0..features).map(|j| 0.1 + 0.2 * j as f32).collect();
        let objective = |slopes: &[f64]| -> f64 {
            x.iter()
                .zip(&dy)
                .enumerate()
                .map(|(i, (&v, &g))| {
                    let a = slopes[if slopes.len() == 1 { 0 } else { i % 3 }];
                    let v = f64::from(v);
                    f64::from(g) * if v > 0.0 { v } else { a * v }
                })
                .sum()
        };
        let grad = cpu::prelu_slope_grad(&x, &dy, features, 3);
        for j in 0..features {
            let mut plus: Vec<f64> = slopes.iter().map(|&s| f64::from(s)).collect();
            let mut minus = plus.clone();
            plus[j] += 1e-6;
            minus[j] -= 1e-6;
            let numeric = (objective(&plus) - objective(&minus)) / 2e-6;
            assert!(
                (numeric - f64::from(grad[j])).abs() < 1e-6,
                "slope {j}: {numeric} vs {}",
                grad[j]
            );
        }
    }
}
