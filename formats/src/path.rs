//! The path syntax users write for stores, parsed into a [`Location`].
//!
//! | path | format |
//! |---|---|
//! | `file.h5:/group/dset` (also `.hdf5`, `.nc`, `.he5`; the `:/dataset` part optional) | HDF5, or netCDF-3 when the file starts with its magic number (`file.nc:/var`) |
//! | `dir.zarr`, `dir.zarr/group/array`, or any directory holding Zarr metadata | Zarr v2 or v3 |
//! | `file.npy` | NumPy `.npy` |
//! | `file.bin?dtype=<f4&shape=100,200[&offset=0]` (also `.raw`, `.dat`) | raw binary |
//! | `s3://bucket/dir/x.zarr/array` (also `gs://`, `az://`, `http(s)://`) | Zarr v2 or v3 in object storage or on a web server (feature `object-store`) |
//! | `file:///abs/path…` | any of the above on the local file system |
//!
//! Extensions are matched case-insensitively. The raw `dtype` is a NumPy
//! type string (`<f4`, `>i2`, `|u1`, `|b1`; `=` or no prefix means
//! little-endian here) or a dtype name (`float32`). Parsing touches the file
//! system only to recognise Zarr directories without a `.zarr` suffix.
//!
//! In a URL the store's root is the path up to its first component ending
//! in `.zarr`, and what follows is the array path inside it; a URL with no
//! such component names the store's root. Only Zarr stores are read by URL.

use std::path::{Path, PathBuf};

use ndstream_engine::{DType, Error, Result};

/// Where a store lives and which format reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// An HDF5 file and the dataset (or group) inside it; `dataset` is empty
    /// when the path names only the file. A netCDF-3 file is named the same
    /// way (`dataset` is `/variable`); opening tells the two apart.
    Hdf5 { file: PathBuf, dataset: String },
    /// A Zarr store directory and the array (or group) path inside it, without
    /// leading or trailing `/` (empty for the root).
    Zarr { root: PathBuf, array: String },
    /// A Zarr store reached by URL (`s3://bucket/x.zarr`, `gs://`, `az://`,
    /// `http(s)://`; no trailing `/`) and the array (or group) path inside
    /// it, as for [`Location::Zarr`].
    ZarrUrl { root: String, array: String },
    /// An HDF5 or netCDF-4 file reached by URL (`s3://bucket/x.nc`,
    /// `http(s)://`; read-only, by byte ranges) and the dataset inside it,
    /// as for [`Location::Hdf5`].
    Hdf5Url { url: String, dataset: String },
    /// A NumPy `.npy` file.
    Npy(PathBuf),
    /// A raw binary file and its layout.
    Raw { file: PathBuf, spec: RawSpec },
}

/// The layout of a raw binary file: C-order elements of `dtype` starting at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSpec {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub little_endian: bool,
    /// Bytes to skip before the first element.
    pub offset: u64,
}

impl Location {
    /// This location as a string that [`parse_location`] reads back as the
    /// same location, with the file or store made absolute (symbolic links
    /// resolved where it exists): what another thread, process or machine
    /// with the same file system opens to read the same array, whatever its
    /// working directory. `None` if no such string exists (a path that is
    /// not UTF-8, or one the parser would read as something else).
    ///
    /// ```
    /// use ndstream_formats::{parse_location, Location};
    /// let loc = parse_location("x.bin?dtype=>i2&shape=3,4&offset=16").unwrap();
    /// let again = loc.to_locator().unwrap();
    /// assert!(again.starts_with('/') && again.ends_with("x.bin?dtype=>i2&shape=3,4&offset=16"));
    /// let Location::Raw { file, .. } = parse_location(&again).unwrap() else { panic!() };
    /// assert!(file.is_absolute());
    /// ```
    pub fn to_locator(&self) -> Option<String> {
        let abs = |p: &Path| -> Option<String> {
            let p = std::fs::canonicalize(p)
                .or_else(|_| std::path::absolute(p))
                .ok()?;
            p.to_str().map(str::to_string)
        };
        let (text, canonical) = match self {
            Location::Hdf5 { file, dataset } => {
                let f = abs(file)?;
                let text = if dataset.is_empty() {
                    f.clone()
                } else {
                    format!("{f}:{dataset}")
                };
                (
                    text,
                    Location::Hdf5 {
                        file: PathBuf::from(f),
                        dataset: dataset.clone(),
                    },
                )
            }
            Location::Zarr { root, array } => {
                let r = abs(root)?;
                let text = if array.is_empty() {
                    r.clone()
                } else {
                    format!("{r}/{array}")
                };
                (
                    text,
                    Location::Zarr {
                        root: PathBuf::from(r),
                        array: array.clone(),
                    },
                )
            }
            Location::ZarrUrl { root, array } => {
                let text = if array.is_empty() {
                    root.clone()
                } else {
                    format!("{root}/{array}")
                };
                (text, self.clone())
            }
            Location::Hdf5Url { url, dataset } => (format!("{url}:{dataset}"), self.clone()),
            Location::Npy(file) => {
                let f = abs(file)?;
                (f.clone(), Location::Npy(PathBuf::from(f)))
            }
            Location::Raw { file, spec } => {
                let f = abs(file)?;
                let shape: Vec<String> = spec.shape.iter().map(u64::to_string).collect();
                let text = format!(
                    "{f}?dtype={}&shape={}&offset={}",
                    typestr(spec.dtype, spec.little_endian),
                    shape.join(","),
                    spec.offset
                );
                (
                    text,
                    Location::Raw {
                        file: PathBuf::from(f),
                        spec: spec.clone(),
                    },
                )
            }
        };
        (parse_location(&text).ok()? == canonical).then_some(text)
    }
}

const HDF5_EXTS: [&str; 4] = ["h5", "hdf5", "nc", "he5"];
const RAW_EXTS: [&str; 3] = ["bin", "raw", "dat"];

/// Parse a user path into a [`Location`].
///
/// ```
/// use ndstream_formats::{parse_location, Location};
/// let loc = parse_location("data/x.h5:/grp/t2m").unwrap();
/// assert!(matches!(loc, Location::Hdf5 { ref dataset, .. } if dataset == "/grp/t2m"));
/// let loc = parse_location("out.zarr/a/b").unwrap();
/// assert!(matches!(loc, Location::Zarr { ref array, .. } if array == "a/b"));
/// let loc = parse_location("x.bin?dtype=>i2&shape=3,4&offset=16").unwrap();
/// let Location::Raw { spec, .. } = loc else { panic!() };
/// assert_eq!((spec.shape, spec.little_endian, spec.offset), (vec![3, 4], false, 16));
/// assert!(parse_location("x.bin?dtype=<f4").is_err()); // no shape
/// ```
///
/// # Errors
/// [`Error::Open`] for a path of no known format or a malformed raw spec.
pub fn parse_location(path: &str) -> Result<Location> {
    let loc = parse_unchecked(path)?;
    match &loc {
        Location::Zarr { array, .. } => check_inner(path, "array path", array)?,
        Location::ZarrUrl { root, array } => {
            if let Some(u) = crate::url::split_url(root) {
                check_inner(path, "URL path", u.path)?;
            }
            check_inner(path, "array path", array)?;
        }
        Location::Hdf5 { dataset, .. } => check_inner(path, "dataset path", dataset)?,
        Location::Hdf5Url { url, dataset } => {
            if let Some(u) = crate::url::split_url(url) {
                check_inner(path, "URL path", u.path)?;
            }
            check_inner(path, "dataset path", dataset)?;
        }
        Location::Npy(_) | Location::Raw { .. } => {}
    }
    Ok(loc)
}

/// A path inside a store (a Zarr array path, an HDF5 dataset path) must
/// stay inside it: no `.` or `..` components, no NUL or backslash, so that
/// joining it to the store's directory can never name anything outside.
fn check_inner(path: &str, what: &str, inner: &str) -> Result<()> {
    for part in inner.split('/') {
        if part == "." || part == ".." {
            return Err(Error::open(
                path,
                format!(
                    "the {what} `{inner}` has a `{part}` component; a path inside a store must \
                     stay inside it (name the store itself instead)"
                ),
            ));
        }
        if part.contains(['\0', '\\']) {
            return Err(Error::open(
                path,
                format!("the {what} `{inner}` contains a NUL or backslash character"),
            ));
        }
    }
    Ok(())
}

fn parse_unchecked(path: &str) -> Result<Location> {
    if let Some(local) = path.strip_prefix("file://") {
        // `file:///abs/x.zarr` or `file://localhost/abs/x.zarr`.
        let local = local.strip_prefix("localhost").unwrap_or(local);
        if !local.starts_with('/') {
            return Err(Error::open(
                path,
                "a file:// URL names an absolute path (file:///dir/x.zarr)",
            ));
        }
        return parse_unchecked(local);
    }
    if let Some(loc) = crate::url::parse_url(path)? {
        return Ok(loc);
    }
    if let Some(loc) = split_hdf5(path) {
        return Ok(loc);
    }
    if let Some((file, query)) = split_raw(path) {
        let Some(query) = query else {
            return Err(Error::open(
                path,
                "a raw binary file needs its layout: `file.bin?dtype=<f4&shape=100,200[&offset=0]`",
            ));
        };
        let spec = parse_raw_query(query)
            .map_err(|m| Error::open(path, format!("malformed raw spec: {m}")))?;
        return Ok(Location::Raw { file, spec });
    }
    if let Some(loc) = split_zarr_suffix(path) {
        return Ok(loc);
    }
    if has_ext(path, "npy") {
        return Ok(Location::Npy(PathBuf::from(path)));
    }
    if let Some(loc) = find_zarr_root(path) {
        return Ok(loc);
    }
    Err(Error::open(
        path,
        "unrecognised format: expected `file.h5:/dataset`, `dir.zarr[/array]`, `file.npy`, \
         `file.bin?dtype=<f4&shape=...` or `s3://bucket/x.zarr[/array]`",
    ))
}

fn ext_of(name: &str) -> Option<String> {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    file_name
        .rfind('.')
        .map(|i| file_name[i + 1..].to_ascii_lowercase())
}

fn has_ext(name: &str, ext: &str) -> bool {
    ext_of(name).as_deref() == Some(ext)
}

/// `file.h5`, `file.h5:/dset` or `file.h5:dset`.
fn split_hdf5(path: &str) -> Option<Location> {
    // The file part ends at the first `:` that follows an HDF5 extension.
    for (i, _) in path.match_indices(':') {
        if HDF5_EXTS.iter().any(|e| has_ext(&path[..i], e)) {
            let ds = &path[i + 1..];
            let dataset = if ds.is_empty() || ds.starts_with('/') {
                ds.to_string()
            } else {
                format!("/{ds}")
            };
            return Some(Location::Hdf5 {
                file: PathBuf::from(&path[..i]),
                dataset,
            });
        }
    }
    if HDF5_EXTS.iter().any(|e| has_ext(path, e)) {
        return Some(Location::Hdf5 {
            file: PathBuf::from(path),
            dataset: String::new(),
        });
    }
    None
}

/// `file.bin` with an optional `?query`.
pub(crate) fn split_raw(path: &str) -> Option<(PathBuf, Option<&str>)> {
    if let Some(local) = path.strip_prefix("file://") {
        return split_raw(local.strip_prefix("localhost").unwrap_or(local));
    }
    if crate::url::split_url(path).is_some() {
        // A store URL is never a local raw file.
        return None;
    }
    let (file, query) = match path.find('?') {
        Some(i) => (&path[..i], Some(&path[i + 1..])),
        None => (path, None),
    };
    RAW_EXTS
        .iter()
        .any(|e| has_ext(file, e))
        .then(|| (PathBuf::from(file), query))
}

/// A path with a component ending in `.zarr`.
fn split_zarr_suffix(path: &str) -> Option<Location> {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.to_ascii_lowercase().ends_with(".zarr") && part.len() > 5 {
            let root = parts[..=i].join("/");
            let array = parts[i + 1..]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            return Some(Location::Zarr {
                root: PathBuf::from(if root.is_empty() { "/" } else { &root }),
                array,
            });
        }
    }
    None
}

/// No `.zarr` suffix: the shortest existing prefix that holds Zarr metadata is the root.
fn find_zarr_root(path: &str) -> Option<Location> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    for i in 1..=parts.len() {
        let root = parts[..i].join("/");
        if root.is_empty() {
            continue;
        }
        if is_zarr_node(Path::new(&root)) {
            let array = parts[i..]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            return Some(Location::Zarr {
                root: PathBuf::from(root),
                array,
            });
        }
    }
    None
}

/// True if `dir` holds Zarr v2 or v3 metadata.
pub(crate) fn is_zarr_node(dir: &Path) -> bool {
    ["zarr.json", ".zarray", ".zgroup"]
        .iter()
        .any(|m| dir.join(m).is_file())
}

fn parse_raw_query(query: &str) -> std::result::Result<RawSpec, String> {
    let mut dtype = None;
    let mut shape = None;
    let mut offset = 0u64;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value"))?;
        match k.trim() {
            "dtype" => dtype = Some(parse_typestr(v.trim())?),
            "shape" => {
                let v = v
                    .trim()
                    .trim_matches(|c| c == '(' || c == ')' || c == '[' || c == ']');
                let dims: std::result::Result<Vec<u64>, _> = v
                    .split([',', 'x'])
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse::<u64>())
                    .collect();
                shape =
                    Some(dims.map_err(|_| {
                        format!("shape `{v}` is not a list of non-negative integers")
                    })?);
            }
            "offset" => {
                offset = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("offset `{v}` is not a byte count"))?
            }
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected dtype, shape, offset)"
                ))
            }
        }
    }
    let (dtype, little_endian) = dtype.ok_or("missing dtype (e.g. dtype=<f4)")?;
    let shape = shape.ok_or("missing shape (e.g. shape=100,200)")?;
    Ok(RawSpec {
        dtype,
        shape,
        little_endian,
        offset,
    })
}

/// A NumPy type string (`<f4`, `>i8`, `|b1`, `u2`) or dtype name (`float32`)
/// into a dtype and whether it is little-endian.
pub(crate) fn parse_typestr(s: &str) -> std::result::Result<(DType, bool), String> {
    if let Ok(dt) = s.parse::<DType>() {
        if !s.starts_with(['<', '>', '|', '=']) {
            return Ok((dt, true));
        }
    }
    let (order, code) = match s.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &s[1..]),
        _ => ('=', s),
    };
    let dt = match code {
        "b1" | "?" => DType::Bool,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => {
            return Err(format!(
                "unsupported dtype `{s}` (supported: b1 i1 i2 i4 i8 u1 u2 u4 u8 f4 f8 with byte order < > |)"
            ))
        }
    };
    if order == '|' && dt.size() > 1 {
        return Err(format!(
            "dtype `{s}`: `|` (no byte order) is only for 1-byte types; use < or >"
        ));
    }
    // A 1-byte type has no byte order: `>u1` and `|u1` are the same type.
    Ok((dt, order != '>' || dt.size() == 1))
}

/// The type string of a dtype in a byte order (`<f4`, `>i2`, `|u1`).
pub(crate) fn typestr(dtype: DType, little_endian: bool) -> String {
    let order = if dtype.size() == 1 {
        '|'
    } else if little_endian {
        '<'
    } else {
        '>'
    };
    format!("{order}{}", dtype.typestr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdf5_paths() {
        for (p, f, d) in [
            ("a/b.h5:/x/y", "a/b.h5", "/x/y"),
            ("b.HDF5:x", "b.HDF5", "/x"),
            ("c.nc", "c.nc", ""),
            ("d.he5:/", "d.he5", "/"),
        ] {
            assert_eq!(
                parse_location(p).unwrap(),
                Location::Hdf5 {
                    file: PathBuf::from(f),
                    dataset: d.to_string()
                },
                "{p}"
            );
        }
    }

    #[test]
    fn zarr_paths() {
        assert_eq!(
            parse_location("runs/out.zarr/").unwrap(),
            Location::Zarr {
                root: PathBuf::from("runs/out.zarr"),
                array: String::new()
            }
        );
        assert_eq!(
            parse_location("/abs/x.ZARR/g//a").unwrap(),
            Location::Zarr {
                root: PathBuf::from("/abs/x.ZARR"),
                array: "g/a".into()
            }
        );
    }

    #[test]
    fn raw_specs() {
        let Location::Raw { file, spec } = parse_location("x.dat?shape=(2,3)&dtype=|u1").unwrap()
        else {
            panic!()
        };
        assert_eq!(file, PathBuf::from("x.dat"));
        assert_eq!(
            spec,
            RawSpec {
                dtype: DType::U8,
                shape: vec![2, 3],
                little_endian: true,
                offset: 0
            }
        );
        let Location::Raw { spec, .. } = parse_location("x.raw?dtype=float64&shape=5").unwrap()
        else {
            panic!()
        };
        assert_eq!(spec.dtype, DType::F64);
        for bad in [
            "x.bin",
            "x.bin?dtype=<f4",
            "x.bin?shape=3",
            "x.bin?dtype=<c8&shape=3",
            "x.bin?dtype=|f4&shape=3",
            "x.bin?dtype=<f4&shape=3,a",
            "x.bin?dtype=<f4&shape=3&offset=-1",
            "x.bin?dtype=<f4&shape=3&colour=red",
            "x.bin?dtype",
        ] {
            let e = parse_location(bad).unwrap_err();
            assert!(matches!(e, Error::Open { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn typestrs_round_trip() {
        for dt in DType::ALL {
            for le in [true, false] {
                let s = typestr(dt, le);
                let (d, l) = parse_typestr(&s).unwrap();
                assert_eq!(d, dt);
                assert_eq!(l, le || dt.size() == 1, "{s}");
            }
        }
    }

    #[test]
    fn inner_paths_stay_inside() {
        for bad in [
            "out.zarr/../../../escaped",
            "grp.zarr/a/../../other.zarr",
            "grp.zarr/./x",
            "f.h5:/a/../b",
            "f.h5:..",
        ] {
            let e = parse_location(bad).unwrap_err();
            assert!(e.to_string().contains("stay inside"), "{bad}: {e}");
        }
        // `..` before the store is the user's choice of directory.
        assert!(parse_location("../data/x.zarr/a").is_ok());
        assert!(parse_location("../data/f.h5:/g/x").is_ok());
        assert!(parse_location("a..b.zarr/x..y").is_ok());
    }

    #[test]
    fn unknown_format() {
        assert!(matches!(
            parse_location("notes.txt"),
            Err(Error::Open { .. })
        ));
        assert_eq!(
            parse_location("a.npy").unwrap(),
            Location::Npy(PathBuf::from("a.npy"))
        );
    }
}
