//! [`AtomicFsStore`]: zarrs' filesystem store with atomic whole-value writes.
//!
//! zarrs' `FilesystemStore` writes a key in place (truncate, write, sync), so
//! a crash mid-write leaves a torn chunk that looks present. This wrapper
//! reads through the filesystem store but writes each value to a hidden
//! temporary file in the same directory (`.<name>.ndstream-tmp-<pid>-<n>`)
//! and renames it over the key: a chunk file is either the old one, the
//! new one, or absent. Values are not fsynced one by one (that would cost a
//! disk flush per chunk); after a power loss a chunk may be empty, which a
//! resumed write detects because `is_done` decodes every chunk it trusts.
//! A store made [`AtomicFsStore::with_sync`] does flush each value, and
//! its directory entry, before `set` returns: what a plan's task writes
//! with `--sync`, since the task is recorded done as soon as it returns.
//!
//! Partial writes (`set_partial_many`) are refused: ndstream writes whole
//! chunks and whole shards only. A directory a value goes into is checked
//! once: no component between the store's base and it may be a symbolic
//! link, so a write never lands outside the store.
//!
//! A store opened for reading ([`AtomicFsStore::pinned`]) holds its base
//! directory open and reads through `/proc/self/fd/<n>`, so it keeps
//! reading the tree it opened even after a writer swaps a new array into
//! its path (see [`crate::swap`]); if that old tree is then removed, a key
//! that has gone is an error ("replaced while being read"), never the fill
//! value: a reader gets the old array whole, or an error, never a mixture.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ndstream_engine::exec::write_then_rename;
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StorePrefix, WritableStorageTraits,
};

/// A filesystem store whose `set` is atomic (write a temporary file, rename).
#[derive(Debug)]
pub(crate) struct AtomicFsStore {
    base: PathBuf,
    inner: FilesystemStore,
    counter: AtomicU64,
    /// Directories this store has made or found (a chunk's directory is
    /// checked once, not with a `mkdir` per chunk: `mkdir` locks its parent
    /// directory even when the entry exists, and the writers contend).
    dirs: Mutex<HashSet<PathBuf>>,
    /// The base directory's path and the inode found there when a reader
    /// opened it.
    pin: Option<Pin>,
    /// fsync each value and its directory before `set` returns.
    sync: bool,
}

/// A directory held open, and what its path named when it was opened.
#[derive(Debug)]
struct Pin {
    _dir: std::fs::File,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Pin {
    /// True if the path no longer names the directory held open.
    fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path).map_or(true, |m| m.dev() != self.dev || m.ino() != self.ino)
    }

    fn error(&self) -> StorageError {
        StorageError::Other(format!(
            "{} was replaced while being read (another process overwrote it); read it again",
            self.path.display()
        ))
    }
}

impl AtomicFsStore {
    /// A store rooted at `base`.
    pub fn new(base: impl Into<PathBuf>) -> Result<AtomicFsStore, String> {
        let base: PathBuf = base.into();
        let inner = FilesystemStore::new(&base).map_err(|e| e.to_string())?;
        Ok(AtomicFsStore {
            base,
            inner,
            counter: AtomicU64::new(0),
            dirs: Mutex::new(HashSet::new()),
            pin: None,
            sync: false,
        })
    }

    /// This store, flushing every value it sets to the disk (the file,
    /// then its directory's entry) before `set` returns, where `sync`.
    #[must_use]
    pub fn with_sync(mut self, sync: bool) -> AtomicFsStore {
        self.sync = sync;
        self
    }

    /// A store for reading the directory `base`, pinned to the directory
    /// it names now (see the module doc). Where `/proc/self/fd` is missing
    /// it reads through the path, and a replaced path is still detected on
    /// every missing key.
    pub fn pinned(base: impl Into<PathBuf>) -> Result<AtomicFsStore, String> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let path: PathBuf = base.into();
        let dir = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let m = dir
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        let via_fd = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        let same =
            std::fs::metadata(&via_fd).is_ok_and(|v| v.dev() == m.dev() && v.ino() == m.ino());
        let mut store = AtomicFsStore::new(if same { via_fd } else { path.clone() })?;
        store.pin = Some(Pin {
            _dir: dir,
            path,
            dev: m.dev(),
            ino: m.ino(),
        });
        Ok(store)
    }

    /// The directory reads go through (`/proc/self/fd/<n>` when pinned).
    pub fn base(&self) -> &std::path::Path {
        &self.base
    }

    /// True for the name of a value's temporary file (see the module doc).
    pub fn is_temporary(file_name: &str) -> bool {
        file_name.starts_with('.') && file_name.contains(".ndstream-tmp-")
    }

    /// Make `dir` (below the base) and check that no component between the
    /// base and it is a symbolic link.
    fn make_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let Ok(rel) = dir.strip_prefix(&self.base) else {
            return std::fs::create_dir_all(dir);
        };
        let mut p = self.base.clone();
        for part in rel.components() {
            p.push(part);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(std::io::Error::other(format!(
                        "{} is a symbolic link inside the store; refusing to write through it",
                        p.display()
                    )))
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&p)
                {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ReadableStorageTraits for AtomicFsStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let got = self.inner.get_partial_many(key, byte_ranges)?;
        match &self.pin {
            Some(pin) if got.is_none() && pin.replaced() => Err(pin.error()),
            _ => Ok(got),
        }
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        let got = self.inner.size_key(key)?;
        match &self.pin {
            Some(pin) if got.is_none() && pin.replaced() => Err(pin.error()),
            _ => Ok(got),
        }
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl WritableStorageTraits for AtomicFsStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        let path = self.inner.key_to_fspath(key);
        let dir = path
            .parent()
            .ok_or_else(|| StorageError::Other(format!("key {key} has no directory")))?;
        let known = self.dirs.lock().is_ok_and(|d| d.contains(dir));
        if !known {
            self.make_dir(dir)?;
            if let Ok(mut d) = self.dirs.lock() {
                d.insert(dir.to_path_buf());
            }
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{file_name}.ndstream-tmp-{}-{n}",
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let f = match std::fs::File::create(&tmp) {
                // A directory seen before and removed since: make it again.
                Err(e) if known && e.kind() == std::io::ErrorKind::NotFound => {
                    self.make_dir(dir)?;
                    std::fs::File::create(&tmp)?
                }
                r => r?,
            };
            write_then_rename(f, &value, &tmp, &path, self.sync)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StorageError::from(e)
        })
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        _offset_values: OffsetBytesIterator<'_>,
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported(format!(
            "partial writes of {key} (ndstream writes whole chunks)"
        )))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.inner.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        // The prefix's directories go too: forget every directory seen.
        if let Ok(mut d) = self.dirs.lock() {
            d.clear();
        }
        self.inner.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}
