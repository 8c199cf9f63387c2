//! Multiplies two random matrices on the GPU and checks the product against the CPU.
//!
//! `cargo run --release --example matmul -- [M K N]` (default 512 512 512).

use std::time::Instant;

use clap::Parser;
use wgsl_nn::matmul::{Matmul, MatmulOptions};
use wgsl_nn::{Device, Shape, Tensor, cpu};

/// Multiplies an M×K by a K×N random matrix on the GPU, times it, and checks the product
/// against the CPU.
#[derive(Debug, Parser)]
struct Args {
    /// The sizes M K N: all three, or none for 512 512 512.
    #[arg(num_args = 3, value_names = ["M", "K", "N"], default_values_t = [512, 512, 512])]
    sizes: Vec<usize>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init(); // RUST_LOG=info shows the adapter choice and wgpu's messages
    let [m, k, n] = args.sizes[..] else {
        return Err("expected three sizes M K N".into());
    };

    let device = Device::new()?;
    println!("adapter: {}", device.adapter());
    // Every size against the device before any memory is allocated for it, host or device.
    for shape in [[m, k], [k, n], [m, n]] {
        device.check_tensor_size(&Shape::new(shape))?;
    }

    // A fixed-seed xorshift keeps the example free of extra dependencies.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = |len: usize| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let mut values = Vec::new();
        values
            .try_reserve_exact(len)
            .map_err(|e| format!("cannot allocate {len} host values: {e}"))?;
        values.extend((0..len).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }));
        Ok(values)
    };
    let (a_host, b_host) = (random(m * k)?, random(k * n)?);
    let a = Tensor::from_slice(&device, &a_host, [m, k])?;
    let b = Tensor::from_slice(&device, &b_host, [k, n])?;
    let c = Tensor::uninit(&device, [m, n])?;
    let plan = Matmul::new(&a, &b, &c, &MatmulOptions::default())?;

    // The first dispatch compiles the pipeline; time the second.
    for _ in 0..2 {
        let mut encoder = device.encoder();
        plan.record(&mut encoder);
        encoder.submit()?;
        device.synchronize()?;
    }
    let start = Instant::now();
    let mut encoder = device.encoder();
    plan.record(&mut encoder);
    encoder.submit()?;
    device.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();

    let gpu = c.to_vec()?;
    let reference = cpu::matmul(&a_host, &b_host, None, Default::default(), m, k, n);
    let max_error = gpu
        .iter()
        .zip(&reference)
        .map(|(g, r)| (g - r).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{m}x{k} · {k}x{n} with the {:?} kernel: {:.3} ms, {:.2} GFLOP/s, max |GPU - CPU| = {max_error:.3e}",
        plan.kernel(),
        seconds * 1e3,
        2.0 * m as f64 * k as f64 * n as f64 / seconds / 1e9
    );
    Ok(())
}
