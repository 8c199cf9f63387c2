//! What the trainer, the evaluator and checkpoints need of a model: its forward pass through
//! autograd, its named parameters, and what identifies it. [`Mlp`](super::Mlp) and
//! [`Sequential`](super::Sequential) are models.

use crate::autograd::Var;
use crate::device::Device;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// A classifier on the device: rows of features in, one logit per class out.
pub trait Model {
    /// The forward pass through autograd: `x` is `[rows, features]` (a batch as a data set
    /// gives it), the result `[rows, classes]`. `training` selects the training behaviour of
    /// the layers that have one (dropout, RReLU).
    fn forward(&self, x: &Var, training: bool) -> Result<Var>;

    /// Every parameter as a graph leaf, with a stable name (a checkpoint's key), in a fixed
    /// order.
    fn parameter_vars(&self) -> Vec<(String, &Var)>;

    /// Features of one example.
    fn inputs(&self) -> usize;

    /// Classes (logits per example).
    fn outputs(&self) -> usize;

    /// The most values one example holds at any layer, input included: what a batch's
    /// largest intermediate binding needs per row.
    fn widest(&self) -> usize;

    /// What identifies the architecture in a saved training state, as (key, value) pairs: a
    /// state restores only into a model with the same.
    fn identity(&self) -> Vec<(&'static str, String)>;

    /// The parameters' values, in the order of [`Model::parameter_vars`].
    fn parameters(&self) -> Vec<(String, &Tensor)> {
        self.parameter_vars()
            .into_iter()
            .map(|(name, var)| (name, var.value()))
            .collect()
    }

    /// Total number of scalar parameters.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.numel()).sum()
    }

    /// The device the parameters live on (an error for a model without any).
    fn device(&self) -> Result<Device> {
        self.parameter_vars()
            .first()
            .map(|(_, var)| var.device().clone())
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "the model has no parameters, so there is nothing to train".into(),
                )
            })
    }

    /// The model's parameters as a checkpoint (one host sync per parameter).
    #[cfg(feature = "checkpoints")]
    fn to_checkpoint(&self) -> Result<super::CheckpointFile> {
        super::checkpoint::checkpoint_of(self.parameters())
    }

    /// Loads the parameters of `file` (read from `path`, named in errors): exactly this
    /// model's, with their shapes; everything is checked before anything is written.
    #[cfg(feature = "checkpoints")]
    fn load_parameters(&self, file: &super::CheckpointFile, path: &std::path::Path) -> Result<()> {
        super::checkpoint::load_into(self.parameters(), file, path)
    }
}

impl Model for super::Mlp {
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        super::Mlp::forward(self, x, training)
    }

    fn parameter_vars(&self) -> Vec<(String, &Var)> {
        super::Mlp::parameter_vars(self)
    }

    fn inputs(&self) -> usize {
        self.config().widths[0]
    }

    fn outputs(&self) -> usize {
        *self
            .config()
            .widths
            .last()
            .expect("validated: two widths at least")
    }

    fn widest(&self) -> usize {
        self.config().widths.iter().copied().max().unwrap_or(1)
    }

    fn identity(&self) -> Vec<(&'static str, String)> {
        let config = self.config();
        vec![
            ("widths", format!("{:?}", config.widths)),
            ("activation", config.activation.name().to_string()),
        ]
    }
}

/// A boxed model is a model: a page or an application picks the architecture at run time
/// (`Trainer<Box<dyn Model>>`).
impl<M: Model + ?Sized> Model for Box<M> {
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        (**self).forward(x, training)
    }

    fn parameter_vars(&self) -> Vec<(String, &Var)> {
        (**self).parameter_vars()
    }

    fn inputs(&self) -> usize {
        (**self).inputs()
    }

    fn outputs(&self) -> usize {
        (**self).outputs()
    }

    fn widest(&self) -> usize {
        (**self).widest()
    }

    fn identity(&self) -> Vec<(&'static str, String)> {
        (**self).identity()
    }
}
