//! The differentiable ops: each runs its forward kernel and states its local gradient next to
//! it (micrograd's layout). `g` is the gradient of the op's output; each rule returns the
//! contribution to each input's gradient. Every rule is built from the kernels of
//! [`crate::kernels`], which are tested against the CPU oracle on their own.

use super::{Recording, Var};
use crate::activation::{Activation, ActivationState};
use crate::conv::{Conv2dGeometry, Conv2dOptions, ConvProduct};
use crate::elementwise::ElementwiseOp::{Add, AddScalar, Mul, MulScalar, Scale, Sub};
use crate::matmul::{MatmulForm, MatmulOptions};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Runs one forward op's kernels in a submit of their own (no host sync).
pub(super) fn forward(
    var: &Var,
    record: impl FnOnce(&mut Recording) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut recording = Recording::new(var.device());
    let value = record(&mut recording)?;
    recording.submit()?;
    Ok(value)
}

/// `Some(rule())` when `input` needs a gradient.
pub(super) fn grad_for(
    input: &Var,
    rule: impl FnOnce() -> Result<Tensor>,
) -> Result<Option<Tensor>> {
    input.requires_grad().then(rule).transpose()
}

/// `scale · Σ g`, shaped like the one-element `scalar` it is the gradient of (`[1]`,
/// `[1, 1]`, `[]`, …).
fn sum_into_scalar(r: &mut Recording, g: &Tensor, scale: f32, scalar: &Var) -> Result<Tensor> {
    r.sum(g, scale)?.reshape(scalar.shape().clone())
}

/// How the operands of a binary op line up: the same shape, or one of them a one-element
/// value broadcast over the other.
#[derive(Clone, Copy)]
enum Operands {
    Same,
    RightScalar,
    LeftScalar,
}

fn operands(op: &str, a: &Var, b: &Var) -> Result<Operands> {
    if a.shape() == b.shape() {
        Ok(Operands::Same)
    } else if b.numel() == 1 {
        Ok(Operands::RightScalar)
    } else if a.numel() == 1 {
        Ok(Operands::LeftScalar)
    } else {
        Err(Error::shape(
            op,
            format!("{} (or a one-element operand)", a.shape()),
            b.shape(),
        ))
    }
}

impl Var {
    /// `self + other`: the same shape, or either one a one-element value broadcast.
    pub fn add(&self, other: &Var) -> Result<Var> {
        let pairing = operands("add", self, other)?;
        let (x, s) = match pairing {
            Operands::LeftScalar => (other, self),
            _ => (self, other),
        };
        let value = forward(self, |r| match pairing {
            Operands::Same => r.elementwise(Add, x.value(), Some(s.value())),
            _ => r.elementwise(
                AddScalar {
                    alpha: 1.0,
                    beta: 1.0,
                },
                x.value(),
                Some(s.value()),
            ),
        })?;
        // d(x + y)/dx = 1; a broadcast scalar collects the sum of g.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            Ok(vec![
                grad_for(&inputs[0], || match pairing {
                    Operands::LeftScalar => sum_into_scalar(r, g, 1.0, &inputs[0]),
                    _ => Ok(g.share()),
                })?,
                grad_for(&inputs[1], || match pairing {
                    Operands::RightScalar => sum_into_scalar(r, g, 1.0, &inputs[1]),
                    _ => Ok(g.share()),
                })?,
            ])
        };
        Ok(Var::from_op("add", value, &[self, other], Box::new(rule)))
    }

    /// `self − other`: the same shape, or either one a one-element value broadcast.
    pub fn sub(&self, other: &Var) -> Result<Var> {
        let pairing = operands("sub", self, other)?;
        let value = forward(self, |r| match pairing {
            Operands::Same => r.elementwise(Sub, self.value(), Some(other.value())),
            Operands::RightScalar => r.elementwise(
                AddScalar {
                    alpha: 1.0,
                    beta: -1.0,
                },
                self.value(),
                Some(other.value()),
            ),
            Operands::LeftScalar => r.elementwise(
                AddScalar {
                    alpha: -1.0,
                    beta: 1.0,
                },
                other.value(),
                Some(self.value()),
            ),
        })?;
        // d(x − y)/dx = 1, d(x − y)/dy = −1; a broadcast scalar collects the sum.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (minuend, subtrahend) = (&inputs[0], &inputs[1]);
            Ok(vec![
                grad_for(minuend, || match pairing {
                    Operands::LeftScalar => sum_into_scalar(r, g, 1.0, minuend),
                    _ => Ok(g.share()),
                })?,
                grad_for(subtrahend, || match pairing {
                    Operands::RightScalar => sum_into_scalar(r, g, -1.0, subtrahend),
                    _ => r.elementwise(Scale(-1.0), g, None),
                })?,
            ])
        };
        Ok(Var::from_op("sub", value, &[self, other], Box::new(rule)))
    }

    /// `self ⊙ other`: the same shape, or either one a one-element value broadcast (the
    /// lecture's `w * x`).
    pub fn mul(&self, other: &Var) -> Result<Var> {
        let pairing = operands("mul", self, other)?;
        let value = forward(self, |r| match pairing {
            Operands::Same => r.elementwise(Mul, self.value(), Some(other.value())),
            Operands::RightScalar => {
                r.elementwise(MulScalar(1.0), self.value(), Some(other.value()))
            }
            Operands::LeftScalar => {
                r.elementwise(MulScalar(1.0), other.value(), Some(self.value()))
            }
        })?;
        // d(x·y)/dx = y: g ⊙ y elementwise, g·s for a broadcast s, Σ g ⊙ x for s itself.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (a, b) = (&inputs[0], &inputs[1]);
            let collect = |scalar: &Var, partner: &Var, r: &mut Recording| {
                let terms = r.elementwise(Mul, g, Some(partner.value()))?;
                sum_into_scalar(r, &terms, 1.0, scalar)
            };
            Ok(vec![
                grad_for(a, || match pairing {
                    Operands::Same => r.elementwise(Mul, g, Some(b.value())),
                    Operands::RightScalar => r.elementwise(MulScalar(1.0), g, Some(b.value())),
                    Operands::LeftScalar => collect(a, b, r),
                })?,
                grad_for(b, || match pairing {
                    Operands::Same => r.elementwise(Mul, g, Some(a.value())),
                    Operands::RightScalar => collect(b, a, r),
                    Operands::LeftScalar => r.elementwise(MulScalar(1.0), g, Some(a.value())),
                })?,
            ])
        };
        Ok(Var::from_op("mul", value, &[self, other], Box::new(rule)))
    }

    /// `alpha · self` for a constant `alpha`.
    pub fn scale(&self, alpha: f32) -> Result<Var> {
        let value = forward(self, |r| r.elementwise(Scale(alpha), self.value(), None))?;
        // d(αx)/dx = α.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            Ok(vec![grad_for(&inputs[0], || {
                r.elementwise(Scale(alpha), g, None)
            })?])
        };
        Ok(Var::from_op("scale", value, &[self], Box::new(rule)))
    }

    /// `−self`.
    pub fn neg(&self) -> Result<Var> {
        self.scale(-1.0)
    }

    /// `self ⊙ self`: a `mul` of a value with itself, whose gradient `2·x·g` arrives as two
    /// contributions of `x·g` that the backward pass accumulates.
    pub fn square(&self) -> Result<Var> {
        self.mul(self)
    }

    /// The matrix product `self · other` of `[M, K]` and `[K, N]`.
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        let value = forward(self, |r| {
            r.product(self.value(), other.value(), MatmulForm::AB)
        })?;
        // d(A·B) = dA·B + A·dB: gA = g·Bᵀ, gB = Aᵀ·g (no transpose is materialised).
        let rule = |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (a, b) = (&inputs[0], &inputs[1]);
            Ok(vec![
                grad_for(a, || r.product(g, b.value(), MatmulForm::ABt))?,
                grad_for(b, || r.product(a.value(), g, MatmulForm::AtB))?,
            ])
        };
        Ok(Var::from_op(
            "matmul",
            value,
            &[self, other],
            Box::new(rule),
        ))
    }

    /// A linear layer, `self · weight + bias`, with `self` `[batch, in]`, `weight`
    /// `[in, out]` and `bias` `[out]`: one fused kernel forward.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        let value = forward(self, |r| {
            let options = MatmulOptions {
                bias: bias.map(|b| b.value()),
                ..MatmulOptions::default()
            };
            r.matmul(self.value(), weight.value(), &options)
        })?;
        // As matmul, and the bias collects the column sums of g.
        let rule = |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (x, w) = (&inputs[0], &inputs[1]);
            let mut grads = vec![
                grad_for(x, || r.product(g, w.value(), MatmulForm::ABt))?,
                grad_for(w, || r.product(x.value(), g, MatmulForm::AtB))?,
            ];
            if let Some(b) = inputs.get(2) {
                grads.push(grad_for(b, || {
                    r.sum_columns(g)?.reshape(b.shape().clone())
                })?);
            }
            Ok(grads)
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(Var::from_op("linear", value, &inputs, Box::new(rule)))
    }

    /// A 2-D convolution in NCHW, `nn.Conv2d`'s forward pass: `self` `[batch, in_channels,
    /// h, w]`, `weight` `[out_channels, in_channels, kh, kw]`, `bias` `[out_channels]`. Bad
    /// shapes are errors naming both, before anything is recorded.
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, options: Conv2dOptions) -> Result<Var> {
        let geometry = Conv2dGeometry::new(self.shape().dims(), weight.shape().dims(), options)?;
        if let Some(bias) = bias
            && bias.shape().dims() != [geometry.out_channels]
        {
            return Err(Error::shape(
                "conv2d",
                format!("bias [{}]", geometry.out_channels),
                bias.shape(),
            ));
        }
        let value = forward(self, |r| {
            let b = bias.map(|b| b.value());
            r.conv(
                ConvProduct::Forward,
                &geometry,
                self.value(),
                weight.value(),
                b,
            )
        })?;
        // Each gradient is a product of the same geometry: dx a gather over dy (a transposed
        // convolution), dw and db sums over the output's positions.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (x, w) = (&inputs[0], &inputs[1]);
            let mut grads = vec![
                grad_for(x, || {
                    r.conv(ConvProduct::InputGrad, &geometry, g, w.value(), None)
                })?,
                grad_for(w, || {
                    r.conv(ConvProduct::WeightGrad, &geometry, g, x.value(), None)
                })?,
            ];
            if let Some(b) = inputs.get(2) {
                grads.push(grad_for(b, || {
                    r.conv(ConvProduct::BiasGrad, &geometry, g, g, None)
                })?);
            }
            Ok(grads)
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(Var::from_op("conv2d", value, &inputs, Box::new(rule)))
    }

    /// An elementwise activation with PyTorch's semantics, in evaluation mode (RReLU uses its
    /// mean slope). PReLU takes its slopes through [`prelu`](Self::prelu). The step function
    /// computes, but its backward pass is [`Error::NoGradient`].
    pub fn activation(&self, activation: Activation) -> Result<Var> {
        self.activation_mode(activation, false)
    }

    /// [`activation`](Self::activation) in training (`true`) or evaluation mode: RReLU draws a
    /// slope per element while training, keyed by the RNG key that
    /// [`Plan::set_rng`](crate::capture::Plan::set_rng) sets (0, 0 when eager).
    pub fn activation_mode(&self, activation: Activation, training: bool) -> Result<Var> {
        if activation == Activation::Prelu {
            return Err(Error::InvalidArgument(
                "PReLU has learnable slopes: use Var::prelu(&slopes)".into(),
            ));
        }
        let state = ActivationState {
            training,
            ..ActivationState::default()
        };
        let value = forward(self, |r| r.activation(self.value(), activation, &state))?;
        // dy/dx = f'(x); for ReLU, sigmoid and tanh f'(x) is a function of y = f(x), which is
        // what is saved (so a capture can fuse the activation into the matmul before it).
        let from_output = activation.derivative_from_output();
        let output = value.share();
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let x = &inputs[0];
            let state = ActivationState {
                training,
                ..ActivationState::default()
            };
            let saved = if from_output { &output } else { x.value() };
            Ok(vec![grad_for(x, || {
                r.activation_backward(saved, g, activation, &state, from_output)
            })?])
        };
        Ok(Var::from_op(
            activation.name(),
            value,
            &[self],
            Box::new(rule),
        ))
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Result<Var> {
        self.activation(Activation::Relu)
    }

    /// `1 / (1 + e⁻ˣ)`.
    pub fn sigmoid(&self) -> Result<Var> {
        self.activation(Activation::Sigmoid)
    }

    /// `tanh(x)`.
    pub fn tanh(&self) -> Result<Var> {
        self.activation(Activation::Tanh)
    }

    /// PReLU with learnable `slopes`, shape `[1]` or `[features]` (the last dimension).
    pub fn prelu(&self, slopes: &Var) -> Result<Var> {
        let state = ActivationState {
            prelu_slopes: Some(slopes.value()),
            ..ActivationState::default()
        };
        let value = forward(self, |r| {
            r.activation(self.value(), Activation::Prelu, &state)
        })?;
        // dy/dx = 1 or a; dy/da = x where x < 0, summed over what shares the slope.
        let rule = |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let (x, slopes) = (&inputs[0], &inputs[1]);
            let state = ActivationState {
                prelu_slopes: Some(slopes.value()),
                ..ActivationState::default()
            };
            Ok(vec![
                grad_for(x, || {
                    r.activation_backward(x.value(), g, Activation::Prelu, &state, false)
                })?,
                grad_for(slopes, || r.prelu_slope_grad(x.value(), g, slopes.value()))?,
            ])
        };
        Ok(Var::from_op(
            "prelu",
            value,
            &[self, slopes],
            Box::new(rule),
        ))
    }

    /// The sum of every element, shape `[1]`.
    pub fn sum(&self) -> Result<Var> {
        let value = forward(self, |r| r.sum(self.value(), 1.0))?;
        // dΣ/dxᵢ = 1: g broadcast, read on the device.
        let rule = |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let x = &inputs[0];
            Ok(vec![grad_for(x, || r.fill(g, 1.0, x.shape()))?])
        };
        Ok(Var::from_op("sum", value, &[self], Box::new(rule)))
    }

    /// The mean of every element, shape `[1]`.
    pub fn mean(&self) -> Result<Var> {
        let scale = 1.0 / self.numel().max(1) as f32;
        let value = forward(self, |r| r.sum(self.value(), scale))?;
        // d mean/dxᵢ = 1/n.
        let rule = move |g: &Tensor, inputs: &[Var], r: &mut Recording| {
            let x = &inputs[0];
            Ok(vec![grad_for(x, || r.fill(g, scale, x.shape()))?])
        };
        Ok(Var::from_op("mean", value, &[self], Box::new(rule)))
    }
}
