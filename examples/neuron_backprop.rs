//! Backpropagation through one sigmoid neuron, f = σ(w0·x0 + w1·x1 + w2), at the lecture's
//! point (w0, x0, w1, x1, w2) = (2, −1, −3, −2, −3): the chain rule by hand, next to the same
//! gradients from autograd on the GPU.
//!
//! ```text
//! cargo run --release --example neuron_backprop
//! ```

mod support;

use std::io::Write;
use std::process::ExitCode;

use wgsl_nn::Device;
use wgsl_nn::autograd::Var;

/// The lecture's point: w0, x0, w1, x1, w2.
pub const POINT: [f32; 5] = [2.0, -1.0, -3.0, -2.0, -3.0];
/// The names of the five inputs, in order.
pub const NAMES: [&str; 5] = ["w0", "x0", "w1", "x1", "w2"];

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// f on the GPU.
    pub value: f32,
    /// df/d(w0, x0, w1, x1, w2) from autograd on the GPU.
    pub grads: [f32; 5],
    /// The same by the chain rule on the host, in f64.
    pub by_hand: [f64; 5],
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The forward pass and both backward passes, printed to `log`.
pub fn run(device: &Device, log: &mut dyn Write) -> Result<Report> {
    let [w0, x0, w1, x1, w2] = POINT.map(|v| Var::scalar(device, v, true));
    let (w0, x0, w1, x1, w2) = (w0?, x0?, w1?, x1?, w2?);
    let dot = w0.mul(&x0)?.add(&w1.mul(&x1)?)?.add(&w2)?;
    let f = dot.sigmoid()?;
    f.backward()?;
    let value = f.item()?;
    let mut grads = [0.0; 5];
    for (g, var) in grads.iter_mut().zip([&w0, &x0, &w1, &x1, &w2]) {
        *g = var.grad_vec()?.ok_or("an input has no gradient")?[0];
    }

    // The chain rule as the lecture writes it: dσ/d(dot) = (1 − σ)·σ, then each product's
    // local gradient is the other factor.
    let [w0, x0, w1, x1, w2] = POINT.map(f64::from);
    let dot_value = w0 * x0 + w1 * x1 + w2;
    let sigma = 1.0 / (1.0 + (-dot_value).exp());
    let ddot = (1.0 - sigma) * sigma;
    let by_hand = [x0 * ddot, w0 * ddot, x1 * ddot, w1 * ddot, ddot];

    writeln!(
        log,
        "f = σ(w0·x0 + w1·x1 + w2) at w0 = 2, x0 = −1, w1 = −3, x1 = −2, w2 = −3"
    )?;
    writeln!(
        log,
        "forward:  w0·x0 + w1·x1 + w2 = {dot_value}, f = {value:.4}"
    )?;
    writeln!(log, "backward: dσ/d(dot) = (1 − f)·f = {ddot:.4}")?;
    writeln!(log, "{:>6} {:>12} {:>12}", "", "by hand", "autograd")?;
    for ((name, hand), got) in NAMES.iter().zip(by_hand).zip(grads) {
        writeln!(log, "{:>6} {hand:>12.4} {got:>12.4}", format!("df/d{name}"))?;
    }
    Ok(Report {
        value,
        grads,
        by_hand,
    })
}

/// Backpropagation through one sigmoid neuron: the chain rule by hand beside autograd on the GPU. It takes no arguments.
#[derive(Debug, clap::Parser)]
struct Args {}

fn main() -> ExitCode {
    support::main_with(|device, log, _: &Args| run(device, log))
}
