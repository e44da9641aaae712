//! `ndstream eval EXPR`: evaluate an expression and print the result like
//! NumPy (or as JSON), or store an array result with `-o DST`.
//!
//! A list or tuple result (`[x.sum(), x.mean(), x.std()]`) is computed in
//! one pass (`compute_many`: shared inputs are read once) and printed one
//! item per line. Printed results are limited to [`MAX_PRINT`] elements;
//! larger ones must be stored.

use serde_json::json;

use crate::cli::EvalArgs;
use crate::config::{parse_dtype, resolve_chunks, store_options, usage, ExecConfig};
use crate::expr::{evaluate, Value};
use crate::format::{block_json, format_array, py_float};
use crate::session::Session;

/// The most elements a printed result may have.
pub const MAX_PRINT: u64 = 10_000;

/// Run `eval`.
///
/// # Errors
/// Syntax and evaluation errors (exit 2, with a caret), runtime failures (exit 1).
pub fn run(args: &EvalArgs, quiet: bool) -> anyhow::Result<()> {
    let cfg = ExecConfig::from_args(&args.exec, quiet)?;
    if let Some(dst) = &args.output {
        let (a, opts) = prepare_store(args)?;
        let session = Session::new(&cfg, true, quiet)?;
        session.store(&a, dst, &opts)?;
        return Ok(());
    }
    // Store options are checked even where nothing is stored.
    store_options(&args.store)?;
    args.dtype.as_deref().map(parse_dtype).transpose()?;
    let value = evaluate(&args.expr, &[]).map_err(anyhow::Error::new)?;
    let mut arrays = Vec::new();
    collect_arrays(&value, &mut arrays);
    for a in &arrays {
        if a.size() > MAX_PRINT {
            return Err(usage(format!(
                "the result has {} elements (shape {:?}), more than the {MAX_PRINT} that can be printed; \
                 store it with -o DST (e.g. -o result.zarr) or reduce it",
                a.size(),
                a.shape()
            )));
        }
    }
    let session = Session::new(&cfg, false, quiet)?;
    let blocks = session.compute_many(&arrays)?;
    let mut blocks = blocks.into_iter();
    if args.json {
        println!("{}", to_json(&value, &mut blocks));
    } else {
        match &value {
            Value::List(items) | Value::Tuple(items)
                if items.iter().any(|v| matches!(v, Value::Array(_))) =>
            {
                for it in items {
                    println!("{}", to_text(it, &mut blocks));
                }
            }
            v => println!("{}", to_text(v, &mut blocks)),
        }
    }
    Ok(())
}

/// The array `eval -o` stores and how (what `ndstream plan eval` plans).
///
/// # Errors
/// Syntax and evaluation errors, a result that is not an array, bad options.
pub fn prepare_store(args: &EvalArgs) -> anyhow::Result<(ndstream::Array, ndstream::StoreOptions)> {
    let mut opts = store_options(&args.store)?;
    let dtype = args.dtype.as_deref().map(parse_dtype).transpose()?;
    let value = evaluate(&args.expr, &[]).map_err(anyhow::Error::new)?;
    let Value::Array(mut a) = value else {
        return Err(usage(format!(
            "-o stores an array, but the result is a {}",
            value.type_name()
        )));
    };
    if let Some(d) = dtype {
        a = a.astype(d);
    }
    if let Some(c) = &opts.chunks {
        opts.chunks = Some(resolve_chunks(c, a.shape())?);
    }
    opts.attributes
        .insert("ndstream_expression".into(), json!(args.expr));
    Ok((a, opts))
}

/// Every array in a value, in order (lists and tuples flattened).
fn collect_arrays(v: &Value, out: &mut Vec<ndstream::Array>) {
    match v {
        Value::Array(a) => out.push(a.clone()),
        Value::List(items) | Value::Tuple(items) => {
            items.iter().for_each(|x| collect_arrays(x, out))
        }
        _ => {}
    }
}

/// A value as Python/NumPy print it; arrays take the next computed block.
fn to_text(v: &Value, blocks: &mut impl Iterator<Item = ndstream::Block>) -> String {
    match v {
        Value::Array(_) => blocks.next().map(|b| format_array(&b)).unwrap_or_default(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => py_float(*f, false),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::None => "None".into(),
        Value::Ellipsis => "Ellipsis".into(),
        Value::DType(d) => d.name().to_string(),
        Value::Module(_) => "<module>".into(),
        Value::Slice { start, stop, step } => {
            let p = |x: &Option<i64>| x.map_or("None".to_string(), |v| v.to_string());
            format!("slice({}, {}, {})", p(start), p(stop), p(step))
        }
        Value::Tuple(items) => {
            let parts: Vec<String> = items.iter().map(|x| to_text(x, blocks)).collect();
            if parts.len() == 1 {
                format!("({},)", parts[0])
            } else {
                format!("({})", parts.join(", "))
            }
        }
        Value::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|x| to_text(x, blocks))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A value as JSON: arrays (and scalars) as `{"shape", "dtype", "data"}`, lists as JSON lists.
fn to_json(v: &Value, blocks: &mut impl Iterator<Item = ndstream::Block>) -> serde_json::Value {
    let scalar =
        |dtype: &str, data: serde_json::Value| json!({"shape": [], "dtype": dtype, "data": data});
    match v {
        Value::Array(_) => blocks
            .next()
            .map(|b| block_json(&b))
            .unwrap_or(serde_json::Value::Null),
        Value::Int(i) => scalar("int64", json!(i)),
        Value::Float(f) => scalar(
            "float64",
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        ),
        Value::Bool(b) => scalar("bool", json!(b)),
        Value::List(items) | Value::Tuple(items) => {
            serde_json::Value::Array(items.iter().map(|x| to_json(x, blocks)).collect())
        }
        other => json!(to_text(other, blocks)),
    }
}
