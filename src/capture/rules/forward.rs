//! [`Rule::Forward`](super::Rule::Forward): a matmul (or a convolution's forward pass)
//! followed by an activation nothing else needs the input of; the product's epilogue applies
//! the activation, and the pre-activation tensor goes.

use super::analysis::{can_hoist, matmul, private_to, touches};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::activation::Activation;
use crate::kernels::conv::ConvProduct;

/// `z = x·W (+ b)` (or `conv2d(x, W) (+ b)`), then `y = f(z)` with nothing else using `z`:
/// `y = f(x·W + b)` in one kernel.
pub(crate) struct Forward;

impl Rewrite for Forward {
    /// The activation's index.
    type Match = usize;

    fn find(&self, ops: &mut [Op], at: usize, _: &Context<'_>) -> Option<usize> {
        let (out, conv) = match (&ops[at], matmul(&ops[at])) {
            (_, Some(m)) if m.is_plain() && m.activation == Activation::Identity => {
                (m.out.share(), false)
            }
            (Op::Conv(c), _)
                if c.product == ConvProduct::Forward && c.activation == Activation::Identity =>
            {
                (c.out.share(), true)
            }
            _ => return None,
        };
        let z = id(&out);
        let j = (at + 1..ops.len()).find(|&j| touches(&mut ops[j], z))?;
        // A convolution's epilogue takes no PReLU slopes (they would be per channel in NCHW,
        // the activation kernel's per last dimension).
        let fits = matches!(&ops[j], Op::Activation { x, activation, slopes, .. }
            if id(x) == z && activation.has_gradient() && !(conv && slopes.is_some()));
        (fits && private_to(ops, &out, &[at, j]) && can_hoist(ops, j, at)).then_some(j)
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, j: usize) -> usize {
        let Op::Activation {
            y,
            activation,
            slopes,
            training,
            ..
        } = ops.remove(j)
        else {
            unreachable!("found an activation")
        };
        match &mut ops[at] {
            Op::Matmul(m) => {
                m.out = y;
                m.activation = activation;
                m.slopes = slopes;
                m.training = training;
            }
            Op::Conv(c) => {
                c.out = y;
                c.activation = activation;
                c.training = training;
            }
            _ => unreachable!("found a product"),
        }
        at + 1
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::testing::{Ops, matmul, same, tensor};
    use super::*;
    use crate::kernels::matmul::MatmulForm;

    #[test]
    fn an_activation_of_a_product_nobody_else_reads_joins_its_epilogue() {
        let (x, w, b, y) = (
            tensor([8, 12]),
            tensor([12, 16]),
            tensor([16]),
            tensor([8, 16]),
        );
        let z = tensor([8, 16]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AB, &x, &w, &z, Some(&b)))
            .activation(&z, &y, Activation::Relu);
        drop(z);
        ops.apply(&Forward);
        assert_eq!(ops.labels(), ["matmul A·B 8×12×16 + bias + relu"]);
        let Op::Matmul(m) = ops.get(0) else { panic!() };
        assert!(
            same(&m.out, &y),
            "the product writes the activation's output"
        );
    }

    #[test]
    fn a_product_read_elsewhere_or_held_by_the_user_keeps_its_own_output() {
        let (x, w, y, other) = (
            tensor([8, 12]),
            tensor([12, 16]),
            tensor([8, 16]),
            tensor([8, 16]),
        );
        // z is also read by a second activation.
        let z = tensor([8, 16]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AB, &x, &w, &z, None))
            .activation(&z, &y, Activation::Relu)
            .activation(&z, &other, Activation::Tanh);
        drop(z);
        ops.apply(&Forward);
        assert_eq!(ops.len(), 3);
        // z is held outside the plan.
        let z = tensor([8, 16]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AB, &x, &w, &z, None))
            .activation(&z, &y, Activation::Relu);
        ops.apply(&Forward);
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn an_activation_whose_input_is_overwritten_in_between_stays() {
        let (x, w, y) = (tensor([8, 12]), tensor([12, 16]), tensor([8, 16]));
        let z = tensor([8, 16]);
        // Something writes y between the product and the activation: the activation cannot
        // move up to the product.
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AB, &x, &w, &z, None))
            .activation(&x, &y, Activation::Sigmoid)
            .activation(&z, &y, Activation::Relu);
        drop(z);
        ops.apply(&Forward);
        assert_eq!(ops.len(), 3);
    }
}
