//! The lecture's three backward passes through one graph: gradients accumulate, `zero_`
//! clears them, and a graph that was not retained cannot be walked again.
//!
//! x = 2 (a leaf), y = x² (an intermediate that retains its gradient), z = 3·y:
//! dz/dx = 6x = 12 and dz/dy = 3.
//!
//! ```text
//! cargo run --release --example retain_grad
//! ```

mod support;

use std::io::Write;
use std::process::ExitCode;

use wgsl_nn::Device;
use wgsl_nn::autograd::Var;

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// `(x.grad, y.grad)` after each of the three passes.
    pub passes: Vec<(f32, f32)>,
    /// x.grad right after `zero_`.
    pub after_zero: f32,
    /// The error of a fourth pass through the freed graph.
    pub fourth_pass_error: String,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn grad(var: &Var) -> Result<f32> {
    Ok(var.grad_vec()?.ok_or("no gradient")?[0])
}

/// Builds the graph and walks it three times (a fourth attempt fails), printing to `log`.
pub fn run(device: &Device, log: &mut dyn Write) -> Result<Report> {
    let x = Var::scalar(device, 2.0, true)?;
    let y = x.square()?;
    y.retain_grad()?;
    let z = y.scale(3.0)?;
    writeln!(log, "x = 2, y = x² = {}, z = 3y = {}", y.item()?, z.item()?)?;
    let mut passes = Vec::new();

    z.backward_retain_graph()?;
    passes.push((grad(&x)?, grad(&y)?));
    writeln!(
        log,
        "1st z.backward(retain_graph=True): x.grad = {}, y.grad = {}  (dz/dx = 6x, dz/dy = 3)",
        passes[0].0, passes[0].1
    )?;

    z.backward_retain_graph()?;
    passes.push((grad(&x)?, grad(&y)?));
    writeln!(
        log,
        "2nd z.backward(retain_graph=True): x.grad = {}, y.grad = {}  (accumulated: added to the first)",
        passes[1].0, passes[1].1
    )?;

    x.zero_grad()?;
    let after_zero = grad(&x)?;
    writeln!(
        log,
        "x.grad.zero_():                    x.grad = {after_zero}"
    )?;

    z.backward()?;
    passes.push((grad(&x)?, grad(&y)?));
    writeln!(
        log,
        "3rd z.backward():                  x.grad = {}, y.grad = {}  (x from zero; y still accumulating)",
        passes[2].0, passes[2].1
    )?;

    let fourth_pass_error = match z.backward() {
        Ok(()) => return Err("a fourth pass through a freed graph succeeded".into()),
        Err(error) => error.to_string(),
    };
    writeln!(log, "4th z.backward(): error: {fourth_pass_error}")?;
    Ok(Report {
        passes,
        after_zero,
        fourth_pass_error,
    })
}

/// Three backward passes through one graph: accumulation, zero_, and a freed graph. It takes no arguments.
#[derive(Debug, clap::Parser)]
struct Args {}

fn main() -> ExitCode {
    support::main_with(|device, log, _: &Args| run(device, log))
}
