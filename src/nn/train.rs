//! Training on the device: one command encoder and one submit per step, no host sync until
//! the epoch's loss and accuracy are read back.

use std::collections::HashMap;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Mlp, Schedule};
use crate::data::gpu::{BatchGather, GpuDataset, Normalization};
use crate::device::{Device, Encoder};
use crate::kernels::activation::{ActivationKernel, ActivationState, PreluSlopeGrad};
use crate::kernels::loss::{
    CrossEntropyOptions, OneHot, PointwiseLoss, PointwiseLossKernel, Reduction, SoftmaxCrossEntropy,
};
use crate::kernels::matmul::{Matmul, MatmulForm, MatmulOptions};
use crate::kernels::metrics::Metric;
use crate::kernels::optim::{Optimizer, OptimizerConfig};
use crate::kernels::reduce::{Axis, Sum};
use crate::tensor::{DType, Tensor};
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
#[derive(Clone, Copy, Debug)]
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
        }
    }
}

/// What one epoch did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// The mean of the steps' mean losses.
    pub mean_loss: f32,
    /// Correct predictions during the epoch's forward passes, over the examples seen.
    pub running_accuracy: f32,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Steps taken.
    pub steps: usize,
}

/// The forward pass of a batch size: gather, then per layer a matmul with fused bias and,
/// between layers, the activation (kept separate so its input survives for the backward pass).
#[derive(Debug)]
struct ForwardPlan {
    gather: BatchGather,
    matmuls: Vec<Matmul>,
    activations: Vec<ActivationKernel>,
    /// Pre-activations per layer; the last is the logits.
    z: Vec<Tensor>,
    /// Activations of the hidden layers.
    a: Vec<Tensor>,
}

impl ForwardPlan {
    /// `training` selects the activations' training behaviour (RReLU's random slopes).
    fn new(
        model: &Mlp,
        data: &GpuDataset,
        rows: usize,
        norm: Normalization,
        training: bool,
    ) -> Result<Self> {
        let device = model.layers[0].weight.device();
        let gather = BatchGather::new(data, rows, norm)?;
        let activation = model.config().activation;
        let count = model.layers.len();
        let mut z = Vec::with_capacity(count);
        let mut a = Vec::with_capacity(count - 1);
        let mut matmuls = Vec::with_capacity(count);
        let mut activations = Vec::with_capacity(count - 1);
        for (l, layer) in model.layers.iter().enumerate() {
            z.push(Tensor::uninit(device, [rows, layer.outputs()])?);
            let input = if l == 0 { &gather.x } else { &a[l - 1] };
            let options = MatmulOptions {
                bias: Some(&layer.bias),
                ..Default::default()
            };
            matmuls.push(Matmul::new(input, &layer.weight, &z[l], &options)?);
            if l + 1 < count {
                a.push(Tensor::uninit(device, [rows, layer.outputs()])?);
                let state = ActivationState {
                    training,
                    prelu_slopes: model.prelu.get(l).map(|p| &p.slope),
                    ..Default::default()
                };
                activations.push(ActivationKernel::forward(&z[l], &a[l], activation, &state)?);
            }
        }
        Ok(Self {
            gather,
            matmuls,
            activations,
            z,
            a,
        })
    }

    fn record(&mut self, encoder: &mut Encoder, offset: usize) -> Result<()> {
        self.gather.record(encoder, offset)?;
        for (l, matmul) in self.matmuls.iter().enumerate() {
            matmul.record(encoder);
            if let Some(activation) = self.activations.get(l) {
                activation.record(encoder);
            }
        }
        Ok(())
    }

    fn logits(&self) -> &Tensor {
        self.z.last().expect("at least one layer")
    }
}

/// Backward pass of one layer: weight gradient, bias gradient, and (below the first layer)
/// the gradient flowing to the layer beneath through its activation.
#[derive(Debug)]
struct LayerBackward {
    /// The parameter gradients, overwriting (`[0]`) or adding to (`[1]`) what is there: a
    /// step after `zero_grad` writes, a later micro-batch of the same optimiser step adds, as
    /// repeated `backward()` calls do in PyTorch.
    weight_grad: [Matmul; 2],
    bias_grad: [Sum; 2],
    input_grad: Option<(Matmul, ActivationKernel)>,
    /// PReLU's slope gradient for the activation beneath, overwriting or accumulating.
    slope_grad: Option<[PreluSlopeGrad; 2]>,
}

/// The loss of a step and the gradient of the logits.
#[derive(Debug)]
enum StepLoss {
    CrossEntropy(SoftmaxCrossEntropy),
    Pointwise {
        one_hot: OneHot,
        kernel: PointwiseLossKernel,
        /// Kept alive: the kernels' bind groups use its buffer.
        _targets: Tensor,
    },
}

impl StepLoss {
    fn record(&self, encoder: &mut Encoder) {
        match self {
            StepLoss::CrossEntropy(kernel) => kernel.record(encoder),
            StepLoss::Pointwise {
                one_hot, kernel, ..
            } => {
                one_hot.record(encoder);
                kernel.record(encoder);
            }
        }
    }
}

/// One training step of a batch size.
#[derive(Debug)]
struct StepPlan {
    forward: ForwardPlan,
    loss: StepLoss,
    correct: Metric,
    backward: Vec<LayerBackward>,
    _dz: Vec<Tensor>,
    _da: Vec<Tensor>,
}

impl StepPlan {
    fn new(
        model: &Mlp,
        data: &GpuDataset,
        rows: usize,
        config: &TrainerConfig,
        loss_sum: &Tensor,
        correct: &Tensor,
    ) -> Result<Self> {
        let device = model.layers[0].weight.device();
        let forward = ForwardPlan::new(model, data, rows, config.normalization, true)?;
        let count = model.layers.len();
        let dz: Vec<Tensor> = model
            .layers
            .iter()
            .map(|l| Tensor::uninit(device, [rows, l.outputs()]))
            .collect::<Result<_>>()?;
        let da: Vec<Tensor> = model.layers[..count - 1]
            .iter()
            .map(|l| Tensor::uninit(device, [rows, l.outputs()]))
            .collect::<Result<_>>()?;
        let (logits, labels, dlogits) = (forward.logits(), &forward.gather.y, &dz[count - 1]);
        let pointwise = |kind| -> Result<StepLoss> {
            let targets = Tensor::uninit(device, logits.shape().clone())?;
            let one_hot = OneHot::new(labels, &targets)?;
            let kernel = PointwiseLossKernel::new(
                kind,
                logits,
                &targets,
                dlogits,
                loss_sum,
                Reduction::Mean,
                true,
            )?;
            Ok(StepLoss::Pointwise {
                one_hot,
                kernel,
                _targets: targets,
            })
        };
        let loss = match config.loss {
            ClassifierLoss::CrossEntropy => {
                let options = CrossEntropyOptions {
                    accumulate: true,
                    ..Default::default()
                };
                StepLoss::CrossEntropy(SoftmaxCrossEntropy::new(
                    logits, labels, dlogits, loss_sum, &options,
                )?)
            }
            ClassifierLoss::Mse => pointwise(PointwiseLoss::Mse)?,
            ClassifierLoss::BceWithLogits => pointwise(PointwiseLoss::BceWithLogits)?,
        };
        let correct = Metric::count_correct(forward.logits(), &forward.gather.y, correct)?;
        let activation = model.config().activation;
        let mut backward = Vec::with_capacity(count);
        for l in (0..count).rev() {
            let layer = &model.layers[l];
            let input = if l == 0 {
                &forward.gather.x
            } else {
                &forward.a[l - 1]
            };
            let weight_grad = [false, true].map(|accumulate| {
                let options = MatmulOptions {
                    accumulate,
                    ..MatmulOptions::form(MatmulForm::AtB)
                };
                Matmul::new(input, &dz[l], &layer.weight_grad, &options)
            });
            let [overwrite, add] = weight_grad;
            let weight_grad = [overwrite?, add?];
            let bias_grad = [
                Sum::new(&dz[l], &layer.bias_grad, Axis::Columns, 1.0, false)?,
                Sum::new(&dz[l], &layer.bias_grad, Axis::Columns, 1.0, true)?,
            ];
            let mut slope_grad = None;
            let input_grad = if l > 0 {
                let prelu = model.prelu.get(l - 1);
                let state = ActivationState {
                    training: true,
                    prelu_slopes: prelu.map(|p| &p.slope),
                    ..Default::default()
                };
                if let Some(prelu) = prelu {
                    let (x, dy) = (&forward.z[l - 1], &da[l - 1]);
                    slope_grad = Some([
                        PreluSlopeGrad::with_accumulate(x, dy, &prelu.slope_grad, false)?,
                        PreluSlopeGrad::with_accumulate(x, dy, &prelu.slope_grad, true)?,
                    ]);
                }
                let through_weights = Matmul::new(
                    &dz[l],
                    &layer.weight,
                    &da[l - 1],
                    &MatmulOptions::form(MatmulForm::ABt),
                )?;
                let through_activation = ActivationKernel::backward(
                    &forward.z[l - 1],
                    &da[l - 1],
                    &dz[l - 1],
                    activation,
                    &state,
                )?;
                Some((through_weights, through_activation))
            } else {
                None
            };
            backward.push(LayerBackward {
                weight_grad,
                bias_grad,
                input_grad,
                slope_grad,
            });
        }
        Ok(Self {
            forward,
            loss,
            correct,
            backward,
            _dz: dz,
            _da: da,
        })
    }

    /// Keys RReLU's slopes to this step, the same in the forward and the backward pass.
    fn set_rng(&self, seed: u32, step: u32) {
        let backward = self
            .backward
            .iter()
            .filter_map(|l| l.input_grad.as_ref().map(|(_, a)| a));
        for kernel in self.forward.activations.iter().chain(backward) {
            kernel.set_rng(seed, step);
        }
    }

    /// Records forward and backward; `accumulate` adds the parameter gradients to the
    /// current ones instead of overwriting them.
    fn record(&mut self, encoder: &mut Encoder, offset: usize, accumulate: bool) -> Result<()> {
        self.forward.record(encoder, offset)?;
        self.loss.record(encoder);
        self.correct.record(encoder);
        let which = usize::from(accumulate);
        for layer in &self.backward {
            layer.weight_grad[which].record(encoder);
            layer.bias_grad[which].record(encoder);
            if let Some((through_weights, through_activation)) = &layer.input_grad {
                through_weights.record(encoder);
                if let Some(slope_grad) = &layer.slope_grad {
                    slope_grad[which].record(encoder);
                }
                through_activation.record(encoder);
            }
        }
        Ok(())
    }
}

/// The order in which epoch `epoch` (0-based) visits `len` examples: a Fisher–Yates shuffle
/// from a ChaCha8 generator keyed by the seed and the epoch, so runs reproduce.
pub fn epoch_order(seed: u64, epoch: usize, len: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let key = seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(key));
    order
}

/// Trains an [`Mlp`] with softmax cross-entropy on a [`GpuDataset`].
#[derive(Debug)]
pub struct Trainer {
    device: Device,
    config: TrainerConfig,
    model: Mlp,
    optimizer: Optimizer,
    data: GpuDataset,
    plans: HashMap<usize, StepPlan>,
    loss_sum: Tensor,
    correct: Tensor,
    epoch: usize,
}

impl Trainer {
    /// Binds a model, its optimiser and a training set.
    pub fn new(model: Mlp, data: GpuDataset, config: TrainerConfig) -> Result<Self> {
        let device = model.layers[0].weight.device().clone();
        let (first, last) = (
            model.layers[0].inputs(),
            model.layers.last().expect("layers").outputs(),
        );
        if first != data.features() || last != data.classes() {
            return Err(Error::shape(
                "Trainer",
                format!(
                    "a model from {} inputs to {} classes",
                    data.features(),
                    data.classes()
                ),
                format!("{first} inputs to {last} outputs"),
            ));
        }
        if config.batch_size == 0 || config.accumulation == 0 {
            return Err(Error::InvalidArgument(
                "the batch size and the accumulation count must be at least 1".into(),
            ));
        }
        let optimizer = Optimizer::new(config.optimizer, &model.parameters_and_grads())?;
        let loss_sum = Tensor::zeros(&device, [1])?;
        let correct = Tensor::zeros_of(&device, [1], DType::U32)?;
        Ok(Self {
            device,
            config,
            model,
            optimizer,
            data,
            plans: HashMap::new(),
            loss_sum,
            correct,
            epoch: 0,
        })
    }

    /// The model.
    pub fn model(&self) -> &Mlp {
        &self.model
    }

    /// Changes the base learning rate (the schedule scales it) from the next step on.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        let optimizer = self.config.optimizer.with_lr(lr);
        optimizer.validate()?;
        self.config.optimizer = optimizer;
        Ok(())
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.len().div_ceil(self.config.batch_size)
    }

    /// Starts an epoch: a seeded shuffle uploaded as the batch order, the accumulators zeroed.
    /// [`Trainer::train_epoch`] calls it; call it yourself only to drive [`Trainer::step`].
    pub fn begin_epoch(&mut self) -> Result<()> {
        self.data
            .set_order(&epoch_order(self.config.seed, self.epoch, self.data.len()))?;
        self.device.write_buffer(self.loss_sum.buffer(), 0, &[0; 4]);
        self.device.write_buffer(self.correct.buffer(), 0, &[0; 4]);
        Ok(())
    }

    /// Records and submits step `step` of the current epoch: one encoder, one submit, no wait.
    pub fn step(&mut self, step: usize) -> Result<()> {
        let batch = self.config.batch_size;
        let offset = step * batch;
        if offset >= self.data.len() {
            return Err(Error::InvalidArgument(format!(
                "step {step} is past the end of the epoch"
            )));
        }
        let rows = batch.min(self.data.len() - offset);
        if !self.plans.contains_key(&rows) {
            let plan = StepPlan::new(
                &self.model,
                &self.data,
                rows,
                &self.config,
                &self.loss_sum,
                &self.correct,
            )?;
            self.plans.insert(rows, plan);
        }
        let plan = self.plans.get_mut(&rows).expect("inserted above");
        let per_epoch = self.data.len().div_ceil(batch);
        let global_step = self.epoch * per_epoch + step;
        let base = self.config.optimizer.lr();
        let lr = self.config.schedule.lr_at(
            base,
            global_step,
            per_epoch * self.config.epochs.max(1),
            per_epoch,
        );
        self.optimizer.set_lr(lr)?;
        if matches!(
            self.model.config().activation,
            crate::kernels::activation::Activation::Rrelu { .. }
        ) {
            plan.set_rng(self.config.seed as u32, global_step as u32);
        }
        // Gradient accumulation: the first micro-batch of a group overwrites the gradients
        // (zero_grad), the others add to them, and the group's last one steps the optimiser.
        let group = self.config.accumulation.max(1);
        let first_of_group = step.is_multiple_of(group);
        let last_of_group = step % group == group - 1 || step + 1 == per_epoch;
        let mut encoder = self.device.encoder();
        plan.record(&mut encoder, offset, !first_of_group)?;
        if last_of_group {
            self.optimizer.record_step(&mut encoder);
        }
        encoder.submit()
    }

    /// The loss accumulated so far this epoch, over `steps` steps: one host sync.
    pub fn mean_loss_so_far(&self, steps: usize) -> Result<f32> {
        Ok(self.loss_sum.to_vec()?[0] / steps.max(1) as f32)
    }

    /// Trains one epoch; `progress(step, steps, running_loss)` runs after each step is
    /// submitted, with the running mean loss every `report_loss_every` steps. Reads back twice
    /// at the end (loss and correct count); a non-finite loss is [`Error::Diverged`].
    pub fn train_epoch(
        &mut self,
        mut progress: impl FnMut(usize, usize, Option<f32>),
    ) -> Result<EpochStats> {
        let start = Instant::now();
        self.begin_epoch()?;
        let steps = self.steps_per_epoch();
        for step in 0..steps {
            self.step(step)?;
            let every = self.config.report_loss_every;
            let running = if every > 0 && (step + 1) % every == 0 {
                Some(self.mean_loss_so_far(step + 1)?)
            } else {
                None
            };
            progress(step + 1, steps, running);
        }
        self.epoch += 1;
        let mean_loss = self.loss_sum.to_vec()?[0] / steps as f32;
        let correct = self.correct.to_vec_u32()?[0];
        if !mean_loss.is_finite() {
            return Err(Error::Diverged {
                epoch: self.epoch,
                loss: mean_loss,
                suggested_lr: self.optimizer.config().lr() / 10.0,
            });
        }
        Ok(EpochStats {
            epoch: self.epoch,
            mean_loss,
            running_accuracy: correct as f32 / self.data.len() as f32,
            seconds: start.elapsed().as_secs_f64(),
            steps,
        })
    }
}

/// Evaluates an [`Mlp`] on a [`GpuDataset`]: forward passes and a correct count, one host
/// sync per evaluation. Built once; it sees the model's current weights each time.
#[derive(Debug)]
pub struct Evaluator {
    device: Device,
    plans: Vec<(usize, ForwardPlan, Metric)>,
    correct: Tensor,
    data: GpuDataset,
}

impl Evaluator {
    /// Prepares evaluating `model` on `data` in batches of `batch_size`.
    pub fn new(
        model: &Mlp,
        data: GpuDataset,
        batch_size: usize,
        normalization: Normalization,
    ) -> Result<Self> {
        let device = model.layers[0].weight.device().clone();
        if batch_size == 0 {
            return Err(Error::InvalidArgument(
                "the batch size must be at least 1".into(),
            ));
        }
        let correct = Tensor::zeros_of(&device, [1], DType::U32)?;
        let mut plans = Vec::new();
        let mut offset = 0;
        while offset < data.len() {
            let rows = batch_size.min(data.len() - offset);
            let forward = ForwardPlan::new(model, &data, rows, normalization, false)?;
            let metric = Metric::count_correct(forward.logits(), &forward.gather.y, &correct)?;
            plans.push((offset, forward, metric));
            offset += rows;
        }
        Ok(Self {
            device,
            plans,
            correct,
            data,
        })
    }

    /// The fraction of examples whose argmax matches the label.
    pub fn accuracy(&mut self) -> Result<f32> {
        let identity: Vec<u32> = (0..self.data.len() as u32).collect();
        self.data.set_order(&identity)?;
        self.device.write_buffer(self.correct.buffer(), 0, &[0; 4]);
        for (offset, forward, metric) in &mut self.plans {
            let mut encoder = self.device.encoder();
            forward.record(&mut encoder, *offset)?;
            metric.record(&mut encoder);
            encoder.submit()?;
        }
        Ok(self.correct.to_vec_u32()?[0] as f32 / self.data.len() as f32)
    }

    /// The logits of the first batch (after [`Evaluator::accuracy`] or on their own: runs it).
    pub fn first_batch_logits(&mut self) -> Result<Vec<f32>> {
        let (offset, forward, _) = self
            .plans
            .first_mut()
            .ok_or_else(|| Error::InvalidArgument("empty data set".into()))?;
        let mut encoder = self.device.encoder();
        forward.record(&mut encoder, *offset)?;
        encoder.submit()?;
        forward.logits().to_vec()
    }
}
