//! The real-file corpus through the library API: for every array the
//! corpus manifest says ndstream reads (tests/fixtures/corpus, written by
//! h5py, netCDF4-python, h5netcdf, xarray and zarr-python), the engine's
//! `sum`, `max` and `min` equal what NumPy computes from the producer's
//! values, with NumPy's result dtypes (the sum of an empty array is 0, the
//! max of an empty array is an error, a 0-d array reduces to itself), and
//! `store` to Zarr v3 and to `.npy` writes exactly the producer's values
//! (their SHA-256 in the manifest). Reading itself, `info` and refusals are
//! checked in formats/tests/it/corpus.rs. A panic is a failure of its case;
//! all failures are listed together.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use ndstream::{open, store, Array, Block, BlockElement, DType, Executor, StoreOptions};
use serde_json::Value;

#[path = "../../formats/tests/it/sha256.rs"]
mod sha256;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

fn manifest() -> Vec<Value> {
    let path = corpus_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The substring a refusal of this entry says, if this HDF5 may refuse it
/// (a filter it may lack, a format newer than it). A build without HDF5
/// refuses every HDF5 and netCDF-4 entry (Zarr and netCDF-3 need no HDF5).
fn may_refuse(entry: &Value) -> Option<String> {
    let format = entry["format"].as_str().unwrap();
    if cfg!(not(feature = "hdf5")) && !format.starts_with("Zarr") && !format.starts_with("netCDF-3")
    {
        return Some("HDF5 support".into());
    }
    entry
        .get("unless_missing_filter")
        .map(|f| f["name"].as_str().unwrap().to_string())
        .or_else(|| {
            entry
                .get("unless_hdf5_below")
                .map(|u| u["error"].as_str().unwrap().to_string())
        })
}

/// The elements of an integer or bool block, exactly.
fn ints(b: &Block) -> Vec<i128> {
    fn all<T: Copy + Into<i128> + BlockElement>(b: &Block) -> Vec<i128> {
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
        DType::F32 | DType::F64 => b.to_f64_vec().iter().map(|&x| x as i128).collect(),
    }
}

/// A manifest number ("nan", "inf" and "-inf" as strings) as f64.
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

/// An exact manifest integer.
fn int(v: &Value) -> i128 {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// NumPy's dtype for `x.sum()`.
fn sum_dtype(d: DType) -> DType {
    match d {
        DType::Bool | DType::I8 | DType::I16 | DType::I32 | DType::I64 => DType::I64,
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => DType::U64,
        DType::F32 | DType::F64 => d,
    }
}

/// A 0-d result against the manifest's value; floats as NumPy rounds them
/// to the result dtype (a float32 sum that overflows is `inf`).
fn check_scalar(what: &str, got: &Block, want_dtype: DType, want: &Value) -> Result<(), String> {
    if !got.shape().is_empty() || got.dtype() != want_dtype {
        return Err(format!(
            "{what}: got shape {:?} dtype {}, expected a 0-d {want_dtype}",
            got.shape(),
            got.dtype()
        ));
    }
    let ok = match want_dtype {
        DType::F32 | DType::F64 => {
            let g = got.to_f64_vec()[0];
            let w = num(want);
            let w = if want_dtype == DType::F32 {
                f64::from(w as f32)
            } else {
                w
            };
            // Sums accumulate in f64 with compensation: within a few ulps
            // of the exact sum (math.fsum) rounded to the result dtype.
            let ulp = if want_dtype == DType::F32 {
                f64::from(f32::EPSILON)
            } else {
                f64::EPSILON
            };
            (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 4.0 * ulp * w.abs()
        }
        _ => ints(got)[0] == int(want),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} = {:?}, expected {want}",
            got.to_f64_vec()[0]
        ))
    }
}

fn sha_of(b: &Block) -> String {
    let mut bytes = b.to_ne_bytes();
    if cfg!(target_endian = "big") {
        for item in bytes.chunks_exact_mut(b.dtype().size()) {
            item.reverse();
        }
    }
    sha256::sha256_hex(&bytes)
}

/// Reductions and conversions of one readable array.
fn check(exec: &Executor, entry: &Value, x: &Array, out: &std::path::Path) -> Vec<String> {
    let mut failures = Vec::new();
    let dtype: DType = entry["dtype"].as_str().unwrap().parse().unwrap();
    let empty = entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_u64() == Some(0));
    let mut run = |what: &str, f: &mut dyn FnMut() -> Result<(), String>| match catch_unwind(
        AssertUnwindSafe(&mut *f),
    ) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failures.push(format!("{what}: {e}")),
        Err(p) => failures.push(format!("{what}: panicked: {}", panic_text(&*p))),
    };
    run("sum", &mut || {
        let s = x.sum(None).map_err(|e| e.to_string())?;
        let got = exec.compute(&s).map_err(|e| e.to_string())?;
        check_scalar("sum", &got, sum_dtype(dtype), &entry["sum"])
    });
    for (name, key) in [("max", "max"), ("min", "min")] {
        run(name, &mut || {
            let r = if name == "max" {
                x.max(None)
            } else {
                x.min(None)
            };
            let got = r.and_then(|r| exec.compute(&r));
            match (got, empty) {
                (Ok(b), false) => check_scalar(name, &b, dtype, &entry[key]),
                (Err(e), false) => Err(e.to_string()),
                (Ok(b), true) => Err(format!(
                    "{name} of an empty array gave {b:?}, expected an error"
                )),
                (Err(e), true) => {
                    let msg = e.to_string();
                    if msg.contains("panicked") {
                        Err(format!("{name} of an empty array: {msg}"))
                    } else {
                        Ok(())
                    }
                }
            }
        });
    }
    for (i, ext) in ["zarr", "npy"].iter().enumerate() {
        let path = out.join(format!("{i}.{ext}")).display().to_string();
        run(&format!("store to .{ext}"), &mut || {
            store(exec, x, &path, &StoreOptions::default()).map_err(|e| e.to_string())?;
            let back = open(&path).map_err(|e| format!("reopen: {e}"))?;
            if back.shape() != x.shape() || back.dtype() != dtype {
                return Err(format!("stored as {:?} {}", back.shape(), back.dtype()));
            }
            let got = exec.compute(&back).map_err(|e| format!("read back: {e}"))?;
            if sha_of(&got) != entry["sha256"].as_str().unwrap() {
                return Err("stored values differ from the producer's".into());
            }
            Ok(())
        });
    }
    failures
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "?".into())
}

#[test]
fn corpus_reductions_and_stores_match_the_producers() {
    let exec = Executor::builder()
        .memory(64 << 20)
        .threads(2)
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let entries = manifest();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (n, entry) in entries.iter().enumerate() {
        if entry["expect"] != "read" {
            continue;
        }
        let loc = entry["location"].as_str().unwrap();
        let path = corpus_dir().join(loc).display().to_string();
        let opened = catch_unwind(AssertUnwindSafe(|| open(&path)));
        let x = match (opened, may_refuse(entry)) {
            (Ok(Ok(x)), _) => x,
            (Ok(Err(e)), Some(why)) if e.to_string().contains(&why) => continue,
            (Ok(Err(e)), _) => {
                failures.push(format!("{loc}: open: {e}"));
                continue;
            }
            (Err(p), _) => {
                failures.push(format!("{loc}: open panicked: {}", panic_text(&*p)));
                continue;
            }
        };
        let out = tmp.path().join(n.to_string());
        std::fs::create_dir(&out).unwrap();
        checked += 1;
        failures.extend(
            check(&exec, entry, &x, &out)
                .into_iter()
                .map(|f| format!("{loc}: {f}")),
        );
    }
    // Without HDF5 only the Zarr and netCDF-3 arrays are there to check.
    let least = if cfg!(feature = "hdf5") { 140 } else { 80 };
    assert!(checked >= least, "only {checked} arrays checked");
    assert!(
        failures.is_empty(),
        "{} failures over {checked} corpus arrays:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A reduction's outcome: its block, or the error's text; a panic is an `Err`.
fn reduce(exec: &Executor, r: ndstream::Result<Array>) -> Result<Result<Block, String>, String> {
    match catch_unwind(AssertUnwindSafe(|| r.and_then(|a| exec.compute(&a)))) {
        Ok(Ok(b)) => Ok(Ok(b)),
        Ok(Err(e)) if e.to_string().contains("panicked") => Err(e.to_string()),
        Ok(Err(e)) => Ok(Err(e.to_string())),
        Err(p) => Err(format!("panicked: {}", panic_text(&*p))),
    }
}

/// The 0-d and zero-length arrays of the corpus (netCDF scalar variables,
/// empty unlimited dimensions, zero-length Zarr arrays) under more
/// reductions, with NumPy's answers: a 0-d array's sum, max, min and mean
/// are its value, its std is 0, and it has no axis 0; along each axis of an
/// empty array, `sum` gives zeros of the remaining shape, `max` is an error
/// where that axis is empty and an empty result where it is not, and the
/// whole array's mean is NaN.
#[test]
fn corpus_scalars_and_empty_arrays_reduce_like_numpy() {
    let exec = Executor::builder()
        .memory(64 << 20)
        .threads(2)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let (mut scalars, mut empties) = (0, 0);
    for entry in manifest() {
        let shape: Vec<u64> = entry["shape"]
            .as_array()
            .map(|s| s.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if entry["expect"] != "read" || !(shape.is_empty() || shape.contains(&0)) {
            continue;
        }
        if may_refuse(&entry).is_some_and(|w| w == "HDF5 support") {
            continue;
        }
        let loc = entry["location"].as_str().unwrap();
        let path = corpus_dir().join(loc).display().to_string();
        let x = match catch_unwind(AssertUnwindSafe(|| open(&path))) {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                failures.push(format!("{loc}: open: {e}"));
                continue;
            }
            Err(p) => {
                failures.push(format!("{loc}: open panicked: {}", panic_text(&*p)));
                continue;
            }
        };
        let mut fail = |what: &str, why: String| failures.push(format!("{loc}: {what}: {why}"));
        if shape.is_empty() {
            scalars += 1;
            let value = num(&entry["sum"]);
            for (what, r, want) in [
                ("mean", x.mean(None), value),
                ("std", x.std(None, 0), 0.0),
                ("var", x.var(None, 0), 0.0),
                ("nansum", x.nansum(None), value),
            ] {
                match reduce(&exec, r) {
                    Ok(Ok(b)) if b.shape().is_empty() && b.to_f64_vec()[0] == want => {}
                    Ok(Ok(b)) => fail(what, format!("{b:?}, expected {want}")),
                    Ok(Err(e)) | Err(e) => fail(what, e),
                }
            }
            match reduce(&exec, x.sum(Some(0))) {
                Ok(Err(e)) if e.contains("out of bounds") => {}
                Ok(Ok(b)) => fail("sum(axis=0)", format!("{b:?}, expected an axis error")),
                Ok(Err(e)) | Err(e) => fail("sum(axis=0)", e),
            }
            continue;
        }
        empties += 1;
        for k in 0..shape.len() {
            let mut rest = shape.clone();
            rest.remove(k);
            let rest: Vec<usize> = rest.iter().map(|&n| n as usize).collect();
            let axis = Some(k as isize);
            match reduce(&exec, x.sum(axis)) {
                Ok(Ok(b))
                    if b.shape() == rest.as_slice() && b.to_f64_vec().iter().all(|&v| v == 0.0) => {
                }
                Ok(Ok(b)) => fail(
                    &format!("sum(axis={k})"),
                    format!("{b:?}, expected zeros {rest:?}"),
                ),
                Ok(Err(e)) | Err(e) => fail(&format!("sum(axis={k})"), e),
            }
            match (reduce(&exec, x.max(axis)), shape[k] == 0) {
                (Ok(Err(_)), true) => {}
                (Ok(Ok(b)), false) if b.shape() == rest.as_slice() => {}
                (Ok(Ok(b)), _) => fail(&format!("max(axis={k})"), format!("{b:?}")),
                (Ok(Err(e)), false) | (Err(e), _) => fail(&format!("max(axis={k})"), e),
            }
        }
        match reduce(&exec, x.mean(None)) {
            Ok(Ok(b)) if b.shape().is_empty() && b.to_f64_vec()[0].is_nan() => {}
            Ok(Ok(b)) => fail("mean", format!("{b:?}, expected nan")),
            Ok(Err(e)) | Err(e) => fail("mean", e),
        }
    }
    let (least_scalars, least_empties) = if cfg!(feature = "hdf5") {
        (15, 10)
    } else {
        (8, 3)
    };
    assert!(
        scalars >= least_scalars && empties >= least_empties,
        "{scalars} 0-d and {empties} empty arrays"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
