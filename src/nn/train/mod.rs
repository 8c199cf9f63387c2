//! Training on the device. A step is written once, through autograd ([`Mlp::forward`], the
//! loss, `backward`, the optimiser), and captured into a fused [`Plan`] per batch shape; each
//! step records it, [`TrainerConfig::steps_per_submit`] steps to an encoder and a submit, with
//! no host sync until the epoch's loss and accuracy are read back.
//!
//! The loop is here; what to train with is `config.rs`, the saved training state a run resumes
//! from `state.rs`, evaluation `evaluate.rs`.

mod config;
mod evaluate;
#[cfg(feature = "checkpoints")]
mod state;

pub use config::{ClassifierLoss, TrainerConfig, default_steps_per_submit};

pub use evaluate::Evaluator;
#[cfg(feature = "checkpoints")]
pub use state::TrainingPosition;

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use web_time::Instant;

use super::{Mlp, Model};
use crate::autograd::{
    BatchCursor, Loss, Var, VarOptimizer, count_correct, cross_entropy, one_hot,
};
use crate::capture::{Plan, capture};
use crate::data::gpu::GpuDataset;
use crate::device::{Device, DispatchTime, Encoder};
use crate::kernels::loss::Reduction;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

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

/// The order in which epoch `epoch` (0-based) visits `len` examples: a Fisher–Yates shuffle
/// from a ChaCha8 generator keyed by the seed and the epoch, so runs reproduce.
pub fn epoch_order(seed: u64, epoch: usize, len: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let key = seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(key));
    order
}

/// One captured training step of a batch shape: the plan and the cursor of the batch it
/// reads (not the batch itself: the fused plan need not write the gathered images).
struct CapturedStep {
    plan: Plan,
    batch: BatchCursor,
}

/// Trains a [`Model`] (an [`Mlp`] unless said otherwise) on a [`GpuDataset`] with the
/// captured, fused step.
pub struct Trainer<M: Model = Mlp> {
    device: Device,
    config: TrainerConfig,
    model: M,
    optimizer: VarOptimizer,
    data: GpuDataset,
    /// Keyed by (rows, zero the gradients first, step the optimiser last).
    plans: HashMap<(usize, bool, bool), CapturedStep>,
    loss_sum: Tensor,
    correct: Tensor,
    /// Epochs completed.
    epoch: usize,
    /// Steps of the current epoch completed (0: the epoch has not begun).
    next_step: usize,
    /// The loss of the run's first step, the yardstick of divergence.
    first_loss: Option<f32>,
    dispatches_per_step: Option<u64>,
    /// Steps recorded into one submit by the epoch loop.
    steps_per_submit: usize,
    /// The step of an epoch the epoch loop times next ([`Trainer::profile_step`]).
    profile_at: Option<usize>,
    /// What the last timed step's dispatches took.
    step_profile: Option<Vec<DispatchTime>>,
}

impl<M: Model> std::fmt::Debug for Trainer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("epoch", &self.epoch)
            .field("next_step", &self.next_step)
            .finish_non_exhaustive()
    }
}

impl<M: Model> Trainer<M> {
    /// Binds a model, its optimiser and a training set.
    pub fn new(model: M, data: GpuDataset, config: TrainerConfig) -> Result<Self> {
        let device = model.device()?;
        let (first, last) = (model.inputs(), model.outputs());
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
        config.validate()?;
        if data.is_empty() {
            return Err(Error::InvalidArgument(
                "the training set is empty: there is nothing to train on; give the trainer a \
                 data set with at least one example"
                    .into(),
            ));
        }
        let params: Vec<&Var> = model.parameter_vars().into_iter().map(|(_, v)| v).collect();
        let optimizer = VarOptimizer::new(config.optimizer, &params)?;
        let steps_per_submit = config
            .steps_per_submit
            .unwrap_or_else(|| default_steps_per_submit(&device));
        let loss_sum = Tensor::zeros(&device, [1])?;
        let correct = Tensor::zeros_of(&device, [1], DType::U32)?;
        let mut trainer = Self {
            device,
            config,
            model,
            optimizer,
            data,
            plans: HashMap::new(),
            loss_sum,
            correct,
            epoch: 0,
            next_step: 0,
            first_loss: None,
            dispatches_per_step: None,
            steps_per_submit,
            profile_at: None,
            step_profile: None,
        };
        trainer.prepare()?;
        Ok(trainer)
    }

    /// The key of the plan step `step` of an epoch replays.
    fn plan_key(&self, step: usize) -> (usize, bool, bool) {
        let batch = self.config.batch_size;
        let rows = batch.min(self.data.len() - step * batch);
        let per_epoch = self.steps_per_epoch();
        // Gradient accumulation: the first micro-batch of a group overwrites the gradients
        // (zero_grad), the others add to them, and the group's last one steps the optimiser.
        let group = self.config.accumulation;
        let zero = step.is_multiple_of(group);
        let update = step % group == group - 1 || step + 1 == per_epoch;
        (rows, zero, update)
    }

    /// Captures every plan an epoch replays (a handful: full and last batch, accumulation
    /// positions), so that a run meets the device's limits, or fails on them, before its first
    /// step rather than in the middle of an epoch. [`Trainer::new`] calls it.
    fn prepare(&mut self) -> Result<()> {
        for step in 0..self.steps_per_epoch() {
            self.ensure_plan(self.plan_key(step))?;
        }
        for captured in self.plans.values() {
            captured.plan.reserve_steps(self.steps_per_submit)?;
        }
        Ok(())
    }

    /// Captures the plan of `key` unless it exists.
    fn ensure_plan(&mut self, key: (usize, bool, bool)) -> Result<()> {
        if !self.plans.contains_key(&key) {
            let captured = self.capture_step(key.0, key.1, key.2)?;
            self.plans.insert(key, captured);
        }
        Ok(())
    }

    /// The model.
    pub fn model(&self) -> &M {
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

    /// Steps of the current epoch completed (0 between epochs).
    pub fn steps_done_in_epoch(&self) -> usize {
        self.next_step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.len().div_ceil(self.config.batch_size)
    }

    /// Dispatches the last step recorded (after the first step).
    pub fn dispatches_per_step(&self) -> Option<u64> {
        self.dispatches_per_step
    }

    /// What the full-batch step's plan runs, kernel by kernel (after the first step).
    pub fn step_plan(&self) -> Option<&[String]> {
        self.full_batch_plan().map(Plan::steps)
    }

    /// Each dispatch of the full-batch step with its grid (after the first step).
    pub fn step_grids(&self) -> Option<Vec<crate::device::DispatchGrid>> {
        self.full_batch_plan().and_then(Plan::grids)
    }

    /// Times step `step` of the next epoch the epoch loop runs, dispatch by dispatch: it is
    /// recorded into a submit of its own with GPU timestamps around each dispatch, and runs
    /// as it would untimed (the same kernels on the same data, so the same bits). Its times
    /// are in [`Trainer::step_profile`] after the step. An error, before anything runs, when
    /// the device has no timestamp queries ([`Device::timestamps`]).
    pub fn profile_step(&mut self, step: usize) -> Result<()> {
        if self.device.timestamps() == crate::device::TimestampSupport::None {
            return Err(Error::InvalidArgument(format!(
                "{} has no timestamp queries, so a step cannot be timed dispatch by dispatch \
                 on it (its grids are in Trainer::step_grids)",
                self.device.adapter().name
            )));
        }
        self.profile_at = Some(step);
        Ok(())
    }

    /// Each dispatch of the step [`Trainer::profile_step`] timed, with its grid and GPU time.
    pub fn step_profile(&self) -> Option<&[DispatchTime]> {
        self.step_profile.as_deref()
    }

    /// The plan of a full batch that zeroes the gradients and steps the optimiser.
    fn full_batch_plan(&self) -> Option<&Plan> {
        let key = (self.config.batch_size.min(self.data.len()), true, true);
        self.plans.get(&key).map(|s| &s.plan)
    }

    /// Starts an epoch: a seeded shuffle uploaded as the batch order, the accumulators zeroed.
    /// [`Trainer::train_epoch`] calls it; call it yourself only to drive [`Trainer::step`].
    pub fn begin_epoch(&mut self) -> Result<()> {
        self.upload_order()?;
        self.device.write_buffer(self.loss_sum.buffer(), 0, &[0; 4]);
        self.device.write_buffer(self.correct.buffer(), 0, &[0; 4]);
        self.next_step = 0;
        Ok(())
    }

    /// The current epoch's shuffle, uploaded as the batch order.
    fn upload_order(&mut self) -> Result<()> {
        self.data
            .set_order(&epoch_order(self.config.seed, self.epoch, self.data.len()))
    }

    /// Captures the step of `rows` examples, written once through autograd: gather, forward,
    /// loss (its value added to the epoch's sum), correct count, backward, optimiser step.
    fn capture_step(&mut self, rows: usize, zero: bool, update: bool) -> Result<CapturedStep> {
        let batch = self.data.batch(rows, self.config.normalization)?;
        let (model, optimizer) = (&self.model, &mut self.optimizer);
        let (loss_kind, loss_sum, correct) = (self.config.loss, &self.loss_sum, &self.correct);
        // The closure owns the batch and gives back only its cursor, so the batch's images are
        // not held when the rules run (the gather can then disappear into the matmuls).
        let (plan, cursor) = capture(&self.device, &self.config.fusion, move || {
            batch.gather()?;
            let labels = batch.labels()?;
            let logits = model.forward(&batch.input()?, true)?;
            let loss = match loss_kind {
                ClassifierLoss::CrossEntropy => cross_entropy(&logits, &labels, Reduction::Mean)?,
                ClassifierLoss::Mse => Loss::mse().forward(&logits, &one_hot(&labels)?)?,
                ClassifierLoss::BceWithLogits => {
                    Loss::bce_with_logits().forward(&logits, &one_hot(&labels)?)?
                }
            };
            count_correct(&logits, &labels, correct)?;
            accumulate(&loss, loss_sum)?;
            if zero {
                optimizer.zero_grad()?;
            }
            loss.backward()?;
            if update {
                optimizer.step()?;
            }
            Ok(batch.cursor())
        })?;
        Ok(CapturedStep {
            plan,
            batch: cursor,
        })
    }

    /// Replays step `step` of the current epoch: one encoder, one submit, no wait. The first
    /// step of each batch shape captures its plan.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self, step: usize) -> Result<()> {
        crate::device::block_on(self.step_async(step))
    }

    /// `Trainer::step` without blocking the thread (the run's first step reads its loss
    /// back once, as the yardstick of divergence).
    pub async fn step_async(&mut self, step: usize) -> Result<()> {
        let mut encoder = self.device.encoder();
        self.record_step(step, &mut encoder)?;
        encoder.submit()?;
        self.take_first_loss(step + 1).await
    }

    /// Records step `step` of the current epoch into `encoder`: the schedule's learning rate,
    /// the batch's offset and the RNG key are set on the host, and the plan takes them into
    /// its row of per-step inputs (no host write of their own).
    fn record_step(&mut self, step: usize, encoder: &mut Encoder) -> Result<()> {
        let batch = self.config.batch_size;
        let offset = step * batch;
        if offset >= self.data.len() {
            return Err(Error::InvalidArgument(format!(
                "step {step} is past the end of the epoch"
            )));
        }
        let per_epoch = self.steps_per_epoch();
        let key = self.plan_key(step);
        self.ensure_plan(key)?;
        let global_step = self.epoch * per_epoch + step;
        let base = self.config.optimizer.lr();
        let lr = self.config.schedule.lr_at(
            base,
            global_step,
            per_epoch * self.config.epochs.max(1),
            per_epoch,
        );
        self.optimizer.set_lr(lr)?;
        let captured = &self.plans[&key];
        captured.batch.set_offset(offset)?;
        captured
            .plan
            .set_rng(self.config.seed as u32, global_step as u32);
        captured.plan.record(encoder)?;
        self.dispatches_per_step = captured.plan.dispatches();
        self.next_step = step + 1;
        Ok(())
    }

    /// After the run's first submit: reads the mean loss of its `done` steps back, once, as
    /// the yardstick of divergence.
    async fn take_first_loss(&mut self, done: usize) -> Result<()> {
        if self.first_loss.is_none() {
            let loss = self.loss_sum.to_vec_async().await?[0] / done as f32;
            self.first_loss = Some(loss);
            self.check_divergence(loss)?;
        }
        Ok(())
    }

    /// Where the submit that starts at step `start` ends: after `steps_per_submit` steps (the
    /// run's first step alone, for the yardstick), at the next loss report, or at the end of
    /// the epoch.
    fn submit_end(&self, start: usize, steps: usize) -> usize {
        if self.first_loss.is_none() {
            return start + 1;
        }
        let end = (start + self.steps_per_submit).min(steps);
        let every = self.config.report_loss_every;
        match start.checked_div(every) {
            Some(reports) => end.min((reports + 1) * every),
            None => end,
        }
    }

    /// Steps the epoch loop records into one submit.
    pub fn steps_per_submit(&self) -> usize {
        self.steps_per_submit
    }

    /// [`Error::Diverged`] if `mean_loss` is not finite or is far past the first step's loss.
    fn check_divergence(&self, mean_loss: f32) -> Result<()> {
        let base = self.config.optimizer.lr();
        let diverged = |reason: String| Error::Diverged {
            epoch: self.epoch + 1,
            loss: mean_loss,
            reason,
            suggested_lr: base / 10.0,
        };
        if !mean_loss.is_finite() {
            return Err(diverged(String::new()));
        }
        if let (Some(factor), Some(first)) = (self.config.diverge_above, self.first_loss)
            && first.is_finite()
            && mean_loss > factor * first.max(f32::MIN_POSITIVE)
        {
            return Err(diverged(format!(
                ", more than {factor} times the first step's {first}"
            )));
        }
        Ok(())
    }

    /// The loss accumulated so far this epoch, over `steps` steps: one host sync.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn mean_loss_so_far(&self, steps: usize) -> Result<f32> {
        crate::device::block_on(self.mean_loss_so_far_async(steps))
    }

    /// `Trainer::mean_loss_so_far` without blocking the thread.
    pub async fn mean_loss_so_far_async(&self, steps: usize) -> Result<f32> {
        Ok(self.loss_sum.to_vec_async().await?[0] / steps.max(1) as f32)
    }

    /// Trains the rest of the current epoch (all of it, unless a restored state or
    /// [`Trainer::train_epoch_until`] stopped it part-way). See [`Trainer::train_epoch_until`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_epoch(
        &mut self,
        progress: impl FnMut(usize, usize, Option<f32>),
    ) -> Result<EpochStats> {
        let stats = self.train_epoch_until(|| false, progress)?;
        Ok(stats.expect("never stopped"))
    }

    /// Trains the rest of the current epoch, checking `stop()` after each optimiser step (each
    /// step, or each accumulation group's last): if it says yes, returns `None` there (after
    /// checking the loss, so a diverged state is an error, not a state to save), where
    /// `Trainer::state` (the `checkpoints` feature) saves a state that resumes bit for bit.
    /// `progress(step, steps, running_loss)` runs after each step is recorded (the steps of a
    /// submit are recorded, then submitted together; a stop ends the submit at its step), with
    /// the running mean loss every `report_loss_every` steps (a submit ends there, and the
    /// loss is read back after it). Reads back twice
    /// at the end (loss and correct count). A non-finite loss, or one far past the first
    /// step's ([`TrainerConfig::diverge_above`]), is [`Error::Diverged`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_epoch_until(
        &mut self,
        stop: impl FnMut() -> bool,
        progress: impl FnMut(usize, usize, Option<f32>),
    ) -> Result<Option<EpochStats>> {
        crate::device::block_on(self.train_epoch_until_async(stop, progress))
    }

    /// `Trainer::train_epoch_until` without blocking the thread. It never yields to the
    /// browser between steps (nothing in it waits but the readbacks); a page that must stay
    /// responsive drives [`Trainer::step_async`] itself, a slice of steps per frame.
    pub async fn train_epoch_until_async(
        &mut self,
        mut stop: impl FnMut() -> bool,
        mut progress: impl FnMut(usize, usize, Option<f32>),
    ) -> Result<Option<EpochStats>> {
        let start = Instant::now();
        if self.next_step == 0 {
            self.begin_epoch()?;
        } else {
            // Resumed part-way: the accumulators hold the epoch's sums so far.
            self.upload_order()?;
        }
        let steps = self.steps_per_epoch();
        let every = self.config.report_loss_every;
        while self.next_step < steps {
            let mut end = self.submit_end(self.next_step, steps);
            // The timed step runs in a submit of its own.
            let timed = self.profile_at == Some(self.next_step);
            if timed {
                end = self.next_step + 1;
            } else if let Some(at) = self.profile_at.filter(|&at| at > self.next_step) {
                end = end.min(at);
            }
            let mut encoder = Some(self.device.encoder());
            if timed {
                encoder.as_mut().expect("just made").open_timing()?;
            }
            loop {
                let step = self.next_step;
                let recorded =
                    self.record_step(step, encoder.as_mut().expect("open until the submit"));
                if let Err(error) = recorded {
                    // The steps recorded before (a failed step records nothing) still run, as
                    // the trainer's position says they did.
                    if let Some(encoder) = encoder.take() {
                        encoder.submit()?;
                    }
                    return Err(error);
                }
                let done = step + 1;
                let mut running = None;
                if done == end {
                    let encoder = encoder.take().expect("open until the submit");
                    if timed {
                        self.step_profile = Some(encoder.submit_timed().await?);
                        self.profile_at = None;
                    } else {
                        encoder.submit()?;
                    }
                    self.take_first_loss(done).await?;
                    if every > 0 && done.is_multiple_of(every) {
                        let loss = self.mean_loss_so_far_async(done).await?;
                        self.check_divergence(loss)?;
                        running = Some(loss);
                    }
                }
                progress(done, steps, running);
                // Only where the optimiser has just stepped: mid-way through an accumulation
                // group the gradients summed so far would be part of the state too.
                let (_, _, updated) = self.plan_key(step);
                if done < steps && updated && stop() {
                    if let Some(encoder) = encoder.take() {
                        encoder.submit()?;
                        self.take_first_loss(done).await?;
                    }
                    // A diverged state must never replace a good checkpoint: check it first.
                    let loss = self.mean_loss_so_far_async(done).await?;
                    self.check_divergence(loss)?;
                    return Ok(None);
                }
                if done == end {
                    break;
                }
            }
        }
        let mean_loss = self.loss_sum.to_vec_async().await?[0] / steps as f32;
        let correct = self.correct.to_vec_u32_async().await?[0];
        self.check_divergence(mean_loss)?;
        self.epoch += 1;
        self.next_step = 0;
        Ok(Some(EpochStats {
            epoch: self.epoch,
            mean_loss,
            running_accuracy: correct as f32 / self.data.len() as f32,
            seconds: start.elapsed().as_secs_f64(),
            steps,
        }))
    }
}

/// `sum ← loss + sum` on the device, recorded like any op.
fn accumulate(loss: &Var, sum: &Tensor) -> Result<()> {
    let mut recording = crate::autograd::Recording::new(loss.device());
    recording.add_into(loss.value(), sum)?;
    recording.submit()
}
