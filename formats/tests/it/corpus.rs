//! The real-file corpus (tests/fixtures/corpus, written by
//! tests/fixtures/make_corpus.py with h5py, netCDF4-python, h5netcdf,
//! xarray and zarr-python 2 and 3): every array described by `info`, every
//! value read chunk by chunk and compared with what the producer library
//! read back (the manifest's SHA-256 and exact min/max), and every array
//! ndstream does not hold refused with an error naming it. A panic anywhere
//! is a failure of that case; all failures are listed together at the end.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use ndstream_engine::{AxisSel, Block, ChunkSource, DType, Error};
use ndstream_formats::{info, open_source, StoreInfo};
use serde_json::Value;

use crate::conformance::select;
use crate::fixtures::fixtures_dir;
use crate::sha256::sha256_hex;

/// The corpus directory.
fn corpus_dir() -> PathBuf {
    fixtures_dir().join("corpus")
}

/// Every manifest entry.
fn manifest() -> Vec<Value> {
    let path = corpus_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// What a case must do with the HDF5 library this test runs with.
#[derive(Debug)]
enum Expect {
    Read,
    /// Refused; the error contains this.
    Refuse(String),
    /// Read exactly, or refused with an error containing this (an HDF5
    /// library older than the case needs).
    #[cfg_attr(not(feature = "hdf5"), allow(dead_code))]
    ReadOrRefuse(String),
}

#[cfg(feature = "hdf5")]
fn expectation(entry: &Value) -> Expect {
    if entry["expect"] == "refuse" {
        return Expect::Refuse(entry["error"].as_str().unwrap().to_string());
    }
    if let Some(f) = entry.get("unless_missing_filter") {
        let id = f["id"].as_i64().unwrap() as hdf5_sys::h5z::H5Z_filter_t;
        // ndstream decodes bzip2, blosc, lz4, bitshuffle and zstd itself.
        let own = [307, 32001, 32004, 32008, 32015].contains(&id);
        if !own && !hdf5::filters::Filter::get_info(id).decode_enabled {
            return Expect::Refuse(f["name"].as_str().unwrap().to_string());
        }
    }
    if let Some(u) = entry.get("unless_hdf5_below") {
        let want: Vec<u8> = u["version"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u8)
            .collect();
        let (a, b, c) = hdf5::library_version();
        if vec![a, b, c] < want {
            return Expect::ReadOrRefuse(u["error"].as_str().unwrap().to_string());
        }
    }
    Expect::Read
}

#[cfg(not(feature = "hdf5"))]
fn expectation(entry: &Value) -> Expect {
    // Zarr and netCDF-3 are read in a build without HDF5.
    let format = entry["format"].as_str().unwrap();
    if !format.starts_with("Zarr") && !format.starts_with("netCDF-3") {
        return Expect::Refuse("HDF5 support".to_string());
    }
    if entry["expect"] == "refuse" {
        return Expect::Refuse(entry["error"].as_str().unwrap().to_string());
    }
    Expect::Read
}

/// Every element of `src`, read chunk by chunk, as one C-order block.
pub(crate) fn read_all(src: &dyn ChunkSource) -> Result<Block, String> {
    let dtype = src.dtype();
    let size = dtype.size();
    let shape: Vec<usize> = src.shape().iter().map(|&n| n as usize).collect();
    let count: usize = shape.iter().product();
    let mut buf = vec![0u8; count * size];
    let strides: Vec<usize> = (0..shape.len())
        .map(|d| shape[d + 1..].iter().product())
        .collect();
    let grid = src.grid().clone();
    for n in 0..grid.num_chunks() {
        let idx = grid.unravel(n);
        let region = grid.chunk_region(&idx);
        let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        let block = src
            .read_chunk(&idx)
            .map_err(|e| format!("chunk {idx:?}: {e}"))?;
        if block.shape() != want.as_slice() || block.dtype() != dtype {
            return Err(format!(
                "chunk {idx:?}: got {:?} {}, expected {want:?} {dtype}",
                block.shape(),
                block.dtype()
            ));
        }
        let bytes = block.to_ne_bytes();
        let row = want.last().copied().unwrap_or(1);
        let rows = (bytes.len() / size).checked_div(row).unwrap_or(0);
        // Odometer over the chunk's rows (every axis but the last).
        let outer = want.len().saturating_sub(1);
        let mut pos = vec![0usize; outer];
        for r in 0..rows {
            let mut at = region.last().map_or(0, |x| x.start as usize);
            for d in 0..outer {
                at += (region[d].start as usize + pos[d]) * strides[d];
            }
            buf[at * size..(at + row) * size]
                .copy_from_slice(&bytes[r * row * size..(r + 1) * row * size]);
            for d in (0..outer).rev() {
                pos[d] += 1;
                if pos[d] < want[d] {
                    break;
                }
                pos[d] = 0;
            }
        }
    }
    Block::from_ne_bytes(dtype, &shape, &buf).ok_or_else(|| "bad element bytes".to_string())
}

/// The little-endian bytes of a block's elements in C order.
pub(crate) fn le_bytes(b: &Block) -> Vec<u8> {
    let mut bytes = b.to_ne_bytes();
    if cfg!(target_endian = "big") {
        for item in bytes.chunks_exact_mut(b.dtype().size()) {
            item.reverse();
        }
    }
    bytes
}

/// A manifest number (or "nan"/"inf"/"-inf") as f64.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Min and max of a block, as a manifest would write them.
fn min_max(b: &Block) -> (Value, Value) {
    if b.is_empty() {
        return (Value::Null, Value::Null);
    }
    match b.dtype() {
        DType::F32 | DType::F64 => {
            let v = b.to_f64_vec();
            if v.iter().any(|x| x.is_nan()) {
                return (Value::from("nan"), Value::from("nan"));
            }
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (Value::from(lo), Value::from(hi))
        }
        _ => {
            let v = ints(b);
            let lo = *v.iter().min().unwrap();
            let hi = *v.iter().max().unwrap();
            (int_value(lo), int_value(hi))
        }
    }
}

fn int_value(x: i128) -> Value {
    if x < 0 {
        Value::from(x as i64)
    } else {
        Value::from(x as u64)
    }
}

/// The elements of an integer or bool block, exactly.
fn ints(b: &Block) -> Vec<i128> {
    fn all<T: Copy + Into<i128> + ndstream_engine::BlockElement>(b: &Block) -> Vec<i128> {
        b.view::<T>().unwrap().iter().map(|&x| x.into()).collect()
    }
    match b.dtype() {
        DType::Bool => b
            .view::<bool>()
            .unwrap()
            .iter()
            .map(|&x| i128::from(x))
            .collect(),
        DType::I8 => all::<i8>(b),
        DType::I16 => all::<i16>(b),
        DType::I32 => all::<i32>(b),
        DType::I64 => all::<i64>(b),
        DType::U8 => all::<u8>(b),
        DType::U16 => all::<u16>(b),
        DType::U32 => all::<u32>(b),
        DType::U64 => all::<u64>(b),
        DType::F32 | DType::F64 => unreachable!("float block"),
    }
}

fn same_number(got: &Value, want: &Value) -> bool {
    match (num(got), num(want)) {
        (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
        (None, None) => got.is_null() && want.is_null(),
        _ => false,
    }
}

/// Check one array ndstream must read; `Err` says what was wrong.
fn check_read(entry: &Value, path: &str) -> Result<(), String> {
    let shape: Vec<u64> = entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let dtype: DType = entry["dtype"].as_str().unwrap().parse().unwrap();
    match info(path).map_err(|e| format!("info: {e}"))? {
        StoreInfo::Array(i) => {
            if (&i.shape, i.dtype) != (&shape, dtype) {
                return Err(format!("info: {:?} {}", i.shape, i.dtype));
            }
        }
        other => return Err(format!("info is not an array: {other:?}")),
    }
    let src = open_source(path).map_err(|e| format!("open: {e}"))?;
    if (src.shape(), src.dtype()) != (shape.as_slice(), dtype) {
        return Err(format!("opened as {:?} {}", src.shape(), src.dtype()));
    }
    let all = read_all(src.as_ref())?;
    let sha = sha256_hex(&le_bytes(&all));
    if sha != entry["sha256"].as_str().unwrap() {
        return Err(format!("values differ from the producer's (sha256 {sha})"));
    }
    let (lo, hi) = min_max(&all);
    if !same_number(&lo, &entry["min"]) || !same_number(&hi, &entry["max"]) {
        return Err(format!(
            "min/max {lo}/{hi}, expected {}/{}",
            entry["min"], entry["max"]
        ));
    }
    // Whole-array and strided selections agree with the chunk reads, bit
    // for bit (a NaN equals no value, itself included).
    let same = |a: &Block, b: &Block| a.shape() == b.shape() && le_bytes(a) == le_bytes(b);
    if src.supports_selection() {
        let full: Vec<AxisSel> = shape.iter().map(|&n| AxisSel::full(n)).collect();
        let got = src
            .read_selection(&full)
            .map_err(|e| format!("selection: {e}"))?;
        if !same(&got, &all) {
            return Err("whole-array selection differs from the chunks".into());
        }
        let strided: Vec<AxisSel> = shape
            .iter()
            .map(|&n| AxisSel {
                start: n.saturating_sub(1),
                step: -2,
                len: n.div_ceil(2),
            })
            .collect();
        let got = src
            .read_selection(&strided)
            .map_err(|e| format!("selection: {e}"))?;
        if !same(&got, &select(&all, &strided)) {
            return Err("strided selection [::-2] differs".into());
        }
    }
    Ok(())
}

/// Check that an array is refused with an error naming it and saying `why`.
fn check_refused(path: &str, why: &str) -> Result<(), String> {
    // `info` may describe it (an HDF5 dataset whose filter is missing) or refuse it.
    if let Err(e) = info(path) {
        let msg = e.to_string();
        if !msg.contains(path) {
            return Err(format!("info's error does not name {path}: {msg}"));
        }
    }
    match open_source(path) {
        Ok(src) => match read_all(src.as_ref()) {
            Ok(_) => Err(format!("was read, expected a refusal saying `{why}`")),
            Err(e) => Err(format!("opened, then failed to read (refuse at open): {e}")),
        },
        Err(e @ Error::Open { .. }) => {
            let msg = e.to_string();
            if msg.contains(path) && msg.contains(why) {
                Ok(())
            } else {
                Err(format!("error should name {path} and say `{why}`: {msg}"))
            }
        }
        Err(e) => Err(format!("wrong error kind: {e}")),
    }
}

/// Run one case, turning a panic into a failure.
fn run_case(entry: &Value) -> Result<(), String> {
    let path = corpus_dir()
        .join(entry["location"].as_str().unwrap())
        .display()
        .to_string();
    let expect = expectation(entry);
    let outcome = catch_unwind(AssertUnwindSafe(|| match &expect {
        Expect::Read => check_read(entry, &path),
        Expect::Refuse(why) => check_refused(&path, why),
        Expect::ReadOrRefuse(why) => match open_source(&path) {
            Ok(_) => check_read(entry, &path),
            Err(_) => check_refused(&path, why),
        },
    }));
    match outcome {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )),
    }
}

#[test]
fn corpus_arrays_read_as_their_producers_read_them() {
    let entries = manifest();
    assert!(entries.len() >= 150, "{} entries", entries.len());
    let mut failures = Vec::new();
    let mut read = 0;
    for entry in &entries {
        let loc = entry["location"].as_str().unwrap();
        match run_case(entry) {
            Ok(()) => read += 1,
            Err(e) => failures.push(format!("{loc}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus arrays failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
    assert_eq!(read, entries.len());
}

#[test]
fn corpus_files_and_groups_are_described_without_panics() {
    // `info` of every file / store root lists the arrays ndstream reads in it
    // (and skips the others), without a panic.
    let entries = manifest();
    let files: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    let mut failures = Vec::new();
    for file in files {
        let path = corpus_dir().join(file).display().to_string();
        let readable: Vec<&Value> = entries
            .iter()
            .filter(|e| e["file"] == file && matches!(expectation(e), Expect::Read))
            .collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| info(&path)));
        match outcome {
            Err(_) => failures.push(format!("{file}: info panicked")),
            Ok(Ok(StoreInfo::Group { arrays, .. })) => {
                for e in &readable {
                    let inner = e["path"].as_str().unwrap().trim_start_matches('/');
                    if !arrays.iter().any(|a| a.path.ends_with(inner)) {
                        failures.push(format!("{file}: info does not list {inner}"));
                    }
                }
            }
            // A Zarr store whose root is the array. `info` may describe one
            // that opening refuses (a codec zarrs lacks): metadata only.
            Ok(Ok(StoreInfo::Array(a))) => match readable.as_slice() {
                [] => {}
                [one] if one["path"] == "" && one["shape"] == serde_json::json!(a.shape) => {}
                _ => failures.push(format!("{file}: info describes one array {:?}", a.shape)),
            },
            Ok(Err(e)) => {
                let msg = e.to_string();
                if !readable.is_empty() {
                    failures.push(format!("{file}: info failed: {msg}"));
                } else if !msg.contains(&path) {
                    failures.push(format!(
                        "{file}: info's error does not name the file: {msg}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
