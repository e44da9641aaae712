//! Cumulative reductions along one axis (`cumsum`, `cumprod`, `nancumsum`,
//! `nancumprod`): the ops and their kernels over blocks.
//!
//! The ops are one table ([`scan_ops!`]): variant, NumPy name, whether it
//! multiplies, whether NaN counts as the identity. Results follow NumPy's
//! dtypes (bool and signed integers accumulate in `int64`, unsigned in
//! `uint64`, floats in their own type) and NumPy's order: within a block,
//! element `i` is element `i - 1`'s result combined with element `i`,
//! sequentially, in the result dtype (integers wrap as NumPy's do).
//!
//! Across chunks the evaluator follows Dask's `cumreduction`: a chunk's
//! running total is the running total before it (starting at the
//! identity) combined with the previous chunk's last cumulated value, and
//! the chunk's result is that running total combined with its own
//! cumulation. So the bits depend on the chunking along the axis (as
//! Dask's do), never on threads, budget or schedule. Blocks handed to the
//! kernels are in the result dtype and in standard layout.

use crate::block::Block;
use crate::dtype::DType;

macro_rules! scan_ops {
    ($($(#[$doc:meta])* $v:ident = $name:literal, prod $prod:literal, nan $nan:literal;)*) => {
        /// A cumulative reduction along one axis.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ScanOp {
            $($(#[$doc])* $v,)*
        }

        impl ScanOp {
            /// Every op, in table order.
            pub const ALL: &'static [ScanOp] = &[$(ScanOp::$v,)*];

            /// NumPy's name (`cumsum`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(ScanOp::$v => $name,)*
                }
            }

            /// True for the products.
            pub fn is_prod(self) -> bool {
                match self {
                    $(ScanOp::$v => $prod,)*
                }
            }

            /// True if a NaN counts as the identity (0 for sums, 1 for products).
            pub fn skips_nan(self) -> bool {
                match self {
                    $(ScanOp::$v => $nan,)*
                }
            }
        }
    };
}

scan_ops! {
    /// `cumsum`: running sums.
    CumSum = "cumsum", prod false, nan false;
    /// `cumprod`: running products.
    CumProd = "cumprod", prod true, nan false;
    /// `nancumsum`: running sums, NaN counted as 0.
    NanCumSum = "nancumsum", prod false, nan true;
    /// `nancumprod`: running products, NaN counted as 1.
    NanCumProd = "nancumprod", prod true, nan true;
}

impl ScanOp {
    /// The op NumPy calls `name`.
    pub fn from_name(name: &str) -> Option<ScanOp> {
        ScanOp::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// NumPy's result dtype for an input of `input`: bool and signed
    /// integers give `int64`, unsigned `uint64`, floats their own.
    pub fn result_dtype(self, input: DType) -> DType {
        match input {
            DType::Bool | DType::I8 | DType::I16 | DType::I32 | DType::I64 => DType::I64,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => DType::U64,
            DType::F32 => DType::F32,
            DType::F64 => DType::F64,
        }
    }

    /// The identity: 0 for sums, 1 for products.
    pub(crate) fn identity(self) -> f64 {
        if self.is_prod() {
            1.0
        } else {
            0.0
        }
    }
}

/// The arithmetic of a result dtype.
trait Acc: Copy {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn nan(self) -> bool;
    fn of(v: f64) -> Self;
}

macro_rules! acc_int {
    ($($t:ty),*) => {$(
        impl Acc for $t {
            #[inline]
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline]
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline]
            fn nan(self) -> bool { false }
            fn of(v: f64) -> Self { v as $t }
        }
    )*};
}
macro_rules! acc_float {
    ($($t:ty),*) => {$(
        impl Acc for $t {
            #[inline]
            fn add(self, o: Self) -> Self { self + o }
            #[inline]
            fn mul(self, o: Self) -> Self { self * o }
            #[inline]
            fn nan(self) -> bool { self.is_nan() }
            fn of(v: f64) -> Self { v as $t }
        }
    )*};
}
acc_int!(i64, u64);
acc_float!(f32, f64);

/// Run `$body` with `$s` the mutable slice of a result-dtype block.
macro_rules! with_acc {
    ($block:expr, $s:ident => $body:expr) => {
        match $block {
            Block::I64(a) => {
                #[allow(clippy::expect_used)]
                let $s = a.as_slice_mut().expect("standard layout");
                $body
            }
            Block::U64(a) => {
                #[allow(clippy::expect_used)]
                let $s = a.as_slice_mut().expect("standard layout");
                $body
            }
            Block::F32(a) => {
                #[allow(clippy::expect_used)]
                let $s = a.as_slice_mut().expect("standard layout");
                $body
            }
            Block::F64(a) => {
                #[allow(clippy::expect_used)]
                let $s = a.as_slice_mut().expect("standard layout");
                $body
            }
            _ => unreachable!("scans run in int64, uint64, float32 or float64"),
        }
    };
}

/// The block's shape as (outer, along, inner) around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// `a ⊕ b` for the op.
#[inline]
fn op2<T: Acc>(prod: bool, a: T, b: T) -> T {
    if prod {
        a.mul(b)
    } else {
        a.add(b)
    }
}

/// NaN as the identity, for the `nan` ops.
#[inline]
fn clean<T: Acc>(nan: bool, id: T, v: T) -> T {
    if nan && v.nan() {
        id
    } else {
        v
    }
}

fn cumulate_slice<T: Acc>(op: ScanOp, s: &mut [T], (outer, n, inner): (usize, usize, usize)) {
    let (prod, nan, id) = (op.is_prod(), op.skips_nan(), T::of(op.identity()));
    for o in 0..outer {
        let lane = &mut s[o * n * inner..(o + 1) * n * inner];
        if n == 0 {
            continue;
        }
        if nan {
            for v in &mut lane[..inner] {
                *v = clean(true, id, *v);
            }
        }
        for i in 1..n {
            let (done, rest) = lane.split_at_mut(i * inner);
            let prev = &done[(i - 1) * inner..];
            for (v, &p) in rest[..inner].iter_mut().zip(prev) {
                *v = op2(prod, p, clean(nan, id, *v));
            }
        }
    }
}

/// Cumulate `b` along `axis` in place, sequentially, as NumPy does.
pub(crate) fn cumulate(op: ScanOp, b: &mut Block, axis: usize) {
    let dims = split(b.shape(), axis);
    with_acc!(b, s => cumulate_slice(op, s, dims))
}

fn combine_slice<T: Acc>(
    op: ScanOp,
    s: &mut [T],
    c: &[T],
    (outer, n, inner): (usize, usize, usize),
) {
    let prod = op.is_prod();
    for o in 0..outer {
        let carry = &c[o * inner..(o + 1) * inner];
        for i in 0..n {
            let row = &mut s[(o * n + i) * inner..(o * n + i + 1) * inner];
            for (v, &k) in row.iter_mut().zip(carry) {
                *v = op2(prod, k, *v);
            }
        }
    }
}

/// Run `$body` over the matching slices of two result-dtype blocks.
macro_rules! with_pair {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr) => {
        match ($a, $b) {
            (Block::I64(p), Block::I64(q)) => pair!(p, q, $x, $y, $body),
            (Block::U64(p), Block::U64(q)) => pair!(p, q, $x, $y, $body),
            (Block::F32(p), Block::F32(q)) => pair!(p, q, $x, $y, $body),
            (Block::F64(p), Block::F64(q)) => pair!(p, q, $x, $y, $body),
            _ => unreachable!("scan blocks share one result dtype"),
        }
    };
}
macro_rules! pair {
    ($p:ident, $q:ident, $x:ident, $y:ident, $body:expr) => {{
        #[allow(clippy::expect_used)]
        let $x = $p.as_slice_mut().expect("standard layout");
        #[allow(clippy::expect_used)]
        let $y = $q.as_slice().expect("standard layout");
        $body
    }};
}

/// `carry ⊕ b` along `axis`, `carry` being `b`'s shape with `axis` of
/// length 1 (Dask's `binop(extra, block)`).
pub(crate) fn combine(op: ScanOp, b: &mut Block, carry: &Block, axis: usize) {
    let dims = split(b.shape(), axis);
    let carry = carry.clone().into_standard_layout();
    with_pair!(b, &carry, s, c => combine_slice(op, s, c, dims))
}

fn fold_slice<T: Acc>(
    op: ScanOp,
    acc: &mut [T],
    s: &[T],
    (outer, n, inner): (usize, usize, usize),
) {
    let prod = op.is_prod();
    for o in 0..outer {
        let last = &s[(o * n + n - 1) * inner..(o * n + n) * inner];
        for (a, &t) in acc[o * inner..(o + 1) * inner].iter_mut().zip(last) {
            *a = op2(prod, *a, t);
        }
    }
}

/// Fold a chunk into the running totals `acc` (the chunk's shape with
/// `axis` of length 1, starting at the identity): `acc ⊕` the chunk's
/// last cumulated value along `axis` (Dask's `binop(extra, block[-1:])`).
pub(crate) fn fold_total(op: ScanOp, acc: &mut Block, chunk: Block, axis: usize) {
    let mut chunk = chunk.into_standard_layout();
    let dims = split(chunk.shape(), axis);
    if dims.1 == 0 {
        return;
    }
    cumulate(op, &mut chunk, axis);
    with_pair!(acc, &chunk, a, s => fold_slice(op, a, s, dims))
}
