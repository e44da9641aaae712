//! The dtype rules of the elementwise ops: which dtype a kernel runs on
//! and which it returns, per the op table's [`UnaryRule`]/[`BinaryRule`]
//! column (NumPy 2's rules, with the deviations listed in the parent
//! module), and the casts and typed views the kernels take their inputs
//! through.

use std::borrow::Cow;

use ndarray::ArrayD;

use super::loops::map1;
use super::{BinaryOp, UnaryOp};
use crate::block::{Block, BlockElement};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};

/// How a unary op's result dtype follows from its input's (the op table's
/// `rule` column; [`unary_dtype`] applies it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnaryRule {
    /// The input's dtype, bool included (`absolute`, `floor`, `ceil`).
    Keep,
    /// The input's dtype; bool is refused (`negative`).
    KeepNumeric,
    /// The input's dtype, except bool, which runs on int8 (`square`).
    Arithmetic,
    /// A float whatever the input: f32 and f64 stay, bool and integers of
    /// up to 2 bytes give f32, wider integers f64 (`sqrt`, `sin`, ...).
    Float,
    /// Integers and bool only, keeping the dtype; floats are refused
    /// (`invert`).
    Integral,
    /// Bool, computed on the input's own dtype (`isnan`, `isfinite`).
    Predicate,
}

/// How a binary op's operand and result dtypes follow from its inputs'
/// (the op table's `rule` column; [`binary_dtypes`] applies it). `p` is
/// the inputs' promotion, [`DType::promote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BinaryRule {
    /// Runs on and returns `p`, except that two bools run on int8.
    Arithmetic,
    /// Runs on and returns `p.true_divide()`, a float.
    TrueDivide,
    /// Runs on and returns the float [`UnaryRule::Float`] gives `p`: f32
    /// for f32, bool and the 1- and 2-byte integers (NumPy gives float16
    /// for the 1-byte ones; there is no f16 here), else f64 (`arctan2`,
    /// `hypot`, `logaddexp`, ...).
    Float,
    /// Runs on and returns `p`, bool included (`maximum`, `minimum`).
    Keep,
    /// Runs on `p`, returns bool (the comparisons).
    Compare,
    /// Runs on and returns `p`; refused when `p` is a float (the bitwise
    /// ops).
    Integral,
}

pub(super) fn unsupported(op: &'static str, dtype: DType) -> Error {
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
    Ok(match op.rule() {
        UnaryRule::Keep => input,
        UnaryRule::KeepNumeric if input == Bool => return Err(unsupported(op.name(), input)),
        UnaryRule::KeepNumeric => input,
        UnaryRule::Arithmetic if input == Bool => I8,
        UnaryRule::Arithmetic => input,
        UnaryRule::Integral if input.is_float() => return Err(unsupported(op.name(), input)),
        UnaryRule::Integral => input,
        UnaryRule::Predicate => Bool,
        UnaryRule::Float => float_of(input),
    })
}

/// The float NumPy's float-valued ufuncs give for an input dtype (f32 for
/// the narrow ones, where NumPy gives float16 for 1-byte inputs).
fn float_of(input: DType) -> DType {
    use DType::*;
    match input {
        F64 | I32 | U32 | I64 | U64 => F64,
        F32 | Bool | I8 | U8 | I16 | U16 => F32,
    }
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
    Ok(match op.rule() {
        BinaryRule::Arithmetic => {
            let o = if p == DType::Bool { DType::I8 } else { p };
            (o, o)
        }
        BinaryRule::TrueDivide => (p.true_divide(), p.true_divide()),
        BinaryRule::Float => (float_of(p), float_of(p)),
        BinaryRule::Keep => (p, p),
        BinaryRule::Compare => (p, DType::Bool),
        BinaryRule::Integral => {
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

// ---------------------------------------------------------------------------
// Dtype plumbing.

/// `b` as `dtype`, unchanged when it already is.
pub(super) fn cast(b: Cow<'_, Block>, dtype: DType) -> Cow<'_, Block> {
    if b.dtype() == dtype {
        return b;
    }
    Cow::Owned(
        crate::with_block!(b.as_ref(), a, S => crate::with_dtype!(dtype, T => Block::from(map1(a, |v: S| v.cast::<T>())))),
    )
}

/// The typed array inside `b` (which must hold `T`), still borrowed or owned.
pub(super) fn typed_cow<'b, T: BlockElement>(
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
pub(super) fn typed<'b, T: BlockElement>(op: &'static str, b: &'b Block) -> Result<&'b ArrayD<T>> {
    T::as_array(b).ok_or(Error::DTypeMismatch {
        op,
        index: 1,
        expected: T::DTYPE,
        got: b.dtype(),
    })
}
