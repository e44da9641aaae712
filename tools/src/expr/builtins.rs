//! The functions and array methods of the expression language, each
//! lowered to one library call.
//!
//! Function forms take the array first (`mean(x, axis=0)`); method forms
//! are the same functions with the receiver as that first argument
//! (`x.mean(axis=0)`), so both always agree. Arguments bind as in NumPy
//! (positionally or by keyword, same names); unknown keywords are errors.

use std::sync::atomic::{AtomicU64, Ordering};

use ndstream::{Array, BinaryOp, Chunks, DType, ReduceOp, ReduceParam, ScanOp, UnaryOp};

use super::error::{ExprError, Span};
use super::eval::{binary, lib_err, syntax_op};
use super::value::{
    as_array, as_axes, as_bool, as_chunks, as_dtype, as_f64, as_int, as_operand, as_seq, as_shape,
    as_str, Args, Value,
};

const OTHERS: [&str; 21] = [
    "open",
    "stack",
    "concatenate",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "full_like",
    "arange",
    "linspace",
    "where",
    "clip",
    "triu",
    "tril",
    "transpose",
    "astype",
    "rechunk",
    "array",
    "asarray",
    "reshape",
];

const METHOD_ONLY: [&str; 4] = ["compute", "persist", "copy", "astype"];

/// The names of the elementwise functions: every op of the library's op
/// tables under its NumPy name and its aliases (`sqrt`, `absolute`, `abs`,
/// `add`, `mod`, ...).
pub fn elementwise_names() -> impl Iterator<Item = &'static str> {
    let unary = UnaryOp::ALL
        .iter()
        .flat_map(|op| std::iter::once(op.name()).chain(op.aliases().iter().copied()));
    let binary = BinaryOp::ALL
        .iter()
        .flat_map(|op| std::iter::once(op.name()).chain(op.aliases().iter().copied()));
    unary.chain(binary)
}

/// The names of the reductions: every row of the library's reduction
/// table under its NumPy name and its aliases (`sum`, `nanprod`, `amin`,
/// `topk`, ...).
pub fn reduction_names() -> impl Iterator<Item = &'static str> {
    ReduceOp::ALL
        .iter()
        .flat_map(|op| std::iter::once(op.name()).chain(op.aliases().iter().copied()))
}

/// The names of the cumulative reductions: every row of the library's
/// scan table (`cumsum`, `cumprod`, `nancumsum`, `nancumprod`).
pub fn scan_names() -> impl Iterator<Item = &'static str> {
    ScanOp::ALL.iter().map(|op| op.name())
}

fn scan_op(name: &str) -> Option<ScanOp> {
    ScanOp::ALL.iter().copied().find(|op| op.name() == name)
}

/// True if `name` is a function of the language (for "did you mean to call it" hints).
pub fn is_function(name: &str) -> bool {
    ReduceOp::from_name(name).is_some()
        || scan_op(name).is_some()
        || UnaryOp::from_name(name).is_some()
        || BinaryOp::from_name(name).is_some()
        || OTHERS.contains(&name)
}

/// True if `name` is an array method.
pub fn is_method(name: &str) -> bool {
    ReduceOp::from_name(name).is_some()
        || scan_op(name).is_some()
        || METHOD_ONLY.contains(&name)
        || matches!(name, "rechunk" | "transpose" | "clip" | "reshape")
}

/// Call the function `name` (`random.` prefixed for the random module).
///
/// # Errors
/// Unknown functions, bad arguments, library errors (shapes, dtypes, files).
pub fn call(name: &str, mut a: Args) -> Result<Value, ExprError> {
    let span = a.span;
    if let Some(r) = name.strip_prefix("random.") {
        return random(r, a);
    }
    if let Some(op) = ReduceOp::from_name(name) {
        return reduction(name, op, a);
    }
    if let Some(op) = scan_op(name) {
        return scan(op, a);
    }
    if let Some(op) = UnaryOp::from_name(name) {
        let (x, xs) = a.req(0, "x")?;
        a.finish()?;
        return Ok(Value::Array(
            as_array(&x, xs)?.unary(op).map_err(lib_err(span))?,
        ));
    }
    if let Some(op) = BinaryOp::from_name(name) {
        let (x, xs) = a.req(0, "x1")?;
        let (y, ys) = a.req(1, "x2")?;
        a.finish()?;
        // Ops with an operator (`add` is `+`) evaluate as the operator
        // does, scalars included; the others (`maximum`, `minimum`) take
        // the array side first.
        if let Some(bop) = syntax_op(op) {
            return binary(bop, x, y, span);
        }
        let (xa, y) = match (&x, &y) {
            (Value::Array(_), _) => (as_array(&x, xs)?, as_operand(&y, ys)?),
            (_, Value::Array(_)) => (as_array(&y, ys)?, as_operand(&x, xs)?),
            _ => (as_array(&x, xs)?, as_operand(&y, ys)?),
        };
        return Ok(Value::Array(xa.apply(op, y).map_err(lib_err(span))?));
    }
    match name {
        "open" => {
            let (p, ps) = a.req(0, "path")?;
            let chunks = a.some(1, "chunks")?;
            a.finish()?;
            let path = as_str(&p, ps)?;
            if is_glob(path) {
                return Err(ExprError::eval(
                    format!("`{path}` is a pattern; use stack('{path}') or concatenate('{path}')"),
                    ps,
                ));
            }
            let x = ndstream::open(path).map_err(lib_err(ps))?;
            Ok(Value::Array(match chunks {
                None => x,
                Some((c, cs)) => x
                    .rechunk(as_chunks(&c, Some(x.ndim()), cs)?)
                    .map_err(lib_err(cs))?,
            }))
        }
        "stack" | "concatenate" => {
            let (xs, xss) = a.req(0, "arrays")?;
            let axis = match a.opt(1, "axis")? {
                Some((v, s)) => as_int(&v, s)? as isize,
                None => 0,
            };
            a.finish()?;
            let arrays = arrays_of(&xs, xss)?;
            let r = if name == "stack" {
                ndstream::stack(&arrays, axis)
            } else {
                ndstream::concatenate(&arrays, axis)
            };
            Ok(Value::Array(r.map_err(lib_err(span))?))
        }
        "zeros" | "ones" => {
            let (s, ss) = a.req(0, "shape")?;
            let dtype = dtype_arg(&mut a, 1, DType::F64)?;
            let shape = as_shape(&s, ss)?;
            let chunks = chunks_arg(&mut a, 2, shape.len())?;
            a.finish()?;
            let r = if name == "zeros" {
                ndstream::zeros(&shape, dtype, chunks)
            } else {
                ndstream::ones(&shape, dtype, chunks)
            };
            Ok(Value::Array(r.map_err(lib_err(span))?))
        }
        "full" => {
            let (s, ss) = a.req(0, "shape")?;
            let (v, vs) = a.req(1, "fill_value")?;
            let dtype = dtype_arg(&mut a, 2, natural_dtype(&v))?;
            let shape = as_shape(&s, ss)?;
            let chunks = chunks_arg(&mut a, 3, shape.len())?;
            a.finish()?;
            let r = ndstream::full(&shape, as_f64(&v, vs)?, dtype, chunks);
            Ok(Value::Array(r.map_err(lib_err(span))?))
        }
        "zeros_like" | "ones_like" | "full_like" => {
            let (x, xs) = a.req(0, "a")?;
            let x = as_array(&x, xs)?;
            let value = if name == "full_like" {
                let (v, vs) = a.req(1, "fill_value")?;
                as_f64(&v, vs)?
            } else {
                (name == "ones_like") as u8 as f64
            };
            let dtype = dtype_arg(&mut a, 2, x.dtype())?;
            a.finish()?;
            let chunks = Chunks::Shape(x.grid().max_chunk_shape());
            Ok(Value::Array(
                ndstream::full(x.shape(), value, dtype, chunks).map_err(lib_err(span))?,
            ))
        }
        "arange" => {
            let (first, fs) = a.req(0, "start")?;
            let stop = a.some(1, "stop")?;
            let step = a.some(2, "step")?;
            let any_float = [
                Some(&first),
                stop.as_ref().map(|s| &s.0),
                step.as_ref().map(|s| &s.0),
            ]
            .into_iter()
            .flatten()
            .any(|v| matches!(v, Value::Float(_)));
            let dtype = dtype_arg(&mut a, 3, if any_float { DType::F64 } else { DType::I64 })?;
            let chunks = chunks_arg(&mut a, 4, 1)?;
            a.finish()?;
            let (start, stop) = match &stop {
                None => (0.0, as_f64(&first, fs)?),
                Some((v, s)) => (as_f64(&first, fs)?, as_f64(v, *s)?),
            };
            let step = match &step {
                None => 1.0,
                Some((v, s)) => as_f64(v, *s)?,
            };
            if step == 0.0 {
                return Err(ExprError::eval("arange: step cannot be zero", span));
            }
            Ok(Value::Array(
                ndstream::arange(start, stop, step, dtype, chunks).map_err(lib_err(span))?,
            ))
        }
        "linspace" => {
            let (s, ss) = a.req(0, "start")?;
            let (e, es) = a.req(1, "stop")?;
            let num = match a.opt(2, "num")? {
                Some((v, vs)) => super::value::as_u64(&v, vs)?,
                None => 50,
            };
            let chunks = chunks_arg(&mut a, 3, 1)?;
            a.finish()?;
            let r = ndstream::linspace(as_f64(&s, ss)?, as_f64(&e, es)?, num, chunks);
            Ok(Value::Array(r.map_err(lib_err(span))?))
        }
        "where" => {
            let (c, cs) = a.req(0, "condition")?;
            let (x, xs) = a.req(1, "x")?;
            let (y, ys) = a.req(2, "y")?;
            a.finish()?;
            let c = as_array(&c, cs)?;
            let r = ndstream::where_(&c, as_operand(&x, xs)?, as_operand(&y, ys)?);
            Ok(Value::Array(r.map_err(lib_err(span))?))
        }
        "array" | "asarray" => {
            let (x, xs) = a.req(0, "object")?;
            let dtype = a.some(1, "dtype")?;
            a.finish()?;
            let arr = as_array(&x, xs)?;
            Ok(Value::Array(match dtype {
                Some((d, ds)) => arr.astype(as_dtype(&d, ds)?),
                None => arr,
            }))
        }
        _ => array_function(name, a),
    }
}

/// Functions that are also methods (array first).
fn array_function(name: &str, mut a: Args) -> Result<Value, ExprError> {
    let span = a.span;
    let known = matches!(
        name,
        "clip" | "triu" | "tril" | "transpose" | "astype" | "rechunk" | "reshape"
    );
    if !known {
        return Err(ExprError::eval(format!("unknown function `{name}`"), span));
    }
    let (x, xs) = a.req(0, "a")?;
    let x = as_array(&x, xs)?;
    let r = match name {
        "clip" => {
            let lo = a.some(1, "a_min")?.or(a.some(99, "min")?);
            let hi = a.some(2, "a_max")?.or(a.some(99, "max")?);
            let lo = lo.map(|(v, s)| as_f64(&v, s)).transpose()?;
            let hi = hi.map(|(v, s)| as_f64(&v, s)).transpose()?;
            x.clip(lo, hi)
        }
        "triu" | "tril" => {
            let k = match a.opt(1, "k")? {
                Some((v, s)) => as_int(&v, s)?,
                None => 0,
            };
            if name == "triu" {
                x.triu(k)
            } else {
                x.tril(k)
            }
        }
        "transpose" => {
            let perm = match a.some(1, "axes")? {
                Some((v, s)) => {
                    let axes = as_axes(&v, s)?.unwrap_or_default();
                    let n = x.ndim() as isize;
                    let p: Vec<usize> = axes
                        .iter()
                        .map(|&i| if i < 0 { (i + n) as usize } else { i as usize })
                        .collect();
                    Some(p)
                }
                None => None,
            };
            x.transpose(perm.as_deref())
        }
        "astype" => {
            let (d, ds) = a.req(1, "dtype")?;
            Ok(x.astype(as_dtype(&d, ds)?))
        }
        "reshape" => {
            // NumPy 2's `shape`, and `newshape` as before it.
            let (v, vs) = match a.some(1, "shape")? {
                Some(v) => v,
                None => a.req(99, "newshape")?,
            };
            x.reshape(&as_new_shape(&v, vs)?)
        }
        _ => {
            let (c, cs) = a.req(1, "chunks")?;
            x.rechunk(as_chunks(&c, Some(x.ndim()), cs)?)
        }
    };
    a.finish()?;
    Ok(Value::Array(r.map_err(lib_err(span))?))
}

/// Call the array method `name`; the receiver is positional argument 0.
///
/// # Errors
/// Unknown methods and everything [`call`] reports.
pub fn method(name: &str, mut a: Args) -> Result<Value, ExprError> {
    match name {
        "compute" | "persist" | "copy" => {
            let x = a.req(0, "self")?;
            a.finish()?;
            Ok(x.0)
        }
        "clip" => {
            let (x, xs) = a.req(0, "self")?;
            let lo = a.some(1, "min")?;
            let hi = a.some(2, "max")?;
            a.finish()?;
            let x = as_array(&x, xs)?;
            let lo = lo.map(|(v, s)| as_f64(&v, s)).transpose()?;
            let hi = hi.map(|(v, s)| as_f64(&v, s)).transpose()?;
            Ok(Value::Array(x.clip(lo, hi).map_err(lib_err(xs))?))
        }
        "reshape" => {
            let (x, xs) = a.req(0, "self")?;
            // `x.reshape(2, -1)` as well as `x.reshape((2, -1))`.
            let mut shape = Vec::new();
            let mut i = 1;
            while let Some((v, s)) = a.opt(i, "shape")? {
                shape.extend(as_new_shape(&v, s)?);
                i += 1;
            }
            a.finish()?;
            let x = as_array(&x, xs)?;
            Ok(Value::Array(x.reshape(&shape).map_err(lib_err(xs))?))
        }
        "transpose" => {
            let (x, xs) = a.req(0, "self")?;
            // `x.transpose(1, 0)` as well as `x.transpose((1, 0))`.
            let mut axes = Vec::new();
            let mut i = 1;
            while let Some((v, s)) = a.opt(i, "axes")? {
                match &v {
                    Value::Tuple(_) | Value::List(_) => {
                        axes.extend(as_axes(&v, s)?.unwrap_or_default())
                    }
                    Value::None => {}
                    _ => axes.push(as_int(&v, s)? as isize),
                }
                i += 1;
            }
            a.finish()?;
            let x = as_array(&x, xs)?;
            let n = x.ndim() as isize;
            let perm: Vec<usize> = axes
                .iter()
                .map(|&i| if i < 0 { (i + n) as usize } else { i as usize })
                .collect();
            let r = x.transpose(if perm.is_empty() { None } else { Some(&perm) });
            Ok(Value::Array(r.map_err(lib_err(xs))?))
        }
        _ if is_method(name) => call(name, a),
        _ => Err(ExprError::eval(
            format!("arrays have no method `{name}`"),
            a.span,
        )),
    }
}

/// A shape for `reshape`: lengths, one of which may be `-1`.
fn as_new_shape(v: &Value, span: Span) -> Result<Vec<i64>, ExprError> {
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(|x| as_int(x, span)).collect(),
        _ => Ok(vec![as_int(v, span)?]),
    }
}

/// A cumulative reduction, function or method form: `cumsum(a, axis=None,
/// dtype=None)` as NumPy's (over the flattened array without an axis;
/// with a `dtype`, computed in and returned as that type).
fn scan(op: ScanOp, mut a: Args) -> Result<Value, ExprError> {
    let span = a.span;
    let (x, xs) = a.req(0, "a")?;
    let axis = match a.some(1, "axis")? {
        Some((v, s)) => Some(as_int(&v, s)? as isize),
        None => None,
    };
    let dtype = match a.some(2, "dtype")? {
        Some((v, s)) => Some(as_dtype(&v, s)?),
        None => None,
    };
    a.finish()?;
    let mut x = as_array(&x, xs)?;
    if let Some(d) = dtype {
        x = x.astype(d);
    }
    let mut r = x.scan(op, axis).map_err(lib_err(span))?;
    if let Some(d) = dtype {
        r = r.astype(d);
    }
    Ok(Value::Array(r))
}

/// A reduction (`op`, called `name`), function or method form. The
/// parameter of `var`/`std`/... (`ddof`, after `axis`) or of
/// `topk`/`argtopk` (`k`, before `axis`, which defaults to the last) comes
/// from the reduction table.
fn reduction(name: &str, op: ReduceOp, mut a: Args) -> Result<Value, ExprError> {
    let span = a.span;
    let (x, xs) = a.req(0, "a")?;
    let x = as_array(&x, xs)?;
    let with = |op: ReduceOp, v: i64| {
        op.with_param(v)
            .ok_or_else(|| ExprError::eval(format!("{name}: parameter {v} out of range"), span))
    };
    if op.param() == Some(ReduceParam::K) {
        let (k, ks) = a.req(1, "k")?;
        let k = as_int(&k, ks)?;
        let axis = match a.opt(2, "axis")? {
            Some((v, s)) => as_int(&v, s)? as isize,
            None => -1,
        };
        a.finish()?;
        let r = x.reduce(with(op, k)?, Some(&[axis]), true);
        return Ok(Value::Array(r.map_err(lib_err(span))?));
    }
    let axes = match a.opt(1, "axis")? {
        Some((v, s)) => as_axes(&v, s)?,
        None => None,
    };
    let takes_ddof = op.param() == Some(ReduceParam::Ddof);
    let op = if takes_ddof {
        let ddof = match a.opt(2, "ddof")? {
            Some((v, s)) => {
                let d = as_int(&v, s)?;
                u32::try_from(d).map_err(|_| {
                    ExprError::eval(format!("ddof must be a non-negative integer, got {d}"), s)
                })?
            }
            None => 0,
        };
        with(op, i64::from(ddof))?
    } else {
        op
    };
    let keepdims = match a.opt(if takes_ddof { 3 } else { 2 }, "keepdims")? {
        Some((v, s)) => as_bool(&v, s)?,
        None => false,
    };
    a.finish()?;
    if matches!(op, ReduceOp::ArgMin | ReduceOp::ArgMax)
        && axes.as_ref().is_some_and(|v| v.len() > 1)
    {
        return Err(ExprError::eval(
            format!("{name}: axis must be a single integer or None"),
            span,
        ));
    }
    Ok(Value::Array(
        x.reduce(op, axes.as_deref(), keepdims)
            .map_err(lib_err(span))?,
    ))
}

static SEED_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A seed for unseeded random arrays: different on every call.
fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ SEED_COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ std::process::id() as u64
}

/// `random.normal(loc, scale, size, chunks, seed)`, `uniform`, `exponential`, `random`.
fn random(name: &str, mut a: Args) -> Result<Value, ExprError> {
    let span = a.span;
    let num = |a: &mut Args, i: usize, n: &str, d: f64| -> Result<f64, ExprError> {
        match a.opt(i, n)? {
            Some((v, s)) => as_f64(&v, s),
            None => Ok(d),
        }
    };
    let (p1, p2, next) = match name {
        "normal" => (
            num(&mut a, 0, "loc", 0.0)?,
            num(&mut a, 1, "scale", 1.0)?,
            2,
        ),
        "uniform" => (num(&mut a, 0, "low", 0.0)?, num(&mut a, 1, "high", 1.0)?, 2),
        "exponential" => (num(&mut a, 0, "scale", 1.0)?, 0.0, 1),
        "random" | "random_sample" => (0.0, 1.0, 0),
        "standard_normal" => (0.0, 1.0, 0),
        _ => {
            return Err(ExprError::eval(
                format!("unknown function `random.{name}`"),
                span,
            ))
        }
    };
    let (size, ss) = a.req(next, "size")?;
    let shape = as_shape(&size, ss)?;
    let chunks = chunks_arg(&mut a, next + 1, shape.len())?;
    let seed = match a.some(next + 2, "seed")? {
        Some((v, s)) => as_int(&v, s)? as u64,
        None => fresh_seed(),
    };
    let dtype = a
        .some(next + 3, "dtype")?
        .map(|(v, s)| as_dtype(&v, s))
        .transpose()?;
    a.finish()?;
    let r = match name {
        "normal" | "standard_normal" => ndstream::random::normal(p1, p2, &shape, chunks, seed),
        "uniform" | "random" | "random_sample" => {
            ndstream::random::uniform(p1, p2, &shape, chunks, seed)
        }
        _ => ndstream::random::exponential(p1, &shape, chunks, seed),
    };
    let r = r.map_err(lib_err(span))?;
    Ok(Value::Array(match dtype {
        Some(d) => r.astype(d),
        None => r,
    }))
}

fn natural_dtype(v: &Value) -> DType {
    match v {
        Value::Int(_) => DType::I64,
        Value::Bool(_) => DType::Bool,
        _ => DType::F64,
    }
}

fn dtype_arg(a: &mut Args, idx: usize, default: DType) -> Result<DType, ExprError> {
    match a.some(idx, "dtype")? {
        Some((v, s)) => as_dtype(&v, s),
        None => Ok(default),
    }
}

fn chunks_arg(a: &mut Args, idx: usize, ndim: usize) -> Result<Chunks, ExprError> {
    match a.some(idx, "chunks")? {
        Some((v, s)) => as_chunks(&v, Some(ndim), s),
        None => Ok(Chunks::Auto),
    }
}

/// True if a path is a glob pattern: glob characters in its file part (a
/// raw file's `?dtype=...` query does not count) and no file or directory
/// of that literal name (see [`ndstream::formats::is_pattern`]).
pub fn is_glob(path: &str) -> bool {
    ndstream::formats::is_pattern(path)
}

/// A list of arrays, or a glob pattern opened in sorted order.
fn arrays_of(v: &Value, span: Span) -> Result<Vec<Array>, ExprError> {
    match v {
        Value::Str(pattern) => ndstream::open_many(pattern).map_err(lib_err(span)),
        _ => {
            let items = as_seq(v, span)?;
            if items.is_empty() {
                return Err(ExprError::eval("needs at least one array", span));
            }
            items.iter().map(|x| as_array(x, span)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(is_glob("data/*.h5:/x"));
        assert!(is_glob("p?.npy"));
        assert!(!is_glob("x.bin?dtype=<f4&shape=3"));
        assert!(is_glob("x*.bin?dtype=<f4&shape=3"));
        assert!(!is_glob("a.zarr"));
    }

    #[test]
    fn every_listed_name_dispatches() {
        for n in reduction_names()
            .chain(elementwise_names())
            .chain(scan_names())
            .chain(OTHERS.iter().copied())
        {
            assert!(is_function(n));
            let a = Args::new(n.to_string(), Span::default(), vec![], vec![]);
            let e = call(n, a).unwrap_err();
            assert!(
                !e.message.contains("unknown function"),
                "{n}: {}",
                e.message
            );
        }
    }
}
