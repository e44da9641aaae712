//! Zarr stores reached by URL (feature `object-store`): reading an array,
//! `info` of an array or a group, glob patterns over a bucket, and writing
//! a new array (or resuming one) in object storage.
//!
//! Keys are read through the store's `get` and listed with `list_dir`, as
//! zarr-python does over fsspec; a web server (`http(s)://`) serves keys
//! but has no listing, so a group there can be opened by array path but
//! not listed. Chunks are read by zarrs exactly as on disk.

use std::sync::Arc;

use ndstream_engine::{ChunkSink, ChunkSource, Error, Result};
use zarrs::array::Array;
use zarrs::storage::{ListableStorageTraits, ReadableStorageTraits, StoreKey, StorePrefix};

use super::meta::{self, MetaReader, Node};
use super::sink::{StoreState, ZarrSink};
use super::source::{HandedStore, ZarrSource};
use super::{array_info, version_name, zarrs_node_path, INCOMPLETE_MARKER};
use crate::remote::{open_claiming, open_fetching, open_store, RemoteStore};
use crate::spec::{ArrayInfo, SinkSpec, StoreInfo, WriteMode};
use crate::url::split_url;

/// The key prefix of a node (`""` for the root, `a/b/` for `a/b`).
fn prefix_of(array: &str) -> String {
    let a = array.trim_matches('/');
    if a.is_empty() {
        String::new()
    } else {
        format!("{a}/")
    }
}

/// Reads a node's metadata documents through the store.
struct KeyReader<'a> {
    store: &'a RemoteStore,
    /// The node's key prefix.
    prefix: String,
    /// The store root's URL, for messages.
    root: &'a str,
    /// Set when a request failed (the network, the service, permissions):
    /// a runtime failure, not bad input.
    failed: std::cell::Cell<bool>,
}

impl<'a> KeyReader<'a> {
    fn new(store: &'a RemoteStore, root: &'a str, prefix: String) -> KeyReader<'a> {
        KeyReader {
            store,
            prefix,
            root,
            failed: std::cell::Cell::new(false),
        }
    }

    /// The node, or an error for `name`: with an I/O cause when a request
    /// failed (so the CLI exits 1), without one for bad metadata (exit 2).
    fn node(&self, name: &str) -> Result<Option<Node>> {
        meta::read_node_from(self).map_err(|m| {
            if self.failed.get() {
                Error::Open {
                    path: name.to_string(),
                    message: m.clone(),
                    cause: Some(Box::new(std::io::Error::other(m))),
                }
            } else {
                Error::open(name, m)
            }
        })
    }
}

impl MetaReader for KeyReader<'_> {
    fn get(&self, name: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        let key = StoreKey::new(format!("{}{name}", self.prefix)).map_err(|e| e.to_string())?;
        self.store
            .get(&key)
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| {
                self.failed.set(true);
                format!("cannot read {}: {e}", self.describe(name))
            })
    }
    fn describe(&self, name: &str) -> String {
        format!("{}/{}{name}", self.root, self.prefix)
    }
}

fn read_node(store: &RemoteStore, root: &str, prefix: String) -> Result<Option<Node>> {
    KeyReader::new(store, root, prefix).node(root)
}

/// The node at `root/array`, with errors naming a missing store or path.
fn node(name: &str, store: &RemoteStore, root: &str, array: &str) -> Result<Node> {
    match KeyReader::new(store, root, prefix_of(array)).node(name)? {
        Some(n) => Ok(n),
        None if array.is_empty() => Err(Error::open(
            name,
            format!("no Zarr store at {root} (no zarr.json, .zarray or .zgroup there)"),
        )),
        None => Err(Error::open(
            name,
            format!("no array or group `{array}` in the Zarr store {root}"),
        )),
    }
}

/// Open the array at `root/array` (`root` a URL) as a chunk source.
pub(crate) fn open_source(name: &str, root: &str, array: &str) -> Result<Arc<dyn ChunkSource>> {
    let (store, get) = open_fetching(name, root)?;
    let meta = match node(name, &store, root, array)? {
        Node::Array(m) => m,
        Node::Group { .. } => {
            return Err(Error::open(
                name,
                "is a Zarr group, not an array (name an array inside it, e.g. store.zarr/x)",
            ))
        }
    };
    // Chunks fetched ahead are handed to the store for their decode.
    let storage: Arc<dyn ReadableStorageTraits> = Arc::new(HandedStore(store));
    let zarr = Array::open(storage, &zarrs_node_path(array)).map_err(|e| Error::Open {
        path: name.to_string(),
        message: format!("zarrs cannot open the array: {e}"),
        cause: Some(Box::new(e)),
    })?;
    // zarrs' chunk keys include the array's path: name chunks from the root.
    let mut src = ZarrSource::new(name, root.to_string(), zarr, meta);
    src.fetcher = Some(get);
    // Fetched chunks cost their bytes; the inner chunks of a shard are
    // read by I/O threads, which cost a thread each.
    src.read_ahead = if src.fetches() {
        crate::remote::READ_AHEAD
    } else {
        crate::remote::READ_AHEAD_THREADS
    };
    src.locator = crate::Location::ZarrUrl {
        root: root.to_string(),
        array: array.to_string(),
    }
    .to_locator();
    Ok(Arc::new(src))
}

fn stored_info(store: &RemoteStore, path: String, prefix: &str, m: meta::ArrayMeta) -> ArrayInfo {
    let p = StorePrefix::new(prefix.to_string()).unwrap_or(StorePrefix::root());
    // A web server has no listing: the stored size is then unknown.
    let stored = store.size_prefix(&p).ok();
    let incomplete = StoreKey::new(format!("{prefix}{INCOMPLETE_MARKER}"))
        .ok()
        .and_then(|k| store.get(&k).ok().flatten())
        .is_some();
    array_info(path, m, stored, incomplete)
}

/// Arrays below the group at key prefix `prefix` (recursively, sorted).
fn collect_arrays(
    name: &str,
    store: &RemoteStore,
    root: &str,
    prefix: &str,
    shown: &str,
    out: &mut Vec<ArrayInfo>,
) -> Result<()> {
    let p = StorePrefix::new(prefix.to_string()).map_err(|e| Error::open(name, e.to_string()))?;
    let listing = store.list_dir(&p).map_err(|e| {
        Error::open(
            name,
            format!("cannot list the group at {root}/{prefix} (a web server cannot be listed; name an array inside it): {e}"),
        )
    })?;
    let mut subs: Vec<String> = listing
        .prefixes()
        .iter()
        .filter_map(|c| c.as_str().strip_prefix(prefix))
        .map(|c| c.trim_end_matches('/').to_string())
        .filter(|n| !n.is_empty() && !crate::swap::is_temporary_name(n))
        .collect();
    subs.sort();
    for sub in subs {
        let child = format!("{prefix}{sub}/");
        let path = format!("{shown}/{sub}");
        // Chunk prefixes and foreign folders have no metadata; an array
        // ndstream cannot read is skipped in a listing (opening it names why).
        match read_node(store, root, child.clone()) {
            Ok(Some(Node::Array(m))) => out.push(stored_info(store, path, &child, m)),
            Ok(Some(Node::Group { .. })) => collect_arrays(name, store, root, &child, &path, out)?,
            Ok(None) | Err(_) => {}
        }
    }
    Ok(())
}

/// `info` for an array or group of a Zarr store reached by URL.
pub(crate) fn info(name: &str, root: &str, array: &str) -> Result<StoreInfo> {
    let store = open_store(name, root)?;
    let prefix = prefix_of(array);
    match node(name, &store, root, array)? {
        Node::Array(m) => Ok(StoreInfo::Array(stored_info(
            &store,
            name.to_string(),
            &prefix,
            m,
        ))),
        Node::Group {
            version,
            attributes,
        } => {
            let mut arrays = Vec::new();
            collect_arrays(
                name,
                &store,
                root,
                &prefix,
                name.trim_end_matches('/'),
                &mut arrays,
            )?;
            Ok(StoreInfo::Group {
                path: name.to_string(),
                format: version_name(version).to_string(),
                attributes,
                arrays,
            })
        }
    }
}

fn is_wild(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

/// The store roots a URL pattern names (`s3://b/runs/*.zarr`): each
/// component with `*` or `[...]` is matched against the names listed
/// under the components before it. Sorted; temporaries of overwrites in
/// progress are left out. With `files`, the last component is matched
/// against the objects listed there instead (`s3://b/era5/*.nc`).
pub(crate) fn glob(name: &str, pattern: &str, files: bool) -> Result<Vec<String>> {
    let u = split_url(pattern).ok_or_else(|| Error::open(name, "not a URL"))?;
    if is_wild(u.authority) {
        return Err(Error::open(
            name,
            "a bucket, container or host cannot be a pattern",
        ));
    }
    let parts: Vec<&str> = u.path.split('/').filter(|p| !p.is_empty()).collect();
    let first = parts.iter().position(|p| is_wild(p)).unwrap_or(parts.len());
    let mut base = format!("{}://{}", u.scheme, u.authority);
    if first > 0 {
        base = format!("{base}/{}", parts[..first].join("/"));
    }
    let store = open_store(name, &base)?;
    let mut current = vec![String::new()];
    let last = parts.len().saturating_sub(1);
    for (at, part) in parts.iter().enumerate().skip(first) {
        let mut next = Vec::new();
        let objects = files && at == last;
        if is_wild(part) {
            // Folders (prefixes) match a component; in the last component
            // of a file pattern, objects do.
            let pat = glob::Pattern::new(part)
                .map_err(|e| Error::open(name, format!("bad glob pattern `{part}`: {e}")))?;
            for pre in &current {
                let p =
                    StorePrefix::new(pre.clone()).map_err(|e| Error::open(name, e.to_string()))?;
                let listing = store
                    .list_dir(&p)
                    .map_err(|e| Error::open(name, format!("cannot list {base}/{pre}: {e}")))?;
                let found: Vec<&str> = if objects {
                    listing.keys().iter().map(StoreKey::as_str).collect()
                } else {
                    listing.prefixes().iter().map(StorePrefix::as_str).collect()
                };
                for child in found {
                    let Some(n) = child.strip_prefix(pre.as_str()) else {
                        continue;
                    };
                    let n = n.trim_end_matches('/');
                    if pat.matches(n) && !crate::swap::is_temporary_name(n) {
                        next.push(child.to_string());
                    }
                }
            }
        } else if objects {
            // A literal file name is kept as it is (a missing one is
            // reported when it is opened).
            next = current.iter().map(|pre| format!("{pre}{part}")).collect();
        } else {
            next = current.iter().map(|pre| format!("{pre}{part}/")).collect();
        }
        current = next;
    }
    let mut out: Vec<String> = current
        .iter()
        .map(|rel| {
            let rel = rel.trim_end_matches('/');
            if rel.is_empty() {
                base.clone()
            } else {
                format!("{base}/{rel}")
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Create the array `root/array` of a store reached by URL for `spec`
/// (see [`ZarrSink::create_in_store`]).
pub(crate) fn create_sink(
    name: &str,
    root: &str,
    array: &str,
    spec: &SinkSpec,
) -> Result<Arc<dyn ChunkSink>> {
    refuse_read_only(name, root)?;
    let (store, claim) = open_claiming(name, root)?;
    let prefix = prefix_of(array);
    let existing = KeyReader::new(&store, root, prefix.clone()).node(name)?;
    let p = StorePrefix::new(prefix.clone()).map_err(|e| Error::open(name, e.to_string()))?;
    let cannot = |what: &str, e: zarrs::storage::StorageError| Error::Open {
        path: name.to_string(),
        message: format!("cannot {what} {root}/{prefix}: {e}"),
        cause: Some(Box::new(std::io::Error::other(e.to_string()))),
    };
    let keys = if matches!(spec.mode, WriteMode::Into | WriteMode::Shared) {
        // Writing into the array that stands needs only to know whether it
        // is marked incomplete: one look, where a listing of every chunk
        // (by each of a plan's tasks) would cost a request per thousand.
        let marker = StoreKey::new(format!("{prefix}{INCOMPLETE_MARKER}"))
            .map_err(|e| Error::open(name, e.to_string()))?;
        match store.size_key(&marker).map_err(|e| cannot("look at", e))? {
            Some(_) => vec![marker],
            None => Vec::new(),
        }
    } else {
        store.list_prefix(&p).map_err(|e| cannot("list", e))?
    };
    let parts: Vec<&str> = array.split('/').filter(|p| !p.is_empty()).collect();
    let mut groups = Vec::new();
    for i in 0..parts.len() {
        groups.push(KeyReader::new(&store, root, prefix_of(&parts[..i].join("/"))).node(name)?);
    }
    let url = if array.is_empty() {
        root.to_string()
    } else {
        format!("{root}/{array}")
    };
    let state = StoreState {
        existing,
        keys,
        groups,
        claim: Some(claim),
    };
    Ok(Arc::new(ZarrSink::create_in_store(
        name, &url, store, array, spec, state,
    )?))
}

/// A web server (`http(s)://`) is read by GET and has no writes.
pub(crate) fn refuse_read_only(name: &str, root: &str) -> Result<()> {
    let scheme = split_url(root).map(|u| u.scheme.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(Error::open(
            name,
            "a web server (http, https) is read-only; write to object storage (s3://, gs://, az://) or a local path",
        ));
    }
    Ok(())
}
