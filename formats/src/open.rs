//! Format dispatch: a user path to the format module that serves it.
//!
//! Every entry point parses the path with [`parse_location`] and hands the
//! pieces to one format module (`raw` in every build; `zarr`, `npy` and
//! `hdf5` when the crate is built with their features, otherwise the path
//! is refused naming the feature). An HDF5-style path (`x.nc:/v`)
//! whose file starts with a netCDF-3 magic number is read by `netcdf3`
//! instead, in every build. The user's path string is the store's name in
//! every error and repr.

use std::path::PathBuf;
use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, Error, Result};

#[cfg(feature = "npy")]
use crate::npy;
use crate::path::{parse_location, split_raw, Location};
use crate::spec::{SinkSpec, StoreInfo};
#[cfg(feature = "zarr")]
use crate::zarr;
use crate::{netcdf3, raw};

/// The error for a path of a format this build lacks.
#[cfg(not(all(feature = "hdf5", feature = "zarr", feature = "npy")))]
fn lacking(path: &str, format: &str, feature: &str) -> Error {
    Error::open(
        path,
        format!(
            "this build has no {format} support; rebuild ndstream with the `{feature}` feature"
        ),
    )
}

#[cfg(not(feature = "hdf5"))]
fn no_hdf5(path: &str) -> Error {
    lacking(path, "HDF5", "hdf5")
}

#[cfg(not(feature = "zarr"))]
fn no_zarr(path: &str) -> Error {
    lacking(path, "Zarr", "zarr")
}

#[cfg(not(feature = "npy"))]
fn no_npy(path: &str) -> Error {
    lacking(path, ".npy", "npy")
}

/// The error for an HDF5 file reached by URL in a build that cannot read it.
#[cfg(not(all(feature = "hdf5", feature = "object-store")))]
fn no_hdf5_url(path: &str) -> Error {
    Error::open(
        path,
        "this build cannot read HDF5 files by URL; rebuild ndstream with the `hdf5` and \
         `object-store` features",
    )
}

/// The error for writing to an HDF5 file reached by URL.
fn hdf5_url_read_only(path: &str) -> Error {
    Error::open(
        path,
        "an HDF5 or netCDF-4 file reached by URL is read-only; write HDF5 to a local path, \
         or Zarr to object storage (s3://bucket/x.zarr)",
    )
}

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
    if let Location::Hdf5 { file, dataset } = &loc {
        if netcdf3::probe(file).is_some() {
            return Ok(Arc::new(netcdf3::open_source(path, file, dataset)?));
        }
    }
    match loc {
        #[cfg(feature = "zarr")]
        Location::Zarr { root, array } => zarr::open_source(path, &root, &array),
        #[cfg(feature = "zarr")]
        Location::ZarrUrl { root, array } => zarr::open_url_source(path, &root, &array),
        #[cfg(not(feature = "zarr"))]
        Location::Zarr { .. } | Location::ZarrUrl { .. } => Err(no_zarr(path)),
        #[cfg(feature = "npy")]
        Location::Npy(file) => Ok(Arc::new(npy::open_source(path, &file)?)),
        #[cfg(not(feature = "npy"))]
        Location::Npy(_) => Err(no_npy(path)),
        Location::Raw { file, spec } => Ok(Arc::new(raw::open_source(path, &file, &spec)?)),
        #[cfg(feature = "hdf5")]
        Location::Hdf5 { file, dataset } => crate::hdf5::open_source(&file, &dataset, path),
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5 { .. } => Err(no_hdf5(path)),
        #[cfg(all(feature = "hdf5", feature = "object-store"))]
        Location::Hdf5Url { url, dataset } => crate::hdf5::open_url_source(&url, &dataset, path),
        #[cfg(not(all(feature = "hdf5", feature = "object-store")))]
        Location::Hdf5Url { .. } => Err(no_hdf5_url(path)),
    }
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
    files
        .iter()
        .map(|f| open_source(&format!("{}{rest}", f.display())))
        .collect()
}

/// [`open_many`] of a URL pattern: the stores its listing matches.
#[cfg(feature = "zarr")]
fn open_url_matches(
    pattern: &str,
    file_pat: &str,
    rest: &str,
    files: bool,
) -> Result<Vec<Arc<dyn ChunkSource>>> {
    let roots = zarr::url_glob(pattern, file_pat, files)?;
    if roots.is_empty() {
        let what = if files { "files" } else { "stores" };
        return Err(Error::open(
            pattern,
            format!("no {what} match this pattern"),
        ));
    }
    let paths: Vec<String> = roots.iter().map(|r| format!("{r}{rest}")).collect();
    #[cfg(all(feature = "hdf5", feature = "object-store"))]
    if files {
        // Files are reached together, not one after another.
        return crate::hdf5::open_url_sources(&paths);
    }
    paths.iter().map(|p| open_source(p)).collect()
}

#[cfg(not(feature = "zarr"))]
fn open_url_matches(pattern: &str, _: &str, _: &str, _: bool) -> Result<Vec<Arc<dyn ChunkSource>>> {
    Err(no_zarr(pattern))
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
    if spec.shape.len() != spec.chunks.len() {
        return Err(Error::open(
            path,
            format!(
                "chunks {:?} do not match the rank of shape {:?}",
                spec.chunks, spec.shape
            ),
        ));
    }
    refuse_into(path, spec)?;
    if let Some((file, query)) = split_raw(path) {
        return Ok(Arc::new(raw::create_sink(path, &file, query, spec)?));
    }
    match parse_location(path)? {
        #[cfg(feature = "zarr")]
        Location::Zarr { root, array } => zarr::create_sink(path, &root, &array, spec),
        #[cfg(feature = "zarr")]
        Location::ZarrUrl { root, array } => zarr::create_url_sink(path, &root, &array, spec),
        #[cfg(not(feature = "zarr"))]
        Location::Zarr { .. } | Location::ZarrUrl { .. } => Err(no_zarr(path)),
        #[cfg(feature = "npy")]
        Location::Npy(file) => Ok(Arc::new(npy::create_sink(path, &file, spec)?)),
        #[cfg(not(feature = "npy"))]
        Location::Npy(_) => Err(no_npy(path)),
        Location::Raw { file, .. } => Ok(Arc::new(raw::create_sink(path, &file, None, spec)?)),
        #[cfg(feature = "hdf5")]
        Location::Hdf5 { file, dataset } => crate::hdf5::create_sink(&file, &dataset, path, spec),
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5 { .. } => Err(no_hdf5(path)),
        Location::Hdf5Url { .. } => Err(hdf5_url_read_only(path)),
    }
}

/// [`WriteMode::Into`](crate::WriteMode::Into) and
/// [`WriteMode::Shared`](crate::WriteMode::Shared) are for Zarr arrays only.
fn refuse_into(path: &str, spec: &SinkSpec) -> Result<()> {
    let zarr = split_raw(path).is_none() && matches!(parse_location(path)?, Location::Zarr { .. });
    if matches!(spec.mode, crate::WriteMode::Into | crate::WriteMode::Shared) && !zarr {
        return Err(Error::open(
            path,
            "writing into an existing array (keeping its metadata) is supported for Zarr arrays only",
        ));
    }
    Ok(())
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
    if spec.shape.len() != spec.chunks.len() {
        return Err(Error::open(
            path,
            format!(
                "chunks {:?} do not match the rank of shape {:?}",
                spec.chunks, spec.shape
            ),
        ));
    }
    refuse_into(path, spec)?;
    let contiguous = |path: &str| -> Result<(ChunkGrid, u64)> {
        let grid = crate::contiguous::spec_grid(path, spec)?;
        let bytes = grid
            .max_chunk_elems()
            .saturating_mul(spec.dtype.size() as u64);
        Ok((grid, bytes))
    };
    if split_raw(path).is_some() {
        return contiguous(path);
    }
    match parse_location(path)? {
        #[cfg(feature = "zarr")]
        Location::Zarr { .. } => zarr::sink_needs(path, spec),
        #[cfg(feature = "zarr")]
        Location::ZarrUrl { root, .. } => zarr::url_sink_needs(path, &root, spec),
        #[cfg(not(feature = "zarr"))]
        Location::Zarr { .. } | Location::ZarrUrl { .. } => Err(no_zarr(path)),
        #[cfg(not(feature = "npy"))]
        Location::Npy(_) => Err(no_npy(path)),
        #[cfg(feature = "npy")]
        Location::Npy(_) => contiguous(path),
        Location::Raw { .. } => contiguous(path),
        #[cfg(feature = "hdf5")]
        Location::Hdf5 { .. } => crate::hdf5::sink_needs(path, spec),
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5 { .. } => Err(no_hdf5(path)),
        Location::Hdf5Url { .. } => Err(hdf5_url_read_only(path)),
    }
}

/// Describe a stored array, or a group / HDF5 file and the arrays in it.
///
/// # Errors
/// As [`open_source`].
pub fn info(path: &str) -> Result<StoreInfo> {
    let loc = parse_location(path)?;
    if let Location::Hdf5 { file, dataset } = &loc {
        if netcdf3::probe(file).is_some() {
            return netcdf3::info(path, file, dataset);
        }
    }
    match loc {
        #[cfg(feature = "zarr")]
        Location::Zarr { root, array } => zarr::info(path, &root, &array),
        #[cfg(feature = "zarr")]
        Location::ZarrUrl { root, array } => zarr::url_info(path, &root, &array),
        #[cfg(not(feature = "zarr"))]
        Location::Zarr { .. } | Location::ZarrUrl { .. } => Err(no_zarr(path)),
        #[cfg(feature = "npy")]
        Location::Npy(file) => Ok(StoreInfo::Array(npy::info(path, &file)?)),
        #[cfg(not(feature = "npy"))]
        Location::Npy(_) => Err(no_npy(path)),
        Location::Raw { file, spec } => Ok(StoreInfo::Array(raw::info(path, &file, &spec)?)),
        #[cfg(feature = "hdf5")]
        Location::Hdf5 { file, dataset } => crate::hdf5::info(
            &file,
            (!dataset.is_empty()).then_some(dataset.as_str()),
            path,
        ),
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5 { .. } => Err(no_hdf5(path)),
        #[cfg(all(feature = "hdf5", feature = "object-store"))]
        Location::Hdf5Url { url, dataset } => crate::hdf5::url_info(
            &url,
            (!dataset.is_empty()).then_some(dataset.as_str()),
            path,
        ),
        #[cfg(not(all(feature = "hdf5", feature = "object-store")))]
        Location::Hdf5Url { .. } => Err(no_hdf5_url(path)),
    }
}
