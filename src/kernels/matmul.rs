//! Matrix multiplication: `C = op(A)·op(B)`, with an optional bias row and accumulation.
//!
//! The three forms a Linear layer needs are specialisations of one kernel, so no transpose is
//! ever materialised: `A·B` (forward), `Aᵀ·B` (weight gradient) and `A·Bᵀ` (input gradient).
//! Two kernel families exist ([`MatmulKernel`]); [`select_kernel`] picks one per device and
//! shape.

use std::sync::Arc;

use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/matmul.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul",
    wgsl: include_str!("../../shaders/matmul.wgsl"),
};

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

    /// `(M, K, N)` of the product, or a shape error.
    pub fn dims(self, a: &crate::Shape, b: &crate::Shape) -> Result<(usize, usize, usize)> {
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
        Ok((m, ka, n))
    }
}

/// The two kernel families of `shaders/matmul.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// `matmul_blocked`: an 8×8 register block per invocation and no workgroup memory. Best
    /// on CPU devices (lavapipe), where barriers and memory loads are expensive.
    Blocked,
    /// `matmul_tiled`: 64×64 tiles staged in workgroup memory. Best on real GPUs.
    Tiled,
}

impl MatmulKernel {
    /// Both kernels, for tests and benchmarks.
    pub const ALL: [MatmulKernel; 2] = [MatmulKernel::Blocked, MatmulKernel::Tiled];
}

/// Picks the kernel for a device type and a product of `m×k` by `k×n`.
///
/// - CPU devices (lavapipe, SwiftShader, WARP) run invocations as SIMD lanes of a thread, and a
///   workgroup barrier there means switching between invocations: the tiled kernel measured
///   ~1 GFLOP/s on lavapipe against ~15+ for the register-blocked one. Always [`Blocked`].
/// - Real GPUs reuse operands from workgroup memory: [`Tiled`], unless the output is so thin
///   (fewer than 16 rows or columns) that most of a 64×64 tile would idle.
///
/// [`Blocked`]: MatmulKernel::Blocked
/// [`Tiled`]: MatmulKernel::Tiled
pub fn select_kernel(device_type: wgpu::DeviceType, m: usize, n: usize, _k: usize) -> MatmulKernel {
    match device_type {
        wgpu::DeviceType::Cpu => MatmulKernel::Blocked,
        _ if m < 16 || n < 16 => MatmulKernel::Blocked,
        _ => MatmulKernel::Tiled,
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
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    kernel: MatmulKernel,
}

const BLOCK: usize = 8;
const TILE: usize = 64;

impl Matmul {
    /// Prepares `c = op(a)·op(b)` with `options`. `c` must be M×N and distinct from the inputs.
    pub fn new(a: &Tensor, b: &Tensor, c: &Tensor, options: &MatmulOptions<'_>) -> Result<Self> {
        let device = a.device();
        let form = options.form;
        let op = format!("matmul {form:?}");
        let (m, k, n) = form.dims(a.shape(), b.shape())?;
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
            .unwrap_or_else(|| select_kernel(device.adapter().device_type, m, n, k));

        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        let mut constants = vec![
            ("TRANS_A", flag(form.trans_a())),
            ("TRANS_B", flag(form.trans_b())),
            ("HAS_BIAS", flag(options.bias.is_some())),
            ("ACCUMULATE", flag(options.accumulate)),
        ];
        let (entry_point, workgroups) = match kernel {
            MatmulKernel::Blocked => {
                // A narrow output needs fewer invocations per workgroup.
                let lanes = n.div_ceil(BLOCK).next_power_of_two().clamp(1, 64);
                constants.push(("BLOCKED_WG", lanes as f64));
                let x = super::groups(device, &op, n, lanes * BLOCK)?;
                let y = super::groups(device, &op, m, BLOCK)?;
                ("matmul_blocked", [x, y, 1])
            }
            MatmulKernel::Tiled => {
                let x = super::groups(device, &op, n, TILE)?;
                let y = super::groups(device, &op, m, TILE)?;
                ("matmul_tiled", [x, y, 1])
            }
        };
        let pipeline = device.pipeline(&SHADER, entry_point, &constants)?;

        let params: [u32; 4] = [m as u32, n as u32, k as u32, 0];
        let uniform = device.uniform_buffer("matmul params", bytemuck::cast_slice(&params));
        // Without a bias the binding is still declared; B stands in and is never read.
        let bias = options.bias.unwrap_or(b);
        let bind_group = device
            .wgpu_device()
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("matmul"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: a.binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: b.binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: bias.binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: c.binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: uniform.as_entire_binding(),
                    },
                ],
            });
        Ok(Self {
            pipeline,
            bind_group,
            workgroups,
            kernel,
        })
    }

    /// The kernel family this matmul runs.
    pub fn kernel(&self) -> MatmulKernel {
        self.kernel
    }

    /// Records the dispatch.
    pub fn record(&self, encoder: &mut Encoder) {
        encoder.dispatch(&self.pipeline, &self.bind_group, self.workgroups);
    }
}

/// Computes `c = op(a)·op(b)` (plus options) into an existing tensor and submits it.
pub fn matmul_into(a: &Tensor, b: &Tensor, c: &Tensor, options: &MatmulOptions<'_>) -> Result<()> {
    let plan = Matmul::new(a, b, c, options)?;
    let mut encoder = a.device().encoder();
    plan.record(&mut encoder);
    encoder.submit()
}

/// Computes `op(a)·op(b)` (plus options) into a new M×N tensor and submits it.
pub fn matmul(a: &Tensor, b: &Tensor, options: &MatmulOptions<'_>) -> Result<Tensor> {
    if options.accumulate {
        return Err(Error::InvalidArgument(
            "matmul: `accumulate` adds into an existing output; use `matmul_into`".into(),
        ));
    }
    let (m, _, n) = options.form.dims(a.shape(), b.shape())?;
    let c = Tensor::uninit(a.device(), [m, n])?;
    matmul_into(a, b, &c, options)?;
    Ok(c)
}

/// The device's choice for an `m×k·k×n` product.
pub fn kernel_for(device: &Device, m: usize, n: usize, k: usize) -> MatmulKernel {
    select_kernel(device.adapter().device_type, m, n, k)
}
