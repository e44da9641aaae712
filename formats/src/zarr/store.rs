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
//!
//! Partial writes (`set_partial_many`) are refused: ndstream writes whole
//! chunks and whole shards only.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StorePrefix, WritableStorageTraits,
};

/// A filesystem store whose `set` is atomic (write a temporary file, rename).
#[derive(Debug)]
pub(crate) struct AtomicFsStore {
    inner: FilesystemStore,
    counter: AtomicU64,
    /// Directories this store has made or found (a chunk's directory is
    /// checked once, not with a `mkdir` per chunk: `mkdir` locks its parent
    /// directory even when the entry exists, and the writers contend).
    dirs: Mutex<HashSet<PathBuf>>,
}

impl AtomicFsStore {
    /// A store rooted at `base`.
    pub fn new(base: impl Into<PathBuf>) -> Result<AtomicFsStore, String> {
        let base = base.into();
        let inner = FilesystemStore::new(&base).map_err(|e| e.to_string())?;
        Ok(AtomicFsStore {
            inner,
            counter: AtomicU64::new(0),
            dirs: Mutex::new(HashSet::new()),
        })
    }
}

impl ReadableStorageTraits for AtomicFsStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
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
            std::fs::create_dir_all(dir)?;
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
            let mut f = match std::fs::File::create(&tmp) {
                // A directory seen before and removed since: make it again.
                Err(e) if known && e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir)?;
                    std::fs::File::create(&tmp)?
                }
                r => r?,
            };
            f.write_all(&value)?;
            drop(f);
            std::fs::rename(&tmp, &path)
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
