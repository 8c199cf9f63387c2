//! The lecture's MNIST MLP, trained on the GPU.
//!
//! `cargo run --release --example mnist` trains `Linear(784,128) → ReLU → Linear(128,10)` with
//! cross-entropy and SGD(lr = 0.001), batch 64, 10 epochs, inputs normalised with mean 0.5 and
//! std 0.5, then prints train and test accuracy and the first ten test digits with their
//! predictions. `--preset cnn` trains a LeNet-5-shaped CNN instead (past 99 % in 6 epochs);
//! `--model` takes any sequential model written as layers. `--help` lists the flags.
//!
//! Nothing is lost and nothing is half-written: every argument, the output directory and the
//! device's limits are checked before the first step; a checkpoint is saved after every epoch
//! and on Ctrl-C, and `--resume` continues a run bit for bit; the outputs are replaced only
//! when the run has finished, and never mixed with an earlier run's.
//!
//! This file is the run; the flags are `flags.rs`, the run directory's resume policy
//! `resume.rs`, the output set and plots `outputs.rs`, Ctrl-C `interrupt.rs`.

mod flags;
mod init;
mod interrupt;
mod outputs;
mod resume;
#[path = "../support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use indicatif::{ProgressBar, ProgressStyle};
use wgsl_nn::data::gpu::GpuDataset;
use wgsl_nn::data::mnist::{CLASSES, Mnist, PIXELS};
use wgsl_nn::files::{DirLock, check_writable, remove_stale_temporaries};
use wgsl_nn::nn::{CheckpointFile, Evaluator, Mlp, Schedule, Sequential, Trainer};
use wgsl_nn::{Device, DeviceOptions, Error, list_adapters};

use flags::{Args, Checked, Failure, Network, bad_flag, check_flags};
use outputs::Exports;
use resume::{
    HISTORY_KEY, History, check_unfinished, resume_command, resume_path, save_checkpoint,
};

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
    println!(
        "adapter: {} (profile {})",
        device.adapter(),
        device.profile()
    );
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
    let Checked {
        model: network,
        trainer: config,
        init,
    } = check_flags(&mut args, &given)?;
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
    let too_large = |flag: String| {
        move |e: Error| -> Failure {
            match e {
                Error::TooLarge { .. } => bad_flag(format!("{flag}: the model does not fit: {e}")),
                other => other.into(),
            }
        }
    };
    let run = Run {
        args: &args,
        device: &device,
        mnist: &mnist,
        config,
        resume,
    };
    match network {
        Network::Mlp(config) => {
            let model = Mlp::new(&device, config)
                .map_err(too_large(format!("--hidden {:?}", args.hidden)))?;
            if let Some(init) = &init {
                println!("{}", init::load(init, &model)?);
            }
            run.train(model)
        }
        Network::Sequential(config) => {
            let model = Sequential::new(&device, config)
                .map_err(too_large(format!("--model {}", args.model)))?;
            run.train(model)
        }
    }
}

/// What a run trains with, whatever the model.
struct Run<'a> {
    args: &'a Args,
    device: &'a Device,
    mnist: &'a Mnist,
    config: wgsl_nn::nn::TrainerConfig,
    resume: Option<std::path::PathBuf>,
}

impl Run<'_> {
    /// Trains `model` for the run's epochs (resuming where asked), evaluates it, and writes
    /// the outputs.
    fn train<M: Exports>(self, model: M) -> Result<Ended, Failure> {
        let Run {
            args,
            device,
            mnist,
            mut config,
            resume,
        } = self;
        let device = device.clone();
        let schedule = config.schedule;
        println!(
            "model: {}, {} parameters",
            model.describe(),
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
        config.batch_size = batch_size;
        let normalization = config.normalization;
        let dataset = |images: &[u8], labels: &[u8]| {
            GpuDataset::new(&device, images, labels, PIXELS, CLASSES)
        };
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
            let file =
                CheckpointFile::read(path).map_err(|e| bad_flag(format!("--resume: {e}")))?;
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
            if saved_epochs != args.epochs
                && matches!(schedule, Schedule::Cosine | Schedule::OneCycle)
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

        if args.profile_step {
            // Past the first steps, which capture the plan and build its pipelines.
            let at = (trainer.steps_done_in_epoch() + 8).min(trainer.steps_per_epoch() - 1);
            if let Err(error) = trainer.profile_step(at) {
                println!("--profile-step: {error}");
            }
        }
        let mut profile_printed = false;
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
                let rate =
                    (step - first_step) as f64 * images / bar.elapsed().as_secs_f64().max(1e-9);
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
                if let Some(grids) = trainer.step_grids() {
                    println!("its dispatches:");
                    for grid in grids {
                        println!("  {grid}");
                    }
                }
            }
            let dispatches = trainer
                .dispatches_per_step()
                .map_or_else(|| "?".to_string(), |d| d.to_string());
            println!(
                "epoch {epoch:>2}: train loss {:.4}{tested}  {:.2} s  {:.0} images/s  {dispatches} dispatches/step, {} steps/submit",
                stats.mean_loss,
                stats.seconds,
                (stats.steps * batch_size) as f64 / stats.seconds,
                trainer.steps_per_submit()
            );
            if !profile_printed && let Some(profile) = trainer.step_profile() {
                profile_printed = true;
                print_step_profile(profile, device.timestamps());
            }
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

        let mut metrics = serde_json::json!({
            "config": {
                "model": trainer.model().describe(),
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
            "adapter": {"name": device.adapter().name, "backend": format!("{:?}", device.adapter().backend), "profile": device.profile().name()},
            "resumed_from": resume.as_ref().map(|p| p.display().to_string()),
            "initialised_from": args.init_from.as_ref().map(|p| p.display().to_string()),
            "train_loss": exacts(&history.train_loss),
            "test_accuracy_per_epoch": exacts(&history.test_accuracy),
            "seconds": history.seconds,
            "train_accuracy": exact(train_accuracy),
            "test_accuracy": exact(test_accuracy),
            "total_seconds": total_seconds,
            "predictions": predicted,
        });
        let architecture = trainer.model().architecture();
        for (key, value) in &architecture {
            // The MLP's widths as numbers, as before; every other entry as text.
            metrics["config"][key] = serde_json::from_str(value)
                .ok()
                .filter(|_| key == "widths")
                .unwrap_or_else(|| value.clone().into());
        }
        let mut model_file = trainer.model().to_checkpoint()?;
        model_file.metadata.extend(architecture);
        model_file.metadata.extend([
            ("test_accuracy".to_string(), format!("{test_accuracy}")),
            (
                "normalization".to_string(),
                format!("{},{}", normalization.mean, normalization.std),
            ),
        ]);
        let models = outputs::ModelFiles {
            engine: model_file.to_bytes()?,
            torch: trainer.model().torch()?,
        };
        let text = support::register_font();
        let plots = outputs::loss_plot(&history.train_loss, &history.test_accuracy, text).and_then(
            |loss| {
                let digits = outputs::predictions_plot(
                    &mnist.test_images,
                    &predicted,
                    &mnist.test_labels,
                    text,
                )?;
                Ok((loss, digits))
            },
        );
        let written = outputs::write_run(
            &args.out,
            &models,
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
}

/// The timed step's dispatches, each with its GPU time and grid, and their sum.
fn print_step_profile(profile: &[wgsl_nn::DispatchTime], support: wgsl_nn::TimestampSupport) {
    println!("one step, dispatch by dispatch ({support}):");
    for (i, dispatch) in profile.iter().enumerate() {
        println!("  {:>2}. {dispatch}", i + 1);
    }
    let total: f64 = profile.iter().filter_map(|d| d.nanoseconds).sum();
    println!(
        "  GPU time of the step: {:.1} µs over {} dispatches",
        total / 1e3,
        profile.len()
    );
}
