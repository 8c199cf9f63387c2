//! A trainer's saved state (the `checkpoints` feature): everything a run needs to continue
//! bit for bit — the model, the optimiser's state and step numbers, the position in the
//! epoch — as one safetensors file, and restoring it.

use std::collections::BTreeMap;
use std::path::Path;

use super::Trainer;
use crate::nn::checkpoint::{CheckpointFile, STATE_PREFIX, StoredTensor};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Saving and restoring a training state (the `checkpoints` feature).
#[cfg(feature = "checkpoints")]
impl<M: crate::nn::Model> Trainer<M> {
    /// What identifies a run: a saved state restores only into a trainer with the same.
    fn identity(&self) -> Vec<(&'static str, String)> {
        let mut identity = self.model.identity();
        identity.extend([
            ("loss", format!("{:?}", self.config.loss)),
            ("optimizer", format!("{:?}", self.config.optimizer)),
            ("batch_size", self.config.batch_size.to_string()),
            ("accumulation", self.config.accumulation.to_string()),
            ("seed", self.config.seed.to_string()),
            ("normalization", format!("{:?}", self.config.normalization)),
            ("schedule", format!("{:?}", self.config.schedule)),
            ("examples", self.data.len().to_string()),
        ]);
        identity
    }

    /// The trainer's own tensors in a saved state, by name: the optimiser's per-parameter
    /// state (none for plain SGD) and the epoch's running sums.
    fn state_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut tensors = Vec::new();
        let names = self.model.parameters().into_iter().map(|(n, _)| n);
        for (name, (state1, state2)) in names.zip(self.optimizer.state()) {
            tensors.push((format!("{STATE_PREFIX}optimizer.{name}.state1"), state1));
            tensors.push((format!("{STATE_PREFIX}optimizer.{name}.state2"), state2));
        }
        tensors.push((format!("{STATE_PREFIX}loss_sum"), &self.loss_sum));
        tensors.push((format!("{STATE_PREFIX}correct"), &self.correct));
        tensors
    }

    /// Everything a run needs to go on exactly as if it had not stopped: the parameters, the
    /// optimiser's state and step count, the position (epoch and step), the epoch's running
    /// sums and the run's identity (the shuffles and RReLU's slopes are keyed by seed, epoch
    /// and step, so the position is their state). Waits for the device (a few host syncs).
    pub fn state(&self) -> Result<CheckpointFile> {
        if !self.next_step.is_multiple_of(self.config.accumulation) {
            return Err(Error::InvalidArgument(format!(
                "cannot save a training state at step {}, inside an accumulation group of {}: \
                 its summed gradients are not part of a state; save after the group's update",
                self.next_step, self.config.accumulation
            )));
        }
        let mut file = self.model.to_checkpoint()?;
        for (name, tensor) in self.state_tensors() {
            file.tensors.insert(name, StoredTensor::read(tensor)?);
        }
        // A diverged state never replaces a good one on disk.
        for (name, tensor) in &file.tensors {
            if let Some(bad) = tensor
                .f32s()
                .and_then(|v| v.into_iter().find(|x| !x.is_finite()))
            {
                return Err(Error::Diverged {
                    epoch: self.epoch + 1,
                    loss: f32::NAN,
                    reason: format!(" (tensor {name} holds {bad}, so the state was not saved)"),
                    suggested_lr: self.config.optimizer.lr() / 10.0,
                });
            }
        }
        let meta = &mut file.metadata;
        meta.insert("format".into(), STATE_FORMAT.into());
        for (key, value) in self.identity() {
            meta.insert(format!("{STATE_PREFIX}config.{key}"), value);
        }
        let position = [
            ("epoch", self.epoch.to_string()),
            ("step", self.next_step.to_string()),
            ("epochs", self.config.epochs.to_string()),
            ("optimizer_steps", self.optimizer.steps_taken().to_string()),
            (
                "first_loss",
                self.first_loss
                    .map_or_else(String::new, |l| format!("{l:?}")),
            ),
        ];
        for (key, value) in position {
            meta.insert(format!("{STATE_PREFIX}{key}"), value);
        }
        Ok(file)
    }

    /// Saves [`Trainer::state`] with `extra` metadata (an application's own, such as its
    /// history) to `path`, atomically.
    pub fn save_state(
        &self,
        path: &Path,
        extra: impl IntoIterator<Item = (String, String)>,
    ) -> Result<()> {
        let mut file = self.state()?;
        file.metadata.extend(extra);
        file.write(path)
    }

    /// Restores a state saved by [`Trainer::state`] from `file` (read from `path`, named in
    /// errors). The trainer must describe the same run (model, loss, optimiser, batch size,
    /// seed, schedule, data set size); only the number of epochs may grow. Everything is
    /// checked before anything is written.
    pub fn restore_state(&mut self, file: &CheckpointFile, path: &Path) -> Result<()> {
        let bad = |problem: String| Error::Data {
            path: path.to_path_buf(),
            problem,
        };
        // What is wrong with a file that is not a whole training state, and what to do.
        let incomplete = |what: String| {
            bad(format!(
                "{what}: it is not a complete training state; resume from another checkpoint \
                 or start a new run"
            ))
        };
        if file.metadata.get("format").map(String::as_str) != Some(STATE_FORMAT) {
            return Err(bad(
                "holds a model's weights but no training state (optimiser, position), so \
                 training cannot resume from it; resume from a state Trainer::save_state wrote"
                    .into(),
            ));
        }
        let meta = |key: &str| -> Result<&str> {
            file.metadata
                .get(&format!("{STATE_PREFIX}{key}"))
                .map(String::as_str)
                .ok_or_else(|| incomplete(format!("has no {key} in its metadata")))
        };
        for (key, value) in self.identity() {
            let saved = meta(&format!("config.{key}"))?;
            if saved != value {
                return Err(bad(format!(
                    "was saved by a run with {key} {saved}, and this run has {key} {value}: \
                     resume with the settings it was saved with, or start a new run"
                )));
            }
        }
        let number = |key: &str| -> Result<u64> {
            meta(key)?
                .parse()
                .map_err(|_| incomplete(format!("has a malformed {key} in its metadata")))
        };
        let TrainingPosition { epoch, step, .. } = file.training_position().ok_or_else(|| {
            incomplete("has no readable position (epoch, step, epochs) in its metadata".into())
        })?;
        let steps = number("optimizer_steps")?;
        if step >= self.steps_per_epoch() {
            return Err(incomplete(format!(
                "is at step {step} of an epoch of {} steps",
                self.steps_per_epoch()
            )));
        }
        if !step.is_multiple_of(self.config.accumulation) {
            // The gradients summed so far in the group are not part of a state.
            return Err(incomplete(format!(
                "stopped at step {step}, inside an accumulation group of {}",
                self.config.accumulation
            )));
        }
        if epoch > self.config.epochs {
            return Err(bad(format!(
                "has trained {epoch} epochs, more than the {} this run is configured for: ask \
                 for at least {epoch}",
                self.config.epochs
            )));
        }
        let first_loss = match meta("first_loss")? {
            "" => None,
            text => Some(
                text.parse::<f32>()
                    .map_err(|_| incomplete("has a malformed first_loss in its metadata".into()))?,
            ),
        };
        // Every tensor is checked against its destination before any is written.
        let writes = self
            .state_tensors()
            .into_iter()
            .map(|(key, tensor)| Ok((file.tensor(&key, path)?, tensor, key)))
            .collect::<Result<Vec<_>>>()?;
        for (stored, tensor, key) in &writes {
            if stored.dtype != tensor.dtype() || stored.shape != tensor.shape().dims() {
                return Err(incomplete(format!(
                    "tensor {key} is {:?} {:?}, this run's is {:?} {}",
                    stored.dtype,
                    stored.shape,
                    tensor.dtype(),
                    tensor.shape()
                )));
            }
        }
        self.model.load_parameters(file, path)?;
        for (stored, tensor, _) in writes {
            self.device.write_buffer(tensor.buffer(), 0, &stored.bytes);
        }
        self.optimizer.set_steps_taken(steps);
        self.epoch = epoch;
        self.next_step = step;
        self.first_loss = first_loss;
        Ok(())
    }

    /// Reads the training state at `path` and restores it ([`Trainer::restore_state`]);
    /// returns the file's metadata (with the application's own entries).
    pub fn resume_from(&mut self, path: &Path) -> Result<BTreeMap<String, String>> {
        let file = CheckpointFile::read(path)?;
        self.restore_state(&file, path)?;
        Ok(file.metadata)
    }
}

/// The `format` metadata of a training state.
#[cfg(feature = "checkpoints")]
const STATE_FORMAT: &str = "wgsl-nn training state 1";

/// Where a saved training state stands.
#[cfg(feature = "checkpoints")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingPosition {
    /// Epochs completed.
    pub epoch: usize,
    /// Steps of the next epoch completed (0 between epochs).
    pub step: usize,
    /// The epochs the run was configured for when it was saved.
    pub epochs: usize,
}

#[cfg(feature = "checkpoints")]
impl TrainingPosition {
    /// Whether the run had trained all its epochs.
    pub fn finished(&self) -> bool {
        self.step == 0 && self.epoch >= self.epochs
    }
}

#[cfg(feature = "checkpoints")]
impl CheckpointFile {
    /// The position of the training state in this file (`None` if it is not one, such as a
    /// model's weights).
    pub fn training_position(&self) -> Option<TrainingPosition> {
        if self.metadata.get("format").map(String::as_str) != Some(STATE_FORMAT) {
            return None;
        }
        let number = |key: &str| -> Option<usize> {
            self.metadata
                .get(&format!("{STATE_PREFIX}{key}"))?
                .parse()
                .ok()
        };
        Some(TrainingPosition {
            epoch: number("epoch")?,
            step: number("step")?,
            epochs: number("epochs")?,
        })
    }
}
