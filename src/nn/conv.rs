//! A convolutional layer, `nn.Conv2d`: its weight `[out, in, kh, kw]` (PyTorch's layout) and
//! bias as autograd leaves, initialised as PyTorch does.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::autograd::Var;
use crate::device::Device;
use crate::kernels::conv::Conv2dOptions;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// `y = conv2d(x, W) + b` in NCHW.
#[derive(Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels, kernel_h, kernel_w]`.
    pub weight: Var,
    /// `[out_channels]`.
    pub bias: Var,
    /// Stride and padding.
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√fan_in, fan_in =
    /// `in_channels · kernel_h · kernel_w`, drawn from `rng` (weight first, row-major).
    pub fn new(
        device: &Device,
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let weight = Tensor::uninit(device, [out_channels, in_channels, kernel.0, kernel.1])?;
        let bias = Tensor::uninit(device, [out_channels])?;
        let fan_in = in_channels * kernel.0 * kernel.1;
        if fan_in == 0 || out_channels == 0 {
            return Err(Error::InvalidArgument(format!(
                "a convolution of {in_channels} → {out_channels} channels with a {kernel:?} \
                 kernel has no weights; every size must be at least 1"
            )));
        }
        let bound = 1.0 / (fan_in as f32).sqrt();
        for tensor in [&weight, &bias] {
            let values: Vec<f32> = (0..tensor.numel())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            tensor.write(&values)?;
        }
        Ok(Self {
            weight: Var::parameter(weight)?,
            bias: Var::parameter(bias)?,
            options,
        })
    }

    /// `conv2d(x, W) + b`.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        x.conv2d(&self.weight, Some(&self.bias), self.options)
    }
}
