//! The ops a recording is made of: a description of each kernel launch by the tensors it reads
//! and writes, before any kernel exists. Eager autograd lowers them at once; a capture keeps
//! them, rewrites them (`capture::rules`) and lowers the result once into a
//! [`Plan`](crate::capture::Plan).
//!
//! `Op` is one enum, and each view of it (the tensors it touches, its label, its lowering into
//! a kernel) is one exhaustive match over every variant, so a new op fails to compile until
//! every view handles it. The ops with more to say than a line or two keep it in files of
//! their own: `matmul.rs` (everything a fusion attaches to a product), `conv.rs`, `pool.rs`,
//! `dropout.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use crate::Result;
use crate::device::Encoder;
use crate::kernels::Record;
use crate::kernels::activation::{Activation, ActivationKernel, ActivationState, PreluSlopeGrad};
use crate::kernels::elementwise::{Elementwise, ElementwiseOp};
use crate::kernels::gather::{BatchGather, GatherOp};
use crate::kernels::head::{Head, HeadOp};
use crate::kernels::loss::{
    CrossEntropyOptions, Labels, OneHot, PointwiseLoss, PointwiseLossKernel, Reduction,
    SoftmaxCrossEntropy,
};
use crate::kernels::metrics::Metric;
use crate::kernels::optim::{OptimStep, OptimizerShared};
use crate::kernels::reduce::{Axis, Sum};
use crate::kernels::step::{StepInput, StepValue};
use crate::tensor::Tensor;

use super::MatmulOp;

/// One kernel launch (or host-side write) of a recording.
#[derive(Debug)]
pub(crate) enum Op {
    Elementwise {
        op: ElementwiseOp,
        x: Tensor,
        y: Option<Tensor>,
        out: Tensor,
    },
    Copy {
        src: Tensor,
        dst: Tensor,
    },
    Clear {
        dst: Tensor,
    },
    Matmul(Box<MatmulOp>),
    /// One of a convolution's four products.
    Conv(Box<super::ConvOp>),
    /// A pooling pass, forward or backward.
    Pool(Box<super::PoolOp>),
    /// Dropout's mask on a value or a gradient.
    Dropout(Box<super::DropoutOp>),
    /// `out (+)= scale · Σ x` over `axis`, or over everything with `None`.
    Sum {
        x: Tensor,
        out: Tensor,
        axis: Option<Axis>,
        scale: f32,
    },
    Activation {
        x: Tensor,
        y: Tensor,
        activation: Activation,
        slopes: Option<Tensor>,
        training: bool,
    },
    /// `dx = dy · f'(saved)`, `saved` the input, or the output with `from_output`.
    ActivationBackward {
        saved: Tensor,
        dy: Tensor,
        dx: Tensor,
        activation: Activation,
        slopes: Option<Tensor>,
        training: bool,
        from_output: bool,
    },
    PreluSlopeGrad {
        x: Tensor,
        dy: Tensor,
        dslopes: Tensor,
    },
    PointwiseLoss {
        kind: PointwiseLoss,
        input: Tensor,
        target: Tensor,
        dinput: Tensor,
        loss: Tensor,
        reduction: Reduction,
    },
    CrossEntropy {
        logits: Tensor,
        labels: Tensor,
        classes: usize,
        dlogits: Tensor,
        loss: Tensor,
        reduction: Reduction,
    },
    CountCorrect {
        scores: Tensor,
        labels: Tensor,
        classes: usize,
        correct: Tensor,
    },
    OneHot {
        labels: Tensor,
        classes: usize,
        out: Tensor,
    },
    Gather(GatherOp),
    /// Counts an optimiser step and writes its numbers (no dispatch).
    OptimizerTick(Arc<OptimizerShared>),
    OptimizerStep(OptimStep),
    Head(Box<HeadOp>),
}

/// How an op uses a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    /// Every element written, none read first.
    Write,
    ReadWrite,
}

/// A tensor's identity: its storage's id (a reshape or a share is the same tensor), never
/// reused within a process, so an id read before a tensor is dropped cannot name another.
pub(crate) fn id(tensor: &Tensor) -> usize {
    tensor.storage().id() as usize
}

impl Op {
    /// Every tensor the op binds, with how it uses it. A gathered matmul's `a` is not listed:
    /// it only gives the shape.
    pub fn tensors(&mut self) -> Vec<(&mut Tensor, Access)> {
        use Access::{Read, ReadWrite, Write};
        let mut list: Vec<(&mut Tensor, Access)> = Vec::new();
        match self {
            Op::Elementwise { op, x, y, out } => {
                list.push((x, Read));
                if let Some(y) = y {
                    list.push((y, Read));
                }
                let access = if matches!(op, ElementwiseOp::Axpy(_)) {
                    ReadWrite
                } else {
                    Write
                };
                list.push((out, access));
            }
            Op::Copy { src, dst } => list.extend([(src, Read), (dst, Write)]),
            Op::Conv(c) => list = c.tensors(),
            Op::Pool(pool) => list = pool.tensors(),
            Op::Dropout(dropout) => list = dropout.tensors(),
            Op::Clear { dst } => list.push((dst, Write)),
            Op::Matmul(m) => list = m.tensors(),
            Op::Sum { x, out, .. } => list.extend([(x, Read), (out, Write)]),
            Op::Activation { x, y, slopes, .. } => {
                list.extend([(x, Read), (y, Write)]);
                if let Some(slopes) = slopes {
                    list.push((slopes, Read));
                }
            }
            Op::ActivationBackward {
                saved,
                dy,
                dx,
                slopes,
                ..
            } => {
                list.extend([(saved, Read), (dy, Read), (dx, Write)]);
                if let Some(slopes) = slopes {
                    list.push((slopes, Read));
                }
            }
            Op::PreluSlopeGrad { x, dy, dslopes } => {
                list.extend([(x, Read), (dy, Read), (dslopes, Write)])
            }
            Op::PointwiseLoss {
                input,
                target,
                dinput,
                loss,
                ..
            } => list.extend([
                (input, Read),
                (target, Read),
                (dinput, Write),
                (loss, Write),
            ]),
            Op::CrossEntropy {
                logits,
                labels,
                dlogits,
                loss,
                ..
            } => list.extend([
                (logits, Read),
                (labels, Read),
                (dlogits, Write),
                (loss, Write),
            ]),
            Op::CountCorrect {
                scores,
                labels,
                correct,
                ..
            } => list.extend([(scores, Read), (labels, Read), (correct, ReadWrite)]),
            Op::OneHot { labels, out, .. } => list.extend([(labels, Read), (out, Write)]),
            Op::Gather(g) => list.extend([(&mut g.x, Write), (&mut g.y, Write)]),
            Op::OptimizerTick(_) => {}
            Op::OptimizerStep(step) => {
                let slot = &mut step.slot;
                list.extend([
                    (&mut slot.grad, Read),
                    (&mut slot.param, ReadWrite),
                    (&mut slot.state1, ReadWrite),
                    (&mut slot.state2, ReadWrite),
                ]);
            }
            Op::Head(h) => {
                let h = &mut **h;
                list.extend([(&mut h.x, Read), (&mut h.labels, Read)]);
                let params = if h.backward.as_ref().is_some_and(|b| b.update.is_some()) {
                    ReadWrite
                } else {
                    Read
                };
                list.extend([(&mut h.w, params), (&mut h.b, params)]);
                list.extend([
                    (&mut h.logits, Write),
                    (&mut h.dlogits, Write),
                    (&mut h.loss, Write),
                ]);
                if let Some(acc) = &mut h.loss_acc {
                    list.push((acc, ReadWrite));
                }
                if let Some(correct) = &mut h.correct {
                    list.push((correct, ReadWrite));
                }
                if let Some(backward) = &mut h.backward {
                    if let Some((dx, _)) = &mut backward.dx {
                        list.push((dx, Write));
                    }
                    list.extend([(&mut backward.w_grad, Write), (&mut backward.b_grad, Write)]);
                    if let Some([w, b]) = &mut backward.update {
                        for slot in [&mut w.slot, &mut b.slot] {
                            list.extend([
                                (&mut slot.state1, ReadWrite),
                                (&mut slot.state2, ReadWrite),
                            ]);
                        }
                    }
                }
            }
        }
        list
    }

    /// The identities of the tensors the op reads and of those it writes.
    pub fn reads_writes(&mut self) -> (HashSet<usize>, HashSet<usize>) {
        let mut reads = HashSet::new();
        let mut writes = HashSet::new();
        for (tensor, access) in self.tensors() {
            if access != Access::Write {
                reads.insert(id(tensor));
            }
            if access != Access::Read {
                writes.insert(id(tensor));
            }
        }
        (reads, writes)
    }

    /// A short description for plan listings: the kernel and what is fused into it.
    pub fn label(&self) -> String {
        match self {
            Op::Elementwise { op, .. } => format!("elementwise {op:?}"),
            Op::Copy { .. } => "copy".into(),
            Op::Conv(c) => c.label(),
            Op::Pool(pool) => pool.label(),
            Op::Dropout(dropout) => dropout.label(),
            Op::Clear { .. } => "clear".into(),
            Op::Matmul(m) => m.label(),
            Op::Sum { axis, .. } => match axis {
                Some(Axis::Columns) => "column sums".into(),
                Some(Axis::Rows) => "row sums".into(),
                None => "sum".into(),
            },
            Op::Activation { activation, .. } => activation.name().to_string(),
            Op::ActivationBackward { activation, .. } => format!("{}′", activation.name()),
            Op::PreluSlopeGrad { .. } => "prelu slope gradient".into(),
            Op::PointwiseLoss { kind, .. } => format!("{kind:?} loss"),
            Op::CrossEntropy { .. } => "softmax cross-entropy".into(),
            Op::CountCorrect { .. } => "correct count".into(),
            Op::OneHot { .. } => "one-hot".into(),
            Op::Gather(_) => "gather batch".into(),
            Op::OptimizerTick(_) => "optimiser step numbers".into(),
            Op::OptimizerStep(_) => "optimiser update".into(),
            Op::Head(h) => {
                let (_, k) = h.x.shape().dims2("head").unwrap_or((0, 0));
                let n = h.b.numel();
                let mut parts = vec![format!("linear {k}×{n} + softmax cross-entropy")];
                if h.correct.is_some() {
                    parts.push("correct count".into());
                }
                if h.loss_acc.is_some() {
                    parts.push("loss sum".into());
                }
                if let Some(backward) = &h.backward {
                    if let Some((_, act)) = &backward.dx {
                        parts.push(format!("input gradient × {}′", act.name()));
                    }
                    parts.push("weight and bias gradients".into());
                    if backward.update.is_some() {
                        parts.push("optimiser update".into());
                    }
                }
                format!("head: {}", parts.join(" + "))
            }
        }
    }

    /// Builds the op's kernel.
    pub fn lower(&self) -> Result<Box<dyn Record>> {
        Ok(match self {
            Op::Elementwise { op, x, y, out } => {
                Box::new(Elementwise::new(*op, x, y.as_ref(), out)?)
            }
            Op::Copy { src, dst } => Box::new(CopyKernel {
                src: src.share(),
                dst: dst.share(),
            }),
            Op::Clear { dst } => Box::new(ClearKernel { dst: dst.share() }),
            Op::Matmul(m) => m.lower()?,
            Op::Conv(c) => c.lower()?,
            Op::Pool(pool) => pool.lower()?,
            Op::Dropout(dropout) => dropout.lower()?,
            Op::Sum {
                x,
                out,
                axis,
                scale,
            } => Box::new(match axis {
                Some(axis) => Sum::new(x, out, *axis, *scale, false)?,
                None => Sum::total(x, out, *scale, false)?,
            }),
            Op::Activation {
                x,
                y,
                activation,
                slopes,
                training,
            } => {
                let state = state(slopes, *training);
                Box::new(ActivationKernel::forward(x, y, *activation, &state)?)
            }
            Op::ActivationBackward {
                saved,
                dy,
                dx,
                activation,
                slopes,
                training,
                from_output,
            } => {
                if *from_output {
                    Box::new(ActivationKernel::backward_from_output(
                        saved,
                        dy,
                        dx,
                        *activation,
                    )?)
                } else {
                    let state = state(slopes, *training);
                    Box::new(ActivationKernel::backward(
                        saved,
                        dy,
                        dx,
                        *activation,
                        &state,
                    )?)
                }
            }
            Op::PreluSlopeGrad { x, dy, dslopes } => Box::new(PreluSlopeGrad::new(x, dy, dslopes)?),
            Op::PointwiseLoss {
                kind,
                input,
                target,
                dinput,
                loss,
                reduction,
            } => Box::new(PointwiseLossKernel::new(
                *kind, input, target, dinput, loss, *reduction, false,
            )?),
            Op::CrossEntropy {
                logits,
                labels,
                classes,
                dlogits,
                loss,
                reduction,
            } => {
                let labels = Labels::trusted(labels.share(), *classes)?;
                let options = CrossEntropyOptions {
                    reduction: *reduction,
                    ..CrossEntropyOptions::default()
                };
                Box::new(SoftmaxCrossEntropy::new(
                    logits, &labels, dlogits, loss, &options,
                )?)
            }
            Op::CountCorrect {
                scores,
                labels,
                classes,
                correct,
            } => {
                let labels = Labels::trusted(labels.share(), *classes)?;
                Box::new(Metric::count_correct(scores, &labels, correct)?)
            }
            Op::OneHot {
                labels,
                classes,
                out,
            } => {
                let labels = Labels::trusted(labels.share(), *classes)?;
                Box::new(OneHot::new(&labels, out)?)
            }
            Op::Gather(g) => Box::new(BatchGather::from_op(g)?),
            Op::OptimizerTick(shared) => Box::new(TickKernel(shared.clone())),
            Op::OptimizerStep(step) => Box::new(step.kernel()?),
            Op::Head(h) => Box::new(Head::new(h)?),
        })
    }
}

/// The activation state of an op's slopes and mode.
pub(super) fn state(slopes: &Option<Tensor>, training: bool) -> ActivationState<'_> {
    ActivationState {
        prelu_slopes: slopes.as_ref(),
        training,
        ..ActivationState::default()
    }
}

/// A buffer copy as a plan step.
#[derive(Debug)]
struct CopyKernel {
    src: Tensor,
    dst: Tensor,
}

impl Record for CopyKernel {
    fn record_into(&self, encoder: &mut Encoder) {
        encoder.copy_buffer(
            self.src.buffer(),
            0,
            self.dst.buffer(),
            0,
            self.src.byte_len(),
        );
        encoder.keep_alive(&[self.src.storage().clone(), self.dst.storage().clone()]);
    }
}

/// A buffer clear as a plan step.
#[derive(Debug)]
struct ClearKernel {
    dst: Tensor,
}

impl Record for ClearKernel {
    fn record_into(&self, encoder: &mut Encoder) {
        encoder.clear_buffer(self.dst.buffer(), 0, self.dst.byte_len());
        encoder.keep_alive(&[self.dst.storage().clone()]);
    }
}

/// An optimiser's per-step numbers as a plan step: no dispatch, a per-step input (only a
/// capture records the op: the plan counts the step when it fills its row of per-step values,
/// and copies the numbers in on the device).
#[derive(Debug)]
struct TickKernel(Arc<OptimizerShared>);

impl Record for TickKernel {
    fn record_into(&self, _encoder: &mut Encoder) {}

    fn step_inputs(&self) -> Vec<StepInput> {
        vec![StepInput {
            value: StepValue::Optimizer(self.0.clone()),
            buffer: self.0.hyper.clone(),
            offset: 0,
        }]
    }
}
