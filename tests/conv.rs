//! 2-D convolution on the device (`wgsl_nn::conv`) against the CPU oracle (`cpu::conv2d` and
//! its gradients, f64 accumulation), on both families that carry the convolution's index maps.
//!
//! Tolerance: each output is a sum of K products (plus a bias), so |gpu − exact| ≤
//! γ_{K+2}·Σ|terms| in any order, and Σ|terms| is the same product over the operands'
//! absolute values (the oracle computes it); the oracle itself is the exact value rounded once.
//! A missed or doubled tap at a padded edge is about one term, far above K·u·Σ for these K.

mod common;

use common::{check_within, gpu, random_vec, rng};
use wgsl_nn::conv::{
    Conv2dGeometry, Conv2dOptions, conv2d, conv2d_bias_grad, conv2d_input_grad, conv2d_weight_grad,
};
use wgsl_nn::cpu::conv as oracle;
use wgsl_nn::cpu::tolerance::product_bounds as bounds;
use wgsl_nn::matmul::MatmulKernel;
use wgsl_nn::{Error, Tensor};

/// (input [N, C, H, W], weight [Co, C, KH, KW], stride, padding, dilation).
type Case = (
    [usize; 4],
    [usize; 4],
    (usize, usize),
    (usize, usize),
    (usize, usize),
);

/// 1×1 and 5×5 kernels, stride 2, padding, dilation, odd sizes, 1, 3 and 7 channels, batch 1.
const CASES: [Case; 6] = [
    ([1, 1, 1, 1], [1, 1, 1, 1], (1, 1), (0, 0), (1, 1)),
    ([2, 3, 7, 6], [5, 3, 5, 5], (1, 1), (2, 2), (1, 1)),
    ([1, 7, 9, 11], [3, 7, 3, 2], (2, 3), (1, 0), (1, 1)),
    ([3, 2, 8, 8], [2, 2, 3, 3], (1, 1), (2, 1), (2, 1)),
    ([2, 1, 28, 28], [4, 1, 5, 5], (1, 1), (2, 2), (1, 1)),
    ([1, 3, 13, 13], [7, 3, 3, 3], (2, 2), (0, 0), (1, 1)),
];

fn options(case: &Case, kernel: MatmulKernel) -> Conv2dOptions {
    Conv2dOptions {
        stride: case.2,
        padding: case.3,
        dilation: case.4,
        kernel: Some(kernel),
    }
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// The four products of `case` on `kernel`, each checked against the oracle; returns their
/// bits.
fn run(case: &Case, kernel: MatmulKernel, seed: u64) -> Vec<Vec<u32>> {
    run_on(gpu(), case, kernel, seed)
}

/// [`run`] on `device`.
fn run_on(device: &wgsl_nn::Device, case: &Case, kernel: MatmulKernel, seed: u64) -> Vec<Vec<u32>> {
    let (input, weight) = (case.0, case.1);
    let g = Conv2dGeometry::new(&input, &weight, options(case, kernel)).unwrap();
    let mut r = rng(seed);
    let n = |s: [usize; 4]| s.iter().product::<usize>();
    let x_host = random_vec(&mut r, n(input));
    let w_host = random_vec(&mut r, n(weight));
    let b_host = random_vec(&mut r, g.out_channels);
    let dy_host = random_vec(&mut r, n(g.output_shape()));
    let x = Tensor::from_slice(device, &x_host, input).unwrap();
    let w = Tensor::from_slice(device, &w_host, weight).unwrap();
    let b = Tensor::from_slice(device, &b_host, [g.out_channels]).unwrap();
    let dy = Tensor::from_slice(device, &dy_host, g.output_shape()).unwrap();
    let opts = options(case, kernel);
    let what = format!("{case:?} on {kernel:?}");
    let taps = g.kernel.0 * g.kernel.1;
    let positions = g.batch * g.out_size.0 * g.out_size.1;

    let y = conv2d(&x, &w, Some(&b), opts).unwrap().to_vec().unwrap();
    let reference = oracle::conv2d(&x_host, &w_host, Some(&b_host), &g);
    let magnitude = oracle::conv2d(&abs(&x_host), &abs(&w_host), Some(&abs(&b_host)), &g);
    check_within(
        &y,
        &reference,
        &bounds(&reference, &magnitude, g.in_channels * taps + 1),
    )
    .unwrap_or_else(|e| panic!("forward {what}: {e}"));

    let dx = conv2d_input_grad(&dy, &w, input, opts)
        .unwrap()
        .to_vec()
        .unwrap();
    let reference = oracle::conv2d_input_grad(&dy_host, &w_host, &g);
    let magnitude = oracle::conv2d_input_grad(&abs(&dy_host), &abs(&w_host), &g);
    check_within(
        &dx,
        &reference,
        &bounds(&reference, &magnitude, g.out_channels * taps),
    )
    .unwrap_or_else(|e| panic!("input gradient {what}: {e}"));

    let dw = conv2d_weight_grad(&x, &dy, g.kernel, opts)
        .unwrap()
        .to_vec()
        .unwrap();
    let reference = oracle::conv2d_weight_grad(&x_host, &dy_host, &g);
    let magnitude = oracle::conv2d_weight_grad(&abs(&x_host), &abs(&dy_host), &g);
    check_within(&dw, &reference, &bounds(&reference, &magnitude, positions))
        .unwrap_or_else(|e| panic!("weight gradient {what}: {e}"));

    let db = conv2d_bias_grad(&dy).unwrap().to_vec().unwrap();
    let reference = oracle::conv2d_bias_grad(&dy_host, &g);
    let magnitude = oracle::conv2d_bias_grad(&abs(&dy_host), &g);
    check_within(&db, &reference, &bounds(&reference, &magnitude, positions))
        .unwrap_or_else(|e| panic!("bias gradient {what}: {e}"));

    [y, dx, dw, db]
        .into_iter()
        .map(|v| v.iter().map(|f| f.to_bits()).collect())
        .collect()
}

#[test]
fn every_product_matches_the_oracle_on_every_family_with_the_same_bits() {
    for (i, case) in CASES.iter().enumerate() {
        let blocked = run(case, MatmulKernel::Blocked, 100 + i as u64);
        let tiled = run(case, MatmulKernel::Tiled, 100 + i as u64);
        assert!(
            blocked == tiled,
            "{case:?}: Blocked and Tiled differ in bits"
        );
        let broadcast = run(case, MatmulKernel::Broadcast, 100 + i as u64);
        assert!(
            blocked == broadcast,
            "{case:?}: Blocked and Broadcast differ in bits"
        );
    }
}

#[test]
fn without_subgroups_the_cpu_kernels_fetch_every_column_to_the_same_bits() {
    // The kernels a browser without subgroups runs (SwiftShader): each lane fetches the eight
    // columns' values instead of receiving them by broadcast.
    let options = wgsl_nn::DeviceOptions::from_env()
        .unwrap()
        .without_subgroups();
    let device = wgsl_nn::Device::with_options(&options).unwrap();
    assert_eq!(device.subgroup_min_size(), None);
    for (i, case) in CASES.iter().enumerate() {
        let blocked = run(case, MatmulKernel::Blocked, 100 + i as u64);
        let fetched = run_on(&device, case, MatmulKernel::Broadcast, 100 + i as u64);
        assert!(
            blocked == fetched,
            "{case:?}: Blocked and the fetching kernels differ"
        );
    }
}

#[test]
fn weight_and_bias_gradients_summing_past_the_loop_limit_match_the_oracle() {
    // 1 × 300 × 250 positions: 75,000 terms per weight, past lavapipe's 65,535 loop
    // iterations, so the sum runs in passes; with non-negative values a pass left out would
    // drop a fifth of every sum, far outside the bound.
    let device = gpu();
    let (input, weight) = ([1, 1, 300, 250], [2, 1, 1, 1]);
    let mut r = rng(7);
    let x_host = abs(&random_vec(&mut r, 75_000));
    let dy_host = abs(&random_vec(&mut r, 150_000));
    let x = Tensor::from_slice(device, &x_host, input).unwrap();
    let dy = Tensor::from_slice(device, &dy_host, [1, 2, 300, 250]).unwrap();
    for kernel in [
        MatmulKernel::Blocked,
        MatmulKernel::Tiled,
        MatmulKernel::Broadcast,
    ] {
        let opts = Conv2dOptions {
            kernel: Some(kernel),
            ..Default::default()
        };
        let g = Conv2dGeometry::new(&input, &weight, opts).unwrap();
        let dw = conv2d_weight_grad(&x, &dy, (1, 1), opts)
            .unwrap()
            .to_vec()
            .unwrap();
        let reference = oracle::conv2d_weight_grad(&x_host, &dy_host, &g);
        check_within(&dw, &reference, &bounds(&reference, &reference, 75_000))
            .unwrap_or_else(|e| panic!("{kernel:?}: {e}"));
    }
    // The bias gradient sums as many terms, on the family the profile picks.
    let db = conv2d_bias_grad(&dy).unwrap().to_vec().unwrap();
    let g = Conv2dGeometry::new(&input, &weight, Conv2dOptions::default()).unwrap();
    let reference = oracle::conv2d_bias_grad(&dy_host, &g);
    check_within(&db, &reference, &bounds(&reference, &reference, 75_000))
        .unwrap_or_else(|e| panic!("bias gradient: {e}"));
}

#[test]
fn bad_shapes_are_errors_naming_both_shapes_before_anything_runs() {
    let device = gpu();
    let x = Tensor::zeros(device, [1, 3, 5, 5]).unwrap();
    let message = |w: [usize; 4], options: Conv2dOptions| -> String {
        let w = Tensor::zeros(device, w).unwrap();
        match conv2d(&x, &w, None, options) {
            Err(e @ (Error::Shape { .. } | Error::InvalidArgument(_))) => e.to_string(),
            other => panic!("{w:?}: expected a shape error, got {other:?}"),
        }
    };
    let default = Conv2dOptions::default();
    let too_big = message([2, 3, 7, 7], default);
    assert!(
        too_big.contains("[1, 3, 5, 5]") && too_big.contains("[2, 3, 7, 7]"),
        "{too_big}"
    );
    let channels = message([2, 4, 3, 3], default);
    assert!(
        channels.contains("3 input channels") && channels.contains("[2, 4, 3, 3]"),
        "{channels}"
    );
    let stride = message(
        [2, 3, 3, 3],
        Conv2dOptions {
            stride: (0, 1),
            ..default
        },
    );
    assert!(
        stride.contains("stride") && stride.contains("[1, 3, 5, 5]"),
        "{stride}"
    );
    // Padding makes room for the larger kernel.
    let padded = Conv2dOptions {
        padding: (1, 1),
        ..default
    };
    let w = Tensor::zeros(device, [2, 3, 7, 7]).unwrap();
    assert_eq!(
        conv2d(&x, &w, None, padded).unwrap().shape().dims(),
        [1, 2, 1, 1]
    );
    let forced = message(
        [2, 3, 3, 3],
        Conv2dOptions {
            kernel: Some(MatmulKernel::Texture),
            ..default
        },
    );
    assert!(forced.contains("Texture"), "{forced}");
}

#[test]
fn a_captured_convolution_step_ends_on_the_eager_steps_bits() {
    use wgsl_nn::autograd::{Var, VarOptimizer};
    use wgsl_nn::capture::{Fusion, capture};
    use wgsl_nn::optim::OptimizerConfig;
    let device = gpu();
    let mut r = rng(11);
    let x_host = random_vec(&mut r, 2 * 3 * 9 * 8);
    let w_host = random_vec(&mut r, 4 * 3 * 3 * 3);
    let b_host = random_vec(&mut r, 4);
    let leaves = || {
        let w = Var::from_slice(device, &w_host, [4, 3, 3, 3], true).unwrap();
        let b = Var::from_slice(device, &b_host, [4], true).unwrap();
        (w, b)
    };
    let x = Var::from_slice(device, &x_host, [2, 3, 9, 8], false).unwrap();
    let options = Conv2dOptions {
        stride: (2, 1),
        padding: (1, 1),
        ..Default::default()
    };
    let step = |w: &Var, b: &Var, opt: &mut VarOptimizer| -> wgsl_nn::Result<Var> {
        let loss = x.conv2d(w, Some(b), options)?.relu()?.sum()?;
        opt.zero_grad()?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    };
    let config = OptimizerConfig::sgd(0.05);
    let (w, b) = leaves();
    let mut opt = VarOptimizer::new(config, &[&w, &b]).unwrap();
    step(&w, &b, &mut opt).unwrap();
    let (cw, cb) = leaves();
    let mut copt = VarOptimizer::new(config, &[&cw, &cb]).unwrap();
    let (plan, _) = capture(device, &Fusion::all(), || step(&cw, &cb, &mut copt)).unwrap();
    assert!(
        plan.steps()
            .iter()
            .any(|s| s.contains("conv2d input") || s.contains("conv2d weight")),
        "{:?}",
        plan.steps()
    );
    plan.replay().unwrap();
    assert_eq!(w.to_vec().unwrap(), cw.to_vec().unwrap());
    assert_eq!(b.to_vec().unwrap(), cb.to_vec().unwrap());
    assert_ne!(w.to_vec().unwrap(), w_host, "the step moved the weights");
}
