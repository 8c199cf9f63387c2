//! IDX files (the MNIST format), raw or gzip-compressed, validated before anything trusts them.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

fn data_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads a file, decompressing it when it is gzip (by content, not by name).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| data_error(path, format!("cannot read: {e}")))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut raw)
            .map_err(|e| {
                data_error(
                    path,
                    format!("not a valid gzip file ({e}); delete it and download it again"),
                )
            })?;
        Ok(raw)
    } else if path.extension().is_some_and(|e| e == "gz") {
        Err(data_error(
            path,
            "named .gz but is not gzip data; delete it and download it again",
        ))
    } else {
        Ok(bytes)
    }
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

/// Checks an IDX images file: magic, `count` images of `rows × cols`, exact length. Returns
/// the pixels.
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
    let expected = 16 + count * rows * cols;
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

/// Checks an IDX labels file: magic, `count` labels, exact length, every label below
/// `classes`.
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
    if bytes.len() != 8 + count {
        return Err(data_error(
            path,
            format!(
                "expected {} bytes, found {} (truncated or corrupted; delete it and download it again)",
                8 + count,
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
