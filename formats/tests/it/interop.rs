//! Reverse interop: what our sinks write (Zarr v2, v3, v3 sharded, `.npy`),
//! read back by zarr-python and NumPy and compared with the fixture formula.
//!
//! Python is `$NDSTREAM_PYTHON`, else `/work/venv/bin/python` if it exists,
//! else `python3`. Without a Python that imports numpy and zarr the test
//! prints why and passes (skips).

use std::path::Path;
use std::process::Command;

use ndstream_engine::{AxisSel, DType};
use ndstream_formats::{create_sink, Codec, SinkSpec, ZarrVersion};

use crate::conformance::select;
use crate::fixtures::{fixture_array, fixtures_dir};

/// A command for `program` whose child inherits no descriptor beyond
/// stdin, stdout and stderr.
///
/// Tests in this binary write HDF5 files on other threads while these
/// children run; libhdf5 opens files without `O_CLOEXEC` and `flock`s them,
/// so a child forked between an open and the library's `cloexec` would keep
/// the lock after the file is closed here, and the next open of that file
/// would fail with "unable to lock file". Marking every descriptor above 2
/// close-on-exec in the child (one `close_range` after fork, before exec)
/// closes that window; the sink's own retry covers the microseconds between
/// fork and exec.
pub(crate) fn child(program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    // SAFETY: the closure makes one async-signal-safe system call and
    // allocates nothing. Best effort: a kernel without `close_range`
    // (before 5.11) leaves the descriptors as they are.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            );
            Ok(())
        });
    }
    cmd
}

/// A Python that runs `import {imports}`: `$NDSTREAM_PYTHON`, else
/// `/work/venv/bin/python` if it exists, else `python3`.
pub(crate) fn python_with(imports: &str) -> Option<String> {
    let candidates: Vec<String> = match std::env::var("NDSTREAM_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => {
            let mut c = Vec::new();
            if Path::new("/work/venv/bin/python").exists() {
                c.push("/work/venv/bin/python".to_string());
            }
            c.push("python3".to_string());
            c
        }
    };
    let code = format!("import {imports}");
    candidates.into_iter().find(|p| {
        child(p)
            .args(["-c", &code])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Run the Python program `code` with `dir` as its one argument (it
/// writes its files there, and a `manifest.json`), and return that
/// manifest; the program's stderr is the failure message.
pub(crate) fn python_writes(py: &str, code: &str, dir: &Path) -> serde_json::Value {
    let out = child(py)
        .args(["-c", code, &dir.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Write `fixture_array(dtype, shape)` through our sink at `path`.
fn write(path: &str, spec: &SinkSpec) {
    let data = fixture_array(spec.dtype, &spec.shape, None, 0.0);
    let sink = create_sink(path, spec).unwrap_or_else(|e| panic!("{path}: {e}"));
    let grid = sink.grid().clone();
    for n in 0..grid.num_chunks() {
        let idx = grid.unravel(n);
        let sel: Vec<AxisSel> = grid
            .chunk_region(&idx)
            .into_iter()
            .map(AxisSel::range)
            .collect();
        sink.write_chunk(&idx, &select(&data, &sel))
            .unwrap_or_else(|e| panic!("{path} {idx:?}: {e}"));
    }
    sink.finish().unwrap();
}

const CHECK: &str = r#"
import json, sys
import numpy as np
import zarr
sys.path.insert(0, sys.argv[1])
from make_zarr_npy import expected
cases = json.loads(sys.argv[2])
for c in cases:
    if c["kind"] == "npy":
        a = np.load(c["path"])
        attrs = {}
    else:
        z = zarr.open_array(c["path"], mode="r")
        assert z.metadata.zarr_format == c["zarr_format"], (c["path"], z.metadata.zarr_format)
        a = z[...]
        attrs = dict(z.attrs)
    want = expected(c["dtype"], tuple(c["shape"]))
    assert a.dtype == want.dtype, (c["path"], a.dtype, want.dtype)
    assert a.shape == want.shape, (c["path"], a.shape, want.shape)
    np.testing.assert_array_equal(a, want, err_msg=c["path"])
    for k, v in c["attributes"].items():
        assert attrs.get(k) == v, (c["path"], k, attrs.get(k), v)
print("ok", len(cases))
"#;

#[test]
fn zarr_python_and_numpy_read_what_we_write() {
    let Some(py) = python_with("numpy, zarr") else {
        eprintln!("SKIPPED interop: no Python with numpy and zarr (set NDSTREAM_PYTHON)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut attrs = ndstream_engine::Attributes::new();
    attrs.insert("units".into(), serde_json::json!("m/s"));
    attrs.insert("valid_range".into(), serde_json::json!([0, 40]));
    let codecs = [
        Codec::None,
        Codec::Zstd { level: 3 },
        Codec::Gzip { level: 4 },
        Codec::Blosc {
            cname: "lz4".into(),
            clevel: 5,
            shuffle: true,
        },
    ];
    let dtypes = DType::ALL;
    let mut k = 0;
    for version in [ZarrVersion::V2, ZarrVersion::V3] {
        for (i, dt) in dtypes.iter().enumerate() {
            let codec = codecs[i % codecs.len()].clone();
            let mut spec = SinkSpec::new(vec![11, 6], *dt, vec![4, 4]);
            spec.codec = codec;
            spec.zarr_version = version;
            spec.attributes = attrs.clone();
            let v = if version == ZarrVersion::V2 { 2 } else { 3 };
            let path = tmp.path().join(format!("z{k}.zarr")).display().to_string();
            k += 1;
            write(&path, &spec);
            cases.push(serde_json::json!({"kind": "zarr", "zarr_format": v, "path": path, "dtype": dt.name(),
                "shape": spec.shape, "attributes": attrs}));
        }
    }
    for (i, codec) in codecs.iter().enumerate() {
        let mut spec = SinkSpec::new(
            vec![13, 10],
            [DType::F32, DType::I64, DType::U8, DType::Bool][i],
            vec![2, 3],
        );
        spec.shards = Some(vec![4, 6]);
        spec.codec = codec.clone();
        let path = tmp
            .path()
            .join(format!("sharded{i}.zarr/grp/arr"))
            .display()
            .to_string();
        write(&path, &spec);
        cases.push(serde_json::json!({"kind": "zarr", "zarr_format": 3, "path": path, "dtype": spec.dtype.name(),
            "shape": spec.shape, "attributes": {}}));
    }
    for (i, dt) in dtypes.iter().enumerate() {
        let shape: Vec<u64> = [vec![17], vec![5, 7], vec![3, 4, 5]][i % 3].clone();
        let chunks: Vec<u64> = shape.iter().map(|&n| n.div_ceil(2)).collect();
        let spec = SinkSpec::new(shape, *dt, chunks);
        let path = tmp.path().join(format!("n{i}.npy")).display().to_string();
        write(&path, &spec);
        cases.push(
            serde_json::json!({"kind": "npy", "path": path, "dtype": dt.name(), "shape": spec.shape,
            "attributes": {}}),
        );
    }
    let out = child(&py)
        .arg("-c")
        .arg(CHECK)
        .arg(fixtures_dir())
        .arg(serde_json::Value::Array(cases.clone()).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("ok {}", cases.len())), "{stdout}");
}
