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
//!
//! The `*_owned` variants ([`unary_owned`], [`binary_owned`],
//! [`clip_owned`]) take their inputs by value and write the result into an
//! input's buffer when dtype, layout and size allow, so a fused chain of
//! elementwise ops on a tile allocates once instead of once per op (fresh
//! tile-sized allocations are returned to the OS and page-faulted back in
//! by the allocator, which costs far more than the arithmetic).

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
    unary_cow(op, Cow::Borrowed(x))
}

/// [`unary`] on an owned block, writing the result into its buffer when
/// the result has its dtype and it is standard layout (no allocation).
///
/// ```
/// use ndstream_engine::{Block, UnaryOp};
/// use ndstream_engine::kernels::elementwise::unary_owned;
/// let x = Block::from(ndarray::arr1(&[1.0f64, -2.0]).into_dyn());
/// assert_eq!(unary_owned(UnaryOp::Neg, x).unwrap().to_f64_vec(), vec![-1.0, 2.0]);
/// ```
///
/// # Errors
/// As [`unary`].
pub fn unary_owned(op: UnaryOp, x: Block) -> Result<Block> {
    unary_cow(op, Cow::Owned(x))
}

/// [`unary`] on a borrowed or owned block: an owned one may take the
/// result, as in [`unary_owned`].
pub(crate) fn unary_cow(op: UnaryOp, x: Cow<'_, Block>) -> Result<Block> {
    let out = unary_dtype(op, x.dtype())?;
    // Ops that change the dtype of the values (a float op on integers,
    // square on bool) run on the input cast to the result dtype.
    let src = match op {
        UnaryOp::IsNan | UnaryOp::IsFinite => x.dtype(),
        _ => out,
    };
    let x = cast(x, src);
    crate::with_dtype!(src, T => <T as Kernel>::unary_same(op, typed_cow::<T>(op.name(), x)?))
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
    binary_cow(op, Cow::Borrowed(a), Cow::Borrowed(b))
}

/// [`binary`] on owned blocks: when the result has the operand dtype, an
/// input in standard layout with the result's element count is overwritten
/// in place (no allocation; `a` is tried first). Fused chains such as
/// `4 * (p * p - p)` then run without allocating.
///
/// ```
/// use ndstream_engine::{BinaryOp, Block};
/// use ndstream_engine::kernels::elementwise::binary_owned;
/// let a = Block::from(ndarray::arr1(&[1.0f64, 2.0]).into_dyn());
/// let four = Block::from(ndarray::arr0(4.0f64).into_dyn());
/// assert_eq!(binary_owned(BinaryOp::Mul, four, a).unwrap().to_f64_vec(), vec![4.0, 8.0]);
/// ```
///
/// # Errors
/// As [`binary`].
pub fn binary_owned(op: BinaryOp, a: Block, b: Block) -> Result<Block> {
    binary_cow(op, Cow::Owned(a), Cow::Owned(b))
}

/// [`binary`] on borrowed or owned blocks: an owned one may take the
/// result, as in [`binary_owned`].
pub(crate) fn binary_cow(op: BinaryOp, a: Cow<'_, Block>, b: Cow<'_, Block>) -> Result<Block> {
    let (operand, _) = binary_dtypes(op, a.dtype(), b.dtype())?;
    let (a, b) = (cast(a, operand), cast(b, operand));
    crate::with_dtype!(operand, T => {
        let x = typed_cow::<T>(op.name(), a)?;
        let y = typed_cow::<T>(op.name(), b)?;
        <T as Kernel>::binary_same(op, x, y)
    })
}

/// `a ** b` for an exponent array that is not a scalar: `powf` on every
/// float element, as NumPy's `power` does for two arrays. [`binary`] takes
/// the scalar exponent's fast paths (`x * x` for `** 2`, `sqrt` for
/// `** 0.5`, ...) whenever the exponent block has one element, which a tile
/// of a larger exponent array can have too: the bits would then depend on
/// the chunking. Integer powers have no fast paths and go to [`binary`].
///
/// # Errors
/// As [`binary`].
pub(crate) fn power_each_cow(a: Cow<'_, Block>, b: Cow<'_, Block>) -> Result<Block> {
    let op = BinaryOp::Pow;
    let (operand, _) = binary_dtypes(op, a.dtype(), b.dtype())?;
    let (a, b) = (cast(a, operand), cast(b, operand));
    match operand {
        DType::F32 => {
            let (x, y) = (
                typed_cow::<f32>(op.name(), a)?,
                typed_cow::<f32>(op.name(), b)?,
            );
            Ok(Block::from(map2_same(op.name(), x, y, f32::powf)?))
        }
        DType::F64 => {
            let (x, y) = (
                typed_cow::<f64>(op.name(), a)?,
                typed_cow::<f64>(op.name(), b)?,
            );
            Ok(Block::from(map2_same(op.name(), x, y, f64::powf)?))
        }
        _ => binary_cow(op, a, b),
    }
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
    let (a, b) = (cast(Cow::Borrowed(a), dt), cast(Cow::Borrowed(b), dt));
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
    clip_cow(Cow::Borrowed(x), lo, hi)
}

/// [`clip`] on an owned block, in place when it is standard layout.
///
/// # Errors
/// As [`clip`].
pub fn clip_owned(x: Block, lo: Option<f64>, hi: Option<f64>) -> Result<Block> {
    clip_cow(Cow::Owned(x), lo, hi)
}

fn clip_cow(x: Cow<'_, Block>, lo: Option<f64>, hi: Option<f64>) -> Result<Block> {
    let dt = x.dtype();
    crate::with_dtype!(dt, T => {
        let a = typed_cow::<T>("clip", x)?;
        let lo = lo.map(T::from_f64);
        let hi = hi.map(T::from_f64);
        Ok(Block::from(match (lo, hi) {
            (Some(l), Some(h)) => map1_same(a, |v| nan_min(nan_max(v, l), h)),
            (Some(l), None) => map1_same(a, |v| nan_max(v, l)),
            (None, Some(h)) => map1_same(a, |v| nan_min(v, h)),
            (None, None) => map1_same(a, |v| v),
        }))
    })
}

// ---------------------------------------------------------------------------
// Dtype plumbing.

/// `b` as `dtype`, unchanged when it already is.
fn cast(b: Cow<'_, Block>, dtype: DType) -> Cow<'_, Block> {
    if b.dtype() == dtype {
        return b;
    }
    Cow::Owned(
        crate::with_block!(b.as_ref(), a, S => crate::with_dtype!(dtype, T => Block::from(map1(a, |v: S| v.cast::<T>())))),
    )
}

/// The typed array inside `b` (which must hold `T`), still borrowed or owned.
fn typed_cow<'b, T: BlockElement>(
    op: &'static str,
    b: Cow<'b, Block>,
) -> Result<Cow<'b, ArrayD<T>>> {
    match b {
        Cow::Borrowed(b) => typed(op, b).map(Cow::Borrowed),
        Cow::Owned(b) => T::from_block(b)
            .map(Cow::Owned)
            .map_err(|b| Error::DTypeMismatch {
                op,
                index: 1,
                expected: T::DTYPE,
                got: b.dtype(),
            }),
    }
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
pub(super) fn nan_max<T: Element>(a: T, b: T) -> T {
    if a >= b || a.is_nan() {
        a
    } else {
        b
    }
}

/// NaN-propagating minimum, NumPy's `minimum`.
#[inline(always)]
pub(super) fn nan_min<T: Element>(a: T, b: T) -> T {
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
        Some(s) => wide(
            #[inline(always)]
            || s.iter().map(|&x| f(x)).collect(),
        ),
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
    #[inline(always)]
    fn for_each_lane(&self, mut f: impl FnMut([usize; N])) {
        let k = self.dims.len() - 1;
        let lanes: usize = self.dims[..k].iter().product();
        let mut idx = vec![0usize; k];
        let mut off = [0usize; N];
        for _ in 0..lanes {
            f(off);
            next_lane(&mut idx, &self.dims[..k], &self.strides, &mut off);
        }
    }
}

/// Move the odometer `idx` over the outer axes `dims` on to the next lane
/// (C order), and each input's offset `off[i]` with it (`strides[i][d]`
/// along outer axis `d`).
#[inline(always)]
pub(super) fn next_lane<S: AsRef<[usize]>>(
    idx: &mut [usize],
    dims: &[usize],
    strides: &[S],
    off: &mut [usize],
) {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        for (o, s) in off.iter_mut().zip(strides) {
            *o += s.as_ref()[d];
        }
        if idx[d] < dims[d] {
            return;
        }
        for (o, s) in off.iter_mut().zip(strides) {
            *o -= s.as_ref()[d] * dims[d];
        }
        idx[d] = 0;
    }
}

/// Run `body` compiled for AVX2 when the CPU has it (the build targets
/// baseline x86-64, whose loops use 128-bit vectors). The kernels' closures
/// are inlined into `body`, so their loops vectorise 256 bits wide. No FMA
/// is enabled and nothing is reassociated: the results are the same bits
/// on either path.
#[inline(always)]
pub(super) fn wide<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(body) };
        }
    }
    body()
}

/// [`wide`], with a third version compiled for AVX-512 (F) when the CPU
/// has it: its loops run 512 bits wide. Used by the fused chains, whose
/// strips are L1-resident, so that loads, stores and arithmetic (all but
/// the divider, which is no faster per element) take half the
/// instructions. AVX-512F implies FMA, but Rust never contracts a multiply
/// and an add into one, so the bits are still those of the other paths.
#[inline(always)]
pub(super) fn widest<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { avx512(body) };
        }
    }
    wide(body)
}

/// `f(a, b)` elementwise with NumPy broadcasting; standard-layout result.
#[inline]
fn map2<A: Copy, B: Copy, U>(
    op: &'static str,
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> U,
) -> Result<ArrayD<U>> {
    wide(
        #[inline(always)]
        || map2_body(op, a, b, f),
    )
}

/// The body of [`map2`], compiled in each of [`wide`]'s versions.
#[inline(always)]
fn map2_body<A: Copy, B: Copy, U>(
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
        (1, 1) => plan.for_each_lane(
            #[inline(always)]
            |[i, j]| {
                out.extend(x[i..i + l].iter().zip(&y[j..j + l]).map(|(&p, &q)| f(p, q)));
            },
        ),
        (0, 1) => plan.for_each_lane(
            #[inline(always)]
            |[i, j]| {
                let p = x[i];
                out.extend(y[j..j + l].iter().map(|&q| f(p, q)));
            },
        ),
        (1, 0) => plan.for_each_lane(
            #[inline(always)]
            |[i, j]| {
                let q = y[j];
                out.extend(x[i..i + l].iter().map(|&p| f(p, q)));
            },
        ),
        (sa, sb) => plan.for_each_lane(
            #[inline(always)]
            |[i, j]| {
                out.extend((0..l).map(|k| f(x[i + k * sa], y[j + k * sb])));
            },
        ),
    }
    Ok(shaped(&shape, out))
}

/// A standard-layout array given a shape with the same element count
/// (here always the same dims up to size-1 axes).
fn reshaped<U>(a: ArrayD<U>, shape: &[usize]) -> ArrayD<U> {
    if a.shape() == shape {
        return a;
    }
    #[allow(clippy::expect_used)]
    a.into_shape_with_order(IxDyn(shape))
        .expect("standard layout reshapes to the same element count")
}

/// `f` of every element into an array of the same type, reusing an owned
/// standard-layout buffer.
#[inline]
fn map1_same<T: Copy>(a: Cow<'_, ArrayD<T>>, f: impl Fn(T) -> T) -> ArrayD<T> {
    match a {
        Cow::Owned(mut a) if a.is_standard_layout() => {
            if let Some(s) = a.as_slice_mut() {
                wide(
                    #[inline(always)]
                    || {
                        for v in s {
                            *v = f(*v);
                        }
                    },
                );
            }
            a
        }
        a => map1(&a, f),
    }
}

/// [`map2`] for a result of the operands' type: writes into `a` (or `b`)
/// when it is owned, standard layout and holds as many elements as the
/// result.
#[inline]
fn map2_same<T: Copy>(
    op: &'static str,
    a: Cow<'_, ArrayD<T>>,
    b: Cow<'_, ArrayD<T>>,
    f: impl Fn(T, T) -> T,
) -> Result<ArrayD<T>> {
    let shape = broadcast2(op, a.shape(), b.shape())?;
    let n: usize = shape.iter().product();
    let fits = |x: &ArrayD<T>, other: &ArrayD<T>| {
        x.is_standard_layout() && x.len() == n && (x.shape() == &shape[..] || other.len() == 1)
    };
    match (a, b) {
        (Cow::Owned(mut a), b) if fits(&a, &b) => {
            wide(
                #[inline(always)]
                || zip_into(&mut a, &b, &shape, &f),
            );
            Ok(reshaped(a, &shape))
        }
        (a, Cow::Owned(mut b)) if fits(&b, &a) => {
            wide(
                #[inline(always)]
                || zip_into(&mut b, &a, &shape, |y, x| f(x, y)),
            );
            Ok(reshaped(b, &shape))
        }
        (a, b) => map2(op, &a, &b, f),
    }
}

/// `out[i] = f(out[i], other[i])` with `other` broadcast to `shape`;
/// `out` is standard layout with `product(shape)` elements (its own shape
/// is `shape`, or `other` has one element).
#[inline(always)]
fn zip_into<T: Copy>(
    out: &mut ArrayD<T>,
    other: &ArrayD<T>,
    shape: &[usize],
    f: impl Fn(T, T) -> T,
) {
    let same_shape = out.shape() == other.shape();
    let Some(o) = out.as_slice_mut() else { return };
    if other.len() == 1 {
        if let Some(&q) = other.iter().next() {
            for v in o.iter_mut() {
                *v = f(*v, q);
            }
        }
        return;
    }
    let other = other.as_standard_layout();
    #[allow(clippy::expect_used)]
    let y = other.as_slice().expect("standard layout is contiguous");
    if same_shape {
        for (v, &q) in o.iter_mut().zip(y) {
            *v = f(*v, q);
        }
        return;
    }
    // `out` has the full shape, so its offsets are the output's offsets.
    let plan = Plan::new(shape, [shape, other.shape()]);
    let l = plan.lane_len();
    match plan.lane_stride(1) {
        1 => plan.for_each_lane(
            #[inline(always)]
            |[i, j]| {
                for (v, &q) in o[i..i + l].iter_mut().zip(&y[j..j + l]) {
                    *v = f(*v, q);
                }
            },
        ),
        sb => plan.for_each_lane(
            #[inline(always)]
            |[i, j]| {
                for (k, v) in o[i..i + l].iter_mut().enumerate() {
                    *v = f(*v, y[j + k * sb]);
                }
            },
        ),
    }
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
    /// A unary op whose input was already cast to the dtype it runs on
    /// (an owned input may be overwritten with the result).
    fn unary_same(op: UnaryOp, a: Cow<'_, ArrayD<Self>>) -> Result<Block>;
    /// A binary op on two arrays of the operand dtype (an owned input may
    /// be overwritten with the result).
    fn binary_same(
        op: BinaryOp,
        a: Cow<'_, ArrayD<Self>>,
        b: Cow<'_, ArrayD<Self>>,
    ) -> Result<Block>;
}

/// The six comparisons, shared by every dtype.
fn compare<T: Element + BlockElement>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Block> {
    let n = op.name();
    Ok(match op {
        BinaryOp::Eq => Block::from(map2(n, a, b, |p, q| p == q)?),
        BinaryOp::Ne => Block::from(map2(n, a, b, |p, q| p != q)?),
        BinaryOp::Lt => Block::from(map2(n, a, b, |p, q| p < q)?),
        BinaryOp::Le => Block::from(map2(n, a, b, |p, q| p <= q)?),
        BinaryOp::Gt => Block::from(map2(n, a, b, |p, q| p > q)?),
        BinaryOp::Ge => Block::from(map2(n, a, b, |p, q| p >= q)?),
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
            fn unary_same(op: UnaryOp, a: Cow<'_, ArrayD<Self>>) -> Result<Block> {
                int_unary(op, a)
            }
            fn binary_same(op: BinaryOp, a: Cow<'_, ArrayD<Self>>, b: Cow<'_, ArrayD<Self>>) -> Result<Block> {
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
            fn unary_same(op: UnaryOp, a: Cow<'_, ArrayD<Self>>) -> Result<Block> {
                int_unary(op, a)
            }
            fn binary_same(op: BinaryOp, a: Cow<'_, ArrayD<Self>>, b: Cow<'_, ArrayD<Self>>) -> Result<Block> {
                int_binary(op, a, b)
            }
        }
    )*};
}

int_signed!(i8, i16, i32, i64);
int_unsigned!(u8, u16, u32, u64);

fn int_unary<T: Int>(op: UnaryOp, a: Cow<'_, ArrayD<T>>) -> Result<Block> {
    Ok(match op {
        UnaryOp::Neg => T::into_block(map1_same(a, T::wneg)),
        UnaryOp::Abs => T::into_block(map1_same(a, T::wabs)),
        UnaryOp::Square => T::into_block(map1_same(a, |v| v.wmul(v))),
        UnaryOp::Floor | UnaryOp::Ceil => T::into_block(map1_same(a, |v| v)),
        UnaryOp::Not => T::into_block(map1_same(a, |v| !v)),
        UnaryOp::IsNan => Block::from(map1(&a, |_| false)),
        UnaryOp::IsFinite => Block::from(map1(&a, |_| true)),
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

fn int_binary<T: Int>(op: BinaryOp, a: Cow<'_, ArrayD<T>>, b: Cow<'_, ArrayD<T>>) -> Result<Block> {
    let n = op.name();
    let out = |r: ArrayD<T>| Ok(T::into_block(r));
    match op {
        BinaryOp::Add => out(map2_same(n, a, b, T::wadd)?),
        BinaryOp::Sub => out(map2_same(n, a, b, T::wsub)?),
        BinaryOp::Mul => out(map2_same(n, a, b, T::wmul)?),
        BinaryOp::FloorDiv => out(map2_same(n, a, b, T::floor_div)?),
        BinaryOp::Rem => out(map2_same(n, a, b, T::py_rem)?),
        BinaryOp::Pow => out(map2_same(n, a, b, T::ipow)?),
        BinaryOp::And => out(map2_same(n, a, b, |p, q| p & q)?),
        BinaryOp::Or => out(map2_same(n, a, b, |p, q| p | q)?),
        BinaryOp::Xor => out(map2_same(n, a, b, |p, q| p ^ q)?),
        // True division of integers (the executor casts to f64 first).
        BinaryOp::Div => Ok(Block::from(map2(n, &a, &b, |p, q| {
            p.to_f64() / q.to_f64()
        })?)),
        BinaryOp::Maximum => out(map2_same(n, a, b, nan_max)?),
        BinaryOp::Minimum => out(map2_same(n, a, b, nan_min)?),
        _ => compare(op, &a, &b),
    }
}

/// Float math beyond `Element`.
pub(crate) trait Float:
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
            fn unary_same(op: UnaryOp, a: Cow<'_, ArrayD<Self>>) -> Result<Block> {
                float_unary(op, a)
            }
            fn binary_same(op: BinaryOp, a: Cow<'_, ArrayD<Self>>, b: Cow<'_, ArrayD<Self>>) -> Result<Block> {
                float_binary(op, a, b)
            }
        }
    )*};
}

float_impl!(f32, f64);

/// NumPy's `npy_divmod`: Python's floored quotient and remainder, computed
/// from `fmod` so that `q * b + r` is as close to `a` as rounding allows.
#[inline(always)]
pub(super) fn float_divmod<T: Float>(a: T, b: T) -> (T, T) {
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

fn float_unary<T: Float>(op: UnaryOp, a: Cow<'_, ArrayD<T>>) -> Result<Block> {
    let out = |r: ArrayD<T>| Ok(T::into_block(r));
    match op {
        UnaryOp::Neg => out(map1_same(a, |v| -v)),
        UnaryOp::Abs => out(map1_same(a, T::abs)),
        UnaryOp::Sqrt => out(map1_same(a, T::sqrt)),
        UnaryOp::Exp => out(map1_same(a, T::exp)),
        UnaryOp::Log => out(map1_same(a, T::ln)),
        UnaryOp::Log1p => out(map1_same(a, T::ln_1p)),
        UnaryOp::Sin => out(map1_same(a, T::sin)),
        UnaryOp::Cos => out(map1_same(a, T::cos)),
        UnaryOp::Tanh => out(map1_same(a, T::tanh)),
        UnaryOp::Square => out(map1_same(a, |v| v * v)),
        UnaryOp::Floor => out(map1_same(a, T::floor)),
        UnaryOp::Ceil => out(map1_same(a, T::ceil)),
        UnaryOp::IsNan => Ok(Block::from(map1(&a, |v| v.is_nan()))),
        UnaryOp::IsFinite => Ok(Block::from(map1(&a, T::is_finite))),
        UnaryOp::Not => Err(unsupported(op.name(), T::DTYPE)),
    }
}

fn float_binary<T: Float>(
    op: BinaryOp,
    a: Cow<'_, ArrayD<T>>,
    b: Cow<'_, ArrayD<T>>,
) -> Result<Block> {
    let n = op.name();
    let out = |r: ArrayD<T>| Ok(T::into_block(r));
    match op {
        BinaryOp::Add => out(map2_same(n, a, b, |p, q| p + q)?),
        BinaryOp::Sub => out(map2_same(n, a, b, |p, q| p - q)?),
        BinaryOp::Mul => out(map2_same(n, a, b, |p, q| p * q)?),
        BinaryOp::Div => out(map2_same(n, a, b, |p, q| p / q)?),
        BinaryOp::FloorDiv => out(map2_same(n, a, b, |p, q| float_divmod(p, q).0)?),
        BinaryOp::Rem => out(map2_same(n, a, b, |p, q| float_divmod(p, q).1)?),
        BinaryOp::Pow => out(float_pow(a, b)?),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => Err(unsupported(n, T::DTYPE)),
        BinaryOp::Maximum => out(map2_same(n, a, b, nan_max)?),
        BinaryOp::Minimum => out(map2_same(n, a, b, nan_min)?),
        _ => compare(op, &a, &b),
    }
}

/// `a ** b`, with fast paths for a one-element exponent.
fn float_pow<T: Float>(a: Cow<'_, ArrayD<T>>, b: Cow<'_, ArrayD<T>>) -> Result<ArrayD<T>> {
    let n = BinaryOp::Pow.name();
    let e = match b.iter().next() {
        Some(&e) if b.len() == 1 => e.to_f64(),
        _ => return map2_same(n, a, b, T::powf),
    };
    let shape = broadcast2(n, a.shape(), b.shape())?;
    let r = if e == 2.0 {
        map1_same(a, |x| x * x)
    } else if e == 3.0 {
        map1_same(a, |x| x * x * x)
    } else if e == 0.5 {
        map1_same(a, T::sqrt)
    } else if e == -1.0 {
        map1_same(a, |x| T::ONE / x)
    } else if e == 1.0 {
        map1_same(a, |x| x)
    } else if e == 0.0 {
        map1_same(a, |_| T::ONE)
    } else if e.fract() == 0.0 && e.abs() <= 16.0 {
        let k = e as i32;
        map1_same(a, |x| x.powi(k))
    } else {
        let e = T::from_f64(e);
        map1_same(a, |x| x.powf(e))
    };
    Ok(reshaped(r, &shape))
}

impl Kernel for bool {
    fn unary_same(op: UnaryOp, a: Cow<'_, ArrayD<bool>>) -> Result<Block> {
        Ok(Block::from(match op {
            UnaryOp::Abs | UnaryOp::Floor | UnaryOp::Ceil => map1_same(a, |v| v),
            UnaryOp::Not => map1_same(a, |v| !v),
            UnaryOp::IsNan => map1(&a, |_| false),
            UnaryOp::IsFinite => map1(&a, |_| true),
            // Neg is refused by `unary_dtype`; the rest run after a cast.
            _ => return Err(unsupported(op.name(), DType::Bool)),
        }))
    }

    fn binary_same(
        op: BinaryOp,
        a: Cow<'_, ArrayD<bool>>,
        b: Cow<'_, ArrayD<bool>>,
    ) -> Result<Block> {
        let n = op.name();
        match op {
            BinaryOp::And => Ok(Block::from(map2_same(n, a, b, |p, q| p & q)?)),
            BinaryOp::Or => Ok(Block::from(map2_same(n, a, b, |p, q| p | q)?)),
            BinaryOp::Xor => Ok(Block::from(map2_same(n, a, b, |p, q| p ^ q)?)),
            BinaryOp::Maximum => Ok(Block::from(map2_same(n, a, b, |p, q| p | q)?)),
            BinaryOp::Minimum => Ok(Block::from(map2_same(n, a, b, |p, q| p & q)?)),
            // Arithmetic on bools runs on int8 (`binary` casts first).
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::FloorDiv
            | BinaryOp::Rem
            | BinaryOp::Pow => Err(unsupported(n, DType::Bool)),
            _ => compare(op, &a, &b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr0, arr1, arr2, ArrayD, IxDyn};
    use proptest::prelude::*;
    use DType::*;

    fn blk<T: BlockElement>(shape: &[usize], v: Vec<T>) -> Block {
        T::into_block(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    fn get<T: BlockElement + Clone>(b: &Block) -> ArrayD<T> {
        match T::as_array(b) {
            Some(a) => a.clone(),
            None => panic!("expected {}, got {}", T::DTYPE, b.dtype()),
        }
    }

    fn v1<T: BlockElement>(v: Vec<T>) -> Block {
        let n = v.len();
        blk(&[n], v)
    }

    type F1 = fn(f64) -> f64;
    type F2 = fn(f64, f64) -> f64;

    fn same_f64(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    // (op, a, b, result) from NumPy 2.4: `f(np.ones(2, a), np.ones(2, b)).dtype`.
    const NUMPY_BINARY_DTYPES: &str = "
        Add i1 u1 i2 Add i4 f4 f8 Add u2 f4 f4 Add i8 u8 f8 Add f4 f4 f4 Add i4 i4 i4 Add u1 u1 u1
        Add ? i1 i1 Add ? f4 f4 Add u4 i2 i8 Add f4 f8 f8 Add ? ? b1 Add i2 u2 i4 Add u1 f4 f4
        Sub i1 u1 i2 Sub i4 f4 f8 Sub ? ? ERR Sub u4 i2 i8 Mul ? ? b1 Mul u2 f4 f4
        Div i1 u1 f8 Div i4 f4 f8 Div u2 f4 f4 Div i8 u8 f8 Div f4 f4 f4 Div i4 i4 f8 Div u1 u1 f8
        Div ? i1 f8 Div ? f4 f4 Div u4 i2 f8 Div f4 f8 f8 Div ? ? f8 Div i2 u2 f8 Div u1 f4 f4
        FloorDiv i1 u1 i2 FloorDiv i4 f4 f8 FloorDiv f4 f4 f4 FloorDiv ? ? i1 FloorDiv u4 i2 i8
        Rem i8 u8 f8 Rem ? i1 i1 Rem ? ? i1 Rem u1 f4 f4 Pow i4 i4 i4 Pow ? ? i1 Pow u2 f4 f4
        Maximum i1 u1 i2 Maximum ? ? b1 Maximum i4 f4 f8 Maximum ? f4 f4
        Lt i1 u1 b1 Lt i4 f4 b1 Lt ? ? b1 Lt i8 u8 b1
        And i1 u1 i2 And i4 f4 ERR And u2 f4 ERR And i8 u8 ERR And f4 f4 ERR And i4 i4 i4 And ? i1 i1
        And ? ? b1 And u4 i2 i8 Xor ? f4 ERR Xor ? ? b1 Xor i2 u2 i4 Xor u1 f4 ERR";

    fn parse_op(s: &str) -> BinaryOp {
        match s {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "FloorDiv" => BinaryOp::FloorDiv,
            "Rem" => BinaryOp::Rem,
            "Pow" => BinaryOp::Pow,
            "Maximum" => BinaryOp::Maximum,
            "Lt" => BinaryOp::Lt,
            "And" => BinaryOp::And,
            "Xor" => BinaryOp::Xor,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn binary_result_dtypes_match_numpy() {
        let toks: Vec<&str> = NUMPY_BINARY_DTYPES.split_whitespace().collect();
        assert_eq!(toks.len() % 4, 0);
        for c in toks.chunks(4) {
            let (op, a, b) = (
                parse_op(c[0]),
                c[1].parse::<DType>().unwrap(),
                c[2].parse::<DType>().unwrap(),
            );
            let got = binary_dtypes(op, a, b);
            let got_r = binary_dtypes(op, b, a);
            // Documented deviation: arithmetic on two bools runs on int8.
            let want = match (op, a, b) {
                (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul, Bool, Bool) => "i1",
                _ => c[3],
            };
            if want == "ERR" {
                assert!(
                    matches!(got, Err(Error::UnsupportedDType { .. })),
                    "{c:?}: {got:?}"
                );
                assert!(got_r.is_err(), "{c:?} reversed");
            } else {
                let want: DType = want.parse().unwrap();
                assert_eq!(got.unwrap().1, want, "{c:?}");
                assert_eq!(got_r.unwrap().1, want, "{c:?} reversed");
            }
        }
    }

    #[test]
    fn binary_operand_dtypes() {
        let cases = [
            (BinaryOp::Lt, I32, F32, (F64, Bool)),
            (BinaryOp::Eq, Bool, Bool, (Bool, Bool)),
            (BinaryOp::Ge, U8, I8, (I16, Bool)),
            (BinaryOp::Div, I8, I8, (F64, F64)),
            (BinaryOp::Div, F32, F32, (F32, F32)),
            (BinaryOp::Div, U16, F32, (F32, F32)),
            (BinaryOp::Add, Bool, Bool, (I8, I8)),
            (BinaryOp::Pow, I64, I64, (I64, I64)),
            (BinaryOp::Or, Bool, U8, (U8, U8)),
            (BinaryOp::Minimum, Bool, Bool, (Bool, Bool)),
        ];
        for (op, a, b, want) in cases {
            assert_eq!(binary_dtypes(op, a, b).unwrap(), want, "{op:?} {a} {b}");
            // Idempotent: operands already cast give the same dtypes.
            assert_eq!(
                binary_dtypes(op, want.0, want.0).unwrap(),
                want,
                "{op:?} on the operand dtype"
            );
        }
        match binary_dtypes(BinaryOp::And, I32, F32) {
            Err(Error::UnsupportedDType { op, dtype }) => {
                assert_eq!((op, dtype), ("bitwise_and", F32))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unary_dtypes() {
        // NumPy gives float16 for bool/int8/uint8; we have no f16 and use f32.
        let float_of = [
            (Bool, F32),
            (I8, F32),
            (U8, F32),
            (I16, F32),
            (U16, F32),
            (I32, F64),
            (U32, F64),
            (I64, F64),
            (U64, F64),
            (F32, F32),
            (F64, F64),
        ];
        for (d, want) in float_of {
            for op in [
                UnaryOp::Sqrt,
                UnaryOp::Exp,
                UnaryOp::Log,
                UnaryOp::Log1p,
                UnaryOp::Sin,
                UnaryOp::Cos,
                UnaryOp::Tanh,
            ] {
                assert!(op.is_float_valued());
                assert_eq!(unary_dtype(op, d).unwrap(), want, "{op:?} {d}");
            }
            assert_eq!(unary_dtype(UnaryOp::IsNan, d).unwrap(), Bool);
            assert_eq!(unary_dtype(UnaryOp::IsFinite, d).unwrap(), Bool);
            for op in [UnaryOp::Abs, UnaryOp::Floor, UnaryOp::Ceil] {
                assert_eq!(unary_dtype(op, d).unwrap(), d, "{op:?} {d}");
            }
        }
        assert_eq!(unary_dtype(UnaryOp::Square, Bool).unwrap(), I8);
        assert_eq!(unary_dtype(UnaryOp::Square, U16).unwrap(), U16);
        assert_eq!(unary_dtype(UnaryOp::Neg, I8).unwrap(), I8);
        assert_eq!(unary_dtype(UnaryOp::Not, Bool).unwrap(), Bool);
        assert_eq!(unary_dtype(UnaryOp::Not, U32).unwrap(), U32);
        assert!(matches!(
            unary_dtype(UnaryOp::Neg, Bool),
            Err(Error::UnsupportedDType {
                op: "negative",
                dtype: Bool
            })
        ));
        assert!(matches!(
            unary_dtype(UnaryOp::Not, F64),
            Err(Error::UnsupportedDType {
                op: "invert",
                dtype: F64
            })
        ));
        assert!(unary(UnaryOp::Not, &v1(vec![1.0f32])).is_err());
        assert!(unary(UnaryOp::Neg, &v1(vec![true])).is_err());
    }

    #[test]
    fn unary_float_values() {
        let x = vec![
            0.3f64,
            1.7,
            -2.5,
            4.0,
            0.0,
            -0.0,
            1e-12,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            100.0,
        ];
        let ops: Vec<(UnaryOp, F1)> = vec![
            (UnaryOp::Neg, |v| -v),
            (UnaryOp::Abs, f64::abs),
            (UnaryOp::Sqrt, f64::sqrt),
            (UnaryOp::Exp, f64::exp),
            (UnaryOp::Log, f64::ln),
            (UnaryOp::Log1p, f64::ln_1p),
            (UnaryOp::Sin, f64::sin),
            (UnaryOp::Cos, f64::cos),
            (UnaryOp::Tanh, f64::tanh),
            (UnaryOp::Square, |v| v * v),
            (UnaryOp::Floor, f64::floor),
            (UnaryOp::Ceil, f64::ceil),
        ];
        let xb = blk(&[11], x.clone());
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let xb32 = blk(&[11], x32.clone());
        for (op, f) in ops {
            let got = get::<f64>(&unary(op, &xb).unwrap());
            for (g, &v) in got.iter().zip(&x) {
                assert!(same_f64(*g, f(v)), "{op:?}({v}) = {g}");
            }
            let got32 = get::<f32>(&unary(op, &xb32).unwrap());
            for (g, &v) in got32.iter().zip(&x32) {
                let want = f(v as f64);
                let ok = same_f64(*g as f64, want as f32 as f64)
                    || ((*g as f64) - want).abs() <= 2e-7 * want.abs().max(1e-30);
                assert!(ok, "f32 {op:?}({v}) = {g}, want {want}");
            }
        }
        let nan = get::<bool>(&unary(UnaryOp::IsNan, &xb).unwrap());
        let fin = get::<bool>(&unary(UnaryOp::IsFinite, &xb32).unwrap());
        for i in 0..x.len() {
            assert_eq!(nan[i], x[i].is_nan());
            assert_eq!(fin[i], x[i].is_finite());
        }
        // 2-d shape kept.
        let m = Block::from(arr2(&[[1.0f64, 4.0], [9.0, 16.0]]).into_dyn());
        assert_eq!(
            unary(UnaryOp::Sqrt, &m).unwrap(),
            Block::from(arr2(&[[1.0f64, 2.0], [3.0, 4.0]]).into_dyn())
        );
    }

    #[test]
    fn unary_integer_and_bool_values() {
        let i8s = v1(vec![-128i8, -1, 0, 5, 127]);
        assert_eq!(
            get::<i8>(&unary(UnaryOp::Neg, &i8s).unwrap()),
            arr1(&[-128i8, 1, 0, -5, -127]).into_dyn()
        );
        assert_eq!(
            get::<i8>(&unary(UnaryOp::Abs, &i8s).unwrap()),
            arr1(&[-128i8, 1, 0, 5, 127]).into_dyn()
        );
        assert_eq!(
            get::<i8>(&unary(UnaryOp::Not, &i8s).unwrap()),
            arr1(&[127i8, 0, -1, -6, -128]).into_dyn()
        );
        assert_eq!(
            get::<i8>(&unary(UnaryOp::Square, &i8s).unwrap()),
            arr1(&[0i8, 1, 0, 25, 1]).into_dyn()
        );
        assert_eq!(
            get::<i8>(&unary(UnaryOp::Floor, &i8s).unwrap()),
            arr1(&[-128i8, -1, 0, 5, 127]).into_dyn()
        );
        let u8s = v1(vec![0u8, 1, 255]);
        assert_eq!(
            get::<u8>(&unary(UnaryOp::Neg, &u8s).unwrap()),
            arr1(&[0u8, 255, 1]).into_dyn()
        );
        assert_eq!(
            get::<u8>(&unary(UnaryOp::Abs, &u8s).unwrap()),
            arr1(&[0u8, 1, 255]).into_dyn()
        );
        assert_eq!(
            get::<u8>(&unary(UnaryOp::Not, &u8s).unwrap()),
            arr1(&[255u8, 254, 0]).into_dyn()
        );
        assert_eq!(
            get::<u8>(&unary(UnaryOp::Ceil, &u8s).unwrap()),
            arr1(&[0u8, 1, 255]).into_dyn()
        );
        assert_eq!(
            get::<i16>(&unary(UnaryOp::Square, &v1(vec![300i16])).unwrap()),
            arr1(&[24464i16]).into_dyn()
        );
        assert_eq!(
            get::<f64>(&unary(UnaryOp::Sqrt, &v1(vec![4i32, 9])).unwrap()),
            arr1(&[2.0, 3.0]).into_dyn()
        );
        assert_eq!(
            get::<f32>(&unary(UnaryOp::Sqrt, &v1(vec![16u8])).unwrap()),
            arr1(&[4.0f32]).into_dyn()
        );
        assert_eq!(
            get::<f64>(&unary(UnaryOp::Exp, &v1(vec![0u64])).unwrap()),
            arr1(&[1.0]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&unary(UnaryOp::IsNan, &v1(vec![3i64])).unwrap()),
            arr1(&[false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&unary(UnaryOp::IsFinite, &v1(vec![3u16])).unwrap()),
            arr1(&[true]).into_dyn()
        );
        let bools = v1(vec![true, false]);
        assert_eq!(
            get::<bool>(&unary(UnaryOp::Not, &bools).unwrap()),
            arr1(&[false, true]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&unary(UnaryOp::Abs, &bools).unwrap()),
            arr1(&[true, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&unary(UnaryOp::Floor, &bools).unwrap()),
            arr1(&[true, false]).into_dyn()
        );
        assert_eq!(
            get::<i8>(&unary(UnaryOp::Square, &bools).unwrap()),
            arr1(&[1i8, 0]).into_dyn()
        );
        assert_eq!(
            get::<f32>(&unary(UnaryOp::Cos, &bools).unwrap()),
            arr1(&[1f32.cos(), 1.0]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&unary(UnaryOp::IsFinite, &bools).unwrap()),
            arr1(&[true, true]).into_dyn()
        );
    }

    #[test]
    fn binary_float_values() {
        let a = vec![1.5f64, -2.0, 0.0, 7.25, -0.5, 3.0];
        let b = vec![0.5f64, 4.0, -3.0, 7.25, 2.0, -1.5];
        let ops: Vec<(BinaryOp, F2)> = vec![
            (BinaryOp::Add, |p, q| p + q),
            (BinaryOp::Sub, |p, q| p - q),
            (BinaryOp::Mul, |p, q| p * q),
            (BinaryOp::Div, |p, q| p / q),
            (BinaryOp::FloorDiv, |p, q| (p / q).floor()),
            (BinaryOp::Rem, |p, q| p - (p / q).floor() * q),
            (BinaryOp::Maximum, f64::max),
            (BinaryOp::Minimum, f64::min),
            (BinaryOp::Eq, |p, q| (p == q) as u8 as f64),
            (BinaryOp::Ne, |p, q| (p != q) as u8 as f64),
            (BinaryOp::Lt, |p, q| (p < q) as u8 as f64),
            (BinaryOp::Le, |p, q| (p <= q) as u8 as f64),
            (BinaryOp::Gt, |p, q| (p > q) as u8 as f64),
            (BinaryOp::Ge, |p, q| (p >= q) as u8 as f64),
        ];
        for dt in [F64, F32] {
            let (ab, bb) = (
                blk(&[2, 3], a.clone()).astype(dt),
                blk(&[2, 3], b.clone()).astype(dt),
            );
            for &(op, f) in &ops {
                let got = binary(op, &ab, &bb).unwrap();
                assert_eq!(got.dtype(), binary_dtypes(op, dt, dt).unwrap().1, "{op:?}");
                assert_eq!(got.shape(), &[2, 3]);
                let want: Vec<f64> = a.iter().zip(&b).map(|(&p, &q)| f(p, q)).collect();
                let want = blk(&[2, 3], want).astype(got.dtype()).to_f64_vec();
                assert_eq!(got.to_f64_vec(), want, "{op:?} {dt}");
            }
        }
    }

    #[test]
    fn integer_arithmetic_wraps() {
        let add = binary(
            BinaryOp::Add,
            &v1(vec![127i8, -128, 5]),
            &v1(vec![1i8, -1, 6]),
        )
        .unwrap();
        assert_eq!(get::<i8>(&add), arr1(&[-128i8, 127, 11]).into_dyn());
        let sub = binary(BinaryOp::Sub, &v1(vec![0u16, 5]), &v1(vec![1u16, 2])).unwrap();
        assert_eq!(get::<u16>(&sub), arr1(&[65535u16, 3]).into_dyn());
        let mul = binary(BinaryOp::Mul, &v1(vec![i64::MAX, 3]), &v1(vec![2i64, -4])).unwrap();
        assert_eq!(get::<i64>(&mul), arr1(&[-2i64, -12]).into_dyn());
        let mul = binary(BinaryOp::Mul, &v1(vec![200u8]), &v1(vec![2u8])).unwrap();
        assert_eq!(get::<u8>(&mul), arr1(&[144u8]).into_dyn());
        // Comparisons and max/min in the native type (u64 above 2^53).
        let (x, y) = (v1(vec![u64::MAX, 1, 7]), v1(vec![u64::MAX - 1, 2, 7]));
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Gt, &x, &y).unwrap()),
            arr1(&[true, false, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Ne, &x, &y).unwrap()),
            arr1(&[true, true, false]).into_dyn()
        );
        assert_eq!(
            get::<u64>(&binary(BinaryOp::Minimum, &x, &y).unwrap()),
            arr1(&[u64::MAX - 1, 1, 7]).into_dyn()
        );
        assert_eq!(
            get::<u64>(&binary(BinaryOp::Maximum, &x, &y).unwrap()),
            arr1(&[u64::MAX, 2, 7]).into_dyn()
        );
        // Bitwise on integers, logical on bools.
        let (p, q) = (v1(vec![0b1100i16, -1]), v1(vec![0b1010i16, 6]));
        assert_eq!(
            get::<i16>(&binary(BinaryOp::And, &p, &q).unwrap()),
            arr1(&[0b1000i16, 6]).into_dyn()
        );
        assert_eq!(
            get::<i16>(&binary(BinaryOp::Or, &p, &q).unwrap()),
            arr1(&[0b1110i16, -1]).into_dyn()
        );
        assert_eq!(
            get::<i16>(&binary(BinaryOp::Xor, &p, &q).unwrap()),
            arr1(&[0b0110i16, -7]).into_dyn()
        );
        let (s, t) = (
            v1(vec![true, true, false, false]),
            v1(vec![true, false, true, false]),
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::And, &s, &t).unwrap()),
            arr1(&[true, false, false, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Or, &s, &t).unwrap()),
            arr1(&[true, true, true, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Xor, &s, &t).unwrap()),
            arr1(&[false, true, true, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Maximum, &s, &t).unwrap()),
            arr1(&[true, true, true, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Minimum, &s, &t).unwrap()),
            arr1(&[true, false, false, false]).into_dyn()
        );
        assert_eq!(
            get::<bool>(&binary(BinaryOp::Lt, &s, &t).unwrap()),
            arr1(&[false, false, true, false]).into_dyn()
        );
        // Bool arithmetic runs on int8 (documented deviation from NumPy).
        assert_eq!(
            get::<i8>(&binary(BinaryOp::Add, &s, &t).unwrap()),
            arr1(&[2i8, 1, 1, 0]).into_dyn()
        );
        assert_eq!(
            get::<i8>(&binary(BinaryOp::Sub, &s, &t).unwrap()),
            arr1(&[0i8, 1, -1, 0]).into_dyn()
        );
        // Mixed dtypes are cast to the operand dtype inside `binary`.
        let m = binary(BinaryOp::Add, &v1(vec![-1i8, 100]), &v1(vec![255u8, 200])).unwrap();
        assert_eq!(get::<i16>(&m), arr1(&[254i16, 300]).into_dyn());
        let d = binary(BinaryOp::Div, &v1(vec![7i32, -1]), &v1(vec![2i32, 0])).unwrap();
        assert_eq!(get::<f64>(&d), arr1(&[3.5, f64::NEG_INFINITY]).into_dyn());
        assert!(matches!(
            binary(BinaryOp::Xor, &v1(vec![1.0f64]), &v1(vec![1i8])),
            Err(Error::UnsupportedDType {
                op: "bitwise_xor",
                dtype: F64
            })
        ));
    }

    #[test]
    fn integer_pow() {
        let base = v1(vec![2i64, 3, -2, 0, 1, -1, -1, 5, 0, 2]);
        let exp = v1(vec![10i64, 4, 3, 0, -5, -3, -4, -2, -1, 62]);
        let got = get::<i64>(&binary(BinaryOp::Pow, &base, &exp).unwrap());
        assert_eq!(
            got,
            arr1(&[1024i64, 81, -8, 1, 1, -1, 1, 0, 0, 1 << 62]).into_dyn()
        );
        let wrap =
            get::<i8>(&binary(BinaryOp::Pow, &v1(vec![2i8, -2, 3]), &v1(vec![7i8, 7, 5])).unwrap());
        assert_eq!(wrap, arr1(&[-128i8, -128, -13]).into_dyn()); // 243 wraps to -13
        let u =
            get::<u8>(&binary(BinaryOp::Pow, &v1(vec![3u8, 2, 0]), &v1(vec![6u8, 8, 0])).unwrap());
        assert_eq!(u, arr1(&[217u8, 0, 1]).into_dyn());
        let big =
            get::<u64>(&binary(BinaryOp::Pow, &v1(vec![2u64, 3]), &blk(&[], vec![64u64])).unwrap());
        assert_eq!(big, arr1(&[0u64, 3u64.wrapping_pow(64)]).into_dyn());
    }

    #[test]
    fn float_pow_fast_paths_match_powf() {
        let x: Vec<f64> = vec![0.3, 1.7, 2.5, 10.0, 0.0, 1e-3, 7.0, -1.5];
        let xb = v1(x.clone());
        for e in [
            2.0, 3.0, 0.5, -1.0, 1.0, 0.0, 5.0, -3.0, 16.0, 17.0, 2.5, -0.5,
        ] {
            for shape in [&[][..], &[1][..], &[1, 1][..]] {
                let eb = blk(shape, vec![e]);
                let got = binary(BinaryOp::Pow, &xb, &eb).unwrap();
                let want_shape: Vec<usize> = if shape.len() == 2 {
                    vec![1, 8]
                } else {
                    vec![8]
                };
                assert_eq!(got.shape(), &want_shape[..]);
                for (g, &v) in got.to_f64_vec().iter().zip(&x) {
                    let w = v.powf(e);
                    let ok = same_f64(*g, w) || (g - w).abs() <= 1e-14 * w.abs();
                    assert!(ok, "{v} ** {e} = {g}, powf gives {w}");
                }
            }
            let got32 = binary(
                BinaryOp::Pow,
                &xb.clone().astype(F32),
                &blk(&[], vec![e as f32]),
            )
            .unwrap();
            assert_eq!(got32.dtype(), F32);
            for (g, &v) in got32.to_f64_vec().iter().zip(&x) {
                let w = (v as f32).powf(e as f32) as f64;
                assert!(
                    same_f64(*g, w) || (g - w).abs() <= 1e-6 * w.abs(),
                    "f32 {v} ** {e} = {g}, want {w}"
                );
            }
        }
        // NaN ** 0 is 1, as powf says; an elementwise exponent uses powf.
        let n = binary(BinaryOp::Pow, &v1(vec![f64::NAN]), &blk(&[], vec![0.0])).unwrap();
        assert_eq!(n.to_f64_vec(), vec![1.0]);
        let e = v1(vec![2.0, 0.5, -1.0, 3.3]);
        let b = v1(vec![3.0, 4.0, 8.0, 1.1]);
        let got = binary(BinaryOp::Pow, &b, &e).unwrap().to_f64_vec();
        assert_eq!(got, vec![9.0, 2.0, 0.125, 1.1f64.powf(3.3)]);
        // Scalar base, array exponent.
        let got = binary(BinaryOp::Pow, &blk(&[], vec![2.0]), &e)
            .unwrap()
            .to_f64_vec();
        assert_eq!(got, vec![4.0, 2f64.sqrt(), 0.5, 2f64.powf(3.3)]);
    }

    #[test]
    fn python_floor_division_and_modulo() {
        let fd = |a: i32, b: i32| {
            get::<i32>(&binary(BinaryOp::FloorDiv, &v1(vec![a]), &v1(vec![b])).unwrap())[[0]]
        };
        let md = |a: i32, b: i32| {
            get::<i32>(&binary(BinaryOp::Rem, &v1(vec![a]), &v1(vec![b])).unwrap())[[0]]
        };
        assert_eq!((fd(-7, 2), md(-7, 2)), (-4, 1));
        assert_eq!((fd(7, -2), md(7, -2)), (-4, -1));
        assert_eq!((fd(7, 0), md(7, 0)), (0, 0));
        let ff = |a: f64, b: f64| {
            binary(BinaryOp::FloorDiv, &v1(vec![a]), &v1(vec![b]))
                .unwrap()
                .to_f64_vec()[0]
        };
        let fm = |a: f64, b: f64| {
            binary(BinaryOp::Rem, &v1(vec![a]), &v1(vec![b]))
                .unwrap()
                .to_f64_vec()[0]
        };
        assert_eq!((ff(-7.5, 2.0), fm(-7.5, 2.0)), (-4.0, 0.5));
        let fm32 = binary(
            BinaryOp::Rem,
            &v1(vec![-7.5f32, 7.0]),
            &v1(vec![2.0f32, -2.0]),
        )
        .unwrap();
        assert_eq!(get::<f32>(&fm32), arr1(&[0.5f32, -1.0]).into_dyn());
        // Unsigned: plain division, zero divisor gives 0.
        let u = binary(BinaryOp::FloorDiv, &v1(vec![7u32, 9]), &v1(vec![2u32, 0])).unwrap();
        assert_eq!(get::<u32>(&u), arr1(&[3u32, 0]).into_dyn());
        let u = binary(BinaryOp::Rem, &v1(vec![7u8, 9]), &v1(vec![2u8, 0])).unwrap();
        assert_eq!(get::<u8>(&u), arr1(&[1u8, 0]).into_dyn());
    }

    #[test]
    fn divmod_matches_numpy_tables() {
        let (a, b): (Vec<f64>, Vec<f64>) = FLOAT_DIVMOD.iter().map(|r| (r.0, r.1)).unzip();
        let (ab, bb) = (v1(a), v1(b));
        let q = binary(BinaryOp::FloorDiv, &ab, &bb).unwrap().to_f64_vec();
        let m = binary(BinaryOp::Rem, &ab, &bb).unwrap().to_f64_vec();
        for (i, r) in FLOAT_DIVMOD.iter().enumerate() {
            assert!(
                same_f64(q[i], r.2),
                "{} // {} = {}, NumPy {}",
                r.0,
                r.1,
                q[i],
                r.2
            );
            assert!(
                same_f64(m[i], r.3),
                "{} % {} = {}, NumPy {}",
                r.0,
                r.1,
                m[i],
                r.3
            );
        }
        let (a, b): (Vec<i32>, Vec<i32>) = INT_DIVMOD.iter().map(|r| (r.0, r.1)).unzip();
        let (ab, bb) = (v1(a), v1(b));
        let q = get::<i32>(&binary(BinaryOp::FloorDiv, &ab, &bb).unwrap());
        let m = get::<i32>(&binary(BinaryOp::Rem, &ab, &bb).unwrap());
        for (i, r) in INT_DIVMOD.iter().enumerate() {
            assert_eq!((q[[i]], m[[i]]), (r.2, r.3), "{} divmod {}", r.0, r.1);
        }
    }

    #[test]
    fn nan_handling() {
        let nan = f64::NAN;
        let a = v1(vec![nan, 1.0, 2.0, nan, -0.0]);
        let b = v1(vec![1.0, nan, 3.0, nan, 0.0]);
        let mx = binary(BinaryOp::Maximum, &a, &b).unwrap().to_f64_vec();
        let mn = binary(BinaryOp::Minimum, &a, &b).unwrap().to_f64_vec();
        assert!(mx[0].is_nan() && mx[1].is_nan() && mx[3].is_nan());
        assert!(mn[0].is_nan() && mn[1].is_nan() && mn[3].is_nan());
        assert_eq!((mx[2], mn[2]), (3.0, 2.0));
        let eq = get::<bool>(&binary(BinaryOp::Eq, &a, &b).unwrap());
        let ne = get::<bool>(&binary(BinaryOp::Ne, &a, &b).unwrap());
        let lt = get::<bool>(&binary(BinaryOp::Lt, &a, &b).unwrap());
        assert_eq!(eq, arr1(&[false, false, false, false, true]).into_dyn());
        assert_eq!(ne, arr1(&[true, true, true, true, false]).into_dyn());
        assert_eq!(lt, arr1(&[false, false, true, false, false]).into_dyn());
        let s = binary(BinaryOp::Add, &a, &blk(&[], vec![1.0]))
            .unwrap()
            .to_f64_vec();
        assert!(s[0].is_nan() && s[3].is_nan());
    }

    fn arange(shape: &[usize], start: f64) -> ArrayD<f64> {
        let n: usize = shape.iter().product();
        ArrayD::from_shape_vec(
            IxDyn(shape),
            (0..n).map(|i| start + i as f64 * 0.5).collect(),
        )
        .unwrap()
    }

    #[test]
    fn broadcasting_matches_ndarray() {
        let shapes: &[(&[usize], &[usize])] = &[
            (&[3, 1, 2], &[1, 4, 2]),
            (&[4], &[3, 1]),
            (&[2, 3], &[3]),
            (&[], &[2, 3]),
            (&[2, 3], &[]),
            (&[], &[]),
            (&[1, 1, 1], &[5]),
            (&[5, 1], &[1]),
            (&[6, 1, 3], &[1, 6, 3]),
            (&[2, 1, 4, 1], &[3, 1, 5]),
            (&[1, 3], &[2, 0, 1]),
            (&[7, 5], &[7, 5]),
            (&[1, 1], &[1]),
        ];
        for &(sa, sb) in shapes {
            let (a, b) = (arange(sa, 1.0), arange(sb, -3.0));
            let (ba, bb) = (Block::from(a.clone()), Block::from(b.clone()));
            let got = binary(BinaryOp::Sub, &ba, &bb).unwrap();
            assert_eq!(got, Block::from(&a - &b), "{sa:?} - {sb:?}");
            let got = binary(BinaryOp::Lt, &ba, &bb).unwrap();
            let want = ndarray::Zip::from(&a.broadcast(got.shape()).unwrap())
                .and(&b.broadcast(got.shape()).unwrap())
                .map_collect(|&p, &q| p < q);
            assert_eq!(got, Block::from(want), "{sa:?} < {sb:?}");
        }
        let err = binary(
            BinaryOp::Add,
            &Block::from(arange(&[3], 0.0)),
            &Block::from(arange(&[2, 4], 0.0)),
        );
        match err {
            Err(Error::Shape { op, left, right }) => {
                assert_eq!((op, left, right), ("add", vec![3u64], vec![2u64, 4]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pairwise_difference_and_non_standard_inputs() {
        // x[:, None, :] - x[None, :, :], as the Lennard-Jones example builds it.
        let x = arange(&[5, 3], 0.25);
        let xa = x.clone().into_shape_with_order(IxDyn(&[5, 1, 3])).unwrap();
        let xb = x.clone().into_shape_with_order(IxDyn(&[1, 5, 3])).unwrap();
        let got = get::<f64>(&binary(BinaryOp::Sub, &Block::from(xa), &Block::from(xb)).unwrap());
        for i in 0..5 {
            for j in 0..5 {
                for k in 0..3 {
                    assert_eq!(got[[i, j, k]], x[[i, k]] - x[[j, k]]);
                }
            }
        }
        assert!(got.is_standard_layout());
        // Transposed (Fortran-order) inputs give standard-layout outputs.
        let t = arange(&[4, 3], 0.0).reversed_axes();
        let u = arange(&[3, 4], 10.0);
        let got = get::<f64>(
            &binary(
                BinaryOp::Mul,
                &Block::from(t.clone()),
                &Block::from(u.clone()),
            )
            .unwrap(),
        );
        assert!(got.is_standard_layout());
        assert_eq!(got, &t * &u);
        let got = get::<f64>(
            &binary(BinaryOp::Add, &Block::from(t.clone()), &blk(&[], vec![1.0])).unwrap(),
        );
        assert!(got.is_standard_layout());
        assert_eq!(got, &t + 1.0);
        let got = get::<f64>(&unary(UnaryOp::Neg, &Block::from(t.clone())).unwrap());
        assert!(got.is_standard_layout());
        assert_eq!(got, -&t);
        let row = arange(&[4], 0.0);
        let got = get::<f64>(
            &binary(
                BinaryOp::Sub,
                &Block::from(t.clone()),
                &Block::from(row.clone()),
            )
            .unwrap(),
        );
        assert_eq!(got, &t - &row);
    }

    #[test]
    fn where_broadcasts_three_ways() {
        let c = arr2(&[[true], [false], [true]]).into_dyn();
        let a = arange(&[1, 4], 1.0);
        let b = arr0(-1.0f64).into_dyn();
        let got = get::<f64>(
            &where_(
                &Block::from(c.clone()),
                &Block::from(a.clone()),
                &Block::from(b.clone()),
            )
            .unwrap(),
        );
        assert_eq!(got.shape(), &[3, 4]);
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(got[[i, j]], if c[[i, 0]] { a[[0, j]] } else { -1.0 });
            }
        }
        // Equal shapes, mixed dtypes promote.
        let c = v1(vec![true, false, false]);
        let got = where_(&c, &v1(vec![1i32, 2, 3]), &v1(vec![0.5f32, 1.5, 2.5])).unwrap();
        assert_eq!(get::<f64>(&got), arr1(&[1.0, 1.5, 2.5]).into_dyn());
        // Broadcast along the last axis with a contiguous condition.
        let c = Block::from(arr2(&[[true, false], [false, true]]).into_dyn());
        let got = where_(&c, &v1(vec![1u8, 2]), &blk(&[2, 1], vec![7u8, 8])).unwrap();
        assert_eq!(get::<u8>(&got), arr2(&[[1u8, 7], [8, 2]]).into_dyn());
        assert!(matches!(
            where_(&v1(vec![1i8]), &v1(vec![1.0]), &v1(vec![2.0])),
            Err(Error::UnsupportedDType { dtype: I8, .. })
        ));
        assert!(matches!(
            where_(&v1(vec![true, false]), &v1(vec![1.0; 3]), &v1(vec![2.0])),
            Err(Error::Shape { .. })
        ));
        let empty = where_(
            &blk::<bool>(&[0, 2], vec![]),
            &v1(vec![1.0, 2.0]),
            &blk(&[], vec![0.0]),
        )
        .unwrap();
        assert_eq!(empty.shape(), &[0, 2]);
    }

    #[test]
    fn clip_casts_bounds_and_propagates_nan() {
        let nan = f64::NAN;
        let x = v1(vec![-3.0, 0.5, 9.0, nan]);
        let got = clip(&x, Some(-1.0), Some(2.0)).unwrap().to_f64_vec();
        assert_eq!(&got[..3], &[-1.0, 0.5, 2.0]);
        assert!(got[3].is_nan());
        assert_eq!(
            clip(&x, Some(0.0), None).unwrap().to_f64_vec()[..3],
            [0.0, 0.5, 9.0]
        );
        assert_eq!(
            clip(&x, None, Some(1.0)).unwrap().to_f64_vec()[..3],
            [-3.0, 0.5, 1.0]
        );
        assert_eq!(
            clip(&x, None, None).unwrap().to_f64_vec()[..3],
            [-3.0, 0.5, 9.0]
        );
        assert!(clip(&x, Some(nan), None)
            .unwrap()
            .to_f64_vec()
            .iter()
            .all(|v| v.is_nan()));
        // lo > hi gives hi, as minimum(maximum(x, lo), hi) does.
        assert_eq!(
            clip(&x, Some(5.0), Some(1.0)).unwrap().to_f64_vec()[..3],
            [1.0, 1.0, 1.0]
        );
        let i = v1(vec![-100i8, 0, 1, 2, 100]);
        let got = get::<i8>(&clip(&i, Some(0.9), Some(1.5)).unwrap());
        assert_eq!(got, arr1(&[0i8, 0, 1, 1, 1]).into_dyn());
        let got = get::<i8>(&clip(&i, Some(-1000.0), Some(1000.0)).unwrap());
        assert_eq!(got, arr1(&[-100i8, 0, 1, 2, 100]).into_dyn());
        let f = clip(&v1(vec![1.5f32, -7.0]), Some(-2.0), Some(1.0)).unwrap();
        assert_eq!(get::<f32>(&f), arr1(&[1.0f32, -2.0]).into_dyn());
    }

    /// Same dtype, shape and bits (NaN equals NaN).
    fn same_block(a: &Block, b: &Block) -> bool {
        a.dtype() == b.dtype() && a.shape() == b.shape() && a.to_ne_bytes() == b.to_ne_bytes()
    }

    fn data_ptr(b: &Block) -> usize {
        crate::with_block!(b, a, T => a.as_ptr() as usize)
    }

    #[test]
    fn owned_variants_match_and_reuse_buffers() {
        let shapes: &[(&[usize], &[usize])] = &[
            (&[3, 4], &[3, 4]),
            (&[3, 4], &[4]),
            (&[3, 4], &[3, 1]),
            (&[4], &[3, 1]),
            (&[1, 4], &[3, 1]),
            (&[], &[2, 3]),
            (&[3], &[1, 1]),
            (&[1, 1], &[3]),
            (&[], &[]),
            (&[6, 1, 3], &[1, 6, 3]),
            (&[0, 3], &[3]),
        ];
        let ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Div,
            BinaryOp::Pow,
            BinaryOp::Rem,
            BinaryOp::Maximum,
            BinaryOp::Lt,
            BinaryOp::Ge,
        ];
        for &(sa, sb) in shapes {
            for dt in [F64, F32, I32, U8] {
                let a = Block::from(arange(sa, 1.0)).astype(dt);
                let b = Block::from(arange(sb, 0.5)).astype(dt);
                for op in ops {
                    let want = binary(op, &a, &b).unwrap();
                    let got = binary_owned(op, a.clone(), b.clone()).unwrap();
                    assert!(
                        same_block(&got, &want),
                        "{op:?} {dt} {sa:?} {sb:?}: {got:?} vs {want:?}"
                    );
                    let got_ptr = data_ptr(&got);
                    let got = got.into_standard_layout();
                    assert_eq!(data_ptr(&got), got_ptr, "owned result is standard layout");
                }
            }
        }
        // The buffer of `a` (full shape) or of `b` is reused.
        let a = Block::from(arange(&[3, 4], 1.0));
        let pa = data_ptr(&a);
        let r = binary_owned(BinaryOp::Sub, a, Block::from(arange(&[4], 0.0))).unwrap();
        assert_eq!(data_ptr(&r), pa);
        let b = Block::from(arange(&[3, 4], 1.0));
        let pb = data_ptr(&b);
        let r = binary_owned(BinaryOp::Mul, blk(&[], vec![4.0]), b).unwrap();
        assert_eq!(data_ptr(&r), pb);
        assert_eq!(
            r,
            binary(
                BinaryOp::Mul,
                &blk(&[], vec![4.0]),
                &Block::from(arange(&[3, 4], 1.0))
            )
            .unwrap()
        );
        let x = Block::from(arange(&[5], 0.0));
        let px = data_ptr(&x);
        let r = binary_owned(BinaryOp::Pow, x, blk(&[], vec![3.0])).unwrap();
        assert_eq!(data_ptr(&r), px);
        // A transposed owned input is not overwritten, and the result is right.
        let t = arange(&[4, 3], 0.0).reversed_axes();
        let got = binary_owned(
            BinaryOp::Add,
            Block::from(t.clone()),
            Block::from(t.clone()),
        )
        .unwrap();
        assert_eq!(get::<f64>(&got), &t + &t);
        assert!(get::<f64>(&got).is_standard_layout());
        // Unary and clip.
        for op in [
            UnaryOp::Neg,
            UnaryOp::Abs,
            UnaryOp::Sqrt,
            UnaryOp::Square,
            UnaryOp::IsNan,
            UnaryOp::Floor,
            UnaryOp::Not,
        ] {
            for dt in [F64, I16, Bool] {
                let x = Block::from(arange(&[2, 3], -1.0)).astype(dt);
                match unary(op, &x) {
                    Ok(want) => assert!(
                        same_block(&unary_owned(op, x).unwrap(), &want),
                        "{op:?} {dt}"
                    ),
                    Err(_) => assert!(unary_owned(op, x).is_err()),
                }
            }
        }
        let x = Block::from(arange(&[7], -1.0));
        let px = data_ptr(&x);
        let r = unary_owned(UnaryOp::Exp, x).unwrap();
        assert_eq!(data_ptr(&r), px);
        assert_eq!(
            r,
            unary(UnaryOp::Exp, &Block::from(arange(&[7], -1.0))).unwrap()
        );
        let x = Block::from(arange(&[7], -1.0));
        let want = clip(&x, Some(0.0), Some(1.5)).unwrap();
        assert_eq!(clip_owned(x, Some(0.0), Some(1.5)).unwrap(), want);
        assert!(matches!(
            binary_owned(BinaryOp::Add, v1(vec![1.0; 2]), v1(vec![1.0; 3])),
            Err(Error::Shape { .. })
        ));
    }

    /// Two shapes that broadcast together: a common shape with axes
    /// independently set to 1 in either input and leading axes dropped.
    fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (
            proptest::collection::vec((1usize..5, 0u8..3), 0..5),
            0usize..3,
            0usize..3,
        )
            .prop_map(|(axes, da, db)| {
                let a: Vec<usize> = axes
                    .iter()
                    .map(|&(n, m)| if m == 1 { 1 } else { n })
                    .collect();
                let b: Vec<usize> = axes
                    .iter()
                    .map(|&(n, m)| if m == 2 { 1 } else { n })
                    .collect();
                let (da, db) = (da.min(a.len()), db.min(b.len()));
                (a[da..].to_vec(), b[db..].to_vec())
            })
    }

    proptest! {
        #[test]
        fn add_mul_sub_match_ndarray((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 200.0 - 100.0
            };
            let a = ArrayD::from_shape_simple_fn(IxDyn(&sa), &mut next);
            let b = ArrayD::from_shape_simple_fn(IxDyn(&sb), &mut next);
            let (ba, bb) = (Block::from(a.clone()), Block::from(b.clone()));
            prop_assert_eq!(binary(BinaryOp::Add, &ba, &bb).unwrap(), Block::from(&a + &b));
            prop_assert_eq!(binary(BinaryOp::Mul, &ba, &bb).unwrap(), Block::from(&a * &b));
            prop_assert_eq!(binary(BinaryOp::Sub, &ba, &bb).unwrap(), Block::from(&a - &b));
            prop_assert_eq!(binary(BinaryOp::Sub, &bb, &ba).unwrap(), Block::from(&b - &a));
            prop_assert_eq!(binary_owned(BinaryOp::Sub, ba.clone(), bb.clone()).unwrap(), Block::from(&a - &b));
            prop_assert_eq!(binary_owned(BinaryOp::Mul, bb, ba).unwrap(), Block::from(&b * &a));
        }
    }

    const FLOAT_DIVMOD: &[(f64, f64, f64, f64)] = &[
        (-7.5, 2.0, -4.0, 0.5),
        (-7.5, -2.0, 3.0, -1.5),
        (-7.5, 0.1, -75.0, 4.163336342344337e-16),
        (-7.5, -0.0, f64::INFINITY, f64::NAN),
        (-7.5, 0.0, f64::NEG_INFINITY, f64::NAN),
        (-7.5, f64::INFINITY, -1.0, f64::INFINITY),
        (-7.5, 1e-300, -7.5e+300, 2.776101039702164e-301),
        (-7.5, 3.0, -3.0, 1.5),
        (-7.5, f64::NEG_INFINITY, 0.0, -7.5),
        (7.5, 2.0, 3.0, 1.5),
        (7.5, -2.0, -4.0, -0.5),
        (7.5, 0.1, 74.0, 0.09999999999999959),
        (7.5, -0.0, f64::NEG_INFINITY, f64::NAN),
        (7.5, 0.0, f64::INFINITY, f64::NAN),
        (7.5, f64::INFINITY, 0.0, 7.5),
        (7.5, 1e-300, 7.5e+300, 7.223898960297836e-301),
        (7.5, 3.0, 2.0, 1.5),
        (7.5, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
        (-7.0, 2.0, -4.0, 1.0),
        (-7.0, -2.0, 3.0, -1.0),
        (-7.0, 0.1, -70.0, 3.885780586188048e-16),
        (-7.0, -0.0, f64::INFINITY, f64::NAN),
        (-7.0, 0.0, f64::NEG_INFINITY, f64::NAN),
        (-7.0, f64::INFINITY, -1.0, f64::INFINITY),
        (-7.0, 1e-300, -7e+300, 7.25769430372202e-301),
        (-7.0, 3.0, -3.0, 2.0),
        (-7.0, f64::NEG_INFINITY, 0.0, -7.0),
        (7.0, 2.0, 3.0, 1.0),
        (7.0, -2.0, -4.0, -1.0),
        (7.0, 0.1, 69.0, 0.09999999999999962),
        (7.0, -0.0, f64::NEG_INFINITY, f64::NAN),
        (7.0, 0.0, f64::INFINITY, f64::NAN),
        (7.0, f64::INFINITY, 0.0, 7.0),
        (7.0, 1e-300, 7e+300, 2.7423056962779803e-301),
        (7.0, 3.0, 2.0, 1.0),
        (7.0, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
        (0.0, 2.0, 0.0, 0.0),
        (0.0, -2.0, -0.0, -0.0),
        (0.0, 0.1, 0.0, 0.0),
        (0.0, -0.0, f64::NAN, f64::NAN),
        (0.0, 0.0, f64::NAN, f64::NAN),
        (0.0, f64::INFINITY, 0.0, 0.0),
        (0.0, 1e-300, 0.0, 0.0),
        (0.0, 3.0, 0.0, 0.0),
        (0.0, f64::NEG_INFINITY, -0.0, -0.0),
        (-0.0, 2.0, -0.0, 0.0),
        (-0.0, -2.0, 0.0, -0.0),
        (-0.0, 0.1, -0.0, 0.0),
        (-0.0, -0.0, f64::NAN, f64::NAN),
        (-0.0, 0.0, f64::NAN, f64::NAN),
        (-0.0, f64::INFINITY, -0.0, 0.0),
        (-0.0, 1e-300, -0.0, 0.0),
        (-0.0, 3.0, -0.0, 0.0),
        (-0.0, f64::NEG_INFINITY, 0.0, -0.0),
        (1e+300, 2.0, 5e+299, 0.0),
        (1e+300, -2.0, -5e+299, -0.0),
        (1e+300, 0.1, 1e+301, 0.00011215964963492975),
        (1e+300, -0.0, f64::NEG_INFINITY, f64::NAN),
        (1e+300, 0.0, f64::INFINITY, f64::NAN),
        (1e+300, f64::INFINITY, 0.0, 1e+300),
        (1e+300, 1e-300, f64::INFINITY, 4.891554850853602e-301),
        (1e+300, 3.0, 3.3333333333333335e+299, 0.0),
        (1e+300, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
        (0.1, 2.0, 0.0, 0.1),
        (0.1, -2.0, -1.0, -1.9),
        (0.1, 0.1, 1.0, 0.0),
        (0.1, -0.0, f64::NEG_INFINITY, f64::NAN),
        (0.1, 0.0, f64::INFINITY, f64::NAN),
        (0.1, f64::INFINITY, 0.0, 0.1),
        (0.1, 1e-300, 1e+299, 1.353654169526866e-301),
        (0.1, 3.0, 0.0, 0.1),
        (0.1, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
        (-0.3, 2.0, -1.0, 1.7),
        (-0.3, -2.0, 0.0, -0.3),
        (-0.3, 0.1, -3.0, 2.7755575615628914e-17),
        (-0.3, -0.0, f64::INFINITY, f64::NAN),
        (-0.3, 0.0, f64::NEG_INFINITY, f64::NAN),
        (-0.3, f64::INFINITY, -1.0, f64::INFINITY),
        (
            -0.3,
            1e-300,
            -2.9999999999999998e+299,
            8.225715075033877e-301,
        ),
        (-0.3, 3.0, -1.0, 2.7),
        (-0.3, f64::NEG_INFINITY, 0.0, -0.3),
        (f64::INFINITY, 2.0, f64::NAN, f64::NAN),
        (f64::INFINITY, -2.0, f64::NAN, f64::NAN),
        (f64::INFINITY, 0.1, f64::NAN, f64::NAN),
        (f64::INFINITY, -0.0, f64::NEG_INFINITY, f64::NAN),
        (f64::INFINITY, 0.0, f64::INFINITY, f64::NAN),
        (f64::INFINITY, f64::INFINITY, f64::NAN, f64::NAN),
        (f64::INFINITY, 1e-300, f64::NAN, f64::NAN),
        (f64::INFINITY, 3.0, f64::NAN, f64::NAN),
        (f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::NAN),
        (f64::NAN, 2.0, f64::NAN, f64::NAN),
        (f64::NAN, -2.0, f64::NAN, f64::NAN),
        (f64::NAN, 0.1, f64::NAN, f64::NAN),
        (f64::NAN, -0.0, f64::NAN, f64::NAN),
        (f64::NAN, 0.0, f64::NAN, f64::NAN),
        (f64::NAN, f64::INFINITY, f64::NAN, f64::NAN),
        (f64::NAN, 1e-300, f64::NAN, f64::NAN),
        (f64::NAN, 3.0, f64::NAN, f64::NAN),
        (f64::NAN, f64::NEG_INFINITY, f64::NAN, f64::NAN),
        (5.0, 2.0, 2.0, 1.0),
        (5.0, -2.0, -3.0, -1.0),
        (5.0, 0.1, 49.0, 0.09999999999999973),
        (5.0, -0.0, f64::NEG_INFINITY, f64::NAN),
        (5.0, 0.0, f64::INFINITY, f64::NAN),
        (5.0, f64::INFINITY, 0.0, 5.0),
        (
            5.0,
            1e-300,
            4.9999999999999997e+300,
            4.8159326401985574e-301,
        ),
        (5.0, 3.0, 1.0, 2.0),
        (5.0, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
    ];
    const INT_DIVMOD: &[(i32, i32, i32, i32)] = &[
        (-7, 2, -4, 1),
        (-7, -2, 3, -1),
        (-7, 0, 0, 0),
        (-7, -1, 7, 0),
        (-7, 3, -3, 2),
        (-7, -5, 1, -2),
        (7, 2, 3, 1),
        (7, -2, -4, -1),
        (7, 0, 0, 0),
        (7, -1, -7, 0),
        (7, 3, 2, 1),
        (7, -5, -2, -3),
        (0, 2, 0, 0),
        (0, -2, 0, 0),
        (0, 0, 0, 0),
        (0, -1, 0, 0),
        (0, 3, 0, 0),
        (0, -5, 0, 0),
        (-2147483648, 2, -1073741824, 0),
        (-2147483648, -2, 1073741824, 0),
        (-2147483648, 0, 0, 0),
        (-2147483648, -1, -2147483648, 0),
        (-2147483648, 3, -715827883, 1),
        (-2147483648, -5, 429496729, -3),
        (2147483647, 2, 1073741823, 1),
        (2147483647, -2, -1073741824, -1),
        (2147483647, 0, 0, 0),
        (2147483647, -1, -2147483647, 0),
        (2147483647, 3, 715827882, 1),
        (2147483647, -5, -429496730, -3),
        (-1, 2, -1, 1),
        (-1, -2, 0, -1),
        (-1, 0, 0, 0),
        (-1, -1, 1, 0),
        (-1, 3, -1, 2),
        (-1, -5, 0, -1),
        (13, 2, 6, 1),
        (13, -2, -7, -1),
        (13, 0, 0, 0),
        (13, -1, -13, 0),
        (13, 3, 4, 1),
        (13, -5, -3, -2),
    ];
}
