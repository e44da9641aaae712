//! Advisory write locks on outputs: `flock` on the output itself.
//!
//! A sink holds an [`OutputLock`] from creation until it is dropped, so a
//! second writer of the same output (another ndstream, or any program that
//! `flock`s, as libhdf5 does) is refused with "… is in use by another
//! process" before it changes anything. The lock is taken on the output's
//! own file or directory, so nothing is written to hold it:
//!
//! - `.npy` and raw: the file (and, while it is replaced, its temporary);
//! - Zarr: the array's directory exclusively, and the store root and the
//!   groups above the array shared, so that replacing a whole store waits
//!   for no one writing an array inside it (and the other way round);
//! - HDF5: libhdf5 `flock`s every file it opens for writing (unless
//!   `HDF5_USE_FILE_LOCKING=FALSE`), and h5py does the same, so the HDF5
//!   sink relies on that lock and reports its failure the same way.
//!
//! Locks never wait: a taken lock is an error at once. Between opening a
//! path and locking it, another writer may have swapped a new output into
//! place (see [`crate::swap`]); [`OutputLock::take`] checks that the path
//! still names the inode it locked and tries again if not. Where the file
//! system has no `flock` (some network file systems refuse it on
//! directories), the write goes ahead unlocked.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ndstream_engine::Error;

/// Shared (readers of a group, writers below it) or exclusive (the writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// Taken by the Zarr sink only.
    #[cfg_attr(not(feature = "zarr"), allow(dead_code))]
    Shared,
    Exclusive,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another open file description holds a conflicting lock.
    InUse(PathBuf),
    /// The path cannot be opened (missing, no permission, ...).
    Io(PathBuf, std::io::Error),
}

impl LockError {
    /// The error a sink reports: [`Error::Sink`] for a lock held elsewhere
    /// (a runtime conflict, exit status 1 in the CLI), [`Error::Open`] for
    /// a path that cannot be opened.
    pub(crate) fn into_error(self, name: &str) -> Error {
        match self {
            LockError::InUse(p) => in_use(name, &p),
            LockError::Io(p, e) => Error::Open {
                path: name.to_string(),
                message: format!("cannot open {} to lock it: {e}", p.display()),
                cause: Some(Box::new(e)),
            },
        }
    }
}

/// The error for an output another process is writing.
pub(crate) fn in_use(name: &str, path: &Path) -> Error {
    Error::Sink {
        sink_name: name.to_string(),
        what: "the output".into(),
        message: format!(
            "{} is in use by another process (it holds the lock); nothing was changed",
            path.display()
        ),
        cause: None,
    }
}

/// A held `flock`, released when dropped (closing the descriptor).
#[derive(Debug)]
pub(crate) struct OutputLock {
    file: File,
}

impl OutputLock {
    /// Lock the existing file or directory at `path`.
    pub(crate) fn take(path: &Path, kind: LockKind) -> Result<OutputLock, LockError> {
        Self::take_opened(path, kind, false)
    }

    /// Lock the existing file at `path`, opened for reading and writing
    /// (the sink then writes through the locked descriptor).
    pub(crate) fn take_writable(path: &Path, kind: LockKind) -> Result<OutputLock, LockError> {
        Self::take_opened(path, kind, true)
    }

    fn take_opened(path: &Path, kind: LockKind, write: bool) -> Result<OutputLock, LockError> {
        // A swap between our open and our lock changes the inode the path
        // names; a few tries outlast any swap that is not a tight loop.
        for _ in 0..4 {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .open(path)
                .map_err(|e| LockError::Io(path.to_path_buf(), e))?;
            if !lock_file(&file, kind).map_err(|e| LockError::Io(path.to_path_buf(), e))? {
                return Err(LockError::InUse(path.to_path_buf()));
            }
            if same_inode(&file, path) {
                return Ok(OutputLock { file });
            }
        }
        Err(LockError::InUse(path.to_path_buf()))
    }

    /// Lock an open file (one this process just created: no swap can
    /// have replaced it yet).
    pub(crate) fn on(file: File, path: &Path, kind: LockKind) -> Result<OutputLock, LockError> {
        if lock_file(&file, kind).map_err(|e| LockError::Io(path.to_path_buf(), e))? {
            Ok(OutputLock { file })
        } else {
            Err(LockError::InUse(path.to_path_buf()))
        }
    }

    /// The locked file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// True if another process holds a lock on `path` (a temporary of a live
/// writer); false if it is free, gone or unlockable here.
pub(crate) fn is_locked(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    matches!(lock_file(&f, LockKind::Exclusive), Ok(false))
}

/// How long a lock held elsewhere is waited for before it counts as "in
/// use": a process that forks (any `Command::spawn`, in this process or a
/// host program) shares every open descriptor, and so every `flock`, with
/// its child until the child execs or exits, a few milliseconds. A writer
/// holds its lock far longer than this.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// `flock` without blocking for long: `Ok(true)` locked (or no `flock`
/// here), `Ok(false)` still held elsewhere after [`LOCK_GRACE`].
fn lock_file(file: &File, kind: LockKind) -> std::io::Result<bool> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        let r = match kind {
            LockKind::Shared => file.try_lock_shared(),
            LockKind::Exclusive => file.try_lock(),
        };
        match r {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_GRACE => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) if unsupported(&e) => return Ok(true),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Errors that mean "this file system does not lock", not "locked".
fn unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::EBADF) | Some(libc::EINVAL)
        )
}

/// True if `path` still names the inode `file` has open.
fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("x.zarr");
        std::fs::create_dir(&dir).unwrap();
        let a = OutputLock::take(&dir, LockKind::Shared).unwrap();
        let b = OutputLock::take(&dir, LockKind::Shared).unwrap();
        assert!(matches!(
            OutputLock::take(&dir, LockKind::Exclusive),
            Err(LockError::InUse(_))
        ));
        assert!(is_locked(&dir));
        drop((a, b));
        assert!(!is_locked(&dir));
        let c = OutputLock::take(&dir, LockKind::Exclusive).unwrap();
        assert!(matches!(
            OutputLock::take(&dir, LockKind::Shared),
            Err(LockError::InUse(_))
        ));
        let e = LockError::InUse(dir.clone()).into_error("x.zarr");
        assert!(matches!(e, Error::Sink { .. }));
        assert!(
            e.to_string().contains("is in use by another process"),
            "{e}"
        );
        drop(c);
    }

    #[test]
    fn missing_path_is_an_open_error() {
        let d = tempfile::tempdir().unwrap();
        let r = OutputLock::take(&d.path().join("nope"), LockKind::Exclusive);
        assert!(matches!(
            r.map_err(|e| e.into_error("nope")),
            Err(Error::Open { .. })
        ));
    }
}
