//! Losses against the CPU oracle (which is itself checked by finite differences), extreme
//! inputs, label validation and the lecture's worked numbers.
//!
//! Tolerances: the device's exp/log are accurate to a few ulp (Vulkan: 3 + 2|x| ulp for exp),
//! so a term with inputs up to |z| carries ~8u·|z| + 4e-6 of absolute error; a loss sums
//! such terms (plus γₙ of the sum). Gradients q − δ are within 2e-6 + 1e-5·|g| per element,
//! scaled by the reduction's 1/n.

mod common;

use common::{F32_UNIT_ROUNDOFF, gamma, gpu, rng};
use rand::Rng;
use wgsl_nn::cpu;
use wgsl_nn::loss::{
    CrossEntropyOptions, Labels, PointwiseLoss, PointwiseLossKernel, Reduction, pointwise_loss,
    softmax, softmax_backward, softmax_cross_entropy,
};
use wgsl_nn::{Error, Tensor};

const U: f64 = F32_UNIT_ROUNDOFF;

fn assert_close(gpu: &[f32], reference: &[f32], abs: f64, rel: f64, what: &str) -> f64 {
    let mut worst = 0.0f64;
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let error = (f64::from(g) - f64::from(r)).abs();
        let bound = abs + rel * f64::from(r).abs();
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        assert!(
            error <= bound,
            "{what}: element {i}: gpu {g} vs oracle {r}, |error| {error:e} > {bound:e}"
        );
        worst = worst.max(error);
    }
    worst
}

fn logits(rows: usize, classes: usize, spread: f32, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..rows * classes)
        .map(|_| r.random_range(-spread..spread))
        .collect()
}

fn ce_case(rows: usize, classes: usize, spread: f32, weighted: bool, reduction: Reduction) {
    let device = gpu();
    let mut r = rng(rows as u64 * 31 + classes as u64);
    let z = logits(rows, classes, spread, 1);
    let labels_host: Vec<u32> = (0..rows)
        .map(|_| r.random_range(0..classes as u32))
        .collect();
    let weights_host: Vec<f32> = (0..classes).map(|_| r.random_range(0.1f32..2.0)).collect();
    let logits_t = Tensor::from_slice(device, &z, [rows, classes]).unwrap();
    let labels = Labels::new(device, &labels_host, classes).unwrap();
    let weights_t = Tensor::from_slice(device, &weights_host, [classes]).unwrap();
    let options = CrossEntropyOptions {
        weights: weighted.then_some(&weights_t),
        reduction,
        accumulate: false,
    };
    let (loss, dlogits) = softmax_cross_entropy(&logits_t, &labels, &options).unwrap();
    let loss = f64::from(loss.to_vec().unwrap()[0]);
    let dlogits = dlogits.to_vec().unwrap();
    let weights = weighted.then_some(&weights_host[..]);
    let (ref_loss, ref_grad) =
        cpu::softmax_cross_entropy(&z, &labels_host, classes, weights, reduction);

    let what =
        format!("cross-entropy {rows}x{classes} ±{spread} weighted={weighted} {reduction:?}");
    let norm = match reduction {
        Reduction::Sum => 1.0,
        Reduction::Mean => labels_host
            .iter()
            .map(|&l| {
                if weighted {
                    f64::from(weights_host[l as usize])
                } else {
                    1.0
                }
            })
            .sum(),
    };
    let max_w = if weighted { 2.0 } else { 1.0 };
    let loss_tol = rows as f64 * max_w / norm * (8.0 * U * f64::from(spread) + 4e-6)
        + gamma(rows) * ref_loss.abs();
    assert!(loss.is_finite(), "{what}: loss {loss}");
    assert!(
        (loss - ref_loss).abs() <= loss_tol,
        "{what}: loss {loss} vs {ref_loss} (tol {loss_tol:e})"
    );
    let grad_worst = assert_close(&dlogits, &ref_grad, 2e-6 * max_w / norm, 1e-5, &what);
    eprintln!(
        "{what}: |Δloss| {:e}, max |Δgrad| {grad_worst:e}",
        (loss - ref_loss).abs()
    );
}

#[test]
fn softmax_cross_entropy_matches_cpu() {
    for (rows, classes) in [(1, 1), (1, 10), (7, 13), (64, 10), (1000, 37)] {
        for weighted in [false, true] {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                ce_case(rows, classes, 5.0, weighted, reduction);
            }
        }
    }
}

#[test]
fn softmax_cross_entropy_is_stable_for_extreme_logits() {
    for reduction in [Reduction::Mean, Reduction::Sum] {
        ce_case(64, 10, 1000.0, false, reduction);
        ce_case(7, 13, 1e4, true, reduction);
    }
}

#[test]
fn softmax_cross_entropy_accumulates_into_the_loss() {
    let device = gpu();
    let z = logits(5, 3, 2.0, 4);
    let labels_host = [0, 1, 2, 1, 0];
    let logits_t = Tensor::from_slice(device, &z, [5, 3]).unwrap();
    let labels = Labels::new(device, &labels_host, 3).unwrap();
    let loss = Tensor::from_slice(device, &[10.0], [1]).unwrap();
    let dlogits = Tensor::uninit(device, [5, 3]).unwrap();
    let options = CrossEntropyOptions {
        accumulate: true,
        ..Default::default()
    };
    let kernel =
        wgsl_nn::loss::SoftmaxCrossEntropy::new(&logits_t, &labels, &dlogits, &loss, &options)
            .unwrap();
    let mut encoder = device.encoder();
    kernel.record(&mut encoder);
    kernel.record(&mut encoder);
    encoder.submit().unwrap();
    let (one, _) = cpu::softmax_cross_entropy(&z, &labels_host, 3, None, Reduction::Mean);
    let total = f64::from(loss.to_vec().unwrap()[0]);
    assert!(
        (total - (10.0 + 2.0 * one)).abs() < 1e-5,
        "{total} vs {}",
        10.0 + 2.0 * one
    );
}

#[test]
fn labels_out_of_range_are_rejected_before_any_kernel_runs() {
    let device = common::fresh_gpu();
    let before = device.counters();
    let error = Labels::new(&device, &[3, 9, 10, 2], 10).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("label 10") && message.contains("index 2"),
        "{message}"
    );
    let after = device.counters() - before;
    assert_eq!(
        (after.submits, after.dispatches, after.bytes_uploaded),
        (0, 0, 0)
    );
}

#[test]
fn cross_entropy_shape_mismatches_name_both_shapes() {
    let device = gpu();
    let logits_t = Tensor::uninit(device, [4, 10]).unwrap();
    let labels = Labels::new(device, &[1, 2, 3], 10).unwrap();
    let error = softmax_cross_entropy(&logits_t, &labels, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[4, 10]") && error.contains("3 labels"),
        "{error}"
    );
    let labels = Labels::new(device, &[1, 2, 3, 4], 7).unwrap();
    assert!(matches!(
        softmax_cross_entropy(&logits_t, &labels, &Default::default()).unwrap_err(),
        Error::Shape { .. }
    ));
}

#[test]
fn oracle_cross_entropy_gradient_matches_finite_differences() {
    let z = logits(3, 5, 3.0, 8);
    let labels = [4u32, 0, 2];
    let weights = [0.5f32, 1.0, 1.5, 2.0, 0.7];
    for weighted in [false, true] {
        let w = weighted.then_some(&weights[..]);
        let (_, grad) = cpu::softmax_cross_entropy(&z, &labels, 5, w, Reduction::Mean);
        for i in 0..z.len() {
            let h = 1e-3f32;
            let (mut plus, mut minus) = (z.clone(), z.clone());
            plus[i] += h;
            minus[i] -= h;
            let lp = cpu::softmax_cross_entropy(&plus, &labels, 5, w, Reduction::Mean).0;
            let lm = cpu::softmax_cross_entropy(&minus, &labels, 5, w, Reduction::Mean).0;
            // The step actually taken, after rounding z ± h to f32.
            let numeric = (lp - lm) / (f64::from(plus[i]) - f64::from(minus[i]));
            assert!(
                (numeric - f64::from(grad[i])).abs() < 1e-5,
                "element {i}: {numeric} vs {}",
                grad[i]
            );
        }
    }
}

#[test]
fn softmax_and_log_softmax_match_cpu() {
    for (rows, cols) in [(1, 1), (7, 13), (64, 10), (300, 37)] {
        for log in [false, true] {
            let z = logits(rows, cols, 20.0, 3);
            let x = Tensor::from_slice(gpu(), &z, [rows, cols]).unwrap();
            let y = softmax(&x, log).unwrap().to_vec().unwrap();
            let reference = cpu::softmax(&z, cols, log);
            // log-softmax values reach −40 here: 8u relative plus the exp/log error.
            let (abs, rel) = wgsl_nn::cpu::tolerance::softmax();
            assert_close(
                &y,
                &reference,
                abs,
                rel,
                &format!("softmax log={log} {rows}x{cols}"),
            );

            let mut r = rng(5);
            let dy_host: Vec<f32> = (0..rows * cols)
                .map(|_| r.random_range(-1.0f32..1.0))
                .collect();
            let y_t = Tensor::from_slice(gpu(), &reference, [rows, cols]).unwrap();
            let dy = Tensor::from_slice(gpu(), &dy_host, [rows, cols]).unwrap();
            let dx = softmax_backward(&y_t, &dy, log).unwrap().to_vec().unwrap();
            let dx_ref = cpu::softmax_backward(&reference, &dy_host, cols, log);
            let abs = gamma(cols + 2) * cols as f64 * 2.0 + 4e-6;
            assert_close(
                &dx,
                &dx_ref,
                abs,
                1e-5,
                &format!("softmax backward log={log} {rows}x{cols}"),
            );
        }
    }
}

#[test]
fn oracle_softmax_backward_matches_finite_differences() {
    // The objective Σ y(z)·dy in f64 (the oracle's forward rounds its output to f32, which
    // would swamp a finite difference).
    fn objective(z: &[f64], dy: &[f32], cols: usize, log: bool) -> f64 {
        z.chunks(cols)
            .zip(dy.chunks(cols))
            .map(|(row, dy)| {
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
                row.iter()
                    .zip(dy)
                    .map(|(v, &g)| {
                        let y = if log {
                            v - m - s.ln()
                        } else {
                            (v - m).exp() / s
                        };
                        y * f64::from(g)
                    })
                    .sum::<f64>()
            })
            .sum()
    }
    let z = logits(2, 4, 2.0, 9);
    let dy = [0.3f32, -0.2, 0.5, 0.1, -0.4, 0.25, 0.05, -0.15];
    for log in [false, true] {
        let y = cpu::softmax(&z, 4, log);
        let dx = cpu::softmax_backward(&y, &dy, 4, log);
        let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        for i in 0..z.len() {
            let h = 1e-5;
            let (mut plus, mut minus) = (z64.clone(), z64.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric =
                (objective(&plus, &dy, 4, log) - objective(&minus, &dy, 4, log)) / (2.0 * h);
            // dx is computed from the f32-rounded y: a few ulp.
            assert!(
                (numeric - f64::from(dx[i])).abs() < 1e-6,
                "log={log} element {i}: {numeric} vs {}",
                dx[i]
            );
        }
    }
}

/// Inputs for each pointwise loss, extremes included.
fn pointwise_inputs(kind: PointwiseLoss, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    match kind {
        PointwiseLoss::Bce => {
            let mut p: Vec<f32> = (0..n).map(|_| r.random_range(0.0f32..1.0)).collect();
            let mut t: Vec<f32> = (0..n)
                .map(|_| if r.random_bool(0.5) { 1.0 } else { 0.0 })
                .collect();
            // Probabilities 0 and 1, with agreeing and disagreeing targets.
            for (i, (pv, tv)) in [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
                .into_iter()
                .enumerate()
                .take(n)
            {
                p[i] = pv;
                t[i] = tv;
            }
            (p, t)
        }
        PointwiseLoss::BceWithLogits => {
            let mut x: Vec<f32> = (0..n).map(|_| r.random_range(-8.0f32..8.0)).collect();
            let t: Vec<f32> = (0..n).map(|_| r.random_range(0.0f32..1.0)).collect();
            for (i, v) in [100.0, -100.0, 30.0, -30.0, 0.0]
                .into_iter()
                .enumerate()
                .take(n)
            {
                x[i] = v;
            }
            (x, t)
        }
        _ => {
            let mut x: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..3.0)).collect();
            let t: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..3.0)).collect();
            if n > 1 {
                x[1] = t[1]; // L1's kink
            }
            (x, t)
        }
    }
}

fn pointwise_case(kind: PointwiseLoss) {
    for n in [1usize, 2, 7, 64, 1000, 100_003] {
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let (x_host, t_host) = pointwise_inputs(kind, n, n as u64);
            let x = Tensor::from_slice(gpu(), &x_host, [n]).unwrap();
            let t = Tensor::from_slice(gpu(), &t_host, [n]).unwrap();
            let (loss, grad) = pointwise_loss(kind, &x, &t, reduction).unwrap();
            let loss = f64::from(loss.to_vec().unwrap()[0]);
            let grad = grad.to_vec().unwrap();
            let (ref_loss, ref_grad) = cpu::pointwise_loss(kind, &x_host, &t_host, reduction);
            let scale = if reduction == Reduction::Mean {
                1.0 / n as f64
            } else {
                1.0
            };
            let what = format!("{kind:?} n={n} {reduction:?}");
            // Terms are at most ~100 (BCE's clamp) and carry ~1e-5 relative device error;
            // the sum adds γₙ.
            let sum_abs: f64 = cpu::pointwise_loss(kind, &x_host, &t_host, Reduction::Sum)
                .0
                .abs();
            let tol = (gamma(n) + 1e-5) * sum_abs * scale + 1e-6;
            assert!(loss.is_finite(), "{what}: loss {loss}");
            assert!(
                (loss - ref_loss).abs() <= tol,
                "{what}: loss {loss} vs {ref_loss} (tol {tol:e})"
            );
            // BCE's gradient at p ∈ {0, 1} divides by the 1e-12 clamp: huge, but finite and
            // equal to PyTorch's up to rounding.
            let worst = assert_close(&grad, &ref_grad, 2e-6 * scale, 1e-5, &what);
            eprintln!(
                "{what}: |Δloss| {:e}, max |Δgrad| {worst:e}",
                (loss - ref_loss).abs()
            );
        }
    }
}

#[test]
fn mse_loss_matches_cpu() {
    pointwise_case(PointwiseLoss::Mse);
}

#[test]
fn l1_loss_matches_cpu() {
    pointwise_case(PointwiseLoss::L1);
}

#[test]
fn bce_loss_matches_cpu() {
    pointwise_case(PointwiseLoss::Bce);
}

#[test]
fn bce_with_logits_loss_matches_cpu() {
    pointwise_case(PointwiseLoss::BceWithLogits);
}

#[test]
fn oracle_pointwise_gradients_match_finite_differences() {
    for kind in [
        PointwiseLoss::Mse,
        PointwiseLoss::L1,
        PointwiseLoss::Bce,
        PointwiseLoss::BceWithLogits,
    ] {
        let (x, t): (Vec<f32>, Vec<f32>) = match kind {
            PointwiseLoss::Bce => (vec![0.2, 0.7, 0.45], vec![1.0, 0.0, 0.3]),
            _ => (vec![0.5, -1.25, 2.0], vec![1.0, 0.25, -0.5]),
        };
        let (_, grad) = cpu::pointwise_loss(kind, &x, &t, Reduction::Mean);
        for i in 0..x.len() {
            let h = 1e-3f32;
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric = (cpu::pointwise_loss(kind, &plus, &t, Reduction::Mean).0
                - cpu::pointwise_loss(kind, &minus, &t, Reduction::Mean).0)
                / (f64::from(plus[i]) - f64::from(minus[i]));
            assert!(
                (numeric - f64::from(grad[i])).abs() < 1e-4,
                "{kind:?} element {i}: {numeric} vs {}",
                grad[i]
            );
        }
    }
}

#[test]
fn lecture_mse_and_l1_numbers() {
    // The lecture's example: input [0.5, −0.25, 0.75], target [1, 0.25, 0.25].
    let device = gpu();
    let x = Tensor::from_slice(device, &[0.5, -0.25, 0.75], [3]).unwrap();
    let t = Tensor::from_slice(device, &[1.0, 0.25, 0.25], [3]).unwrap();
    let (mse, _) = pointwise_loss(PointwiseLoss::Mse, &x, &t, Reduction::Mean).unwrap();
    let (l1, _) = pointwise_loss(PointwiseLoss::L1, &x, &t, Reduction::Mean).unwrap();
    assert_eq!(mse.to_vec().unwrap(), vec![0.25]);
    assert_eq!(l1.to_vec().unwrap(), vec![0.5]);
}

#[test]
fn pointwise_loss_shape_mismatch_is_an_error() {
    let device = gpu();
    let x = Tensor::uninit(device, [3]).unwrap();
    let t = Tensor::uninit(device, [4]).unwrap();
    let error = pointwise_loss(PointwiseLoss::Mse, &x, &t, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(error.contains("[3]") && error.contains("[4]"), "{error}");
    let loss = Tensor::uninit(device, [2]).unwrap();
    let dx = Tensor::uninit(device, [3]).unwrap();
    let x2 = Tensor::uninit(device, [3]).unwrap();
    let error = PointwiseLossKernel::new(
        PointwiseLoss::L1,
        &x,
        &x2,
        &dx,
        &loss,
        Reduction::Sum,
        false,
    )
    .unwrap_err();
    assert!(matches!(error, Error::Shape { .. }), "{error:?}");
}

/// Columns past lavapipe's loop limit (65535 iterations per invocation, over all its loops).
const LONG_ROW: usize = 70_000;

#[test]
fn softmax_over_rows_past_the_loop_limit_matches_cpu() {
    // Bounds (n = cols; E = 8u, the exp/log error the tests above allow): the exp-sum s is
    // within γₙ + E of its exact value (positive terms), so softmax is within
    // γₙ + 2E + 2u relative and log-softmax within γₙ + E + 2u·(1 + |y|) absolute. With dy in
    // [0, 1) the backward sums (Σ dy·y, Σ dy) are sums of positive terms, within γₙ relative.
    // A loop that stops at the limit drops ~6% of every sum: far outside all of these.
    let (rows, cols) = (3, LONG_ROW);
    let gamma_n = gamma(cols);
    let e = 8.0 * U;
    let z = logits(rows, cols, 5.0, 17);
    let mut r = rng(18);
    let dy_host: Vec<f32> = (0..rows * cols)
        .map(|_| r.random_range(0.0f32..1.0))
        .collect();
    for log in [false, true] {
        let what = format!("softmax log={log} {rows}x{cols}");
        let x = Tensor::from_slice(gpu(), &z, [rows, cols]).unwrap();
        let y = softmax(&x, log).unwrap().to_vec().unwrap();
        let reference = cpu::softmax(&z, cols, log);
        let bound: Vec<f64> = reference
            .iter()
            .map(|&v| {
                let v = f64::from(v).abs();
                if log {
                    gamma_n + e + 2.0 * U * (1.0 + v)
                } else {
                    (gamma_n + 2.0 * e + 2.0 * U) * v
                }
            })
            .collect();
        common::check_within(&y, &reference, &bound).unwrap_or_else(|m| panic!("{what}: {m}"));

        let y_t = Tensor::from_slice(gpu(), &reference, [rows, cols]).unwrap();
        let dy = Tensor::from_slice(gpu(), &dy_host, [rows, cols]).unwrap();
        let dx = softmax_backward(&y_t, &dy, log).unwrap().to_vec().unwrap();
        let dx_ref = cpu::softmax_backward(&reference, &dy_host, cols, log);
        let mut bound = Vec::with_capacity(rows * cols);
        for row in 0..rows {
            let span = row * cols..(row + 1) * cols;
            let (yr, dyr) = (&reference[span.clone()], &dy_host[span]);
            // The row's sum as the kernel forms it: Σ dy·y, or Σ dy (log).
            let sum: f64 = yr
                .iter()
                .zip(dyr)
                .map(|(&y, &d)| if log { f64::from(d) } else { f64::from(d * y) })
                .sum();
            for j in 0..cols {
                let (yj, dj) = (f64::from(yr[j]), f64::from(dyr[j]));
                let out = f64::from(dx_ref[row * cols + j]).abs();
                bound.push(if log {
                    // dx = dy − exp(y)·Σdy
                    yj.exp() * sum * (gamma_n + e + 2.0 * U) + 2.0 * U * (out + dj)
                } else {
                    // dx = y·(dy − Σ dy·y)
                    yj * ((gamma_n + 2.0 * U) * sum + 2.0 * U * dj) + 2.0 * U * out
                });
            }
        }
        common::check_within(&dx, &dx_ref, &bound)
            .unwrap_or_else(|m| panic!("{what} backward: {m}"));
    }
}

#[test]
fn softmax_cross_entropy_over_rows_past_the_loop_limit_matches_cpu() {
    // As above: each row's exp-sum s is within γₙ + E relative, so each loss term
    // m + log s − z_y is within γₙ + E + 8u·(|m| + |z_y| + 1) absolute, and each gradient
    // q − [j = y] within q·(γₙ + 2E + 2u) + u, all scaled by the reduction; the loss adds
    // γ_rows of its sum. A truncated sum would be off by ~6% in s.
    let (rows, classes) = (3, LONG_ROW);
    let gamma_n = gamma(classes);
    let e = 8.0 * U;
    let device = gpu();
    let z = logits(rows, classes, 5.0, 19);
    let labels_host = [0u32, 66_000, (classes - 1) as u32];
    let logits_t = Tensor::from_slice(device, &z, [rows, classes]).unwrap();
    let labels = Labels::new(device, &labels_host, classes).unwrap();
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let options = CrossEntropyOptions {
            reduction,
            ..Default::default()
        };
        let (loss, dlogits) = softmax_cross_entropy(&logits_t, &labels, &options).unwrap();
        let loss = f64::from(loss.to_vec().unwrap()[0]);
        let dlogits = dlogits.to_vec().unwrap();
        let (ref_loss, ref_grad) =
            cpu::softmax_cross_entropy(&z, &labels_host, classes, None, reduction);
        let scale = match reduction {
            Reduction::Mean => 1.0 / rows as f64,
            Reduction::Sum => 1.0,
        };
        let term_tol = gamma_n + e + 8.0 * U * (2.0 * 5.0 + 1.0);
        let loss_tol = scale * rows as f64 * term_tol + gamma(rows) * ref_loss.abs();
        assert!(
            (loss - ref_loss).abs() <= loss_tol,
            "{reduction:?}: loss {loss} vs {ref_loss} (tol {loss_tol:e})"
        );
        let reference = cpu::softmax(&z, classes, false);
        let bound: Vec<f64> = reference
            .iter()
            .map(|&q| scale * (f64::from(q) * (gamma_n + 2.0 * e + 2.0 * U) + U))
            .collect();
        common::check_within(&dlogits, &ref_grad, &bound)
            .unwrap_or_else(|m| panic!("{reduction:?}: {m}"));
    }
}
