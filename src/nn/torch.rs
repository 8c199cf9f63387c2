//! PyTorch `state_dict`s in safetensors, both ways: an [`Mlp`]'s or a [`Sequential`]'s
//! parameters under the names and layouts a PyTorch model of the same shape has, so
//! `load_state_dict(strict=True)` takes them, and such a file read back into the model.
//!
//! PyTorch's `nn.Linear` stores its weight `[out, in]` (it computes `x·Wᵀ + b`); the engine
//! stores `[in, out]` (`x·W + b`, a plain A·B product), so every weight is transposed on the
//! way, on the host. Two namings are written and read ([`TorchNaming`]): the lecture's `Net`
//! (`fc1`, `fc2`, …) and `nn.Sequential` (`0`, `2`, …: the activations sit at the odd
//! indices). The engine's own checkpoints keep their names and layout (`layers.0.weight`,
//! `[in, out]`, with the training state beside them).

use std::collections::BTreeSet;
use std::path::Path;

use super::checkpoint::{CheckpointFile, StoredTensor, data_error};
use super::{Layer, Mlp, Sequential};
use crate::autograd::Var;
use crate::kernels::activation::Activation;
use crate::tensor::DType;
use crate::{Error, Result};

/// How a PyTorch model names an MLP's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorchNaming {
    /// The lecture's `Net`: one attribute per layer, `fc1`, `fc2`, … (`fc1.weight`
    /// `[hidden, 784]`, `fc1.bias`, …); a PReLU's slope after layer i is `act{i}.weight`.
    Net,
    /// `nn.Sequential(Linear, activation, Linear, …, Linear)`: layer i is module `2i`
    /// (`0.weight`, `0.bias`, `2.weight`, …) and the activation after it module `2i + 1`,
    /// whose weight a PReLU has (`1.weight`).
    Sequential,
}

impl TorchNaming {
    /// Both namings.
    pub const ALL: [TorchNaming; 2] = [TorchNaming::Net, TorchNaming::Sequential];

    /// The module name of linear layer `i` (from 0).
    pub fn linear(self, i: usize) -> String {
        match self {
            TorchNaming::Net => format!("fc{}", i + 1),
            TorchNaming::Sequential => format!("{}", 2 * i),
        }
    }

    /// The module name of the activation after linear layer `i` (from 0).
    pub fn activation(self, i: usize) -> String {
        match self {
            TorchNaming::Net => format!("act{}", i + 1),
            TorchNaming::Sequential => format!("{}", 2 * i + 1),
        }
    }

    /// `net` or `sequential`.
    pub fn name(self) -> &'static str {
        match self {
            TorchNaming::Net => "net",
            TorchNaming::Sequential => "sequential",
        }
    }

    /// Every parameter name of an MLP of `layers` linear layers under this naming, in the
    /// order PyTorch's `state_dict()` lists them.
    pub fn parameter_names(self, layers: usize, prelu: bool) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..layers {
            names.push(format!("{}.weight", self.linear(i)));
            names.push(format!("{}.bias", self.linear(i)));
            if prelu && i + 1 < layers {
                names.push(format!("{}.weight", self.activation(i)));
            }
        }
        names
    }
}

/// What a state_dict holds: its naming, the MLP's widths (inputs, each hidden layer, outputs)
/// and whether PReLU slopes sit between the layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDictShape {
    /// How its tensors are named.
    pub naming: TorchNaming,
    /// Inputs, each hidden layer's width, outputs.
    pub widths: Vec<usize>,
    /// Whether it has a PReLU slope after each hidden layer.
    pub prelu: bool,
}

impl StateDictShape {
    /// Reads the MLP a state_dict describes from its names and shapes: one naming, layers
    /// numbered from the first without a gap, each weight 2-D and each bias matching it,
    /// each layer's inputs the previous one's outputs, nothing else in the file. The errors
    /// name `path` and the tensor.
    pub fn of(file: &CheckpointFile, path: &Path) -> Result<Self> {
        let naming = TorchNaming::ALL
            .into_iter()
            .find(|n| {
                file.tensors
                    .contains_key(&format!("{}.weight", n.linear(0)))
            })
            .ok_or_else(|| {
                let hint = if file.tensors.contains_key("layers.0.weight") {
                    " (it is one of this engine's own checkpoints: load it as one)"
                } else {
                    ""
                };
                data_error(
                    path,
                    format!(
                        "is not an MLP state_dict: it has neither fc1.weight (the lecture's \
                         Net) nor 0.weight (nn.Sequential){hint}"
                    ),
                )
            })?;
        let mut widths = Vec::new();
        let mut layers = 0;
        while let Some(weight) = file
            .tensors
            .get(&format!("{}.weight", naming.linear(layers)))
        {
            let name = format!("{}.weight", naming.linear(layers));
            let [out, inp] = weight.shape[..] else {
                return Err(data_error(
                    path,
                    format!("{name} is {:?}; a Linear weight is [out, in]", weight.shape),
                ));
            };
            match widths.last() {
                None => widths.push(inp),
                Some(&prev) if prev != inp => {
                    return Err(data_error(
                        path,
                        format!(
                            "{name} is [{out}, {inp}] but the layer before it has {prev} \
                             outputs"
                        ),
                    ));
                }
                Some(_) => {}
            }
            widths.push(out);
            layers += 1;
        }
        let prelu = file
            .tensors
            .contains_key(&format!("{}.weight", naming.activation(0)));
        let shape = Self {
            naming,
            widths,
            prelu,
        };
        let expected: BTreeSet<String> =
            naming.parameter_names(layers, prelu).into_iter().collect();
        let found: BTreeSet<String> = file.tensors.keys().cloned().collect();
        if let Some(extra) = found.difference(&expected).next() {
            return Err(data_error(
                path,
                format!(
                    "has {extra}, which a {} MLP named as {} has no place for",
                    shape.describe(),
                    naming.name()
                ),
            ));
        }
        if let Some(missing) = expected.difference(&found).next() {
            return Err(data_error(
                path,
                format!(
                    "lacks {missing}, which a {} MLP named as {} has",
                    shape.describe(),
                    naming.name()
                ),
            ));
        }
        for name in &expected {
            let stored = &file.tensors[name];
            if stored.dtype != DType::F32 {
                return Err(data_error(path, format!("{name} is not F32")));
            }
        }
        Ok(shape)
    }

    /// `784→128→10`.
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(ToString::to_string).collect();
        widths.join("→")
    }

    /// The hidden layers' widths.
    pub fn hidden(&self) -> &[usize] {
        &self.widths[1..self.widths.len().saturating_sub(1).max(1)]
    }
}

/// `values` of a `rows × cols` matrix, transposed (`cols × rows`).
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

fn f32_tensor(shape: Vec<usize>, values: &[f32]) -> StoredTensor {
    StoredTensor {
        dtype: DType::F32,
        shape,
        bytes: bytemuck::cast_slice(values).to_vec(),
    }
}

impl Mlp {
    /// The model's parameters as a PyTorch state_dict under `naming`: weights `[out, in]`,
    /// biases `[out]`, PReLU slopes `[1]`, and safetensors' `format: pt` metadata (as
    /// `safetensors.torch.save_file` writes). One host sync per parameter.
    pub fn to_state_dict(&self, naming: TorchNaming) -> Result<CheckpointFile> {
        let mut file = CheckpointFile::default();
        for (i, layer) in self.layers.iter().enumerate() {
            let weight = StoredTensor::read(layer.weight.value())?;
            let (inputs, outputs) = (layer.inputs(), layer.outputs());
            let values = weight.f32s().expect("weights are F32");
            let prefix = naming.linear(i);
            file.tensors.insert(
                format!("{prefix}.weight"),
                f32_tensor(vec![outputs, inputs], &transpose(&values, inputs, outputs)),
            );
            file.tensors.insert(
                format!("{prefix}.bias"),
                StoredTensor::read(layer.bias.value())?,
            );
        }
        for (i, slope) in self.prelu.iter().enumerate() {
            file.tensors.insert(
                format!("{}.weight", naming.activation(i)),
                StoredTensor::read(slope.slope.value())?,
            );
        }
        file.metadata.insert("format".into(), "pt".into());
        Ok(file)
    }

    /// Loads a PyTorch state_dict (either [`TorchNaming`], read from `path`, named in
    /// errors) into the model, transposing the weights; returns its naming. The file must
    /// describe exactly this model (widths, PReLU slopes or none); every tensor is checked
    /// before anything is written, so a bad file leaves the model as it was.
    pub fn load_state_dict(&self, file: &CheckpointFile, path: &Path) -> Result<TorchNaming> {
        let shape = StateDictShape::of(file, path)?;
        let naming = shape.naming;
        let prelu = self.config().activation == Activation::Prelu;
        if shape.widths != self.config().widths || shape.prelu != prelu {
            let ours = StateDictShape {
                naming,
                widths: self.config().widths.clone(),
                prelu,
            };
            return Err(Error::shape(
                &format!("state_dict {}", path.display()),
                format!(
                    "the model's {} MLP{}",
                    ours.describe(),
                    if prelu { " with PReLU slopes" } else { "" }
                ),
                format!(
                    "a {} MLP{}",
                    shape.describe(),
                    if shape.prelu {
                        " with PReLU slopes"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let mut writes = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let prefix = naming.linear(i);
            let weight = &file.tensors[&format!("{prefix}.weight")];
            let (inputs, outputs) = (layer.inputs(), layer.outputs());
            let values = weight.f32s().expect("checked F32");
            writes.push((
                f32_tensor(vec![inputs, outputs], &transpose(&values, outputs, inputs)),
                layer.weight.value(),
                format!("{prefix}.weight"),
            ));
            let bias = &file.tensors[&format!("{prefix}.bias")];
            writes.push((bias.clone(), layer.bias.value(), format!("{prefix}.bias")));
        }
        for (i, slope) in self.prelu.iter().enumerate() {
            let name = format!("{}.weight", naming.activation(i));
            writes.push((file.tensors[&name].clone(), slope.slope.value(), name));
        }
        // Every shape first (a bias of the wrong length, a slope per channel), then the writes.
        for (stored, tensor, name) in &writes {
            if stored.shape != tensor.shape().dims() {
                let torch_shape = if name.ends_with(".weight") && stored.shape.len() == 2 {
                    let dims = tensor.shape().dims();
                    format!("[{}, {}]", dims[1], dims[0])
                } else {
                    format!("{}", tensor.shape())
                };
                return Err(Error::shape(
                    &format!("state_dict {} tensor {name}", path.display()),
                    torch_shape,
                    format!("{:?}", stored.shape),
                ));
            }
        }
        for (stored, tensor, name) in writes {
            stored.write_into(tensor, &name)?;
        }
        Ok(naming)
    }
}

/// A parameter of a [`Sequential`] as PyTorch's `nn.Sequential` of the same layers has it.
struct TorchParameter<'a> {
    /// Module `i` is layer `i`, whatever it is: `0.weight` for a first convolution, `7.weight`
    /// for a linear layer after two conv-ReLU-pool blocks and a flatten.
    name: String,
    var: &'a Var,
    /// `Some((in, out))` for a linear weight (the engine stores `[in, out]`, PyTorch `[out,
    /// in]`); `None` where the layouts agree (convolution weights `[out, in, kh, kw]`, biases).
    transposed: Option<(usize, usize)>,
}

/// A [`Sequential`]'s parameters, in layer order.
fn sequential_parameters(model: &Sequential) -> Vec<TorchParameter<'_>> {
    let mut parameters = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let (weight, bias, transpose) = match layer {
            Layer::Conv2d(conv) => (&conv.weight, &conv.bias, None),
            Layer::Linear(linear) => (
                &linear.weight,
                &linear.bias,
                Some((linear.inputs(), linear.outputs())),
            ),
            _ => continue,
        };
        parameters.push(TorchParameter {
            name: format!("{i}.weight"),
            var: weight,
            transposed: transpose,
        });
        parameters.push(TorchParameter {
            name: format!("{i}.bias"),
            var: bias,
            transposed: None,
        });
    }
    parameters
}

impl Sequential {
    /// The model's parameters as the state_dict of PyTorch's `nn.Sequential` with the same
    /// layers (module `i` is layer `i`: `0.weight`, `0.bias`, `3.weight`, …), linear weights
    /// transposed to `[out, in]`, convolution weights `[out, in, kh, kw]` as stored, and
    /// safetensors' `format: pt` metadata. One host sync per parameter.
    pub fn to_state_dict(&self) -> Result<CheckpointFile> {
        let mut file = CheckpointFile::default();
        for TorchParameter {
            name,
            var,
            transposed,
        } in sequential_parameters(self)
        {
            let stored = StoredTensor::read(var.value())?;
            let stored = match transposed {
                Some((inputs, outputs)) => {
                    let values = stored.f32s().expect("weights are F32");
                    f32_tensor(vec![outputs, inputs], &transpose(&values, inputs, outputs))
                }
                None => stored,
            };
            file.tensors.insert(name, stored);
        }
        file.metadata.insert("format".into(), "pt".into());
        Ok(file)
    }

    /// Loads the state_dict of PyTorch's `nn.Sequential` of the same layers (read from
    /// `path`, named in errors), as `load_state_dict(strict=True)` would: exactly this model's
    /// names, each tensor F32 in PyTorch's shape, every one checked before anything is
    /// written, so a bad file leaves the model as it was.
    pub fn load_state_dict(&self, file: &CheckpointFile, path: &Path) -> Result<()> {
        let parameters = sequential_parameters(self);
        let expected: BTreeSet<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
        let present: BTreeSet<&str> = file.tensors.keys().map(String::as_str).collect();
        let missing: Vec<_> = expected.difference(&present).collect();
        let unexpected: Vec<_> = present.difference(&expected).collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            let hint = if present.contains("layers.0.weight") {
                " (it is one of this engine's own checkpoints: load it as one)"
            } else {
                ""
            };
            return Err(data_error(
                path,
                format!(
                    "is not a state_dict of nn.Sequential({}): missing {missing:?}, \
                     unexpected {unexpected:?}{hint}",
                    self.config().describe()
                ),
            ));
        }
        let mut writes = Vec::with_capacity(parameters.len());
        for TorchParameter {
            name,
            var,
            transposed,
        } in parameters
        {
            let stored = &file.tensors[&name];
            let dims = var.shape().dims().to_vec();
            let torch_shape = match transposed {
                Some((inputs, outputs)) => vec![outputs, inputs],
                None => dims,
            };
            let Some(values) = stored.f32s().filter(|_| stored.shape == torch_shape) else {
                return Err(Error::shape(
                    &format!("state_dict {} tensor {name}", path.display()),
                    format!("F32 {torch_shape:?}"),
                    format!("{:?} {:?}", stored.dtype, stored.shape),
                ));
            };
            let engine = match transposed {
                Some((inputs, outputs)) => {
                    f32_tensor(vec![inputs, outputs], &transpose(&values, outputs, inputs))
                }
                None => stored.clone(),
            };
            writes.push((engine, var.value(), name));
        }
        for (stored, tensor, name) in writes {
            stored.write_into(tensor, &name)?;
        }
        Ok(())
    }
}

/// Writes `model` as a PyTorch state_dict under `naming` to `path`, atomically.
pub fn save_state_dict(model: &Mlp, path: &Path, naming: TorchNaming) -> Result<()> {
    model.to_state_dict(naming)?.write(path)
}

/// Reads the PyTorch state_dict at `path` into `model` ([`Mlp::load_state_dict`]).
pub fn load_state_dict(model: &Mlp, path: &Path) -> Result<TorchNaming> {
    let file = CheckpointFile::read(path)?;
    model.load_state_dict(&file, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tensors: &[(&str, &[usize])]) -> CheckpointFile {
        let mut file = CheckpointFile::default();
        for (name, shape) in tensors {
            let n = shape.iter().product();
            file.tensors
                .insert(name.to_string(), f32_tensor(shape.to_vec(), &vec![0.5; n]));
        }
        file
    }

    #[test]
    fn both_namings_are_read_with_their_widths() {
        let path = Path::new("x.safetensors");
        let net = file(&[
            ("fc1.weight", &[128, 784]),
            ("fc1.bias", &[128]),
            ("fc2.weight", &[10, 128]),
            ("fc2.bias", &[10]),
        ]);
        let shape = StateDictShape::of(&net, path).unwrap();
        assert_eq!(shape.naming, TorchNaming::Net);
        assert_eq!(shape.widths, [784, 128, 10]);
        assert_eq!(shape.hidden(), [128]);
        assert!(!shape.prelu);
        let seq = file(&[
            ("0.weight", &[64, 784]),
            ("0.bias", &[64]),
            ("1.weight", &[1]),
            ("2.weight", &[32, 64]),
            ("2.bias", &[32]),
            ("3.weight", &[1]),
            ("4.weight", &[10, 32]),
            ("4.bias", &[10]),
        ]);
        let shape = StateDictShape::of(&seq, path).unwrap();
        assert_eq!(shape.naming, TorchNaming::Sequential);
        assert_eq!(shape.widths, [784, 64, 32, 10]);
        assert!(shape.prelu);
    }

    #[test]
    fn a_broken_chain_a_stray_tensor_or_a_missing_bias_is_named() {
        let path = Path::new("x.safetensors");
        let message = |f: &CheckpointFile| StateDictShape::of(f, path).unwrap_err().to_string();
        let chain = file(&[
            ("fc1.weight", &[128, 784]),
            ("fc1.bias", &[128]),
            ("fc2.weight", &[10, 100]),
            ("fc2.bias", &[10]),
        ]);
        assert!(
            message(&chain).contains("fc2.weight is [10, 100]"),
            "{}",
            message(&chain)
        );
        let stray = file(&[
            ("fc1.weight", &[10, 784]),
            ("fc1.bias", &[10]),
            ("fc3.bias", &[1]),
        ]);
        assert!(
            message(&stray).contains("has fc3.bias"),
            "{}",
            message(&stray)
        );
        let missing = file(&[("0.weight", &[10, 784])]);
        assert!(
            message(&missing).contains("lacks 0.bias"),
            "{}",
            message(&missing)
        );
        let engine = file(&[("layers.0.weight", &[784, 10])]);
        assert!(
            message(&engine).contains("engine's own"),
            "{}",
            message(&engine)
        );
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn names_follow_pytorch_module_order() {
        assert_eq!(
            TorchNaming::Sequential.parameter_names(2, true),
            ["0.weight", "0.bias", "1.weight", "2.weight", "2.bias"]
        );
        assert_eq!(
            TorchNaming::Net.parameter_names(2, false),
            ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        );
    }
}
