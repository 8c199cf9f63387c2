//! The error bounds GPU results are held to against the oracle, derived from each op's
//! floating-point arithmetic. One definition, shared by the integration tests (`tests/`) and
//! the in-browser kernels check ([`crate::conformance`]), so both hold every adapter to the
//! same bounds.

use crate::activation::Activation;
use crate::matmul::MatmulForm;

/// Unit roundoff of f32: the relative error of one rounding.
pub const F32_UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;

/// γₙ = n·u / (1 − n·u): the classic bound on the relative error of a sum of n products in
/// any order (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * F32_UNIT_ROUNDOFF;
    nu / (1.0 - nu)
}

/// Each element's bound for sums of `terms` products in any order, against an oracle's
/// `reference` (the exact value rounded once): γ_{terms+2}·Σ|terms| + u·|reference|, with
/// `magnitude` the same sums over the operands' absolute values.
pub fn product_bounds(reference: &[f32], magnitude: &[f32], terms: usize) -> Vec<f64> {
    reference
        .iter()
        .zip(magnitude)
        .map(|(&r, &m)| gamma(terms + 2) * f64::from(m) + F32_UNIT_ROUNDOFF * f64::from(r).abs())
        .collect()
}

/// Checks `gpu` against `reference` element by element: |gpu − ref| ≤ `bound[i]`. Returns the
/// largest error and, on failure, the first offending index with its values. A NaN fails.
pub fn check_within(gpu: &[f32], reference: &[f32], bound: &[f64]) -> Result<f64, String> {
    if gpu.len() != reference.len() || bound.len() != reference.len() {
        return Err(format!(
            "lengths differ: {} results, {} reference values, {} bounds",
            gpu.len(),
            reference.len(),
            bound.len()
        ));
    }
    let mut worst = 0.0f64;
    for (i, ((&g, &r), &b)) in gpu.iter().zip(reference).zip(bound).enumerate() {
        let error = (f64::from(g) - f64::from(r)).abs();
        // Written so that a NaN error fails too.
        if error.is_nan() || error > b {
            return Err(format!(
                "element {i}: gpu {g} vs reference {r}, |error| {error:e} > bound {b:e}"
            ));
        }
        worst = worst.max(error);
    }
    Ok(worst)
}

/// [`check_within`] with the bound `abs + rel·|ref|` for every element.
pub fn check_relative(gpu: &[f32], reference: &[f32], abs: f64, rel: f64) -> Result<f64, String> {
    let bound: Vec<f64> = reference
        .iter()
        .map(|&r| abs + rel * f64::from(r).abs())
        .collect();
    check_within(gpu, reference, &bound)
}

/// The oracle's `op(A)·op(B) (+ bias)` and each element's error bound for a sum of `terms`
/// products: (γ_terms + 2u)·Σₖ|aᵢₖ·bₖⱼ|. The scale Σ|a||b| is itself the oracle's product of
/// |A| and |B|, rounded once (one more u, covered by the 2u). A missing or doubled term (an
/// off-by-one at a tile edge) is about Σ/K, far above K·u·Σ.
pub fn matmul_reference_and_bound(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    form: MatmulForm,
    (m, k, n): (usize, usize, usize),
    terms: usize,
) -> (Vec<f32>, Vec<f64>) {
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
    let reference = super::matmul(a, b, bias, form, m, k, n);
    let abs_bias = bias.map(abs);
    let scale = super::matmul(&abs(a), &abs(b), abs_bias.as_deref(), form, m, k, n);
    let factor = gamma(terms) + 2.0 * F32_UNIT_ROUNDOFF;
    let bound = scale.iter().map(|&s| factor * f64::from(s)).collect();
    (reference, bound)
}

/// `(abs, rel)` tolerance of an activation's forward value, per element
/// |gpu − oracle| ≤ abs + rel·|oracle| (the backward adds one rounding: see
/// [`activation_backward`]).
///
/// - Piecewise-linear activations (identity, ReLU, leaky ReLU, PReLU, RReLU in evaluation,
///   step): one correctly rounded multiply at most, so rel = u, abs = 0; RReLU in training
///   also rounds its slope (a few operations in f32): rel = 8u.
/// - Transcendental ones use the device's exp/tanh, which Vulkan (and WebGPU) only require
///   to within 3 + 2|x| ulp: abs = 2e-6, rel = 2e-5 (a wrong formula is off by far more: the
///   tanh-approximate GELU differs from the exact one by up to 5e-4).
pub fn activation(activation: Activation, training: bool) -> (f64, f64) {
    const U: f64 = F32_UNIT_ROUNDOFF;
    match activation {
        Activation::Rrelu { .. } if training => (0.0, 8.0 * U),
        Activation::Identity
        | Activation::Relu
        | Activation::LeakyRelu { .. }
        | Activation::Prelu
        | Activation::Rrelu { .. }
        | Activation::Step { .. } => (0.0, U),
        _ => (2e-6, 2e-5),
    }
}

/// `(abs, rel)` tolerance of an activation's backward pass, `dy · f'(x)` with |dy| ≤ 1: the
/// forward bounds plus one rounding.
pub fn activation_backward(activation: Activation, training: bool) -> (f64, f64) {
    let (abs, rel) = self::activation(activation, training);
    (abs, rel + F32_UNIT_ROUNDOFF)
}

/// `(abs, rel)` tolerance of softmax and log-softmax outputs: the device's exp/log are
/// accurate to a few ulp; log-softmax values reach −40 for logits within ±20, so 8u
/// relative plus the exp/log error.
pub fn softmax() -> (f64, f64) {
    (4e-6, 8.0 * F32_UNIT_ROUNDOFF + 1e-6)
}

/// `(abs, rel)` tolerance of an unweighted mean cross-entropy over `rows` rows of logits in
/// [−spread, spread]: each term carries 8u·spread + 4e-6 of the device's exp/log error, and
/// the sum γ_rows relative.
pub fn mean_cross_entropy(spread: f64, rows: usize) -> (f64, f64) {
    (8.0 * F32_UNIT_ROUNDOFF * spread + 4e-6, gamma(rows))
}

/// Tolerance of a loss's gradient (q − δ and the like), per element, scaled by the
/// reduction's `1/n`: 2e-6·scale + 1e-5·|g|.
pub fn loss_gradient(scale: f64) -> (f64, f64) {
    (2e-6 * scale, 1e-5)
}

/// Bound on a parameter after `steps` optimiser steps against the f64 oracle (whose state
/// is rounded to f32 between steps as the device's is): each step's update is a handful of
/// f32 operations, so the parameters may drift by a few ulp per step, 8·n·u·(max|p| + 1) for
/// parameters and updates within [−1, 1].
pub fn optimizer(steps: usize) -> f64 {
    8.0 * steps as f64 * F32_UNIT_ROUNDOFF * 2.0
}

/// Bound on a sum of `values` in any order: γₙ·Σ|x| plus the oracle's own rounding.
pub fn sum(values: &[f32]) -> f64 {
    let abs: f64 = values.iter().map(|&v| f64::from(v).abs()).sum();
    (gamma(values.len()) + F32_UNIT_ROUNDOFF) * abs
}

/// Bound on the weights after a few captured training steps against the oracle's graph: the
/// rounding differences of two summation orders, amplified by training (measured ~3e-7 of
/// the weights' scale after 20 steps); a wrong gradient is off by lr·grad, ~1e-2.
pub const TRAINING_STEPS_RELATIVE: f32 = 1e-5;
