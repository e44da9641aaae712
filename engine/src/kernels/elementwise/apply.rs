//! The whole-block entry points: cast the inputs to the dtype the op's
//! rule asks for, then run the (op, dtype) kernel of [`Kernel`], which the
//! op table generates per kind of element (`float.rs`, `int.rs`); plus
//! `where` and `clip`, which are not table ops.

use std::borrow::Cow;

use ndarray::ArrayD;

use super::dtype::{binary_dtypes, cast, typed, typed_cow, unary_dtype, unsupported};
use super::float::float_binary_each;
use super::loops::{map1_same, select3};
use super::{nan_max, nan_min, BinaryOp, UnaryOp, UnaryRule};
use crate::block::{Block, BlockElement};
use crate::dtype::{DType, Element};
use crate::error::Result;

/// The kernels of one element type; `with_dtype!` reaches them once per
/// block. Implemented from the op table in `float.rs` and `int.rs`.
pub(super) trait Kernel: BlockElement {
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
    let src = match op.rule() {
        UnaryRule::Predicate => x.dtype(),
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
/// [`Error::Shape`](crate::error::Error::Shape) when the shapes do not broadcast; as [`binary_dtypes`].
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

/// `a ** b` for an exponent array that is not a scalar: the op table's
/// scalar `power` (`powf`) on every float element, as NumPy's `power` does for two arrays. [`binary`] takes
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
            float_binary_each(op, x, y)
        }
        DType::F64 => {
            let (x, y) = (
                typed_cow::<f64>(op.name(), a)?,
                typed_cow::<f64>(op.name(), b)?,
            );
            float_binary_each(op, x, y)
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
/// [`Error::UnsupportedDType`](crate::error::Error::UnsupportedDType) when `cond` is not bool; [`Error::Shape`](crate::error::Error::Shape)
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
