//! MNIST loading: the real files load and check out; every bad input is a clear error, never
//! a panic. The real data comes from `MNIST_DIR` (CI points it at ../shared/data/mnist).

use std::path::{Path, PathBuf};

use wgsl_nn::Error;
use wgsl_nn::data::idx::read_maybe_gz;
use wgsl_nn::data::mnist::{DATA_DIR_ENV, FILES, Mnist, find_file, resolve_data_dir};

fn real_dir() -> PathBuf {
    let (dir, _) = resolve_data_dir(None);
    assert!(
        find_file(&dir, &FILES[0]).is_some(),
        "these tests need the real MNIST: set {DATA_DIR_ENV} (e.g. ../shared/data/mnist); looked in {}",
        dir.display()
    );
    dir
}

/// A temporary copy of the real files, raw, for corrupting one of them.
fn copy_raw() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in &FILES {
        let raw = read_maybe_gz(&find_file(&real_dir(), file).unwrap()).unwrap();
        std::fs::write(dir.path().join(file.name), raw).unwrap();
    }
    dir
}

fn data_error(dir: &Path) -> (PathBuf, String) {
    match Mnist::load(dir).unwrap_err() {
        Error::Data { path, problem } => (path, problem),
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn real_mnist_loads_with_the_expected_counts_and_labels() {
    let mnist = Mnist::load(&real_dir()).unwrap();
    assert_eq!((mnist.train_len(), mnist.test_len()), (60_000, 10_000));
    assert_eq!(mnist.train_images.len(), 60_000 * 784);
    assert_eq!(mnist.test_images.len(), 10_000 * 784);
    // The first training digit is a 5, the first test digit a 7.
    assert_eq!((mnist.train_labels[0], mnist.test_labels[0]), (5, 7));
    let mut counts = [0usize; 10];
    mnist
        .train_labels
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
}

#[test]
fn missing_directory_says_where_it_looked() {
    let (path, problem) = data_error(Path::new("/nonexistent/mnist"));
    assert_eq!(path, Path::new("/nonexistent/mnist"));
    assert!(
        problem.contains("no such directory") && problem.contains(DATA_DIR_ENV),
        "{problem}"
    );
}

#[test]
fn missing_file_names_both_candidates() {
    let dir = copy_raw();
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let (_, problem) = data_error(dir.path());
    assert!(
        problem.contains("t10k-labels-idx1-ubyte.gz") && problem.contains("missing"),
        "{problem}"
    );
}

#[test]
fn truncated_file_is_an_error() {
    let dir = copy_raw();
    let path = dir.path().join("t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.pop();
    std::fs::write(&path, bytes).unwrap();
    let (bad, problem) = data_error(dir.path());
    assert_eq!(bad, path);
    assert!(
        problem.contains("expected 10008 bytes, found 10007"),
        "{problem}"
    );
}

#[test]
fn wrong_magic_says_what_the_file_looks_like() {
    let dir = copy_raw();
    // An images file where the labels should be.
    std::fs::copy(
        dir.path().join("t10k-images-idx3-ubyte"),
        dir.path().join("t10k-labels-idx1-ubyte"),
    )
    .unwrap();
    let (_, problem) = data_error(dir.path());
    assert!(
        problem.contains("expected magic 2049, found 2051 (is this an images file?)"),
        "{problem}"
    );
}

#[test]
fn label_out_of_range_is_an_error() {
    let dir = copy_raw();
    let path = dir.path().join("t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8 + 3] = 10;
    std::fs::write(&path, bytes).unwrap();
    let (_, problem) = data_error(dir.path());
    assert!(problem.contains("label 10 at index 3"), "{problem}");
}

#[test]
fn gzip_garbage_is_an_error() {
    let dir = copy_raw();
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let path = dir.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&path, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    let (bad, problem) = data_error(dir.path());
    assert_eq!(bad, path);
    assert!(problem.contains("not a valid gzip file"), "{problem}");
}

#[test]
fn checksum_mismatch_is_an_error() {
    let dir = copy_raw();
    let path = dir.path().join("t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = (bytes[8] + 1) % 10; // still a valid label, but not the official file
    std::fs::write(&path, bytes).unwrap();
    let (_, problem) = data_error(dir.path());
    assert!(
        problem.contains("SHA-256") && problem.contains("differs from the official"),
        "{problem}"
    );
    // Structure is fine, so skipping the checksum loads it.
    let options = wgsl_nn::data::mnist::LoadOptions {
        verify_checksums: false,
    };
    assert_eq!(
        Mnist::load_with(dir.path(), options).unwrap().test_len(),
        10_000
    );
}

#[test]
fn truncate_keeps_the_first_examples() {
    let mut mnist = Mnist::load(&real_dir()).unwrap();
    let first = mnist.train_images[..784].to_vec();
    mnist.truncate(Some(100), Some(10));
    assert_eq!((mnist.train_len(), mnist.test_len()), (100, 10));
    assert_eq!(mnist.train_images.len(), 100 * 784);
    assert_eq!(mnist.train_images[..784], first[..]);
}
