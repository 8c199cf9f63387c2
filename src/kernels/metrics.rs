//! Metrics on the device: row argmax and the count of correct predictions.

use super::loss::Labels;
use super::{Dispatch, Entry, Record, Uniform, entry, grid};
use crate::device::{Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/metrics.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "metrics",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/metrics.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[("argmax_rows", 3), ("count_correct", 4)],
};

super::bindings! {
    /// The binding numbers of `shaders/metrics.wgsl`, by the WGSL variable each names.
    bind:
    SCORES = 0,
    LABELS = 1,
    PREDICTIONS = 2,
    CORRECT = 3,
    P = 4,
    STATE = 5,
}

/// The `MetricsParams` uniform of `shaders/metrics.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MetricsParams {
    pub rows: u32,
    pub cols: u32,
    pub begin: u32,
    pub end: u32,
}

/// A prepared argmax (`predictions`) or correct-count (`correct`): one dispatch, or one per
/// pass over rows longer than [`PASS_LENGTH`](super::PASS_LENGTH).
#[derive(Debug)]
pub struct Metric {
    passes: Vec<Dispatch>,
    _state: Option<Tensor>,
}

fn check_scores(op: &str, scores: &Tensor) -> Result<(usize, usize)> {
    scores.expect_dtype(op, DType::F32)?;
    let (rows, cols) = scores.shape().dims2(op)?;
    if cols == 0 {
        return Err(Error::shape(op, "at least one column", scores.shape()));
    }
    Ok((rows, cols))
}

impl Metric {
    /// Prepares `predictions[i] = argmax_j scores[i, j]` (first maximum; NaN counts as the
    /// maximum, like `torch.argmax`). `predictions` is a u32 tensor `[rows]`.
    pub fn argmax(scores: &Tensor, predictions: &Tensor) -> Result<Self> {
        let op = "argmax";
        let (rows, cols) = check_scores(op, scores)?;
        predictions.expect_dtype(op, DType::U32)?;
        if predictions.shape().dims() != [rows] {
            return Err(Error::shape(
                op,
                format!("predictions [{rows}]"),
                predictions.shape(),
            ));
        }
        Self::build(
            "argmax_rows",
            scores,
            rows,
            cols,
            &[entry(bind::PREDICTIONS, predictions)],
            predictions,
        )
    }

    /// Prepares `correct[0] += #{i : argmax(scores[i]) == labels[i]}`; `correct` is a u32
    /// tensor `[1]` that accumulates until the caller resets it.
    pub fn count_correct(scores: &Tensor, labels: &Labels, correct: &Tensor) -> Result<Self> {
        let op = "count_correct";
        let (rows, cols) = check_scores(op, scores)?;
        if rows != labels.len() || cols != labels.classes() {
            return Err(Error::shape(
                op,
                format!("scores [{}, {}]", labels.len(), labels.classes()),
                scores.shape(),
            ));
        }
        correct.expect_dtype(op, DType::U32)?;
        if correct.numel() != 1 {
            return Err(Error::shape(op, "a one-element counter", correct.shape()));
        }
        let entries = [
            entry(bind::LABELS, labels.tensor()),
            entry(bind::CORRECT, correct),
        ];
        Self::build("count_correct", scores, rows, cols, &entries, correct)
    }

    fn build(
        entry_point: &str,
        scores: &Tensor,
        rows: usize,
        cols: usize,
        extra: &[Entry<'_>],
        output: &Tensor,
    ) -> Result<Self> {
        let device = scores.device();
        let pipeline = device.pipeline(&SHADER, entry_point, &[])?;
        let row_grid = grid(device, entry_point, rows)?;
        let ranges = super::pass_ranges(cols, super::PASS_LENGTH);
        // The running maximum between passes. With one pass it is never touched, but WebGPU
        // forbids binding the (writable) output there too: a 16-byte scratch stands in.
        let words = if ranges.len() > 1 { rows.max(1) * 2 } else { 4 };
        let state = Some(Tensor::uninit_of(device, [words], DType::U32)?);
        let passes = ranges
            .into_iter()
            .map(|(begin, end)| -> Result<Dispatch> {
                let params = MetricsParams {
                    rows: rows as u32,
                    cols: cols as u32,
                    begin,
                    end,
                };
                let uniform = Uniform::new(device, "metrics params", bytemuck::bytes_of(&params))?;
                let mut entries = vec![
                    entry(bind::SCORES, scores),
                    entry(bind::P, &uniform),
                    entry(bind::STATE, state.as_ref().unwrap_or(output)),
                ];
                entries.extend(extra.iter().cloned());
                Ok(Dispatch::new(
                    device,
                    std::sync::Arc::clone(&pipeline),
                    entry_point,
                    &entries,
                    row_grid,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            passes,
            _state: state,
        })
    }

    /// Records the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        for pass in &self.passes {
            pass.record(encoder);
        }
    }
}

/// Row argmax of a 2-D tensor as a u32 tensor `[rows]`, submitted.
pub fn argmax(scores: &Tensor) -> Result<Tensor> {
    let (rows, _) = scores.shape().dims2("argmax")?;
    let predictions = Tensor::uninit_of(scores.device(), [rows], DType::U32)?;
    let kernel = Metric::argmax(scores, &predictions)?;
    kernel.submit(scores.device())?;
    Ok(predictions)
}

/// How many rows' argmax equals their label: one submit and one host sync.
#[cfg(not(target_arch = "wasm32"))]
pub fn count_correct(scores: &Tensor, labels: &Labels) -> Result<u32> {
    crate::device::block_on(count_correct_async(scores, labels))
}

/// `count_correct` without blocking the thread.
pub async fn count_correct_async(scores: &Tensor, labels: &Labels) -> Result<u32> {
    let correct = Tensor::zeros_of(scores.device(), [1], DType::U32)?;
    let kernel = Metric::count_correct(scores, labels, &correct)?;
    kernel.submit(scores.device())?;
    Ok(correct.to_vec_u32_async().await?[0])
}
