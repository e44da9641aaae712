//! The real-file corpus through the `ndstream` command (tests/fixtures/corpus,
//! written by h5py, netCDF4-python, h5netcdf, xarray and zarr-python; see
//! tests/fixtures/make_corpus.py). For every array ndstream reads:
//! `info --json` gives its shape and dtype; `eval` of `[x.sum(), x.max(),
//! x.min()]` gives what NumPy gives for the producer's values (an empty
//! array sums to 0 and its max is an error; a 0-d array reduces to itself);
//! `convert` to Zarr v3 and to `.npy` writes exactly the producer's values
//! (the manifest's SHA-256), and, with a Python that has numpy, h5py and
//! zarr, h5py/zarr-python read the source and numpy/zarr-python read the
//! outputs and find them equal. Every array ndstream does not hold is
//! refused by `info`/`eval`/`convert` with status 2 and an error naming it,
//! never a panic, and `convert` leaves no output behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::sha256::sha256_hex;
use crate::{json, run};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/corpus")
}

fn manifest() -> Vec<Value> {
    let path = corpus_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(v)) => v,
        other => panic!("{}: {other:?}", path.display()),
    }
}

/// The substring a refusal says when this build or its HDF5 may refuse a
/// readable entry (a filter libhdf5 lacks, a format newer than it).
fn may_refuse(entry: &Value) -> Option<String> {
    if cfg!(not(feature = "hdf5")) && !entry["format"].as_str().unwrap_or("").starts_with("Zarr") {
        return Some("HDF5 support".into());
    }
    let text = |v: &Value| v.as_str().map(str::to_string);
    entry
        .get("unless_missing_filter")
        .and_then(|f| text(&f["name"]))
        .or_else(|| {
            entry
                .get("unless_hdf5_below")
                .and_then(|u| text(&u["error"]))
        })
}

/// A manifest number ("nan", "inf", "-inf" as strings) as f64.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// NumPy's dtype for `x.sum()`.
fn sum_dtype(d: &str) -> &str {
    match d {
        "bool" | "int8" | "int16" | "int32" | "int64" => "int64",
        "uint8" | "uint16" | "uint32" | "uint64" => "uint64",
        other => other,
    }
}

/// One `eval --json` item against the manifest's value. Integers exactly;
/// floats as NumPy rounds them to the result dtype, within a few ulps (sums
/// accumulate in f64 with compensation); JSON has no NaN or infinity, so
/// `null` stands for a non-finite result.
fn check_item(what: &str, item: &Value, dtype: &str, want: &Value) -> Result<(), String> {
    if item["shape"] != json!([]) || item["dtype"] != dtype {
        return Err(format!("{what}: {item}, expected a 0-d {dtype}"));
    }
    let got = &item["data"];
    let ok = match dtype {
        "float32" | "float64" => {
            let w = num(want).ok_or_else(|| format!("{what}: manifest value {want}"))?;
            let (w, eps) = if dtype == "float32" {
                (f64::from(w as f32), f64::from(f32::EPSILON))
            } else {
                (w, f64::EPSILON)
            };
            match got.as_f64() {
                None => got.is_null() && !w.is_finite(),
                Some(g) => {
                    let g = if dtype == "float32" {
                        f64::from(g as f32)
                    } else {
                        g
                    };
                    g == w || (g - w).abs() <= 4.0 * eps * w.abs()
                }
            }
        }
        "bool" => got.as_bool().map(u64::from) == want.as_u64(),
        _ => got == want,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{what} = {got}, expected {want}"))
    }
}

/// The SHA-256 of an output's values (C order, little-endian), read in-process.
fn stored_sha(path: &str) -> Result<String, String> {
    let x = ndstream::open(path).map_err(|e| format!("reopen {path}: {e}"))?;
    let b = x.compute().map_err(|e| format!("read {path}: {e}"))?;
    let mut bytes = b.to_ne_bytes();
    if cfg!(target_endian = "big") {
        for item in bytes.chunks_exact_mut(b.dtype().size()) {
            item.reverse();
        }
    }
    Ok(sha256_hex(&bytes))
}

/// Status 2, one `error: ` message naming `loc` (and saying `why`), no panic.
fn refused(args: &[&str], dir: &Path, loc: &str, why: Option<&str>) -> Result<String, String> {
    let (code, _, err) = run(args, dir);
    let names = err.contains(loc) && why.is_none_or(|w| err.contains(w));
    if code == 2 && err.starts_with("error: ") && names && !err.contains("panicked") {
        Ok(err)
    } else {
        Err(format!(
            "{args:?}: status {code}, expected 2 with an error naming {loc}{}: {err}",
            why.map(|w| format!(" and saying `{w}`"))
                .unwrap_or_default()
        ))
    }
}

/// The CLI checks of one readable array; the outputs go to `out`.
fn check_readable(entry: &Value, loc: &str, out: &Path) -> Vec<String> {
    let dir = corpus_dir();
    let mut failures = Vec::new();
    let dtype = entry["dtype"].as_str().unwrap_or("");
    let empty = entry["shape"]
        .as_array()
        .is_some_and(|s| s.iter().any(|n| n.as_u64() == Some(0)));

    let (code, stdout, err) = run(&["info", loc, "--json"], &dir);
    if code != 0 {
        failures.push(format!("info: status {code}: {err}"));
    } else {
        let i = json(&stdout);
        if i["shape"] != entry["shape"] || i["dtype"] != dtype {
            failures.push(format!("info: shape {} dtype {}", i["shape"], i["dtype"]));
        }
    }

    let sum = format!("open('{loc}').sum()");
    let (code, stdout, err) = run(&["eval", &sum, "--json"], &dir);
    if code != 0 {
        failures.push(format!("eval sum: status {code}: {err}"));
    } else if let Err(e) = check_item("sum", &json(&stdout), sum_dtype(dtype), &entry["sum"]) {
        failures.push(e);
    }
    for op in ["max", "min"] {
        let expr = format!("open('{loc}').{op}()");
        if empty {
            if let Err(e) = refused(&["eval", &expr], &dir, "", None) {
                failures.push(format!("{op} of an empty array: {e}"));
            }
            continue;
        }
        let (code, stdout, err) = run(&["eval", &expr, "--json"], &dir);
        if code != 0 {
            failures.push(format!("eval {op}: status {code}: {err}"));
        } else if let Err(e) = check_item(op, &json(&stdout), dtype, &entry[op]) {
            failures.push(e);
        }
    }

    for ext in ["zarr", "npy"] {
        let dst = out.join(format!("out.{ext}")).display().to_string();
        let (code, _, err) = run(&["convert", loc, &dst], &dir);
        if code != 0 {
            failures.push(format!("convert to .{ext}: status {code}: {err}"));
            continue;
        }
        match stored_sha(&dst) {
            Ok(sha) if sha == entry["sha256"].as_str().unwrap_or("") => {}
            Ok(_) => failures.push(format!(
                "convert to .{ext}: values differ from the producer's"
            )),
            Err(e) => failures.push(format!("convert to .{ext}: {e}")),
        }
    }
    failures
}

/// The CLI checks of one refused array.
fn check_refused(loc: &str, why: &str, out: &Path) -> Vec<String> {
    let dir = corpus_dir();
    let mut failures = Vec::new();
    // `info` may describe it (a dataset whose filter libhdf5 lacks) or refuse it.
    let (code, _, err) = run(&["info", loc, "--json"], &dir);
    if code != 0 {
        if let Err(e) = refused(&["info", loc], &dir, loc, None) {
            failures.push(e);
        }
    } else if err.contains("panicked") {
        failures.push(format!("info: {err}"));
    }
    let sum = format!("open('{loc}').sum()");
    if let Err(e) = refused(&["eval", &sum], &dir, loc, Some(why)) {
        failures.push(e);
    }
    let dst = out.join("refused.zarr");
    let dst_s = dst.display().to_string();
    if let Err(e) = refused(&["convert", loc, &dst_s], &dir, loc, Some(why)) {
        failures.push(e);
    }
    if dst.exists() {
        failures.push("a refused convert left its output behind".into());
    }
    failures
}

/// A Python that imports numpy, h5py, hdf5plugin, netCDF4 and zarr: `$NDSTREAM_PYTHON`, else `python3`.
fn python() -> Option<String> {
    let candidates = match std::env::var("NDSTREAM_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".to_string()],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy, h5py, hdf5plugin, netCDF4, zarr"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// h5py / zarr-python read each source, numpy / zarr-python each output.
const ORACLE: &str = r#"
import json, sys
import h5py, numpy as np, zarr
import hdf5plugin  # registers the plugin filters (zstd, lz4, blosc, bitshuffle...) with h5py's libhdf5
import netCDF4  # netCDF-3 files, which h5py cannot open
def is_nc3(path):
    with open(path, "rb") as fh:
        return fh.read(3) == b"CDF"
bad = []
cases = json.loads(sys.stdin.read())
for c in cases:
    if c["kind"] == "hdf5" and is_nc3(c["file"]):
        with netCDF4.Dataset(c["file"]) as ds:
            v = ds.variables[c["path"].strip("/")]
            v.set_auto_maskandscale(False)
            v.set_auto_chartostring(False)
            want = np.asarray(v[...])
            if want.dtype.kind == "S":
                want = want.view("u1")
    elif c["kind"] == "hdf5":
        with h5py.File(c["file"], "r") as f:
            d = f[c["path"]]
            want = d[()] if d.shape == () else d[...]
    else:
        want = zarr.open_array(c["file"] + ("/" + c["path"] if c["path"] else ""), mode="r")[...]
    want = np.asarray(want)
    outs = [("zarr", zarr.open_array(c["zarr"], mode="r")[...]), ("npy", np.load(c["npy"]))]
    for name, got in outs:
        got = np.asarray(got)
        same = (got.shape == want.shape
                and got.dtype.newbyteorder("<") == want.dtype.newbyteorder("<")
                and np.array_equal(got, want, equal_nan=want.dtype.kind == "f"))
        if not same:
            bad.append(f"{c['location']}: {name} output {got.dtype}{got.shape} != source {want.dtype}{want.shape}")
print("\n".join(bad) if bad else f"ok {len(cases)}")
sys.exit(1 if bad else 0)
"#;

#[test]
fn corpus_through_the_command_line() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let entries = manifest();
    assert!(entries.len() >= 150, "{} entries", entries.len());
    // Two workers: every case is a handful of short processes.
    let results: Vec<(Vec<String>, Option<Value>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let entries = &entries;
                let tmp = tmp.path();
                s.spawn(move || {
                    let mut res = Vec::new();
                    for (n, entry) in entries.iter().enumerate().skip(w).step_by(2) {
                        res.push(run_case(n, entry, tmp));
                    }
                    res
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| panic!("a worker panicked")))
            .collect()
    });
    let mut failures: Vec<String> = results.iter().flat_map(|r| r.0.clone()).collect();
    let converted: Vec<Value> = results.iter().filter_map(|r| r.1.clone()).collect();
    assert!(
        converted.len() >= 140 || !failures.is_empty(),
        "{} converted",
        converted.len()
    );

    match python() {
        None => eprintln!(
            "SKIPPED corpus oracle: no Python with numpy, h5py, hdf5plugin, netCDF4 and zarr (set NDSTREAM_PYTHON)"
        ),
        Some(py) => {
            use std::io::Write;
            let mut child = Command::new(&py)
                .args(["-c", ORACLE])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{py}: {e}"));
            let body = serde_json::to_vec(&converted).unwrap_or_default();
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(&body).unwrap_or_else(|e| panic!("{e}"));
            }
            let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "corpus oracle ({py}): {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
            if !out.status.success() {
                failures.push(format!(
                    "python oracle:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One manifest entry: its failures, and (if converted) what the Python oracle checks.
fn run_case(n: usize, entry: &Value, tmp: &Path) -> (Vec<String>, Option<Value>) {
    let loc = entry["location"].as_str().unwrap_or("?");
    let out = tmp.join(n.to_string());
    std::fs::create_dir(&out).unwrap_or_else(|e| panic!("{e}"));
    let dir = corpus_dir();
    let tag = |f: Vec<String>| f.into_iter().map(|e| format!("{loc}: {e}")).collect();
    if entry["expect"] == "refuse" {
        let why = entry["error"].as_str().unwrap_or("");
        return (tag(check_refused(loc, why, &out)), None);
    }
    if let Some(why) = may_refuse(entry) {
        let (code, _, err) = run(&["eval", &format!("open('{loc}').sum()")], &dir);
        if code != 0 && err.contains(&why) {
            return (tag(check_refused(loc, &why, &out)), None);
        }
    }
    let failures = check_readable(entry, loc, &out);
    let oracle = failures.is_empty().then(|| {
        let kind = if entry["format"].as_str().unwrap_or("").starts_with("Zarr") {
            "zarr"
        } else {
            "hdf5"
        };
        json!({
            "location": loc,
            "kind": kind,
            "file": dir.join(entry["file"].as_str().unwrap_or("")).display().to_string(),
            "path": entry["path"],
            "zarr": out.join("out.zarr").display().to_string(),
            "npy": out.join("out.npy").display().to_string(),
        })
    });
    (tag(failures), oracle)
}
