//! Reading the Zarr and `.npy` fixtures zarr-python and NumPy wrote
//! (tests/fixtures/make_zarr_npy.py), compared element by element with the
//! formula that script used.

use std::path::PathBuf;

use ndarray::{ArrayD, Dimension, IxDyn};
use ndstream_engine::{with_dtype, AxisSel, Block, DType, Element, Error};
use ndstream_formats::{info, open_source, StoreInfo};
use serde_json::Value;

use crate::conformance::select;

/// The repository's `tests/fixtures` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

/// `value(dtype, n)` of make_zarr_npy.py for linear index `n`.
fn fixture_value<T: Element>(dtype: DType, n: u64) -> T {
    let i = n as i64;
    match dtype {
        DType::Bool => T::from_u64(u64::from(n.is_multiple_of(3))),
        DType::I8 => T::from_i64((i * 37) % 256 - 128),
        DType::I16 => T::from_i64((i * 37) % 65536 - 32768),
        DType::I32 => T::from_i64(i * 100_003 - 50_000_000),
        DType::I64 => T::from_i64(i * 1_000_000_007 - 3_000_000_000),
        DType::U8 => T::from_u64((n * 37) % 256),
        DType::U16 => T::from_u64((n * 37) % 65536),
        DType::U32 => T::from_u64(n * 100_003),
        DType::U64 => T::from_u64(n * 1_000_000_007 + (1 << 40)),
        DType::F32 | DType::F64 => T::from_f64(((n * 37) % 1000) as f64 / 8.0 - 50.0),
    }
}

/// The fixture formula over `shape`; rows from `written_rows` on hold `fill`.
pub fn fixture_array(dtype: DType, shape: &[u64], written_rows: Option<u64>, fill: f64) -> Block {
    let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
    let strides: Vec<usize> = (0..dims.len())
        .map(|d| dims[d + 1..].iter().product())
        .collect();
    with_dtype!(dtype, T => Block::from(ArrayD::<T>::from_shape_fn(IxDyn(&dims), |ix| {
        let n: usize = (0..ix.ndim()).map(|d| ix[d] * strides[d]).sum();
        match written_rows {
            Some(rows) if ix.ndim() > 0 && ix[0] as u64 >= rows => T::from_f64(fill),
            _ => fixture_value::<T>(dtype, n as u64),
        }
    })))
}

fn manifest(kind: &str) -> Vec<Value> {
    let path = fixtures_dir().join(kind).join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn check_fixture(kind: &str, entry: &Value) {
    let rel = entry["path"].as_str().unwrap();
    let path = fixtures_dir().join(kind).join(rel).display().to_string();
    if let Some(err) = entry.get("error").and_then(Value::as_str) {
        match open_source(&path) {
            Err(e @ Error::Open { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(err) && msg.contains(rel),
                    "{path}: message `{msg}` should name {err} and the path"
                );
            }
            Err(e) => panic!("{path}: wrong error kind: {e}"),
            Ok(_) => panic!("{path}: unsupported dtype was accepted"),
        }
        return;
    }
    let dtype: DType = entry["dtype"].as_str().unwrap().parse().unwrap();
    let shape = u64s(&entry["shape"]);
    let rows = entry["written_rows"].as_u64();
    let fill = entry["fill"].as_f64().unwrap_or(0.0);
    let want = fixture_array(dtype, &shape, rows, fill);

    let src = open_source(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(src.shape(), shape.as_slice(), "{path}");
    assert_eq!(src.dtype(), dtype, "{path}");
    let grid = src.grid().clone();
    if let Some(chunks) = entry["chunks"].as_array() {
        let chunks: Vec<u64> = chunks.iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(grid.max_chunk_shape(), chunks, "{path}: grid");
    }
    for n in 0..grid.num_chunks() {
        let idx = grid.unravel(n);
        let got = src
            .read_chunk(&idx)
            .unwrap_or_else(|e| panic!("{path} chunk {idx:?}: {e}"));
        let region: Vec<AxisSel> = grid
            .chunk_region(&idx)
            .into_iter()
            .map(AxisSel::range)
            .collect();
        assert!(
            got == select(&want, &region),
            "{path}: chunk {idx:?}: got {got:?}"
        );
    }
    if src.supports_selection() && shape.iter().all(|&n| n > 1) {
        let sel: Vec<AxisSel> = shape
            .iter()
            .map(|&n| AxisSel {
                start: n - 1,
                step: -2,
                len: n.div_ceil(2),
            })
            .collect();
        assert!(
            src.read_selection(&sel).unwrap() == select(&want, &sel),
            "{path}: strided selection"
        );
    }
    let attrs = src.attributes();
    for (k, v) in entry["attributes"].as_object().unwrap() {
        assert_eq!(attrs.get(k), Some(v), "{path}: attribute {k}");
    }
    let StoreInfo::Array(i) = info(&path).unwrap_or_else(|e| panic!("{path}: info: {e}")) else {
        panic!("{path}: info is not an array")
    };
    assert_eq!(
        (i.shape, i.dtype, i.incomplete),
        (shape, dtype, false),
        "{path}: info"
    );
    if rows.is_some() {
        assert_eq!(i.fill_value, Some(fill), "{path}: fill value");
    }
}

#[test]
fn zarr_fixtures_read_exactly() {
    let m = manifest("zarr");
    assert!(m.len() >= 20);
    for entry in &m {
        check_fixture("zarr", entry);
    }
}

#[test]
fn npy_fixtures_read_exactly() {
    let m = manifest("npy");
    assert!(m.len() >= 14);
    for entry in &m {
        check_fixture("npy", entry);
    }
}

#[test]
fn zarr_info_describes_formats_and_codecs() {
    let dir = fixtures_dir().join("zarr");
    let get = |rel: &str| match info(&dir.join(rel).display().to_string()).unwrap() {
        StoreInfo::Array(a) => a,
        other => panic!("{other:?}"),
    };
    let a = get("v2/f32_zstd.zarr");
    assert_eq!(
        (a.format.as_str(), a.codec.as_str()),
        ("zarr v2", "zstd(level=3)")
    );
    assert_eq!(a.chunks, Some(vec![4, 3]));
    assert!(a.stored_bytes.unwrap() > 0);
    assert_eq!(a.logical_bytes, 13 * 7 * 4);
    let a = get("v3/sharded.zarr");
    assert_eq!(a.format, "zarr v3");
    assert_eq!((a.chunks, a.shards), (Some(vec![4, 3]), Some(vec![8, 6])));
    assert!(
        a.codec.contains("sharding") && a.codec.contains("zstd"),
        "{}",
        a.codec
    );
    assert!(get("v3/f64_be.zarr").codec.contains("big"));
    assert!(get("v2/u16_blosc.zarr").codec.contains("lz4"));
}

#[test]
fn zarr_group_info_lists_arrays_recursively() {
    for v in ["v2", "v3"] {
        let path = fixtures_dir()
            .join("zarr")
            .join(v)
            .join("group.zarr")
            .display()
            .to_string();
        let StoreInfo::Group {
            arrays,
            attributes,
            format,
            ..
        } = info(&path).unwrap()
        else {
            panic!("{path}: not a group")
        };
        assert_eq!(format, format!("zarr {v}"));
        assert_eq!(
            attributes.get("title"),
            Some(&serde_json::json!("fixture group"))
        );
        let names: Vec<&str> = arrays.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(
            names,
            vec![format!("{path}/a"), format!("{path}/inner/b")],
            "{path}"
        );
        // Each listed path opens again.
        for a in &arrays {
            assert_eq!(open_source(&a.path).unwrap().shape(), a.shape.as_slice());
        }
        // A group is not a source.
        assert!(matches!(open_source(&path), Err(Error::Open { .. })));
    }
}
