//! A sequential model of convolutional, pooling, dropout, flatten, activation and linear
//! layers, as PyTorch's `nn.Sequential`: described by a [`SequentialConfig`] (written and
//! parsed as text, e.g. `conv(8,5,pad=2)-relu-maxpool(2)-flatten-linear(10)`), its shapes
//! checked layer by layer before anything is built, and trained like any [`Model`].
//!
//! An MLP is one case of it: `linear(128)-relu-linear(10)` on 784 inputs has the
//! [`Mlp`](super::Mlp)'s parameters, names (`layers.0.weight`, …, counting the layers with
//! parameters) and initial values, so the two train to the same bits and an MLP's checkpoint
//! loads into it.

use std::fmt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Conv2d, Linear, Model};
use crate::autograd::Var;
use crate::device::Device;
use crate::kernels::activation::Activation;
use crate::kernels::conv::{Conv2dGeometry, Conv2dOptions};
use crate::kernels::dropout::check_probability;
use crate::kernels::pool::{Pool2d, Pool2dGeometry};
use crate::{Error, Result};

/// One layer of a [`SequentialConfig`], before it is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// `nn.Conv2d(in, out_channels, kernel, stride, padding)`; `in` is the input's channels.
    Conv2d {
        /// Filters.
        out_channels: usize,
        /// Kernel height and width.
        kernel: (usize, usize),
        /// Steps between output positions.
        stride: (usize, usize),
        /// Zeros added on each side.
        padding: (usize, usize),
    },
    /// `nn.MaxPool2d`.
    MaxPool2d(Pool2d),
    /// `nn.AvgPool2d` (the padding counted).
    AvgPool2d(Pool2d),
    /// An elementwise activation (any but PReLU, whose slopes are parameters).
    Activation(Activation),
    /// `nn.Dropout(p)`.
    Dropout(f32),
    /// `nn.Flatten()`: `[channels, h, w]` per example to one row.
    Flatten,
    /// `nn.Linear(in, outputs)`; `in` is the input's width.
    Linear {
        /// Outputs.
        outputs: usize,
    },
}

/// A sequential model's shape: the input of one example and the layers.
#[derive(Clone, Debug, PartialEq)]
pub struct SequentialConfig {
    /// One example's shape: `[features]` or `[channels, height, width]` (the data set's rows
    /// are viewed in it).
    pub input: Vec<usize>,
    /// The layers, input first.
    pub layers: Vec<LayerSpec>,
    /// Seed of the initialisation.
    pub seed: u64,
}

impl SequentialConfig {
    /// A small CNN for 28×28 digits after LeNet-5 (ReLU and max pooling), with the engine's
    /// `--preset cnn` widths: `conv(8,5,pad=2)-relu-maxpool(2)-conv(16,5)-relu-maxpool(2)-
    /// flatten-linear(120)-relu-linear(84)-relu-linear(10)`.
    pub fn lenet() -> Self {
        Self {
            input: vec![1, 28, 28],
            layers: parse_layers(
                "conv(8,5,pad=2)-relu-maxpool(2)-conv(16,5)-relu-maxpool(2)-flatten-\
                 linear(120)-relu-linear(84)-relu-linear(10)",
            )
            .expect("a valid description"),
            seed: 0,
        }
    }

    /// The shape of one example after each layer, input first; an error naming the layer
    /// and both shapes where one does not fit.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        if self.input.is_empty() || self.input.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "a model's input shape {:?} needs every dimension at least 1",
                self.input
            )));
        }
        let mut shapes = vec![self.input.clone()];
        for (i, layer) in self.layers.iter().enumerate() {
            let shape = shapes.last().expect("the input");
            let at = |problem: String| {
                Error::InvalidArgument(format!("layer {i} ({}): {problem}", Spec(layer)))
            };
            let next = match *layer {
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    let &[c, h, w] = &shape[..] else {
                        return Err(at(format!("takes [channels, h, w], not {shape:?}")));
                    };
                    let options = Conv2dOptions {
                        stride,
                        padding,
                        ..Conv2dOptions::default()
                    };
                    let g = Conv2dGeometry::new(
                        &[1, c, h, w],
                        &[out_channels, c, kernel.0, kernel.1],
                        options,
                    )
                    .map_err(|e| at(e.to_string()))?;
                    g.output_shape()[1..].to_vec()
                }
                LayerSpec::MaxPool2d(pool) | LayerSpec::AvgPool2d(pool) => {
                    let &[c, h, w] = &shape[..] else {
                        return Err(at(format!("takes [channels, h, w], not {shape:?}")));
                    };
                    let g =
                        Pool2dGeometry::new(&[1, c, h, w], pool).map_err(|e| at(e.to_string()))?;
                    g.output_shape()[1..].to_vec()
                }
                LayerSpec::Activation(Activation::Prelu) => {
                    return Err(at(
                        "PReLU's slopes are parameters a sequential model does not hold yet; \
                         use an MLP (--model mlp) or another activation"
                            .into(),
                    ));
                }
                LayerSpec::Activation(activation) if !activation.has_gradient() => {
                    return Err(at(format!(
                        "`{}` has no gradient, so a model with it cannot be trained",
                        activation.name()
                    )));
                }
                LayerSpec::Activation(_) => shape.clone(),
                LayerSpec::Dropout(p) => {
                    check_probability(p).map_err(|e| at(e.to_string()))?;
                    shape.clone()
                }
                LayerSpec::Flatten => vec![shape.iter().product()],
                LayerSpec::Linear { outputs } => {
                    if shape.len() != 1 {
                        return Err(at(format!(
                            "takes one row of features, not {shape:?}: put a flatten before it"
                        )));
                    }
                    if outputs == 0 {
                        return Err(at("needs at least one output".into()));
                    }
                    vec![outputs]
                }
            };
            shapes.push(next);
        }
        let last = shapes.last().expect("the input");
        if last.len() != 1
            || !self
                .layers
                .iter()
                .any(|l| matches!(l, LayerSpec::Linear { .. }))
        {
            return Err(Error::InvalidArgument(format!(
                "a classifier ends in one row of logits from a linear layer; `{}` ends in \
                 {last:?}",
                self.describe()
            )));
        }
        Ok(shapes)
    }

    /// The layers as text, the form [`SequentialConfig::parse`] reads.
    pub fn describe(&self) -> String {
        self.layers
            .iter()
            .map(|l| Spec(l).to_string())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Reads layers written as `conv(8,5,pad=2)-relu-maxpool(2)-flatten-dropout(0.5)-
    /// linear(10)`, for an input of `input`: `conv(out, kernel[, stride=s][, pad=p])`,
    /// `maxpool(k[, stride=s][, pad=p])`, `avgpool(…)` alike, `dropout(p)`, `flatten`,
    /// `linear(out)` and any activation's name. The result is checked
    /// ([`SequentialConfig::shapes`]).
    pub fn parse(text: &str, input: &[usize], seed: u64) -> Result<Self> {
        let config = Self {
            input: input.to_vec(),
            layers: parse_layers(text)?,
            seed,
        };
        config.shapes()?;
        Ok(config)
    }
}

/// A layer written as text.
struct Spec<'a>(&'a LayerSpec);

impl fmt::Display for Spec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |(a, b): (usize, usize)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}x{b}")
            }
        };
        let window = |f: &mut fmt::Formatter<'_>, name: &str, pool: &Pool2d| {
            write!(f, "{name}({}", side(pool.kernel))?;
            if pool.stride != pool.kernel {
                write!(f, ",stride={}", side(pool.stride))?;
            }
            if pool.padding != (0, 0) {
                write!(f, ",pad={}", side(pool.padding))?;
            }
            write!(f, ")")
        };
        match self.0 {
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                write!(f, "conv({out_channels},{}", side(*kernel))?;
                if *stride != (1, 1) {
                    write!(f, ",stride={}", side(*stride))?;
                }
                if *padding != (0, 0) {
                    write!(f, ",pad={}", side(*padding))?;
                }
                write!(f, ")")
            }
            LayerSpec::MaxPool2d(pool) => window(f, "maxpool", pool),
            LayerSpec::AvgPool2d(pool) => window(f, "avgpool", pool),
            LayerSpec::Activation(a) => write!(f, "{}", a.name()),
            LayerSpec::Dropout(p) => write!(f, "dropout({p})"),
            LayerSpec::Flatten => write!(f, "flatten"),
            LayerSpec::Linear { outputs } => write!(f, "linear({outputs})"),
        }
    }
}

/// The layers of a description (see [`SequentialConfig::parse`]), unchecked.
fn parse_layers(text: &str) -> Result<Vec<LayerSpec>> {
    // Split at the dashes outside parentheses.
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            '-' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
        .into_iter()
        .map(|item| parse_layer(item.trim()))
        .collect()
}

fn parse_layer(item: &str) -> Result<LayerSpec> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "layer `{item}`: {why} (layers: conv(out,kernel[,stride=s][,pad=p]), \
             maxpool(k[,stride=s][,pad=p]), avgpool(…), dropout(p), flatten, linear(out), or \
             an activation such as relu)"
        ))
    };
    let (name, args) = match item.split_once('(') {
        Some((name, rest)) => {
            let args = rest
                .strip_suffix(')')
                .ok_or_else(|| bad("no closing parenthesis"))?;
            (name.trim(), args.split(',').map(str::trim).collect())
        }
        None => (item, Vec::new()),
    };
    let size = |text: &str| -> Result<(usize, usize)> {
        let number = |t: &str| t.trim().parse::<usize>().map_err(|_| bad("not a size"));
        match text.split_once('x') {
            Some((a, b)) => Ok((number(a)?, number(b)?)),
            None => number(text).map(|n| (n, n)),
        }
    };
    // Positional sizes, then `stride=`/`pad=` options.
    let mut positional = Vec::new();
    let (mut stride, mut padding) = (None, (0, 0));
    for arg in &args {
        match arg.split_once('=') {
            Some(("stride", v)) => stride = Some(size(v)?),
            Some(("pad" | "padding", v)) => padding = size(v)?,
            Some(_) => return Err(bad("unknown option")),
            None => positional.push(*arg),
        }
    }
    let window = |positional: &[&str]| -> Result<Pool2d> {
        let [kernel] = positional else {
            return Err(bad("give the window's size"));
        };
        let kernel = size(kernel)?;
        Ok(Pool2d {
            kernel,
            stride: stride.unwrap_or(kernel),
            padding,
        })
    };
    match name.to_ascii_lowercase().as_str() {
        "conv" | "conv2d" => {
            let [out, kernel] = positional[..] else {
                return Err(bad("give the output channels and the kernel size"));
            };
            Ok(LayerSpec::Conv2d {
                out_channels: out.parse().map_err(|_| bad("not a channel count"))?,
                kernel: size(kernel)?,
                stride: stride.unwrap_or((1, 1)),
                padding,
            })
        }
        "maxpool" | "maxpool2d" => Ok(LayerSpec::MaxPool2d(window(&positional)?)),
        "avgpool" | "avgpool2d" => Ok(LayerSpec::AvgPool2d(window(&positional)?)),
        "dropout" => {
            let [p] = positional[..] else {
                return Err(bad("give the drop probability"));
            };
            Ok(LayerSpec::Dropout(
                p.parse().map_err(|_| bad("not a probability"))?,
            ))
        }
        "flatten" if args.is_empty() => Ok(LayerSpec::Flatten),
        "linear" => {
            let [out] = positional[..] else {
                return Err(bad("give the output width"));
            };
            Ok(LayerSpec::Linear {
                outputs: out.parse().map_err(|_| bad("not a width"))?,
            })
        }
        _ if args.is_empty() => Activation::from_name(name)
            .map(LayerSpec::Activation)
            .map_err(|_| bad("unknown layer")),
        _ => Err(bad("unknown layer")),
    }
}

/// A built layer.
#[derive(Debug)]
pub enum Layer {
    /// A convolution with its parameters.
    Conv2d(Conv2d),
    /// Max pooling.
    MaxPool2d(Pool2d),
    /// Average pooling.
    AvgPool2d(Pool2d),
    /// An activation.
    Activation(Activation),
    /// Dropout with its probability.
    Dropout(f32),
    /// A flatten (a view).
    Flatten,
    /// A linear layer with its parameters.
    Linear(Linear),
}

/// A sequential model on the device.
#[derive(Debug)]
pub struct Sequential {
    config: SequentialConfig,
    shapes: Vec<Vec<usize>>,
    /// The layers, input first.
    pub layers: Vec<Layer>,
}

impl Sequential {
    /// Checks the configuration ([`SequentialConfig::shapes`]), then builds and initialises
    /// the layers in order, as PyTorch does (each weight and bias uniform in ±1/√fan_in).
    pub fn new(device: &Device, config: SequentialConfig) -> Result<Self> {
        let shapes = config.shapes()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut layers = Vec::with_capacity(config.layers.len());
        for (spec, shape) in config.layers.iter().zip(&shapes) {
            layers.push(match *spec {
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => Layer::Conv2d(Conv2d::new(
                    device,
                    shape[0],
                    out_channels,
                    kernel,
                    Conv2dOptions {
                        stride,
                        padding,
                        ..Conv2dOptions::default()
                    },
                    &mut rng,
                )?),
                LayerSpec::MaxPool2d(pool) => Layer::MaxPool2d(pool),
                LayerSpec::AvgPool2d(pool) => Layer::AvgPool2d(pool),
                LayerSpec::Activation(a) => Layer::Activation(a),
                LayerSpec::Dropout(p) => Layer::Dropout(p),
                LayerSpec::Flatten => Layer::Flatten,
                LayerSpec::Linear { outputs } => {
                    Layer::Linear(Linear::new(device, shape[0], outputs, &mut rng)?)
                }
            });
        }
        Ok(Self {
            config,
            shapes,
            layers,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SequentialConfig {
        &self.config
    }

    /// One example's shape after each layer, input first.
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }
}

impl Model for Sequential {
    /// Views the rows in the input's shape, then runs each layer; dropout's salt is its
    /// layer's index, so two dropout layers draw different masks.
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let rows = x.shape().dims().first().copied().unwrap_or(0);
        let mut h = x.reshape([&[rows][..], &self.config.input].concat())?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = match layer {
                Layer::Conv2d(conv) => conv.forward(&h)?,
                Layer::MaxPool2d(pool) => h.max_pool2d(*pool)?,
                Layer::AvgPool2d(pool) => h.avg_pool2d(*pool)?,
                Layer::Activation(a) => h.activation_mode(*a, training)?,
                Layer::Dropout(p) => h.dropout(*p, i as u32, training)?,
                Layer::Flatten => h.flatten()?,
                Layer::Linear(linear) => linear.forward(&h)?,
            };
        }
        Ok(h)
    }

    /// `layers.{j}.weight` and `layers.{j}.bias`, `j` counting the layers with parameters
    /// (as an [`Mlp`](super::Mlp) counts its linear layers).
    fn parameter_vars(&self) -> Vec<(String, &Var)> {
        self.layers
            .iter()
            .filter_map(|layer| match layer {
                Layer::Conv2d(c) => Some([&c.weight, &c.bias]),
                Layer::Linear(l) => Some([&l.weight, &l.bias]),
                _ => None,
            })
            .enumerate()
            .flat_map(|(j, [w, b])| {
                [
                    (format!("layers.{j}.weight"), w),
                    (format!("layers.{j}.bias"), b),
                ]
            })
            .collect()
    }

    fn inputs(&self) -> usize {
        self.config.input.iter().product()
    }

    fn outputs(&self) -> usize {
        self.shapes.last().map_or(0, |s| s.iter().product())
    }

    fn widest(&self) -> usize {
        self.shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .max()
            .unwrap_or(1)
    }

    fn identity(&self) -> Vec<(&'static str, String)> {
        vec![
            ("input", format!("{:?}", self.config.input)),
            ("layers", self.config.describe()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_round_trip_and_shapes_follow_pytorch() {
        let config = SequentialConfig::lenet();
        let text = config.describe();
        assert_eq!(
            SequentialConfig::parse(&text, &[1, 28, 28], 0).unwrap(),
            config
        );
        let shapes = config.shapes().unwrap();
        assert_eq!(shapes[1], [8, 28, 28]);
        assert_eq!(shapes[3], [8, 14, 14]);
        assert_eq!(shapes[4], [16, 10, 10]);
        assert_eq!(shapes[7], [400]);
        assert_eq!(shapes.last().unwrap(), &[10]);
        let odd = "conv(3,3x2,stride=2,pad=1x0)-tanh-avgpool(3,stride=1,pad=1)-dropout(0.25)-\
                   flatten-linear(7)";
        let parsed = SequentialConfig::parse(odd, &[2, 9, 8], 1).unwrap();
        assert_eq!(parsed.describe(), odd);
        assert_eq!(parsed.shapes().unwrap()[1], [3, 5, 4]);
    }

    #[test]
    fn a_layer_that_does_not_fit_is_named_with_both_shapes() {
        let error = |text: &str, input: &[usize]| {
            SequentialConfig::parse(text, input, 0)
                .unwrap_err()
                .to_string()
        };
        let e = error("conv(4,7)-flatten-linear(10)", &[1, 5, 5]);
        assert!(
            e.contains("layer 0 (conv(4,7))") && e.contains("[1, 1, 5, 5]"),
            "{e}"
        );
        let e = error("conv(4,3)-linear(10)", &[1, 5, 5]);
        assert!(e.contains("layer 1") && e.contains("flatten"), "{e}");
        let e = error("flatten-linear(10)-maxpool(2)", &[1, 4, 4]);
        assert!(e.contains("layer 2") && e.contains("[10]"), "{e}");
        let e = error("flatten-dropout(1)-linear(3)", &[4]);
        assert!(e.contains("[0, 1)"), "{e}");
        let e = error("flatten-prelu-linear(3)", &[4]);
        assert!(e.contains("PReLU"), "{e}");
        let e = error("conv(2,3)-maxpool", &[1, 5, 5]);
        assert!(e.contains("maxpool") && e.contains("window"), "{e}");
        let e = error("conv(2,3)-relu", &[1, 5, 5]);
        assert!(e.contains("logits"), "{e}");
        let e = error("banana", &[4]);
        assert!(e.contains("unknown layer"), "{e}");
    }
}
