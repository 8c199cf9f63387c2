//! [`Rule::HeadBackward`](super::Rule::HeadBackward): the head's layer backward inside the head
//! kernel: the weight and bias gradients (both required), the input gradient (with the
//! derivative of the activation below it, when that is private), and the optimiser's updates
//! of the head's weight and bias when one optimiser steps both.

use std::sync::Arc;

use super::analysis::{can_hoist_group, matmul, private_to, remove, touches};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::activation::Activation;
use crate::kernels::head::HeadBackward as Backward;
use crate::kernels::matmul::MatmulForm;
use crate::kernels::reduce::Axis;
use crate::tensor::Tensor;

/// A head's `dW = xᵀ·dlogits`, `db = Σ dlogits` and `dx = dlogits·Wᵀ (· f′)`: in the head.
pub(crate) struct HeadBackward;

/// What a [`HeadBackward`] found.
pub(crate) struct Found {
    /// The weight gradient's, the bias gradient's and the input gradient's ops.
    absorbed: Vec<usize>,
    w_grad: Tensor,
    b_grad: Tensor,
    dx: Option<(Tensor, Activation)>,
}

impl Rewrite for HeadBackward {
    type Match = Found;

    fn find(&self, ops: &mut [Op], h: usize, _: &Context<'_>) -> Option<Found> {
        let (x, w, dl) = match &ops[h] {
            Op::Head(head) if head.backward.is_none() => {
                (id(&head.x), id(&head.w), id(&head.dlogits))
            }
            _ => return None,
        };
        let find =
            |ops: &[Op], pred: &dyn Fn(&Op) -> bool| (h + 1..ops.len()).find(|&k| pred(&ops[k]));
        // Weight gradient xᵀ·dlogits and bias gradient Σ dlogits: both required.
        let wg = find(ops, &|op| {
            matches!(matmul(op), Some(m) if m.is_plain() && m.form == MatmulForm::AtB
                && id(&m.a) == x && id(&m.b) == dl)
        })?;
        let bg = find(ops, &|op| {
            matches!(op, Op::Sum { x: s, axis: Some(Axis::Columns), scale, .. }
                if id(s) == dl && *scale == 1.0)
        })?;
        // Input gradient dlogits·Wᵀ, optionally through the activation below.
        let ig = find(ops, &|op| {
            matches!(matmul(op), Some(m) if m.is_plain() && m.form == MatmulForm::ABt
                && id(&m.a) == dl && id(&m.b) == w)
        });
        let mut absorbed = vec![wg, bg];
        let mut dx = None;
        if let Some(ig) = ig {
            let dh = matmul(&ops[ig]).map(|m| m.out.share()).expect("a matmul");
            let dhid = id(&dh);
            let act = (ig + 1..ops.len()).find(|&k| touches(&mut ops[k], dhid));
            let through = act.filter(|&k| {
                matches!(&ops[k], Op::ActivationBackward { saved, dy, from_output: true, .. }
                    if id(saved) == x && id(dy) == dhid)
            });
            match through.filter(|&k| private_to(ops, &dh, &[ig, k])) {
                Some(k) => {
                    if let Op::ActivationBackward {
                        dx: out,
                        activation,
                        ..
                    } = &ops[k]
                    {
                        dx = Some((out.share(), *activation));
                    }
                    absorbed.extend([ig, k]);
                }
                None => {
                    dx = Some((dh.share(), Activation::Identity));
                    absorbed.push(ig);
                }
            }
        }
        if !absorbed
            .iter()
            .all(|&k| can_hoist_group(ops, k, h, &absorbed))
        {
            return None;
        }
        let w_grad = matmul(&ops[wg]).map(|m| m.out.share()).expect("a matmul");
        let b_grad = match &ops[bg] {
            Op::Sum { out, .. } => out.share(),
            _ => unreachable!("found a sum"),
        };
        Some(Found {
            absorbed,
            w_grad,
            b_grad,
            dx,
        })
    }

    fn rewrite(&self, ops: &mut Vec<Op>, h: usize, found: Found) -> usize {
        let Found {
            absorbed,
            w_grad,
            b_grad,
            dx,
        } = found;
        let (gw, gb) = (id(&w_grad), id(&b_grad));
        remove(ops, absorbed);
        let (w, b) = match &mut ops[h] {
            Op::Head(head) => {
                head.backward = Some(Backward {
                    dx,
                    w_grad,
                    b_grad,
                    update: None,
                });
                (id(&head.w), id(&head.b))
            }
            _ => unreachable!("found a head"),
        };
        absorb_updates(ops, h, [(w, gw), (b, gb)]);
        h + 1
    }
}

/// The optimiser's updates of the head's weight and bias (by their `(parameter, gradient)`
/// ids), moved into the head when one optimiser steps both and both can move up to it.
fn absorb_updates(ops: &mut Vec<Op>, h: usize, [w, b]: [(usize, usize); 2]) {
    let step_of = |ops: &Vec<Op>, (param, grad): (usize, usize)| {
        (h + 1..ops.len()).find(|&k| {
            matches!(&ops[k], Op::OptimizerStep(s)
                if id(&s.slot.param) == param && id(&s.slot.grad) == grad)
        })
    };
    let (Some(sw), Some(sb)) = (step_of(ops, w), step_of(ops, b)) else {
        return;
    };
    let same = match (&ops[sw], &ops[sb]) {
        (Op::OptimizerStep(a), Op::OptimizerStep(c)) => Arc::ptr_eq(&a.shared, &c.shared),
        _ => false,
    };
    if !(same && can_hoist_group(ops, sw, h, &[sw, sb]) && can_hoist_group(ops, sb, h, &[sw, sb])) {
        return;
    }
    let (first, second) = (sw.max(sb), sw.min(sb));
    let a = ops.remove(first);
    let c = ops.remove(second);
    let (Op::OptimizerStep(a), Op::OptimizerStep(c)) = (a, c) else {
        unreachable!("found two updates")
    };
    let (sw_op, sb_op) = if sw > sb { (a, c) } else { (c, a) };
    if let Op::Head(head) = &mut ops[h] {
        head.backward.as_mut().expect("just set").update = Some([sw_op, sb_op]);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::head::{Head, tests::Layer};
    use super::super::testing::{Ops, activation_backward, column_sums, matmul, same, sgd, tensor};
    use super::*;

    /// The layer's forward and loss, its backward as autograd records it, and (with `update`)
    /// one optimiser's steps of its weight and bias.
    fn step(layer: &Layer, below: &Tensor, dx: &Tensor, update: bool) -> (Ops, Tensor, Tensor) {
        let (dw, db, dh) = (tensor([128, 10]), tensor([10]), tensor([64, 128]));
        let mut ops = layer
            .ops()
            .op(matmul(MatmulForm::AtB, &layer.x, &layer.dlogits, &dw, None))
            .op(column_sums(&layer.dlogits, &db))
            .op(matmul(MatmulForm::ABt, &layer.dlogits, &layer.w, &dh, None))
            .op(activation_backward(below, &dh, dx, Activation::Relu));
        if update {
            let (_optimizer, steps) = sgd(&[(&layer.w, &dw), (&layer.b, &db)]);
            for s in steps {
                ops = ops.op(Op::OptimizerStep(s));
            }
        }
        ops.apply(&Head);
        (ops, dw, db)
    }

    #[test]
    fn the_gradients_the_input_gradient_and_the_updates_join_the_head() {
        let layer = Layer::new();
        let dx = tensor([64, 128]);
        let (mut ops, dw, db) = step(&layer, &layer.x, &dx, true);
        ops.apply(&HeadBackward);
        assert_eq!(ops.len(), 1, "{:?}", ops.labels());
        let Op::Head(head) = ops.get(0) else { panic!() };
        let backward = head.backward.as_ref().unwrap();
        assert!(same(&backward.w_grad, &dw) && same(&backward.b_grad, &db));
        let (into, f) = backward.dx.as_ref().unwrap();
        assert!(same(into, &dx) && *f == Activation::Relu);
        assert!(backward.update.is_some());
    }

    #[test]
    fn a_derivative_of_another_tensor_stays_apart_and_the_product_writes_its_own_output() {
        let layer = Layer::new();
        let (other, dx) = (tensor([64, 128]), tensor([64, 128]));
        // The activation backward reads another layer's output: not the head's input.
        let (mut ops, _, _) = step(&layer, &other, &dx, false);
        ops.apply(&HeadBackward);
        assert_eq!(ops.labels().len(), 2, "{:?}", ops.labels());
        let Op::Head(head) = ops.get(0) else { panic!() };
        let (_, f) = head.backward.as_ref().unwrap().dx.as_ref().unwrap();
        assert_eq!(*f, Activation::Identity);
        assert!(matches!(ops.get(1), Op::ActivationBackward { .. }));
    }

    #[test]
    fn without_the_bias_gradient_nothing_moves() {
        let layer = Layer::new();
        let dw = tensor([128, 10]);
        let mut ops = layer
            .ops()
            .op(matmul(MatmulForm::AtB, &layer.x, &layer.dlogits, &dw, None));
        ops.apply(&Head);
        ops.apply(&HeadBackward);
        assert_eq!(ops.len(), 2);
    }
}
