//! HDF5 datasets as chunk sources and sinks (feature `hdf5`, through hdf5-metno).
//!
//! hdf5-metno serialises every library call behind one global reentrant
//! lock, so this module keeps HDF5 calls out of the hot path:
//! - reading a chunked dataset, [`open_source`] looks up every chunk's file
//!   address, size and filter mask once (under the lock), closes the HDF5
//!   handles, and later reads each chunk with a positioned read on a plain
//!   file handle and decodes it (deflate, shuffle, fletcher32, see
//!   [`codec`]) on the calling worker thread, with no HDF5 call at all;
//!   contiguous datasets are read the same way from their data offset.
//!   Anything else (other filters, compact, external or virtual storage)
//!   falls back to hdf5-metno reads under its lock;
//! - writing, the sink encodes each chunk on the worker thread and only the
//!   raw direct chunk write (`H5Dwrite_chunk`) takes the lock.
//!
//! Invariants: every `hdf5_sys` call runs inside [`hdf5::sync::sync`]; a
//! dataset a sink has not finished carries the attribute [`INCOMPLETE_ATTR`];
//! attributes whose names start with `_ndstream_` are bookkeeping and never
//! shown to users. Needs HDF5 >= 1.10.5 (`H5Dget_chunk_info_by_coord`).

mod attrs;
mod bitshuffle;
mod builtin;
mod codec;
mod header;
mod heap;
mod lifecycle;
mod linked;
mod sink;
mod source;
mod szip;
#[cfg(feature = "object-store")]
mod url;
#[cfg(all(feature = "object-store", ndstream_hdf5_vfd_1_10))]
mod vfd;

use std::path::Path;
use std::sync::Arc;

use hdf5::datatype::ByteOrder;
use hdf5::filters::Filter;
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::Dataset;
use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, DType, Error, Result};

use crate::format::Format;
use crate::path::Location;
use crate::spec::{ArrayInfo, SinkSpec, StoreInfo};

use builtin::{Builtin, SCALEOFFSET_PARAMS};
pub(crate) use codec::{decode as codec_decode, encode as codec_encode, Packing, Step};

/// The attribute a sink sets at creation and removes in `finish`.
pub(crate) const INCOMPLETE_ATTR: &str = "_ndstream_incomplete";
/// Prefix of attributes that are ndstream's own bookkeeping.
pub(crate) const PRIVATE_PREFIX: &str = "_ndstream_";

/// Open dataset `dataset` of HDF5 file `file` as a chunk source (`name` is the user's path, for errors).
///
/// An empty `dataset` opens the file's only dataset.
///
/// ```no_run
/// let src = ndstream_formats::open_source("data.h5:/x").unwrap();
/// println!("{:?} {}", src.shape(), src.dtype());
/// ```
///
/// # Errors
/// [`Error::Open`] for a missing file or dataset, a file that is not HDF5,
/// or a dtype other than integers, floats and bool.
pub fn open_source(file: &Path, dataset: &str, name: &str) -> Result<Arc<dyn ChunkSource>> {
    let mut src = source::Hdf5Source::open(file, dataset, name)?;
    src.locator = crate::Location::Hdf5 {
        file: file.to_path_buf(),
        dataset: src.path.clone(),
    }
    .to_locator();
    Ok(Arc::new(src))
}

/// Open dataset `dataset` of the HDF5 or netCDF-4 file at `url`
/// (`s3://bucket/x.nc`, `https://host/x.h5`) as a chunk source, reading
/// the file by byte ranges (feature `object-store`; `name` is the user's
/// path, for errors). An empty `dataset` opens the file's only dataset.
///
/// ```no_run
/// let src = ndstream_formats::open_source("s3://bucket/era5.nc:/t2m").unwrap();
/// println!("{:?} {}", src.shape(), src.dtype());
/// ```
///
/// # Errors
/// As [`open_source`], and [`Error::Open`] for a scheme other than `s3`,
/// `http` and `https`, a libhdf5 without its S3 driver, or a service that
/// cannot be reached.
#[cfg(feature = "object-store")]
pub fn open_url_source(url: &str, dataset: &str, name: &str) -> Result<Arc<dyn ChunkSource>> {
    open_opened(url::open(url, name)?, url, dataset, name)
}

/// Files opened together by [`open_url_sources`], at most: each holds its
/// first block (512 KiB) until its dataset is open.
#[cfg(feature = "object-store")]
const OPEN_TOGETHER: usize = 32;

/// [`open_url_source`] of several `url:dataset` paths (a glob's matches
/// over a bucket), in order: the files are reached [`OPEN_TOGETHER`] at a
/// time, each batch's requests in flight together, so that a stack of
/// many files opens in a few round trips per batch rather than a few per
/// file.
///
/// # Errors
/// As [`open_url_source`], for the first path that fails.
#[cfg(feature = "object-store")]
pub fn open_url_sources(paths: &[String]) -> Result<Vec<Arc<dyn ChunkSource>>> {
    let mut parsed = Vec::with_capacity(paths.len());
    for p in paths {
        match crate::parse_location(p)? {
            crate::Location::Hdf5Url { url, dataset } => parsed.push((p.clone(), url, dataset)),
            _ => return Err(Error::open(p, "not an HDF5 file reached by URL")),
        }
    }
    let mut out = Vec::with_capacity(paths.len());
    for batch in parsed.chunks(OPEN_TOGETHER) {
        let files: Vec<(String, String)> = batch
            .iter()
            .map(|(p, u, _)| (p.clone(), u.clone()))
            .collect();
        let raws = crate::remote::RangeFile::open_all(&files)?;
        for (raw, (path, url, dataset)) in raws.into_iter().zip(batch) {
            out.push(open_opened(
                url::open_raw(Arc::new(raw), url, path)?,
                url,
                dataset,
                path,
            )?);
        }
    }
    Ok(out)
}

/// The source of `dataset` in a file opened by URL.
#[cfg(feature = "object-store")]
fn open_opened(
    opened: url::Opened,
    url: &str,
    dataset: &str,
    name: &str,
) -> Result<Arc<dyn ChunkSource>> {
    let raw = Arc::clone(&opened.raw);
    let shown = Path::new(url);
    let mut src = opened.checked(|| {
        source::Hdf5Source::open_in(
            opened.file.clone(),
            &|| Ok(source::RawFile::Url(Arc::clone(&raw))),
            shown,
            dataset,
            name,
        )
    })?;
    // The metadata is read; chunks are read by their own GETs.
    opened.raw.drop_cache();
    // Each chunk is one request: keep reads in flight ahead of the workers.
    src.read_ahead = src.url_read_ahead();
    src.locator = crate::Location::Hdf5Url {
        url: url.to_string(),
        dataset: src.path.clone(),
    }
    .to_locator();
    Ok(Arc::new(src))
}

/// [`info`] for the HDF5 or netCDF-4 file at `url` (see [`open_url_source`]).
///
/// # Errors
/// As [`open_url_source`].
#[cfg(feature = "object-store")]
pub fn url_info(url: &str, dataset: Option<&str>, name: &str) -> Result<StoreInfo> {
    let opened = url::open(url, name)?;
    opened.checked(|| info_in(&opened.file, Path::new(url), dataset, name))
}

/// Create (or resume, or overwrite) dataset `dataset` in `file` as `spec` describes.
///
/// Groups on the way are created; an existing file keeps its other datasets.
///
/// # Errors
/// [`Error::Open`] if the dataset exists in create mode (the file is left
/// untouched), a resumed dataset does not match the spec, or the spec asks
/// for something HDF5 here cannot store (codecs other than none and gzip, shards).
pub fn create_sink(
    file: &Path,
    dataset: &str,
    name: &str,
    spec: &SinkSpec,
) -> Result<Arc<dyn ChunkSink>> {
    Ok(Arc::new(sink::Hdf5Sink::create(file, dataset, name, spec)?))
}

/// The write grid and the sink's own bytes per chunk for `spec` (see
/// [`crate::sink_needs`]), before anything is opened.
///
/// # Errors
/// What [`create_sink`] refuses in the spec itself (shards, codecs HDF5
/// here cannot write, chunks that do not fit the shape).
pub fn sink_needs(name: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    sink::needs(name, spec)
}

/// Describe a dataset, or every dataset in a file or group (recursively).
///
/// # Errors
/// [`Error::Open`] for a missing file or path, or a dataset of an unsupported dtype.
pub fn info(file: &Path, dataset: Option<&str>, name: &str) -> Result<StoreInfo> {
    let f = open_file(file, name)?;
    info_in(&f, file, dataset, name)
}

/// [`info`] of the open file `f`, which `file` names in messages.
fn info_in(f: &hdf5::File, file: &Path, dataset: Option<&str>, name: &str) -> Result<StoreInfo> {
    let path = normalize(dataset.unwrap_or("/"));
    hdf5::sync::sync(|| {
        let is_group = f.group(&path).is_ok();
        if is_group {
            let g = f
                .group(&path)
                .map_err(|e| h5_open_err(name, "cannot open the group", e))?;
            let mut arrays = Vec::new();
            collect_datasets(&g, file, &mut arrays);
            Ok(StoreInfo::Group {
                path: name.to_string(),
                format: "hdf5".to_string(),
                attributes: attrs::read_attrs(&g),
                arrays,
            })
        } else {
            let ds = open_dataset(f, &path, file, name)?;
            Ok(StoreInfo::Array(array_info(&ds, file, name)?))
        }
    })
}

/// Every dataset below `g` whose dtype ndstream reads, depth first.
fn collect_datasets(g: &hdf5::Group, file: &Path, out: &mut Vec<ArrayInfo>) {
    let m = members(g);
    for ds in m.datasets {
        let path = format!("{}:{}", file.display(), ds.name());
        if let Ok(info) = array_info(&ds, file, &path) {
            out.push(info);
        }
    }
    for sub in m.groups {
        collect_datasets(&sub, file, out);
    }
}

/// What one group holds directly.
struct Members {
    datasets: Vec<Dataset>,
    /// Full paths of datasets this HDF5 cannot open (e.g. written by a newer HDF5).
    unopened: Vec<String>,
    groups: Vec<hdf5::Group>,
}

/// The members of `g`, each opened on its own: hdf5-metno's
/// `Group::datasets()` fails as a whole when one dataset does not open,
/// which would hide all its siblings.
fn members(g: &hdf5::Group) -> Members {
    let mut m = Members {
        datasets: Vec::new(),
        unopened: Vec::new(),
        groups: Vec::new(),
    };
    for name in g.member_names().unwrap_or_default() {
        match g.loc_type_by_name(&name) {
            Ok(hdf5::LocationType::Dataset) => match checked_dataset(g, &name) {
                Ok(ds) => m.datasets.push(ds),
                Err(_) => m.unopened.push(normalize(&format!("{}/{name}", g.name()))),
            },
            Ok(hdf5::LocationType::Group) => {
                if let Ok(sub) = g.group(&name) {
                    m.groups.push(sub);
                }
            }
            _ => {}
        }
    }
    m
}

/// [`ArrayInfo`] of one open dataset.
fn array_info(ds: &Dataset, file: &Path, name: &str) -> Result<ArrayInfo> {
    let meta = Meta::read(ds, name)?;
    let pipeline: Vec<String> = meta.filters.iter().map(filter_word).collect();
    let fill = meta.fill_f64();
    Ok(ArrayInfo {
        path: format!("{}:{}", file.display(), ds.name()),
        format: "hdf5".to_string(),
        logical_bytes: meta.shape.iter().product::<u64>() * meta.dtype.size() as u64,
        shape: meta.shape,
        dtype: meta.dtype,
        chunks: meta.chunk,
        shards: None,
        codec: if pipeline.is_empty() {
            "none".to_string()
        } else {
            pipeline.join("+")
        },
        stored_bytes: Some(ds.storage_size()),
        fill_value: Some(fill),
        attributes: attrs::read_attrs(ds),
        incomplete: ds.attr(INCOMPLETE_ATTR).is_ok(),
    })
}

/// A filter in words, as `info` shows it.
pub(crate) fn filter_word(f: &Filter) -> String {
    match f {
        Filter::Deflate(level) => format!("gzip({level})"),
        Filter::Shuffle => "shuffle".to_string(),
        Filter::Fletcher32 => "fletcher32".to_string(),
        Filter::SZip(..) => "szip".to_string(),
        Filter::NBit => "nbit".to_string(),
        Filter::ScaleOffset(_) => "scaleoffset".to_string(),
        Filter::User(id, _) => match *id {
            307 => "bzip2".to_string(),
            32000 => "lzf".to_string(),
            32001 => "blosc".to_string(),
            32004 => "lz4".to_string(),
            32008 => "bitshuffle".to_string(),
            32015 => "zstd".to_string(),
            id => format!("filter({id})"),
        },
        #[allow(unreachable_patterns)]
        other => format!("{other:?}").to_lowercase(),
    }
}

/// What ndstream needs to know about a dataset, read under the HDF5 lock.
#[derive(Debug)]
pub(crate) struct Meta {
    pub shape: Vec<u64>,
    pub dtype: DType,
    /// Stored big-endian (bytes must be swapped on this little-endian reader).
    pub big_endian: bool,
    /// Chunk shape if chunked.
    pub chunk: Option<Vec<u64>>,
    pub layout: hdf5::dataset::Layout,
    pub filters: Vec<Filter>,
    /// Each filter's stored parameters (`cd_values`, as libhdf5's
    /// `set_local` made them), in pipeline order.
    pub params: Vec<Vec<u32>>,
    /// The stored bytes are the dtype's own (see [`plain`]); if not, only
    /// libhdf5's conversion reads the values.
    pub plain: bool,
    /// One element of the fill value, native byte order.
    pub fill: Vec<u8>,
}

impl Meta {
    /// Read a dataset's shape, dtype, layout, filters and fill value.
    pub(crate) fn read(ds: &Dataset, name: &str) -> Result<Meta> {
        hdf5::sync::sync(|| {
            let dt = ds
                .dtype()
                .map_err(|e| h5_open_err(name, "cannot read the dataset's type", e))?;
            let (dtype, big_endian) = map_dtype(&dt).map_err(|what| {
                Error::open(
                    name,
                    format!(
                        "dataset {} has HDF5 type {what}; ndstream reads integer, float and bool datasets only",
                        ds.name()
                    ),
                )
            })?;
            let shape: Vec<u64> = ds.shape().iter().map(|&n| n as u64).collect();
            let chunk = ds.chunk().map(|c| c.iter().map(|&n| n as u64).collect());
            let filters = ds.filters();
            let params = filter_params(ds);
            let plain = plain(&dt, dtype);
            let fill = fill_bytes(ds, &dt, dtype, big_endian);
            let layout = ds.layout();
            // libhdf5 1.10 copies a compact dataset's elements out of the
            // bytes its layout message holds without checking that they
            // are enough (found by fuzzing `hdf5_open`: it reads past its
            // buffer); libhdf5 1.12 refuses such a file at open, so do we.
            if layout == hdf5::dataset::Layout::Compact {
                let size = dtype.size() as u64;
                let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
                let need = elements.and_then(|n| n.checked_mul(size));
                let held = ds.storage_size();
                if need != Some(held) {
                    let need = match (elements, need) {
                        (Some(e), Some(n)) => format!("its {e} elements of {size} bytes need {n}"),
                        _ => "its elements need more than 2^64 bytes".into(),
                    };
                    return Err(Error::open(
                        name,
                        format!(
                            "dataset {} is corrupt: its compact storage holds {held} bytes, {need}",
                            ds.name()
                        ),
                    ));
                }
            }
            Ok(Meta {
                shape,
                dtype,
                big_endian,
                chunk,
                layout,
                filters,
                params,
                plain,
                fill,
            })
        })
    }

    /// The fill value as f64.
    pub(crate) fn fill_f64(&self) -> f64 {
        ndstream_engine::Block::from_ne_bytes(self.dtype, &[1], &self.fill)
            .map_or(0.0, |b| b.to_f64_vec().first().copied().unwrap_or(0.0))
    }

    /// Filter `i` of the pipeline, libhdf5's n-bit or scale-offset, as a
    /// step run by ndstream, if libhdf5's function and its parameters are
    /// at hand.
    fn builtin(&self, filter: Builtin, i: usize, size: usize) -> Option<Step> {
        let params = self.params.get(i)?;
        if !filter.available() || params.is_empty() || params.len() > SCALEOFFSET_PARAMS {
            return None;
        }
        let mut cd = [0u32; SCALEOFFSET_PARAMS];
        cd[..params.len()].copy_from_slice(params);
        Some(Step::Builtin {
            filter,
            cd,
            len: params.len(),
            size,
        })
    }

    /// The filter pipeline as steps ndstream decodes itself, or `None` if
    /// some filter needs libhdf5.
    pub(crate) fn pipeline(&self) -> Option<Vec<Step>> {
        if !self.plain {
            return None;
        }
        let size = self.dtype.size();
        self.filters
            .iter()
            .enumerate()
            .map(|(i, f)| match f {
                Filter::Deflate(_) => Some(Step::Deflate),
                Filter::Shuffle => Some(Step::Shuffle {
                    size: self.dtype.size(),
                }),
                Filter::Fletcher32 => Some(Step::Fletcher32),
                Filter::SZip(..) => match self.params.get(i)?[..] {
                    [mask, ppb, bpp, pps] if szip::available() => Some(Step::Szip {
                        cd: [mask, ppb, bpp, pps],
                    }),
                    _ => None,
                },
                Filter::NBit => self.builtin(Builtin::Nbit, i, size),
                Filter::ScaleOffset(_) => self.builtin(Builtin::ScaleOffset, i, size),
                Filter::User(id, cd) => match *id {
                    307 => Some(Step::Bzip2),
                    // cd_values: major, minor, element size, block size
                    // (0: the default), compression (0, 2 lz4, 3 zstd).
                    32008 => {
                        let elem = match cd.get(2) {
                            Some(&e) if e > 0 => e as usize,
                            _ => self.dtype.size(),
                        };
                        let block = match cd.get(3) {
                            Some(&b) if b > 0 => b as usize,
                            _ => bitshuffle::default_block(elem),
                        };
                        // Any other compression value is plain bitshuffle,
                        // as the reference filter reads it (older versions
                        // wrote invalid values and went on).
                        let packing = match cd.get(4).copied().unwrap_or(0) {
                            2 => Packing::Lz4,
                            3 => Packing::Zstd,
                            _ => Packing::None,
                        };
                        Some(Step::Bitshuffle {
                            elem,
                            block,
                            packing,
                        })
                    }
                    32001 => Some(Step::Blosc),
                    32004 => Some(Step::Lz4),
                    32015 => Some(Step::Zstd),
                    _ => None,
                },
                // Filters hdf5-metno builds in with its own features.
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .collect()
    }
}

/// Each filter's stored parameters, in pipeline order (empty for one whose
/// parameters cannot be read, or that has more than [`MAX_PARAMS`]). Call
/// under the HDF5 lock.
fn filter_params(ds: &Dataset) -> Vec<Vec<u32>> {
    let Ok(dcpl) = ds.dcpl() else {
        return Vec::new();
    };
    // SAFETY: under the HDF5 lock (the caller's); these calls only read the
    // plist, and write at most `nelmts` values and no name.
    let n = unsafe { hdf5_sys::h5p::H5Pget_nfilters(dcpl.id()) };
    (0..n.max(0) as u32)
        .map(|i| {
            let (mut flags, mut nelmts, mut cd) = (0u32, MAX_PARAMS, [0u32; MAX_PARAMS]);
            let id = unsafe {
                hdf5_sys::h5p::H5Pget_filter2(
                    dcpl.id(),
                    i,
                    &mut flags,
                    &mut nelmts,
                    cd.as_mut_ptr(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            if id < 0 || nelmts > MAX_PARAMS {
                Vec::new()
            } else {
                cd[..nelmts].to_vec()
            }
        })
        .collect()
}

/// The most filter parameters read: scale-offset's 20 (n-bit has 8 for an
/// integer or floating-point type; more are compound or array types).
const MAX_PARAMS: usize = SCALEOFFSET_PARAMS;

/// The dataset's fill value (one element, native byte order); zeros if it has none.
fn fill_bytes(ds: &Dataset, dt: &hdf5::Datatype, dtype: DType, big_endian: bool) -> Vec<u8> {
    let mut buf = vec![0u8; dtype.size()];
    let Ok(dcpl) = ds.dcpl() else { return buf };
    if dt.size() != buf.len() {
        return buf;
    }
    // SAFETY: called under the HDF5 lock (inside `sync` by the caller); `buf`
    // holds exactly one element of the dataset's file type `dt`, which is what
    // H5Pget_fill_value writes.
    let rc =
        unsafe { hdf5_sys::h5p::H5Pget_fill_value(dcpl.id(), dt.id(), buf.as_mut_ptr().cast()) };
    if rc < 0 {
        return vec![0u8; dtype.size()];
    }
    if big_endian != cfg!(target_endian = "big") {
        codec::swap_bytes(&mut buf, dtype.size());
    }
    if dtype == DType::Bool && buf[0] > 1 {
        buf[0] = 1;
    }
    buf
}

/// The ndstream dtype of an HDF5 type and whether it is big-endian, or a
/// short description of the type for the error.
pub(crate) fn map_dtype(dt: &hdf5::Datatype) -> std::result::Result<(DType, bool), String> {
    let desc = dt
        .to_descriptor()
        .map_err(|e| format!("(unreadable: {e})"))?;
    let dtype = match &desc {
        TypeDescriptor::Integer(s) => match s {
            IntSize::U1 => DType::I8,
            IntSize::U2 => DType::I16,
            IntSize::U4 => DType::I32,
            IntSize::U8 => DType::I64,
        },
        TypeDescriptor::Unsigned(s) => match s {
            IntSize::U1 => DType::U8,
            IntSize::U2 => DType::U16,
            IntSize::U4 => DType::U32,
            IntSize::U8 => DType::U64,
        },
        TypeDescriptor::Float(FloatSize::U4) => DType::F32,
        TypeDescriptor::Float(FloatSize::U8) => DType::F64,
        TypeDescriptor::Boolean => DType::Bool,
        other => return Err(describe(other)),
    };
    let big_endian = match dt.byte_order() {
        ByteOrder::BigEndian => true,
        ByteOrder::LittleEndian | ByteOrder::None => false,
        ByteOrder::Vax | ByteOrder::Mixed => {
            return Err(format!("{dtype} with VAX/mixed byte order"))
        }
    };
    if dt.size() != dtype.size() {
        return Err(format!("{} of {} bytes", dtype, dt.size()));
    }
    Ok((dtype, big_endian))
}

/// Whether a file type's stored bytes are those of `dtype` (in either byte
/// order): integers using every bit from bit 0, floats in IEEE 754
/// layout. Types made with `H5Tset_precision` or `H5Tset_offset` (as n-bit
/// compression uses), or other float layouts, are not: their bytes need
/// libhdf5's conversion (sign extension, shifts, re-biasing). Call under
/// the HDF5 lock.
fn plain(dt: &hdf5::Datatype, dtype: DType) -> bool {
    use hdf5_sys::h5t;
    let id = dt.id();
    let bits = dtype.size() * 8;
    // SAFETY: under the HDF5 lock (the caller's); these calls only read
    // the type and write the five locals.
    unsafe {
        let whole = h5t::H5Tget_precision(id) == bits && h5t::H5Tget_offset(id) == 0;
        match dtype {
            DType::F32 | DType::F64 => {
                let (mut spos, mut epos, mut esize, mut mpos, mut msize) = (0, 0, 0, 0, 0);
                let rc =
                    h5t::H5Tget_fields(id, &mut spos, &mut epos, &mut esize, &mut mpos, &mut msize);
                let ieee = if dtype == DType::F32 {
                    (31, 23, 8, 0, 23, 127)
                } else {
                    (63, 52, 11, 0, 52, 1023)
                };
                whole
                    && rc >= 0
                    && (spos, epos, esize, mpos, msize, h5t::H5Tget_ebias(id)) == ieee
                    && h5t::H5Tget_norm(id) == h5t::H5T_norm_t::H5T_NORM_IMPLIED
            }
            // An enumeration of 0 and 1 over one byte.
            DType::Bool => true,
            _ => whole,
        }
    }
}

/// A short name for an HDF5 type ndstream does not read.
fn describe(d: &TypeDescriptor) -> String {
    match d {
        TypeDescriptor::Compound(c) => {
            let fields: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
            format!("compound {{{}}}", fields.join(", "))
        }
        TypeDescriptor::Enum(_) => "enum".to_string(),
        TypeDescriptor::FixedArray(..) => "array".to_string(),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            format!("fixed-length string ({n} bytes)")
        }
        TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode => {
            "variable-length string".to_string()
        }
        TypeDescriptor::VarLenArray(_) => "variable-length array".to_string(),
        TypeDescriptor::Reference(_) => "reference".to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `/a/b` for `a/b`, `/a/b/`, `//a//b`; `/` for empty.
pub(crate) fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Open an existing HDF5 file read-only, with clear errors.
pub(crate) fn open_file(file: &Path, name: &str) -> Result<hdf5::File> {
    if !file.exists() {
        return Err(Error::open(
            name,
            format!("no such file: {}", file.display()),
        ));
    }
    if file.is_dir() {
        return Err(Error::open(
            name,
            format!("{} is a directory, not an HDF5 file", file.display()),
        ));
    }
    let f = hdf5::sync::sync(|| open_read_only(file)).map_err(|e| match netcdf3_kind(file) {
        Some(kind) => Error::open(
            name,
            format!(
                "{} is a netCDF-3 file ({kind}), not HDF5: ndstream reads netCDF-4 files only",
                file.display()
            ),
        ),
        None => h5_open_err(
            name,
            &format!("cannot open {} as an HDF5 file", file.display()),
            e,
        ),
    })?;
    cloexec(&f);
    Ok(f)
}

/// The netCDF-3 variant of a file, from its first four bytes (`CDF` and a
/// version byte), or `None` if it is not netCDF-3.
fn netcdf3_kind(file: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(file)
        .ok()?
        .read_exact(&mut magic)
        .ok()?;
    match magic {
        [b'C', b'D', b'F', 1] => Some("classic format"),
        [b'C', b'D', b'F', 2] => Some("64-bit offset format"),
        [b'C', b'D', b'F', 5] => Some("CDF-5, 64-bit data format"),
        _ => None,
    }
}

/// `H5Fopen` read-only, without HDF5's `flock` where this HDF5 can say so.
///
/// A read-only open takes a shared lock that a child process inheriting the
/// descriptor (see [`cloexec`]) would keep, blocking our own later writes;
/// readers here never need the lock, writers keep theirs.
pub(crate) fn open_read_only(file: &Path) -> hdf5::Result<hdf5::File> {
    #[cfg(ndstream_hdf5_file_locking)]
    {
        hdf5::File::with_options()
            .with_fapl(|p| p.file_locking(false))
            .open(file)
    }
    #[cfg(not(ndstream_hdf5_file_locking))]
    {
        hdf5::File::open(file)
    }
}

/// Run an HDF5 open or create for writing, waiting out a brief lock.
///
/// HDF5 `flock`s a file it opens for writing and fails at once when the
/// lock is taken. A process this one forks holds copies of our descriptors,
/// locks included, until it execs; a file we just closed can look locked
/// for that moment. Retrying for up to about two seconds rides that out,
/// while a file another writer really holds still fails with HDF5's error.
pub(crate) fn retry_locked<T>(mut open: impl FnMut() -> hdf5::Result<T>) -> hdf5::Result<T> {
    let mut wait = std::time::Duration::from_millis(2);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match open() {
            Err(e)
                if waited < std::time::Duration::from_secs(2)
                    && e.to_string().contains("unable to lock file") =>
            {
                std::thread::sleep(wait);
                waited += wait;
                wait = (wait * 2).min(std::time::Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

/// Mark an open HDF5 file's descriptor close-on-exec.
///
/// libhdf5 opens files without `O_CLOEXEC` and `flock`s them; a child
/// process started meanwhile (a Python interop check, a shell-out) would
/// inherit the descriptor and keep the lock after we close the file, so
/// the next open of that file in this process fails with "unable to lock
/// file". Best effort: drivers other than the default sec2 are left alone.
pub(crate) fn cloexec(f: &hdf5::File) {
    const F_GETFD: std::ffi::c_int = 1;
    const F_SETFD: std::ffi::c_int = 2;
    const FD_CLOEXEC: std::ffi::c_int = 1;
    extern "C" {
        fn fcntl(fd: std::ffi::c_int, cmd: std::ffi::c_int, ...) -> std::ffi::c_int;
    }
    hdf5::sync::sync(|| {
        let Ok(fapl) = f.fapl() else { return };
        if !matches!(fapl.driver(), hdf5::file::FileDriver::Sec2) {
            return;
        }
        let mut handle: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: under the HDF5 lock; for the sec2 driver the VFD handle is
        // a pointer to the file's `int` descriptor, valid while `f` is open.
        unsafe {
            if hdf5_sys::h5f::H5Fget_vfd_handle(f.id(), fapl.id(), &mut handle) < 0
                || handle.is_null()
            {
                return;
            }
            let fd = *(handle as *const std::ffi::c_int);
            let flags = fcntl(fd, F_GETFD);
            if flags >= 0 {
                fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
            }
        }
    });
}

/// Open dataset `path` (normalized) of an open file, naming the datasets there if it is missing.
pub(crate) fn open_dataset(f: &hdf5::File, path: &str, file: &Path, name: &str) -> Result<Dataset> {
    hdf5::sync::sync(|| {
        if path == "/" {
            let mut all = Vec::new();
            list_datasets(f, &mut all);
            return match all.as_slice() {
                [one] => {
                    header::object_ok_by_name(f, one)
                        .map_err(|why| corrupt(file, one, name, why))?;
                    f.dataset(one)
                        .map_err(|e| h5_open_err(name, "cannot open the dataset", e))
                }
                [] => Err(Error::open(
                    name,
                    format!("{} holds no datasets", file.display()),
                )),
                many => Err(Error::open(
                    name,
                    format!(
                        "{} holds several datasets; name one as {}:/path ({})",
                        file.display(),
                        file.display(),
                        short_list(many)
                    ),
                )),
            };
        }
        if matches!(f.loc_type_by_name(path), Ok(hdf5::LocationType::Dataset)) {
            header::object_ok_by_name(f, path).map_err(|why| corrupt(file, path, name, why))?;
        }
        match f.dataset(path) {
            Ok(ds) => return Ok(ds),
            Err(e) if matches!(f.loc_type_by_name(path), Ok(hdf5::LocationType::Dataset)) => {
                let (a, b, c) = hdf5::library_version();
                return Err(h5_open_err(
                    name,
                    &format!(
                        "{} holds dataset {path}, but HDF5 {a}.{b}.{c} cannot open it \
                         (a newer HDF5 may have written it in a format this one does not read)",
                        file.display()
                    ),
                    e,
                ));
            }
            Err(_) => {}
        }
        if f.group(path).is_ok() {
            return Err(Error::open(
                name,
                format!("{path} in {} is a group, not a dataset", file.display()),
            ));
        }
        let mut all = Vec::new();
        list_datasets(f, &mut all);
        let known = if all.is_empty() {
            "it holds no datasets".to_string()
        } else {
            format!("datasets: {}", short_list(&all))
        };
        Err(Error::open(
            name,
            format!("{} has no dataset {path} ({known})", file.display()),
        ))
    })
}

/// The error for a dataset whose header [`header`] refused.
fn corrupt(file: &Path, path: &str, name: &str, why: String) -> Error {
    Error::open(
        name,
        format!(
            "{} holds dataset {path}, but its header is corrupt, so it is not opened: {why}",
            file.display()
        ),
    )
}

/// Dataset `name` of `g`, opened only if [`header`] passes its header
/// (libhdf5 would read past its buffers on some corrupt ones).
pub(crate) fn checked_dataset(g: &hdf5::Group, name: &str) -> hdf5::Result<Dataset> {
    header::object_ok_by_name(g, name)?;
    g.dataset(name)
}

/// Up to 10 names, comma separated.
fn short_list(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(", ... ({} in all)", names.len()));
    }
    s
}

/// Full paths of every dataset below `g` (those that do not open too).
fn list_datasets(g: &hdf5::Group, out: &mut Vec<String>) {
    let m = members(g);
    out.extend(m.datasets.iter().map(|d| d.name()));
    out.extend(m.unopened);
    for sub in m.groups {
        list_datasets(&sub, out);
    }
}

/// An [`Error::Open`] carrying an hdf5-metno error as its cause.
pub(crate) fn h5_open_err(name: &str, what: &str, e: hdf5::Error) -> Error {
    Error::Open {
        path: name.to_string(),
        message: format!("{what}: {e}"),
        cause: Some(Box::new(e)),
    }
}
/// HDF5 and netCDF-4 files (feature `hdf5`): local files read and
/// written, and, with the `object-store` feature, files reached by URL
/// read by byte ranges (see the module doc).
pub(crate) struct Hdf5;

/// A local file, or a file by URL, and the dataset path in it.
enum At<'a> {
    Local(&'a Path, &'a str),
    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    Url(&'a str, &'a str),
}

fn at<'a>(path: &str, loc: &'a Location) -> Result<At<'a>> {
    match loc {
        Location::Hdf5 { file, dataset } => Ok(At::Local(file, dataset)),
        Location::Hdf5Url { url, dataset } => Ok(At::Url(url, dataset)),
        _ => Err(Error::open(path, "not an HDF5 file")),
    }
}

/// The error for an HDF5 file reached by URL in a build that cannot read it.
#[cfg(not(feature = "object-store"))]
fn no_url(path: &str) -> Error {
    Error::open(
        path,
        "this build cannot read HDF5 files by URL; rebuild ndstream with the `hdf5` and \
         `object-store` features",
    )
}

impl Format for Hdf5 {
    fn name(&self) -> &'static str {
        "hdf5"
    }
    fn probe(&self, loc: &Location) -> bool {
        matches!(loc, Location::Hdf5 { .. } | Location::Hdf5Url { .. })
    }
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>> {
        match at(path, loc)? {
            At::Local(file, dataset) => open_source(file, dataset, path),
            #[cfg(feature = "object-store")]
            At::Url(url, dataset) => open_url_source(url, dataset, path),
            #[cfg(not(feature = "object-store"))]
            At::Url(..) => Err(no_url(path)),
        }
    }
    /// Files reached by URL are opened [`OPEN_TOGETHER`] at a time (see
    /// [`open_url_sources`]).
    fn open_all(&self, found: &[(String, Location)]) -> Result<Vec<Arc<dyn ChunkSource>>> {
        #[cfg(feature = "object-store")]
        if found
            .iter()
            .all(|(_, l)| matches!(l, Location::Hdf5Url { .. }))
        {
            let paths: Vec<String> = found.iter().map(|(p, _)| p.clone()).collect();
            return open_url_sources(&paths);
        }
        found.iter().map(|(p, loc)| self.open(p, loc)).collect()
    }
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo> {
        match at(path, loc)? {
            At::Local(file, dataset) => info(file, (!dataset.is_empty()).then_some(dataset), path),
            #[cfg(feature = "object-store")]
            At::Url(url, dataset) => url_info(url, (!dataset.is_empty()).then_some(dataset), path),
            #[cfg(not(feature = "object-store"))]
            At::Url(..) => Err(no_url(path)),
        }
    }
    fn sink_needs(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        match at(path, loc)? {
            At::Local(file, _) => {
                // What stands at the path and every mode refuses, found
                // by looking only.
                lifecycle::check_existing(file, path, spec)?;
                sink_needs(path, spec)
            }
            At::Url(..) => Err(url_read_only(path)),
        }
    }
    fn create(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        match at(path, loc)? {
            At::Local(file, dataset) => create_sink(file, dataset, path, spec),
            At::Url(..) => Err(url_read_only(path)),
        }
    }
}

/// The error for writing to an HDF5 file reached by URL.
fn url_read_only(path: &str) -> Error {
    Error::open(
        path,
        "an HDF5 or netCDF-4 file reached by URL is read-only; write HDF5 to a local path, \
         or Zarr to object storage (s3://bucket/x.zarr)",
    )
}
