//! How to train: the loss, the [`TrainerConfig`] with its checks, and the steps per submit a
//! device takes by default.

use crate::capture::Fusion;
use crate::data::gpu::Normalization;
use crate::device::{Device, Profile};
use crate::kernels::optim::OptimizerConfig;
use crate::nn::Schedule;
use crate::{Error, Result};

/// The loss a classifier trains with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClassifierLoss {
    /// Softmax cross-entropy on the logits (the lecture's).
    #[default]
    CrossEntropy,
    /// Mean squared error between the logits and one-hot targets.
    Mse,
    /// Binary cross-entropy with logits against one-hot targets (one sigmoid per class).
    BceWithLogits,
}

impl ClassifierLoss {
    /// Parses `cross_entropy`, `mse` or `bce_with_logits`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cross_entropy" | "ce" => Ok(Self::CrossEntropy),
            "mse" => Ok(Self::Mse),
            "bce_with_logits" | "bce" => Ok(Self::BceWithLogits),
            other => Err(Error::InvalidArgument(format!(
                "unknown loss `{other}`: expected cross_entropy, mse or bce_with_logits"
            ))),
        }
    }
}

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// The loss.
    pub loss: ClassifierLoss,
    /// Examples per step.
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// Input normalisation.
    pub normalization: Normalization,
    /// Seed of the per-epoch shuffles.
    pub seed: u64,
    /// How the learning rate moves from the optimiser's base rate.
    pub schedule: Schedule,
    /// Epochs the schedule spans (cosine and one-cycle anneal over them).
    pub epochs: usize,
    /// Read the running loss back every this many steps for a progress display (0: never;
    /// each read is one host sync).
    pub report_loss_every: usize,
    /// Micro-batches per optimiser step (gradient accumulation): the gradients of
    /// `accumulation` consecutive batches are summed, as PyTorch sums repeated `backward()`
    /// calls between `zero_grad()`s, then one optimiser step applies them. 1 by default.
    pub accumulation: usize,
    /// The rewrite rules the captured step is fused with ([`Fusion::all`] by default;
    /// [`Fusion::none`] runs the ops as eager autograd would, for comparison).
    pub fusion: Fusion,
    /// Stop with [`Error::Diverged`] when the running mean loss exceeds this multiple of the
    /// first step's loss (checked whenever the loss is read back: every `report_loss_every`
    /// steps and at the end of each epoch). A non-finite loss always stops. `Some(10.0)` by
    /// default; `None` checks only for non-finite losses.
    pub diverge_above: Option<f32>,
    /// Steps recorded into one submit (each step still its own kernels, reading its inputs
    /// from one row of the plan's table): fewer submits, the same bits. The running loss is
    /// read back at `report_loss_every` steps and a stop asked at any step ends the submit
    /// there. `None` (the default) takes [`default_steps_per_submit`] for the device.
    pub steps_per_submit: Option<usize>,
}

/// Steps per submit where [`TrainerConfig::steps_per_submit`] is `None`, by the device's
/// profile: 16 under [`Profile::Cpu`] (software adapters, where a step takes milliseconds and
/// a submit ~0.2 ms), 64 under [`Profile::Gpu`], whose steps are far shorter than a submit.
pub fn default_steps_per_submit(device: &Device) -> usize {
    match device.profile() {
        Profile::Cpu => 16,
        Profile::Gpu => 64,
    }
}

impl TrainerConfig {
    /// The lecture's: batch 64, SGD with learning rate 0.001, normalisation 0.5/0.5, seed 0.
    pub fn lecture() -> Self {
        Self {
            loss: ClassifierLoss::CrossEntropy,
            batch_size: 64,
            optimizer: OptimizerConfig::sgd(0.001),
            normalization: Normalization::default(),
            seed: 0,
            schedule: Schedule::Constant,
            epochs: 10,
            accumulation: 1,
            report_loss_every: 0,
            fusion: Fusion::all(),
            diverge_above: Some(10.0),
            steps_per_submit: None,
        }
    }

    /// Checks every setting that needs no data or device: counts of at least 1, the
    /// optimiser's hyper-parameters ([`OptimizerConfig::validate`]) and the divergence factor.
    /// [`Trainer::new`](super::Trainer::new) calls it; call it yourself to refuse a configuration before any work.
    pub fn validate(&self) -> Result<()> {
        let counts = [
            ("epochs", self.epochs, "a run of no epochs trains nothing"),
            ("batch size", self.batch_size, "a step needs examples"),
            (
                "accumulation count",
                self.accumulation,
                "a step needs a batch",
            ),
            (
                "steps per submit",
                self.steps_per_submit.unwrap_or(1),
                "a submit needs a step",
            ),
        ];
        for (what, value, why) in counts {
            if value == 0 {
                return Err(Error::InvalidArgument(format!(
                    "the {what} is 0: {why}; give at least 1"
                )));
            }
        }
        self.optimizer.validate()?;
        if let Some(factor) = self.diverge_above
            && !(factor.is_finite() && factor > 1.0)
        {
            return Err(Error::InvalidArgument(format!(
                "diverge_above {factor} must be a finite factor above 1"
            )));
        }
        Ok(())
    }
}
