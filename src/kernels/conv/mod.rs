//! 2-D convolution in NCHW (PyTorch's `nn.Conv2d`: cross-correlation, stride, zero padding,
//! dilation, one group) on the device, as products: the forward pass with its bias, the input
//! gradient as a gather (a transposed convolution: each input's gradient one fixed-order sum,
//! no atomics), the weight gradient and the bias gradient. Three kernels compute them: the
//! plain matmul families' implicit GEMM (`CONV` in `shaders/matmul.wgsl`; `Blocked` anywhere,
//! `Tiled` for GPUs) and, on CPU devices with subgroups, `broadcast.rs`. Each output is one fma
//! chain in k order whichever kernel runs it, so the results do not depend on the choice.

pub(crate) mod broadcast;

use super::activation::{Activation, ActivationState};
use super::matmul::{Matmul, MatmulKernel, MatmulOptions};
use crate::device::Profile;
use crate::kernels::Record;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Stride, zero padding and dilation of a convolution, each `(rows, columns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Steps between output positions; at least 1.
    pub stride: (usize, usize),
    /// Zeros added on each side.
    pub padding: (usize, usize),
    /// Steps between kernel taps; at least 1.
    pub dilation: (usize, usize),
    /// Force a kernel family (`Blocked`, `Tiled`, or `Broadcast` for `conv/broadcast.rs`);
    /// `None` chooses by the device profile.
    pub kernel: Option<MatmulKernel>,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            kernel: None,
        }
    }
}

/// A convolution's shapes: the input `[batch, in_channels, in_h, in_w]`, the weight
/// `[out_channels, in_channels, kernel_h, kernel_w]`, the output `[batch, out_channels,
/// out_h, out_w]`, and the options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of the input (and of each filter).
    pub in_channels: usize,
    /// The input's height and width.
    pub in_size: (usize, usize),
    /// Filters, the output's channels.
    pub out_channels: usize,
    /// The kernel's height and width.
    pub kernel: (usize, usize),
    /// The output's height and width.
    pub out_size: (usize, usize),
    /// Stride, padding, dilation and the family forced.
    pub options: Conv2dOptions,
}

impl Conv2dGeometry {
    /// Checks an input shape and a weight shape against each other and the options; the
    /// errors name both shapes and what does not fit.
    pub fn new(input: &[usize], weight: &[usize], options: Conv2dOptions) -> Result<Self> {
        let op = "conv2d";
        let both = || format!("input {input:?} and weight {weight:?}");
        let (&[batch, in_channels, in_h, in_w], &[out_channels, weight_in, kernel_h, kernel_w]) =
            (input, weight)
        else {
            return Err(Error::shape(
                op,
                "input [batch, channels, height, width] and weight [out, in, kh, kw]",
                both(),
            ));
        };
        if weight_in != in_channels {
            return Err(Error::shape(
                op,
                format!("a weight of {in_channels} input channels, as the input has"),
                both(),
            ));
        }
        if [
            batch,
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h,
            kernel_w,
        ]
        .contains(&0)
        {
            return Err(Error::shape(op, "no dimension of 0", both()));
        }
        let Conv2dOptions {
            stride,
            padding,
            dilation,
            ..
        } = options;
        if [stride.0, stride.1, dilation.0, dilation.1].contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "{op}: stride {stride:?} and dilation {dilation:?} must be at least 1 (for {})",
                both()
            )));
        }
        let side = |size: usize, kernel: usize, stride: usize, pad: usize, dil: usize| {
            let span = dil * (kernel - 1) + 1;
            (size + 2 * pad >= span).then(|| (size + 2 * pad - span) / stride + 1)
        };
        let (Some(out_h), Some(out_w)) = (
            side(in_h, kernel_h, stride.0, padding.0, dilation.0),
            side(in_w, kernel_w, stride.1, padding.1, dilation.1),
        ) else {
            return Err(Error::shape(
                op,
                format!(
                    "a kernel (dilated by {dilation:?}) no larger than the input padded by \
                     {padding:?}"
                ),
                both(),
            ));
        };
        Ok(Self {
            batch,
            in_channels,
            in_size: (in_h, in_w),
            out_channels,
            kernel: (kernel_h, kernel_w),
            out_size: (out_h, out_w),
            options,
        })
    }

    /// The output's shape `[batch, out_channels, out_h, out_w]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_size.0,
            self.out_size.1,
        ]
    }

    /// The input's shape.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_size.0, self.in_size.1]
    }

    /// The weight's shape.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel.0,
            self.kernel.1,
        ]
    }

    /// Kernel taps per output channel: `in_channels · kernel_h · kernel_w`.
    fn taps(&self) -> usize {
        self.in_channels * self.kernel.0 * self.kernel.1
    }

    /// Output positions: `batch · out_h · out_w`.
    fn positions(&self) -> usize {
        self.batch * self.out_size.0 * self.out_size.1
    }
}

/// Which product of a convolution (the shader's `CONV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvProduct {
    /// `y = conv(x, w) (+ b)`.
    Forward = 1,
    /// `dx` from `dy` and `w`.
    InputGrad = 2,
    /// `dw` from `dy` and `x`.
    WeightGrad = 3,
    /// `db` from `dy`.
    BiasGrad = 4,
}

impl ConvProduct {
    /// The shape of the product's result.
    pub fn output_shape(self, g: &Conv2dGeometry) -> Vec<usize> {
        match self {
            ConvProduct::Forward => g.output_shape().to_vec(),
            ConvProduct::InputGrad => g.input_shape().to_vec(),
            ConvProduct::WeightGrad => g.weight_shape().to_vec(),
            ConvProduct::BiasGrad => vec![g.out_channels],
        }
    }

    /// (M, K, N) of the product.
    pub fn dims(self, g: &Conv2dGeometry) -> (usize, usize, usize) {
        let (in_h, in_w) = g.in_size;
        let taps = g.kernel.0 * g.kernel.1;
        match self {
            ConvProduct::Forward => (g.positions(), g.taps(), g.out_channels),
            ConvProduct::InputGrad => (g.batch * in_h * in_w, g.out_channels * taps, g.in_channels),
            ConvProduct::WeightGrad => (g.out_channels, g.positions(), g.taps()),
            ConvProduct::BiasGrad => (g.out_channels, g.positions(), 1),
        }
    }
}

/// The family a convolution's product runs on unless one is forced: `Tiled` under the GPU
/// profile (unless the output is thinner than 16); under the CPU profile `Broadcast` where it
/// runs the product (`broadcast::unsupported`), `Blocked` otherwise.
fn default_kernel(
    device: &crate::Device,
    product: ConvProduct,
    g: &Conv2dGeometry,
) -> MatmulKernel {
    let (m, _, n) = product.dims(g);
    match device.profile() {
        Profile::Gpu if m >= 16 && n >= 16 => MatmulKernel::Tiled,
        Profile::Cpu if broadcast::unsupported(device, product, g).is_none() => {
            MatmulKernel::Broadcast
        }
        _ => MatmulKernel::Blocked,
    }
}

/// A prepared product of a convolution: `a` is the input (forward) or the output gradient,
/// `b` the weight (forward, input gradient), the input (weight gradient) or anything (bias
/// gradient, where op(B) is ones); the forward pass's epilogue adds `bias` and applies
/// `activation` (in training mode with its flag).
pub(crate) fn prepare(
    product: ConvProduct,
    g: &Conv2dGeometry,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    bias: Option<&Tensor>,
    (activation, training): (Activation, bool),
) -> Result<Box<dyn Record>> {
    if activation != Activation::Identity && product != ConvProduct::Forward {
        return Err(Error::InvalidArgument(format!(
            "conv2d: only the forward pass applies an activation, not {product:?}"
        )));
    }
    let state = ActivationState {
        training,
        ..ActivationState::default()
    };
    let (m, k, n) = product.dims(g);
    let kernel = g
        .options
        .kernel
        .unwrap_or_else(|| default_kernel(a.device(), product, g));
    if kernel == MatmulKernel::Broadcast {
        return Ok(Box::new(broadcast::ConvBroadcast::new(
            product,
            g,
            [a, b, c],
            bias,
            (activation, &state),
        )?));
    }
    let options = MatmulOptions {
        bias,
        kernel: Some(kernel),
        activation,
        activation_state: state,
        ..Default::default()
    };
    Ok(Box::new(Matmul::conv(
        a,
        b,
        c,
        (m, k, n),
        &options,
        product as u32,
        g,
    )?))
}

/// A prepared product of a convolution: kernel chosen, bind groups built, recorded as often
/// as needed (what a captured step holds; the functions below prepare one per call).
pub struct Conv2dKernel(Box<dyn Record>);

impl std::fmt::Debug for Conv2dKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conv2dKernel").finish_non_exhaustive()
    }
}

impl Conv2dKernel {
    /// Prepares `product` of `geometry` into `out` (the product's shape): `a` is the input
    /// (forward) or the output's gradient, `b` the weight (forward, input gradient) or the
    /// input (weight gradient; the bias gradient reads `a` alone), `bias` the forward pass's.
    pub fn new(
        product: ConvProduct,
        geometry: &Conv2dGeometry,
        a: &Tensor,
        b: &Tensor,
        out: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Self> {
        let g = geometry;
        let (a_shape, b_shape) = match product {
            ConvProduct::Forward => (g.input_shape(), Some(g.weight_shape())),
            ConvProduct::InputGrad => (g.output_shape(), Some(g.weight_shape())),
            ConvProduct::WeightGrad => (g.output_shape(), Some(g.input_shape())),
            ConvProduct::BiasGrad => (g.output_shape(), None),
        };
        expect(a, a_shape, "first operand")?;
        if let Some(b_shape) = b_shape {
            expect(b, b_shape, "second operand")?;
        }
        if let Some(bias) = bias
            && (product != ConvProduct::Forward || bias.shape().dims() != [g.out_channels])
        {
            return Err(Error::shape(
                "conv2d",
                format!("a bias [{}] of the forward pass", g.out_channels),
                bias.shape(),
            ));
        }
        if out.shape().dims() != product.output_shape(geometry) {
            return Err(Error::shape(
                "conv2d",
                format!("{product:?} output {:?}", product.output_shape(geometry)),
                out.shape(),
            ));
        }
        Ok(Self(prepare(product, geometry, a, b, out, bias, IDENTITY)?))
    }

    /// Records the product (its texel-view copies, where the kernel reads views, and its
    /// dispatches).
    pub fn record(&self, encoder: &mut crate::device::Encoder) {
        self.0.record_into(encoder);
    }
}

/// No activation in the epilogue.
const IDENTITY: (Activation, bool) = (Activation::Identity, false);

/// Checks that `tensor` has `shape`, naming `what`.
fn expect(tensor: &Tensor, shape: [usize; 4], what: &str) -> Result<()> {
    if tensor.shape().dims() != shape {
        return Err(Error::shape(
            "conv2d",
            format!("{what} {shape:?}"),
            tensor.shape(),
        ));
    }
    Ok(())
}

/// `conv2d(x, w) + bias` (one bias per output channel): a new `[batch, out_channels, out_h,
/// out_w]` tensor.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    options: Conv2dOptions,
) -> Result<Tensor> {
    let g = Conv2dGeometry::new(x.shape().dims(), w.shape().dims(), options)?;
    if let Some(bias) = bias
        && bias.shape().dims() != [g.out_channels]
    {
        return Err(Error::shape(
            "conv2d",
            format!("bias [{}]", g.out_channels),
            bias.shape(),
        ));
    }
    let y = Tensor::uninit(x.device(), g.output_shape())?;
    prepare(ConvProduct::Forward, &g, x, w, &y, bias, IDENTITY)?.submit(x.device())?;
    Ok(y)
}

/// The input gradient of `conv2d` for the output gradient `dy`, with the input's shape
/// `input` (its values are not needed).
pub fn conv2d_input_grad(
    dy: &Tensor,
    w: &Tensor,
    input: [usize; 4],
    options: Conv2dOptions,
) -> Result<Tensor> {
    let g = Conv2dGeometry::new(&input, w.shape().dims(), options)?;
    expect(dy, g.output_shape(), "output gradient")?;
    let dx = Tensor::uninit(dy.device(), g.input_shape())?;
    prepare(ConvProduct::InputGrad, &g, dy, w, &dx, None, IDENTITY)?.submit(dy.device())?;
    Ok(dx)
}

/// The weight gradient of `conv2d` for the output gradient `dy`: `[out_channels,
/// in_channels, kernel_h, kernel_w]` for a kernel of `kernel` taps.
pub fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    kernel: (usize, usize),
    options: Conv2dOptions,
) -> Result<Tensor> {
    let dims = dy.shape().dims();
    let out_channels = if dims.len() == 4 { dims[1] } else { 0 };
    let weight = [
        out_channels,
        x.shape().dims().get(1).copied().unwrap_or(0),
        kernel.0,
        kernel.1,
    ];
    let g = Conv2dGeometry::new(x.shape().dims(), &weight, options)?;
    expect(dy, g.output_shape(), "output gradient")?;
    let dw = Tensor::uninit(x.device(), g.weight_shape())?;
    prepare(ConvProduct::WeightGrad, &g, dy, x, &dw, None, IDENTITY)?.submit(x.device())?;
    Ok(dw)
}

/// The bias gradient of `conv2d`: `dy` summed per output channel, `[out_channels]`.
pub fn conv2d_bias_grad(dy: &Tensor) -> Result<Tensor> {
    let &[batch, channels, out_h, out_w] = dy.shape().dims() else {
        return Err(Error::shape(
            "conv2d bias gradient",
            "dy [batch, channels, h, w]",
            dy.shape(),
        ));
    };
    // A 1×1 convolution's geometry over dy's positions: only the output side is read.
    let g = Conv2dGeometry::new(
        &[batch, 1, out_h, out_w],
        &[channels, 1, 1, 1],
        Conv2dOptions::default(),
    )?;
    let db = Tensor::uninit(dy.device(), [channels])?;
    prepare(ConvProduct::BiasGrad, &g, dy, dy, &db, None, IDENTITY)?.submit(dy.device())?;
    Ok(db)
}
