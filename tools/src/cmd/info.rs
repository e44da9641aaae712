//! `ndstream info PATH [--json]`: what a store holds, from the formats
//! crate's [`info`](ndstream::formats::info): shape, dtype, chunks, codec,
//! stored and logical bytes, attributes, and whether an interrupted write
//! left it incomplete; for a group or HDF5 file, every array inside.

use ndstream::formats::{ArrayInfo, StoreInfo};
use ndstream::human_bytes;
use serde_json::json;

use crate::cli::InfoArgs;

/// Run `info`.
///
/// # Errors
/// A missing or unreadable store.
pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let info = ndstream::formats::info(&args.path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info_json(&info))?);
    } else {
        print!("{}", info_text(&info));
    }
    Ok(())
}

fn tuple(v: &[u64]) -> String {
    match v {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn array_text(a: &ArrayInfo, indent: &str) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{indent}{k:<11}{v}\n"));
    line("path", a.path.clone());
    line("format", a.format.clone());
    line("shape", tuple(&a.shape));
    line("dtype", a.dtype.name().to_string());
    line(
        "chunks",
        a.chunks.as_deref().map_or("contiguous".to_string(), tuple),
    );
    if let Some(sh) = &a.shards {
        line("shards", tuple(sh));
    }
    line("codec", a.codec.clone());
    line(
        "logical",
        format!(
            "{} ({} bytes)",
            human_bytes(a.logical_bytes),
            a.logical_bytes
        ),
    );
    if let Some(st) = a.stored_bytes {
        let ratio = if st > 0 {
            format!(", ratio {:.2}", a.logical_bytes as f64 / st as f64)
        } else {
            String::new()
        };
        line("stored", format!("{} ({st} bytes){ratio}", human_bytes(st)));
    }
    if let Some(f) = a.fill_value {
        line("fill value", crate::format::py_float(f, false));
    }
    if !a.attributes.is_empty() {
        line(
            "attributes",
            serde_json::Value::Object(a.attributes.clone()).to_string(),
        );
    }
    if a.incomplete {
        line(
            "status",
            "INCOMPLETE: an interrupted write; finish it with --resume".to_string(),
        );
    }
    s
}

/// The human-readable description.
pub fn info_text(info: &StoreInfo) -> String {
    match info {
        StoreInfo::Array(a) => array_text(a, ""),
        StoreInfo::Group {
            path,
            format,
            attributes,
            arrays,
        } => {
            let mut s = format!("group      {path} ({format}), {} arrays\n", arrays.len());
            if !attributes.is_empty() {
                s.push_str(&format!(
                    "attributes {}\n",
                    serde_json::Value::Object(attributes.clone())
                ));
            }
            for a in arrays {
                s.push('\n');
                s.push_str(&array_text(a, "  "));
            }
            s
        }
    }
}

fn array_json(a: &ArrayInfo) -> serde_json::Value {
    json!({
        "path": a.path,
        "format": a.format,
        "shape": a.shape,
        "dtype": a.dtype.name(),
        "chunks": a.chunks,
        "shards": a.shards,
        "codec": a.codec,
        "stored_bytes": a.stored_bytes,
        "logical_bytes": a.logical_bytes,
        "fill_value": a.fill_value.and_then(serde_json::Number::from_f64),
        "attributes": a.attributes,
        "incomplete": a.incomplete,
    })
}

/// The JSON description.
pub fn info_json(info: &StoreInfo) -> serde_json::Value {
    match info {
        StoreInfo::Array(a) => array_json(a),
        StoreInfo::Group {
            path,
            format,
            attributes,
            arrays,
        } => json!({
            "path": path,
            "format": format,
            "group": true,
            "attributes": attributes,
            "arrays": arrays.iter().map(array_json).collect::<Vec<_>>(),
        }),
    }
}
