//! Files written whole or not at all: atomic replacement, sets of files, the umask's modes,
//! the removal of a killed process's temporaries; and MNIST decompressed once, not per run.

mod common;

use std::path::Path;

use common::archives_copy;
use wgsl_nn::data::mnist::{FILES, Mnist};
use wgsl_nn::files::{check_writable, remove_stale_temporaries, write_atomically, write_set};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_set_is_written_whole_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.json"), b"old").unwrap();
    let written = write_set(dir.path(), &[("a.bin", b"first"), ("b.json", b"second")]).unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), b"first");
    assert_eq!(std::fs::read(dir.path().join("b.json")).unwrap(), b"second");
    assert_eq!(names(dir.path()), ["a.bin", "b.json"]);
}

#[test]
fn a_set_that_cannot_be_written_whole_replaces_nothing_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.bin"), b"old").unwrap();
    // The second file's place is taken by a directory: the rename would fail after the first
    // had replaced its file, so the set must be refused before any rename.
    std::fs::create_dir(dir.path().join("b.json")).unwrap();
    let error = write_set(dir.path(), &[("a.bin", b"new"), ("b.json", b"new")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("b.json") && error.contains("is a directory"),
        "{error}"
    );
    assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), b"old");
    assert_eq!(names(dir.path()), ["a.bin", "b.json"]);
    // An output directory that is a file: nothing can be staged.
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let error = write_set(&file, &[("a.bin", b"new")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a directory"), "{error}");
}

#[cfg(unix)]
#[test]
fn files_get_the_mode_the_umask_gives_not_a_private_temporarys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let reference = dir.path().join("reference");
    std::fs::write(&reference, b"").unwrap();
    let atomic = dir.path().join("atomic");
    write_atomically(&atomic, b"x").unwrap();
    write_set(dir.path(), &[("set", b"y")]).unwrap();
    assert_eq!(mode(&atomic), mode(&reference));
    assert_eq!(mode(&dir.path().join("set")), mode(&reference));
}

#[test]
fn stale_temporaries_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        ".wgsl-nn-abc.tmp",
        ".wgsl-nn-x.tmp",
        "keep.tmp",
        ".wgsl-nn-keep",
        "model.bin",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    std::fs::create_dir(dir.path().join(".wgsl-nn-dir.tmp")).unwrap();
    assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 2);
    assert_eq!(
        names(dir.path()),
        [".wgsl-nn-dir.tmp", ".wgsl-nn-keep", "keep.tmp", "model.bin"]
    );
}

#[test]
fn an_unusable_output_directory_is_found_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let error = check_writable(&file).unwrap_err().to_string();
    assert!(
        error.contains("file") && error.contains("not a directory"),
        "{error}"
    );
    let below = file.join("sub");
    let error = check_writable(&below).unwrap_err().to_string();
    assert!(error.contains("sub"), "{error}");
    check_writable(&dir.path().join("new/nested")).unwrap();
}

#[test]
fn mnist_is_decompressed_once_beside_the_archives_and_read_from_there_after() {
    let dir = archives_copy();
    let first = Mnist::load(dir.path()).unwrap();
    let raw = dir.path().join(FILES[0].name);
    assert!(
        raw.is_file(),
        "no raw copy beside the archive: {:?}",
        names(dir.path())
    );
    let written = std::fs::metadata(&raw).unwrap().modified().unwrap();
    let second = Mnist::load(dir.path()).unwrap();
    assert_eq!(
        std::fs::metadata(&raw).unwrap().modified().unwrap(),
        written,
        "the second load wrote the copy again"
    );
    assert_eq!(first.train_labels, second.train_labels);
    assert_eq!(first.test_images, second.test_images);
    assert!(
        names(dir.path()).iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        names(dir.path())
    );
    // A damaged copy is made again from its archive.
    std::fs::write(&raw, b"damaged").unwrap();
    let third = Mnist::load(dir.path()).unwrap();
    assert_eq!(third.train_images, first.train_images);
}

#[test]
fn a_directory_in_place_of_a_data_file_is_called_a_directory_not_missing() {
    let dir = archives_copy();
    let name = format!("{}.gz", FILES[1].name);
    std::fs::remove_file(dir.path().join(&name)).unwrap();
    std::fs::create_dir(dir.path().join(&name)).unwrap();
    let error = Mnist::load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("is a directory"), "{error}");
    assert!(!error.contains("missing"), "{error}");
}

#[test]
fn a_directory_is_written_by_one_run_at_a_time() {
    use wgsl_nn::files::DirLock;
    let dir = tempfile::tempdir().unwrap();
    let first = DirLock::try_acquire(dir.path()).unwrap();
    let error = DirLock::try_acquire(dir.path()).unwrap_err().to_string();
    assert!(error.contains("another run"), "{error}");
    drop(first);
    DirLock::try_acquire(dir.path()).unwrap();
}
