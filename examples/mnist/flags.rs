//! The example's flags: their definitions (clap), the presets, and every value checked once,
//! before any work, by the library's own validators where it has them.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Parser, ValueEnum};
use wgsl_nn::activation::Activation;
use wgsl_nn::data::mnist::{CLASSES, PIXELS};
use wgsl_nn::nn::{ClassifierLoss, MlpConfig, Schedule, SequentialConfig, TrainerConfig};
use wgsl_nn::optim::OptimizerConfig;

use crate::support;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub(crate) enum OptimizerName {
    Sgd,
    Momentum,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub(crate) enum Preset {
    /// The lecture's configuration (the defaults).
    Lecture,
    /// The best recipe found for this MLP: 784-256-10, AdamW (lr 0.002, weight decay 0.01),
    /// one-cycle schedule. Overrides --hidden, --optimizer, --lr, --weight-decay, --schedule.
    Best,
    /// A LeNet-5-shaped CNN (--model cnn) with AdamW (lr 0.002, weight decay 0.01) and the
    /// one-cycle schedule over 8 epochs (unless --epochs is given): past 99 % test accuracy.
    /// Overrides --model, --optimizer, --lr, --weight-decay, --schedule.
    Cnn,
}

/// The network the flags describe.
#[derive(Clone, Debug)]
pub(crate) enum Network {
    /// `--model mlp`: the lecture's kind, shaped by --hidden and --activation.
    Mlp(MlpConfig),
    /// `--model cnn` or layers written out.
    Sequential(SequentialConfig),
}

/// The activations a network can train with: every one the library has but the perceptron's
/// step, which has no gradient.
pub(crate) fn trainable_activations() -> PossibleValuesParser {
    PossibleValuesParser::new(
        Activation::ALL
            .into_iter()
            .filter(|a| a.has_gradient())
            .map(Activation::name),
    )
}

#[derive(Debug, Parser)]
#[command(about = "Train the lecture's MNIST MLP (or a CNN: --preset cnn) on the GPU")]
pub(crate) struct Args {
    /// A named configuration.
    #[arg(long, value_enum, default_value = "lecture")]
    pub(crate) preset: Preset,
    /// Loss: on the logits, against one-hot targets for mse and bce_with_logits.
    #[arg(long, default_value = "cross_entropy",
          value_parser = PossibleValuesParser::new(["cross_entropy", "mse", "bce_with_logits"]))]
    pub(crate) loss: String,
    /// Learning-rate schedule (step: ×0.1 every 3 epochs; cosine and onecycle span --epochs).
    #[arg(long, default_value = "constant",
          value_parser = PossibleValuesParser::new(["constant", "step", "cosine", "onecycle"]))]
    pub(crate) schedule: String,
    /// Continue the run saved in this checkpoint (a checkpoint.safetensors, or the --out
    /// directory holding one) with the same flags; --epochs may grow.
    #[arg(long)]
    pub(crate) resume: Option<PathBuf>,
    /// Start from the weights in FILE: a PyTorch state_dict of an MLP in safetensors (the
    /// lecture's Net, fc1/fc2/…, or an nn.Sequential, 0/2/…) or a model.safetensors this
    /// example wrote. The architecture is read from it; with --epochs 0 it is only evaluated.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub(crate) init_from: Option<PathBuf>,
    /// Start afresh even though --out holds an unfinished run's checkpoint (it is replaced
    /// after the first epoch).
    #[arg(long)]
    pub(crate) restart: bool,
    /// Passes over the training set (the total, counting resumed ones); 0 with --init-from
    /// evaluates the file's model without training.
    #[arg(long, default_value_t = 10)]
    pub(crate) epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Batches whose gradients are summed before each optimiser step.
    #[arg(long, default_value_t = 1)]
    pub(crate) accumulate: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.001)]
    pub(crate) lr: f32,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "sgd")]
    pub(crate) optimizer: OptimizerName,
    /// Momentum in [0, 1), for --optimizer momentum [default: 0.9].
    #[arg(long)]
    pub(crate) momentum: Option<f32>,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) weight_decay: f32,
    /// The network: `mlp` (shaped by --hidden and --activation), `cnn` (a LeNet-5-shaped
    /// CNN: conv(8,5,pad=2)-relu-maxpool(2)-conv(16,5)-relu-maxpool(2)-flatten-linear(120)-
    /// relu-linear(84)-relu-linear(10)), or layers written out in that form on a 1×28×28
    /// image (conv, maxpool, avgpool, dropout, flatten, linear and the activations).
    #[arg(long, default_value = "mlp")]
    pub(crate) model: String,
    /// Hidden layer widths of --model mlp, comma-separated.
    #[arg(long, default_value = "128", value_delimiter = ',')]
    pub(crate) hidden: Vec<usize>,
    /// Activation between the layers of --model mlp.
    #[arg(long, default_value = "relu", value_parser = trainable_activations())]
    pub(crate) activation: String,
    /// Training steps recorded into one submit (the same bits whatever the number)
    /// [default: 16 on software adapters, 64 on GPUs].
    #[arg(long)]
    pub(crate) steps_per_submit: Option<usize>,
    /// Seed of the initialisation and the shuffles.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Time one step of the first epoch dispatch by dispatch with GPU timestamps and print
    /// each dispatch's grid and time (where the adapter has timestamp queries).
    #[arg(long)]
    pub(crate) profile_step: bool,
    /// Skip the test-set evaluation after each epoch (only the final one is made; for speed).
    #[arg(long)]
    pub(crate) no_epoch_eval: bool,
    /// Use only the first N training images.
    #[arg(long)]
    pub(crate) train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub(crate) test_limit: Option<usize>,
    #[command(flatten)]
    pub(crate) data: support::DataArgs,
    /// Where to write metrics.json, model.safetensors, the plots and the checkpoint.
    #[arg(long, default_value = "runs/mnist")]
    pub(crate) out: PathBuf,
    /// Part of the adapter's name to use (see --list-adapters).
    #[arg(long)]
    pub(crate) adapter: Option<String>,
    /// Backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// List the adapters and exit.
    #[arg(long)]
    pub(crate) list_adapters: bool,
}

pub(crate) type Failure = Box<dyn std::error::Error>;

/// A flag's error: what was wrong and the fix.
pub(crate) fn bad_flag(message: impl Into<String>) -> Failure {
    message.into().into()
}

pub(crate) fn optimizer(args: &Args) -> OptimizerConfig {
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

/// What the flags configure, validated: the model and the trainer (its batch size still the
/// flag's, before the data set's size clamps it).
pub(crate) struct Checked {
    pub(crate) model: Network,
    pub(crate) trainer: TrainerConfig,
    /// `--init-from`'s file, read and checked.
    pub(crate) init: Option<crate::init::Init>,
}

/// Applies the preset, checks every flag's value and warns of flags that do nothing; all of it
/// before any work. `given(id)` says whether a flag was on the command line. The model's and
/// the trainer's settings are checked by the library's own validators ([`MlpConfig::validate`],
/// [`TrainerConfig::validate`], which checks the optimiser's), their errors prefixed with the
/// flags that set them; only what the library cannot know is checked here (the data limits,
/// and a learning rate of 0, which the library allows for schedules that anneal to it).
pub(crate) fn check_flags(
    args: &mut Args,
    given: &dyn Fn(&str) -> bool,
) -> Result<Checked, Failure> {
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
    if args.preset == Preset::Cnn {
        for flag in ["model", "optimizer", "lr", "weight_decay", "schedule"] {
            if given(flag) {
                eprintln!(
                    "warning: --preset cnn sets --{}, so the value given is ignored",
                    flag.replace('_', "-")
                );
            }
        }
        args.model = "cnn".into();
        args.optimizer = OptimizerName::Adamw;
        args.lr = 0.002;
        args.weight_decay = 0.01;
        args.schedule = "onecycle".into();
        if !given("epochs") {
            args.epochs = 8;
        }
    }
    let sequential = match args.model.trim() {
        "mlp" => None,
        "cnn" => Some(SequentialConfig::lenet().describe()),
        layers => Some(layers.to_string()),
    };
    if sequential.is_some() {
        for flag in ["hidden", "activation"] {
            if given(flag) {
                eprintln!(
                    "warning: --{flag} shapes --model mlp only; --model {} is its own layers, so \
                     it is ignored",
                    args.model
                );
            }
        }
        if args.init_from.is_some() {
            return Err(bad_flag(format!(
                "--init-from reads MLPs (a PyTorch state_dict or an MLP this example wrote), and \
                 --model {} is a sequential model; resume its runs with --resume",
                args.model
            )));
        }
    }
    // The file's architecture sets --hidden and --activation (or is checked against them).
    let init = crate::init::read(args, given)?;
    let limits = [
        (
            "train-limit",
            args.train_limit,
            "it leaves no images to train on",
        ),
        (
            "test-limit",
            args.test_limit,
            "it leaves no images to evaluate on",
        ),
    ];
    for (flag, value, why) in limits {
        if value == Some(0) {
            return Err(bad_flag(format!("--{flag} 0: {why}; give at least 1")));
        }
    }
    if args.lr == 0.0 {
        return Err(bad_flag(
            "--lr 0: a run at learning rate 0 trains nothing; the learning rate must be positive \
             (the lecture's is 0.001)",
        ));
    }
    if args.momentum.is_some() && args.optimizer != OptimizerName::Momentum {
        eprintln!(
            "warning: --momentum applies to --optimizer momentum only; with --optimizer {:?} \
             it is ignored",
            args.optimizer
        );
    }
    let hidden = args
        .hidden
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut widths = vec![PIXELS];
    widths.extend(&args.hidden);
    widths.push(CLASSES);
    let model = match sequential {
        None => {
            let model = MlpConfig {
                widths,
                activation: Activation::from_name(&args.activation)?,
                seed: args.seed,
            };
            model
                .validate()
                .map_err(|e| bad_flag(format!("--hidden {hidden}: {e}")))?;
            Network::Mlp(model)
        }
        Some(layers) => {
            let config = SequentialConfig::parse(&layers, &[1, 28, 28], args.seed)
                .map_err(|e| bad_flag(format!("--model {}: {e}", args.model)))?;
            let classes = config.shapes()?.last().map_or(0, |s| s[0]);
            if classes != CLASSES {
                return Err(bad_flag(format!(
                    "--model {}: ends in {classes} outputs; MNIST has {CLASSES} classes, so \
                     end in linear({CLASSES})",
                    args.model
                )));
            }
            Network::Sequential(config)
        }
    };
    let optimizer = optimizer(args);
    optimizer.validate().map_err(|e| {
        let momentum = match optimizer {
            OptimizerConfig::Sgd { momentum, .. } if momentum > 0.0 => {
                format!(" --momentum {momentum}")
            }
            _ => String::new(),
        };
        bad_flag(format!(
            "--optimizer {:?} --lr {}{momentum} --weight-decay {}: {e}",
            args.optimizer, args.lr, args.weight_decay
        ))
    })?;
    let trainer = TrainerConfig {
        loss: ClassifierLoss::from_name(&args.loss)?,
        batch_size: args.batch_size,
        optimizer,
        seed: args.seed,
        schedule: Schedule::from_name(&args.schedule)?,
        // --epochs 0 evaluates an --init-from model; the trainer is built but never stepped.
        epochs: if init.is_some() {
            args.epochs.max(1)
        } else {
            args.epochs
        },
        accumulation: args.accumulate,
        steps_per_submit: args.steps_per_submit,
        // One host sync per 100 steps, for the progress bar's loss and the divergence check.
        report_loss_every: 100,
        ..TrainerConfig::lecture()
    };
    trainer.validate().map_err(|e| {
        bad_flag(format!(
            "--epochs {} --batch-size {} --accumulate {}{}: {e}",
            args.epochs,
            args.batch_size,
            args.accumulate,
            args.steps_per_submit
                .map_or(String::new(), |n| format!(" --steps-per-submit {n}"))
        ))
    })?;
    Ok(Checked {
        model,
        trainer,
        init,
    })
}
