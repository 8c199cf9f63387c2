//! The MNIST data set: finding the four files, validating every byte, and parsing them.
//!
//! Parsing is the `mnist` crate's, but that crate panics on bad input, so it only ever sees
//! files this module has already checked (magic numbers, dimensions, counts, exact length,
//! label range, SHA-256 of the official content). The crate cannot read gzip, so archives are
//! decompressed once into raw files beside them (or into a cache when their directory is
//! read-only), written atomically, and read from there on later loads.

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

/// Where one MNIST file is in a directory: raw, gzip, or both.
struct Found {
    raw: Option<PathBuf>,
    gz: Option<PathBuf>,
}

/// Finds `file` in `dir`, or says what is there instead: nothing, or a directory.
fn locate(dir: &Path, file: &MnistFile) -> Result<Found> {
    let (raw, gz) = (dir.join(file.name), dir.join(format!("{}.gz", file.name)));
    let found = Found {
        raw: raw.is_file().then(|| raw.clone()),
        gz: gz.is_file().then(|| gz.clone()),
    };
    if found.raw.is_some() || found.gz.is_some() {
        return Ok(found);
    }
    if let Some(path) = [&raw, &gz].into_iter().find(|p| p.exists()) {
        return Err(Error::Data {
            path: path.clone(),
            problem: "is a directory (or another non-file), not the MNIST file of that name; \
                      remove it and put the file there"
                .into(),
        });
    }
    Err(Error::Data {
        path: raw,
        problem: format!(
            "missing (looked for {0} and {0}.gz in {1}); put the MNIST files there, point \
             {DATA_DIR_ENV} at a directory that has them, or download them \
             (with the `download` feature, data::download::download_mnist)",
            file.name,
            dir.display()
        ),
    })
}

/// Whether files can be created in `dir`: its permissions allow writing (checked even for a
/// superuser, whom the system would let write anyway) and a probe file can be made there.
fn writable(dir: &Path) -> bool {
    let allowed = std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly());
    allowed && crate::files::check_writable(dir).is_ok()
}

/// Whether `a` was modified after `b` (false when either time is unknown).
fn newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a > b)
}

/// The cache of the read-only data directory `dir`: one per directory (named by a hash of its
/// absolute path), so two directories with different archives never share copies.
fn cache_for(dir: &Path) -> Option<PathBuf> {
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let key = idx::sha256_hex(absolute.to_string_lossy().as_bytes());
    Some(cache_dir()?.join(&key[..16]))
}

/// Where decompressed copies go when a data directory is read-only: a directory per data
/// directory under `$XDG_CACHE_HOME/wgsl-nn/mnist`, else `$HOME/.cache/wgsl-nn/mnist`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("wgsl-nn").join("mnist"))
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

impl MnistFile {
    /// The exact length of the (uncompressed) file.
    pub fn byte_len(&self) -> usize {
        let len = if self.images {
            idx::images_len(self.count, SIDE, SIDE)
        } else {
            idx::labels_len(self.count)
        };
        len.expect("the four MNIST sizes fit in usize")
    }
}

/// The most bytes any MNIST file is read or inflated to (the training images' length): a file
/// that would be longer is refused before it takes more memory, and anything shorter is read
/// whole so that validation can say what it is (a labels file in an images file's place, say).
pub fn read_limit() -> usize {
    FILES.iter().map(MnistFile::byte_len).max().unwrap_or(0)
}

impl Mnist {
    /// Loads and validates the four files from `dir` (raw or `.gz`).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, LoadOptions::default())
    }

    /// Like [`Mnist::load`], with options.
    ///
    /// The `mnist` crate reads raw files, so `.gz` files are decompressed once, into `dir`
    /// itself when it is writable (as torchvision keeps its raw files beside the archives),
    /// else into [`cache_dir`]; later loads read those copies and decompress nothing. Every
    /// byte is validated on every load before the crate sees it.
    pub fn load_with(dir: &Path, options: LoadOptions) -> Result<Self> {
        if !dir.is_dir() {
            let problem = if dir.exists() {
                "is not a directory; the MNIST data directory must hold the four MNIST files"
            } else {
                "no such directory. Put the four MNIST files there (raw or .gz), point \
                 MNIST_DIR at a directory that has them, or download them \
                 (with the `download` feature, data::download::download_mnist)"
            };
            return Err(Error::Data {
                path: dir.to_path_buf(),
                problem: problem.into(),
            });
        }
        let found = FILES
            .iter()
            .map(|file| locate(dir, file))
            .collect::<Result<Vec<_>>>()?;
        // Raw files beside the archives, at least as new as them, are used where they are; a
        // copy is made (beside the archives if that directory is writable, else in a cache
        // of its own for that directory) only where one is missing or older than its archive.
        let fresh = |raw: &Path, f: &Found| f.gz.as_ref().is_none_or(|gz| !newer(gz, raw));
        let in_place = found
            .iter()
            .all(|f| f.raw.as_ref().is_some_and(|raw| fresh(raw, f)));
        let dir_writable = writable(dir);
        let raw_dir = if in_place || dir_writable {
            dir.to_path_buf()
        } else {
            cache_for(dir).ok_or_else(|| Error::Data {
                path: dir.to_path_buf(),
                problem: "is read-only and there is no cache directory ($XDG_CACHE_HOME or \
                          $HOME) to decompress the .gz files into; decompress them into a \
                          writable directory and load from there"
                    .into(),
            })?
        };
        // Held while copies are checked and written: concurrent loads wait, then find them.
        let _lock = if in_place && !dir_writable {
            None
        } else {
            let lock = crate::files::DirLock::acquire(&raw_dir)?;
            crate::files::remove_stale_temporaries(&raw_dir)?;
            Some(lock)
        };
        for (file, found) in FILES.iter().zip(&found) {
            let raw_path = raw_dir.join(file.name);
            if raw_path.is_file() && fresh(&raw_path, found) {
                let raw = idx::read_maybe_gz_limited(&raw_path, read_limit())?;
                match validate_file(&raw_path, file, &raw, options.verify_checksums) {
                    Ok(()) => continue,
                    // A bad raw file with its archive beside it (a copy of ours, damaged) is
                    // made again from the archive; a bad raw file alone is an error.
                    Err(error) if found.gz.is_none() => return Err(error),
                    Err(_) => {}
                }
            }
            let source = found.gz.as_ref().or(found.raw.as_ref()).expect("located");
            let raw = idx::read_maybe_gz_limited(source, read_limit())?;
            validate_file(source, file, &raw, options.verify_checksums)?;
            crate::files::write_atomically(&raw_path, &raw)?;
        }
        let base = raw_dir.to_str().ok_or_else(|| Error::Data {
            path: raw_dir.clone(),
            problem: "the path is not UTF-8, which the mnist crate needs; use another directory"
                .into(),
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

    /// Validates and parses the four files from their bytes, each raw or gzip, in [`FILES`]
    /// order: what a page fetched, where there is no file system. The same checks as
    /// [`Mnist::load_with`] (magic numbers, dimensions, counts, exact length, label range,
    /// SHA-256 unless turned off), and no `.gz` is inflated past the file's official length.
    /// Errors name the file; none panics.
    pub fn from_bytes(files: [&[u8]; 4], options: LoadOptions) -> Result<Self> {
        let mut parts = FILES.iter().zip(files).map(|(file, bytes)| {
            let path = Path::new(file.name);
            let mut raw = if idx::is_gzip(bytes) {
                idx::decompress_limited(path, bytes, file.byte_len())?
            } else {
                bytes.to_vec()
            };
            validate_file(path, file, &raw, options.verify_checksums)?;
            let header = if file.images {
                idx::IMAGES_HEADER_LEN
            } else {
                idx::LABELS_HEADER_LEN
            };
            raw.drain(..header);
            Ok(raw)
        });
        let mut next = || parts.next().expect("four files");
        Ok(Self {
            train_images: next()?,
            train_labels: next()?,
            test_images: next()?,
            test_labels: next()?,
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
