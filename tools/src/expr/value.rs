//! Runtime values of the expression language and conversions between them
//! and the library's argument types.
//!
//! A [`Value`] is a lazy [`Array`], a Python scalar (kept apart from arrays
//! so `f32_array * 2.0` stays `f32`, NumPy's weak-scalar rule), a string,
//! `None`, `...`, a tuple or list, a dtype, or a module namespace (`np`,
//! `random`). [`Args`] binds call arguments by position or keyword the way
//! Python does and reports unknown or missing ones.

use ndstream::{Array, Chunks, DType, Operand, Scalar};

use super::error::{ExprError, Span};

/// A module namespace that function names can be looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// `np`, `numpy`, `da`: prefixes accepted and ignored.
    Numpy,
    /// `random`, `np.random`, `da.random`.
    Random,
}

/// A value.
#[derive(Clone, Debug)]
pub enum Value {
    Array(Array),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    None,
    Ellipsis,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// An evaluated slice `start:stop:step`.
    Slice {
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    },
    DType(DType),
    Module(Module),
}

impl Value {
    /// Python-style type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Array(_) => "array",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Str(_) => "str",
            Value::None => "None",
            Value::Ellipsis => "ellipsis",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Slice { .. } => "slice",
            Value::DType(_) => "dtype",
            Value::Module(_) => "module",
        }
    }

    /// The value as a weak scalar, if it is a Python number or bool.
    pub fn scalar(&self) -> Option<Scalar> {
        match *self {
            Value::Int(i) => Some(Scalar::Int(i)),
            Value::Float(f) => Some(Scalar::Float(f)),
            Value::Bool(b) => Some(Scalar::Bool(b)),
            _ => None,
        }
    }
}

fn type_error(what: &str, v: &Value, span: Span) -> ExprError {
    ExprError::eval(format!("expected {what}, got {}", v.type_name()), span)
}

/// An integer (bools count, as in Python).
pub fn as_int(v: &Value, span: Span) -> Result<i64, ExprError> {
    match *v {
        Value::Int(i) => Ok(i),
        Value::Bool(b) => Ok(b as i64),
        _ => Err(type_error("an integer", v, span)),
    }
}

/// A non-negative integer.
pub fn as_u64(v: &Value, span: Span) -> Result<u64, ExprError> {
    let i = as_int(v, span)?;
    u64::try_from(i)
        .map_err(|_| ExprError::eval(format!("expected a non-negative integer, got {i}"), span))
}

/// A number.
pub fn as_f64(v: &Value, span: Span) -> Result<f64, ExprError> {
    match *v {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        Value::Bool(b) => Ok(b as u8 as f64),
        _ => Err(type_error("a number", v, span)),
    }
}

/// A bool (`True`/`False`, or 0/1).
pub fn as_bool(v: &Value, span: Span) -> Result<bool, ExprError> {
    match *v {
        Value::Bool(b) => Ok(b),
        Value::Int(i) => Ok(i != 0),
        _ => Err(type_error("True or False", v, span)),
    }
}

/// A string.
pub fn as_str(v: &Value, span: Span) -> Result<&str, ExprError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(type_error("a string", v, span)),
    }
}

/// The items of a tuple or list.
pub fn as_seq(v: &Value, span: Span) -> Result<&[Value], ExprError> {
    match v {
        Value::Tuple(t) | Value::List(t) => Ok(t),
        _ => Err(type_error("a tuple or list", v, span)),
    }
}

/// A shape: an integer or a tuple of integers.
pub fn as_shape(v: &Value, span: Span) -> Result<Vec<u64>, ExprError> {
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(|x| as_u64(x, span)).collect(),
        _ => Ok(vec![as_u64(v, span)?]),
    }
}

/// Axes: `None` (all), an integer or a tuple of integers.
pub fn as_axes(v: &Value, span: Span) -> Result<Option<Vec<isize>>, ExprError> {
    match v {
        Value::None => Ok(None),
        Value::Tuple(t) | Value::List(t) => Ok(Some(
            t.iter()
                .map(|x| as_int(x, span).map(|i| i as isize))
                .collect::<Result<_, _>>()?,
        )),
        _ => Ok(Some(vec![as_int(v, span)? as isize])),
    }
}

/// A dtype: a name (`'f4'`, `'float32'`) or a dtype value (`np.float32`, `float`).
pub fn as_dtype(v: &Value, span: Span) -> Result<DType, ExprError> {
    match v {
        Value::DType(d) => Ok(*d),
        Value::Str(s) => s
            .parse::<DType>()
            .map_err(|e| ExprError::eval(e.to_string(), span)),
        _ => Err(type_error("a dtype", v, span)),
    }
}

/// Chunks as Dask takes them: `'auto'`, a byte size (`'64MiB'`), one
/// integer for every axis, a tuple of integers (`-1`/`None` = whole axis),
/// or a tuple of tuples of explicit sizes.
pub fn as_chunks(v: &Value, ndim: Option<usize>, span: Span) -> Result<Chunks, ExprError> {
    let axis_len = |x: &Value| -> Result<u64, ExprError> {
        match x {
            Value::None => Ok(0),
            Value::Int(-1) => Ok(0),
            _ => {
                let n = as_u64(x, span)?;
                if n == 0 {
                    return Err(ExprError::eval("chunk lengths must be positive", span));
                }
                Ok(n)
            }
        }
    };
    match v {
        Value::None => Ok(Chunks::Auto),
        Value::Str(s) if s == "auto" => Ok(Chunks::Auto),
        Value::Str(s) => ndstream::parse_bytes(s)
            .map(Chunks::TargetBytes)
            .map_err(|e| ExprError::eval(format!("chunks: {e}"), span)),
        Value::Tuple(t) | Value::List(t) => {
            if t.iter()
                .all(|x| matches!(x, Value::Tuple(_) | Value::List(_)))
                && !t.is_empty()
            {
                let sizes = t
                    .iter()
                    .map(|x| as_shape(x, span))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Chunks::Sizes(sizes));
            }
            Ok(Chunks::Shape(
                t.iter().map(axis_len).collect::<Result<_, _>>()?,
            ))
        }
        _ => {
            let n = axis_len(v)?;
            match ndim {
                Some(d) => Ok(Chunks::Shape(vec![n; d])),
                None => Err(ExprError::eval(
                    "chunks: give a tuple, one length per axis",
                    span,
                )),
            }
        }
    }
}

/// An array operand: an array or a weak scalar.
pub fn as_operand(v: &Value, span: Span) -> Result<Operand, ExprError> {
    match v {
        Value::Array(a) => Ok(Operand::Array(a.clone())),
        _ => v
            .scalar()
            .map(Operand::Scalar)
            .ok_or_else(|| type_error("an array or a number", v, span)),
    }
}

/// An array: arrays as they are, scalars as 0-d arrays (int64, float64 or
/// bool), and (nested) lists of numbers as small in-memory arrays.
pub fn as_array(v: &Value, span: Span) -> Result<Array, ExprError> {
    let lib = |e: ndstream::Error| ExprError::eval(e.to_string(), span);
    match v {
        Value::Array(a) => Ok(a.clone()),
        Value::Int(i) => ndstream::full(&[], *i as f64, DType::I64, Chunks::Auto).map_err(lib),
        Value::Float(f) => ndstream::full(&[], *f, DType::F64, Chunks::Auto).map_err(lib),
        Value::Bool(b) => {
            ndstream::full(&[], *b as u8 as f64, DType::Bool, Chunks::Auto).map_err(lib)
        }
        Value::Tuple(_) | Value::List(_) => {
            let mut shape = Vec::new();
            let mut flat = Vec::new();
            let mut kinds = (false, false, false);
            flatten(v, 0, &mut shape, &mut flat, &mut kinds, span)?;
            let (any_float, any_int, _) = kinds;
            let dtype = if any_float {
                DType::F64
            } else if any_int {
                DType::I64
            } else {
                DType::Bool
            };
            let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
            let data = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&dims), flat)
                .map_err(|_| ExprError::eval("a ragged list cannot be an array", span))?;
            let block = ndstream::Block::from(data).astype(dtype);
            Array::from_block(block, Chunks::Auto).map_err(lib)
        }
        _ => Err(type_error("an array", v, span)),
    }
}

/// Flatten a rectangular nested list of numbers in C order, recording its shape.
fn flatten(
    v: &Value,
    depth: usize,
    shape: &mut Vec<u64>,
    out: &mut Vec<f64>,
    kinds: &mut (bool, bool, bool),
    span: Span,
) -> Result<(), ExprError> {
    match v {
        Value::Tuple(t) | Value::List(t) => {
            if shape.len() == depth {
                if !out.is_empty() {
                    return Err(ExprError::eval("a ragged list cannot be an array", span));
                }
                shape.push(t.len() as u64);
            } else if shape.get(depth) != Some(&(t.len() as u64)) {
                return Err(ExprError::eval("a ragged list cannot be an array", span));
            }
            for x in t {
                flatten(x, depth + 1, shape, out, kinds, span)?;
            }
            Ok(())
        }
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            if depth != shape.len() {
                return Err(ExprError::eval("a ragged list cannot be an array", span));
            }
            match v {
                Value::Float(_) => kinds.0 = true,
                Value::Int(_) => kinds.1 = true,
                _ => kinds.2 = true,
            }
            out.push(as_f64(v, span)?);
            Ok(())
        }
        _ => Err(type_error("numbers in the list", v, span)),
    }
}

/// Call arguments, bound by position or keyword as Python binds them.
#[derive(Debug)]
pub struct Args {
    pub fname: String,
    pub span: Span,
    pos: Vec<Option<(Value, Span)>>,
    kw: Vec<Option<(String, Value, Span)>>,
}

impl Args {
    /// Positional and keyword arguments of a call to `fname` at `span`.
    pub fn new(
        fname: String,
        span: Span,
        pos: Vec<(Value, Span)>,
        kw: Vec<(String, Value, Span)>,
    ) -> Args {
        Args {
            fname,
            span,
            pos: pos.into_iter().map(Some).collect(),
            kw: kw.into_iter().map(Some).collect(),
        }
    }

    /// Parameter `name` at position `idx`, if given either way.
    ///
    /// # Errors
    /// Given both by position and by keyword.
    pub fn opt(&mut self, idx: usize, name: &str) -> Result<Option<(Value, Span)>, ExprError> {
        let by_pos = self.pos.get_mut(idx).and_then(Option::take);
        let by_kw = self
            .kw
            .iter_mut()
            .find(|k| k.as_ref().is_some_and(|(n, _, _)| n == name))
            .and_then(Option::take)
            .map(|(_, v, s)| (v, s));
        match (by_pos, by_kw) {
            (Some(_), Some((_, s))) => Err(ExprError::eval(
                format!("{}() got multiple values for argument `{name}`", self.fname),
                s,
            )),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// Parameter `name` at position `idx`, or `None` when absent or given as `None`.
    ///
    /// # Errors
    /// As [`opt`](Args::opt).
    pub fn some(&mut self, idx: usize, name: &str) -> Result<Option<(Value, Span)>, ExprError> {
        Ok(self
            .opt(idx, name)?
            .filter(|(v, _)| !matches!(v, Value::None)))
    }

    /// A required parameter.
    ///
    /// # Errors
    /// Missing, or given twice.
    pub fn req(&mut self, idx: usize, name: &str) -> Result<(Value, Span), ExprError> {
        self.opt(idx, name)?.ok_or_else(|| {
            ExprError::eval(
                format!("{}() is missing the required argument `{name}`", self.fname),
                self.span,
            )
        })
    }

    /// Check that every argument was used.
    ///
    /// # Errors
    /// Extra positional arguments or unknown keywords.
    pub fn finish(self) -> Result<(), ExprError> {
        if let Some((_, s)) = self.pos.iter().flatten().next() {
            return Err(ExprError::eval(
                format!("{}() got too many positional arguments", self.fname),
                *s,
            ));
        }
        if let Some((n, _, s)) = self.kw.iter().flatten().next() {
            return Err(ExprError::eval(
                format!("{}() got an unexpected keyword argument `{n}`", self.fname),
                *s,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Span = Span { start: 0, end: 0 };

    #[test]
    fn binds_like_python() {
        let mut a = Args::new(
            "f".into(),
            S,
            vec![(Value::Int(1), S)],
            vec![("b".into(), Value::Int(2), S), ("c".into(), Value::None, S)],
        );
        assert!(matches!(a.req(0, "a"), Ok((Value::Int(1), _))));
        assert!(matches!(a.opt(1, "b"), Ok(Some((Value::Int(2), _)))));
        assert!(matches!(a.some(2, "c"), Ok(None)));
        assert!(a.finish().is_ok());

        let mut a = Args::new(
            "f".into(),
            S,
            vec![(Value::Int(1), S)],
            vec![("a".into(), Value::Int(2), S)],
        );
        assert!(a.opt(0, "a").unwrap_err().message.contains("multiple"));
        let a = Args::new("f".into(), S, vec![(Value::Int(1), S)], vec![]);
        assert!(a.finish().unwrap_err().message.contains("too many"));
        let a = Args::new("f".into(), S, vec![], vec![("zz".into(), Value::Int(1), S)]);
        assert!(a.finish().unwrap_err().message.contains("zz"));
        let mut a = Args::new("f".into(), S, vec![], vec![]);
        assert!(a.req(0, "x").unwrap_err().message.contains("missing"));
    }

    #[test]
    fn conversions() {
        assert_eq!(as_shape(&Value::Int(3), S).ok(), Some(vec![3]));
        assert_eq!(
            as_shape(&Value::Tuple(vec![Value::Int(2), Value::Int(4)]), S).ok(),
            Some(vec![2, 4])
        );
        assert!(as_shape(&Value::Int(-1), S).is_err());
        assert_eq!(as_axes(&Value::None, S).ok(), Some(None));
        assert_eq!(as_axes(&Value::Int(-1), S).ok(), Some(Some(vec![-1])));
        assert_eq!(as_dtype(&Value::Str("f4".into()), S).ok(), Some(DType::F32));
        assert!(as_dtype(&Value::Str("f3".into()), S).is_err());
        assert_eq!(
            as_chunks(&Value::Int(10), Some(2), S).ok(),
            Some(Chunks::Shape(vec![10, 10]))
        );
        assert_eq!(
            as_chunks(&Value::Tuple(vec![Value::Int(5), Value::Int(-1)]), None, S).ok(),
            Some(Chunks::Shape(vec![5, 0]))
        );
        assert_eq!(
            as_chunks(&Value::Str("1MiB".into()), None, S).ok(),
            Some(Chunks::TargetBytes(1 << 20))
        );
        let nested = Value::Tuple(vec![Value::Tuple(vec![Value::Int(1), Value::Int(2)])]);
        assert_eq!(
            as_chunks(&nested, None, S).ok(),
            Some(Chunks::Sizes(vec![vec![1, 2]]))
        );
    }

    #[test]
    fn lists_become_arrays() {
        let v = Value::List(vec![
            Value::List(vec![Value::Int(1), Value::Int(2)]),
            Value::List(vec![Value::Int(3), Value::Float(4.5)]),
        ]);
        let a = as_array(&v, S).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.shape(), &[2, 2]);
        assert_eq!(a.dtype(), DType::F64);
        let ragged = Value::List(vec![Value::List(vec![Value::Int(1)]), Value::Int(3)]);
        assert!(as_array(&ragged, S).is_err());
        let ragged = Value::List(vec![Value::Int(3), Value::List(vec![Value::Int(1)])]);
        assert!(as_array(&ragged, S).is_err());
    }
}
