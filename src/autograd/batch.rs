//! One batch size of a data set as the input of a graph: [`Batch::gather`] records the gather
//! (eagerly, or into a capture), [`Batch::input`] and [`Batch::labels`] are what the model
//! reads, and [`Batch::set_offset`] (or a [`BatchCursor`]) picks the batch before a (re)play.

use std::sync::Arc;

use super::{Recording, Var};
use crate::Result;
use crate::data::gpu::{GpuDataset, Normalization};
use crate::graph::Op;
use crate::kernels::gather::{BatchSource, GatherOp};
use crate::kernels::loss::Labels;
use crate::tensor::{DType, Tensor};

/// One batch size of a data set, as the input of an autograd graph: [`Batch::gather`] records
/// the gather (eagerly, or into a capture), [`Batch::input`] and [`Batch::labels`] are what the
/// model reads, and [`Batch::set_offset`] picks the batch before a (re)play.
#[derive(Debug)]
pub struct Batch {
    source: Arc<BatchSource>,
    x: Tensor,
    y: Tensor,
}

impl Batch {
    /// Examples per batch.
    pub fn rows(&self) -> usize {
        self.source.rows
    }

    /// Selects the batch that starts at `offset` in the order, for the next gather or replay.
    pub fn set_offset(&self, offset: usize) -> Result<()> {
        self.source.set_offset(offset)
    }

    /// Records gathering the batch (at the offset set when it runs): the images normalised
    /// into [`Batch::input`], the labels into [`Batch::labels`].
    pub fn gather(&self) -> Result<()> {
        let mut recording = Recording::new(self.x.device());
        recording.op(Op::Gather(GatherOp {
            source: self.source.clone(),
            x: self.x.share(),
            y: self.y.share(),
        }));
        recording.submit()
    }

    /// The normalised images, `[rows, features]`, as a graph input (no gradient).
    pub fn input(&self) -> Result<Var> {
        Var::constant(self.x.share())
    }

    /// The labels.
    pub fn labels(&self) -> Result<Labels> {
        Labels::trusted(self.y.share(), self.source.classes)
    }

    /// A handle that only moves the batch's offset: keep it instead of the batch after a
    /// capture, so the plan may skip writing the gathered images when no kernel reads them.
    pub fn cursor(&self) -> BatchCursor {
        BatchCursor {
            source: self.source.clone(),
        }
    }
}

/// Moves a [`Batch`]'s offset (see [`Batch::cursor`]).
#[derive(Debug, Clone)]
pub struct BatchCursor {
    source: Arc<BatchSource>,
}

impl BatchCursor {
    /// Selects the batch that starts at `offset` in the order, for the next replay.
    pub fn set_offset(&self, offset: usize) -> Result<()> {
        self.source.set_offset(offset)
    }
}

impl GpuDataset {
    /// A batch of `rows` examples normalised with `norm`, reading this data set's buffers.
    pub fn batch(&self, rows: usize, norm: Normalization) -> Result<Batch> {
        let source = self.source(rows, norm)?;
        let device = self.pixels.device();
        Ok(Batch {
            x: Tensor::uninit(device, [rows, self.pixels_per_image])?,
            y: Tensor::uninit_of(device, [rows], DType::U32)?,
            source,
        })
    }
}
