//! Layers and models: a multilayer perceptron of `Linear` layers and activations ([`Mlp`]), and
//! a [`Sequential`] model of convolutional, pooling, dropout and linear layers, each written
//! once as an autograd graph ([`Model::forward`]) and trained on the device by [`Trainer`],
//! which captures the whole step (forward, loss, backward, optimiser) into a fused plan.

#[cfg(feature = "checkpoints")]
mod checkpoint;
mod conv;
mod model;
mod predict;
mod schedule;
mod sequential;
#[cfg(feature = "checkpoints")]
mod torch;
mod train;

#[cfg(feature = "checkpoints")]
pub use checkpoint::{CheckpointFile, StoredTensor, load_checkpoint, save_checkpoint};
pub use conv::Conv2d;
pub use model::Model;
#[cfg(not(target_arch = "wasm32"))]
pub use predict::predict;
pub use predict::predict_async;
pub use schedule::Schedule;
pub use sequential::{Layer, LayerSpec, Sequential, SequentialConfig};
#[cfg(feature = "checkpoints")]
pub use torch::{StateDictShape, TorchNaming, load_state_dict, save_state_dict};
#[cfg(feature = "checkpoints")]
pub use train::TrainingPosition;
pub use train::{
    ClassifierLoss, EpochStats, Evaluator, Trainer, TrainerConfig, default_steps_per_submit,
    epoch_order,
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::autograd::Var;
use crate::device::Device;
use crate::kernels::activation::Activation;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// A fully connected layer `y = x·W + b`, with `W` stored `[in, out]` so the forward pass is a
/// plain `A·B` matmul with a fused bias. Both parameters are autograd leaves; their gradients
/// are in [`Var::grad`].
#[derive(Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Var,
    /// `[out]`.
    pub bias: Var,
}

impl Linear {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√in, drawn from `rng`.
    pub fn new(
        device: &Device,
        inputs: usize,
        outputs: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        // The device buffers first: they check the device's limits before any host memory
        // is spent on values that could not be uploaded.
        let weight = Tensor::uninit(device, [inputs, outputs])?;
        let bias = Tensor::uninit(device, [outputs])?;
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = |tensor: &Tensor| -> Result<()> {
            let n = tensor.numel();
            let mut values = Vec::new();
            values.try_reserve_exact(n).map_err(|_| Error::TooLarge {
                what: format!("the initial values of a {inputs}×{outputs} layer"),
                requested: format!("{} bytes of host memory", n * 4),
                limit: "what the allocator could give".into(),
                limit_name: "host memory",
            })?;
            values.extend((0..n).map(|_| rng.random_range(-bound..bound)));
            tensor.write(&values)
        };
        draw(&weight)?;
        draw(&bias)?;
        Ok(Self {
            weight: Var::parameter(weight)?,
            bias: Var::parameter(bias)?,
        })
    }

    /// `x·W + b`.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        x.linear(&self.weight, Some(&self.bias))
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

    /// Checks the shape before anything is built: at least an input and an output width, no
    /// width of 0, an activation with a gradient. [`Mlp::new`] calls it; call it yourself to
    /// refuse a configuration before any work (as the `mnist` example checks its flags).
    pub fn validate(&self) -> Result<()> {
        if self.widths.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "an MLP needs at least two widths (input and output), got {:?}",
                self.widths
            )));
        }
        if let Some(i) = self.widths.iter().position(|&w| w == 0) {
            return Err(Error::InvalidArgument(format!(
                "width {i} of {:?} is 0: every layer needs at least one unit",
                self.widths
            )));
        }
        if !self.activation.has_gradient() {
            return Err(Error::InvalidArgument(format!(
                "the activation `{}` has no gradient, so an MLP with it cannot be trained",
                self.activation.name()
            )));
        }
        Ok(())
    }
}

/// The learnable slope of a PReLU activation (one, shared, as `torch.nn.PReLU()`).
#[derive(Debug)]
pub struct PreluSlope {
    /// `[1]`, initialised to 0.25 like PyTorch's.
    pub slope: Var,
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
        config.validate()?;
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
                        slope: Var::parameter(Tensor::from_slice(device, &[0.25], [1])?)?,
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

    /// The forward pass through autograd: each layer, and the activation between layers
    /// (`training` selects RReLU's random slopes). Returns the logits.
    pub fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let activation = self.config.activation;
        let mut h = x.clone();
        for (l, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if l + 1 < self.layers.len() {
                h = match self.prelu.get(l) {
                    Some(p) => h.prelu(&p.slope)?,
                    None => h.activation_mode(activation, training)?,
                };
            }
        }
        Ok(h)
    }

    /// The parameters as graph leaves with PyTorch-style names (`layers.0.weight`, …, then
    /// `activations.0.weight` for PReLU slopes), input layer first.
    pub fn parameter_vars(&self) -> Vec<(String, &Var)> {
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
}
