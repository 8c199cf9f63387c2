//! The lecture's opening: a linear classifier `scores = x·W + b`, one weight column per class,
//! and what those columns look like. Trained here on MNIST on the GPU (784 → 10, softmax
//! cross-entropy, SGD with momentum), each of the ten columns of `W`, drawn as a 28×28 image,
//! is a blurry template of its digit: positive (red) where the digit's strokes usually are,
//! negative (blue) where other digits' strokes are and this one's are not.
//!
//! `templates.png` shows them as the lecture's figure does. The example measures how much each
//! looks like its digit: the correlation of template k with the mean training image of every
//! class, which is highest for class k.
//!
//! ```text
//! cargo run --release --example linear_classifier -- [--out DIR] [--data-dir DIR] [--no-download]
//! ```
//!
//! MNIST is read from `--data-dir`, else `MNIST_DIR`, else `data/mnist`, and downloaded there
//! when it is missing (unless `--no-download`), as the `mnist` example does.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wgsl_nn::Device;
use wgsl_nn::activation::Activation;
use wgsl_nn::data::gpu::{GpuDataset, Normalization};
use wgsl_nn::data::mnist::{CLASSES, Mnist, PIXELS, SIDE};
use wgsl_nn::nn::{Evaluator, Mlp, MlpConfig, Trainer, TrainerConfig};
use wgsl_nn::optim::OptimizerConfig;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Epochs trained by default.
pub const EPOCHS: usize = 3;

/// What the example found.
#[derive(Debug)]
pub struct Report {
    /// Test accuracy after each epoch.
    pub test_accuracy: Vec<f32>,
    /// `W`, `[784, 10]` row-major: column k is class k's template.
    pub weights: Vec<f32>,
    /// `correlation[k][j]`: Pearson correlation of template k with the mean image of class j.
    pub correlation: [[f64; CLASSES]; CLASSES],
    /// The figure.
    pub plot: PathBuf,
}

/// Class k's template: column k of `W`.
pub fn template(weights: &[f32], k: usize) -> Vec<f32> {
    (0..PIXELS).map(|p| weights[p * CLASSES + k]).collect()
}

/// The mean training image of each class, in [0, 1].
pub fn class_means(mnist: &Mnist) -> Vec<Vec<f64>> {
    let mut sums = vec![vec![0.0f64; PIXELS]; CLASSES];
    let mut counts = [0usize; CLASSES];
    for (image, &label) in mnist.train_images.chunks(PIXELS).zip(&mnist.train_labels) {
        counts[usize::from(label)] += 1;
        for (s, &p) in sums[usize::from(label)].iter_mut().zip(image) {
            *s += f64::from(p) / 255.0;
        }
    }
    for (sum, &count) in sums.iter_mut().zip(&counts) {
        sum.iter_mut().for_each(|s| *s /= count.max(1) as f64);
    }
    sums
}

/// Pearson's correlation of two images.
pub fn correlation(a: &[f32], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let mean_a = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let mean_b = b.iter().sum::<f64>() / n;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - mean_a, y - mean_b);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}

/// A diverging colour map: blue for negative, white for zero, red for positive (`t` in [−1, 1]).
fn diverging(t: f32) -> (u8, u8, u8) {
    let t = t.clamp(-1.0, 1.0);
    let fade = |v: f32| (255.0 * (1.0 - v.abs())).round() as u8;
    if t >= 0.0 {
        (255, fade(t), fade(t))
    } else {
        (fade(t), fade(t), 255)
    }
}

/// The ten templates side by side, each scaled by its own largest |weight|, labelled 0–9.
fn plot_templates(weights: &[f32], text: bool) -> std::result::Result<Vec<u8>, String> {
    use plotters::prelude::*;
    let (scale, cell) = (5i32, SIDE as i32 * 5 + 12);
    let (width, height) = ((cell * CLASSES as i32 + 12) as u32, (cell + 40) as u32);
    support::png(width, height, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        for k in 0..CLASSES {
            let t = template(weights, k);
            let peak = t
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let x0 = 12 + k as i32 * cell;
            for (p, &w) in t.iter().enumerate() {
                let (r, c) = ((p / SIDE) as i32, (p % SIDE) as i32);
                let (red, green, blue) = diverging(w / peak);
                let rect = [
                    (x0 + c * scale, 12 + r * scale),
                    (x0 + (c + 1) * scale, 12 + (r + 1) * scale),
                ];
                root.draw(&Rectangle::new(rect, RGBColor(red, green, blue).filled()))?;
            }
            if text {
                root.draw(&Text::new(
                    k.to_string(),
                    (x0 + SIDE as i32 * scale / 2 - 5, 16 + SIDE as i32 * scale),
                    ("sans-serif", 22).into_font(),
                ))?;
            }
        }
        root.present()?;
        Ok(())
    })
}

/// Trains on `mnist` for `epochs` epochs, prints what the lecture shows to `log`, writes
/// `templates.png` into `out_dir`.
pub fn run_in(
    device: &Device,
    log: &mut dyn Write,
    mnist: &Mnist,
    out_dir: &Path,
    epochs: usize,
) -> Result<Report> {
    let model = Mlp::new(
        device,
        MlpConfig {
            widths: vec![PIXELS, CLASSES],
            // No hidden layer, so no activation is applied.
            activation: Activation::Identity,
            seed: 0,
        },
    )?;
    let normalization = Normalization::default();
    let config = TrainerConfig {
        optimizer: OptimizerConfig::momentum(0.01, 0.9),
        epochs,
        ..TrainerConfig::lecture()
    };
    let data =
        |images: &[u8], labels: &[u8]| GpuDataset::new(device, images, labels, PIXELS, CLASSES);
    let mut trainer = Trainer::new(
        model,
        data(&mnist.train_images, &mnist.train_labels)?,
        config,
    )?;
    let mut test = Evaluator::new(
        trainer.model(),
        data(&mnist.test_images, &mnist.test_labels)?,
        1000,
        normalization,
    )?;
    writeln!(
        log,
        "a linear classifier, scores = x·W + b with W of 784 × 10, trained with softmax \
         cross-entropy and SGD (lr 0.01, momentum 0.9), batch 64:"
    )?;
    let mut test_accuracy = Vec::new();
    for _ in 0..epochs {
        let stats = trainer.train_epoch(|_, _, _| {})?;
        let accuracy = test.accuracy()?;
        writeln!(
            log,
            "  epoch {}: train loss {:.4}, test accuracy {accuracy:.4}",
            stats.epoch, stats.mean_loss
        )?;
        test_accuracy.push(accuracy);
    }

    let weights = trainer.model().layers[0].weight.value().to_vec()?;
    let means = class_means(mnist);
    let mut correlations = [[0.0; CLASSES]; CLASSES];
    writeln!(
        log,
        "\neach column of W as a 28×28 template: its correlation with the mean training image of \
         its own class, and the best of the other classes'"
    )?;
    for (k, row) in correlations.iter_mut().enumerate() {
        let t = template(&weights, k);
        for (j, c) in row.iter_mut().enumerate() {
            *c = correlation(&t, &means[j]);
        }
        let (other, best_other) = (0..CLASSES)
            .filter(|&j| j != k)
            .map(|j| (j, row[j]))
            .fold((k, f64::MIN), |best, c| if c.1 > best.1 { c } else { best });
        writeln!(
            log,
            "  template {k}: {:+.3} with the mean {k}, at most {best_other:+.3} with another ({other})",
            row[k]
        )?;
    }

    let png = plot_templates(&weights, support::register_font())
        .map_err(|e| format!("cannot draw templates.png: {e}"))?;
    let plot = out_dir.join("templates.png");
    wgsl_nn::files::write_atomically(&plot, &png)?;
    writeln!(
        log,
        "\nthe templates (red positive, blue negative): {}",
        plot.display()
    )?;
    Ok(Report {
        test_accuracy,
        weights,
        correlation: correlations,
        plot,
    })
}

/// The lecture's linear classifier on MNIST, trained on the GPU; its ten weight columns drawn
/// as templates (templates.png).
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    out: support::OutArgs,
    #[command(flatten)]
    data: support::DataArgs,
}

fn main() -> ExitCode {
    support::main_with(|device, log, args: &Args| {
        let mnist = args.data.load()?;
        run_in(device, log, &mnist, &args.out.out, EPOCHS)
    })
}
