//! [`Rule::InputGrad`](super::Rule::InputGrad): an activation's backward pass in the epilogue
//! of the input-gradient matmul below it.

use super::analysis::{can_hoist, matmul, private_to, touches};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::activation::Activation;
use crate::kernels::matmul::{MatmulForm, vector};

/// `dh = dy·Wᵀ`, then `dx = dh · f′(y)` with nothing else using `dh`: one kernel writes `dx`.
pub(crate) struct InputGrad;

impl Rewrite for InputGrad {
    /// The activation backward's index.
    type Match = usize;

    fn find(&self, ops: &mut [Op], at: usize, _: &Context<'_>) -> Option<usize> {
        let out = match matmul(&ops[at]) {
            Some(m)
                if m.is_plain()
                    && m.form == MatmulForm::ABt
                    && m.activation == Activation::Identity
                    && m.bias.is_none()
                    && vector::runs(m.b.device(), MatmulForm::ABt, m.dims()) =>
            {
                m.out.share()
            }
            _ => return None,
        };
        let dh = id(&out);
        let j = (at + 1..ops.len()).find(|&j| touches(&mut ops[j], dh))?;
        let fits =
            matches!(&ops[j], Op::ActivationBackward { dy, from_output: true, .. } if id(dy) == dh);
        (fits && private_to(ops, &out, &[at, j]) && can_hoist(ops, j, at)).then_some(j)
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, j: usize) -> usize {
        let Op::ActivationBackward {
            saved,
            dx,
            activation,
            ..
        } = ops.remove(j)
        else {
            unreachable!("found an activation backward")
        };
        if let Op::Matmul(m) = &mut ops[at] {
            m.out = dx;
            m.dact = Some((saved, activation));
        }
        at + 1
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::testing::{Ops, activation_backward, matmul, same, tensor};
    use super::*;

    #[test]
    fn the_activation_derivative_joins_the_input_gradient() {
        let (dy, w, y, dx) = (
            tensor([8, 16]),
            tensor([12, 16]),
            tensor([8, 12]),
            tensor([8, 12]),
        );
        let dh = tensor([8, 12]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::ABt, &dy, &w, &dh, None))
            .op(activation_backward(&y, &dh, &dx, Activation::Relu));
        drop(dh);
        ops.apply(&InputGrad);
        assert_eq!(ops.labels(), ["matmul A·Bᵀ 8×16×12 + × relu′"]);
        let Op::Matmul(m) = ops.get(0) else { panic!() };
        assert!(same(&m.out, &dx));
        assert!(ops.reads(0, &y), "the derivative reads the saved output");
    }

    #[test]
    fn a_derivative_from_the_input_or_a_gradient_read_twice_stays_apart() {
        let (dy, w, y, dx) = (
            tensor([8, 16]),
            tensor([12, 16]),
            tensor([8, 12]),
            tensor([8, 12]),
        );
        let dh = tensor([8, 12]);
        let mut from_input = activation_backward(&y, &dh, &dx, Activation::Relu);
        if let Op::ActivationBackward { from_output, .. } = &mut from_input {
            *from_output = false;
        }
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::ABt, &dy, &w, &dh, None))
            .op(from_input);
        ops.apply(&InputGrad);
        assert_eq!(ops.len(), 2);
        let other = tensor([8, 12]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::ABt, &dy, &w, &dh, None))
            .op(activation_backward(&y, &dh, &dx, Activation::Relu))
            .activation(&dh, &other, Activation::Tanh);
        drop(dh);
        ops.apply(&InputGrad);
        assert_eq!(ops.len(), 3);
    }
}
