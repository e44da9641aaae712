//! [`ZarrSink`]: a new Zarr v2/v3 array written chunk by chunk through zarrs.
//!
//! Protocol:
//! 1. `create` settles the write mode: `Create` refuses an existing path
//!    (untouched); `Overwrite` removes it (only if it is a Zarr node or an
//!    empty directory, never an unrelated directory); `Resume` reopens an
//!    existing array whose metadata matches the spec (shape, dtype, chunks,
//!    shards, codecs, version) and otherwise refuses.
//! 2. The marker file `.ndstream-incomplete` is written into the array
//!    directory *before* the metadata, so no array ever looks complete
//!    before `finish` removes the marker.
//! 3. Each `write_chunk` pads an edge chunk to the full chunk shape with the
//!    fill value (zarrs requires it), encodes on the calling thread (codec
//!    concurrency 1) and stores it through [`AtomicFsStore`] (a temporary
//!    file renamed over the key). Every chunk is stored, even one equal to
//!    the fill value, so "file exists and decodes" means "written" on resume.
//! 4. Sharded arrays (`spec.shards`): the sink's grid is the shard grid; the
//!    executor delivers a whole shard, which zarrs splits into inner chunks
//!    and encodes as one file. `memory_per_chunk` reports the padded copy
//!    plus the encoded output.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, CowArray, IxDyn, SliceInfoElem};
use ndstream_engine::{
    Block, BlockElement, ChunkGrid, ChunkIndex, ChunkSink, DType, Error, Result,
};
use zarrs::array::{Array, ArrayBytes, CodecOptions, Element};

use super::meta::{self, ArrayMeta, Node};
use super::store::AtomicFsStore;
use super::{codec_options, open_array, zarrs_node_path, INCOMPLETE_MARKER};
use crate::raw::open_err;
use crate::spec::{Codec, SinkSpec, WriteMode};

/// A Zarr array being written.
pub(crate) struct ZarrSink {
    name: String,
    dir: PathBuf,
    array: Array<AtomicFsStore>,
    dtype: DType,
    shape: Vec<u64>,
    /// The grid of stored chunks (shards when sharded).
    grid: ChunkGrid,
    /// The full shape of a stored chunk (or shard).
    chunk_shape: Vec<u64>,
    options: CodecOptions,
    /// fsync every file before the marker goes (see [`SinkSpec::sync`]).
    sync: bool,
    /// The zstd level when the chunk encoding is just "little-endian bytes,
    /// then one zstd frame" (unsharded, `--codec zstd:N`): such chunks are
    /// compressed here with a per-thread reused zstd context (see
    /// [`ZarrSink::write_zstd`]) instead of a fresh one per chunk.
    direct_zstd: Option<i32>,
    /// Bytes of one such zstd context at this level and chunk size
    /// (measured at creation), counted in [`ChunkSink::memory_per_chunk`].
    zstd_context_bytes: u64,
}

impl std::fmt::Debug for ZarrSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrSink")
            .field("name", &self.name)
            .field("grid", &self.grid)
            .finish()
    }
}

fn check_spec(name: &str, spec: &SinkSpec) -> Result<()> {
    crate::raw::spec_grid(name, spec)?;
    if let Some(shards) = &spec.shards {
        if spec.zarr_version == crate::spec::ZarrVersion::V2 {
            return Err(Error::open(name, "sharding needs Zarr v3"));
        }
        let fits = shards.len() == spec.chunks.len()
            && shards
                .iter()
                .zip(&spec.chunks)
                .all(|(&s, &c)| s > 0 && s % c == 0);
        if !fits {
            return Err(Error::open(
                name,
                format!("shard shape {shards:?} must be a multiple of the chunk shape {:?} on every axis", spec.chunks),
            ));
        }
    }
    Ok(())
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// Make sure `root` and the groups between it and the array exist as groups.
fn ensure_groups(name: &str, root: &Path, array: &str, spec: &SinkSpec) -> Result<()> {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = array.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in std::iter::once("").chain(parts.iter().copied()).enumerate() {
        if !part.is_empty() {
            dir.push(part);
        }
        if i == parts.len() {
            break; // the array itself
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| open_err(name, "cannot create the group directory", e))?;
        match meta::read_node(&dir) {
            Ok(Some(Node::Group { version, .. })) if version != spec.zarr_version => {
                return Err(Error::open(
                    name,
                    format!(
                        "the group {} is Zarr {version:?} but the write asks for Zarr {:?}",
                        dir.display(),
                        spec.zarr_version
                    ),
                ))
            }
            Ok(Some(Node::Group { .. })) => {}
            Ok(None) => {
                let (file, json) = meta::group_metadata(spec.zarr_version);
                std::fs::write(dir.join(file), json.to_string())
                    .map_err(|e| open_err(name, "cannot write group metadata", e))?;
            }
            Ok(Some(Node::Array(_))) => {
                return Err(Error::open(
                    name,
                    format!("{} is an array, not a group", dir.display()),
                ))
            }
            Err(m) => return Err(Error::open(name, m)),
        }
    }
    Ok(())
}

/// What must agree for a resume: everything but attributes and fill value.
fn same_layout(a: &ArrayMeta, b: &ArrayMeta) -> bool {
    a.version == b.version
        && a.shape == b.shape
        && a.dtype == b.dtype
        && a.chunks == b.chunks
        && a.inner == b.inner
        && a.codec == b.codec
}

impl ZarrSink {
    /// Create (or per `spec.mode` replace or resume) the array `array` of the store at `root`.
    pub fn create(name: &str, root: &Path, array: &str, spec: &SinkSpec) -> Result<ZarrSink> {
        check_spec(name, spec)?;
        let dir = root.join(array);
        let want = meta::meta_of_spec(spec).map_err(|m| Error::open(name, m))?;
        let exists = dir.exists() && !is_empty_dir(&dir);
        let existing = if exists {
            meta::read_node(&dir).map_err(|m| Error::open(name, m))?
        } else {
            None
        };
        let mut resume = false;
        if exists {
            match spec.mode {
                WriteMode::Create => {
                    return Err(Error::open(name, "already exists; overwrite it or resume the write explicitly"))
                }
                WriteMode::Overwrite => {
                    if existing.is_none() {
                        return Err(Error::open(
                            name,
                            "exists and is not a Zarr array or group; refusing to delete it",
                        ));
                    }
                    std::fs::remove_dir_all(&dir).map_err(|e| open_err(name, "cannot remove the existing store", e))?;
                }
                WriteMode::Resume => match &existing {
                    Some(Node::Array(have)) if same_layout(have, &want) => resume = true,
                    Some(Node::Array(have)) => {
                        return Err(Error::open(
                            name,
                            format!(
                                "cannot resume: the existing array is {} {:?} in chunks {:?} ({}), the write is {} {:?} in chunks {:?} ({})",
                                have.dtype, have.shape, have.chunks, have.codec, want.dtype, want.shape, want.chunks, want.codec
                            ),
                        ))
                    }
                    _ => return Err(Error::open(name, "cannot resume: the existing path is not a Zarr array")),
                },
            }
        }
        if !resume {
            ensure_groups(name, root, array, spec)?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| open_err(name, "cannot create the array directory", e))?;
        std::fs::write(
            dir.join(INCOMPLETE_MARKER),
            b"being written by ndstream; removed when the write finishes\n",
        )
        .map_err(|e| open_err(name, "cannot write the incomplete marker", e))?;
        let array_handle = if resume {
            open_array(name, root, array)?
        } else {
            let store =
                std::sync::Arc::new(AtomicFsStore::new(root).map_err(|m| Error::open(name, m))?);
            let json = meta::build_metadata(spec);
            let metadata: zarrs::array::ArrayMetadata = serde_json::from_value(json)
                .map_err(|e| Error::open(name, format!("cannot build Zarr metadata: {e}")))?;
            let a = Array::new_with_metadata(store, &zarrs_node_path(array), metadata)
                .map_err(|e| Error::open(name, format!("cannot create the Zarr array: {e}")))?;
            a.store_metadata()
                .map_err(|e| Error::open(name, format!("cannot write the Zarr metadata: {e}")))?;
            a
        };
        let chunk_shape = spec.shards.clone().unwrap_or_else(|| spec.chunks.clone());
        let direct_zstd = match spec.codec {
            Codec::Zstd { level } if spec.shards.is_none() && cfg!(target_endian = "little") => {
                Some(level)
            }
            _ => None,
        };
        let zstd_context_bytes = match direct_zstd {
            Some(level) => {
                let chunk_bytes = chunk_shape.iter().product::<u64>() * spec.dtype.size() as u64;
                zstd_context_size(level, chunk_bytes as usize)
                    .map_err(|e| open_err(name, "cannot set up zstd", e))?
            }
            None => 0,
        };
        Ok(ZarrSink {
            name: name.to_string(),
            dir,
            array: array_handle,
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            grid: ChunkGrid::regular(&spec.shape, &chunk_shape),
            chunk_shape,
            options: codec_options(),
            sync: spec.sync,
            direct_zstd,
            zstd_context_bytes,
        })
    }

    fn sink_err(
        &self,
        idx: &[u64],
        message: String,
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Sink {
            sink_name: self.name.clone(),
            what: format!("chunk {}", ChunkIndex(idx.to_vec())),
            message,
            cause,
        }
    }

    fn write_typed<T: Element + BlockElement>(&self, idx: &[u64], a: &ArrayD<T>) -> Result<()> {
        let full: Vec<usize> = self.chunk_shape.iter().map(|&n| n as usize).collect();
        let padded: CowArray<'_, T, IxDyn> = if a.shape() == full.as_slice() {
            a.as_standard_layout()
        } else {
            // The fill value is zero (false), as the metadata says.
            let mut p = ArrayD::<T>::default(IxDyn(&full));
            let info: Vec<SliceInfoElem> = a
                .shape()
                .iter()
                .map(|&n| SliceInfoElem::Slice {
                    start: 0,
                    end: Some(n as isize),
                    step: 1,
                })
                .collect();
            p.slice_mut(info.as_slice()).assign(a);
            CowArray::from(p)
        };
        if let Some(level) = self.direct_zstd {
            #[allow(clippy::expect_used)]
            let elems = padded.as_slice().expect("a standard-layout chunk");
            return self.write_zstd(idx, elems, level);
        }
        self.array
            .store_chunk_opt(idx, &padded, &self.options)
            .map_err(|e| {
                self.sink_err(
                    idx,
                    format!("{e} (store {})", self.dir.display()),
                    Some(Box::new(e)),
                )
            })
    }

    /// Store one padded chunk (`elems`, C order) as a zstd frame of its
    /// little-endian bytes, which is exactly what the array's codec chain
    /// (`bytes(little)` then `zstd(level, checksum=false)`, or v2's zstd
    /// compressor over a `<` dtype) decodes. The zstd context of each
    /// thread is kept between chunks: a fresh one per chunk (what the
    /// generic codec path does) allocates and clears its match tables every
    /// time. The output is the same frame either way. The contexts belong
    /// to the executor's worker threads and go with them when the job ends;
    /// each chunk in flight reserves one ([`ChunkSink::memory_per_chunk`]).
    fn write_zstd<T: BlockElement>(&self, idx: &[u64], elems: &[T], level: i32) -> Result<()> {
        thread_local! {
            static ZSTD: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
                const { std::cell::RefCell::new(None) };
        }
        // SAFETY: the sink's element types (integers, floats, bool) are
        // plain old data without padding, so their bytes may be read; on
        // this little-endian target (checked when `direct_zstd` was set)
        // the in-memory bytes are the little-endian encoding.
        let bytes = unsafe {
            std::slice::from_raw_parts(elems.as_ptr().cast::<u8>(), std::mem::size_of_val(elems))
        };
        let frame = ZSTD.with(|z| -> std::io::Result<Vec<u8>> {
            let mut z = z.borrow_mut();
            if z.as_ref().is_none_or(|(l, _)| *l != level) {
                let mut c = zstd::bulk::Compressor::new(level)?;
                c.include_checksum(false)?;
                *z = Some((level, c));
            }
            #[allow(clippy::expect_used)]
            let (_, c) = z.as_mut().expect("set just above");
            c.compress(bytes)
        });
        let frame = frame.map_err(|e| {
            self.sink_err(
                idx,
                format!("zstd compression failed: {e}"),
                Some(Box::new(e)),
            )
        })?;
        // SAFETY: `frame` is this chunk encoded with the array's own codec
        // chain (see above), so zarrs and zarr-python decode it as written.
        unsafe { self.array.store_encoded_chunk(idx, frame.into()) }.map_err(|e| {
            self.sink_err(
                idx,
                format!("{e} (store {})", self.dir.display()),
                Some(Box::new(e)),
            )
        })
    }
}

impl ChunkSink for ZarrSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn shape(&self) -> &[u64] {
        &self.shape
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn write_chunk(&self, idx: &[u64], data: &Block) -> Result<()> {
        self.grid
            .check_chunk(idx)
            .map_err(|m| self.sink_err(idx, m, None))?;
        let want: Vec<usize> = self
            .grid
            .chunk_shape(idx)
            .iter()
            .map(|&n| n as usize)
            .collect();
        if data.dtype() != self.dtype || data.shape() != want.as_slice() {
            return Err(self.sink_err(
                idx,
                format!(
                    "got a {} block of shape {:?}, expected {} {:?}",
                    data.dtype(),
                    data.shape(),
                    self.dtype,
                    want
                ),
                None,
            ));
        }
        match data {
            Block::Bool(a) => self.write_typed(idx, a),
            Block::I8(a) => self.write_typed(idx, a),
            Block::I16(a) => self.write_typed(idx, a),
            Block::I32(a) => self.write_typed(idx, a),
            Block::I64(a) => self.write_typed(idx, a),
            Block::U8(a) => self.write_typed(idx, a),
            Block::U16(a) => self.write_typed(idx, a),
            Block::U32(a) => self.write_typed(idx, a),
            Block::U64(a) => self.write_typed(idx, a),
            Block::F32(a) => self.write_typed(idx, a),
            Block::F64(a) => self.write_typed(idx, a),
        }
    }
    fn is_done(&self, idx: &[u64]) -> bool {
        // Present and decodable: a torn or empty file fails to decode.
        matches!(
            self.array
                .retrieve_chunk_if_exists_opt::<ArrayBytes<'static>>(idx, &self.options),
            Ok(Some(_))
        )
    }
    fn memory_per_chunk(&self) -> u64 {
        // The padded copy plus the encoded output (at most about as large),
        // and the zstd context of the writing thread.
        2 * self.chunk_shape.iter().product::<u64>() * self.dtype.size() as u64
            + self.zstd_context_bytes
    }
    fn finish(&self) -> Result<()> {
        if self.sync {
            sync_tree(&self.dir).map_err(|e| Error::Sink {
                sink_name: self.name.clone(),
                what: "the final sync".into(),
                message: e.to_string(),
                cause: Some(Box::new(e)),
            })?;
        }
        match std::fs::remove_file(self.dir.join(INCOMPLETE_MARKER)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Sink {
                sink_name: self.name.clone(),
                what: "the incomplete marker".into(),
                message: e.to_string(),
                cause: Some(Box::new(e)),
            }),
        }
    }
}

/// The bytes a zstd context holds after compressing one `chunk_bytes` chunk
/// at `level` (zstd sizes its tables to the input, so this is measured on a
/// zeroed chunk rather than estimated for unbounded input).
fn zstd_context_size(level: i32, chunk_bytes: usize) -> std::io::Result<u64> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.include_checksum(false)?;
    c.compress(&vec![0u8; chunk_bytes])?;
    Ok(c.context_mut().sizeof() as u64)
}

/// fsync every file under `dir`, and the directories themselves (so the
/// renames that put the chunks in place are durable too).
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}
