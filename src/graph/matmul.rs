//! A matmul as an op of the graph, with everything a fusion can attach to it (a gathered
//! operand, bias, activation and its derivative, bias gradient, optimiser updates): the
//! tensors it touches, its listing, and its lowering to a plain or a fused family.

use crate::Result;
use crate::device::Profile;
use crate::kernels::Record;
use crate::kernels::activation::Activation;
use crate::kernels::gather::GatherOp;
use crate::kernels::matmul::broadcast::BroadcastMatmul;
use crate::kernels::matmul::kernel_for;
use crate::kernels::matmul::vector::{FusedFamily, VectorMatmul, VectorSpec};
use crate::kernels::matmul::{Matmul, MatmulDims, MatmulForm, MatmulKernel, MatmulOptions};
use crate::kernels::optim::OptimStep;
use crate::tensor::Tensor;

use super::Access;
use super::op::state;

/// A matmul with everything a fusion can attach to it.
#[derive(Debug)]
pub(crate) struct MatmulOp {
    pub a: Tensor,
    pub b: Tensor,
    pub out: Tensor,
    pub form: MatmulForm,
    pub bias: Option<Tensor>,
    pub accumulate: bool,
    pub activation: Activation,
    pub slopes: Option<Tensor>,
    pub training: bool,
    pub kernel: Option<MatmulKernel>,
    /// A read from a data set's bytes (then `a` only gives the shape).
    pub gather: Option<GatherOp>,
    /// With `gather`: the batch's labels are written here too.
    pub write_labels: Option<Tensor>,
    /// Multiply by the derivative of an activation, from its output.
    pub dact: Option<(Tensor, Activation)>,
    /// Column sums of B (`AtB`): a bias gradient.
    pub bias_grad: Option<Tensor>,
    pub update_w: Option<OptimStep>,
    pub update_b: Option<OptimStep>,
}

impl MatmulOp {
    pub fn new(a: &Tensor, b: &Tensor, out: &Tensor, options: &MatmulOptions<'_>) -> Self {
        Self {
            a: a.share(),
            b: b.share(),
            out: out.share(),
            form: options.form,
            bias: options.bias.map(Tensor::share),
            accumulate: options.accumulate,
            activation: options.activation,
            slopes: options.activation_state.prelu_slopes.map(Tensor::share),
            training: options.activation_state.training,
            kernel: options.kernel,
            gather: None,
            write_labels: None,
            dact: None,
            bias_grad: None,
            update_w: None,
            update_b: None,
        }
    }

    /// Whether any fused prologue or epilogue is attached (then only the vector family runs it).
    pub fn is_fused(&self) -> bool {
        self.gather.is_some()
            || self.dact.is_some()
            || self.bias_grad.is_some()
            || self.update_w.is_some()
            || self.update_b.is_some()
    }

    /// Nothing but the product itself (and what the plain kernels do: bias, activation).
    pub fn is_plain(&self) -> bool {
        !self.is_fused() && !self.accumulate && self.kernel.is_none()
    }

    pub fn dims(&self) -> MatmulDims {
        self.form
            .dims(self.a.shape(), self.b.shape())
            .expect("checked when recorded")
    }

    /// Every tensor the op binds, with how it uses it. A gathered `a` is not listed: it only
    /// gives the shape (the data set's buffers, which no plan writes, are read instead).
    pub fn tensors(&mut self) -> Vec<(&mut Tensor, Access)> {
        use Access::{Read, ReadWrite, Write};
        let mut list: Vec<(&mut Tensor, Access)> = Vec::new();
        // A gathered operand reads the data set's buffers, which no plan writes.
        if self.gather.is_none() {
            list.push((&mut self.a, Read));
        }
        list.push((&mut self.b, Read));
        if let Some(bias) = &mut self.bias {
            list.push((bias, Read));
        }
        if let Some(slopes) = &mut self.slopes {
            list.push((slopes, Read));
        }
        if let Some((saved, _)) = &mut self.dact {
            list.push((saved, Read));
        }
        let out = if self.accumulate { ReadWrite } else { Write };
        list.push((&mut self.out, out));
        if let Some(labels) = &mut self.write_labels {
            list.push((labels, Write));
        }
        if let Some(bias_grad) = &mut self.bias_grad {
            list.push((bias_grad, out));
        }
        for step in [&mut self.update_w, &mut self.update_b]
            .into_iter()
            .flatten()
        {
            slot_params(step, &mut list);
        }
        list
    }

    /// The plan listing's name: the product and what is fused into it.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.gather.is_some() {
            parts.push("gathered u8 input".to_string());
        }
        if self.bias.is_some() {
            parts.push("bias".into());
        }
        if self.activation != Activation::Identity {
            parts.push(self.activation.name().into());
        }
        if self.write_labels.is_some() {
            parts.push("batch labels".into());
        }
        if let Some((_, act)) = &self.dact {
            parts.push(format!("× {}′", act.name()));
        }
        if self.bias_grad.is_some() {
            parts.push("bias gradient".into());
        }
        if self.update_w.is_some() || self.update_b.is_some() {
            parts.push("optimiser update".into());
        }
        if self.accumulate {
            parts.push("accumulate".into());
        }
        let MatmulDims { m: mm, k, n } = self.dims();
        let form = match self.form {
            MatmulForm::AB => "A·B",
            MatmulForm::AtB => "Aᵀ·B",
            MatmulForm::ABt => "A·Bᵀ",
        };
        if parts.is_empty() {
            format!("matmul {form} {mm}×{k}×{n}")
        } else {
            format!("matmul {form} {mm}×{k}×{n} + {}", parts.join(" + "))
        }
    }

    /// The prepared kernel: a plain product through the launcher (and its kernel choice);
    /// fused prologues and epilogues exist in the fused families only.
    pub fn lower(&self) -> Result<Box<dyn Record>> {
        let state = state(&self.slopes, self.training);
        // A plain product goes through the launcher (and its kernel choice); fused prologues and
        // epilogues exist in the fused families only: the staged one under the GPU profile, the
        // broadcast or the vector one under the CPU profile.
        if !self.is_fused() {
            let options = MatmulOptions {
                form: self.form,
                bias: self.bias.as_ref(),
                accumulate: self.accumulate,
                kernel: self.kernel,
                activation: self.activation,
                activation_state: state,
            };
            return Ok(Box::new(Matmul::new(
                &self.a, &self.b, &self.out, &options,
            )?));
        }
        let spec = VectorSpec {
            form: self.form,
            a: &self.a,
            b: &self.b,
            c: &self.out,
            gather: self.gather.as_ref().map(|g| &g.source),
            write_labels: self.write_labels.as_ref(),
            bias: self.bias.as_ref(),
            accumulate: self.accumulate,
            activation: self.activation,
            activation_state: state,
            dact: self.dact.as_ref().map(|(t, a)| (t, *a)),
            bias_grad: self.bias_grad.as_ref(),
            update_w: self.update_w.as_ref(),
            update_b: self.update_b.as_ref(),
        };
        let device = self.b.device();
        if device.profile() == Profile::Gpu {
            return Ok(Box::new(VectorMatmul::new(&spec, FusedFamily::Staged)?));
        }
        // The broadcast family where the device has it and the shape lines up (the same bits as
        // the vector family, at several times its speed on lavapipe).
        let dims = self.form.dims(self.a.shape(), self.b.shape())?;
        let choice = kernel_for(device, self.form, dims);
        let pixels_fit = self
            .gather
            .as_ref()
            .is_none_or(|g| g.source.pixel_texels().is_some());
        if choice == MatmulKernel::Broadcast && pixels_fit {
            return Ok(Box::new(BroadcastMatmul::new(&spec)?));
        }
        Ok(Box::new(VectorMatmul::new(&spec, FusedFamily::Vector)?))
    }
}

fn slot_params<'a>(step: &'a mut OptimStep, list: &mut Vec<(&'a mut Tensor, Access)>) {
    let slot = &mut step.slot;
    list.extend([
        (&mut slot.param, Access::ReadWrite),
        (&mut slot.state1, Access::ReadWrite),
        (&mut slot.state2, Access::ReadWrite),
    ]);
}
