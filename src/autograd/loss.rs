//! Losses as graph ops: each forward kernel writes the loss and its gradient in one pass
//! (the fused kernels of [`crate::loss`]), so the local gradient is saved, not recomputed; the
//! backward pass only scales it by the upstream gradient, which stays on the device.

use super::{Recording, Var};
use crate::elementwise::ElementwiseOp::MulScalar;
use crate::graph::Op;
use crate::loss::{Labels, PointwiseLoss, Reduction};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// A pointwise loss as an object, like PyTorch's `nn.MSELoss()`: build it once, call
/// [`forward`](Self::forward) on predictions and targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    kind: PointwiseLoss,
    reduction: Reduction,
}

impl Loss {
    /// A loss of `kind` with the mean reduction (PyTorch's default).
    pub fn new(kind: PointwiseLoss) -> Self {
        Self {
            kind,
            reduction: Reduction::Mean,
        }
    }

    /// Mean squared error, `nn.MSELoss()`.
    pub fn mse() -> Self {
        Self::new(PointwiseLoss::Mse)
    }

    /// Mean absolute error, `nn.L1Loss()`.
    pub fn l1() -> Self {
        Self::new(PointwiseLoss::L1)
    }

    /// Binary cross-entropy on probabilities, `nn.BCELoss()`.
    pub fn bce() -> Self {
        Self::new(PointwiseLoss::Bce)
    }

    /// Binary cross-entropy on logits, `nn.BCEWithLogitsLoss()`.
    pub fn bce_with_logits() -> Self {
        Self::new(PointwiseLoss::BceWithLogits)
    }

    /// The same loss with another reduction.
    pub fn with_reduction(self, reduction: Reduction) -> Self {
        Self { reduction, ..self }
    }

    /// Which loss.
    pub fn kind(&self) -> PointwiseLoss {
        self.kind
    }

    /// The loss of `input` against `target` (same shape), shape `[1]`. MSE and L1 also
    /// differentiate their target; the binary cross-entropies take a target that needs no
    /// gradient.
    pub fn forward(&self, input: &Var, target: &Var) -> Result<Var> {
        let (kind, reduction) = (self.kind, self.reduction);
        let differentiates_target = matches!(kind, PointwiseLoss::Mse | PointwiseLoss::L1);
        if target.requires_grad() && !differentiates_target {
            return Err(Error::InvalidArgument(format!(
                "{kind:?} loss does not differentiate its target: pass a target that does not \
                 require a gradient (Var::detach)"
            )));
        }
        let device = input.device();
        let loss = Tensor::uninit(device, [1])?;
        let dinput = Tensor::uninit(device, input.shape().clone())?;
        if target.shape() != input.shape() {
            return Err(Error::shape(
                &format!("{kind:?} loss"),
                input.shape(),
                target.shape(),
            ));
        }
        let mut recording = Recording::new(device);
        recording.op(Op::PointwiseLoss {
            kind,
            input: input.value().share(),
            target: target.value().share(),
            dinput: dinput.share(),
            loss: loss.share(),
            reduction,
        });
        recording.submit()?;
        // dL/dinput was written with the loss; MSE's and L1's target gradient is its negation.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (input, target) = (&inputs[0], &inputs[1]);
            Ok(vec![
                super::ops::grad_for(input, || r.elementwise(MulScalar(1.0), &dinput, Some(g)))?,
                super::ops::grad_for(target, || r.elementwise(MulScalar(-1.0), &dinput, Some(g)))?,
            ])
        };
        let name = match kind {
            PointwiseLoss::Mse => "mse_loss",
            PointwiseLoss::L1 => "l1_loss",
            PointwiseLoss::Bce => "binary_cross_entropy",
            PointwiseLoss::BceWithLogits => "binary_cross_entropy_with_logits",
        };
        Ok(Var::from_op(name, loss, &[input, target], Box::new(rule)))
    }
}

/// Softmax cross-entropy of `logits` `[batch, classes]` against class `labels`, shape `[1]`
/// (`nn.CrossEntropyLoss()`): the fused kernel computes the loss and `softmax − one_hot`
/// together.
pub fn cross_entropy(logits: &Var, labels: &Labels, reduction: Reduction) -> Result<Var> {
    let device = logits.device();
    let (rows, classes) = logits.shape().dims2("cross_entropy")?;
    if rows != labels.len() || classes != labels.classes() {
        return Err(Error::shape(
            "cross_entropy",
            format!("logits [{}, {}]", labels.len(), labels.classes()),
            logits.shape(),
        ));
    }
    let loss = Tensor::uninit(device, [1])?;
    let dlogits = Tensor::uninit(device, logits.shape().clone())?;
    let mut recording = Recording::new(device);
    recording.op(Op::CrossEntropy {
        logits: logits.value().share(),
        labels: labels.tensor().share(),
        classes,
        dlogits: dlogits.share(),
        loss: loss.share(),
        reduction,
    });
    recording.submit()?;
    let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
        Ok(vec![super::ops::grad_for(&inputs[0], || {
            r.elementwise(MulScalar(1.0), &dlogits, Some(g))
        })?])
    };
    Ok(Var::from_op(
        "cross_entropy",
        loss,
        &[logits],
        Box::new(rule),
    ))
}

/// Adds the number of rows of `scores` whose argmax is their label to the u32 counter
/// `correct` (shape `[1]`): recorded like any op, so a captured step counts on the device.
pub fn count_correct(scores: &Var, labels: &Labels, correct: &Tensor) -> Result<()> {
    let (rows, classes) = scores.shape().dims2("count_correct")?;
    if rows != labels.len() || classes != labels.classes() {
        return Err(Error::shape(
            "count_correct",
            format!("scores [{}, {}]", labels.len(), labels.classes()),
            scores.shape(),
        ));
    }
    correct.expect_dtype("count_correct", crate::DType::U32)?;
    if correct.numel() != 1 {
        return Err(Error::shape(
            "count_correct",
            "a one-element counter",
            correct.shape(),
        ));
    }
    let mut recording = Recording::new(scores.device());
    recording.op(Op::CountCorrect {
        scores: scores.value().share(),
        labels: labels.tensor().share(),
        classes,
        correct: correct.share(),
    });
    recording.submit()
}

/// One-hot targets `[labels, classes]` of class `labels`, as a graph constant (for MSE or
/// binary cross-entropy on class labels).
pub fn one_hot(labels: &Labels) -> Result<Var> {
    let device = labels.tensor().device();
    let out = Tensor::uninit(device, [labels.len(), labels.classes()])?;
    let mut recording = Recording::new(device);
    recording.op(Op::OneHot {
        labels: labels.tensor().share(),
        classes: labels.classes(),
        out: out.share(),
    });
    recording.submit()?;
    Var::constant(out)
}
