//! Raw binary files: a layout given in the path (`file.bin?dtype=<f4&shape=100,200[&offset=16]`)
//! over the contiguous source and sink ([`crate::contiguous`]).

use std::path::Path;
use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, Error, Result};

use crate::contiguous::{contiguous_info, ContiguousSink, ContiguousSource, Layout};
use crate::format::Format;
use crate::path::{parse_typestr, Location, RawSpec};
use crate::spec::{ArrayInfo, SinkSpec, StoreInfo};

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

/// The layout of a raw file written from `spec`: `query` is the path's
/// `?dtype=...` part, if any. Its dtype and shape must agree with the
/// spec; it sets the byte order and offset (default little-endian at
/// offset 0).
pub(crate) fn write_spec(name: &str, query: Option<&str>, spec: &SinkSpec) -> Result<RawSpec> {
    let mut raw = RawSpec {
        dtype: spec.dtype,
        shape: spec.shape.clone(),
        little_endian: true,
        offset: 0,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
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
                let dims = dims
                    .map_err(|_| Error::open(name, format!("malformed raw spec: shape `{v}`")))?;
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
                raw.offset = v
                    .trim()
                    .parse()
                    .map_err(|_| Error::open(name, format!("malformed raw spec: offset `{v}`")))?
            }
            other => {
                return Err(Error::open(
                    name,
                    format!("malformed raw spec: unknown key `{other}`"),
                ))
            }
        }
    }
    Ok(raw)
}

/// Create a raw binary file laid out as `raw` (see [`write_spec`]) for `spec`.
pub(crate) fn create_sink(
    name: &str,
    file: &Path,
    raw: &RawSpec,
    spec: &SinkSpec,
) -> Result<ContiguousSink> {
    let layout = raw_layout(raw);
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

/// Raw binary files, in every build (see the module doc).
pub(crate) struct Raw;

impl Format for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn probe(&self, loc: &Location) -> bool {
        matches!(loc, Location::Raw { .. })
    }
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>> {
        let (file, spec) = raw_of(path, loc)?;
        Ok(Arc::new(open_source(path, file, spec)?))
    }
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo> {
        let (file, spec) = raw_of(path, loc)?;
        Ok(StoreInfo::Array(info(path, file, spec)?))
    }
    fn sink_needs(&self, path: &str, _: &Location, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        crate::contiguous::sink_needs(path, spec)
    }
    fn create(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        let (file, raw) = raw_of(path, loc)?;
        Ok(Arc::new(create_sink(path, file, raw, spec)?))
    }
}

/// The file and layout of a raw location.
fn raw_of<'a>(path: &str, loc: &'a Location) -> Result<(&'a Path, &'a RawSpec)> {
    match loc {
        Location::Raw { file, spec } => Ok((file, spec)),
        _ => Err(Error::open(path, "not a raw binary file")),
    }
}
