//! How an HDF5 sink gets its dataset, and how `finish` puts it in place.
//!
//! Locking: a sink holds an exclusive `flock` on its file (and on a new
//! file's temporary) from creation to `finish` or drop, taken before the
//! file is opened ([`crate::lock`]). That is the lock libhdf5 itself takes
//! on files it opens for writing, so h5py (or any HDF5 program) writing
//! the file makes the sink fail with "in use by another process" and
//! nothing changed, and h5py cannot open a file the sink is writing. The
//! sink opens the file with libhdf5's own locking off (where this HDF5 can
//! say so): readers in this process open files that way too, and libhdf5
//! refuses to share one open file between opens whose locking differs.
//!
//! The cases, by what exists at the path:
//! - **no file**: a new file is created under a temporary name beside the
//!   path, the dataset is created in it and marked incomplete, the file is
//!   flushed, and only then linked to its name (`link`, which fails if the
//!   name appeared meanwhile). The name therefore always holds a whole,
//!   readable HDF5 file, even if the process is killed at once.
//! - **a file that is not HDF5** (a netCDF-3 `.nc`, anything else):
//!   refused in every mode; ndstream never truncates or recreates an
//!   existing file.
//! - **an HDF5 file**: the dataset is created (`Create`, or `Resume` of
//!   one that does not exist), reopened (`Resume`), or replaced
//!   (`Overwrite`) inside it, and nothing else in the file is touched.
//!   `Overwrite` writes the new data into a temporary dataset beside the
//!   old one (`<group>/.<name>.ndstream-new`), and `finish` unlinks the old
//!   dataset and moves the new one into its name (`H5Ldelete`, `H5Lmove`):
//!   until then the old dataset is whole and readable. When the file holds
//!   nothing but the dataset (and the groups above it, with no
//!   attributes), `Overwrite` instead writes a whole new file beside it and
//!   renames it over the old one at `finish` (which also gives back the old
//!   dataset's space: HDF5 never reclaims it inside a file).
//!
//! Every writable open first tidies what a killed writer left in the
//! file: a temporary dataset that was finished (killed between the unlink
//! and the move) is moved into its name if that name is free, any other is
//! deleted. Temporary files a killed writer left beside the path are
//! removed by the next writer of the file ([`crate::swap::clean_stale`]).
//!
//! Format: datasets are created with the HDF5 1.10 object format (the
//! library's version bounds are raised on the open file; the superblock is
//! left as it is). Its chunk index for fixed-size datasets, the *fixed
//! array*, has one entry per chunk in fixed places: an entry is written
//! after the chunk's data, and entries never move, so whatever subset of
//! the index a killed process got to disk is valid (the old format's
//! B-tree, whose nodes split, was seen torn after `SIGKILL`, failing every
//! later lookup). Such datasets need HDF5 >= 1.10 to read (h5py >= 2.7).

use std::path::{Path, PathBuf};

use hdf5::dataset::{AllocTime, FillTime};
use hdf5::filters::Filter;
use hdf5::{Dataset, Extent, SimpleExtents};
use ndstream_engine::{with_dtype, Error, Result};

use super::codec::Step;
use super::{attrs, h5_open_err, map_dtype, Meta, INCOMPLETE_ATTR};
use crate::lifecycle::{decide, Action, Existing, Found};
use crate::lock::{LockKind, OutputLock};
use crate::spec::SinkSpec;

/// How `finish` puts the written dataset in place.
#[derive(Debug)]
pub(super) enum Swap {
    /// Written where it will stay.
    InPlace,
    /// Written as the temporary dataset `temp`, to replace `target` (both
    /// absolute paths inside the file).
    Dataset { temp: String, target: String },
    /// Written into the new file `temp`, to be renamed over `target`
    /// (whose lock the sink holds until then; libhdf5 never opens it for
    /// writing, so not a byte of it changes before the rename).
    File { temp: PathBuf, target: PathBuf },
}

/// A dataset ready to be written.
#[derive(Debug)]
pub(super) struct Opened {
    /// The `flock`s held: the file's, and a new file's temporary's.
    pub locks: Vec<OutputLock>,
    pub file: hdf5::File,
    pub ds: Dataset,
    /// A resumed dataset that had been finished before.
    pub was_complete: bool,
    pub swap: Swap,
    /// The file on disk that holds the dataset (the path, or a temporary).
    pub on_disk: PathBuf,
}

/// The name of the temporary dataset that replaces `path` (`/g/.x.ndstream-new`).
pub(super) fn temp_dataset(path: &str) -> String {
    let (parent, base) = path.rsplit_once('/').unwrap_or(("", path));
    format!("{parent}/.{base}.ndstream-new")
}

/// True if `file` starts with the HDF5 signature (at byte 0 or after a
/// user block of 512, 1024, 2048, ... bytes).
fn is_hdf5(file: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut at = 0u64;
    while at + 8 <= len {
        let mut b = [0u8; 8];
        if f.read_exact_at(&mut b, at).is_ok() && &b == SIGNATURE {
            return true;
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    false
}

/// Refuse what stands at `file` for a write of `spec` before anything is
/// opened: a directory, or a file that is not HDF5 (every mode refuses
/// it). Nothing there, or an HDF5 file, passes: what is in it is decided
/// under the file's lock by [`open_for_write`].
pub(super) fn check_existing(file: &Path, name: &str, spec: &SinkSpec) -> Result<()> {
    if std::fs::symlink_metadata(file).is_err() {
        return Ok(());
    }
    if file.is_dir() {
        return Err(Error::open(
            name,
            format!("{} is a directory, not an HDF5 file", file.display()),
        ));
    }
    if !is_hdf5(file) {
        decide(
            name,
            spec.mode,
            Existing::Foreign("is not an HDF5 file"),
            "dataset",
        )?;
    }
    Ok(())
}

/// The error for a failed writable open: "in use" when the lock is taken,
/// [`Error::Sink`] when the system refused (a full disk, a read-only file
/// system: the HDF5 error stack then carries an `errno`), else
/// [`Error::Open`].
fn open_failed(name: &str, file: &Path, what: &str, e: hdf5::Error) -> Error {
    let detail = h5_detail(&e);
    if detail.contains("unable to lock file") {
        crate::lock::in_use(name, file)
    } else if detail.contains("errno") {
        Error::Sink {
            sink_name: name.to_string(),
            what: "the output".into(),
            message: format!("{what} {}: {detail}", file.display()),
            cause: Some(Box::new(e)),
        }
    } else {
        h5_open_err(name, &format!("{what} {}", file.display()), e)
    }
}

/// An HDF5 error with the system's reason where the stack has one
/// (`errno = 28, error message = 'No space left on device'`).
pub(super) fn h5_detail(e: &hdf5::Error) -> String {
    let text = e.to_string();
    let why = e.stack().and_then(|s| {
        s.iter()
            .map(|f| f.desc().to_string())
            .find(|d| d.contains("errno"))
    });
    match why {
        Some(w) if !text.contains(&w) => format!("{text} ({w})"),
        _ => text,
    }
}

/// `H5Fopen` for writing, or `H5Fcreate` exclusively, without libhdf5's
/// own `flock` where this HDF5 can say so (the sink holds its own lock).
fn h5_open(file: &Path, create: bool) -> hdf5::Result<hdf5::File> {
    // With libhdf5's locking on, a descriptor a forked child still holds
    // can make the file look locked for a moment (see `retry_locked`).
    super::retry_locked(|| {
        #[cfg(ndstream_hdf5_file_locking)]
        let options = {
            let mut o = hdf5::File::with_options();
            o.with_fapl(|p| p.file_locking(false));
            o
        };
        #[cfg(not(ndstream_hdf5_file_locking))]
        let options = hdf5::File::with_options();
        if create {
            options.create_excl(file)
        } else {
            options.open_rw(file)
        }
    })
}

/// Lock `file` for the sink (see the module doc).
fn lock(file: &Path, name: &str) -> Result<OutputLock> {
    OutputLock::take(file, LockKind::Exclusive).map_err(|e| e.into_error(name))
}

/// Raise the library's version bounds on `f` to 1.10 for the objects
/// created from now on (see the module doc).
fn use_110_format(f: &hdf5::File, name: &str) -> Result<()> {
    // hdf5-sys does not bind it; HDF5 >= 1.10.2 has it (1.10.5 is needed anyway).
    extern "C" {
        fn H5Fset_libver_bounds(
            file_id: hdf5_sys::h5i::hid_t,
            low: hdf5_sys::h5f::H5F_libver_t,
            high: hdf5_sys::h5f::H5F_libver_t,
        ) -> hdf5_sys::h5::herr_t;
    }
    // SAFETY: under the HDF5 lock (the callers run inside `sync`); a valid
    // file id and two valid version bounds.
    let rc = unsafe {
        H5Fset_libver_bounds(
            f.id(),
            hdf5_sys::h5f::H5F_libver_t::H5F_LIBVER_V110,
            hdf5_sys::h5f::H5F_libver_t::H5F_LIBVER_V110,
        )
    };
    if rc < 0 {
        return Err(Error::open(
            name,
            "HDF5 cannot use the 1.10 object format for this file",
        ));
    }
    Ok(())
}

/// Move the file's end of allocation (EOA) up to its physical size, so
/// that nothing allocated from now on lands on bytes a killed writer put
/// there after its last flush. Such a writer's chunk index entries may have
/// reached the disk (libhdf5 evicts metadata when it likes) while the EOA
/// in the superblock (written at flushes) still lay below their chunks;
/// without this, a resumed write would allocate over chunks it trusts.
fn claim_whole_file(f: &hdf5::File, name: &str) -> Result<()> {
    // hdf5-sys does not bind it; HDF5 >= 1.10.2 has it.
    extern "C" {
        fn H5Fincrement_filesize(
            file_id: hdf5_sys::h5i::hid_t,
            increment: hdf5_sys::h5::hsize_t,
        ) -> hdf5_sys::h5::herr_t;
    }
    // SAFETY: under the HDF5 lock (the callers run inside `sync`); a valid
    // file id open for writing.
    let rc = unsafe { H5Fincrement_filesize(f.id(), 0) };
    if rc < 0 {
        return Err(Error::open(
            name,
            "HDF5 cannot extend the file's allocation to its size",
        ));
    }
    Ok(())
}

/// Flush `f`, as an [`Error::Sink`] (a write failure: exit status 1).
pub(super) fn flush(f: &hdf5::File, name: &str, what: &str) -> Result<()> {
    f.flush()
        .map_err(|e| Error::sink(name, what, format!("cannot flush the HDF5 file: {e}")))
}

/// Open or create the file and the dataset as `spec.mode` says (call under
/// the HDF5 lock). See the module doc.
pub(super) fn open_for_write(
    file: &Path,
    path: &str,
    name: &str,
    spec: &SinkSpec,
    pipeline: &[Step],
    level: u32,
) -> Result<Opened> {
    if std::fs::symlink_metadata(file).is_err() {
        return create_new_file(file, path, name, spec, level, !pipeline.is_empty());
    }
    check_existing(file, name, spec)?;
    let mut locks = vec![lock(file, name)?];
    // Under the file's lock: temporary files a killed writer left go.
    crate::swap::clean_stale(file);
    // Look first without writing (an open for writing marks the
    // superblock): most refusals are made here.
    let (action, only, leftover) = {
        let ro = super::open_read_only(file)
            .map_err(|e| open_failed(name, file, "cannot open as HDF5", e))?;
        super::cloexec(&ro);
        let action = decide_in(&ro, path, name, spec, pipeline)?;
        (
            action,
            action == Action::Replace && holds_only(&ro, path),
            ro.link_exists(&temp_dataset(path)),
        )
    };
    if action == Action::Replace && only && !leftover {
        let temp = crate::swap::temp_sibling(file);
        let new = h5_open(&temp, true).map_err(|e| open_failed(name, &temp, "cannot create", e))?;
        super::cloexec(&new);
        let made = lock(&temp, name)
            .map(|l| locks.push(l))
            .and_then(|()| use_110_format(&new, name))
            .and_then(|()| new_dataset(&new, path, name, spec, level, !pipeline.is_empty()))
            .and_then(|ds| flush(&new, name, "the new file").map(|()| ds));
        return match made {
            Ok(ds) => Ok(Opened {
                locks,
                file: new,
                ds,
                was_complete: false,
                swap: Swap::File {
                    temp: temp.clone(),
                    target: file.to_path_buf(),
                },
                on_disk: temp,
            }),
            Err(e) => {
                drop(new);
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        };
    }
    let f =
        h5_open(file, false).map_err(|e| open_failed(name, file, "cannot open for writing", e))?;
    super::cloexec(&f);
    claim_whole_file(&f, name)?;
    tidy(&f, path, name)?;
    let on_disk = file.to_path_buf();
    // Again after tidying, which may have moved a finished dataset into place.
    match decide_in(&f, path, name, spec, pipeline)? {
        Action::Resume => {
            let ds = super::checked_dataset(&f, path).map_err(|e| {
                h5_open_err(name, &format!("cannot resume: {path} is not a dataset"), e)
            })?;
            let was_complete = ds.attr(INCOMPLETE_ATTR).is_err();
            if was_complete {
                mark_incomplete(&ds, name)?;
            }
            attrs::write_attrs(&ds, &spec.attributes).map_err(|m| Error::open(name, m))?;
            flush(&f, name, "the resumed dataset")?;
            Ok(Opened {
                locks,
                file: f,
                ds,
                was_complete,
                swap: Swap::InPlace,
                on_disk,
            })
        }
        Action::Replace => {
            use_110_format(&f, name)?;
            let temp = temp_dataset(path);
            let ds = new_dataset(&f, &temp, name, spec, level, !pipeline.is_empty())?;
            flush(&f, name, "the new dataset")?;
            Ok(Opened {
                locks,
                file: f,
                ds,
                was_complete: false,
                swap: Swap::Dataset {
                    temp,
                    target: path.to_string(),
                },
                on_disk,
            })
        }
        Action::New => {
            use_110_format(&f, name)?;
            let ds = new_dataset(&f, path, name, spec, level, !pipeline.is_empty())?;
            flush(&f, name, "the new dataset")?;
            Ok(Opened {
                locks,
                file: f,
                ds,
                was_complete: false,
                swap: Swap::InPlace,
                on_disk,
            })
        }
        // `create_sink` refuses `Into` and `Shared` for HDF5 first.
        Action::Into => Err(Error::open(
            name,
            "writing into an existing array (keeping its metadata) is supported for Zarr arrays only",
        )),
    }
}

/// The write mode's action for the dataset `path` of the open file `f`
/// ([`decide`]): nothing there, a dataset (resumable if its layout is the
/// spec's, see [`layout_diff`]), or another object (a group).
fn decide_in(
    f: &hdf5::File,
    path: &str,
    name: &str,
    spec: &SinkSpec,
    pipeline: &[Step],
) -> Result<Action> {
    if !f.link_exists(path) {
        return decide(name, spec.mode, Existing::Nothing, "dataset");
    }
    let Ok(ds) = super::checked_dataset(f, path) else {
        return decide(name, spec.mode, Existing::Other, "dataset");
    };
    let found = Found {
        layout: Box::new(|| layout_diff(&ds, name, spec, pipeline)),
        grid: Box::new(|| layout_diff(&ds, name, spec, pipeline)),
        incomplete: ds.attr(INCOMPLETE_ATTR).is_ok(),
    };
    decide(name, spec.mode, Existing::Array(found), "dataset")
}

/// A new file: made under a temporary name, given its dataset, flushed,
/// then linked to `file` (see the module doc).
fn create_new_file(
    file: &Path,
    path: &str,
    name: &str,
    spec: &SinkSpec,
    level: u32,
    gzip: bool,
) -> Result<Opened> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| crate::contiguous::io_err(name, "creating the directory", e))?;
    }
    let temp = crate::swap::temp_sibling(file);
    let f = h5_open(&temp, true).map_err(|e| open_failed(name, &temp, "cannot create", e))?;
    super::cloexec(&f);
    let mut locks = Vec::new();
    let made = lock(&temp, name)
        .map(|l| locks.push(l))
        .and_then(|()| use_110_format(&f, name))
        .and_then(|()| new_dataset(&f, path, name, spec, level, gzip))
        .and_then(|ds| flush(&f, name, "the new file").map(|()| ds))
        .and_then(|ds| {
            publish(&temp, file)
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        crate::lock::in_use(name, file)
                    } else {
                        crate::contiguous::io_err(name, "naming the new file", e)
                    }
                })
                .map(|()| ds)
        });
    match made {
        Ok(ds) => {
            // The lock on the temporary now holds the file too.
            crate::swap::clean_stale(file);
            Ok(Opened {
                locks,
                file: f,
                ds,
                was_complete: false,
                swap: Swap::InPlace,
                on_disk: file.to_path_buf(),
            })
        }
        Err(e) => {
            drop(f);
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Give the finished temporary `temp` the name `file` unless that name
/// exists (`link` then `unlink`; where hard links are unsupported, a
/// rename after checking the name is free).
fn publish(temp: &Path, file: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(temp, file) {
        Ok(()) => std::fs::remove_file(temp),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if std::fs::symlink_metadata(file).is_err() => std::fs::rename(temp, file),
        Err(e) => Err(e),
    }
}

/// Remove what a killed writer left inside the open file for `path`: its
/// temporary dataset, moved into `path` instead if it was finished and
/// `path` is free (the kill fell between unlinking the old and moving).
fn tidy(f: &hdf5::File, path: &str, name: &str) -> Result<()> {
    let temp = temp_dataset(path);
    if !f.link_exists(&temp) {
        return Ok(());
    }
    let finished =
        super::checked_dataset(f, &temp).is_ok_and(|ds| ds.attr(INCOMPLETE_ATTR).is_err());
    if finished && !f.link_exists(path) {
        f.relink(&temp, path)
            .map_err(|e| h5_open_err(name, &format!("cannot move {temp} to {path}"), e))?;
    } else {
        f.unlink(&temp)
            .map_err(|e| h5_open_err(name, &format!("cannot delete the leftover {temp}"), e))?;
    }
    flush(f, name, "the tidied file")
}

/// True if the file holds nothing but the dataset `path` and the groups
/// above it, none of them with attributes: replacing the whole file then
/// loses nothing.
fn holds_only(f: &hdf5::File, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut group: hdf5::Group = match f.group("/") {
        Ok(g) => g,
        Err(_) => return false,
    };
    for (i, part) in parts.iter().enumerate() {
        let no_attrs = super::header::object_ok(&group).is_ok()
            && group.attr_names().is_ok_and(|a| a.is_empty());
        let only = group.member_names().is_ok_and(|m| m == [part.to_string()]);
        if !no_attrs || !only {
            return false;
        }
        if i + 1 == parts.len() {
            return super::checked_dataset(&group, part).is_ok();
        }
        group = match group.group(part) {
            Ok(g) => g,
            Err(_) => return false,
        };
    }
    false
}

/// Create the dataset at `path`, mark it incomplete and write the user attributes.
fn new_dataset(
    f: &hdf5::File,
    path: &str,
    name: &str,
    spec: &SinkSpec,
    level: u32,
    gzip: bool,
) -> Result<Dataset> {
    let ds = create_dataset(f, path, name, spec, level, gzip)?;
    mark_incomplete(&ds, name)?;
    attrs::write_attrs(&ds, &spec.attributes).map_err(|m| Error::open(name, m))?;
    Ok(ds)
}

pub(super) fn mark_incomplete(ds: &Dataset, name: &str) -> Result<()> {
    ds.new_attr::<u8>()
        .create(INCOMPLETE_ATTR)
        .and_then(|a| a.write_scalar(&1u8))
        .map_err(|e| h5_open_err(name, "cannot mark the dataset incomplete", e))
}

/// The chunk shape HDF5 stores: `spec.chunks`, cut to the shape on axes
/// the chunk overhangs (one chunk covers such an axis either way), so
/// every axis stays fixed-size and the dataset gets the fixed-array index.
pub(super) fn stored_chunk(spec: &SinkSpec) -> Vec<u64> {
    spec.chunks
        .iter()
        .zip(&spec.shape)
        .map(|(&c, &n)| if n > 0 { c.min(n) } else { c })
        .collect()
}

/// True if the dataset is stored contiguous (asked for, or 0-d: HDF5 cannot chunk those).
pub(super) fn is_contiguous(spec: &SinkSpec) -> bool {
    spec.contiguous || spec.shape.is_empty()
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
    let chunk = stored_chunk(spec);
    // HDF5 refuses chunks longer than a fixed dimension, which only an
    // empty axis still has: make such axes extendible.
    let extents = SimpleExtents::from_vec(
        spec.shape
            .iter()
            .zip(&chunk)
            .map(|(&n, &c)| {
                if c > n {
                    Extent::resizable(n as usize)
                } else {
                    Extent::fixed(n as usize)
                }
            })
            .collect(),
    );
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
    let chunk: Vec<usize> = chunk.iter().map(|&c| c as usize).collect();
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

/// A dataset can be resumed if its shape, dtype, chunks and filters are
/// the spec's; if not, how they differ.
fn layout_diff(
    ds: &Dataset,
    name: &str,
    spec: &SinkSpec,
    pipeline: &[Step],
) -> std::result::Result<(), String> {
    let meta = Meta::read(ds, name).map_err(|e| e.to_string())?;
    let dt = ds
        .dtype()
        .map_err(|e| format!("cannot read the type of {}: {e}", ds.name()))?;
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
    } else if meta.chunk.as_deref() != Some(stored_chunk(spec).as_slice()) {
        why.push(format!("chunks {:?} (spec {:?})", meta.chunk, spec.chunks));
    }
    if !meta.plain {
        why.push(format!(
            "type {} whose stored bits are not its own (a set precision or offset, or a non-IEEE float)",
            meta.dtype
        ));
    } else if meta.pipeline().as_deref() != Some(pipeline) {
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
        Err(format!("{} has {}", ds.name(), why.join(", ")))
    }
}

/// Put a finished dataset in place (see [`Swap`]); `ds` is already
/// unmarked and the file flushed. Consumes the handles.
pub(super) fn put_in_place(f: hdf5::File, ds: Dataset, swap: Swap, name: &str) -> Result<()> {
    let fin = |what: &str, e: hdf5::Error| Error::sink(name, "finish", format!("{what}: {e}"));
    match swap {
        Swap::InPlace => {
            drop(ds);
            f.close().map_err(|e| fin("cannot close", e))
        }
        Swap::Dataset { temp, target } => {
            drop(ds);
            f.unlink(&target)
                .map_err(|e| fin(&format!("cannot delete the old {target}"), e))?;
            f.relink(&temp, &target)
                .map_err(|e| fin(&format!("cannot move {temp} to {target}"), e))?;
            flush(&f, name, "finish")?;
            f.close().map_err(|e| fin("cannot close", e))
        }
        Swap::File { temp, target } => {
            drop(ds);
            f.close().map_err(|e| fin("cannot close", e))?;
            std::fs::rename(&temp, &target).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                crate::contiguous::io_err(name, "the rename of the new file over the old", e)
            })
        }
    }
}

/// Undo an unfinished write's temporary (the sink is dropped before
/// `finish`): a temporary dataset is deleted, a temporary file removed; a
/// dataset written in place stays, marked incomplete.
pub(super) fn abandon(f: hdf5::File, ds: Dataset, swap: Swap) {
    drop(ds);
    match swap {
        Swap::InPlace => drop(f),
        Swap::Dataset { temp, .. } => {
            let _ = f.unlink(&temp);
            let _ = f.flush();
            drop(f);
        }
        Swap::File { temp, .. } => {
            drop(f);
            let _ = std::fs::remove_file(&temp);
        }
    }
}
