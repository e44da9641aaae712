//! The integer and bool kernels: the `Int` trait (wrapping arithmetic and
//! Python's division, signed and unsigned: the math the op table's int
//! column calls) and the kernels generated from the op table's int and
//! bool columns.

use std::borrow::Cow;

use ndarray::ArrayD;

use super::apply::Kernel;
use super::dtype::unsupported;
use super::loops::{map1, map1_same, map2, map2_same};
use super::{nan_max, nan_min, BinaryOp, UnaryOp};
use crate::block::{Block, BlockElement};
use crate::dtype::Element;
use crate::error::Result;

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
    /// NumPy's `sign`: -1, 0 or 1.
    fn isign(self) -> Self;
    /// C's `%` (the dividend's sign); 0 for a zero divisor, wrapping for `MIN % -1`.
    fn c_rem(self, o: Self) -> Self;
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
        #[inline(always)]
        fn c_rem(self, o: Self) -> Self {
            if o == 0 {
                0
            } else {
                self.wrapping_rem(o)
            }
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
            #[inline(always)]
            fn isign(self) -> Self {
                self.signum()
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
            #[inline(always)]
            fn isign(self) -> Self {
                Self::from(self != 0)
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

/// The integer kernels (generic over [`Int`]) and the bool kernels, from
/// the op tables' int and bool columns.
macro_rules! int_bool_unary_kernels {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident,
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        fn int_unary<T: Int>(op: UnaryOp, a: Cow<'_, ArrayD<T>>) -> Result<Block> {
            match op {
                $(UnaryOp::$v => unary_arm!(op, a, T, $rule, [$($fi)?]),)*
            }
        }

        fn bool_unary(op: UnaryOp, a: Cow<'_, ArrayD<bool>>) -> Result<Block> {
            match op {
                $(UnaryOp::$v => unary_arm!(op, a, bool, $rule, [$($fb)?]),)*
            }
        }
    };
}

macro_rules! int_bool_binary_kernels {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident, tile [$($tile:path)?],
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        fn int_binary<T: Int>(
            op: BinaryOp,
            a: Cow<'_, ArrayD<T>>,
            b: Cow<'_, ArrayD<T>>,
        ) -> Result<Block> {
            match op {
                $(BinaryOp::$v => binary_arm!(op, a, b, T, $rule, [], [$($fi)?]),)*
            }
        }

        fn bool_binary(
            op: BinaryOp,
            a: Cow<'_, ArrayD<bool>>,
            b: Cow<'_, ArrayD<bool>>,
        ) -> Result<Block> {
            match op {
                $(BinaryOp::$v => binary_arm!(op, a, b, bool, $rule, [], [$($fb)?]),)*
            }
        }
    };
}

unary_table!(int_bool_unary_kernels);
binary_table!(int_bool_binary_kernels);

impl Kernel for bool {
    fn unary_same(op: UnaryOp, a: Cow<'_, ArrayD<bool>>) -> Result<Block> {
        bool_unary(op, a)
    }

    fn binary_same(
        op: BinaryOp,
        a: Cow<'_, ArrayD<bool>>,
        b: Cow<'_, ArrayD<bool>>,
    ) -> Result<Block> {
        bool_binary(op, a, b)
    }
}
