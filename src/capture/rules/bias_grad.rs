//! [`Rule::BiasGrad`](super::Rule::BiasGrad): a bias gradient (the column sums of the output
//! gradient) computed inside the weight-gradient matmul that reads the same gradient.

use super::analysis::{can_hoist, matmul};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::matmul::{MatmulForm, vector};
use crate::kernels::reduce::Axis;

/// `dW = xᵀ·g` and `db = Σ g` over rows: one kernel writes both.
pub(crate) struct BiasGrad;

impl Rewrite for BiasGrad {
    /// The column sum's index.
    type Match = usize;

    fn find(&self, ops: &mut [Op], at: usize, _: &Context<'_>) -> Option<usize> {
        let g = match matmul(&ops[at]) {
            Some(m) if m.is_plain() && m.form == MatmulForm::AtB => {
                // The fused bias gradient runs in one pass over the k rows.
                let dims = m.dims();
                (vector::runs(m.b.device(), MatmulForm::AtB, dims)
                    && dims.k <= vector::MAX_BIAS_GRAD_ROWS)
                    .then(|| id(&m.b))?
            }
            _ => return None,
        };
        let j = (at + 1..ops.len()).find(|&j| {
            matches!(&ops[j], Op::Sum { x, axis: Some(Axis::Columns), scale, .. }
                if id(x) == g && *scale == 1.0)
        })?;
        can_hoist(ops, j, at).then_some(j)
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, j: usize) -> usize {
        let Op::Sum { out, .. } = ops.remove(j) else {
            unreachable!("found a column sum")
        };
        if let Op::Matmul(m) = &mut ops[at] {
            m.bias_grad = Some(out);
        }
        at + 1
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::testing::{Ops, column_sums, matmul, same, tensor};
    use super::*;

    #[test]
    fn the_bias_gradient_joins_the_weight_gradient() {
        let (x, g, dw, db) = (
            tensor([8, 12]),
            tensor([8, 16]),
            tensor([12, 16]),
            tensor([16]),
        );
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AtB, &x, &g, &dw, None))
            .op(column_sums(&g, &db));
        ops.apply(&BiasGrad);
        assert_eq!(ops.labels(), ["matmul Aᵀ·B 12×8×16 + bias gradient"]);
        let Op::Matmul(m) = ops.get(0) else { panic!() };
        assert!(same(m.bias_grad.as_ref().unwrap(), &db));
    }

    #[test]
    fn a_scaled_sum_a_sum_of_another_tensor_or_a_moved_gradient_stays() {
        let (x, g, dw, db) = (
            tensor([8, 12]),
            tensor([8, 16]),
            tensor([12, 16]),
            tensor([16]),
        );
        let mut scaled = column_sums(&g, &db);
        if let Op::Sum { scale, .. } = &mut scaled {
            *scale = 0.5;
        }
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AtB, &x, &g, &dw, None))
            .op(scaled);
        ops.apply(&BiasGrad);
        assert_eq!(ops.len(), 2);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AtB, &x, &g, &dw, None))
            .op(column_sums(&x, &db));
        ops.apply(&BiasGrad);
        assert_eq!(ops.len(), 2);
        // g is rewritten between the product and the sum: the sum reads the new values.
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AtB, &x, &g, &dw, None))
            .op(matmul(MatmulForm::AB, &x, &dw, &g, None))
            .op(column_sums(&g, &db));
        ops.apply(&BiasGrad);
        assert_eq!(ops.len(), 3);
    }
}
