//! The lecture's first gradient descent: fit `y = w·x` to x = [1, 2, 3, 4], y = [2, 4, 6, 8]
//! from w = 1, on the GPU through autograd.
//!
//! At w = 1 the MSE is 7.5 and dMSE/dw = −15. Then 102 iterations at learning rate 0.005,
//! printing every 10th as the lecture does: first with a hand-written update
//! (`w ← w − lr·∂L/∂w`, then zeroing the gradient), then with the MSE loss and SGD optimiser
//! objects. Both runs take the same steps, so w approaches 2 the same way: each step shrinks
//! `w − 2` by `1 − 15·lr = 0.925`.
//!
//! ```text
//! cargo run --release --example linear_regression
//! ```

mod support;

use std::io::Write;
use std::process::ExitCode;

use wgsl_nn::Device;
use wgsl_nn::autograd::{Loss, Var, VarOptimizer};
use wgsl_nn::elementwise::axpy;
use wgsl_nn::optim::OptimizerConfig;

/// The lecture's data, learning rate and number of iterations.
pub const X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
/// Targets: y = 2·x.
pub const Y: [f32; 4] = [2.0, 4.0, 6.0, 8.0];
/// Learning rate.
pub const LR: f32 = 0.005;
/// Iterations.
pub const ITERATIONS: usize = 102;

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// MSE at w = 1.
    pub initial_loss: f32,
    /// dMSE/dw at w = 1.
    pub initial_grad: f32,
    /// `(epoch, w after the update, loss before it)` for every 10th epoch, hand-written update.
    pub manual: Vec<(usize, f32, f32)>,
    /// The same with the loss and optimiser objects.
    pub objects: Vec<(usize, f32, f32)>,
    /// w after the hand-written loop.
    pub manual_w: f32,
    /// w after the loop with objects.
    pub objects_w: f32,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Prints the lecture's line for `epoch` (0-based): w after the update, the loss before it.
fn print_epoch(
    log: &mut dyn Write,
    epoch: usize,
    w: &Var,
    loss: &Var,
) -> Result<(usize, f32, f32)> {
    let line = (epoch + 1, w.item()?, loss.item()?);
    writeln!(
        log,
        "epoch {}: w = {:.3}, loss = {:.8}",
        line.0, line.1, line.2
    )?;
    Ok(line)
}

/// Runs both training loops, printing what the lecture prints to `log`.
pub fn run(device: &Device, log: &mut dyn Write) -> Result<Report> {
    let x = Var::from_slice(device, &X, [4], false)?;
    let y = Var::from_slice(device, &Y, [4], false)?;
    let forward = |w: &Var| w.mul(&x);

    // The lecture's hand-written pieces: MSE = mean((ŷ − y)²).
    let mse = |prediction: &Var| prediction.sub(&y)?.square()?.mean();
    let w = Var::scalar(device, 1.0, true)?;
    let loss = mse(&forward(&w)?)?;
    loss.backward()?;
    let initial_grad = w.grad_vec()?.ok_or("w has no gradient after backward")?[0];
    let initial_loss = loss.item()?;
    writeln!(
        log,
        "at w = 1: MSE = {initial_loss}, dMSE/dw = {initial_grad}"
    )?;
    w.zero_grad()?;
    let f5 = |w: &Var| -> Result<f32> { Ok(5.0 * w.item()?) };
    writeln!(log, "prediction before training: f(5) = {:.3}", f5(&w)?)?;

    writeln!(log, "\ntraining with a hand-written update:")?;
    let mut manual = Vec::new();
    for epoch in 0..ITERATIONS {
        let loss = mse(&forward(&w)?)?;
        loss.backward()?;
        // w ← w − lr·∂L/∂w on the device, outside the graph (PyTorch's torch.no_grad()).
        let grad = w.grad().ok_or("w has no gradient after backward")?;
        axpy(-LR, &grad, w.value())?;
        w.zero_grad()?;
        if epoch % 10 == 0 {
            manual.push(print_epoch(log, epoch, &w, &loss)?);
        }
    }
    let manual_w = w.item()?;
    writeln!(log, "prediction after training: f(5) = {:.3}", f5(&w)?)?;

    writeln!(
        log,
        "\ntraining with the MSE loss and SGD optimiser objects:"
    )?;
    let w = Var::scalar(device, 1.0, true)?;
    let criterion = Loss::mse();
    let mut optimizer = VarOptimizer::new(OptimizerConfig::sgd(LR), &[&w])?;
    let mut objects = Vec::new();
    for epoch in 0..ITERATIONS {
        let loss = criterion.forward(&forward(&w)?, &y)?;
        loss.backward()?;
        optimizer.step()?;
        optimizer.zero_grad()?;
        if epoch % 10 == 0 {
            objects.push(print_epoch(log, epoch, &w, &loss)?);
        }
    }
    let objects_w = w.item()?;
    writeln!(log, "prediction after training: f(5) = {:.3}", f5(&w)?)?;
    Ok(Report {
        initial_loss,
        initial_grad,
        manual,
        objects,
        manual_w,
        objects_w,
    })
}

/// Fit y = w·x by gradient descent on the GPU, through autograd (the lecture's first example). It takes no arguments.
#[derive(Debug, clap::Parser)]
struct Args {}

fn main() -> ExitCode {
    support::main_with(|device, log, _: &Args| run(device, log))
}
