//! The gather kernel (`shaders/gather.wgsl`): one batch of a data set's images, normalised,
//! and its labels, gathered on the device through the epoch's order. `BatchSource` is what
//! a batch reads, shared with the matmuls that gather their operand themselves in a fused
//! step.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use super::loss::Labels;
use super::step::{StepInput, StepValue};
use super::texels::{TexelFormat, TexelView};
use super::{Dispatch, Uniform, entry, grid};
use crate::device::{Encoder, ShaderSource};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/gather.wgsl`, after the shared `shaders/grid.wgsl` and `shaders/pixels.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "gather",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/pixels.wgsl"),
        include_str!("../../shaders/gather.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[("gather_batch", 5)],
};

crate::kernels::bindings! {
    /// The binding numbers of `shaders/gather.wgsl`, by the WGSL variable each names.
    bind:
    PIXELS = 0,
    LABELS = 1,
    ORDER = 2,
    BATCH_X = 3,
    BATCH_Y = 4,
    P = 5,
}

/// A data set's pixels as a texel view, built and filled once, shared by its batches; `None`
/// inside when the device's textures are too small for them.
pub(crate) type PixelTexels = Arc<OnceLock<Option<Arc<TexelView>>>>;

/// What a batch reads from its data set, shared by every kernel that reads the batch: the
/// gather, or (in a fused captured step) the matmuls that read pixels straight from the data
/// set. The batch's offset in the epoch's order is set before each replay.
#[derive(Debug)]
pub(crate) struct BatchSource {
    pub pixels: Tensor,
    pub labels: Tensor,
    pub order: Tensor,
    /// Examples in the data set.
    pub len: usize,
    /// Features (pixels) per example.
    pub features: usize,
    pub classes: usize,
    /// Examples per batch.
    pub rows: usize,
    pub scale: f32,
    pub shift: f32,
    pub(crate) offset: AtomicU32,
    pub(crate) pixel_texels: PixelTexels,
}

impl BatchSource {
    /// The data set's pixels as a texel view (`r32uint`, four pixels per texel), for kernels
    /// that fetch them instead of loading them from a storage buffer. Built and filled (one
    /// copy, queued) on first use; `None` when the device's textures are too small for them.
    pub fn pixel_texels(&self) -> Option<&TexelView> {
        self.pixel_texels
            .get_or_init(|| {
                let device = self.pixels.device();
                let view = TexelView::with_format(
                    device,
                    "data set pixels",
                    self.pixels.numel(),
                    TexelFormat::Word,
                )
                .ok()?;
                let mut encoder = device.encoder();
                view.fill(&mut encoder, &self.pixels);
                encoder.submit().ok()?;
                Some(Arc::new(view))
            })
            .as_deref()
    }

    /// The batch's first position in the order.
    pub fn offset(&self) -> u32 {
        self.offset.load(Ordering::Relaxed)
    }

    pub(crate) fn set_offset(&self, offset: usize) -> Result<()> {
        if offset + self.rows > self.len {
            return Err(Error::InvalidArgument(format!(
                "a batch of {} at offset {offset} runs past the {} examples",
                self.rows, self.len
            )));
        }
        self.offset.store(offset as u32, Ordering::Relaxed);
        Ok(())
    }
}

/// The `GatherParams` uniform of `shaders/gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct GatherParams {
    pub offset: u32,
    pub rows: u32,
    pub pixels: u32,
    pub _pad: u32,
    pub scale: f32,
    pub shift: f32,
    pub _pad1: [f32; 2],
}

/// The gather op of a capture: a batch's source and its output tensors.
#[derive(Debug)]
pub(crate) struct GatherOp {
    pub source: Arc<BatchSource>,
    pub x: Tensor,
    pub y: Tensor,
}

/// The gather of one batch size, with its output tensors; the offset changes per step.
#[derive(Debug)]
pub struct BatchGather {
    dispatch: Dispatch,
    params: Uniform,
    source: Arc<BatchSource>,
    /// The normalised images of the batch, `[rows, features]`.
    pub x: Tensor,
    /// The labels of the batch.
    pub y: Labels,
}

impl BatchGather {
    pub(crate) fn from_op(op: &GatherOp) -> Result<Self> {
        let name = "gather_batch";
        let source = op.source.clone();
        let device = source.pixels.device().clone();
        let params = GatherParams {
            offset: source.offset(),
            rows: source.rows as u32,
            pixels: source.features as u32,
            scale: source.scale,
            shift: source.shift,
            ..GatherParams::default()
        };
        let params = Uniform::new(&device, "gather params", bytemuck::bytes_of(&params))?;
        let pipeline = device.pipeline(&SHADER, name, &[])?;
        let entries = [
            entry(bind::PIXELS, &source.pixels),
            entry(bind::LABELS, &source.labels),
            entry(bind::ORDER, &source.order),
            entry(bind::BATCH_X, &op.x),
            entry(bind::BATCH_Y, &op.y),
            entry(bind::P, &params),
        ];
        let dispatch = Dispatch::new(
            &device,
            pipeline,
            name,
            &entries,
            grid(&device, name, source.rows * source.features)?,
        );
        Ok(Self {
            dispatch,
            params,
            x: op.x.share(),
            y: Labels::trusted(op.y.share(), source.classes)?,
            source,
        })
    }

    /// Records gathering the batch that starts at `offset` in the order. The offset reaches
    /// the device with the next submit: record one gather per submit.
    pub fn record(&mut self, encoder: &mut Encoder, offset: usize) -> Result<()> {
        self.source.set_offset(offset)?;
        self.record_current(encoder);
        Ok(())
    }

    /// Records the gather at the source's current offset (written now, queued).
    fn record_current(&self, encoder: &mut Encoder) {
        let device = self.source.pixels.device();
        device.write_buffer(self.params.buffer(), 0, &self.source.offset().to_le_bytes());
        self.record_dispatch(encoder);
    }

    /// Records the dispatch alone: the offset is what the parameters hold when it runs (the
    /// offset at lowering, or what a plan copies in from its table).
    pub(crate) fn record_dispatch(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }

    /// Where the gather reads the batch's offset.
    pub(crate) fn offset_input(&self) -> StepInput {
        StepInput {
            value: StepValue::BatchOffset(self.source.clone()),
            buffer: self.params.buffer().clone(),
            offset: std::mem::offset_of!(GatherParams, offset) as u64,
        }
    }
}
