//! Matrix multiplication: `C = op(A)·op(B)`, with an optional bias row and accumulation.
//!
//! The three forms a Linear layer needs are specialisations of one kernel, so no transpose is
//! ever materialised: `A·B` (forward), `Aᵀ·B` (weight gradient) and `A·Bᵀ` (input gradient).
//! Five kernel families exist ([`MatmulKernel`]); [`select_kernel`] picks one per device and
//! shape.
//!
//! This file is the product's vocabulary (forms, sizes, kernel families, options) and the
//! device's choice among the families; each family's launcher is a file of its own:
//! `plain.rs` (the blocked, tiled and texture kernels of `shaders/matmul.wgsl`, and [`Matmul`],
//! the prepared product whichever family runs it), `vector.rs` and `broadcast.rs`.

/// The WGSL of a fused family (`shaders/<family>`): after the pixel, activation and optimiser
/// functions, the fused bias gradient and the prologues and epilogues the fused families share
/// (`shaders/matmul_fused.wgsl`).
macro_rules! fused_wgsl {
    ($family:literal) => {
        concat!(
            include_str!("../../../shaders/vector_params.wgsl"),
            include_str!("../../../shaders/pixels.wgsl"),
            include_str!("../../../shaders/hash.wgsl"),
            include_str!("../../../shaders/activation_functions.wgsl"),
            include_str!("../../../shaders/optim_functions.wgsl"),
            include_str!("../../../shaders/bias_grad.wgsl"),
            include_str!("../../../shaders/matmul_fused.wgsl"),
            include_str!(concat!("../../../shaders/", $family))
        )
    };
}

pub mod broadcast;
mod plain;
pub mod staged;
pub(crate) mod tiled;
pub mod vector;

pub use plain::{Matmul, SHADER};
pub(crate) use plain::{PackParams, Params, bind};

use super::Record;
use super::activation::{Activation, ActivationState};
use crate::device::{Device, Profile};
use crate::tensor::Tensor;
use crate::{Error, Result};

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
    /// `matmul_tiled`: tiles of C from 32×32 to 128×128 (by the output's size) with up to
    /// 8×8 outputs per invocation, operand slices double-buffered in workgroup memory and
    /// read as vec4. For real GPUs.
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
    /// ([`matmul::broadcast::available`](broadcast::available)) and the shapes
    /// [`MatmulKernel::supports`] names; the fastest family on lavapipe.
    Broadcast,
    /// `matmul_staged_*` (`shaders/matmul_staged.wgsl`): the vector family's products and
    /// fused epilogues for GPUs, with 16×64 tiles of C per workgroup of 16×16 invocations,
    /// operand tiles staged in workgroup memory, one vec4 of C per invocation. The shapes
    /// [`MatmulKernel::supports`] names; the fused family of the [`Profile::Gpu`].
    Staged,
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
    pub const ALIGNED: [MatmulKernel; 3] = [
        MatmulKernel::Vector,
        MatmulKernel::Broadcast,
        MatmulKernel::Staged,
    ];

    /// Whether this kernel computes `op(A)·op(B)` of `m×k` by `k×n` in `form` (on a device
    /// that has it: see [`MatmulKernel::Broadcast`]).
    pub fn supports(self, form: MatmulForm, dims: MatmulDims) -> bool {
        match self {
            MatmulKernel::Vector => vector::supports(form, dims),
            MatmulKernel::Broadcast => broadcast::supports(form, dims),
            MatmulKernel::Staged => staged::supports(form, dims),
            _ => true,
        }
    }
}

/// Picks the kernel for a device profile, its smallest subgroup (`None`: no subgroup
/// operations) and a product of `m×k` by `k×n` in `form`.
///
/// - The [`Profile::Cpu`] (lavapipe, SwiftShader, WARP) runs invocations as SIMD lanes of a thread;
///   a workgroup barrier there means switching between invocations, and on lavapipe
///   (Mesa 22.3) every storage-buffer or workgroup-memory load is a loop over the lanes with a
///   bounds check (~6.5 ns per lane and value), where a texel fetch is one gather (~0.6 ns per
///   lane and value) and a subgroup broadcast a register shuffle. So: [`Broadcast`] (texel
///   fetches, broadcast rows, ~20 GFLOP/s) where the shape lines up and subgroups hold at
///   least 8, else [`Vector`] (named vec4 accumulators over storage buffers, ~1.7 GFLOP/s)
///   where the shape lines up, else [`Blocked`] (~1.8); never [`Tiled`] (~0.6). [`Texture`]
///   packs both operands with dispatches first and rounds differently from the fused kernels
///   of a captured step.
/// - The [`Profile::Gpu`] reuses operands from workgroup memory: [`Tiled`], unless the output is so thin
///   (fewer than 16 rows or columns) that most of the smallest tile, 32×32, would idle.
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
    profile: Profile,
    subgroup_min_size: Option<u32>,
    form: MatmulForm,
    dims: MatmulDims,
) -> MatmulKernel {
    let broadcast = subgroup_min_size.is_some_and(|size| size >= broadcast::MIN_SUBGROUP_SIZE)
        && MatmulKernel::Broadcast.supports(form, dims);
    let MatmulDims { m, n, .. } = dims;
    match profile {
        Profile::Cpu if broadcast => MatmulKernel::Broadcast,
        Profile::Cpu if MatmulKernel::Vector.supports(form, dims) => MatmulKernel::Vector,
        Profile::Cpu => MatmulKernel::Blocked,
        Profile::Gpu if m < 16 || n < 16 => MatmulKernel::Blocked,
        Profile::Gpu => MatmulKernel::Tiled,
    }
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
    let profile = device.profile();
    let subgroups = device
        .subgroup_min_size()
        .filter(|_| broadcast::available(device));
    let mut choice = select_kernel(profile, subgroups, form, dims);
    if choice == MatmulKernel::Broadcast && !broadcast::fits(device, dims) {
        choice = select_kernel(profile, None, form, dims);
    }
    if choice == MatmulKernel::Vector && !vector::runs(device, form, dims) {
        choice = MatmulKernel::Blocked;
    }
    choice
}
