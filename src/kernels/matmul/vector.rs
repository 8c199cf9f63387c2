//! The vector matmul family (`shaders/matmul_vector.wgsl`): sixteen rows by four columns per
//! invocation in named vec4 accumulators, for shapes whose vec4 loads line up, with the fused
//! prologues and epilogues a captured training step uses: operand A gathered straight from a
//! data set's bytes (and the batch's labels written on the way), bias + activation, the
//! activation's derivative (from its output) on an input gradient, a bias gradient as an extra
//! row of workgroups, and the optimiser's update of the parameters whose gradients it computes.
//!
//! Each output is the same fma chain in k order as [`MatmulKernel::Blocked`] and
//! [`MatmulKernel::Tiled`] compute, so every family gives the same bits.
//!
//! [`MatmulKernel::Blocked`]: super::MatmulKernel::Blocked
//! [`MatmulKernel::Tiled`]: super::MatmulKernel::Tiled

use std::sync::Arc;

use super::{MatmulDims, MatmulForm, staged};
use crate::device::{Device, Encoder, ShaderSource};
use crate::kernels::activation::{Activation, ActivationBinding, ActivationState};
use crate::kernels::gather::BatchSource;
use crate::kernels::optim::{HyperBinding, OptimStep};
use crate::kernels::step::{StepInput, StepValue};
use crate::kernels::{Dispatch, Uniform, entry, flag, groups};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/matmul_vector.wgsl`, after the pixel, activation and optimiser functions, the
/// fused bias gradient and the prologues and epilogues of the fused families
/// (`shaders/matmul_fused.wgsl`).
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul_vector",
    wgsl: fused_wgsl!("matmul_vector.wgsl"),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("matmul_vector_ab", 10),
        ("matmul_vector_atb", 13),
        ("matmul_vector_abt", 5),
    ],
};

crate::kernels::bindings! {
    /// The binding numbers of `shaders/matmul_vector.wgsl`, by the WGSL variable each names.
    bind:
    A = 0,
    B = 1,
    BIAS = 2,
    C = 3,
    P = 4,
    SAVED = 5,
    PIXELS = 6,
    ORDER = 7,
    DS_LABELS = 8,
    BATCH_LABELS = 9,
    BIAS_GRAD = 10,
    W_PARAM = 11,
    W_STATE1 = 12,
    W_STATE2 = 13,
    B_PARAM = 14,
    B_STATE1 = 15,
    B_STATE2 = 16,
    PARTIAL = 17,
}

/// Rows of C per invocation (the shader's `ROWS`).
pub(crate) const ROWS: usize = 16;

/// The `VectorParams` uniform of `shaders/matmul_vector.wgsl`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct VectorParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub offset: u32,
    pub scale: f32,
    pub shift: f32,
    pub example_words: u32,
    pub row_blocks: u32,
    pub k_begin: u32,
    pub k_end: u32,
    pub _pad: [u32; 2],
}

/// The most rows (K) of B a fused bias gradient sums: it runs in one pass (see
/// [`PASS_LENGTH`](crate::kernels::PASS_LENGTH)).
pub(crate) const MAX_BIAS_GRAD_ROWS: usize = crate::kernels::PASS_LENGTH;

/// Whether the vector family computes `op(A)·op(B)` of `m×k` by `k×n` in `form`: the
/// dimensions read as vec4 must be multiples of 4.
pub fn supports(form: MatmulForm, dims: MatmulDims) -> bool {
    let MatmulDims { m, k, n } = dims;
    let aligned = match form {
        MatmulForm::AB => k.is_multiple_of(4) && n.is_multiple_of(4),
        MatmulForm::AtB => m.is_multiple_of(4) && n.is_multiple_of(4),
        MatmulForm::ABt => k.is_multiple_of(4),
    };
    aligned && m > 0 && k > 0 && n > 0
}

/// The most writable bindings a specialisation may leave unused (Aᵀ·B: the bias gradient,
/// the weight and its two states, the bias and its two states), each given its own stand-in.
pub(crate) const WRITABLE_STAND_INS: usize = 7;

/// The entry point of `form`.
/// The family that prepares a fused product: both bind the same buffers and run the same
/// prologues and epilogues (`shaders/matmul_fused.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FusedFamily {
    /// `shaders/matmul_vector.wgsl`: 16 rows × 4 columns per invocation, for CPU devices.
    Vector,
    /// `shaders/matmul_staged.wgsl`: tiles in workgroup memory, one vec4 per invocation, for
    /// GPUs.
    Staged,
}

/// The staged family's entry point of `form`.
fn staged_entry_point(form: MatmulForm) -> &'static str {
    match form {
        MatmulForm::AB => "matmul_staged_ab",
        MatmulForm::AtB => "matmul_staged_atb",
        MatmulForm::ABt => "matmul_staged_abt",
    }
}

fn entry_point(form: MatmulForm) -> &'static str {
    match form {
        MatmulForm::AB => "matmul_vector_ab",
        MatmulForm::AtB => "matmul_vector_atb",
        MatmulForm::ABt => "matmul_vector_abt",
    }
}

/// Whether the family computes this product on `device`: the shape lines up
/// ([`supports`]) and the device allows the storage buffers `form`'s kernel binds (its Aᵀ·B
/// binds 13, past SwiftShader's 10). Kernel choice and the capture's fusion rules ask this.
pub fn runs(device: &Device, form: MatmulForm, dims: MatmulDims) -> bool {
    supports(form, dims) && device.binds_enough(&SHADER, entry_point(form))
}

/// Everything one vector matmul computes. `a` is op(A)'s tensor; with `gather` its values are
/// read from the data set instead (and `a` only gives the shape).
pub(crate) struct VectorSpec<'a> {
    pub form: MatmulForm,
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub c: &'a Tensor,
    pub gather: Option<&'a Arc<BatchSource>>,
    /// With `gather` in `AB`: also write the batch's labels here.
    pub write_labels: Option<&'a Tensor>,
    pub bias: Option<&'a Tensor>,
    pub accumulate: bool,
    pub activation: Activation,
    pub activation_state: ActivationState<'a>,
    /// `ABt`: multiply by the derivative of this activation, whose output is the tensor.
    pub dact: Option<(&'a Tensor, Activation)>,
    /// `AtB`: write the column sums of B (a bias gradient) here.
    pub bias_grad: Option<&'a Tensor>,
    /// `AtB`: update the parameter whose gradient C is.
    pub update_w: Option<&'a OptimStep>,
    /// `AtB`: update the parameter whose gradient `bias_grad` is.
    pub update_b: Option<&'a OptimStep>,
}

impl VectorSpec<'_> {
    /// Checks the operands' shapes and that the epilogues asked for exist for this form (the
    /// same for every family that takes a `VectorSpec`); returns `(M, K, N)`.
    pub fn check(&self, op: &str) -> Result<(usize, usize, usize)> {
        let spec = self;
        let form = spec.form;
        let dims = form.dims(spec.a.shape(), spec.b.shape())?;
        let MatmulDims { m, k, n } = dims;
        if spec.c.shape().dims() != [m, n] {
            return Err(Error::shape(
                op,
                format!("output [{m}, {n}]"),
                spec.c.shape(),
            ));
        }
        let unsupported = |what: &str| {
            Err(Error::InvalidArgument(format!(
                "{op}: {what} is not an epilogue of this form"
            )))
        };
        match form {
            MatmulForm::AB => {
                if spec.dact.is_some() || spec.bias_grad.is_some() || spec.update_w.is_some() {
                    return unsupported("a gradient epilogue");
                }
            }
            MatmulForm::AtB => {
                if spec.bias.is_some() || spec.activation != Activation::Identity {
                    return unsupported("a bias or an activation");
                }
                if spec.dact.is_some() || spec.write_labels.is_some() {
                    return unsupported("an activation derivative or labels");
                }
            }
            MatmulForm::ABt => {
                if spec.gather.is_some() || spec.bias.is_some() || spec.bias_grad.is_some() {
                    return unsupported("a gathered operand, a bias or a bias gradient");
                }
                if spec.activation != Activation::Identity || spec.update_w.is_some() {
                    return unsupported("an activation or an update");
                }
            }
        }
        if spec.write_labels.is_some() && spec.gather.is_none() {
            return unsupported("writing labels without a gathered operand");
        }
        if let Some((saved, activation)) = spec.dact
            && (saved.shape() != spec.c.shape() || !activation.derivative_from_output())
        {
            return unsupported("this activation derivative");
        }
        if spec.update_b.is_some() && spec.bias_grad.is_none() {
            return unsupported("a bias update without a bias gradient");
        }
        if spec.bias_grad.is_some() && k > MAX_BIAS_GRAD_ROWS {
            return Err(Error::InvalidArgument(format!(
                "{op}: a fused bias gradient sums at most {MAX_BIAS_GRAD_ROWS} rows in one \
                 pass, not {k}; compute it with the reduce family instead"
            )));
        }
        if let Some(source) = spec.gather {
            // op(A) is the batch: [rows, features] in AB, stored [rows, features] in AtB.
            let (rows, features) = match form {
                MatmulForm::AB => (m, k),
                _ => (k, m),
            };
            if rows != source.rows || features != source.features || !features.is_multiple_of(4) {
                return unsupported("a gathered operand of this shape");
            }
        }
        let updates = [
            (spec.update_w, Some(spec.c)),
            (spec.update_b, spec.bias_grad),
        ];
        for (step, grad) in updates {
            let Some(step) = step else { continue };
            if grad.is_none_or(|grad| step.slot.grad.buffer() != grad.buffer()) {
                return unsupported("an update of another gradient");
            }
        }
        if let (Some(w), Some(b)) = (spec.update_w, spec.update_b)
            && !Arc::ptr_eq(&w.shared, &b.shared)
        {
            return unsupported("updates by two optimisers");
        }
        Ok((m, k, n))
    }

    /// The specialisation flags both families' shaders declare.
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("HAS_BIAS", flag(self.bias.is_some())),
            ("ACCUMULATE", flag(self.accumulate)),
            ("GATHER_A", flag(self.gather.is_some())),
            ("WRITE_LABELS", flag(self.write_labels.is_some())),
            ("DACT", flag(self.dact.is_some())),
            ("BIAS_GRAD", flag(self.bias_grad.is_some())),
            ("UPDATE_W", flag(self.update_w.is_some())),
            ("UPDATE_B", flag(self.update_b.is_some())),
        ]
    }

    /// A·B's epilogue bindings, numbered alike in both families: the bias, the labels a
    /// gathered batch writes, and the activation's (`dummy` stands in for unused read-only
    /// buffers, `scratch` for the labels when none are written).
    pub fn ab_entries<'a>(
        &'a self,
        activation: &'a ActivationBinding,
        dummy: &'a Tensor,
        scratch: &'a Tensor,
    ) -> [crate::kernels::Entry<'a>; 5] {
        let [slopes, runtime] = activation.entries(&self.activation_state, dummy);
        [
            entry(bind::BIAS, self.bias.unwrap_or(dummy)),
            entry(bind::DS_LABELS, self.gather.map_or(dummy, |s| &s.labels)),
            entry(bind::BATCH_LABELS, self.write_labels.unwrap_or(scratch)),
            slopes,
            runtime,
        ]
    }

    /// The fused bias update's bindings (`shaders/bias_grad.wgsl`, numbered alike in both
    /// families): the bias and its state, or three distinct stand-ins.
    pub fn bias_update_entries<'a>(
        &'a self,
        scratch: &'a [Tensor],
    ) -> [crate::kernels::Entry<'a>; 3] {
        let slot = self.update_b.map(|s| &s.slot);
        [
            entry(bind::B_PARAM, slot.map_or(&scratch[0], |s| &s.param)),
            entry(bind::B_STATE1, slot.map_or(&scratch[1], |s| &s.state1)),
            entry(bind::B_STATE2, slot.map_or(&scratch[2], |s| &s.state2)),
        ]
    }

    /// A·B's activation binding (other forms have none).
    pub fn activation_binding(
        &self,
        device: &Device,
        op: &str,
        n: usize,
    ) -> Result<Option<ActivationBinding>> {
        if self.form != MatmulForm::AB {
            return Ok(None);
        }
        ActivationBinding::new(device, op, self.activation, &self.activation_state, n).map(Some)
    }

    /// The uniform both families read: sizes, and a gathered operand's position and
    /// normalisation.
    pub fn params(&self, (m, k, n): (usize, usize, usize)) -> VectorParams {
        let mut params = VectorParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            row_blocks: m.div_ceil(ROWS) as u32,
            k_end: k as u32,
            ..VectorParams::default()
        };
        if let Some(source) = self.gather {
            let features = if self.form == MatmulForm::AB { k } else { m };
            params.offset = source.offset();
            params.scale = source.scale;
            params.shift = source.shift;
            params.example_words = (features / 4) as u32;
        }
        params
    }
}

/// A prepared vector matmul: one dispatch per pass over k.
#[derive(Debug)]
pub(crate) struct VectorMatmul {
    passes: Vec<Dispatch>,
    /// Each pass's uniform (a gathered operand's offset is rewritten in each).
    params: Vec<Uniform>,
    /// The accumulators between passes, when there are several.
    _partial: Option<Tensor>,
    /// Distinct stand-ins for the writable bindings this specialisation never uses.
    _stand_ins: Vec<Tensor>,
    gather: Option<Arc<BatchSource>>,
    activation: Option<ActivationBinding>,
}

impl VectorMatmul {
    /// Prepares `spec` as the `family` computes it (the two bind the same buffers).
    pub fn new(spec: &VectorSpec<'_>, family: FusedFamily) -> Result<Self> {
        let form = spec.form;
        let op = format!("vector matmul {form:?}");
        let device = spec.b.device();
        let dims = form.dims(spec.a.shape(), spec.b.shape())?;
        let MatmulDims { m, k, n } = dims;
        if !supports(form, dims) {
            return Err(Error::InvalidArgument(format!(
                "{op}: {m}×{k}·{k}×{n} does not line up with vec4 loads"
            )));
        }
        let params = spec.params(spec.check(&op)?);

        let mut constants = spec.constants();
        // A narrow output needs fewer invocations per workgroup.
        let lanes = n.div_ceil(4).next_power_of_two().clamp(1, 64);
        if family == FusedFamily::Vector {
            constants.push(("VEC_WG", lanes as f64));
        }

        // Bindings the entry point mentions but this specialisation never uses still need a
        // buffer: B stands in for read-only ones (its size is a multiple of 16 bytes), a
        // stand-in of its own for each writable one (`crate::kernels::stand_ins`).
        let dummy = spec.b;
        let scratch = crate::kernels::stand_ins(device, WRITABLE_STAND_INS)?;
        let activation = spec.activation_binding(device, &op, n)?;
        let hyper = HyperBinding::new(device, spec.update_w.or(spec.update_b));
        let mut entries = vec![
            entry(bind::A, if spec.gather.is_some() { dummy } else { spec.a }),
            entry(bind::B, spec.b),
            entry(bind::C, spec.c),
        ];
        let entry_point = match form {
            MatmulForm::AB => {
                let binding = activation.as_ref().expect("built for AB");
                constants.extend(binding.constants.iter().cloned());
                entries.extend(gather_entries(spec.gather, dummy));
                entries.extend(spec.ab_entries(binding, dummy, &scratch[0]));
                "matmul_vector_ab"
            }
            MatmulForm::AtB => {
                entries.extend(gather_entries(spec.gather, dummy));
                entries.push(entry(
                    bind::BIAS_GRAD,
                    spec.bias_grad.unwrap_or(&scratch[0]),
                ));
                constants.extend(hyper.constants());
                let w_slot = spec.update_w.map(|s| &s.slot);
                entries.push(entry(
                    bind::W_PARAM,
                    w_slot.map_or(&scratch[1], |s| &s.param),
                ));
                entries.push(entry(
                    bind::W_STATE1,
                    w_slot.map_or(&scratch[2], |s| &s.state1),
                ));
                entries.push(entry(
                    bind::W_STATE2,
                    w_slot.map_or(&scratch[3], |s| &s.state2),
                ));
                entries.extend(spec.bias_update_entries(&scratch[4..]));
                entries.push(hyper.entry());
                "matmul_vector_atb"
            }
            MatmulForm::ABt => {
                let (saved, act) = spec.dact.unwrap_or((dummy, Activation::Identity));
                let (id, _, _) = act.wgsl_id_and_params();
                constants.push(("ACTIVATION", f64::from(id)));
                entries.push(entry(bind::SAVED, saved));
                "matmul_vector_abt"
            }
        };
        let extra_row = usize::from(spec.bias_grad.is_some());
        let (shader, entry_point, x, y) = match family {
            FusedFamily::Vector => (
                &SHADER,
                entry_point,
                groups(device, &op, n.div_ceil(4), lanes)?,
                groups(device, &op, m.div_ceil(ROWS) + extra_row, 1)?,
            ),
            FusedFamily::Staged => (
                &staged::SHADER,
                staged_entry_point(form),
                groups(device, &op, n.div_ceil(4), staged::TILE_COLS / 4)?,
                groups(device, &op, m.div_ceil(staged::TILE_ROWS) + extra_row, 1)?,
            ),
        };
        let pipeline = device.pipeline(shader, entry_point, &constants)?;
        let ranges = crate::kernels::pass_ranges(k, crate::kernels::PASS_LENGTH);
        // With one pass `partial` is never touched, but WebGPU forbids binding C there too (one
        // buffer in two writable bindings of a dispatch): a 16-byte scratch tensor stands in.
        let partial = Tensor::uninit(device, if ranges.len() > 1 { [m, n] } else { [1, 4] })?;
        let mut passes = Vec::with_capacity(ranges.len());
        let mut uniforms = Vec::with_capacity(ranges.len());
        for (k_begin, k_end) in ranges {
            let pass_params = VectorParams {
                k_begin,
                k_end,
                ..params
            };
            let uniform = Uniform::new(
                device,
                "vector matmul params",
                bytemuck::bytes_of(&pass_params),
            )?;
            let mut pass = entries.clone();
            pass.push(entry(bind::P, &uniform));
            pass.push(entry(bind::PARTIAL, &partial));
            passes.push(Dispatch::new(
                device,
                Arc::clone(&pipeline),
                entry_point,
                &pass,
                [x, y, 1],
            ));
            uniforms.push(uniform);
        }
        drop(entries);
        Ok(Self {
            passes,
            params: uniforms,
            _partial: Some(partial),
            _stand_ins: scratch,
            gather: spec.gather.cloned(),
            activation,
        })
    }

    /// Records the dispatches; a gathered operand reads the batch at the offset its
    /// parameters hold (the source's at lowering, or what a plan copies in per step).
    pub fn record(&self, encoder: &mut Encoder) {
        for pass in &self.passes {
            pass.record(encoder);
        }
    }

    /// How many dispatches [`VectorMatmul::record`] records.
    pub fn dispatch_count(&self) -> usize {
        self.passes.len()
    }

    /// The batch offset each pass reads (a gathered operand) and the fused RReLU's key.
    pub fn step_inputs(&self) -> Vec<StepInput> {
        let offsets = self.gather.iter().flat_map(|source| {
            self.params.iter().map(|params| StepInput {
                value: StepValue::BatchOffset(source.clone()),
                buffer: params.buffer().clone(),
                offset: std::mem::offset_of!(VectorParams, offset) as u64,
            })
        });
        let rng = self
            .activation
            .as_ref()
            .and_then(ActivationBinding::step_input);
        offsets.chain(rng).collect()
    }
}

fn gather_entries<'a>(
    gather: Option<&'a Arc<BatchSource>>,
    dummy: &'a Tensor,
) -> [crate::kernels::Entry<'a>; 2] {
    [
        entry(bind::PIXELS, gather.map_or(dummy, |s| &s.pixels)),
        entry(bind::ORDER, gather.map_or(dummy, |s| &s.order)),
    ]
}
