//! A convolution's product as an op of the graph: which of the four (forward, input, weight
//! or bias gradient), its geometry and its tensors; lowered to the plain matmul families'
//! convolution mode (`kernels::conv`).

use super::Access;
use crate::Result;
use crate::kernels::Record;
use crate::kernels::activation::Activation;
use crate::kernels::conv::{self, Conv2dGeometry, ConvProduct};
use crate::tensor::Tensor;

/// `out = product(a, b) (+ bias)` of a convolution of `geometry`.
#[derive(Debug)]
pub(crate) struct ConvOp {
    pub product: ConvProduct,
    pub geometry: Conv2dGeometry,
    /// The forward pass's input, or the output gradient for the gradients.
    pub a: Tensor,
    /// The weight (forward, input gradient), the input (weight gradient) or `a` again.
    pub b: Tensor,
    /// The forward pass's bias.
    pub bias: Option<Tensor>,
    /// The forward pass's activation, applied in its epilogue (`Rule::Forward` fuses it).
    pub activation: Activation,
    /// The activation in training mode (RReLU's random slopes).
    pub training: bool,
    pub out: Tensor,
}

impl ConvOp {
    /// Every tensor the op binds, with how it uses it.
    pub fn tensors(&mut self) -> Vec<(&mut Tensor, Access)> {
        use Access::{Read, Write};
        let mut list: Vec<(&mut Tensor, Access)> = Vec::new();
        list.extend([(&mut self.a, Read), (&mut self.b, Read)]);
        if let Some(bias) = &mut self.bias {
            list.push((bias, Read));
        }
        list.push((&mut self.out, Write));
        list
    }

    /// The plan listing's name.
    pub fn label(&self) -> String {
        let g = &self.geometry;
        let what = match self.product {
            ConvProduct::Forward if self.activation != Activation::Identity => {
                let bias = if self.bias.is_some() { " + bias" } else { "" };
                return format!(
                    "conv2d{bias} + {} {:?} * {:?}",
                    self.activation.name(),
                    self.geometry.input_shape(),
                    self.geometry.weight_shape()
                );
            }
            ConvProduct::Forward if self.bias.is_some() => "conv2d + bias",
            ConvProduct::Forward => "conv2d",
            ConvProduct::InputGrad => "conv2d input gradient",
            ConvProduct::WeightGrad => "conv2d weight gradient",
            ConvProduct::BiasGrad => "conv2d bias gradient",
        };
        format!("{what} {:?} * {:?}", g.input_shape(), g.weight_shape())
    }

    /// The prepared kernel.
    pub fn lower(&self) -> Result<Box<dyn Record>> {
        conv::prepare(
            self.product,
            &self.geometry,
            &self.a,
            &self.b,
            &self.out,
            self.bias.as_ref(),
            (self.activation, self.training),
        )
    }
}
