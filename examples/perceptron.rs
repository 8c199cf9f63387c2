//! Rosenblatt's perceptron on the GPU: `y = step(w·x + b)` and the error-correction rule
//! `w ← w + (t − y)·x`, `b ← b + (t − y)`, one sample at a time, learning rate 1, from zero.
//!
//! The step function has no gradient (asking autograd for one is an error), which is why the
//! perceptron has a rule of its own. The rule converges on AND and OR, which a line
//! separates, and never on XOR: the weights come back to a state they had at the end of an
//! earlier epoch, and since the rule is deterministic they repeat that cycle forever.
//!
//! Each epoch is one submit: per sample, a 1×2·2×1 matmul with the bias and the step function
//! fused into its epilogue, `t − y`, and the update as an accumulating matmul `xᵀ·(t − y)`
//! plus an axpy on the bias.
//!
//! ```text
//! cargo run --release --example perceptron
//! ```

mod support;

use std::io::Write;
use std::process::ExitCode;

use wgsl_nn::activation::Activation;
use wgsl_nn::autograd::Var;
use wgsl_nn::elementwise::{Elementwise, ElementwiseOp};
use wgsl_nn::matmul::{Matmul, MatmulForm, MatmulOptions};
use wgsl_nn::{Device, Tensor};

/// The four inputs, row by row.
pub const INPUTS: [[f32; 2]; 4] = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
/// The gates taught: name and target per row.
pub const GATES: [(&str, [f32; 4]); 3] = [
    ("AND", [0.0, 0.0, 0.0, 1.0]),
    ("OR", [0.0, 1.0, 1.0, 1.0]),
    ("XOR", [0.0, 1.0, 1.0, 0.0]),
];
/// The most epochs run before giving up.
pub const MAX_EPOCHS: usize = 100;

/// The weights and bias at the end of an epoch.
pub type State = ([f32; 2], f32);

/// How one gate went.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRun {
    /// The gate.
    pub name: &'static str,
    /// The first epoch with no error (1-based), if any.
    pub converged_at: Option<usize>,
    /// Epochs run.
    pub epochs: usize,
    /// The state after each epoch.
    pub states: Vec<State>,
    /// Errors made in each epoch.
    pub errors: Vec<usize>,
    /// `(earlier, later)`: the end of epoch `later` repeats the state at the end of `earlier`.
    pub cycle: Option<(usize, usize)>,
    /// The outputs of the final weights on the four rows.
    pub outputs: [f32; 4],
}

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// AND, OR and XOR, in that order.
    pub gates: Vec<GateRun>,
    /// The error autograd gives for the step function's gradient.
    pub step_gradient_error: String,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One sample's kernels: the output, the error, the two updates.
struct Sample {
    output: Tensor,
    error: Tensor,
    forward: Matmul,
    difference: Elementwise,
    update_weights: Matmul,
    update_bias: Elementwise,
}

/// Teaches one gate with the error-correction rule on the GPU.
pub fn teach(device: &Device, name: &'static str, targets: [f32; 4]) -> Result<GateRun> {
    let weights = Tensor::zeros(device, [2, 1])?;
    let bias = Tensor::zeros(device, [1, 1])?;
    let mut samples = Vec::new();
    for (row, target) in INPUTS.iter().zip(targets) {
        let x = Tensor::from_slice(device, row, [1, 2])?;
        let t = Tensor::from_slice(device, &[target], [1, 1])?;
        let output = Tensor::uninit(device, [1, 1])?;
        let error = Tensor::uninit(device, [1, 1])?;
        let forward = Matmul::new(
            &x,
            &weights,
            &output,
            &MatmulOptions {
                bias: Some(&bias),
                activation: Activation::STEP,
                ..MatmulOptions::default()
            },
        )?;
        let difference = Elementwise::new(ElementwiseOp::Sub, &t, Some(&output), &error)?;
        let update_weights = Matmul::new(
            &x,
            &error,
            &weights,
            &MatmulOptions {
                form: MatmulForm::AtB,
                accumulate: true,
                ..MatmulOptions::default()
            },
        )?;
        let update_bias = Elementwise::new(ElementwiseOp::Axpy(1.0), &error, None, &bias)?;
        samples.push(Sample {
            output,
            error,
            forward,
            difference,
            update_weights,
            update_bias,
        });
    }
    let read_state = || -> Result<State> {
        let w = weights.to_vec()?;
        Ok(([w[0], w[1]], bias.to_vec()?[0]))
    };
    let mut run = GateRun {
        name,
        converged_at: None,
        epochs: 0,
        states: Vec::new(),
        errors: Vec::new(),
        cycle: None,
        outputs: [0.0; 4],
    };
    for epoch in 1..=MAX_EPOCHS {
        let mut encoder = device.encoder();
        for s in &samples {
            s.forward.record(&mut encoder);
            s.difference.record(&mut encoder);
            s.update_weights.record(&mut encoder);
            s.update_bias.record(&mut encoder);
        }
        encoder.submit()?;
        let mut errors = 0;
        for s in &samples {
            errors += usize::from(s.error.to_vec()?[0] != 0.0);
        }
        let state = read_state()?;
        run.epochs = epoch;
        run.errors.push(errors);
        if errors == 0 {
            run.converged_at = Some(epoch);
            run.states.push(state);
            break;
        }
        if let Some(earlier) = run.states.iter().position(|s| *s == state) {
            run.cycle = Some((earlier + 1, epoch));
            run.states.push(state);
            break;
        }
        run.states.push(state);
    }
    // The final classifier on every row: the forward passes alone, with the last weights.
    let mut encoder = device.encoder();
    for s in &samples {
        s.forward.record(&mut encoder);
    }
    encoder.submit()?;
    for (output, s) in run.outputs.iter_mut().zip(&samples) {
        *output = s.output.to_vec()?[0];
    }
    Ok(run)
}

/// Teaches AND, OR and XOR, printing each epoch to `log`.
pub fn run(device: &Device, log: &mut dyn Write) -> Result<Report> {
    let x = Var::scalar(device, 0.5, true)?;
    let step_gradient_error = match x.activation(Activation::STEP)?.sum()?.backward() {
        Ok(()) => return Err("the step function should have no gradient".into()),
        Err(error) => error.to_string(),
    };
    writeln!(
        log,
        "gradient of the step function: {step_gradient_error}\n"
    )?;
    writeln!(
        log,
        "so the perceptron learns by error correction: w ← w + (t − y)·x, b ← b + (t − y)"
    )?;
    let mut gates = Vec::new();
    for (name, targets) in GATES {
        writeln!(log, "\n{name}:")?;
        let run = teach(device, name, targets)?;
        for (epoch, (state, errors)) in run.states.iter().zip(&run.errors).enumerate() {
            writeln!(
                log,
                "  epoch {:>2}: errors {errors}, then w = ({}, {}), b = {}",
                epoch + 1,
                state.0[0],
                state.0[1],
                state.1
            )?;
        }
        match (run.converged_at, run.cycle) {
            (Some(epoch), _) => writeln!(log, "  converged: epoch {epoch} made no error")?,
            (None, Some((earlier, later))) => writeln!(
                log,
                "  no convergence: after epoch {later} the weights are those after epoch \
                 {earlier}, so the rule repeats this cycle forever (no line separates XOR)"
            )?,
            (None, None) => writeln!(
                log,
                "  stopped after {MAX_EPOCHS} epochs without converging"
            )?,
        }
        writeln!(
            log,
            "  outputs on (0,0), (0,1), (1,0), (1,1): {:?} (targets {targets:?})",
            run.outputs
        )?;
        gates.push(run);
    }
    Ok(Report {
        gates,
        step_gradient_error,
    })
}

/// Rosenblatt's perceptron on the GPU: AND and OR converge, XOR cycles forever. It takes no arguments.
#[derive(Debug, clap::Parser)]
struct Args {}

fn main() -> ExitCode {
    support::main_with(|device, log, _: &Args| run(device, log))
}
