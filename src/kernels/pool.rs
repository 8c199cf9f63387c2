//! 2-D pooling in NCHW on the device (`shaders/pool.wgsl`), as PyTorch's `nn.MaxPool2d` and
//! `nn.AvgPool2d` (floor mode; average pooling counts the padding): the forward passes, max
//! pooling saving the index each output took, and the backward passes as gathers (each input's
//! gradient one fixed-order sum over the windows that cover it: no atomics, the same bits on
//! every run).

use super::{Dispatch, Record, Uniform, entry, grid};
use crate::device::{Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/pool.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "pool",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/pool.wgsl")
    ),
    storage_buffers: &[
        ("max_pool_forward", 3),
        ("max_pool_backward", 3),
        ("avg_pool_forward", 2),
        ("avg_pool_backward", 2),
    ],
};

super::bindings! {
    /// The binding numbers of `shaders/pool.wgsl`, by the WGSL variable each names.
    bind:
    X = 0,
    Y = 1,
    ARGMAX = 2,
    DY = 3,
    DX = 4,
    P = 5,
}

/// A pooling window: kernel, stride and padding, each `(rows, columns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// The window's height and width.
    pub kernel: (usize, usize),
    /// Steps between windows.
    pub stride: (usize, usize),
    /// Padding on each side (never chosen by max pooling).
    pub padding: (usize, usize),
}

impl Pool2d {
    /// A square `size × size` window moving by its own size, no padding: `nn.MaxPool2d(size)`.
    pub fn square(size: usize) -> Self {
        Self {
            kernel: (size, size),
            stride: (size, size),
            padding: (0, 0),
        }
    }

    /// The output's height and width for an input of `height × width`: `(in + 2·padding −
    /// kernel) / stride + 1`; `None` when the window does not fit, a stride is 0, or the
    /// padding is more than half the kernel (PyTorch refuses it: a window could then see
    /// padding only).
    pub fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        let side = |input: usize, kernel: usize, stride: usize, padding: usize| {
            let padded = input + 2 * padding;
            (kernel > 0 && stride > 0 && 2 * padding <= kernel && padded >= kernel)
                .then(|| (padded - kernel) / stride + 1)
        };
        Some((
            side(height, self.kernel.0, self.stride.0, self.padding.0)?,
            side(width, self.kernel.1, self.stride.1, self.padding.1)?,
        ))
    }
}

/// A pooling's shapes: the input `[batch, channels, height, width]`, the window and the
/// output's height and width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels (each pooled on its own).
    pub channels: usize,
    /// The input's height and width.
    pub in_size: (usize, usize),
    /// The output's height and width.
    pub out_size: (usize, usize),
    /// The window.
    pub pool: Pool2d,
}

impl Pool2dGeometry {
    /// Checks an NCHW input shape against the window: an error naming both when the input is
    /// not 4-D or the window does not fit it (or has a zero stride or too much padding).
    pub fn new(input: &[usize], pool: Pool2d) -> Result<Self> {
        let &[batch, channels, height, width] = input else {
            return Err(Error::shape(
                "pool2d",
                "an NCHW input [batch, channels, height, width]",
                format!("{input:?}"),
            ));
        };
        let out_size = pool.output_size(height, width).ok_or_else(|| {
            Error::shape(
                "pool2d",
                format!(
                    "an input at least {}×{} with padding {:?} for a window of kernel {:?}, \
                     stride {:?} (stride ≥ 1, padding ≤ half the kernel)",
                    pool.kernel.0.saturating_sub(2 * pool.padding.0),
                    pool.kernel.1.saturating_sub(2 * pool.padding.1),
                    pool.padding,
                    pool.kernel,
                    pool.stride,
                ),
                format!("{input:?}"),
            )
        })?;
        Ok(Self {
            batch,
            channels,
            in_size: (height, width),
            out_size,
            pool,
        })
    }

    /// `[batch, channels, out_h, out_w]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_size.0, self.out_size.1]
    }

    /// `[batch, channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.in_size.0, self.in_size.1]
    }

    /// Planes pooled (batch × channels).
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }
}

/// Which of the pooling kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolPass {
    /// Max pooling: the output and the index each output took.
    MaxForward,
    /// Max pooling's input gradient, from the saved indices.
    MaxBackward,
    /// Average pooling.
    AvgForward,
    /// Average pooling's input gradient.
    AvgBackward,
}

impl PoolPass {
    fn entry_point(self) -> &'static str {
        match self {
            PoolPass::MaxForward => "max_pool_forward",
            PoolPass::MaxBackward => "max_pool_backward",
            PoolPass::AvgForward => "avg_pool_forward",
            PoolPass::AvgBackward => "avg_pool_backward",
        }
    }

    /// Whether the pass reads the output's gradient and writes the input's.
    pub fn is_backward(self) -> bool {
        matches!(self, PoolPass::MaxBackward | PoolPass::AvgBackward)
    }

    /// Whether the pass writes (forward) or reads (backward) the indices of the maxima.
    pub fn uses_argmax(self) -> bool {
        matches!(self, PoolPass::MaxForward | PoolPass::MaxBackward)
    }
}

/// The `PoolParams` uniform of `shaders/pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PoolParams {
    pub planes: u32,
    pub height: u32,
    pub width: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub count: u32,
}

/// A prepared pooling dispatch.
#[derive(Debug)]
pub struct PoolKernel {
    dispatch: Dispatch,
}

impl PoolKernel {
    /// Prepares `pass` of `geometry`: `input` is the input (forward) or the output's gradient
    /// (backward), `out` the output or the input's gradient, `argmax` the indices of the
    /// maxima (`u32`, the output's shape) for the max passes.
    pub fn new(
        pass: PoolPass,
        geometry: &Pool2dGeometry,
        input: &Tensor,
        argmax: Option<&Tensor>,
        out: &Tensor,
    ) -> Result<Self> {
        let name = pass.entry_point();
        let (input_shape, out_shape) = if pass.is_backward() {
            (geometry.output_shape(), geometry.input_shape())
        } else {
            (geometry.input_shape(), geometry.output_shape())
        };
        for (tensor, shape) in [(input, input_shape), (out, out_shape)] {
            tensor.expect_dtype(name, DType::F32)?;
            if tensor.shape().dims() != shape {
                return Err(Error::shape(name, format!("{shape:?}"), tensor.shape()));
            }
        }
        let argmax = match (pass.uses_argmax(), argmax) {
            (true, Some(argmax)) => {
                argmax.expect_dtype(name, DType::U32)?;
                if argmax.shape().dims() != geometry.output_shape() {
                    return Err(Error::shape(
                        name,
                        format!("indices {:?}", geometry.output_shape()),
                        argmax.shape(),
                    ));
                }
                Some(argmax)
            }
            (true, None) => {
                return Err(Error::InvalidArgument(format!(
                    "{name} needs the indices of the maxima"
                )));
            }
            (false, _) => None,
        };
        let device = input.device();
        let count = out.numel();
        let g = geometry;
        let params = PoolParams {
            planes: g.planes() as u32,
            height: g.in_size.0 as u32,
            width: g.in_size.1 as u32,
            out_h: g.out_size.0 as u32,
            out_w: g.out_size.1 as u32,
            kernel_h: g.pool.kernel.0 as u32,
            kernel_w: g.pool.kernel.1 as u32,
            stride_h: g.pool.stride.0 as u32,
            stride_w: g.pool.stride.1 as u32,
            pad_h: g.pool.padding.0 as u32,
            pad_w: g.pool.padding.1 as u32,
            count: count as u32,
        };
        let uniform = Uniform::new(device, "pool params", bytemuck::bytes_of(&params))?;
        let pipeline = device.pipeline(&SHADER, name, &[])?;
        let (input_binding, out_binding) = if pass.is_backward() {
            (bind::DY, bind::DX)
        } else {
            (bind::X, bind::Y)
        };
        let mut entries = vec![
            entry(input_binding, input),
            entry(out_binding, out),
            entry(bind::P, &uniform),
        ];
        if let Some(argmax) = argmax {
            entries.push(entry(bind::ARGMAX, argmax));
        }
        let dispatch = Dispatch::new(device, pipeline, name, &entries, grid(device, name, count)?);
        Ok(Self { dispatch })
    }

    /// Records the dispatch.
    pub fn record(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }
}

/// Max pooling of the NCHW `x` into a new tensor, with the flat index in `x` each output took
/// (the first maximum of its window in row-major order; a NaN wins), submitted.
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> Result<(Tensor, Tensor)> {
    let geometry = Pool2dGeometry::new(x.shape().dims(), pool)?;
    let y = Tensor::uninit(x.device(), geometry.output_shape())?;
    let argmax = Tensor::uninit_of(x.device(), geometry.output_shape(), DType::U32)?;
    PoolKernel::new(PoolPass::MaxForward, &geometry, x, Some(&argmax), &y)?.submit(x.device())?;
    Ok((y, argmax))
}

/// The input gradient of [`max_pool2d`] from the output's gradient `dy` and the saved
/// indices, submitted.
pub fn max_pool2d_backward(
    dy: &Tensor,
    argmax: &Tensor,
    geometry: &Pool2dGeometry,
) -> Result<Tensor> {
    let dx = Tensor::uninit(dy.device(), geometry.input_shape())?;
    PoolKernel::new(PoolPass::MaxBackward, geometry, dy, Some(argmax), &dx)?.submit(dy.device())?;
    Ok(dx)
}

/// Average pooling of the NCHW `x` into a new tensor (the padding counted as zeros),
/// submitted.
pub fn avg_pool2d(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    let geometry = Pool2dGeometry::new(x.shape().dims(), pool)?;
    let y = Tensor::uninit(x.device(), geometry.output_shape())?;
    PoolKernel::new(PoolPass::AvgForward, &geometry, x, None, &y)?.submit(x.device())?;
    Ok(y)
}

/// The input gradient of [`avg_pool2d`] from the output's gradient `dy`, submitted.
pub fn avg_pool2d_backward(dy: &Tensor, geometry: &Pool2dGeometry) -> Result<Tensor> {
    let dx = Tensor::uninit(dy.device(), geometry.input_shape())?;
    PoolKernel::new(PoolPass::AvgBackward, geometry, dy, None, &dx)?.submit(dy.device())?;
    Ok(dx)
}
