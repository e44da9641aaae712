//! NumPy `.npy` files: the header, and the contiguous source/sink of
//! [`crate::contiguous`] behind it.
//!
//! Reading accepts format versions 1.0, 2.0 and 3.0, C and Fortran order,
//! both byte orders and every numeric dtype plus bool; structured, complex,
//! string and object dtypes are refused with [`Error::Open`]. Writing emits
//! a C-order, little-endian file with a 1.0 header (2.0 when the header
//! does not fit 1.0's 16-bit length), padded to 64 bytes as NumPy does.
//! The write protocol, the incomplete marker, the lock, `Overwrite` by a
//! temporary renamed into place and resume (which rewrites every chunk)
//! are [`crate::contiguous::ContiguousSink`]'s.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, DType, Error, Result};

use crate::contiguous::{contiguous_info, open_err, ContiguousSink, ContiguousSource, Layout};
use crate::format::Format;
use crate::path::{parse_typestr, typestr, Location};
use crate::spec::{ArrayInfo, SinkSpec, StoreInfo};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Read and parse the header of `file`: the element layout (offset = header length).
pub(crate) fn read_header(name: &str, file: &Path) -> Result<Layout> {
    let mut f = std::fs::File::open(file).map_err(|e| open_err(name, "cannot open the file", e))?;
    let mut pre = [0u8; 12];
    let got =
        read_up_to(&mut f, &mut pre).map_err(|e| open_err(name, "cannot read the header", e))?;
    if got < 10 || &pre[..6] != MAGIC {
        return Err(Error::open(name, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10usize),
        2 | 3 if got == 12 => (
            u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize,
            12usize,
        ),
        _ => {
            return Err(Error::open(
                name,
                format!(".npy format version {major}.{minor} is not supported"),
            ))
        }
    };
    if hlen > 1 << 24 {
        return Err(Error::open(
            name,
            format!("implausible .npy header length {hlen}"),
        ));
    }
    let mut header = vec![0u8; hlen];
    let pre_extra = got.saturating_sub(start);
    header[..pre_extra.min(hlen)].copy_from_slice(&pre[start..start + pre_extra.min(hlen)]);
    if pre_extra < hlen {
        let n = read_up_to(&mut f, &mut header[pre_extra..])
            .map_err(|e| open_err(name, "cannot read the header", e))?;
        if n < hlen - pre_extra {
            return Err(Error::open(name, "the .npy header is truncated"));
        }
    }
    let text = String::from_utf8_lossy(&header);
    let mut layout =
        parse_header_dict(&text).map_err(|m| Error::open(name, format!("bad .npy header: {m}")))?;
    layout.offset = (start + hlen) as u64;
    Ok(layout)
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Parse `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header_dict(text: &str) -> std::result::Result<Layout, String> {
    let value_after = |key: &str| -> std::result::Result<&str, String> {
        let pat_s = format!("'{key}'");
        let pat_d = format!("\"{key}\"");
        let i = text
            .find(&pat_s)
            .map(|i| i + pat_s.len())
            .or_else(|| text.find(&pat_d).map(|i| i + pat_d.len()))
            .ok_or_else(|| format!("no `{key}` key"))?;
        let rest = text[i..].trim_start();
        Ok(rest
            .strip_prefix(':')
            .ok_or_else(|| format!("no `:` after `{key}`"))?
            .trim_start())
    };
    let descr = value_after("descr")?;
    let descr = match descr.chars().next() {
        Some(q @ ('\'' | '"')) => {
            let end = descr[1..].find(q).ok_or("unterminated descr")?;
            &descr[1..1 + end]
        }
        Some('[') => return Err("structured dtypes are not supported".into()),
        _ => return Err("descr is not a string".into()),
    };
    let (dtype, little_endian) = parse_typestr(descr)?;
    let fortran = {
        let v = value_after("fortran_order")?;
        if v.starts_with("True") {
            true
        } else if v.starts_with("False") {
            false
        } else {
            return Err("fortran_order is neither True nor False".into());
        }
    };
    let shape_text = value_after("shape")?;
    let shape_text = shape_text.strip_prefix('(').ok_or("shape is not a tuple")?;
    let end = shape_text.find(')').ok_or("unterminated shape")?;
    let shape = shape_text[..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| format!("shape entry `{s}` is not an integer"))
        })
        .collect::<std::result::Result<Vec<u64>, String>>()?;
    Ok(Layout {
        dtype,
        shape,
        little_endian,
        fortran,
        offset: 0,
        record_stride: None,
    })
}

/// The header bytes (magic, version, length, padded dict) for a C-order array.
pub(crate) fn header_bytes(dtype: DType, shape: &[u64], little_endian: bool) -> Vec<u8> {
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_s}, }}",
        typestr(dtype, little_endian)
    );
    // Total length (magic + version + length field + dict + padding + \n) is a multiple of 64.
    let build = |len_field: usize, major: u8| -> Option<Vec<u8>> {
        let unpadded = 6 + 2 + len_field + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let hlen = total - 6 - 2 - len_field;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[major, 0]);
        if len_field == 2 {
            out.extend_from_slice(&u16::try_from(hlen).ok()?.to_le_bytes());
        } else {
            out.extend_from_slice(&u32::try_from(hlen).ok()?.to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        Some(out)
    };
    build(2, 1).or_else(|| build(4, 2)).unwrap_or_default()
}

/// Open a `.npy` file as a memory-mapped source.
pub(crate) fn open_source(name: &str, file: &Path) -> Result<ContiguousSource> {
    let layout = read_header(name, file)?;
    let mut src = ContiguousSource::open(name, file, layout)?;
    src.locator = crate::Location::Npy(file.to_path_buf()).to_locator();
    Ok(src)
}

/// Create a `.npy` file for `spec` (C order, little-endian).
pub(crate) fn create_sink(name: &str, file: &Path, spec: &SinkSpec) -> Result<ContiguousSink> {
    let header = header_bytes(spec.dtype, &spec.shape, true);
    let layout = Layout {
        dtype: spec.dtype,
        shape: spec.shape.clone(),
        little_endian: true,
        fortran: false,
        offset: header.len() as u64,
        record_stride: None,
    };
    let want = layout.clone();
    ContiguousSink::create(name, file, layout, &header, spec, |f| {
        let got = read_header(name, f).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!(
                "the existing file holds {} {:?} ({} order, {}-endian), the write is {} {:?}",
                got.dtype,
                got.shape,
                if got.fortran { "Fortran" } else { "C" },
                if got.little_endian { "little" } else { "big" },
                want.dtype,
                want.shape
            ));
        }
        let len = std::fs::metadata(f).map_err(|e| e.to_string())?.len();
        let need = want.offset + want.nbytes().unwrap_or(u64::MAX);
        if len != need {
            return Err(format!("the existing file is {len} bytes, expected {need}"));
        }
        Ok(())
    })
}

/// `info` for a `.npy` file.
pub(crate) fn info(name: &str, file: &Path) -> Result<ArrayInfo> {
    let src_layout = read_header(name, file)?;
    // Opening checks the size, so a truncated file is reported here too.
    ContiguousSource::open(name, file, src_layout.clone())?;
    Ok(contiguous_info(name, "npy", file, &src_layout))
}

/// NumPy `.npy` files (feature `npy`; see the module doc).
pub(crate) struct Npy;

impl Format for Npy {
    fn name(&self) -> &'static str {
        "npy"
    }
    fn probe(&self, loc: &Location) -> bool {
        matches!(loc, Location::Npy(_))
    }
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>> {
        Ok(Arc::new(open_source(path, npy_file(path, loc)?)?))
    }
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo> {
        Ok(StoreInfo::Array(info(path, npy_file(path, loc)?)?))
    }
    fn sink_needs(&self, path: &str, _: &Location, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        crate::contiguous::sink_needs(path, spec)
    }
    fn create(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        Ok(Arc::new(create_sink(path, npy_file(path, loc)?, spec)?))
    }
}

/// The file of a `.npy` location.
fn npy_file<'a>(path: &str, loc: &'a Location) -> Result<&'a Path> {
    match loc {
        Location::Npy(file) => Ok(file),
        _ => Err(Error::open(path, "not a .npy file")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        for shape in [vec![], vec![7], vec![3, 4, 5]] {
            let h = header_bytes(DType::I16, &shape, false);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
            let text = String::from_utf8_lossy(&h[10..]);
            let l = parse_header_dict(&text).unwrap();
            assert_eq!(
                (l.dtype, l.shape, l.little_endian, l.fortran),
                (DType::I16, shape, false, false)
            );
        }
    }

    #[test]
    fn header_refuses_unsupported() {
        for d in [
            "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
            "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }",
        ] {
            assert!(parse_header_dict(d).is_err(), "{d}");
        }
    }
}
