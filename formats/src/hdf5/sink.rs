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
//! Lifecycle (see [`super::lifecycle`] for how the dataset is created,
//! locked, replaced and put in place): creation sets the attribute
//! [`INCOMPLETE_ATTR`]; `finish` removes it, flushes and closes the file
//! (and swaps a replacement in). While writing, the file is flushed every
//! [`FLUSH_CHUNKS`] chunks or [`FLUSH_BYTES`] bytes, so the chunk index
//! on disk keeps up with the data. A dataset left with the attribute is an
//! interrupted write (an error, a full disk, `SIGKILL` at any moment):
//! `Resume` reopens it (shape, dtype, chunks and filters must match) and
//! `is_done` reports the chunks the on-disk index lists whose stored
//! bytes read back and decode (gzip chunks inflate, with their checksum;
//! unfiltered ones have the full size). The index is the record of what
//! is done: an entry reaches the disk only after its chunk's data was
//! written, and the fixed-array index's entries never move, so an entry
//! that survived a kill points at a whole chunk. Contiguous datasets
//! cannot tell, so every chunk is done if the dataset had been finished
//! and none otherwise. A sink dropped unfinished flushes what it wrote (a
//! dataset written in place stays, marked incomplete) or removes its
//! temporary dataset or file. Data is written in native byte order.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use hdf5::Dataset;
use ndstream_engine::{Block, ChunkGrid, ChunkSink, DType, Error, Result};

use super::codec::{self, Step};
use super::lifecycle::{self, is_contiguous, Opened, Swap};
use super::source::{self, ChunkLoc};
use super::{normalize, INCOMPLETE_ATTR};
use crate::spec::{Codec, SinkSpec};

/// Flush the file (making the chunk index of the chunks written so far
/// durable, so a killed write resumes from there) after this many chunks...
const FLUSH_CHUNKS: u64 = 64;
/// ...or this many bytes of chunks, whichever comes first.
const FLUSH_BYTES: u64 = 64 << 20;

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
    /// Open until `finish`, with how `finish` puts the dataset in place.
    handles: Mutex<Option<Handles>>,
    /// For `is_done`: reads chunks back without HDF5.
    reader: File,
    /// Set for a contiguous dataset: where its data starts, and a handle to write it.
    contiguous: Option<Contiguous>,
    /// A resumed dataset that had been finished before.
    was_complete: bool,
    /// fsync the file after closing it (see [`SinkSpec::sync`]).
    sync: bool,
}

/// The open file and dataset of a sink, and what `finish` does with them.
#[derive(Debug)]
struct Handles {
    file: hdf5::File,
    ds: Dataset,
    swap: Swap,
    /// Chunks and bytes written since the last flush.
    unflushed: (u64, u64),
    /// The file's `flock`s (see [`lifecycle`]), released after it is closed.
    locks: Vec<crate::lock::OutputLock>,
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
        let Opened {
            locks,
            file: f,
            ds,
            was_complete,
            swap,
            on_disk,
        } = hdf5::sync::sync(|| {
            lifecycle::open_for_write(file, &path, name, spec, &pipeline, level)
        })?;
        let handles = Handles {
            file: f,
            ds,
            swap,
            unflushed: (0, 0),
            locks,
        };
        // From here a failure drops `handles`, undoing any temporary.
        let handles = AbandonOnDrop(Some(handles));
        let file = on_disk.as_path();
        let os_err = |e: std::io::Error| {
            crate::contiguous::io_err(name, &format!("opening {}", file.display()), e)
        };
        let reader = File::open(file).map_err(os_err)?;
        let contiguous = if is_contiguous(spec) {
            let base = handles
                .0
                .as_ref()
                .and_then(|h| hdf5::sync::sync(|| h.ds.offset()));
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
            chunk: lifecycle::stored_chunk(spec)
                .iter()
                .map(|&c| c as usize)
                .collect(),
            pipeline,
            level,
            handles: Mutex::new(handles.take()),
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
        let h = guard.as_ref()?;
        Some(hdf5::sync::sync(|| f(&h.ds)))
    }

    /// Write one encoded chunk at `offset` (element coordinates), and flush
    /// the file every [`FLUSH_CHUNKS`] chunks or [`FLUSH_BYTES`] bytes.
    fn write_encoded(&self, idx: &[u64], offset: &[u64], encoded: &[u8]) -> Result<()> {
        let mut guard = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = guard.as_mut() else {
            return Err(self.err(idx, "the sink was already finished"));
        };
        hdf5::sync::sync(|| {
            // SAFETY: under the HDF5 lock; `offset` has one entry per dataset
            // dimension and `encoded` is a live buffer of the given length.
            let rc = unsafe {
                hdf5_sys::h5d::H5Dwrite_chunk(
                    h.ds.id(),
                    hdf5_sys::h5p::H5P_DEFAULT,
                    0,
                    offset.as_ptr(),
                    encoded.len(),
                    encoded.as_ptr().cast(),
                )
            };
            hdf5::h5check(rc).map_err(|e| {
                self.err(
                    idx,
                    format!(
                        "HDF5 could not write the chunk: {}",
                        lifecycle::h5_detail(&e)
                    ),
                )
            })?;
            h.unflushed.0 += 1;
            h.unflushed.1 += encoded.len() as u64;
            if h.unflushed.0 >= FLUSH_CHUNKS || h.unflushed.1 >= FLUSH_BYTES {
                h.file.flush().map_err(|e| {
                    self.err(
                        idx,
                        format!(
                            "cannot flush the HDF5 file after it: {}",
                            lifecycle::h5_detail(&e)
                        ),
                    )
                })?;
                h.unflushed = (0, 0);
            }
            Ok(())
        })
    }
}

/// Handles being set up: abandoned (temporaries undone) if setup fails.
struct AbandonOnDrop(Option<Handles>);

impl AbandonOnDrop {
    fn take(mut self) -> Option<Handles> {
        self.0.take()
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            hdf5::sync::sync(|| lifecycle::abandon(h.file, h.ds, h.swap));
            drop(h.locks);
        }
    }
}

impl Drop for Hdf5Sink {
    /// An unfinished sink: a dataset written in place stays marked
    /// incomplete (flushed, so what was written is kept for a resume); a
    /// temporary dataset or file is removed, leaving the old one.
    fn drop(&mut self) {
        let h = self
            .handles
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = h {
            hdf5::sync::sync(|| {
                let _ = h.file.flush();
                lifecycle::abandon(h.file, h.ds, h.swap);
            });
            drop(h.locks);
        }
    }
}

/// The filter pipeline and deflate level for the spec, or why HDF5 cannot store it.
/// A sink's own bytes per chunk: the native-byte copy (plus padding), and
/// for a filter pipeline the shuffled and compressed buffers.
fn bytes_per_chunk(chunk_bytes: u64, contiguous: bool, pipeline: &[Step]) -> u64 {
    let copies = if contiguous {
        1
    } else if pipeline.is_empty() {
        2
    } else {
        4
    };
    chunk_bytes.saturating_mul(copies)
}

/// The write grid and the sink's own bytes per chunk that [`super::create_sink`]
/// would give `spec`, known before anything is opened.
pub(crate) fn needs(name: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    let (pipeline, _) = check_spec(name, spec)?;
    let chunk_bytes = lifecycle::stored_chunk(spec)
        .iter()
        .fold(spec.dtype.size() as u64, |acc, &c| acc.saturating_mul(c));
    Ok((
        ChunkGrid::regular(&spec.shape, &spec.chunks),
        bytes_per_chunk(chunk_bytes, is_contiguous(spec), &pipeline),
    ))
}

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
        self.write_encoded(idx, &offset, &encoded)
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
        let Some(Some(Some(ChunkLoc { addr, size, mask }))) =
            self.with_ds(|ds| source::locate(ds, &offset))
        else {
            return false;
        };
        let Ok(stored) = usize::try_from(size) else {
            return false;
        };
        // A chunk outside the file is not written (and its declared size
        // must not decide an allocation).
        let inside = self
            .reader
            .metadata()
            .is_ok_and(|m| addr.checked_add(size).is_some_and(|end| end <= m.len()));
        if !inside {
            return false;
        }
        codec::with_scratch(|cur, tmp| {
            cur.resize(stored, 0);
            self.reader.read_exact_at(cur, addr).is_ok()
                && codec::decode(cur, tmp, &self.pipeline, mask, self.chunk_bytes()).is_ok()
        })
    }

    fn memory_per_chunk(&self) -> u64 {
        bytes_per_chunk(
            self.chunk_bytes() as u64,
            self.contiguous.is_some(),
            &self.pipeline,
        )
    }

    fn finish(&self) -> Result<()> {
        let mut guard = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = guard.as_ref() else {
            return Ok(());
        };
        // Complete: clear the mark and flush (on error the handles stay, and
        // dropping the sink undoes any temporary).
        hdf5::sync::sync(|| {
            if h.ds.attr(INCOMPLETE_ATTR).is_ok() {
                h.ds.delete_attr(INCOMPLETE_ATTR).map_err(|e| {
                    Error::sink(
                        &self.name,
                        "finish",
                        format!("cannot clear the incomplete mark: {e}"),
                    )
                })?;
            }
            lifecycle::flush(&h.file, &self.name, "finish")
        })?;
        if self.sync {
            // Any descriptor of the file flushes all of its data.
            self.reader
                .sync_all()
                .map_err(|e| Error::sink(&self.name, "finish", format!("cannot sync: {e}")))?;
        }
        let Some(h) = guard.take() else {
            return Ok(());
        };
        let target = match &h.swap {
            Swap::File { target, .. } => Some(target.clone()),
            _ => None,
        };
        let placed = hdf5::sync::sync(|| lifecycle::put_in_place(h.file, h.ds, h.swap, &self.name));
        drop(h.locks);
        placed?;
        if let (true, Some(target)) = (self.sync, target) {
            crate::swap::sync_parent(&target)
                .map_err(|e| Error::sink(&self.name, "finish", format!("cannot sync: {e}")))?;
        }
        Ok(())
    }
}
