//! Asks a trained model about image files: `predict MODEL IMAGE...`.
//!
//! MODEL is the `mnist` example's `model.safetensors` or a PyTorch state_dict of an MLP in
//! safetensors (the lecture's `Net` or an `nn.Sequential`; `model_torch*.safetensors`, or one
//! saved by Python). Each IMAGE (PNG or JPEG, any size and colour) is made MNIST-like as the
//! web page does with a drawing (`wgsl_nn::data::digit`): grey, inverted when its background
//! is light, the ink's bounding box scaled into a 20×20 box and centred by its centre of mass
//! in 28×28. All images run through the model on the GPU in one batch; per file the predicted
//! digit and the three likeliest classes are printed (`--json`: one JSON object per line).
//! A file that cannot be answered gets its error and the others are still answered; the exit
//! status is 1 when any failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use wgsl_nn::Device;
use wgsl_nn::activation::Activation;
use wgsl_nn::data::digit;
use wgsl_nn::data::gpu::Normalization;
use wgsl_nn::data::mnist::{PIXELS, SIDE};
use wgsl_nn::nn::{CheckpointFile, Mlp, MlpConfig, Model, StateDictShape};

/// Classifies PNG or JPEG images of handwritten digits with a trained model on the GPU.
#[derive(Debug, Parser)]
struct Args {
    /// The model: the mnist example's model.safetensors, or a PyTorch state_dict (safetensors).
    model: PathBuf,
    /// PNG or JPEG files, any size and colour.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON object per line and file instead of text.
    #[arg(long)]
    json: bool,
    /// The activation between layers, for a state_dict (which does not record it; the
    /// mnist example's model files do) [default: relu].
    #[arg(long)]
    activation: Option<String>,
    /// Input normalisation (x − mean) / std the model was trained with, for a state_dict
    /// [default: the lecture's 0.5, 0.5].
    #[arg(long, num_args = 2, value_names = ["MEAN", "STD"])]
    normalize: Option<Vec<f32>>,
}

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Answers every file; `Ok(false)` when some could not be answered.
fn run(args: &Args) -> Result<bool, Failure> {
    // The model first: a bad model file fails before any image is read.
    let file = CheckpointFile::read(&args.model)?;
    let device = Device::new()?;
    let (model, normalization) = load_model(&device, &file, args)?;

    let mut inputs = Vec::new();
    let mut prepared = Vec::new();
    for path in &args.images {
        match mnist_input(path) {
            Ok(ink) => {
                inputs.extend_from_slice(&ink);
                prepared.push(Ok(()));
            }
            Err(problem) => prepared.push(Err(problem)),
        }
    }
    let mut answers = if inputs.is_empty() {
        Vec::new()
    } else {
        model.predict(&inputs, normalization)?
    }
    .into_iter();
    let mut all = true;
    for (path, outcome) in args.images.iter().zip(prepared) {
        let shown = path.display().to_string();
        match outcome.map(|()| answers.next().expect("one answer per image")) {
            Ok(probabilities) => {
                let top = top_three(&probabilities);
                if args.json {
                    let top: Vec<_> = top
                        .iter()
                        .map(|&(d, p)| serde_json::json!({"digit": d, "probability": p}))
                        .collect();
                    let digit = top[0]["digit"].clone();
                    let line = serde_json::json!({"file": shown, "digit": digit, "top3": top});
                    println!("{line}");
                } else {
                    let listed: Vec<String> = top
                        .iter()
                        .map(|(d, p)| format!("{d} {:.1} %", 100.0 * p))
                        .collect();
                    println!("{shown}: {}  ({})", top[0].0, listed.join(", "));
                }
            }
            Err(problem) => {
                all = false;
                if args.json {
                    println!("{}", serde_json::json!({"file": shown, "error": problem}));
                } else {
                    eprintln!("{shown}: {problem}");
                }
            }
        }
    }
    Ok(all)
}

/// The three likeliest classes, likeliest first (ties by the lower class).
fn top_three(probabilities: &[f32]) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(3);
    ranked
}

/// The model the file holds, with its weights, and the normalisation its inputs need.
fn load_model(
    device: &Device,
    file: &CheckpointFile,
    args: &Args,
) -> Result<(Mlp, Normalization), Failure> {
    let path = &args.model;
    let kind_error = |why: String| -> Failure {
        format!(
            "{}: {why}; give the mnist example's model.safetensors or a PyTorch state_dict \
             of an MLP (fc1.weight … or 0.weight …)",
            path.display()
        )
        .into()
    };
    let engine = file.tensors.contains_key("layers.0.weight");
    let (widths, file_activation) = if engine {
        if file.training_position().is_some() {
            eprintln!(
                "note: {} is a training checkpoint; using its model's weights",
                path.display()
            );
        }
        let widths = file
            .mlp_widths(path)
            .map_err(|e| kind_error(e.to_string()))?;
        let activation = file.metadata.get("activation").cloned();
        (widths, activation)
    } else {
        let shape = StateDictShape::of(file, path).map_err(|e| kind_error(e.to_string()))?;
        let activation = shape.prelu.then(|| "prelu".to_string());
        (shape.widths, activation)
    };
    if widths.first() != Some(&PIXELS) {
        return Err(kind_error(format!(
            "its first layer takes {:?} inputs, not an MNIST image's {PIXELS}",
            widths.first()
        )));
    }
    let name = match (&args.activation, &file_activation) {
        (Some(flag), Some(saved)) if flag != saved => {
            return Err(format!(
                "--activation {flag}: {} was trained with {saved}; leave the flag out",
                path.display()
            )
            .into());
        }
        (Some(flag), _) => flag.clone(),
        (None, Some(saved)) => saved.clone(),
        (None, None) => "relu".to_string(),
    };
    let activation = Activation::from_name(&name).map_err(|e| format!("--activation: {e}"))?;
    let model = Mlp::new(
        device,
        MlpConfig {
            widths,
            activation,
            ..MlpConfig::lecture()
        },
    )?;
    if engine {
        model.load_parameters(file, path)?;
    } else {
        model.load_state_dict(file, path)?;
    }
    let normalization = match (&args.normalize, file.metadata.get("normalization")) {
        (Some(pair), _) => Normalization {
            mean: pair[0],
            std: pair[1],
        },
        (None, Some(saved)) => parse_normalization(saved)
            .ok_or_else(|| kind_error(format!("its normalization {saved:?} is not MEAN,STD")))?,
        (None, None) => Normalization::default(),
    };
    if !(normalization.std > 0.0 && normalization.mean.is_finite()) {
        return Err(format!(
            "--normalize {} {}: the std must be positive",
            normalization.mean, normalization.std
        )
        .into());
    }
    Ok((model, normalization))
}

/// `"0.5,0.5"` as a normalisation.
fn parse_normalization(text: &str) -> Option<Normalization> {
    let (mean, std) = text.split_once(',')?;
    Some(Normalization {
        mean: mean.trim().parse().ok()?,
        std: std.trim().parse().ok()?,
    })
}

/// The file as an MNIST input (784 ink values in [0, 1]), or what is wrong with it.
fn mnist_input(path: &Path) -> Result<Vec<f32>, String> {
    let image = image::open(path).map_err(|e| match e {
        image::ImageError::IoError(io) => format!("cannot read it ({io})"),
        image::ImageError::Unsupported(_) | image::ImageError::Decoding(_) => {
            format!("is not a PNG or JPEG image this example reads ({e})")
        }
        other => format!("cannot decode it ({other})"),
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    // Transparent pixels count as white paper, as on the page's drawing pad.
    let rgba = image.to_rgba32f();
    let grey: Vec<f32> = rgba
        .pixels()
        .map(|p| {
            let [r, g, b, a] = p.0;
            let luma = 0.299 * r + 0.587 * g + 0.114 * b;
            luma * a + (1.0 - a)
        })
        .collect();
    let ink = ink_of(&grey, width, height)
        .ok_or("is blank (one colour throughout): there is no digit to classify")?;
    let input = digit::mnist_like(&ink, width, height);
    if input.iter().all(|&v| v == 0.0) {
        return Err("has no ink darker than its paper: there is no digit to classify".into());
    }
    debug_assert_eq!(input.len(), SIDE * SIDE);
    Ok(input)
}

/// Ink in [0, 1] from grey levels (0 black, 1 white): the paper's level is the median of the
/// border pixels; on light paper the ink is darker, on dark paper lighter, scaled so the
/// strongest ink is 1. `None` when the image has one level throughout.
fn ink_of(grey: &[f32], width: usize, height: usize) -> Option<Vec<f32>> {
    let mut border: Vec<f32> = (0..width)
        .flat_map(|x| [grey[x], grey[(height - 1) * width + x]])
        .chain((0..height).flat_map(|y| [grey[y * width], grey[y * width + width - 1]]))
        .collect();
    border.sort_by(f32::total_cmp);
    let paper = border[border.len() / 2];
    let light = paper > 0.5;
    let strength: Vec<f32> = grey
        .iter()
        .map(|&g| if light { paper - g } else { g - paper }.max(0.0))
        .collect();
    let strongest = strength.iter().copied().fold(0.0f32, f32::max);
    (strongest > 1.0 / 255.0).then(|| strength.iter().map(|s| s / strongest).collect())
}
