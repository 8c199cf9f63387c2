//! The plain launcher of a product: [`Matmul`], a product bound to its tensors whichever
//! family runs it, and the three families of `shaders/matmul.wgsl` it prepares itself
//! ([`MatmulKernel::Blocked`], [`MatmulKernel::Tiled`], [`MatmulKernel::Texture`]; the vector
//! and broadcast families prepare themselves from a `VectorSpec`).

use std::sync::Arc;

use super::{MatmulDims, MatmulKernel, MatmulOptions, kernel_for};
use crate::device::{Device, Encoder, ShaderSource};
use crate::kernels::activation::ActivationBinding;
use crate::kernels::step::StepInput;
use crate::kernels::{Dispatch, Uniform, entry, flag};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/matmul.wgsl`, with the activation functions prepended for the fused epilogue and
/// a convolution's index maps appended (`shaders/matmul_conv.wgsl`).
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul",
    wgsl: concat!(
        include_str!("../../../shaders/hash.wgsl"),
        include_str!("../../../shaders/activation_functions.wgsl"),
        include_str!("../../../shaders/matmul.wgsl"),
        include_str!("../../../shaders/matmul_conv.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("matmul_blocked", 6),
        ("matmul_tiled", 6),
        ("matmul_texture", 4),
        ("pack_operand", 1),
    ],
};

crate::kernels::bindings! {
    /// The binding numbers of `shaders/matmul.wgsl`, by the WGSL variable each names.
    bind:
    A = 0,
    B = 1,
    BIAS = 2,
    C = 3,
    P = 4,
    PARTIAL = 5,
    TEX_A = 8,
    TEX_B = 9,
    PACK_SRC = 10,
    PACK_DST = 11,
    PACK_P = 12,
}

/// The `Params` uniform of `shaders/matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub k_begin: u32,
    pub k_end: u32,
    pub _pad: [u32; 3],
    pub conv: ConvGeometry,
}

/// The `ConvGeometry` uniform struct of `shaders/matmul.wgsl`: a convolution's shapes, read
/// when `CONV` ≠ 0 (zeros for a plain product).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvGeometry {
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
    pub _pad: [u32; 2],
}

impl ConvGeometry {
    fn of(g: &crate::kernels::conv::Conv2dGeometry) -> Self {
        let o = &g.options;
        let u = |v: usize| v as u32;
        Self {
            in_channels: u(g.in_channels),
            in_h: u(g.in_size.0),
            in_w: u(g.in_size.1),
            out_channels: u(g.out_channels),
            out_h: u(g.out_size.0),
            out_w: u(g.out_size.1),
            kernel_h: u(g.kernel.0),
            kernel_w: u(g.kernel.1),
            stride_h: u(o.stride.0),
            stride_w: u(o.stride.1),
            pad_h: u(o.padding.0),
            pad_w: u(o.padding.1),
            dilation_h: u(o.dilation.0),
            dilation_w: u(o.dilation.1),
            _pad: [0; 2],
        }
    }
}

/// The `PackParams` uniform of `shaders/matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PackParams {
    pub rows: u32,
    pub cols: u32,
    pub _pad: [u32; 2],
}

/// Texture size `(width, height)` in texels for a `rows × cols` matrix packed four columns
/// per texel, the width rounded up to `width_multiple` texels and the height to
/// `height_multiple` rows (the kernel's block, so its loop never reads past the texture).
fn packed_size(
    rows: usize,
    cols: usize,
    width_multiple: usize,
    height_multiple: usize,
) -> (usize, usize) {
    let width = cols.div_ceil(4).max(1).next_multiple_of(width_multiple);
    let height = rows.max(1).next_multiple_of(height_multiple);
    (width, height)
}

/// A matmul bound to its tensors: validated once, recorded any number of times.
#[derive(Debug)]
pub struct Matmul {
    /// The dispatches in order: the matmul itself (one pass per [`PASS_LENGTH`] values of k),
    /// preceded by operand packing for [`MatmulKernel::Texture`].
    ///
    /// [`PASS_LENGTH`]: crate::kernels::PASS_LENGTH
    steps: Vec<Dispatch>,
    /// The accumulators between passes over k, when there are several.
    _partial: Option<Tensor>,
    /// [`MatmulKernel::Vector`]'s or [`MatmulKernel::Broadcast`]'s prepared kernel (then
    /// `steps` is empty).
    spec_kernel: Option<Box<dyn SpecKernel>>,
    kernel: MatmulKernel,
    /// The activation epilogue's binding (the vector family keeps its own).
    activation: Option<ActivationBinding>,
    device: Device,
}

const BLOCK: usize = 8;

impl Matmul {
    /// Prepares `c = op(a)·op(b)` with `options`. `c` must be M×N and distinct from the inputs.
    pub fn new(a: &Tensor, b: &Tensor, c: &Tensor, options: &MatmulOptions<'_>) -> Result<Self> {
        let device = a.device();
        let form = options.form;
        let op = format!("matmul {form:?}");
        for t in [a, b, c].into_iter().chain(options.bias) {
            t.expect_dtype(&op, crate::DType::F32)?;
        }
        let dims = form.dims(a.shape(), b.shape())?;
        let MatmulDims { m, n, .. } = dims;
        if c.shape().dims() != [m, n] {
            return Err(Error::shape(&op, format!("output [{m}, {n}]"), c.shape()));
        }
        if let Some(bias) = options.bias {
            let dims = bias.shape().dims();
            if dims != [n] && dims != [1, n] {
                return Err(Error::shape(
                    &op,
                    format!("bias [{n}] or [1, {n}]"),
                    bias.shape(),
                ));
            }
        }
        for (name, input) in [("A", a), ("B", b)] {
            if input.buffer() == c.buffer() {
                return Err(Error::InvalidArgument(format!(
                    "{op}: the output must not be the same tensor as {name}"
                )));
            }
        }
        let kernel = options
            .kernel
            .unwrap_or_else(|| kernel_for(device, form, dims));
        if matches!(
            kernel,
            MatmulKernel::Vector | MatmulKernel::Broadcast | MatmulKernel::Staged
        ) {
            let spec = super::vector::VectorSpec {
                form,
                a,
                b,
                c,
                gather: None,
                write_labels: None,
                bias: options.bias,
                accumulate: options.accumulate,
                activation: options.activation,
                activation_state: options.activation_state,
                dact: None,
                bias_grad: None,
                update_w: None,
                update_b: None,
            };
            use super::vector::{FusedFamily, VectorMatmul};
            let prepared: Box<dyn SpecKernel> = match kernel {
                MatmulKernel::Vector => Box::new(VectorMatmul::new(&spec, FusedFamily::Vector)?),
                MatmulKernel::Staged => Box::new(VectorMatmul::new(&spec, FusedFamily::Staged)?),
                _ => Box::new(super::broadcast::BroadcastMatmul::new(&spec)?),
            };
            return Ok(Self {
                steps: Vec::new(),
                _partial: None,
                spec_kernel: Some(prepared),
                kernel,
                activation: None,
                device: device.clone(),
            });
        }

        Self::build(a, b, c, dims, options, kernel, (0, ConvGeometry::default()))
    }

    /// One of a convolution's products (`kernels::conv`): `mode` is the shader's `CONV`, the
    /// product `m×k·k×n` reads its operands through the convolution's index maps, on the
    /// blocked or tiled family.
    pub(crate) fn conv(
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        (m, k, n): (usize, usize, usize),
        options: &MatmulOptions<'_>,
        mode: u32,
        geometry: &crate::kernels::conv::Conv2dGeometry,
    ) -> Result<Self> {
        let op = "conv2d";
        for t in [a, b, c].into_iter().chain(options.bias) {
            t.expect_dtype(op, crate::DType::F32)?;
        }
        for input in [a, b] {
            if input.buffer() == c.buffer() {
                return Err(Error::InvalidArgument(format!(
                    "{op}: the output must not be an input"
                )));
            }
        }
        let kernel = match options.kernel {
            Some(kernel @ (MatmulKernel::Blocked | MatmulKernel::Tiled)) => kernel,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{op}: {other:?} has no convolution kernel; use Blocked, Tiled or Broadcast"
                )));
            }
        };
        let dims = MatmulDims { m, k, n };
        Self::build(
            a,
            b,
            c,
            dims,
            options,
            kernel,
            (mode, ConvGeometry::of(geometry)),
        )
    }

    /// Prepares a plain family's dispatches (and a convolution's, with `conv.0` ≠ 0).
    fn build(
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        dims: MatmulDims,
        options: &MatmulOptions<'_>,
        kernel: MatmulKernel,
        (conv, geometry): (u32, ConvGeometry),
    ) -> Result<Self> {
        let device = a.device();
        let form = options.form;
        let op = format!("matmul {form:?}");
        let MatmulDims { m, k, n } = dims;
        let activation = ActivationBinding::new(
            device,
            &op,
            options.activation,
            &options.activation_state,
            n,
        )?;
        let mut constants = activation.constants.clone();
        constants.extend([
            ("CONV", f64::from(conv)),
            ("TRANS_A", flag(form.trans_a())),
            ("TRANS_B", flag(form.trans_b())),
            ("HAS_BIAS", flag(options.bias.is_some())),
            ("ACCUMULATE", flag(options.accumulate)),
        ]);
        // Without a bias the binding is still declared; B stands in and is never read.
        let bias = options.bias.unwrap_or(b);
        let mut steps = Vec::new();
        let mut entries = vec![entry(bind::BIAS, bias), entry(bind::C, c)];
        entries.extend(activation.entries(&options.activation_state, b));
        let (entry_point, workgroups, packed);
        match kernel {
            MatmulKernel::Blocked => {
                // A narrow output needs fewer invocations per workgroup.
                let lanes = n.div_ceil(BLOCK).next_power_of_two().clamp(1, 64);
                constants.push(("BLOCKED_WG", lanes as f64));
                let x = crate::kernels::groups(device, &op, n, lanes * BLOCK)?;
                let y = crate::kernels::groups(device, &op, m, BLOCK)?;
                (entry_point, workgroups) = ("matmul_blocked", [x, y, 1]);
                entries.extend([entry(bind::A, a), entry(bind::B, b)]);
                packed = None;
            }
            MatmulKernel::Tiled => {
                let tile = super::tiled::tile_for(dims);
                debug_assert!(tile.fits_shader(), "{tile:?}");
                constants.extend(tile.constants());
                let x = crate::kernels::groups(device, &op, n, tile.cols())?;
                let y = crate::kernels::groups(device, &op, m, tile.rows())?;
                (entry_point, workgroups) = ("matmul_tiled", [x, y, 1]);
                entries.extend([entry(bind::A, a), entry(bind::B, b)]);
                packed = None;
            }
            MatmulKernel::Vector | MatmulKernel::Broadcast | MatmulKernel::Staged => {
                unreachable!("handled above")
            }
            MatmulKernel::Texture => {
                // One pass: the packed textures bound K (op(B) is K texels high), and the loop
                // runs K/4 times, far below lavapipe's limit on any texture it allows.
                // op(A) is packed M×K with rows padded to the 8-row block; op(B) K×N with
                // rows padded to 4 (one texel of k) and texel columns to 2 (two per invocation).
                let (a_width, a_height) = packed_size(m, k, 1, BLOCK);
                let (b_width, b_height) = packed_size(k, n, 2, 4);
                let tex_a = pack(
                    device,
                    &mut steps,
                    a,
                    form.trans_a(),
                    (m, k),
                    (a_width, a_height),
                )?;
                let tex_b = pack(
                    device,
                    &mut steps,
                    b,
                    form.trans_b(),
                    (k, n),
                    (b_width, b_height),
                )?;
                let lanes = b_width.div_ceil(2).next_power_of_two().clamp(1, 16);
                constants.push(("TEX_WG", lanes as f64));
                let x = crate::kernels::groups(device, &op, b_width / 2, lanes)?;
                let y = crate::kernels::groups(device, &op, m, BLOCK)?;
                (entry_point, workgroups) = ("matmul_texture", [x, y, 1]);
                packed = Some([tex_a, tex_b]);
            }
        }
        let views = packed.as_ref().map(|textures| {
            textures
                .each_ref()
                .map(|t| t.create_view(&wgpu::TextureViewDescriptor::default()))
        });
        if let Some([view_a, view_b]) = &views {
            entries.extend([
                entry(bind::TEX_A, wgpu::BindingResource::TextureView(view_a)),
                entry(bind::TEX_B, wgpu::BindingResource::TextureView(view_b)),
            ]);
        }
        let pipeline = device.pipeline(&SHADER, entry_point, &constants)?;
        let ranges = if kernel == MatmulKernel::Texture {
            vec![(0, k as u32)]
        } else {
            // PASS_LENGTH is a multiple of the tiled kernel's k slices.
            crate::kernels::pass_ranges(k, crate::kernels::PASS_LENGTH)
        };
        // With one pass `partial` is never touched, but WebGPU forbids binding C there too (one
        // buffer in two writable bindings of a dispatch): a 16-byte scratch tensor stands in.
        let partial = Tensor::uninit(device, if ranges.len() > 1 { [m, n] } else { [1, 4] })?;
        for (k_begin, k_end) in ranges {
            let params = Params {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                k_begin,
                k_end,
                _pad: [0; 3],
                conv: geometry,
            };
            let uniform = Uniform::new(device, "matmul params", bytemuck::bytes_of(&params))?;
            let mut pass = entries.clone();
            pass.push(entry(bind::P, &uniform));
            pass.push(entry(bind::PARTIAL, &partial));
            steps.push(Dispatch::new(
                device,
                Arc::clone(&pipeline),
                "matmul",
                &pass,
                workgroups,
            ));
        }
        Ok(Self {
            steps,
            _partial: Some(partial),
            spec_kernel: None,
            kernel,
            activation: Some(activation),
            device: device.clone(),
        })
    }

    /// The kernel family this matmul runs.
    pub fn kernel(&self) -> MatmulKernel {
        self.kernel
    }

    /// Sets the fused RReLU's RNG key for the next recorded passes (queued; no host sync).
    pub fn set_rng(&self, seed: u32, step: u32) {
        crate::kernels::step::write_rng(&self.device, &self.step_inputs(), seed, step);
    }

    /// The per-step values the product reads: a gathered operand's batch offset, the fused
    /// RReLU's key.
    pub(crate) fn step_inputs(&self) -> Vec<StepInput> {
        match &self.spec_kernel {
            Some(prepared) => prepared.step_inputs(),
            None => self
                .activation
                .as_ref()
                .and_then(ActivationBinding::step_input)
                .into_iter()
                .collect(),
        }
    }

    /// How many dispatches [`Matmul::record`] records.
    pub fn dispatch_count(&self) -> usize {
        self.steps.len() + self.spec_kernel.as_ref().map_or(0, |v| v.dispatch_count())
    }

    /// Records the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        if let Some(prepared) = &self.spec_kernel {
            prepared.record_into(encoder);
        }
        for step in &self.steps {
            step.record(encoder);
        }
    }
}

/// The families prepared from a [`VectorSpec`](super::vector::VectorSpec).
trait SpecKernel: crate::kernels::Record + std::fmt::Debug {
    fn dispatch_count(&self) -> usize;
}

impl SpecKernel for super::vector::VectorMatmul {
    fn dispatch_count(&self) -> usize {
        self.dispatch_count()
    }
}

impl SpecKernel for super::broadcast::BroadcastMatmul {
    fn dispatch_count(&self) -> usize {
        self.dispatch_count()
    }
}

/// Adds a `pack_operand` step copying the logical `rows × cols` matrix stored in `source`
/// (transposed if `transposed`) into a new `width × height` texture, and returns the texture.
fn pack(
    device: &Device,
    steps: &mut Vec<Dispatch>,
    source: &Tensor,
    transposed: bool,
    (rows, cols): (usize, usize),
    (width, height): (usize, usize),
) -> Result<wgpu::Texture> {
    let texture = device.create_texture_2d(
        "packed matmul operand",
        width as u32,
        height as u32,
        wgpu::TextureFormat::Rgba32Float,
        wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
    )?;
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let params = PackParams {
        rows: rows as u32,
        cols: cols as u32,
        _pad: [0; 2],
    };
    let uniform = Uniform::new(device, "pack params", bytemuck::bytes_of(&params))?;
    let flag = flag(transposed);
    let pipeline = device.pipeline(&SHADER, "pack_operand", &[("TRANSPOSED", flag)])?;
    let entries = [
        entry(bind::PACK_SRC, source),
        entry(bind::PACK_DST, wgpu::BindingResource::TextureView(&view)),
        entry(bind::PACK_P, &uniform),
    ];
    let what = "pack_operand";
    let workgroups = [
        crate::kernels::groups(device, what, width, 8)?,
        crate::kernels::groups(device, what, height, 8)?,
        1,
    ];
    steps.push(Dispatch::new(device, pipeline, what, &entries, workgroups));
    Ok(texture)
}
