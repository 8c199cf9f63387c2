//! Saving and resuming a training run: a run stopped (between epochs or part-way through
//! one) and resumed from its saved state ends on the same bits as a run that never stopped;
//! a state resumes only into the run it came from; checkpoints are refused when they hold
//! NaN, and the same state always gives the same file.

mod common;

use std::path::Path;

use common::{dataset, gpu};
use sha2::{Digest, Sha256};
use wgsl_nn::activation::Activation;
use wgsl_nn::nn::{
    CheckpointFile, EpochStats, Evaluator, Mlp, MlpConfig, Model, Schedule, Trainer, TrainerConfig,
    load_checkpoint, save_checkpoint,
};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, Error};

/// 1000 images: 16 steps of 64, the last one of 40, so the partial batch's plan is resumed too.
const IMAGES: usize = 1000;

fn config(optimizer: OptimizerConfig, schedule: Schedule, epochs: usize) -> TrainerConfig {
    TrainerConfig {
        optimizer,
        schedule,
        epochs,
        seed: 7,
        ..TrainerConfig::lecture()
    }
}

fn trainer(device: &Device, activation: Activation, init_seed: u64, c: TrainerConfig) -> Trainer {
    let model = Mlp::new(
        device,
        MlpConfig {
            widths: vec![784, 32, 10],
            activation,
            seed: init_seed,
        },
    )
    .unwrap();
    Trainer::new(model, dataset(device, true, IMAGES), c).unwrap()
}

fn bits(trainer: &Trainer) -> Vec<Vec<u32>> {
    trainer
        .model()
        .parameters()
        .iter()
        .map(|(_, t)| t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// The per-epoch numbers that must reproduce (not the timings).
fn numbers(stats: &[EpochStats]) -> Vec<(usize, u32, u32, usize)> {
    stats
        .iter()
        .map(|s| {
            (
                s.epoch,
                s.mean_loss.to_bits(),
                s.running_accuracy.to_bits(),
                s.steps,
            )
        })
        .collect()
}

fn epochs(trainer: &mut Trainer, n: usize) -> Vec<EpochStats> {
    (0..n)
        .map(|_| trainer.train_epoch(|_, _, _| {}).unwrap())
        .collect()
}

#[test]
fn four_epochs_equal_two_saved_and_resumed_for_two_more_bit_for_bit() {
    let device = gpu();
    // Adam (moments and a step count) under a cosine schedule (the position matters) and
    // RReLU (random slopes keyed by the step): every piece of state a resume must restore.
    let c = config(OptimizerConfig::adam(0.002), Schedule::Cosine, 4);
    let mut straight = trainer(device, Activation::RRELU, 1, c.clone());
    let mut straight_stats = epochs(&mut straight, 4);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let mut first = trainer(device, Activation::RRELU, 1, c.clone());
    let mut resumed_stats = epochs(&mut first, 2);
    first.save_state(&path, []).unwrap();
    drop(first);
    // Another initialisation, so nothing but the file can make the bits agree.
    let mut second = trainer(device, Activation::RRELU, 99, c);
    second.resume_from(&path).unwrap();
    assert_eq!(second.epochs_done(), 2);
    resumed_stats.extend(epochs(&mut second, 2));

    assert_eq!(
        bits(&straight),
        bits(&second),
        "weights differ after resuming"
    );
    assert_eq!(numbers(&straight_stats), numbers(&resumed_stats));
    straight_stats.clear();
}

#[test]
fn a_two_epoch_run_extended_to_four_equals_a_four_epoch_run() {
    let device = gpu();
    let momentum = OptimizerConfig::momentum(0.01, 0.9);
    let mut straight = trainer(
        device,
        Activation::Relu,
        3,
        config(momentum, Schedule::Constant, 4),
    );
    let straight_stats = epochs(&mut straight, 4);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let mut short = trainer(
        device,
        Activation::Relu,
        3,
        config(momentum, Schedule::Constant, 2),
    );
    let mut stats = epochs(&mut short, 2);
    short.save_state(&path, []).unwrap();
    // The epoch count is the one setting a resume may change.
    let mut longer = trainer(
        device,
        Activation::Relu,
        5,
        config(momentum, Schedule::Constant, 4),
    );
    longer.resume_from(&path).unwrap();
    stats.extend(epochs(&mut longer, 2));
    assert_eq!(bits(&straight), bits(&longer));
    assert_eq!(numbers(&straight_stats), numbers(&stats));
}

#[test]
fn stopping_part_way_through_an_epoch_and_resuming_is_bit_identical() {
    let device = gpu();
    let c = config(OptimizerConfig::adamw(0.002), Schedule::OneCycle, 2);
    let mut straight = trainer(device, Activation::Relu, 2, c.clone());
    let straight_stats = epochs(&mut straight, 2);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let mut first = trainer(device, Activation::Relu, 2, c.clone());
    let mut stats = epochs(&mut first, 1);
    // Stop after the sixth step of the second epoch, as a first Ctrl-C does.
    let mut seen = 0;
    let stopped = first
        .train_epoch_until(
            || {
                seen += 1;
                seen == 6
            },
            |_, _, _| {},
        )
        .unwrap();
    assert!(stopped.is_none(), "the epoch should have stopped part-way");
    assert_eq!((first.epochs_done(), first.steps_done_in_epoch()), (1, 6));
    first.save_state(&path, []).unwrap();
    let mut second = trainer(device, Activation::Relu, 8, c);
    second.resume_from(&path).unwrap();
    assert_eq!(second.steps_done_in_epoch(), 6);
    stats.extend(epochs(&mut second, 1));
    assert_eq!(bits(&straight), bits(&second));
    assert_eq!(numbers(&straight_stats), numbers(&stats));
}

#[test]
fn a_stop_asked_mid_way_through_an_accumulation_group_waits_for_its_update() {
    let device = gpu();
    let c = TrainerConfig {
        accumulation: 3,
        ..config(OptimizerConfig::momentum(0.01, 0.9), Schedule::Constant, 1)
    };
    let mut straight = trainer(device, Activation::Relu, 2, c.clone());
    let straight_stats = epochs(&mut straight, 1);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let mut first = trainer(device, Activation::Relu, 2, c.clone());
    // Asked to stop from the fourth step on: the group of steps 4–6 finishes first.
    let done = std::cell::Cell::new(0);
    let stopped = first
        .train_epoch_until(|| done.get() >= 4, |step, _, _| done.set(step))
        .unwrap();
    assert!(stopped.is_none());
    assert_eq!(first.steps_done_in_epoch(), 6);
    first.save_state(&path, []).unwrap();
    let mut second = trainer(device, Activation::Relu, 9, c);
    second.resume_from(&path).unwrap();
    let stats = epochs(&mut second, 1);
    assert_eq!(bits(&straight), bits(&second));
    assert_eq!(numbers(&straight_stats), numbers(&stats));
}

fn saved_state(device: &Device, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("state.safetensors");
    let mut t = trainer(
        device,
        Activation::Relu,
        0,
        config(OptimizerConfig::sgd(0.01), Schedule::Constant, 2),
    );
    epochs(&mut t, 1);
    t.save_state(&path, [("app.note".to_string(), "kept".to_string())])
        .unwrap();
    path
}

#[test]
fn a_state_resumes_only_into_the_same_run_and_the_error_names_both_settings() {
    let device = gpu();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_state(device, dir.path());
    let sgd = OptimizerConfig::sgd(0.01);
    let mut tanh = trainer(
        device,
        Activation::Tanh,
        0,
        config(sgd, Schedule::Constant, 2),
    );
    let message = tanh.resume_from(&path).unwrap_err().to_string();
    assert!(
        message.contains("activation relu") && message.contains("activation tanh"),
        "{message}"
    );
    let mut other_lr = trainer(
        device,
        Activation::Relu,
        0,
        config(OptimizerConfig::sgd(0.1), Schedule::Constant, 2),
    );
    let message = other_lr.resume_from(&path).unwrap_err().to_string();
    assert!(
        message.contains("lr: 0.01") && message.contains("lr: 0.1"),
        "{message}"
    );
    // Nothing was written into the refused trainer: it still starts at epoch 0.
    assert_eq!(other_lr.epochs_done(), 0);
    let mut same = trainer(
        device,
        Activation::Relu,
        4,
        config(sgd, Schedule::Constant, 2),
    );
    let metadata = same.resume_from(&path).unwrap();
    assert_eq!(metadata.get("app.note").map(String::as_str), Some("kept"));
    assert_eq!(same.epochs_done(), 1);
}

#[test]
fn a_weights_only_checkpoint_is_not_a_training_state() {
    let device = gpu();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut t = trainer(
        device,
        Activation::Relu,
        0,
        config(OptimizerConfig::sgd(0.01), Schedule::Constant, 2),
    );
    save_checkpoint(t.model(), &path, []).unwrap();
    let message = t.resume_from(&path).unwrap_err().to_string();
    assert!(message.contains("no training state"), "{message}");
    // But the weights of a training state load into a model like any checkpoint's.
    let state = saved_state(device, dir.path());
    load_checkpoint(t.model(), &state).unwrap();
}

#[test]
fn a_checkpoint_holding_nan_is_refused_naming_the_tensor_not_called_divergence() {
    let device = gpu();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_state(device, dir.path());
    let mut file = CheckpointFile::read(&path).unwrap();
    let bias = file.tensors.get_mut("layers.1.bias").unwrap();
    bias.bytes[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    file.write(&path).unwrap();
    let error = CheckpointFile::read(&path).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Data { .. }), "{error:?}");
    assert!(
        message.contains("layers.1.bias") && message.contains("NaN") && message.contains("index 1"),
        "{message}"
    );
    assert!(!message.contains("learning rate"), "{message}");
}

#[test]
fn the_same_state_gives_the_same_file_byte_for_byte() {
    let device = gpu();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_state(device, dir.path());
    let state = CheckpointFile::read(&path).unwrap();
    assert!(state.metadata.len() >= 10, "{:?}", state.metadata);
    // Each serialisation gets a fresh hash map (a fresh random order) inside `safetensors`.
    let digests: Vec<_> = (0..8)
        .map(|_| Sha256::digest(state.to_bytes().unwrap()))
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        Sha256::digest(std::fs::read(&path).unwrap()),
        digests[0],
        "the file on disk is the canonical bytes"
    );
    assert_eq!(
        CheckpointFile::parse(&state.to_bytes().unwrap()).unwrap(),
        state
    );
}

#[test]
fn loss_far_past_its_first_value_is_divergence_before_it_is_nan() {
    let device = gpu();
    let mut t = trainer(
        device,
        Activation::Relu,
        0,
        config(OptimizerConfig::sgd(100.0), Schedule::Constant, 1),
    );
    let error = t.train_epoch(|_, _, _| {}).unwrap_err();
    let Error::Diverged {
        loss,
        reason,
        suggested_lr,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(reason.contains("first step"), "{error}");
    assert_eq!(*suggested_lr, 10.0, "a tenth of the base rate");
    eprintln!("lr 100: {error} (loss {loss})");
}

#[test]
fn an_empty_training_set_is_an_error_of_its_own_not_divergence() {
    let device = gpu();
    let model = Mlp::new(device, MlpConfig::lecture()).unwrap();
    let empty = wgsl_nn::data::gpu::GpuDataset::new(device, &[], &[], 784, 10);
    let error = match empty {
        Err(e) => e,
        Ok(data) => Trainer::new(model, data, TrainerConfig::lecture()).unwrap_err(),
    };
    let message = error.to_string();
    assert!(message.contains("empty"), "{message}");
    assert!(!message.contains("diverged"), "{message}");
}

#[test]
fn momentum_of_one_or_more_is_refused() {
    for momentum in [1.0, 2.0, -0.1, f32::NAN] {
        let error = OptimizerConfig::momentum(0.01, momentum)
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("[0, 1)"), "{error}");
    }
    OptimizerConfig::momentum(0.01, 0.99).validate().unwrap();
}

/// A model whose hidden activations for a batch of 1000 pass the device's storage binding
/// limit (160 MB on lavapipe's 128 MiB), with four inputs to keep the work small.
fn wide(device: &Device) -> Mlp {
    Mlp::new(
        device,
        MlpConfig {
            widths: vec![4, wide_width(device), 10],
            activation: Activation::Relu,
            seed: 0,
        },
    )
    .unwrap()
}

/// The narrowest hidden width whose activations for 1000 rows do not fit one binding.
fn wide_width(device: &Device) -> usize {
    let limit = device.limits().max_storage_buffer_binding_size;
    (limit / (1000 * 4) + 1) as usize
}

fn tiny_data(device: &Device, rows: usize) -> wgsl_nn::data::gpu::GpuDataset {
    let images: Vec<u8> = (0..rows * 4).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..rows).map(|i| (i % 10) as u8).collect();
    wgsl_nn::data::gpu::GpuDataset::new(device, &images, &labels, 4, 10).unwrap()
}

#[test]
fn a_training_batch_past_the_device_limits_fails_when_the_trainer_is_built_not_mid_epoch() {
    let device = gpu();
    let config = TrainerConfig {
        batch_size: 1000,
        ..TrainerConfig::lecture()
    };
    let error = Trainer::new(wide(device), tiny_data(device, 1000), config).unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
}

#[test]
fn an_evaluation_batch_past_the_device_limits_is_split_to_fit_with_the_same_result() {
    let device = gpu();
    let model = wide(device);
    let norm = wgsl_nn::data::gpu::Normalization::default();
    let mut asked_1000 = Evaluator::new(&model, tiny_data(device, 1000), 1000, norm).unwrap();
    assert!(asked_1000.batch_size() < 1000, "no split happened");
    let mut small = Evaluator::new(&model, tiny_data(device, 1000), 100, norm).unwrap();
    assert_eq!(asked_1000.accuracy().unwrap(), small.accuracy().unwrap());
}

#[test]
fn a_stop_after_the_loss_has_blown_up_is_divergence_not_a_state_to_save() {
    let device = gpu();
    let c = config(OptimizerConfig::sgd(1e30), Schedule::Constant, 1);
    let mut t = trainer(device, Activation::Relu, 0, c);
    let steps = std::cell::Cell::new(0);
    let error = t
        .train_epoch_until(|| steps.get() >= 5, |step, _, _| steps.set(step))
        .unwrap_err();
    assert!(matches!(error, Error::Diverged { .. }), "{error:?}");
    // The weights themselves are no longer finite: no state of them may be saved.
    let error = t.state().err().map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("not saved")),
        "{error:?}"
    );
}

#[test]
fn a_state_inside_an_accumulation_group_or_past_the_epochs_is_refused() {
    let device = gpu();
    let c = TrainerConfig {
        accumulation: 4,
        ..config(OptimizerConfig::sgd(0.01), Schedule::Constant, 1)
    };
    let mut t = trainer(device, Activation::Relu, 0, c.clone());
    t.begin_epoch().unwrap();
    t.step(0).unwrap();
    t.step(1).unwrap();
    let message = t.state().unwrap_err().to_string();
    assert!(message.contains("accumulation group of 4"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let path = saved_state(device, dir.path()); // one epoch done
    let mut zero_more = trainer(
        device,
        Activation::Relu,
        0,
        TrainerConfig {
            epochs: 1,
            ..config(OptimizerConfig::sgd(0.01), Schedule::Constant, 2)
        },
    );
    zero_more.resume_from(&path).unwrap(); // 1 of 1: finished, may be resumed to evaluate
    let mut fewer = trainer(
        device,
        Activation::Relu,
        0,
        TrainerConfig {
            epochs: 1,
            ..config(OptimizerConfig::sgd(0.01), Schedule::Constant, 2)
        },
    );
    let mut file = CheckpointFile::read(&path).unwrap();
    file.metadata.insert("trainer.epoch".into(), "2".into());
    let message = fewer.restore_state(&file, &path).unwrap_err().to_string();
    assert!(message.contains("more than the 1"), "{message}");
}
