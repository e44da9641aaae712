//! A plan's replacement of an existing Zarr array on disk
//! ([`crate::Staged`]).
//!
//! An in-process `Overwrite` writes its new array into a locked temporary
//! and swaps it in at `finish`; a plan's tasks run in many processes over
//! a long time, so its new array is written into a staging directory
//! named for the plan, `.<name>.ndstream-plan-<id>` beside the array,
//! which holds the plan's id in a file (`.ndstream-plan-id`) from the
//! moment it is made. The old array stays untouched, and readable, until
//! the plan's last stage:
//!
//! 1. completes the staged array (removes its incomplete marker, with
//!    `sync` flushing it first), as an `Into` sink's `finish` does;
//! 2. under the target's exclusive lock, checks the target may still be
//!    replaced (a Zarr node, an empty directory, or missing) and swaps the
//!    staged array in ([`crate::swap::replace_dir`]: one atomic exchange
//!    on Linux); the old tree, now at the staging path, is removed;
//! 3. removes the plan id from the array.
//!
//! Each step can be repeated after a kill: where the staging directory
//! holds the id the swap has not happened; where the array holds it the
//! swap has, and what is left at the staging path is the old tree. The
//! staging directory is never a killed writer's temporary to the other
//! writers of the array ([`crate::swap::clean_stale`] leaves it), and
//! listings hide it.

use std::path::Path;
use std::sync::Arc;

use ndstream_engine::{Block, ChunkGrid, ChunkSink, DType, Error, Result};

use super::sink::{self, ZarrSink};
use crate::lock::LockKind;
use crate::spec::{SinkSpec, WriteMode};
use crate::Staged;

/// The file in a staged replacement (and, between the swap and the end of
/// the last stage, in the array) that names the plan.
pub(crate) const PLAN_ID_FILE: &str = ".ndstream-plan-id";

fn io_err(name: &str, what: &str, e: std::io::Error) -> Error {
    crate::contiguous::io_err(name, what, e)
}

/// True if `dir` holds the plan id file with `id` in it.
fn holds_id(dir: &Path, id: &str) -> bool {
    std::fs::symlink_metadata(dir.join(PLAN_ID_FILE)).is_ok_and(|m| m.is_file())
        && std::fs::read(dir.join(PLAN_ID_FILE)).is_ok_and(|b| b == id.as_bytes())
}

/// Refuse a target that is a symbolic link: the swap would replace the
/// link, not the array it names.
fn no_link(s: &Staged) -> Result<()> {
    match std::fs::symlink_metadata(&s.target) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::open(
            &s.name,
            "is a symbolic link; a plan replaces only a Zarr array itself (name the array it points at)",
        )),
        _ => Ok(()),
    }
}

/// See [`Staged::begin`]: `Some` where a Zarr node (or an empty
/// directory) stands at the target, checked under its lock.
pub(crate) fn begin(s: Staged) -> Result<Option<Staged>> {
    sink::no_links_inside(&s.name, &s.root, &s.array)?;
    no_link(&s)?;
    let dir = &s.target;
    if !dir.exists() || sink::is_empty_dir(dir) || sink::only_marker(dir) {
        // Nothing to replace: the plan writes its array in place.
        return Ok(None);
    }
    // Not while another process writes the array (or its store).
    let locks = sink::lock_array(&s.name, &s.root, &s.array, LockKind::Exclusive)?;
    sink::check_replaceable(&s.name, dir)?;
    drop(locks);
    if std::fs::symlink_metadata(&s.staging).is_ok() {
        return Err(Error::open(
            &s.name,
            format!(
                "{} exists (a plan with this id?); plan again",
                s.staging.display()
            ),
        ));
    }
    Ok(Some(s))
}

/// See [`Staged::create`].
pub(crate) fn create(s: &Staged, spec: &SinkSpec) -> Result<()> {
    std::fs::create_dir(&s.staging)
        .map_err(|e| io_err(&s.name, "creating the plan's staging directory", e))?;
    let made = (|| -> Result<()> {
        crate::swap::write_fresh(&s.staging.join(PLAN_ID_FILE), s.id.as_bytes())
            .map_err(|e| io_err(&s.name, "writing the plan id", e))?;
        let mut spec = spec.clone();
        spec.mode = WriteMode::Create;
        // Dropped unfinished: the array stays, marked incomplete.
        drop(ZarrSink::create(&s.name, &s.staging, "", &spec)?);
        Ok(())
    })();
    if made.is_err() {
        crate::swap::remove_any(&s.staging);
    }
    made
}

/// See [`Staged::sink`].
pub(crate) fn sink(s: &Staged, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
    let staged = holds_id(&s.staging, &s.id);
    match spec.mode {
        WriteMode::Shared if staged => Ok(Arc::new(ZarrSink::create(
            &s.name,
            &s.staging,
            "",
            spec,
        )?)),
        WriteMode::Shared => Err(Error::open(
            &s.name,
            format!(
                "the plan's staged array {} is gone (its last stage has swapped it in, or it was removed): run `ndstream status`",
                s.staging.display()
            ),
        )),
        WriteMode::Into => {
            let inner: Option<Arc<dyn ChunkSink>> = if staged {
                Some(Arc::new(ZarrSink::create(&s.name, &s.staging, "", spec)?))
            } else if holds_id(&s.target, &s.id)
                || std::fs::symlink_metadata(&s.staging).is_err()
            {
                // Swapped in by an earlier run of the last stage; what is
                // left is tidying.
                None
            } else {
                return Err(Error::open(
                    &s.name,
                    format!(
                        "{} holds no plan id (its creation was interrupted?): remove it and plan again",
                        s.staging.display()
                    ),
                ));
            };
            Ok(Arc::new(SwapIn {
                staged: s.clone(),
                inner,
                shape: spec.shape.clone(),
                dtype: spec.dtype,
                grid: ChunkGrid::regular(&spec.shape, &spec.chunks),
                sync: spec.sync,
            }))
        }
        _ => Err(Error::invalid(
            "staged replacement",
            "mode",
            "a plan's tasks write shared, its last stage into",
        )),
    }
}

/// See [`Staged::remove`].
pub(crate) fn remove(s: &Staged) {
    if holds_id(&s.staging, &s.id) {
        crate::swap::remove_any(&s.staging);
    }
}

/// The last stage's sink: completes the staged array (`inner`), then
/// swaps it in for the target.
#[derive(Debug)]
struct SwapIn {
    staged: Staged,
    /// The staged array, unless an earlier run already swapped it in.
    inner: Option<Arc<dyn ChunkSink>>,
    shape: Vec<u64>,
    dtype: DType,
    grid: ChunkGrid,
    sync: bool,
}

impl SwapIn {
    /// Step 2 of the module docs: the staged array (complete) in place of
    /// the target.
    fn swap(&self) -> Result<()> {
        let s = &self.staged;
        no_link(s)?;
        if std::fs::symlink_metadata(&s.target).is_err() {
            // Removed meanwhile: an empty directory takes its place, to be
            // locked and exchanged as an array would be.
            std::fs::create_dir(&s.target)
                .map_err(|e| io_err(&s.name, "recreating the output's directory", e))?;
        }
        let locks = sink::lock_array(&s.name, &s.root, &s.array, LockKind::Exclusive)?;
        sink::check_replaceable(&s.name, &s.target)?;
        crate::swap::replace_dir(&s.staging, &s.target).map_err(|e| {
            io_err(
                &s.name,
                &format!("the swap of {} into place", s.staging.display()),
                e,
            )
        })?;
        if self.sync {
            crate::swap::sync_parent(&s.target)
                .map_err(|e| io_err(&s.name, "the final sync", e))?;
        }
        drop(locks);
        Ok(())
    }
}

impl ChunkSink for SwapIn {
    fn name(&self) -> &str {
        &self.staged.name
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
        match &self.inner {
            Some(inner) => inner.write_chunk(idx, data),
            None => Err(Error::open(
                &self.staged.name,
                "the plan's array is already swapped in",
            )),
        }
    }
    fn finish(&self) -> Result<()> {
        let s = &self.staged;
        if let Some(inner) = &self.inner {
            inner.finish()?;
            self.swap()?;
        }
        // The old tree, if a kill stopped its removal.
        if std::fs::symlink_metadata(&s.staging).is_ok() && !holds_id(&s.staging, &s.id) {
            crate::swap::remove_any(&s.staging);
        }
        if holds_id(&s.target, &s.id) {
            std::fs::remove_file(s.target.join(PLAN_ID_FILE))
                .map_err(|e| io_err(&s.name, "removing the plan id", e))?;
            if self.sync {
                std::fs::File::open(&s.target)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_err(&s.name, "the final sync", e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndstream_engine::DType;

    fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn spec(mode: WriteMode) -> SinkSpec {
        let mut s = SinkSpec::new(vec![4], DType::F64, vec![2]);
        s.mode = mode;
        s
    }

    /// An array of `value`s at `dir`, written in one process.
    fn stored(dir: &Path, value: f64) {
        let sink = crate::create_sink(dir.to_str().unwrap(), &spec(WriteMode::Overwrite)).unwrap();
        for i in 0..2 {
            sink.write_chunk(
                &[i],
                &Block::from(ndarray::arr1(&[value, value]).into_dyn()),
            )
            .unwrap();
        }
        sink.finish().unwrap();
    }

    /// The plan's new array, of `value`s, staged and written by its tasks
    /// (the last stage not run).
    fn staged_tasks(out: &Path, id: &str, value: f64) -> Staged {
        let s = Staged::begin(out.to_str().unwrap(), id).unwrap().unwrap();
        s.create(&spec(WriteMode::Create)).unwrap();
        let task = s.sink(&spec(WriteMode::Shared)).unwrap();
        for i in 0..2 {
            task.write_chunk(
                &[i],
                &Block::from(ndarray::arr1(&[value, value]).into_dyn()),
            )
            .unwrap();
        }
        task.finish().unwrap();
        s
    }

    /// Each state a kill can leave the last stage in is finished by
    /// running it again, to the array the tasks wrote; a staging
    /// directory that is not the plan's is never taken for one.
    #[test]
    fn the_last_stage_finishes_from_every_state_a_kill_leaves() {
        let d = tempfile::tempdir().unwrap();
        let (out, new) = (d.path().join("x.zarr"), d.path().join("new.zarr"));
        stored(&new, 2.0);
        let want = files(&new);

        // Killed after the staged array was completed, before the swap.
        stored(&out, 1.0);
        let s = staged_tasks(&out, "a1", 2.0);
        let inner = ZarrSink::create("x", &s.staging, "", &spec(WriteMode::Into)).unwrap();
        inner.finish().unwrap();
        // A writer of the array meanwhile leaves the plan's staging alone.
        stored(&out, 1.0);
        assert!(holds_id(&s.staging, "a1"));
        s.sink(&spec(WriteMode::Into)).unwrap().finish().unwrap();
        assert_eq!(files(&out), want);
        assert!(!s.staging.exists());

        // Killed after the exchange, before the old tree went: the old
        // tree at the staging path, the id in the array.
        stored(&out, 1.0);
        let s = staged_tasks(&out, "b2", 2.0);
        let aside = d.path().join("aside");
        std::fs::rename(&out, &aside).unwrap();
        std::fs::rename(&s.staging, &out).unwrap();
        std::fs::rename(&aside, &s.staging).unwrap();
        std::fs::remove_file(out.join(crate::zarr::INCOMPLETE_MARKER)).unwrap();
        // A task after the swap is refused.
        let e = s.sink(&spec(WriteMode::Shared)).unwrap_err();
        assert!(e.to_string().contains("is gone"), "{e}");
        s.sink(&spec(WriteMode::Into)).unwrap().finish().unwrap();
        assert_eq!(files(&out), want);
        assert!(!s.staging.exists());
        // And once more: nothing is left to do.
        s.sink(&spec(WriteMode::Into)).unwrap().finish().unwrap();
        assert_eq!(files(&out), want);

        // A staging path without the plan's id is not the plan's: the
        // last stage refuses, and removes nothing.
        stored(&out, 1.0);
        let old = files(&out);
        let s = Staged::of(out.to_str().unwrap(), "c3").unwrap().unwrap();
        std::fs::create_dir(&s.staging).unwrap();
        std::fs::write(s.staging.join("keep"), b"k").unwrap();
        let e = s.sink(&spec(WriteMode::Into)).unwrap_err();
        assert!(e.to_string().contains("holds no plan id"), "{e}");
        s.remove();
        assert_eq!(std::fs::read(s.staging.join("keep")).unwrap(), b"k");
        assert_eq!(files(&out), old);
        // Nor does a second plan with the id stage over it.
        let e = Staged::begin(out.to_str().unwrap(), "c3").unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
    }

    /// Another writer holding the array when the last stage runs: the
    /// swap is refused and changes nothing (the old array and the staged
    /// one stay whole); run again once the writer is done, it swaps.
    #[test]
    fn the_last_stage_does_not_swap_under_another_writer() {
        let d = tempfile::tempdir().unwrap();
        let (out, new) = (d.path().join("x.zarr"), d.path().join("new.zarr"));
        stored(&new, 2.0);
        let want = files(&new);
        stored(&out, 1.0);
        let old = files(&out);
        let s = staged_tasks(&out, "d4", 2.0);
        for kind in [LockKind::Exclusive, LockKind::Shared] {
            let held = crate::lock::OutputLock::take(&out, kind).unwrap();
            let e = s
                .sink(&spec(WriteMode::Into))
                .and_then(|k| k.finish())
                .unwrap_err();
            assert!(e.to_string().contains("in use"), "{e}");
            assert_eq!(files(&out), old);
            assert!(holds_id(&s.staging, "d4"));
            drop(held);
        }
        s.sink(&spec(WriteMode::Into)).unwrap().finish().unwrap();
        assert_eq!(files(&out), want);
        assert!(!s.staging.exists());
    }
}
