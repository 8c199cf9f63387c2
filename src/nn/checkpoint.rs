//! Checkpoints in the safetensors format, written atomically.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::Mlp;
use crate::{Error, Result};

fn data_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename,
/// so an interrupted write never leaves a half-written file and never replaces a good one.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| data_error(path, format!("cannot write: {e}"));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    file.as_file().sync_all().map_err(fail)?;
    file.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Saves every parameter of `model` (names as in [`Mlp::parameters`], weights stored
/// `[in, out]`) and `metadata`: one host sync per parameter.
pub fn save_checkpoint(
    model: &Mlp,
    path: &Path,
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let mut values = Vec::new();
    for (name, tensor) in model.parameters() {
        values.push((name, tensor.shape().dims().to_vec(), tensor.to_vec()?));
    }
    let views: Vec<(String, TensorView<'_>)> = values
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
                .map(|view| (name.clone(), view))
                .map_err(|e| data_error(path, format!("cannot serialise {name}: {e}")))
        })
        .collect::<Result<_>>()?;
    metadata.insert("layout".into(), "weights [in, out]".into());
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| data_error(path, format!("cannot serialise: {e}")))?;
    write_atomically(path, &bytes)
}

/// Loads a checkpoint into `model`, which must have exactly its parameters and shapes; returns
/// the checkpoint's metadata.
pub fn load_checkpoint(model: &Mlp, path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path)
        .map_err(|e| data_error(path, format!("cannot read the checkpoint: {e}")))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| data_error(path, format!("not a safetensors file ({e})")))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| data_error(path, format!("not a safetensors file ({e})")))?;
    let expected: Vec<String> = model.parameters().iter().map(|(n, _)| n.clone()).collect();
    let mut found: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    found.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    if found != wanted {
        return Err(Error::shape(
            &format!("checkpoint {}", path.display()),
            format!("parameters {wanted:?}"),
            format!("{found:?}; was it saved from a model with other layers?"),
        ));
    }
    // Check everything before writing anything, so a bad file leaves the model as it was.
    let mut values = Vec::new();
    for (name, tensor) in model.parameters() {
        let view = tensors
            .tensor(&name)
            .map_err(|e| data_error(path, format!("{name}: {e}")))?;
        if view.dtype() != Dtype::F32 || view.shape() != tensor.shape().dims() {
            return Err(Error::shape(
                &format!("checkpoint {} parameter {name}", path.display()),
                format!("F32 {}", tensor.shape()),
                format!("{:?} {:?}", view.dtype(), view.shape()),
            ));
        }
        values.push((tensor, bytemuck::pod_collect_to_vec::<u8, f32>(view.data())));
    }
    if let Some(layout) = metadata.metadata().as_ref().and_then(|m| m.get("layout")) {
        if layout != "weights [in, out]" {
            return Err(data_error(
                path,
                format!(
                    "stores weights as {layout:?}, this engine as [in, out]; transpose them first"
                ),
            ));
        }
    }
    for (tensor, data) in values {
        tensor.write(&data)?;
    }
    Ok(metadata.metadata().clone().unwrap_or_default())
}
