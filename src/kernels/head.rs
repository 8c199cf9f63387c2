//! The classifier head (`shaders/head.wgsl`): a narrow last layer (at most [`MAX_CLASSES`]
//! classes) with softmax cross-entropy in one workgroup, forward only or with the layer's
//! backward pass and optimiser update. A captured training step fuses into it (see
//! `src/capture/fuse.rs`); it computes the unfused kernels' bits for everything but the loss's
//! summation order.

use super::activation::Activation;
use super::optim::{Hyper, OptimStep};
use super::{Dispatch, entry};
use crate::device::{Encoder, ShaderSource};
use crate::loss::Reduction;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/head.wgsl`, after the activation and optimiser functions.
pub const SHADER: ShaderSource = ShaderSource {
    name: "head",
    wgsl: concat!(
        include_str!("../../shaders/activation_functions.wgsl"),
        include_str!("../../shaders/optim_functions.wgsl"),
        include_str!("../../shaders/head.wgsl")
    ),
};

super::bindings! {
    /// The binding numbers of `shaders/head.wgsl`, by the WGSL variable each one names, by the WGSL variable each names.
    bind:
    X = 0,
    W = 1,
    BIAS = 2,
    LABELS = 3,
    LOGITS = 4,
    DLOGITS = 5,
    LOSS = 6,
    LOSS_ACC = 7,
    CORRECT = 8,
    P = 9,
    DX = 10,
    W_GRAD = 11,
    B_GRAD = 12,
    W_STATE1 = 13,
    W_STATE2 = 14,
    B_STATE1 = 15,
    B_STATE2 = 16,
}

/// The widest layer the head takes (its logits live in a private array).
pub const MAX_CLASSES: usize = 32;

/// The `HeadParams` uniform of `shaders/head.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct HeadParams {
    pub rows: u32,
    pub k: u32,
    pub n: u32,
    pub _pad: u32,
}

/// The layer's backward pass and update, fused after the forward pass.
#[derive(Debug)]
pub(crate) struct HeadBackward {
    /// The input gradient, with the derivative of the activation whose output is the input.
    pub dx: Option<(Tensor, Activation)>,
    pub w_grad: Tensor,
    pub b_grad: Tensor,
    /// Both parameters' updates, by one optimiser.
    pub update: Option<[OptimStep; 2]>,
}

/// Everything the head computes.
#[derive(Debug)]
pub(crate) struct HeadOp {
    pub x: Tensor,
    pub w: Tensor,
    pub b: Tensor,
    pub labels: Tensor,
    pub logits: Tensor,
    pub dlogits: Tensor,
    pub loss: Tensor,
    pub reduction: Reduction,
    pub loss_acc: Option<Tensor>,
    pub correct: Option<Tensor>,
    pub backward: Option<HeadBackward>,
}

/// Whether a layer `x [rows, k] · w [k, n]` fits the head.
pub fn fits(k: usize, n: usize) -> bool {
    (1..=MAX_CLASSES).contains(&n) && k > 0
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// A prepared head.
#[derive(Debug)]
pub(crate) struct Head {
    dispatch: Dispatch,
}

impl Head {
    pub fn new(op: &HeadOp) -> Result<Self> {
        let name = "classifier head";
        let device = op.x.device();
        let (rows, k) = op.x.shape().dims2(name)?;
        let (k2, n) = op.w.shape().dims2(name)?;
        if k != k2 || !fits(k, n) || op.b.numel() != n || op.labels.numel() != rows {
            return Err(Error::shape(
                name,
                format!("x [rows, k], w [k, ≤{MAX_CLASSES}], bias [n], labels [rows]"),
                format!(
                    "x {}, w {}, bias {}, labels {}",
                    op.x.shape(),
                    op.w.shape(),
                    op.b.shape(),
                    op.labels.shape()
                ),
            ));
        }
        op.labels.expect_dtype(name, DType::U32)?;
        let params = HeadParams {
            rows: rows as u32,
            k: k as u32,
            n: n as u32,
            _pad: 0,
        };
        let uniform = device.uniform_buffer("head params", bytemuck::bytes_of(&params));
        // Writable stand-ins for unused writable bindings (never one bound read-only too).
        let dummy = &Tensor::uninit(device, [4])?;
        let mut constants = vec![
            ("MEAN", flag(op.reduction == Reduction::Mean)),
            ("COUNT", flag(op.correct.is_some())),
            ("ACCUMULATE_LOSS", flag(op.loss_acc.is_some())),
        ];
        let fallback;
        let mut entries = vec![
            entry(bind::X, &op.x),
            entry(bind::W, &op.w),
            entry(bind::BIAS, &op.b),
            entry(bind::LABELS, &op.labels),
            entry(bind::LOGITS, &op.logits),
            entry(bind::DLOGITS, &op.dlogits),
            entry(bind::LOSS, &op.loss),
            entry(bind::LOSS_ACC, op.loss_acc.as_ref().unwrap_or(dummy)),
            entry(bind::CORRECT, op.correct.as_ref().unwrap_or(dummy)),
            entry(bind::P, uniform.as_entire_binding()),
        ];
        let entry_point = match &op.backward {
            None => "head_forward",
            Some(backward) => {
                let (dx, act) = match &backward.dx {
                    Some((dx, act)) => (dx, *act),
                    None => (dummy, Activation::Identity),
                };
                if backward.dx.is_some()
                    && (dx.shape() != op.x.shape() || !act.derivative_from_output())
                {
                    return Err(Error::InvalidArgument(format!(
                        "{name}: the input gradient needs x's shape and an activation whose \
                         derivative comes from its output"
                    )));
                }
                let (id, _, _) = act.wgsl_id_and_params();
                constants.push(("ACTIVATION", f64::from(id)));
                constants.push((
                    "DACT",
                    flag(backward.dx.is_some() && act != Activation::Identity),
                ));
                constants.push(("HAS_DX", flag(backward.dx.is_some())));
                entries.extend([
                    entry(bind::DX, dx),
                    entry(bind::W_GRAD, &backward.w_grad),
                    entry(bind::B_GRAD, &backward.b_grad),
                ]);
                match &backward.update {
                    Some([w, b]) => {
                        if w.slot.param.buffer() != op.w.buffer()
                            || b.slot.param.buffer() != op.b.buffer()
                        {
                            return Err(Error::InvalidArgument(format!(
                                "{name}: the fused update must be of the head's own parameters"
                            )));
                        }
                        constants.extend(w.shared.config().constants());
                        entries.extend([
                            entry(bind::W_STATE1, &w.slot.state1),
                            entry(bind::W_STATE2, &w.slot.state2),
                            entry(bind::B_STATE1, &b.slot.state1),
                            entry(bind::B_STATE2, &b.slot.state2),
                            entry(
                                super::optim::functions_bind::H,
                                w.shared.hyper.as_entire_binding(),
                            ),
                        ]);
                    }
                    None => {
                        fallback = device
                            .uniform_buffer("no optimiser", bytemuck::bytes_of(&Hyper::default()));
                        entries.extend([
                            entry(bind::W_STATE1, dummy),
                            entry(bind::W_STATE2, dummy),
                            entry(bind::B_STATE1, dummy),
                            entry(bind::B_STATE2, dummy),
                            entry(
                                super::optim::functions_bind::H,
                                fallback.as_entire_binding(),
                            ),
                        ]);
                    }
                }
                "head_step"
            }
        };
        let pipeline = device.pipeline(&SHADER, entry_point, &constants)?;
        let dispatch = Dispatch::new(device, pipeline, entry_point, &entries, [1, 1, 1]);
        Ok(Self { dispatch })
    }

    pub fn record(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }
}
