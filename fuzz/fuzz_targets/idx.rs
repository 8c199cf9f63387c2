//! The IDX parsers on arbitrary bytes (raw or gzip): never a panic, an abort or an
//! allocation past `-malloc_limit_mb`; a value only of the requested shape, equal to the
//! input's payload when the input is raw.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wgsl_nn::Error;
use wgsl_nn::data::idx::{
    IMAGES_HEADER_LEN, IMAGES_MAGIC, LABELS_HEADER_LEN, LABELS_MAGIC, images_len, is_gzip,
    labels_len, parse_images, parse_labels,
};

const NAME: &str = "fuzz-input";

fn be_u32(data: &[u8], at: usize) -> usize {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize
}

/// Parses `data` as `count` images of `rows × cols`; returns whether it parsed.
fn images(data: &[u8], count: usize, rows: usize, cols: usize) -> bool {
    match parse_images(Path::new(NAME), data, count, rows, cols) {
        Ok(pixels) => {
            assert_eq!(pixels.len(), count * rows * cols);
            if !is_gzip(data) {
                assert_eq!(pixels, data[IMAGES_HEADER_LEN..]);
            }
            true
        }
        Err(Error::Data { path, .. }) => {
            assert_eq!(path, Path::new(NAME));
            false
        }
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

/// Parses `data` as `count` labels below `classes`; returns whether it parsed.
fn labels(data: &[u8], count: usize, classes: u8) -> bool {
    match parse_labels(Path::new(NAME), data, count, classes) {
        Ok(labels) => {
            assert_eq!(labels.len(), count);
            assert!(labels.iter().all(|&l| l < classes));
            if !is_gzip(data) {
                assert_eq!(labels, data[LABELS_HEADER_LEN..]);
            }
            true
        }
        Err(Error::Data { path, .. }) => {
            assert_eq!(path, Path::new(NAME));
            false
        }
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // The loader's shapes (limits of 47 MB and 7.8 MB: a small input must not get near them),
    // and the seeds' shape, so that valid files are reachable.
    for (count, rows, cols) in [(60_000, 28, 28), (10_000, 28, 28), (3, 28, 28)] {
        images(data, count, rows, cols);
    }
    for count in [60_000, 10_000, 3] {
        labels(data, count, 10);
    }
    // The shape a raw input's own header claims, when small: it parses exactly when the
    // magic and length are right.
    if data.len() >= IMAGES_HEADER_LEN && !is_gzip(data) {
        let (n, r, c) = (be_u32(data, 4), be_u32(data, 8), be_u32(data, 12));
        if let Some(len) = images_len(n, r, c).filter(|&len| len <= 1 << 20) {
            let valid = be_u32(data, 0) == IMAGES_MAGIC as usize && len == data.len();
            assert_eq!(images(data, n, r, c), valid);
        }
    }
    if data.len() >= LABELS_HEADER_LEN && !is_gzip(data) {
        let n = be_u32(data, 4);
        if n <= 1 << 20 {
            let valid = be_u32(data, 0) == LABELS_MAGIC as usize
                && labels_len(n) == Some(data.len())
                && !data[LABELS_HEADER_LEN..].contains(&u8::MAX);
            assert_eq!(labels(data, n, u8::MAX), valid);
        }
    }
    // A `.gz` name demands gzip content.
    if let Ok(labels) = parse_labels(Path::new("fuzz-input.gz"), data, 3, 10) {
        assert!(is_gzip(data) && labels.len() == 3);
    }
});
