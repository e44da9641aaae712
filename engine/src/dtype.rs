//! Runtime data types and NumPy's promotion rules.
//!
//! Every array has a [`DType`] known when the expression is built. Kernels
//! are monomorphised over the [`Element`] types and reached through the
//! [`crate::with_block!`] dispatch macro, so a new operation is written once
//! for all dtypes.
//!
//! Promotion follows NumPy 2 (NEP 50): two arrays promote to the smallest
//! type that holds both (`i8 + u8 -> i16`, `i64 + u64 -> f64`,
//! `i32 + f32 -> f64`); a Python-style scalar is *weak* and keeps the array's
//! type when it is of the same kind (`f32_array * 2.0 -> f32`).

use std::fmt;

/// The element type of an array.
///
/// ```
/// use ndstream_engine::DType;
/// assert_eq!(DType::I8.promote(DType::U8), DType::I16);
/// assert_eq!(DType::F32.size(), 4);
/// assert_eq!("float32".parse::<DType>().unwrap(), DType::F32);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

/// The kind of a dtype, as NumPy's `dtype.kind` groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    Bool,
    Unsigned,
    Signed,
    Float,
}

impl DType {
    /// Every dtype, in promotion order within each kind.
    pub const ALL: [DType; 11] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// Bytes of an array of `shape` with this dtype, checked: no array may
    /// hold more than `i64::MAX` bytes (NumPy's limit, `intp`), so every
    /// product of a sub-shape of a valid array fits a `u64` (and an `i64`).
    ///
    /// ```
    /// use ndstream_engine::DType;
    /// assert_eq!(DType::F64.nbytes_of(&[2, 3]).unwrap(), 48);
    /// assert_eq!(DType::F64.nbytes_of(&[0, 1 << 62]).unwrap(), 0);
    /// assert!(DType::F64.nbytes_of(&[1 << 32, 1 << 32]).is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::ArrayTooLarge`](crate::Error::ArrayTooLarge) when the size overflows.
    pub fn nbytes_of(self, shape: &[u64]) -> crate::Result<u64> {
        let too_large = || crate::Error::ArrayTooLarge {
            shape: shape.to_vec(),
            dtype: self,
        };
        if shape.contains(&0) {
            return Ok(0);
        }
        let elems = shape
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n))
            .ok_or_else(too_large)?;
        elems
            .checked_mul(self.size() as u64)
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(too_large)
    }

    /// The kind (bool, unsigned, signed, float).
    pub const fn kind(self) -> Kind {
        match self {
            DType::Bool => Kind::Bool,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => Kind::Unsigned,
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => Kind::Signed,
            DType::F32 | DType::F64 => Kind::Float,
        }
    }

    /// True for `f32` and `f64`.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for signed and unsigned integers (not bool).
    pub const fn is_integer(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Unsigned)
    }

    /// NumPy's name: `float32`, `int64`, `bool`, ...
    pub const fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// NumPy's array-protocol type string without byte order: `f4`, `i8`, `b1`, `u2`.
    pub const fn typestr(self) -> &'static str {
        match self {
            DType::Bool => "b1",
            DType::I8 => "i1",
            DType::I16 => "i2",
            DType::I32 => "i4",
            DType::I64 => "i8",
            DType::U8 => "u1",
            DType::U16 => "u2",
            DType::U32 => "u4",
            DType::U64 => "u8",
            DType::F32 => "f4",
            DType::F64 => "f8",
        }
    }

    /// The smallest dtype both `self` and `other` convert to without loss,
    /// as `numpy.promote_types` gives it.
    pub fn promote(self, other: DType) -> DType {
        use DType::*;
        if self == other {
            return self;
        }
        let (a, b) = if self <= other {
            (self, other)
        } else {
            (other, self)
        };
        match (a.kind(), b.kind()) {
            (Kind::Bool, _) => b,
            (_, Kind::Bool) => a,
            (Kind::Float, Kind::Float) => F64,
            (Kind::Float, _) | (_, Kind::Float) => {
                let (int, float) = if a.is_float() { (b, a) } else { (a, b) };
                match (int.size(), float) {
                    (1 | 2, f) => f,
                    _ => F64,
                }
            }
            (Kind::Signed, Kind::Signed) | (Kind::Unsigned, Kind::Unsigned) => {
                if a.size() >= b.size() {
                    a
                } else {
                    b
                }
            }
            _ => {
                let (s, u) = if a.kind() == Kind::Signed {
                    (a, b)
                } else {
                    (b, a)
                };
                if s.size() > u.size() {
                    s
                } else {
                    match u.size() {
                        1 => I16,
                        2 => I32,
                        4 => I64,
                        _ => F64,
                    }
                }
            }
        }
    }

    /// The dtype of `array op scalar` under NEP 50: a weak scalar of kind
    /// `scalar` keeps the array's dtype unless it is of a higher kind
    /// (an int scalar with a bool array gives int64, a float scalar with an
    /// integer array gives float64).
    pub fn promote_weak(self, scalar: Kind) -> DType {
        match (self.kind(), scalar) {
            (k, s) if s <= k || (k == Kind::Signed && s == Kind::Unsigned) => self,
            (Kind::Unsigned, Kind::Signed) => self,
            (_, Kind::Float) => DType::F64,
            (_, Kind::Signed | Kind::Unsigned) => DType::I64,
            _ => self,
        }
    }

    /// The dtype NumPy gives true division: floats stay, everything else is f64.
    pub fn true_divide(self) -> DType {
        if self.is_float() {
            self
        } else {
            DType::F64
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error from parsing a dtype name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype `{0}` (expected one of bool, int8..int64, uint8..uint64, float32, float64, or i4/f8-style codes)")]
pub struct ParseDTypeError(pub String);

impl std::str::FromStr for DType {
    type Err = ParseDTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches(['<', '>', '|', '=']);
        let d = match t {
            "bool" | "b1" | "?" => DType::Bool,
            "int8" | "i1" => DType::I8,
            "int16" | "i2" | "i16" => DType::I16,
            "int32" | "i4" | "i32" => DType::I32,
            "int64" | "i8" | "i64" => DType::I64,
            "uint8" | "u1" => DType::U8,
            "uint16" | "u2" | "u16" => DType::U16,
            "uint32" | "u4" | "u32" => DType::U32,
            "uint64" | "u8" | "u64" => DType::U64,
            "float32" | "f4" | "f32" => DType::F32,
            "float64" | "f8" | "f64" | "float" | "double" => DType::F64,
            _ => return Err(ParseDTypeError(s.to_string())),
        };
        Ok(d)
    }
}

/// A Rust type that can be an array element.
///
/// Conversions follow C casts, as NumPy's `astype` does: float to int
/// truncates toward zero (saturating here, where NumPy's result is
/// unspecified), anything to bool is `!= 0`.
pub trait Element:
    Copy + Send + Sync + PartialOrd + PartialEq + Default + fmt::Debug + fmt::Display + 'static
{
    /// The runtime dtype of this type.
    const DTYPE: DType;
    /// Convert to f64 (bool: 0 or 1).
    fn to_f64(self) -> f64;
    /// Convert from f64 (C cast semantics).
    fn from_f64(v: f64) -> Self;
    /// Convert to i64 (wrapping for u64 above i64::MAX, truncation for floats).
    fn to_i64(self) -> i64;
    /// Convert from i64 (C cast semantics, wrapping).
    fn from_i64(v: i64) -> Self;
    /// Convert to u64 (wrapping).
    fn to_u64(self) -> u64;
    /// Convert from u64 (wrapping).
    fn from_u64(v: u64) -> Self;
    /// Cast to another element type exactly as NumPy's `astype` would.
    fn cast<U: Element>(self) -> U {
        match U::DTYPE.kind() {
            Kind::Float => U::from_f64(self.to_f64()),
            Kind::Bool => U::from_i64((self.to_f64() != 0.0) as i64),
            Kind::Signed => match Self::DTYPE.kind() {
                Kind::Float => U::from_i64(self.to_f64() as i64),
                _ => U::from_i64(self.to_i64()),
            },
            Kind::Unsigned => match Self::DTYPE.kind() {
                Kind::Float => {
                    let f = self.to_f64();
                    if f < 0.0 {
                        U::from_i64(f as i64)
                    } else {
                        U::from_u64(f as u64)
                    }
                }
                _ => U::from_u64(self.to_u64()),
            },
        }
    }
    /// True if this value is a floating-point NaN.
    fn is_nan(self) -> bool {
        false
    }
}

macro_rules! impl_int {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline]
            fn to_u64(self) -> u64 {
                self as u64
            }
            #[inline]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
        }
    };
}
impl_int!(i8, I8);
impl_int!(i16, I16);
impl_int!(i32, I32);
impl_int!(i64, I64);
impl_int!(u8, U8);
impl_int!(u16, U16);
impl_int!(u32, U32);
impl_int!(u64, U64);

macro_rules! impl_float {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline]
            fn to_u64(self) -> u64 {
                self as u64
            }
            #[inline]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
impl_float!(f32, F32);
impl_float!(f64, F64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    #[inline]
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    #[inline]
    fn to_i64(self) -> i64 {
        self as i64
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    #[inline]
    fn to_u64(self) -> u64 {
        self as u64
    }
    #[inline]
    fn from_u64(v: u64) -> Self {
        v != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;

    #[test]
    fn promotion_matches_numpy_table() {
        // Values from numpy.promote_types.
        let cases = [
            (I8, U8, I16),
            (I16, U16, I32),
            (I32, U32, I64),
            (I64, U64, F64),
            (U8, I16, I16),
            (U32, I8, I64),
            (I8, F32, F32),
            (U16, F32, F32),
            (I32, F32, F64),
            (I64, F32, F64),
            (F32, F64, F64),
            (Bool, I8, I8),
            (Bool, F32, F32),
            (U8, U64, U64),
            (I8, I64, I64),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.promote(b), want, "{a} + {b}");
            assert_eq!(b.promote(a), want, "{b} + {a}");
        }
    }

    #[test]
    fn weak_scalars_follow_nep50() {
        assert_eq!(F32.promote_weak(Kind::Float), F32);
        assert_eq!(I32.promote_weak(Kind::Float), F64);
        assert_eq!(U8.promote_weak(Kind::Signed), U8);
        assert_eq!(I16.promote_weak(Kind::Signed), I16);
        assert_eq!(Bool.promote_weak(Kind::Signed), I64);
        assert_eq!(Bool.promote_weak(Kind::Float), F64);
        assert_eq!(F64.promote_weak(Kind::Bool), F64);
    }

    #[test]
    fn parse_names_and_codes() {
        assert_eq!("int8".parse::<DType>().unwrap(), I8);
        assert_eq!("i1".parse::<DType>().unwrap(), I8);
        assert_eq!("<i8".parse::<DType>().unwrap(), I64);
        assert_eq!("u8".parse::<DType>().unwrap(), U64);
        assert_eq!("uint8".parse::<DType>().unwrap(), U8);
        assert_eq!("<f4".parse::<DType>().unwrap(), F32);
        assert!("complex64".parse::<DType>().is_err());
    }

    #[test]
    fn casts_follow_c() {
        assert_eq!((-1.7f64).cast::<i32>(), -1);
        assert_eq!(2.5f32.cast::<u8>(), 2);
        assert!(0.5f64.cast::<bool>());
        assert_eq!(300i32.cast::<u8>(), 44);
        assert_eq!(true.cast::<f32>(), 1.0);
    }
}
