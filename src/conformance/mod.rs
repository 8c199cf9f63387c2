//! The kernels check: every WGSL kernel family run on a device against the CPU oracle, held to
//! the bounds of [`cpu::tolerance`] (the same the integration tests use), one row per case.
//!
//! It exists for adapters the test suite never runs on: the page under `examples/web/` runs
//! it in the browser (Chromium's Dawn and Tint, a second WGSL compiler, with the oracle
//! compiled into the same wasm), and `tests/conformance.rs` runs it natively so it cannot rot.
//! Everything is `async` and reads back without blocking, so it runs on the browser's thread.
//!
//! A kernel the device cannot run (the broadcast family without subgroups of eight) is
//! reported as skipped, never as passed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::activation::{Activation, ActivationState, activation_backward, activation_forward};
use crate::cpu::{self, ActivationParams, CpuLinear, tolerance};
use crate::data::gpu::{GpuDataset, Normalization};
use crate::loss::{CrossEntropyOptions, Labels, Reduction, softmax, softmax_cross_entropy};
use crate::matmul::{MatmulDims, MatmulForm, MatmulKernel};
use crate::nn::{Mlp, MlpConfig, Trainer, TrainerConfig, epoch_order};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::{Device, Tensor};

mod products;
mod spatial;
use products::{CONV_CASES, MATMUL_SHAPES, conv_case, matmul_case};
use spatial::{dropout_case, pool_case, pool_cases};

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Within its bound; the largest error seen.
    Passed {
        /// max |gpu − oracle| over the case's outputs.
        worst_error: f64,
    },
    /// Outside its bound, or the engine returned an error: what went wrong.
    Failed(String),
    /// The device cannot run this kernel (and would never be given it).
    Skipped(String),
}

/// One case of the kernels check.
#[derive(Clone, Debug)]
pub struct CheckRow {
    /// The kernel family: `matmul/Broadcast`, `activation`, `softmax`, ….
    pub family: String,
    /// The case: form, shape, variant.
    pub case: String,
    /// What happened.
    pub outcome: Outcome,
}

impl CheckRow {
    /// Whether the case failed (a skipped case did not).
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// What a whole check came to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Cases run (skipped ones included).
    pub rows: usize,
    /// Cases outside their bound or in error.
    pub failed: usize,
    /// Cases the device cannot run.
    pub skipped: usize,
    /// The largest error of the cases that passed.
    pub worst_error: f64,
}

impl Summary {
    /// Counts `rows`.
    pub fn of(rows: &[CheckRow]) -> Self {
        let mut summary = Summary {
            rows: rows.len(),
            failed: 0,
            skipped: 0,
            worst_error: 0.0,
        };
        for row in rows {
            match row.outcome {
                Outcome::Passed { worst_error } => {
                    summary.worst_error = summary.worst_error.max(worst_error)
                }
                Outcome::Failed(_) => summary.failed += 1,
                Outcome::Skipped(_) => summary.skipped += 1,
            }
        }
        summary
    }
}

type CaseResult = std::result::Result<f64, String>;

fn err(e: crate::Error) -> String {
    e.to_string()
}

fn random(rng: &mut ChaCha8Rng, len: usize, spread: f32) -> Vec<f32> {
    (0..len)
        .map(|_| rng.random_range(-spread..spread))
        .collect()
}

/// Runs every case on `device`, calling `on_row` as each finishes (a page updates its table
/// there), and returns all rows.
pub async fn run(device: &Device, mut on_row: impl FnMut(&CheckRow)) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    let mut push = |family: String, case: String, outcome: Outcome| {
        let row = CheckRow {
            family,
            case,
            outcome,
        };
        on_row(&row);
        rows.push(row);
    };
    let done = |result: CaseResult| match result {
        Ok(worst_error) => Outcome::Passed { worst_error },
        Err(message) => Outcome::Failed(message),
    };

    for kernel in [
        MatmulKernel::Blocked,
        MatmulKernel::Tiled,
        MatmulKernel::Texture,
        MatmulKernel::Vector,
        MatmulKernel::Broadcast,
        MatmulKernel::Staged,
    ] {
        let family = format!("matmul/{kernel:?}");
        if kernel == MatmulKernel::Broadcast && !crate::matmul::broadcast::available(device) {
            let why = match device.subgroup_min_size() {
                Some(size) => format!("subgroups of {size}; the family needs at least 8"),
                None => "no subgroup operations".to_string(),
            };
            push(family, "all shapes".into(), Outcome::Skipped(why));
            continue;
        }
        for form in MatmulForm::ALL {
            for (i, &(m, k, n)) in MATMUL_SHAPES.iter().enumerate() {
                if !kernel.supports(form, MatmulDims { m, k, n }) {
                    continue;
                }
                // Only A·B takes a bias in every family.
                let bias = i % 2 == 1 && form == MatmulForm::AB;
                let case = format!("{form:?} {m}×{k}×{n}{}", if bias { " +bias" } else { "" });
                let result = matmul_case(device, kernel, form, (m, k, n), bias, i as u64).await;
                push(family.clone(), case, result);
            }
        }
    }

    for kernel in [
        MatmulKernel::Blocked,
        MatmulKernel::Tiled,
        MatmulKernel::Broadcast,
    ] {
        for case in &CONV_CASES {
            let (input, weight, stride, padding) = *case;
            let name = format!("{input:?} * {weight:?} stride {stride:?} padding {padding:?}");
            let result = conv_case(device, kernel, case).await;
            push(format!("conv2d/{kernel:?}"), name, done(result));
        }
    }

    for (shape, window) in pool_cases() {
        let name = format!(
            "{shape:?} window {:?} stride {:?}",
            window.kernel, window.stride
        );
        push(
            "pool2d".into(),
            name,
            done(pool_case(device, shape, window).await),
        );
    }
    for (len, p) in [(1, 0.5), (1000, 0.1), (4099, 0.75)] {
        let case = format!("{len} values, p {p}");
        push(
            "dropout".into(),
            case,
            done(dropout_case(device, len, p).await),
        );
    }

    for activation in Activation::ALL {
        for training in [false, true] {
            if training && !matches!(activation, Activation::Rrelu { .. }) {
                continue;
            }
            for &(rows_n, cols) in &[(1, 1), (7, 13), (300, 37)] {
                let mode = if training { " training" } else { "" };
                let case = format!("{} {rows_n}×{cols}{mode}", activation.name());
                let result = activation_case(device, activation, training, rows_n, cols).await;
                push("activation".into(), case, done(result));
            }
        }
    }

    for &(rows_n, classes) in &[(1, 1), (64, 10), (300, 37)] {
        let result = cross_entropy_case(device, rows_n, classes).await;
        push(
            "softmax cross-entropy".into(),
            format!("{rows_n}×{classes} mean"),
            done(result),
        );
        for log in [false, true] {
            let result = softmax_case(device, rows_n, classes, log).await;
            let name = if log { "log-softmax" } else { "softmax" };
            push(name.into(), format!("{rows_n}×{classes}"), done(result));
        }
    }

    for &(rows_n, cols) in &[(1, 1), (7, 13), (300, 37)] {
        let result = reduce_case(device, rows_n, cols).await;
        push("reduce".into(), format!("{rows_n}×{cols}"), done(result));
        let result = argmax_case(device, rows_n, cols).await;
        push(
            "metrics".into(),
            format!("argmax {rows_n}×{cols}"),
            done(result),
        );
    }

    for config in [
        OptimizerConfig::sgd(0.1),
        OptimizerConfig::momentum(0.05, 0.9),
        OptimizerConfig::adam(0.01),
    ] {
        let result = optimizer_case(device, config).await;
        push("optimizer".into(), format!("{config:?}"), done(result));
    }

    let result = training_case(device).await;
    push(
        "captured step".into(),
        "784→128→ReLU→10, momentum, 10 steps vs the oracle's graph".into(),
        done(result),
    );
    rows
}

async fn activation_case(
    device: &Device,
    activation: Activation,
    training: bool,
    rows: usize,
    cols: usize,
) -> CaseResult {
    let mut rng = ChaCha8Rng::seed_from_u64((rows * 31 + cols) as u64);
    let len = rows * cols;
    // The kinks and signed zeros first, then uniform in [-6, 6).
    let special = [
        0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 1.0, -1.0, 30.0, -30.0,
    ];
    let x_host: Vec<f32> = (0..len)
        .map(|i| {
            special
                .get(i)
                .copied()
                .unwrap_or_else(|| rng.random_range(-6.0f32..6.0))
        })
        .collect();
    let dy_host = random(&mut rng, len, 1.0);
    let slopes_host: Vec<f32> = (0..cols).map(|_| rng.random_range(0.0f32..0.5)).collect();
    let slopes = Tensor::from_slice(device, &slopes_host, [cols]).map_err(err)?;
    let x = Tensor::from_slice(device, &x_host, [rows, cols]).map_err(err)?;
    let dy = Tensor::from_slice(device, &dy_host, [rows, cols]).map_err(err)?;
    let state = ActivationState {
        prelu_slopes: (activation == Activation::Prelu).then_some(&slopes),
        training,
        seed: 7,
        step: 3,
    };
    let params = ActivationParams {
        prelu_slopes: (activation == Activation::Prelu).then_some(&slopes_host[..]),
        training,
        seed: 7,
        step: 3,
        features: cols,
    };
    let y = activation_forward(&x, activation, &state).map_err(err)?;
    let y = y.to_vec_async().await.map_err(err)?;
    let reference = cpu::activation_forward(activation, &x_host, &params);
    let (abs, rel) = tolerance::activation(activation, training);
    let mut worst =
        tolerance::check_relative(&y, &reference, abs, rel).map_err(|e| format!("forward: {e}"))?;
    if activation.has_gradient() {
        let dx = activation_backward(&x, &dy, activation, &state).map_err(err)?;
        let dx = dx.to_vec_async().await.map_err(err)?;
        let reference = cpu::activation_backward(activation, &x_host, &dy_host, &params)
            .ok_or("the oracle has no derivative")?;
        let (abs, rel) = tolerance::activation_backward(activation, training);
        let backward = tolerance::check_relative(&dx, &reference, abs, rel)
            .map_err(|e| format!("backward: {e}"))?;
        worst = worst.max(backward);
    }
    Ok(worst)
}

fn logits(rows: usize, classes: usize, seed: u64) -> Vec<f32> {
    random(&mut ChaCha8Rng::seed_from_u64(seed), rows * classes, 20.0)
}

async fn cross_entropy_case(device: &Device, rows: usize, classes: usize) -> CaseResult {
    let z = logits(rows, classes, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let labels_host: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let logits_t = Tensor::from_slice(device, &z, [rows, classes]).map_err(err)?;
    let labels = Labels::new(device, &labels_host, classes).map_err(err)?;
    let options = CrossEntropyOptions {
        weights: None,
        reduction: Reduction::Mean,
        accumulate: false,
    };
    let (loss, dlogits) = softmax_cross_entropy(&logits_t, &labels, &options).map_err(err)?;
    let loss = loss.to_vec_async().await.map_err(err)?;
    let dlogits = dlogits.to_vec_async().await.map_err(err)?;
    let (ref_loss, ref_grad) =
        cpu::softmax_cross_entropy(&z, &labels_host, classes, None, Reduction::Mean);
    let (abs, rel) = tolerance::mean_cross_entropy(20.0, rows);
    let loss_error =
        tolerance::check_relative(&loss, &[ref_loss as f32], abs + rel * ref_loss.abs(), 0.0)
            .map_err(|e| format!("loss: {e}"))?;
    let (abs, rel) = tolerance::loss_gradient(1.0 / rows as f64);
    let grad_error = tolerance::check_relative(&dlogits, &ref_grad, abs, rel)
        .map_err(|e| format!("gradient: {e}"))?;
    Ok(loss_error.max(grad_error))
}

async fn softmax_case(device: &Device, rows: usize, cols: usize, log: bool) -> CaseResult {
    let z = logits(rows, cols, 3);
    let x = Tensor::from_slice(device, &z, [rows, cols]).map_err(err)?;
    let y = softmax(&x, log).map_err(err)?;
    let y = y.to_vec_async().await.map_err(err)?;
    let (abs, rel) = tolerance::softmax();
    tolerance::check_relative(&y, &cpu::softmax(&z, cols, log), abs, rel)
}

async fn reduce_case(device: &Device, rows: usize, cols: usize) -> CaseResult {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x_host = random(&mut rng, rows * cols, 1.0);
    let x = Tensor::from_slice(device, &x_host, [rows, cols]).map_err(err)?;
    let sums = crate::reduce::sum_rows(&x).map_err(err)?;
    let sums = sums.to_vec_async().await.map_err(err)?;
    let bound: Vec<f64> = x_host.chunks(cols).map(tolerance::sum).collect();
    let rows_error = tolerance::check_within(&sums, &cpu::sum_rows(&x_host, cols), &bound)
        .map_err(|e| format!("sum_rows: {e}"))?;
    let sums = crate::reduce::sum_columns(&x).map_err(err)?;
    let sums = sums.to_vec_async().await.map_err(err)?;
    let bound: Vec<f64> = (0..cols)
        .map(|j| {
            let column: Vec<f32> = (0..rows).map(|i| x_host[i * cols + j]).collect();
            tolerance::sum(&column)
        })
        .collect();
    let columns_error = tolerance::check_within(&sums, &cpu::sum_columns(&x_host, cols), &bound)
        .map_err(|e| format!("sum_columns: {e}"))?;
    Ok(rows_error.max(columns_error))
}

async fn argmax_case(device: &Device, rows: usize, cols: usize) -> CaseResult {
    let z = logits(rows, cols, 9);
    let x = Tensor::from_slice(device, &z, [rows, cols]).map_err(err)?;
    let got = crate::metrics::argmax(&x).map_err(err)?;
    let got = got.to_vec_u32_async().await.map_err(err)?;
    let want = cpu::argmax(&z, cols);
    match got.iter().zip(&want).position(|(g, w)| g != w) {
        None => Ok(0.0),
        Some(i) => Err(format!("row {i}: gpu {} vs oracle {}", got[i], want[i])),
    }
}

async fn optimizer_case(device: &Device, config: OptimizerConfig) -> CaseResult {
    const STEPS: usize = 10;
    let shapes: [&[usize]; 3] = [&[1], &[128, 784], &[10]];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut host: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| random(&mut rng, s.iter().product(), 1.0))
        .collect();
    let params = host
        .iter()
        .zip(shapes)
        .map(|(p, s)| Tensor::from_slice(device, p, s.to_vec()))
        .collect::<crate::Result<Vec<_>>>()
        .map_err(err)?;
    let grads = shapes
        .iter()
        .map(|s| Tensor::zeros(device, s.to_vec()))
        .collect::<crate::Result<Vec<_>>>()
        .map_err(err)?;
    let pairs: Vec<(&Tensor, &Tensor)> = params.iter().zip(&grads).collect();
    let mut optimizer = Optimizer::new(config, &pairs).map_err(err)?;
    let mut states = vec![cpu::OptimizerState::default(); shapes.len()];
    let mut worst = 0.0f64;
    for step in 0..STEPS {
        for (i, grad) in grads.iter().enumerate() {
            let g = random(&mut rng, host[i].len(), 1.0);
            grad.write(&g).map_err(err)?;
            cpu::optimizer_step(&config, &mut host[i], &g, &mut states[i]);
        }
        optimizer.step().map_err(err)?;
        let bound = tolerance::optimizer(step + 1);
        for (i, param) in params.iter().enumerate() {
            let got = param.to_vec_async().await.map_err(err)?;
            let error = tolerance::check_relative(&got, &host[i], bound, 0.0)
                .map_err(|e| format!("step {step}, parameter {i}: {e}"))?;
            worst = worst.max(error);
        }
    }
    Ok(worst)
}

/// The lecture MLP's captured, fused training step against the oracle's graph: the same
/// initial weights and batch order, ten steps of SGD with momentum on random images.
async fn training_case(device: &Device) -> CaseResult {
    const EXAMPLES: usize = 640;
    const PIXELS: usize = 784;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let images: Vec<u8> = (0..EXAMPLES * PIXELS).map(|_| rng.random()).collect();
    let labels: Vec<u8> = (0..EXAMPLES).map(|_| rng.random_range(0..10)).collect();
    let data = GpuDataset::new(device, &images, &labels, PIXELS, 10).map_err(err)?;
    let optimizer = OptimizerConfig::momentum(0.05, 0.9);
    let seed = 7;
    let model = Mlp::new(
        device,
        MlpConfig {
            seed,
            ..MlpConfig::lecture()
        },
    )
    .map_err(err)?;
    let config = TrainerConfig {
        optimizer,
        seed,
        ..TrainerConfig::lecture()
    };
    let mut trainer = Trainer::new(model, data, config).map_err(err)?;
    let mut layers = Vec::new();
    for layer in &trainer.model().layers {
        layers.push(CpuLinear {
            weight: layer.weight.to_vec_async().await.map_err(err)?,
            bias: layer.bias.to_vec_async().await.map_err(err)?,
            inputs: layer.inputs(),
            outputs: layer.outputs(),
        });
    }
    let mut states = vec![cpu::OptimizerState::default(); 2 * layers.len()];
    let order = epoch_order(seed, 0, EXAMPLES);
    let (scale, shift) = Normalization::default().scale_shift();
    trainer.begin_epoch().map_err(err)?;
    for step in 0..10 {
        trainer.step_async(step).await.map_err(err)?;
        let batch = &order[step * 64..(step + 1) * 64];
        let x: Vec<f32> = batch
            .iter()
            .flat_map(|&i| {
                let i = i as usize;
                images[i * PIXELS..(i + 1) * PIXELS]
                    .iter()
                    .map(|&b| f32::from(b) * scale + shift)
            })
            .collect();
        let y: Vec<u32> = batch
            .iter()
            .map(|&i| u32::from(labels[i as usize]))
            .collect();
        cpu::mlp_train_step(
            &mut layers,
            Activation::Relu,
            &x,
            &y,
            &optimizer,
            &mut states,
        );
    }
    let mut worst = 0.0f64;
    for (l, (gpu_layer, cpu_layer)) in trainer.model().layers.iter().zip(&layers).enumerate() {
        for (name, tensor, host) in [
            ("weight", &gpu_layer.weight, &cpu_layer.weight),
            ("bias", &gpu_layer.bias, &cpu_layer.bias),
        ] {
            let got = tensor.to_vec_async().await.map_err(err)?;
            let scale = host.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let bound = f64::from(tolerance::TRAINING_STEPS_RELATIVE * scale);
            let error = tolerance::check_relative(&got, host, bound, 0.0)
                .map_err(|e| format!("layer {l} {name}: {e}"))?;
            worst = worst.max(error);
        }
    }
    Ok(worst)
}
