//! XOR, the lecture's reason for hidden layers, on the GPU.
//!
//! 1. The truth table.
//! 2. No linear classifier `step(w1·a + w2·b + c)` gets more than 3 of the 4 rows right: all
//!    68,921 classifiers of a grid over [−2, 2]³ are evaluated in one matmul with the step
//!    function as its epilogue, and the best gets 3 (the lecture's argument: the points
//!    (0, 1) and (1, 0) lie on one side of any line that separates them from the others).
//! 3. The lecture's 2-2-1 sigmoid network with weights w1..w6 = 0.45, 0.78, −0.12, 0.13, 1.5,
//!    −2.3 (w1, w2 from the first input, w3, w4 from the second, w5, w6 to the output):
//!    for the input (1, 0), H1 = σ(0.45) = 0.61, H2 = σ(0.78) = 0.69 and the output is
//!    σ(1.5·H1 − 2.3·H2) = 0.3405 (the lecture rounds H1 and H2 first and prints 0.33).
//! 4. A 2-4-1 network (tanh, then a logit) trained through autograd with Adam gets 4 of 4;
//!    `xor.png` shows its decision regions.
//!
//! ```text
//! cargo run --release --example xor -- [--out DIR]   # default runs/lecture
//! ```

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgsl_nn::activation::Activation;
use wgsl_nn::autograd::{Loss, Var, VarOptimizer};
use wgsl_nn::matmul::{MatmulForm, MatmulOptions, matmul};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, Tensor};

/// The four inputs, row by row.
pub const INPUTS: [[f32; 2]; 4] = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
/// a XOR b for each row.
pub const TARGETS: [f32; 4] = [0.0, 1.0, 1.0, 0.0];
/// The lecture's weights w1..w6.
pub const LECTURE_WEIGHTS: [f32; 6] = [0.45, 0.78, -0.12, 0.13, 1.5, -2.3];
/// Training steps of the 2-4-1 network.
pub const STEPS: usize = 300;

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// The most rows any linear classifier of the grid gets right.
    pub best_linear_correct: usize,
    /// How many grid classifiers were evaluated.
    pub linear_classifiers: usize,
    /// The lecture network's hidden values `[H1, H2]` for each input row.
    pub lecture_hidden: Vec<[f32; 2]>,
    /// The lecture network's output for each input row.
    pub lecture_output: Vec<f32>,
    /// The trained network's probabilities for each input row.
    pub trained_output: Vec<f32>,
    /// Rows the trained network gets right (threshold 0.5).
    pub trained_correct: usize,
    /// The final training loss (binary cross-entropy).
    pub final_loss: f32,
    /// Where the decision-region plot was written.
    pub plot: PathBuf,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn inputs(device: &Device) -> wgsl_nn::Result<Var> {
    Var::from_slice(device, INPUTS.as_flattened(), [4, 2], false)
}

/// Every `step(w1·a + w2·b + c)` with w1, w2, c on a grid over [−2, 2] (step 0.1) on the
/// four rows: the most rows any of them gets right.
fn best_linear_classifier(device: &Device) -> Result<(usize, usize)> {
    let grid: Vec<f32> = (0..=40).map(|i| -2.0 + 0.1 * i as f32).collect();
    let mut classifiers = Vec::with_capacity(grid.len().pow(3) * 3);
    for &w1 in &grid {
        for &w2 in &grid {
            for &c in &grid {
                classifiers.extend([w1, w2, c]);
            }
        }
    }
    let count = classifiers.len() / 3;
    let weights = Tensor::from_slice(device, &classifiers, [count, 3])?;
    // Each row with a 1 appended, so the bias is one more weight.
    let rows: Vec<f32> = INPUTS.iter().flat_map(|&[a, b]| [a, b, 1.0]).collect();
    let rows = Tensor::from_slice(device, &rows, [4, 3])?;
    let options = MatmulOptions {
        form: MatmulForm::ABt,
        activation: Activation::STEP,
        ..MatmulOptions::default()
    };
    let predictions = matmul(&weights, &rows, &options)?.to_vec()?;
    let best = predictions
        .chunks(4)
        .map(|p| p.iter().zip(TARGETS).filter(|(p, t)| **p == *t).count())
        .max()
        .unwrap_or(0);
    Ok((best, count))
}

/// The lecture's network on all four rows: hidden values and outputs.
fn lecture_network(device: &Device) -> Result<(Vec<[f32; 2]>, Vec<f32>)> {
    let [w1, w2, w3, w4, w5, w6] = LECTURE_WEIGHTS;
    let hidden_weights = Var::from_slice(device, &[w1, w2, w3, w4], [2, 2], false)?;
    let output_weights = Var::from_slice(device, &[w5, w6], [2, 1], false)?;
    let hidden = inputs(device)?.matmul(&hidden_weights)?.sigmoid()?;
    let output = hidden.matmul(&output_weights)?.sigmoid()?;
    let hidden: Vec<[f32; 2]> = hidden.to_vec()?.chunks(2).map(|h| [h[0], h[1]]).collect();
    Ok((hidden, output.to_vec()?))
}

/// A 2-4-1 network: tanh hidden layer, one logit out.
struct Network {
    params: [Var; 4],
}

impl Network {
    fn new(device: &Device, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let params = [
            Var::from_slice(device, &uniform(8), [2, 4], true)?,
            Var::from_slice(device, &uniform(4), [4], true)?,
            Var::from_slice(device, &uniform(4), [4, 1], true)?,
            Var::from_slice(device, &uniform(1), [1], true)?,
        ];
        Ok(Self { params })
    }

    fn logits(&self, x: &Var, params: &[Var; 4]) -> wgsl_nn::Result<Var> {
        let [w1, b1, w2, b2] = params;
        x.linear(w1, Some(b1))?.tanh()?.linear(w2, Some(b2))
    }

    /// Probabilities outside the graph (the parameters detached).
    fn predict(&self, x: &Var) -> wgsl_nn::Result<Vec<f32>> {
        let detached = self.params.clone().map(|p| p.detach());
        self.logits(x, &detached)?.sigmoid()?.to_vec()
    }
}

/// Trains the 2-4-1 network on the four rows with binary cross-entropy and Adam.
fn train(device: &Device, log: &mut dyn Write) -> Result<(Network, f32)> {
    let network = Network::new(device, 7)?;
    let x = inputs(device)?;
    let targets = Var::from_slice(device, &TARGETS, [4, 1], false)?;
    let criterion = Loss::bce_with_logits();
    let params: Vec<&Var> = network.params.iter().collect();
    let mut optimizer = VarOptimizer::new(OptimizerConfig::adam(0.1), &params)?;
    let mut last = f32::NAN;
    for step in 1..=STEPS {
        optimizer.zero_grad()?;
        let loss = criterion.forward(&network.logits(&x, &network.params)?, &targets)?;
        loss.backward()?;
        optimizer.step()?;
        if step % 50 == 0 || step == 1 {
            last = loss.item()?;
            writeln!(log, "  step {step:>3}: loss {last:.5}")?;
        }
    }
    Ok((network, last))
}

/// The trained network's probability over [−0.5, 1.5]², with the four rows marked.
fn plot_regions(device: &Device, network: &Network, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    const SIDE: usize = 200;
    let coordinate = |i: usize| -0.5 + 2.0 * (i as f32 + 0.5) / SIDE as f32;
    let grid: Vec<f32> = (0..SIDE * SIDE)
        .flat_map(|i| [coordinate(i % SIDE), coordinate(i / SIDE)])
        .collect();
    let probabilities =
        network.predict(&Var::from_slice(device, &grid, [SIDE * SIDE, 2], false)?)?;
    let text = support::register_font();
    let root = BitMapBackend::new(path, (560, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .x_label_area_size(30)
        .y_label_area_size(30);
    if text {
        builder.caption(
            "XOR: learned decision regions (2-4-1, tanh)",
            ("sans-serif", 20),
        );
    }
    let mut chart = builder.build_cartesian_2d(-0.5f32..1.5f32, -0.5f32..1.5f32)?;
    let mut mesh = chart.configure_mesh();
    if !text {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    let cell = 2.0 / SIDE as f32;
    chart.draw_series(probabilities.iter().enumerate().map(|(i, &p)| {
        let (x, y) = (coordinate(i % SIDE), coordinate(i / SIDE));
        // Blue for class 0, red for class 1, pale near the boundary.
        let colour = RGBColor(
            (255.0 * (0.55 + 0.45 * p)) as u8,
            (255.0 * (0.55 + 0.45 * (1.0 - (2.0 * p - 1.0).abs()))) as u8,
            (255.0 * (0.55 + 0.45 * (1.0 - p))) as u8,
        );
        Rectangle::new(
            [
                (x - cell / 2.0, y - cell / 2.0),
                (x + cell / 2.0, y + cell / 2.0),
            ],
            colour.filled(),
        )
    }))?;
    chart.draw_series(INPUTS.iter().zip(TARGETS).map(|(&[a, b], t)| {
        let colour = if t == 1.0 { RED } else { BLUE };
        Circle::new((a, b), 9, colour.filled().stroke_width(2))
    }))?;
    root.present()?;
    Ok(())
}

/// Every part of the example, printed to `log`, the plot written into `out_dir`.
pub fn run_in(device: &Device, log: &mut dyn Write, out_dir: &Path) -> Result<Report> {
    writeln!(log, "XOR truth table:\n   a  b | a XOR b")?;
    for (&[a, b], t) in INPUTS.iter().zip(TARGETS) {
        writeln!(log, "   {a}  {b} |   {t}")?;
    }

    let (best_linear_correct, linear_classifiers) = best_linear_classifier(device)?;
    writeln!(
        log,
        "\nlinear classifiers step(w1·a + w2·b + c), {linear_classifiers} of them on a grid over \
         [−2, 2]³: the best gets {best_linear_correct} of 4 rows right"
    )?;

    let (lecture_hidden, lecture_output) = lecture_network(device)?;
    writeln!(
        log,
        "\nthe lecture's 2-2-1 sigmoid network, w1..w6 = {LECTURE_WEIGHTS:?}:"
    )?;
    writeln!(log, "   a  b |    H1     H2 | output")?;
    for ((&[a, b], h), o) in INPUTS.iter().zip(&lecture_hidden).zip(&lecture_output) {
        writeln!(log, "   {a}  {b} | {:.4} {:.4} | {o:.4}", h[0], h[1])?;
    }

    writeln!(
        log,
        "\ntraining a 2-4-1 network (tanh, logit) with Adam, lr 0.1:"
    )?;
    let (network, final_loss) = train(device, log)?;
    let trained_output = network.predict(&inputs(device)?)?;
    let trained_correct = trained_output
        .iter()
        .zip(TARGETS)
        .filter(|(p, t)| (**p > 0.5) == (*t == 1.0))
        .count();
    writeln!(log, "   a  b | P(a XOR b = 1)")?;
    for (&[a, b], p) in INPUTS.iter().zip(&trained_output) {
        writeln!(log, "   {a}  {b} | {p:.4}")?;
    }
    writeln!(log, "trained network: {trained_correct} of 4 right")?;

    std::fs::create_dir_all(out_dir)?;
    let plot = out_dir.join("xor.png");
    plot_regions(device, &network, &plot)?;
    writeln!(log, "decision regions: {}", plot.display())?;
    Ok(Report {
        best_linear_correct,
        linear_classifiers,
        lecture_hidden,
        lecture_output,
        trained_output,
        trained_correct,
        final_loss,
        plot,
    })
}

/// XOR: no line separates it, a 2-2-1 network trained on the GPU does (xor.png).
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    out: support::OutArgs,
}

fn main() -> ExitCode {
    support::main_with(|device, log, args: &Args| run_in(device, log, &args.out.out))
}
