//! A labelled image set on the device, and batches gathered from it on the device.

use crate::device::{Device, Encoder, ShaderSource};
use crate::kernels::loss::Labels;
use crate::kernels::{Dispatch, entry, grid};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/data.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "data",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/data.wgsl")
    ),
};

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

/// The gather of one batch size, with its output tensors; the offset changes per step.
#[derive(Debug)]
pub struct BatchGather {
    dispatch: Dispatch,
    params: wgpu::Buffer,
    words: [u32; 8],
    /// The normalised images of the batch, `[rows, features]`.
    pub x: Tensor,
    /// The labels of the batch.
    pub y: Labels,
    device: Device,
    /// Examples in the data set, to bound the offset.
    len: usize,
}

impl BatchGather {
    /// Prepares gathering `rows` examples from `data`, normalised with `norm`.
    pub fn new(data: &GpuDataset, rows: usize, norm: Normalization) -> Result<Self> {
        let op = "gather_batch";
        let device = data.pixels.device().clone();
        if rows == 0 || rows > data.len {
            return Err(Error::InvalidArgument(format!(
                "a batch of {rows} from {} examples",
                data.len
            )));
        }
        let x = Tensor::uninit(&device, [rows, data.pixels_per_image])?;
        let y = Tensor::uninit_of(&device, [rows], DType::U32)?;
        let (scale, shift) = norm.scale_shift();
        let words = [
            0,
            rows as u32,
            data.pixels_per_image as u32,
            0,
            scale.to_bits(),
            shift.to_bits(),
            0,
            0,
        ];
        let params = device.uniform_buffer("gather params", bytemuck::cast_slice(&words));
        let pipeline = device.pipeline(&SHADER, op, &[])?;
        let entries = [
            entry(0, &data.pixels),
            entry(1, &data.labels),
            entry(2, &data.order),
            entry(3, &x),
            entry(4, &y),
            entry(5, params.as_entire_binding()),
        ];
        let dispatch = Dispatch::new(
            &device,
            pipeline,
            op,
            &entries,
            grid(&device, op, rows * data.pixels_per_image, 64)?,
        );
        let y = Labels::trusted(y, data.classes)?;
        Ok(Self {
            dispatch,
            params,
            words,
            x,
            y,
            device,
            len: data.len,
        })
    }

    /// Records gathering the batch that starts at `offset` in the order. The offset reaches
    /// the device with the next submit: record one gather per submit.
    pub fn record(&mut self, encoder: &mut Encoder, offset: usize) -> Result<()> {
        let rows = self.words[1] as usize;
        if offset + rows > self.len {
            return Err(Error::InvalidArgument(format!(
                "a batch of {rows} at offset {offset} runs past the {} examples",
                self.len
            )));
        }
        self.words[0] = offset as u32;
        self.device
            .write_buffer(&self.params, 0, bytemuck::cast_slice(&self.words));
        self.dispatch.record(encoder);
        Ok(())
    }
}
