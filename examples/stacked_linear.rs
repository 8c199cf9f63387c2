//! Two linear layers without an activation are one linear layer: the lecture's CIFAR-sized
//! example, 3072 → 100 → 10, checked numerically on the GPU.
//!
//! (x·W1 + b1)·W2 + b2 = x·(W1·W2) + (b1·W2 + b2): the stack computes what one 3072 → 10
//! layer computes, 30,730 numbers instead of 308,310. The two sides differ only by f32
//! rounding (bounded by γₙ·Σ|x|·|W1|·|W2| for sums of n = 3072 + 100 products). A ReLU
//! between the layers breaks the identity: the difference is then of the size of the
//! outputs themselves.
//!
//! ```text
//! cargo run --release --example stacked_linear
//! ```

mod support;

use std::io::Write;
use std::process::ExitCode;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgsl_nn::Device;
use wgsl_nn::autograd::Var;

/// Inputs per batch, then the widths: a 32×32×3 image, a hidden layer, ten classes.
pub const BATCH: usize = 4;
/// Input width.
pub const INPUTS: usize = 3072;
/// Hidden width.
pub const HIDDEN: usize = 100;
/// Output width.
pub const OUTPUTS: usize = 10;

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// max |stack − collapsed| over the outputs.
    pub collapse_difference: f64,
    /// The rounding bound that difference must stay under, per element at the worst element:
    /// max over elements of |difference| / (2·γₙ·Σ|x|·|W1|·|W2| + |bias terms|).
    pub collapse_bound_ratio: f64,
    /// max |outputs| of the collapsed layer.
    pub output_scale: f64,
    /// max |ReLU stack − collapsed|.
    pub relu_difference: f64,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// PyTorch's default initialisation, U(−1/√fan_in, 1/√fan_in).
fn layer(rng: &mut ChaCha8Rng, fan_in: usize, len: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    (0..len).map(|_| rng.random_range(-bound..bound)).collect()
}

/// Both sides of the identity and the ReLU stack, printed to `log`.
pub fn run(device: &Device, log: &mut dyn Write) -> Result<Report> {
    let mut rng = ChaCha8Rng::seed_from_u64(3072);
    let x: Vec<f32> = (0..BATCH * INPUTS)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let w1 = layer(&mut rng, INPUTS, INPUTS * HIDDEN);
    let b1 = layer(&mut rng, INPUTS, HIDDEN);
    let w2 = layer(&mut rng, HIDDEN, HIDDEN * OUTPUTS);
    let b2 = layer(&mut rng, HIDDEN, OUTPUTS);

    let var = |data: &[f32], shape: [usize; 2]| Var::from_slice(device, data, shape, false);
    let (xv, w1v, b1v) = (
        var(&x, [BATCH, INPUTS])?,
        var(&w1, [INPUTS, HIDDEN])?,
        var(&b1, [1, HIDDEN])?,
    );
    let (w2v, b2v) = (var(&w2, [HIDDEN, OUTPUTS])?, var(&b2, [1, OUTPUTS])?);

    let stacked = xv
        .linear(&w1v, Some(&b1v))?
        .linear(&w2v, Some(&b2v))?
        .to_vec()?;
    let weight = w1v.matmul(&w2v)?;
    let bias = b1v.matmul(&w2v)?.add(&b2v)?;
    let collapsed = xv.linear(&weight, Some(&bias))?.to_vec()?;
    let relu = xv
        .linear(&w1v, Some(&b1v))?
        .relu()?
        .linear(&w2v, Some(&b2v))?
        .to_vec()?;

    // Σ|x|·|W1|·|W2| + |b1|·|W2| + |b2| per output, in f64: what rounding errors scale with.
    let mut magnitude = vec![0.0f64; BATCH * OUTPUTS];
    for i in 0..BATCH {
        for h in 0..HIDDEN {
            let through: f64 = (0..INPUTS)
                .map(|k| f64::from(x[i * INPUTS + k].abs() * w1[k * HIDDEN + h].abs()))
                .sum::<f64>()
                + f64::from(b1[h].abs());
            for o in 0..OUTPUTS {
                magnitude[i * OUTPUTS + o] += through * f64::from(w2[h * OUTPUTS + o].abs());
            }
        }
        for o in 0..OUTPUTS {
            magnitude[i * OUTPUTS + o] += f64::from(b2[o].abs());
        }
    }
    let n = (INPUTS + HIDDEN + 2) as f64;
    let unit = f64::from(f32::EPSILON) / 2.0;
    let gamma = n * unit / (1.0 - n * unit);
    let difference = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(p, q)| (f64::from(*p) - f64::from(*q)).abs())
            .fold(0.0, f64::max)
    };
    let collapse_difference = difference(&stacked, &collapsed);
    let collapse_bound_ratio = stacked
        .iter()
        .zip(&collapsed)
        .zip(&magnitude)
        .map(|((p, q), m)| (f64::from(*p) - f64::from(*q)).abs() / (2.0 * gamma * m))
        .fold(0.0, f64::max);
    let output_scale = collapsed
        .iter()
        .map(|v| f64::from(v.abs()))
        .fold(0.0, f64::max);
    let relu_difference = difference(&relu, &collapsed);

    writeln!(
        log,
        "x: {BATCH}×{INPUTS}, W1: {INPUTS}×{HIDDEN}, W2: {HIDDEN}×{OUTPUTS}"
    )?;
    writeln!(
        log,
        "W1·W2 is one {INPUTS}×{OUTPUTS} layer: {} weights and biases instead of {}",
        INPUTS * OUTPUTS + OUTPUTS,
        INPUTS * HIDDEN + HIDDEN + HIDDEN * OUTPUTS + OUTPUTS
    )?;
    writeln!(
        log,
        "max |(x·W1 + b1)·W2 + b2 − (x·(W1·W2) + b1·W2 + b2)| = {collapse_difference:.3e} \
         (outputs up to {output_scale:.3}; at most {collapse_bound_ratio:.1e} of the f32 rounding bound)",
    )?;
    writeln!(
        log,
        "with a ReLU between the layers: max |difference| = {relu_difference:.3}: no longer one linear layer"
    )?;
    Ok(Report {
        collapse_difference,
        collapse_bound_ratio,
        output_scale,
        relu_difference,
    })
}

/// Two linear layers without an activation are one linear layer, checked on the GPU. It takes no arguments.
#[derive(Debug, clap::Parser)]
struct Args {}

fn main() -> ExitCode {
    support::main_with(|device, log, _: &Args| run(device, log))
}
