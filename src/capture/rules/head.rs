//! [`Rule::Head`](super::Rule::Head): a narrow last layer (at most
//! [`MAX_CLASSES`](crate::kernels::head::MAX_CLASSES) outputs) with softmax cross-entropy
//! becomes one classifier-head kernel, which also takes in the correct count of its logits and
//! the running sum of its loss when they follow.

use super::analysis::{can_hoist, matmul, readers};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::activation::Activation;
use crate::kernels::elementwise::ElementwiseOp;
use crate::kernels::head::{self, HeadOp};
use crate::kernels::matmul::{MatmulDims, MatmulForm};

/// `logits = x·W + b`, then the cross-entropy of the logits: one head kernel.
pub(crate) struct Head;

/// The head binds up to 16 storage buffers; devices with fewer run it unfused.
const STORAGE_BUFFERS: usize = 16;

impl Rewrite for Head {
    /// The cross-entropy's index.
    type Match = usize;

    fn find(&self, ops: &mut [Op], at: usize, cx: &Context<'_>) -> Option<usize> {
        if cx.max_storage < STORAGE_BUFFERS {
            return None;
        }
        let logits = match matmul(&ops[at]) {
            Some(m)
                if m.is_plain()
                    && m.form == MatmulForm::AB
                    && m.bias.is_some()
                    && m.activation == Activation::Identity =>
            {
                let MatmulDims { m: rows, k, n } = m.dims();
                (head::fits(rows, k, n) && head::runs_on(m.b.device())).then(|| id(&m.out))?
            }
            _ => return None,
        };
        let j = (at + 1..ops.len())
            .find(|&j| matches!(&ops[j], Op::CrossEntropy { logits: l, .. } if id(l) == logits))?;
        // The logits feed only the loss and correct counts (and may be kept by the caller: the
        // head writes them anyway).
        let users = readers(ops, logits, &[at, j]);
        let counts_only = users
            .iter()
            .all(|&u| matches!(&ops[u], Op::CountCorrect { .. }));
        (counts_only && can_hoist(ops, j, at)).then_some(j)
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, j: usize) -> usize {
        let Op::CrossEntropy {
            labels,
            dlogits,
            loss,
            reduction,
            ..
        } = ops.remove(j)
        else {
            unreachable!("found a cross-entropy")
        };
        let Op::Matmul(m) = std::mem::replace(&mut ops[at], Op::Clear { dst: loss.share() }) else {
            unreachable!("found a matmul")
        };
        let m = *m;
        ops[at] = Op::Head(Box::new(HeadOp {
            x: m.a,
            w: m.b,
            b: m.bias.expect("found with a bias"),
            labels,
            logits: m.out,
            dlogits,
            loss,
            reduction,
            loss_acc: None,
            correct: None,
            backward: None,
        }));
        absorb_extras(ops, at);
        at + 1
    }
}

/// The correct count of the head's logits and the running sum of its loss, moved into it.
fn absorb_extras(ops: &mut Vec<Op>, h: usize) {
    let (logits, labels, loss) = match &ops[h] {
        Op::Head(head) => (id(&head.logits), id(&head.labels), id(&head.loss)),
        _ => return,
    };
    let count = (h + 1..ops.len()).find(|&k| {
        matches!(&ops[k], Op::CountCorrect { scores, labels: l, .. }
            if id(scores) == logits && id(l) == labels)
    });
    if let Some(k) = count.filter(|&k| can_hoist(ops, k, h)) {
        let Op::CountCorrect { correct, .. } = ops.remove(k) else {
            unreachable!("found a correct count")
        };
        if let Op::Head(head) = &mut ops[h] {
            head.correct = Some(correct);
        }
    }
    let sum = (h + 1..ops.len()).find(|&k| {
        matches!(&ops[k], Op::Elementwise { op: ElementwiseOp::Axpy(a), x, out, .. }
            if *a == 1.0 && id(x) == loss && id(out) != loss)
    });
    if let Some(k) = sum.filter(|&k| can_hoist(ops, k, h)) {
        let Op::Elementwise { out, .. } = ops.remove(k) else {
            unreachable!("found an add")
        };
        if let Op::Head(head) = &mut ops[h] {
            head.loss_acc = Some(out);
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
pub(super) mod tests {
    use super::super::testing::{Ops, matmul, same, tensor};
    use super::*;
    use crate::kernels::loss::Reduction;
    use crate::tensor::{DType, Tensor};

    /// The tensors of a 64-row, 128-input, 10-class head.
    pub(in super::super) struct Layer {
        pub x: Tensor,
        pub w: Tensor,
        pub b: Tensor,
        pub labels: Tensor,
        pub logits: Tensor,
        pub dlogits: Tensor,
        pub loss: Tensor,
    }

    impl Layer {
        pub fn new() -> Self {
            let labels = Tensor::uninit_of(super::super::testing::device(), [64], DType::U32)
                .expect("a no-op buffer");
            Self {
                x: tensor([64, 128]),
                w: tensor([128, 10]),
                b: tensor([10]),
                labels,
                logits: tensor([64, 10]),
                dlogits: tensor([64, 10]),
                loss: tensor([1]),
            }
        }

        /// The forward product and the loss, as autograd records them.
        pub fn ops(&self) -> Ops {
            Ops::new()
                .op(matmul(
                    MatmulForm::AB,
                    &self.x,
                    &self.w,
                    &self.logits,
                    Some(&self.b),
                ))
                .op(Op::CrossEntropy {
                    logits: self.logits.share(),
                    labels: self.labels.share(),
                    classes: 10,
                    dlogits: self.dlogits.share(),
                    loss: self.loss.share(),
                    reduction: Reduction::Mean,
                })
        }
    }

    #[test]
    fn a_narrow_layer_and_its_loss_with_the_count_and_the_running_sum_become_one_head() {
        let layer = Layer::new();
        let (correct, sum) = (tensor([1]), tensor([1]));
        let mut ops = layer
            .ops()
            .op(Op::CountCorrect {
                scores: layer.logits.share(),
                labels: layer.labels.share(),
                classes: 10,
                correct: correct.share(),
            })
            .op(Op::Elementwise {
                op: ElementwiseOp::Axpy(1.0),
                x: layer.loss.share(),
                y: None,
                out: sum.share(),
            });
        ops.apply(&Head);
        assert_eq!(ops.len(), 1, "{:?}", ops.labels());
        let Op::Head(head) = ops.get(0) else { panic!() };
        assert!(same(head.correct.as_ref().unwrap(), &correct));
        assert!(same(head.loss_acc.as_ref().unwrap(), &sum));
        assert!(same(&head.dlogits, &layer.dlogits));
    }

    #[test]
    fn logits_read_by_another_op_or_a_device_with_few_storage_buffers_keep_the_layer() {
        let layer = Layer::new();
        let probabilities = tensor([64, 10]);
        let mut ops = layer
            .ops()
            .activation(&layer.logits, &probabilities, Activation::Sigmoid);
        ops.apply(&Head);
        assert_eq!(ops.len(), 3);
        let mut ops = layer.ops().max_storage(10);
        ops.apply(&Head);
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn a_layer_wider_than_the_head_stays() {
        let layer = Layer::new();
        let (w, logits, dlogits) = (tensor([128, 40]), tensor([64, 40]), tensor([64, 40]));
        let b = tensor([40]);
        let mut ops = Ops::new()
            .op(matmul(MatmulForm::AB, &layer.x, &w, &logits, Some(&b)))
            .op(Op::CrossEntropy {
                logits: logits.share(),
                labels: layer.labels.share(),
                classes: 40,
                dlogits: dlogits.share(),
                loss: layer.loss.share(),
                reduction: Reduction::Mean,
            });
        ops.apply(&Head);
        assert_eq!(ops.len(), 2);
    }
}
