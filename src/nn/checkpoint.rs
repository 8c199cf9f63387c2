//! Checkpoints in the safetensors format: read and checked on the host ([`CheckpointFile`]),
//! written atomically and byte for byte reproducibly (the same state gives the same file).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::Model;
use crate::files::write_atomically;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// How weights are laid out; a checkpoint that says otherwise is refused.
const LAYOUT: &str = "weights [in, out]";

/// One tensor of a checkpoint, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// The element type (`F32` or `U32`).
    pub dtype: DType,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The values' bytes, little-endian.
    pub bytes: Vec<u8>,
}

impl StoredTensor {
    /// Copies `tensor` to the host (one host sync).
    pub fn read(tensor: &Tensor) -> Result<Self> {
        let bytes = match tensor.dtype() {
            DType::F32 => bytemuck::cast_slice(&tensor.to_vec()?).to_vec(),
            DType::U32 => bytemuck::cast_slice(&tensor.to_vec_u32()?).to_vec(),
        };
        Ok(Self {
            dtype: tensor.dtype(),
            shape: tensor.shape().dims().to_vec(),
            bytes,
        })
    }

    /// The values of an `F32` tensor.
    pub fn f32s(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| bytemuck::pod_collect_to_vec(&self.bytes))
    }

    /// Writes the values into `tensor`, which must have the same type and shape (queued).
    pub(super) fn write_into(&self, tensor: &Tensor, what: &str) -> Result<()> {
        if self.dtype != tensor.dtype() || self.shape != tensor.shape().dims() {
            return Err(Error::shape(
                what,
                format!("{:?} {}", tensor.dtype(), tensor.shape()),
                format!("{:?} {:?}", self.dtype, self.shape),
            ));
        }
        tensor
            .device()
            .write_buffer(tensor.buffer(), 0, &self.bytes);
        Ok(())
    }
}

/// A safetensors file's tensors and metadata, parsed and checked without a device: every
/// tensor is `F32` or `U32` with as many bytes as its shape needs, and every `F32` value is
/// finite (a NaN in a checkpoint is a diverged run or a corrupt file, and is refused here,
/// before it can reach a model).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointFile {
    /// The tensors by name.
    pub tensors: BTreeMap<String, StoredTensor>,
    /// The metadata (`__metadata__`), in name order.
    pub metadata: BTreeMap<String, String>,
}

/// Where bytes that did not come from a file are said to come from.
const IN_MEMORY: &str = "(checkpoint bytes)";

pub(super) fn data_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

impl CheckpointFile {
    /// Parses and checks a checkpoint held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_at(bytes, Path::new(IN_MEMORY))
    }

    /// Reads, parses and checks the checkpoint at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(data_error(
                path,
                "is a directory, not a checkpoint file (a .safetensors file)",
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| data_error(path, format!("cannot read the checkpoint: {e}")))?;
        Self::parse_at(&bytes, path)
    }

    fn parse_at(bytes: &[u8], path: &Path) -> Result<Self> {
        let not_safetensors = |e: safetensors::SafeTensorError| {
            data_error(path, format!("not a safetensors file ({e})"))
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let file = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let dtype = match view.dtype() {
                Dtype::F32 => DType::F32,
                Dtype::U32 => DType::U32,
                other => {
                    return Err(data_error(
                        path,
                        format!("tensor {name} is {other:?}; this engine reads F32 and U32"),
                    ));
                }
            };
            let stored = StoredTensor {
                dtype,
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            if let Some(values) = stored.f32s()
                && let Some(i) = values.iter().position(|v| !v.is_finite())
            {
                return Err(data_error(
                    path,
                    format!(
                        "tensor {name} holds {} at index {i}: the run that saved it had \
                             diverged, or the file is corrupt; use an earlier checkpoint",
                        values[i]
                    ),
                ));
            }
            tensors.insert(name, stored);
        }
        let metadata = header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Self { tensors, metadata })
    }

    /// The file's bytes, the same for the same contents: tensors in name order, metadata keys
    /// sorted (the `safetensors` crate writes the metadata in hash-map order).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let path = Path::new(IN_MEMORY);
        let views = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let dtype = match t.dtype {
                    DType::F32 => Dtype::F32,
                    DType::U32 => Dtype::U32,
                };
                TensorView::new(dtype, t.shape.clone(), &t.bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| data_error(path, format!("cannot serialise {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // No map at all when it is empty: safetensors 0.6 writes an invalid header for an
        // empty one beside no tensors (safetensors PR #761).
        let metadata = (!self.metadata.is_empty())
            .then(|| self.metadata.clone().into_iter().collect::<HashMap<_, _>>());
        let bytes = safetensors::serialize(views, metadata)
            .map_err(|e| data_error(path, format!("cannot serialise: {e}")))?;
        sort_header(&bytes).map_err(|e| data_error(path, format!("cannot serialise: {e}")))
    }

    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomically(path, &self.to_bytes()?)
    }

    /// The widths (inputs, each hidden layer, outputs) of the MLP an engine checkpoint holds,
    /// from its weights' shapes `[in, out]`: `layers.0.weight`, `layers.1.weight`, … An
    /// error naming `path` and the tensor when one is not 2-D or does not take the previous
    /// layer's outputs; empty when the file holds no `layers.0.weight`.
    pub fn mlp_widths(&self, path: &Path) -> Result<Vec<usize>> {
        let mut widths = Vec::new();
        for i in 0.. {
            let name = format!("layers.{i}.weight");
            let Some(weight) = self.tensors.get(&name) else {
                break;
            };
            let [inputs, outputs] = weight.shape[..] else {
                return Err(data_error(
                    path,
                    format!("{name} is {:?}, not a 2-D weight [in, out]", weight.shape),
                ));
            };
            match widths.last() {
                None => widths.push(inputs),
                Some(&previous) if previous != inputs => {
                    return Err(data_error(
                        path,
                        format!("{name} takes {inputs} inputs, the layer before gives {previous}"),
                    ));
                }
                Some(_) => {}
            }
            widths.push(outputs);
        }
        Ok(widths)
    }

    /// The tensor `name`, or an error naming the file and the tensor.
    pub fn tensor(&self, name: &str, path: &Path) -> Result<&StoredTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| data_error(path, format!("has no tensor {name}")))
    }
}

/// Rewrites a safetensors file's JSON header with every object's keys in sorted order (the
/// data section is untouched: its offsets are relative to its start).
fn sort_header(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("short file")?;
    let len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|e| e.to_string())?;
    let header = bytes.get(8..8 + len).ok_or("short header")?;
    let mut top: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| e.to_string())?;
    if let Some(meta) = top.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> =
            serde_json::from_value(meta.take()).map_err(|e| e.to_string())?;
        *meta = serde_json::to_value(sorted).map_err(|e| e.to_string())?;
    }
    let mut json = serde_json::to_vec(&top).map_err(|e| e.to_string())?;
    // The format pads the header with spaces to a multiple of 8 bytes.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}

/// `parameters` (name, value) as a checkpoint, weights stored as the engine holds them (one
/// host sync per parameter).
pub(crate) fn checkpoint_of(parameters: Vec<(String, &Tensor)>) -> Result<CheckpointFile> {
    let mut file = CheckpointFile::default();
    for (name, tensor) in parameters {
        file.tensors.insert(name, StoredTensor::read(tensor)?);
    }
    file.metadata.insert("layout".into(), LAYOUT.into());
    Ok(file)
}

/// Loads the tensors of `file` (read from `path`, named in errors) into `parameters`. The
/// file must hold exactly these parameters with their shapes; everything is checked before
/// anything is written, so a bad file leaves the model as it was.
pub(crate) fn load_into(
    parameters: Vec<(String, &Tensor)>,
    file: &CheckpointFile,
    path: &Path,
) -> Result<()> {
    if let Some(layout) = file.metadata.get("layout")
        && layout != LAYOUT
    {
        return Err(data_error(
            path,
            format!("stores weights as {layout:?}, this engine as [in, out]; transpose them first"),
        ));
    }
    let wanted: Vec<String> = {
        let mut names: Vec<String> = parameters.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    };
    let found: Vec<String> = file
        .tensors
        .keys()
        .filter(|name| !name.starts_with(STATE_PREFIX))
        .cloned()
        .collect();
    if found != wanted {
        return Err(Error::shape(
            &format!("checkpoint {}", path.display()),
            format!("parameters {wanted:?}"),
            format!("{found:?}; was it saved from a model with other layers?"),
        ));
    }
    let mut pairs = Vec::new();
    for (name, tensor) in parameters {
        let stored = file.tensor(&name, path)?;
        if stored.dtype != DType::F32 || stored.shape != tensor.shape().dims() {
            return Err(Error::shape(
                &format!("checkpoint {} parameter {name}", path.display()),
                format!("F32 {}", tensor.shape()),
                format!("{:?} {:?}", stored.dtype, stored.shape),
            ));
        }
        pairs.push((stored, tensor, name));
    }
    for (stored, tensor, name) in pairs {
        stored.write_into(tensor, &name)?;
    }
    Ok(())
}

/// The prefix of the tensors a training state adds to a model's (optimiser state, counters).
pub(crate) const STATE_PREFIX: &str = "trainer.";

/// Saves every parameter of `model` (names as in [`Model::parameters`], weights stored
/// `[in, out]`) and `metadata`: one host sync per parameter. The same weights and metadata
/// give the same bytes.
pub fn save_checkpoint(
    model: &(impl Model + ?Sized),
    path: &Path,
    metadata: impl IntoIterator<Item = (String, String)>,
) -> Result<()> {
    let mut file = checkpoint_of(model.parameters())?;
    file.metadata.extend(metadata);
    file.write(path)
}

/// Loads a checkpoint's parameters into `model`, which must have exactly its parameters and
/// shapes; returns the checkpoint's metadata.
pub fn load_checkpoint(
    model: &(impl Model + ?Sized),
    path: &Path,
) -> Result<BTreeMap<String, String>> {
    let file = CheckpointFile::read(path)?;
    load_into(model.parameters(), &file, path)?;
    Ok(file.metadata)
}
