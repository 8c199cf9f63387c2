//! Downloading MNIST: two mirrors, retries, a checksum check of the decompressed content, and
//! a temporary file renamed into place only when complete, so an interrupted download leaves
//! nothing half-written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::idx;
use super::mnist::{FILES, MnistFile, find_file, validate_file};
use crate::{Error, Result};

/// Mirrors serving the official `.gz` files, tried in order.
pub const MIRRORS: [&str; 2] = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
];

/// How to download.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// Base URLs ending in `/`, tried in order.
    pub mirrors: Vec<String>,
    /// Attempts per mirror.
    pub attempts: usize,
    /// Give up on one request after this long.
    pub timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            mirrors: MIRRORS.iter().map(|m| m.to_string()).collect(),
            attempts: 2,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Progress of one file: `(file name, bytes so far, total bytes if known)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, Option<u64>);

/// Downloads whichever of the four MNIST files `dir` lacks. Each file is checked (structure
/// and SHA-256 of the content) before it is renamed into place.
pub fn download_mnist(dir: &Path, options: &DownloadOptions, progress: Progress<'_>) -> Result<()> {
    // One download into a directory at a time; one that was killed left its partial file as a
    // temporary, which is removed under the lock.
    let _lock = crate::files::DirLock::acquire(dir)?;
    crate::files::remove_stale_temporaries(dir)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(options.timeout))
        .build()
        .into();
    for file in &FILES {
        if find_file(dir, file).is_some() {
            continue;
        }
        let mut failures = Vec::new();
        let mut done = false;
        'mirrors: for mirror in &options.mirrors {
            for attempt in 1..=options.attempts.max(1) {
                let url = format!("{mirror}{}.gz", file.name);
                match fetch(&agent, &url, dir, file, progress) {
                    Ok(()) => {
                        done = true;
                        break 'mirrors;
                    }
                    Err(problem) => {
                        log::warn!("{url} (attempt {attempt}): {problem}");
                        failures.push(format!("{url} (attempt {attempt}): {problem}"));
                    }
                }
            }
        }
        if !done {
            return Err(Error::Data {
                path: dir.join(format!("{}.gz", file.name)),
                problem: format!(
                    "could not download it: {}. Download the four MNIST files by hand into {} \
                     (raw or .gz), or point MNIST_DIR at a copy",
                    failures.join("; "),
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

/// One attempt: stream into a temporary file, validate, rename. Returns the problem on failure.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    dir: &Path,
    file: &MnistFile,
    progress: Progress<'_>,
) -> std::result::Result<(), String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut temp = crate::files::empty_temporary_in(dir).map_err(|e| e.to_string())?;
    let mut reader = response.body_mut().as_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| format!("connection failed after {received} bytes: {e}"))?;
        if n == 0 {
            break;
        }
        temp.write_all(&buffer[..n])
            .map_err(|e| format!("cannot write: {e}"))?;
        received += n as u64;
        progress(file.name, received, total);
    }
    if let Some(total) = total
        && received != total
    {
        return Err(format!("received {received} of {total} bytes"));
    }
    temp.flush().map_err(|e| format!("cannot write: {e}"))?;
    // Validate what arrived (decompressed if gzip) before it may be used.
    let raw = idx::read_maybe_gz_limited(temp.path(), super::mnist::read_limit())
        .map_err(|e| e.to_string())?;
    validate_file(temp.path(), file, &raw, true).map_err(|e| e.to_string())?;
    let gzip = std::fs::read(temp.path())
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let target: PathBuf = if gzip {
        dir.join(format!("{}.gz", file.name))
    } else {
        dir.join(file.name)
    };
    temp.persist(&target)
        .map_err(|e| format!("cannot rename into place: {}", e.error))?;
    Ok(())
}
