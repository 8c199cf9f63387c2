//! [`Rule::Update`](super::Rule::Update): the optimiser's update of a weight (and of its bias,
//! by the same optimiser) in the epilogue of the weight-gradient matmul that computes their
//! gradients.

use std::sync::Arc;

use super::analysis::{can_hoist, matmul};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::matmul::{MatmulForm, vector};

/// `dW = xᵀ·g` (and `db`), then the updates of W (and b) from them: one kernel.
pub(crate) struct Update;

/// The fused vector kernels bind up to 13 storage buffers.
const STORAGE_BUFFERS: usize = 13;

impl Rewrite for Update {
    /// The weight's update.
    type Match = usize;

    fn find(&self, ops: &mut [Op], at: usize, cx: &Context<'_>) -> Option<usize> {
        if cx.max_storage < STORAGE_BUFFERS {
            return None;
        }
        let gw = match matmul(&ops[at]) {
            Some(m)
                if m.form == MatmulForm::AtB
                    && !m.accumulate
                    && m.update_w.is_none()
                    && m.kernel.is_none()
                    && vector::runs(m.b.device(), MatmulForm::AtB, m.dims()) =>
            {
                id(&m.out)
            }
            _ => return None,
        };
        let sw = (at + 1..ops.len())
            .find(|&k| matches!(&ops[k], Op::OptimizerStep(s) if id(&s.slot.grad) == gw))?;
        can_hoist(ops, sw, at).then_some(sw)
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, sw: usize) -> usize {
        let Op::OptimizerStep(w_step) = ops.remove(sw) else {
            unreachable!("found an update")
        };
        // The bias's update too, when the same optimiser makes it and it can move up.
        let gb = matmul(&ops[at]).and_then(|m| m.bias_grad.as_ref().map(id));
        let b_step = gb
            .and_then(|gb| {
                (at + 1..ops.len())
                    .find(|&k| matches!(&ops[k], Op::OptimizerStep(s) if id(&s.slot.grad) == gb))
            })
            .filter(|&k| {
                matches!(&ops[k], Op::OptimizerStep(s) if Arc::ptr_eq(&s.shared, &w_step.shared))
                    && can_hoist(ops, k, at)
            })
            .map(|k| match ops.remove(k) {
                Op::OptimizerStep(s) => s,
                _ => unreachable!("found an update"),
            });
        if let Op::Matmul(m) = &mut ops[at] {
            m.update_w = Some(w_step);
            m.update_b = b_step;
        }
        at + 1
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::bias_grad::BiasGrad;
    use super::super::testing::{Ops, column_sums, matmul, sgd, tensor};
    use super::*;
    use crate::kernels::activation::Activation;

    #[test]
    fn the_updates_of_a_weight_and_its_bias_join_their_gradient() {
        let (x, g, w, b, dw, db) = (
            tensor([8, 12]),
            tensor([8, 16]),
            tensor([12, 16]),
            tensor([16]),
            tensor([12, 16]),
            tensor([16]),
        );
        let (_optimizer, steps) = sgd(&[(&w, &dw), (&b, &db)]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AtB, &x, &g, &dw, None))
            .op(column_sums(&g, &db));
        for s in steps {
            ops = ops.op(Op::OptimizerStep(s));
        }
        ops.apply(&BiasGrad);
        ops.apply(&Update);
        assert_eq!(
            ops.labels(),
            ["matmul Aᵀ·B 12×8×16 + bias gradient + optimiser update"]
        );
        let Op::Matmul(m) = ops.get(0) else { panic!() };
        assert!(m.update_w.is_some() && m.update_b.is_some());
    }

    #[test]
    fn an_update_after_a_read_of_the_weight_stays() {
        let (x, g, w, dw, wx) = (
            tensor([8, 12]),
            tensor([8, 16]),
            tensor([12, 16]),
            tensor([12, 16]),
            tensor([12, 16]),
        );
        let (_optimizer, steps) = sgd(&[(&w, &dw)]);
        // Something reads the old weight between the gradient and the update: the update
        // cannot move before it.
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AtB, &x, &g, &dw, None))
            .activation(&w, &wx, Activation::Relu);
        for s in steps {
            ops = ops.op(Op::OptimizerStep(s));
        }
        ops.apply(&Update);
        assert_eq!(ops.len(), 3);
    }
}
