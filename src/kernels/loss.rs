//! Losses: fused softmax-cross-entropy, softmax and log-softmax, MSE, L1 and binary
//! cross-entropy (on probabilities and on logits), with PyTorch's semantics.
//!
//! Every loss writes its gradient in the same pass as its terms and sums the terms in index
//! order into a one-element loss tensor, which it can overwrite or add to (to accumulate an
//! epoch's loss on the device without reading it back each step).
//!
//! (Just over 600 lines: one launcher per entry point of `shaders/loss.wgsl`, which is one
//! family: they share its uniform, its bindings and its terms-then-sum reduction.)

use super::reduce::{Sum, TermsThenSum};
use super::{Dispatch, Record, Uniform, entry, flag, grid};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/loss.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "loss",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/loss.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("gather_label_weights", 3),
        ("softmax_ce_rows", 7),
        ("softmax_rows", 3),
        ("softmax_backward", 4),
        ("pointwise_loss", 4),
        ("one_hot", 2),
    ],
};

super::bindings! {
    /// The binding numbers of `shaders/loss.wgsl`, by the WGSL variable each names.
    bind:
    INPUTS = 0,
    LABELS = 1,
    TARGETS = 2,
    WEIGHTS = 3,
    GRAD = 4,
    TERMS = 5,
    STATS = 6,
    P = 7,
    LABEL_WEIGHTS = 8,
    NORM = 9,
}

/// The `LossParams` uniform of `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LossParams {
    pub rows: u32,
    pub cols: u32,
    pub count: u32,
    pub begin: u32,
    pub end: u32,
    pub phase: u32,
    pub _pad0: [u32; 2],
    pub scale: f32,
    pub _pad1: [f32; 3],
}

/// The phases of a row kernel's pass, the bits of `LossParams::phase` (the WGSL `const`s of
/// the same names).
pub(crate) mod phase {
    /// The running max of the row (softmax).
    pub const PHASE_MAX: u32 = 1;
    /// The running sum of exp(z − max) (softmax).
    pub const PHASE_SUM: u32 = 2;
    /// The running dot product of dy and y (softmax backward).
    pub const PHASE_DOT: u32 = 2;
    /// The outputs.
    pub const PHASE_WRITE: u32 = 4;
}

/// How per-element (or per-row) losses become one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (PyTorch's default); for weighted cross-entropy, Σ wᵢ·lᵢ / Σ wᵢ.
    #[default]
    Mean,
    /// The sum.
    Sum,
}

/// Class labels on the device, validated against the number of classes when uploaded, so no
/// kernel ever sees an out-of-range label.
#[derive(Debug)]
pub struct Labels {
    tensor: Tensor,
    classes: usize,
}

impl Labels {
    /// Uploads `labels`, each of which must be below `classes`.
    pub fn new(device: &Device, labels: &[u32], classes: usize) -> Result<Self> {
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= classes)
        {
            return Err(Error::InvalidArgument(format!(
                "label {label} at index {index} is out of range for {classes} classes (0..{classes})"
            )));
        }
        let tensor = Tensor::from_u32(device, labels, [labels.len()])?;
        Ok(Self { tensor, classes })
    }

    /// Wraps a u32 tensor of labels that are known to be in range (for example gathered on the
    /// device from labels validated by [`Labels::new`]).
    pub fn trusted(tensor: Tensor, classes: usize) -> Result<Self> {
        tensor.expect_dtype("Labels::trusted", DType::U32)?;
        if tensor.shape().dims().len() != 1 {
            return Err(Error::shape(
                "Labels::trusted",
                "a 1-D tensor of labels",
                tensor.shape(),
            ));
        }
        Ok(Self { tensor, classes })
    }

    /// The labels' tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.tensor.numel()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn loss_params(rows: usize, cols: usize, count: usize, scale: f32) -> LossParams {
    LossParams {
        rows: rows as u32,
        cols: cols as u32,
        count: count as u32,
        // One pass over whole rows, every phase.
        begin: 0,
        end: cols as u32,
        phase: phase::PHASE_MAX | phase::PHASE_SUM | phase::PHASE_WRITE,
        scale,
        ..LossParams::default()
    }
}

fn params(device: &Device, rows: usize, cols: usize, count: usize, scale: f32) -> Result<Uniform> {
    let params = loss_params(rows, cols, count, scale);
    Uniform::new(device, "loss params", bytemuck::bytes_of(&params))
}

/// The dispatches of a row kernel (one invocation per row) over `rows × cols`: one pass of
/// every phase in `phases` when a row fits in [`PASS_LENGTH`](super::PASS_LENGTH) columns,
/// else each phase over each chunk of columns in turn, carrying the row's state in a scratch
/// tensor (a 16-byte scratch when there is one pass). `entries` are every binding but the
/// uniform and the state.
#[allow(clippy::too_many_arguments)]
fn row_passes(
    device: &Device,
    op: &str,
    pipeline: &std::sync::Arc<wgpu::ComputePipeline>,
    entries: &[super::Entry<'_>],
    (rows, cols): (usize, usize),
    phases: &[u32],
    state_per_row: usize,
) -> Result<(Vec<Dispatch>, Tensor)> {
    let row_grid = grid(device, op, rows)?;
    let base = loss_params(rows, cols, rows, 1.0);
    let ranges = super::pass_ranges(cols, super::PASS_LENGTH);
    let passes: Vec<(u32, (u32, u32))> = if ranges.len() == 1 {
        vec![(phases.iter().fold(0, |all, p| all | p), ranges[0])]
    } else {
        phases
            .iter()
            .flat_map(|&phase| ranges.iter().map(move |&range| (phase, range)))
            .collect()
    };
    // With one pass the state is never touched, but WebGPU forbids binding `out` there too
    // (one buffer in two writable bindings of a dispatch): a 16-byte scratch stands in.
    let words = if passes.len() > 1 {
        rows.max(1) * state_per_row
    } else {
        4
    };
    let state = Tensor::uninit(device, [words])?;
    let dispatches = passes
        .into_iter()
        .map(|(phase, (begin, end))| -> Result<Dispatch> {
            let params = LossParams {
                begin,
                end,
                phase,
                ..base
            };
            let uniform = Uniform::new(device, "loss pass", bytemuck::bytes_of(&params))?;
            let mut all = entries.to_vec();
            all.push(entry(bind::P, &uniform));
            all.push(entry(bind::STATS, &state));
            Ok(Dispatch::new(
                device,
                std::sync::Arc::clone(pipeline),
                op,
                &all,
                row_grid,
            ))
        })
        .collect::<Result<_>>()?;
    Ok((dispatches, state))
}

fn expect_f32(op: &str, tensors: &[&Tensor]) -> Result<()> {
    tensors
        .iter()
        .try_for_each(|t| t.expect_dtype(op, DType::F32))
}

fn expect_scalar(op: &str, loss: &Tensor) -> Result<()> {
    if loss.numel() != 1 {
        return Err(Error::shape(op, "a one-element loss tensor", loss.shape()));
    }
    Ok(())
}

/// Options of [`SoftmaxCrossEntropy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropyOptions<'a> {
    /// Per-class weights, shape `[classes]`.
    pub weights: Option<&'a Tensor>,
    /// Mean (default) or sum.
    pub reduction: Reduction,
    /// Add the loss to the loss tensor instead of overwriting it.
    pub accumulate: bool,
}

/// Fused softmax + cross-entropy on logits: loss and `dlogits` in one pass over the logits
/// (plus a fixed-order sum of the per-row losses).
#[derive(Debug)]
pub struct SoftmaxCrossEntropy {
    normaliser: Option<(Dispatch, Sum)>,
    /// `softmax_ce_rows`, in passes over long rows.
    rows: Vec<Dispatch>,
    sum: Sum,
    _scratch: [Option<Tensor>; 4],
}

impl SoftmaxCrossEntropy {
    /// Prepares the loss of `logits` (`[rows, classes]`) against `labels` into `loss` (`[1]`)
    /// and its gradient into `dlogits` (shaped like `logits`).
    pub fn new(
        logits: &Tensor,
        labels: &Labels,
        dlogits: &Tensor,
        loss: &Tensor,
        options: &CrossEntropyOptions<'_>,
    ) -> Result<Self> {
        let op = "softmax cross-entropy";
        let device = logits.device();
        expect_f32(op, &[logits, dlogits, loss])?;
        let (rows, classes) = logits.shape().dims2(op)?;
        if classes != labels.classes() || rows != labels.len() {
            return Err(Error::shape(
                op,
                format!(
                    "logits [{}, {}] for {} labels of {} classes",
                    labels.len(),
                    labels.classes(),
                    labels.len(),
                    labels.classes()
                ),
                logits.shape(),
            ));
        }
        if dlogits.shape() != logits.shape() {
            return Err(Error::shape(op, logits.shape(), dlogits.shape()));
        }
        expect_scalar(op, loss)?;
        if let Some(weights) = options.weights {
            expect_f32(op, &[weights])?;
            if weights.shape().dims() != [classes] {
                return Err(Error::shape(
                    op,
                    format!("class weights [{classes}]"),
                    weights.shape(),
                ));
            }
        }
        let weighted = options.weights.is_some();
        let mean = options.reduction == Reduction::Mean;
        let constants = [("WEIGHTED", flag(weighted)), ("MEAN", flag(mean))];
        // Zeroed: with no rows the sum must read 0, not a recycled buffer's contents.
        let terms = Tensor::zeros(device, [rows.max(1)])?;
        // A row vector, so a row sum gives the weighted mean's normaliser.
        let label_weights = Tensor::zeros(device, [1, rows.max(1)])?;
        let norm = Tensor::uninit(device, [1])?;
        let uniform = params(device, rows, classes, rows, 1.0)?;
        // Unused bindings still need a buffer of the right kind; the logits stand in.
        let weights = options.weights.unwrap_or(logits);
        let row_grid = grid(device, op, rows)?;
        let normaliser = if weighted && mean {
            let pipeline = device.pipeline(&SHADER, "gather_label_weights", &constants)?;
            let entries = [
                entry(bind::LABELS, labels.tensor()),
                entry(bind::WEIGHTS, weights),
                entry(bind::P, &uniform),
                entry(bind::LABEL_WEIGHTS, &label_weights),
            ];
            let gather =
                Dispatch::new(device, pipeline, "gather_label_weights", &entries, row_grid);
            let sum = Sum::new(&label_weights, &norm, super::reduce::Axis::Rows, 1.0, false)?;
            Some((gather, sum))
        } else {
            None
        };
        let pipeline = device.pipeline(&SHADER, "softmax_ce_rows", &constants)?;
        let entries = [
            entry(bind::INPUTS, logits),
            entry(bind::LABELS, labels.tensor()),
            entry(bind::WEIGHTS, weights),
            entry(bind::GRAD, dlogits),
            entry(bind::TERMS, &terms),
            entry(bind::NORM, &norm),
        ];
        use phase::{PHASE_MAX, PHASE_SUM, PHASE_WRITE};
        let (passes, stats) = row_passes(
            device,
            op,
            &pipeline,
            &entries,
            (rows, classes),
            &[PHASE_MAX, PHASE_SUM, PHASE_WRITE],
            2,
        )?;
        let sum = Sum::total(&terms, loss, 1.0, options.accumulate)?;
        Ok(Self {
            normaliser,
            rows: passes,
            sum,
            _scratch: [Some(terms), Some(label_weights), Some(norm), Some(stats)],
        })
    }

    /// Records the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        if let Some((gather, sum)) = &self.normaliser {
            gather.record(encoder);
            sum.record(encoder);
        }
        for pass in &self.rows {
            pass.record(encoder);
        }
        self.sum.record(encoder);
    }
}

/// The pointwise losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointwiseLoss {
    /// Mean squared error, `(x − t)²`.
    Mse,
    /// Mean absolute error, `|x − t|`; its gradient at `x = t` is 0, like PyTorch's.
    L1,
    /// Binary cross-entropy on probabilities `x ∈ [0, 1]`, each log clamped at −100 (PyTorch).
    Bce,
    /// Binary cross-entropy on logits, in the stable form `max(x, 0) − x·t + log(1 + e^{−|x|})`.
    BceWithLogits,
}

impl PointwiseLoss {
    /// Every pointwise loss.
    pub const ALL: [PointwiseLoss; 4] = [
        PointwiseLoss::Mse,
        PointwiseLoss::L1,
        PointwiseLoss::Bce,
        PointwiseLoss::BceWithLogits,
    ];

    /// The id `shaders/loss.wgsl` names `LOSS_<NAME>`.
    pub(crate) fn wgsl_id(self) -> u32 {
        match self {
            PointwiseLoss::Mse => 0,
            PointwiseLoss::L1 => 1,
            PointwiseLoss::Bce => 2,
            PointwiseLoss::BceWithLogits => 3,
        }
    }
}

/// A pointwise loss of `input` against `target`, with its gradient, prepared once.
#[derive(Debug)]
pub struct PointwiseLossKernel {
    kernels: TermsThenSum,
}

impl PointwiseLossKernel {
    /// Prepares `loss (+)= reduce(term(input, target))` and `dinput = d loss / d input`.
    pub fn new(
        kind: PointwiseLoss,
        input: &Tensor,
        target: &Tensor,
        dinput: &Tensor,
        loss: &Tensor,
        reduction: Reduction,
        accumulate: bool,
    ) -> Result<Self> {
        let op = format!("{kind:?} loss");
        let device = input.device();
        expect_f32(&op, &[input, target, dinput, loss])?;
        for other in [target, dinput] {
            if other.shape() != input.shape() {
                return Err(Error::shape(&op, input.shape(), other.shape()));
            }
        }
        expect_scalar(&op, loss)?;
        let count = input.numel();
        let scale = match reduction {
            Reduction::Mean => 1.0 / count.max(1) as f32,
            Reduction::Sum => 1.0,
        };
        let terms = Tensor::zeros(device, [count.max(1)])?;
        let uniform = params(device, 0, 0, count, scale)?;
        let pipeline = device.pipeline(
            &SHADER,
            "pointwise_loss",
            &[("LOSS", f64::from(kind.wgsl_id()))],
        )?;
        let entries = [
            entry(bind::INPUTS, input),
            entry(bind::TARGETS, target),
            entry(bind::GRAD, dinput),
            entry(bind::TERMS, &terms),
            entry(bind::P, &uniform),
        ];
        let terms_pass = Dispatch::new(device, pipeline, &op, &entries, grid(device, &op, count)?);
        let sum = Sum::total(&terms, loss, scale, accumulate)?;
        Ok(Self {
            kernels: TermsThenSum {
                pass: terms_pass,
                sum,
                _terms: terms,
            },
        })
    }

    /// Records the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        self.kernels.record(encoder);
    }
}

/// One-hot targets from class labels, `[labels, classes]`, for pointwise losses on labels.
#[derive(Debug)]
pub struct OneHot {
    dispatch: Dispatch,
}

impl OneHot {
    /// Prepares `out[i, c] = (labels[i] == c)`.
    pub fn new(labels: &Labels, out: &Tensor) -> Result<Self> {
        let op = "one_hot";
        let device = out.device();
        expect_f32(op, &[out])?;
        let (rows, classes) = (labels.len(), labels.classes());
        if out.shape().dims() != [rows, classes] {
            return Err(Error::shape(
                op,
                format!("[{rows}, {classes}]"),
                out.shape(),
            ));
        }
        let uniform = params(device, rows, classes, rows * classes, 1.0)?;
        let pipeline = device.pipeline(&SHADER, op, &[])?;
        let entries = [
            entry(bind::LABELS, labels.tensor()),
            entry(bind::GRAD, out),
            entry(bind::P, &uniform),
        ];
        let dispatch = Dispatch::new(
            device,
            pipeline,
            op,
            &entries,
            grid(device, op, rows * classes)?,
        );
        Ok(Self { dispatch })
    }

    /// Records the dispatch.
    pub fn record(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }
}

/// Row-wise softmax (or log-softmax), forward or backward, prepared once.
#[derive(Debug)]
pub struct SoftmaxKernel {
    /// One pass, or several over long rows.
    passes: Vec<Dispatch>,
    _state: Option<Tensor>,
}

impl SoftmaxKernel {
    /// Prepares `y = softmax(x)` (or `log_softmax(x)`) over each row of the 2-D `x`.
    pub fn forward(x: &Tensor, y: &Tensor, log: bool) -> Result<Self> {
        Self::build("softmax_rows", x, None, y, log)
    }

    /// Prepares `dx` from the forward output `y` and the upstream gradient `dy`.
    pub fn backward(y: &Tensor, dy: &Tensor, dx: &Tensor, log: bool) -> Result<Self> {
        Self::build("softmax_backward", y, Some(dy), dx, log)
    }

    fn build(
        entry_point: &str,
        input: &Tensor,
        dy: Option<&Tensor>,
        out: &Tensor,
        log: bool,
    ) -> Result<Self> {
        let op = if log { "log_softmax" } else { "softmax" };
        let device = input.device();
        expect_f32(op, &[input, out])?;
        let (rows, cols) = input.shape().dims2(op)?;
        for other in dy.into_iter().chain([out]) {
            expect_f32(op, &[other])?;
            if other.shape() != input.shape() {
                return Err(Error::shape(op, input.shape(), other.shape()));
            }
        }
        let pipeline = device.pipeline(&SHADER, entry_point, &[("LOG", flag(log))])?;
        let mut entries = vec![entry(bind::INPUTS, input), entry(bind::GRAD, out)];
        use phase::{PHASE_DOT, PHASE_MAX, PHASE_SUM, PHASE_WRITE};
        let (phases, state_per_row): (&[u32], usize) = match dy {
            Some(dy) => {
                entries.push(entry(bind::TARGETS, dy));
                (&[PHASE_DOT, PHASE_WRITE], 1)
            }
            None => (&[PHASE_MAX, PHASE_SUM, PHASE_WRITE], 2),
        };
        let (passes, state) = row_passes(
            device,
            op,
            &pipeline,
            &entries,
            (rows, cols),
            phases,
            state_per_row,
        )?;
        Ok(Self {
            passes,
            _state: Some(state),
        })
    }

    /// Records the dispatches.
    pub fn record(&self, encoder: &mut Encoder) {
        for pass in &self.passes {
            pass.record(encoder);
        }
    }
}

/// Softmax cross-entropy of `logits` against `labels`: `(loss [1], dlogits)`, submitted.
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &Labels,
    options: &CrossEntropyOptions<'_>,
) -> Result<(Tensor, Tensor)> {
    let device = logits.device();
    let loss = Tensor::zeros(device, [1])?;
    let dlogits = Tensor::uninit(device, logits.shape().clone())?;
    let kernel = SoftmaxCrossEntropy::new(logits, labels, &dlogits, &loss, options)?;
    kernel.submit(device)?;
    Ok((loss, dlogits))
}

/// A pointwise loss and its gradient: `(loss [1], dinput)`, submitted.
pub fn pointwise_loss(
    kind: PointwiseLoss,
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
) -> Result<(Tensor, Tensor)> {
    let device = input.device();
    let loss = Tensor::zeros(device, [1])?;
    let dinput = Tensor::uninit(device, input.shape().clone())?;
    let kernel = PointwiseLossKernel::new(kind, input, target, &dinput, &loss, reduction, false)?;
    kernel.submit(device)?;
    Ok((loss, dinput))
}

/// Row-wise softmax (or log-softmax) of a 2-D tensor, submitted.
pub fn softmax(x: &Tensor, log: bool) -> Result<Tensor> {
    let y = Tensor::uninit(x.device(), x.shape().clone())?;
    let kernel = SoftmaxKernel::forward(x, &y, log)?;
    kernel.submit(x.device())?;
    Ok(y)
}

/// The backward pass of [`softmax`] from its output `y` and upstream gradient `dy`, submitted.
pub fn softmax_backward(y: &Tensor, dy: &Tensor, log: bool) -> Result<Tensor> {
    let dx = Tensor::uninit(y.device(), y.shape().clone())?;
    let kernel = SoftmaxKernel::backward(y, dy, &dx, log)?;
    kernel.submit(y.device())?;
    Ok(dx)
}
