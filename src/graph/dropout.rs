//! Dropout as an op of the graph: the mask's probability and layer salt, and its tensors (the
//! input and output forward, the gradients backward: one kernel serves both); lowered to
//! `kernels::dropout`, whose key a plan writes per step.

use super::Access;
use crate::Result;
use crate::kernels::Record;
use crate::kernels::dropout::DropoutKernel;
use crate::tensor::Tensor;

/// `out = x · mask · 1/(1 − p)`.
#[derive(Debug)]
pub(crate) struct DropoutOp {
    pub x: Tensor,
    pub out: Tensor,
    pub p: f32,
    pub salt: u32,
    /// Applied to a gradient (the listing says so).
    pub backward: bool,
}

impl DropoutOp {
    /// Every tensor the op binds, with how it uses it.
    pub fn tensors(&mut self) -> Vec<(&mut Tensor, Access)> {
        vec![(&mut self.x, Access::Read), (&mut self.out, Access::Write)]
    }

    /// The plan listing's name.
    pub fn label(&self) -> String {
        let what = if self.backward {
            "dropout gradient"
        } else {
            "dropout"
        };
        format!("{what} p={} {:?}", self.p, self.x.shape().dims())
    }

    /// The prepared kernel.
    pub fn lower(&self) -> Result<Box<dyn Record>> {
        Ok(Box::new(DropoutKernel::new(
            &self.x, &self.out, self.p, self.salt,
        )?))
    }
}
