//! Helpers shared by the integration tests: the GPU-or-fail device, random data, the real
//! MNIST (loaded, or as its official archives) and the error bounds the GPU results are held
//! to.
#![allow(dead_code)] // each test binary uses a different subset

pub mod gradcheck;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rand::{Rng, SeedableRng, rngs::StdRng};
use wgsl_nn::Device;
use wgsl_nn::data::gpu::GpuDataset;
use wgsl_nn::data::mnist::{CLASSES, FILES, Mnist, PIXELS, find_file, resolve_data_dir};

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

/// The four official archives (`NAME.gz` → gzip bytes) of the MNIST in `dir`, whatever else
/// the directory holds: the `.gz` file where there is one (even when a load has decompressed
/// it beside itself, as the loader does in a writable directory), else the raw copy,
/// compressed here. The downloader checks the decompressed content's SHA-256, so either
/// serves as what a mirror would send.
pub fn official_archives(dir: &Path) -> Vec<(String, Vec<u8>)> {
    FILES
        .iter()
        .map(|file| {
            let name = format!("{}.gz", file.name);
            let archive = dir.join(&name);
            let bytes = if archive.is_file() {
                std::fs::read(&archive).unwrap()
            } else {
                let raw = find_file(dir, file).unwrap_or_else(|| {
                    panic!(
                        "these tests need the real MNIST (set MNIST_DIR): no {} or {name} in {}",
                        file.name,
                        dir.display()
                    )
                });
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&std::fs::read(raw).unwrap()).unwrap();
                encoder.finish().unwrap()
            };
            assert!(
                bytes.starts_with(&[0x1f, 0x8b]),
                "{} should be gzip",
                archive.display()
            );
            (name, bytes)
        })
        .collect()
}

/// A writable directory holding only the four official archives of the real MNIST
/// (`MNIST_DIR`), as a fresh download leaves it.
pub fn archives_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for (name, bytes) in official_archives(&resolve_data_dir(None).0) {
        std::fs::write(copy.path().join(name), bytes).unwrap();
    }
    copy
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

/// The example `name`'s binary, built in the profile these tests run in (cargo builds
/// examples for `cargo test`, but does not say where; this finds them).
pub fn example(name: &str) -> PathBuf {
    examples(&[name]).remove(0)
}

/// The binaries of `names`, those not yet built by this test binary built by one cargo command.
pub fn examples(names: &[&str]) -> Vec<PathBuf> {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let test_exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let profile_dir = test_exe.parent().unwrap().parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "test",
        Some(other) => other,
    };
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !built.iter().any(|b| b == name))
        .collect();
    if !missing.is_empty() {
        let mut command = Command::new(env!("CARGO"));
        command.args(["build", "--quiet", "--profile", profile]);
        for name in &missing {
            command.args(["--example", name]);
        }
        let status = command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the examples {missing:?} failed");
        built.extend(missing.iter().map(|n| n.to_string()));
    }
    names
        .iter()
        .map(|name| {
            let binary = profile_dir
                .join("examples")
                .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            assert!(binary.is_file(), "no example at {}", binary.display());
            binary
        })
        .collect()
}
