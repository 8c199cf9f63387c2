//! The classifier head (`shaders/head.wgsl`): a narrow last layer (at most [`MAX_CLASSES`]
//! classes) with softmax cross-entropy, forward only or with the layer's backward pass and
//! optimiser update, in two passes over many workgroups: `head_rows` (HEAD_WG rows per
//! workgroup: logits, softmax, the row's loss and gradient) and `head_reduce` (the weight and
//! bias gradients, the update and the loss's sum). A captured training step fuses into it (see
//! `src/capture/rules/head.rs`); it computes the unfused kernels' bits for everything but the loss's
//! summation order.

use super::activation::Activation;
use super::optim::{HyperBinding, OptimStep};
use super::texels::{TEXEL_SHIFT, TexelView};
use super::{Dispatch, Uniform, entry, flag};
use crate::device::{Device, Encoder, Profile, ShaderSource};
use crate::loss::Reduction;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/head.wgsl`, after the grid helper and the activation and optimiser functions.
pub const SHADER: ShaderSource = ShaderSource {
    name: "head",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/texels.wgsl"),
        include_str!("../../shaders/hash.wgsl"),
        include_str!("../../shaders/activation_functions.wgsl"),
        include_str!("../../shaders/optim_functions.wgsl"),
        include_str!("../../shaders/head.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("head_rows", 9),
        ("head_rows_staged", 9),
        ("head_reduce", 13),
    ],
};

super::bindings! {
    /// The binding numbers of `shaders/head.wgsl`, by the WGSL variable each names.
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
    PARTIALS = 17,
    W_TEXELS = 18,
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
    pub groups: u32,
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

/// Whether `device` allows the storage buffers the head's kernels bind (`head_reduce` binds
/// 13, past SwiftShader's 10): the capture's fusion rule asks this.
pub fn runs_on(device: &Device) -> bool {
    ["head_rows", "head_rows_staged", "head_reduce"]
        .iter()
        .all(|entry_point| device.binds_enough(&SHADER, entry_point))
}

/// Whether a layer `x [rows, k] · w [k, n]` fits the head: at most [`MAX_CLASSES`] classes,
/// and few enough loop iterations per invocation (the head has no passes; lavapipe stops an
/// invocation's loops after 65535 iterations in all). A layer that does not fit runs as the
/// unfused kernels, which split long loops into passes.
pub fn fits(rows: usize, k: usize, n: usize) -> bool {
    if !(1..=MAX_CLASSES).contains(&n) || k == 0 {
        return false;
    }
    let budget = super::INVOCATION_BUDGET;
    // head_rows: the logits' k·(n + 1) (an inner loop over the classes per k), the input
    // gradient's as many, the softmax's few loops over the classes, the partial sums.
    let per_row = k.saturating_mul(n + 1).saturating_mul(2) + 8 * n + HEAD_WG;
    // head_reduce: invocation 0 sums the workgroups' partials, then every gradient element
    // sums over the rows (b_grad in blocks of 1024 rows).
    let per_element = rows.div_ceil(HEAD_WG) + rows + rows.div_ceil(super::reduce::BLOCK) + 2;
    per_row <= budget && per_element <= budget
}

/// Rows per `head_rows` workgroup: few, so a batch spreads over a CPU device's cores. The loss
/// is summed in groups of as many rows under either profile.
pub(crate) const HEAD_WG: usize = 16;
/// Rows per `head_rows_staged` workgroup (the shader's `STAGED_ROWS`; 32 × 8 invocations).
pub(crate) const STAGED_ROWS: usize = 8;

/// A prepared head: the per-row pass, then the reduction (loss, gradients, update).
#[derive(Debug)]
pub(crate) struct Head {
    /// W's texel view, filled before the per-row pass (when k·n is a multiple of 4), or a
    /// stand-in.
    w_texels: TexelView,
    w: Option<Tensor>,
    rows: Dispatch,
    reduce: Dispatch,
    /// Distinct stand-ins for the writable bindings this specialisation never uses.
    _stand_ins: Vec<Tensor>,
}

impl Head {
    pub fn new(op: &HeadOp) -> Result<Self> {
        let name = "classifier head";
        let device = op.x.device();
        let (rows, k) = op.x.shape().dims2(name)?;
        let (k2, n) = op.w.shape().dims2(name)?;
        if k != k2 || !fits(rows, k, n) || op.b.numel() != n || op.labels.numel() != rows {
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
        let groups = rows.div_ceil(HEAD_WG).max(1);
        let params = HeadParams {
            rows: rows as u32,
            k: k as u32,
            n: n as u32,
            groups: groups as u32,
        };
        let uniform = Uniform::new(device, "head params", bytemuck::bytes_of(&params))?;
        // The GPU profile's per-row pass: rows and classes in parallel in each workgroup, W
        // staged in workgroup memory (no texel view), one loss term per row in `partials`.
        let staged = device.profile() == Profile::Gpu;
        let partials = Tensor::uninit(device, [if staged { groups * HEAD_WG } else { groups }])?;
        // A stand-in of its own for each writable binding left unused (`super::stand_ins`).
        let stand_ins = super::stand_ins(device, 9)?;
        let (correct, dx_in, loss_acc) = (&stand_ins[0], &stand_ins[1], &stand_ins[2]);
        let (w_grad, b_grad) = (&stand_ins[3], &stand_ins[4]);
        let (w1, w2, b1, b2) = (&stand_ins[5], &stand_ins[6], &stand_ins[7], &stand_ins[8]);
        let backward = op.backward.as_ref();
        let (dx, act) = match backward.and_then(|b| b.dx.as_ref()) {
            Some((dx, act)) => {
                if dx.shape() != op.x.shape() || !act.derivative_from_output() {
                    return Err(Error::InvalidArgument(format!(
                        "{name}: the input gradient needs x's shape and an activation whose \
                         derivative comes from its output"
                    )));
                }
                (Some(dx), *act)
            }
            None => (None, Activation::Identity),
        };
        let update = backward.and_then(|b| b.update.as_ref());
        if let Some([w, b]) = update
            && (w.slot.param.buffer() != op.w.buffer() || b.slot.param.buffer() != op.b.buffer())
        {
            return Err(Error::InvalidArgument(format!(
                "{name}: the fused update must be of the head's own parameters"
            )));
        }

        let (act_id, _, _) = act.wgsl_id_and_params();
        let texels = !staged && (k * n).is_multiple_of(4);
        let w_texels = TexelView::new(device, "head weights", if texels { k * n } else { 4 })?;
        let row_constants = [
            ("W_TEXELS", flag(texels)),
            ("TEXEL_SHIFT", f64::from(TEXEL_SHIFT)),
            ("MEAN", flag(op.reduction == Reduction::Mean)),
            ("COUNT", flag(op.correct.is_some())),
            ("HAS_DX", flag(dx.is_some())),
            ("DACT", flag(dx.is_some() && act != Activation::Identity)),
            ("ACTIVATION", f64::from(act_id)),
            ("HEAD_WG", HEAD_WG as f64),
        ];
        let mut row_entries = vec![
            entry(bind::X, &op.x),
            entry(bind::W, &op.w),
            entry(bind::BIAS, &op.b),
            entry(bind::LABELS, &op.labels),
            entry(bind::LOGITS, &op.logits),
            entry(bind::DLOGITS, &op.dlogits),
            entry(bind::CORRECT, op.correct.as_ref().unwrap_or(correct)),
            entry(bind::P, &uniform),
            entry(bind::DX, dx.unwrap_or(dx_in)),
            entry(bind::PARTIALS, &partials),
        ];
        let (row_entry, per_group) = if staged {
            ("head_rows_staged", STAGED_ROWS)
        } else {
            row_entries.push(entry(
                bind::W_TEXELS,
                wgpu::BindingResource::TextureView(w_texels.view()),
            ));
            ("head_rows", HEAD_WG)
        };
        let pipeline = device.pipeline(&SHADER, row_entry, &row_constants)?;
        let row_groups = [super::groups(device, name, rows.max(1), per_group)?, 1, 1];
        let rows_dispatch = Dispatch::new(device, pipeline, row_entry, &row_entries, row_groups);

        let hyper = HyperBinding::new(device, update.map(|[w, _]| w));
        let mut reduce_constants = vec![
            ("ACCUMULATE_LOSS", flag(op.loss_acc.is_some())),
            ("GRADS", flag(backward.is_some())),
            ("ROW_TERMS", flag(staged)),
            ("HEAD_WG", HEAD_WG as f64),
        ];
        reduce_constants.extend(hyper.constants());
        let state = |pick: fn(&[OptimStep; 2]) -> &Tensor, stand_in| update.map_or(stand_in, pick);
        let reduce_entries = [
            entry(bind::X, &op.x),
            entry(bind::W, &op.w),
            entry(bind::BIAS, &op.b),
            entry(bind::DLOGITS, &op.dlogits),
            entry(bind::LOSS, &op.loss),
            entry(bind::LOSS_ACC, op.loss_acc.as_ref().unwrap_or(loss_acc)),
            entry(bind::P, &uniform),
            entry(bind::W_GRAD, backward.map_or(w_grad, |b| &b.w_grad)),
            entry(bind::B_GRAD, backward.map_or(b_grad, |b| &b.b_grad)),
            entry(bind::W_STATE1, state(|[w, _]| &w.slot.state1, w1)),
            entry(bind::W_STATE2, state(|[w, _]| &w.slot.state2, w2)),
            entry(bind::B_STATE1, state(|[_, b]| &b.slot.state1, b1)),
            entry(bind::B_STATE2, state(|[_, b]| &b.slot.state2, b2)),
            entry(bind::PARTIALS, &partials),
            hyper.entry(),
        ];
        let pipeline = device.pipeline(&SHADER, "head_reduce", &reduce_constants)?;
        let elements = if backward.is_some() { k * n + n } else { 1 };
        let reduce_groups = super::grid(device, name, elements)?;
        let reduce = Dispatch::new(
            device,
            pipeline,
            "head_reduce",
            &reduce_entries,
            reduce_groups,
        );
        Ok(Self {
            w_texels,
            w: texels.then(|| op.w.share()),
            rows: rows_dispatch,
            reduce,
            _stand_ins: stand_ins,
        })
    }

    pub fn record(&self, encoder: &mut Encoder) {
        if let Some(w) = &self.w {
            self.w_texels.fill(encoder, w);
        }
        self.rows.record(encoder);
        self.reduce.record(encoder);
    }
}
