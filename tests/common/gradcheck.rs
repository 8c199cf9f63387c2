//! Gradient checks: a scalar function of some inputs on the GPU through autograd against
//! central differences of its f64 CPU twin (the harness of `tests/autograd.rs`, shared with the
//! tests of other ops).
//!
//! Tolerance: 4e-5·max|g| + 1e-6 per tensor, set from measurement (`tests/autograd.rs` says
//! how); the central differences run in f64 with h = 1e-5, exact to ~1e-9.

use rand::Rng;
use wgsl_nn::autograd::Var;

use super::{gpu, rng};

pub type GpuFn = Box<dyn Fn(&[Var]) -> wgsl_nn::Result<Var>>;
pub type CpuFn = Box<dyn Fn(&[Vec<f64>]) -> f64>;

/// A scalar function of some inputs, on the GPU through autograd and on the CPU in f64.
pub struct Case {
    pub name: String,
    pub inputs: Vec<(Vec<usize>, Vec<f32>)>,
    pub gpu: GpuFn,
    pub cpu: CpuFn,
}

/// Values in [-1, 1) kept at least 0.05 away from 0, so no input sits on a kink (ReLU, L1)
/// within the finite-difference step.
pub fn away_from_zero(seed: u64, len: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..len)
        .map(|_| {
            let v: f32 = r.random_range(0.05..1.0);
            if r.random_bool(0.5) { v } else { -v }
        })
        .collect()
}

/// Fixed random weights: the scalar checked is Σ wᵢ·outᵢ, so every output element gets its
/// own upstream gradient and a transposed or shuffled rule cannot pass.
pub fn projection(len: usize) -> Vec<f32> {
    away_from_zero(4242 + len as u64, len)
}

pub fn project_gpu(out: &Var) -> wgsl_nn::Result<Var> {
    let weights = Var::from_slice(
        out.device(),
        &projection(out.numel()),
        out.shape().clone(),
        false,
    )?;
    out.mul(&weights)?.sum()
}

pub fn project_cpu(out: &[f64]) -> f64 {
    out.iter()
        .zip(projection(out.len()))
        .map(|(o, w)| o * f64::from(w))
        .sum()
}

pub fn check(case: &Case, context: &str) {
    let vars: Vec<Var> = case
        .inputs
        .iter()
        .map(|(shape, data)| Var::from_slice(gpu(), data, shape.clone(), true).unwrap())
        .collect();
    let out = (case.gpu)(&vars)
        .unwrap_or_else(|e| panic!("{} {context}: forward failed: {e}", case.name));
    let base: Vec<Vec<f64>> = case
        .inputs
        .iter()
        .map(|(_, d)| d.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let value = out.item().unwrap();
    let expected = (case.cpu)(&base);
    assert!(
        (f64::from(value) - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
        "{} {context}: forward {value} vs {expected}",
        case.name
    );
    out.backward().unwrap();
    for (i, var) in vars.iter().enumerate() {
        let got = var
            .grad_vec()
            .unwrap()
            .expect("a leaf that requires grad has a gradient");
        let numeric: Vec<f64> = (0..base[i].len())
            .map(|j| {
                let h = 1e-5;
                let mut plus = base.clone();
                plus[i][j] += h;
                let mut minus = base.clone();
                minus[i][j] -= h;
                ((case.cpu)(&plus) - (case.cpu)(&minus)) / (2.0 * h)
            })
            .collect();
        let scale = numeric.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let bound = 4e-5 * scale + 1e-6;
        for (j, (&g, &n)) in got.iter().zip(&numeric).enumerate() {
            let error = (f64::from(g) - n).abs();
            assert!(
                error <= bound,
                "{} {context}: input {i} element {j}: autograd {g} vs finite differences {n} \
                 (|error| {error:e} > {bound:e})",
                case.name
            );
        }
    }
}

pub fn case(
    name: &str,
    inputs: Vec<(Vec<usize>, Vec<f32>)>,
    gpu: impl Fn(&[Var]) -> wgsl_nn::Result<Var> + 'static,
    cpu: impl Fn(&[Vec<f64>]) -> f64 + 'static,
) -> Case {
    Case {
        name: name.to_string(),
        inputs,
        gpu: Box::new(gpu),
        cpu: Box::new(cpu),
    }
}

pub fn input(shape: &[usize], seed: u64) -> (Vec<usize>, Vec<f32>) {
    (shape.to_vec(), away_from_zero(seed, shape.iter().product()))
}
