//! Optimisers on the device, updating parameters in place with PyTorch's formulas:
//! SGD (weight decay, momentum with dampening, Nesterov), Adam and AdamW.
//!
//! Nothing is read back to the host: the step-dependent numbers (Adam's bias corrections,
//! the first-step flag of momentum) are computed on the host in f64 and written to a uniform
//! before each step's submit.

use super::{Dispatch, entry, grid};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/optim.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "optim",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/optim.wgsl")
    ),
};

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
                if !momentum.is_finite() || momentum < 0.0 {
                    return bad(format!("momentum {momentum} must be non-negative"));
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

    /// (KIND, NESTEROV) of `shaders/optim.wgsl`, and its entry point.
    fn specialisation(&self) -> (&'static str, f64, f64) {
        match *self {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => {
                let kind = if momentum > 0.0 { 1.0 } else { 0.0 };
                ("sgd_step", kind, if nesterov { 1.0 } else { 0.0 })
            }
            OptimizerConfig::Adam { decoupled, .. } => {
                ("adam_step", if decoupled { 3.0 } else { 2.0 }, 0.0)
            }
        }
    }

    /// The `Hyper` uniform for step `t` (1-based).
    fn hyper_words(&self, t: u64) -> [u32; 12] {
        let (lr, wd, momentum, dampening, beta1, beta2, eps, step_size, bc2_sqrt) = match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                ..
            } => (
                lr,
                weight_decay,
                momentum,
                dampening,
                0.0,
                0.0,
                0.0,
                0.0,
                1.0,
            ),
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
                let step_size = (f64::from(lr) / bc1) as f32;
                (
                    lr,
                    weight_decay,
                    0.0,
                    0.0,
                    beta1,
                    beta2,
                    eps,
                    step_size,
                    bc2.sqrt() as f32,
                )
            }
        };
        let f = f32::to_bits;
        [
            f(lr),
            f(wd),
            f(momentum),
            f(dampening),
            f(beta1),
            f(beta2),
            f(eps),
            f(step_size),
            f(bc2_sqrt),
            u32::from(t == 1),
            0,
            0,
        ]
    }
}

#[derive(Debug)]
struct Slot {
    dispatch: Dispatch,
    _state: Vec<Tensor>,
}

/// An optimiser bound to its parameters and gradients, with its state on the device.
#[derive(Debug)]
pub struct Optimizer {
    device: Device,
    config: OptimizerConfig,
    steps: u64,
    hyper: wgpu::Buffer,
    slots: Vec<Slot>,
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
            bytemuck::cast_slice(&config.hyper_words(1)),
        );
        let (entry_point, kind, nesterov) = config.specialisation();
        let pipeline = device.pipeline(
            &SHADER,
            entry_point,
            &[("KIND", kind), ("NESTEROV", nesterov)],
        )?;
        let mut slots = Vec::with_capacity(params.len());
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
            let count = param.numel();
            let stateful =
                !matches!(config, OptimizerConfig::Sgd { momentum, .. } if momentum == 0.0);
            let state_shape = if stateful { count } else { 1 };
            let state: Vec<Tensor> = (0..2)
                .map(|_| Tensor::zeros(&device, [state_shape.max(1)]))
                .collect::<Result<_>>()?;
            let size = device.uniform_buffer(
                "optimizer size",
                bytemuck::cast_slice(&[count as u32, 0, 0, 0]),
            );
            let mut entries = vec![
                entry(0, *param),
                entry(1, *grad),
                entry(2, &state[0]),
                entry(4, hyper.as_entire_binding()),
                entry(5, size.as_entire_binding()),
            ];
            if entry_point == "adam_step" {
                entries.push(entry(3, &state[1]));
            }
            let dispatch = Dispatch::new(
                &device,
                pipeline.clone(),
                &op,
                &entries,
                grid(&device, &op, count, 64)?,
            );
            slots.push(Slot {
                dispatch,
                _state: state,
            });
        }
        Ok(Self {
            device,
            config,
            steps: 0,
            hyper,
            slots,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Changes the learning rate from the next step on (for schedules).
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        let config = self.config.with_lr(lr);
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.steps
    }

    /// Writes this step's numbers and records every parameter's update. The numbers reach
    /// the device with the encoder's submit, so record at most one step per submit.
    pub fn record_step(&mut self, encoder: &mut Encoder) {
        self.steps += 1;
        let words = self.config.hyper_words(self.steps);
        self.device
            .write_buffer(&self.hyper, 0, bytemuck::cast_slice(&words));
        for slot in &self.slots {
            slot.dispatch.record(encoder);
        }
    }

    /// One step, submitted on its own.
    pub fn step(&mut self) -> Result<()> {
        let mut encoder = self.device.encoder();
        self.record_step(&mut encoder);
        encoder.submit()
    }
}
