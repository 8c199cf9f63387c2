//! A recording: the ops of one forward op, a whole backward pass, or an optimiser step, each
//! described by the tensors it reads and writes ([`Op`]). Outside a capture, [`submit`]
//! lowers them to kernels and submits them as one encoder; inside [`crate::capture::capture`]
//! they join the captured plan instead.
//!
//! [`submit`]: Recording::submit

use crate::Result;
use crate::capture;
use crate::device::Device;
use crate::graph::{ConvOp, DropoutOp, MatmulOp, Op, PoolOp};
use crate::kernels::activation::{Activation, ActivationState};
use crate::kernels::conv::{Conv2dGeometry, ConvProduct};
use crate::kernels::elementwise::ElementwiseOp;
use crate::kernels::matmul::{MatmulDims, MatmulForm, MatmulOptions};
use crate::kernels::pool::{Pool2dGeometry, PoolPass};
use crate::kernels::reduce::Axis;
use crate::tensor::{DType, Shape, Tensor};

/// The ops recorded so far, in order.
pub(crate) struct Recording {
    device: Device,
    ops: Vec<Op>,
}

impl Recording {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            ops: Vec::new(),
        }
    }

    /// Appends an op.
    pub fn op(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// `op` on `x` (and `y`) into a new tensor shaped like `x`.
    pub fn elementwise(
        &mut self,
        op: ElementwiseOp,
        x: &Tensor,
        y: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, x.shape().clone())?;
        self.op(Op::Elementwise {
            op,
            x: x.share(),
            y: y.map(Tensor::share),
            out: out.share(),
        });
        Ok(out)
    }

    /// A new tensor of `shape` filled with `alpha · s`, `s` the one element of `scalar`.
    pub fn fill(&mut self, scalar: &Tensor, alpha: f32, shape: &Shape) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, shape.clone())?;
        self.op(Op::Elementwise {
            op: ElementwiseOp::FillScalar(alpha),
            x: scalar.share(),
            y: None,
            out: out.share(),
        });
        Ok(out)
    }

    /// `out ← x + out`, in place.
    pub fn add_into(&mut self, x: &Tensor, out: &Tensor) -> Result<()> {
        self.op(Op::Elementwise {
            op: ElementwiseOp::Axpy(1.0),
            x: x.share(),
            y: None,
            out: out.share(),
        });
        Ok(())
    }

    /// A copy of `x` in a new buffer.
    pub fn copy(&mut self, x: &Tensor) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, x.shape().clone())?;
        self.op(Op::Copy {
            src: x.share(),
            dst: out.share(),
        });
        Ok(out)
    }

    /// Zeroes `x` in place.
    pub fn clear(&mut self, x: &Tensor) {
        self.op(Op::Clear { dst: x.share() });
    }

    /// `op(a)·op(b)` (plus the options' bias and activation) into a new `[M, N]` tensor.
    pub fn matmul(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        options: &MatmulOptions<'_>,
    ) -> Result<Tensor> {
        let MatmulDims { m, n, .. } = options.form.dims(a.shape(), b.shape())?;
        let out = Tensor::uninit(&self.device, [m, n])?;
        self.op(Op::Matmul(Box::new(MatmulOp::new(a, b, &out, options))));
        Ok(out)
    }

    /// One of a convolution's products into a new tensor of its shape.
    pub fn conv(
        &mut self,
        product: ConvProduct,
        geometry: &Conv2dGeometry,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, product.output_shape(geometry))?;
        self.op(Op::Conv(Box::new(ConvOp {
            product,
            geometry: *geometry,
            a: a.share(),
            b: b.share(),
            bias: bias.map(Tensor::share),
            activation: Activation::Identity,
            training: false,
            out: out.share(),
        })));
        Ok(out)
    }

    /// A pooling pass of `geometry` on `input` (the input, or the output's gradient) into a
    /// new tensor; max pooling's forward pass also returns the new indices of its maxima, its
    /// backward pass reads them from `argmax`.
    pub fn pool(
        &mut self,
        pass: PoolPass,
        geometry: &Pool2dGeometry,
        input: &Tensor,
        argmax: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let shape = if pass.is_backward() {
            geometry.input_shape()
        } else {
            geometry.output_shape()
        };
        let out = Tensor::uninit(&self.device, shape)?;
        let argmax = match pass {
            PoolPass::MaxForward => Some(Tensor::uninit_of(
                &self.device,
                geometry.output_shape(),
                DType::U32,
            )?),
            _ => argmax.map(Tensor::share),
        };
        self.op(Op::Pool(Box::new(PoolOp {
            pass,
            geometry: *geometry,
            input: input.share(),
            argmax: argmax.as_ref().map(Tensor::share),
            out: out.share(),
        })));
        let saved = (pass == PoolPass::MaxForward).then_some(argmax).flatten();
        Ok((out, saved))
    }

    /// Dropout's mask (probability `p`, layer `salt`, the plan's per-step key) on `x` into a
    /// new tensor; `backward` marks it as applied to a gradient in listings.
    pub fn dropout(&mut self, x: &Tensor, p: f32, salt: u32, backward: bool) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, x.shape().clone())?;
        self.op(Op::Dropout(Box::new(DropoutOp {
            x: x.share(),
            out: out.share(),
            p,
            salt,
            backward,
        })));
        Ok(out)
    }

    /// `matmul` with nothing but a form.
    pub fn product(&mut self, a: &Tensor, b: &Tensor, form: MatmulForm) -> Result<Tensor> {
        self.matmul(a, b, &MatmulOptions::form(form))
    }

    /// `scale · Σ x` into a new `[1]` tensor.
    pub fn sum(&mut self, x: &Tensor, scale: f32) -> Result<Tensor> {
        let out = Tensor::uninit(&self.device, [1])?;
        self.op(Op::Sum {
            x: x.share(),
            out: out.share(),
            axis: None,
            scale,
        });
        Ok(out)
    }

    /// Column sums of a 2-D tensor into a new `[cols]` tensor (a bias gradient).
    pub fn sum_columns(&mut self, x: &Tensor) -> Result<Tensor> {
        let (_, cols) = x.shape().dims2("sum over columns")?;
        let out = Tensor::uninit(&self.device, [cols])?;
        self.op(Op::Sum {
            x: x.share(),
            out: out.share(),
            axis: Some(Axis::Columns),
            scale: 1.0,
        });
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
        self.op(Op::Activation {
            x: x.share(),
            y: y.share(),
            activation,
            slopes: state.prelu_slopes.map(Tensor::share),
            training: state.training,
        });
        Ok(y)
    }

    /// `dy · activation'(x)` into a new tensor, from the forward input `x` or, with
    /// `from_output`, from the forward output.
    pub fn activation_backward(
        &mut self,
        saved: &Tensor,
        dy: &Tensor,
        activation: Activation,
        state: &ActivationState<'_>,
        from_output: bool,
    ) -> Result<Tensor> {
        if !activation.has_gradient() {
            return Err(crate::Error::NoGradient {
                op: activation.name().to_string(),
            });
        }
        if saved.shape() != dy.shape() {
            return Err(crate::Error::shape(
                &format!("{} backward", activation.name()),
                saved.shape(),
                dy.shape(),
            ));
        }
        let dx = Tensor::uninit(&self.device, saved.shape().clone())?;
        self.op(Op::ActivationBackward {
            saved: saved.share(),
            dy: dy.share(),
            dx: dx.share(),
            activation,
            slopes: state.prelu_slopes.map(Tensor::share),
            training: state.training,
            from_output,
        });
        Ok(dx)
    }

    /// PReLU's slope gradient into a new tensor shaped like `slopes`.
    pub fn prelu_slope_grad(&mut self, x: &Tensor, dy: &Tensor, slopes: &Tensor) -> Result<Tensor> {
        let dslopes = Tensor::uninit(&self.device, slopes.shape().clone())?;
        self.op(Op::PreluSlopeGrad {
            x: x.share(),
            dy: dy.share(),
            dslopes: dslopes.share(),
        });
        Ok(dslopes)
    }

    /// Lowers and submits everything recorded (no host sync), or hands it to the capture in
    /// progress. Shapes are checked here for eager ops (a failed lowering submits nothing).
    pub fn submit(self) -> Result<()> {
        let Some(ops) = capture::append(self.ops) else {
            return Ok(());
        };
        let kernels = ops.iter().map(Op::lower).collect::<Result<Vec<_>>>()?;
        let mut encoder = self.device.encoder();
        for kernel in &kernels {
            kernel.record_into(&mut encoder);
        }
        encoder.submit()
    }
}
