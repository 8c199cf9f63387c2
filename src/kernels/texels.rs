//! Linear texel views: a tensor's bytes as a texture, for kernels that read their operands
//! through texel fetches (on lavapipe several times cheaper than storage-buffer loads, see
//! `shaders/matmul_broadcast.wgsl`).
//!
//! Texel `i` of a view holds elements `4i..4i+3` of an f32 tensor (`rgba32float`), or element
//! `i` of a u32 tensor (`r32uint`), and lies at `(i mod 2^TEXEL_SHIFT, i >> TEXEL_SHIFT)`, so
//! the tensor's bytes and the texture's rows are the same sequence: filling a view is a copy
//! command (two: the full rows, then the partial last one), not a dispatch. Views are read
//! only: kernels store their results into buffers, which on lavapipe is twice as fast as a
//! storage-texture store.

use crate::device::{Device, Encoder};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// log2 of the texels per row of every view (the WGSL side's `TEXEL_SHIFT`).
pub(crate) const TEXEL_SHIFT: u32 = 11;
/// Texels per row: 2048 (a whole number of the 256-byte rows copies align to).
const ROW_TEXELS: u32 = 1 << TEXEL_SHIFT;

/// Whether `device`'s textures hold a view of `elements` f32 values.
pub(crate) fn fits(device: &Device, elements: usize) -> bool {
    let rows = elements.div_ceil(4).div_ceil(ROW_TEXELS as usize);
    rows <= device.limits().max_texture_dimension_2d as usize
}

/// What one texel holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TexelFormat {
    /// Four f32 values (`rgba32float`).
    Float4,
    /// One u32 value (`r32uint`).
    Word,
}

impl TexelFormat {
    fn elements(self) -> usize {
        match self {
            TexelFormat::Float4 => 4,
            TexelFormat::Word => 1,
        }
    }

    fn bytes(self) -> u32 {
        4 * self.elements() as u32
    }

    fn wgpu(self) -> wgpu::TextureFormat {
        match self {
            TexelFormat::Float4 => wgpu::TextureFormat::Rgba32Float,
            TexelFormat::Word => wgpu::TextureFormat::R32Uint,
        }
    }
}

/// A texture holding a copy of one tensor's elements.
#[derive(Debug)]
pub(crate) struct TexelView {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    texels: u32,
    format: TexelFormat,
}

impl TexelView {
    /// A view of `elements` f32 values (a multiple of 4), or [`Error::TooLarge`] naming
    /// `max_texture_dimension_2d` when the device's textures are too small for it.
    pub fn new(device: &Device, what: &str, elements: usize) -> Result<Self> {
        Self::with_format(device, what, elements, TexelFormat::Float4)
    }

    /// A view of `elements` values in `format` (a whole number of texels).
    pub fn with_format(
        device: &Device,
        what: &str,
        elements: usize,
        format: TexelFormat,
    ) -> Result<Self> {
        let per_texel = format.elements();
        if !elements.is_multiple_of(per_texel) {
            return Err(Error::InvalidArgument(format!(
                "{what}: a texel view holds {per_texel} values per texel, not a whole number \
                 in {elements} values"
            )));
        }
        let texels = u32::try_from(elements / per_texel).map_err(|_| Error::TooLarge {
            what: what.to_string(),
            requested: format!("{elements} values"),
            limit: format!("{} values", 4 * u64::from(u32::MAX)),
            limit_name: "max_texture_dimension_2d",
        })?;
        let height = texels.div_ceil(ROW_TEXELS).max(1);
        let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
        let texture = device.create_texture_2d(what, ROW_TEXELS, height, format.wgpu(), usage)?;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            texture,
            view,
            texels,
            format,
        })
    }

    /// The texture view to bind.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// Records copying `tensor`'s elements into the view.
    pub fn fill(&self, encoder: &mut Encoder, tensor: &Tensor) {
        debug_assert_eq!(tensor.numel(), self.elements());
        for (buffer, texture, size) in self.regions(tensor.buffer()) {
            encoder.copy_buffer_to_texture(buffer, texture, size);
        }
        encoder.keep_alive(std::slice::from_ref(tensor.storage()));
    }

    fn elements(&self) -> usize {
        self.texels as usize * self.format.elements()
    }

    /// The copy regions: every full row of texels, then the partial last row.
    fn regions<'a>(
        &'a self,
        buffer: &'a wgpu::Buffer,
    ) -> impl Iterator<
        Item = (
            wgpu::TexelCopyBufferInfo<'a>,
            wgpu::TexelCopyTextureInfo<'a>,
            wgpu::Extent3d,
        ),
    > {
        let full_rows = self.texels / ROW_TEXELS;
        let rest = self.texels % ROW_TEXELS;
        let row_bytes = ROW_TEXELS * self.format.bytes();
        [(0, ROW_TEXELS, full_rows), (full_rows, rest, 1)]
            .into_iter()
            .filter(|&(_, width, height)| width > 0 && height > 0)
            .map(move |(row, width, height)| {
                let source = wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: u64::from(row) * u64::from(row_bytes),
                        bytes_per_row: Some(row_bytes),
                        rows_per_image: None,
                    },
                };
                let texture = wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y: row, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                };
                let size = wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                };
                (source, texture, size)
            })
    }
}
