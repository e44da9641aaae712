//! The float kernels: the [`Float`] trait (the math the op table's float
//! column calls), NumPy's `divmod`, the `power` fast paths, and the
//! f32/f64 kernels generated from the op table.

use std::borrow::Cow;

use ndarray::ArrayD;

use super::apply::Kernel;
use super::dtype::unsupported;
use super::loops::{broadcast2, map1, map1_same, map2, map2_same, reshaped};
use super::{nan_max, nan_min, BinaryOp, UnaryOp};
use crate::block::{Block, BlockElement};
use crate::dtype::Element;
use crate::error::Result;

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
    fn tan(self) -> Self;
    fn tanh(self) -> Self;
    fn log10(self) -> Self;
    fn log2(self) -> Self;
    fn exp_m1(self) -> Self;
    fn exp2(self) -> Self;
    fn asin(self) -> Self;
    fn acos(self) -> Self;
    fn atan(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn asinh(self) -> Self;
    fn acosh(self) -> Self;
    fn atanh(self) -> Self;
    fn cbrt(self) -> Self;
    fn to_radians(self) -> Self;
    fn to_degrees(self) -> Self;
    fn round_ties_even(self) -> Self;
    fn trunc(self) -> Self;
    fn is_sign_negative(self) -> bool;
    /// NumPy's `sign`: -1, 0 (for either zero) or 1; NaN stays NaN.
    fn sign(self) -> Self;
    fn atan2(self, x: Self) -> Self;
    fn hypot(self, o: Self) -> Self;
    /// NumPy's `npy_logaddexp`, operation for operation.
    fn logaddexp(self, o: Self) -> Self;
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
            #[inline(always)] fn tan(self) -> Self { <$t>::tan(self) }
            #[inline(always)] fn tanh(self) -> Self { <$t>::tanh(self) }
            #[inline(always)] fn log10(self) -> Self { <$t>::log10(self) }
            #[inline(always)] fn log2(self) -> Self { <$t>::log2(self) }
            #[inline(always)] fn exp_m1(self) -> Self { <$t>::exp_m1(self) }
            #[inline(always)] fn exp2(self) -> Self { <$t>::exp2(self) }
            #[inline(always)] fn asin(self) -> Self { <$t>::asin(self) }
            #[inline(always)] fn acos(self) -> Self { <$t>::acos(self) }
            #[inline(always)] fn atan(self) -> Self { <$t>::atan(self) }
            #[inline(always)] fn sinh(self) -> Self { <$t>::sinh(self) }
            #[inline(always)] fn cosh(self) -> Self { <$t>::cosh(self) }
            #[inline(always)] fn asinh(self) -> Self { <$t>::asinh(self) }
            #[inline(always)] fn acosh(self) -> Self { <$t>::acosh(self) }
            #[inline(always)] fn atanh(self) -> Self { <$t>::atanh(self) }
            #[inline(always)] fn cbrt(self) -> Self { <$t>::cbrt(self) }
            #[inline(always)] fn to_radians(self) -> Self { <$t>::to_radians(self) }
            #[inline(always)] fn to_degrees(self) -> Self { <$t>::to_degrees(self) }
            #[inline(always)] fn round_ties_even(self) -> Self { <$t>::round_ties_even(self) }
            #[inline(always)] fn trunc(self) -> Self { <$t>::trunc(self) }
            #[inline(always)] fn is_sign_negative(self) -> bool { <$t>::is_sign_negative(self) }
            #[inline(always)] fn atan2(self, x: Self) -> Self { <$t>::atan2(self, x) }
            #[inline(always)] fn hypot(self, o: Self) -> Self { <$t>::hypot(self, o) }
            #[inline(always)] fn logaddexp(self, o: Self) -> Self {
                if self == o {
                    return self + std::f64::consts::LN_2 as $t;
                }
                let d = self - o;
                if d > 0.0 {
                    self + (-d).exp().ln_1p()
                } else if d <= 0.0 {
                    o + d.exp().ln_1p()
                } else {
                    d
                }
            }
            #[inline(always)] fn sign(self) -> Self {
                if self > 0.0 { 1.0 } else if self < 0.0 { -1.0 } else if self == 0.0 { 0.0 } else { self }
            }
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
pub(crate) fn float_divmod<T: Float>(a: T, b: T) -> (T, T) {
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

/// The f32/f64 kernels from the op tables' float column.
macro_rules! float_unary_kernel {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident,
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        fn float_unary<T: Float>(op: UnaryOp, a: Cow<'_, ArrayD<T>>) -> Result<Block> {
            match op {
                $(UnaryOp::$v => unary_arm!(op, a, T, $rule, [$($ff)?]),)*
            }
        }
    };
}

macro_rules! float_binary_kernel {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident, tile [$($tile:path)?],
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        fn float_binary<T: Float>(
            op: BinaryOp,
            a: Cow<'_, ArrayD<T>>,
            b: Cow<'_, ArrayD<T>>,
        ) -> Result<Block> {
            match op {
                $(BinaryOp::$v => binary_arm!(op, a, b, T, $rule, [$($tile)?], [$($ff)?]),)*
            }
        }

        /// A binary op's scalar function on every pair of elements, without
        /// the row's `tile` kernel (no exponent fast paths).
        pub(super) fn float_binary_each<T: Float>(
            op: BinaryOp,
            a: Cow<'_, ArrayD<T>>,
            b: Cow<'_, ArrayD<T>>,
        ) -> Result<Block> {
            match op {
                $(BinaryOp::$v => binary_arm!(op, a, b, T, $rule, [], [$($ff)?]),)*
            }
        }
    };
}

unary_table!(float_unary_kernel);
binary_table!(float_binary_kernel);

/// `a ** b`, with fast paths for a one-element exponent; `powf` (the
/// table's scalar function) for every other exponent.
fn float_pow<T: Float>(
    a: Cow<'_, ArrayD<T>>,
    b: Cow<'_, ArrayD<T>>,
    powf: impl Fn(T, T) -> T,
) -> Result<ArrayD<T>> {
    let n = BinaryOp::Pow.name();
    let e = match b.iter().next() {
        Some(&e) if b.len() == 1 => e.to_f64(),
        _ => return map2_same(n, a, b, powf),
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
