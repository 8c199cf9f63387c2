//! Optimiser steps against the CPU oracle over several steps, state included.
//!
//! Tolerance: each step's update is a handful of f32 operations on the device against f64 on
//! the oracle (whose state is rounded to f32 between steps as the device's is), so the
//! parameters may drift by a few ulp per step: after n steps, |Δ| ≤ 8·n·u·(|p| + lr·|update|)
//! bounded here by 8·n·u·(max|p| + 1).

mod common;

use common::{gpu, random_vec, rng};
use wgsl_nn::optim::{Optimizer, OptimizerConfig};
use wgsl_nn::{Error, Tensor, cpu};

const STEPS: usize = 10;

fn run(config: OptimizerConfig) {
    let shapes: [&[usize]; 3] = [&[1], &[128, 784], &[10]];
    let mut r = rng(1);
    let mut host_params: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| random_vec(&mut r, s.iter().product()))
        .collect();
    let params: Vec<Tensor> = host_params
        .iter()
        .zip(shapes)
        .map(|(p, s)| Tensor::from_slice(gpu(), p, s.to_vec()).unwrap())
        .collect();
    let grads: Vec<Tensor> = shapes
        .iter()
        .map(|s| Tensor::zeros(gpu(), s.to_vec()).unwrap())
        .collect();
    let pairs: Vec<(&Tensor, &Tensor)> = params.iter().zip(&grads).collect();
    let mut optimizer = Optimizer::new(config, &pairs).unwrap();
    let mut states = vec![cpu::OptimizerState::default(); shapes.len()];
    for step in 0..STEPS {
        for (i, grad) in grads.iter().enumerate() {
            let g = random_vec(&mut r, host_params[i].len());
            grad.write(&g).unwrap();
            cpu::optimizer_step(&config, &mut host_params[i], &g, &mut states[i]);
        }
        optimizer.step().unwrap();
        let tol = wgsl_nn::cpu::tolerance::optimizer(step + 1);
        for (i, param) in params.iter().enumerate() {
            let got = param.to_vec().unwrap();
            for (j, (g, h)) in got.iter().zip(&host_params[i]).enumerate() {
                let error = (f64::from(*g) - f64::from(*h)).abs();
                assert!(
                    error <= tol,
                    "{config:?} step {step} param {i}[{j}]: gpu {g} vs oracle {h}"
                );
            }
        }
    }
    assert_eq!(optimizer.steps_taken(), STEPS as u64);
}

#[test]
fn sgd_step_matches_cpu() {
    run(OptimizerConfig::sgd(0.1));
    run(OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.0,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 0.01,
    });
}

#[test]
fn sgd_momentum_step_matches_cpu() {
    run(OptimizerConfig::momentum(0.05, 0.9));
    run(OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.9,
        dampening: 0.1,
        nesterov: false,
        weight_decay: 1e-3,
    });
}

#[test]
fn sgd_nesterov_step_matches_cpu() {
    run(OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
        weight_decay: 1e-3,
    });
}

#[test]
fn adam_step_matches_cpu() {
    run(OptimizerConfig::adam(1e-2));
    run(OptimizerConfig::Adam {
        lr: 1e-3,
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
        weight_decay: 0.01,
        decoupled: false,
    });
}

#[test]
fn adamw_step_matches_cpu() {
    run(OptimizerConfig::adamw(1e-2));
}

#[test]
fn optimizer_step_does_not_read_back() {
    let device = common::fresh_gpu();
    let p = Tensor::from_slice(&device, &[1.0; 100], [100]).unwrap();
    let g = Tensor::from_slice(&device, &[0.5; 100], [100]).unwrap();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(0.1), &[(&p, &g)]).unwrap();
    optimizer.step().unwrap();
    let before = device.counters();
    for _ in 0..5 {
        optimizer.step().unwrap();
    }
    let delta = device.counters() - before;
    assert_eq!(
        (
            delta.host_syncs,
            delta.bytes_read_back,
            delta.submits,
            delta.dispatches
        ),
        (0, 0, 5, 5)
    );
}

#[test]
fn invalid_hyper_parameters_are_errors() {
    let p = Tensor::from_slice(gpu(), &[1.0], [1]).unwrap();
    let g = Tensor::from_slice(gpu(), &[1.0], [1]).unwrap();
    for config in [
        OptimizerConfig::sgd(-1.0),
        OptimizerConfig::sgd(f32::NAN),
        OptimizerConfig::momentum(0.1, -0.5),
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        },
        OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: -1.0,
            weight_decay: 0.0,
            decoupled: false,
        },
    ] {
        let error = Optimizer::new(config, &[(&p, &g)]).unwrap_err();
        assert!(
            matches!(error, Error::InvalidArgument(_)),
            "{config:?}: {error:?}"
        );
    }
    assert!(matches!(
        Optimizer::new(OptimizerConfig::sgd(0.1), &[(&p, &p)]).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    let wrong = Tensor::from_slice(gpu(), &[1.0, 2.0], [2]).unwrap();
    assert!(matches!(
        Optimizer::new(OptimizerConfig::sgd(0.1), &[(&p, &wrong)]).unwrap_err(),
        Error::Shape { .. }
    ));
}
