//! What the benchmarks share: deterministic data in [-0.5, 0.5), and timing prepared GPU work
//! recorded many times to a submit.

use std::time::{Duration, Instant};

use wgsl_nn::{Device, Encoder};

/// `len` values in [-0.5, 0.5) from a multiplicative hash of the index and `seed`.
pub fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1 << 24) as f32
                - 0.5
        })
        .collect()
}

/// Times `iters` calls of `record`, `per_submit` to a submit, one wait at the end.
pub fn time_gpu(
    device: &Device,
    iters: u64,
    per_submit: u64,
    mut record: impl FnMut(&mut Encoder),
) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let batch = left.min(per_submit.max(1));
        let mut encoder = device.encoder();
        for _ in 0..batch {
            record(&mut encoder);
        }
        encoder.submit().unwrap();
        left -= batch;
    }
    device.synchronize().unwrap();
    start.elapsed()
}
