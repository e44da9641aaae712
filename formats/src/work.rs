//! Where a plan's tasks keep their records ([`WorkStore`]): a directory
//! on a file system every worker shares, or a prefix in object storage
//! (`s3://bucket/jobs/anomaly.work`), so that workers with no shared file
//! system can run a plan whose inputs and output are in a bucket.
//!
//! Every record is one value written whole: a file renamed into place in
//! a directory ([`DirStore`]), one PUT in object storage (whole or absent,
//! as object stores promise). A record is read back by the same key.

use std::path::PathBuf;

use ndstream_engine::exec::{DirStore, TaskStore};
use ndstream_engine::{Error, Result};

/// Whether `location` is a URL (`scheme://…`) rather than a path.
///
/// ```
/// use ndstream_formats::work::is_url;
/// assert!(is_url("s3://bucket/job.work"));
/// assert!(!is_url("/data/job.work"));
/// ```
#[must_use]
pub fn is_url(location: &str) -> bool {
    crate::url::split_url(location).is_some()
}

/// A plan's work directory: a local (or shared) directory, or a prefix in
/// object storage reached as Zarr stores are (`s3://`, `gs://`, `az://`;
/// credentials and endpoints from the environment).
#[derive(Debug)]
pub enum WorkStore {
    /// A directory.
    Dir(DirStore),
    /// A prefix in object storage (feature `object-store`).
    #[cfg(feature = "object-store")]
    Remote(remote::RemoteWork),
}

impl WorkStore {
    /// The work store at `location`: a URL, or a directory path (which
    /// should be absolute where other processes run tasks).
    ///
    /// # Errors
    /// A URL of no writable service (`http(s)://` is read-only), or any
    /// URL where the build lacks the `object-store` feature; a service the
    /// environment's settings cannot configure.
    pub fn open(location: &str) -> Result<WorkStore> {
        if !is_url(location) {
            return Ok(WorkStore::Dir(DirStore::new(location)));
        }
        #[cfg(feature = "object-store")]
        {
            Ok(WorkStore::Remote(remote::RemoteWork::open(location)?))
        }
        #[cfg(not(feature = "object-store"))]
        Err(Error::open(
            location,
            "a work directory in object storage needs ndstream built with the `object-store` feature",
        ))
    }

    /// This store, flushing each record to the disk before it is put
    /// (a directory's; one PUT in object storage is durable already),
    /// where `sync`.
    #[must_use]
    pub fn with_sync(self, sync: bool) -> WorkStore {
        match self {
            WorkStore::Dir(d) => WorkStore::Dir(d.with_sync(sync)),
            #[cfg(feature = "object-store")]
            other @ WorkStore::Remote(_) => other,
        }
    }

    /// Whether nothing is there yet (no directory, an empty one, or no
    /// key under the prefix).
    ///
    /// # Errors
    /// The store cannot be listed.
    pub fn is_empty(&self) -> Result<bool> {
        match self {
            // A path that cannot be looked at is not there (making it
            // will say why); a file there is not empty.
            WorkStore::Dir(d) => Ok(std::fs::symlink_metadata(d.root()).map_or(true, |m| {
                m.is_dir() && std::fs::read_dir(d.root()).is_ok_and(|mut r| r.next().is_none())
            })),
            #[cfg(feature = "object-store")]
            WorkStore::Remote(r) => r.is_empty(),
        }
    }

    /// Remove every record under `prefix` (`stage-0`), if any.
    ///
    /// # Errors
    /// The records cannot be removed.
    pub fn remove_all(&self, prefix: &str) -> Result<()> {
        // Names made by the plans only: nothing outside the directory.
        ndstream_engine::exec::check_key(prefix)?;
        match self {
            WorkStore::Dir(d) => {
                let dir = d.root().join(prefix);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(dir_error(d, "cannot remove the records in", e)),
                }
            }
            #[cfg(feature = "object-store")]
            WorkStore::Remote(r) => r.remove_all(prefix),
        }
    }

    /// Remove the record `key`, if there is one.
    ///
    /// # Errors
    /// The record cannot be removed.
    pub fn remove(&self, key: &str) -> Result<()> {
        ndstream_engine::exec::check_key(key)?;
        match self {
            WorkStore::Dir(d) => match std::fs::remove_file(d.root().join(key)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(dir_error(d, "cannot remove a record in", e)),
            },
            #[cfg(feature = "object-store")]
            WorkStore::Remote(r) => r.remove(key),
        }
    }

    /// Remove everything in the work directory (or under the prefix), and
    /// the directory itself: for a temporary one its maker is done with.
    ///
    /// # Errors
    /// What is there cannot be removed.
    pub fn clear(&self) -> Result<()> {
        match self {
            WorkStore::Dir(d) => match std::fs::remove_dir_all(d.root()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(dir_error(d, "cannot remove", e)),
            },
            #[cfg(feature = "object-store")]
            WorkStore::Remote(r) => r.clear(),
        }
    }

    /// The directory, or `None` in object storage.
    #[must_use]
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            WorkStore::Dir(d) => Some(d.root().to_path_buf()),
            #[cfg(feature = "object-store")]
            WorkStore::Remote(_) => None,
        }
    }

    fn inner(&self) -> &dyn TaskStore {
        match self {
            WorkStore::Dir(d) => d,
            #[cfg(feature = "object-store")]
            WorkStore::Remote(r) => r,
        }
    }
}

fn dir_error(d: &DirStore, what: &str, e: std::io::Error) -> Error {
    Error::Sink {
        sink_name: d.root().display().to_string(),
        what: "the work directory".into(),
        message: format!("{what} {}: {e}", d.root().display()),
        cause: Some(Box::new(e)),
    }
}

impl TaskStore for WorkStore {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.inner().put(key, bytes)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner().get(key)
    }
    fn has(&self, key: &str) -> Result<bool> {
        self.inner().has(key)
    }
    fn count(&self, stage: usize, tasks: u64) -> Result<u64> {
        self.inner().count(stage, tasks)
    }
}

#[cfg(feature = "object-store")]
pub mod remote {
    //! The work store in object storage.

    use std::sync::Arc;

    use ndstream_engine::exec::TaskStore;
    use ndstream_engine::{Error, Result};
    use zarrs::storage::{
        ListableStorageTraits, ReadableStorageTraits, StoreKey, StorePrefix, WritableStorageTraits,
    };

    use crate::remote::{open_store, RemoteStore};

    /// Records as objects under a URL's prefix, one PUT each.
    pub struct RemoteWork {
        store: Arc<RemoteStore>,
        url: String,
    }

    impl std::fmt::Debug for RemoteWork {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RemoteWork")
                .field("url", &self.url)
                .finish()
        }
    }

    impl RemoteWork {
        pub(super) fn open(url: &str) -> Result<RemoteWork> {
            let url = url.trim_end_matches('/');
            crate::zarr::object::refuse_read_only(url, url)?;
            Ok(RemoteWork {
                store: open_store(url, url)?,
                url: url.to_string(),
            })
        }

        fn error(&self, what: &str, key: &str, e: impl std::fmt::Display) -> Error {
            Error::Sink {
                sink_name: self.url.clone(),
                what: "the work directory".into(),
                message: format!("{what} {}/{key}: {e}", self.url),
                cause: Some(Box::new(std::io::Error::other(e.to_string()))),
            }
        }

        fn key(&self, key: &str) -> Result<StoreKey> {
            // Keys are made by the plan (`stage-S/N`, `plan-id`); anything
            // else is refused, as in a directory.
            ndstream_engine::exec::check_key(key)?;
            StoreKey::new(key).map_err(|e| self.error("cannot name", key, e))
        }

        fn prefix(&self, prefix: &str) -> Result<StorePrefix> {
            let p = format!("{}/", prefix.trim_matches('/'));
            StorePrefix::new(p.clone()).map_err(|e| self.error("cannot name", &p, e))
        }

        /// One listing of the prefix's first level (the plan id, the
        /// stages' and the work array's prefixes), however many records
        /// lie below it.
        pub(super) fn is_empty(&self) -> Result<bool> {
            let top = self
                .store
                .list_dir(&StorePrefix::root())
                .map_err(|e| self.error("cannot list", "", e))?;
            Ok(top.keys().is_empty() && top.prefixes().is_empty())
        }

        pub(super) fn remove(&self, key: &str) -> Result<()> {
            let k = self.key(key)?;
            self.store
                .erase(&k)
                .map_err(|e| self.error("cannot remove", key, e))
        }

        pub(super) fn clear(&self) -> Result<()> {
            self.store
                .erase_prefix(&StorePrefix::root())
                .map_err(|e| self.error("cannot remove", "", e))
        }

        pub(super) fn remove_all(&self, prefix: &str) -> Result<()> {
            let p = self.prefix(prefix)?;
            self.store
                .erase_prefix(&p)
                .map_err(|e| self.error("cannot remove the records in", p.as_str(), e))
        }
    }

    impl TaskStore for RemoteWork {
        fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
            let k = self.key(key)?;
            self.store
                .set(&k, bytes.to_vec().into())
                .map_err(|e| self.error("cannot write", key, e))
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            let k = self.key(key)?;
            self.store
                .get(&k)
                .map(|b| b.map(|b| b.to_vec()))
                .map_err(|e| self.error("cannot read", key, e))
        }
        fn has(&self, key: &str) -> Result<bool> {
            let k = self.key(key)?;
            self.store
                .size_key(&k)
                .map(|s| s.is_some())
                .map_err(|e| self.error("cannot look at", key, e))
        }
        /// One listing of the stage's prefix.
        fn count(&self, stage: usize, tasks: u64) -> Result<u64> {
            let p = self.prefix(&format!("stage-{stage}"))?;
            let keys = self
                .store
                .list_prefix(&p)
                .map_err(|e| self.error("cannot list", p.as_str(), e))?;
            let n = keys
                .iter()
                .filter_map(|k| k.as_str().strip_prefix(p.as_str()))
                .filter_map(|rest| rest.parse::<u64>().ok())
                .filter(|&t| t < tasks)
                .count();
            Ok(n as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_removed_by_their_names_only() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("keep");
        std::fs::write(&outside, b"mine").unwrap();
        let root = tmp.path().join("work");
        let w = WorkStore::open(root.to_str().unwrap()).unwrap();
        assert!(w.is_empty().unwrap());
        w.put("stage-0/1", b"x").unwrap();
        w.put("plan-id", b"id").unwrap();
        assert!(!w.is_empty().unwrap());
        for bad in ["../keep", "..", "", "stage-0/../../keep", ".hidden"] {
            assert!(w.remove(bad).is_err(), "{bad}");
            assert!(w.remove_all(bad).is_err(), "{bad}");
        }
        assert_eq!(std::fs::read(&outside).ok().as_deref(), Some(&b"mine"[..]));
        w.remove_all("stage-0").unwrap();
        assert!(!w.has("stage-0/1").unwrap());
        w.remove("plan-id").unwrap();
        assert!(w.is_empty().unwrap());
        w.clear().unwrap();
        assert!(!root.exists() && outside.exists());
    }
}
