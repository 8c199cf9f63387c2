//! Convolutional networks through the same trainer: a `Sequential` MLP is the `Mlp` (same
//! parameters, same bits after training, checkpoints interchangeable); a small CNN with every
//! new layer trains to the same bits fused, unfused and eagerly; a CNN run stopped part-way and
//! resumed from its saved state ends on the same bits as one that never stopped.

mod common;

use common::{dataset, gpu};
use wgsl_nn::autograd::{VarOptimizer, cross_entropy};
use wgsl_nn::capture::{Fusion, capture};
use wgsl_nn::loss::Reduction;
use wgsl_nn::nn::{
    Evaluator, Mlp, MlpConfig, Model, Sequential, SequentialConfig, Trainer, TrainerConfig,
};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, Error};

/// Every new layer: padded and unpadded convolutions, both poolings, dropout, a flatten, on
/// a 28×28 digit (small widths: the tests run on a CPU driver).
const SMALL_CNN: &str = "conv(4,3,pad=1)-relu-maxpool(2)-conv(6,5,stride=2)-tanh-\
                         avgpool(2,stride=1)-flatten-dropout(0.25)-linear(16)-relu-linear(10)";

fn cnn(device: &Device, seed: u64) -> Sequential {
    Sequential::new(
        device,
        SequentialConfig::parse(SMALL_CNN, &[1, 28, 28], seed).unwrap(),
    )
    .unwrap()
}

fn bits(model: &impl Model) -> Vec<Vec<u32>> {
    model
        .parameters()
        .iter()
        .map(|(_, t)| t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn config(fusion: Fusion) -> TrainerConfig {
    TrainerConfig {
        batch_size: 32,
        optimizer: OptimizerConfig::adam(0.003),
        fusion,
        seed: 5,
        epochs: 2,
        ..TrainerConfig::lecture()
    }
}

#[test]
fn an_mlp_written_as_a_sequential_model_is_the_mlp() {
    let device = gpu();
    let mlp = Mlp::new(device, MlpConfig::lecture()).unwrap();
    let seq = Sequential::new(
        device,
        SequentialConfig::parse("linear(128)-relu-linear(10)", &[784], 0).unwrap(),
    )
    .unwrap();
    let names = |m: &dyn Fn() -> Vec<String>| m();
    assert_eq!(
        names(&|| mlp.parameters().into_iter().map(|(n, _)| n).collect()),
        names(&|| seq.parameters().into_iter().map(|(n, _)| n).collect()),
    );
    assert_eq!(bits(&mlp), bits(&seq), "the same initial values");
    let c = TrainerConfig {
        epochs: 1,
        ..TrainerConfig::lecture()
    };
    let mut a = Trainer::new(mlp, dataset(device, true, 300), c.clone()).unwrap();
    let mut b = Trainer::new(seq, dataset(device, true, 300), c).unwrap();
    a.train_epoch(|_, _, _| {}).unwrap();
    b.train_epoch(|_, _, _| {}).unwrap();
    assert_eq!(
        bits(a.model()),
        bits(b.model()),
        "the same bits after training"
    );
    // An MLP's checkpoint loads into the sequential model.
    let fresh = Sequential::new(
        device,
        SequentialConfig::parse("linear(128)-relu-linear(10)", &[784], 9).unwrap(),
    )
    .unwrap();
    let file = a.model().to_checkpoint().unwrap();
    fresh
        .load_parameters(&file, std::path::Path::new("mlp.safetensors"))
        .unwrap();
    assert_eq!(bits(&fresh), bits(a.model()));
}

#[test]
fn a_cnn_trains_to_the_same_bits_fused_unfused_and_eagerly() {
    let device = gpu();
    let run = |fusion: Fusion| {
        let mut t =
            Trainer::new(cnn(device, 3), dataset(device, true, 96), config(fusion)).unwrap();
        let stats = t.train_epoch(|_, _, _| {}).unwrap();
        (
            bits(t.model()),
            stats.mean_loss.to_bits(),
            t.step_plan().unwrap().to_vec(),
        )
    };
    let (fused, fused_loss, plan) = run(Fusion::all());
    let (unfused, unfused_loss, _) = run(Fusion::none());
    assert_eq!(fused, unfused, "fused and unfused steps");
    assert!(
        !plan.iter().any(|step| step == "relu" || step == "tanh"),
        "no activation left on its own: {plan:#?}"
    );
    // The loss is summed in another fixed order by the fused head.
    let (a, b) = (f32::from_bits(fused_loss), f32::from_bits(unfused_loss));
    assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
    // Bias and activation in the convolutions' epilogues (Rule::Forward).
    for layer in [
        "conv2d + bias + relu",
        "conv2d + bias + tanh",
        "max pool",
        "average pool",
        "dropout",
        "dropout gradient",
    ] {
        assert!(
            plan.iter().any(|step| step.contains(layer)),
            "{layer} in the plan: {plan:#?}"
        );
    }

    // Eager autograd on one batch against the same step captured and replayed once.
    let data = dataset(device, true, 32);
    let batch = data.batch(32, Default::default()).unwrap();
    let step = |model: &Sequential, opt: &mut VarOptimizer| -> wgsl_nn::Result<()> {
        batch.gather()?;
        let logits = model.forward(&batch.input()?, true)?;
        let loss = cross_entropy(&logits, &batch.labels()?, Reduction::Mean)?;
        opt.zero_grad()?;
        loss.backward()?;
        opt.step()
    };
    let optimizer = |model: &Sequential| {
        let params: Vec<_> = model.parameter_vars().into_iter().map(|(_, v)| v).collect();
        VarOptimizer::new(OptimizerConfig::sgd(0.1), &params).unwrap()
    };
    let eager = cnn(device, 4);
    let mut eager_opt = optimizer(&eager);
    step(&eager, &mut eager_opt).unwrap();
    let captured = cnn(device, 4);
    let mut opt = optimizer(&captured);
    let (plan, ()) = capture(device, &Fusion::all(), || step(&captured, &mut opt)).unwrap();
    plan.replay().unwrap();
    assert_eq!(bits(&eager), bits(&captured), "eager and captured steps");
}

#[test]
fn a_cnn_stopped_part_way_and_resumed_ends_on_the_same_bits() {
    let device = gpu();
    let c = config(Fusion::all());
    let mut straight = Trainer::new(cnn(device, 1), dataset(device, true, 200), c.clone()).unwrap();
    for _ in 0..2 {
        straight.train_epoch(|_, _, _| {}).unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let mut first = Trainer::new(cnn(device, 1), dataset(device, true, 200), c.clone()).unwrap();
    first.train_epoch(|_, _, _| {}).unwrap();
    // Stop after step 3 of the second epoch (dropout's masks are keyed by the step).
    let mut steps = 0;
    let stopped = first
        .train_epoch_until(
            || {
                steps += 1;
                steps == 3
            },
            |_, _, _| {},
        )
        .unwrap();
    assert!(stopped.is_none());
    first.save_state(&path, []).unwrap();
    drop(first);
    let mut second = Trainer::new(cnn(device, 77), dataset(device, true, 200), c.clone()).unwrap();
    second.resume_from(&path).unwrap();
    second.train_epoch(|_, _, _| {}).unwrap();
    assert_eq!(bits(straight.model()), bits(second.model()));

    // A state resumes only into the same architecture.
    let other = Sequential::new(
        device,
        SequentialConfig::parse(
            &SMALL_CNN.replace("dropout(0.25)", "dropout(0.5)"),
            &[1, 28, 28],
            1,
        )
        .unwrap(),
    )
    .unwrap();
    let mut wrong = Trainer::new(other, dataset(device, true, 200), c).unwrap();
    let error = wrong.resume_from(&path).unwrap_err();
    assert!(
        matches!(&error, Error::Data { problem, .. } if problem.contains("dropout(0.25)")),
        "{error}"
    );

    // Evaluation runs the CNN without dropout: the same accuracy twice.
    let mut eval = Evaluator::new(
        second.model(),
        dataset(device, false, 100),
        64,
        Default::default(),
    )
    .unwrap();
    assert_eq!(eval.accuracy().unwrap(), eval.accuracy().unwrap());
}

#[test]
fn a_cnn_trains_to_the_same_bits_under_the_cpu_and_the_gpu_profiles() {
    // The GPU profile runs the convolutions on `Tiled` (the implicit GEMM, its bias and
    // activation epilogue) and the dense layers on the staged family; the CPU profile runs
    // them on the broadcast kernels. Every output is the same fma chain, so the same bits.
    use wgsl_nn::{DeviceOptions, Profile};
    let run = |profile: Profile| {
        let options = DeviceOptions::from_env().unwrap().with_profile(profile);
        let device = Device::with_options(&options).unwrap();
        let mut t = Trainer::new(
            cnn(&device, 6),
            dataset(&device, true, 64),
            config(Fusion::all()),
        )
        .unwrap();
        t.train_epoch(|_, _, _| {}).unwrap();
        let plan = t.step_plan().unwrap().join("\n");
        (bits(t.model()), plan)
    };
    let (cpu, _) = run(Profile::Cpu);
    let (gpu, plan) = run(Profile::Gpu);
    assert!(plan.contains("conv2d + bias + relu"), "{plan}");
    assert_eq!(cpu, gpu, "the profiles' kernels differ in bits");
}
