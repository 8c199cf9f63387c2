//! The optimisers of [`crate::optim`] stepping graph leaves in place.

use super::{Recording, Var};
use crate::graph::Op;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// An optimiser over leaves (PyTorch's `torch.optim.SGD(params, lr)` and friends): it updates
/// each leaf's value in place from its accumulated gradient. The gradient buffers are bound
/// once, which is why gradients are only ever zeroed in place, never replaced.
#[derive(Debug)]
pub struct VarOptimizer {
    params: Vec<Var>,
    optimizer: Optimizer,
}

impl VarOptimizer {
    /// Binds `config` to `params`: distinct leaves that require a gradient. A leaf without a
    /// gradient yet gets a zero one.
    pub fn new(config: OptimizerConfig, params: &[&Var]) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        for (index, param) in params.iter().enumerate() {
            if !param.is_leaf() || !param.requires_grad() {
                return Err(Error::InvalidArgument(format!(
                    "optimiser parameter {index} is not a leaf that requires a gradient: \
                     optimisers update the values the user made (Var::parameter), not computed ones"
                )));
            }
            if !seen.insert(param.node.id) {
                return Err(Error::InvalidArgument(format!(
                    "optimiser parameter {index} is listed twice: it would be updated twice per step"
                )));
            }
        }
        // Nothing is published until everything has succeeded: a failed constructor leaves
        // every gradient as it was.
        let grads: Vec<(Tensor, bool)> = params
            .iter()
            .map(|p| match p.node.grad.borrow().as_ref() {
                Some(grad) => Ok((grad.share(), false)),
                None => Ok((Tensor::zeros(p.device(), p.shape().clone())?, true)),
            })
            .collect::<Result<_>>()?;
        let pairs: Vec<(&Tensor, &Tensor)> = params
            .iter()
            .map(|p| p.value())
            .zip(grads.iter().map(|(g, _)| g))
            .collect();
        let optimizer = Optimizer::new(config, &pairs)?;
        for (param, (grad, fresh)) in params.iter().zip(grads) {
            if fresh {
                *param.node.grad.borrow_mut() = Some(grad);
            }
        }
        Ok(Self {
            params: params.iter().map(|p| (*p).clone()).collect(),
            optimizer,
        })
    }

    /// One update of every parameter from its gradient, submitted (no host sync), or recorded
    /// into the capture in progress.
    pub fn step(&mut self) -> Result<()> {
        if crate::capture::is_capturing() {
            let Some(first) = self.params.first() else {
                return Ok(());
            };
            let mut recording = Recording::new(first.device());
            recording.op(Op::OptimizerTick(self.optimizer.shared().clone()));
            for step in self.optimizer.steps() {
                recording.op(Op::OptimizerStep(step));
            }
            recording.submit()?;
        } else {
            self.optimizer.step()?;
        }
        for param in &self.params {
            param.node.version.set(param.node.version.get() + 1);
        }
        Ok(())
    }

    /// Zeroes every parameter's gradient in place, in one submit.
    pub fn zero_grad(&self) -> Result<()> {
        let Some(first) = self.params.first() else {
            return Ok(());
        };
        let mut recording = Recording::new(first.device());
        for param in &self.params {
            if let Some(grad) = param.node.grad.borrow().as_ref() {
                recording.clear(grad);
            }
        }
        recording.submit()
    }

    /// Changes the learning rate from the next step on.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        self.optimizer.set_lr(lr)
    }

    /// The configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.optimizer.config()
    }

    /// Optimiser steps taken so far (captured steps count when replayed).
    pub fn steps_taken(&self) -> u64 {
        self.optimizer.steps_taken()
    }

    /// Sets the step count, when restoring a saved state.
    pub fn set_steps_taken(&self, steps: u64) {
        self.optimizer.set_steps_taken(steps);
    }

    /// The per-element state of each parameter, as [`Optimizer::state`].
    pub fn state(&self) -> Vec<(&Tensor, &Tensor)> {
        self.optimizer.state()
    }

    /// The parameters, in the order given.
    pub fn params(&self) -> &[Var] {
        &self.params
    }
}
