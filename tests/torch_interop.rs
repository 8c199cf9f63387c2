//! PyTorch state_dicts both ways, checked by Python (numpy and safetensors, as `.ci/run`
//! installs them; `tests/python/state_dict.py`): the exported files hold exactly the names and
//! `[out, in]` shapes `load_state_dict(strict=True)` wants for the lecture's `Net` and for an
//! `nn.Sequential`, and Python's forward pass on them gives the engine's logits; a state_dict
//! written by Python loads with the `mnist` example's `--init-from` and evaluates to Python's
//! accuracy.
//!
//! Without a Python that has numpy and safetensors the tests say so and pass, unless
//! `WGSL_NN_PYTHON` names one (CI sets it): then a missing module is a failure.
//!
//! The bound: Python sums in float64, the engine in f32 with fma, so for the first layer's
//! pre-activation z₁ = x·W₁ + b₁ each value is within γ_{K+2}·(Σ|xᵢ·wᵢⱼ| + |b₁ⱼ|) of the exact
//! one (K = 784); ReLU is 1-Lipschitz, so h₁ inherits that error e₁; the logits' error is
//! γ_{H+2}·(Σ|h₁ⱼ·w₂ⱼₖ| + |b₂ₖ|) + Σ|w₂ⱼₖ|·e₁ⱼ. A transposed weight or a swapped name gives
//! logits off by far more (the test is on a trained model whose logits span several units).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fresh_gpu, mnist};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wgsl_nn::autograd::Var;
use wgsl_nn::data::gpu::Normalization;
use wgsl_nn::data::mnist::PIXELS;
use wgsl_nn::nn::{
    CheckpointFile, Mlp, Model, Sequential, SequentialConfig, TorchNaming, Trainer, TrainerConfig,
    save_state_dict,
};
use wgsl_nn::optim::OptimizerConfig;

const F32_EPS: f64 = f32::EPSILON as f64 / 2.0;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * F32_EPS;
    nu / (1.0 - nu)
}

/// A Python with numpy and safetensors, or `None` (then the test is skipped, unless
/// `WGSL_NN_PYTHON` was set, which makes a missing module a failure).
fn python() -> Option<String> {
    let (python, required) = match std::env::var("WGSL_NN_PYTHON") {
        Ok(path) => (path, true),
        Err(_) => ("python3".to_string(), false),
    };
    let works = Command::new(&python)
        .args(["-c", "import numpy, safetensors.numpy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            !required,
            "WGSL_NN_PYTHON={python} lacks numpy or safetensors"
        );
        eprintln!("skipped: no python3 with numpy and safetensors (pip install numpy safetensors)");
        return None;
    }
    Some(python)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/state_dict.py")
}

/// Runs the script; its stdout as JSON.
fn run_python(python: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python)
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The lecture's MLP after one epoch of Adam on 6,400 images: logits of several units.
fn trained(device: &wgsl_nn::Device) -> Trainer {
    let model = Mlp::new(device, wgsl_nn::nn::MlpConfig::lecture()).unwrap();
    let config = TrainerConfig {
        optimizer: OptimizerConfig::adam(2e-3),
        ..TrainerConfig::lecture()
    };
    let mut trainer = Trainer::new(model, common::dataset(device, true, 6400), config).unwrap();
    trainer.train_epoch(|_, _, _| {}).unwrap();
    trainer
}

/// The first `n` test images normalised as in training (f32 rows), and their labels.
fn test_inputs(n: usize) -> (Vec<f32>, Vec<u8>) {
    let data = mnist();
    let Normalization { mean, std } = Normalization::default();
    let x = data.test_images[..n * PIXELS]
        .iter()
        .map(|&b| (f32::from(b) / 255.0 - mean) / std)
        .collect();
    (x, data.test_labels[..n].to_vec())
}

fn write_f32s(path: &Path, values: &[f32]) {
    std::fs::write(path, bytemuck::cast_slice(values)).unwrap();
}

/// Each logit's bound (module doc), from the model's weights on the host.
fn logit_bounds(model: &Mlp, x: &[f32], rows: usize) -> Vec<f64> {
    let host = |v: &Var| -> Vec<f64> {
        v.value()
            .to_vec()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let (l1, l2) = (&model.layers[0], &model.layers[1]);
    let (w1, b1, w2, b2) = (
        host(&l1.weight),
        host(&l1.bias),
        host(&l2.weight),
        host(&l2.bias),
    );
    let (k, h, c) = (l1.inputs(), l1.outputs(), l2.outputs());
    let mut bounds = Vec::with_capacity(rows * c);
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        let mut hidden = vec![0.0f64; h];
        let mut e1 = vec![0.0f64; h];
        for j in 0..h {
            let (mut z, mut magnitude) = (b1[j], b1[j].abs());
            for i in 0..k {
                let term = f64::from(xr[i]) * w1[i * h + j];
                z += term;
                magnitude += term.abs();
            }
            hidden[j] = z.max(0.0);
            e1[j] = gamma(k + 2) * magnitude;
        }
        for o in 0..c {
            let mut magnitude = b2[o].abs();
            let mut carried = 0.0;
            for j in 0..h {
                magnitude += (hidden[j] * w2[j * c + o]).abs();
                carried += w2[j * c + o].abs() * e1[j];
            }
            bounds.push(gamma(h + 2) * magnitude + carried);
        }
    }
    bounds
}

/// Asserts each of the engine's logits is within its bound of Python's; the worst error as a
/// fraction of its bound.
fn assert_within(ours: &[f32], theirs: &[f64], bounds: &[f64], what: &str) -> f64 {
    assert_eq!(theirs.len(), ours.len(), "{what}");
    let mut worst = 0.0f64;
    for (i, ((&ours, &py), &bound)) in ours.iter().zip(theirs).zip(bounds).enumerate() {
        let error = (f64::from(ours) - py).abs();
        assert!(
            error <= bound,
            "{what}: logit {i} is {ours} here and {py} in Python (bound {bound:e})"
        );
        worst = worst.max(error / bound);
    }
    worst
}

#[test]
fn exported_state_dicts_load_strictly_in_python_and_give_the_engines_logits() {
    let Some(python) = python() else { return };
    let device = fresh_gpu();
    let trainer = trained(&device);
    let model = trainer.model();
    let rows = 200;
    let (x, _) = test_inputs(rows);
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.f32");
    write_f32s(&inputs, &x);
    let input = Var::from_slice(&device, &x, [rows, PIXELS], false).unwrap();
    let logits = model
        .forward(&input, false)
        .unwrap()
        .value()
        .to_vec()
        .unwrap();
    let bounds = logit_bounds(model, &x, rows);
    let spread = logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        spread > 2.0,
        "a trained model's logits span units, not {spread}"
    );

    for naming in TorchNaming::ALL {
        let file = dir.path().join(format!("{}.safetensors", naming.name()));
        save_state_dict(model, &file, naming).unwrap();
        let answer = run_python(
            &python,
            &[
                "forward",
                file.to_str().unwrap(),
                naming.name(),
                "784,128,10",
                inputs.to_str().unwrap(),
            ],
        );
        let theirs: Vec<f64> = answer["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let worst = assert_within(&logits, &theirs, &bounds, &format!("{naming:?}"));
        eprintln!("{naming:?}: worst error {worst:.3} of its bound");
    }
}

#[test]
fn a_state_dict_written_by_python_evaluates_to_pythons_accuracy() {
    let Some(python) = python() else { return };
    let device = fresh_gpu();
    let trainer = trained(&device);
    let rows = 1000;
    let (x, labels) = test_inputs(rows);
    let dir = tempfile::tempdir().unwrap();
    let (inputs, label_file) = (dir.path().join("inputs.f32"), dir.path().join("labels.u8"));
    write_f32s(&inputs, &x);
    std::fs::write(&label_file, &labels).unwrap();
    let exported = dir.path().join("net.safetensors");
    save_state_dict(trainer.model(), &exported, TorchNaming::Net).unwrap();
    let written = dir.path().join("from_python.safetensors");
    let answer = run_python(
        &python,
        &[
            "rewrite",
            exported.to_str().unwrap(),
            written.to_str().unwrap(),
            "sequential",
            "784,128,10",
            inputs.to_str().unwrap(),
            label_file.to_str().unwrap(),
        ],
    );
    let python_correct = answer["correct"].as_u64().unwrap() as i64;
    // Rows whose two best logits are closer than the largest logit bound of this model (~1e-5
    // at these shapes; 1e-4 leaves room) may rank differently in f32 and float64.
    let near_ties = answer["margins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.as_f64().unwrap() < 1e-4)
        .count() as i64;

    let out = dir.path().join("eval");
    let (data_dir, _) = wgsl_nn::data::mnist::resolve_data_dir(None);
    let output = Command::new(common::example("mnist"))
        .args(["--init-from", written.to_str().unwrap(), "--epochs", "0"])
        .args(["--test-limit", "1000", "--train-limit", "640", "--out"])
        .arg(&out)
        .env("MNIST_DIR", data_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("sequential"),
        "names the file's naming: {text}"
    );
    let accuracy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .unwrap_or_else(|| panic!("no test accuracy in:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    let engine_correct = (accuracy * rows as f64).round() as i64;
    assert!(
        (engine_correct - python_correct).abs() <= near_ties,
        "the engine gets {engine_correct} of {rows} right, Python {python_correct} \
         ({near_ties} near ties)"
    );
    assert!(
        python_correct > 800,
        "a trained model: {python_correct} of {rows}"
    );
}

/// The engine's logits for `rows` examples of `x` (evaluation mode).
fn sequential_logits(
    device: &wgsl_nn::Device,
    model: &Sequential,
    x: &[f32],
    rows: usize,
) -> Vec<f32> {
    let input = Var::from_slice(device, x, [rows, x.len() / rows], false).unwrap();
    model
        .forward(&input, false)
        .unwrap()
        .value()
        .to_vec()
        .unwrap()
}

/// A CNN's state_dict is PyTorch's `nn.Sequential` of the same layers: Python loads it
/// strictly and its float64 forward pass gives the engine's logits, within the bound it
/// carries through the layers (`forward_sequential` in the script: per affine layer
/// γ_{K+2}·(|W|·|h| + |b|) plus |W| times the inputs' errors; pooling and ReLU carry them).
/// LeNet on MNIST, and a model of odd shapes: 3 channels, a 3×2 kernel, strides, padding,
/// average pooling that counts its padding, dropout (the identity here).
#[test]
fn cnn_state_dicts_load_strictly_in_python_and_give_the_engines_logits() {
    let Some(python) = python() else { return };
    let device = fresh_gpu();
    let (mnist_x, _) = test_inputs(32);
    let mut rng = StdRng::seed_from_u64(7);
    let odd_x: Vec<f32> = (0..5 * 3 * 11 * 9)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let odd = SequentialConfig::parse(
        "conv(5,3,pad=1)-relu-maxpool(2)-conv(4,3x2,stride=2,pad=1)-relu-\
         avgpool(2,stride=1,pad=1)-dropout(0.3)-flatten-linear(7)-relu-linear(3)",
        &[3, 11, 9],
        5,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (config, x) in [(SequentialConfig::lenet(), mnist_x), (odd, odd_x)] {
        let shape = config.input.clone();
        let rows = x.len() / shape.iter().product::<usize>();
        let model = Sequential::new(&device, config).unwrap();
        let logits = sequential_logits(&device, &model, &x, rows);
        let (inputs, file) = (dir.path().join("x.f32"), dir.path().join("cnn.safetensors"));
        write_f32s(&inputs, &x);
        model.to_state_dict().unwrap().write(&file).unwrap();
        let shape_text = shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let description = model.config().describe();
        let forward = |mutation: Option<&str>| -> (Vec<f64>, Vec<f64>) {
            let mut args = vec![
                "forward_sequential",
                file.to_str().unwrap(),
                &description,
                &shape_text,
                inputs.to_str().unwrap(),
            ];
            args.extend(mutation);
            let answer = run_python(&python, &args);
            let flat = |key: &str| -> Vec<f64> {
                answer[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                    .collect()
            };
            (flat("logits"), flat("bounds"))
        };
        let (theirs, bounds) = forward(None);
        let worst = assert_within(&logits, &theirs, &bounds, &description);
        // The bound is a worst case through five layers, so it is shown to be tight enough: a
        // kernel read with its height and width swapped gives logits outside it.
        let (mistaken, _) = forward(Some("swap_kernel_axes"));
        let caught = logits
            .iter()
            .zip(&mistaken)
            .zip(&bounds)
            .filter(|((ours, py), bound)| (f64::from(**ours) - **py).abs() > **bound)
            .count();
        assert!(
            caught > 0,
            "{description}: a swapped kernel layout stays within the bounds"
        );
        eprintln!(
            "{description}: worst error {worst:.2e} of its bound; the swapped layout leaves \
             {caught} of {} logits outside",
            logits.len()
        );
    }
}

/// Both ways: a CNN's state_dict loads into another CNN of the same layers bit for bit, with
/// the names PyTorch's `nn.Sequential` gives them; a file with a missing or stray name, a
/// weight of the wrong shape, or one of the engine's own checkpoints is refused with an error
/// naming it, and changes nothing.
#[test]
fn a_cnn_state_dict_round_trips_and_a_wrong_one_changes_nothing() {
    let device = fresh_gpu();
    let config = |seed| SequentialConfig {
        seed,
        ..SequentialConfig::lenet()
    };
    let (from, into) = (
        Sequential::new(&device, config(1)).unwrap(),
        Sequential::new(&device, config(2)).unwrap(),
    );
    let values = |model: &Sequential| -> Vec<Vec<f32>> {
        model
            .parameters()
            .into_iter()
            .map(|(_, t)| t.to_vec().unwrap())
            .collect()
    };
    let file = from.to_state_dict().unwrap();
    let names: Vec<&str> = file.tensors.keys().map(String::as_str).collect();
    let mut expected = vec![
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "7.weight",
        "7.bias",
        "9.weight",
        "9.bias",
        "11.weight",
        "11.bias",
    ];
    expected.sort_unstable();
    assert_eq!(names, expected, "nn.Sequential's module indices");
    assert_eq!(file.tensors["0.weight"].shape, [8, 1, 5, 5]);
    assert_eq!(file.tensors["7.weight"].shape, [120, 400]);
    assert_eq!(file.metadata["format"], "pt");

    let path = Path::new("lenet.safetensors");
    let before = values(&into);
    let refused = |broken: &CheckpointFile, needle: &str| {
        let error = into.load_state_dict(broken, path).unwrap_err().to_string();
        assert!(error.contains(needle), "{needle:?} in: {error}");
        assert!(
            error.contains("lenet.safetensors"),
            "names the file: {error}"
        );
        assert_eq!(values(&into), before, "a refused file changes nothing");
    };
    let mut missing = file.clone();
    missing.tensors.remove("9.bias");
    refused(&missing, "9.bias");
    let mut stray = file.clone();
    let extra = stray.tensors["9.bias"].clone();
    stray.tensors.insert("10.bias".into(), extra);
    refused(&stray, "10.bias");
    let mut transposed = file.clone();
    transposed.tensors.get_mut("7.weight").unwrap().shape = vec![400, 120];
    refused(&transposed, "[120, 400]");
    let mut engine = CheckpointFile::default();
    let weight = file.tensors["0.weight"].clone();
    engine.tensors.insert("layers.0.weight".into(), weight);
    refused(&engine, "engine's own checkpoints");

    into.load_state_dict(&file, path).unwrap();
    assert_eq!(values(&into), values(&from), "the same bits");
}
