//! Multiplies two random matrices on the GPU, times it, and checks the product against the
//! CPU.
//!
//! `cargo run --release --example matmul -- [M K N] [--form ab|atb|abt] [--kernel K] [--runs R]`
//! (default 512 512 512, `A·B`, the device's choice, 5 runs): GFLOP/s is the median of the
//! timed runs, each one submit and its wait.

use std::time::Instant;

use clap::{Parser, ValueEnum};
use wgsl_nn::matmul::{Matmul, MatmulForm, MatmulKernel, MatmulOptions};
use wgsl_nn::{Device, Shape, Tensor, cpu};

/// The product's form.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Form {
    /// A·B.
    Ab,
    /// Aᵀ·B (A stored K×M).
    Atb,
    /// A·Bᵀ (B stored N×K).
    Abt,
}

/// A kernel family (see `MatmulKernel`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kernel {
    Blocked,
    Tiled,
    Texture,
    Vector,
    Broadcast,
}

/// Multiplies an M×K by a K×N random matrix on the GPU, times it, and checks the product
/// against the CPU.
#[derive(Debug, Parser)]
struct Args {
    /// The sizes M K N: all three, or none for 512 512 512.
    #[arg(num_args = 3, value_names = ["M", "K", "N"], default_values_t = [512, 512, 512])]
    sizes: Vec<usize>,
    /// The product.
    #[arg(long, value_enum, default_value = "ab")]
    form: Form,
    /// The kernel family [default: the device's choice].
    #[arg(long, value_enum)]
    kernel: Option<Kernel>,
    /// Timed runs (after two untimed ones); GFLOP/s is their median.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
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
    println!(
        "adapter: {} (profile {})",
        device.adapter(),
        device.profile()
    );
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
    let (form, a_shape, b_shape) = match args.form {
        Form::Ab => (MatmulForm::AB, [m, k], [k, n]),
        Form::Atb => (MatmulForm::AtB, [k, m], [k, n]),
        Form::Abt => (MatmulForm::ABt, [m, k], [n, k]),
    };
    let kernel = args.kernel.map(|kernel| match kernel {
        Kernel::Blocked => MatmulKernel::Blocked,
        Kernel::Tiled => MatmulKernel::Tiled,
        Kernel::Texture => MatmulKernel::Texture,
        Kernel::Vector => MatmulKernel::Vector,
        Kernel::Broadcast => MatmulKernel::Broadcast,
    });
    let (a_host, b_host) = (random(m * k)?, random(k * n)?);
    let a = Tensor::from_slice(&device, &a_host, a_shape)?;
    let b = Tensor::from_slice(&device, &b_host, b_shape)?;
    let c = Tensor::uninit(&device, [m, n])?;
    let options = MatmulOptions {
        kernel,
        ..MatmulOptions::form(form)
    };
    let plan = Matmul::new(&a, &b, &c, &options)?;

    // The first dispatch compiles the pipeline; two untimed runs, then the timed ones.
    let run_once = || -> Result<f64, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let mut encoder = device.encoder();
        plan.record(&mut encoder);
        encoder.submit()?;
        device.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    };
    for _ in 0..2 {
        run_once()?;
    }
    let mut times = (0..args.runs)
        .map(|_| run_once())
        .collect::<Result<Vec<f64>, _>>()?;
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];

    let gpu = c.to_vec()?;
    let reference = cpu::matmul(&a_host, &b_host, None, form, m, k, n);
    let max_error = gpu
        .iter()
        .zip(&reference)
        .map(|(g, r)| (g - r).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{m}x{k}x{n} {form:?} with the {:?} kernel: median of {} runs {:.3} ms, {:.2} GFLOP/s, \
         max |GPU - CPU| = {max_error:.3e}",
        plan.kernel(),
        args.runs,
        seconds * 1e3,
        2.0 * m as f64 * k as f64 * n as f64 / seconds / 1e9
    );
    Ok(())
}
