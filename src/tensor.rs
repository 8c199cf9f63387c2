//! GPU tensors: an f32 device buffer with a row-major shape.

use std::fmt;
use std::sync::Arc;

use crate::device::{Device, Storage, TENSOR_USAGE};
pub use crate::dtype::DType;
use crate::{Error, Result};

/// A row-major shape: `[rows, cols]` for a matrix, `[n]` for a vector.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// The number of elements (1 for a scalar shape `[]`), or `None` when the product of
    /// the dimensions does not fit in a `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The number of elements (1 for a scalar shape `[]`), saturating at `usize::MAX` for a
    /// shape whose product does not fit (no tensor can have such a shape: creating one is
    /// [`Error::TooLarge`]).
    pub fn numel(&self) -> usize {
        self.checked_numel().unwrap_or(usize::MAX)
    }

    /// The bytes of `element_size`-byte elements in this shape, or `None` on overflow.
    pub fn checked_bytes(&self, element_size: u64) -> Option<u64> {
        u64::try_from(self.checked_numel()?)
            .ok()?
            .checked_mul(element_size)
    }

    /// `(rows, cols)` of a 2-D shape, or a shape error naming `op`.
    pub fn dims2(&self, op: &str) -> Result<(usize, usize)> {
        match self.0[..] {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::shape(op, "a 2-D shape [rows, cols]", self)),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape(dims.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
}

/// A tensor living in a device buffer: 4-byte elements (see [`DType`]), row-major shape.
///
/// Dropping a tensor returns its buffer to the device's pool, so a loop that allocates the
/// same shapes every iteration allocates device memory only once. The buffer goes back only
/// when nothing uses it any more: prepared kernels and encoders that bind a tensor hold its
/// storage until they are dropped or submitted, so a recycled buffer is never aliased.
pub struct Tensor {
    shape: Shape,
    dtype: DType,
    storage: Arc<Storage>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl Tensor {
    /// The byte size of a tensor of `shape`, or [`Error::TooLarge`] naming the shape when its
    /// element count overflows or exceeds what kernels can index (u32).
    pub(crate) fn bytes_for(shape: &Shape) -> Result<u64> {
        let too_large = |requested: String| Error::TooLarge {
            what: format!("a tensor of shape {shape}"),
            requested,
            limit: format!("{} elements", u32::MAX),
            limit_name: "u32 element indexing",
        };
        let Some(numel) = shape.checked_numel() else {
            return Err(too_large(format!(
                "more than {} elements (the product of its dimensions overflows)",
                usize::MAX
            )));
        };
        // Kernels index elements with u32.
        if u64::try_from(numel).map_or(true, |n| n > u64::from(u32::MAX)) {
            return Err(too_large(format!("{numel} elements")));
        }
        shape
            .checked_bytes(4)
            .ok_or_else(|| too_large(format!("{numel} elements")))
    }

    /// An f32 tensor whose contents are unspecified (a recycled buffer); for kernel outputs
    /// that overwrite every element.
    pub fn uninit(device: &Device, shape: impl Into<Shape>) -> Result<Self> {
        Self::uninit_of(device, shape, DType::F32)
    }

    /// Like [`Tensor::uninit`], of any element type.
    pub fn uninit_of(device: &Device, shape: impl Into<Shape>, dtype: DType) -> Result<Self> {
        let shape = shape.into();
        let bytes = Self::bytes_for(&shape)?;
        let what = format!("a tensor of shape {shape}");
        let buffer = device.acquire_buffer(&what, bytes, TENSOR_USAGE)?;
        Ok(Self {
            shape,
            dtype,
            storage: Storage::new(device, buffer),
        })
    }

    /// An f32 tensor of zeros (cleared on the device: one submit, no host sync).
    pub fn zeros(device: &Device, shape: impl Into<Shape>) -> Result<Self> {
        Self::zeros_of(device, shape, DType::F32)
    }

    /// Like [`Tensor::zeros`], of any element type.
    pub fn zeros_of(device: &Device, shape: impl Into<Shape>, dtype: DType) -> Result<Self> {
        let tensor = Self::uninit_of(device, shape, dtype)?;
        let mut encoder = device.encoder();
        encoder.clear_buffer(tensor.buffer(), 0, tensor.byte_len());
        encoder.submit()?;
        Ok(tensor)
    }

    /// Uploads `data` as an f32 tensor of `shape` (no host sync).
    pub fn from_slice(device: &Device, data: &[f32], shape: impl Into<Shape>) -> Result<Self> {
        Self::upload(
            device,
            bytemuck::cast_slice(data),
            data.len(),
            shape.into(),
            DType::F32,
        )
    }

    /// Uploads `data` as a u32 tensor of `shape` (no host sync).
    pub fn from_u32(device: &Device, data: &[u32], shape: impl Into<Shape>) -> Result<Self> {
        Self::upload(
            device,
            bytemuck::cast_slice(data),
            data.len(),
            shape.into(),
            DType::U32,
        )
    }

    fn upload(
        device: &Device,
        bytes: &[u8],
        len: usize,
        shape: Shape,
        dtype: DType,
    ) -> Result<Self> {
        // A shape too large for any tensor is that error, not a length mismatch.
        Self::bytes_for(&shape)?;
        if len != shape.numel() {
            return Err(Error::shape(
                "Tensor upload",
                format!("{} values for shape {shape}", shape.numel()),
                format!("{len} values"),
            ));
        }
        let tensor = Self::uninit_of(device, shape, dtype)?;
        device.write_buffer(tensor.buffer(), 0, bytes);
        Ok(tensor)
    }

    /// Overwrites the contents of an f32 tensor with `data`, which must have as many values as
    /// the tensor (queued; no host sync).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        self.expect_dtype("Tensor::write", DType::F32)?;
        if data.len() != self.numel() {
            return Err(Error::shape(
                "Tensor::write",
                format!("{} values for shape {}", self.numel(), self.shape),
                format!("{} values", data.len()),
            ));
        }
        self.device()
            .write_buffer(self.buffer(), 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Copies an f32 tensor to the host: one submit and one host sync.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        crate::device::block_on(self.to_vec_async())
    }

    /// Copies a u32 tensor to the host: one submit and one host sync.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        crate::device::block_on(self.to_vec_u32_async())
    }

    /// `Tensor::to_vec` without blocking the thread: the form for the browser, and the one
    /// the blocking form runs.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        self.expect_dtype("Tensor::to_vec", DType::F32)?;
        self.device()
            .read_buffer_async(self.buffer(), 0, self.byte_len())
            .await
    }

    /// `Tensor::to_vec_u32` without blocking the thread.
    pub async fn to_vec_u32_async(&self) -> Result<Vec<u32>> {
        self.expect_dtype("Tensor::to_vec_u32", DType::U32)?;
        self.device()
            .read_buffer_async(self.buffer(), 0, self.byte_len())
            .await
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// An error naming `op` unless the tensor holds `dtype`.
    pub fn expect_dtype(&self, op: &str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op: op.to_string(),
                expected: dtype,
                found: self.dtype,
            });
        }
        Ok(())
    }

    /// The same data under another shape with as many elements.
    pub fn reshape(mut self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "Tensor::reshape",
                format!("a shape with {} elements like {}", self.numel(), self.shape),
                &shape,
            ));
        }
        self.shape = shape;
        Ok(self)
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> &Device {
        self.storage.device()
    }

    /// Another handle on the same device buffer, not a copy (a PyTorch tensor's second name):
    /// a write through either is seen through both, and the buffer lives as long as either.
    /// Autograd hands out gradients this way, and a batch buffer that is refilled every step
    /// can be wrapped in a graph leaf without copying it.
    pub fn share(&self) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            dtype: self.dtype,
            storage: Arc::clone(&self.storage),
        }
    }

    /// The storage, for kernels that must keep it alive while they bind it.
    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// Bytes of data (the buffer may be larger: sizes are rounded up for reuse).
    pub fn byte_len(&self) -> u64 {
        self.numel() as u64 * 4
    }

    /// The device buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buffer()
    }

    /// A binding of exactly the tensor's bytes, so `arrayLength` in WGSL is the element count.
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: 0,
            size: wgpu::BufferSize::new(self.byte_len().max(4)),
        })
    }
}

impl Device {
    /// Checks that a tensor of `shape` fits the device, before anything (on the device or the
    /// host) is allocated for it: [`Error::TooLarge`] when its element count overflows or
    /// passes u32 indexing, or its buffer passes the device's limits. Returns its bytes.
    pub fn check_tensor_size(&self, shape: &Shape) -> Result<u64> {
        let bytes = Tensor::bytes_for(shape)?;
        self.check_buffer_size(
            &format!("a tensor of shape {shape}"),
            crate::device::buffer_size(bytes),
            true,
        )?;
        Ok(bytes)
    }
}
