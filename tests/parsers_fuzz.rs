//! A bounded fuzzing campaign on the IDX parsers, run by `cargo test`: generated valid files,
//! mutated real headers, truncations, random bytes and gzip variants of each go through
//! `idx::parse_images` and `idx::parse_labels`. Every input must give a value or an
//! `Error::Data` — never a panic — valid files must parse to exactly their payload, and no
//! single allocation made while parsing may exceed what the input justifies (measured by a
//! counting allocator, per thread).
//!
//! `PROPTEST_CASES=N` sets every block's case count for a longer run; `cargo fuzz run idx`
//! (in `fuzz/`) is the open-ended campaign.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use wgsl_nn::Error;
use wgsl_nn::data::idx::{
    self, IMAGES_MAGIC, LABELS_MAGIC, decompress_limited, images_len, labels_len, parse_images,
    parse_labels, read_maybe_gz_limited,
};
use wgsl_nn::data::mnist::resolve_data_dir;

// ---------------------------------------------------------------------------------------------
// The largest single allocation, per thread.

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown are not counted, and never panic.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are noted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `f()` and the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let value = f();
    (value, LARGEST.with(Cell::get))
}

/// What the decompressor allocates whatever its input (miniz_oxide's state with its 32 KiB
/// window, flate2's buffer), measured at about 43 KiB; anything above it must be paid for by
/// the input.
const FIXED_OVERHEAD: usize = 64 * 1024;
/// DEFLATE's largest expansion.
const MAX_DEFLATE_RATIO: usize = 1032;

/// The most one allocation may take while parsing `input` into at most `max_len` bytes: the
/// decoder's fixed state, a copy of the input's payload, or the output, which is capped by
/// `max_len` and by what `input` can decompress to.
fn allocation_bound(input: &[u8], max_len: usize) -> usize {
    FIXED_OVERHEAD
        .max(input.len())
        .max(max_len.min(input.len() * MAX_DEFLATE_RATIO))
}

// ---------------------------------------------------------------------------------------------
// Inputs.

fn images_file(count: usize, rows: usize, cols: usize, pixels: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    for word in [IMAGES_MAGIC, count as u32, rows as u32, cols as u32] {
        file.extend_from_slice(&word.to_be_bytes());
    }
    file.extend_from_slice(pixels);
    file
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    for word in [LABELS_MAGIC, labels.len() as u32] {
        file.extend_from_slice(&word.to_be_bytes());
    }
    file.extend_from_slice(labels);
    file
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level.min(9)));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A valid images file: its shape and pixels.
fn valid_images() -> impl Strategy<Value = (usize, usize, usize, Vec<u8>)> {
    (0usize..5, 0usize..9, 0usize..9).prop_flat_map(|(count, rows, cols)| {
        (
            Just(count),
            Just(rows),
            Just(cols),
            prop::collection::vec(any::<u8>(), count * rows * cols),
        )
    })
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Overwrite(Index, u8),
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Overwrite(i, b)),
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Edit::Flip(i, 1 << bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
    ];
    prop::collection::vec(edit, 1..6)
}

fn mutate(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    for edit in edits {
        if bytes.is_empty() {
            if let Edit::Insert(_, b) | Edit::Overwrite(_, b) = edit {
                bytes.push(*b);
            }
            continue;
        }
        match edit {
            Edit::Overwrite(i, b) => *i.get_mut(&mut bytes) = *b,
            Edit::Flip(i, mask) => *i.get_mut(&mut bytes) ^= mask,
            Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Edit::Delete(i) => {
                bytes.remove(i.index(bytes.len()));
            }
        }
    }
    bytes
}

/// Cases per block: `default`, or `PROPTEST_CASES` when set.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The checks every input goes through.

fn name() -> &'static Path {
    Path::new("fuzz-input")
}

/// Parses `input` as `count` images of `rows × cols`: a value of the right length or an
/// `Error::Data` naming the input, within the allocation bound. Returns the value.
fn check_images(input: &[u8], count: usize, rows: usize, cols: usize) -> Option<Vec<u8>> {
    let max_len = images_len(count, rows, cols).unwrap_or(usize::MAX);
    let (result, largest) = largest_allocation(|| parse_images(name(), input, count, rows, cols));
    let bound = allocation_bound(input, max_len);
    assert!(
        largest <= bound,
        "parsing {} bytes as {count} images of {rows}×{cols} allocated {largest} bytes at once \
         (bound {bound})",
        input.len()
    );
    match result {
        Ok(pixels) => {
            assert_eq!(pixels.len(), count * rows * cols);
            Some(pixels)
        }
        Err(Error::Data { path, problem }) => {
            assert_eq!(path, name());
            assert!(!problem.is_empty());
            None
        }
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

/// As [`check_images`], for labels.
fn check_labels(input: &[u8], count: usize, classes: u8) -> Option<Vec<u8>> {
    let max_len = labels_len(count).unwrap_or(usize::MAX);
    let (result, largest) = largest_allocation(|| parse_labels(name(), input, count, classes));
    let bound = allocation_bound(input, max_len);
    assert!(
        largest <= bound,
        "parsing {} bytes as {count} labels allocated {largest} bytes at once (bound {bound})",
        input.len()
    );
    match result {
        Ok(labels) => {
            assert_eq!(labels.len(), count);
            assert!(labels.iter().all(|&l| l < classes));
            Some(labels)
        }
        Err(Error::Data { path, problem }) => {
            assert_eq!(path, name());
            assert!(!problem.is_empty());
            None
        }
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

/// Everything an arbitrary input goes through: the MNIST shapes (the loader's), a tiny shape,
/// and the shape its own header claims when that is small.
fn check_any(input: &[u8]) {
    for (count, rows, cols) in [(60_000, 28, 28), (10_000, 28, 28), (3, 28, 28)] {
        check_images(input, count, rows, cols);
    }
    for count in [60_000, 10_000, 3] {
        check_labels(input, count, 10);
    }
    if input.len() >= 16 && !idx::is_gzip(input) {
        let word = |at: usize| u32::from_be_bytes(input[at..at + 4].try_into().unwrap()) as usize;
        let (n, r, c) = (word(4), word(8), word(12));
        if images_len(n, r, c).is_some_and(|len| len <= 1 << 20) {
            let parsed = check_images(input, n, r, c);
            let valid =
                word(0) == IMAGES_MAGIC as usize && images_len(n, r, c) == Some(input.len());
            assert_eq!(parsed.as_deref(), valid.then(|| &input[16..]));
        }
        let n = word(4);
        if n <= 1 << 20 {
            let parsed = check_labels(input, n, u8::MAX);
            let valid = word(0) == LABELS_MAGIC as usize
                && labels_len(n) == Some(input.len())
                && !input[8..].contains(&u8::MAX);
            assert_eq!(parsed.as_deref(), valid.then(|| &input[8..]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real files, for their headers and gzip streams.

struct Real {
    /// t10k-labels-idx1-ubyte's official archive (gzip).
    labels_stored: Vec<u8>,
    /// Its decompressed content.
    labels_raw: Vec<u8>,
    /// The first 16 bytes of t10k-images-idx3-ubyte, decompressed.
    images_header: Vec<u8>,
    /// t10k-images-idx3-ubyte's official archive, its path and its decompressed content.
    images_stored: Vec<u8>,
    images_path: PathBuf,
    images_raw: Vec<u8>,
}

fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        // The official archives, even where a load has left raw copies beside them.
        let (dir, _) = resolve_data_dir(None);
        let mut archives = common::official_archives(&dir);
        let (labels_name, labels_stored) = archives.pop().unwrap();
        let (images_name, images_stored) = archives.pop().unwrap();
        let (images_path, labels_path) = (dir.join(images_name), dir.join(labels_name));
        let images_raw = decompress_limited(
            &images_path,
            &images_stored,
            images_len(10_000, 28, 28).unwrap(),
        )
        .unwrap();
        Real {
            labels_raw: decompress_limited(
                &labels_path,
                &labels_stored,
                labels_len(10_000).unwrap(),
            )
            .unwrap(),
            labels_stored,
            images_header: images_raw[..16].to_vec(),
            images_stored,
            images_path,
            images_raw,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The campaign.

proptest! {
    #![proptest_config(cases(9000))]

    /// Generated valid files parse to exactly their pixels, raw and gzip at any level, and only
    /// under their own shape.
    #[test]
    fn valid_images_parse_raw_and_gzip((count, rows, cols, pixels) in valid_images(), level in 0u32..10) {
        let raw = images_file(count, rows, cols, &pixels);
        for input in [raw.clone(), gzip(&raw, level)] {
            prop_assert_eq!(check_images(&input, count, rows, cols), Some(pixels.clone()));
            prop_assert_eq!(check_images(&input, count + 1, rows, cols), None);
            prop_assert_eq!(check_images(&input, count, rows, cols + 1), None);
            prop_assert_eq!(check_labels(&input, count, 10), None);
        }
    }

    /// Generated valid label files parse to exactly their labels, raw and gzip; a label out of
    /// range is an error.
    #[test]
    fn valid_labels_parse_raw_and_gzip(labels in prop::collection::vec(0u8..10, 0..64), level in 0u32..10) {
        let raw = labels_file(&labels);
        for input in [raw.clone(), gzip(&raw, level)] {
            prop_assert_eq!(check_labels(&input, labels.len(), 10), Some(labels.clone()));
            prop_assert_eq!(check_labels(&input, labels.len() + 1, 10), None);
            prop_assert_eq!(check_images(&input, labels.len(), 1, 1), None);
        }
        if let Some(&max) = labels.iter().max() {
            prop_assert_eq!(check_labels(&raw, labels.len(), max), None);
        }
    }

    /// Every proper prefix of a valid file, raw or gzip, is an error.
    #[test]
    fn truncations_are_errors((count, rows, cols, pixels) in valid_images(), cut in any::<Index>(), level in 0u32..10) {
        let raw = images_file(count, rows, cols, &pixels);
        let labels = labels_file(&pixels[..pixels.len().min(32)].iter().map(|p| p % 10).collect::<Vec<_>>());
        for (input, images) in [(raw.clone(), true), (gzip(&raw, level), true), (labels.clone(), false), (gzip(&labels, level), false)] {
            let short = &input[..cut.index(input.len())];
            if images {
                prop_assert_eq!(check_images(short, count, rows, cols), None);
            } else {
                prop_assert_eq!(check_labels(short, labels.len() - 8, 10), None);
            }
            check_any(short);
        }
    }

    /// Valid files, raw or gzip, with a few bytes overwritten, flipped, inserted or deleted.
    #[test]
    fn mutated_valid_files_never_panic((count, rows, cols, pixels) in valid_images(), edits in edits(), level in 0u32..10) {
        let raw = images_file(count, rows, cols, &pixels);
        let labels = labels_file(&pixels.iter().map(|p| p % 10).collect::<Vec<_>>());
        for input in [raw.clone(), gzip(&raw, level), labels.clone(), gzip(&labels, level)] {
            let mutated = mutate(&input, &edits);
            check_images(&mutated, count, rows, cols);
            check_labels(&mutated, labels.len() - 8, 10);
            check_any(&mutated);
        }
    }

    /// Real-looking headers: the right magic with any dimensions (and so any claimed size),
    /// followed by any number of bytes, raw and gzip.
    #[test]
    fn headers_with_any_dimensions((magic, count, rows, cols) in (prop_oneof![Just(IMAGES_MAGIC), Just(LABELS_MAGIC), any::<u32>()], any::<u32>(), prop_oneof![0u32..40, any::<u32>()], prop_oneof![0u32..40, any::<u32>()]), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut input = Vec::new();
        for word in [magic, count, rows, cols] {
            input.extend_from_slice(&word.to_be_bytes());
        }
        input.extend_from_slice(&body);
        check_any(&input);
        check_images(&input, count as usize, rows as usize, cols as usize);
        check_labels(&input, count as usize, 10);
        check_any(&gzip(&input, 1));
    }

    /// Random bytes, random bytes behind the gzip magic (and a valid-looking gzip header).
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024), flags in any::<u8>()) {
        check_any(&bytes);
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        check_any(&gz);
        let mut gz = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
        gz.extend_from_slice(&bytes);
        check_any(&gz);
    }

    /// Any shape asked of any data, overflowing ones included.
    #[test]
    fn any_requested_shape(bytes in prop::collection::vec(any::<u8>(), 0..64), count in any::<usize>(), rows in any::<usize>(), cols in any::<usize>(), classes in any::<u8>()) {
        check_images(&bytes, count, rows, cols);
        check_labels(&bytes, count, classes);
        let gz = gzip(&bytes, 6);
        check_images(&gz, count, rows, cols);
        check_labels(&gz, count, classes);
    }
}

proptest! {
    #![proptest_config(cases(300))]

    /// The real labels file, as stored (gzip), mutated anywhere.
    #[test]
    fn mutated_real_labels(edits in edits()) {
        let real = real();
        let mutated = mutate(&real.labels_stored, &edits);
        if let Some(labels) = check_labels(&mutated, 10_000, 10) {
            // A mutation the gzip CRC cannot see would have to leave the content intact.
            prop_assert_eq!(&labels[..], &real.labels_raw[8..]);
        }
        check_any(&mutated);
        let mutated = mutate(&real.labels_raw, &edits);
        check_labels(&mutated, 10_000, 10);
        check_any(&mutated);
    }

    /// The real images header with mutated fields, before the right number of pixels and
    /// before a few.
    #[test]
    fn mutated_real_images_header(edits in edits(), pixels in 0usize..4096) {
        let mut header = mutate(&real().images_header, &edits);
        header.truncate(16);
        let mut full = header.clone();
        full.resize(16 + 10_000 * 784, 0);
        let valid = full[..16] == real().images_header[..];
        prop_assert_eq!(check_images(&full, 10_000, 28, 28).is_some(), valid);
        header.resize(16 + pixels, 7);
        check_any(&header);
    }

    /// The real labels file truncated anywhere, stored and raw: always an error.
    #[test]
    fn truncated_real_labels(cut in any::<Index>()) {
        let real = real();
        for input in [&real.labels_stored, &real.labels_raw] {
            let short = &input[..cut.index(input.len())];
            prop_assert_eq!(check_labels(short, 10_000, 10), None);
            check_any(short);
        }
    }
}

proptest! {
    #![proptest_config(cases(12))]

    /// The real images file as stored (1.6 MB of gzip), mutated or truncated: an error, or,
    /// where the CRC cannot see the change, the real pixels.
    #[test]
    fn mutated_and_truncated_real_images(edits in edits(), cut in any::<Index>()) {
        let real = real();
        let mutated = mutate(&real.images_stored, &edits);
        if let Some(pixels) = check_images(&mutated, 10_000, 28, 28) {
            prop_assert_eq!(&pixels[..], &real.images_raw[16..]);
        }
        let short = &real.images_stored[..cut.index(real.images_stored.len())];
        prop_assert_eq!(check_images(short, 10_000, 28, 28), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs and the regressions the campaign found.

fn data_problem(result: wgsl_nn::Result<Vec<u8>>) -> String {
    match result {
        Err(Error::Data { problem, .. }) => problem,
        Ok(v) => panic!("expected a data error, got {} bytes", v.len()),
        Err(other) => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn real_files_parse_from_bytes() {
    let real = real();
    let pixels = check_images(&real.images_stored, 10_000, 28, 28).unwrap();
    assert_eq!(pixels[..], real.images_raw[16..]);
    let labels = check_labels(&real.labels_stored, 10_000, 10).unwrap();
    assert_eq!(labels[0], 7); // the first test digit
    // Under its own name, which may end in .gz.
    let named = parse_images(&real.images_path, &real.images_stored, 10_000, 28, 28).unwrap();
    assert_eq!(named, pixels);
}

#[test]
fn gzip_bomb_stops_at_the_valid_length() {
    // 64 MiB of zeros behind a valid labels header: ~64 KiB of gzip.
    let mut raw = labels_file(&[0; 3]);
    raw.resize(64 << 20, 0);
    let bomb = gzip(&raw, 9);
    assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
    let (result, largest) = largest_allocation(|| parse_labels(name(), &bomb, 3, 10));
    let problem = data_problem(result);
    assert!(
        problem.contains("decompresses to more than 11 bytes"),
        "{problem}"
    );
    assert!(
        largest <= FIXED_OVERHEAD,
        "allocated {largest} bytes at once"
    );
    // Asked for the train images' size, it stops there: at most 47 MB, never 64 MiB.
    let max = images_len(60_000, 28, 28).unwrap();
    let (result, largest) = largest_allocation(|| decompress_limited(name(), &bomb, max));
    assert!(data_problem(result).contains(&format!("more than {max} bytes")));
    assert!(largest <= max, "allocated {largest} bytes at once");
    // With room for all of it, it decompresses.
    assert_eq!(decompress_limited(name(), &bomb, 64 << 20).unwrap(), raw);
}

#[test]
fn gzip_bomb_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t10k-labels-idx1-ubyte.gz");
    let mut raw = labels_file(&[1; 10_000]);
    raw.resize(32 << 20, 1);
    std::fs::write(&path, gzip(&raw, 9)).unwrap();
    let max = labels_len(10_000).unwrap();
    let (result, largest) = largest_allocation(|| read_maybe_gz_limited(&path, max));
    match result {
        Err(Error::Data { path: bad, problem }) => {
            assert_eq!(bad, path);
            assert!(
                problem.contains("decompresses to more than 10008 bytes")
                    && problem.contains("download it again"),
                "{problem}"
            );
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    assert!(
        largest <= FIXED_OVERHEAD + 64 * 1024,
        "allocated {largest} bytes at once"
    );
}

#[test]
fn oversized_raw_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t10k-labels-idx1-ubyte");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap(); // sparse: 1 GiB that costs no disk
    let (result, largest) = largest_allocation(|| read_maybe_gz_limited(&path, 10_008));
    let problem = data_problem(result);
    assert!(
        problem.contains("1073741824 bytes is larger than any valid file"),
        "{problem}"
    );
    assert!(largest < 4096, "allocated {largest} bytes at once");
    // A little too long is refused too, with the lengths.
    std::fs::write(&path, labels_file(&[0; 10_001])).unwrap();
    let problem = data_problem(read_maybe_gz_limited(&path, 10_008));
    assert!(
        problem.contains("10009 bytes is more than a valid file has (10008 bytes at most"),
        "{problem}"
    );
}

#[test]
fn gzip_header_extra_field_longer_than_the_input_is_refused_before_allocating() {
    // FLG.FEXTRA with XLEN = 65535 and nothing after it: the decoder would allocate 64 KiB.
    let input = [0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 1, 2, 3];
    let (result, largest) = largest_allocation(|| parse_labels(name(), &input, 3, 10));
    let problem = data_problem(result);
    assert!(
        problem.contains("announces 65535 extra bytes but only 3 follow"),
        "{problem}"
    );
    assert!(largest < 1024, "allocated {largest} bytes at once");
}

#[test]
fn overflowing_shapes_are_errors() {
    let input = images_file(1, 1, 1, &[0]);
    let problem = data_problem(parse_images(name(), &input, usize::MAX, 2, 2));
    assert!(
        problem.contains("more bytes than this machine can address"),
        "{problem}"
    );
    let problem = data_problem(parse_labels(name(), &input, usize::MAX, 10));
    assert!(
        problem.contains("more bytes than this machine can address"),
        "{problem}"
    );
    // The validators on their own, which used to compute the length unchecked.
    assert!(idx::validate_images(name(), &input, usize::MAX, 2, 2).is_err());
    assert!(idx::validate_labels(name(), &input, usize::MAX, 10).is_err());
}

#[test]
fn gz_name_on_raw_bytes_is_an_error() {
    let input = labels_file(&[1, 2, 3]);
    let problem = data_problem(parse_labels(Path::new("labels.gz"), &input, 3, 10));
    assert!(problem.contains("named .gz but is not gzip"), "{problem}");
    assert_eq!(
        parse_labels(Path::new("labels"), &input, 3, 10).unwrap(),
        [1, 2, 3]
    );
}

// ---------------------------------------------------------------------------------------------
// The safetensors checkpoint reader, `CheckpointFile::parse`, on the same terms.

#[cfg(feature = "checkpoints")]
mod checkpoint {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use proptest::sample::Index;
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;
    use wgsl_nn::nn::{CheckpointFile, StoredTensor};
    use wgsl_nn::{DType, Error};

    use super::{FIXED_OVERHEAD, cases, edits, largest_allocation, mutate};

    /// The most one allocation may take while parsing `input`: the JSON header's shapes are
    /// vectors of `usize` (8 bytes for each 2 or more bytes of text, doubled while they grow),
    /// the tensors' bytes are copies of the input.
    fn allocation_bound(input: &[u8]) -> usize {
        FIXED_OVERHEAD.max(8 * input.len())
    }

    /// Parses `input`: a consistent checkpoint or an `Error::Data`, within the allocation
    /// bound; what parses serialises and parses back to itself.
    fn check(input: &[u8]) -> Option<CheckpointFile> {
        let (result, largest) = largest_allocation(|| CheckpointFile::parse(input));
        let bound = allocation_bound(input);
        assert!(
            largest <= bound,
            "parsing {} bytes as a checkpoint allocated {largest} bytes at once (bound {bound})",
            input.len()
        );
        match result {
            Ok(file) => {
                for (name, t) in &file.tensors {
                    let elements = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
                    assert_eq!(elements.map(|n| n * 4), Some(t.bytes.len()), "{name}");
                    if let Some(values) = t.f32s() {
                        assert!(values.iter().all(|v| v.is_finite()), "{name}");
                    }
                }
                let bytes = file.to_bytes().unwrap();
                assert_eq!(CheckpointFile::parse(&bytes).unwrap(), file);
                Some(file)
            }
            Err(Error::Data { problem, .. }) => {
                assert!(!problem.is_empty());
                None
            }
            Err(other) => panic!("expected a data error, got {other:?}"),
        }
    }

    fn tensor() -> impl Strategy<Value = StoredTensor> {
        (any::<bool>(), prop::collection::vec(0usize..5, 0..4)).prop_flat_map(|(f32, shape)| {
            let n: usize = shape.iter().product();
            let bytes = if f32 {
                let finite =
                    prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL | prop::num::f32::ZERO;
                prop::collection::vec(finite, n)
                    .prop_map(|v| bytemuck::cast_slice(&v).to_vec())
                    .boxed()
            } else {
                prop::collection::vec(any::<u32>(), n)
                    .prop_map(|v| bytemuck::cast_slice(&v).to_vec())
                    .boxed()
            };
            let dtype = if f32 { DType::F32 } else { DType::U32 };
            (Just(shape), bytes).prop_map(move |(shape, bytes)| StoredTensor {
                dtype,
                shape,
                bytes,
            })
        })
    }

    /// A valid checkpoint: its expected contents and its bytes, written by the `safetensors`
    /// crate itself (not by the engine's writer), with or without metadata.
    fn valid() -> impl Strategy<Value = (CheckpointFile, Vec<u8>)> {
        (
            prop::collection::btree_map("[a-z][a-z0-9._]{0,11}", tensor(), 0..5),
            prop::option::of(prop::collection::btree_map(
                "[a-z_]{1,8}",
                "\\PC{0,8}",
                0..3,
            )),
        )
            .prop_map(|(tensors, metadata)| {
                let views = tensors.iter().map(|(name, t)| {
                    let dtype = if t.dtype == DType::F32 {
                        Dtype::F32
                    } else {
                        Dtype::U32
                    };
                    (
                        name.clone(),
                        TensorView::new(dtype, t.shape.clone(), &t.bytes).unwrap(),
                    )
                });
                // No empty map: safetensors 0.6 writes invalid JSON for it when there are no
                // tensors (safetensors PR #761; `CheckpointFile::to_bytes` passes none).
                let hashed = metadata
                    .clone()
                    .filter(|m| !m.is_empty())
                    .map(|m| m.into_iter().collect::<HashMap<_, _>>());
                let bytes = safetensors::serialize(views, hashed).unwrap();
                let file = CheckpointFile {
                    tensors,
                    metadata: metadata.unwrap_or_default(),
                };
                (file, bytes)
            })
    }

    /// A header of `json` and `data`, in the format's framing.
    fn framed(json: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    fn parse_problem(bytes: &[u8]) -> String {
        match CheckpointFile::parse(bytes) {
            Err(Error::Data { problem, .. }) => problem,
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    proptest! {
        #![proptest_config(cases(3000))]

        /// Files the `safetensors` crate writes parse to their contents, and the engine's own
        /// serialisation of them parses back the same.
        #[test]
        fn valid_checkpoints_parse((file, bytes) in valid()) {
            prop_assert_eq!(check(&bytes), Some(file.clone()));
            prop_assert_eq!(check(&file.to_bytes().unwrap()), Some(file));
        }

        /// Every proper prefix of a valid checkpoint is an error.
        #[test]
        fn truncated_checkpoints_are_errors((_, bytes) in valid(), cut in any::<Index>()) {
            prop_assert_eq!(check(&bytes[..cut.index(bytes.len())]), None);
        }

        /// Valid checkpoints with a few bytes overwritten, flipped, inserted or deleted.
        #[test]
        fn mutated_checkpoints_never_panic((_, bytes) in valid(), edits in edits()) {
            check(&mutate(&bytes, &edits));
        }

        /// Random bytes, alone and behind a header length that fits them.
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), claim in any::<u64>()) {
            check(&bytes);
            let mut framed = (bytes.len() as u64).to_le_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            check(&framed);
            let mut claimed = claim.to_le_bytes().to_vec();
            claimed.extend_from_slice(&bytes);
            check(&claimed);
        }

        /// Headers of the right form with any dtype, shape and offsets, before any data.
        #[test]
        fn headers_with_any_fields(
            dtype in prop_oneof![Just("F32".to_string()), Just("U32".to_string()), Just("F16".to_string()), Just("I64".to_string()), Just("BOOL".to_string()), "[A-Z0-9]{0,4}"],
            shape in prop::collection::vec(prop_oneof![0u64..6, any::<u64>()], 0..5),
            start in prop_oneof![0u64..64, any::<u64>()],
            end in prop_oneof![0u64..64, any::<u64>()],
            data in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let json = format!(
                r#"{{"__metadata__":{{"layout":"weights [in, out]"}},"t":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{start},{end}]}}}}"#
            );
            check(&framed(&json, &data));
        }
    }

    #[test]
    fn non_finite_and_foreign_dtypes_are_refused() {
        let nan = framed(
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            bytemuck::cast_slice(&[1.0f32, f32::NAN]),
        );
        let problem = parse_problem(&nan);
        assert!(
            problem.contains("tensor w holds NaN at index 1"),
            "{problem}"
        );
        let half = framed(
            r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
            &[0; 4],
        );
        let problem = parse_problem(&half);
        assert!(problem.contains("tensor h is F16"), "{problem}");
    }

    #[test]
    fn huge_header_claims_are_refused_without_allocating() {
        for claim in [u64::MAX, 100_000_001, 99_999_999, 1 << 40] {
            let mut bytes = claim.to_le_bytes().to_vec();
            bytes.extend_from_slice(b"{}");
            let (result, largest) = largest_allocation(|| CheckpointFile::parse(&bytes));
            assert!(
                matches!(result, Err(Error::Data { .. })),
                "{claim}: {result:?}"
            );
            assert!(largest < 4096, "{claim}: allocated {largest} bytes at once");
        }
        // A shape whose element count overflows.
        let overflow = framed(
            &format!(
                r#"{{"t":{{"dtype":"F32","shape":[{0},{0}],"data_offsets":[0,0]}}}}"#,
                u64::MAX
            ),
            &[],
        );
        assert!(check(&overflow).is_none());
    }
}
