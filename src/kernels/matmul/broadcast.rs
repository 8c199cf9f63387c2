//! The broadcast matmul family (`shaders/matmul_broadcast.wgsl`): the vector family's products
//! and fused epilogues for CPU devices with subgroups of at least eight invocations
//! (lavapipe), reading every operand through texel fetches from linear texel views (a copy of
//! each operand in a texture, `src/kernels/texels.rs`) and sharing op(A)'s rows across each
//! subgroup with `subgroupBroadcast`. Six to ten times the vector family's speed on lavapipe,
//! where a storage-buffer load costs a loop over the SIMD lanes.
//!
//! A prepared product records, in one encoder: copies of its operands into their views, then
//! one dispatch, which stores C (and an updated parameter and its state) straight into their
//! tensors' buffers. Each output is the same fma chain in k order as the other families
//! compute, so the choice never changes a bit.

use std::sync::Arc;

use super::vector::VectorSpec;
use super::{MatmulDims, MatmulForm};
use crate::device::{Device, Encoder, ShaderSource};
use crate::kernels::activation::{Activation, ActivationBinding};
use crate::kernels::gather::BatchSource;
use crate::kernels::optim::HyperBinding;
use crate::kernels::step::{StepInput, StepValue};
use crate::kernels::texels::{TEXEL_SHIFT, TexelFormat, TexelView};
use crate::kernels::{Dispatch, Uniform, entry, groups};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `shaders/matmul_broadcast.wgsl`, after the texel, pixel, activation and optimiser functions
/// and the fused bias gradient.
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul_broadcast",
    wgsl: concat!(
        include_str!("../../../shaders/texels.wgsl"),
        include_str!("../../../shaders/vector_params.wgsl"),
        include_str!("../../../shaders/pixels.wgsl"),
        include_str!("../../../shaders/hash.wgsl"),
        include_str!("../../../shaders/activation_functions.wgsl"),
        include_str!("../../../shaders/optim_functions.wgsl"),
        include_str!("../../../shaders/bias_grad.wgsl"),
        include_str!("../../../shaders/matmul_broadcast.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("matmul_broadcast_ab", 6),
        ("matmul_broadcast_atb", 9),
        ("matmul_broadcast_abt", 1),
    ],
};

crate::kernels::bindings! {
    /// The binding numbers of `shaders/matmul_broadcast.wgsl`, by the WGSL variable each names.
    bind:
    A = 0,
    B = 1,
    BIAS = 2,
    C = 3,
    P = 4,
    C_IN = 5,
    PIXELS = 6,
    ORDER = 7,
    DS_LABELS = 8,
    BATCH_LABELS = 9,
    BIAS_GRAD = 10,
    W_IN = 11,
    W_STATE1_IN = 12,
    W_STATE2_IN = 13,
    B_PARAM = 14,
    B_STATE1 = 15,
    B_STATE2 = 16,
    W_OUT = 17,
    W_STATE1_OUT = 18,
    W_STATE2_OUT = 19,
    SAVED = 22,
}

// The epilogue bindings `VectorSpec` builds for both families share their numbers.
const _: () = {
    use super::vector::bind as vector;
    assert!(bind::BIAS == vector::BIAS && bind::P == vector::P);
    assert!(bind::DS_LABELS == vector::DS_LABELS && bind::BATCH_LABELS == vector::BATCH_LABELS);
    assert!(bind::BIAS_GRAD == vector::BIAS_GRAD && bind::B_PARAM == vector::B_PARAM);
    assert!(bind::B_STATE1 == vector::B_STATE1 && bind::B_STATE2 == vector::B_STATE2);
};

/// Rows of C per invocation (the shader's `ROWS`).
pub(crate) const ROWS: usize = 16;
/// Invocations per workgroup, one subgroup (the shader's `LANES`).
pub(crate) const LANES: usize = 8;
/// The fewest invocations per subgroup the broadcasts need (lanes 0–7 hand out rows).
pub const MIN_SUBGROUP_SIZE: u32 = 8;

/// Whether the family computes `op(A)·op(B)` of `m×k` by `k×n` in `form`: every operand and
/// C is read or written four values at a time along its rows, and K fits one pass under
/// lavapipe's loop limit (A·B and A·Bᵀ take four values of k per iteration, Aᵀ·B two).
pub fn supports(form: MatmulForm, dims: MatmulDims) -> bool {
    let MatmulDims { m, k, n } = dims;
    let (aligned, per_iteration) = match form {
        MatmulForm::AB | MatmulForm::ABt => (k.is_multiple_of(4) && n.is_multiple_of(4), 4),
        MatmulForm::AtB => (m.is_multiple_of(4) && n.is_multiple_of(4), 2),
    };
    aligned && m > 0 && k > 0 && n > 0 && k <= per_iteration * crate::kernels::PASS_LENGTH
}

/// Whether `device` runs the family: it needs subgroups of at least [`MIN_SUBGROUP_SIZE`],
/// its 8-invocation workgroups placed as lanes 0–7 of one subgroup (probed when the device
/// opens: [`Device::small_workgroups_are_one_subgroup`]), and a native build. In the
/// browser the family is left out: Tint (the WGSL compiler of Chromium's WebGPU) requires
/// `enable subgroups;`, which naga 30 (wgpu's, natively) rejects, so no one text serves both.
pub fn available(device: &Device) -> bool {
    !cfg!(target_arch = "wasm32")
        && device
            .subgroup_min_size()
            .is_some_and(|size| size >= MIN_SUBGROUP_SIZE)
        && device.small_workgroups_are_one_subgroup()
}

/// Whether the texel views of an `m×k·k×n` product (op(A), op(B), and C's shape for an
/// accumulated C, a saved activation or a parameter) fit `device`'s textures.
pub fn fits(device: &Device, dims: MatmulDims) -> bool {
    let MatmulDims { m, k, n } = dims;
    [m * k, k * n, m * n]
        .into_iter()
        .all(|elements| crate::kernels::texels::fits(device, elements))
}

/// A prepared broadcast matmul: fills, then one dispatch.
#[derive(Debug)]
pub(crate) struct BroadcastMatmul {
    /// Views filled from their tensors before the dispatch.
    fills: Vec<(TexelView, Tensor)>,
    dispatch: Dispatch,
    /// The uniform (a gathered operand's offset is rewritten before each record).
    params: Uniform,
    gather: Option<Arc<BatchSource>>,
    activation: Option<ActivationBinding>,
    /// Stand-ins for the texture bindings a specialisation never uses.
    _unused: [TexelView; 2],
    /// Distinct stand-ins for the writable bindings this specialisation never uses.
    _stand_ins: Vec<Tensor>,
}

impl BroadcastMatmul {
    pub fn new(spec: &VectorSpec<'_>) -> Result<Self> {
        let form = spec.form;
        let op = format!("broadcast matmul {form:?}");
        let device = spec.b.device();
        if !available(device) {
            return Err(Error::InvalidArgument(format!(
                "{op}: needs subgroup operations with subgroups of at least \
                 {MIN_SUBGROUP_SIZE} invocations that hold a workgroup of {LANES} as lanes \
                 0–{}, in a native build, and {} has {}; use the vector family",
                LANES - 1,
                device.adapter().name,
                match device.subgroup_min_size() {
                    Some(size) if device.small_workgroups_are_one_subgroup() => {
                        format!("subgroups of {size}")
                    }
                    Some(size) =>
                        format!("subgroups of {size} that place a workgroup of {LANES} otherwise"),
                    None => "none".to_string(),
                }
            )));
        }
        let dims = form.dims(spec.a.shape(), spec.b.shape())?;
        let MatmulDims { m, k, n } = dims;
        if !supports(form, dims) {
            return Err(Error::InvalidArgument(format!(
                "{op}: {m}×{k}·{k}×{n} does not line up with four-value texels, or K passes \
                 one pass"
            )));
        }
        let dims = spec.check(&op)?;
        let params = Uniform::new(
            device,
            "broadcast matmul params",
            bytemuck::bytes_of(&spec.params(dims)),
        )?;

        let mut constants = spec.constants();
        constants.push(("TEXEL_SHIFT", f64::from(TEXEL_SHIFT)));

        let mut fills = Vec::new();
        // `position` finds a binding's view.
        let mut fill_bindings = Vec::new();
        let mut fill = |binding: u32, tensor: &Tensor| -> Result<()> {
            let view = TexelView::new(device, "broadcast matmul operand", tensor.numel())?;
            fills.push((view, tensor.share()));
            fill_bindings.push(binding);
            Ok(())
        };
        if spec.gather.is_none() {
            fill(bind::A, spec.a)?;
        }
        fill(bind::B, spec.b)?;
        if spec.accumulate {
            fill(bind::C_IN, spec.c)?;
        }
        if let Some((saved, _)) = spec.dact {
            fill(bind::SAVED, saved)?;
        }
        let (state1, state2) = spec
            .update_w
            .map_or((false, false), |step| step.shared.config().uses_states());
        if let Some(step) = spec.update_w {
            fill(bind::W_IN, &step.slot.param)?;
            if state1 {
                fill(bind::W_STATE1_IN, &step.slot.state1)?;
            }
            if state2 {
                fill(bind::W_STATE2_IN, &step.slot.state2)?;
            }
        }
        let unused = [
            TexelView::new(device, "unused texture", 4)?,
            TexelView::with_format(device, "unused u32 texture", 1, TexelFormat::Word)?,
        ];
        let texture = |binding: u32| {
            let view = fill_bindings
                .iter()
                .position(|&b| b == binding)
                .map_or(&unused[0], |i| &fills[i].0);
            entry(binding, wgpu::BindingResource::TextureView(view.view()))
        };

        // Storage bindings this specialisation never uses still need a buffer: B's tensor (not
        // otherwise bound here) stands in for read-only ones, a stand-in of its own for each
        // writable one (`crate::kernels::stand_ins`).
        let dummy = spec.b;
        let scratch = crate::kernels::stand_ins(device, super::vector::WRITABLE_STAND_INS)?;
        let activation = spec.activation_binding(device, &op, n)?;
        let hyper = HyperBinding::new(device, spec.update_w.or(spec.update_b));
        let mut entries = vec![
            texture(bind::A),
            texture(bind::B),
            entry(bind::C, spec.c),
            texture(bind::C_IN),
            entry(bind::P, &params),
        ];
        let pixels = match spec.gather {
            Some(source) => source.pixel_texels().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{op}: the data set's pixels do not fit one of {}'s textures",
                    device.adapter().name
                ))
            })?,
            None => &unused[1],
        };
        let gathered = [
            entry(
                bind::PIXELS,
                wgpu::BindingResource::TextureView(pixels.view()),
            ),
            entry(bind::ORDER, spec.gather.map_or(dummy, |s| &s.order)),
        ];
        let entry_point = match form {
            MatmulForm::AB => {
                let binding = activation.as_ref().expect("built for AB");
                constants.extend(binding.constants.iter().cloned());
                entries.extend(gathered);
                entries.extend(spec.ab_entries(binding, dummy, &scratch[0]));
                "matmul_broadcast_ab"
            }
            MatmulForm::AtB => {
                entries.extend(gathered);
                entries.push(entry(
                    bind::BIAS_GRAD,
                    spec.bias_grad.unwrap_or(&scratch[0]),
                ));
                entries.extend([bind::W_IN, bind::W_STATE1_IN, bind::W_STATE2_IN].map(texture));
                // The updated parameter and state go straight into their tensors.
                let w_step = spec.update_w.map(|s| &s.slot);
                let out = |pick: fn(&crate::kernels::optim::OptimSlot) -> &Tensor,
                           used: bool,
                           i: usize| {
                    w_step.filter(|_| used).map_or(&scratch[i], pick)
                };
                entries.push(entry(bind::W_OUT, out(|s| &s.param, true, 1)));
                entries.push(entry(bind::W_STATE1_OUT, out(|s| &s.state1, state1, 2)));
                entries.push(entry(bind::W_STATE2_OUT, out(|s| &s.state2, state2, 3)));
                constants.extend(hyper.constants());
                entries.extend(spec.bias_update_entries(&scratch[4..]));
                entries.push(hyper.entry());
                "matmul_broadcast_atb"
            }
            MatmulForm::ABt => {
                let act = spec.dact.map_or(Activation::Identity, |(_, act)| act);
                let (id, _, _) = act.wgsl_id_and_params();
                constants.push(("ACTIVATION", f64::from(id)));
                entries.push(texture(bind::SAVED));
                "matmul_broadcast_abt"
            }
        };
        // SAFETY: the shader's header lists why every coordinate and index is in bounds: rows
        // and columns are clamped to the operands' shapes, which `supports` and `check` tie to
        // the views' sizes (each view holds exactly its tensor's elements).
        let pipeline = unsafe { device.pipeline_unchecked(&SHADER, entry_point, &constants)? };
        let x = groups(device, &op, n.div_ceil(4), LANES)?;
        let extra_row = usize::from(spec.bias_grad.is_some());
        let y = groups(device, &op, m.div_ceil(ROWS) + extra_row, 1)?;
        let dispatch = Dispatch::new(device, pipeline, entry_point, &entries, [x, y, 1]);
        drop(entries);
        Ok(Self {
            fills,
            dispatch,
            params,
            gather: spec.gather.cloned(),
            activation,
            _unused: unused,
            _stand_ins: scratch,
        })
    }

    /// Records the fills and the dispatch; a gathered operand reads the batch at the offset
    /// its parameters hold (the source's at lowering, or what a plan copies in per step).
    pub fn record(&self, encoder: &mut Encoder) {
        for (view, tensor) in &self.fills {
            view.fill(encoder, tensor);
        }
        self.dispatch.record(encoder);
    }

    /// How many dispatches [`BroadcastMatmul::record`] records (its copies are not dispatches).
    pub fn dispatch_count(&self) -> usize {
        1
    }

    /// The batch offset a gathered operand reads and the fused RReLU's key.
    pub fn step_inputs(&self) -> Vec<StepInput> {
        let offset = self.gather.iter().map(|source| StepInput {
            value: StepValue::BatchOffset(source.clone()),
            buffer: self.params.buffer().clone(),
            offset: std::mem::offset_of!(super::vector::VectorParams, offset) as u64,
        });
        let rng = self
            .activation
            .as_ref()
            .and_then(ActivationBinding::step_input);
        offset.chain(rng).collect()
    }
}
