//! One encoder plus the kernels recorded into it: a forward op, or a whole backward pass,
//! becomes a single submit built from the kernels of [`crate::kernels`].

use crate::Result;
use crate::device::{Device, Encoder};
use crate::kernels::Record;
use crate::kernels::activation::Activation;
use crate::kernels::activation::{ActivationKernel, ActivationState, PreluSlopeGrad};
use crate::kernels::elementwise::{Elementwise, ElementwiseOp};
use crate::kernels::matmul::{Matmul, MatmulForm, MatmulOptions};
use crate::kernels::reduce::{Axis, Sum};
use crate::tensor::{Shape, Tensor};

/// An encoder and the prepared kernels it has recorded (held until the submit, so nothing they
/// bind or own is released early).
pub(crate) struct Recording {
    device: Device,
    encoder: Encoder,
    kernels: Vec<Box<dyn Record>>,
}

impl Recording {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            encoder: device.encoder(),
            kernels: Vec::new(),
        }
    }

    fn push(&mut self, kernel: impl Record + 'static) {
        kernel.record_into(&mut self.encoder);
        self.kernels.push(Box::new(kernel));
    }

    /// `op` on `x` (and `y`) into a new tensor shaped like `x`.
    pub fn elementwise(
        &mut self,
        op: ElementwiseOp,
        x: &Tensor,
        y: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, x.shape().clone())?;
        self.push(Elementwise::new(op, x, y, &out)?);
        Ok(out)
    }

    /// A new tensor of `shape` filled with `alpha · s`, `s` the one element of `scalar`.
    pub fn fill(&mut self, scalar: &Tensor, alpha: f32, shape: &Shape) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, shape.clone())?;
        self.push(Elementwise::new(
            ElementwiseOp::FillScalar(alpha),
            scalar,
            None,
            &out,
        )?);
        Ok(out)
    }

    /// `out ← x + out`, in place.
    pub fn add_into(&mut self, x: &Tensor, out: &Tensor) -> Result<()> {
        self.push(Elementwise::new(ElementwiseOp::Axpy(1.0), x, None, out)?);
        Ok(())
    }

    /// A copy of `x` in a new buffer.
    pub fn copy(&mut self, x: &Tensor) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, x.shape().clone())?;
        self.encoder
            .copy_buffer(x.buffer(), 0, out.buffer(), 0, x.byte_len());
        self.encoder.keep_alive(&[x.storage().clone()]);
        Ok(out)
    }

    /// Zeroes `x` in place.
    pub fn clear(&mut self, x: &Tensor) {
        self.encoder.clear_buffer(x.buffer(), 0, x.byte_len());
        self.encoder.keep_alive(&[x.storage().clone()]);
    }

    /// `op(a)·op(b)` (plus the options' bias and activation) into a new `[M, N]` tensor.
    pub fn matmul(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        options: &MatmulOptions<'_>,
    ) -> Result<Tensor> {
        let (m, _, n) = options.form.dims(a.shape(), b.shape())?;
        let out = Tensor::uninit(&self.device, [m, n])?;
        self.push(Matmul::new(a, b, &out, options)?);
        Ok(out)
    }

    /// `matmul` with nothing but a form.
    pub fn product(&mut self, a: &Tensor, b: &Tensor, form: MatmulForm) -> Result<Tensor> {
        self.matmul(a, b, &MatmulOptions::form(form))
    }

    /// `scale · Σ x` into a new `[1]` tensor.
    pub fn sum(&mut self, x: &Tensor, scale: f32) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, [1])?;
        self.push(Sum::total(x, &out, scale, false)?);
        Ok(out)
    }

    /// Column sums of a 2-D tensor into a new `[cols]` tensor (a bias gradient).
    pub fn sum_columns(&mut self, x: &Tensor) -> Result<Tensor> {
        let (_, cols) = x.shape().dims2("sum over columns")?;
        let out = Tensor::uninit(&self.device, [cols])?;
        self.push(Sum::new(x, &out, Axis::Columns, 1.0, false)?);
        Ok(out)
    }

    /// `activation(x)` into a new tensor.
    pub fn activation(
        &mut self,
        x: &Tensor,
        activation: Activation,
        state: &ActivationState<'_>,
    ) -> Result<Tensor> {
        let y = Tensor::uninit(&self.device, x.shape().clone())?;
        self.push(ActivationKernel::forward(x, &y, activation, state)?);
        Ok(y)
    }

    /// `dy · activation'(x)` into a new tensor.
    pub fn activation_backward(
        &mut self,
        x: &Tensor,
        dy: &Tensor,
        activation: Activation,
        state: &ActivationState<'_>,
    ) -> Result<Tensor> {
        let dx = Tensor::uninit(&self.device, x.shape().clone())?;
        self.push(ActivationKernel::backward(x, dy, &dx, activation, state)?);
        Ok(dx)
    }

    /// PReLU's slope gradient into a new tensor shaped like `slopes`.
    pub fn prelu_slope_grad(&mut self, x: &Tensor, dy: &Tensor, slopes: &Tensor) -> Result<Tensor> {
        let dslopes = Tensor::uninit(&self.device, slopes.shape().clone())?;
        self.push(PreluSlopeGrad::new(x, dy, &dslopes)?);
        Ok(dslopes)
    }

    /// Records any other prepared kernel.
    pub fn kernel(&mut self, kernel: impl Record + 'static) {
        self.push(kernel);
    }

    /// Submits everything recorded (no host sync).
    pub fn submit(self) -> Result<()> {
        self.encoder.submit()
    }
}
