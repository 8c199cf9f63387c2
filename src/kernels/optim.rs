//! Optimisers on the device, updating parameters in place with PyTorch's formulas:
//! SGD (weight decay, momentum with dampening, Nesterov), Adam and AdamW.
//!
//! Nothing is read back to the host: the step-dependent numbers (Adam's bias corrections,
//! the first-step flag of momentum) are computed on the host in f64 and written to a uniform
//! before each step's submit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytemuck::Zeroable;

use super::{Dispatch, Entry, Uniform, entry, flag, grid};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/optim.wgsl`, after the shared `shaders/grid.wgsl` and the update rules.
pub const SHADER: ShaderSource = ShaderSource {
    name: "optim",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/optim_functions.wgsl"),
        include_str!("../../shaders/optim.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[("optim_step", 4)],
};

super::bindings! {
    /// The binding numbers of `shaders/optim.wgsl`, by the WGSL variable each names.
    bind:
    PARAM = 0,
    GRAD = 1,
    STATE1 = 2,
    STATE2 = 3,
    SIZE = 5,
}

super::bindings! {
    /// The binding numbers of `shaders/optim_functions.wgsl`, prepended to other shaders.
    functions_bind:
    H = 30,
}

/// An optimiser and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0 for plain SGD).
        momentum: f32,
        /// Dampening of the momentum.
        dampening: f32,
        /// Nesterov momentum (needs momentum > 0 and no dampening).
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// `torch.optim.Adam` (`decoupled: false`) or `torch.optim.AdamW` (`decoupled: true`).
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty (Adam) or decoupled decay (AdamW).
        weight_decay: f32,
        /// AdamW's decoupled weight decay.
        decoupled: bool,
    },
}

impl OptimizerConfig {
    /// Plain SGD.
    pub fn sgd(lr: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// SGD with momentum.
    pub fn momentum(lr: f32, momentum: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8; no weight decay).
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW with PyTorch's defaults (as Adam, and weight decay 0.01).
    pub fn adamw(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }

    /// The same optimiser with another learning rate.
    pub fn with_lr(mut self, new_lr: f32) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr = new_lr,
        }
        self
    }

    /// Checks the hyper-parameters as PyTorch does.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        let lr = self.lr();
        if !(lr.is_finite() && lr >= 0.0) {
            return bad(format!(
                "learning rate {lr} must be finite and non-negative"
            ));
        }
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad(format!(
                        "momentum {momentum} must be in [0, 1): at 1 or more the velocity grows \
                         without bound"
                    ));
                }
                if !weight_decay.is_finite() || weight_decay < 0.0 {
                    return bad(format!("weight decay {weight_decay} must be non-negative"));
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return bad("Nesterov momentum needs momentum > 0 and zero dampening".into());
                }
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                for (name, beta) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&beta) {
                        return bad(format!("{name} {beta} must be in [0, 1)"));
                    }
                }
                if eps.is_nan() || eps < 0.0 {
                    return bad(format!("eps {eps} must be non-negative"));
                }
                if !weight_decay.is_finite() || weight_decay < 0.0 {
                    return bad(format!("weight decay {weight_decay} must be non-negative"));
                }
            }
        }
        Ok(())
    }

    /// `(OPTIM, NESTEROV)` of `shaders/optim_functions.wgsl`.
    pub(crate) fn constants(&self) -> [(&'static str, f64); 2] {
        let (kind, nesterov) = match *self {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => (if momentum > 0.0 { 2.0 } else { 1.0 }, nesterov),
            OptimizerConfig::Adam { decoupled, .. } => (if decoupled { 4.0 } else { 3.0 }, false),
        };
        [("OPTIM", kind), ("NESTEROV", flag(nesterov))]
    }

    /// Whether the rule reads and writes its first and its second per-element state (the WGSL
    /// side's `optim_uses_state1` and `optim_uses_state2`).
    pub(crate) fn uses_states(&self) -> (bool, bool) {
        let kind = self.constants()[0].1;
        (kind >= 2.0, kind >= 3.0)
    }

    /// Whether the rule keeps per-element state (momentum, or Adam's moments).
    fn stateful(&self) -> bool {
        !matches!(*self, OptimizerConfig::Sgd { momentum, .. } if momentum == 0.0)
    }

    /// The [`Hyper`] uniform for step `t` (1-based).
    fn hyper(&self, t: u64) -> Hyper {
        let mut hyper = Hyper {
            lr: self.lr(),
            bias_correction2_sqrt: 1.0,
            first_step: u32::from(t == 1),
            ..Hyper::zeroed()
        };
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                dampening,
                weight_decay,
                ..
            } => {
                hyper.weight_decay = weight_decay;
                hyper.momentum = momentum;
                hyper.dampening = dampening;
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                let bc1 = 1.0 - f64::from(beta1).powf(t as f64);
                let bc2 = 1.0 - f64::from(beta2).powf(t as f64);
                hyper.weight_decay = weight_decay;
                hyper.beta1 = beta1;
                hyper.beta2 = beta2;
                hyper.eps = eps;
                hyper.step_size = (f64::from(lr) / bc1) as f32;
                hyper.bias_correction2_sqrt = bc2.sqrt() as f32;
            }
        }
        hyper
    }
}

/// The `Hyper` uniform of `shaders/optim_functions.wgsl`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Hyper {
    pub lr: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub step_size: f32,
    pub bias_correction2_sqrt: f32,
    pub first_step: u32,
    pub _pad: [u32; 2],
}

/// The `Size` uniform of `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Size {
    pub count: u32,
    pub _pad: [u32; 3],
}

/// What every update of one optimiser shares: its configuration, its step count and the
/// hyper-parameter uniform that each step rewrites (the standalone update and any fused
/// epilogue read the same buffer).
#[derive(Debug)]
pub(crate) struct OptimizerShared {
    device: Device,
    config: Mutex<OptimizerConfig>,
    steps: AtomicU64,
    pub hyper: wgpu::Buffer,
}

/// The optimiser uniform (binding 30 of `optim_functions.wgsl`) of a kernel that may fuse an
/// update: the optimiser's own, or a default one where there is none, since the binding exists
/// either way.
#[derive(Debug)]
pub(crate) enum HyperBinding {
    Optimizer(Arc<OptimizerShared>),
    Unused(wgpu::Buffer),
}

impl HyperBinding {
    pub fn new(device: &Device, update: Option<&OptimStep>) -> Self {
        match update {
            Some(step) => HyperBinding::Optimizer(Arc::clone(&step.shared)),
            None => HyperBinding::Unused(
                device.uniform_buffer("no optimiser", bytemuck::bytes_of(&Hyper::default())),
            ),
        }
    }

    /// The update rule's override constants (none without an optimiser).
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        match self {
            HyperBinding::Optimizer(shared) => shared.config().constants().to_vec(),
            HyperBinding::Unused(_) => Vec::new(),
        }
    }

    pub fn entry(&self) -> Entry<'_> {
        let buffer = match self {
            HyperBinding::Optimizer(shared) => &shared.hyper,
            HyperBinding::Unused(buffer) => buffer,
        };
        entry(functions_bind::H, buffer.as_entire_binding())
    }
}

impl OptimizerShared {
    /// Counts a step and writes its numbers; they reach the device with the next submit.
    pub fn tick(&self) {
        let hyper = self.next_hyper();
        self.device
            .write_buffer(&self.hyper, 0, bytemuck::bytes_of(&hyper));
    }

    /// Counts a step and gives its numbers, from the configuration as it is now (the
    /// schedule's learning rate), for a plan's table of per-step inputs.
    pub fn next_hyper(&self) -> Hyper {
        let t = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        self.config().hyper(t)
    }

    pub fn config(&self) -> OptimizerConfig {
        *self.config.lock().expect("optimizer config lock")
    }
}

/// One parameter with its gradient and state (state tensors are `[1]` placeholders for a
/// stateless rule, so every binding has a buffer).
#[derive(Debug)]
pub(crate) struct OptimSlot {
    pub param: Tensor,
    pub grad: Tensor,
    pub state1: Tensor,
    pub state2: Tensor,
}

impl OptimSlot {
    fn share(&self) -> Self {
        Self {
            param: self.param.share(),
            grad: self.grad.share(),
            state1: self.state1.share(),
            state2: self.state2.share(),
        }
    }
}

/// One parameter's update through `optim_step`, as a capture op lowers it.
#[derive(Debug)]
pub(crate) struct OptimStep {
    pub shared: Arc<OptimizerShared>,
    pub slot: OptimSlot,
}

impl OptimStep {
    pub fn kernel(&self) -> Result<Dispatch> {
        let device = &self.shared.device;
        let config = self.shared.config();
        let op = "optim_step";
        let pipeline = device.pipeline(&SHADER, op, &config.constants())?;
        let count = self.slot.param.numel();
        let size = Size {
            count: count as u32,
            ..Size::default()
        };
        let size = Uniform::new(device, "optimizer size", bytemuck::bytes_of(&size))?;
        let slot = &self.slot;
        let entries = vec![
            entry(bind::PARAM, &slot.param),
            entry(bind::GRAD, &slot.grad),
            entry(bind::SIZE, &size),
            entry(functions_bind::H, self.shared.hyper.as_entire_binding()),
            // Mentioned by every specialisation; [1] placeholders for a stateless rule.
            entry(bind::STATE1, &slot.state1),
            entry(bind::STATE2, &slot.state2),
        ];
        Ok(Dispatch::new(
            device,
            pipeline,
            op,
            &entries,
            grid(device, op, count)?,
        ))
    }
}

/// An optimiser bound to its parameters and gradients, with its state on the device.
#[derive(Debug)]
pub struct Optimizer {
    shared: Arc<OptimizerShared>,
    slots: Vec<OptimSlot>,
    /// One prepared update per parameter, built once.
    kernels: Vec<Dispatch>,
}

impl Optimizer {
    /// Binds `config` to `(parameter, gradient)` pairs; momentum and moment buffers start at
    /// zero, as in PyTorch.
    pub fn new(config: OptimizerConfig, params: &[(&Tensor, &Tensor)]) -> Result<Self> {
        config.validate()?;
        let Some((first, _)) = params.first() else {
            return Err(Error::InvalidArgument(
                "an optimiser needs at least one parameter".into(),
            ));
        };
        let device = first.device().clone();
        let hyper = device.uniform_buffer(
            "optimizer hyper-parameters",
            bytemuck::bytes_of(&config.hyper(1)),
        );
        let shared = Arc::new(OptimizerShared {
            device: device.clone(),
            config: Mutex::new(config),
            steps: AtomicU64::new(0),
            hyper,
        });
        let mut slots = Vec::with_capacity(params.len());
        let mut kernels = Vec::with_capacity(params.len());
        for (index, (param, grad)) in params.iter().enumerate() {
            let op = format!("optimizer parameter {index}");
            param.expect_dtype(&op, DType::F32)?;
            grad.expect_dtype(&op, DType::F32)?;
            if param.shape() != grad.shape() {
                return Err(Error::shape(&op, param.shape(), grad.shape()));
            }
            if param.buffer() == grad.buffer() {
                return Err(Error::InvalidArgument(format!(
                    "{op}: the gradient must not be the parameter itself"
                )));
            }
            let state_len = if config.stateful() { param.numel() } else { 1 };
            let slot = OptimSlot {
                param: param.share(),
                grad: grad.share(),
                state1: Tensor::zeros(&device, [state_len.max(1)])?,
                state2: Tensor::zeros(&device, [state_len.max(1)])?,
            };
            let step = OptimStep {
                shared: shared.clone(),
                slot: slot.share(),
            };
            kernels.push(step.kernel()?);
            slots.push(slot);
        }
        Ok(Self {
            shared,
            slots,
            kernels,
        })
    }

    /// The configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.shared.config()
    }

    /// Changes the learning rate from the next step on (for schedules).
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        let config = self.config().with_lr(lr);
        config.validate()?;
        *self.shared.config.lock().expect("optimizer config lock") = config;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.shared.steps.load(Ordering::Relaxed)
    }

    /// Sets the step count (when restoring a saved state): the next step is number `steps + 1`
    /// (Adam's bias corrections depend on it).
    pub fn set_steps_taken(&self, steps: u64) {
        self.shared.steps.store(steps, Ordering::Relaxed);
    }

    /// The per-element state of each parameter, in the order given to [`Optimizer::new`]:
    /// momentum (SGD with momentum) or the first and second moments (Adam), as
    /// `(state1, state2)`; empty for plain SGD, which keeps none.
    pub fn state(&self) -> Vec<(&Tensor, &Tensor)> {
        if !self.config().stateful() {
            return Vec::new();
        }
        self.slots.iter().map(|s| (&s.state1, &s.state2)).collect()
    }

    /// Writes this step's numbers and records every parameter's update. The numbers reach
    /// the device with the encoder's submit, so record at most one step per submit.
    pub fn record_step(&mut self, encoder: &mut Encoder) {
        self.shared.tick();
        for kernel in &self.kernels {
            kernel.record(encoder);
        }
    }

    /// One step, submitted on its own.
    pub fn step(&mut self) -> Result<()> {
        let mut encoder = self.shared.device.encoder();
        self.record_step(&mut encoder);
        encoder.submit()
    }

    /// The shared step state, for ops that update parameters inside other kernels.
    pub(crate) fn shared(&self) -> &Arc<OptimizerShared> {
        &self.shared
    }

    /// The update of each parameter as capture ops: a tick (the step's numbers), then one
    /// update per parameter, in the order given to [`Optimizer::new`].
    pub(crate) fn steps(&self) -> Vec<OptimStep> {
        self.slots
            .iter()
            .map(|slot| OptimStep {
                shared: self.shared.clone(),
                slot: slot.share(),
            })
            .collect()
    }
}
