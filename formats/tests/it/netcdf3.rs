//! netCDF-3 files written by netCDF-C (through netCDF4-python), read by
//! ndstream's own reader and compared, bit for bit, with what netCDF-C
//! reads back (unmasked): classic, 64-bit offset and CDF-5 files; record
//! variables of every type (padded records, and the packed records of a
//! file with one record variable); scalars, `char` data, zero records,
//! a "streaming" record count, many chunks and strided selections;
//! attributes and fill values as `info` reports them.
//!
//! Python is found as in `interop` and must import numpy and netCDF4;
//! without one the test prints why and passes. The README's test command
//! installs netCDF4 into the test venv.

use std::path::Path;

use ndstream_engine::{AxisSel, Block, DType};
use ndstream_formats::{info, open_source, StoreInfo};
use serde_json::Value;

use crate::conformance::select;
use crate::corpus::{le_bytes, read_all};
use crate::interop::{python_with, python_writes};

/// Writes the files and, per variable, its values (little-endian, C order)
/// as `<file>.<var>.bin` and a manifest of shapes, dtypes and attributes.
const WRITER: &str = r#"
import json, sys
import numpy as np
import netCDF4

out = sys.argv[1]
rng = np.random.default_rng(7)
manifest = {}

def record(path, ds):
    entry = {"format": ds.data_model, "attrs": {k: ds.getncattr(k) for k in ds.ncattrs()}, "vars": {}}
    for name, v in ds.variables.items():
        v.set_auto_maskandscale(False)
        v.set_auto_chartostring(False)
        a = np.asarray(v[...])
        if a.dtype.kind == "S":
            a = a.view("u1")
        a = a.astype(a.dtype.newbyteorder("<"))
        with open(f"{path}.{name}.bin", "wb") as f:
            f.write(np.ascontiguousarray(a).tobytes())
        attrs = {}
        for k in v.ncattrs():
            x = v.getncattr(k)
            if isinstance(x, np.ndarray):
                x = x.tolist()
            elif isinstance(x, np.generic):
                x = x.item()
            if isinstance(x, bytes):
                x = x.decode("latin-1")
            attrs[k] = x
        entry["vars"][name] = {"shape": list(a.shape), "dtype": a.dtype.name, "attrs": attrs}
    manifest[path] = entry

def to_json(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x

for fmt in ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"]:
    # Several record variables of every size (padded records), fixed ones,
    # a scalar, text, attributes, fill values; 40 records.
    p = f"{out}/many-{fmt}.nc"
    with netCDF4.Dataset(p, "w", format=fmt) as ds:
        ds.setncattr("title", "netCDF-3 reader test")
        ds.setncattr("release", np.int32(3))
        ds.setncattr("factors", np.array([1.5, 2.5], "f8"))
        ds.createDimension("time", None)
        ds.createDimension("y", 7)
        ds.createDimension("x", 5)
        ds.createDimension("n", 3)
        types = ["i1", "i2", "i4", "f4", "f8"]
        if fmt == "NETCDF3_64BIT_DATA":
            types += ["u1", "u2", "u4", "i8", "u8"]
        for t in types:
            v = ds.createVariable(f"r_{t}", t, ("time", "y", "n"), fill_value=np.array(7, t))
            info = np.iinfo(t) if t[0] in "iu" else np.finfo(t)
            v[0:40] = rng.uniform(max(info.min, -1e6), min(info.max, 1e6), (40, 7, 3)).astype(t)
            v.units = "K"
        ds.createVariable("fixed", "f8", ("y", "x"))[:] = rng.normal(size=(7, 5))
        ds.createVariable("short3", "i2", ("n",))[:] = [1, -2, 3]
        ds.createVariable("scalar", "f4", ())[...] = np.float32(2.5)
        c = ds.createVariable("text", "S1", ("y", "n"))
        c[:] = np.array([list("abc")] * 7, "S1")
        t = ds.createVariable("t", "f8", ("time",))
        t[0:40] = np.arange(40) * 0.5
        t.long_name = "time"
        t.valid_range = np.array([0, 100], "i2")
    with netCDF4.Dataset(p) as ds:
        record(p, ds)

    # One record variable of bytes: records packed, 5 bytes apart.
    p = f"{out}/packed-{fmt}.nc"
    with netCDF4.Dataset(p, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 5)
        ds.createVariable("b", "i1", ("time", "x"))[0:9] = rng.integers(-100, 100, (9, 5))
        ds.createVariable("f", "i2", ("x",))[:] = [9, 8, 7, 6, 5]
    with netCDF4.Dataset(p) as ds:
        record(p, ds)

    # An unlimited dimension with no records: three record variables (the
    # later ones begin past the end of the file), a char fill value.
    p = f"{out}/empty-{fmt}.nc"
    with netCDF4.Dataset(p, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 4)
        ds.createVariable("r", "f4", ("time", "x"))
        ds.createVariable("f", "i4", ("x",))[:] = [1, 2, 3, 4]
        ds.createVariable("c", "S1", ("x",), fill_value=b"x")
        ds.createVariable("r2", "i2", ("time", "x"))
        ds.createVariable("r3", "f8", ("time",))
    with netCDF4.Dataset(p) as ds:
        record(p, ds)

# Large enough for many 4 MiB chunks: 300 records of 2 x 2000 doubles
# beside a second record variable.
p = f"{out}/big.nc"
with netCDF4.Dataset(p, "w", format="NETCDF3_64BIT_OFFSET") as ds:
    ds.createDimension("time", None)
    ds.createDimension("y", 2)
    ds.createDimension("x", 2000)
    ds.createVariable("a", "f8", ("time", "y", "x"))[0:300] = rng.normal(size=(300, 2, 2000))
    ds.createVariable("b", "i2", ("time",))[0:300] = np.arange(300)
with netCDF4.Dataset(p) as ds:
    record(p, ds)

with open(f"{out}/manifest.json", "w") as f:
    json.dump(manifest, f, default=to_json)
"#;

fn dtype_of(name: &str) -> DType {
    match name {
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "int16" => DType::I16,
        "uint16" => DType::U16,
        "int32" => DType::I32,
        "uint32" => DType::U32,
        "int64" => DType::I64,
        "uint64" => DType::U64,
        "float32" => DType::F32,
        "float64" => DType::F64,
        other => panic!("dtype {other}"),
    }
}

/// JSON numbers compare as numbers (netCDF-C's `1` and our `1.0`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        _ => a == b,
    }
}

/// Every variable of a file the writer made reads as netCDF-C reads it.
fn check_file(file: &Path, entry: &Value) {
    let fname = file.display().to_string();
    let StoreInfo::Group {
        format,
        attributes,
        arrays,
        ..
    } = info(&fname).unwrap_or_else(|e| panic!("{fname}: {e}"))
    else {
        panic!("{fname}: not a group");
    };
    let want_format = match entry["format"].as_str().unwrap() {
        "NETCDF3_CLASSIC" => "netcdf3 classic",
        "NETCDF3_64BIT_OFFSET" => "netcdf3 64-bit offset",
        _ => "netcdf3 64-bit data (CDF-5)",
    };
    assert_eq!(format, want_format, "{fname}");
    for (k, v) in entry["attrs"].as_object().unwrap() {
        assert!(
            same_json(&attributes[k], v),
            "{fname} {k}: {}",
            attributes[k]
        );
    }
    let vars = entry["vars"].as_object().unwrap();
    assert_eq!(arrays.len(), vars.len(), "{fname}: {arrays:?}");
    for (name, v) in vars {
        let path = format!("{fname}:/{name}");
        let shape: Vec<u64> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        let dtype = dtype_of(v["dtype"].as_str().unwrap());
        let src = open_source(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            (src.shape(), src.dtype()),
            (shape.as_slice(), dtype),
            "{path}"
        );
        let all = read_all(src.as_ref()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want = std::fs::read(format!("{fname}.{name}.bin")).unwrap();
        assert!(
            le_bytes(&all) == want,
            "{path}: values differ from netCDF-C's"
        );
        // Attributes, and the fill value info reports.
        let attrs = src.attributes();
        for (k, a) in v["attrs"].as_object().unwrap() {
            assert!(same_json(&attrs[k], a), "{path} {k}: {} vs {a}", attrs[k]);
        }
        let StoreInfo::Array(ai) = info(&path).unwrap() else {
            panic!("{path}: not an array")
        };
        assert_eq!(ai.shape, shape, "{path}");
        if let Some(f) = v["attrs"].get("_FillValue") {
            // a char fill value is its byte
            let want = f
                .as_f64()
                .or_else(|| f.as_str().and_then(|t| t.bytes().next()).map(f64::from));
            assert_eq!(ai.fill_value, want, "{path}");
        }
        // Strided selections straight from the map agree with the chunks.
        assert!(src.supports_selection());
        let sels: [Vec<AxisSel>; 2] = [
            shape.iter().map(|&n| AxisSel::full(n)).collect(),
            shape
                .iter()
                .map(|&n| AxisSel {
                    start: n.saturating_sub(1),
                    step: -3,
                    len: n.div_ceil(3),
                })
                .collect(),
        ];
        for sel in &sels {
            let got: Block = src.read_selection(sel).unwrap();
            assert!(
                le_bytes(&got) == le_bytes(&select(&all, sel)),
                "{path}: selection {sel:?}"
            );
        }
        // Where it can be opened again.
        let again = open_source(&src.locator().unwrap()).unwrap();
        assert!(
            le_bytes(&read_all(again.as_ref()).unwrap()) == want,
            "{path}"
        );
    }
}

#[test]
fn netcdf3_files_read_as_netcdf_c_reads_them() {
    let Some(py) = python_with("numpy, netCDF4") else {
        eprintln!("skipped: no Python with numpy and netCDF4 (set NDSTREAM_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = python_writes(&py, WRITER, dir.path());
    let files = manifest.as_object().unwrap();
    assert_eq!(files.len(), 10);
    for (file, entry) in files {
        check_file(Path::new(file), entry);
    }

    // Many chunks: the big variable is read in several.
    let big = open_source(&format!("{}/big.nc:/a", dir.path().display())).unwrap();
    assert!(big.grid().num_chunks() > 1, "{:?}", big.grid());

    // The same file with its record count set to "streaming" (all ones)
    // reads the same: the count comes from the file's size.
    let src = dir.path().join("many-NETCDF3_64BIT_OFFSET.nc");
    let streaming = dir.path().join("streaming.nc");
    let mut bytes = std::fs::read(&src).unwrap();
    bytes[4..8].copy_from_slice(&[0xff; 4]);
    std::fs::write(&streaming, &bytes).unwrap();
    for var in ["r_f8", "t", "fixed"] {
        let a = open_source(&format!("{}:/{var}", src.display())).unwrap();
        let b = open_source(&format!("{}:/{var}", streaming.display())).unwrap();
        assert_eq!(a.shape(), b.shape(), "{var}");
        assert!(
            le_bytes(&read_all(a.as_ref()).unwrap()) == le_bytes(&read_all(b.as_ref()).unwrap()),
            "{var}"
        );
    }
}

/// Wrong names and damaged files: clear errors naming the file, never a
/// panic.
#[test]
fn bad_netcdf3_paths_and_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A hand-made classic file: dims x=3; one fixed short variable `a`.
    let mut v: Vec<u8> = b"CDF\x01".to_vec();
    let be = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
    be(&mut v, 0);
    be(&mut v, 0x0A);
    be(&mut v, 1);
    be(&mut v, 1);
    v.extend_from_slice(b"x\0\0\0");
    be(&mut v, 3);
    be(&mut v, 0);
    be(&mut v, 0);
    be(&mut v, 0x0B);
    be(&mut v, 1);
    be(&mut v, 1);
    v.extend_from_slice(b"a\0\0\0");
    be(&mut v, 1);
    be(&mut v, 0);
    be(&mut v, 0);
    be(&mut v, 0);
    be(&mut v, 3);
    be(&mut v, 8);
    let begin = v.len() as u32 + 4;
    be(&mut v, begin);
    for x in [1i16, -2, 3, 0] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    let file = dir.path().join("a.nc");
    std::fs::write(&file, &v).unwrap();
    let f = file.display().to_string();
    let a = open_source(&format!("{f}:/a")).unwrap();
    assert_eq!(a.read_chunk(&[0]).unwrap().to_f64_vec(), [1.0, -2.0, 3.0]);

    let refused = |path: &str, want: &str| {
        let Err(e) = open_source(path) else {
            panic!("{path}: opened")
        };
        let m = e.to_string();
        assert!(m.contains(want) && m.contains(&f), "{path}: {m}");
    };
    refused(&format!("{f}:/nope"), "variable \"nope\" does not exist");
    refused(&format!("{f}:/g/a"), "no groups");
    refused(&f, "name a variable");
    // A variable that begins inside the header (netCDF-C refuses the file).
    let mut inside = v.clone();
    let at = inside.len() - 12;
    inside[at..at + 4].copy_from_slice(&8u32.to_be_bytes());
    std::fs::write(&file, &inside).unwrap();
    refused(&format!("{f}:/a"), "begins at byte 8, inside the header");
    assert!(info(&f).is_err());
    // Truncated inside the data (the file's listing fails too, naming the
    // variable), and inside the header.
    std::fs::write(&file, &v[..v.len() - 4]).unwrap();
    refused(&format!("{f}:/a"), "truncated");
    let e = info(&f).unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains(":/a"), "{e}");
    std::fs::write(&file, &v[..30]).unwrap();
    refused(&format!("{f}:/a"), "not a valid netCDF-3 file");
    assert!(info(&f).is_err());

    // Names netCDF-C never writes: a variable or dimension defined twice
    // (netCDF4-python shows the last of two variables, ndstream read the
    // first: ambiguous, so refused) and an empty name (no path names it).
    for (dims, vars, want) in [
        (
            &["x"][..],
            &["v", "v"][..],
            "variable \"v\" is defined twice",
        ),
        (
            &["x", "x"][..],
            &["a"][..],
            "dimension \"x\" is defined twice",
        ),
        (&["x"][..], &["", "b"][..], "a variable has an empty name"),
        (&[""][..], &["a"][..], "a dimension has an empty name"),
    ] {
        std::fs::write(&file, classic(dims, vars)).unwrap();
        refused(&format!("{f}:/{}", vars[vars.len() - 1]), want);
        let e = info(&f).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    // The same builder's well-formed file reads.
    std::fs::write(&file, classic(&["x"], &["v", "w"])).unwrap();
    let w = open_source(&format!("{f}:/w")).unwrap();
    assert_eq!(w.read_chunk(&[0]).unwrap().to_f64_vec(), [11.0, 12.0]);
}

/// A classic netCDF-3 file with dimensions `dims`, each of length 2, and
/// int variables `vars` over the first, variable `i` holding
/// `[10 i + 1, 10 i + 2]`.
fn classic(dims: &[&str], vars: &[&str]) -> Vec<u8> {
    fn be(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_be_bytes());
    }
    fn name(v: &mut Vec<u8>, s: &str) {
        be(v, s.len() as u32);
        v.extend_from_slice(s.as_bytes());
        v.resize(v.len() + (4 - s.len() % 4) % 4, 0);
    }
    let mut v: Vec<u8> = b"CDF\x01".to_vec();
    be(&mut v, 0);
    be(&mut v, 0x0A);
    be(&mut v, dims.len() as u32);
    for d in dims {
        name(&mut v, d);
        be(&mut v, 2);
    }
    be(&mut v, 0);
    be(&mut v, 0);
    be(&mut v, 0x0B);
    be(&mut v, vars.len() as u32);
    let entry = |s: &str| 4 + s.len().div_ceil(4) * 4 + 4 * 7;
    let mut begin = v.len() + vars.iter().map(|s| entry(s)).sum::<usize>();
    for s in vars {
        name(&mut v, s);
        for x in [1, 0, 0, 0, 4, 8, begin as u32] {
            be(&mut v, x);
        }
        begin += 8;
    }
    for i in 0..vars.len() as i32 {
        v.extend_from_slice(&(10 * i + 1).to_be_bytes());
        v.extend_from_slice(&(10 * i + 2).to_be_bytes());
    }
    v
}

/// The matches of one glob may be of two formats that share a path
/// syntax: each is opened by its own (netCDF-3 by its magic number, HDF5
/// by libhdf5), in the glob's order, and a write to the netCDF-3 one is
/// refused before anything changes.
#[cfg(feature = "hdf5")]
#[test]
fn a_glob_over_netcdf3_and_hdf5_files_opens_each_with_its_format() {
    use ndstream_formats::{
        create_sink, format_of, open_many, parse_location, sink_needs, SinkSpec, WriteMode,
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("a1.nc"), classic(&["x"], &["v"])).unwrap();
    let h5 = format!("{d}/a2.nc:/v");
    let sink = create_sink(&h5, &SinkSpec::new(vec![3], DType::I32, vec![2])).unwrap();
    sink.write_chunk(&[0], &Block::from(ndarray::arr1(&[7, 8]).into_dyn()))
        .unwrap();
    sink.write_chunk(&[1], &Block::from(ndarray::arr1(&[9]).into_dyn()))
        .unwrap();
    sink.finish().unwrap();
    let names: Vec<&str> = ["a1.nc", "a2.nc"]
        .iter()
        .map(|f| {
            let loc = parse_location(&format!("{d}/{f}:/v")).unwrap();
            format_of(&loc).unwrap().name()
        })
        .collect();
    assert_eq!(names, ["netcdf3", "hdf5"]);
    let all = open_many(&format!("{d}/a*.nc:/v")).unwrap();
    let values: Vec<Vec<f64>> = all
        .iter()
        .map(|s| read_all(s.as_ref()).unwrap().to_f64_vec())
        .collect();
    assert_eq!(values, [vec![1.0, 2.0], vec![7.0, 8.0, 9.0]]);
    let before = std::fs::read(dir.path().join("a1.nc")).unwrap();
    for mode in [WriteMode::Create, WriteMode::Overwrite, WriteMode::Resume] {
        let mut spec = SinkSpec::new(vec![2], DType::I32, vec![2]);
        spec.mode = mode;
        let at = format!("{d}/a1.nc:/v");
        let m = sink_needs(&at, &spec).unwrap_err().to_string();
        assert!(m.contains("netCDF-3") && m.contains("a1.nc"), "{m}");
        assert!(create_sink(&at, &spec).is_err());
    }
    assert_eq!(std::fs::read(dir.path().join("a1.nc")).unwrap(), before);
}
