//! The lecture's MNIST MLP, trained on the GPU.
//!
//! `cargo run --release --example mnist` trains `Linear(784,128) → ReLU → Linear(128,10)` with
//! cross-entropy and SGD(lr = 0.001), batch 64, 10 epochs, inputs normalised with mean 0.5 and
//! std 0.5, then prints train and test accuracy and the first ten test digits with their
//! predictions. `--help` lists the flags.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wgsl_nn::activation::Activation;
use wgsl_nn::data::gpu::{GpuDataset, Normalization};
use wgsl_nn::data::mnist::{CLASSES, Mnist, PIXELS, SIDE, resolve_data_dir};
use wgsl_nn::nn::{Evaluator, Mlp, MlpConfig, Trainer, TrainerConfig};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, DeviceOptions, list_adapters};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerName {
    Sgd,
    Momentum,
    Adam,
    Adamw,
}

#[derive(Debug, Parser)]
#[command(about = "Train the lecture's MNIST MLP on the GPU")]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
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
    /// Where to write metrics.json.
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

/// Writes `contents` to `path` through a temporary file and a rename, so an interrupted
/// write never leaves a half-written file.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
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
        batch_size: args.batch_size,
        optimizer: optimizer(&args),
        normalization,
        seed: args.seed,
    };
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
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", args.epochs));
        let stats = trainer.train_epoch(|step, _| bar.set_position(step as u64))?;
        bar.finish_and_clear();
        let images_per_second = mnist.train_len() as f64 / stats.seconds;
        println!(
            "epoch {epoch:>2}: train loss {:.4}  {:.2} s  {:.0} images/s",
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
            "epochs": args.epochs, "seed": args.seed, "normalization": {"mean": normalization.mean, "std": normalization.std},
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
