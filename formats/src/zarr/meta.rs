//! Zarr metadata as ndstream sees it: reading `zarr.json` (v3) or
//! `.zarray`/`.zgroup`/`.zattrs` (v2) into an [`ArrayMeta`], and building the
//! metadata JSON of a new array from a [`SinkSpec`].
//!
//! zarrs decodes the chunks; this module only answers what ndstream needs
//! before that (is it an array, which dtype, which chunking, is it sharded,
//! what to show in `info`) and refuses what ndstream cannot hold (complex,
//! string, structured and other dtypes; irregular chunk grids) with a
//! message naming the array and the dtype. Metadata is a few hundred bytes,
//! so it is read whole: with `std::fs` on disk, through a store's `get`
//! elsewhere ([`MetaReader`]).

use std::path::Path;

use ndstream_engine::{Attributes, DType};
use serde_json::{json, Value};

use crate::path::{parse_typestr, typestr};
use crate::spec::{Codec, SinkSpec, ZarrVersion};

/// The names of Zarr's metadata documents (v3 and v2, with consolidated
/// metadata): whatever makes a node of a directory or prefix.
pub(crate) const METADATA_FILES: [&str; 5] =
    ["zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"];

/// What a directory of a Zarr hierarchy holds.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Array(ArrayMeta),
    Group {
        version: ZarrVersion,
        attributes: Attributes,
    },
}

/// The parts of an array's metadata ndstream uses.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArrayMeta {
    pub version: ZarrVersion,
    pub shape: Vec<u64>,
    pub dtype: DType,
    /// The chunk grid's chunk shape (the shard shape when sharded).
    pub chunks: Vec<u64>,
    /// The inner chunk shape of a sharded array.
    pub inner: Option<Vec<u64>>,
    /// The codec pipeline in words.
    pub codec: String,
    pub fill_value: Option<f64>,
    pub attributes: Attributes,
}

/// Where a node's metadata documents are read from: `get(name)` returns
/// the bytes of `zarr.json`, `.zarray`, … in the node (`None` if absent),
/// `describe(name)` names that document in messages (a file path, a URL).
pub(crate) trait MetaReader {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
    fn describe(&self, name: &str) -> String;
}

/// A node directory on the filesystem.
struct DirReader<'a>(&'a Path);

impl MetaReader for DirReader<'_> {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.0.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    fn describe(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

fn read_json(r: &dyn MetaReader, name: &str) -> Result<Option<Value>, String> {
    match r.get(name)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not valid JSON: {e}", r.describe(name))),
        None => Ok(None),
    }
}

/// Refuse declared sizes no array can have: a shape, chunk (or shard) or
/// inner chunk of more than `i64::MAX` bytes. Such metadata would make
/// every size computed from it overflow; a large but possible chunk is
/// left to the plan, which refuses it against the memory budget.
fn check_sizes(a: ArrayMeta) -> Result<ArrayMeta, String> {
    for (what, shape) in [
        ("shape", Some(&a.shape)),
        ("chunk shape", Some(&a.chunks)),
        ("inner chunk shape", a.inner.as_ref()),
    ] {
        if let Some(shape) = shape {
            a.dtype.nbytes_of(shape).map_err(|_| {
                format!(
                    "the declared {what} {shape:?} of {} would hold more than 2^63 bytes",
                    a.dtype
                )
            })?;
        }
    }
    Ok(a)
}

/// Read the node at `dir`: `Ok(None)` if it has no Zarr metadata.
pub(crate) fn read_node(dir: &Path) -> Result<Option<Node>, String> {
    read_node_from(&DirReader(dir))
}

/// Read the node whose metadata `r` reads: `Ok(None)` if it has none.
pub(crate) fn read_node_from(r: &dyn MetaReader) -> Result<Option<Node>, String> {
    if let Some(v) = read_json(r, "zarr.json")? {
        return match v.get("node_type").and_then(Value::as_str) {
            Some("array") => parse_v3(&v)
                .and_then(check_sizes)
                .map(|a| Some(Node::Array(a))),
            Some("group") => Ok(Some(Node::Group {
                version: ZarrVersion::V3,
                attributes: attrs_of(v.get("attributes")),
            })),
            other => Err(format!(
                "zarr.json has node_type {other:?}, expected array or group"
            )),
        };
    }
    let attributes = attrs_of(read_json(r, ".zattrs")?.as_ref());
    if let Some(v) = read_json(r, ".zarray")? {
        let mut a = check_sizes(parse_v2(&v)?)?;
        a.attributes = attributes;
        return Ok(Some(Node::Array(a)));
    }
    if read_json(r, ".zgroup")?.is_some() {
        return Ok(Some(Node::Group {
            version: ZarrVersion::V2,
            attributes,
        }));
    }
    Ok(None)
}

fn attrs_of(v: Option<&Value>) -> Attributes {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn u64_list(v: Option<&Value>, what: &str) -> Result<Vec<u64>, String> {
    v.and_then(Value::as_array)
        .ok_or_else(|| format!("metadata has no {what} list"))?
        .iter()
        .map(|x| {
            x.as_u64()
                .ok_or_else(|| format!("{what} entry {x} is not a non-negative integer"))
        })
        .collect()
}

fn unsupported(dtype: &str) -> String {
    format!(
        "unsupported dtype `{dtype}` (ndstream reads bool, int8..int64, uint8..uint64, float32 and float64)"
    )
}

fn v3_dtype(name: &str) -> Result<DType, String> {
    Ok(match name {
        "bool" => DType::Bool,
        "int8" => DType::I8,
        "int16" => DType::I16,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "float32" => DType::F32,
        "float64" => DType::F64,
        other => return Err(unsupported(other)),
    })
}

fn v3_name(dtype: DType) -> &'static str {
    dtype.name()
}

fn parse_v3(v: &Value) -> Result<ArrayMeta, String> {
    let shape = u64_list(v.get("shape"), "shape")?;
    let dtype = match v.get("data_type") {
        Some(Value::String(s)) => v3_dtype(s)?,
        Some(Value::Object(o)) => {
            return Err(unsupported(
                o.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("an extension data type"),
            ))
        }
        _ => return Err("metadata has no data_type".into()),
    };
    let grid = v.get("chunk_grid").ok_or("metadata has no chunk_grid")?;
    let grid_name = grid.get("name").and_then(Value::as_str).unwrap_or("");
    if grid_name != "regular" {
        return Err(format!(
            "chunk grid `{grid_name}` is not supported (only regular grids are)"
        ));
    }
    let chunks = u64_list(grid.pointer("/configuration/chunk_shape"), "chunk_shape")?;
    if chunks.len() != shape.len() || chunks.contains(&0) {
        return Err(format!(
            "chunk shape {chunks:?} does not fit shape {shape:?}"
        ));
    }
    let codecs = v
        .get("codecs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Sharding as the only codec: its inner chunks are the natural read unit.
    let inner = match codecs.as_slice() {
        [c] if c.get("name").and_then(Value::as_str) == Some("sharding_indexed") => {
            let inner = u64_list(c.pointer("/configuration/chunk_shape"), "inner chunk_shape")?;
            if inner.len() != shape.len() || inner.contains(&0) {
                return Err(format!(
                    "inner chunk shape {inner:?} does not fit shape {shape:?}"
                ));
            }
            Some(inner)
        }
        _ => None,
    };
    Ok(ArrayMeta {
        version: ZarrVersion::V3,
        shape,
        dtype,
        chunks,
        inner,
        codec: describe_v3(&codecs),
        fill_value: fill_to_f64(v.get("fill_value"), dtype),
        attributes: attrs_of(v.get("attributes")),
    })
}

fn describe_v3(codecs: &[Value]) -> String {
    let parts: Vec<String> = codecs
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let conf = c.get("configuration");
            let get = |k: &str| {
                conf.and_then(|x| x.get(k))
                    .map(|x| x.to_string().trim_matches('"').to_string())
            };
            match name {
                "bytes" => match get("endian") {
                    Some(e) => format!("bytes({e})"),
                    None => "bytes".into(),
                },
                "zstd" => format!("zstd(level={})", get("level").unwrap_or_default()),
                "gzip" => format!("gzip({})", get("level").unwrap_or_default()),
                "blosc" => format!(
                    "blosc({}, clevel={}, {})",
                    get("cname").unwrap_or_default(),
                    get("clevel").unwrap_or_default(),
                    get("shuffle").unwrap_or_else(|| "noshuffle".into())
                ),
                "sharding_indexed" => {
                    let inner = conf
                        .and_then(|x| x.get("codecs"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    format!(
                        "sharding(chunks={}; {})",
                        get("chunk_shape").unwrap_or_default(),
                        describe_v3(&inner)
                    )
                }
                other => other.to_string(),
            }
        })
        .collect();
    parts.join("+")
}

fn parse_v2(v: &Value) -> Result<ArrayMeta, String> {
    let shape = u64_list(v.get("shape"), "shape")?;
    let chunks = u64_list(v.get("chunks"), "chunks")?;
    if chunks.len() != shape.len() || chunks.contains(&0) {
        return Err(format!(
            "chunk shape {chunks:?} does not fit shape {shape:?}"
        ));
    }
    let (dtype, little) = match v.get("dtype") {
        Some(Value::String(s)) => parse_typestr(s).map_err(|_| unsupported(s))?,
        Some(Value::Array(_)) => return Err(unsupported("structured")),
        _ => return Err("metadata has no dtype".into()),
    };
    let mut parts = Vec::new();
    // The byte order is part of the encoding (as the v3 `bytes` codec's
    // `endian` is): a resume must not add little-endian chunks to it.
    if !little && dtype.size() > 1 {
        parts.push("bytes(big)".to_string());
    }
    if v.get("order").and_then(Value::as_str) == Some("F") {
        parts.push("order=F".to_string());
    }
    if let Some(filters) = v.get("filters").and_then(Value::as_array) {
        for f in filters {
            parts.push(
                f.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            );
        }
    }
    match v.get("compressor") {
        Some(Value::Object(c)) => {
            let id = c.get("id").and_then(Value::as_str).unwrap_or("?");
            let g = |k: &str| {
                c.get(k)
                    .map(|x| x.to_string().trim_matches('"').to_string())
                    .unwrap_or_default()
            };
            parts.push(match id {
                "zstd" => format!("zstd(level={})", g("level")),
                "gzip" | "zlib" => format!("{id}({})", g("level")),
                "blosc" => format!(
                    "blosc({}, clevel={}, shuffle={})",
                    g("cname"),
                    g("clevel"),
                    g("shuffle")
                ),
                other => other.to_string(),
            });
        }
        _ => {
            if parts.is_empty() {
                parts.push("none".into());
            }
        }
    }
    Ok(ArrayMeta {
        version: ZarrVersion::V2,
        shape,
        dtype,
        chunks,
        inner: None,
        codec: parts.join("+"),
        fill_value: fill_to_f64(v.get("fill_value"), dtype),
        attributes: Attributes::new(),
    })
}

fn fill_to_f64(v: Option<&Value>, dtype: DType) -> Option<f64> {
    match v? {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            hex if hex.starts_with("0x") => {
                let bits = u64::from_str_radix(&hex[2..], 16).ok()?;
                match dtype {
                    DType::F32 => Some(f64::from(f32::from_bits(bits as u32))),
                    DType::F64 => Some(f64::from_bits(bits)),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

fn fill_json(dtype: DType) -> Value {
    match dtype {
        DType::Bool => json!(false),
        DType::F32 | DType::F64 => json!(0.0),
        _ => json!(0),
    }
}

fn v3_bytes_codecs(spec: &SinkSpec) -> Vec<Value> {
    let mut codecs = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
    match &spec.codec {
        Codec::None => {}
        Codec::Zstd { level } => codecs
            .push(json!({"name": "zstd", "configuration": {"level": level, "checksum": false}})),
        Codec::Gzip { level } => {
            codecs.push(json!({"name": "gzip", "configuration": {"level": level}}))
        }
        Codec::Blosc {
            cname,
            clevel,
            shuffle,
        } => codecs.push(json!({
            "name": "blosc",
            "configuration": {
                "cname": cname,
                "clevel": clevel,
                "shuffle": if *shuffle { "shuffle" } else { "noshuffle" },
                "typesize": spec.dtype.size(),
                "blocksize": 0
            }
        })),
    }
    codecs
}

/// The metadata JSON (`zarr.json` for v3, `.zarray` plus `attributes` for
/// v2) of a new array for `spec`.
pub(crate) fn build_metadata(spec: &SinkSpec) -> Value {
    match spec.zarr_version {
        ZarrVersion::V3 => {
            let (grid_chunks, codecs) = match &spec.shards {
                Some(shards) => (
                    shards.clone(),
                    vec![json!({
                        "name": "sharding_indexed",
                        "configuration": {
                            "chunk_shape": spec.chunks,
                            "codecs": v3_bytes_codecs(spec),
                            "index_codecs": [
                                {"name": "bytes", "configuration": {"endian": "little"}},
                                {"name": "crc32c"}
                            ],
                            "index_location": "end"
                        }
                    })],
                ),
                None => (spec.chunks.clone(), v3_bytes_codecs(spec)),
            };
            json!({
                "zarr_format": 3,
                "node_type": "array",
                "shape": spec.shape,
                "data_type": v3_name(spec.dtype),
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid_chunks}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": fill_json(spec.dtype),
                "codecs": codecs,
                "attributes": spec.attributes,
            })
        }
        ZarrVersion::V2 => {
            let compressor = match &spec.codec {
                Codec::None => Value::Null,
                Codec::Zstd { level } => json!({"id": "zstd", "level": level, "checksum": false}),
                Codec::Gzip { level } => json!({"id": "gzip", "level": level}),
                Codec::Blosc {
                    cname,
                    clevel,
                    shuffle,
                } => json!({
                    "id": "blosc", "cname": cname, "clevel": clevel,
                    "shuffle": i32::from(*shuffle), "blocksize": 0
                }),
            };
            json!({
                "zarr_format": 2,
                "shape": spec.shape,
                "chunks": spec.chunks,
                "dtype": typestr(spec.dtype, true),
                "compressor": compressor,
                "fill_value": fill_json(spec.dtype),
                "order": "C",
                "filters": Value::Null,
                "dimension_separator": ".",
                "attributes": spec.attributes,
            })
        }
    }
}

/// The [`ArrayMeta`] a spec's metadata describes (to compare on resume).
pub(crate) fn meta_of_spec(spec: &SinkSpec) -> Result<ArrayMeta, String> {
    let v = build_metadata(spec);
    match spec.zarr_version {
        ZarrVersion::V3 => parse_v3(&v),
        ZarrVersion::V2 => parse_v2(&v),
    }
}

/// The metadata of an empty group.
pub(crate) fn group_metadata(version: ZarrVersion) -> (&'static str, Value) {
    match version {
        ZarrVersion::V3 => (
            "zarr.json",
            json!({"zarr_format": 3, "node_type": "group", "attributes": {}}),
        ),
        ZarrVersion::V2 => (".zgroup", json!({"zarr_format": 2})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_metadata_parses_back() {
        for version in [ZarrVersion::V2, ZarrVersion::V3] {
            for codec in [
                Codec::None,
                Codec::Zstd { level: 3 },
                Codec::Gzip { level: 5 },
                Codec::Blosc {
                    cname: "lz4".into(),
                    clevel: 5,
                    shuffle: true,
                },
            ] {
                let mut spec = SinkSpec::new(vec![10, 7], DType::U16, vec![4, 7]);
                spec.zarr_version = version;
                spec.codec = codec;
                let m = meta_of_spec(&spec).unwrap();
                assert_eq!(
                    (m.shape, m.dtype, m.chunks, m.inner),
                    (vec![10, 7], DType::U16, vec![4, 7], None)
                );
            }
        }
        let mut spec = SinkSpec::new(vec![10, 7], DType::F64, vec![2, 7]);
        spec.shards = Some(vec![4, 7]);
        let m = meta_of_spec(&spec).unwrap();
        assert_eq!((m.chunks, m.inner), (vec![4, 7], Some(vec![2, 7])));
        assert!(m.codec.starts_with("sharding("), "{}", m.codec);
    }

    #[test]
    fn unsupported_dtypes_are_named() {
        let v = json!({"zarr_format": 3, "node_type": "array", "shape": [2], "data_type": "complex64",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}}, "codecs": []});
        assert!(parse_v3(&v).unwrap_err().contains("complex64"));
        let v = json!({"zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "<U4"});
        assert!(parse_v2(&v).unwrap_err().contains("<U4"));
    }

    #[test]
    fn fill_values() {
        assert_eq!(
            fill_to_f64(Some(&json!("0x3f800000")), DType::F32),
            Some(1.0)
        );
        assert!(fill_to_f64(Some(&json!("NaN")), DType::F64).is_some_and(f64::is_nan));
        assert_eq!(fill_to_f64(Some(&json!(true)), DType::Bool), Some(1.0));
        assert_eq!(fill_to_f64(Some(&Value::Null), DType::I8), None);
    }
}
