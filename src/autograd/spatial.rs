//! The differentiable ops of convolutional networks besides the convolution itself (which is a
//! product, in `ops.rs`): pooling, dropout, and reshapes (a flatten is a view of the same
//! storage, no kernel). Each states its local gradient next to its forward pass, as `ops.rs`.

use super::ops::{forward, grad_for};
use super::{Recording, Var};
use crate::kernels::dropout::check_probability;
use crate::kernels::pool::{Pool2d, Pool2dGeometry, PoolPass};
use crate::tensor::{Shape, Tensor};
use crate::{Error, Result};

impl Var {
    /// `nn.MaxPool2d`'s forward pass on an NCHW value: each output the first maximum of its
    /// window (a NaN wins). A window that does not fit the input is an error naming both.
    pub fn max_pool2d(&self, pool: Pool2d) -> Result<Var> {
        let geometry = Pool2dGeometry::new(self.shape().dims(), pool)?;
        let mut argmax = None;
        let value = forward(self, |r| {
            let (y, saved) = r.pool(PoolPass::MaxForward, &geometry, self.value(), None)?;
            argmax = saved;
            Ok(y)
        })?;
        let argmax = argmax.expect("max pooling saves its indices");
        // The gradient goes to the input each output took: a gather over the windows.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            Ok(vec![grad_for(&inputs[0], || {
                Ok(r.pool(PoolPass::MaxBackward, &geometry, g, Some(&argmax))?
                    .0)
            })?])
        };
        Ok(Var::from_op("max_pool2d", value, &[self], Box::new(rule)))
    }

    /// `nn.AvgPool2d`'s forward pass on an NCHW value: each output the mean of its window, the
    /// padding counted as zeros.
    pub fn avg_pool2d(&self, pool: Pool2d) -> Result<Var> {
        let geometry = Pool2dGeometry::new(self.shape().dims(), pool)?;
        let value = forward(self, |r| {
            Ok(r.pool(PoolPass::AvgForward, &geometry, self.value(), None)?
                .0)
        })?;
        // Each output's gradient spread evenly over its window.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            Ok(vec![grad_for(&inputs[0], || {
                Ok(r.pool(PoolPass::AvgBackward, &geometry, g, None)?.0)
            })?])
        };
        Ok(Var::from_op("avg_pool2d", value, &[self], Box::new(rule)))
    }

    /// `nn.Dropout(p)`: in training (`training`), each element kept with probability `1 − p`
    /// and scaled by `1 / (1 − p)`; the value itself otherwise, or when `p` is 0. The mask is
    /// keyed by the run's seed and step, which [`Plan::set_rng`](crate::capture::Plan::set_rng)
    /// sets per step (0, 0 when eager), and by `salt`, which tells a model's dropout layers
    /// apart. `p` outside `[0, 1)` is an error.
    pub fn dropout(&self, p: f32, salt: u32, training: bool) -> Result<Var> {
        check_probability(p)?;
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        let value = forward(self, |r| r.dropout(self.value(), p, salt, false))?;
        // The same mask and scale on the gradient.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            Ok(vec![grad_for(&inputs[0], || r.dropout(g, p, salt, true))?])
        };
        Ok(Var::from_op("dropout", value, &[self], Box::new(rule)))
    }

    /// The same elements in `shape` (as many of them): a view of the same storage, no kernel
    /// runs. Its gradient is the output's gradient viewed in the input's shape.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let shape = shape.into();
        if shape.checked_numel() != Some(self.numel()) {
            return Err(Error::shape(
                "reshape",
                format!("a shape of {} elements", self.numel()),
                &shape,
            ));
        }
        let value = self.value().share().reshape(shape)?;
        let rule = |g: &Tensor, inputs: &[Var], _: &mut Recording| {
            let x = &inputs[0];
            Ok(vec![grad_for(x, || g.share().reshape(x.shape().clone()))?])
        };
        Ok(Var::from_op("reshape", value, &[self], Box::new(rule)))
    }

    /// `nn.Flatten`: `[batch, d1, d2, …]` viewed as `[batch, d1·d2·…]` (a view, as
    /// [`reshape`](Self::reshape)).
    pub fn flatten(&self) -> Result<Var> {
        let dims = self.shape().dims();
        let Some((&batch, rest)) = dims.split_first() else {
            return Err(Error::shape("flatten", "[batch, …]", self.shape()));
        };
        self.reshape([batch, rest.iter().product()])
    }
}
