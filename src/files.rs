//! Writing files so that nothing is ever half-written or mixed from two runs.
//!
//! Every file goes through a temporary in its destination directory (named
//! `.wgsl-nn-*.tmp`), is flushed to disk, and is renamed over the old one: a reader sees the
//! old file or the new one, never a part. [`write_set`] (or [`StagedSet`], in two steps) does
//! that for a set of files and renames only once all of them are complete. A temporary left by a killed process is removed by
//! [`remove_stale_temporaries`]. New files get the permissions the umask gives (0644 under the
//! usual 022), not the 0600 of a private temporary.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::{Error, Result};

/// The prefix and suffix of every temporary this crate writes.
const PREFIX: &str = ".wgsl-nn-";
const SUFFIX: &str = ".tmp";

fn io_error(path: &Path, operation: &str, error: std::io::Error) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        problem: format!("cannot {operation}: {error}"),
    }
}

/// The directory `path` is written in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates `dir` (and its parents) if needed; an existing non-directory is an error naming it.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            problem: "exists and is not a directory; choose another output directory".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the directory", e))
}

/// Checks, before any work, that files can be written in `dir` (created if needed): writes and
/// removes a temporary there.
pub fn check_writable(dir: &Path) -> Result<()> {
    ensure_dir(dir)?;
    let probe = temporary_in(dir, &[])?;
    drop(probe);
    Ok(())
}

/// An empty temporary in `dir`, named as [`remove_stale_temporaries`] finds it, with the
/// umask's mode; deleted if dropped, renamed into place with `persist`.
pub(crate) fn empty_temporary_in(dir: &Path) -> Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(PREFIX).suffix(SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode asked of open(2); the kernel applies the umask to it, as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, "create a file in the directory", e))
}

/// A complete, flushed temporary in `dir` holding `contents`; deleted if dropped.
fn temporary_in(dir: &Path, contents: &[u8]) -> Result<NamedTempFile> {
    let mut file = empty_temporary_in(dir)?;
    let path = file.path().to_path_buf();
    file.write_all(contents)
        .map_err(|e| io_error(&path, "write", e))?;
    file.as_file()
        .sync_all()
        .map_err(|e| io_error(&path, "flush to disk", e))?;
    Ok(file)
}

/// Makes the renames into `dir` durable (a no-op where directories cannot be synced).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Writes `contents` to `path` through a temporary in the same directory and a rename, so an
/// interrupted write never leaves a half-written file and never replaces a good one.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| Error::Data {
        path: path.to_path_buf(),
        problem: "names a directory, not a file to write".into(),
    })?;
    StagedSet::stage(parent(path), &[(name, contents)])?.commit()?;
    Ok(())
}

/// Files written completely to temporaries in their directory, not yet renamed into place:
/// dropping the set removes the temporaries and replaces nothing.
#[derive(Debug)]
pub struct StagedSet {
    files: Vec<(NamedTempFile, PathBuf)>,
}

impl StagedSet {
    /// Writes and flushes a temporary for each of `files` (name, contents) in `dir`; if one
    /// cannot be written (a full disk, say), the ones already written are removed.
    pub fn stage<N: AsRef<Path>>(dir: &Path, files: &[(N, &[u8])]) -> Result<Self> {
        ensure_dir(dir)?;
        let files = files
            .iter()
            .map(|(name, contents)| Ok((temporary_in(dir, contents)?, dir.join(name))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { files })
    }

    /// This set and `other`, committed together.
    pub fn join(mut self, other: StagedSet) -> Self {
        self.files.extend(other.files);
        self
    }

    /// Renames every temporary into place, in the order staged, once it has checked that no
    /// destination is a directory (the one failure a rename within a directory can meet);
    /// returns the paths written.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        if let Some((_, path)) = self.files.iter().find(|(_, path)| path.is_dir()) {
            return Err(Error::Data {
                path: path.clone(),
                problem: "is a directory, so the file cannot be written there; nothing of the \
                          set was replaced. Remove the directory or choose another output directory"
                    .into(),
            });
        }
        let mut written = Vec::with_capacity(self.files.len());
        let dirs: Vec<PathBuf> = self
            .files
            .iter()
            .map(|(_, p)| parent(p).to_path_buf())
            .collect();
        for (file, path) in self.files {
            file.persist(&path)
                .map_err(|e| io_error(&path, "replace the file", e.error))?;
            written.push(path);
        }
        for dir in dirs.iter().collect::<std::collections::BTreeSet<_>>() {
            sync_dir(dir);
        }
        Ok(written)
    }
}

/// Writes `files` (name, contents) into `dir` as a set ([`StagedSet`]): every file is written
/// completely to a temporary first, and only then are they renamed into place, in the order
/// given. If any temporary cannot be written, nothing is replaced and every temporary is
/// removed. Returns the paths written.
pub fn write_set(dir: &Path, files: &[(&str, &[u8])]) -> Result<Vec<PathBuf>> {
    StagedSet::stage(dir, files)?.commit()
}

/// An exclusive advisory lock on a directory, held until dropped: two runs never write into one
/// directory at once, and removing stale temporaries under the lock cannot remove a live
/// writer's. On Unix the directory itself is locked (nothing is left in it); elsewhere a
/// `.wgsl-nn.lock` file in it.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

fn lock_file(dir: &Path) -> Result<std::fs::File> {
    ensure_dir(dir)?;
    #[cfg(unix)]
    let opened = std::fs::File::open(dir);
    #[cfg(not(unix))]
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".wgsl-nn.lock"));
    opened.map_err(|e| io_error(dir, "open the directory to lock it", e))
}

impl DirLock {
    /// Takes the lock, or fails at once (naming the directory) if another process holds it.
    pub fn try_acquire(dir: &Path) -> Result<Self> {
        let file = lock_file(dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Data {
                path: dir.to_path_buf(),
                problem: "another run is writing into this directory; wait for it to finish, \
                          or choose another directory"
                    .into(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(dir, "lock the directory", e)),
        }
    }

    /// Takes the lock, waiting while another process holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let file = lock_file(dir)?;
        file.lock()
            .map_err(|e| io_error(dir, "lock the directory", e))?;
        Ok(Self { _file: file })
    }
}

/// Removes `path` if it exists (an error only if it exists and cannot be removed).
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, "remove", e)),
        _ => Ok(()),
    }
}

/// Removes the temporaries (`.wgsl-nn-*.tmp`) that a killed process left in `dir`; returns how
/// many. Nothing else is touched. Call it holding the directory's [`DirLock`], so that no other
/// process of this crate is writing there at the same time.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(dir, "list the directory", e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(PREFIX) && name.ends_with(SUFFIX);
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            remove_if_exists(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
