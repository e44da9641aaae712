//! [`Hdf5Sink`]: a new chunked HDF5 dataset as a [`ChunkSink`].
//!
//! The dataset is chunked with `spec.chunks` and either no filters or
//! shuffle + deflate (`Codec::Gzip`). Worker threads pad edge chunks to the
//! full chunk shape (HDF5 stores whole chunks; padding is the fill value 0)
//! and encode them themselves; only the raw direct chunk write
//! (`H5Dwrite_chunk`, filter mask 0) runs under hdf5-metno's global lock.
//!
//! With `spec.contiguous` (and always for 0-d arrays) the dataset is
//! contiguous instead: its storage is allocated at creation (no fill
//! written) and workers write their chunk's rows straight into the file at
//! the data offset with positioned writes, with no HDF5 call at all.
//!
//! Lifecycle: creation sets the attribute [`INCOMPLETE_ATTR`]; `finish`
//! removes it, flushes and closes the file. A dataset left with the
//! attribute is an interrupted write: `Resume` reopens it (shape, dtype,
//! chunks and filters must match) and `is_done` reports the chunks already
//! stored that decode (for contiguous datasets, which cannot tell, every chunk
//! if the dataset had been finished and none otherwise). Data is written in
//! native byte order.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use hdf5::dataset::{AllocTime, FillTime};
use hdf5::filters::Filter;
use hdf5::{Dataset, Extent, SimpleExtents};
use ndstream_engine::{with_dtype, Block, ChunkGrid, ChunkSink, DType, Error, Result};

use super::codec::{self, Step};
use super::{attrs, h5_open_err, map_dtype, normalize, Meta, INCOMPLETE_ATTR};
use crate::spec::{Codec, SinkSpec, WriteMode};

/// A chunked HDF5 dataset being written.
#[derive(Debug)]
pub(crate) struct Hdf5Sink {
    name: String,
    shape: Vec<u64>,
    dtype: DType,
    grid: ChunkGrid,
    chunk: Vec<usize>,
    pipeline: Vec<Step>,
    level: u32,
    /// Open until `finish`.
    handles: Mutex<Option<(hdf5::File, Dataset)>>,
    /// For `is_done`: reads chunks back without HDF5.
    reader: File,
    /// Set for a contiguous dataset: where its data starts, and a handle to write it.
    contiguous: Option<Contiguous>,
    /// A resumed dataset that had been finished before.
    was_complete: bool,
    /// fsync the file after closing it (see [`SinkSpec::sync`]).
    sync: bool,
}

/// Direct writes into a contiguous dataset's storage.
#[derive(Debug)]
struct Contiguous {
    /// File offset of element 0 (`None` only for a dataset of no elements).
    base: Option<u64>,
    writer: File,
}

impl Hdf5Sink {
    /// Create, overwrite or resume `dataset` in `file` (see [`super::create_sink`]).
    pub(crate) fn create(
        file: &Path,
        dataset: &str,
        name: &str,
        spec: &SinkSpec,
    ) -> Result<Hdf5Sink> {
        let (pipeline, level) = check_spec(name, spec)?;
        let path = normalize(dataset);
        if path == "/" {
            return Err(Error::open(
                name,
                format!("name the dataset to create, as {}:/name", file.display()),
            ));
        }
        let (f, ds, was_complete) =
            hdf5::sync::sync(|| open_for_write(file, &path, name, spec, &pipeline, level))?;
        let os_err =
            |e: std::io::Error| Error::open(name, format!("cannot open {}: {e}", file.display()));
        let reader = File::open(file).map_err(os_err)?;
        let contiguous = if is_contiguous(spec) {
            let base = hdf5::sync::sync(|| ds.offset());
            let elems: u64 = spec.shape.iter().product();
            if base.is_none() && elems > 0 {
                return Err(Error::open(
                    name,
                    "HDF5 did not allocate the contiguous dataset's storage",
                ));
            }
            let writer = std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .map_err(os_err)?;
            Some(Contiguous { base, writer })
        } else {
            None
        };
        Ok(Hdf5Sink {
            name: name.to_string(),
            shape: spec.shape.clone(),
            dtype: spec.dtype,
            grid: ChunkGrid::regular(&spec.shape, &spec.chunks),
            chunk: spec.chunks.iter().map(|&c| c as usize).collect(),
            pipeline,
            level,
            handles: Mutex::new(Some((f, ds))),
            reader,
            contiguous,
            was_complete,
            sync: spec.sync,
        })
    }

    fn err(&self, idx: &[u64], msg: impl Into<String>) -> Error {
        Error::sink(&self.name, format!("chunk {idx:?}"), msg)
    }

    /// Bytes of one full chunk.
    fn chunk_bytes(&self) -> usize {
        self.chunk.iter().product::<usize>() * self.dtype.size()
    }

    /// Write a chunk's native bytes into contiguous storage, one positioned
    /// write per run of rows that is contiguous in the file.
    fn write_rows(&self, c: &Contiguous, idx: &[u64], raw: &[u8]) -> Result<()> {
        let Some(base) = c.base else { return Ok(()) };
        if self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            return Err(self.err(idx, "the sink was already finished"));
        }
        let size = self.dtype.size() as u64;
        let region = self.grid.chunk_region(idx);
        let nd = region.len();
        if nd == 0 {
            return c
                .writer
                .write_all_at(raw, base)
                .map_err(|e| self.err(idx, format!("write: {e}")));
        }
        // Trailing axes the chunk covers whole merge into one run.
        let mut k = nd - 1;
        while k > 0 && region[k].start == 0 && region[k].end == self.shape[k] {
            k -= 1;
        }
        let mut strides = vec![0u64; nd];
        let mut acc = size;
        for d in (0..nd).rev() {
            strides[d] = acc;
            acc *= self.shape[d];
        }
        let run = ((region[k].end - region[k].start) * strides[k]) as usize;
        let outer: u64 = region[..k].iter().map(|r| r.end - r.start).product();
        let mut pos: Vec<u64> = region[..k].iter().map(|r| r.start).collect();
        for r in 0..outer as usize {
            let at = base
                + pos.iter().zip(&strides).map(|(p, s)| p * s).sum::<u64>()
                + region[k].start * strides[k];
            c.writer
                .write_all_at(&raw[r * run..(r + 1) * run], at)
                .map_err(|e| self.err(idx, format!("write at file offset {at}: {e}")))?;
            for d in (0..k).rev() {
                pos[d] += 1;
                if pos[d] < region[d].end {
                    break;
                }
                pos[d] = region[d].start;
            }
        }
        Ok(())
    }

    /// Run `f` on the open dataset, under the HDF5 lock.
    fn with_ds<R>(&self, f: impl FnOnce(&Dataset) -> R) -> Option<R> {
        let guard = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let (_, ds) = guard.as_ref()?;
        Some(hdf5::sync::sync(|| f(ds)))
    }
}

/// The filter pipeline and deflate level for the spec, or why HDF5 cannot store it.
fn check_spec(name: &str, spec: &SinkSpec) -> Result<(Vec<Step>, u32)> {
    if spec.chunks.len() != spec.shape.len() || spec.chunks.contains(&0) {
        return Err(Error::open(
            name,
            format!(
                "chunks {:?} do not fit shape {:?} (one positive size per axis)",
                spec.chunks, spec.shape
            ),
        ));
    }
    if spec.shards.is_some() {
        return Err(Error::open(
            name,
            "HDF5 datasets have no shards (sharding is a Zarr v3 feature)",
        ));
    }
    if spec.contiguous && spec.codec != Codec::None {
        return Err(Error::open(
            name,
            format!(
                "a contiguous HDF5 dataset cannot be compressed ({:?}); give chunks, or codec none",
                spec.codec
            ),
        ));
    }
    let level = match &spec.codec {
        Codec::None => return Ok((Vec::new(), 0)),
        Codec::Gzip { level } => (*level).min(9),
        other => {
            return Err(Error::open(
                name,
                format!("HDF5 output supports the codecs none and gzip here, not {other:?}"),
            ))
        }
    };
    if is_contiguous(spec) {
        // 0-d datasets are contiguous, and HDF5 filters need chunks.
        return Ok((Vec::new(), 0));
    }
    Ok((
        vec![
            Step::Shuffle {
                size: spec.dtype.size(),
            },
            Step::Deflate,
        ],
        level,
    ))
}

/// True if the dataset is stored contiguous (asked for, or 0-d: HDF5 cannot chunk those).
fn is_contiguous(spec: &SinkSpec) -> bool {
    spec.contiguous || spec.shape.is_empty()
}

/// Open or create the file and the dataset as `spec.mode` says (under the
/// lock); also whether a resumed dataset had been finished.
fn open_for_write(
    file: &Path,
    path: &str,
    name: &str,
    spec: &SinkSpec,
    pipeline: &[Step],
    level: u32,
) -> Result<(hdf5::File, Dataset, bool)> {
    let exists = file.exists();
    let f = if !exists {
        super::retry_locked(|| hdf5::File::create_excl(file))
            .map_err(|e| h5_open_err(name, &format!("cannot create {}", file.display()), e))?
    } else {
        match spec.mode {
            WriteMode::Create => {
                let ro = super::open_read_only(file).map_err(|e| {
                    h5_open_err(
                        name,
                        &format!("{} exists and cannot be opened as HDF5", file.display()),
                        e,
                    )
                })?;
                super::cloexec(&ro);
                if ro.dataset(path).is_ok() || ro.group(path).is_ok() {
                    return Err(Error::open(
                        name,
                        format!(
                            "{path} already exists in {}; overwrite or resume it explicitly",
                            file.display()
                        ),
                    ));
                }
                drop(ro);
                super::retry_locked(|| hdf5::File::open_rw(file))
                    .map_err(|e| h5_open_err(name, "cannot open the file for writing", e))?
            }
            WriteMode::Overwrite => match super::retry_locked(|| hdf5::File::open_rw(file)) {
                Ok(f) => {
                    if f.dataset(path).is_ok() || f.group(path).is_ok() {
                        f.unlink(path)
                            .map_err(|e| h5_open_err(name, &format!("cannot delete {path}"), e))?;
                    }
                    f
                }
                // Not an HDF5 file (or a damaged one): replace it.
                Err(_) => super::retry_locked(|| hdf5::File::create(file)).map_err(|e| {
                    h5_open_err(name, &format!("cannot recreate {}", file.display()), e)
                })?,
            },
            WriteMode::Resume => {
                let f = super::retry_locked(|| hdf5::File::open_rw(file)).map_err(|e| {
                    h5_open_err(
                        name,
                        &format!(
                            "{} exists and cannot be opened as HDF5 for writing",
                            file.display()
                        ),
                        e,
                    )
                })?;
                super::cloexec(&f);
                if let Ok(ds) = f.dataset(path) {
                    check_resumable(&ds, name, spec, pipeline)?;
                    let was_complete = ds.attr(INCOMPLETE_ATTR).is_err();
                    if was_complete {
                        mark_incomplete(&ds, name)?;
                    }
                    attrs::write_attrs(&ds, &spec.attributes).map_err(|m| Error::open(name, m))?;
                    return Ok((f, ds, was_complete));
                }
                f
            }
        }
    };
    super::cloexec(&f);
    let ds = create_dataset(&f, path, name, spec, level, !pipeline.is_empty())?;
    mark_incomplete(&ds, name)?;
    attrs::write_attrs(&ds, &spec.attributes).map_err(|m| Error::open(name, m))?;
    Ok((f, ds, false))
}

fn mark_incomplete(ds: &Dataset, name: &str) -> Result<()> {
    ds.new_attr::<u8>()
        .create(INCOMPLETE_ATTR)
        .and_then(|a| a.write_scalar(&1u8))
        .map_err(|e| h5_open_err(name, "cannot mark the dataset incomplete", e))
}

fn create_dataset(
    f: &hdf5::File,
    path: &str,
    name: &str,
    spec: &SinkSpec,
    level: u32,
    gzip: bool,
) -> Result<Dataset> {
    let dt = with_dtype!(spec.dtype, T => hdf5::Datatype::from_type::<T>())
        .map_err(|e| h5_open_err(name, "cannot make the HDF5 type", e))?;
    // HDF5 refuses chunks longer than a fixed dimension: make such axes extendible.
    let extents = SimpleExtents::from_vec(
        spec.shape
            .iter()
            .zip(&spec.chunks)
            .map(|(&n, &c)| {
                if c > n {
                    Extent::resizable(n as usize)
                } else {
                    Extent::fixed(n as usize)
                }
            })
            .collect(),
    );
    let chunk: Vec<usize> = spec.chunks.iter().map(|&c| c as usize).collect();
    if is_contiguous(spec) {
        // Allocate the storage now so its offset is known, and write no fill
        // (workers write every byte).
        let shape: Vec<usize> = spec.shape.iter().map(|&n| n as usize).collect();
        return f
            .new_dataset_builder()
            .create_intermediate_group(true)
            .alloc_time(Some(AllocTime::Early))
            .fill_time(FillTime::Never)
            .empty_as(&dt)
            .shape(shape)
            .create(path)
            .map_err(|e| h5_open_err(name, &format!("cannot create dataset {path}"), e));
    }
    let mut b = f
        .new_dataset_builder()
        .chunk(chunk)
        .create_intermediate_group(true);
    if gzip {
        b = b.set_filters(&[Filter::Shuffle, Filter::Deflate(level as u8)]);
    }
    b.empty_as(&dt)
        .shape(extents)
        .create(path)
        .map_err(|e| h5_open_err(name, &format!("cannot create dataset {path}"), e))
}

/// A dataset can be resumed if its shape, dtype, chunks and filters are the spec's.
fn check_resumable(ds: &Dataset, name: &str, spec: &SinkSpec, pipeline: &[Step]) -> Result<()> {
    let meta = Meta::read(ds, name)?;
    let dt = ds
        .dtype()
        .map_err(|e| h5_open_err(name, "cannot read the dataset's type", e))?;
    let native = map_dtype(&dt)
        .map(|(_, be)| be == cfg!(target_endian = "big"))
        .unwrap_or(false);
    let mut why = Vec::new();
    if meta.shape != spec.shape {
        why.push(format!("shape {:?} (spec {:?})", meta.shape, spec.shape));
    }
    if meta.dtype != spec.dtype || !native {
        why.push(format!(
            "dtype {}{} (spec {})",
            meta.dtype,
            if native { "" } else { " non-native byte order" },
            spec.dtype
        ));
    }
    if is_contiguous(spec) {
        if meta.chunk.is_some() {
            why.push(format!("chunks {:?} (spec: contiguous)", meta.chunk));
        }
    } else if meta.chunk.as_deref() != Some(spec.chunks.as_slice()) {
        why.push(format!("chunks {:?} (spec {:?})", meta.chunk, spec.chunks));
    }
    if meta.pipeline().as_deref() != Some(pipeline) {
        let has: Vec<&str> = meta
            .pipeline()
            .unwrap_or_default()
            .iter()
            .map(Step::word)
            .collect();
        why.push(format!(
            "filters [{}] (spec {:?})",
            has.join(", "),
            spec.codec
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(Error::open(
            name,
            format!("cannot resume {}: it has {}", ds.name(), why.join(", ")),
        ))
    }
}

impl ChunkSink for Hdf5Sink {
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
        if idx.len() != self.shape.len()
            || idx.iter().zip(self.grid.grid_shape()).any(|(&i, n)| i >= n)
        {
            return Err(self.err(
                idx,
                format!(
                    "no such chunk: the grid is {:?} chunks",
                    self.grid.grid_shape()
                ),
            ));
        }
        let want: Vec<usize> = self
            .grid
            .chunk_shape(idx)
            .iter()
            .map(|&n| n as usize)
            .collect();
        if data.dtype() != self.dtype || data.shape() != want.as_slice() {
            return Err(self.err(
                idx,
                format!(
                    "got a {} block of shape {:?}, expected {} {:?}",
                    data.dtype(),
                    data.shape(),
                    self.dtype,
                    want
                ),
            ));
        }
        // Encode on this worker thread, outside the HDF5 lock.
        let raw = data.to_ne_bytes();
        if let Some(c) = &self.contiguous {
            return self.write_rows(c, idx, &raw);
        }
        let full = if want == self.chunk {
            raw
        } else {
            let mut padded = vec![0u8; self.chunk_bytes()];
            codec::copy_box(
                &raw,
                &self.chunk,
                &want,
                self.dtype.size(),
                &mut padded,
                false,
            );
            padded
        };
        let encoded = if self.pipeline.is_empty() {
            full
        } else {
            codec::encode(&full, &self.pipeline, self.level)
        };
        let offset: Vec<u64> = idx
            .iter()
            .zip(&self.chunk)
            .map(|(&i, &c)| i * c as u64)
            .collect();
        let rc = self.with_ds(|ds| {
            // SAFETY: under the HDF5 lock; `offset` has one entry per dataset
            // dimension and `encoded` is a live buffer of the given length.
            unsafe {
                hdf5_sys::h5d::H5Dwrite_chunk(
                    ds.id(),
                    hdf5_sys::h5p::H5P_DEFAULT,
                    0,
                    offset.as_ptr(),
                    encoded.len(),
                    encoded.as_ptr().cast(),
                )
            }
        });
        match rc {
            None => Err(self.err(idx, "the sink was already finished")),
            Some(rc) if rc < 0 => Err(self.err(
                idx,
                "HDF5 could not write the chunk (H5Dwrite_chunk failed)",
            )),
            Some(_) => Ok(()),
        }
    }

    fn is_done(&self, idx: &[u64]) -> bool {
        let offset: Vec<u64> = idx
            .iter()
            .zip(&self.chunk)
            .map(|(&i, &c)| i * c as u64)
            .collect();
        if offset.len() != self.shape.len() {
            return false;
        }
        if self.contiguous.is_some() {
            return self.was_complete;
        }
        let loc = self.with_ds(|ds| {
            let (mut mask, mut addr, mut size) = (0u32, u64::MAX, 0u64);
            // SAFETY: under the HDF5 lock; valid pointers to locals and an
            // offset with one entry per dimension.
            let rc = unsafe {
                hdf5_sys::h5d::H5Dget_chunk_info_by_coord(
                    ds.id(),
                    offset.as_ptr(),
                    &mut mask,
                    &mut addr,
                    &mut size,
                )
            };
            (rc >= 0 && addr != u64::MAX && size > 0).then_some((mask, addr, size))
        });
        let Some(Some((mask, addr, size))) = loc else {
            return false;
        };
        let Ok(stored) = usize::try_from(size) else {
            return false;
        };
        codec::with_scratch(|cur, tmp| {
            cur.resize(stored, 0);
            self.reader.read_exact_at(cur, addr).is_ok()
                && codec::decode(cur, tmp, &self.pipeline, mask, self.chunk_bytes()).is_ok()
        })
    }

    fn memory_per_chunk(&self) -> u64 {
        // The native-byte copy (plus padding), and for gzip the shuffled and compressed buffers.
        let copies = if self.contiguous.is_some() {
            1
        } else if self.pipeline.is_empty() {
            2
        } else {
            4
        };
        (self.chunk_bytes() * copies) as u64
    }

    fn finish(&self) -> Result<()> {
        let mut guard = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let Some((f, ds)) = guard.take() else {
            return Ok(());
        };
        hdf5::sync::sync(|| {
            if ds.attr(INCOMPLETE_ATTR).is_ok() {
                ds.delete_attr(INCOMPLETE_ATTR).map_err(|e| {
                    Error::sink(
                        &self.name,
                        "finish",
                        format!("cannot clear the incomplete mark: {e}"),
                    )
                })?;
            }
            f.flush()
                .map_err(|e| Error::sink(&self.name, "finish", format!("cannot flush: {e}")))?;
            drop(ds);
            f.close()
                .map_err(|e| Error::sink(&self.name, "finish", format!("cannot close: {e}")))
        })?;
        if self.sync {
            // Any descriptor of the file flushes all of its data.
            self.reader
                .sync_all()
                .map_err(|e| Error::sink(&self.name, "finish", format!("cannot sync: {e}")))?;
        }
        Ok(())
    }
}
