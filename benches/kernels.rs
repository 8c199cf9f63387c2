//! Every kernel family at the MNIST MLP's shapes, GPU against the CPU oracle.
//!
//! A GPU sample records the prepared kernel `iters` times into as few submits as possible and
//! waits once: the steady-state cost of one call inside a training step, dispatch overhead
//! included, host syncs amortised. The optimiser group's throughput is in parameters/s.

#[path = "support/timing.rs"]
mod timing;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use timing::{data, time_gpu};
use wgsl_nn::activation::{Activation, ActivationKernel, ActivationState};
use wgsl_nn::cpu::{self, ActivationParams};
use wgsl_nn::elementwise::{Elementwise, ElementwiseOp};
use wgsl_nn::loss::{CrossEntropyOptions, Labels, Reduction, SoftmaxCrossEntropy};
use wgsl_nn::metrics::Metric;
use wgsl_nn::optim::{Optimizer, OptimizerConfig};
use wgsl_nn::reduce::{Axis, Sum};
use wgsl_nn::{DType, Device, Tensor};

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    group
}

fn kernels(c: &mut Criterion) {
    let device = Device::new().expect("the benchmarks need a GPU adapter (or lavapipe)");
    eprintln!("adapter: {}", device.adapter());

    // Activations at the hidden layer: 64×128.
    let x_host = data(64 * 128, 1);
    let dy_host = data(64 * 128, 2);
    let x = Tensor::from_slice(&device, &x_host, [64, 128]).unwrap();
    let dy = Tensor::from_slice(&device, &dy_host, [64, 128]).unwrap();
    let out = Tensor::uninit(&device, [64, 128]).unwrap();
    for activation in [Activation::Relu, Activation::Gelu] {
        let state = ActivationState::default();
        let forward = ActivationKernel::forward(&x, &out, activation, &state).unwrap();
        let backward = ActivationKernel::backward(&x, &dy, &out, activation, &state).unwrap();
        let params = ActivationParams {
            features: 128,
            ..Default::default()
        };
        let mut group = config(c, &format!("activation_{}/64x128", activation.name()));
        time_gpu(&device, 1, 64, |e| forward.record(e));
        group.bench_function("gpu_forward", |b| {
            b.iter_custom(|n| time_gpu(&device, n, 64, |e| forward.record(e)))
        });
        group.bench_function("gpu_backward", |b| {
            b.iter_custom(|n| time_gpu(&device, n, 64, |e| backward.record(e)))
        });
        group.bench_function("cpu_forward", |b| {
            b.iter(|| cpu::activation_forward(activation, &x_host, &params))
        });
        group.bench_function("cpu_backward", |b| {
            b.iter(|| cpu::activation_backward(activation, &x_host, &dy_host, &params))
        });
        group.finish();
    }

    // Softmax cross-entropy at the output layer: 64×10.
    let logits_host = data(64 * 10, 3);
    let labels_host: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let logits = Tensor::from_slice(&device, &logits_host, [64, 10]).unwrap();
    let labels = Labels::new(&device, &labels_host, 10).unwrap();
    let dlogits = Tensor::uninit(&device, [64, 10]).unwrap();
    let loss = Tensor::zeros(&device, [1]).unwrap();
    let ce = SoftmaxCrossEntropy::new(
        &logits,
        &labels,
        &dlogits,
        &loss,
        &CrossEntropyOptions::default(),
    )
    .unwrap();
    let mut group = config(c, "softmax_cross_entropy/64x10");
    time_gpu(&device, 1, 64, |e| ce.record(e));
    group.bench_function("gpu", |b| {
        b.iter_custom(|n| time_gpu(&device, n, 64, |e| ce.record(e)))
    });
    group.bench_function("cpu", |b| {
        b.iter(|| cpu::softmax_cross_entropy(&logits_host, &labels_host, 10, None, Reduction::Mean))
    });
    group.finish();

    // Metrics at the output layer.
    let correct = Tensor::zeros_of(&device, [1], DType::U32).unwrap();
    let metric = Metric::count_correct(&logits, &labels, &correct).unwrap();
    let mut group = config(c, "count_correct/64x10");
    time_gpu(&device, 1, 64, |e| metric.record(e));
    group.bench_function("gpu", |b| {
        b.iter_custom(|n| time_gpu(&device, n, 64, |e| metric.record(e)))
    });
    group.bench_function("cpu", |b| {
        b.iter(|| cpu::count_correct(&logits_host, 10, &labels_host))
    });
    group.finish();

    // The bias gradient: column sums of 64×128.
    let bias_grad = Tensor::uninit(&device, [128]).unwrap();
    let sum = Sum::new(&dy, &bias_grad, Axis::Columns, 1.0, false).unwrap();
    let mut group = config(c, "sum_columns/64x128");
    time_gpu(&device, 1, 64, |e| sum.record(e));
    group.bench_function("gpu", |b| {
        b.iter_custom(|n| time_gpu(&device, n, 64, |e| sum.record(e)))
    });
    group.bench_function("cpu", |b| b.iter(|| cpu::sum_columns(&dy_host, 128)));
    group.finish();

    // Elementwise at the first layer's weights: 128×784.
    let w_host = data(128 * 784, 4);
    let g_host = data(128 * 784, 5);
    let w = Tensor::from_slice(&device, &w_host, [128, 784]).unwrap();
    let g = Tensor::from_slice(&device, &g_host, [128, 784]).unwrap();
    let axpy = Elementwise::new(ElementwiseOp::Axpy(-0.001), &g, None, &w).unwrap();
    let mut group = config(c, "axpy/128x784");
    time_gpu(&device, 1, 64, |e| axpy.record(e));
    group.bench_function("gpu", |b| {
        b.iter_custom(|n| time_gpu(&device, n, 64, |e| axpy.record(e)))
    });
    group.bench_function("cpu", |b| b.iter(|| cpu::axpy(-0.001, &g_host, &w_host)));
    group.finish();

    // Optimisers over all of the MLP's parameters: 784·128 + 128 + 128·10 + 10.
    let shapes: [&[usize]; 4] = [&[784, 128], &[128], &[128, 10], &[10]];
    let params: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Tensor::from_slice(
                &device,
                &data(s.iter().product(), 10 + i as u32),
                s.to_vec(),
            )
            .unwrap()
        })
        .collect();
    let grads: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Tensor::from_slice(
                &device,
                &data(s.iter().product(), 20 + i as u32),
                s.to_vec(),
            )
            .unwrap()
        })
        .collect();
    let count: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let pairs: Vec<(&Tensor, &Tensor)> = params.iter().zip(&grads).collect();
    for (name, config_) in [
        ("sgd", OptimizerConfig::sgd(1e-3)),
        ("momentum", OptimizerConfig::momentum(1e-3, 0.9)),
        ("adam", OptimizerConfig::adam(1e-3)),
    ] {
        let mut optimizer = Optimizer::new(config_, &pairs).unwrap();
        let mut host: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| data(s.iter().product(), 10 + i as u32))
            .collect();
        let host_grads: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| data(s.iter().product(), 20 + i as u32))
            .collect();
        let mut states = vec![cpu::OptimizerState::default(); shapes.len()];
        let mut group = config(c, &format!("optimizer_{name}/mlp_784_128_10"));
        group.throughput(Throughput::Elements(count as u64));
        // One step per submit: the step's numbers travel with it.
        group.bench_function("gpu", |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                for _ in 0..n {
                    optimizer.step().unwrap();
                }
                device.synchronize().unwrap();
                start.elapsed()
            })
        });
        group.bench_function("cpu", |b| {
            b.iter(|| {
                for ((p, g), s) in host.iter_mut().zip(&host_grads).zip(&mut states) {
                    cpu::optimizer_step(&config_, p, g, s);
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
