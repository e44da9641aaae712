//! Zarr v2 and v3 stores on the filesystem, through the zarrs crate.
//!
//! A location is a store root directory plus an array (or group) path
//! inside it. The version is detected from the metadata files (`zarr.json`
//! for v3; `.zarray`/`.zgroup` for v2). Submodules: [`meta`] (metadata
//! reading/building and dtype vetting), [`store`] (atomic writes),
//! [`source`] and [`sink`].
//!
//! Completeness: a sink writes `.ndstream-incomplete` into the array
//! directory before anything else and removes it in `finish`; [`info`]
//! reports arrays holding the marker as incomplete (they still read).
//! Sources read through a store pinned to the directory they opened, so a
//! concurrent overwrite never mixes two arrays into one read; listings
//! skip the temporaries of overwrites in progress.

mod meta;
#[cfg(feature = "object-store")]
pub(crate) mod object;
mod sink;
mod source;
pub(crate) mod staged;
mod store;

use std::path::Path;
use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, Error, Result};
use zarrs::array::{Array, CodecOptions};
use zarrs::storage::ReadableStorageTraits;

use crate::format::Format;
use crate::path::Location;
use crate::spec::{ArrayInfo, SinkSpec, StoreInfo, ZarrVersion};
use meta::{ArrayMeta, Node};
use store::AtomicFsStore;

#[cfg(feature = "object-store")]
pub(crate) use sink::{Claim, ClaimFn};
#[cfg(feature = "object-store")]
pub(crate) use source::{GetDone, GetFn};

/// The file marking an array a sink has not finished.
pub(crate) const INCOMPLETE_MARKER: &str = ".ndstream-incomplete";

/// Codec options for every zarrs call: one thread (the executor owns the
/// threads) and every chunk stored, even all-fill ones (so resume can trust
/// "present and decodes").
pub(crate) fn codec_options() -> CodecOptions {
    CodecOptions::default()
        .with_concurrent_target(1)
        .with_store_empty_chunks(true)
}

/// zarrs' node path for an array path (`a/b` -> `/a/b`, `` -> `/`).
pub(crate) fn zarrs_node_path(array: &str) -> String {
    format!("/{}", array.trim_matches('/'))
}

fn version_name(v: ZarrVersion) -> &'static str {
    match v {
        ZarrVersion::V2 => "zarr v2",
        ZarrVersion::V3 => "zarr v3",
    }
}

/// Read the node at `root/array`, with errors for a missing store or path.
fn node(name: &str, root: &Path, array: &str) -> Result<Node> {
    if !root.is_dir() {
        return Err(Error::open(
            name,
            format!("no such Zarr store: {} is not a directory", root.display()),
        ));
    }
    let dir = root.join(array);
    match meta::read_node(&dir) {
        Ok(Some(n)) => Ok(n),
        Ok(None) if array.is_empty() => Err(Error::open(
            name,
            "not a Zarr store (no zarr.json, .zarray or .zgroup)",
        )),
        Ok(None) => Err(Error::open(
            name,
            format!(
                "no array or group `{array}` in the Zarr store {}",
                root.display()
            ),
        )),
        Err(m) => Err(Error::open(name, m)),
    }
}

/// Open `root/array` with zarrs for reading or resuming.
pub(crate) fn open_array(name: &str, root: &Path, array: &str) -> Result<Array<AtomicFsStore>> {
    let store = Arc::new(AtomicFsStore::new(root).map_err(|m| Error::open(name, m))?);
    Array::open(store, &zarrs_node_path(array)).map_err(|e| Error::Open {
        path: name.to_string(),
        message: format!("zarrs cannot open the array: {e}"),
        cause: Some(Box::new(e)),
    })
}

/// Open the array at `root/array` as a chunk source, pinned to the
/// directory the path names now (see [`store`]): a writer swapping a new
/// array in meanwhile never mixes its chunks into this reader's.
pub(crate) fn open_source(name: &str, root: &Path, array: &str) -> Result<Arc<dyn ChunkSource>> {
    let not_array = || {
        Error::open(
            name,
            "is a Zarr group, not an array (name an array inside it, e.g. store.zarr/x)",
        )
    };
    if let Node::Group { .. } = node(name, root, array)? {
        return Err(not_array());
    }
    let dir = root.join(array);
    let store = AtomicFsStore::pinned(&dir).map_err(|m| Error::open(name, m))?;
    // The metadata of the pinned tree (the path may have changed since `node`).
    let meta = match meta::read_node(store.base()).map_err(|m| Error::open(name, m))? {
        Some(Node::Array(m)) => m,
        Some(Node::Group { .. }) => return Err(not_array()),
        None => {
            return Err(Error::open(
                name,
                "the array was removed while being opened",
            ))
        }
    };
    let store: Arc<dyn ReadableStorageTraits> = Arc::new(store);
    let zarr = Array::open(store, "/").map_err(|e| Error::Open {
        path: name.to_string(),
        message: format!("zarrs cannot open the array: {e}"),
        cause: Some(Box::new(e)),
    })?;
    let mut src = source::ZarrSource::new(name, dir.display().to_string(), zarr, meta);
    src.locator = crate::Location::Zarr {
        root: root.to_path_buf(),
        array: array.to_string(),
    }
    .to_locator();
    Ok(Arc::new(src))
}

/// The write grid and the sink's own bytes per write unit for `spec` (see
/// [`crate::open::sink_needs`]).
pub(crate) fn sink_needs(name: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    sink::needs(name, spec)
}

/// Create the array `root/array` for `spec`.
pub(crate) fn create_sink(
    name: &str,
    root: &Path,
    array: &str,
    spec: &SinkSpec,
) -> Result<Arc<dyn ChunkSink>> {
    Ok(Arc::new(sink::ZarrSink::create(name, root, array, spec)?))
}

/// Bytes of the files below `dir` (chunks and metadata).
fn stored_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

fn local_array_info(path: String, dir: &Path, m: ArrayMeta) -> ArrayInfo {
    let incomplete = dir.join(INCOMPLETE_MARKER).exists();
    array_info(path, m, Some(stored_bytes(dir)), incomplete)
}

fn array_info(
    path: String,
    m: ArrayMeta,
    stored_bytes: Option<u64>,
    incomplete: bool,
) -> ArrayInfo {
    let (chunks, shards) = match m.inner {
        Some(inner) => (inner, Some(m.chunks)),
        None => (m.chunks, None),
    };
    ArrayInfo {
        path,
        format: version_name(m.version).to_string(),
        logical_bytes: m.shape.iter().product::<u64>() * m.dtype.size() as u64,
        shape: m.shape,
        dtype: m.dtype,
        chunks: Some(chunks),
        shards,
        codec: m.codec,
        stored_bytes,
        fill_value: m.fill_value,
        attributes: m.attributes,
        incomplete,
    }
}

/// Arrays below the group directory `dir` (recursively, sorted by path).
fn collect_arrays(name: &str, dir: &Path, prefix: &str, out: &mut Vec<ArrayInfo>) -> Result<()> {
    let mut subdirs: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| crate::contiguous::open_err(name, "cannot list the group", e))?
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // A new array being written beside the one it will replace.
        .filter(|n| !crate::swap::is_temporary_name(n))
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let d = dir.join(&sub);
        let path = format!("{prefix}/{sub}");
        match meta::read_node(&d) {
            Ok(Some(Node::Array(m))) => out.push(local_array_info(path, &d, m)),
            Ok(Some(Node::Group { .. })) => collect_arrays(name, &d, &path, out)?,
            // Chunk directories (v3 `c/`, v2 nested keys) and foreign folders.
            Ok(None) => {}
            // An array ndstream cannot read (e.g. a complex dtype) is skipped
            // in a listing; opening it names the reason.
            Err(_) => {}
        }
    }
    Ok(())
}

/// `info` for an array or group of a Zarr store.
pub(crate) fn info(name: &str, root: &Path, array: &str) -> Result<StoreInfo> {
    let dir = root.join(array);
    match node(name, root, array)? {
        Node::Array(m) => Ok(StoreInfo::Array(local_array_info(
            name.to_string(),
            &dir,
            m,
        ))),
        Node::Group {
            version,
            attributes,
        } => {
            let mut arrays = Vec::new();
            collect_arrays(name, &dir, name.trim_end_matches('/'), &mut arrays)?;
            Ok(StoreInfo::Group {
                path: name.to_string(),
                format: version_name(version).to_string(),
                attributes,
                arrays,
            })
        }
    }
}

#[cfg(not(feature = "object-store"))]
fn no_object_store(name: &str) -> Error {
    Error::open(
        name,
        "this build cannot reach stores by URL; rebuild ndstream with the `object-store` feature",
    )
}

/// Open the array `root/array` of a store reached by URL.
pub(crate) fn open_url_source(name: &str, root: &str, array: &str) -> Result<Arc<dyn ChunkSource>> {
    #[cfg(feature = "object-store")]
    return object::open_source(name, root, array);
    #[cfg(not(feature = "object-store"))]
    {
        let _ = (root, array);
        Err(no_object_store(name))
    }
}

/// `info` for an array or group of a store reached by URL.
pub(crate) fn url_info(name: &str, root: &str, array: &str) -> Result<StoreInfo> {
    #[cfg(feature = "object-store")]
    return object::info(name, root, array);
    #[cfg(not(feature = "object-store"))]
    {
        let _ = (root, array);
        Err(no_object_store(name))
    }
}

/// The store roots (or, with `files`, the files) a URL glob pattern
/// names, sorted.
pub(crate) fn url_glob(name: &str, pattern: &str, files: bool) -> Result<Vec<String>> {
    #[cfg(feature = "object-store")]
    return object::glob(name, pattern, files);
    #[cfg(not(feature = "object-store"))]
    {
        let _ = (pattern, files);
        Err(no_object_store(name))
    }
}

/// Create the array `root/array` of a store reached by URL.
pub(crate) fn create_url_sink(
    name: &str,
    root: &str,
    array: &str,
    spec: &SinkSpec,
) -> Result<Arc<dyn ChunkSink>> {
    #[cfg(feature = "object-store")]
    return object::create_sink(name, root, array, spec);
    #[cfg(not(feature = "object-store"))]
    {
        let _ = (root, array, spec);
        Err(no_object_store(name))
    }
}

/// [`sink_needs`] for a store reached by URL (refusing a read-only one).
pub(crate) fn url_sink_needs(name: &str, root: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    #[cfg(feature = "object-store")]
    {
        object::refuse_read_only(name, root)?;
        sink::needs(name, spec)
    }
    #[cfg(not(feature = "object-store"))]
    {
        let _ = (root, spec);
        Err(no_object_store(name))
    }
}

/// Zarr v2 and v3 (feature `zarr`): stores on a local file system and,
/// with the `object-store` feature, reached by URL.
pub(crate) struct Zarr;

/// The store root and array path of a Zarr location, local or by URL.
enum At<'a> {
    Local(&'a Path, &'a str),
    Url(&'a str, &'a str),
}

fn at<'a>(path: &str, loc: &'a Location) -> Result<At<'a>> {
    match loc {
        Location::Zarr { root, array } => Ok(At::Local(root, array)),
        Location::ZarrUrl { root, array } => Ok(At::Url(root, array)),
        _ => Err(Error::open(path, "not a Zarr store")),
    }
}

impl Format for Zarr {
    fn name(&self) -> &'static str {
        "zarr"
    }
    fn probe(&self, loc: &Location) -> bool {
        matches!(loc, Location::Zarr { .. } | Location::ZarrUrl { .. })
    }
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>> {
        match at(path, loc)? {
            At::Local(root, array) => open_source(path, root, array),
            At::Url(root, array) => open_url_source(path, root, array),
        }
    }
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo> {
        match at(path, loc)? {
            At::Local(root, array) => info(path, root, array),
            At::Url(root, array) => url_info(path, root, array),
        }
    }
    fn sink_needs(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        match at(path, loc)? {
            At::Local(..) => sink_needs(path, spec),
            At::Url(root, _) => url_sink_needs(path, root, spec),
        }
    }
    fn create(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        match at(path, loc)? {
            At::Local(root, array) => create_sink(path, root, array, spec),
            At::Url(root, array) => create_url_sink(path, root, array, spec),
        }
    }
    /// On disk and in object storage (a web server is read-only).
    fn writes_into(&self, _loc: &Location) -> bool {
        true
    }
}
