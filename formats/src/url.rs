//! URLs in the path syntax: `s3://bucket/dir/x.zarr/array` and the like
//! (see [`crate::path`]). Parsing needs no feature; reaching the store
//! needs `object-store` (see `remote`).

use ndstream_engine::{Error, Result};

use crate::path::Location;

/// The URL schemes a store can be reached by.
pub(crate) const SCHEMES: [&str; 10] = [
    "s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl", "http", "https",
];

/// A URL split into its scheme, its authority (bucket, container or host)
/// and its path inside that, without leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
}

/// Split `url` (`scheme://authority/path`); `None` if it has no `://`
/// after a scheme name (letters, digits, `+`, `-`, `.`).
pub(crate) fn split_url(url: &str) -> Option<Url<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some(Url {
        scheme,
        authority,
        path: path.trim_matches('/'),
    })
}

/// `url` with its scheme and authority written one way for each service,
/// for comparing locations: `s3a` is `s3`; `azure`, `abfs(s)` and `adl`
/// are `az`, with the container alone (`container@account.dfs…` names the
/// container); schemes and hosts are case-insensitive. Other URLs, and
/// text that is not a URL, come back as they are.
pub(crate) fn canonical(url: &str) -> String {
    let Some(u) = split_url(url) else {
        return url.to_string();
    };
    let scheme = u.scheme.to_ascii_lowercase();
    let (scheme, authority) = match scheme.as_str() {
        "s3a" => ("s3".to_string(), u.authority.to_string()),
        "az" | "azure" | "abfs" | "abfss" | "adl" => (
            "az".to_string(),
            u.authority
                .split_once('@')
                .map_or(u.authority, |(c, _)| c)
                .to_string(),
        ),
        "http" | "https" => (scheme, u.authority.to_ascii_lowercase()),
        _ => (scheme, u.authority.to_string()),
    };
    if u.path.is_empty() {
        format!("{scheme}://{authority}")
    } else {
        format!("{scheme}://{authority}/{}", u.path)
    }
}

/// Extensions of the formats that are read from local files only.
const FILE_EXTS: [&str; 4] = ["npy", "bin", "raw", "dat"];

/// Extensions of HDF5 and netCDF-4 files, read by URL through byte ranges.
const HDF5_URL_EXTS: [&str; 5] = ["h5", "hdf5", "nc", "he5", "nc4"];

/// `url` split at the HDF5 file it names: the file's URL and the dataset
/// path after it (`s3://b/x.nc:/t2m`, `s3://b/x.nc` for the whole file,
/// `/` added in front of a relative dataset path, as for local files).
fn split_hdf5_url(url: &str) -> Option<(String, String)> {
    let ext_at = |end: usize| {
        let file = &url[..end];
        let leaf = file.rsplit('/').next().unwrap_or(file);
        leaf.rsplit_once('.').is_some_and(|(stem, e)| {
            !stem.is_empty() && HDF5_URL_EXTS.contains(&e.to_ascii_lowercase().as_str())
        })
    };
    // The file part ends at the first `:` after the scheme's that follows
    // an HDF5 extension, or at the end.
    let after_scheme = url.find("://")? + 3;
    for (i, _) in url.match_indices(':').filter(|(i, _)| *i >= after_scheme) {
        if ext_at(i) {
            let ds = &url[i + 1..];
            let dataset = if ds.is_empty() || ds.starts_with('/') {
                ds.to_string()
            } else {
                format!("/{ds}")
            };
            return Some((url[..i].to_string(), dataset));
        }
    }
    ext_at(url.len()).then(|| (url.to_string(), String::new()))
}

/// Parse a URL into a [`Location::ZarrUrl`] or a [`Location::Hdf5Url`];
/// `Ok(None)` if `path` is not a URL (`file://` is handled by the caller).
pub(crate) fn parse_url(path: &str) -> Result<Option<Location>> {
    let Some(u) = split_url(path) else {
        return Ok(None);
    };
    let scheme = u.scheme.to_ascii_lowercase();
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(Error::open(
            path,
            format!(
                "unsupported URL scheme `{}://`: expected one of {}, or file",
                u.scheme,
                SCHEMES.join(", ")
            ),
        ));
    }
    if u.authority.is_empty() {
        return Err(Error::open(
            path,
            "the URL names no bucket, container or host",
        ));
    }
    if path.contains(['?', '#']) {
        return Err(Error::open(
            path,
            "a store URL cannot have a query or fragment (`?`, `#`)",
        ));
    }
    let parts: Vec<&str> = u.path.split('/').filter(|p| !p.is_empty()).collect();
    let base = format!("{}://{}", u.scheme, u.authority);
    let zarr_part = parts
        .iter()
        .any(|p| p.len() > 5 && p.to_ascii_lowercase().ends_with(".zarr"));
    if !zarr_part {
        if let Some((url, dataset)) = split_hdf5_url(path) {
            return Ok(Some(Location::Hdf5Url { url, dataset }));
        }
    }
    let at = parts
        .iter()
        .position(|p| p.len() > 5 && p.to_ascii_lowercase().ends_with(".zarr"));
    let (root_parts, array_parts) = match at {
        Some(i) => parts.split_at(i + 1),
        None => {
            if let Some(last) = parts.last() {
                let ext = last.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
                if ext.is_some_and(|e| FILE_EXTS.contains(&e.as_str())) {
                    return Err(Error::open(
                        path,
                        "only Zarr stores and HDF5/netCDF-4 files are read by URL; copy \
                         this file to a local path to read it",
                    ));
                }
            }
            (parts.as_slice(), &[][..])
        }
    };
    let root = if root_parts.is_empty() {
        base
    } else {
        format!("{base}/{}", root_parts.join("/"))
    };
    Ok(Some(Location::ZarrUrl {
        root,
        array: array_parts.join("/"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_loc(p: &str) -> (String, String) {
        match parse_url(p).unwrap().unwrap() {
            Location::ZarrUrl { root, array } => (root, array),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let u = split_url("s3://bucket/a/b.zarr/").unwrap();
        assert_eq!(
            (u.scheme, u.authority, u.path),
            ("s3", "bucket", "a/b.zarr")
        );
        let u = split_url("gs://bucket").unwrap();
        assert_eq!((u.authority, u.path), ("bucket", ""));
        assert!(split_url("/local/x.zarr").is_none());
        assert!(split_url("a b://x").is_none());
    }

    #[test]
    fn a_zarr_url_splits_at_its_first_zarr_component() {
        assert_eq!(
            url_loc("s3://b/runs/x.zarr/g/t2m/"),
            ("s3://b/runs/x.zarr".into(), "g/t2m".into())
        );
        assert_eq!(
            url_loc("https://host:8000/data/X.ZARR"),
            ("https://host:8000/data/X.ZARR".into(), String::new())
        );
        // No `.zarr`: the URL is the store's root.
        assert_eq!(
            url_loc("gs://b/store/"),
            ("gs://b/store".into(), String::new())
        );
        assert_eq!(url_loc("az://c"), ("az://c".into(), String::new()));
        assert!(parse_url("x.zarr/a").unwrap().is_none());
    }

    fn hdf5_loc(p: &str) -> (String, String) {
        match parse_url(p).unwrap().unwrap() {
            Location::Hdf5Url { url, dataset } => (url, dataset),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_hdf5_url_splits_at_the_file_as_a_local_path_does() {
        assert_eq!(
            hdf5_loc("s3://b/era5/t.nc:/t2m"),
            ("s3://b/era5/t.nc".into(), "/t2m".into())
        );
        assert_eq!(
            hdf5_loc("https://host:8000/d/x.H5:g/x"),
            ("https://host:8000/d/x.H5".into(), "/g/x".into())
        );
        assert_eq!(
            hdf5_loc("s3://b/x.hdf5"),
            ("s3://b/x.hdf5".into(), String::new())
        );
        assert_eq!(
            hdf5_loc("gs://b/x.nc4:"),
            ("gs://b/x.nc4".into(), String::new())
        );
        // The port's `:` is not a dataset separator; a `.zarr` component
        // makes the URL a Zarr store's.
        assert_eq!(
            url_loc("s3://b/x.zarr/a.nc"),
            ("s3://b/x.zarr".into(), "a.nc".into())
        );
        // A bare extension is no file name.
        assert_eq!(url_loc("s3://b/.nc"), ("s3://b/.nc".into(), String::new()));
    }

    #[test]
    fn one_bucket_named_two_ways_is_one_location() {
        assert_eq!(canonical("S3A://b/x.zarr/"), "s3://b/x.zarr");
        assert_eq!(canonical("s3://b/x.zarr"), "s3://b/x.zarr");
        assert_eq!(
            canonical("abfss://c@acct.dfs.core.windows.net/d/x.zarr"),
            "az://c/d/x.zarr"
        );
        assert_eq!(canonical("azure://c/x.zarr"), "az://c/x.zarr");
        assert_eq!(
            canonical("HTTPS://Host:8000/x.zarr"),
            "https://host:8000/x.zarr"
        );
        assert_eq!(canonical("gs://b"), "gs://b");
        assert_eq!(canonical("/local/x.zarr"), "/local/x.zarr");
    }

    #[test]
    fn urls_ndstream_cannot_read_are_refused_with_the_reason() {
        let e = |p: &str| parse_url(p).unwrap_err().to_string();
        assert!(e("ftp://h/x.zarr").contains("unsupported URL scheme `ftp://`"));
        assert!(e("s3:///x.zarr").contains("names no bucket"));
        assert!(e("s3://b/x.npy").contains("only Zarr stores and HDF5/netCDF-4 files"));
        assert!(e("https://h/x.zarr?sig=1").contains("query or fragment"));
    }
}
