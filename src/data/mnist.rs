//! The MNIST data set: finding the four files, validating every byte, and parsing them.
//!
//! Parsing is the `mnist` crate's, but that crate panics on bad input, so it only ever sees
//! files this module has already checked (magic numbers, dimensions, counts, exact length,
//! label range, SHA-256 of the official content), written raw into a private temporary
//! directory (the crate cannot read gzip).

use std::path::{Path, PathBuf};

use super::idx;
use crate::{Error, Result};

/// Pixels per side of an MNIST image.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes (digits).
pub const CLASSES: usize = 10;
/// Environment variable naming the directory with the MNIST files.
pub const DATA_DIR_ENV: &str = "MNIST_DIR";
/// Directory used when neither `--data-dir` nor `MNIST_DIR` is given.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// One of the four MNIST files.
#[derive(Clone, Copy, Debug)]
pub struct MnistFile {
    /// The official (uncompressed) name; the download adds `.gz`.
    pub name: &'static str,
    /// Images or labels in it.
    pub count: usize,
    /// Whether it holds images (else labels).
    pub images: bool,
    /// SHA-256 of the official uncompressed content.
    pub sha256: &'static str,
}

/// The four files, in the order training images, training labels, test images, test labels.
pub const FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        count: 60_000,
        images: true,
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        count: 60_000,
        images: false,
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        count: 10_000,
        images: true,
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        count: 10_000,
        images: false,
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Where the data directory came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirSource {
    /// `--data-dir`.
    Flag,
    /// The `MNIST_DIR` environment variable.
    Env,
    /// The default, `data/mnist`.
    Default,
}

/// The data directory: `explicit` (`--data-dir`), else `MNIST_DIR`, else `data/mnist`.
pub fn resolve_data_dir(explicit: Option<&Path>) -> (PathBuf, DataDirSource) {
    if let Some(dir) = explicit {
        return (dir.to_path_buf(), DataDirSource::Flag);
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), DataDirSource::Env),
        _ => (PathBuf::from(DEFAULT_DATA_DIR), DataDirSource::Default),
    }
}

/// How to load.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Compare each file's content with the official SHA-256 (default true).
    pub verify_checksums: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            verify_checksums: true,
        }
    }
}

/// MNIST in memory: pixels as bytes (row-major, 784 per image) and labels as bytes.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 × 784 pixels.
    pub train_images: Vec<u8>,
    /// 60,000 labels.
    pub train_labels: Vec<u8>,
    /// 10,000 × 784 pixels.
    pub test_images: Vec<u8>,
    /// 10,000 labels.
    pub test_labels: Vec<u8>,
}

/// The path of `file` in `dir`, raw or gzip, if either exists.
pub fn find_file(dir: &Path, file: &MnistFile) -> Option<PathBuf> {
    idx::first_existing(&[dir.join(file.name), dir.join(format!("{}.gz", file.name))])
}

/// Checks one file's content (already decompressed) against what MNIST must be.
pub fn validate_file(
    path: &Path,
    file: &MnistFile,
    raw: &[u8],
    verify_checksum: bool,
) -> Result<()> {
    if file.images {
        idx::validate_images(path, raw, file.count, SIDE, SIDE)?;
    } else {
        idx::validate_labels(path, raw, file.count, CLASSES as u8)?;
    }
    if verify_checksum {
        let digest = idx::sha256_hex(raw);
        if digest != file.sha256 {
            return Err(Error::Data {
                path: path.to_path_buf(),
                problem: format!(
                    "content SHA-256 {digest} differs from the official {} (a modified or corrupted \
                     copy); delete it and download it again",
                    file.sha256
                ),
            });
        }
    }
    Ok(())
}

impl Mnist {
    /// Loads and validates the four files from `dir` (raw or `.gz`).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, LoadOptions::default())
    }

    /// Like [`Mnist::load`], with options.
    pub fn load_with(dir: &Path, options: LoadOptions) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Data {
                path: dir.to_path_buf(),
                problem: format!(
                    "no such directory. Put the four MNIST files there (raw or .gz), point \
                     {DATA_DIR_ENV} or --data-dir at a directory that has them, or let the mnist \
                     example download them"
                ),
            });
        }
        // The mnist crate reads raw files from a directory: give it validated copies.
        let staging = tempfile::Builder::new()
            .prefix("wgsl-nn-mnist")
            .tempdir()
            .map_err(|e| Error::Data {
                path: std::env::temp_dir(),
                problem: format!("cannot create a temporary directory: {e}"),
            })?;
        for file in &FILES {
            let path = find_file(dir, file).ok_or_else(|| Error::Data {
                path: dir.join(file.name),
                problem: format!(
                    "missing (looked for {0} and {0}.gz in {1}); download it or point {DATA_DIR_ENV} \
                     at a directory that has it",
                    file.name,
                    dir.display()
                ),
            })?;
            let raw = idx::read_maybe_gz(&path)?;
            validate_file(&path, file, &raw, options.verify_checksums)?;
            let copy = staging.path().join(file.name);
            std::fs::write(&copy, &raw).map_err(|e| Error::Data {
                path: copy.clone(),
                problem: format!("cannot write: {e}"),
            })?;
        }
        let base = staging.path().to_str().ok_or_else(|| Error::Data {
            path: staging.path().to_path_buf(),
            problem: "the temporary directory's path is not UTF-8".into(),
        })?;
        let parsed = mnist::MnistBuilder::new()
            .base_path(base)
            .training_set_length(FILES[0].count as u32)
            .test_set_length(FILES[2].count as u32)
            .finalize();
        Ok(Self {
            train_images: parsed.trn_img,
            train_labels: parsed.trn_lbl,
            test_images: parsed.tst_img,
            test_labels: parsed.tst_lbl,
        })
    }

    /// Keeps the first `train` training and `test` test examples (for quick runs).
    pub fn truncate(&mut self, train: Option<usize>, test: Option<usize>) {
        if let Some(n) = train {
            let n = n.min(self.train_len());
            self.train_images.truncate(n * PIXELS);
            self.train_labels.truncate(n);
        }
        if let Some(n) = test {
            let n = n.min(self.test_len());
            self.test_images.truncate(n * PIXELS);
            self.test_labels.truncate(n);
        }
    }

    /// Training examples.
    pub fn train_len(&self) -> usize {
        self.train_labels.len()
    }

    /// Test examples.
    pub fn test_len(&self) -> usize {
        self.test_labels.len()
    }
}
