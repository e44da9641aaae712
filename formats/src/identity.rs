//! What a [`Location`] names on disk, resolved, and whether an output would
//! overwrite an input.
//!
//! Before anything is opened for writing, the output's location and every
//! input's are resolved to real paths ([`Resolved`]): symlinks followed
//! through the longest existing prefix, the rest joined lexically, and for
//! files that exist, the device and inode too (so a hard link is the same
//! file). [`check_output`] then refuses the write when the output *is* an
//! input, *contains* one (a Zarr group or directory holding an input array,
//! a whole HDF5 file holding an input dataset) or *lies inside* one (an
//! array written into an input array's directory): with `--overwrite`, each
//! of those would destroy the data being read. Different arrays of one Zarr
//! group, or different datasets of one HDF5 file, do not overlap.

use std::path::{Component, Path, PathBuf};

use ndstream_engine::{Error, Result};

use crate::path::{parse_location, Location};

/// A location resolved to what it names on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The real path of the file or directory (a Zarr array's directory,
    /// an HDF5, `.npy` or raw file).
    pub path: PathBuf,
    /// `(device, inode)` when the file or directory exists.
    pub inode: Option<(u64, u64)>,
    /// What is addressed inside the file: an HDF5 dataset path without
    /// leading `/` (empty for the whole file). `None` for every other format.
    pub inner: Option<String>,
    /// True for a directory tree (Zarr), false for a single file.
    pub is_dir: bool,
}

/// The real path of `p`: the longest existing prefix canonicalised (which
/// follows its symlinks), the rest appended with `.` and `..` applied
/// lexically.
///
/// # Errors
/// The current directory cannot be read, or a prefix cannot be resolved.
pub fn real_path(p: &Path) -> std::io::Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let comps: Vec<Component> = abs.components().collect();
    // Find the longest prefix that exists (symlink_metadata: a dangling
    // link still exists as a name, and canonicalize reports it).
    for cut in (1..=comps.len()).rev() {
        let prefix: PathBuf = comps[..cut].iter().collect();
        if std::fs::symlink_metadata(&prefix).is_ok() {
            let mut out = match std::fs::canonicalize(&prefix) {
                Ok(c) => c,
                // A dangling symlink: the name is where a write would go.
                Err(_) => prefix,
            };
            for c in &comps[cut..] {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
    }
    Ok(abs)
}

fn inode_of(p: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = p;
        None
    }
}

/// Resolve a parsed location.
///
/// # Errors
/// As [`real_path`].
pub fn resolve(loc: &Location) -> std::io::Result<Resolved> {
    let (path, inner, is_dir) = match loc {
        Location::Zarr { root, array } => {
            let mut p = real_path(root)?;
            for part in array.split('/').filter(|p| !p.is_empty()) {
                p.push(part);
            }
            (real_path(&p)?, None, true)
        }
        Location::Hdf5 { file, dataset } => (
            real_path(file)?,
            Some(dataset.trim_matches('/').to_string()),
            false,
        ),
        Location::Npy(file) | Location::Raw { file, .. } => (real_path(file)?, None, false),
        // A URL is compared by its text, with the scheme and bucket written
        // one way (`s3a://` is `s3://`); it never names a local path: those
        // resolve to absolute paths, a URL's text is not one.
        Location::Hdf5Url { url, dataset } => (
            PathBuf::from(crate::url::canonical(url)),
            Some(dataset.trim_matches('/').to_string()),
            false,
        ),
        Location::ZarrUrl { root, array } => {
            let mut p = PathBuf::from(crate::url::canonical(root));
            for part in array.split('/').filter(|p| !p.is_empty()) {
                p.push(part);
            }
            (p, None, true)
        }
    };
    let inode = inode_of(&path);
    Ok(Resolved {
        path,
        inode,
        inner,
        is_dir,
    })
}

/// True when `a` and `b` name nested (or equal) paths inside one file:
/// `""` (the whole file) contains everything, `g` contains `g/x`.
fn inner_nested(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner == outer
            || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
    };
    within(a, b) || within(b, a)
}

impl Resolved {
    /// True when writing `self` could change the data of `input`.
    pub fn overlaps(&self, input: &Resolved) -> bool {
        let same_file = self.path == input.path
            || (self.inode.is_some() && self.inode == input.inode && !self.is_dir);
        if self.is_dir {
            // A Zarr output replaces its whole directory tree.
            return input.path.starts_with(&self.path)
                || (input.is_dir && self.path.starts_with(&input.path));
        }
        if input.is_dir {
            // A file written inside an input's directory tree.
            return self.path.starts_with(&input.path);
        }
        if !same_file {
            return false;
        }
        match (&self.inner, &input.inner) {
            (Some(a), Some(b)) => inner_nested(a, b),
            _ => true,
        }
    }
}

/// Refuse a write to `output` (a location in the path syntax) when it
/// would overwrite any of `inputs` (their locations; names that are not
/// locations, such as in-memory arrays', are skipped).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_current_dir(dir.path()).unwrap();
/// use ndstream_formats::check_output;
/// assert!(check_output("a.zarr", &["a.zarr"]).is_err());
/// assert!(check_output("grp.zarr", &["grp.zarr/x"]).is_err());
/// assert!(check_output("./sub/../a.npy", &["a.npy"]).is_err());
/// assert!(check_output("f.h5:/y", &["f.h5:/x"]).is_ok());
/// assert!(check_output("f.h5", &["f.h5:/x"]).is_err());
/// assert!(check_output("b.zarr", &["a.zarr", "c.npy"]).is_ok());
/// assert!(check_output("s3://b/x.zarr", &["s3a://b/x.zarr/t"]).is_err());
/// assert!(check_output("s3://b/y.zarr", &["s3://b/x.zarr"]).is_ok());
/// ```
///
/// # Errors
/// [`Error::OutputIsInput`] naming both, or [`Error::Open`] when the
/// output's path cannot be resolved.
pub fn check_output<S: AsRef<str>>(output: &str, inputs: &[S]) -> Result<()> {
    let out_loc = parse_location(output)?;
    let out = resolve(&out_loc)
        .map_err(|e| Error::open(output, format!("cannot resolve the output path: {e}")))?;
    check_resolved(output, &out, inputs)
}

/// [`check_output`] for an output that is a plain file outside the path
/// syntax (a PNG written by `plot`, say).
///
/// # Errors
/// As [`check_output`].
pub fn check_output_file<S: AsRef<str>>(output: &Path, inputs: &[S]) -> Result<()> {
    let name = output.display().to_string();
    let path = real_path(output)
        .map_err(|e| Error::open(&name, format!("cannot resolve the output path: {e}")))?;
    let out = Resolved {
        inode: inode_of(&path),
        path,
        inner: None,
        is_dir: false,
    };
    check_resolved(&name, &out, inputs)
}

/// [`check_output`] for a directory written outside the path syntax (a
/// plan's work directory): refused where it is, holds or lies inside an
/// input. A URL (`s3://bucket/job.work`) is compared by its text, as
/// URLs in the path syntax are.
///
/// ```
/// use ndstream_formats::check_output_dir;
/// assert!(check_output_dir("s3://b/x.zarr/work", &["s3://b/x.zarr"]).is_err());
/// assert!(check_output_dir("s3://b/job.work", &["s3://b/x.zarr"]).is_ok());
/// ```
///
/// # Errors
/// As [`check_output`].
pub fn check_output_dir<S: AsRef<str>>(output: &str, inputs: &[S]) -> Result<()> {
    let path = if crate::url::split_url(output).is_some() {
        PathBuf::from(crate::url::canonical(output.trim_end_matches('/')))
    } else {
        real_path(Path::new(output))
            .map_err(|e| Error::open(output, format!("cannot resolve the output path: {e}")))?
    };
    let out = Resolved {
        inode: inode_of(&path),
        path,
        inner: None,
        is_dir: true,
    };
    check_resolved(output, &out, inputs)
}

fn check_resolved<S: AsRef<str>>(name: &str, out: &Resolved, inputs: &[S]) -> Result<()> {
    for input in inputs {
        let input = input.as_ref();
        let Ok(loc) = parse_location(input) else {
            continue;
        };
        let Ok(res) = resolve(&loc) else {
            continue;
        };
        if out.overlaps(&res) {
            return Err(Error::OutputIsInput {
                output: name.to_string(),
                input: input.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_inside_files() {
        assert!(inner_nested("", "x"));
        assert!(inner_nested("g", "g/x"));
        assert!(inner_nested("g/x", "g"));
        assert!(!inner_nested("g", "gx"));
        assert!(!inner_nested("a", "b"));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_and_hard_links_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.npy"), b"x").unwrap();
        std::fs::hard_link(d.join("a.npy"), d.join("b.npy")).unwrap();
        std::os::unix::fs::symlink(d.join("a.npy"), d.join("c.npy")).unwrap();
        std::fs::create_dir(d.join("real.zarr")).unwrap();
        std::os::unix::fs::symlink(d.join("real.zarr"), d.join("link.zarr")).unwrap();
        let p = |n: &str| d.join(n).display().to_string();
        assert!(check_output(&p("b.npy"), &[p("a.npy")]).is_err());
        assert!(check_output(&p("c.npy"), &[p("a.npy")]).is_err());
        assert!(check_output(&p("link.zarr"), &[p("real.zarr/x")]).is_err());
        assert!(check_output(&p("real.zarr/y"), &[p("link.zarr/x")]).is_ok());
        // A file written inside an input array's directory.
        let e = check_output_file(&d.join("real.zarr/c/0"), &[p("real.zarr")]).unwrap_err();
        assert!(matches!(e, Error::OutputIsInput { .. }), "{e}");
        assert!(check_output_file(&d.join("plot.png"), &[p("a.npy")]).is_ok());
        assert!(check_output_file(&d.join("b.npy"), &[p("a.npy")]).is_err());
    }
}
