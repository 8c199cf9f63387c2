//! A pooling pass as an op of the graph: which of the four (max or average, forward or
//! backward), its geometry and its tensors; lowered to `kernels::pool`.

use super::Access;
use crate::Result;
use crate::kernels::Record;
use crate::kernels::pool::{Pool2dGeometry, PoolKernel, PoolPass};
use crate::tensor::Tensor;

/// `out = pass(input)` of a pooling of `geometry`.
#[derive(Debug)]
pub(crate) struct PoolOp {
    pub pass: PoolPass,
    pub geometry: Pool2dGeometry,
    /// The input (forward) or the output's gradient (backward).
    pub input: Tensor,
    /// Max pooling's indices: written by the forward pass, read by the backward.
    pub argmax: Option<Tensor>,
    /// The output (forward) or the input's gradient (backward).
    pub out: Tensor,
}

impl PoolOp {
    /// Every tensor the op binds, with how it uses it.
    pub fn tensors(&mut self) -> Vec<(&mut Tensor, Access)> {
        let mut list = vec![(&mut self.input, Access::Read)];
        if let Some(argmax) = &mut self.argmax {
            let access = if self.pass.is_backward() {
                Access::Read
            } else {
                Access::Write
            };
            list.push((argmax, access));
        }
        list.push((&mut self.out, Access::Write));
        list
    }

    /// The plan listing's name.
    pub fn label(&self) -> String {
        let what = match self.pass {
            PoolPass::MaxForward => "max pool",
            PoolPass::MaxBackward => "max pool gradient",
            PoolPass::AvgForward => "average pool",
            PoolPass::AvgBackward => "average pool gradient",
        };
        let g = &self.geometry;
        format!("{what} {:?} window {:?}", g.input_shape(), g.pool.kernel)
    }

    /// The prepared kernel.
    pub fn lower(&self) -> Result<Box<dyn Record>> {
        Ok(Box::new(PoolKernel::new(
            self.pass,
            &self.geometry,
            &self.input,
            self.argmax.as_ref(),
            &self.out,
        )?))
    }
}
