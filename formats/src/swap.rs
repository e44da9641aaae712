//! Replacing an output only when its successor is complete.
//!
//! `WriteMode::Overwrite` never deletes or truncates the old output first:
//! the new one is written beside it, under a hidden name in the same
//! directory, and swapped in at `finish`:
//!
//! - a temporary is named `.<name>.ndstream-new-<pid>-<n>` ([`temp_sibling`]),
//!   lives in the target's own directory (so the final rename stays on one
//!   file system) and is locked by its writer for as long as it exists;
//! - [`replace_dir`] swaps a finished directory into place with Linux's
//!   `renameat2(RENAME_EXCHANGE)` (one atomic step: a reader opening the
//!   path gets the old tree or the new one, never a mixture) and then
//!   removes the old tree; elsewhere it renames the old tree aside first,
//!   so the path is missing for a moment (never mixed);
//! - [`replace_file`] renames a finished file over the target (atomic
//!   everywhere, and readers that mapped the old file keep its inode);
//! - a writer that fails removes its temporary (its guard's `Drop`); one
//!   that is killed leaves it behind, unlocked, and the next writer of the
//!   same target removes it ([`clean_stale`]) while holding the target's
//!   lock, so it never races the temporary's own writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lock;

/// The tag of temporaries being written.
const NEW_TAG: &str = "ndstream-new";
/// The tag of an old directory renamed aside where no atomic exchange exists.
const OLD_TAG: &str = "ndstream-old";
/// The tag of a plan's staged replacement of a Zarr array: written by the
/// plan's tasks in any number of processes, swapped in by its last stage
/// (`crate::zarr::staged`). No writer's lock keeps it, so [`clean_stale`]
/// never takes it for a killed writer's temporary.
const PLAN_TAG: &str = "ndstream-plan";

/// `.<name>.` — the start of every temporary of `target`.
fn prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// A fresh temporary path beside `target` (not created).
pub(crate) fn temp_sibling(target: &Path) -> PathBuf {
    tagged_sibling(target, NEW_TAG)
}

/// The staged replacement of `target` by the plan `id` (not created):
/// `.<name>.ndstream-plan-<id>` beside it.
#[cfg_attr(not(feature = "zarr"), allow(dead_code))]
pub(crate) fn plan_sibling(target: &Path, id: &str) -> PathBuf {
    let name = format!("{}{PLAN_TAG}-{id}", prefix(target));
    match target.parent() {
        Some(p) => p.join(name),
        None => PathBuf::from(name),
    }
}

fn tagged_sibling(target: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}{tag}-{}-{n}", prefix(target), std::process::id());
    match target.parent() {
        Some(p) => p.join(name),
        None => PathBuf::from(name),
    }
}

/// True if a file or directory name is one of ndstream's temporaries
/// (hidden from listings such as `info` of a Zarr group).
#[cfg_attr(not(feature = "zarr"), allow(dead_code))]
pub(crate) fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.')
        && [NEW_TAG, OLD_TAG, PLAN_TAG]
            .iter()
            .any(|tag| name.contains(&format!(".{tag}-")))
}

/// Remove the temporaries a killed writer of `target` left beside it.
///
/// The caller holds `target`'s lock, so no live writer of `target` can be
/// creating a temporary now; a temporary that is still locked belongs to
/// a writer this process does not know about and is left alone. An old
/// tree renamed aside by a writer killed between its two renames (no
/// atomic exchange on that file system) is put back if `target` is missing.
pub(crate) fn clean_stale(target: &Path) {
    let Some(dir) = target.parent() else { return };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix(target);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let path = e.path();
        if rest.starts_with(&format!("{OLD_TAG}-")) {
            if std::fs::symlink_metadata(target).is_err() && !lock::is_locked(&path) {
                let _ = std::fs::rename(&path, target);
            }
            continue;
        }
        if rest.starts_with(&format!("{NEW_TAG}-")) && !lock::is_locked(&path) {
            remove_any(&path);
        }
    }
}

/// Remove a file or a directory tree (never following symbolic links).
pub(crate) fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Put the finished directory `new` in place of the directory `target`,
/// then remove the old tree. On return `target` is the new tree.
///
/// # Errors
/// The rename failed; `target` is then still the old tree (or, on a file
/// system without an atomic exchange, see [`clean_stale`]).
#[cfg_attr(not(feature = "zarr"), allow(dead_code))]
pub(crate) fn replace_dir(new: &Path, target: &Path) -> std::io::Result<()> {
    match exchange(new, target) {
        Ok(()) => {
            // `new` now names the old tree.
            remove_any(new);
            Ok(())
        }
        Err(e) if exchange_unsupported(&e) => {
            let old = tagged_sibling(target, OLD_TAG);
            std::fs::rename(target, &old)?;
            if let Err(e) = std::fs::rename(new, target) {
                let _ = std::fs::rename(&old, target);
                return Err(e);
            }
            remove_any(&old);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Rename the finished file `new` over `target` (atomic).
///
/// # Errors
/// The rename failed; `target` is untouched.
pub(crate) fn replace_file(new: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::rename(new, target)
}

/// Give the prepared file `new` the name `target`, which must not exist:
/// one atomic step (`renameat2(RENAME_NOREPLACE)`, or where the file
/// system lacks it a hard link and the removal of `new`), so `target`
/// never names a file that is still being prepared.
///
/// # Errors
/// `AlreadyExists` if `target` exists (another writer placed it first);
/// any other failure of the rename or link. `new` is left for the caller.
pub(crate) fn place_file(new: &Path, target: &Path) -> std::io::Result<()> {
    match rename2(new, target, RENAME_NOREPLACE) {
        Err(e) if exchange_unsupported(&e) => match std::fs::hard_link(new, target) {
            Ok(()) => {
                let _ = std::fs::remove_file(new);
                Ok(())
            }
            // No hard links either (some FUSE and network file systems):
            // a rename after a check, which a writer that creates the name
            // in between could lose to (the only non-atomic case).
            Err(e) if link_unsupported(&e) => {
                if std::fs::symlink_metadata(target).is_ok() {
                    return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
                }
                std::fs::rename(new, target)
            }
            Err(e) => Err(e),
        },
        other => other,
    }
}

/// Errors of `link` that mean the file system has no hard links.
fn link_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EPERM) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
        )
}

/// Write `bytes` to a new file at `path`, replacing whatever entry has
/// the name (a link is removed, never written through).
///
/// # Errors
/// The removal or the exclusive creation failed (`AlreadyExists` if
/// another process created the name in between, twice).
pub(crate) fn write_fresh(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tries = 0;
    loop {
        if std::fs::symlink_metadata(path).is_ok() {
            std::fs::remove_file(path)?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => return f.write_all(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 1 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// fsync the directory holding `path`, so a rename into it is durable.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(target_os = "linux")]
const RENAME_NOREPLACE: u32 = libc::RENAME_NOREPLACE;
#[cfg(not(target_os = "linux"))]
const RENAME_NOREPLACE: u32 = 1;

#[cfg(target_os = "linux")]
#[cfg_attr(not(feature = "zarr"), allow(dead_code))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    rename2(a, b, libc::RENAME_EXCHANGE)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// `renameat2(a, b, flags)`.
#[cfg(target_os = "linux")]
fn rename2(a: &Path, b: &Path, flags: u32) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working
    // directory; renameat2 reads them and touches nothing else.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn rename2(_: &Path, _: &Path, _: u32) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Errors of `renameat2` with a flag that mean "not here" rather
/// than "failed": an old kernel or a file system without the flag.
fn exchange_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_dir_swaps_whole_trees() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("a.zarr");
        std::fs::create_dir_all(target.join("c")).unwrap();
        std::fs::write(target.join("c/old"), b"old").unwrap();
        let new = temp_sibling(&target);
        assert!(is_temporary_name(
            &new.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(new.join("c")).unwrap();
        std::fs::write(new.join("c/new"), b"new").unwrap();
        replace_dir(&new, &target).unwrap();
        assert!(!new.exists());
        assert!(!target.join("c/old").exists());
        assert_eq!(std::fs::read(target.join("c/new")).unwrap(), b"new");
    }

    #[test]
    fn a_placed_file_never_replaces_one() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("x.npy");
        let new = temp_sibling(&target);
        std::fs::write(&new, b"first").unwrap();
        place_file(&new, &target).unwrap();
        assert!(!new.exists());
        let second = temp_sibling(&target);
        std::fs::write(&second, b"second").unwrap();
        let e = place_file(&second, &target).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        assert_eq!(std::fs::read(&second).unwrap(), b"second");
    }

    #[test]
    fn stale_temporaries_go_and_live_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("x.npy");
        std::fs::write(&target, b"keep").unwrap();
        let stale = temp_sibling(&target);
        std::fs::write(&stale, b"stale").unwrap();
        let live = temp_sibling(&target);
        std::fs::write(&live, b"live").unwrap();
        let held = lock::OutputLock::take(&live, lock::LockKind::Exclusive).unwrap();
        let other = d.path().join(".y.npy.ndstream-new-1-1");
        std::fs::write(&other, b"another target's").unwrap();
        clean_stale(&target);
        assert!(!stale.exists());
        assert!(live.exists());
        assert!(other.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        drop(held);
    }

    #[test]
    fn an_old_tree_left_aside_comes_back() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("s.zarr");
        let old = tagged_sibling(&target, OLD_TAG);
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("zarr.json"), b"{}").unwrap();
        clean_stale(&target);
        assert_eq!(std::fs::read(target.join("zarr.json")).unwrap(), b"{}");
    }
}
