//! Format dispatch: a user path to the format module that serves it.
//!
//! Every entry point parses the path with [`parse_location`] (for a
//! write, [`write_location`]) and hands the location to the format that
//! serves it ([`format_of`], see [`crate::format`]). The user's path
//! string is the store's name in every error and repr. Globs are expanded
//! here, on a local file system or by listing a bucket, and their matches
//! opened by their formats.

use std::path::PathBuf;
use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, Error, Result};

use crate::format::{format_of, Format};
use crate::path::{parse_location, split_raw, Location};
use crate::spec::{SinkSpec, StoreInfo};

/// Open a stored array as a chunk source with its native chunking
/// (contiguous stores get chunks of about [`DEFAULT_TARGET_CHUNK_BYTES`](crate::DEFAULT_TARGET_CHUNK_BYTES)).
///
/// ```
/// # #[cfg(feature = "npy")] {
/// # let dir = tempfile::tempdir().unwrap();
/// use ndstream_formats::{create_sink, open_source, SinkSpec};
/// use ndstream_engine::{Block, DType};
/// let path = dir.path().join("a.npy").display().to_string();
/// let sink = create_sink(&path, &SinkSpec::new(vec![3], DType::I32, vec![3])).unwrap();
/// sink.write_chunk(&[0], &Block::from(ndarray::arr1(&[1, 2, 3]).into_dyn())).unwrap();
/// sink.finish().unwrap();
/// let src = open_source(&path).unwrap();
/// assert_eq!(src.read_chunk(&[0]).unwrap().to_f64_vec(), vec![1.0, 2.0, 3.0]);
/// # }
/// ```
///
/// # Errors
/// [`Error::Open`] for a malformed path, a missing file, dataset or array,
/// an unsupported dtype, or a format this build lacks.
pub fn open_source(path: &str) -> Result<Arc<dyn ChunkSource>> {
    let loc = parse_location(path)?;
    format_of(&loc)?.open(path, &loc)
}

/// Split a pattern into its file part (globbed) and the rest (`:/dset`,
/// `/array` after `.zarr`, `?query`), which is appended to every match.
pub(crate) fn split_pattern(pattern: &str) -> (String, String) {
    if let Some(local) = pattern.strip_prefix("file://") {
        // Split the local path the URL names (the offsets below are into
        // the path that was parsed).
        let local = local.strip_prefix("localhost").unwrap_or(local);
        if local.starts_with('/') {
            return split_pattern(local);
        }
    }
    if let Some((file, query)) = split_raw(pattern) {
        let file = file.display().to_string();
        return match query {
            Some(q) => (file, format!("?{q}")),
            None => (file, String::new()),
        };
    }
    match parse_location(pattern) {
        Ok(Location::Hdf5 { file, dataset }) => {
            let file = file.display().to_string();
            let rest = pattern.get(file.len()..).unwrap_or("").to_string();
            debug_assert!(dataset.is_empty() || rest.starts_with(':'));
            (file, rest)
        }
        Ok(Location::Zarr { root, .. }) => {
            let root = root.display().to_string();
            let rest = pattern.get(root.len()..).unwrap_or("").to_string();
            (root, rest)
        }
        Ok(Location::ZarrUrl { root: file, .. } | Location::Hdf5Url { url: file, .. }) => {
            let rest = pattern.get(file.len()..).unwrap_or("").to_string();
            (file, rest)
        }
        _ => (pattern.to_string(), String::new()),
    }
}

/// True if `path` is a glob pattern: its file part (before `:/dataset`,
/// after-`.zarr` array paths and a raw `?query`) has `*`, `?` or `[` and
/// does not exist as it is written. An existing path is always taken
/// literally, so `datetime64[10ms].zarr` opens that store.
///
/// ```
/// use ndstream_formats::is_pattern;
/// assert!(is_pattern("data/*.h5:/x"));
/// assert!(is_pattern("p?.npy"));
/// assert!(!is_pattern("x.bin?dtype=<f4&shape=3"));
/// assert!(is_pattern("x*.bin?dtype=<f4&shape=3"));
/// assert!(!is_pattern("a.zarr/x"));
/// ```
pub fn is_pattern(path: &str) -> bool {
    let (file, _) = split_pattern(path);
    file.contains(['*', '?', '[']) && std::fs::symlink_metadata(&file).is_err()
}

/// Open every store a glob pattern on the file part names, sorted by path:
/// `data/*.hdf5:/t2m`, `runs/*.zarr`, `runs/*.zarr/x`, `parts/p?.npy`.
/// A path that exists as written is opened literally (see [`is_pattern`]).
///
/// # Errors
/// [`Error::Open`] for a malformed pattern, a pattern that matches nothing,
/// or any match that cannot be opened.
pub fn open_many(pattern: &str) -> Result<Vec<Arc<dyn ChunkSource>>> {
    if !is_pattern(pattern) {
        return Ok(vec![open_source(pattern)?]);
    }
    let (file_pat, rest) = split_pattern(pattern);
    match parse_location(pattern) {
        Ok(Location::ZarrUrl { .. }) => return open_url_matches(pattern, &file_pat, &rest, false),
        Ok(Location::Hdf5Url { .. }) => return open_url_matches(pattern, &file_pat, &rest, true),
        _ => {}
    }
    let paths = glob::glob(&file_pat)
        .map_err(|e| Error::open(pattern, format!("bad glob pattern: {e}")))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        files.push(p.map_err(|e| Error::open(pattern, format!("cannot read a match: {e}")))?);
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::open(pattern, "no files match this pattern"));
    }
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("{}{rest}", f.display()))
        .collect();
    open_found(&paths)
}

/// Open the matches of a glob, in order: each run of matches one format
/// serves is opened by that format together ([`Format::open_all`]).
fn open_found(paths: &[String]) -> Result<Vec<Arc<dyn ChunkSource>>> {
    let mut found = Vec::with_capacity(paths.len());
    for p in paths {
        let loc = parse_location(p)?;
        found.push((format_of(&loc)?, (p.clone(), loc)));
    }
    let mut out = Vec::with_capacity(found.len());
    for run in found.chunk_by(|a, b| a.0.name() == b.0.name()) {
        let locs: Vec<(String, Location)> = run.iter().map(|(_, l)| l.clone()).collect();
        out.extend(run[0].0.open_all(&locs)?);
    }
    Ok(out)
}

/// [`open_many`] of a URL pattern: the stores its listing matches.
#[cfg(feature = "zarr")]
fn open_url_matches(
    pattern: &str,
    file_pat: &str,
    rest: &str,
    files: bool,
) -> Result<Vec<Arc<dyn ChunkSource>>> {
    let roots = crate::zarr::url_glob(pattern, file_pat, files)?;
    if roots.is_empty() {
        let what = if files { "files" } else { "stores" };
        return Err(Error::open(
            pattern,
            format!("no {what} match this pattern"),
        ));
    }
    let paths: Vec<String> = roots.iter().map(|r| format!("{r}{rest}")).collect();
    open_found(&paths)
}

#[cfg(not(feature = "zarr"))]
fn open_url_matches(pattern: &str, _: &str, _: &str, _: bool) -> Result<Vec<Arc<dyn ChunkSource>>> {
    Err(Error::open(pattern, crate::format::lacking("Zarr", "zarr")))
}

/// Create a store to write an array into, per `spec` (shape, dtype,
/// chunks, shards, codec, attributes, write mode, Zarr version).
///
/// `.npy` and raw files are written uncompressed in C order (raw: the
/// path's optional `?dtype=>f4&offset=..` picks the byte order and offset;
/// its dtype and shape must agree with the spec).
///
/// # Errors
/// [`Error::Open`] for a malformed path or spec, an existing store under
/// [`WriteMode::Create`](crate::WriteMode::Create) (left untouched), a
/// resume whose store does not match, or I/O failures creating it.
pub fn create_sink(path: &str, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
    let (format, loc) = for_write(path, spec)?;
    format.create(path, &loc, spec)
}

/// The format and location of a write of `spec` at `path`, after the
/// checks every format shares: the chunks' rank, and
/// [`WriteMode::Into`](crate::WriteMode::Into) and
/// [`WriteMode::Shared`](crate::WriteMode::Shared) only where the format
/// writes into an existing array.
fn for_write(path: &str, spec: &SinkSpec) -> Result<(&'static dyn Format, Location)> {
    if spec.shape.len() != spec.chunks.len() {
        return Err(Error::open(
            path,
            format!(
                "chunks {:?} do not match the rank of shape {:?}",
                spec.chunks, spec.shape
            ),
        ));
    }
    let loc = write_location(path, spec)?;
    let format = format_of(&loc)?;
    if matches!(spec.mode, crate::WriteMode::Into | crate::WriteMode::Shared)
        && !format.writes_into(&loc)
    {
        return Err(Error::open(
            path,
            "writing into an existing array (keeping its metadata) is supported for Zarr arrays only",
        ));
    }
    Ok((format, loc))
}

/// Where a write of `spec` at `path` goes: [`parse_location`], except
/// that a raw binary file needs no `?dtype=..&shape=..` (the spec has
/// them; what the path gives must agree, and may set the byte order and
/// an offset).
///
/// ```
/// use ndstream_engine::DType;
/// use ndstream_formats::{write_location, Location, SinkSpec};
/// let spec = SinkSpec::new(vec![2, 3], DType::I16, vec![2, 3]);
/// let Location::Raw { spec: raw, .. } = write_location("x.bin?dtype=>i2", &spec).unwrap() else {
///     panic!()
/// };
/// assert_eq!((raw.shape, raw.little_endian), (vec![2, 3], false));
/// assert!(write_location("x.bin?dtype=<f4", &spec).is_err());
/// ```
///
/// # Errors
/// [`Error::Open`] for a malformed path, or a raw layout that disagrees
/// with the spec.
pub fn write_location(path: &str, spec: &SinkSpec) -> Result<Location> {
    match split_raw(path) {
        Some((file, query)) => Ok(Location::Raw {
            spec: crate::raw::write_spec(path, query, spec)?,
            file,
        }),
        None => parse_location(path),
    }
}

/// What writing `spec` at `path` needs, known before anything is opened or
/// created: the grid of the units the sink is written in (chunks, or Zarr
/// shards) and the sink's own bytes per unit on top of the unit's data
/// (encode buffers, a codec context), as the created sink's
/// [`ChunkSink::grid`] and [`ChunkSink::memory_per_chunk`] will report
/// them. A caller checks its plan against these
/// (`Executor::plan_store`) before [`create_sink`], so that a plan the
/// budget refuses leaves nothing behind.
///
/// # Errors
/// The spec errors [`create_sink`] would give (chunks that do not fit the
/// shape, a codec the format cannot write, a bad path).
pub fn sink_needs(path: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    let (format, loc) = for_write(path, spec)?;
    format.sink_needs(path, &loc, spec)
}

/// Describe a stored array, or a group / HDF5 file and the arrays in it.
///
/// # Errors
/// As [`open_source`].
pub fn info(path: &str) -> Result<StoreInfo> {
    let loc = parse_location(path)?;
    format_of(&loc)?.info(path, &loc)
}
