//! What a run leaves in `--out`: the model and its metrics (the valuable part), the loss curve
//! and the first test digits as images, and the checkpoint to resume from. Everything is drawn
//! in memory first and written through `wgsl_nn::files`, so a file is never half-written and
//! the set never mixes two runs.

use std::path::{Path, PathBuf};

use wgsl_nn::data::mnist::{PIXELS, SIDE};
use wgsl_nn::files::{StagedSet, remove_if_exists};
use wgsl_nn::nn::{Mlp, Model, Sequential, TorchNaming};

use crate::{interrupt, support};

/// The file names in `--out`.
pub const MODEL: &str = "model.safetensors";
/// The model as a PyTorch state_dict for the lecture's `Net` (`fc1`, `fc2`, …).
pub const TORCH_NET: &str = "model_torch.safetensors";
/// The model as a PyTorch state_dict for the `nn.Sequential` of its layers (`0`, `2`, …).
pub const TORCH_SEQUENTIAL: &str = "model_torch_sequential.safetensors";
pub const METRICS: &str = "metrics.json";
pub const LOSS_PLOT: &str = "loss.png";
pub const PREDICTIONS_PLOT: &str = "predictions.png";
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// The lecture's loss curve (mean training loss per epoch, left axis) and, when measured, the
/// test accuracy after each epoch (right axis).
pub fn loss_plot(losses: &[f32], accuracies: &[f32], text: bool) -> Result<Vec<u8>, String> {
    use plotters::prelude::*;
    let (width, height) = (800, 500);
    support::png(width, height, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        // No epochs (an --init-from model evaluated with --epochs 0): an empty unit axis.
        let top = match losses.iter().copied().fold(0.0f32, f32::max) * 1.1 {
            0.0 => 1.0,
            top => top,
        };
        let epochs = 1f32..(losses.len().max(2) as f32);
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(20)
            .x_label_area_size(if text { 40 } else { 5 })
            .y_label_area_size(if text { 60 } else { 5 })
            .right_y_label_area_size(if text && !accuracies.is_empty() {
                60
            } else {
                5
            });
        if text {
            builder.caption(
                "training loss and test accuracy per epoch",
                ("sans-serif", 24),
            );
        }
        let low = accuracies.iter().copied().fold(1.0f32, f32::min);
        let accuracy_range = (low - 0.02).clamp(0.0, 0.98)..1f32;
        let mut chart = builder
            .build_cartesian_2d(epochs.clone(), 0f32..top.max(1e-3))?
            .set_secondary_coord(epochs, accuracy_range);
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("epoch")
                .y_desc("mean training loss")
                .x_labels(losses.len().clamp(2, 20))
                .x_label_formatter(&|x| format!("{x:.0}"));
        } else {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw()?;
        let at_epochs = |values: &[f32]| -> Vec<(f32, f32)> {
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as f32 + 1.0, v))
                .collect()
        };
        let loss = at_epochs(losses);
        chart
            .draw_series(LineSeries::new(loss.clone(), BLUE.stroke_width(2)))?
            .label("training loss")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart.draw_series(loss.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
        if !accuracies.is_empty() {
            if text {
                chart
                    .configure_secondary_axes()
                    .y_desc("test accuracy")
                    .draw()?;
            }
            let accuracy = at_epochs(accuracies);
            chart
                .draw_secondary_series(LineSeries::new(accuracy.clone(), RED.stroke_width(2)))?
                .label("test accuracy")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
            chart
                .draw_secondary_series(accuracy.iter().map(|&p| Circle::new(p, 4, RED.filled())))?;
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }
        root.present()?;
        Ok(())
    })
}

/// The first test digits, scaled up, with "predicted / true" under each and a green or red bar.
pub fn predictions_plot(
    images: &[u8],
    predictions: &[usize],
    labels: &[u8],
    text: bool,
) -> Result<Vec<u8>, String> {
    use plotters::prelude::*;
    let (scale, cell) = (4i32, 28 * 4 + 16);
    let (width, height) = (
        (cell * predictions.len().max(1) as i32) as u32,
        (cell + 40) as u32,
    );
    support::png(width, height, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        for (i, (&predicted, &label)) in predictions.iter().zip(labels).enumerate() {
            let x0 = i as i32 * cell + 8;
            for (p, &v) in images[i * PIXELS..(i + 1) * PIXELS].iter().enumerate() {
                let (r, c) = ((p / SIDE) as i32, (p % SIDE) as i32);
                let shade = 255 - v;
                let rect = [
                    (x0 + c * scale, 8 + r * scale),
                    (x0 + (c + 1) * scale, 8 + (r + 1) * scale),
                ];
                root.draw(&Rectangle::new(
                    rect,
                    RGBColor(shade, shade, shade).filled(),
                ))?;
            }
            let colour = if predicted == usize::from(label) {
                GREEN
            } else {
                RED
            };
            let bar = [
                (x0, 8 + 28 * scale + 4),
                (x0 + 28 * scale, 8 + 28 * scale + 8),
            ];
            root.draw(&Rectangle::new(bar, colour.filled()))?;
            if text {
                root.draw(&Text::new(
                    format!("{predicted} / {label}"),
                    (x0 + 30, 8 + 28 * scale + 14),
                    ("sans-serif", 20).into_font(),
                ))?;
            }
        }
        root.present()?;
        Ok(())
    })
}

/// Digits side by side as text art, one character per 2×2 pixels (quadrant blocks) of the
/// central 20×20 box MNIST centres its digits in: ten lines of art, then "predicted / true"
/// under each, misses marked ✗.
pub fn digits_block(images: &[u8], predictions: &[usize], labels: &[u8]) -> Vec<String> {
    // Quadrant characters indexed by the four pixels lit: top-left 1, top-right 2,
    // bottom-left 4, bottom-right 8.
    const QUADRANTS: [char; 16] = [
        ' ', '▘', '▝', '▀', '▖', '▌', '▞', '▛', '▗', '▚', '▐', '▜', '▄', '▙', '▟', '█',
    ];
    const BOX: std::ops::Range<usize> = 4..24;
    let lit = |image: &[u8], r: usize, c: usize| image[r * SIDE + c] >= 96;
    let mut lines = vec![String::new(); BOX.len() / 2 + 1];
    for (i, (&predicted, &label)) in predictions.iter().zip(labels).enumerate() {
        let image = &images[i * PIXELS..(i + 1) * PIXELS];
        for (line, r) in lines.iter_mut().zip(BOX.step_by(2)) {
            for c in BOX.step_by(2) {
                let bits = usize::from(lit(image, r, c))
                    | usize::from(lit(image, r, c + 1)) << 1
                    | usize::from(lit(image, r + 1, c)) << 2
                    | usize::from(lit(image, r + 1, c + 1)) << 3;
                line.push(QUADRANTS[bits]);
            }
            line.push_str("  ");
        }
        let mark = if predicted == usize::from(label) {
            ' '
        } else {
            '✗'
        };
        let caption = format!("{predicted} / {label} {mark}");
        let last = lines.last_mut().expect("a caption line");
        last.push_str(&format!("{caption:<width$}", width = BOX.len() / 2 + 2));
    }
    lines.iter().map(|l| l.trim_end().to_string()).collect()
}

/// The model's files: the engine's own, and the PyTorch state_dicts written for it.
pub struct ModelFiles {
    pub engine: Vec<u8>,
    pub torch: StateDicts,
}

/// PyTorch state_dicts by file name: [`TORCH_NET`] and [`TORCH_SEQUENTIAL`] for an MLP, only
/// [`TORCH_SEQUENTIAL`] for a sequential model (a CNN has no `Net` naming).
pub type StateDicts = Vec<(&'static str, Vec<u8>)>;

/// What the run writes about its model, by the kind of model.
pub trait Exports: Model {
    /// One line for the log.
    fn describe(&self) -> String;
    /// The architecture, in model.safetensors' metadata and metrics.json's config.
    fn architecture(&self) -> Vec<(String, String)>;
    /// The PyTorch state_dicts the engine writes for this model.
    fn torch(&self) -> Result<StateDicts, Box<dyn std::error::Error>>;
}

impl Exports for Mlp {
    fn describe(&self) -> String {
        let c = self.config();
        format!("{:?}, {}", c.widths, c.activation.name())
    }

    fn architecture(&self) -> Vec<(String, String)> {
        let c = self.config();
        vec![
            ("widths".into(), format!("{:?}", c.widths)),
            ("activation".into(), c.activation.name().into()),
        ]
    }

    fn torch(&self) -> Result<StateDicts, Box<dyn std::error::Error>> {
        let net = self.to_state_dict(TorchNaming::Net)?.to_bytes()?;
        let sequential = self.to_state_dict(TorchNaming::Sequential)?.to_bytes()?;
        Ok(vec![(TORCH_NET, net), (TORCH_SEQUENTIAL, sequential)])
    }
}

impl Exports for Sequential {
    fn describe(&self) -> String {
        let c = self.config();
        format!("{:?} → {}", c.input, c.describe())
    }

    fn architecture(&self) -> Vec<(String, String)> {
        let c = self.config();
        vec![
            ("input".into(), format!("{:?}", c.input)),
            ("layers".into(), c.describe()),
        ]
    }

    fn torch(&self) -> Result<StateDicts, Box<dyn std::error::Error>> {
        Ok(vec![(TORCH_SEQUENTIAL, self.to_state_dict()?.to_bytes()?)])
    }
}

/// Writes a finished run's outputs into `out`, all of them as one set: every file is complete
/// before any is renamed into place. If the plots could not be drawn or staged, the models and
/// metrics are written alone and the previous run's plots are removed (so what is left is one
/// run's), and the problem is returned.
pub fn write_run(
    out: &Path,
    models: &ModelFiles,
    metrics: &[u8],
    plots: Result<(Vec<u8>, Vec<u8>), String>,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut files = vec![(MODEL, &models.engine[..]), (METRICS, metrics)];
    files.extend(models.torch.iter().map(|(name, bytes)| (*name, &bytes[..])));
    // A state_dict this model has no naming for (a CNN's `Net`) is removed once the set is in
    // place, so an earlier run's cannot pass for this one's.
    let stale: Vec<&str> = [TORCH_NET, TORCH_SEQUENTIAL]
        .into_iter()
        .filter(|name| models.torch.iter().all(|(written, _)| written != name))
        .collect();
    let valuable = StagedSet::stage(out, &files)?;
    let plots = plots
        .map_err(|e| format!("cannot draw the plots: {e}"))
        .and_then(|(loss, predictions)| {
            StagedSet::stage(out, &[(LOSS_PLOT, &loss), (PREDICTIONS_PLOT, &predictions)])
                .map_err(|e| e.to_string())
        });
    match plots {
        Ok(plots) => Ok(interrupt::writing(|| {
            let written = valuable.join(plots).commit()?;
            for name in &stale {
                remove_if_exists(&out.join(name))?;
            }
            Ok::<_, wgsl_nn::Error>(written)
        })?),
        Err(problem) => {
            let written = interrupt::writing(|| -> Result<_, wgsl_nn::Error> {
                let written = valuable.commit()?;
                for name in stale.iter().chain(&[LOSS_PLOT, PREDICTIONS_PLOT]) {
                    remove_if_exists(&out.join(name))?;
                }
                Ok(written)
            })?;
            let listed: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            Err(format!("wrote {}, but not the plots: {problem}", listed.join(", ")).into())
        }
    }
}
