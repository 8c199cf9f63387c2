//! Matmul throughput: the GPU kernels against the CPU oracle and matrixmultiply's sgemm.
//!
//! Throughput is counted in FLOPs (2·M·N·K), so criterion's "elem/s" reads as FLOP/s. A GPU
//! sample times products of already-uploaded data recorded [`PER_SUBMIT`] to a submit, through
//! completion, after a warm-up that compiles the pipeline: the kernel's throughput as a
//! training step sees it, not one submit-and-wait round trip (~0.2 ms on lavapipe, timed by
//! `dispatch_overhead`, which also times 1 and 64 tiny dispatches per submit: the difference
//! over 63 is the cost of one dispatch).

#[path = "support/timing.rs"]
mod timing;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use timing::{data, time_gpu};
use wgsl_nn::matmul::{Matmul, MatmulDims, MatmulForm, MatmulKernel, MatmulOptions};
use wgsl_nn::{Device, Tensor, cpu};

/// (M, K, N): the MNIST MLP's forward, weight-gradient and input-gradient products, and a cube.
const SHAPES: [(usize, usize, usize); 4] = [
    (64, 784, 128),
    (784, 64, 128),
    (128, 64, 784),
    (1024, 1024, 1024),
];

/// Products recorded into one submit.
const PER_SUBMIT: u64 = 16;

fn matmul_benches(c: &mut Criterion) {
    let device = Device::new().expect("the benchmarks need a GPU adapter (or lavapipe)");
    eprintln!("adapter: {}", device.adapter());
    for (m, k, n) in SHAPES {
        let mut group = c.benchmark_group(format!("matmul/{m}x{k}x{n}"));
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));

        let a_host = data(m * k, 1);
        let b_host = data(k * n, 2);
        let broadcast = wgsl_nn::matmul::broadcast::available(&device);
        for kernel in MatmulKernel::ALL.into_iter().chain(MatmulKernel::ALIGNED) {
            for form in MatmulForm::ALL {
                if !kernel.supports(form, MatmulDims { m, k, n })
                    || (kernel == MatmulKernel::Broadcast && !broadcast)
                {
                    continue;
                }
                // The stored shapes differ by form; the data is the same.
                let a_shape = if form.trans_a() { [k, m] } else { [m, k] };
                let b_shape = if form.trans_b() { [n, k] } else { [k, n] };
                let a = Tensor::from_slice(&device, &a_host, a_shape).unwrap();
                let b = Tensor::from_slice(&device, &b_host, b_shape).unwrap();
                let out = Tensor::uninit(&device, [m, n]).unwrap();
                let options = MatmulOptions {
                    form,
                    kernel: Some(kernel),
                    ..Default::default()
                };
                let plan = Matmul::new(&a, &b, &out, &options).unwrap();
                time_gpu(&device, 1, PER_SUBMIT, |e| plan.record(e)); // compile and warm up
                let id = BenchmarkId::new(format!("gpu_{kernel:?}"), format!("{form:?}"));
                group.bench_function(id, |bench| {
                    bench.iter_custom(|iters| {
                        time_gpu(&device, iters, PER_SUBMIT, |e| plan.record(e))
                    })
                });
            }
        }
        group.bench_function("cpu_reference", |bench| {
            bench.iter(|| cpu::matmul(&a_host, &b_host, None, MatmulForm::AB, m, k, n))
        });
        let mut out = vec![0.0f32; m * n];
        group.bench_function("matrixmultiply_sgemm", |bench| {
            bench.iter(|| unsafe {
                // Row-major strides: A is M×K (k, 1), B is K×N (n, 1), C is M×N (n, 1).
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a_host.as_ptr(),
                    k as isize,
                    1,
                    b_host.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    out.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
        group.finish();
    }
}

fn dispatch_overhead(c: &mut Criterion) {
    let device = Device::new().expect("the benchmarks need a GPU adapter (or lavapipe)");
    let a = Tensor::from_slice(&device, &[1.0], [1, 1]).unwrap();
    let b = Tensor::from_slice(&device, &[1.0], [1, 1]).unwrap();
    let out = Tensor::uninit(&device, [1, 1]).unwrap();
    // The blocked kernel is a single dispatch on every device.
    let options = MatmulOptions {
        kernel: Some(MatmulKernel::Blocked),
        ..Default::default()
    };
    let plan = Matmul::new(&a, &b, &out, &options).unwrap();
    time_gpu(&device, 1, PER_SUBMIT, |e| plan.record(e));
    let mut group = c.benchmark_group("dispatch_overhead");
    group.sample_size(20);
    for dispatches in [1u64, 64] {
        group.bench_function(
            BenchmarkId::new("dispatches_per_submit", dispatches),
            |bench| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut encoder = device.encoder();
                        for _ in 0..dispatches {
                            plan.record(&mut encoder);
                        }
                        encoder.submit().unwrap();
                        device.synchronize().unwrap();
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, matmul_benches, dispatch_overhead);
criterion_main!(benches);
