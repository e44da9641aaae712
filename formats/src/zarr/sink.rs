//! [`ZarrSink`]: a new Zarr v2/v3 array written chunk by chunk through zarrs.
//!
//! Protocol:
//! 1. `create` locks before it looks (see [`crate::lock`]): a shared `flock`
//!    on the store root and each group down to the array, an exclusive one
//!    on the array's directory (made if missing). A second writer of the
//!    array, or of a group or store holding it, fails with "in use by
//!    another process" and changes nothing. No component between the root
//!    and the array may be a symbolic link.
//! 2. It then settles the write mode: `Create` refuses an existing array
//!    (untouched); `Resume` reopens an existing array whose metadata
//!    matches the spec (shape, dtype, chunks, shards, codecs, version) and
//!    otherwise refuses, and refuses a store with a symbolic link anywhere
//!    inside the array (a resumed write must not follow it out of the
//!    store), removing the chunk temporaries a killed writer left;
//!    `Into` writes every chunk into an existing array whose shape,
//!    dtype and chunk (and shard) shape are the spec's, through that
//!    array's own codecs, keeping its metadata and attributes (Dask's
//!    `store` into a zarr array); it is marked incomplete meanwhile, as a
//!    resume is, and refuses links inside the array the same way;
//!    `Overwrite` (only of a Zarr node or an empty directory, never an
//!    unrelated directory) writes the new array into a locked sibling
//!    directory (`.<name>.ndstream-new-<pid>-<n>`) and leaves the old one
//!    alone until `finish` swaps it in ([`crate::swap::replace_dir`]: one
//!    atomic `renameat2(RENAME_EXCHANGE)` on Linux, then the old tree is
//!    removed). Readers see the old array or the new one, never a mixture
//!    (see [`super::store`] for readers that span the swap). Inside a group
//!    (`grp.zarr/x`) only the array's directory is swapped. A sink dropped
//!    before `finish` removes its temporary; a killed one leaves it for the
//!    next writer of the array to remove.
//! 3. The marker file `.ndstream-incomplete` is written into the directory
//!    being written *before* the metadata, so no array ever looks complete
//!    before `finish` removes the marker.
//! 4. Each `write_chunk` pads an edge chunk to the full chunk shape with the
//!    fill value (zarrs requires it), encodes on the calling thread (codec
//!    concurrency 1) and stores it through [`AtomicFsStore`] (a temporary
//!    file renamed over the key). Every chunk is stored, even one equal to
//!    the fill value, so "a regular file that exists and decodes" means
//!    "written" on resume, however the previous run ended (an error such
//!    as a full disk, or `SIGKILL` at any moment). Errors name the chunk and
//!    the store; failures outside chunks are [`Error::Sink`] too.
//! 5. Sharded arrays (`spec.shards`): the sink's grid is the shard grid; the
//!    executor delivers a whole shard, which zarrs splits into inner chunks
//!    and encodes as one file. `memory_per_chunk` reports the padded copy
//!    plus the encoded output.
//!
//! In object storage ([`ZarrSink::create_in_store`], feature
//! `object-store`) the same protocol runs on keys: the marker is a key
//! written before the metadata and erased by `finish`, each chunk (or
//! shard) is one PUT (whole or absent, as object stores promise), and
//! `Resume` trusts a chunk that is present and decodes. There are no locks
//! and no rename, so `Create` refuses any key already under the array's
//! prefix and claims the prefix by a conditional PUT of its marker (put
//! only where no marker is, [`StoreState::claim`]): of two writers that
//! both found the prefix empty, the second is refused before it writes
//! anything. `Into` writes every chunk into an array that stands (marked
//! incomplete meanwhile, as a resume is), and `Shared` (a plan's tasks)
//! into the incomplete array the plan created, leaving the marker for the
//! plan's last stage; with no lock, nothing keeps another process from
//! writing the same array meanwhile, as for `Resume`.
//! `Overwrite` replaces a Zarr node (or what an interrupted write of ours
//! left: a prefix holding our marker) in place, never other objects: it
//! puts the marker, erases every metadata document under the prefix, then
//! every other key, then writes the new array as `Create` does. At no
//! moment is there a partly removed array without its marker; but a
//! reader that opened the old array before may read a mixture, since
//! there is no swap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ndarray::{ArrayD, CowArray, IxDyn, SliceInfoElem};
use ndstream_engine::{
    Block, BlockElement, ChunkGrid, ChunkIndex, ChunkSink, DType, Error, Result,
};
use zarrs::array::{Array, ArrayBytes, CodecOptions, Element};
use zarrs::storage::{ReadableWritableStorageTraits, StoreKey};

use super::meta::{self, ArrayMeta, Node};
use super::store::AtomicFsStore;
use super::{codec_options, INCOMPLETE_MARKER};
use crate::lifecycle::{decide, into_nothing, Action, Existing, Found};
use crate::lock::{LockKind, OutputLock};
use crate::spec::{Codec, SinkSpec, WriteMode};

/// A Zarr array being written.
pub(crate) struct ZarrSink {
    name: String,
    /// The directory written (or the array's URL), for messages.
    dir: PathBuf,
    array: Array<dyn ReadableWritableStorageTraits>,
    /// In object storage: the store and the incomplete marker's key, which
    /// `finish` erases (no file system protocol applies there).
    remote_marker: Option<(std::sync::Arc<dyn ReadableWritableStorageTraits>, StoreKey)>,
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
    /// `Into` or `Shared` (without `keep_written`), or a new array in
    /// object storage: every chunk is written, none counts as done (and
    /// none is looked for).
    into: bool,
    /// `Shared`: one of a plan's tasks; `finish` leaves the array
    /// incomplete (the plan's last stage completes it).
    shared: bool,
    /// `Overwrite`: the temporary being written and the array it replaces.
    swap: SwapGuard,
    /// Shared locks on the store root and the groups above the array, and
    /// exclusive ones on the array (and its temporary); released by
    /// `finish` or on drop.
    locks: Mutex<Vec<OutputLock>>,
}

/// The temporary of an `Overwrite` and its target: swapped in by `finish`,
/// removed if the sink is dropped unfinished (the old array stays).
#[derive(Debug)]
struct SwapGuard(Mutex<Option<(PathBuf, PathBuf)>>);

impl Drop for SwapGuard {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.0.get_mut().ok().and_then(Option::take) {
            crate::swap::remove_any(&tmp);
        }
    }
}

/// An [`Error::Sink`] for an I/O failure outside any chunk (a runtime
/// failure: exit status 1 in the CLI).
fn io_err(name: &str, what: &str, e: std::io::Error) -> Error {
    crate::contiguous::io_err(name, what, e)
}

/// Write the incomplete marker into the array directory `dir`, replacing
/// whatever entry has the name (never writing through a link).
fn write_marker(name: &str, dir: &Path) -> Result<()> {
    crate::swap::write_fresh(
        &dir.join(INCOMPLETE_MARKER),
        b"being written by ndstream; removed when the write finishes\n",
    )
    .map_err(|e| io_err(name, "writing the incomplete marker", e))
}

/// Refuse a store whose groups between `root` and the array include a
/// symbolic link: writing through it would write outside the store.
pub(super) fn no_links_inside(name: &str, root: &Path, array: &str) -> Result<()> {
    let mut p = root.to_path_buf();
    for part in array.split('/').filter(|p| !p.is_empty()) {
        p.push(part);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if m.file_type().is_symlink() {
                return Err(Error::open(
                    name,
                    format!(
                        "{} is a symbolic link inside the store; refusing to write through it",
                        p.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Lock the store for writing the array `array`: shared locks on the root
/// and every group down to the array's parent, then one of `kind` on the
/// array's directory (which exists): exclusive for a writer, shared for
/// one of a plan's tasks. See [`crate::lock`].
pub(super) fn lock_array(
    name: &str,
    root: &Path,
    array: &str,
    kind: LockKind,
) -> Result<Vec<OutputLock>> {
    let parts: Vec<&str> = array.split('/').filter(|p| !p.is_empty()).collect();
    let mut locks = Vec::with_capacity(parts.len() + 1);
    let mut p = root.to_path_buf();
    for part in &parts {
        locks.push(OutputLock::take(&p, LockKind::Shared).map_err(|e| e.into_error(name))?);
        p.push(part);
    }
    locks.push(OutputLock::take(&p, kind).map_err(|e| e.into_error(name))?);
    Ok(locks)
}

/// Before resuming into `dir`: refuse any symbolic link inside the array
/// (a resumed write would follow it out of the store, and `is_done` would
/// trust what it points at), and remove the chunk temporaries a killed
/// writer left (we hold the array's lock, so none is live).
fn tidy_for_resume(name: &str, dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| io_err(name, "listing the array for resume", e))?;
        for e in entries {
            let e = e.map_err(|e| io_err(name, "listing the array for resume", e))?;
            let t = e
                .file_type()
                .map_err(|e| io_err(name, "listing the array for resume", e))?;
            let path = e.path();
            if t.is_symlink() {
                return Err(Error::open(
                    name,
                    format!(
                        "cannot resume: {} is a symbolic link inside the store (overwrite the store instead)",
                        path.display()
                    ),
                ));
            } else if t.is_dir() {
                stack.push(path);
            } else if AtomicFsStore::is_temporary(&e.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(())
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
    crate::contiguous::spec_grid(name, spec)?;
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

pub(super) fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// True if `dir` is an array ndstream began but stopped before its array
/// metadata: it holds only value temporaries, or ndstream's incomplete
/// marker with value temporaries and at most Zarr v2's `.zattrs` (zarrs
/// stores `.zattrs` before `.zarray`, so a kill can fall between them).
/// No chunks, no array or group metadata. A plan's staged replacement
/// holds its plan id from the start ([`super::staged`]), which counts as
/// a temporary here.
pub(super) fn only_marker(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let (mut marker, mut attrs) = (false, false);
    for e in entries {
        let Ok(e) = e else { return false };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            return false;
        }
        let n = e.file_name().to_string_lossy().into_owned();
        if n == INCOMPLETE_MARKER {
            marker = true;
        } else if n == ".zattrs" {
            attrs = true;
        } else if !AtomicFsStore::is_temporary(&n) && n != super::staged::PLAN_ID_FILE {
            return false;
        }
    }
    marker || !attrs
}

/// Refuse to replace `dir` unless [`WriteMode::Overwrite`] would: a Zarr
/// array or group, an empty directory, or what a write of ours left
/// before its metadata (a plan checks its output so, when it is created
/// and again when its staged replacement is swapped in).
pub(super) fn check_replaceable(name: &str, dir: &Path) -> Result<()> {
    let found = if !dir.exists() || is_empty_dir(dir) || only_marker(dir) {
        Existing::Nothing
    } else {
        match meta::read_node(dir).map_err(|m| Error::open(name, m))? {
            Some(_) => Existing::Other,
            None => Existing::Foreign("is not a Zarr array or group"),
        }
    };
    decide(name, WriteMode::Overwrite, found, "Zarr array").map(drop)
}

/// Write `dir/file` whole or not at all: a temporary named as
/// [`AtomicFsStore`]'s, renamed over `file` (a kill never leaves a group
/// with empty or half-written metadata).
///
/// Each call has a temporary of its own (`-g<n>` after the pid), so
/// writers of one group in one process never share one.
fn write_whole(dir: &Path, file: &str, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file}.ndstream-tmp-{}-g{n}", std::process::id()));
    let write = || {
        crate::swap::write_fresh(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(file))
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Remove the temporaries [`write_whole`] left for `dir/file`: those of
/// processes that no longer run (a live writer's temporary is about to be
/// renamed, and removing it would fail that writer).
fn remove_temporaries_of(dir: &Path, file: &str) {
    let prefix = format!(".{file}.ndstream-tmp-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(process_runs) {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// True if a process with this id exists (it may be another program that
/// reused a dead writer's id: then its temporary stays, which is harmless).
fn process_runs(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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
            .map_err(|e| io_err(name, "creating the group directory", e))?;
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
            Ok(Some(Node::Group { .. })) => {
                // A writer killed while making this group left its temporary.
                let (file, _) = meta::group_metadata(spec.zarr_version);
                remove_temporaries_of(&dir, file);
            }
            Ok(None) => {
                let (file, json) = meta::group_metadata(spec.zarr_version);
                write_whole(&dir, file, json.to_string().as_bytes())
                    .map_err(|e| io_err(name, "writing the group metadata", e))?;
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

/// What must agree to write into an existing array: the grid and the dtype.
fn same_grid(a: &ArrayMeta, b: &ArrayMeta) -> bool {
    a.shape == b.shape && a.dtype == b.dtype && a.chunks == b.chunks && a.inner == b.inner
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

/// The existing array `have` as [`lifecycle::decide`](crate::lifecycle::decide)
/// sees it, compared with a write of `want`.
fn found_array<'a>(have: &'a ArrayMeta, want: &'a ArrayMeta, incomplete: bool) -> Existing<'a> {
    Existing::Array(Found {
        layout: Box::new(move || layout_diff(have, want)),
        grid: Box::new(move || grid_diff(have, want)),
        incomplete,
    })
}

/// Whether the existing array `have` can be resumed by a write of
/// `want` ([`same_layout`]), and if not, how the two differ.
fn layout_diff(have: &ArrayMeta, want: &ArrayMeta) -> std::result::Result<(), String> {
    if same_layout(have, want) {
        return Ok(());
    }
    let words = |m: &ArrayMeta| {
        format!(
            "{} {} {:?} in chunks {:?}{} ({})",
            super::version_name(m.version),
            m.dtype,
            m.shape,
            m.chunks,
            shard_words(m),
            m.codec
        )
    };
    Err(format!(
        "the existing array is {}, the write is {}",
        words(have),
        words(want)
    ))
}

/// Whether a write of `want` can go into the existing array `have`
/// ([`same_grid`]), and if not, how the two differ.
fn grid_diff(have: &ArrayMeta, want: &ArrayMeta) -> std::result::Result<(), String> {
    if same_grid(have, want) {
        return Ok(());
    }
    Err(format!(
        "it is {} {:?} in chunks {:?}{}, the array written is {} {:?} in chunks {:?}{}",
        have.dtype,
        have.shape,
        have.chunks,
        shard_words(have),
        want.dtype,
        want.shape,
        want.chunks,
        shard_words(want)
    ))
}

/// ", inner chunks [..]" for a sharded array.
fn shard_words(m: &ArrayMeta) -> String {
    m.inner
        .as_ref()
        .map(|i| format!(" (inner chunks {i:?})"))
        .unwrap_or_default()
}

/// Open the existing array at `path` of `store` for writing.
fn open_rw(
    name: &str,
    store: std::sync::Arc<dyn ReadableWritableStorageTraits>,
    path: &str,
) -> Result<Array<dyn ReadableWritableStorageTraits>> {
    Array::open(store, path).map_err(|e| Error::Open {
        path: name.to_string(),
        message: format!("zarrs cannot open the array: {e}"),
        cause: Some(Box::new(e)),
    })
}

/// Create the array of `spec` at `path` of `store`: its metadata stored.
/// `place` names the store in messages.
fn new_array(
    name: &str,
    store: std::sync::Arc<dyn ReadableWritableStorageTraits>,
    path: &str,
    spec: &SinkSpec,
    place: &str,
) -> Result<Array<dyn ReadableWritableStorageTraits>> {
    let json = meta::build_metadata(spec);
    let metadata: zarrs::array::ArrayMetadata = serde_json::from_value(json)
        .map_err(|e| Error::open(name, format!("cannot build Zarr metadata: {e}")))?;
    let a = Array::new_with_metadata(store, path, metadata)
        .map_err(|e| Error::open(name, format!("cannot create the Zarr array: {e}")))?;
    a.store_metadata().map_err(|e| Error::Sink {
        sink_name: name.to_string(),
        what: "the Zarr metadata".into(),
        message: format!("{e} (store {place})"),
        cause: Some(Box::new(e)),
    })?;
    Ok(a)
}

/// What a conditional put of a key found (see [`StoreState::claim`]).
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The key was absent and now holds the bytes.
    Created,
    /// Another writer put the key first; nothing was written.
    Taken,
}

/// Put `bytes` at a key only where no object has that key: a
/// [`Claim`], or the request's error (a store without conditional puts
/// among them).
pub(crate) type ClaimFn =
    dyn Fn(&StoreKey, Vec<u8>) -> std::result::Result<Claim, String> + Send + Sync;

/// What a store reached by URL holds, as [`ZarrSink::create_in_store`]
/// needs to know it.
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub(crate) struct StoreState {
    /// The node at the array's path.
    pub existing: Option<Node>,
    /// The keys under the array's prefix (its metadata, chunks and
    /// marker, and anything else stored there).
    pub keys: Vec<StoreKey>,
    /// The nodes at the groups above the array, root first.
    pub groups: Vec<Option<Node>>,
    /// The store's conditional put: a new array (`Create`) claims its
    /// prefix by putting its incomplete marker only where there is none
    /// yet, so that of two writers that both found the prefix empty, one
    /// goes on and the other is refused before it writes anything.
    pub claim: Option<Box<ClaimFn>>,
}

impl ZarrSink {
    /// Create the array `array` of a store reached by URL (`url` is the
    /// array's URL, for messages), whose contents `state` describes: a new
    /// array (`Create`, or `Overwrite` of nothing) or the resume of one
    /// whose metadata matches (`Resume`). See the module's last paragraph.
    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    pub(crate) fn create_in_store(
        name: &str,
        url: &str,
        store: std::sync::Arc<dyn ReadableWritableStorageTraits>,
        array: &str,
        spec: &SinkSpec,
        state: StoreState,
    ) -> Result<ZarrSink> {
        check_spec(name, spec)?;
        let want = meta::meta_of_spec(spec).map_err(|m| Error::open(name, m))?;
        let prefix = {
            let a = array.trim_matches('/');
            if a.is_empty() {
                String::new()
            } else {
                format!("{a}/")
            }
        };
        let marker_name = format!("{prefix}{INCOMPLETE_MARKER}");
        // Some key other than the marker: a foreign object, or chunks of an
        // array whose metadata went.
        let has_keys = state.keys.iter().any(|k| k.as_str() != marker_name);
        let marked = state.keys.iter().any(|k| k.as_str() == marker_name);
        let found = match &state.existing {
            Some(Node::Array(have)) => found_array(have, &want, marked),
            Some(Node::Group { .. }) => Existing::Other,
            // What an interrupted write of ours left (its marker) is
            // replaced; objects of unknown origin never are.
            None if has_keys && marked => Existing::Other,
            None if has_keys => Existing::Foreign("is not a Zarr array or group"),
            None => Existing::Nothing,
        };
        let action = decide(name, spec.mode, found, "Zarr array")?;
        let resume = action == Action::Resume;
        let replace = action == Action::Replace;
        // `Into` and `Shared` write into the array that stands, as a
        // resume does, but every chunk of it.
        let existing = resume || action == Action::Into;
        let shared = spec.mode == WriteMode::Shared;
        let put_err = |what: &str, e: zarrs::storage::StorageError| Error::Sink {
            sink_name: name.to_string(),
            what: what.to_string(),
            message: format!("{e} (store {url})"),
            cause: Some(Box::new(e)),
        };
        let key = |k: String| StoreKey::new(k).map_err(|e| Error::open(name, e.to_string()));
        let marker = key(marker_name.clone())?;
        let marker_text = b"being written by ndstream; removed when the write finishes\n";
        // The groups above the array, checked before anything is written
        // or erased: refused where an array or a group of the other Zarr
        // version stands, made (below) where missing.
        let mut new_groups = Vec::new();
        if !existing {
            let parts: Vec<&str> = array.split('/').filter(|p| !p.is_empty()).collect();
            for (i, node) in state.groups.iter().enumerate() {
                let group = parts[..i].join("/");
                match node {
                    Some(Node::Group { version, .. }) if *version != spec.zarr_version => {
                        return Err(Error::open(
                            name,
                            format!("the group `/{group}` is Zarr {version:?} but the write asks for Zarr {:?}", spec.zarr_version),
                        ))
                    }
                    Some(Node::Group { .. }) => {}
                    Some(Node::Array(_)) => {
                        return Err(Error::open(
                            name,
                            format!("`/{group}` is an array, not a group"),
                        ))
                    }
                    None => {
                        let (file, _) = meta::group_metadata(spec.zarr_version);
                        new_groups.push(key(if group.is_empty() {
                            file.to_string()
                        } else {
                            format!("{group}/{file}")
                        })?);
                    }
                }
            }
        }
        // A new array claims its prefix before anything is written (and
        // after every check that could refuse it): the marker is put only
        // if no other writer's is there.
        let claimed = spec.mode == WriteMode::Create && !resume && !replace;
        if claimed {
            let taken = match state
                .claim
                .as_ref()
                .map(|c| c(&marker, marker_text.to_vec()))
            {
                Some(Ok(Claim::Taken)) => true,
                Some(Ok(Claim::Created)) => false,
                // No conditional put here (or it failed): a plain put.
                Some(Err(_)) | None => {
                    store
                        .set(&marker, marker_text.to_vec().into())
                        .map_err(|e| put_err("the incomplete marker", e))?;
                    false
                }
            };
            if taken {
                return Err(Error::Sink {
                    sink_name: name.to_string(),
                    what: "the output".into(),
                    message: format!(
                        "{url} is being created by another writer (its incomplete marker \
                         appeared after this write found the path empty), or a write was \
                         interrupted as it began; nothing was changed. Resume it (--resume) \
                         or replace it (--overwrite)"
                    ),
                    cause: None,
                });
            }
        }
        if replace {
            // No rename in object storage: the old array is removed in place,
            // marked incomplete first and its metadata erased next, so that
            // at no moment does a partly removed array look complete. A run
            // stopped here leaves a marked prefix, which the next overwrite
            // clears.
            store
                .set(&marker, marker_text.to_vec().into())
                .map_err(|e| put_err("the incomplete marker", e))?;
            let (meta_keys, rest): (Vec<StoreKey>, Vec<StoreKey>) = state
                .keys
                .into_iter()
                .filter(|k| k.as_str() != marker_name)
                .partition(|k| {
                    let leaf = k.as_str().rsplit('/').next().unwrap_or_default();
                    meta::METADATA_FILES.contains(&leaf)
                });
            for keys in [meta_keys, rest] {
                store
                    .erase_many(&keys)
                    .map_err(|e| put_err("the array being replaced", e))?;
            }
        }
        let (_, group_json) = meta::group_metadata(spec.zarr_version);
        for k in &new_groups {
            store
                .set(k, group_json.to_string().into_bytes().into())
                .map_err(|e| put_err("the group metadata", e))?;
        }
        // A plan's tasks leave the marker to its last stage, as on disk.
        if !claimed && !shared {
            store
                .set(&marker, marker_text.to_vec().into())
                .map_err(|e| put_err("the incomplete marker", e))?;
        }
        let node = super::zarrs_node_path(array);
        let array_handle = if existing {
            open_rw(name, store.clone(), &node)?
        } else {
            new_array(name, store.clone(), &node, spec, url)?
        };
        let WriteUnit {
            chunk_shape,
            direct_zstd,
            zstd_context_bytes,
        } = WriteUnit::of(name, spec)?;
        Ok(ZarrSink {
            name: name.to_string(),
            dir: PathBuf::from(url),
            array: array_handle,
            remote_marker: Some((store, marker)),
            swap: SwapGuard(Mutex::new(None)),
            locks: Mutex::new(Vec::new()),
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            grid: ChunkGrid::regular(&spec.shape, &chunk_shape),
            chunk_shape,
            options: codec_options(),
            sync: false,
            direct_zstd,
            zstd_context_bytes,
            // A new array has no chunk yet: asking the store for each
            // would cost a request per chunk.
            into: !(resume || (shared && spec.keep_written)),
            shared,
        })
    }

    /// Create (or per `spec.mode` replace, resume or write into) the array `array` of the store at `root`.
    pub fn create(name: &str, root: &Path, array: &str, spec: &SinkSpec) -> Result<ZarrSink> {
        check_spec(name, spec)?;
        let dir = root.join(array);
        let want = meta::meta_of_spec(spec).map_err(|m| Error::open(name, m))?;
        no_links_inside(name, root, array)?;
        let shared = spec.mode == WriteMode::Shared;
        if matches!(spec.mode, WriteMode::Into | WriteMode::Shared)
            && !crate::path::is_zarr_node(&dir)
        {
            // Refused before the array's directory is made.
            return into_nothing(name, spec.mode, "Zarr array");
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_err(name, "creating the array directory", e))?;
        let kind = if shared {
            LockKind::Shared
        } else {
            LockKind::Exclusive
        };
        let locks = lock_array(name, root, array, kind)?;
        if !shared {
            // Under the array's lock: what a killed writer left beside it goes.
            crate::swap::clean_stale(&dir);
        }
        // A directory holding nothing but our marker (a write that failed
        // before its metadata, say on a full disk) is a store not begun.
        let exists = !is_empty_dir(&dir) && !only_marker(&dir);
        let existing = if exists {
            meta::read_node(&dir).map_err(|m| Error::open(name, m))?
        } else {
            None
        };
        let found = match &existing {
            Some(Node::Array(have)) => {
                found_array(have, &want, dir.join(INCOMPLETE_MARKER).exists())
            }
            Some(Node::Group { .. }) => Existing::Other,
            None if exists => Existing::Foreign("is not a Zarr array or group"),
            None => Existing::Nothing,
        };
        let action = decide(name, spec.mode, found, "Zarr array")?;
        let resume = matches!(action, Action::Resume | Action::Into);
        let swap = (action == Action::Replace).then(|| crate::swap::temp_sibling(&dir));
        if !resume {
            ensure_groups(name, root, array, spec)?;
        }
        let mut sink_locks = locks;
        let write_dir = match &swap {
            Some(tmp) => {
                std::fs::create_dir(tmp)
                    .map_err(|e| io_err(name, "creating the temporary directory", e))?;
                match OutputLock::take(tmp, LockKind::Exclusive) {
                    Ok(l) => sink_locks.push(l),
                    Err(e) => {
                        crate::swap::remove_any(tmp);
                        return Err(e.into_error(name));
                    }
                }
                tmp.clone()
            }
            None => dir.clone(),
        };
        // From here on a failure drops the guard, which removes the temporary.
        let guard = SwapGuard(Mutex::new(swap.map(|tmp| (tmp, dir.clone()))));
        // Tasks writing side by side leave the tidying (and the marker) to
        // the plan's last stage, which holds the array alone.
        if resume && !shared {
            tidy_for_resume(name, &dir)?;
        }
        if !shared {
            write_marker(name, &write_dir)?;
        }
        let array_handle = if resume {
            // A plan's task is recorded done when its chunks are written:
            // with `sync`, each is on the disk by then.
            let store: std::sync::Arc<dyn ReadableWritableStorageTraits> = std::sync::Arc::new(
                AtomicFsStore::new(&dir)
                    .map_err(|m| Error::open(name, m))?
                    .with_sync(shared && spec.sync),
            );
            open_rw(name, store, "/")?
        } else {
            let store = std::sync::Arc::new(
                AtomicFsStore::new(&write_dir).map_err(|m| Error::open(name, m))?,
            );
            new_array(name, store, "/", spec, &write_dir.display().to_string())?
        };
        let WriteUnit {
            chunk_shape,
            direct_zstd,
            zstd_context_bytes,
        } = WriteUnit::of(name, spec)?;
        Ok(ZarrSink {
            name: name.to_string(),
            dir: write_dir,
            array: array_handle,
            remote_marker: None,
            swap: guard,
            locks: Mutex::new(sink_locks),
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            grid: ChunkGrid::regular(&spec.shape, &chunk_shape),
            chunk_shape,
            options: codec_options(),
            sync: spec.sync,
            direct_zstd,
            zstd_context_bytes,
            into: matches!(spec.mode, WriteMode::Into | WriteMode::Shared)
                && !(shared && spec.keep_written),
            shared,
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

/// Chunk writes to an object store under way at once
/// (`ChunkSink::write_behind`): each is a PUT with 20–50 ms of latency.
const WRITE_BEHIND: usize = 32;

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
        if self.into {
            // Every chunk is written into an existing array.
            return false;
        }
        // A regular file inside the store (never a link: resume refused
        // those, and this checks again), present and decodable: a torn or
        // empty file fails to decode.
        if self.remote_marker.is_none() {
            let key = self.array.chunk_key(idx);
            let file = self.dir.join(key.as_str());
            if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_file()) {
                return false;
            }
        }
        matches!(
            self.array
                .retrieve_chunk_if_exists_opt::<ArrayBytes<'static>>(idx, &self.options),
            Ok(Some(_))
        )
    }
    fn memory_per_chunk(&self) -> u64 {
        unit_bytes(&self.chunk_shape, self.dtype, self.zstd_context_bytes)
    }
    fn write_behind(&self) -> usize {
        // In an object store each chunk is a PUT with latency.
        if self.remote_marker.is_some() {
            WRITE_BEHIND
        } else {
            0
        }
    }
    fn finish(&self) -> Result<()> {
        if self.shared {
            // One task's chunks are written (each file atomically, and
            // with `sync` flushed as it was; or each a finished PUT); the
            // array stays incomplete until the plan's last stage.
            self.locks.lock().unwrap_or_else(|p| p.into_inner()).clear();
            return Ok(());
        }
        if let Some((store, marker)) = &self.remote_marker {
            // Every chunk is a finished PUT: the array is complete once
            // the marker is gone.
            return store.erase(marker).map_err(|e| Error::Sink {
                sink_name: self.name.clone(),
                what: "the incomplete marker".into(),
                message: format!("{e} (store {})", self.dir.display()),
                cause: Some(Box::new(e)),
            });
        }
        let mut swap = self.swap.0.lock().unwrap_or_else(|p| p.into_inner());
        if self.sync {
            sync_tree(&self.dir).map_err(|e| io_err(&self.name, "the final sync", e))?;
        }
        match std::fs::remove_file(self.dir.join(INCOMPLETE_MARKER)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.name, "the incomplete marker", e)),
        }
        if self.sync {
            // The marker's removal, and the array directory's own entry
            // (a new array's, or the temporary's before the swap).
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .and_then(|()| crate::swap::sync_parent(&self.dir))
                .map_err(|e| io_err(&self.name, "the final sync", e))?;
        }
        if let Some((tmp, target)) = swap.take() {
            // The temporary is complete: swap it in (the old tree goes).
            if let Err(e) = crate::swap::replace_dir(&tmp, &target) {
                let what = format!("the swap of {} into place", tmp.display());
                *swap = Some((tmp, target));
                return Err(io_err(&self.name, &what, e));
            }
            if self.sync {
                crate::swap::sync_parent(&target)
                    .map_err(|e| io_err(&self.name, "the final sync", e))?;
            }
        }
        // Complete: the next writer may have it.
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }
}

/// The bytes a zstd context holds after compressing one `chunk_bytes` chunk
/// at `level` (zstd sizes its tables to the input, so this is measured on a
/// zeroed chunk rather than estimated for unbounded input).
/// What a sink writes in: chunks, or shards when sharded; and whether
/// chunks are zstd-compressed directly (not through zarrs' codec chain).
struct WriteUnit {
    chunk_shape: Vec<u64>,
    direct_zstd: Option<i32>,
    zstd_context_bytes: u64,
}

impl WriteUnit {
    fn of(name: &str, spec: &SinkSpec) -> Result<WriteUnit> {
        let chunk_shape = spec.shards.clone().unwrap_or_else(|| spec.chunks.clone());
        let direct_zstd = match spec.codec {
            // Into an existing array: its own codecs, through zarrs.
            _ if spec.mode == WriteMode::Into => None,
            Codec::Zstd { level } if spec.shards.is_none() && cfg!(target_endian = "little") => {
                Some(level)
            }
            _ => None,
        };
        let zstd_context_bytes = match direct_zstd {
            Some(level) => {
                let chunk_bytes = chunk_shape
                    .iter()
                    .fold(spec.dtype.size() as u64, |acc, &c| acc.saturating_mul(c));
                let chunk_bytes = usize::try_from(chunk_bytes).map_err(|_| {
                    Error::open(name, format!("a chunk of {chunk_bytes} bytes is too large"))
                })?;
                zstd_context_size(level, chunk_bytes)
                    .map_err(|e| io_err(name, "setting up zstd", e))?
            }
            None => 0,
        };
        Ok(WriteUnit {
            chunk_shape,
            direct_zstd,
            zstd_context_bytes,
        })
    }
}

/// A sink's own bytes per write unit: the padded copy plus the encoded
/// output (at most about as large), and the zstd context of the writing
/// thread.
fn unit_bytes(unit: &[u64], dtype: DType, zstd_context_bytes: u64) -> u64 {
    unit.iter()
        .fold(2 * dtype.size() as u64, |acc, &c| acc.saturating_mul(c))
        .saturating_add(zstd_context_bytes)
}

/// The write grid and the sink's own bytes per write unit that
/// [`ZarrSink::create`] would give `spec`, known before anything is opened.
pub(crate) fn needs(name: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    if spec.chunks.len() != spec.shape.len() || spec.chunks.contains(&0) {
        return Err(Error::open(
            name,
            format!(
                "chunks {:?} do not fit shape {:?} (one positive size per axis)",
                spec.chunks, spec.shape
            ),
        ));
    }
    let unit = WriteUnit::of(name, spec)?;
    Ok((
        ChunkGrid::regular(&spec.shape, &unit.chunk_shape),
        unit_bytes(&unit.chunk_shape, spec.dtype, unit.zstd_context_bytes),
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use zarrs::storage::store::MemoryStore;
    use zarrs::storage::{ListableStorageTraits, ReadableStorageTraits};

    fn spec() -> SinkSpec {
        SinkSpec::new(vec![4], DType::F64, vec![2])
    }

    /// An empty store's state for a new array `a`, claimed by `claim`.
    fn empty(claim: Box<ClaimFn>) -> StoreState {
        StoreState {
            existing: None,
            keys: Vec::new(),
            groups: vec![None],
            claim: Some(claim),
        }
    }

    fn marker() -> StoreKey {
        StoreKey::new(format!("a/{INCOMPLETE_MARKER}")).unwrap()
    }

    /// A service whose conditional PUT fails (one without conditional
    /// writes answers 501): the marker is put plainly, and the write goes
    /// on to a complete array.
    #[test]
    fn a_failed_claim_falls_back_to_a_plain_put_of_the_marker() {
        let store = Arc::new(MemoryStore::new());
        let claim: Box<ClaimFn> = Box::new(|_, _| Err("501 Not Implemented".into()));
        let sink =
            ZarrSink::create_in_store("mem/a", "mem/a", store.clone(), "a", &spec(), empty(claim))
                .unwrap();
        assert!(store.get(&marker()).unwrap().is_some());
        for (i, v) in [[1.0, 2.0], [3.0, 4.0]].iter().enumerate() {
            let block = Block::from(ndarray::arr1(v).into_dyn());
            sink.write_chunk(&[i as u64], &block).unwrap();
        }
        sink.finish().unwrap();
        assert!(store.get(&marker()).unwrap().is_none());
        let a = Array::open(store.clone(), "/a").unwrap();
        let whole = zarrs::array::ArraySubset::new_with_shape(vec![4]);
        let got: Vec<f64> = a.retrieve_array_subset(&whole).unwrap();
        assert_eq!(got, vec![1.0, 2.0, 3.0, 4.0]);
    }

    /// A claim that finds another writer's marker refuses the write
    /// before anything is put.
    #[test]
    fn a_claim_another_writer_holds_refuses_and_puts_nothing() {
        let store = Arc::new(MemoryStore::new());
        let claim: Box<ClaimFn> = Box::new(|_, _| Ok(Claim::Taken));
        let err =
            ZarrSink::create_in_store("mem/a", "mem/a", store.clone(), "a", &spec(), empty(claim))
                .err()
                .unwrap();
        assert!(
            err.to_string().contains("being created by another writer"),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
    }
}
