//! Inference on inputs the caller holds: each class's probability for a batch of images,
//! normalised as in training, through any model on the device.

use super::{Mlp, Model};
use crate::autograd::Var;
use crate::data::gpu::Normalization;
use crate::kernels::loss;
use crate::{Error, Result};

/// Each class's probability (the softmax of the logits, on the device) for each row of `ink`:
/// row-major, [`Model::inputs`] values per row, each in [0, 1] as an MNIST pixel divided by
/// 255 (what [`crate::data::digit::mnist_like`] gives). Normalised by `normalization` as the
/// training inputs were, run in evaluation mode (no dropout, RReLU's mean slope). One upload,
/// one readback.
pub async fn predict_async(
    model: &(impl Model + ?Sized),
    ink: &[f32],
    normalization: Normalization,
) -> Result<Vec<Vec<f32>>> {
    let inputs = model.inputs();
    if ink.is_empty() || !ink.len().is_multiple_of(inputs) {
        return Err(Error::InvalidArgument(format!(
            "predict: {} values are not a whole number of rows of {inputs}; give at least one \
             image of {inputs} values",
            ink.len()
        )));
    }
    if let Some(i) = ink.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(Error::InvalidArgument(format!(
            "predict: value {i} is {}; inputs are ink values in [0, 1] (a pixel / 255)",
            ink[i]
        )));
    }
    let rows = ink.len() / inputs;
    let Normalization { mean, std } = normalization;
    let x: Vec<f32> = ink.iter().map(|&v| (v - mean) / std).collect();
    let device = model.device()?;
    let input = Var::from_slice(&device, &x, [rows, inputs], false)?;
    let logits = model.forward(&input, false)?;
    let probabilities = loss::softmax(logits.value(), false)?;
    let values = probabilities.to_vec_async().await?;
    let classes = values.len() / rows;
    Ok(values.chunks(classes).map(<[f32]>::to_vec).collect())
}

/// [`predict_async`], waiting for the result.
#[cfg(not(target_arch = "wasm32"))]
pub fn predict(
    model: &(impl Model + ?Sized),
    ink: &[f32],
    normalization: Normalization,
) -> Result<Vec<Vec<f32>>> {
    crate::device::block_on(predict_async(model, ink, normalization))
}

impl Mlp {
    /// [`predict_async`] of this MLP.
    pub async fn predict_async(
        &self,
        ink: &[f32],
        normalization: Normalization,
    ) -> Result<Vec<Vec<f32>>> {
        predict_async(self, ink, normalization).await
    }

    /// [`predict`] of this MLP.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict(&self, ink: &[f32], normalization: Normalization) -> Result<Vec<Vec<f32>>> {
        predict(self, ink, normalization)
    }
}
