//! One training step of the lecture's MLP (784-128-10, ReLU, cross-entropy, SGD, batch 64):
//! the device's fused step against the CPU oracle running the same graph.
//!
//! A third sample runs the same step through autograd (`Var` ops, eager forward kernels, one
//! submit for the backward pass), to show what the generic graph costs next to the fused,
//! prepared step.
//!
//! The GPU sample submits `iters` steps back to back and waits once, as training does, so it
//! measures steady-state step time (an epoch of MNIST is 938 steps). Synthetic images keep the
//! benchmark independent of the data files.
//!
//! Beside them, what a user would pick instead: the same step on the CPU with matrixmultiply's
//! threaded f32 sgemm (`support/cpu_step.rs`), checked against the oracle before it is timed;
//! and a whole epoch (60,000 images, 938 steps) on both.

#[path = "support/cpu_step.rs"]
mod cpu_step;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wgsl_nn::Device;
use wgsl_nn::activation::Activation;
use wgsl_nn::autograd::{Var, VarOptimizer, cross_entropy};
use wgsl_nn::capture::Fusion;
use wgsl_nn::cpu::{self, CpuLinear};
use wgsl_nn::data::gpu::{GpuDataset, Normalization};
use wgsl_nn::loss::{Labels, Reduction};
use wgsl_nn::nn::{Mlp, MlpConfig, Trainer, TrainerConfig};

const EXAMPLES: usize = 60_000;

fn train_step(c: &mut Criterion) {
    let device = Device::new().expect("the benchmarks need a GPU adapter (or lavapipe)");
    eprintln!("adapter: {}", device.adapter());
    let images: Vec<u8> = (0..EXAMPLES * 784)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let labels: Vec<u8> = (0..EXAMPLES).map(|i| (i % 10) as u8).collect();
    let model = Mlp::new(&device, MlpConfig::lecture()).unwrap();
    let mut layers: Vec<CpuLinear> = model
        .layers
        .iter()
        .map(|l| CpuLinear {
            weight: l.weight.to_vec().unwrap(),
            bias: l.bias.to_vec().unwrap(),
            inputs: l.inputs(),
            outputs: l.outputs(),
        })
        .collect();
    let config = TrainerConfig::lecture();
    let data = GpuDataset::new(&device, &images, &labels, 784, 10).unwrap();
    let mut trainer = Trainer::new(model, data, config.clone()).unwrap();
    trainer.begin_epoch().unwrap();
    trainer.step(0).unwrap();
    device.synchronize().unwrap();
    eprintln!(
        "captured, fused step: {:?} dispatches: {:#?}",
        trainer.dispatches_per_step(),
        trainer.step_plan()
    );
    // The same step captured without fusion: what the rewrite rules buy.
    let unfused_config = TrainerConfig {
        fusion: Fusion::none(),
        ..TrainerConfig::lecture()
    };
    let unfused_model = Mlp::new(&device, MlpConfig::lecture()).unwrap();
    let unfused_data = GpuDataset::new(&device, &images, &labels, 784, 10).unwrap();
    let mut unfused = Trainer::new(unfused_model, unfused_data, unfused_config).unwrap();
    unfused.begin_epoch().unwrap();
    unfused.step(0).unwrap();
    device.synchronize().unwrap();
    eprintln!(
        "captured, unfused step: {:?} dispatches",
        unfused.dispatches_per_step()
    );

    let mut group = c.benchmark_group("train_step/784-128-10_batch64");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    let steps = trainer.steps_per_epoch();
    let mut next = 0usize;
    group.bench_function("gpu", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                trainer.step(next % steps).unwrap();
                next += 1;
            }
            device.synchronize().unwrap();
            start.elapsed()
        })
    });
    let mut next_unfused = 0usize;
    group.bench_function("gpu_unfused", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                unfused.step(next_unfused % steps).unwrap();
                next_unfused += 1;
            }
            device.synchronize().unwrap();
            start.elapsed()
        })
    });
    let (scale, shift) = Normalization::default().scale_shift();
    let x: Vec<f32> = images[..64 * 784]
        .iter()
        .map(|&b| f32::from(b) * scale + shift)
        .collect();
    let y: Vec<u32> = labels[..64].iter().map(|&l| u32::from(l)).collect();

    let params: Vec<Var> = layers
        .iter()
        .flat_map(|l| {
            [
                Var::from_slice(&device, &l.weight, [l.inputs, l.outputs], true).unwrap(),
                Var::from_slice(&device, &l.bias, [l.outputs], true).unwrap(),
            ]
        })
        .collect();
    let leaves: Vec<&Var> = params.iter().collect();
    let mut optimizer = VarOptimizer::new(config.optimizer, &leaves).unwrap();
    let xv = Var::from_slice(&device, &x, [64, 784], false).unwrap();
    let gpu_labels = Labels::new(&device, &y, 10).unwrap();
    let mut autograd_step = || {
        optimizer.zero_grad().unwrap();
        let hidden = xv
            .linear(&params[0], Some(&params[1]))
            .unwrap()
            .relu()
            .unwrap();
        let logits = hidden.linear(&params[2], Some(&params[3])).unwrap();
        let loss = cross_entropy(&logits, &gpu_labels, Reduction::Mean).unwrap();
        loss.backward().unwrap();
        optimizer.step().unwrap();
    };
    autograd_step();
    device.synchronize().unwrap();
    let before = device.counters();
    autograd_step();
    let after = device.counters();
    eprintln!(
        "autograd step: {} submits, {} dispatches, {} host syncs",
        after.submits - before.submits,
        after.dispatches - before.dispatches,
        after.host_syncs - before.host_syncs
    );
    group.bench_function("gpu_autograd", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                autograd_step();
            }
            device.synchronize().unwrap();
            start.elapsed()
        })
    });
    // The optimised CPU step, first checked against the oracle's step from the same weights.
    let lr = config.optimizer.lr();
    let fresh = |layers: &[CpuLinear]| {
        cpu_step::CpuMlp::new(
            layers[0].weight.clone(),
            layers[0].bias.clone(),
            layers[1].weight.clone(),
            layers[1].bias.clone(),
            64,
        )
    };
    let mut fast = fresh(&layers);
    let rows: Vec<u32> = (0..64).collect();
    fast.step(&images, &labels, &rows, (scale, shift), lr);
    let mut oracle = layers.clone();
    let mut oracle_states = vec![cpu::OptimizerState::default(); 4];
    cpu::mlp_train_step(
        &mut oracle,
        Activation::Relu,
        &x,
        &y,
        &config.optimizer,
        &mut oracle_states,
    );
    let worst = fast
        .w1
        .iter()
        .zip(&oracle[0].weight)
        .chain(fast.w2.iter().zip(&oracle[1].weight))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-5,
        "the sgemm step differs from the oracle's by {worst}"
    );
    eprintln!(
        "cpu sgemm step: agrees with the oracle to {worst:e}; {:.1} MFLOP of matmul per step",
        fast.matmul_flops(64) / 1e6
    );
    let mut fast = fresh(&layers);
    let order: Vec<u32> = (0..EXAMPLES as u32).collect();
    let mut offset = 0usize;
    group.bench_function("cpu_sgemm", |b| {
        b.iter(|| {
            let batch = &order[offset..offset + 64];
            offset = (offset + 64) % (EXAMPLES - 64);
            fast.step(&images, &labels, batch, (scale, shift), lr)
        })
    });
    let mut states = vec![cpu::OptimizerState::default(); 4];
    group.bench_function("cpu_oracle", |b| {
        b.iter(|| {
            cpu::mlp_train_step(
                &mut layers,
                Activation::Relu,
                &x,
                &y,
                &config.optimizer,
                &mut states,
            )
        })
    });
    group.finish();

    // A whole epoch: 938 steps over 60,000 images, shuffled, the last batch of 32.
    let mut epoch = c.benchmark_group("train_epoch/784-128-10_batch64_60000");
    epoch.sample_size(10);
    epoch.measurement_time(Duration::from_secs(20));
    let mut fast = fresh(&layers);
    let mut seed_epoch = 0;
    epoch.bench_function("cpu_sgemm", |b| {
        b.iter(|| {
            let order = wgsl_nn::nn::epoch_order(0, seed_epoch, EXAMPLES);
            seed_epoch += 1;
            let mut loss = 0.0;
            // The last batch of 32 uses a prefix of the scratch sized for 64 rows.
            for batch in order.chunks(64) {
                loss += fast.step(&images, &labels, batch, (scale, shift), lr);
            }
            loss
        })
    });
    // The step benchmarks above left the trainer inside an epoch: finish it, then count one
    // whole epoch.
    trainer.train_epoch(|_, _, _| {}).unwrap();
    let before = device.counters();
    let stats = trainer.train_epoch(|_, _, _| {}).unwrap();
    let after = device.counters();
    eprintln!(
        "gpu epoch: {} steps, {} submits, {} dispatches, {} host syncs",
        stats.steps,
        after.submits - before.submits,
        after.dispatches - before.dispatches,
        after.host_syncs - before.host_syncs
    );
    epoch.bench_function("gpu", |b| {
        b.iter(|| trainer.train_epoch(|_, _, _| {}).unwrap().mean_loss)
    });
    epoch.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
