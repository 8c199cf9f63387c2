//! The lecture's examples (in `examples/`), run on the GPU and held to the lecture's numbers,
//! to the digits the lecture prints and to the closed forms behind them.

// Each example brings its own `mod support;` (as a binary it must); included side by side
// here, the same file is compiled once per example, harmlessly.
#![allow(clippy::duplicate_mod)]

mod common;

#[allow(dead_code)]
#[path = "../examples/activations.rs"]
mod activations;
#[allow(dead_code)]
#[path = "../examples/linear_classifier.rs"]
mod linear_classifier;
#[allow(dead_code)]
#[path = "../examples/linear_regression.rs"]
mod linear_regression;
#[allow(dead_code)]
#[path = "../examples/losses.rs"]
mod losses;
#[allow(dead_code)]
#[path = "../examples/neuron_backprop.rs"]
mod neuron_backprop;
#[allow(dead_code)]
#[path = "../examples/perceptron.rs"]
mod perceptron;
#[allow(dead_code)]
#[path = "../examples/retain_grad.rs"]
mod retain_grad;
#[allow(dead_code)]
#[path = "../examples/stacked_linear.rs"]
mod stacked_linear;
#[allow(dead_code)]
#[path = "../examples/xor.rs"]
mod xor;

use common::gpu;
use wgsl_nn::cpu::{self, ActivationParams};

/// Runs an example, returning its report and what it printed.
fn run<T>(
    example: impl FnOnce(
        &wgsl_nn::Device,
        &mut dyn std::io::Write,
    ) -> Result<T, Box<dyn std::error::Error>>,
) -> (T, String) {
    let mut log = Vec::new();
    let report = example(gpu(), &mut log).unwrap_or_else(|e| panic!("the example failed: {e}"));
    (report, String::from_utf8(log).expect("the log is UTF-8"))
}

fn is_png(path: &std::path::Path) -> bool {
    std::fs::read(path)
        .is_ok_and(|bytes| bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn linear_regression_reproduces_the_lecture() {
    let (report, log) = run(linear_regression::run);
    assert_eq!(report.initial_loss, 7.5);
    assert_eq!(report.initial_grad, -15.0);
    // Each step multiplies w − 2 by 1 − 15·lr = 0.925; the loss before step k is
    // 7.5·(0.925^k)².
    let epochs: Vec<usize> = report.manual.iter().map(|l| l.0).collect();
    assert_eq!(epochs, (0..11).map(|i| 10 * i + 1).collect::<Vec<_>>());
    // w is within 1e-6 of the closed form (each step rounds a |w| ≤ 2 at a few u, and the
    // contraction damps older errors); the loss 7.5·(w − 2)² inherits 15·|w − 2|·1e-6 of it.
    for history in [&report.manual, &report.objects] {
        for &(epoch, w, loss) in history {
            let k = epoch as i32 - 1;
            let w_expected = 2.0 - 0.925f64.powi(k + 1);
            let loss_expected = 7.5 * 0.925f64.powi(2 * k);
            let loss_bound = 1e-6 * loss_expected + 15.0 * 0.925f64.powi(k) * 1e-6;
            assert!(
                (f64::from(w) - w_expected).abs() < 1e-6,
                "epoch {epoch}: w {w} vs {w_expected}"
            );
            assert!(
                (f64::from(loss) - loss_expected).abs() <= loss_bound,
                "epoch {epoch}: loss {loss} vs {loss_expected}"
            );
        }
    }
    assert!(
        log.contains("epoch 1: w = 1.075, loss = 7.50000000"),
        "{log}"
    );
    let w_final = 2.0 - 0.925f64.powi(102);
    for w in [report.manual_w, report.objects_w] {
        assert!(
            (f64::from(w) - w_final).abs() < 1e-6,
            "final w {w} vs {w_final}"
        );
    }
    assert!(log.contains("f(5) = 9.998"), "{log}");
}

#[test]
fn retain_grad_shows_accumulation_zeroing_and_the_freed_graph() {
    let (report, log) = run(retain_grad::run);
    assert_eq!(report.passes, vec![(12.0, 3.0), (24.0, 6.0), (12.0, 9.0)]);
    assert_eq!(report.after_zero, 0.0);
    assert!(report.fourth_pass_error.contains("second time"), "{log}");
}

#[test]
fn neuron_backprop_matches_the_lecture_and_the_chain_rule() {
    let (report, _) = run(neuron_backprop::run);
    assert_eq!(format!("{:.2}", report.value), "0.73");
    let printed: Vec<String> = report.grads.iter().map(|g| format!("{g:.2}")).collect();
    assert_eq!(printed, ["-0.20", "0.39", "-0.39", "-0.59", "0.20"]);
    for (got, hand) in report.grads.iter().zip(report.by_hand) {
        assert!((f64::from(*got) - hand).abs() < 1e-6, "{got} vs {hand}");
    }
}

#[test]
fn a_linear_classifiers_columns_are_templates_of_their_digits() {
    let dir = tempfile::tempdir().unwrap();
    let (report, log) =
        run(|device, log| linear_classifier::run_in(device, log, common::mnist(), dir.path(), 1));
    let accuracy = report.test_accuracy[0];
    assert!(
        accuracy >= 0.90,
        "test accuracy {accuracy} after one epoch:\n{log}"
    );
    // "Looks like its digit", measured: template k correlates more with the mean training
    // image of class k than with any other class's.
    for (k, row) in report.correlation.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            assert!(
                j == k || c < row[k],
                "template {k}: {c:.3} with the mean {j} ≥ {:.3} with its own:\n{log}",
                row[k]
            );
        }
    }
    // The correlations are the weights' (not an artefact): recompute one from the report.
    let means = linear_classifier::class_means(common::mnist());
    let t = linear_classifier::template(&report.weights, 3);
    assert!(
        (linear_classifier::correlation(&t, &means[3]) - report.correlation[3][3]).abs() < 1e-12
    );
    assert!(is_png(&report.plot));
    assert!(log.contains("template 9:"), "{log}");
}

#[test]
fn xor_needs_a_hidden_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = run(|device, log| xor::run_in(device, log, dir.path()));
    assert_eq!(report.linear_classifiers, 41 * 41 * 41);
    assert_eq!(report.best_linear_correct, 3);
    // The lecture's network at (1, 0), the third row.
    let sigma = |z: f64| 1.0 / (1.0 + (-z).exp());
    let (h1, h2) = (sigma(0.45), sigma(0.78));
    let output = sigma(1.5 * h1 - 2.3 * h2);
    let [got_h1, got_h2] = report.lecture_hidden[2];
    assert_eq!(
        (format!("{got_h1:.2}"), format!("{got_h2:.2}")),
        ("0.61".into(), "0.69".into())
    );
    assert!((f64::from(got_h1) - h1).abs() < 1e-6 && (f64::from(got_h2) - h2).abs() < 1e-6);
    assert_eq!(format!("{:.4}", report.lecture_output[2]), "0.3405");
    assert!((f64::from(report.lecture_output[2]) - output).abs() < 1e-6);
    assert_eq!(report.trained_correct, 4, "{:?}", report.trained_output);
    assert!(report.final_loss < 0.05, "final loss {}", report.final_loss);
    assert!(is_png(&report.plot));
}

/// The error-correction rule on the host, in f32: the states after each epoch.
fn perceptron_on_cpu(targets: [f32; 4]) -> Vec<perceptron::State> {
    let (mut w, mut b) = ([0.0f32; 2], 0.0f32);
    let mut states = Vec::new();
    for _ in 0..perceptron::MAX_EPOCHS {
        let mut errors = 0;
        for (x, t) in perceptron::INPUTS.iter().zip(targets) {
            let y = if w[0] * x[0] + w[1] * x[1] + b > 0.0 {
                1.0
            } else {
                0.0
            };
            let e = t - y;
            errors += usize::from(e != 0.0);
            w = [w[0] + e * x[0], w[1] + e * x[1]];
            b += e;
        }
        let state = (w, b);
        let repeats = states.contains(&state);
        states.push(state);
        if errors == 0 || repeats {
            break;
        }
    }
    states
}

#[test]
fn perceptron_learns_and_and_or_but_not_xor() {
    let (report, _) = run(perceptron::run);
    let runs: Vec<_> = report.gates.iter().map(|g| (g.name, g)).collect();
    for (name, gate) in &runs {
        let targets = perceptron::GATES.iter().find(|g| g.0 == *name).unwrap().1;
        assert_eq!(gate.states, perceptron_on_cpu(targets), "{name}");
        if *name == "XOR" {
            assert_eq!(gate.converged_at, None);
            let (earlier, later) = gate.cycle.expect("XOR cycles");
            assert_eq!(gate.states[earlier - 1], gate.states[later - 1]);
            let correct = gate
                .outputs
                .iter()
                .zip(targets)
                .filter(|(o, t)| **o == *t)
                .count();
            assert!(correct <= 3, "a line got XOR right: {:?}", gate.outputs);
        } else {
            assert!(gate.converged_at.is_some(), "{name} converges");
            assert_eq!(gate.outputs, targets, "{name}");
        }
    }
    assert!(report.step_gradient_error.contains("no gradient"));
}

#[test]
fn stacked_linear_layers_collapse_without_an_activation() {
    let (report, _) = run(stacked_linear::run);
    assert!(report.collapse_bound_ratio <= 1.0, "{report:?}");
    assert!(
        report.relu_difference > 0.1 * report.output_scale,
        "{report:?}"
    );
}

#[test]
fn losses_match_their_formulas() {
    let (values, log) = run(losses::run);
    let by_name = |name: &str| values.iter().find(|v| v.name == name).unwrap().clone();
    let close = |got: f32, want: f64| (f64::from(got) - want).abs() <= 1e-6 * (1.0 + want.abs());
    let (x, t) = losses::REGRESSION;
    let mse = by_name("MSE");
    assert_eq!(mse.value, 0.25);
    for i in 0..3 {
        assert!(close(mse.grad[i], 2.0 * f64::from(x[i] - t[i]) / 3.0));
    }
    assert_eq!(by_name("L1").value, 0.5);

    let (logits, class) = losses::CLASSIFICATION;
    let z: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    let total: f64 = z.iter().map(|v| v.exp()).sum();
    let softmax: Vec<f64> = z.iter().map(|v| v.exp() / total).collect();
    let ce = by_name("cross-entropy");
    assert!(close(ce.value, -softmax[class as usize].ln()), "{log}");
    assert_eq!(format!("{:.3}", ce.value), "0.417");
    for (i, (&got, q)) in ce.grad.iter().zip(&softmax).enumerate() {
        let want = q - if i == class as usize { 1.0 } else { 0.0 };
        assert!(close(got, want), "{log}");
    }

    let (p, t) = losses::BINARY;
    let bce_want: f64 = p
        .iter()
        .zip(t)
        .map(|(&p, t)| {
            let (p, t) = (f64::from(p), f64::from(t));
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 3.0;
    let bce = by_name("binary cross-entropy");
    assert!(close(bce.value, bce_want), "{log}");
    assert!(
        (f64::from(by_name("BCE on logits").value) - bce_want).abs() < 1e-6,
        "{log}"
    );
    for i in 0..3 {
        let (pi, ti) = (f64::from(p[i]), f64::from(t[i]));
        assert!(
            close(bce.grad[i], (pi - ti) / (pi * (1.0 - pi)) / 3.0),
            "{log}"
        );
    }
}

#[test]
fn activations_table_and_plot_match_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = run(|device, log| activations::run_in(device, log, dir.path()));
    assert_eq!(
        report.table.len(),
        wgsl_nn::activation::Activation::ALL.len()
    );
    let slopes = [activations::PRELU_SLOPE];
    let params = ActivationParams {
        prelu_slopes: Some(&slopes),
        features: activations::INPUTS.len(),
        ..ActivationParams::default()
    };
    for curve in &report.table {
        for (i, &x) in activations::INPUTS.iter().enumerate() {
            let value = cpu::activation_value(curve.activation, f64::from(x), &params, i);
            // The kernels' tolerance (tests/activations.rs): 2e-6 + 2e-5·|reference|.
            let within =
                |got: f32, want: f64| (f64::from(got) - want).abs() <= 2e-6 + 2e-5 * want.abs();
            assert!(
                within(curve.values[i], value),
                "{:?} at {x}",
                curve.activation
            );
            match (&curve.derivatives, curve.activation.has_gradient()) {
                (Some(d), true) => {
                    let want =
                        cpu::activation_derivative(curve.activation, f64::from(x), &params, i)
                            .expect("a derivative");
                    assert!(within(d[i], want), "{:?}' at {x}", curve.activation);
                }
                (None, false) => {}
                _ => panic!("{:?}: derivative presence is wrong", curve.activation),
            }
        }
    }
    assert!(is_png(&report.plot));
}
