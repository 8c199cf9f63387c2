//! A labelled image set on the device: its bytes and labels uploaded once, and the epoch's
//! order. Batches are gathered from it by the gather kernel (`kernels::gather`) and enter a
//! graph as [`Batch`](crate::autograd::Batch)es.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use crate::device::Device;
use crate::kernels::gather::{BatchGather, BatchSource, GatherOp, PixelTexels};
use crate::tensor::DType;
use crate::tensor::Tensor;
use crate::{Error, Result};

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
    pub(crate) pixels: Tensor,
    labels: Tensor,
    order: Tensor,
    len: usize,
    pub(crate) pixels_per_image: usize,
    classes: usize,
    /// The pixels as a texel view, built on first use (see [`BatchSource::pixel_texels`]).
    pixel_texels: PixelTexels,
}

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

impl GpuDataset {
    /// What a batch of `rows` examples normalised with `norm` reads from this data set.
    pub(crate) fn source(&self, rows: usize, norm: Normalization) -> Result<Arc<BatchSource>> {
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

impl BatchGather {
    /// Prepares gathering `rows` examples from `data`, normalised with `norm`.
    pub fn new(data: &GpuDataset, rows: usize, norm: Normalization) -> Result<Self> {
        let source = data.source(rows, norm)?;
        let device = data.pixels.device();
        let x = Tensor::uninit(device, [rows, data.pixels_per_image])?;
        let y = Tensor::uninit_of(device, [rows], DType::U32)?;
        Self::from_op(&GatherOp { source, x, y })
    }
}
