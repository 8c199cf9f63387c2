//! Evaluation: a model's accuracy on a data set through captured forward passes, one host
//! sync per evaluation.

use std::collections::HashMap;

use crate::autograd::{BatchCursor, count_correct};
use crate::capture::{Fusion, Plan, capture};
use crate::data::gpu::{GpuDataset, Normalization};
use crate::device::Device;
use crate::nn::Model;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// A captured forward pass of a batch shape, with its correct count.
struct CapturedForward {
    plan: Plan,
    batch: BatchCursor,
    logits: Tensor,
}

/// Evaluates a [`Model`] on a [`GpuDataset`]: captured forward passes and a correct count, one
/// host sync per evaluation. Built once; it sees the model's current weights each time.
pub struct Evaluator {
    device: Device,
    /// One plan per batch shape (full batches, and the last, shorter one).
    plans: HashMap<usize, CapturedForward>,
    batch_size: usize,
    correct: Tensor,
    data: GpuDataset,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    /// Prepares evaluating `model` on `data` in batches of at most `batch_size`: fewer where a
    /// batch's widest activation would pass the device's binding limit (the result is the
    /// same; only the number of replays changes).
    pub fn new(
        model: &impl Model,
        data: GpuDataset,
        batch_size: usize,
        normalization: Normalization,
    ) -> Result<Self> {
        let device = model.device()?;
        if batch_size == 0 {
            return Err(Error::InvalidArgument(
                "the batch size must be at least 1".into(),
            ));
        }
        if data.is_empty() {
            return Err(Error::InvalidArgument(
                "the evaluation set is empty: there is nothing to evaluate".into(),
            ));
        }
        let widest = model.widest().max(1) as u64;
        let binding = device
            .limits()
            .max_storage_buffer_binding_size
            .min(device.limits().max_buffer_size);
        let fits = usize::try_from(binding / (4 * widest)).unwrap_or(usize::MAX);
        let batch_size = batch_size.min(fits.max(1));
        let correct = Tensor::zeros_of(&device, [1], DType::U32)?;
        let mut plans = HashMap::new();
        let mut sizes = vec![batch_size.min(data.len())];
        if !data.len().is_multiple_of(batch_size) && data.len() > batch_size {
            sizes.push(data.len() % batch_size);
        }
        for rows in sizes.into_iter().filter(|&r| r > 0) {
            let batch = data.batch(rows, normalization)?;
            let correct = &correct;
            let (plan, (batch, logits)) = capture(&device, &Fusion::all(), move || {
                batch.gather()?;
                let labels = batch.labels()?;
                let logits = model.forward(&batch.input()?, false)?;
                count_correct(&logits, &labels, correct)?;
                Ok((batch.cursor(), logits.value().share()))
            })?;
            plans.insert(
                rows,
                CapturedForward {
                    plan,
                    batch,
                    logits,
                },
            );
        }
        Ok(Self {
            device,
            plans,
            batch_size,
            correct,
            data,
        })
    }

    fn run(&self, offset: usize) -> Result<&CapturedForward> {
        let rows = self.batch_size.min(self.data.len() - offset);
        let captured = self
            .plans
            .get(&rows)
            .ok_or_else(|| Error::InvalidArgument("empty data set".into()))?;
        captured.batch.set_offset(offset)?;
        captured.plan.replay()?;
        Ok(captured)
    }

    /// Examples per replay: the batch size asked for, or fewer where the device's binding
    /// limit needs it.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The fraction of examples whose argmax matches the label.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn accuracy(&mut self) -> Result<f32> {
        crate::device::block_on(self.accuracy_async())
    }

    /// `Evaluator::accuracy` without blocking the thread.
    pub async fn accuracy_async(&mut self) -> Result<f32> {
        let identity: Vec<u32> = (0..self.data.len() as u32).collect();
        self.data.set_order(&identity)?;
        self.device.write_buffer(self.correct.buffer(), 0, &[0; 4]);
        let mut offset = 0;
        while offset < self.data.len() {
            self.run(offset)?;
            offset += self.batch_size;
        }
        Ok(self.correct.to_vec_u32_async().await?[0] as f32 / self.data.len() as f32)
    }

    /// The logits of the first batch (after [`Evaluator::accuracy`] or on their own: runs it).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn first_batch_logits(&mut self) -> Result<Vec<f32>> {
        crate::device::block_on(self.first_batch_logits_async())
    }

    /// `Evaluator::first_batch_logits` without blocking the thread.
    pub async fn first_batch_logits_async(&mut self) -> Result<Vec<f32>> {
        if self.data.is_empty() {
            return Err(Error::InvalidArgument("empty data set".into()));
        }
        let identity: Vec<u32> = (0..self.data.len() as u32).collect();
        self.data.set_order(&identity)?;
        self.run(0)?.logits.to_vec_async().await
    }
}
