//! Elementwise kernels: unary math, binary math with NumPy broadcasting,
//! `where` and `clip`, over whole [`Block`]s.
//!
//! # One table per arity
//!
//! Every elementwise op is one row of a table in this file
//! (`unary_table!`, `binary_table!`): its Rust variant, its NumPy ufunc
//! name and aliases, the [`Array`](crate::Array) method (if any), its dtype
//! rule ([`UnaryRule`], [`BinaryRule`]), whether a fused chain may hold it,
//! and its scalar function per kind of element (float, integer, bool; `[]`
//! where the kind never reaches the kernel). Everything else follows from
//! the rows: the [`UnaryOp`]/[`BinaryOp`] enums with `name`, `aliases`,
//! `ALL` and `from_name`, the dtype rules, the whole-tile kernels of each
//! kind (`float.rs`, `int.rs`), the fused strip loops
//! (`kernels/fused.rs`), the `Array` methods (`array/build.rs`) and the
//! CLI's function names. The tables are X-macros: each consumer passes a
//! generator macro that turns the rows into its items, so a consumer
//! cannot miss a row. Names inside a scalar function resolve where a
//! generator expands it: the methods of the `Float` and `Int` traits and
//! of the element types, `nan_max`, `nan_min` and `float_divmod`.
//!
//! # Dtype rules (NumPy 2, with the deviations listed)
//!
//! * [`unary_dtype`]: `Neg`, `Abs`, `Floor`, `Ceil`, `Trunc`, `Sign` and
//!   `Square` keep the dtype (`Neg` and `Sign` on bool are errors; `Square` on bool gives int8, as
//!   NumPy's `square` does). `Sqrt`, `Exp`, `Log`, `Log1p`, the other
//!   logarithms, exponentials, trigonometric and hyperbolic functions,
//!   `Cbrt`, `Deg2rad`, `Rad2deg` and `Rint` give a float: f32 and f64 stay; bool, int8, uint8,
//!   int16, uint16 give f32 (NumPy gives float16 for the 1-byte ones; there
//!   is no f16 here); wider integers give f64. `Not` is logical on bool,
//!   bitwise (`~`) on integers, an error on floats. `IsNan`/`IsFinite` give
//!   bool.
//! * [`binary_dtypes`]: the operand dtype is `a.promote(b)`, except true
//!   division (`Div`), whose operand is `promote(a, b).true_divide()`, and
//!   the float-valued ops (`Arctan2`, `Hypot`, `Copysign`, `Logaddexp`),
//!   whose operand is the float `UnaryRule::Float` gives the promotion.
//!   Comparisons give bool. `And`/`Or`/`Xor` are logical on bool, bitwise on
//!   integers and an error on floats. **Deviation:** arithmetic on two bools
//!   (`Add`, `Sub`, `Mul`, `FloorDiv`, `Rem`, `Fmod`, `Pow`) runs on int8 (NumPy
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
//!   (a few ulps from `powf`); anything else is `powf` (the table's
//!   scalar function). This is the one row with its own whole-tile float
//!   kernel (`tile [float_pow]`).
//! * `Maximum`/`Minimum` and `clip` propagate NaN; `Fmax`/`Fmin` ignore it
//!   (NaN only where both are). `Fmod` is C's remainder (the dividend's
//!   sign; integers give 0 for a zero divisor).
//!
//! # Invariants
//!
//! Every output is standard layout (C-contiguous). The op and the dtype are
//! dispatched once per block: each (op, dtype) pair is its own monomorphised
//! loop over the row's scalar function. Equal-shaped contiguous inputs run
//! one tight loop over slices; a one-element side runs a scalar loop; real
//! broadcasts coalesce axes and run contiguous inner loops along the last
//! (merged) axis (`loops.rs`).
//!
//! The `*_owned` variants ([`unary_owned`], [`binary_owned`],
//! [`clip_owned`]) take their inputs by value and write the result into an
//! input's buffer when dtype, layout and size allow, so a fused chain of
//! elementwise ops on a tile allocates once instead of once per op (fresh
//! tile-sized allocations are returned to the OS and page-faulted back in
//! by the allocator, which costs far more than the arithmetic).
//!
//! # Adding an op
//!
//! One row in a table, then tests: NumPy's values for the new op in
//! `numpy_tests.rs` (which iterates `UnaryOp::ALL`/`BinaryOp::ALL` and
//! fails for a row without NumPy values), and a fused and a CLI check if it
//! is fusable or named. A scalar function that needs a new method adds it
//! to the `Float` or `Int` trait.

use crate::dtype::Element;

/// The unary op table. Each row:
///
/// ```text
/// /// doc (the variant's and the Array method's)
/// Variant = "numpy_name", aliases ["alias", ..], method [array_method or nothing],
///     rule UnaryRule-variant, fused yes|no,
///     float [scalar fn or nothing], int [..], bool [..];
/// ```
///
/// `$gen!` receives every row; see the module docs.
macro_rules! unary_table {
    ($gen:ident) => {
        $gen! {
            /// Numerical negative, `-x` (integers wrap; refused for bool).
            Neg = "negative", aliases [], method [], rule KeepNumeric, fused yes,
                float [|v| -v], int [|v| v.wneg()], bool [];
            /// Absolute value (the most negative integer wraps to itself).
            Abs = "absolute", aliases ["abs"], method [abs], rule Keep, fused yes,
                float [|v| v.abs()], int [|v| v.wabs()], bool [|v| v];
            /// Square root.
            Sqrt = "sqrt", aliases [], method [sqrt], rule Float, fused yes,
                float [|v| v.sqrt()], int [], bool [];
            /// `e**x`.
            Exp = "exp", aliases [], method [exp], rule Float, fused yes,
                float [|v| v.exp()], int [], bool [];
            /// Natural logarithm.
            Log = "log", aliases [], method [log], rule Float, fused yes,
                float [|v| v.ln()], int [], bool [];
            /// `log(1 + x)`, accurate for small x.
            Log1p = "log1p", aliases [], method [log1p], rule Float, fused yes,
                float [|v| v.ln_1p()], int [], bool [];
            /// Sine.
            Sin = "sin", aliases [], method [sin], rule Float, fused yes,
                float [|v| v.sin()], int [], bool [];
            /// Cosine.
            Cos = "cos", aliases [], method [cos], rule Float, fused yes,
                float [|v| v.cos()], int [], bool [];
            /// Tangent.
            Tan = "tan", aliases [], method [tan], rule Float, fused yes,
                float [|v| v.tan()], int [], bool [];
            /// Hyperbolic tangent.
            Tanh = "tanh", aliases [], method [tanh], rule Float, fused yes,
                float [|v| v.tanh()], int [], bool [];
            /// `x * x` (integers wrap; bool runs on int8).
            Square = "square", aliases [], method [square], rule Arithmetic, fused yes,
                float [|v| v * v], int [|v| v.wmul(v)], bool [];
            /// Largest integer not above `x` (integers and bool unchanged).
            Floor = "floor", aliases [], method [floor], rule Keep, fused yes,
                float [|v| v.floor()], int [|v| v], bool [|v| v];
            /// Smallest integer not below `x` (integers and bool unchanged).
            Ceil = "ceil", aliases [], method [ceil], rule Keep, fused yes,
                float [|v| v.ceil()], int [|v| v], bool [|v| v];
            /// Base-10 logarithm.
            Log10 = "log10", aliases [], method [log10], rule Float, fused yes,
                float [|v| v.log10()], int [], bool [];
            /// Base-2 logarithm.
            Log2 = "log2", aliases [], method [log2], rule Float, fused yes,
                float [|v| v.log2()], int [], bool [];
            /// `e**x - 1`, accurate for small x.
            Expm1 = "expm1", aliases [], method [expm1], rule Float, fused yes,
                float [|v| v.exp_m1()], int [], bool [];
            /// `2**x`.
            Exp2 = "exp2", aliases [], method [exp2], rule Float, fused yes,
                float [|v| v.exp2()], int [], bool [];
            /// Inverse sine.
            Arcsin = "arcsin", aliases ["asin"], method [arcsin], rule Float, fused yes,
                float [|v| v.asin()], int [], bool [];
            /// Inverse cosine.
            Arccos = "arccos", aliases ["acos"], method [arccos], rule Float, fused yes,
                float [|v| v.acos()], int [], bool [];
            /// Inverse tangent.
            Arctan = "arctan", aliases ["atan"], method [arctan], rule Float, fused yes,
                float [|v| v.atan()], int [], bool [];
            /// Hyperbolic sine.
            Sinh = "sinh", aliases [], method [sinh], rule Float, fused yes,
                float [|v| v.sinh()], int [], bool [];
            /// Hyperbolic cosine.
            Cosh = "cosh", aliases [], method [cosh], rule Float, fused yes,
                float [|v| v.cosh()], int [], bool [];
            /// Inverse hyperbolic sine.
            Arcsinh = "arcsinh", aliases ["asinh"], method [arcsinh], rule Float, fused yes,
                float [|v| v.asinh()], int [], bool [];
            /// Inverse hyperbolic cosine.
            Arccosh = "arccosh", aliases ["acosh"], method [arccosh], rule Float, fused yes,
                float [|v| v.acosh()], int [], bool [];
            /// Inverse hyperbolic tangent.
            Arctanh = "arctanh", aliases ["atanh"], method [arctanh], rule Float, fused yes,
                float [|v| v.atanh()], int [], bool [];
            /// Cube root.
            Cbrt = "cbrt", aliases [], method [cbrt], rule Float, fused yes,
                float [|v| v.cbrt()], int [], bool [];
            /// Degrees to radians.
            Deg2rad = "deg2rad", aliases ["radians"], method [deg2rad], rule Float, fused yes,
                float [|v| v.to_radians()], int [], bool [];
            /// Radians to degrees.
            Rad2deg = "rad2deg", aliases ["degrees"], method [rad2deg], rule Float, fused yes,
                float [|v| v.to_degrees()], int [], bool [];
            /// Nearest integer, halves to even (NumPy's `rint`, `round` with 0 decimals).
            Rint = "rint", aliases [], method [rint], rule Float, fused yes,
                float [|v| v.round_ties_even()], int [], bool [];
            /// Integer part, toward zero (integers and bool unchanged).
            Trunc = "trunc", aliases ["fix"], method [trunc], rule Keep, fused yes,
                float [|v| v.trunc()], int [|v| v], bool [|v| v];
            /// -1, 0 or 1 by the sign (NaN stays NaN, -0.0 gives 0.0; refused for bool).
            Sign = "sign", aliases [], method [sign], rule KeepNumeric, fused yes,
                float [|v| v.sign()], int [|v| v.isign()], bool [];
            /// True where the sign bit is set (-0.0 and negative NaN included).
            Signbit = "signbit", aliases [], method [signbit], rule Predicate, fused no,
                float [|v| v.is_sign_negative()], int [|v| v < Default::default()],
                bool [|_| false];
            /// Logical (bool) or bitwise (integers) not.
            Not = "invert", aliases ["logical_not"], method [logical_not], rule Integral, fused no,
                float [], int [|v| !v], bool [|v| !v];
            /// True where NaN.
            IsNan = "isnan", aliases [], method [isnan], rule Predicate, fused no,
                float [|v| v.is_nan()], int [|_| false], bool [|_| false];
            /// True where finite.
            IsFinite = "isfinite", aliases [], method [isfinite], rule Predicate, fused no,
                float [|v| v.is_finite()], int [|_| true], bool [|_| true];
        }
    };
}
pub(crate) use unary_table;

/// The binary op table. Each row:
///
/// ```text
/// /// doc (the variant's and the Array method's)
/// Variant = "numpy_name", aliases [..], method [array_method or nothing],
///     rule BinaryRule-variant, fused yes|no, tile [whole-tile float kernel or nothing],
///     float [scalar fn or nothing], int [..], bool [..];
/// ```
///
/// A `tile` kernel is called as `tile(a, b, float_fn)` in place of the
/// plain loop over `float_fn`; it must apply `float_fn` wherever it takes
/// no fast path.
macro_rules! binary_table {
    ($gen:ident) => {
        $gen! {
            /// `x1 + x2` (integers wrap).
            Add = "add", aliases [], method [], rule Arithmetic, fused yes, tile [],
                float [|p, q| p + q], int [|p, q| p.wadd(q)], bool [];
            /// `x1 - x2` (integers wrap).
            Sub = "subtract", aliases [], method [], rule Arithmetic, fused yes, tile [],
                float [|p, q| p - q], int [|p, q| p.wsub(q)], bool [];
            /// `x1 * x2` (integers wrap).
            Mul = "multiply", aliases [], method [], rule Arithmetic, fused yes, tile [],
                float [|p, q| p * q], int [|p, q| p.wmul(q)], bool [];
            /// True division `x1 / x2`, always a float.
            Div = "true_divide", aliases ["divide"], method [], rule TrueDivide, fused yes, tile [],
                float [|p, q| p / q], int [], bool [];
            /// Floor division (Python's `//`).
            FloorDiv = "floor_divide", aliases [], method [floor_div], rule Arithmetic, fused yes,
                tile [],
                float [|p, q| float_divmod(p, q).0], int [|p, q| p.floor_div(q)], bool [];
            /// Python's `%`: the remainder takes the divisor's sign.
            Rem = "remainder", aliases ["mod"], method [], rule Arithmetic, fused yes, tile [],
                float [|p, q| float_divmod(p, q).1], int [|p, q| p.py_rem(q)], bool [];
            /// `self ** other`.
            Pow = "power", aliases [], method [pow], rule Arithmetic, fused yes, tile [float_pow],
                float [|p, q| p.powf(q)], int [|p, q| p.ipow(q)], bool [];
            /// Elementwise maximum (NaN propagates).
            Maximum = "maximum", aliases [], method [maximum], rule Keep, fused yes, tile [],
                float [nan_max], int [nan_max], bool [|p, q| p | q];
            /// Elementwise minimum (NaN propagates).
            Minimum = "minimum", aliases [], method [minimum], rule Keep, fused yes, tile [],
                float [nan_min], int [nan_min], bool [|p, q| p & q];
            /// `self == other`.
            /// Elementwise maximum ignoring NaN (NaN only where both are).
            Fmax = "fmax", aliases [], method [fmax], rule Keep, fused yes, tile [],
                float [|p, q| if q.is_nan() || p >= q { p } else { q }], int [nan_max],
                bool [|p, q| p | q];
            /// Elementwise minimum ignoring NaN (NaN only where both are).
            Fmin = "fmin", aliases [], method [fmin], rule Keep, fused yes, tile [],
                float [|p, q| if q.is_nan() || p <= q { p } else { q }], int [nan_min],
                bool [|p, q| p & q];
            /// C's `fmod`: the remainder with the dividend's sign (integers:
            /// 0 for a zero divisor, as NumPy).
            Fmod = "fmod", aliases [], method [fmod], rule Arithmetic, fused yes, tile [],
                float [|p, q| p % q], int [|p, q| p.c_rem(q)], bool [];
            /// The angle of the point `(q, p)`: `arctan(p / q)` in the right quadrant.
            Arctan2 = "arctan2", aliases ["atan2"], method [arctan2], rule Float, fused yes,
                tile [],
                float [|p, q| p.atan2(q)], int [], bool [];
            /// `sqrt(p**2 + q**2)` without overflow.
            Hypot = "hypot", aliases [], method [hypot], rule Float, fused yes, tile [],
                float [|p, q| p.hypot(q)], int [], bool [];
            /// `p`'s magnitude with `q`'s sign.
            Copysign = "copysign", aliases [], method [copysign], rule Float, fused yes,
                tile [],
                float [|p, q| p.copysign(q)], int [], bool [];
            /// `log(exp(p) + exp(q))` without overflow (NumPy's algorithm).
            Logaddexp = "logaddexp", aliases [], method [logaddexp], rule Float, fused yes,
                tile [],
                float [|p, q| p.logaddexp(q)], int [], bool [];
            Eq = "equal", aliases [], method [eq_elem], rule Compare, fused no, tile [],
                float [|p, q| p == q], int [|p, q| p == q], bool [|p, q| p == q];
            /// `self != other`.
            Ne = "not_equal", aliases [], method [ne_elem], rule Compare, fused no, tile [],
                float [|p, q| p != q], int [|p, q| p != q], bool [|p, q| p != q];
            /// `self < other`.
            Lt = "less", aliases [], method [lt], rule Compare, fused no, tile [],
                float [|p, q| p < q], int [|p, q| p < q], bool [|p, q| p < q];
            /// `self <= other`.
            Le = "less_equal", aliases [], method [le], rule Compare, fused no, tile [],
                float [|p, q| p <= q], int [|p, q| p <= q], bool [|p, q| p <= q];
            /// `self > other`.
            Gt = "greater", aliases [], method [gt], rule Compare, fused no, tile [],
                float [|p, q| p > q], int [|p, q| p > q], bool [|p, q| p > q];
            /// `self >= other`.
            Ge = "greater_equal", aliases [], method [ge], rule Compare, fused no, tile [],
                float [|p, q| p >= q], int [|p, q| p >= q], bool [|p, q| p >= q];
            /// Logical and (bool) or bitwise and (ints).
            And = "bitwise_and", aliases ["logical_and"], method [logical_and], rule Integral,
                fused no, tile [],
                float [], int [|p, q| p & q], bool [|p, q| p & q];
            /// Logical or (bool) or bitwise or (ints).
            Or = "bitwise_or", aliases ["logical_or"], method [logical_or], rule Integral,
                fused no, tile [],
                float [], int [|p, q| p | q], bool [|p, q| p | q];
            /// Logical (bool) or bitwise (ints) exclusive or.
            Xor = "bitwise_xor", aliases ["logical_xor"], method [], rule Integral, fused no,
                tile [],
                float [], int [|p, q| p ^ q], bool [|p, q| p ^ q];
        }
    };
}
pub(crate) use binary_table;

/// `true` for `yes`, `false` for `no` (a table's `fused` column).
macro_rules! yes_no {
    (yes) => {
        true
    };
    (no) => {
        false
    };
}

/// The enum and its table-driven methods, from the unary table.
macro_rules! define_unary {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident,
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        /// One-input elementwise operations, one per row of the unary op
        /// table (see the module docs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum UnaryOp {
            $($(#[$doc])* $v,)*
        }

        impl UnaryOp {
            /// Every unary op, in table order.
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$v),*];

            /// The NumPy ufunc name (`negative`, `absolute`, `sqrt`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$v => $name,)*
                }
            }

            /// Other names NumPy (or the CLI) also accepts for the op
            /// (`abs` for `absolute`).
            pub const fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(UnaryOp::$v => &[$($alias),*],)*
                }
            }

            /// How the result dtype follows from the input's.
            pub const fn rule(self) -> UnaryRule {
                match self {
                    $(UnaryOp::$v => UnaryRule::$rule,)*
                }
            }

            /// True for the ops a fused float chain may hold (float in,
            /// same float out).
            pub const fn fusable(self) -> bool {
                match self {
                    $(UnaryOp::$v => yes_no!($fz),)*
                }
            }
        }
    };
}

/// The enum and its table-driven methods, from the binary table.
macro_rules! define_binary {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident, tile [$($tile:path)?],
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        /// Two-input elementwise operations, one per row of the binary op
        /// table (see the module docs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum BinaryOp {
            $($(#[$doc])* $v,)*
        }

        impl BinaryOp {
            /// Every binary op, in table order.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$v),*];

            /// The NumPy ufunc name (`add`, `true_divide`, `floor_divide`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(BinaryOp::$v => $name,)*
                }
            }

            /// Other names the op is also called by (`divide`, `mod`,
            /// `logical_and`).
            pub const fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(BinaryOp::$v => &[$($alias),*],)*
                }
            }

            /// How the operand and result dtypes follow from the inputs'.
            pub const fn rule(self) -> BinaryRule {
                match self {
                    $(BinaryOp::$v => BinaryRule::$rule,)*
                }
            }

            /// True for the ops a fused float chain may hold (float in,
            /// same float out).
            pub const fn fusable(self) -> bool {
                match self {
                    $(BinaryOp::$v => yes_no!($fz),)*
                }
            }
        }
    };
}

unary_table!(define_unary);
binary_table!(define_binary);

impl UnaryOp {
    /// The op called `name` (its NumPy name or an alias).
    ///
    /// ```
    /// use ndstream_engine::UnaryOp;
    /// assert_eq!(UnaryOp::from_name("absolute"), Some(UnaryOp::Abs));
    /// assert_eq!(UnaryOp::from_name("abs"), Some(UnaryOp::Abs));
    /// assert_eq!(UnaryOp::from_name("sine"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL
            .iter()
            .copied()
            .find(|op| op.name() == name || op.aliases().contains(&name))
    }

    /// True for the ops whose result is a float whatever the input
    /// (`sqrt`, `exp`, `log`, `log1p`, `sin`, `cos`, `tanh`, ...).
    pub const fn is_float_valued(self) -> bool {
        matches!(self.rule(), UnaryRule::Float)
    }
}

impl BinaryOp {
    /// The op called `name` (its NumPy name or an alias).
    ///
    /// ```
    /// use ndstream_engine::BinaryOp;
    /// assert_eq!(BinaryOp::from_name("true_divide"), Some(BinaryOp::Div));
    /// assert_eq!(BinaryOp::from_name("mod"), Some(BinaryOp::Rem));
    /// assert_eq!(BinaryOp::from_name("plus"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<BinaryOp> {
        BinaryOp::ALL
            .iter()
            .copied()
            .find(|op| op.name() == name || op.aliases().contains(&name))
    }

    /// True for the six comparisons (their result is bool).
    pub const fn is_comparison(self) -> bool {
        matches!(self.rule(), BinaryRule::Compare)
    }
}

/// A kernel's match arm for a unary row on one kind of element: the
/// row's scalar function over every element (a bool result for
/// predicates), or the dtype error where the row has none for the kind.
macro_rules! unary_arm {
    ($op:ident, $a:ident, $t:ty, $rule:ident, []) => {
        Err(unsupported($op.name(), <$t as Element>::DTYPE))
    };
    ($op:ident, $a:ident, $t:ty, Predicate, [$f:expr]) => {
        Ok(Block::from(map1(&$a, $f)))
    };
    ($op:ident, $a:ident, $t:ty, $rule:ident, [$f:expr]) => {
        Ok(<$t as BlockElement>::into_block(map1_same($a, $f)))
    };
}

/// A kernel's match arm for a binary row on one kind of element: the
/// row's scalar function with broadcasting (bool result for comparisons;
/// the row's `tile` kernel in its place when given), or the dtype error.
macro_rules! binary_arm {
    ($op:ident, $a:ident, $b:ident, $t:ty, $rule:ident, [$($tile:path)?], []) => {
        Err(unsupported($op.name(), <$t as Element>::DTYPE))
    };
    ($op:ident, $a:ident, $b:ident, $t:ty, Compare, [$($tile:path)?], [$f:expr]) => {
        Ok(Block::from(map2($op.name(), &$a, &$b, $f)?))
    };
    ($op:ident, $a:ident, $b:ident, $t:ty, $rule:ident, [], [$f:expr]) => {
        Ok(<$t as BlockElement>::into_block(map2_same(
            $op.name(),
            $a,
            $b,
            $f,
        )?))
    };
    ($op:ident, $a:ident, $b:ident, $t:ty, $rule:ident, [$tile:path], [$f:expr]) => {
        Ok(<$t as BlockElement>::into_block($tile($a, $b, $f)?))
    };
}

mod apply;
mod dtype;
mod float;
mod int;
mod loops;
#[cfg(test)]
mod numpy_tests;
#[cfg(test)]
mod tests;

pub use apply::{binary, binary_owned, clip, clip_owned, unary, unary_owned, where_};
pub(crate) use apply::{binary_cow, power_each_cow, unary_cow};
pub use dtype::{binary_dtypes, unary_dtype, BinaryRule, UnaryRule};
pub(crate) use float::{float_divmod, Float};
pub(super) use loops::{next_lane, widest};

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
