//! Layers and models: a multilayer perceptron of `Linear` layers and activations, trained
//! on the device by [`Trainer`].

mod checkpoint;
mod schedule;
mod train;

pub use checkpoint::{load_checkpoint, save_checkpoint, write_atomically};
pub use schedule::Schedule;
pub use train::{ClassifierLoss, EpochStats, Evaluator, Trainer, TrainerConfig, epoch_order};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::device::Device;
use crate::kernels::activation::Activation;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// A fully connected layer `y = x·W + b`, with `W` stored `[in, out]` so the forward pass is a
/// plain `A·B` matmul with a fused bias.
#[derive(Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
    /// dL/dW, written by each backward pass.
    pub weight_grad: Tensor,
    /// dL/db, written by each backward pass.
    pub bias_grad: Tensor,
}

impl Linear {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√in, drawn from `rng`.
    pub fn new(
        device: &Device,
        inputs: usize,
        outputs: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = draw(inputs * outputs);
        let bias = draw(outputs);
        Ok(Self {
            weight: Tensor::from_slice(device, &weight, [inputs, outputs])?,
            bias: Tensor::from_slice(device, &bias, [outputs])?,
            weight_grad: Tensor::zeros(device, [inputs, outputs])?,
            bias_grad: Tensor::zeros(device, [outputs])?,
        })
    }

    /// Inputs.
    pub fn inputs(&self) -> usize {
        self.weight.shape().dims()[0]
    }

    /// Outputs.
    pub fn outputs(&self) -> usize {
        self.weight.shape().dims()[1]
    }
}

/// The shape of a multilayer perceptron.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Layer widths from input to output, e.g. `[784, 128, 10]`.
    pub widths: Vec<usize>,
    /// The activation between layers (none after the last).
    pub activation: Activation,
    /// Seed of the initialisation.
    pub seed: u64,
}

impl MlpConfig {
    /// The lecture's `Linear(784, 128) → ReLU → Linear(128, 10)`.
    pub fn lecture() -> Self {
        Self {
            widths: vec![784, 128, 10],
            activation: Activation::Relu,
            seed: 0,
        }
    }
}

/// The learnable slope of a PReLU activation (one, shared, as `torch.nn.PReLU()`), with its
/// gradient.
#[derive(Debug)]
pub struct PreluSlope {
    /// `[1]`, initialised to 0.25 like PyTorch's.
    pub slope: Tensor,
    /// dL/dslope, written by each backward pass.
    pub slope_grad: Tensor,
}

/// A multilayer perceptron on the device.
#[derive(Debug)]
pub struct Mlp {
    config: MlpConfig,
    /// The layers, input first.
    pub layers: Vec<Linear>,
    /// With PReLU, the slope after each hidden layer; empty otherwise.
    pub prelu: Vec<PreluSlope>,
}

impl Mlp {
    /// Builds and initialises the model.
    pub fn new(device: &Device, config: MlpConfig) -> Result<Self> {
        if config.widths.len() < 2 || config.widths.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "an MLP needs at least two non-zero widths (input and output), got {:?}",
                config.widths
            )));
        }
        if !config.activation.has_gradient() {
            return Err(Error::InvalidArgument(format!(
                "the activation `{}` has no gradient, so an MLP with it cannot be trained",
                config.activation.name()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let layers = config
            .widths
            .windows(2)
            .map(|w| Linear::new(device, w[0], w[1], &mut rng))
            .collect::<Result<_>>()?;
        let prelu = if config.activation == Activation::Prelu {
            (1..config.widths.len() - 1)
                .map(|_| {
                    Ok(PreluSlope {
                        slope: Tensor::from_slice(device, &[0.25], [1])?,
                        slope_grad: Tensor::zeros(device, [1])?,
                    })
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            config,
            layers,
            prelu,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Every parameter with a PyTorch-style name (`layers.0.weight`, …, then
    /// `activations.0.weight` for PReLU slopes), input layer first.
    pub fn parameters(&self) -> Vec<(String, &Tensor)> {
        let linear = self.layers.iter().enumerate().flat_map(|(i, l)| {
            [
                (format!("layers.{i}.weight"), &l.weight),
                (format!("layers.{i}.bias"), &l.bias),
            ]
        });
        let slopes = self
            .prelu
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("activations.{i}.weight"), &p.slope));
        linear.chain(slopes).collect()
    }

    /// `(parameter, gradient)` pairs, in the order of [`Mlp::parameters`].
    pub fn parameters_and_grads(&self) -> Vec<(&Tensor, &Tensor)> {
        let linear = self
            .layers
            .iter()
            .flat_map(|l| [(&l.weight, &l.weight_grad), (&l.bias, &l.bias_grad)]);
        linear
            .chain(self.prelu.iter().map(|p| (&p.slope, &p.slope_grad)))
            .collect()
    }

    /// Total number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.numel()).sum()
    }
}
