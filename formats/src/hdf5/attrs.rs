//! HDF5 attributes <-> JSON attributes.
//!
//! Read: numeric scalars and arrays (integers stay exact as i64/u64, floats
//! become f64, NaN/inf become `null`), bools, and fixed or variable-length
//! strings. Other attribute types (compound, enum, references) are skipped,
//! and so are variable-length strings of a file whose global heap libhdf5
//! would hang on (see [`super::heap`]), and all attributes of an object
//! whose header fails [`super::header`]'s check.
//! Write: JSON bools, numbers, strings and homogeneous arrays of them become
//! the matching HDF5 types (strings as variable-length UTF-8, as h5py writes
//! them); anything else (objects, `null`, mixed arrays) is stored as its JSON
//! text. Names starting with `_ndstream_` are private and never read.
//! Callers hold the HDF5 lock.

use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Attribute, Location};
use ndstream_engine::Attributes;
use serde_json::Value;

use super::PRIVATE_PREFIX;

/// The user attributes of a dataset or group.
pub(crate) fn read_attrs(loc: &Location) -> Attributes {
    let mut out = Attributes::new();
    // libhdf5 decodes every attribute message of the object to list them;
    // one it would read past its buffers on leaves them all out.
    if super::header::object_ok(loc).is_err() {
        return out;
    }
    let names = loc.attr_names().unwrap_or_default();
    // Whether variable-length values may be read, asked at the first one.
    let mut heaps_ok = None;
    for name in names {
        if name.starts_with(PRIVATE_PREFIX) {
            continue;
        }
        if let Ok(a) = loc.attr(&name) {
            if let Some(v) = attr_value(&a, &mut || {
                *heaps_ok.get_or_insert_with(|| {
                    // A file read by URL is not scanned (the scan reads
                    // the whole file): its variable-length values are left out.
                    let file = loc.filename();
                    crate::url::split_url(&file).is_none()
                        && super::heap::collections_ok(std::path::Path::new(&file)).is_ok()
                })
            }) {
                out.insert(name, v);
            }
        }
    }
    out
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// One attribute as JSON, or `None` for types ndstream does not show and
/// for variable-length strings when `vlen_ok()` says no.
fn attr_value(a: &Attribute, vlen_ok: &mut dyn FnMut() -> bool) -> Option<Value> {
    let dt = a.dtype().ok()?;
    let desc = dt.to_descriptor().ok()?;
    if matches!(
        desc,
        TypeDescriptor::VarLenUnicode
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenArray(_)
    ) && !vlen_ok()
    {
        return None;
    }
    let vals: Vec<Value> = match desc {
        TypeDescriptor::Integer(_) => a
            .read_raw::<i64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Unsigned(_) => a
            .read_raw::<u64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Float(_) => a.read_raw::<f64>().ok()?.into_iter().map(float).collect(),
        TypeDescriptor::Boolean => a
            .read_raw::<bool>()
            .ok()?
            .into_iter()
            .map(Value::Bool)
            .collect(),
        TypeDescriptor::VarLenUnicode => a
            .read_raw::<VarLenUnicode>()
            .ok()?
            .iter()
            .map(|s| Value::String(s.as_str().to_string()))
            .collect(),
        TypeDescriptor::VarLenAscii => a
            .read_raw::<VarLenAscii>()
            .ok()?
            .iter()
            .map(|s| Value::String(s.as_str().to_string()))
            .collect(),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            fixed_strings(a, &dt, n)?
        }
        _ => return None,
    };
    if a.is_scalar() {
        vals.into_iter().next()
    } else {
        Some(Value::Array(vals))
    }
}

/// Fixed-length strings, read as raw bytes of the attribute's own type and
/// cut at the first NUL.
fn fixed_strings(a: &Attribute, dt: &hdf5::Datatype, n: usize) -> Option<Vec<Value>> {
    let count = a.size();
    if n == 0 {
        return Some(vec![Value::String(String::new()); count]);
    }
    let mut buf = vec![0u8; count * n];
    // SAFETY: the caller holds the HDF5 lock; `buf` holds `count` elements of
    // the attribute's type `dt`, each `n` bytes, which is what H5Aread writes.
    let rc = unsafe { hdf5_sys::h5a::H5Aread(a.id(), dt.id(), buf.as_mut_ptr().cast()) };
    if rc < 0 {
        return None;
    }
    Some(
        buf.chunks(n)
            .map(|s| {
                let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                Value::String(String::from_utf8_lossy(&s[..end]).trim_end().to_string())
            })
            .collect(),
    )
}

/// Store every attribute on `loc`, replacing ones of the same name.
///
/// # Errors
/// The name of the first attribute HDF5 refused, and why.
pub(crate) fn write_attrs(loc: &Location, attrs: &Attributes) -> Result<(), String> {
    for (k, v) in attrs {
        if k.starts_with(PRIVATE_PREFIX) {
            continue;
        }
        if loc.attr(k).is_ok() {
            loc.delete_attr(k)
                .map_err(|e| format!("attribute {k}: {e}"))?;
        }
        write_attr(loc, k, v).map_err(|e| format!("attribute {k}: {e}"))?;
    }
    Ok(())
}

fn vlen(s: &str) -> hdf5::Result<VarLenUnicode> {
    // An interior NUL cannot be stored in a C string; keep the text up to it.
    let cut = s.split('\0').next().unwrap_or("");
    cut.parse::<VarLenUnicode>()
        .map_err(|e| hdf5::Error::from(e.to_string().as_str()))
}

fn write_attr(loc: &Location, name: &str, v: &Value) -> hdf5::Result<()> {
    match v {
        Value::Bool(b) => loc.new_attr::<bool>().create(name)?.write_scalar(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                loc.new_attr::<i64>().create(name)?.write_scalar(&i)
            } else if let Some(u) = n.as_u64() {
                loc.new_attr::<u64>().create(name)?.write_scalar(&u)
            } else {
                loc.new_attr::<f64>()
                    .create(name)?
                    .write_scalar(&n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => loc
            .new_attr::<VarLenUnicode>()
            .create(name)?
            .write_scalar(&vlen(s)?),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_i64) => {
            let v: Vec<i64> = items.iter().filter_map(Value::as_i64).collect();
            loc.new_attr::<i64>()
                .shape(v.len())
                .create(name)?
                .write_raw(&v)
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => {
            let v: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
            loc.new_attr::<f64>()
                .shape(v.len())
                .create(name)?
                .write_raw(&v)
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
            let v = items
                .iter()
                .filter_map(Value::as_str)
                .map(vlen)
                .collect::<hdf5::Result<Vec<_>>>()?;
            loc.new_attr::<VarLenUnicode>()
                .shape(v.len())
                .create(name)?
                .write_raw(&v)
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_boolean) => {
            let v: Vec<bool> = items.iter().filter_map(Value::as_bool).collect();
            loc.new_attr::<bool>()
                .shape(v.len())
                .create(name)?
                .write_raw(&v)
        }
        other => {
            let text = serde_json::to_string(other).unwrap_or_default();
            loc.new_attr::<VarLenUnicode>()
                .create(name)?
                .write_scalar(&vlen(&text)?)
        }
    }
}
