//! `--init-from FILE`: the weights a run starts from (a PyTorch state_dict of an MLP, or a
//! model this example wrote), read and checked with the flags, before the device opens. The
//! file decides the architecture; a flag that contradicts it is an error naming the flag that
//! would fit.

use std::path::PathBuf;

use wgsl_nn::data::mnist::{CLASSES, PIXELS};
use wgsl_nn::nn::{CheckpointFile, Mlp, Model, StateDictShape, TorchNaming};

use crate::flags::{Args, Failure, bad_flag};

/// What the file holds.
pub(crate) enum Kind {
    /// A model (or checkpoint) this engine wrote: `layers.0.weight`, weights `[in, out]`.
    Engine,
    /// A PyTorch state_dict.
    Torch(TorchNaming),
}

/// The file to start from, read and checked.
pub(crate) struct Init {
    pub(crate) path: PathBuf,
    pub(crate) file: CheckpointFile,
    pub(crate) kind: Kind,
}

/// Reads `--init-from`'s file and makes the flags describe its model: `--hidden` and
/// `--activation` are taken from it, or checked against it where given.
pub(crate) fn read(args: &mut Args, given: &dyn Fn(&str) -> bool) -> Result<Option<Init>, Failure> {
    let Some(path) = args.init_from.clone() else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let file = CheckpointFile::read(&path).map_err(|e| bad_flag(format!("--init-from: {e}")))?;
    let (kind, widths, activation) = if file.tensors.contains_key("layers.0.weight") {
        let widths = file
            .mlp_widths(&path)
            .map_err(|e| bad_flag(format!("--init-from: {e}")))?;
        let activation = file.metadata.get("activation").cloned().or_else(|| {
            file.tensors
                .contains_key("activations.0.weight")
                .then(|| "prelu".to_string())
        });
        (Kind::Engine, widths, activation)
    } else {
        let shape =
            StateDictShape::of(&file, &path).map_err(|e| bad_flag(format!("--init-from: {e}")))?;
        let activation = shape.prelu.then(|| "prelu".to_string());
        (Kind::Torch(shape.naming), shape.widths, activation)
    };
    let describe = widths
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("→");
    if widths.len() < 2 || widths[0] != PIXELS || widths[widths.len() - 1] != CLASSES {
        return Err(bad_flag(format!(
            "--init-from {shown}: holds a {describe} model; this example trains {PIXELS} \
             inputs to {CLASSES} classes"
        )));
    }
    let hidden = widths[1..widths.len() - 1].to_vec();
    let listed = |h: &[usize]| {
        h.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if given("hidden") && args.hidden != hidden {
        return Err(bad_flag(format!(
            "--hidden {}: {shown} holds a {describe} MLP; pass --hidden {} or leave --hidden out",
            listed(&args.hidden),
            listed(&hidden)
        )));
    }
    args.hidden = hidden;
    if let Some(activation) = activation {
        if given("activation") && args.activation != activation {
            return Err(bad_flag(format!(
                "--activation {}: {shown} was trained with {activation}; pass --activation \
                 {activation} or leave it out",
                args.activation
            )));
        }
        args.activation = activation;
    }
    Ok(Some(Init { path, file, kind }))
}

/// Loads the weights into `model` (built from the flags [`read`] set); says what was loaded.
pub(crate) fn load(init: &Init, model: &Mlp) -> Result<String, Failure> {
    let what = match init.kind {
        Kind::Engine => {
            model
                .load_parameters(&init.file, &init.path)
                .map_err(|e| bad_flag(format!("--init-from: {e}")))?;
            "a model this engine wrote".to_string()
        }
        Kind::Torch(naming) => {
            model
                .load_state_dict(&init.file, &init.path)
                .map_err(|e| bad_flag(format!("--init-from: {e}")))?;
            let module = match naming {
                TorchNaming::Net => "the lecture's Net (fc1, fc2, …)",
                TorchNaming::Sequential => "an nn.Sequential (0, 2, …)",
            };
            format!(
                "a PyTorch state_dict named as {module}, naming {}",
                naming.name()
            )
        }
    };
    Ok(format!("initialised from {} ({what})", init.path.display()))
}
