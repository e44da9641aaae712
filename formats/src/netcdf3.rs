//! NetCDF-3 files, read only: classic (`CDF\x01`), 64-bit offset
//! (`CDF\x02`) and 64-bit data (CDF-5, `CDF\x05`).
//!
//! They are named like HDF5 files (`file.nc:/t2m`, see [`crate::path`]):
//! opening a `Location::Hdf5` first reads the file's first four bytes, and
//! a netCDF-3 magic number sends it here instead of to libhdf5 (so netCDF-3
//! files read in builds without the `hdf5` feature too). A netCDF-3 file
//! has no groups: its variables are `/name`.
//!
//! A variable is stored uncompressed, big-endian, in C order: a
//! fixed-size variable as one run of bytes from its `begin` offset; a
//! record variable (whose first dimension is the unlimited one) as one
//! slab per record, `recsize` bytes apart, the record variables' slabs
//! interleaved. Either is a [`ContiguousSource`] over a memory map (a
//! record variable's axis 0 having the byte stride `recsize`), so chunks
//! and strided selections are gathered straight from the file, like `.npy`,
//! with the grid [`ChunkGrid::auto`](ndstream_engine::ChunkGrid::auto) picks.
//!
//! The header is parsed here, after the format's specification (Unidata's
//! "NetCDF Classic and 64-bit Offset Format" and the CDF-5 addendum), with
//! every count and length checked against the bytes that remain before
//! anything is allocated for it. (The `netcdf3` crate parses the same
//! header, and the tests use it as an oracle, but it keeps the variables'
//! offsets to itself and reads a variable only whole, into memory.) As
//! netCDF-C does, the stored `vsize` is not trusted (it overflows for large
//! variables): sizes come from the dimensions, and `recsize` is the sum of
//! the record variables' sizes padded to 4 bytes, except that a file whose
//! only record variable is its first has its records packed, unpadded.
//! A `numrecs` of "streaming" (all ones) is worked out from the file's size.
//!
//! Types: `byte` is int8, `char` is read as uint8 (its bytes), `short`,
//! `int`, `float`, `double`, and CDF-5's `ubyte`, `ushort`, `uint`,
//! `int64` and `uint64` as their NumPy namesakes. Attributes become JSON:
//! `char` ones strings, numeric ones a number (one value) or a list,
//! non-finite floats `null`. An array's fill value is its `_FillValue`
//! attribute, else netCDF's default fill for its type.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use ndstream_engine::{Attributes, DType, Error, Result};
use serde_json::Value;

use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource};

use crate::contiguous::{open_err, ContiguousSource, Layout};
use crate::format::Format;
use crate::path::Location;
use crate::spec::{ArrayInfo, SinkSpec, StoreInfo};

/// Which netCDF-3 variant a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// `CDF\x01`: 32-bit offsets.
    Classic,
    /// `CDF\x02`: 64-bit offsets.
    Offset64,
    /// `CDF\x05` (CDF-5): 64-bit offsets, counts and dimension lengths,
    /// and unsigned and 64-bit integer types.
    Data64,
}

impl Version {
    fn describe(self) -> &'static str {
        match self {
            Version::Classic => "netcdf3 classic",
            Version::Offset64 => "netcdf3 64-bit offset",
            Version::Data64 => "netcdf3 64-bit data (CDF-5)",
        }
    }
}

/// The netCDF-3 variant of `file` by its magic number, or `None` when it
/// is not a netCDF-3 file or cannot be read (the caller's own open then
/// reports why).
pub(crate) fn probe(file: &Path) -> Option<Version> {
    let mut magic = [0u8; 4];
    File::open(file).ok()?.read_exact(&mut magic).ok()?;
    match &magic {
        b"CDF\x01" => Some(Version::Classic),
        b"CDF\x02" => Some(Version::Offset64),
        b"CDF\x05" => Some(Version::Data64),
        _ => None,
    }
}

/// One attribute's value, decoded.
#[derive(Clone, Debug, PartialEq)]
struct Attr {
    name: String,
    value: Value,
    /// The first value as a number (for `_FillValue`).
    first: Option<f64>,
}

#[derive(Clone, Debug)]
struct Dim {
    name: String,
    /// `None` for the unlimited (record) dimension.
    len: Option<u64>,
}

#[derive(Clone, Debug)]
struct Var {
    name: String,
    dims: Vec<usize>,
    attrs: Vec<Attr>,
    nc_type: u32,
    begin: u64,
}

/// A parsed header.
#[derive(Debug)]
struct Header {
    version: Version,
    dims: Vec<Dim>,
    attrs: Vec<Attr>,
    vars: Vec<Var>,
    /// `None` for "streaming": worked out from the file size.
    numrecs: Option<u64>,
    /// Bytes of the header: no variable begins before this.
    len: u64,
}

impl Header {
    /// True for a variable along the record (unlimited) dimension.
    fn is_record(&self, v: &Var) -> bool {
        v.dims.first().is_some_and(|&d| self.dims[d].len.is_none())
    }

    /// Bytes of one record of a record variable, or all of a fixed one;
    /// `None` if that overflows.
    fn slab(&self, v: &Var) -> Option<u64> {
        let skip = usize::from(self.is_record(v));
        let item = nc_dtype(v.nc_type).map_or(1, |(d, _)| d.size() as u64);
        v.dims[skip..].iter().try_fold(item, |acc, &d| {
            acc.checked_mul(self.dims[d].len.unwrap_or(0))
        })
    }
}

/// `n` rounded up to a multiple of 4 (netCDF-3 pads every variable's slab).
fn pad4(n: u64) -> Option<u64> {
    n.checked_add(3).map(|n| n / 4 * 4)
}

const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;
/// netCDF-C's limit on a variable's rank.
const MAX_VAR_DIMS: u64 = 1024;
/// Attribute values shown one by one; longer attributes are summarised.
const MAX_ATTR_VALUES: usize = 1 << 16;

/// The dtype of a netCDF type code, and its name for messages.
fn nc_dtype(nc_type: u32) -> Option<(DType, &'static str)> {
    Some(match nc_type {
        1 => (DType::I8, "byte"),
        2 => (DType::U8, "char"),
        3 => (DType::I16, "short"),
        4 => (DType::I32, "int"),
        5 => (DType::F32, "float"),
        6 => (DType::F64, "double"),
        7 => (DType::U8, "ubyte"),
        8 => (DType::U16, "ushort"),
        9 => (DType::U32, "uint"),
        10 => (DType::I64, "int64"),
        11 => (DType::U64, "uint64"),
        _ => return None,
    })
}

/// netCDF's default fill value of a type (`NC_FILL_*`).
fn default_fill(nc_type: u32) -> f64 {
    match nc_type {
        1 => -127.0,
        2 => 0.0,
        3 => -32767.0,
        4 => -2147483647.0,
        7 => 255.0,
        8 => 65535.0,
        9 => 4294967295.0,
        10 => -9223372036854775806.0,
        11 => 18446744073709551614.0,
        _ => 9.969_209_968_386_869e36,
    }
}

/// A cursor over the header bytes; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// CDF-5: counts and lengths are 8 bytes.
    wide: bool,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> std::result::Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "the header ends inside {what} (at byte {}, {n} bytes wanted, {} left)",
                self.pos,
                self.left()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A count or length: 4 bytes, 8 in CDF-5.
    fn count(&mut self, what: &str) -> std::result::Result<u64, String> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// A count of items each at least `min_bytes` long, checked against
    /// the bytes left so that a corrupt count allocates nothing.
    fn items(&mut self, min_bytes: u64, what: &str) -> std::result::Result<u64, String> {
        let n = self.count(what)?;
        if n.saturating_mul(min_bytes) > self.left() {
            return Err(format!(
                "{what} is {n}, more than the {} header bytes left can hold",
                self.left()
            ));
        }
        Ok(n)
    }

    /// `n` bytes and the padding to a multiple of 4 after them.
    fn padded(&mut self, n: u64, what: &str) -> std::result::Result<&'a [u8], String> {
        let s = self.take(n, what)?;
        self.take((4 - n % 4) % 4, what)?;
        Ok(s)
    }

    fn name(&mut self, what: &str) -> std::result::Result<String, String> {
        let n = self.items(1, &format!("the length of {what}"))?;
        let b = self.padded(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// A list's tag and length: `ABSENT` (two zeros) is an empty list.
    fn list(&mut self, tag: u32, min_bytes: u64, what: &str) -> std::result::Result<u64, String> {
        let t = self.u32(&format!("the {what} list's tag"))?;
        if t == 0 {
            let n = self.count(&format!("the {what} list's length"))?;
            return if n == 0 {
                Ok(0)
            } else {
                Err(format!("the {what} list is absent but says {n} entries"))
            };
        }
        if t != tag {
            return Err(format!("the {what} list has tag {t:#x}, not {tag:#x}"));
        }
        self.items(min_bytes, &format!("the number of {what}s"))
    }

    fn attrs(&mut self, whose: &str) -> std::result::Result<Vec<Attr>, String> {
        let n = self.list(NC_ATTRIBUTE, 12, "attribute")?;
        let mut out = Vec::new();
        for _ in 0..n {
            let name = self.name(&format!("an attribute name of {whose}"))?;
            let what = format!("attribute {name:?} of {whose}");
            let nc_type = self.u32(&what)?;
            let (dtype, _) =
                nc_dtype(nc_type).ok_or_else(|| format!("{what} has unknown type {nc_type}"))?;
            let n = self.count(&what)?;
            let bytes = n
                .checked_mul(dtype.size() as u64)
                .filter(|&b| b <= self.left())
                .ok_or_else(|| format!("{what}: {n} values do not fit in the header"))?;
            let raw = self.padded(bytes, &what)?;
            let (value, first) = attr_value(nc_type, raw);
            out.push(Attr { name, value, first });
        }
        Ok(out)
    }
}

/// An attribute's values as JSON (see the module docs) and its first
/// value as a number.
fn attr_value(nc_type: u32, raw: &[u8]) -> (Value, Option<f64>) {
    if nc_type == 2 {
        let text = String::from_utf8_lossy(raw);
        // A char `_FillValue` is its byte, as netCDF-C reads it.
        let first = raw.first().map(|&b| f64::from(b));
        return (
            Value::String(text.trim_end_matches('\0').to_string()),
            first,
        );
    }
    let (dtype, type_name) = nc_dtype(nc_type).unwrap_or((DType::U8, "ubyte"));
    let size = dtype.size();
    let count = raw.len() / size;
    if count > MAX_ATTR_VALUES {
        // Shown as JSON, each value would take ~32 bytes of memory per
        // byte of file: a summary and the first value instead.
        let first = attr_value(nc_type, &raw[..size]).1;
        return (
            Value::String(format!("{count} {type_name} values (not shown)")),
            first,
        );
    }
    let mut values = Vec::with_capacity(count);
    let mut first = None;
    for b in raw.chunks_exact(size) {
        let mut a = [0u8; 8];
        a[8 - size..].copy_from_slice(b);
        let be = u64::from_be_bytes(a);
        let (v, f) = match nc_type {
            1 => {
                let x = b[0] as i8;
                (Value::from(x), f64::from(x))
            }
            3 => {
                let x = i16::from_be_bytes([b[0], b[1]]);
                (Value::from(x), f64::from(x))
            }
            4 => {
                let x = be as u32 as i32;
                (Value::from(x), f64::from(x))
            }
            5 => {
                let x = f32::from_bits(be as u32);
                (
                    serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number),
                    f64::from(x),
                )
            }
            6 => {
                let x = f64::from_bits(be);
                (
                    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
                    x,
                )
            }
            10 => {
                let x = be as i64;
                (Value::from(x), x as f64)
            }
            // ubyte, ushort, uint, uint64
            _ => (Value::from(be), be as f64),
        };
        first.get_or_insert(f);
        values.push(v);
    }
    let value = if values.len() == 1 {
        values.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(values)
    };
    (value, first)
}

/// Refuse a name netCDF-C never writes: empty (no path could name it), or
/// one already defined (which of the two a reader means is a guess:
/// netCDF4-python shows the last).
fn unique<'a>(
    name: &str,
    what: &str,
    before: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err(format!("a {what} has an empty name"));
    }
    if before.into_iter().any(|n| n == name) {
        return Err(format!("{what} {name:?} is defined twice"));
    }
    Ok(())
}

/// Parse the header at the start of `buf` (the whole file).
fn parse_header(buf: &[u8]) -> std::result::Result<Header, String> {
    let version = match buf.get(..4) {
        Some(b"CDF\x01") => Version::Classic,
        Some(b"CDF\x02") => Version::Offset64,
        Some(b"CDF\x05") => Version::Data64,
        _ => return Err("no netCDF-3 magic number".into()),
    };
    let mut c = Cursor {
        buf,
        pos: 4,
        wide: version == Version::Data64,
    };
    let numrecs = c.count("the number of records")?;
    let streaming = if c.wide {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    };
    let numrecs = (numrecs != streaming).then_some(numrecs);

    let ndims = c.list(NC_DIMENSION, 8, "dimension")?;
    let mut dims = Vec::new();
    for _ in 0..ndims {
        let name = c.name("a dimension name")?;
        unique(
            &name,
            "dimension",
            dims.iter().map(|d: &Dim| d.name.as_str()),
        )?;
        let len = c.count(&format!("the length of dimension {name:?}"))?;
        if len == 0 && dims.iter().any(|d: &Dim| d.len.is_none()) {
            return Err(format!(
                "dimension {name:?} is a second unlimited dimension"
            ));
        }
        dims.push(Dim {
            name,
            len: (len != 0).then_some(len),
        });
    }
    let attrs = c.attrs("the file")?;

    let nvars = c.list(NC_VARIABLE, 24, "variable")?;
    let mut vars = Vec::new();
    for _ in 0..nvars {
        let name = c.name("a variable name")?;
        unique(
            &name,
            "variable",
            vars.iter().map(|v: &Var| v.name.as_str()),
        )?;
        let what = format!("variable {name:?}");
        let rank = c.items(4, &format!("the rank of {what}"))?;
        if rank > MAX_VAR_DIMS {
            return Err(format!("{what} has {rank} dimensions"));
        }
        let mut vdims = Vec::new();
        for k in 0..rank {
            let id = c.count(&what)?;
            let d = usize::try_from(id)
                .ok()
                .filter(|&i| i < dims.len())
                .ok_or_else(|| format!("{what} names dimension id {id} of {}", dims.len()))?;
            if dims[d].len.is_none() && k > 0 {
                return Err(format!(
                    "{what} has the unlimited dimension {:?} at position {k}, not first",
                    dims[d].name
                ));
            }
            vdims.push(d);
        }
        let vattrs = c.attrs(&what)?;
        let nc_type = c.u32(&what)?;
        if nc_dtype(nc_type).is_none() {
            return Err(format!("{what} has unknown type {nc_type}"));
        }
        // vsize: not trusted (see the module docs).
        c.count(&what)?;
        let begin = match version {
            Version::Classic => u64::from(c.u32(&what)?),
            _ => c.u64(&what)?,
        };
        vars.push(Var {
            name,
            dims: vdims,
            attrs: vattrs,
            nc_type,
            begin,
        });
    }
    Ok(Header {
        version,
        dims,
        attrs,
        vars,
        numrecs,
        len: c.pos as u64,
    })
}

/// Variables lie after the header, the fixed ones in definition order
/// without overlapping, then the record variables in order: what
/// netCDF-C checks (`NC_check_voffs`) and refuses a file for breaking.
fn check_offsets(h: &Header) -> std::result::Result<(), String> {
    let mut end = h.len;
    let mut before = "the header".to_string();
    for records in [false, true] {
        for v in h.vars.iter().filter(|v| h.is_record(v) == records) {
            if v.begin < end {
                return Err(format!(
                    "variable {:?} begins at byte {}, inside {before} (which ends at byte {end})",
                    v.name, v.begin
                ));
            }
            end = v
                .begin
                .saturating_add(h.slab(v).and_then(pad4).unwrap_or(u64::MAX));
            before = format!("variable {:?}", v.name);
        }
    }
    Ok(())
}

/// Where every variable's elements lie, with the record count resolved.
struct Layouts {
    header: Header,
    layouts: Vec<std::result::Result<Layout, String>>,
}

fn layouts(header: Header, file_len: u64) -> Layouts {
    let is_record = |v: &Var| header.is_record(v);
    let slab = |v: &Var| header.slab(v);
    let records: Vec<&Var> = header.vars.iter().filter(|v| is_record(v)).collect();
    let mut recsize: Option<u64> = Some(0);
    for v in &records {
        recsize = recsize
            .zip(slab(v).and_then(pad4))
            .and_then(|(a, b)| a.checked_add(b));
    }
    // netCDF-C packs the records of a file whose first record variable is
    // the only one with any bytes.
    if let Some(first) = records.first() {
        if recsize.is_some() && recsize == slab(first).and_then(pad4) {
            recsize = slab(first);
        }
    }
    let numrecs = match (header.numrecs, recsize, records.first()) {
        (Some(n), _, _) => Some(n),
        (None, Some(0), _) | (None, _, None) => Some(0),
        (None, Some(rs), Some(first)) => Some(file_len.saturating_sub(first.begin) / rs),
        (None, None, _) => None,
    };
    let layouts = header
        .vars
        .iter()
        .map(|v| {
            let dtype = nc_dtype(v.nc_type).map(|(d, _)| d).unwrap_or(DType::U8);
            let record = is_record(v);
            let shape: Vec<u64> = v
                .dims
                .iter()
                .map(|&d| header.dims[d].len.or(numrecs).unwrap_or(0))
                .collect();
            // One record (or none): the record axis has no second element,
            // and its stride (which may exceed any offset) is never used.
            let record_stride = if record && numrecs.is_some_and(|n| n > 1) {
                Some(recsize.ok_or("the record size overflows")?)
            } else {
                None
            };
            if record && numrecs.is_none() {
                return Err("the number of records cannot be worked out".to_string());
            }
            slab(v).ok_or("its size overflows")?;
            Ok(Layout {
                dtype,
                shape,
                little_endian: false,
                fortran: false,
                offset: v.begin,
                record_stride,
            })
        })
        .collect();
    Layouts { header, layouts }
}

/// Map `file` and parse its header.
fn read(name: &str, file: &Path) -> Result<Layouts> {
    let f = File::open(file).map_err(|e| open_err(name, "cannot open the file", e))?;
    let len = f
        .metadata()
        .map_err(|e| open_err(name, "cannot stat the file", e))?
        .len();
    if len < 8 {
        return Err(Error::open(
            name,
            "not a valid netCDF-3 file: it is too short",
        ));
    }
    // SAFETY: a read-only private map, read only while `f`'s length is as
    // checked; ndstream never truncates a file it reads (see
    // `crate::contiguous`).
    let map = unsafe { memmap2::MmapOptions::new().map(&f) }
        .map_err(|e| open_err(name, "cannot map the file", e))?;
    let header = parse_header(&map)
        .map_err(|m| Error::open(name, format!("not a valid netCDF-3 file: {m}")))?;
    check_offsets(&header)
        .map_err(|m| Error::open(name, format!("not a valid netCDF-3 file: {m}")))?;
    Ok(layouts(header, len))
}

/// The variable a dataset path names: `/t2m` or `t2m`.
fn var_index(name: &str, l: &Layouts, dataset: &str) -> Result<usize> {
    let want = dataset.trim_start_matches('/');
    if want.contains('/') {
        return Err(Error::open(
            name,
            format!("netCDF-3 files have no groups: variable {dataset:?} does not exist"),
        ));
    }
    l.header
        .vars
        .iter()
        .position(|v| v.name == want)
        .ok_or_else(|| {
            let names: Vec<&str> = l.header.vars.iter().map(|v| v.name.as_str()).collect();
            Error::open(
                name,
                format!(
                    "variable {want:?} does not exist in this netCDF-3 file (it has: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
}

fn attributes(attrs: &[Attr]) -> Attributes {
    attrs
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect()
}

/// Open variable `dataset` of netCDF-3 file `file` (`name`: the user's path).
pub(crate) fn open_source(name: &str, file: &Path, dataset: &str) -> Result<ContiguousSource> {
    let l = read(name, file)?;
    if dataset.trim_start_matches('/').is_empty() {
        return Err(Error::open(
            name,
            "name a variable of this netCDF-3 file (`file.nc:/name`); `ndstream info` lists them",
        ));
    }
    let i = var_index(name, &l, dataset)?;
    let layout = l.layouts[i]
        .clone()
        .map_err(|m| Error::open(name, format!("variable {:?}: {m}", l.header.vars[i].name)))?;
    let mut src = ContiguousSource::open(name, file, layout)?;
    src.attributes = attributes(&l.header.vars[i].attrs);
    src.locator = crate::Location::Hdf5 {
        file: file.to_path_buf(),
        dataset: format!("/{}", l.header.vars[i].name),
    }
    .to_locator();
    Ok(src)
}

fn array_info(name: &str, file: &Path, l: &Layouts, i: usize) -> Result<ArrayInfo> {
    let v = &l.header.vars[i];
    let layout = l.layouts[i]
        .clone()
        .map_err(|m| Error::open(name, format!("variable {:?}: {m}", v.name)))?;
    // Opening checks that the file holds every element.
    ContiguousSource::open(name, file, layout.clone())?;
    let fill = v
        .attrs
        .iter()
        .find(|a| a.name == "_FillValue")
        .and_then(|a| a.first)
        .unwrap_or_else(|| default_fill(v.nc_type));
    Ok(ArrayInfo {
        path: name.to_string(),
        format: l.header.version.describe().to_string(),
        shape: layout.shape.clone(),
        dtype: layout.dtype,
        chunks: None,
        shards: None,
        codec: "none".into(),
        stored_bytes: layout.nbytes(),
        logical_bytes: layout.nbytes().unwrap_or(u64::MAX),
        fill_value: Some(fill),
        attributes: attributes(&v.attrs),
        incomplete: false,
    })
}

/// `info` of a netCDF-3 file (its variables and global attributes) or of
/// one variable.
pub(crate) fn info(name: &str, file: &Path, dataset: &str) -> Result<StoreInfo> {
    let l = read(name, file)?;
    if !dataset.trim_start_matches('/').is_empty() {
        let i = var_index(name, &l, dataset)?;
        return Ok(StoreInfo::Array(array_info(name, file, &l, i)?));
    }
    // A variable that cannot be read (a truncated file) fails the whole
    // listing, naming it: a partial listing would pass for a smaller file.
    let arrays = (0..l.header.vars.len())
        .map(|i| {
            let path = format!("{}:/{}", file.display(), l.header.vars[i].name);
            array_info(&path, file, &l, i)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(StoreInfo::Group {
        path: name.to_string(),
        format: l.header.version.describe().to_string(),
        attributes: attributes(&l.header.attrs),
        arrays,
    })
}

/// The dimension names of a variable, for tests and `info`.
#[cfg(test)]
fn dim_names(l: &Layouts, i: usize) -> Vec<String> {
    l.header.vars[i]
        .dims
        .iter()
        .map(|&d| l.header.dims[d].name.clone())
        .collect()
}

/// NetCDF-3 files, in every build: read only, named as HDF5 files are
/// and told apart by their magic number (see the module doc).
pub(crate) struct NetCdf3;

impl NetCdf3 {
    /// The file and variable of a netCDF-3 location.
    fn parts<'a>(path: &str, loc: &'a Location) -> Result<(&'a Path, &'a str)> {
        match loc {
            Location::Hdf5 { file, dataset } => Ok((file, dataset)),
            _ => Err(Error::open(path, "not a netCDF-3 file")),
        }
    }

    /// A write to a netCDF-3 file: refused in every mode, and the file
    /// is never replaced (it may hold variables ndstream cannot read).
    fn refuse(path: &str, loc: &Location) -> Error {
        let file =
            Self::parts(path, loc).map_or_else(|_| path.into(), |(f, _)| f.display().to_string());
        Error::open(
            path,
            format!(
                "{file} is a netCDF-3 file, not an HDF5 file: ndstream reads netCDF-3 but does \
                 not write it, and refuses to replace it (remove it, or name another file)"
            ),
        )
    }
}

impl Format for NetCdf3 {
    fn name(&self) -> &'static str {
        "netcdf3"
    }
    fn probe(&self, loc: &Location) -> bool {
        matches!(loc, Location::Hdf5 { file, .. } if probe(file).is_some())
    }
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>> {
        let (file, dataset) = Self::parts(path, loc)?;
        Ok(Arc::new(open_source(path, file, dataset)?))
    }
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo> {
        let (file, dataset) = Self::parts(path, loc)?;
        info(path, file, dataset)
    }
    fn sink_needs(&self, path: &str, loc: &Location, _: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        Err(Self::refuse(path, loc))
    }
    fn create(&self, path: &str, loc: &Location, _: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        Err(Self::refuse(path, loc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse and lay out `data` as a whole file; never panics.
    fn parse_all(data: &[u8]) {
        if let Ok(h) = parse_header(data) {
            for l in layouts(h, data.len() as u64).layouts.iter().flatten() {
                let _ = l.extent();
            }
        }
    }

    /// A classic header by hand: dims x=3, t=unlimited; one global
    /// attribute; a fixed short variable and two record variables.
    fn classic() -> Vec<u8> {
        fn be(v: &mut Vec<u8>, x: u32) {
            v.extend_from_slice(&x.to_be_bytes());
        }
        fn name(v: &mut Vec<u8>, s: &str) {
            be(v, s.len() as u32);
            v.extend_from_slice(s.as_bytes());
            v.resize(v.len().div_ceil(4) * 4, 0);
        }
        let mut v = b"CDF\x01".to_vec();
        be(&mut v, 2); // numrecs
        be(&mut v, NC_DIMENSION);
        be(&mut v, 2);
        name(&mut v, "x");
        be(&mut v, 3);
        name(&mut v, "t");
        be(&mut v, 0);
        be(&mut v, NC_ATTRIBUTE);
        be(&mut v, 1);
        name(&mut v, "title");
        be(&mut v, 2);
        be(&mut v, 2);
        v.extend_from_slice(b"hi\0\0");
        be(&mut v, NC_VARIABLE);
        be(&mut v, 3);
        for (n, dims, ty, vsize) in [
            ("a", &[0u32][..], 3u32, 8u32),
            ("r", &[1, 0][..], 3, 8),
            ("s", &[1][..], 4, 4),
        ] {
            name(&mut v, n);
            be(&mut v, dims.len() as u32);
            for &d in dims {
                be(&mut v, d);
            }
            be(&mut v, 0);
            be(&mut v, 0);
            be(&mut v, ty);
            be(&mut v, vsize);
            be(&mut v, 0); // begin, set below
        }
        v
    }

    #[test]
    fn a_hand_made_header_parses_with_record_strides() {
        let v = classic();
        let h = parse_header(&v).unwrap();
        assert_eq!(h.version, Version::Classic);
        assert_eq!(h.numrecs, Some(2));
        assert_eq!(h.attrs[0].value, Value::String("hi".into()));
        let l = layouts(h, 1000);
        assert_eq!(dim_names(&l, 1), ["t", "x"]);
        let a = l.layouts[0].as_ref().unwrap();
        assert_eq!((a.shape.clone(), a.record_stride), (vec![3], None));
        // r: 3 shorts padded to 8, s: one int: records of 12 bytes.
        let r = l.layouts[1].as_ref().unwrap();
        assert_eq!((r.shape.clone(), r.record_stride), (vec![2, 3], Some(12)));
        assert_eq!(r.extent(), Some(12 + 6));
        let s = l.layouts[2].as_ref().unwrap();
        assert_eq!((s.shape.clone(), s.dtype), (vec![2], DType::I32));
    }

    #[test]
    fn one_record_variable_is_packed() {
        let mut v = classic();
        // Make `s` fixed: its dimension becomes x (id 0).
        let at = v
            .windows(8)
            .rposition(|w| w == [0, 0, 0, 1, 0, 0, 0, 1])
            .unwrap();
        v[at + 7] = 0;
        let l = layouts(parse_header(&v).unwrap(), 1000);
        // r alone: 3 shorts, not padded.
        assert_eq!(l.layouts[1].as_ref().unwrap().record_stride, Some(6));
    }

    #[test]
    fn corrupt_headers_are_refused_not_panicked_on() {
        let good = classic();
        for cut in 0..good.len() {
            assert!(parse_header(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A huge count is refused before anything is allocated.
        let mut v = good.clone();
        v[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = parse_header(&v).unwrap_err();
        assert!(e.contains("number of dimensions"), "{e}");
        // A dimension id out of range.
        let mut v = good.clone();
        let at = v
            .windows(8)
            .rposition(|w| w == [0, 0, 0, 1, 0, 0, 0, 1])
            .unwrap();
        v[at + 7] = 9;
        assert!(parse_header(&v).unwrap_err().contains("dimension id 9"));
        // Every single-byte change parses or is refused.
        for i in 0..good.len() {
            for b in [0u8, 1, 0x7f, 0xff] {
                let mut v = good.clone();
                v[i] = b;
                parse_all(&v);
            }
        }
    }
}
