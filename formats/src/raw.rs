//! Raw binary files: a layout given in the path (`file.bin?dtype=<f4&shape=100,200[&offset=16]`)
//! over the contiguous source and sink ([`crate::contiguous`]).

use std::path::Path;

use ndstream_engine::{Error, Result};

use crate::contiguous::{contiguous_info, ContiguousSink, ContiguousSource, Layout};
use crate::path::{parse_typestr, RawSpec};
use crate::spec::{ArrayInfo, SinkSpec};

/// Open a raw binary file with an explicit layout.
pub(crate) fn open_source(name: &str, file: &Path, spec: &RawSpec) -> Result<ContiguousSource> {
    let mut src = ContiguousSource::open(name, file, raw_layout(spec))?;
    src.locator = crate::Location::Raw {
        file: file.to_path_buf(),
        spec: spec.clone(),
    }
    .to_locator();
    Ok(src)
}

fn raw_layout(spec: &RawSpec) -> Layout {
    Layout {
        dtype: spec.dtype,
        shape: spec.shape.clone(),
        little_endian: spec.little_endian,
        fortran: false,
        offset: spec.offset,
        record_stride: None,
    }
}

/// Create a raw binary file for `spec`. `query` is the path's `?dtype=...`
/// part, if any: its dtype and shape must agree with the spec, and it sets
/// the byte order and offset (default little-endian at offset 0).
pub(crate) fn create_sink(
    name: &str,
    file: &Path,
    query: Option<&str>,
    spec: &SinkSpec,
) -> Result<ContiguousSink> {
    let mut raw = RawSpec {
        dtype: spec.dtype,
        shape: spec.shape.clone(),
        little_endian: true,
        offset: 0,
    };
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::open(
                    name,
                    format!("malformed raw spec: `{pair}` is not key=value"),
                )
            })?;
            match k.trim() {
                "dtype" => {
                    let (dt, le) = parse_typestr(v.trim())
                        .map_err(|m| Error::open(name, format!("malformed raw spec: {m}")))?;
                    if dt != spec.dtype {
                        return Err(Error::open(
                            name,
                            format!("the path says dtype {dt} but the data is {}", spec.dtype),
                        ));
                    }
                    raw.little_endian = le;
                }
                "shape" => {
                    let dims: std::result::Result<Vec<u64>, _> = v
                        .trim()
                        .trim_matches(|c| c == '(' || c == ')' || c == '[' || c == ']')
                        .split([',', 'x'])
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| s.trim().parse::<u64>())
                        .collect();
                    let dims = dims.map_err(|_| {
                        Error::open(name, format!("malformed raw spec: shape `{v}`"))
                    })?;
                    if dims != spec.shape {
                        return Err(Error::open(
                            name,
                            format!(
                                "the path says shape {dims:?} but the data is {:?}",
                                spec.shape
                            ),
                        ));
                    }
                }
                "offset" => {
                    raw.offset = v.trim().parse().map_err(|_| {
                        Error::open(name, format!("malformed raw spec: offset `{v}`"))
                    })?
                }
                other => {
                    return Err(Error::open(
                        name,
                        format!("malformed raw spec: unknown key `{other}`"),
                    ))
                }
            }
        }
    }
    let layout = raw_layout(&raw);
    let need = layout
        .offset
        .saturating_add(layout.nbytes().unwrap_or(u64::MAX));
    // No header: the bytes before `offset` are the zeros of the sized file.
    ContiguousSink::create(name, file, layout, &[], spec, |f| {
        let len = std::fs::metadata(f).map_err(|e| e.to_string())?.len();
        if len == need {
            Ok(())
        } else {
            Err(format!(
                "the existing file is {len} bytes, this array needs {need}"
            ))
        }
    })
}

/// `info` for a raw file.
pub(crate) fn info(name: &str, file: &Path, spec: &RawSpec) -> Result<ArrayInfo> {
    let src = open_source(name, file, spec)?;
    Ok(contiguous_info(name, "raw", file, &src.layout))
}
