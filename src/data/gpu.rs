//! A labelled image set on the device, and batches gathered from it on the device.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use crate::autograd::{Recording, Var};
use crate::capture::Op;
use crate::device::{Device, Encoder, ShaderSource};
use crate::kernels::loss::Labels;
use crate::kernels::texels::{TexelFormat, TexelView};
use crate::kernels::{Dispatch, Uniform, entry, grid};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/data.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "data",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/pixels.wgsl"),
        include_str!("../../shaders/data.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[("gather_batch", 5)],
};

crate::kernels::bindings! {
    /// The binding numbers of `shaders/data.wgsl`, by the WGSL variable each names.
    bind:
    PIXELS = 0,
    LABELS = 1,
    ORDER = 2,
    BATCH_X = 3,
    BATCH_Y = 4,
    P = 5,
}

/// Input normalisation `(x/255 − mean) / std`; the lecture's is mean 0.5, std 0.5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Subtracted after scaling to [0, 1].
    pub mean: f32,
    /// Divided by after subtracting the mean.
    pub std: f32,
}

impl Default for Normalization {
    fn default() -> Self {
        Self {
            mean: 0.5,
            std: 0.5,
        }
    }
}

impl Normalization {
    /// `(scale, shift)` with `x = byte · scale + shift`.
    pub fn scale_shift(&self) -> (f32, f32) {
        let scale = (1.0 / (255.0 * f64::from(self.std))) as f32;
        let shift = (-f64::from(self.mean) / f64::from(self.std)) as f32;
        (scale, shift)
    }
}

/// Images (bytes) and labels uploaded once, plus a per-epoch order.
#[derive(Debug)]
pub struct GpuDataset {
    pixels: Tensor,
    labels: Tensor,
    order: Tensor,
    len: usize,
    pixels_per_image: usize,
    classes: usize,
    /// The pixels as a texel view, built on first use (see [`BatchSource::pixel_texels`]).
    pixel_texels: PixelTexels,
}

/// A data set's pixels as a texel view, built and filled once, shared by its batches; `None`
/// inside when the device's textures are too small for them.
type PixelTexels = Arc<OnceLock<Option<Arc<TexelView>>>>;

impl GpuDataset {
    /// Uploads `images` (`len × pixels_per_image` bytes) and `labels` (each below `classes`).
    pub fn new(
        device: &Device,
        images: &[u8],
        labels: &[u8],
        pixels_per_image: usize,
        classes: usize,
    ) -> Result<Self> {
        let len = labels.len();
        if pixels_per_image == 0 {
            return Err(Error::InvalidArgument(
                "an example needs at least one feature".into(),
            ));
        }
        if len.checked_mul(pixels_per_image) != Some(images.len()) {
            return Err(Error::shape(
                "GpuDataset",
                format!("{len} images of {pixels_per_image} bytes"),
                format!("{} bytes", images.len()),
            ));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| usize::from(**l) >= classes)
        {
            return Err(Error::InvalidArgument(format!(
                "label {l} at index {i} is out of range for {classes} classes"
            )));
        }
        let mut padded = images.to_vec();
        padded.resize(images.len().next_multiple_of(4), 0);
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&padded);
        let pixels = Tensor::from_u32(device, &words, [words.len()])?;
        let labels_u32: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        let labels = Tensor::from_u32(device, &labels_u32, [len])?;
        let identity: Vec<u32> = (0..len as u32).collect();
        let order = Tensor::from_u32(device, &identity, [len])?;
        Ok(Self {
            pixels,
            labels,
            order,
            len,
            pixels_per_image,
            classes,
            pixel_texels: PixelTexels::default(),
        })
    }

    /// Examples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Pixels (features) per example.
    pub fn features(&self) -> usize {
        self.pixels_per_image
    }

    /// Sets the order in which batches visit the examples (a permutation; queued, no sync).
    pub fn set_order(&self, order: &[u32]) -> Result<()> {
        if order.len() != self.len || order.iter().any(|&i| i as usize >= self.len) {
            return Err(Error::InvalidArgument(format!(
                "the order must be a permutation of 0..{}",
                self.len
            )));
        }
        let bytes: &[u8] = bytemuck::cast_slice(order);
        self.order
            .device()
            .write_buffer(self.order.buffer(), 0, bytes);
        Ok(())
    }
}

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
    offset: AtomicU32,
    pixel_texels: PixelTexels,
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

    fn set_offset(&self, offset: usize) -> Result<()> {
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

    fn source(&self, rows: usize, norm: Normalization) -> Result<Arc<BatchSource>> {
        if rows == 0 || rows > self.len {
            return Err(Error::InvalidArgument(format!(
                "a batch of {rows} from {} examples",
                self.len
            )));
        }
        let (scale, shift) = norm.scale_shift();
        Ok(Arc::new(BatchSource {
            pixels: self.pixels.share(),
            labels: self.labels.share(),
            order: self.order.share(),
            len: self.len,
            features: self.pixels_per_image,
            classes: self.classes,
            rows,
            scale,
            shift,
            offset: AtomicU32::new(0),
            pixel_texels: Arc::clone(&self.pixel_texels),
        }))
    }
}

/// The `GatherParams` uniform of `shaders/data.wgsl`.
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
    /// Prepares gathering `rows` examples from `data`, normalised with `norm`.
    pub fn new(data: &GpuDataset, rows: usize, norm: Normalization) -> Result<Self> {
        let source = data.source(rows, norm)?;
        let device = data.pixels.device();
        let x = Tensor::uninit(device, [rows, data.pixels_per_image])?;
        let y = Tensor::uninit_of(device, [rows], DType::U32)?;
        Self::from_op(&GatherOp { source, x, y })
    }

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

    /// Records the gather at the source's current offset.
    pub(crate) fn record_current(&self, encoder: &mut Encoder) {
        let device = self.source.pixels.device();
        device.write_buffer(self.params.buffer(), 0, &self.source.offset().to_le_bytes());
        self.dispatch.record(encoder);
    }
}
