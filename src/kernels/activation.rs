//! Activations, forward and backward, with PyTorch's semantics and defaults.
//!
//! Every activation runs as its own elementwise kernel (`shaders/activation.wgsl`) or as the
//! fused epilogue of a matmul ([`MatmulOptions::activation`](super::matmul::MatmulOptions)):
//! both use the same WGSL functions (`shaders/activation_functions.wgsl`).

use super::reduce::{Axis, Sum, TermsThenSum};
use super::step::{StepInput, StepValue};
use super::{Dispatch, Entry, Record, Uniform, entry, flag, grid};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/activation.wgsl`, after `shaders/grid.wgsl` and the activation functions.
pub const SHADER: ShaderSource = ShaderSource {
    name: "activation",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/hash.wgsl"),
        include_str!("../../shaders/activation_functions.wgsl"),
        include_str!("../../shaders/activation.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("activation_forward", 3),
        ("activation_backward", 4),
        ("activation_backward_from_output", 3),
        ("prelu_slope_terms", 3),
    ],
};

super::bindings! {
    /// The binding numbers of `shaders/activation.wgsl`, by the WGSL variable each names.
    bind:
    EW_X = 0,
    EW_DY = 1,
    EW_OUT = 2,
    EW = 3,
}

super::bindings! {
    /// The binding numbers of `shaders/activation_functions.wgsl`, prepended to other shaders.
    functions_bind:
    ACT_SLOPES = 20,
    ACT_RT = 21,
}

/// The `EwParams` uniform of `shaders/activation.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct EwParams {
    pub count: u32,
    pub rows: u32,
    pub features: u32,
    pub _pad: u32,
}

/// The `ActRuntime` uniform of `shaders/activation_functions.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ActRuntime {
    pub seed: u32,
    pub step: u32,
    pub features: u32,
    pub slope_count: u32,
}

/// An activation function (PyTorch semantics; the defaults are PyTorch's).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// `y = x`.
    #[default]
    Identity,
    /// `y = max(x, 0)`; the derivative at 0 is 0.
    Relu,
    /// `y = x` for `x > 0`, else `negative_slope · x` (PyTorch default 0.01).
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f32,
    },
    /// Leaky ReLU with learnable slopes, one shared or one per feature (the last dimension),
    /// passed as [`ActivationState::prelu_slopes`]. PyTorch initialises them to 0.25.
    Prelu,
    /// Randomised leaky ReLU: while training, each element's slope is drawn from
    /// U(lower, upper) by a counter-based RNG keyed by seed, step and element index (so runs
    /// reproduce, and the backward pass sees the same slopes); in evaluation the slope is
    /// `(lower + upper) / 2`. PyTorch defaults: 1/8 and 1/3.
    Rrelu {
        /// Lower bound of the slope.
        lower: f32,
        /// Upper bound of the slope.
        upper: f32,
    },
    /// `y = x` for `x > 0`, else `alpha · (eˣ − 1)` (PyTorch default α = 1).
    Elu {
        /// Scale of the negative part.
        alpha: f32,
    },
    /// `y = 1 / (1 + e⁻ˣ)`, computed without overflow for any x.
    Sigmoid,
    /// `y = tanh(x)`.
    Tanh,
    /// Exact GELU, `x·Φ(x) = x/2·(1 + erf(x/√2))`. WGSL has no `erf`; the kernels use
    /// Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷).
    Gelu,
    /// GELU's tanh approximation, `x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluTanh,
    /// The threshold (Heaviside step) function of the perceptron: `1` if `x > threshold`,
    /// else `0`. Its derivative is 0 almost everywhere, so it cannot be trained by gradient
    /// descent: asking for its backward pass is [`Error::NoGradient`].
    Step {
        /// The threshold.
        threshold: f32,
    },
}

impl Activation {
    /// Leaky ReLU with PyTorch's default slope, 0.01.
    pub const LEAKY_RELU: Activation = Activation::LeakyRelu {
        negative_slope: 0.01,
    };
    /// RReLU with PyTorch's default bounds, 1/8 and 1/3.
    pub const RRELU: Activation = Activation::Rrelu {
        lower: 1.0 / 8.0,
        upper: 1.0 / 3.0,
    };
    /// ELU with PyTorch's default α = 1.
    pub const ELU: Activation = Activation::Elu { alpha: 1.0 };
    /// The step function at 0.
    pub const STEP: Activation = Activation::Step { threshold: 0.0 };

    /// Every activation with default parameters, for tests and demos.
    pub const ALL: [Activation; 11] = [
        Activation::Identity,
        Activation::Relu,
        Activation::LEAKY_RELU,
        Activation::Prelu,
        Activation::RRELU,
        Activation::ELU,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::STEP,
    ];

    /// A short lowercase name (`relu`, `leaky_relu`, …), as used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Prelu => "prelu",
            Activation::Rrelu { .. } => "rrelu",
            Activation::Elu { .. } => "elu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Step { .. } => "step",
        }
    }

    /// Parses a [`name`](Self::name), with default parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|a| a.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown activation `{name}`: expected one of {}",
                    names.join(", ")
                ))
            })
    }

    /// Whether the derivative is a function of the output (ReLU, sigmoid, tanh, identity), so
    /// a backward pass can save the output instead of the input (dfdx's `DF_USES_FX`): then a
    /// matmul can write the activation's output directly and the layer below can fold the
    /// derivative into its input-gradient matmul.
    pub fn derivative_from_output(self) -> bool {
        matches!(
            self,
            Activation::Identity | Activation::Relu | Activation::Sigmoid | Activation::Tanh
        )
    }

    /// Whether the backward pass exists (everything but [`Activation::Step`]).
    pub fn has_gradient(self) -> bool {
        !matches!(self, Activation::Step { .. })
    }

    /// The id and parameters the WGSL functions are specialised with.
    pub(crate) fn wgsl_id_and_params(self) -> (u32, f32, f32) {
        match self {
            Activation::Identity => (0, 0.0, 0.0),
            Activation::Relu => (1, 0.0, 0.0),
            Activation::LeakyRelu { negative_slope } => (2, negative_slope, 0.0),
            Activation::Prelu => (3, 0.0, 0.0),
            Activation::Rrelu { lower, upper } => (4, lower, upper),
            Activation::Elu { alpha } => (5, alpha, 0.0),
            Activation::Sigmoid => (6, 0.0, 0.0),
            Activation::Tanh => (7, 0.0, 0.0),
            Activation::Gelu => (8, 0.0, 0.0),
            Activation::GeluTanh => (9, 0.0, 0.0),
            Activation::Step { threshold } => (10, threshold, 0.0),
        }
    }
}

/// What some activations need beyond their input: PReLU's slopes, RReLU's mode and RNG key.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActivationState<'a> {
    /// PReLU's slopes: shape `[1]` (shared) or `[features]`.
    pub prelu_slopes: Option<&'a Tensor>,
    /// Training mode (RReLU draws random slopes) or evaluation (mean slope).
    pub training: bool,
    /// RReLU's RNG seed.
    pub seed: u32,
    /// RReLU's RNG step: change it every training step for fresh slopes.
    pub step: u32,
}

/// The pipeline constants, the slopes binding and the runtime uniform for `activation`
/// applied to a tensor whose last dimension is `features`. Shared by every kernel that
/// includes the activation functions.
#[derive(Debug)]
pub(crate) struct ActivationBinding {
    pub constants: Vec<(&'static str, f64)>,
    pub runtime: wgpu::Buffer,
    /// RReLU: the runtime's RNG key changes per step.
    keyed: bool,
}

impl ActivationBinding {
    pub fn new(
        device: &Device,
        op: &str,
        activation: Activation,
        state: &ActivationState<'_>,
        features: usize,
    ) -> Result<Self> {
        let slope_count = match (activation, state.prelu_slopes) {
            (Activation::Prelu, None) => {
                return Err(Error::InvalidArgument(format!(
                    "{op}: PReLU needs its slopes (ActivationState::prelu_slopes)"
                )));
            }
            (Activation::Prelu, Some(slopes)) => {
                let count = slopes.numel();
                if slopes.shape().dims().len() != 1 || (count != 1 && count != features) {
                    return Err(Error::shape(
                        op,
                        format!("PReLU slopes of shape [1] or [{features}]"),
                        slopes.shape(),
                    ));
                }
                count as u32
            }
            _ => 1,
        };
        let (id, p0, p1) = activation.wgsl_id_and_params();
        let constants = vec![
            ("ACTIVATION", f64::from(id)),
            ("ACT_P0", f64::from(p0)),
            ("ACT_P1", f64::from(p1)),
            ("ACT_TRAINING", flag(state.training)),
        ];
        let features = features.max(1) as u32;
        let words = ActRuntime {
            seed: state.seed,
            step: state.step,
            features,
            slope_count,
        };
        let runtime = device.uniform_buffer("activation runtime", bytemuck::bytes_of(&words));
        Ok(Self {
            constants,
            runtime,
            keyed: matches!(activation, Activation::Rrelu { .. }),
        })
    }

    /// Bind-group entries 20 (slopes; `fallback` stands in when there are none) and 21.
    pub fn entries<'a>(
        &'a self,
        state: &ActivationState<'a>,
        fallback: &'a Tensor,
    ) -> [Entry<'a>; 2] {
        let slopes = state.prelu_slopes.unwrap_or(fallback);
        [
            entry(functions_bind::ACT_SLOPES, slopes),
            entry(functions_bind::ACT_RT, self.runtime.as_entire_binding()),
        ]
    }

    /// Where RReLU reads its RNG key (`seed`, `step`: the runtime's first two words), when the
    /// activation is RReLU.
    pub fn step_input(&self) -> Option<StepInput> {
        self.keyed.then(|| StepInput {
            value: StepValue::RngKey,
            buffer: self.runtime.clone(),
            offset: std::mem::offset_of!(ActRuntime, seed) as u64,
        })
    }
}

fn last_dim(t: &Tensor) -> usize {
    t.shape().dims().last().copied().unwrap_or(1)
}

fn same_shape(op: &str, expected: &Tensor, found: &Tensor) -> Result<()> {
    expected.expect_dtype(op, crate::DType::F32)?;
    found.expect_dtype(op, crate::DType::F32)?;
    if expected.shape() != found.shape() {
        return Err(Error::shape(op, expected.shape(), found.shape()));
    }
    Ok(())
}

/// An elementwise activation pass (`y = f(x)` or `dx = dy·f'(x)`), prepared once.
#[derive(Debug)]
pub struct ActivationKernel {
    dispatch: Dispatch,
    binding: ActivationBinding,
    device: Device,
}

/// PReLU's slope gradient, prepared once: per-element terms, then a fixed-order sum per
/// feature (or in total, for a shared slope).
#[derive(Debug)]
pub struct PreluSlopeGrad {
    kernels: TermsThenSum,
}

impl PreluSlopeGrad {
    /// Prepares `dslopes[j] = Σ dy·x` over the elements with `x ≤ 0` that use slope `j`;
    /// `dslopes` has the slopes' shape, `[1]` or `[features]`.
    pub fn new(x: &Tensor, dy: &Tensor, dslopes: &Tensor) -> Result<Self> {
        Self::with_accumulate(x, dy, dslopes, false)
    }

    /// Like [`PreluSlopeGrad::new`]; `accumulate` adds to `dslopes` instead of overwriting.
    pub fn with_accumulate(
        x: &Tensor,
        dy: &Tensor,
        dslopes: &Tensor,
        accumulate: bool,
    ) -> Result<Self> {
        let op = "prelu slope gradient";
        same_shape(op, x, dy)?;
        dslopes.expect_dtype(op, crate::DType::F32)?;
        let device = x.device();
        let features = last_dim(x);
        let count = dslopes.numel();
        if dslopes.shape().dims().len() != 1 || (count != 1 && count != features) {
            return Err(Error::shape(
                op,
                format!("slopes of shape [1] or [{features}]"),
                dslopes.shape(),
            ));
        }
        let rows = x.numel().checked_div(features).unwrap_or(0);
        let terms = Tensor::uninit(device, [rows, features])?;
        let params = EwParams {
            count: x.numel() as u32,
            rows: rows as u32,
            features: features as u32,
            _pad: 0,
        };
        let uniform = Uniform::new(device, "elementwise params", bytemuck::bytes_of(&params))?;
        let pipeline = device.pipeline(&SHADER, "prelu_slope_terms", &[])?;
        let entries = [
            entry(bind::EW_X, x),
            entry(bind::EW_DY, dy),
            entry(bind::EW_OUT, &terms),
            entry(bind::EW, &uniform),
        ];
        let terms_pass =
            Dispatch::new(device, pipeline, op, &entries, grid(device, op, x.numel())?);
        let sum = if count == 1 {
            Sum::total(&terms, dslopes, 1.0, accumulate)?
        } else {
            Sum::new(&terms, dslopes, Axis::Columns, 1.0, accumulate)?
        };
        Ok(Self {
            kernels: TermsThenSum {
                pass: terms_pass,
                sum,
                _terms: terms,
            },
        })
    }

    /// Records the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        self.kernels.record(encoder);
    }
}

impl ActivationKernel {
    /// Prepares `y = activation(x)`.
    pub fn forward(
        x: &Tensor,
        y: &Tensor,
        activation: Activation,
        state: &ActivationState<'_>,
    ) -> Result<Self> {
        let op = format!("{} forward", activation.name());
        same_shape(&op, x, y)?;
        Self::build(&op, "activation_forward", x, None, y, activation, state)
    }

    /// Prepares `dx = dy · activation'(x)`, where `x` is the forward pass's input.
    pub fn backward(
        x: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        activation: Activation,
        state: &ActivationState<'_>,
    ) -> Result<Self> {
        let op = format!("{} backward", activation.name());
        if !activation.has_gradient() {
            return Err(Error::NoGradient {
                op: activation.name().to_string(),
            });
        }
        same_shape(&op, x, dy)?;
        same_shape(&op, x, dx)?;
        Self::build(
            &op,
            "activation_backward",
            x,
            Some(dy),
            dx,
            activation,
            state,
        )
    }

    /// Prepares `dx = dy · activation'(x)` from the forward pass's *output* `y`, for the
    /// activations with [`Activation::derivative_from_output`].
    pub fn backward_from_output(
        y: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        activation: Activation,
    ) -> Result<Self> {
        let op = format!("{} backward from output", activation.name());
        if !activation.derivative_from_output() {
            return Err(Error::InvalidArgument(format!(
                "{op}: the derivative of {} is not a function of its output",
                activation.name()
            )));
        }
        same_shape(&op, y, dy)?;
        same_shape(&op, y, dx)?;
        Self::build(
            &op,
            "activation_backward_from_output",
            y,
            Some(dy),
            dx,
            activation,
            &ActivationState::default(),
        )
    }

    fn build(
        op: &str,
        entry_point: &str,
        x: &Tensor,
        dy: Option<&Tensor>,
        out: &Tensor,
        activation: Activation,
        state: &ActivationState<'_>,
    ) -> Result<Self> {
        let device = x.device();
        let features = last_dim(x);
        let binding = ActivationBinding::new(device, op, activation, state, features)?;
        let count = out.numel();
        let rows = x.numel().checked_div(features).unwrap_or(0);
        let params = EwParams {
            count: count as u32,
            rows: rows as u32,
            features: features as u32,
            _pad: 0,
        };
        let uniform = Uniform::new(device, "elementwise params", bytemuck::bytes_of(&params))?;
        let pipeline = device.pipeline(&SHADER, entry_point, &binding.constants)?;
        let mut entries = vec![
            entry(bind::EW_X, x),
            entry(bind::EW_OUT, out),
            entry(bind::EW, &uniform),
        ];
        // act_grad_from_output needs neither the slopes nor the runtime uniform.
        if entry_point != "activation_backward_from_output" {
            entries.extend(binding.entries(state, x));
        }
        if let Some(dy) = dy {
            entries.push(entry(bind::EW_DY, dy));
        }
        let workgroups = grid(device, op, count)?;
        let dispatch = Dispatch::new(device, pipeline, op, &entries, workgroups);
        Ok(Self {
            dispatch,
            binding,
            device: device.clone(),
        })
    }

    /// Records the dispatch.
    pub fn record(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }

    /// Sets RReLU's RNG key for the next recorded passes (queued; no host sync).
    pub fn set_rng(&self, seed: u32, step: u32) {
        super::step::write_rng(&self.device, &self.step_inputs(), seed, step);
    }

    /// RReLU's key, when the activation is RReLU.
    pub(crate) fn step_inputs(&self) -> Vec<StepInput> {
        self.binding.step_input().into_iter().collect()
    }
}

fn run(kernel: ActivationKernel, out: Tensor) -> Result<Tensor> {
    kernel.submit(out.device())?;
    Ok(out)
}

/// `activation(x)` into a new tensor, submitted.
pub fn activation_forward(
    x: &Tensor,
    activation: Activation,
    state: &ActivationState<'_>,
) -> Result<Tensor> {
    let y = Tensor::uninit(x.device(), x.shape().clone())?;
    let kernel = ActivationKernel::forward(x, &y, activation, state)?;
    run(kernel, y)
}

/// `dy · activation'(x)` into a new tensor, submitted.
pub fn activation_backward(
    x: &Tensor,
    dy: &Tensor,
    activation: Activation,
    state: &ActivationState<'_>,
) -> Result<Tensor> {
    let dx = Tensor::uninit(x.device(), x.shape().clone())?;
    let kernel = ActivationKernel::backward(x, dy, &dx, activation, state)?;
    run(kernel, dx)
}

/// PReLU's slope gradient into a new tensor shaped like `slopes`, submitted.
pub fn prelu_slope_grad(x: &Tensor, dy: &Tensor, slopes: &Tensor) -> Result<Tensor> {
    let dslopes = Tensor::uninit(x.device(), slopes.shape().clone())?;
    let kernel = PreluSlopeGrad::new(x, dy, &dslopes)?;
    kernel.submit(x.device())?;
    Ok(dslopes)
}
