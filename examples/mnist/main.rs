//! The lecture's MNIST MLP, trained on the GPU.
//!
//! `cargo run --release --example mnist` trains `Linear(784,128) → ReLU → Linear(128,10)` with
//! cross-entropy and SGD(lr = 0.001), batch 64, 10 epochs, inputs normalised with mean 0.5 and
//! std 0.5, then prints train and test accuracy and the first ten test digits with their
//! predictions. `--help` lists the flags.
//!
//! Nothing is lost and nothing is half-written: every argument, the output directory and the
//! device's limits are checked before the first step; a checkpoint is saved after every epoch
//! and on Ctrl-C, and `--resume` continues a run bit for bit; the outputs are replaced only
//! when the run has finished, and never mixed with an earlier run's.

mod interrupt;
mod outputs;
#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::builder::PossibleValuesParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wgsl_nn::activation::Activation;
use wgsl_nn::data::gpu::{GpuDataset, Normalization};
use wgsl_nn::data::mnist::{CLASSES, Mnist, PIXELS};
use wgsl_nn::files::{DirLock, check_writable, remove_stale_temporaries};
use wgsl_nn::nn::{
    CheckpointFile, ClassifierLoss, Evaluator, Mlp, MlpConfig, Schedule, Trainer, TrainerConfig,
};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, DeviceOptions, Error, list_adapters};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
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

/// The activations a network can train with: every one the library has but the perceptron's
/// step, which has no gradient.
fn trainable_activations() -> PossibleValuesParser {
    PossibleValuesParser::new(
        Activation::ALL
            .into_iter()
            .filter(|a| a.has_gradient())
            .map(Activation::name),
    )
}

#[derive(Debug, Parser)]
#[command(about = "Train the lecture's MNIST MLP on the GPU")]
struct Args {
    /// A named configuration.
    #[arg(long, value_enum, default_value = "lecture")]
    preset: Preset,
    /// Loss: on the logits, against one-hot targets for mse and bce_with_logits.
    #[arg(long, default_value = "cross_entropy",
          value_parser = PossibleValuesParser::new(["cross_entropy", "mse", "bce_with_logits"]))]
    loss: String,
    /// Learning-rate schedule (step: ×0.1 every 3 epochs; cosine and onecycle span --epochs).
    #[arg(long, default_value = "constant",
          value_parser = PossibleValuesParser::new(["constant", "step", "cosine", "onecycle"]))]
    schedule: String,
    /// Continue the run saved in this checkpoint (a checkpoint.safetensors, or the --out
    /// directory holding one) with the same flags; --epochs may grow.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start afresh even though --out holds an unfinished run's checkpoint (it is replaced
    /// after the first epoch).
    #[arg(long)]
    restart: bool,
    /// Passes over the training set (the total, counting resumed ones).
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
    /// Momentum in [0, 1), for --optimizer momentum [default: 0.9].
    #[arg(long)]
    momentum: Option<f32>,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "128", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Activation between layers.
    #[arg(long, default_value = "relu", value_parser = trainable_activations())]
    activation: String,
    /// Seed of the initialisation and the shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip the test-set evaluation after each epoch (only the final one is made; for speed).
    #[arg(long)]
    no_epoch_eval: bool,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    #[command(flatten)]
    data: support::DataArgs,
    /// Where to write metrics.json, model.safetensors, the plots and the checkpoint.
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

/// How a run ended without an error.
enum Ended {
    Finished,
    Interrupted,
}

fn main() -> ExitCode {
    env_logger::init();
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    match run(args, &matches) {
        Ok(Ended::Finished) => ExitCode::SUCCESS,
        Ok(Ended::Interrupted) => ExitCode::from(130),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

type Failure = Box<dyn std::error::Error>;

/// A flag's error: what was wrong and the fix.
fn bad_flag(message: impl Into<String>) -> Failure {
    message.into().into()
}

fn optimizer(args: &Args) -> OptimizerConfig {
    let adam = |decoupled| OptimizerConfig::Adam {
        lr: args.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: args.weight_decay,
        decoupled,
    };
    let sgd = |momentum| OptimizerConfig::Sgd {
        lr: args.lr,
        momentum,
        dampening: 0.0,
        nesterov: false,
        weight_decay: args.weight_decay,
    };
    match args.optimizer {
        OptimizerName::Sgd => sgd(0.0),
        OptimizerName::Momentum => sgd(args.momentum.unwrap_or(0.9)),
        OptimizerName::Adam => adam(false),
        OptimizerName::Adamw => adam(true),
    }
}

/// Applies the preset, checks every flag's value and warns of flags that do nothing; all of it
/// before any work. `given(id)` says whether a flag was on the command line.
fn check_flags(args: &mut Args, given: &dyn Fn(&str) -> bool) -> Result<(), Failure> {
    if args.preset == Preset::Best {
        for flag in ["hidden", "optimizer", "lr", "weight_decay", "schedule"] {
            if given(flag) {
                eprintln!(
                    "warning: --preset best sets --{}, so the value given is ignored",
                    flag.replace('_', "-")
                );
            }
        }
        args.hidden = vec![256];
        args.optimizer = OptimizerName::Adamw;
        args.lr = 0.002;
        args.weight_decay = 0.01;
        args.schedule = "onecycle".into();
    }
    let at_least_one = [
        ("epochs", Some(args.epochs)),
        ("batch-size", Some(args.batch_size)),
        ("accumulate", Some(args.accumulate)),
        ("train-limit", args.train_limit),
        ("test-limit", args.test_limit),
    ];
    for (flag, value) in at_least_one {
        if value == Some(0) {
            let why = match flag {
                "train-limit" => ": it leaves no images to train on",
                "test-limit" => ": it leaves no images to evaluate on",
                "epochs" => ": a run of no epochs trains nothing",
                _ => "",
            };
            return Err(bad_flag(format!("--{flag} 0{why}; give at least 1")));
        }
    }
    if let Some(i) = args.hidden.iter().position(|&w| w == 0) {
        return Err(bad_flag(format!(
            "--hidden {}: hidden width {} is 0; every layer needs at least one unit \
             (e.g. --hidden 128, or --hidden 256,128 for two hidden layers)",
            args.hidden
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
            i + 1
        )));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(bad_flag(format!(
            "--lr {}: the learning rate must be a positive number (the lecture's is 0.001)",
            args.lr
        )));
    }
    if let Some(momentum) = args.momentum {
        if !(0.0..1.0).contains(&momentum) {
            return Err(bad_flag(format!(
                "--momentum {momentum}: momentum must be in [0, 1) (0.9 is usual); at 1 or more \
                 the velocity grows without bound"
            )));
        }
        if args.optimizer != OptimizerName::Momentum {
            eprintln!(
                "warning: --momentum applies to --optimizer momentum only; with --optimizer {:?} \
                 it is ignored",
                args.optimizer
            );
        }
    }
    if !(args.weight_decay.is_finite() && args.weight_decay >= 0.0) {
        return Err(bad_flag(format!(
            "--weight-decay {}: must be a non-negative number",
            args.weight_decay
        )));
    }
    optimizer(args)
        .validate()
        .map_err(|e| bad_flag(format!("the optimiser flags: {e}")))?;
    Ok(())
}

/// The checkpoint `--resume` names: the file, or `checkpoint.safetensors` in a directory.
fn resume_path(given: &Path) -> Result<PathBuf, Failure> {
    let path = if given.is_dir() {
        given.join(outputs::CHECKPOINT)
    } else {
        given.to_path_buf()
    };
    if !path.is_file() {
        return Err(bad_flag(format!(
            "--resume {}: no checkpoint there (a run saves {} in its --out directory after \
             each epoch and on Ctrl-C)",
            given.display(),
            outputs::CHECKPOINT
        )));
    }
    Ok(path)
}

/// Refuses to start afresh over an unfinished run's checkpoint, which would be replaced: one
/// that stopped part-way, or that finished training but whose outputs were never written (its
/// model file is missing or older than the checkpoint).
fn check_unfinished(out: &Path) -> Result<(), Failure> {
    let path = out.join(outputs::CHECKPOINT);
    let Some(position) = CheckpointFile::read(&path)
        .ok()
        .and_then(|file| file.training_position())
    else {
        return Ok(()); // none, or unreadable: nothing worth keeping
    };
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let outputs_written = match (modified(&out.join(outputs::MODEL)), modified(&path)) {
        (Some(model), Some(checkpoint)) => model >= checkpoint,
        _ => false,
    };
    if !position.finished() || !outputs_written {
        return Err(bad_flag(format!(
            "{} holds an unfinished run (epoch {} of {} done{}): continue it with --resume {}, \
             start afresh with --restart, or choose another --out",
            out.display(),
            position.epoch,
            position.epochs,
            if position.finished() {
                ", outputs not written"
            } else {
                ""
            },
            out.display()
        )));
    }
    Ok(())
}

/// The command that resumes this run from `checkpoint`: the same flags, plus `--resume`.
fn resume_command(checkpoint: &Path) -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--resume") {
        args.drain(i..(i + 2).min(args.len()));
    }
    args.retain(|a| !a.starts_with("--resume=") && a != "--restart");
    args.extend(["--resume".into(), checkpoint.display().to_string()]);
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!(
        "cargo run --release --example mnist -- {}",
        quoted.join(" ")
    )
}

/// The run's history so far, kept in the checkpoint so a resumed run reports all of it.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct History {
    train_loss: Vec<f32>,
    /// After each epoch (empty with --no-epoch-eval).
    #[serde(default)]
    test_accuracy: Vec<f32>,
    seconds: Vec<f64>,
}

const HISTORY_KEY: &str = "mnist.history";

fn save_checkpoint(trainer: &Trainer, path: &Path, history: &History) -> Result<(), Failure> {
    let history = serde_json::to_string(history)?;
    trainer.save_state(path, [(HISTORY_KEY.to_string(), history)])?;
    Ok(())
}

fn load_data(args: &Args) -> Result<Mnist, Failure> {
    let data_dir = args.data.ensure()?;
    let started = Instant::now();
    let mut mnist = Mnist::load(&data_dir)?;
    mnist.truncate(args.train_limit, args.test_limit);
    println!(
        "data: {} ({} training, {} test images, loaded in {:.2} s)",
        data_dir.display(),
        mnist.train_len(),
        mnist.test_len(),
        started.elapsed().as_secs_f64()
    );
    Ok(mnist)
}

fn open_device(args: &Args) -> Result<Option<Device>, Failure> {
    let mut options = DeviceOptions::from_env()?;
    if let Some(backend) = &args.backend {
        options = options
            .with_backend(backend)
            .map_err(|e| bad_flag(format!("--backend {backend}: {e}")))?;
    }
    if args.list_adapters {
        for adapter in list_adapters(options.backends) {
            println!("{adapter}");
        }
        return Ok(None);
    }
    if let Some(name) = &args.adapter {
        options = options.with_adapter_name(name.clone());
    }
    let device = Device::with_options(&options)?;
    println!("adapter: {}", device.adapter());
    Ok(Some(device))
}

/// An f32 as the f64 of its shortest decimal form, so that JSON shows `0.001` for the 0.001 a
/// user gave, not the f32's exact value `0.0010000000474974513`.
fn exact(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn exacts(xs: &[f32]) -> Vec<f64> {
    xs.iter().copied().map(exact).collect()
}

/// The argmax of each row of `logits`.
fn predictions(logits: &[f32], rows: usize) -> Vec<usize> {
    logits
        .chunks(CLASSES)
        .take(rows)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (j, &v)| if v > row[best] { j } else { best })
        })
        .collect()
}

fn run(mut args: Args, matches: &ArgMatches) -> Result<Ended, Failure> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    check_flags(&mut args, &given)?;
    let schedule = Schedule::from_name(&args.schedule)?;
    let activation = Activation::from_name(&args.activation)?;
    let loss = ClassifierLoss::from_name(&args.loss)?;
    let Some(device) = open_device(&args)? else {
        return Ok(Ended::Finished);
    };

    // The output directory: usable, free of a killed run's temporaries, not an unfinished run.
    check_writable(&args.out).map_err(|e| bad_flag(format!("--out: {e}")))?;
    // Held to the end: a second run into the same --out is refused, not interleaved.
    let _out_lock = DirLock::try_acquire(&args.out).map_err(|e| bad_flag(format!("--out: {e}")))?;
    let stale = remove_stale_temporaries(&args.out)?;
    if stale > 0 {
        println!(
            "removed {stale} temporary file(s) a killed run left in {}",
            args.out.display()
        );
    }
    let resume = args.resume.as_deref().map(resume_path).transpose()?;
    // Unless this run continues the checkpoint in --out, that checkpoint is replaced: only
    // when its run was finished, or with --restart.
    let continues_out = resume
        .as_ref()
        .is_some_and(|p| p == &args.out.join(outputs::CHECKPOINT));
    if !continues_out && !args.restart {
        check_unfinished(&args.out)?;
    }
    interrupt::install()?;

    let mnist = load_data(&args)?;
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
    )
    .map_err(|e| -> Failure {
        match e {
            Error::TooLarge { .. } => bad_flag(format!(
                "--hidden {:?}: the model does not fit: {e}",
                args.hidden
            )),
            other => other.into(),
        }
    })?;
    println!(
        "model: {widths:?}, {}, {} parameters",
        activation.name(),
        model.parameter_count()
    );
    let batch_size = args.batch_size.min(mnist.train_len());
    if batch_size < args.batch_size {
        eprintln!(
            "warning: --batch-size {} is larger than the {} training images; each step uses all {batch_size}",
            args.batch_size,
            mnist.train_len()
        );
    }
    let normalization = Normalization::default();
    let config = TrainerConfig {
        loss,
        batch_size,
        optimizer: optimizer(&args),
        normalization,
        seed: args.seed,
        schedule,
        epochs: args.epochs,
        accumulation: args.accumulate,
        // One host sync per 100 steps, for the progress bar's loss and the divergence check.
        report_loss_every: 100,
        ..TrainerConfig::lecture()
    };
    let dataset =
        |images: &[u8], labels: &[u8]| GpuDataset::new(&device, images, labels, PIXELS, CLASSES);
    // The trainer captures its plans and the evaluators theirs now, so a size past the
    // device's limits fails here, before the first step.
    let mut trainer = Trainer::new(
        model,
        dataset(&mnist.train_images, &mnist.train_labels)?,
        config,
    )?;
    let evaluator = |images: &[u8], labels: &[u8]| -> Result<Evaluator, Failure> {
        let batch = 1000;
        Ok(Evaluator::new(
            trainer.model(),
            dataset(images, labels)?,
            batch,
            normalization,
        )?)
    };
    let mut train_eval = evaluator(&mnist.train_images, &mnist.train_labels)?;
    let mut test_eval = evaluator(&mnist.test_images, &mnist.test_labels)?;

    let checkpoint = args.out.join(outputs::CHECKPOINT);
    let mut history = History::default();
    if let Some(path) = &resume {
        let file = CheckpointFile::read(path).map_err(|e| bad_flag(format!("--resume: {e}")))?;
        trainer.restore_state(&file, path).map_err(|e| {
            let hint = if file.training_position().is_none() {
                format!(
                    " (a run's final model; point --resume at the {} beside it, or at its --out \
                     directory)",
                    outputs::CHECKPOINT
                )
            } else {
                String::new()
            };
            bad_flag(format!("--resume: {e}{hint}"))
        })?;
        if let Some(saved) = file.metadata.get(HISTORY_KEY) {
            history = serde_json::from_str(saved)?;
        }
        let saved_epochs = file.training_position().map_or(0, |p| p.epochs);
        if saved_epochs != args.epochs && matches!(schedule, Schedule::Cosine | Schedule::OneCycle)
        {
            eprintln!(
                "warning: the {} schedule spans --epochs, which was {saved_epochs} and is now {}: \
                 the learning rates from here on differ from the first run's plan",
                args.schedule, args.epochs
            );
        }
        println!(
            "resumed from {} at epoch {}, step {}{}",
            path.display(),
            trainer.epochs_done(),
            trainer.steps_done_in_epoch(),
            if trainer.epochs_done() >= args.epochs {
                " (training was done: evaluating and writing the outputs)"
            } else {
                ""
            }
        );
    }
    if interrupt::requested() {
        println!("interrupted before training started; nothing was written");
        return Ok(Ended::Interrupted);
    }

    let started = Instant::now();
    while trainer.epochs_done() < args.epochs {
        let epoch = trainer.epochs_done() + 1;
        let bar = ProgressBar::new(trainer.steps_per_epoch() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg}, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", args.epochs));
        let first_step = trainer.steps_done_in_epoch();
        let images = batch_size as f64;
        let stats = trainer.train_epoch_until(interrupt::requested, |step, _, running_loss| {
            bar.set_position(step as u64);
            let rate = (step - first_step) as f64 * images / bar.elapsed().as_secs_f64().max(1e-9);
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
        });
        bar.finish_and_clear();
        let stats = match stats {
            Ok(Some(stats)) => stats,
            Ok(None) => {
                save_checkpoint(&trainer, &checkpoint, &history)?;
                println!(
                    "stopped at epoch {epoch}, step {} of {}; saved {}\nresume with: {}",
                    trainer.steps_done_in_epoch(),
                    trainer.steps_per_epoch(),
                    checkpoint.display(),
                    resume_command(&checkpoint)
                );
                return Ok(Ended::Interrupted);
            }
            Err(error @ Error::Diverged { suggested_lr, .. }) => {
                return Err(bad_flag(format!(
                    "{error} (--lr {suggested_lr}). Nothing in {} was replaced by this run; its \
                     last good epoch is in {} if it got that far",
                    args.out.display(),
                    checkpoint.display()
                )));
            }
            Err(error) => return Err(error.into()),
        };
        history.train_loss.push(stats.mean_loss);
        history.seconds.push(stats.seconds);
        let tested = if args.no_epoch_eval {
            String::new()
        } else {
            let accuracy = test_eval.accuracy()?;
            history.test_accuracy.push(accuracy);
            format!("  test accuracy {accuracy:.4}")
        };
        save_checkpoint(&trainer, &checkpoint, &history)?;
        if epoch == 1
            && let Some(plan) = trainer.step_plan()
        {
            println!("captured step, kernel by kernel:");
            for (i, kernel) in plan.iter().enumerate() {
                println!("  {}. {kernel}", i + 1);
            }
        }
        let dispatches = trainer
            .dispatches_per_step()
            .map_or_else(|| "?".to_string(), |d| d.to_string());
        println!(
            "epoch {epoch:>2}: train loss {:.4}{tested}  {:.2} s  {:.0} images/s  {dispatches} dispatches/step",
            stats.mean_loss,
            stats.seconds,
            (stats.steps * batch_size) as f64 / stats.seconds
        );
        if interrupt::requested() {
            println!(
                "stopped after epoch {epoch}; saved {}\nresume with: {}",
                checkpoint.display(),
                resume_command(&checkpoint)
            );
            return Ok(Ended::Interrupted);
        }
    }
    let total_seconds = started.elapsed().as_secs_f64();
    interrupt::training_done();

    let train_accuracy = train_eval.accuracy()?;
    let test_accuracy = test_eval.accuracy()?;
    // The first ten test digits and what the model makes of them.
    let shown = mnist.test_len().min(10);
    let predicted = predictions(&test_eval.first_batch_logits()?, shown);
    println!("the first {shown} test digits, predicted / true:");
    for line in outputs::digits_block(&mnist.test_images, &predicted, &mnist.test_labels) {
        println!("  {line}");
    }

    let metrics = serde_json::json!({
        "config": {
            "widths": widths, "activation": activation.name(),
            "optimizer": format!("{:?}", args.optimizer).to_lowercase(),
            "lr": exact(args.lr), "momentum": args.momentum.map(exact),
            "weight_decay": exact(args.weight_decay),
            "batch_size": batch_size, "requested_batch_size": args.batch_size,
            "accumulate": args.accumulate, "epochs": args.epochs, "seed": args.seed,
            "schedule": args.schedule, "loss": args.loss,
            "preset": format!("{:?}", args.preset).to_lowercase(),
            "normalization": {"mean": exact(normalization.mean), "std": exact(normalization.std)},
            "train_images": mnist.train_len(), "test_images": mnist.test_len(),
        },
        "adapter": {"name": device.adapter().name, "backend": format!("{:?}", device.adapter().backend)},
        "resumed_from": resume.as_ref().map(|p| p.display().to_string()),
        "train_loss": exacts(&history.train_loss),
        "test_accuracy_per_epoch": exacts(&history.test_accuracy),
        "seconds": history.seconds,
        "train_accuracy": exact(train_accuracy),
        "test_accuracy": exact(test_accuracy),
        "total_seconds": total_seconds,
        "predictions": predicted,
    });
    let mut model_file = trainer.model().to_checkpoint()?;
    model_file.metadata.extend([
        ("widths".to_string(), format!("{widths:?}")),
        ("activation".to_string(), activation.name().to_string()),
        ("test_accuracy".to_string(), format!("{test_accuracy}")),
    ]);
    let text = support::register_font();
    let plots =
        outputs::loss_plot(&history.train_loss, &history.test_accuracy, text).and_then(|loss| {
            let digits = outputs::predictions_plot(
                &mnist.test_images,
                &predicted,
                &mnist.test_labels,
                text,
            )?;
            Ok((loss, digits))
        });
    let written = outputs::write_run(
        &args.out,
        &model_file.to_bytes()?,
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
        plots,
    )?;
    for path in written {
        println!("wrote {}", path.display());
    }
    println!("train accuracy: {train_accuracy:.4}");
    println!("test accuracy: {test_accuracy:.4}");
    Ok(Ended::Finished)
}
