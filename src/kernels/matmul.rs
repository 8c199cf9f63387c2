//! Matrix multiplication: `C = op(A)·op(B)`, with an optional bias row and accumulation.
//!
//! The three forms a Linear layer needs are specialisations of one kernel, so no transpose is
//! ever materialised: `A·B` (forward), `Aᵀ·B` (weight gradient) and `A·Bᵀ` (input gradient).
//! Five kernel families exist ([`MatmulKernel`]); [`select_kernel`] picks one per device and
//! shape.
//!
//! (Just over 600 lines: the product's vocabulary — forms, sizes, kernels, options — the
//! device's choice among the five families, and the three families of `shaders/matmul.wgsl`.
//! Moving the launchers into a `kernels/matmul/` folder is issue 20's part 2, still open.)

use std::sync::Arc;

use super::activation::{Activation, ActivationBinding, ActivationState};
use super::{Dispatch, Record, Uniform, entry, flag};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/matmul.wgsl`, with the activation functions prepended for the fused epilogue.
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul",
    wgsl: concat!(
        include_str!("../../shaders/activation_functions.wgsl"),
        include_str!("../../shaders/matmul.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("matmul_blocked", 6),
        ("matmul_tiled", 6),
        ("matmul_texture", 4),
        ("pack_operand", 1),
    ],
};

super::bindings! {
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
}

/// The `PackParams` uniform of `shaders/matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PackParams {
    pub rows: u32,
    pub cols: u32,
    pub _pad: [u32; 2],
}

/// Which form of the product to compute. `A` and `B` are always row-major.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulForm {
    /// `C = A·B`: A is M×K, B is K×N.
    #[default]
    AB,
    /// `C = Aᵀ·B`: A is stored K×M, B is K×N.
    AtB,
    /// `C = A·Bᵀ`: A is M×K, B is stored N×K.
    ABt,
}

/// The sizes of a product `op(A)·op(B)`: `m×k` by `k×n`, giving `m×n`. Passed as one value
/// with named fields, so that no call can give them in another order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulDims {
    /// Rows of op(A) and of the product.
    pub m: usize,
    /// Columns of op(A), rows of op(B): the length of each output's sum.
    pub k: usize,
    /// Columns of op(B) and of the product.
    pub n: usize,
}

impl std::fmt::Display for MatmulDims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let MatmulDims { m, k, n } = self;
        write!(f, "{m}×{k}·{k}×{n}")
    }
}

impl MatmulForm {
    /// Every form, for tests and benchmarks.
    pub const ALL: [MatmulForm; 3] = [MatmulForm::AB, MatmulForm::AtB, MatmulForm::ABt];

    /// Whether A is stored transposed.
    pub fn trans_a(self) -> bool {
        self == MatmulForm::AtB
    }

    /// Whether B is stored transposed.
    pub fn trans_b(self) -> bool {
        self == MatmulForm::ABt
    }

    /// The product's sizes, or a shape error.
    pub fn dims(self, a: &crate::Shape, b: &crate::Shape) -> Result<MatmulDims> {
        let op = format!("matmul {self:?}");
        let (a0, a1) = a.dims2(&op)?;
        let (b0, b1) = b.dims2(&op)?;
        let (m, ka) = if self.trans_a() { (a1, a0) } else { (a0, a1) };
        let (kb, n) = if self.trans_b() { (b1, b0) } else { (b0, b1) };
        if ka != kb {
            let need = match self {
                MatmulForm::AB => "A [M, K] and B [K, N]",
                MatmulForm::AtB => "A [K, M] and B [K, N]",
                MatmulForm::ABt => "A [M, K] and B [N, K]",
            };
            return Err(Error::shape(
                &op,
                format!("{need} with equal K"),
                format!("A {a} and B {b}"),
            ));
        }
        Ok(MatmulDims { m, k: ka, n })
    }
}

/// The kernel families of `shaders/matmul.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// `matmul_blocked`: an 8×8 register block per invocation reading the storage buffers
    /// directly, no workgroup memory. Works for every shape on every device.
    Blocked,
    /// `matmul_tiled`: 64×64 tiles staged in workgroup memory. Best on real GPUs.
    Tiled,
    /// `pack_operand` twice, then `matmul_texture`: an 8×8 register block per invocation over
    /// operands packed into rgba32float textures. Best on CPU devices (lavapipe), where a
    /// texel fetch is several times cheaper than a storage-buffer load.
    Texture,
    /// `matmul_vector_*` (`shaders/matmul_vector.wgsl`): sixteen rows by four columns per
    /// invocation in named vec4 accumulators over operands read as vec4. Only for shapes whose
    /// vec4 loads line up ([`MatmulKernel::supports`]); the family the fused kernels of a
    /// captured step build on.
    Vector,
    /// `matmul_broadcast_*` (`shaders/matmul_broadcast.wgsl`): the vector family's blocking
    /// and epilogues with every operand read through texel fetches (copies of the tensors into
    /// textures, not dispatches) and op(A)'s rows shared across each subgroup by
    /// `subgroupBroadcast`. Needs subgroups of at least eight invocations
    /// ([`matmul_broadcast::available`](super::matmul_broadcast::available)) and the shapes
    /// [`MatmulKernel::supports`] names; the fastest family on lavapipe.
    Broadcast,
}

impl MatmulKernel {
    /// Every kernel that takes every shape, for tests and benchmarks ([`MatmulKernel::Vector`]
    /// takes aligned shapes only).
    pub const ALL: [MatmulKernel; 3] = [
        MatmulKernel::Blocked,
        MatmulKernel::Tiled,
        MatmulKernel::Texture,
    ];

    /// The kernels that take only some shapes ([`MatmulKernel::supports`]), for tests and
    /// benchmarks.
    pub const ALIGNED: [MatmulKernel; 2] = [MatmulKernel::Vector, MatmulKernel::Broadcast];

    /// Whether this kernel computes `op(A)·op(B)` of `m×k` by `k×n` in `form` (on a device
    /// that has it: see [`MatmulKernel::Broadcast`]).
    pub fn supports(self, form: MatmulForm, dims: MatmulDims) -> bool {
        match self {
            MatmulKernel::Vector => super::matmul_vector::supports(form, dims),
            MatmulKernel::Broadcast => super::matmul_broadcast::supports(form, dims),
            _ => true,
        }
    }
}

/// Picks the kernel for a device type, its smallest subgroup (`None`: no subgroup operations)
/// and a product of `m×k` by `k×n` in `form`.
///
/// - CPU devices (lavapipe, SwiftShader, WARP) run invocations as SIMD lanes of a thread;
///   a workgroup barrier there means switching between invocations, and on lavapipe
///   (Mesa 22.3) every storage-buffer or workgroup-memory load is a loop over the lanes with a
///   bounds check (~6.5 ns per lane and value), where a texel fetch is one gather (~0.6 ns per
///   lane and value) and a subgroup broadcast a register shuffle. So: [`Broadcast`] (texel
///   fetches, broadcast rows, ~20 GFLOP/s) where the shape lines up and subgroups hold at
///   least 8, else [`Vector`] (named vec4 accumulators over storage buffers, ~1.7 GFLOP/s)
///   where the shape lines up, else [`Blocked`] (~1.8); never [`Tiled`] (~0.6). [`Texture`]
///   packs both operands with dispatches first and rounds differently from the fused kernels
///   of a captured step.
/// - Real GPUs reuse operands from workgroup memory: [`Tiled`], unless the output is so thin
///   (fewer than 16 rows or columns) that most of a 64×64 tile would idle.
///
/// [`Blocked`], [`Tiled`], [`Vector`] and [`Broadcast`] compute each output as the same fma
/// chain in k order, so the choice never changes a result's bits.
///
/// [`Blocked`]: MatmulKernel::Blocked
/// [`Tiled`]: MatmulKernel::Tiled
/// [`Texture`]: MatmulKernel::Texture
/// [`Vector`]: MatmulKernel::Vector
/// [`Broadcast`]: MatmulKernel::Broadcast
pub fn select_kernel(
    device_type: wgpu::DeviceType,
    subgroup_min_size: Option<u32>,
    form: MatmulForm,
    dims: MatmulDims,
) -> MatmulKernel {
    let broadcast = subgroup_min_size
        .is_some_and(|size| size >= super::matmul_broadcast::MIN_SUBGROUP_SIZE)
        && MatmulKernel::Broadcast.supports(form, dims);
    let MatmulDims { m, n, .. } = dims;
    match device_type {
        wgpu::DeviceType::Cpu if broadcast => MatmulKernel::Broadcast,
        wgpu::DeviceType::Cpu if MatmulKernel::Vector.supports(form, dims) => MatmulKernel::Vector,
        wgpu::DeviceType::Cpu => MatmulKernel::Blocked,
        _ if m < 16 || n < 16 => MatmulKernel::Blocked,
        _ => MatmulKernel::Tiled,
    }
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

/// Options of a matmul beyond its operands.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulOptions<'a> {
    /// Which product.
    pub form: MatmulForm,
    /// A bias row of N values (shape `[N]` or `[1, N]`) added to every output row.
    pub bias: Option<&'a Tensor>,
    /// Add the product to the output's current contents instead of overwriting them.
    pub accumulate: bool,
    /// Force a kernel family; `None` lets [`select_kernel`] choose.
    pub kernel: Option<MatmulKernel>,
    /// An activation applied last, in the same kernel: `C = act(op(A)·op(B) + bias)`.
    pub activation: Activation,
    /// What the activation needs (PReLU slopes, RReLU's mode and RNG key).
    pub activation_state: ActivationState<'a>,
}

impl<'a> MatmulOptions<'a> {
    /// Default options for `form`.
    pub fn form(form: MatmulForm) -> Self {
        Self {
            form,
            ..Self::default()
        }
    }
}

/// A matmul bound to its tensors: validated once, recorded any number of times.
#[derive(Debug)]
pub struct Matmul {
    /// The dispatches in order: the matmul itself (one pass per [`PASS_LENGTH`] values of k),
    /// preceded by operand packing for [`MatmulKernel::Texture`].
    ///
    /// [`PASS_LENGTH`]: super::PASS_LENGTH
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
const TILE: usize = 64;

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
        let MatmulDims { m, k, n } = dims;
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
        if matches!(kernel, MatmulKernel::Vector | MatmulKernel::Broadcast) {
            let spec = super::matmul_vector::VectorSpec {
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
            let prepared: Box<dyn SpecKernel> = if kernel == MatmulKernel::Vector {
                Box::new(super::matmul_vector::VectorMatmul::new(&spec)?)
            } else {
                Box::new(super::matmul_broadcast::BroadcastMatmul::new(&spec)?)
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

        let activation = ActivationBinding::new(
            device,
            &op,
            options.activation,
            &options.activation_state,
            n,
        )?;
        let mut constants = activation.constants.clone();
        constants.extend([
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
                let x = super::groups(device, &op, n, lanes * BLOCK)?;
                let y = super::groups(device, &op, m, BLOCK)?;
                (entry_point, workgroups) = ("matmul_blocked", [x, y, 1]);
                entries.extend([entry(bind::A, a), entry(bind::B, b)]);
                packed = None;
            }
            MatmulKernel::Tiled => {
                let x = super::groups(device, &op, n, TILE)?;
                let y = super::groups(device, &op, m, TILE)?;
                (entry_point, workgroups) = ("matmul_tiled", [x, y, 1]);
                entries.extend([entry(bind::A, a), entry(bind::B, b)]);
                packed = None;
            }
            MatmulKernel::Vector | MatmulKernel::Broadcast => unreachable!("handled above"),
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
                let x = super::groups(device, &op, b_width / 2, lanes)?;
                let y = super::groups(device, &op, m, BLOCK)?;
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
            // PASS_LENGTH is a multiple of the tiled kernel's 16-deep k step.
            super::pass_ranges(k, super::PASS_LENGTH)
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
        match &self.spec_kernel {
            Some(prepared) => prepared.set_rng(seed, step),
            None => {
                if let Some(binding) = &self.activation {
                    binding.set_rng(&self.device, seed, step);
                }
            }
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

/// The families prepared from a [`VectorSpec`](super::matmul_vector::VectorSpec).
trait SpecKernel: super::Record + std::fmt::Debug {
    fn dispatch_count(&self) -> usize;
}

impl SpecKernel for super::matmul_vector::VectorMatmul {
    fn dispatch_count(&self) -> usize {
        self.dispatch_count()
    }
}

impl SpecKernel for super::matmul_broadcast::BroadcastMatmul {
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
        super::groups(device, what, width, 8)?,
        super::groups(device, what, height, 8)?,
        1,
    ];
    steps.push(Dispatch::new(device, pipeline, what, &entries, workgroups));
    Ok(texture)
}

/// Computes `c = op(a)·op(b)` (plus options) into an existing tensor and submits it.
pub fn matmul_into(a: &Tensor, b: &Tensor, c: &Tensor, options: &MatmulOptions<'_>) -> Result<()> {
    let plan = Matmul::new(a, b, c, options)?;
    plan.submit(a.device())
}

/// Computes `op(a)·op(b)` (plus options) into a new M×N tensor and submits it.
pub fn matmul(a: &Tensor, b: &Tensor, options: &MatmulOptions<'_>) -> Result<Tensor> {
    if options.accumulate {
        return Err(Error::InvalidArgument(
            "matmul: `accumulate` adds into an existing output; use `matmul_into`".into(),
        ));
    }
    let MatmulDims { m, n, .. } = options.form.dims(a.shape(), b.shape())?;
    let c = Tensor::uninit(a.device(), [m, n])?;
    matmul_into(a, b, &c, options)?;
    Ok(c)
}

/// The device's choice for an `m×k·k×n` product in `form` (see [`select_kernel`]); operands
/// too large for [`MatmulKernel::Broadcast`]'s textures go to the family `select_kernel` would
/// pick without subgroups, and a [`MatmulKernel::Vector`] kernel binding more storage buffers
/// than the device allows per stage to [`MatmulKernel::Blocked`].
pub fn kernel_for(device: &Device, form: MatmulForm, dims: MatmulDims) -> MatmulKernel {
    let device_type = device.adapter().device_type;
    let mut choice = select_kernel(device_type, device.subgroup_min_size(), form, dims);
    if choice == MatmulKernel::Broadcast && !super::matmul_broadcast::fits(device, dims) {
        choice = select_kernel(device_type, None, form, dims);
    }
    if choice == MatmulKernel::Vector && !super::matmul_vector::runs(device, form, dims) {
        choice = MatmulKernel::Blocked;
    }
    choice
}
