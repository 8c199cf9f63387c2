//! Helpers shared by the integration tests: the GPU-or-fail device, random data and the
//! error bounds the GPU results are held to.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::OnceLock;

use rand::{Rng, SeedableRng, rngs::StdRng};
use wgsl_nn::Device;
use wgsl_nn::data::gpu::GpuDataset;
use wgsl_nn::data::mnist::{CLASSES, Mnist, PIXELS, resolve_data_dir};

/// The bounds are the library's (`wgsl_nn::cpu::tolerance`), which the in-browser kernels
/// check uses too.
#[allow(unused_imports)] // each test binary uses a different subset
pub use wgsl_nn::cpu::tolerance::{F32_UNIT_ROUNDOFF, check_within, gamma};

fn open_device() -> Device {
    Device::new().unwrap_or_else(|error| {
        panic!(
            "these tests need a GPU adapter and none could be opened: {error}\n\
             (they fail rather than skip, so a missing driver is never mistaken for a pass)"
        )
    })
}

/// One device shared by the tests of a binary, so pipelines compile once.
pub fn gpu() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(open_device)
}

/// A device of its own, for tests that count or break things.
pub fn fresh_gpu() -> Device {
    open_device()
}

/// A seeded generator, so failures reproduce.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `len` values uniform in [-1, 1).
pub fn random_vec(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The real MNIST, loaded once per test binary (`MNIST_DIR`).
pub fn mnist() -> &'static Mnist {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    DATA.get_or_init(|| {
        let (dir, _) = resolve_data_dir(None);
        Mnist::load(&dir)
            .unwrap_or_else(|e| panic!("these tests need the real MNIST (set MNIST_DIR): {e}"))
    })
}

/// The first `limit` examples of the training (`train`) or test set, on `device`.
pub fn dataset(device: &Device, train: bool, limit: usize) -> GpuDataset {
    let m = mnist();
    let (images, labels) = if train {
        (&m.train_images, &m.train_labels)
    } else {
        (&m.test_images, &m.test_labels)
    };
    GpuDataset::new(
        device,
        &images[..limit * PIXELS],
        &labels[..limit],
        PIXELS,
        CLASSES,
    )
    .unwrap()
}
