//! [`ContiguousSink`]: positioned writes into a pre-sized file, behind an
//! incomplete marker, with the create/overwrite/resume lifecycle of the
//! module docs.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndstream_engine::{Block, ChunkGrid, ChunkSink, DType, Error, Result};

use super::gather::swap_bytes;
use super::{marker_path, Layout};
use crate::lifecycle::{decide, Action, Existing, Found};
use crate::lock::{LockKind, OutputLock};
use crate::spec::{SinkSpec, WriteMode};

/// A pre-sized contiguous file (C order) written chunk by chunk.
#[derive(Debug)]
pub(crate) struct ContiguousSink {
    name: String,
    layout: Layout,
    grid: ChunkGrid,
    /// The file being written, locked: the output itself, or under
    /// `Overwrite` its temporary.
    file: OutputLock,
    /// The output's lock while a temporary replaces it (`Overwrite`);
    /// released by `finish`.
    target: Mutex<Option<OutputLock>>,
    /// `Overwrite`: the temporary and the output it replaces at `finish`.
    swap: Mutex<Option<(PathBuf, PathBuf)>>,
    marker: PathBuf,
    /// fsync before the marker goes (see [`SinkSpec::sync`]).
    sync: bool,
}

/// An [`Error::Sink`] for an I/O failure of the output outside any chunk
/// (creating it, the header, the final rename): a runtime failure, not bad input.
pub(crate) fn io_err(name: &str, what: &str, e: std::io::Error) -> Error {
    Error::Sink {
        sink_name: name.to_string(),
        what: what.to_string(),
        message: e.to_string(),
        cause: Some(Box::new(e)),
    }
}

/// Check a spec's chunking against its shape and build the grid.
pub(crate) fn spec_grid(name: &str, spec: &SinkSpec) -> Result<ChunkGrid> {
    if spec.chunks.len() != spec.shape.len() {
        return Err(Error::open(
            name,
            format!(
                "chunks {:?} do not match the rank of shape {:?}",
                spec.chunks, spec.shape
            ),
        ));
    }
    if spec.chunks.contains(&0) {
        return Err(Error::open(
            name,
            format!("chunks {:?} must be at least 1 on every axis", spec.chunks),
        ));
    }
    Ok(ChunkGrid::regular(&spec.shape, &spec.chunks))
}

impl ContiguousSink {
    /// Create (or per `mode` replace or resume) `file` with `header` before the
    /// elements. `matches` checks an existing file on resume.
    ///
    /// An existing file is locked first (a writer holding it makes this an
    /// "in use" error). `Create` refuses it; `Resume` writes into it in
    /// place, behind the incomplete marker; `Overwrite` writes a locked
    /// temporary beside it and renames that over it at `finish`, so the
    /// old file stays whole and readable until then. A new file is written
    /// after its marker: created as a locked temporary beside `file`, its
    /// header written and its size set, then given its name only if the
    /// name is still free (`RENAME_NOREPLACE`), so `file` never names a
    /// file without its header or its size.
    pub fn create(
        name: &str,
        file: &Path,
        layout: Layout,
        header: &[u8],
        spec: &SinkSpec,
        matches: impl Fn(&Path) -> std::result::Result<(), String>,
    ) -> Result<ContiguousSink> {
        debug_assert!(!layout.fortran);
        let grid = spec_grid(name, spec)?;
        let total = layout
            .nbytes()
            .and_then(|n| n.checked_add(layout.offset))
            .ok_or_else(|| Error::open(name, format!("shape {:?} is too large", layout.shape)))?;
        let marker = marker_path(file);
        if file.is_dir() {
            return Err(Error::open(name, "is a directory"));
        }
        let exists = std::fs::symlink_metadata(file).is_ok();
        // Lock an existing file before deciding anything (opened for writing
        // when it is to be resumed, since that descriptor then writes).
        let target = if exists {
            let lock = if spec.mode == WriteMode::Resume {
                OutputLock::take_writable(file, LockKind::Exclusive)
            } else {
                OutputLock::take(file, LockKind::Exclusive)
            };
            Some(lock.map_err(|e| e.into_error(name))?)
        } else {
            None
        };
        if target.is_some() {
            // Under the output's lock: what a killed writer left goes.
            crate::swap::clean_stale(file);
        }
        if matches!(spec.mode, WriteMode::Into | WriteMode::Shared) {
            // `create_sink` refuses it first; kept for callers of this sink.
            return Err(Error::open(
                name,
                "writing into an existing array (keeping its metadata) is supported for Zarr arrays only",
            ));
        }
        let existing = match target {
            Some(_) => Existing::Array(Found {
                layout: Box::new(|| matches(file)),
                grid: Box::new(|| matches(file)),
                incomplete: marker.exists(),
            }),
            None => Existing::Nothing,
        };
        let action = decide(name, spec.mode, existing, "file")?;
        let (f, target, swap, fresh) = match (target, action) {
            (Some(t), Action::Resume) => {
                write_marker(name, &marker)?;
                (t, None, None, false)
            }
            (Some(t), Action::Replace) => {
                let tmp = crate::swap::temp_sibling(file);
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(|e| io_err(name, "creating the temporary file", e))?;
                let lock = match OutputLock::on(f, &tmp, LockKind::Exclusive) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.into_error(name));
                    }
                };
                (lock, Some(t), Some((tmp, file.to_path_buf())), true)
            }
            (Some(_), Action::New | Action::Into)
            | (None, Action::Replace | Action::Resume | Action::Into) => {
                return Err(Error::open(
                    name,
                    "the write mode does not apply to what is here",
                ))
            }
            (None, Action::New) => {
                if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| io_err(name, "creating the directory", e))?;
                }
                write_marker(name, &marker)?;
                // Prepared under a temporary name (header written, file
                // sized) and only then given its name, which it takes only
                // if nobody has: a kill at any moment leaves either no file
                // or one that `Resume` takes up.
                let tmp = crate::swap::temp_sibling(file);
                let lock = prepare_new(name, &tmp, header, total).inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })?;
                if let Err(e) = crate::swap::place_file(&tmp, file) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                        crate::lock::in_use(name, file)
                    } else {
                        io_err(name, "naming the new file", e)
                    });
                }
                crate::swap::clean_stale(file);
                (lock, None, None, false)
            }
        };
        let sink = ContiguousSink {
            name: name.to_string(),
            layout,
            grid,
            file: f,
            target: Mutex::new(target),
            swap: Mutex::new(swap),
            marker,
            sync: spec.sync,
        };
        if fresh {
            // On error the sink drops, and with it any temporary.
            sink.file
                .file()
                .write_all_at(header, 0)
                .map_err(|e| io_err(name, "writing the header", e))?;
            sink.file
                .file()
                .set_len(total)
                .map_err(|e| io_err(name, "sizing the file", e))?;
        }
        Ok(sink)
    }
}

/// Create the file `tmp` exclusively, lock it, write `header` and size it
/// to `total` bytes.
fn prepare_new(name: &str, tmp: &Path, header: &[u8], total: u64) -> Result<OutputLock> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| io_err(name, "creating the file", e))?;
    let lock = OutputLock::on(f, tmp, LockKind::Exclusive).map_err(|e| e.into_error(name))?;
    lock.file()
        .write_all_at(header, 0)
        .map_err(|e| io_err(name, "writing the header", e))?;
    lock.file()
        .set_len(total)
        .map_err(|e| io_err(name, "sizing the file", e))?;
    Ok(lock)
}

/// Write the sidecar marking `file` as being written.
/// (A link at its name is replaced, never written through.)
fn write_marker(name: &str, marker: &Path) -> Result<()> {
    crate::swap::write_fresh(
        marker,
        b"being written by ndstream; removed when the write finishes\n",
    )
    .map_err(|e| io_err(name, "writing the incomplete marker", e))
}

impl Drop for ContiguousSink {
    /// A sink dropped before `finish` removes its temporary: the output it
    /// was to replace stays as it was.
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.swap.get_mut().ok().and_then(Option::take) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl ChunkSink for ContiguousSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn shape(&self) -> &[u64] {
        &self.layout.shape
    }
    fn dtype(&self) -> DType {
        self.layout.dtype
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn write_chunk(&self, idx: &[u64], data: &Block) -> Result<()> {
        let what = format!("chunk {}", ndstream_engine::ChunkIndex(idx.to_vec()));
        if let Err(m) = self.grid.check_chunk(idx) {
            return Err(Error::sink(&self.name, what, m));
        }
        let region = self.grid.chunk_region(idx);
        let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        if data.dtype() != self.layout.dtype || data.shape() != want.as_slice() {
            return Err(Error::sink(
                &self.name,
                what,
                format!(
                    "got a {} block of shape {:?}, expected {} {:?}",
                    data.dtype(),
                    data.shape(),
                    self.layout.dtype,
                    want
                ),
            ));
        }
        let item = self.layout.dtype.size();
        let mut bytes = data.to_ne_bytes();
        if self.layout.needs_swap() {
            swap_bytes(&mut bytes, item);
        }
        let shape = &self.layout.shape;
        let nd = shape.len();
        // Axes after `k` are covered whole, so each run spans axis k and all after it.
        let k = (0..nd)
            .rev()
            .find(|&j| region[j].start != 0 || region[j].end != shape[j])
            .unwrap_or(0);
        let strides: Vec<u64> = (0..nd)
            .map(|d| shape[d + 1..].iter().product::<u64>())
            .collect();
        let run_elems: u64 = if nd == 0 {
            1
        } else {
            want[k] as u64 * strides[k]
        };
        let run = run_elems as usize * item;
        let n_runs: usize = want[..k.min(nd)].iter().product();
        let mut ix = vec![0u64; k];
        let io = |e: std::io::Error| Error::Sink {
            sink_name: self.name.clone(),
            what: format!("chunk {}", ndstream_engine::ChunkIndex(idx.to_vec())),
            message: format!("write failed: {e}"),
            cause: Some(Box::new(e)),
        };
        for r in 0..n_runs {
            let mut elem = if nd == 0 {
                0
            } else {
                region[k].start * strides[k]
            };
            for d in 0..k {
                elem += (region[d].start + ix[d]) * strides[d];
            }
            let off = self.layout.offset + elem * item as u64;
            self.file
                .file()
                .write_all_at(&bytes[r * run..(r + 1) * run], off)
                .map_err(io)?;
            for d in (0..k).rev() {
                ix[d] += 1;
                if ix[d] < want[d] as u64 {
                    break;
                }
                ix[d] = 0;
            }
        }
        Ok(())
    }
    fn memory_per_chunk(&self) -> u64 {
        self.grid.max_chunk_elems() * self.layout.dtype.size() as u64
    }
    fn finish(&self) -> Result<()> {
        let mut swap = self.swap.lock().unwrap_or_else(|p| p.into_inner());
        if self.sync {
            self.file
                .file()
                .sync_data()
                .map_err(|e| io_err(&self.name, "the final sync", e))?;
        }
        if let Some((tmp, target)) = swap.take() {
            if let Err(e) = crate::swap::replace_file(&tmp, &target) {
                let what = format!("the rename of {} over it", tmp.display());
                // Dropping the sink then removes the temporary.
                *swap = Some((tmp, target));
                return Err(io_err(&self.name, &what, e));
            }
        }
        // After a swap the marker is the old file's, if it was incomplete.
        match std::fs::remove_file(&self.marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io_err(
                    &self.name,
                    &format!("the incomplete marker {}", self.marker.display()),
                    e,
                ))
            }
        }
        if self.sync {
            // The file's name (a new file's placement or the swap's rename)
            // and the marker's removal, both entries of one directory.
            crate::swap::sync_parent(&self.marker)
                .map_err(|e| io_err(&self.name, "the final sync", e))?;
        }
        // Complete: the next writer may have it.
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = self.file.file().unlock();
        Ok(())
    }
}
