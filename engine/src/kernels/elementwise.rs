//! Elementwise kernels: unary math, binary math with NumPy broadcasting,
//! `where` and `clip`, over whole [`Block`]s.
//!
//! # Dtype rules (NumPy 2, with the deviations listed)
//!
//! * [`unary_dtype`]: `Neg`, `Abs`, `Floor`, `Ceil` and `Square` keep the
//!   dtype (`Neg` on bool is an error; `Square` on bool gives int8, as
//!   NumPy's `square` does). `Sqrt`, `Exp`, `Log`, `Log1p`, `Sin`, `Cos`,
//!   `Tanh` give a float: f32 and f64 stay; bool, int8, uint8, int16, uint16
//!   give f32 (NumPy gives float16 for the 1-byte ones; there is no f16
//!   here); wider integers give f64. `Not` is logical on bool, bitwise (`~`)
//!   on integers, an error on floats. `IsNan`/`IsFinite` give bool.
//! * [`binary_dtypes`]: the operand dtype is `a.promote(b)`, except true
//!   division (`Div`), whose operand is `promote(a, b).true_divide()`.
//!   Comparisons give bool. `And`/`Or`/`Xor` are logical on bool, bitwise on
//!   integers and an error on floats. **Deviation:** arithmetic on two bools
//!   (`Add`, `Sub`, `Mul`, `FloorDiv`, `Rem`, `Pow`) runs on int8 (NumPy
//!   gives a logical or for `+`, refuses `-`); `Maximum`/`Minimum` keep bool.
//!
//! # Value rules
//!
//! * Integers wrap on overflow, as NumPy's do; integer `FloorDiv`/`Rem` by
//!   zero give 0 (NumPy also gives 0, with a warning), `MIN // -1` wraps to
//!   `MIN`.
//! * `FloorDiv`/`Rem` follow Python: the quotient is floored, the remainder
//!   takes the divisor's sign (`-7 // 2 == -4`, `-7 % 2 == 1`,
//!   `7 % -2 == -1`); floats use NumPy's `divmod` algorithm bit for bit.
//! * Integer `Pow` with a negative exponent (NumPy raises): `1` for base 1,
//!   `±1` for base -1 (by the exponent's parity), `0` for every other base,
//!   0 included.
//! * Float `Pow` with a one-element exponent takes fast paths as NumPy's
//!   loop does: `2 -> x*x`, `3 -> x*x*x`, `0.5 -> sqrt`, `-1 -> 1/x`,
//!   `1 -> x`, `0 -> 1`, other integers up to 16 in magnitude -> `powi`
//!   (a few ulps from `powf`); anything else is `powf`.
//! * `Maximum`/`Minimum` and `clip` propagate NaN.
//!
//! # Invariants
//!
//! Every output is standard layout (C-contiguous). The op and the dtype are
//! dispatched once per block: each (op, dtype) pair is its own monomorphised
//! loop. Equal-shaped contiguous inputs run one tight loop over slices; a
//! one-element side runs a scalar loop; real broadcasts coalesce axes and
//! run contiguous inner loops along the last (merged) axis.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};

use crate::block::{Block, BlockElement};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};

/// One-input elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Log1p,
    Sin,
    Cos,
    Tanh,
    Square,
    Floor,
    Ceil,
    Not,
    IsNan,
    IsFinite,
}

/// Two-input elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Pow,
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

impl UnaryOp {
    /// The NumPy ufunc name (`negative`, `absolute`, `sqrt`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "negative",
            UnaryOp::Abs => "absolute",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Square => "square",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Not => "invert",
            UnaryOp::IsNan => "isnan",
            UnaryOp::IsFinite => "isfinite",
        }
    }

    /// True for the ops whose result is a float whatever the input
    /// (`sqrt`, `exp`, `log`, `log1p`, `sin`, `cos`, `tanh`).
    pub const fn is_float_valued(self) -> bool {
        matches!(
            self,
            UnaryOp::Sqrt
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Log1p
                | UnaryOp::Sin
                | UnaryOp::Cos
                | UnaryOp::Tanh
        )
    }
}

impl BinaryOp {
    /// The NumPy ufunc name (`add`, `true_divide`, `floor_divide`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "true_divide",
            BinaryOp::FloorDiv => "floor_divide",
            BinaryOp::Rem => "remainder",
            BinaryOp::Pow => "power",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Eq => "equal",
            BinaryOp::Ne => "not_equal",
            BinaryOp::Lt => "less",
            BinaryOp::Le => "less_equal",
            BinaryOp::Gt => "greater",
            BinaryOp::Ge => "greater_equal",
            BinaryOp::And => "bitwise_and",
            BinaryOp::Or => "bitwise_or",
            BinaryOp::Xor => "bitwise_xor",
        }
    }

    /// True for the six comparisons (their result is bool).
    pub const fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::UnsupportedDType { op, dtype }
}

/// Result dtype of a unary op on `input`.
///
/// ```
/// use ndstream_engine::{DType, UnaryOp};
/// use ndstream_engine::kernels::elementwise::unary_dtype;
/// assert_eq!(unary_dtype(UnaryOp::Sqrt, DType::I32).unwrap(), DType::F64);
/// assert_eq!(unary_dtype(UnaryOp::Sqrt, DType::U8).unwrap(), DType::F32);
/// assert_eq!(unary_dtype(UnaryOp::IsNan, DType::F32).unwrap(), DType::Bool);
/// assert!(unary_dtype(UnaryOp::Neg, DType::Bool).is_err());
/// ```
///
/// # Errors
/// [`Error::UnsupportedDType`] for `Neg` on bool and `Not` on floats.
pub fn unary_dtype(op: UnaryOp, input: DType) -> Result<DType> {
    use DType::*;
    Ok(match op {
        UnaryOp::Neg if input == Bool => return Err(unsupported(op.name(), input)),
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Floor | UnaryOp::Ceil => input,
        UnaryOp::Square if input == Bool => I8,
        UnaryOp::Square => input,
        UnaryOp::Not if input.is_float() => return Err(unsupported(op.name(), input)),
        UnaryOp::Not => input,
        UnaryOp::IsNan | UnaryOp::IsFinite => Bool,
        UnaryOp::Sqrt
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Log1p
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh => match input {
            F64 | I32 | U32 | I64 | U64 => F64,
            F32 | Bool | I8 | U8 | I16 | U16 => F32,
        },
    })
}

/// The dtype both operands are cast to before the kernel runs, and the result dtype.
///
/// ```
/// use ndstream_engine::{BinaryOp, DType};
/// use ndstream_engine::kernels::elementwise::binary_dtypes;
/// assert_eq!(binary_dtypes(BinaryOp::Add, DType::I8, DType::U8).unwrap(), (DType::I16, DType::I16));
/// assert_eq!(binary_dtypes(BinaryOp::Div, DType::I32, DType::I32).unwrap(), (DType::F64, DType::F64));
/// assert_eq!(binary_dtypes(BinaryOp::Lt, DType::I32, DType::F32).unwrap(), (DType::F64, DType::Bool));
/// assert!(binary_dtypes(BinaryOp::And, DType::F32, DType::I8).is_err());
/// ```
///
/// # Errors
/// [`Error::UnsupportedDType`] for `And`/`Or`/`Xor` when the operands
/// promote to a float.
pub fn binary_dtypes(op: BinaryOp, a: DType, b: DType) -> Result<(DType, DType)> {
    let p = a.promote(b);
    Ok(match op {
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::FloorDiv
        | BinaryOp::Rem
        | BinaryOp::Pow => {
            let o = if p == DType::Bool { DType::I8 } else { p };
            (o, o)
        }
        BinaryOp::Div => (p.true_divide(), p.true_divide()),
        BinaryOp::Maximum | BinaryOp::Minimum => (p, p),
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (p, DType::Bool)
        }
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
            if p.is_float() {
                let culprit = if a.is_float() {
                    a
                } else if b.is_float() {
                    b
                } else {
                    p
                };
                return Err(unsupported(op.name(), culprit));
            }
            (p, p)
        }
    })
}

/// Apply a unary op; the result has the input's shape and
/// [`unary_dtype`]'s dtype, in standard layout.
///
/// ```
/// use ndstream_engine::{Block, UnaryOp};
/// use ndstream_engine::kernels::elementwise::unary;
/// let x = Block::from(ndarray::arr1(&[4i32, 9]).into_dyn());
/// assert_eq!(unary(UnaryOp::Sqrt, &x).unwrap().to_f64_vec(), vec![2.0, 3.0]);
/// ```
///
/// # Errors
/// As [`unary_dtype`].
pub fn unary(op: UnaryOp, x: &Block) -> Result<Block> {
    let out = unary_dtype(op, x.dtype())?;
    // Ops that change the dtype of the values (a float op on integers,
    // square on bool) run on the input cast to the result dtype.
    let src = match op {
        UnaryOp::IsNan | UnaryOp::IsFinite => x.dtype(),
        _ => out,
    };
    let x = cast(x, src);
    crate::with_block!(x.as_ref(), a, T => <T as Kernel>::unary_same(op, a))
}

/// Apply a binary op with NumPy broadcasting; both blocks have the operand
/// dtype ([`binary_dtypes`]). Blocks of other dtypes are cast to it here
/// (a copy), so any pair of blocks is accepted.
///
/// ```
/// use ndstream_engine::{BinaryOp, Block};
/// use ndstream_engine::kernels::elementwise::binary;
/// let col = Block::from(ndarray::arr2(&[[1.0f64], [2.0]]).into_dyn());
/// let row = Block::from(ndarray::arr1(&[10.0f64, 20.0, 30.0]).into_dyn());
/// let t = binary(BinaryOp::Add, &col, &row).unwrap();
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.to_f64_vec(), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
/// ```
///
/// # Errors
/// [`Error::Shape`] when the shapes do not broadcast; as [`binary_dtypes`].
pub fn binary(op: BinaryOp, a: &Block, b: &Block) -> Result<Block> {
    let (operand, _) = binary_dtypes(op, a.dtype(), b.dtype())?;
    let (a, b) = (cast(a, operand), cast(b, operand));
    crate::with_block!(a.as_ref(), x, T => {
        let y = typed::<T>(op.name(), b.as_ref())?;
        <T as Kernel>::binary_same(op, x, y)
    })
}

/// `where(cond, a, b)` with broadcasting of all three; `a` and `b` share a
/// dtype (if they do not, both are cast to their promotion here).
///
/// ```
/// use ndstream_engine::Block;
/// use ndstream_engine::kernels::elementwise::where_;
/// let c = Block::from(ndarray::arr1(&[true, false, true]).into_dyn());
/// let a = Block::from(ndarray::arr1(&[1i64, 2, 3]).into_dyn());
/// let b = Block::from(ndarray::arr0(0i64).into_dyn());
/// assert_eq!(where_(&c, &a, &b).unwrap().to_f64_vec(), vec![1.0, 0.0, 3.0]);
/// ```
///
/// # Errors
/// [`Error::UnsupportedDType`] when `cond` is not bool; [`Error::Shape`]
/// when the shapes do not broadcast.
pub fn where_(cond: &Block, a: &Block, b: &Block) -> Result<Block> {
    let Block::Bool(c) = cond else {
        return Err(unsupported("where (condition)", cond.dtype()));
    };
    let dt = a.dtype().promote(b.dtype());
    let (a, b) = (cast(a, dt), cast(b, dt));
    crate::with_block!(a.as_ref(), x, T => {
        let y = typed::<T>("where", b.as_ref())?;
        Ok(Block::from(select3(c, x, y)?))
    })
}

/// `clip(x, lo, hi)`; either bound may be absent. The bounds are cast to
/// `x`'s dtype (C casts: truncating, saturating for integers); the result
/// is `minimum(maximum(x, lo), hi)` as NumPy computes it, so NaN in `x` or
/// in a bound propagates and `lo > hi` gives `hi`.
///
/// ```
/// use ndstream_engine::Block;
/// use ndstream_engine::kernels::elementwise::clip;
/// let x = Block::from(ndarray::arr1(&[-5i32, 0, 7]).into_dyn());
/// assert_eq!(clip(&x, Some(-1.0), Some(3.0)).unwrap().to_f64_vec(), vec![-1.0, 0.0, 3.0]);
/// ```
///
/// # Errors
/// None today; the `Result` leaves room for dtype checks.
pub fn clip(x: &Block, lo: Option<f64>, hi: Option<f64>) -> Result<Block> {
    Ok(crate::with_block!(x, a, T => {
        let lo = lo.map(T::from_f64);
        let hi = hi.map(T::from_f64);
        Block::from(match (lo, hi) {
            (Some(l), Some(h)) => map1(a, |v| nan_min(nan_max(v, l), h)),
            (Some(l), None) => map1(a, |v| nan_max(v, l)),
            (None, Some(h)) => map1(a, |v| nan_min(v, h)),
            (None, None) => map1(a, |v| v),
        })
    }))
}

// ---------------------------------------------------------------------------
// Dtype plumbing.

/// `b` as `dtype`, borrowed when it already is.
fn cast(b: &Block, dtype: DType) -> Cow<'_, Block> {
    if b.dtype() == dtype {
        return Cow::Borrowed(b);
    }
    Cow::Owned(
        crate::with_block!(b, a, S => crate::with_dtype!(dtype, T => Block::from(map1(a, |v: S| v.cast::<T>())))),
    )
}

/// The typed array inside `b`, which must hold `T` (the callers cast first).
fn typed<'b, T: BlockElement>(op: &'static str, b: &'b Block) -> Result<&'b ArrayD<T>> {
    T::as_array(b).ok_or(Error::DTypeMismatch {
        op,
        index: 1,
        expected: T::DTYPE,
        got: b.dtype(),
    })
}

/// NaN-propagating maximum, NumPy's `maximum` (the first argument wins ties).
#[inline(always)]
fn nan_max<T: Element>(a: T, b: T) -> T {
    if a >= b || a.is_nan() {
        a
    } else {
        b
    }
}

/// NaN-propagating minimum, NumPy's `minimum`.
#[inline(always)]
fn nan_min<T: Element>(a: T, b: T) -> T {
    if a <= b || a.is_nan() {
        a
    } else {
        b
    }
}

// ---------------------------------------------------------------------------
// Loops: map over one array, zip two or three with broadcasting.

/// A C-order vector of exactly `product(shape)` elements as an array.
fn shaped<U>(shape: &[usize], v: Vec<U>) -> ArrayD<U> {
    #[allow(clippy::expect_used)]
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("every loop here yields product(shape) elements")
}

/// `f` of every element, standard layout.
#[inline]
fn map1<A: Copy, U>(a: &ArrayD<A>, f: impl Fn(A) -> U) -> ArrayD<U> {
    let v: Vec<U> = match a.as_slice() {
        Some(s) => s.iter().map(|&x| f(x)).collect(),
        None => a.iter().map(|&x| f(x)).collect(),
    };
    shaped(a.shape(), v)
}

/// The NumPy broadcast of two shapes.
fn broadcast2(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![1; n];
    for (k, o) in out.iter_mut().enumerate() {
        let da = if k + a.len() >= n {
            a[k + a.len() - n]
        } else {
            1
        };
        let db = if k + b.len() >= n {
            b[k + b.len() - n]
        } else {
            1
        };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Shape {
                    op,
                    left: a.iter().map(|&d| d as u64).collect(),
                    right: b.iter().map(|&d| d as u64).collect(),
                })
            }
        };
    }
    Ok(out)
}

/// Iteration plan for inputs broadcast to one standard-layout output:
/// size-1 output axes dropped, adjacent axes merged wherever every input
/// steps through them as one (contiguous or all-broadcast), so the last
/// axis is as long as possible. Input strides are in elements of each
/// input's standard-layout buffer, 0 along broadcast axes.
struct Plan<const N: usize> {
    dims: Vec<usize>,
    strides: [Vec<usize>; N],
}

impl<const N: usize> Plan<N> {
    fn new(out: &[usize], inputs: [&[usize]; N]) -> Self {
        let nd = out.len();
        let full: [Vec<usize>; N] = std::array::from_fn(|i| {
            let shp = inputs[i];
            let off = nd - shp.len();
            let mut st = vec![0usize; nd];
            let mut s = 1;
            for j in (0..shp.len()).rev() {
                st[off + j] = if shp[j] == 1 { 0 } else { s };
                s *= shp[j];
            }
            st
        });
        let mut dims: Vec<usize> = Vec::with_capacity(nd);
        let mut strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(nd));
        for (ax, &n) in out.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let merge =
                !dims.is_empty() && (0..N).all(|i| strides[i].last() == Some(&(full[i][ax] * n)));
            if let (true, Some(last)) = (merge, dims.last_mut()) {
                *last *= n;
                for (s, f) in strides.iter_mut().zip(&full) {
                    if let Some(l) = s.last_mut() {
                        *l = f[ax];
                    }
                }
            } else {
                dims.push(n);
                for (s, f) in strides.iter_mut().zip(&full) {
                    s.push(f[ax]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in &mut strides {
                s.push(0);
            }
        }
        Plan { dims, strides }
    }

    /// Length of the innermost (merged) axis.
    fn lane_len(&self) -> usize {
        self.dims.last().copied().unwrap_or(1)
    }

    /// Stride of input `i` along the innermost axis.
    fn lane_stride(&self, i: usize) -> usize {
        self.strides[i].last().copied().unwrap_or(0)
    }

    /// Call `f` with each input's offset at the start of every lane, in the
    /// output's C order.
    fn for_each_lane(&self, mut f: impl FnMut([usize; N])) {
        let k = self.dims.len() - 1;
        let lanes: usize = self.dims[..k].iter().product();
        let mut idx = vec![0usize; k];
        let mut off = [0usize; N];
        for _ in 0..lanes {
            f(off);
            for d in (0..k).rev() {
                idx[d] += 1;
                for (o, s) in off.iter_mut().zip(&self.strides) {
                    *o += s[d];
                }
                if idx[d] < self.dims[d] {
                    break;
                }
                for (o, s) in off.iter_mut().zip(&self.strides) {
                    *o -= s[d] * self.dims[d];
                }
                idx[d] = 0;
            }
        }
    }
}

/// `f(a, b)` elementwise with NumPy broadcasting; standard-layout result.
#[inline]
fn map2<A: Copy, B: Copy, U>(
    op: &'static str,
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> U,
) -> Result<ArrayD<U>> {
    if a.shape() == b.shape() {
        if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
            let v: Vec<U> = x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect();
            return Ok(shaped(a.shape(), v));
        }
    }
    let shape = broadcast2(op, a.shape(), b.shape())?;
    let n: usize = shape.iter().product();
    if b.len() == 1 && a.len() == n {
        if let Some(&q) = b.iter().next() {
            return Ok(reshaped(map1(a, |p| f(p, q)), &shape));
        }
    }
    if a.len() == 1 && b.len() == n {
        if let Some(&p) = a.iter().next() {
            return Ok(reshaped(map1(b, |q| f(p, q)), &shape));
        }
    }
    if n == 0 {
        return Ok(shaped(&shape, Vec::new()));
    }
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    #[allow(clippy::expect_used)]
    let (x, y) = (
        a.as_slice().expect("standard layout is contiguous"),
        b.as_slice().expect("standard layout is contiguous"),
    );
    let plan = Plan::new(&shape, [a.shape(), b.shape()]);
    let l = plan.lane_len();
    let mut out: Vec<U> = Vec::with_capacity(n);
    // One loop per stride pattern of the innermost axis, chosen once.
    match (plan.lane_stride(0), plan.lane_stride(1)) {
        (1, 1) => plan.for_each_lane(|[i, j]| {
            out.extend(x[i..i + l].iter().zip(&y[j..j + l]).map(|(&p, &q)| f(p, q)));
        }),
        (0, 1) => plan.for_each_lane(|[i, j]| {
            let p = x[i];
            out.extend(y[j..j + l].iter().map(|&q| f(p, q)));
        }),
        (1, 0) => plan.for_each_lane(|[i, j]| {
            let q = y[j];
            out.extend(x[i..i + l].iter().map(|&p| f(p, q)));
        }),
        (sa, sb) => plan.for_each_lane(|[i, j]| {
            out.extend((0..l).map(|k| f(x[i + k * sa], y[j + k * sb])));
        }),
    }
    Ok(shaped(&shape, out))
}

/// A standard-layout array given a shape with the same C order (the same
/// dims up to size-1 axes).
fn reshaped<U>(a: ArrayD<U>, shape: &[usize]) -> ArrayD<U> {
    if a.shape() == shape {
        return a;
    }
    let (v, _) = a.into_raw_vec_and_offset();
    shaped(shape, v)
}

/// `where(c, x, y)` with three-way broadcasting.
fn select3<T: Copy>(c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>> {
    if c.shape() == x.shape() && x.shape() == y.shape() {
        if let (Some(cs), Some(xs), Some(ys)) = (c.as_slice(), x.as_slice(), y.as_slice()) {
            let v: Vec<T> = cs
                .iter()
                .zip(xs)
                .zip(ys)
                .map(|((&c, &p), &q)| if c { p } else { q })
                .collect();
            return Ok(shaped(c.shape(), v));
        }
    }
    let s1 = broadcast2("where", c.shape(), x.shape())?;
    let shape = broadcast2("where", &s1, y.shape())?;
    let n: usize = shape.iter().product();
    if n == 0 {
        return Ok(shaped(&shape, Vec::new()));
    }
    let (c, x, y) = (
        c.as_standard_layout(),
        x.as_standard_layout(),
        y.as_standard_layout(),
    );
    #[allow(clippy::expect_used)]
    let (cs, xs, ys) = (
        c.as_slice().expect("standard layout is contiguous"),
        x.as_slice().expect("standard layout is contiguous"),
        y.as_slice().expect("standard layout is contiguous"),
    );
    let plan = Plan::new(&shape, [c.shape(), x.shape(), y.shape()]);
    let l = plan.lane_len();
    let mut out: Vec<T> = Vec::with_capacity(n);
    match (
        plan.lane_stride(0),
        plan.lane_stride(1),
        plan.lane_stride(2),
    ) {
        (1, 1, 1) => plan.for_each_lane(|[i, j, k]| {
            out.extend(
                cs[i..i + l]
                    .iter()
                    .zip(&xs[j..j + l])
                    .zip(&ys[k..k + l])
                    .map(|((&c, &p), &q)| if c { p } else { q }),
            );
        }),
        (sc, sx, sy) => plan.for_each_lane(|[i, j, k]| {
            out.extend((0..l).map(|e| {
                if cs[i + e * sc] {
                    xs[j + e * sx]
                } else {
                    ys[k + e * sy]
                }
            }));
        }),
    }
    Ok(shaped(&shape, out))
}

// ---------------------------------------------------------------------------
// Per-dtype kernels.

/// The kernels of one element type; `with_block!` reaches them once per block.
trait Kernel: BlockElement {
    /// A unary op whose input was already cast to the dtype it runs on.
    fn unary_same(op: UnaryOp, a: &ArrayD<Self>) -> Result<Block>;
    /// A binary op on two arrays of the operand dtype.
    fn binary_same(op: BinaryOp, a: &ArrayD<Self>, b: &ArrayD<Self>) -> Result<Block>;
}

/// Comparisons, and maximum/minimum, shared by every dtype.
fn compare<T: Element + BlockElement>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Block> {
    let n = op.name();
    Ok(match op {
        BinaryOp::Eq => Block::from(map2(n, a, b, |p, q| p == q)?),
        BinaryOp::Ne => Block::from(map2(n, a, b, |p, q| p != q)?),
        BinaryOp::Lt => Block::from(map2(n, a, b, |p, q| p < q)?),
        BinaryOp::Le => Block::from(map2(n, a, b, |p, q| p <= q)?),
        BinaryOp::Gt => Block::from(map2(n, a, b, |p, q| p > q)?),
        BinaryOp::Ge => Block::from(map2(n, a, b, |p, q| p >= q)?),
        BinaryOp::Maximum => T::into_block(map2(n, a, b, nan_max)?),
        BinaryOp::Minimum => T::into_block(map2(n, a, b, nan_min)?),
        _ => return Err(unsupported(n, T::DTYPE)),
    })
}

/// Integer arithmetic beyond `Element`: wrapping ops, Python division.
trait Int:
    Element
    + BlockElement
    + Ord
    + std::ops::Not<Output = Self>
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitXor<Output = Self>
{
    fn wadd(self, o: Self) -> Self;
    fn wsub(self, o: Self) -> Self;
    fn wmul(self, o: Self) -> Self;
    fn wneg(self) -> Self;
    fn wabs(self) -> Self;
    /// Python `//`; 0 for a zero divisor, wrapping for `MIN // -1`.
    fn floor_div(self, o: Self) -> Self;
    /// Python `%` (the divisor's sign); 0 for a zero divisor.
    fn py_rem(self, o: Self) -> Self;
    /// Wrapping power; negative exponents as the module docs say.
    fn ipow(self, e: Self) -> Self;
}

macro_rules! int_common {
    () => {
        #[inline(always)]
        fn wadd(self, o: Self) -> Self {
            self.wrapping_add(o)
        }
        #[inline(always)]
        fn wsub(self, o: Self) -> Self {
            self.wrapping_sub(o)
        }
        #[inline(always)]
        fn wmul(self, o: Self) -> Self {
            self.wrapping_mul(o)
        }
        #[inline(always)]
        fn wneg(self) -> Self {
            self.wrapping_neg()
        }
    };
}

/// Wrapping `base ** e` by squaring.
macro_rules! pow_by_squaring {
    ($base:expr, $e:expr) => {{
        let (mut base, mut e, mut acc) = ($base, $e, 1);
        while e > 0 {
            if e & 1 == 1 {
                acc = base.wrapping_mul(acc);
            }
            e >>= 1;
            if e > 0 {
                base = base.wrapping_mul(base);
            }
        }
        acc
    }};
}

macro_rules! int_signed {
    ($($t:ty),*) => {$(
        impl Int for $t {
            int_common!();
            #[inline(always)]
            fn wabs(self) -> Self {
                self.wrapping_abs()
            }
            #[inline(always)]
            fn floor_div(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let (q, r) = (self.wrapping_div(o), self.wrapping_rem(o));
                if r != 0 && ((r < 0) != (o < 0)) {
                    q - 1
                } else {
                    q
                }
            }
            #[inline(always)]
            fn py_rem(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                if r != 0 && ((r < 0) != (o < 0)) {
                    r + o
                } else {
                    r
                }
            }
            #[inline(always)]
            fn ipow(self, e: Self) -> Self {
                if e < 0 {
                    return match self {
                        1 => 1,
                        -1 => if e & 1 == 1 { -1 } else { 1 },
                        _ => 0,
                    };
                }
                pow_by_squaring!(self, e)
            }
        }
        impl Kernel for $t {
            fn unary_same(op: UnaryOp, a: &ArrayD<Self>) -> Result<Block> {
                int_unary(op, a)
            }
            fn binary_same(op: BinaryOp, a: &ArrayD<Self>, b: &ArrayD<Self>) -> Result<Block> {
                int_binary(op, a, b)
            }
        }
    )*};
}

macro_rules! int_unsigned {
    ($($t:ty),*) => {$(
        impl Int for $t {
            int_common!();
            #[inline(always)]
            fn wabs(self) -> Self {
                self
            }
            #[inline(always)]
            fn floor_div(self, o: Self) -> Self {
                if o == 0 { 0 } else { self / o }
            }
            #[inline(always)]
            fn py_rem(self, o: Self) -> Self {
                if o == 0 { 0 } else { self % o }
            }
            #[inline(always)]
            fn ipow(self, e: Self) -> Self {
                pow_by_squaring!(self, e)
            }
        }
        impl Kernel for $t {
            fn unary_same(op: UnaryOp, a: &ArrayD<Self>) -> Result<Block> {
                int_unary(op, a)
            }
            fn binary_same(op: BinaryOp, a: &ArrayD<Self>, b: &ArrayD<Self>) -> Result<Block> {
                int_binary(op, a, b)
            }
        }
    )*};
}

int_signed!(i8, i16, i32, i64);
int_unsigned!(u8, u16, u32, u64);

fn int_unary<T: Int>(op: UnaryOp, a: &ArrayD<T>) -> Result<Block> {
    Ok(match op {
        UnaryOp::Neg => T::into_block(map1(a, T::wneg)),
        UnaryOp::Abs => T::into_block(map1(a, T::wabs)),
        UnaryOp::Square => T::into_block(map1(a, |v| v.wmul(v))),
        UnaryOp::Floor | UnaryOp::Ceil => T::into_block(map1(a, |v| v)),
        UnaryOp::Not => T::into_block(map1(a, |v| !v)),
        UnaryOp::IsNan => Block::from(map1(a, |_| false)),
        UnaryOp::IsFinite => Block::from(map1(a, |_| true)),
        // `unary` casts integers to a float before these.
        UnaryOp::Sqrt
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Log1p
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh => return Err(unsupported(op.name(), T::DTYPE)),
    })
}

fn int_binary<T: Int>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Block> {
    let n = op.name();
    let out = |r: ArrayD<T>| Ok(T::into_block(r));
    match op {
        BinaryOp::Add => out(map2(n, a, b, T::wadd)?),
        BinaryOp::Sub => out(map2(n, a, b, T::wsub)?),
        BinaryOp::Mul => out(map2(n, a, b, T::wmul)?),
        BinaryOp::FloorDiv => out(map2(n, a, b, T::floor_div)?),
        BinaryOp::Rem => out(map2(n, a, b, T::py_rem)?),
        BinaryOp::Pow => out(map2(n, a, b, T::ipow)?),
        BinaryOp::And => out(map2(n, a, b, |p, q| p & q)?),
        BinaryOp::Or => out(map2(n, a, b, |p, q| p | q)?),
        BinaryOp::Xor => out(map2(n, a, b, |p, q| p ^ q)?),
        // True division of integers (the executor casts to f64 first).
        BinaryOp::Div => Ok(Block::from(map2(n, a, b, |p, q| p.to_f64() / q.to_f64())?)),
        _ => compare(op, a, b),
    }
}

/// Float math beyond `Element`.
trait Float:
    Element
    + BlockElement
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Rem<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
{
    const ZERO: Self;
    const ONE: Self;
    const HALF: Self;
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn is_finite(self) -> bool;
    fn copysign(self, sign: Self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn powi(self, e: i32) -> Self;
}

macro_rules! float_impl {
    ($($t:ty),*) => {$(
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            #[inline(always)] fn abs(self) -> Self { <$t>::abs(self) }
            #[inline(always)] fn sqrt(self) -> Self { <$t>::sqrt(self) }
            #[inline(always)] fn exp(self) -> Self { <$t>::exp(self) }
            #[inline(always)] fn ln(self) -> Self { <$t>::ln(self) }
            #[inline(always)] fn ln_1p(self) -> Self { <$t>::ln_1p(self) }
            #[inline(always)] fn sin(self) -> Self { <$t>::sin(self) }
            #[inline(always)] fn cos(self) -> Self { <$t>::cos(self) }
            #[inline(always)] fn tanh(self) -> Self { <$t>::tanh(self) }
            #[inline(always)] fn floor(self) -> Self { <$t>::floor(self) }
            #[inline(always)] fn ceil(self) -> Self { <$t>::ceil(self) }
            #[inline(always)] fn is_finite(self) -> bool { <$t>::is_finite(self) }
            #[inline(always)] fn copysign(self, sign: Self) -> Self { <$t>::copysign(self, sign) }
            #[inline(always)] fn powf(self, e: Self) -> Self { <$t>::powf(self, e) }
            #[inline(always)] fn powi(self, e: i32) -> Self { <$t>::powi(self, e) }
        }
        impl Kernel for $t {
            fn unary_same(op: UnaryOp, a: &ArrayD<Self>) -> Result<Block> {
                float_unary(op, a)
            }
            fn binary_same(op: BinaryOp, a: &ArrayD<Self>, b: &ArrayD<Self>) -> Result<Block> {
                float_binary(op, a, b)
            }
        }
    )*};
}

float_impl!(f32, f64);

/// NumPy's `npy_divmod`: Python's floored quotient and remainder, computed
/// from `fmod` so that `q * b + r` is as close to `a` as rounding allows.
#[inline(always)]
fn float_divmod<T: Float>(a: T, b: T) -> (T, T) {
    let mut m = a % b;
    if b == T::ZERO {
        return (a / b, m);
    }
    let mut div = (a - m) / b;
    if m != T::ZERO {
        if (b < T::ZERO) != (m < T::ZERO) {
            m += b;
            div -= T::ONE;
        }
    } else {
        m = T::ZERO.copysign(b);
    }
    let q = if div != T::ZERO {
        let f = div.floor();
        if div - f > T::HALF {
            f + T::ONE
        } else {
            f
        }
    } else {
        T::ZERO.copysign(a / b)
    };
    (q, m)
}

fn float_unary<T: Float>(op: UnaryOp, a: &ArrayD<T>) -> Result<Block> {
    let out = |r: ArrayD<T>| Ok(T::into_block(r));
    match op {
        UnaryOp::Neg => out(map1(a, |v| -v)),
        UnaryOp::Abs => out(map1(a, T::abs)),
        UnaryOp::Sqrt => out(map1(a, T::sqrt)),
        UnaryOp::Exp => out(map1(a, T::exp)),
        UnaryOp::Log => out(map1(a, T::ln)),
        UnaryOp::Log1p => out(map1(a, T::ln_1p)),
        UnaryOp::Sin => out(map1(a, T::sin)),
        UnaryOp::Cos => out(map1(a, T::cos)),
        UnaryOp::Tanh => out(map1(a, T::tanh)),
        UnaryOp::Square => out(map1(a, |v| v * v)),
        UnaryOp::Floor => out(map1(a, T::floor)),
        UnaryOp::Ceil => out(map1(a, T::ceil)),
        UnaryOp::IsNan => Ok(Block::from(map1(a, |v| v.is_nan()))),
        UnaryOp::IsFinite => Ok(Block::from(map1(a, T::is_finite))),
        UnaryOp::Not => Err(unsupported(op.name(), T::DTYPE)),
    }
}

fn float_binary<T: Float>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Block> {
    let n = op.name();
    let out = |r: ArrayD<T>| Ok(T::into_block(r));
    match op {
        BinaryOp::Add => out(map2(n, a, b, |p, q| p + q)?),
        BinaryOp::Sub => out(map2(n, a, b, |p, q| p - q)?),
        BinaryOp::Mul => out(map2(n, a, b, |p, q| p * q)?),
        BinaryOp::Div => out(map2(n, a, b, |p, q| p / q)?),
        BinaryOp::FloorDiv => out(map2(n, a, b, |p, q| float_divmod(p, q).0)?),
        BinaryOp::Rem => out(map2(n, a, b, |p, q| float_divmod(p, q).1)?),
        BinaryOp::Pow => out(float_pow(a, b)?),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => Err(unsupported(n, T::DTYPE)),
        _ => compare(op, a, b),
    }
}

/// `a ** b`, with fast paths for a one-element exponent.
fn float_pow<T: Float>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    let n = BinaryOp::Pow.name();
    let e = match b.iter().next() {
        Some(&e) if b.len() == 1 => e.to_f64(),
        _ => return map2(n, a, b, T::powf),
    };
    let shape = broadcast2(n, a.shape(), b.shape())?;
    let r = if e == 2.0 {
        map1(a, |x| x * x)
    } else if e == 3.0 {
        map1(a, |x| x * x * x)
    } else if e == 0.5 {
        map1(a, T::sqrt)
    } else if e == -1.0 {
        map1(a, |x| T::ONE / x)
    } else if e == 1.0 {
        map1(a, |x| x)
    } else if e == 0.0 {
        map1(a, |_| T::ONE)
    } else if e.fract() == 0.0 && e.abs() <= 16.0 {
        let k = e as i32;
        map1(a, |x| x.powi(k))
    } else {
        let e = T::from_f64(e);
        map1(a, |x| x.powf(e))
    };
    Ok(reshaped(r, &shape))
}

impl Kernel for bool {
    fn unary_same(op: UnaryOp, a: &ArrayD<bool>) -> Result<Block> {
        Ok(Block::from(match op {
            UnaryOp::Abs | UnaryOp::Floor | UnaryOp::Ceil => map1(a, |v| v),
            UnaryOp::Not => map1(a, |v| !v),
            UnaryOp::IsNan => map1(a, |_| false),
            UnaryOp::IsFinite => map1(a, |_| true),
            // Neg is refused by `unary_dtype`; the rest run after a cast.
            _ => return Err(unsupported(op.name(), DType::Bool)),
        }))
    }

    fn binary_same(op: BinaryOp, a: &ArrayD<bool>, b: &ArrayD<bool>) -> Result<Block> {
        let n = op.name();
        match op {
            BinaryOp::And => Ok(Block::from(map2(n, a, b, |p, q| p & q)?)),
            BinaryOp::Or => Ok(Block::from(map2(n, a, b, |p, q| p | q)?)),
            BinaryOp::Xor => Ok(Block::from(map2(n, a, b, |p, q| p ^ q)?)),
            BinaryOp::Maximum => Ok(Block::from(map2(n, a, b, |p, q| p | q)?)),
            BinaryOp::Minimum => Ok(Block::from(map2(n, a, b, |p, q| p & q)?)),
            // Arithmetic on bools runs on int8 (`binary` casts first).
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::FloorDiv
            | BinaryOp::Rem
            | BinaryOp::Pow => Err(unsupported(n, DType::Bool)),
            _ => compare(op, a, b),
        }
    }
}
