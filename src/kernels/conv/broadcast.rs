//! A convolution's products for CPU devices: `shaders/conv_broadcast.wgsl`, whose lanes run
//! along the long side of each product, reading both operands through texel views, and get the
//! channels' values by `subgroupBroadcast` where 8-invocation workgroups are one subgroup
//! (lavapipe), or by fetching each (SwiftShader, the browser). The same fma chains as the
//! implicit GEMM of the plain families, so the same bits; tens of times their speed on
//! lavapipe.

use super::{Conv2dGeometry, ConvProduct};
use crate::device::{Device, Encoder, ShaderSource};
use crate::kernels::activation::{Activation, ActivationBinding, ActivationState};
use crate::kernels::step::StepInput;
use crate::kernels::texels::{TexelFormat, TexelView};
use crate::kernels::{Dispatch, INVOCATION_BUDGET, Record, Uniform, entry, groups};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Storage buffers each entry point binds (tests/contract.rs checks them against naga).
const STORAGE_BUFFERS: &[(&str, u32)] = &[
    ("conv_forward", 3),
    ("conv_input_grad", 1),
    ("conv_weight_grad", 1),
    ("conv_bias_grad", 1),
];

/// `shaders/conv_broadcast.wgsl` with the columns shared by `subgroupBroadcast`, after the
/// texel helper and the activation functions (the forward pass's epilogue).
pub const SHADER: ShaderSource = ShaderSource {
    name: "conv_broadcast",
    wgsl: concat!(
        include_str!("../../../shaders/texels.wgsl"),
        include_str!("../../../shaders/hash.wgsl"),
        include_str!("../../../shaders/activation_functions.wgsl"),
        include_str!("../../../shaders/conv_columns_broadcast.wgsl"),
        include_str!("../../../shaders/conv_broadcast.wgsl")
    ),
    storage_buffers: STORAGE_BUFFERS,
};

/// The same kernels with each lane fetching every column, for devices without subgroups.
pub const SHADER_FETCH: ShaderSource = ShaderSource {
    name: "conv_fetch",
    wgsl: concat!(
        include_str!("../../../shaders/texels.wgsl"),
        include_str!("../../../shaders/hash.wgsl"),
        include_str!("../../../shaders/activation_functions.wgsl"),
        include_str!("../../../shaders/conv_columns_fetch.wgsl"),
        include_str!("../../../shaders/conv_broadcast.wgsl")
    ),
    storage_buffers: STORAGE_BUFFERS,
};

crate::kernels::bindings! {
    /// The binding numbers of `shaders/conv_broadcast.wgsl`, by the WGSL variable each names.
    bind:
    ROWS_IN = 0,
    COLS_IN = 1,
    BIAS = 2,
    C = 3,
    P = 4,
}

/// Invocations per workgroup, one subgroup (the shader's `LANES`).
pub(crate) const LANES: usize = 8;
/// Rows per invocation (the shader's `ROWS`).
pub(crate) const ROWS: usize = 4;
/// The largest kernel side the input gradient's tables hold (the shader's `MAX_SIDE`).
pub(crate) const MAX_SIDE: usize = 16;
/// Positions per pass of the weight gradient: each costs `1 + ROWS` loop iterations, which
/// must stay under lavapipe's per-invocation loop cap (`kernels::PASS_LENGTH`).
const WEIGHT_GRAD_PASS: usize = INVOCATION_BUDGET / (1 + ROWS) / 1024 * 1024;

/// Texels per row of a view (`texels.rs`'s `ROW_TEXELS`).
const ROW_TEXELS: usize = 1 << crate::kernels::texels::TEXEL_SHIFT;

/// The `ConvParams` uniform of `shaders/conv_broadcast.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvParams {
    pub batch: u32,
    pub in_channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_channels: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub dilation_h: u32,
    pub dilation_w: u32,
    pub rows: u32,
    pub cols: u32,
    pub k_begin: u32,
    pub k_end: u32,
    pub has_bias: u32,
}

/// Whether `device` shares the columns by `subgroupBroadcast` ([`SHADER`]): the broadcast
/// matmul family's condition (subgroups of at least eight, 8-invocation workgroups placed as
/// one subgroup, a native build). Otherwise each lane fetches them ([`SHADER_FETCH`]).
pub(crate) fn broadcasts(device: &Device) -> bool {
    crate::kernels::matmul::broadcast::available(device)
}

/// Why the kernels cannot compute `product` of `g` on `device`, or `None` when they can: a
/// kernel side of at most
/// [`MAX_SIDE`]; a k loop (all of its inner iterations counted) within one pass for the
/// forward pass and the input gradient; operands and results that fit texel views.
pub(crate) fn unsupported(
    device: &Device,
    product: ConvProduct,
    g: &Conv2dGeometry,
) -> Option<String> {
    let taps = g.kernel.0 * g.kernel.1;
    let k_loop = match product {
        ConvProduct::Forward => g.in_channels * taps,
        ConvProduct::InputGrad => g.out_channels * taps,
        ConvProduct::WeightGrad | ConvProduct::BiasGrad => 0,
    };
    if g.kernel.0 > MAX_SIDE || g.kernel.1 > MAX_SIDE {
        return Some(format!(
            "a kernel of {:?} is past the {MAX_SIDE}×{MAX_SIDE} its tables hold",
            g.kernel
        ));
    }
    if k_loop * (1 + ROWS) > INVOCATION_BUDGET {
        return Some(format!(
            "a sum of {k_loop} terms is past one pass of lavapipe's loop limit"
        ));
    }
    let largest = [
        g.input_shape().iter().product::<usize>(),
        g.output_shape().iter().product(),
        g.weight_shape().iter().product(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    if largest.div_ceil(ROW_TEXELS) > device.limits().max_texture_dimension_2d as usize
        || largest > u32::MAX as usize
    {
        return Some(format!(
            "{largest} values do not fit a texel view (max_texture_dimension_2d)"
        ));
    }
    None
}

/// A prepared product: copies of its operands into their texel views, then one dispatch (the
/// weight and bias gradients: one per pass).
#[derive(Debug)]
pub(crate) struct ConvBroadcast {
    views: Vec<(TexelView, Tensor)>,
    dispatches: Vec<Dispatch>,
    /// The forward pass's activation (its RNG key, for RReLU in training).
    activation: Option<ActivationBinding>,
}

impl ConvBroadcast {
    /// Prepares `product` of `g` as `conv::prepare` describes its operands: `a` the input
    /// (forward) or the output gradient, `b` the weight (forward, input gradient) or the input
    /// (weight gradient), `c` the result; the forward pass's epilogue adds `bias` and applies
    /// the activation.
    pub fn new(
        product: ConvProduct,
        g: &Conv2dGeometry,
        [a, b, c]: [&Tensor; 3],
        bias: Option<&Tensor>,
        (activation, state): (Activation, &ActivationState<'_>),
    ) -> Result<Self> {
        let device = a.device();
        if let Some(why) = unsupported(device, product, g) {
            return Err(Error::InvalidArgument(format!(
                "the broadcast convolution cannot run {product:?} of input {:?} and weight \
                 {:?}: {why}; leave the kernel to the default",
                g.input_shape(),
                g.weight_shape()
            )));
        }
        // Which operand is gathered per row and which broadcast per column (none for the bias
        // gradient: `b` is `a` again).
        let (entry_point, rows_in, cols_in, rows, cols) = match product {
            ConvProduct::Forward => (
                "conv_forward",
                a,
                b,
                g.batch * g.out_size.0 * g.out_size.1,
                g.out_channels,
            ),
            ConvProduct::InputGrad => (
                "conv_input_grad",
                a,
                b,
                g.batch * g.in_size.0 * g.in_size.1,
                g.in_channels,
            ),
            ConvProduct::WeightGrad => (
                "conv_weight_grad",
                b,
                a,
                g.in_channels * g.kernel.0 * g.kernel.1,
                g.out_channels,
            ),
            ConvProduct::BiasGrad => ("conv_bias_grad", a, a, g.out_channels, 1),
        };
        let bias_grad = product == ConvProduct::BiasGrad;
        let view = |what: &str, t: &Tensor| -> Result<(TexelView, Tensor)> {
            Ok((
                TexelView::with_format(device, what, t.numel(), TexelFormat::Word)?,
                t.share(),
            ))
        };
        let mut views = vec![view("conv rows", rows_in)?];
        if !bias_grad {
            views.push(view("conv columns", cols_in)?);
        }
        let positions = g.batch * g.out_size.0 * g.out_size.1;
        let passes = match product {
            ConvProduct::WeightGrad => crate::kernels::pass_ranges(positions, WEIGHT_GRAD_PASS),
            ConvProduct::BiasGrad => {
                crate::kernels::pass_ranges(positions, crate::kernels::PASS_LENGTH)
            }
            _ => vec![(0, 0)],
        };
        let o = &g.options;
        let rows_per_group = if bias_grad { LANES } else { LANES * ROWS };
        let grid = [
            groups(device, entry_point, rows, rows_per_group)?,
            groups(device, entry_point, cols, LANES)?,
            1,
        ];
        let unit_stride = o.stride == (1, 1);
        let mut constants = vec![("UNIT_STRIDE", crate::kernels::flag(unit_stride))];
        // The forward pass's epilogue: the activation's constants, slopes and runtime.
        let binding = match product {
            ConvProduct::Forward => {
                let binding = ActivationBinding::new(device, "conv2d", activation, state, 1)?;
                constants.extend(binding.constants.iter().copied());
                Some(binding)
            }
            _ => None,
        };
        let shader = if broadcasts(device) {
            &SHADER
        } else {
            &SHADER_FETCH
        };
        let pipeline = device.pipeline(shader, entry_point, &constants)?;
        // The forward pass binds a bias whether it adds one or not.
        let stand_in = match (product, bias) {
            (ConvProduct::Forward, None) => Some(Tensor::uninit(device, [4])?),
            _ => None,
        };
        let mut dispatches = Vec::with_capacity(passes.len());
        for (k_begin, k_end) in passes {
            let params = ConvParams {
                batch: g.batch as u32,
                in_channels: g.in_channels as u32,
                in_h: g.in_size.0 as u32,
                in_w: g.in_size.1 as u32,
                out_channels: g.out_channels as u32,
                out_h: g.out_size.0 as u32,
                out_w: g.out_size.1 as u32,
                kernel_h: g.kernel.0 as u32,
                kernel_w: g.kernel.1 as u32,
                stride_h: o.stride.0 as u32,
                stride_w: o.stride.1 as u32,
                pad_h: o.padding.0 as u32,
                pad_w: o.padding.1 as u32,
                dilation_h: o.dilation.0 as u32,
                dilation_w: o.dilation.1 as u32,
                rows: rows as u32,
                cols: cols as u32,
                k_begin,
                k_end,
                has_bias: u32::from(bias.is_some()),
            };
            let uniform = Uniform::new(device, "conv params", bytemuck::bytes_of(&params))?;
            let mut entries = vec![entry(bind::C, c), entry(bind::P, &uniform)];
            for ((view, _), binding) in views.iter().zip([bind::ROWS_IN, bind::COLS_IN]) {
                entries.push(entry(
                    binding,
                    wgpu::BindingResource::TextureView(view.view()),
                ));
            }
            if let Some(bias) = bias.or(stand_in.as_ref()) {
                entries.push(entry(bind::BIAS, bias));
                if let Some(binding) = &binding {
                    entries.extend(binding.entries(state, bias));
                }
            }
            dispatches.push(Dispatch::new(
                device,
                pipeline.clone(),
                entry_point,
                &entries,
                grid,
            ));
        }
        Ok(Self {
            views,
            dispatches,
            activation: binding,
        })
    }

    /// The fused RReLU's key, when the forward pass applies one.
    pub(crate) fn step_inputs(&self) -> Vec<StepInput> {
        self.activation
            .as_ref()
            .and_then(ActivationBinding::step_input)
            .into_iter()
            .collect()
    }

    /// Records the copies into the views, then the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        for (view, tensor) in &self.views {
            view.fill(encoder, tensor);
        }
        for dispatch in &self.dispatches {
            dispatch.record(encoder);
        }
    }
}

impl Record for ConvBroadcast {
    fn record_into(&self, encoder: &mut Encoder) {
        self.record(encoder);
    }

    fn step_inputs(&self) -> Vec<StepInput> {
        ConvBroadcast::step_inputs(self)
    }
}
