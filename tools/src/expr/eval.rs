//! The evaluator: walks a parsed [`Program`] and lowers it to the library's
//! lazy [`Array`] API. Nothing is computed here; the result is a [`Value`]
//! (usually a lazy array, or a list of them) that the `eval` command then
//! computes in one pass or stores.
//!
//! Names resolve to bound variables first, then to constants (`nan`, `inf`,
//! `pi`, `e`, `newaxis`), module prefixes (`np`, `numpy`, `da`, `random`)
//! and dtype names (`float32`, `float`, ...). Calls dispatch to
//! [`super::builtins`]. Python scalars stay scalars through arithmetic
//! (with Python's integer semantics) until they meet an array, where they
//! act as NumPy weak scalars.

use std::collections::HashMap;

use ndstream::{BinaryOp, DType, IndexItem, UnaryOp};

use super::ast::{BinOp, Expr, ExprKind, Program, UnOp};
use super::builtins;
use super::error::{ExprError, Span};
use super::value::{as_int, Args, Module, Value};

/// Evaluation state: the bound names.
#[derive(Debug, Default)]
pub struct Evaluator {
    vars: HashMap<String, Value>,
}

/// Turn a library error into an expression error pointing at `span`.
pub fn lib_err(span: Span) -> impl Fn(ndstream::Error) -> ExprError {
    move |e| {
        let mut err = ExprError::eval(e.to_string(), span);
        err.cause = None;
        err
    }
}

impl Evaluator {
    /// An evaluator with no names bound.
    pub fn new() -> Evaluator {
        Evaluator::default()
    }

    /// Bind `name` to `value` (e.g. `x` to the plotted source).
    pub fn bind(&mut self, name: &str, value: Value) {
        self.vars.insert(name.to_string(), value);
    }

    /// Run every statement; the value of the last one is the result.
    ///
    /// # Errors
    /// The first failing statement's error, pointing into the source.
    pub fn run(&mut self, prog: &Program) -> Result<Value, ExprError> {
        let mut last = Value::None;
        for stmt in &prog.stmts {
            let v = self.eval(&stmt.value)?;
            match &stmt.target {
                Some((name, _)) => {
                    self.vars.insert(name.clone(), v);
                }
                None => last = v,
            }
        }
        Ok(last)
    }

    /// Evaluate one expression.
    ///
    /// # Errors
    /// Unknown names, bad arguments, shape and dtype errors from the library.
    pub fn eval(&mut self, e: &Expr) -> Result<Value, ExprError> {
        let span = e.span;
        match &e.kind {
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Str(s) => Ok(Value::Str(s.clone())),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::None => Ok(Value::None),
            ExprKind::Ellipsis => Ok(Value::Ellipsis),
            ExprKind::Name(n) => self.name(n, span),
            ExprKind::Tuple(v) => Ok(Value::Tuple(
                v.iter().map(|x| self.eval(x)).collect::<Result<_, _>>()?,
            )),
            ExprKind::List(v) => Ok(Value::List(
                v.iter().map(|x| self.eval(x)).collect::<Result<_, _>>()?,
            )),
            ExprKind::Unary { op, x } => {
                let v = self.eval(x)?;
                unary(*op, v, span)
            }
            ExprKind::Binary { op, l, r } => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                binary(*op, a, b, span)
            }
            ExprKind::Attr { x, name, name_span } => {
                let v = self.eval(x)?;
                attribute(v, name, *name_span, span)
            }
            ExprKind::Index { x, items } => {
                let v = self.eval(x)?;
                let mut idx = Vec::with_capacity(items.len());
                for it in items {
                    idx.push((self.eval(it)?, it.span));
                }
                index(v, idx, span)
            }
            ExprKind::Slice { start, stop, step } => {
                let mut part = |p: &Option<Box<Expr>>| -> Result<Option<i64>, ExprError> {
                    match p {
                        None => Ok(None),
                        Some(e) => match self.eval(e)? {
                            Value::None => Ok(None),
                            v => as_int(&v, e.span).map(Some),
                        },
                    }
                };
                Ok(Value::Slice {
                    start: part(start)?,
                    stop: part(stop)?,
                    step: part(step)?,
                })
            }
            ExprKind::Call { func, args, kwargs } => {
                let mut pos = Vec::with_capacity(args.len() + 1);
                let (fname, recv_module) = match &func.kind {
                    ExprKind::Name(n) if !self.vars.contains_key(n) => (n.clone(), None),
                    ExprKind::Attr { x, name, .. } => match self.eval(x)? {
                        Value::Module(m) => (name.clone(), Some(m)),
                        Value::Array(a) => {
                            pos.push((Value::Array(a), x.span));
                            return self.method(name, pos, args, kwargs, span);
                        }
                        other => {
                            return Err(ExprError::eval(
                                format!("{} has no method `{name}`", other.type_name()),
                                func.span,
                            ))
                        }
                    },
                    _ => {
                        let v = self.eval(func)?;
                        return Err(ExprError::eval(
                            format!("a {} is not callable", v.type_name()),
                            func.span,
                        ));
                    }
                };
                for a in args {
                    pos.push((self.eval(a)?, a.span));
                }
                let kw = self.kwargs(kwargs)?;
                let qualified = match recv_module {
                    Some(Module::Random) => format!("random.{fname}"),
                    _ => fname,
                };
                builtins::call(&qualified, Args::new(qualified.clone(), span, pos, kw))
            }
        }
    }

    fn kwargs(
        &mut self,
        kwargs: &[super::ast::Kwarg],
    ) -> Result<Vec<(String, Value, Span)>, ExprError> {
        kwargs
            .iter()
            .map(|k| Ok((k.name.clone(), self.eval(&k.value)?, k.span)))
            .collect()
    }

    fn method(
        &mut self,
        name: &str,
        mut pos: Vec<(Value, Span)>,
        args: &[Expr],
        kwargs: &[super::ast::Kwarg],
        span: Span,
    ) -> Result<Value, ExprError> {
        for a in args {
            pos.push((self.eval(a)?, a.span));
        }
        let kw = self.kwargs(kwargs)?;
        builtins::method(name, Args::new(name.to_string(), span, pos, kw))
    }

    fn name(&self, n: &str, span: Span) -> Result<Value, ExprError> {
        if let Some(v) = self.vars.get(n) {
            return Ok(v.clone());
        }
        constant(n).ok_or_else(|| {
            let hint = if builtins::is_function(n) {
                format!("; `{n}` is a function: call it, `{n}(...)`")
            } else {
                String::new()
            };
            ExprError::eval(format!("unknown name `{n}`{hint}"), span)
        })
    }
}

/// Constants, modules and dtype names.
fn constant(n: &str) -> Option<Value> {
    Some(match n {
        "nan" | "NaN" | "NAN" => Value::Float(f64::NAN),
        "inf" | "Inf" | "infty" => Value::Float(f64::INFINITY),
        "pi" => Value::Float(std::f64::consts::PI),
        "e" => Value::Float(std::f64::consts::E),
        "newaxis" => Value::None,
        "np" | "numpy" | "da" => Value::Module(Module::Numpy),
        "random" => Value::Module(Module::Random),
        "float" => Value::DType(DType::F64),
        "int" => Value::DType(DType::I64),
        "bool" | "bool_" => Value::DType(DType::Bool),
        _ => {
            return n
                .parse::<DType>()
                .ok()
                .filter(|_| n.len() > 3)
                .map(Value::DType)
        }
    })
}

fn attribute(v: Value, name: &str, name_span: Span, span: Span) -> Result<Value, ExprError> {
    match v {
        Value::Module(Module::Numpy) if name == "random" => Ok(Value::Module(Module::Random)),
        Value::Module(_) => constant(name)
            .filter(|c| !matches!(c, Value::Module(_)))
            .ok_or_else(|| {
                let hint = if builtins::is_function(name) {
                    "; call it"
                } else {
                    ""
                };
                ExprError::eval(format!("unknown attribute `{name}`{hint}"), name_span)
            }),
        Value::Array(a) => match name {
            "T" => Ok(Value::Array(a.transpose(None).map_err(lib_err(span))?)),
            "shape" => Ok(Value::Tuple(
                a.shape().iter().map(|&n| Value::Int(n as i64)).collect(),
            )),
            "ndim" => Ok(Value::Int(a.ndim() as i64)),
            "size" => Ok(Value::Int(a.size() as i64)),
            "nbytes" => Ok(Value::Int(a.nbytes() as i64)),
            "dtype" => Ok(Value::DType(a.dtype())),
            "chunksize" => Ok(Value::Tuple(
                a.grid()
                    .max_chunk_shape()
                    .iter()
                    .map(|&n| Value::Int(n as i64))
                    .collect(),
            )),
            "npartitions" => Ok(Value::Int(a.grid().num_chunks() as i64)),
            m if builtins::is_method(m) => Err(ExprError::eval(
                format!("`{m}` is a method; call it: `.{m}()`"),
                name_span,
            )),
            _ => Err(ExprError::eval(
                format!("arrays have no attribute `{name}`"),
                name_span,
            )),
        },
        Value::DType(d) if name == "itemsize" => Ok(Value::Int(d.size() as i64)),
        other => Err(ExprError::eval(
            format!("{} has no attribute `{name}`", other.type_name()),
            name_span,
        )),
    }
}

fn unary(op: UnOp, v: Value, span: Span) -> Result<Value, ExprError> {
    match (op, v) {
        (UnOp::Pos, v @ (Value::Int(_) | Value::Float(_) | Value::Array(_))) => Ok(v),
        (UnOp::Pos, Value::Bool(b)) => Ok(Value::Int(b as i64)),
        (UnOp::Neg, Value::Int(i)) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| ExprError::eval("integer overflow", span)),
        (UnOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
        (UnOp::Neg, Value::Bool(b)) => Ok(Value::Int(-(b as i64))),
        (UnOp::Neg, Value::Array(a)) => {
            Ok(Value::Array(a.unary(UnaryOp::Neg).map_err(lib_err(span))?))
        }
        (UnOp::Invert, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnOp::Invert, Value::Int(i)) => Ok(Value::Int(!i)),
        (UnOp::Invert, Value::Array(a)) => {
            Ok(Value::Array(a.unary(UnaryOp::Not).map_err(lib_err(span))?))
        }
        (op, v) => {
            let sym = match op {
                UnOp::Neg => "-",
                UnOp::Pos => "+",
                UnOp::Invert => "~",
            };
            Err(ExprError::eval(
                format!("bad operand type for unary {sym}: {}", v.type_name()),
                span,
            ))
        }
    }
}

/// Every syntax operator, for [`syntax_op`].
const BIN_OPS: [BinOp; 16] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::FloorDiv,
    BinOp::Mod,
    BinOp::Pow,
    BinOp::BitAnd,
    BinOp::BitOr,
    BinOp::BitXor,
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
];

/// The syntax operator of a library operator (`+` for `add`), or `None`
/// for the ops written only as functions (`maximum`, `minimum`): the
/// inverse of [`binary_op`].
pub fn syntax_op(op: BinaryOp) -> Option<BinOp> {
    BIN_OPS.into_iter().find(|&b| binary_op(b) == op)
}

/// The library's operator for a syntax operator.
pub fn binary_op(op: BinOp) -> BinaryOp {
    match op {
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul => BinaryOp::Mul,
        BinOp::Div => BinaryOp::Div,
        BinOp::FloorDiv => BinaryOp::FloorDiv,
        BinOp::Mod => BinaryOp::Rem,
        BinOp::Pow => BinaryOp::Pow,
        BinOp::BitAnd => BinaryOp::And,
        BinOp::BitOr => BinaryOp::Or,
        BinOp::BitXor => BinaryOp::Xor,
        BinOp::Eq => BinaryOp::Eq,
        BinOp::Ne => BinaryOp::Ne,
        BinOp::Lt => BinaryOp::Lt,
        BinOp::Le => BinaryOp::Le,
        BinOp::Gt => BinaryOp::Gt,
        BinOp::Ge => BinaryOp::Ge,
    }
}

/// `a op b` for any pair of values.
pub fn binary(op: BinOp, a: Value, b: Value, span: Span) -> Result<Value, ExprError> {
    let bop = binary_op(op);
    match (&a, &b) {
        (Value::Array(x), Value::Array(y)) => {
            Ok(Value::Array(x.binary(bop, y).map_err(lib_err(span))?))
        }
        (Value::Array(x), _) if b.scalar().is_some() => {
            let s = b
                .scalar()
                .ok_or_else(|| ExprError::eval("internal: not a scalar", span))?;
            Ok(Value::Array(
                x.binary_scalar(bop, s, false).map_err(lib_err(span))?,
            ))
        }
        (_, Value::Array(y)) if a.scalar().is_some() => {
            let s = a
                .scalar()
                .ok_or_else(|| ExprError::eval("internal: not a scalar", span))?;
            Ok(Value::Array(
                y.binary_scalar(bop, s, true).map_err(lib_err(span))?,
            ))
        }
        _ if a.scalar().is_some() && b.scalar().is_some() => scalar_binary(op, &a, &b, span),
        _ => Err(ExprError::eval(
            format!(
                "unsupported operand types for {}: {} and {}",
                op.symbol(),
                a.type_name(),
                b.type_name()
            ),
            span,
        )),
    }
}

/// Python arithmetic on two scalars (ints stay exact; `/` gives a float;
/// `//` and `%` floor as Python does; float division by zero gives inf/nan
/// as NumPy does).
fn scalar_binary(op: BinOp, a: &Value, b: &Value, span: Span) -> Result<Value, ExprError> {
    let overflow = || ExprError::eval("integer overflow", span);
    let int_of = |v: &Value| match *v {
        Value::Int(i) => Some(i),
        Value::Bool(b) => Some(b as i64),
        _ => None,
    };
    if let (Value::Bool(x), Value::Bool(y)) = (a, b) {
        match op {
            BinOp::BitAnd => return Ok(Value::Bool(*x & *y)),
            BinOp::BitOr => return Ok(Value::Bool(*x | *y)),
            BinOp::BitXor => return Ok(Value::Bool(*x ^ *y)),
            _ => {}
        }
    }
    if let (Some(x), Some(y)) = (int_of(a), int_of(b)) {
        let zero = || ExprError::eval("integer division or modulo by zero", span);
        return Ok(match op {
            BinOp::Add => Value::Int(x.checked_add(y).ok_or_else(overflow)?),
            BinOp::Sub => Value::Int(x.checked_sub(y).ok_or_else(overflow)?),
            BinOp::Mul => Value::Int(x.checked_mul(y).ok_or_else(overflow)?),
            BinOp::Div => Value::Float(x as f64 / y as f64),
            BinOp::FloorDiv => {
                if y == 0 {
                    return Err(zero());
                }
                let q = x.checked_div(y).ok_or_else(overflow)?;
                Value::Int(if (x % y != 0) && ((x < 0) != (y < 0)) {
                    q - 1
                } else {
                    q
                })
            }
            BinOp::Mod => {
                if y == 0 {
                    return Err(zero());
                }
                let r = x.checked_rem(y).ok_or_else(overflow)?;
                Value::Int(if r != 0 && ((r < 0) != (y < 0)) {
                    r + y
                } else {
                    r
                })
            }
            BinOp::Pow => {
                if y >= 0 {
                    let e = u32::try_from(y).map_err(|_| overflow())?;
                    Value::Int(x.checked_pow(e).ok_or_else(overflow)?)
                } else {
                    Value::Float((x as f64).powf(y as f64))
                }
            }
            BinOp::BitAnd => Value::Int(x & y),
            BinOp::BitOr => Value::Int(x | y),
            BinOp::BitXor => Value::Int(x ^ y),
            BinOp::Eq => Value::Bool(x == y),
            BinOp::Ne => Value::Bool(x != y),
            BinOp::Lt => Value::Bool(x < y),
            BinOp::Le => Value::Bool(x <= y),
            BinOp::Gt => Value::Bool(x > y),
            BinOp::Ge => Value::Bool(x >= y),
        });
    }
    let (x, y) = (
        super::value::as_f64(a, span)?,
        super::value::as_f64(b, span)?,
    );
    Ok(match op {
        // Arithmetic runs through the array kernels themselves (0-d float64
        // blocks), so a scalar expression and the same operation on an
        // array can never disagree (`7.0 // 0.1` is 69.0 in both).
        BinOp::Add
        | BinOp::Sub
        | BinOp::Mul
        | BinOp::Div
        | BinOp::FloorDiv
        | BinOp::Mod
        | BinOp::Pow => {
            let zero_d = |v: f64| ndstream::Block::from(ndarray::arr0(v).into_dyn());
            let r = ndstream::engine::kernels::elementwise::binary(
                binary_op(op),
                &zero_d(x),
                &zero_d(y),
            )
            .map_err(lib_err(span))?;
            Value::Float(r.to_f64_vec().first().copied().unwrap_or(f64::NAN))
        }
        BinOp::Eq => Value::Bool(x == y),
        BinOp::Ne => Value::Bool(x != y),
        BinOp::Lt => Value::Bool(x < y),
        BinOp::Le => Value::Bool(x <= y),
        BinOp::Gt => Value::Bool(x > y),
        BinOp::Ge => Value::Bool(x >= y),
        BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
            return Err(ExprError::eval(
                format!(
                    "unsupported operand types for {}: {} and {}",
                    op.symbol(),
                    a.type_name(),
                    b.type_name()
                ),
                span,
            ))
        }
    })
}

/// Convert evaluated subscript items to the library's index items.
pub fn index_items(items: &[(Value, Span)]) -> Result<Vec<IndexItem>, ExprError> {
    let mut out = Vec::with_capacity(items.len());
    for (v, s) in items {
        match v {
            Value::Slice { start, stop, step } => {
                let step = step.unwrap_or(1);
                if step == 0 {
                    return Err(ExprError::eval("slice step cannot be zero", *s));
                }
                out.push(IndexItem::Slice { start: *start, stop: *stop, step });
            }
            Value::Int(i) => out.push(IndexItem::Index(*i)),
            Value::None => out.push(IndexItem::NewAxis),
            Value::Ellipsis => out.push(IndexItem::Ellipsis),
            Value::Tuple(t) => {
                let inner: Vec<(Value, Span)> = t.iter().map(|x| (x.clone(), *s)).collect();
                out.extend(index_items(&inner)?);
            }
            Value::Array(_) => {
                return Err(ExprError::eval(
                    "only a single boolean mask (`x[x > 0]`) can index with an array; integer arrays are not supported",
                    *s,
                ))
            }
            other => {
                return Err(ExprError::eval(
                    format!("indices must be integers, slices, None or ..., not {}", other.type_name()),
                    *s,
                ))
            }
        }
    }
    Ok(out)
}

fn index(v: Value, items: Vec<(Value, Span)>, span: Span) -> Result<Value, ExprError> {
    match v {
        Value::Array(a) => {
            if let [(Value::Array(m), ms)] = items.as_slice() {
                if m.dtype() != DType::Bool {
                    return Err(ExprError::eval(
                        format!("an array index must be boolean (a mask), got {}", m.dtype()),
                        *ms,
                    ));
                }
                return Ok(Value::Array(a.mask(m).map_err(lib_err(span))?));
            }
            let idx = index_items(&items)?;
            Ok(Value::Array(a.index(&idx).map_err(lib_err(span))?))
        }
        Value::Tuple(t) | Value::List(t) => {
            let [(item, s)] = items.as_slice() else {
                return Err(ExprError::eval("a tuple takes one index", span));
            };
            match item {
                Value::Int(i) => {
                    let n = t.len() as i64;
                    let j = if *i < 0 { i + n } else { *i };
                    usize::try_from(j)
                        .ok()
                        .and_then(|j| t.get(j).cloned())
                        .ok_or_else(|| {
                            ExprError::eval(format!("index {i} out of range for length {n}"), *s)
                        })
                }
                _ => Err(ExprError::eval("tuple indices must be integers", *s)),
            }
        }
        other => Err(ExprError::eval(
            format!("a {} cannot be indexed", other.type_name()),
            span,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parser::parse_program;

    fn run(src: &str) -> Result<Value, ExprError> {
        let prog = parse_program(src)?;
        Evaluator::new().run(&prog)
    }

    fn int(src: &str) -> i64 {
        match run(src) {
            Ok(Value::Int(i)) => i,
            other => panic!("{src}: {other:?}"),
        }
    }

    fn float(src: &str) -> f64 {
        match run(src) {
            Ok(Value::Float(f)) => f,
            other => panic!("{src}: {other:?}"),
        }
    }

    #[test]
    fn python_scalar_arithmetic() {
        assert_eq!(int("1 + 2 * 3"), 7);
        assert_eq!(int("-7 // 2"), -4);
        assert_eq!(int("-7 % 3"), 2);
        assert_eq!(int("7 % -3"), -2);
        assert_eq!(int("2 ** 10"), 1024);
        assert_eq!(float("2 ** -1"), 0.5);
        assert_eq!(float("7 / 2"), 3.5);
        assert_eq!(float("-7.5 // 2"), -4.0);
        assert_eq!(float("-7.5 % 2"), 0.5);
        assert_eq!(int("x = 3; y = x * x; y - 1"), 8);
        assert_eq!(int("~5"), -6);
        assert!(matches!(run("1 < 2"), Ok(Value::Bool(true))));
        assert!(matches!(run("True & False"), Ok(Value::Bool(false))));
        assert!(float("nan").is_nan());
        assert_eq!(float("np.pi"), std::f64::consts::PI);
        assert_eq!(float("1 / 0"), f64::INFINITY);
    }

    #[test]
    fn scalar_errors() {
        assert!(run("1 // 0").unwrap_err().message.contains("zero"));
        assert!(run("9223372036854775807 + 1")
            .unwrap_err()
            .message
            .contains("overflow"));
        assert!(run("2 ** 100").unwrap_err().message.contains("overflow"));
        assert!(run("1.5 & 2").is_err());
        assert!(run("'a' + 1").unwrap_err().message.contains("str"));
        let e = run("x = 1; y + x").unwrap_err();
        assert_eq!((e.span.start, e.span.end), (7, 8));
        assert!(run("mean").unwrap_err().message.contains("call it"));
        assert!(run("(1, 2)[5]").is_err());
        assert_eq!(int("(4, 5)[-1]"), 5);
    }
}
