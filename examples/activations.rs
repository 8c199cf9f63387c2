//! Every activation of the lecture, and its derivative, computed by the GPU's forward and
//! backward kernels: a table on a few inputs and `activations.png` with each curve.
//!
//! The derivative is the backward kernel applied to an upstream gradient of ones, so the plot
//! shows exactly what training uses. PReLU uses PyTorch's initial slope 0.25, RReLU its
//! evaluation-mode slope (1/8 + 1/3) / 2; the step (threshold) function has no gradient.
//!
//! ```text
//! cargo run --release --example activations -- [--out DIR]   # default runs/lecture
//! ```

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wgsl_nn::activation::{Activation, ActivationState, activation_backward, activation_forward};
use wgsl_nn::{Device, Tensor};

/// The inputs of the table.
pub const INPUTS: [f32; 7] = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0];
/// PReLU's slope (PyTorch's initial value).
pub const PRELU_SLOPE: f32 = 0.25;

/// One activation on some inputs.
#[derive(Debug, Clone)]
pub struct Curve {
    /// The activation.
    pub activation: Activation,
    /// f(x).
    pub values: Vec<f32>,
    /// f'(x), `None` for the step function.
    pub derivatives: Option<Vec<f32>>,
}

/// What the example computed.
#[derive(Debug)]
pub struct Report {
    /// Every activation on [`INPUTS`].
    pub table: Vec<Curve>,
    /// Where the plot was written.
    pub plot: PathBuf,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// f and f' of every activation on `inputs`, from the GPU kernels.
pub fn curves(device: &Device, inputs: &[f32]) -> Result<Vec<Curve>> {
    let x = Tensor::from_slice(device, inputs, [inputs.len()])?;
    let ones = Tensor::from_slice(device, &vec![1.0; inputs.len()], [inputs.len()])?;
    let slopes = Tensor::from_slice(device, &[PRELU_SLOPE], [1])?;
    let state = ActivationState {
        prelu_slopes: Some(&slopes),
        ..ActivationState::default()
    };
    Activation::ALL
        .into_iter()
        .map(|activation| {
            let values = activation_forward(&x, activation, &state)?.to_vec()?;
            let derivatives = if activation.has_gradient() {
                Some(activation_backward(&x, &ones, activation, &state)?.to_vec()?)
            } else {
                None
            };
            Ok(Curve {
                activation,
                values,
                derivatives,
            })
        })
        .collect()
}

fn plot(device: &Device, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let xs: Vec<f32> = (0..=400).map(|i| -4.0 + 0.02 * i as f32).collect();
    let curves = curves(device, &xs)?;
    let text = support::register_font();
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((3, 4));
    for (panel, curve) in panels.iter().zip(&curves) {
        let mut builder = ChartBuilder::on(panel);
        builder
            .margin(12)
            .x_label_area_size(22)
            .y_label_area_size(32);
        if text {
            builder.caption(curve.activation.name(), ("sans-serif", 18));
        }
        let mut chart = builder.build_cartesian_2d(-4f32..4f32, -4f32..4f32)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(5).y_labels(5);
        if !text {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw()?;
        let series = |ys: &[f32]| {
            xs.iter()
                .copied()
                .zip(ys.iter().copied())
                .collect::<Vec<_>>()
        };
        chart
            .draw_series(LineSeries::new(series(&curve.values), BLUE.stroke_width(2)))?
            .label("f(x)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        if let Some(derivatives) = &curve.derivatives {
            chart
                .draw_series(LineSeries::new(series(derivatives), RED.stroke_width(2)))?
                .label("f'(x)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED.stroke_width(2)));
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .label_font(("sans-serif", 13))
                .draw()?;
        }
    }
    // The last panel of the 3×4 grid is free: a legend for the whole figure.
    if let (Some(panel), true) = (panels.last(), text) {
        panel.draw(&Text::new(
            "blue: f(x), red: f'(x)",
            (20, 40),
            ("sans-serif", 18).into_font(),
        ))?;
        panel.draw(&Text::new(
            "f' from the GPU backward kernels",
            (20, 70),
            ("sans-serif", 16).into_font(),
        ))?;
        panel.draw(&Text::new(
            "step: no gradient",
            (20, 100),
            ("sans-serif", 16).into_font(),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// The table, printed to `log`, and the plot, written into `out_dir`.
pub fn run_in(device: &Device, log: &mut dyn Write, out_dir: &Path) -> Result<Report> {
    let table = curves(device, &INPUTS)?;
    let header: Vec<String> = INPUTS.iter().map(|x| format!("{x:>7}")).collect();
    writeln!(log, "{:<18}{}", "x", header.join(""))?;
    for curve in &table {
        let row = |ys: &[f32]| ys.iter().map(|y| format!("{y:>7.3}")).collect::<String>();
        writeln!(log, "{:<18}{}", curve.activation.name(), row(&curve.values))?;
        match &curve.derivatives {
            Some(d) => writeln!(log, "{:<18}{}", "  derivative", row(d))?,
            None => writeln!(
                log,
                "{:<18}no gradient (0 almost everywhere)",
                "  derivative"
            )?,
        }
    }
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join("activations.png");
    plot(device, &path)?;
    writeln!(log, "plot: {}", path.display())?;
    Ok(Report { table, plot: path })
}

/// Every activation and its derivative on the GPU: a table, and their plot (activations.png).
#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    out: support::OutArgs,
}

fn main() -> ExitCode {
    support::main_with(|device, log, args: &Args| run_in(device, log, &args.out.out))
}
