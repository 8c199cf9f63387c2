//! IDX files (the MNIST format), raw or gzip-compressed, validated before anything trusts them.
//!
//! Nothing here allocates more than its input justifies. The caller says how long a valid file
//! is (an IDX file's length follows from its dimensions: [`images_len`], [`labels_len`]), and
//! decompression stops with an [`Error::Data`] as soon as the output would pass that length, so
//! a gzip bomb costs at most one valid file's worth of memory; a raw file larger than that is
//! refused before it is read.
//!
//! - Files: [`read_maybe_gz_limited`] reads one (raw or gzip, told apart by content), then
//!   [`validate_images`] or [`validate_labels`] checks it.
//! - Bytes already in memory: [`parse_images`] and [`parse_labels`] decompress (bounded),
//!   validate and return the payload; [`decompress_limited`] is the bounded gzip decoder alone.
//!
//! Every error names the file (for bytes, the `path` the caller gives them) and the fix.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Bytes before the pixels of an IDX images file: magic, count, rows, columns.
pub const IMAGES_HEADER_LEN: usize = 16;
/// Bytes before the labels of an IDX labels file: magic, count.
pub const LABELS_HEADER_LEN: usize = 8;

/// The first two bytes of every gzip file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// DEFLATE's largest possible expansion (a 258-byte match per bit or so, ~1032:1): no valid
/// gzip input of `n` bytes decompresses to more than `n × MAX_DEFLATE_RATIO` bytes. Used only to
/// cap how far the output buffer grows ahead of the data; correctness does not depend on it.
const MAX_DEFLATE_RATIO: usize = 1032;
/// Bytes decompressed per step.
const CHUNK: usize = 16 * 1024;

fn data_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Length in bytes of an IDX images file of `count` images of `rows × cols`: the 16-byte
/// header and the pixels. `None` when that does not fit in `usize`.
pub fn images_len(count: usize, rows: usize, cols: usize) -> Option<usize> {
    count
        .checked_mul(rows)?
        .checked_mul(cols)?
        .checked_add(IMAGES_HEADER_LEN)
}

/// Length in bytes of an IDX labels file of `count` labels: the 8-byte header and the labels.
/// `None` when that does not fit in `usize`.
pub fn labels_len(count: usize) -> Option<usize> {
    count.checked_add(LABELS_HEADER_LEN)
}

/// Whether `bytes` start like gzip data (the magic `1f 8b`).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

fn not_gzip(path: &Path, why: impl std::fmt::Display) -> Error {
    data_error(
        path,
        format!("not a valid gzip file ({why}); delete it and download it again"),
    )
}

/// Decompresses the gzip data `bytes` (one member; anything after it is ignored), refusing to
/// produce more than `max_len` bytes.
///
/// The output buffer never grows past `max_len`, nor past what `bytes.len()` bytes of DEFLATE
/// can expand to; the header's optional fields are checked against the input's length before
/// the decoder allocates them. `path` names the data in errors. Errors ([`Error::Data`]): not
/// gzip, corrupt or truncated, or output longer than `max_len`.
pub fn decompress_limited(path: &Path, bytes: &[u8], max_len: usize) -> Result<Vec<u8>> {
    if !is_gzip(bytes) {
        return Err(not_gzip(
            path,
            "it does not start with the gzip magic 1f 8b",
        ));
    }
    // FLG.FEXTRA: a 2-byte length, then that many bytes, which the decoder allocates up front.
    if bytes.len() >= 12 && bytes[3] & 0x04 != 0 {
        let extra = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        if 12 + extra > bytes.len() {
            return Err(not_gzip(
                path,
                format!(
                    "its header announces {extra} extra bytes but only {} follow",
                    bytes.len() - 12
                ),
            ));
        }
    }
    let justified = bytes.len().saturating_mul(MAX_DEFLATE_RATIO).min(max_len);
    // The trailer's ISIZE (the length mod 2³²) as a first guess, trusted no further than that.
    let hint = match bytes {
        [.., a, b, c, d] if bytes.len() >= 18 => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(hint.min(justified));
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(not_gzip(path, e)),
        };
        let needed = out.len() + n;
        if needed > max_len {
            return Err(data_error(
                path,
                format!(
                    "decompresses to more than {max_len} bytes, the most a valid file holds \
                     (corrupted, or not the file it is named as); delete it and download it again"
                ),
            ));
        }
        if needed > out.capacity() {
            let target = needed.max(out.capacity().saturating_mul(2).min(justified));
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

/// `bytes` decompressed when they are gzip (by content), else as they are; a `.gz` name on
/// data that is not gzip is an error.
fn decode_limited<'a>(path: &Path, bytes: &'a [u8], max_len: usize) -> Result<Cow<'a, [u8]>> {
    if is_gzip(bytes) {
        decompress_limited(path, bytes, max_len).map(Cow::Owned)
    } else if path.extension().is_some_and(|e| e == "gz") {
        Err(data_error(
            path,
            "named .gz but is not gzip data; delete it and download it again",
        ))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

/// Reads a file, decompressing it when it is gzip (by content, not by name), and refuses
/// content longer than `max_len` bytes (for an IDX file, [`images_len`] or [`labels_len`]).
///
/// A raw file longer than `max_len` is an error; a file too large to be the gzip form of
/// `max_len` bytes is refused before it is read; decompression stops as soon as the output
/// passes `max_len` (see [`decompress_limited`]). Errors are [`Error::Data`] naming `path`.
pub fn read_maybe_gz_limited(path: &Path, max_len: usize) -> Result<Vec<u8>> {
    // Stored (incompressible) DEFLATE blocks add 5 bytes per 64 KiB; the gzip header, its
    // optional name and comment, and the trailer get 64 KiB more.
    let file_limit = max_len
        .saturating_add(max_len / 64)
        .saturating_add(64 * 1024);
    let file =
        std::fs::File::open(path).map_err(|e| data_error(path, format!("cannot read: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| data_error(path, format!("cannot read: {e}")))?
        .len();
    let too_large = |size: String| {
        data_error(
            path,
            format!(
                "{size} bytes is larger than any valid file ({max_len} bytes, or its gzip form); \
                 delete it and download it again"
            ),
        )
    };
    if size > file_limit as u64 {
        return Err(too_large(size.to_string()));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // `take`: the file may have grown since, or report no size at all.
    file.take((file_limit as u64).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| data_error(path, format!("cannot read: {e}")))?;
    if bytes.len() > file_limit {
        return Err(too_large(format!("more than {file_limit}")));
    }
    match decode_limited(path, &bytes, max_len)? {
        Cow::Owned(raw) => Ok(raw),
        Cow::Borrowed(_) if bytes.len() > max_len => Err(data_error(
            path,
            format!(
                "{} bytes is more than a valid file has ({max_len} bytes at most; corrupted, or \
                 not the file it is named as); delete it and download it again",
                bytes.len()
            ),
        )),
        Cow::Borrowed(_) => Ok(bytes),
    }
}

/// Reads a file, decompressing it when it is gzip (by content, not by name), with no limit on
/// its size: prefer [`read_maybe_gz_limited`], which a gzip bomb cannot exhaust memory through.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    read_maybe_gz_limited(path, usize::MAX)
}

/// The payload after a `header`-byte header that validation has already checked is there.
fn payload(raw: Cow<'_, [u8]>, header: usize) -> Vec<u8> {
    match raw {
        Cow::Owned(mut raw) => {
            raw.drain(..header);
            raw
        }
        Cow::Borrowed(raw) => raw[header..].to_vec(),
    }
}

/// Parses an IDX images file from its bytes, raw or gzip (told apart by content): decompresses
/// at most [`images_len`]`(count, rows, cols)` bytes, checks it as [`validate_images`] does,
/// and returns the pixels (`count × rows × cols` bytes, row-major, image after image).
///
/// `path` names the data in errors (and, ending in `.gz`, requires gzip content). Never
/// panics; every bad input is an [`Error::Data`].
pub fn parse_images(
    path: &Path,
    bytes: &[u8],
    count: usize,
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>> {
    let len =
        images_len(count, rows, cols).ok_or_else(|| too_many_images(path, count, rows, cols))?;
    let raw = decode_limited(path, bytes, len)?;
    validate_images(path, &raw, count, rows, cols)?;
    Ok(payload(raw, IMAGES_HEADER_LEN))
}

/// Parses an IDX labels file from its bytes, raw or gzip (told apart by content): decompresses
/// at most [`labels_len`]`(count)` bytes, checks it as [`validate_labels`] does, and returns
/// the `count` labels, each below `classes`.
///
/// `path` names the data in errors (and, ending in `.gz`, requires gzip content). Never
/// panics; every bad input is an [`Error::Data`].
pub fn parse_labels(path: &Path, bytes: &[u8], count: usize, classes: u8) -> Result<Vec<u8>> {
    let len = labels_len(count).ok_or_else(|| too_many_labels(path, count))?;
    let raw = decode_limited(path, bytes, len)?;
    validate_labels(path, &raw, count, classes)?;
    Ok(payload(raw, LABELS_HEADER_LEN))
}

fn too_many_images(path: &Path, count: usize, rows: usize, cols: usize) -> Error {
    data_error(
        path,
        format!("{count} images of {rows}×{cols} is more bytes than this machine can address"),
    )
}

fn too_many_labels(path: &Path, count: usize) -> Error {
    data_error(
        path,
        format!("{count} labels is more bytes than this machine can address"),
    )
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks an IDX images file (already decompressed): magic, `count` images of `rows × cols`,
/// exact length.
pub fn validate_images(
    path: &Path,
    bytes: &[u8],
    count: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    if bytes.len() < 16 {
        return Err(data_error(
            path,
            format!(
                "{} bytes is too short for an IDX images header (16 bytes)",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(bytes, 0);
    if magic != IMAGES_MAGIC {
        let hint = if magic == LABELS_MAGIC {
            " (is this a labels file?)"
        } else {
            ""
        };
        return Err(data_error(
            path,
            format!("expected magic {IMAGES_MAGIC}, found {magic}{hint}"),
        ));
    }
    let (n, r, c) = (
        be_u32(bytes, 4) as usize,
        be_u32(bytes, 8) as usize,
        be_u32(bytes, 12) as usize,
    );
    if (n, r, c) != (count, rows, cols) {
        return Err(data_error(
            path,
            format!("expected {count} images of {rows}×{cols}, the header says {n} of {r}×{c}"),
        ));
    }
    let expected =
        images_len(count, rows, cols).ok_or_else(|| too_many_images(path, count, rows, cols))?;
    if bytes.len() != expected {
        return Err(data_error(
            path,
            format!(
                "expected {expected} bytes, found {} (truncated or corrupted; delete it and download it again)",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Checks an IDX labels file (already decompressed): magic, `count` labels, exact length,
/// every label below `classes`.
pub fn validate_labels(path: &Path, bytes: &[u8], count: usize, classes: u8) -> Result<()> {
    if bytes.len() < 8 {
        return Err(data_error(
            path,
            format!(
                "{} bytes is too short for an IDX labels header (8 bytes)",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(bytes, 0);
    if magic != LABELS_MAGIC {
        let hint = if magic == IMAGES_MAGIC {
            " (is this an images file?)"
        } else {
            ""
        };
        return Err(data_error(
            path,
            format!("expected magic {LABELS_MAGIC}, found {magic}{hint}"),
        ));
    }
    let n = be_u32(bytes, 4) as usize;
    if n != count {
        return Err(data_error(
            path,
            format!("expected {count} labels, the header says {n}"),
        ));
    }
    let expected = labels_len(count).ok_or_else(|| too_many_labels(path, count))?;
    if bytes.len() != expected {
        return Err(data_error(
            path,
            format!(
                "expected {expected} bytes, found {} (truncated or corrupted; delete it and download it again)",
                bytes.len()
            ),
        ));
    }
    if let Some((index, label)) = bytes[8..].iter().enumerate().find(|(_, l)| **l >= classes) {
        return Err(data_error(
            path,
            format!("label {label} at index {index} is out of range 0..{classes}"),
        ));
    }
    Ok(())
}

/// The first of `candidates` that exists.
pub fn first_existing(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned()
}
