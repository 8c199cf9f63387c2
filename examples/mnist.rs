//! The lecture's MNIST MLP, trained on the GPU.
//!
//! `cargo run --release --example mnist` trains `Linear(784,128) → ReLU → Linear(128,10)` with
//! cross-entropy and SGD(lr = 0.001), batch 64, 10 epochs, inputs normalised with mean 0.5 and
//! std 0.5, then prints train and test accuracy and the first ten test digits with their
//! predictions. `--help` lists the flags.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wgsl_nn::activation::Activation;
use wgsl_nn::data::download::{DownloadOptions, download_mnist};
use wgsl_nn::data::gpu::{GpuDataset, Normalization};
use wgsl_nn::data::mnist::{CLASSES, FILES, Mnist, PIXELS, SIDE, find_file, resolve_data_dir};
use wgsl_nn::nn::{
    ClassifierLoss, Evaluator, Mlp, MlpConfig, Schedule, Trainer, TrainerConfig, load_checkpoint,
    save_checkpoint, write_atomically,
};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, DeviceOptions, list_adapters};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerName {
    Sgd,
    Momentum,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Preset {
    /// The lecture's configuration (the defaults).
    Lecture,
    /// The best recipe found for this MLP: 784-256-10, AdamW (lr 0.002, weight decay 0.01),
    /// one-cycle schedule. Overrides --hidden, --optimizer, --lr, --weight-decay, --schedule.
    Best,
}

#[derive(Debug, Parser)]
#[command(about = "Train the lecture's MNIST MLP on the GPU")]
struct Args {
    /// A named configuration.
    #[arg(long, value_enum, default_value = "lecture")]
    preset: Preset,
    /// Loss: cross_entropy, mse (logits against one-hot targets) or bce_with_logits.
    #[arg(long, default_value = "cross_entropy")]
    loss: String,
    /// Learning-rate schedule: constant, step (×0.1 every 3 epochs), cosine or onecycle.
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Continue from a checkpoint (model.safetensors) saved by an earlier run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Batches whose gradients are summed before each optimiser step.
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.001)]
    lr: f32,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerName,
    /// Momentum (for --optimizer momentum).
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "128", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Activation between layers (relu, leaky_relu, rrelu, elu, sigmoid, tanh, gelu, gelu_tanh, identity).
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Seed of the initialisation and the shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Directory with the MNIST files (else $MNIST_DIR, else data/mnist).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download MNIST; fail if the files are missing.
    #[arg(long)]
    no_download: bool,
    /// Where to write metrics.json and model.safetensors.
    #[arg(long, default_value = "runs/mnist")]
    out: PathBuf,
    /// Part of the adapter's name to use (see --list-adapters).
    #[arg(long)]
    adapter: Option<String>,
    /// Backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
    /// List the adapters and exit.
    #[arg(long)]
    list_adapters: bool,
}

fn main() -> ExitCode {
    env_logger::init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn optimizer(args: &Args) -> OptimizerConfig {
    match args.optimizer {
        OptimizerName::Sgd => OptimizerConfig::Sgd {
            lr: args.lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: args.weight_decay,
        },
        OptimizerName::Momentum => OptimizerConfig::Sgd {
            lr: args.lr,
            momentum: args.momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: args.weight_decay,
        },
        OptimizerName::Adam => OptimizerConfig::Adam {
            lr: args.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: args.weight_decay,
            decoupled: false,
        },
        OptimizerName::Adamw => OptimizerConfig::Adam {
            lr: args.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: args.weight_decay,
            decoupled: true,
        },
    }
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// The loss curve as the lecture plots it: mean training loss per epoch.
fn plot_loss(path: &std::path::Path, losses: &[f32], text: bool) -> PlotResult {
    use plotters::prelude::*;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = losses.iter().copied().fold(0.0f32, f32::max) * 1.1;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .x_label_area_size(if text { 40 } else { 5 })
        .y_label_area_size(if text { 60 } else { 5 });
    if text {
        builder.caption("training loss per epoch", ("sans-serif", 24));
    }
    let mut chart =
        builder.build_cartesian_2d(1f32..(losses.len().max(2) as f32), 0f32..top.max(1e-3))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch")
            .y_desc("mean cross-entropy")
            .x_labels(losses.len().clamp(2, 20))
            .x_label_formatter(&|x| format!("{x:.0}"));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    let points: Vec<(f32, f32)> = losses
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as f32 + 1.0, l))
        .collect();
    chart.draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
    root.present()?;
    Ok(())
}

/// The first test digits, scaled up, with "predicted / true" under each.
fn plot_predictions(
    path: &std::path::Path,
    images: &[u8],
    predictions: &[usize],
    labels: &[u8],
    text: bool,
) -> PlotResult {
    use plotters::prelude::*;
    let (scale, cell) = (4i32, 28 * 4 + 16);
    let width = (cell * predictions.len().max(1) as i32) as u32;
    let root = BitMapBackend::new(path, (width, (cell + 40) as u32)).into_drawing_area();
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
        root.draw(&Rectangle::new(
            [
                (x0, 8 + 28 * scale + 4),
                (x0 + 28 * scale, 8 + 28 * scale + 8),
            ],
            colour.filled(),
        ))?;
        if text {
            let caption = format!("{predicted} / {label}");
            root.draw(&Text::new(
                caption,
                (x0 + 30, 8 + 28 * scale + 14),
                ("sans-serif", 20).into_font(),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// A digit as text art, two characters per pixel so it keeps its shape.
fn digit_art(pixels: &[u8]) -> Vec<String> {
    pixels
        .chunks(SIDE)
        .map(|row| {
            row.iter()
                .map(|&p| match p {
                    0..=63 => "  ",
                    64..=127 => "░░",
                    128..=191 => "▒▒",
                    _ => "██",
                })
                .collect()
        })
        .collect()
}

fn run(mut args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.preset == Preset::Best {
        args.hidden = vec![256];
        args.optimizer = OptimizerName::Adamw;
        args.lr = 0.002;
        args.weight_decay = 0.01;
        args.schedule = "onecycle".into();
    }
    let schedule = Schedule::from_name(&args.schedule)?;
    let mut options = DeviceOptions::from_env()?;
    if let Some(backend) = &args.backend {
        options = options.with_backend(backend)?;
    }
    if args.list_adapters {
        for adapter in list_adapters(options.backends) {
            println!("{adapter}");
        }
        return Ok(());
    }
    if let Some(name) = &args.adapter {
        options = options.with_adapter_name(name.clone());
    }
    let device = Device::with_options(&options)?;
    println!("adapter: {}", device.adapter());

    let (data_dir, _) = resolve_data_dir(args.data_dir.as_deref());
    let missing = FILES.iter().any(|f| find_file(&data_dir, f).is_none());
    if missing && !args.no_download {
        println!("downloading MNIST into {}", data_dir.display());
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        download_mnist(
            &data_dir,
            &DownloadOptions::default(),
            &mut |name, done, total| {
                bar.set_message(name.to_string());
                bar.set_length(total.unwrap_or(done));
                bar.set_position(done);
            },
        )?;
        bar.finish_and_clear();
    }
    let mut mnist = Mnist::load(&data_dir)?;
    mnist.truncate(args.train_limit, args.test_limit);
    println!(
        "data: {} ({} training, {} test images)",
        data_dir.display(),
        mnist.train_len(),
        mnist.test_len()
    );

    let activation = Activation::from_name(&args.activation)?;
    let mut widths = vec![PIXELS];
    widths.extend(&args.hidden);
    widths.push(CLASSES);
    let model = Mlp::new(
        &device,
        MlpConfig {
            widths: widths.clone(),
            activation,
            seed: args.seed,
        },
    )?;
    println!(
        "model: {widths:?}, {}, {} parameters",
        activation.name(),
        model.parameter_count()
    );
    let normalization = Normalization::default();
    let config = TrainerConfig {
        loss: ClassifierLoss::from_name(&args.loss)?,
        batch_size: args.batch_size,
        optimizer: optimizer(&args),
        normalization,
        seed: args.seed,
        schedule,
        epochs: args.epochs,
        accumulation: args.accumulate,
        // One host sync per 100 steps, for the progress bar's loss.
        report_loss_every: 100,
        ..TrainerConfig::lecture()
    };
    if let Some(path) = &args.resume {
        load_checkpoint(&model, path)?;
        println!("resumed from {}", path.display());
    }
    let train = GpuDataset::new(
        &device,
        &mnist.train_images,
        &mnist.train_labels,
        PIXELS,
        CLASSES,
    )?;
    let mut trainer = Trainer::new(model, train, config)?;

    let started = Instant::now();
    let mut losses = Vec::new();
    let mut seconds = Vec::new();
    for epoch in 1..=args.epochs {
        let bar = ProgressBar::new(trainer.steps_per_epoch() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg}, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", args.epochs));
        let batch = args.batch_size as f64;
        let stats = trainer.train_epoch(|step, _, running_loss| {
            bar.set_position(step as u64);
            let rate = step as f64 * batch / bar.elapsed().as_secs_f64().max(1e-9);
            match running_loss {
                Some(loss) => bar.set_message(format!("loss {loss:.4}, {rate:.0} images/s")),
                None if step % 20 == 0 => {
                    let loss = bar.message();
                    let loss = loss
                        .split(',')
                        .next()
                        .filter(|m| m.starts_with("loss"))
                        .unwrap_or("loss …");
                    bar.set_message(format!("{loss}, {rate:.0} images/s"));
                }
                None => {}
            }
        })?;
        bar.finish_and_clear();
        let images_per_second = mnist.train_len() as f64 / stats.seconds;
        if epoch == 1 {
            if let Some(plan) = trainer.step_plan() {
                println!("captured step, kernel by kernel:");
                for (i, kernel) in plan.iter().enumerate() {
                    println!("  {}. {kernel}", i + 1);
                }
            }
        }
        let dispatches = trainer
            .dispatches_per_step()
            .map_or_else(|| "?".to_string(), |d| d.to_string());
        println!(
            "epoch {epoch:>2}: train loss {:.4}  {:.2} s  {:.0} images/s  {dispatches} dispatches/step",
            stats.mean_loss, stats.seconds, images_per_second
        );
        losses.push(stats.mean_loss);
        seconds.push(stats.seconds);
    }
    let total_seconds = started.elapsed().as_secs_f64();

    let eval_batch = 1000;
    let train_set = GpuDataset::new(
        &device,
        &mnist.train_images,
        &mnist.train_labels,
        PIXELS,
        CLASSES,
    )?;
    let train_accuracy =
        Evaluator::new(trainer.model(), train_set, eval_batch, normalization)?.accuracy()?;
    let test_set = GpuDataset::new(
        &device,
        &mnist.test_images,
        &mnist.test_labels,
        PIXELS,
        CLASSES,
    )?;
    let mut test_eval = Evaluator::new(trainer.model(), test_set, eval_batch, normalization)?;
    let test_accuracy = test_eval.accuracy()?;

    // The first ten test digits and what the model makes of them.
    let logits = test_eval.first_batch_logits()?;
    let shown = mnist.test_len().min(10);
    let predictions: Vec<usize> = logits
        .chunks(CLASSES)
        .take(shown)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (j, &v)| if v > row[best] { j } else { best })
        })
        .collect();
    for (i, predicted) in predictions.iter().enumerate() {
        println!(
            "test digit {i}: predicted {}, true {}",
            predicted, mnist.test_labels[i]
        );
        for line in digit_art(&mnist.test_images[i * PIXELS..(i + 1) * PIXELS]) {
            println!("  {line}");
        }
    }

    let metrics = serde_json::json!({
        "config": {
            "widths": widths, "activation": activation.name(), "optimizer": format!("{:?}", args.optimizer).to_lowercase(),
            "lr": args.lr, "momentum": args.momentum, "weight_decay": args.weight_decay, "batch_size": args.batch_size,
            "epochs": args.epochs, "seed": args.seed, "schedule": args.schedule, "loss": args.loss, "preset": format!("{:?}", args.preset).to_lowercase(), "normalization": {"mean": normalization.mean, "std": normalization.std},
            "train_images": mnist.train_len(), "test_images": mnist.test_len(),
        },
        "adapter": {"name": device.adapter().name, "backend": format!("{:?}", device.adapter().backend)},
        "train_loss": losses,
        "seconds": seconds,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "total_seconds": total_seconds,
        "predictions": predictions,
    });
    let text = support::register_font();
    std::fs::create_dir_all(&args.out)?;
    // Drawn into a temporary name and renamed, so a crash never leaves half an image.
    let loss_path = args.out.join("loss.png");
    let temp = args.out.join(".loss.png.part.png");
    plot_loss(&temp, &losses, text)?;
    std::fs::rename(&temp, &loss_path)?;
    let predictions_path = args.out.join("predictions.png");
    let temp = args.out.join(".predictions.png.part.png");
    plot_predictions(
        &temp,
        &mnist.test_images,
        &predictions,
        &mnist.test_labels,
        text,
    )?;
    std::fs::rename(&temp, &predictions_path)?;
    println!(
        "wrote {} and {}",
        loss_path.display(),
        predictions_path.display()
    );
    // Saved only now: a run that diverged returned an error above and overwrote nothing.
    let checkpoint_path = args.out.join("model.safetensors");
    let mut metadata = HashMap::new();
    metadata.insert("widths".to_string(), format!("{widths:?}"));
    metadata.insert("activation".to_string(), activation.name().to_string());
    metadata.insert("test_accuracy".to_string(), format!("{test_accuracy}"));
    save_checkpoint(trainer.model(), &checkpoint_path, metadata)?;
    println!("wrote {}", checkpoint_path.display());
    let metrics_path = args.out.join("metrics.json");
    write_atomically(
        &metrics_path,
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;
    println!("wrote {}", metrics_path.display());
    println!("train accuracy: {train_accuracy:.4}");
    println!("test accuracy: {test_accuracy:.4}");
    Ok(())
}
