//! The lecture's losses on small worked examples, each with its gradient from autograd on
//! the GPU.
//!
//! - MSE and L1 on the prediction [0.5, −0.25, 0.75] against [1, 0.25, 0.25]: 0.25 and 0.5.
//! - Cross-entropy of the logits [2, 1, 0.1] for class 0: softmax [0.659, 0.242, 0.099],
//!   loss −ln 0.659 = 0.417.
//! - Binary cross-entropy of the probabilities [0.8, 0.4, 0.9] against [1, 0, 1]: 0.280; and
//!   on logits (the numerically stable form), the same number from ln(p / (1 − p)).
//!
//! ```text
//! cargo run --release --example losses
//! ```

mod support;

use std::io::Write;
use std::process::ExitCode;

use wgsl_nn::Device;
use wgsl_nn::autograd::{Loss, Var, cross_entropy};
use wgsl_nn::loss::{Labels, Reduction};

/// The regression example: prediction and target.
pub const REGRESSION: ([f32; 3], [f32; 3]) = ([0.5, -0.25, 0.75], [1.0, 0.25, 0.25]);
/// The classification example: logits and the true class.
pub const CLASSIFICATION: ([f32; 3], u32) = ([2.0, 1.0, 0.1], 0);
/// The binary example: probabilities and targets.
pub const BINARY: ([f32; 3], [f32; 3]) = ([0.8, 0.4, 0.9], [1.0, 0.0, 1.0]);

/// One loss on its example.
#[derive(Debug, Clone)]
pub struct LossValue {
    /// The loss's name.
    pub name: &'static str,
    /// Its value.
    pub value: f32,
    /// Its gradient with respect to the prediction.
    pub grad: Vec<f32>,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn evaluate(name: &'static str, input: &Var, loss: Var) -> Result<LossValue> {
    loss.backward()?;
    Ok(LossValue {
        name,
        value: loss.item()?,
        grad: input.grad_vec()?.ok_or("the prediction has no gradient")?,
    })
}

/// Every loss on its example, printed to `log`.
pub fn run(device: &Device, log: &mut dyn Write) -> Result<Vec<LossValue>> {
    let (prediction, target) = REGRESSION;
    let leaf = |data: &[f32]| Var::from_slice(device, data, [data.len()], true);
    let constant = |data: &[f32]| Var::from_slice(device, data, [data.len()], false);
    let mut values = Vec::new();

    writeln!(
        log,
        "regression: prediction {prediction:?}, target {target:?}"
    )?;
    for (name, loss) in [("MSE", Loss::mse()), ("L1", Loss::l1())] {
        let input = leaf(&prediction)?;
        let value = loss.forward(&input, &constant(&target)?)?;
        values.push(evaluate(name, &input, value)?);
    }

    let (logits, class) = CLASSIFICATION;
    let input = Var::from_slice(device, &logits, [1, 3], true)?;
    let labels = Labels::new(device, &[class], 3)?;
    let value = cross_entropy(&input, &labels, Reduction::Mean)?;
    values.push(evaluate("cross-entropy", &input, value)?);

    let (probabilities, targets) = BINARY;
    let input = leaf(&probabilities)?;
    let value = Loss::bce().forward(&input, &constant(&targets)?)?;
    values.push(evaluate("binary cross-entropy", &input, value)?);
    let logits_of_p: Vec<f32> = probabilities.iter().map(|p| (p / (1.0 - p)).ln()).collect();
    let input = leaf(&logits_of_p)?;
    let value = Loss::bce_with_logits().forward(&input, &constant(&targets)?)?;
    values.push(evaluate("BCE on logits", &input, value)?);

    for (i, v) in values.iter().enumerate() {
        match i {
            2 => writeln!(log, "\nclassification: logits {logits:?}, class {class}")?,
            3 => writeln!(
                log,
                "\nbinary: probabilities {probabilities:?}, targets {targets:?}"
            )?,
            _ => {}
        }
        let grad: Vec<String> = v.grad.iter().map(|g| format!("{g:.4}")).collect();
        writeln!(
            log,
            "  {:<21} = {:.4}   gradient [{}]",
            v.name,
            v.value,
            grad.join(", ")
        )?;
    }
    Ok(values)
}

/// The lecture's losses on small worked examples, each with its gradient from autograd on the GPU. It takes no arguments.
#[derive(Debug, clap::Parser)]
struct Args {}

fn main() -> ExitCode {
    support::main_with(|device, log, _: &Args| run(device, log))
}
