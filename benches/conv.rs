//! The convolutions of `--preset cnn` (LeNet's shape, batch 64): each product on the device
//! against the CPU baseline a user would pick, im2col + matrixmultiply's threaded sgemm
//! (`support/cpu_conv.rs`, checked against the f64 oracle first); then the CNN's whole
//! training step on the device beside the same step on the CPU built the same way
//! (`support/cpu_cnn.rs`: im2col + sgemm, loops for the rest), the two checked to agree after
//! a step from the same weights.
//!
//! Throughput is counted in FLOPs (2 · positions · out channels · taps), so criterion's
//! "elem/s" reads as FLOP/s. A GPU sample records the prepared product `iters` times, 64 per
//! submit, and waits once: its steady-state cost inside a step.

#[path = "support/cpu_cnn.rs"]
mod cpu_cnn;
#[path = "support/cpu_conv.rs"]
mod cpu_conv;
#[allow(dead_code)] // the MLP step; this bench uses its sgemm
#[path = "support/cpu_step.rs"]
mod cpu_step;
#[path = "support/timing.rs"]
mod timing;

use std::time::{Duration, Instant};

use cpu_cnn::CpuCnn;
use cpu_conv::CpuConv;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use timing::{data, time_gpu};
use wgsl_nn::capture::Fusion;
use wgsl_nn::conv::{Conv2dGeometry, Conv2dKernel, Conv2dOptions, ConvProduct};
use wgsl_nn::cpu::tolerance::{check_within, product_bounds};
use wgsl_nn::data::gpu::GpuDataset;
use wgsl_nn::data::gpu::Normalization;
use wgsl_nn::nn::{Model, Sequential, SequentialConfig, Trainer, TrainerConfig, epoch_order};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, Tensor};

/// LeNet's two convolutions at batch 64: (input, weight, padding).
const LAYERS: [(&str, [usize; 4], [usize; 4], usize); 2] = [
    ("conv1", [64, 1, 28, 28], [8, 1, 5, 5], 2),
    ("conv2", [64, 8, 14, 14], [16, 8, 5, 5], 0),
];

fn convolutions(c: &mut Criterion) {
    let device = Device::new().expect("the benchmarks need a GPU adapter (or lavapipe)");
    eprintln!(
        "adapter: {} (profile {})",
        device.adapter(),
        device.profile()
    );
    for (name, input, weight, pad) in LAYERS {
        let options = Conv2dOptions {
            padding: (pad, pad),
            ..Default::default()
        };
        let g = Conv2dGeometry::new(&input, &weight, options).unwrap();
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let (x_host, w_host) = (data(len(input), 1), data(len(weight), 2));
        let b_host = data(g.out_channels, 3);
        let dy_host = data(len(g.output_shape()), 4);
        let x = Tensor::from_slice(&device, &x_host, input).unwrap();
        let w = Tensor::from_slice(&device, &w_host, weight).unwrap();
        let b = Tensor::from_slice(&device, &b_host, [g.out_channels]).unwrap();
        let dy = Tensor::from_slice(&device, &dy_host, g.output_shape()).unwrap();
        let mut cpu = CpuConv::new(input, weight, (1, 1), (pad, pad));
        let flops = 2 * len(g.output_shape()) * g.in_channels * g.kernel.0 * g.kernel.1;

        // The baseline computes what the oracle does (within the products' bound).
        let mut y_cpu = vec![0.0; len(g.output_shape())];
        cpu.forward(&x_host, &w_host, &b_host, &mut y_cpu);
        let reference = wgsl_nn::cpu::conv::conv2d(&x_host, &w_host, Some(&b_host), &g);
        let magnitude: Vec<f32> = reference.iter().map(|v| v.abs() + 1.0).collect();
        check_within(
            &y_cpu,
            &reference,
            &product_bounds(&reference, &magnitude, 64),
        )
        .expect("the im2col baseline matches the oracle");

        let mut group = c.benchmark_group(format!("conv/{name}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(flops as u64));
        let products = [
            (ConvProduct::Forward, &x, &w, Some(&b)),
            (ConvProduct::InputGrad, &dy, &w, None),
            (ConvProduct::WeightGrad, &dy, &x, None),
        ];
        for (product, a, operand, bias) in products {
            let out = Tensor::uninit(&device, product.output_shape(&g)).unwrap();
            let kernel = Conv2dKernel::new(product, &g, a, operand, &out, bias).unwrap();
            time_gpu(&device, 1, 64, |e| kernel.record(e)); // compile and warm up
            group.bench_function(BenchmarkId::new("gpu", format!("{product:?}")), |bench| {
                bench.iter_custom(|iters| time_gpu(&device, iters, 64, |e| kernel.record(e)))
            });
        }
        let mut y = vec![0.0; len(g.output_shape())];
        group.bench_function(BenchmarkId::new("im2col_sgemm", "Forward"), |bench| {
            bench.iter(|| cpu.forward(&x_host, &w_host, &b_host, &mut y))
        });
        let mut dx = vec![0.0; len(input)];
        group.bench_function(BenchmarkId::new("im2col_sgemm", "InputGrad"), |bench| {
            bench.iter(|| cpu.input_grad(&dy_host, &w_host, &mut dx))
        });
        let mut dw = vec![0.0; len(weight)];
        group.bench_function(BenchmarkId::new("im2col_sgemm", "WeightGrad"), |bench| {
            bench.iter(|| cpu.weight_grad(&x_host, &dy_host, &mut dw))
        });
        group.finish();
    }
}

/// The CNN of `--preset cnn` training on synthetic digits (SGD, lr 0.01): the device's steps
/// back to back with one wait, and the CPU's.
fn cnn_step(c: &mut Criterion) {
    let device = Device::new().expect("the benchmarks need a GPU adapter (or lavapipe)");
    let examples = 64 * 64;
    let images: Vec<u8> = (0..examples * 784usize)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let labels: Vec<u8> = (0..examples).map(|i| (i % 10) as u8).collect();
    let data = GpuDataset::new(&device, &images, &labels, 784, 10).unwrap();
    let model = Sequential::new(&device, SequentialConfig::lenet()).unwrap();
    let initial: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|(_, t)| t.to_vec().unwrap())
        .collect();
    let lr = 0.01;
    let config = TrainerConfig {
        optimizer: OptimizerConfig::sgd(lr),
        fusion: Fusion::all(),
        epochs: 1_000,
        ..TrainerConfig::lecture()
    };
    let mut trainer = Trainer::new(model, data, config).unwrap();
    trainer.begin_epoch().unwrap();
    trainer.step(0).unwrap();
    device.synchronize().unwrap();

    // The CPU step from the same weights on the same batch ends on the same weights.
    let (scale, shift) = Normalization::default().scale_shift();
    let batch_of = |step: usize| -> (Vec<f32>, Vec<u8>) {
        let order = epoch_order(0, 0, examples);
        let rows = &order[step * 64..(step + 1) * 64];
        let x = rows
            .iter()
            .flat_map(|&r| &images[r as usize * 784..(r as usize + 1) * 784])
            .map(|&b| f32::from(b).mul_add(scale, shift))
            .collect();
        (x, rows.iter().map(|&r| labels[r as usize]).collect())
    };
    let mut cpu = CpuCnn::new(initial, 64);
    let (x, y) = batch_of(0);
    cpu.step(&x, &y, lr);
    for ((name, gpu), cpu) in trainer.model().parameters().iter().zip(&cpu.params) {
        let gpu = gpu.to_vec().unwrap();
        let worst = gpu
            .iter()
            .zip(cpu)
            .map(|(a, b)| (a - b).abs() / (1e-3 + b.abs()))
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-3,
            "{name}: the CPU step differs from the device's ({worst})"
        );
    }
    let mut group = c.benchmark_group("cnn_step");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(64));
    group.bench_function("gpu_fused_step_batch64", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let step = (i as usize) % trainer.steps_per_epoch();
                if step == 0 {
                    trainer.begin_epoch().unwrap();
                }
                trainer.step(step).unwrap();
            }
            device.synchronize().unwrap();
            start.elapsed()
        })
    });
    let (x, y) = batch_of(1);
    group.bench_function("cpu_im2col_sgemm_step_batch64", |bench| {
        bench.iter(|| cpu.step(&x, &y, lr))
    });
    group.finish();
}

criterion_group!(benches, convolutions, cnn_step);
criterion_main!(benches);
