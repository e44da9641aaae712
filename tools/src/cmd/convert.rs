//! `ndstream convert SRC DST`: any format to any other, streaming chunk by
//! chunk under the memory budget. Options rechunk (`--chunks`), recompress
//! (`--codec`, `--shard`), cast (`--dtype`) and take a strided selection
//! (`--select '::2,::2'`); a glob SRC is stacked along a new first axis.
//! The output keeps the input's attributes and, by default, its chunks
//! (as the selection leaves them, clamped to the output shape).

use std::sync::Arc;

use ndstream::{Array, Attributes, ChunkSource, StoreOptions};

use crate::cli::ConvertArgs;
use crate::config::{parse_dtype, resolve_chunks, store_options, usage, ExecConfig};
use crate::expr::builtins::is_glob;
use crate::session::Session;

/// Open `src` (a path or a glob, stacked on a new first axis) with its attributes.
///
/// # Errors
/// Missing inputs, inputs of different shapes or dtypes.
pub fn open_input(src: &str) -> anyhow::Result<(Array, Attributes)> {
    if is_glob(src) {
        let sources: Vec<Arc<dyn ChunkSource>> = ndstream::formats::open_many(src)?;
        let attrs = sources.first().map(|s| s.attributes()).unwrap_or_default();
        let arrays: Vec<Array> = sources.into_iter().map(Array::from_source).collect();
        Ok((ndstream::stack(&arrays, 0)?, attrs))
    } else {
        let source = ndstream::formats::open_source(src)?;
        let attrs = source.attributes();
        Ok((Array::from_source(source), attrs))
    }
}

/// Apply `--select`.
///
/// # Errors
/// A selection that does not parse or does not fit the array.
pub fn select(a: Array, sel: Option<&str>) -> anyhow::Result<Array> {
    match sel {
        None => Ok(a),
        Some(s) => {
            let items =
                crate::expr::parse_selection(s).map_err(|e| usage(format!("--select: {e}")))?;
            a.index(&items).map_err(|e| usage(format!("--select: {e}")))
        }
    }
}

/// The array `convert` stores and how (what `ndstream plan convert` plans).
///
/// # Errors
/// Bad options or inputs.
pub fn prepare(args: &ConvertArgs) -> anyhow::Result<(Array, StoreOptions)> {
    let mut opts = store_options(&args.store)?;
    let dtype = args.dtype.as_deref().map(parse_dtype).transpose()?;
    let (a, attrs) = open_input(&args.src)?;
    let mut a = select(a, args.select.as_deref())?;
    if let Some(d) = dtype {
        a = a.astype(d);
    }
    if let Some(c) = &opts.chunks {
        opts.chunks = Some(resolve_chunks(c, a.shape())?);
    }
    opts.attributes = attrs;
    Ok((a, opts))
}

/// Run `convert`.
///
/// # Errors
/// Bad options or inputs (exit 2), read/write failures (exit 1).
pub fn run(args: &ConvertArgs, quiet: bool) -> anyhow::Result<()> {
    let cfg = ExecConfig::from_args(&args.exec, quiet)?;
    let (a, opts) = prepare(args)?;
    let session = Session::new(&cfg, true, quiet)?;
    session.store(&a, &args.dst, &opts)?;
    Ok(())
}
