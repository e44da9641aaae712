//! The loops every elementwise kernel runs its scalar function in: map one
//! array, zip two or three with NumPy broadcasting, in place where an
//! owned input can take the result. Each is generic over the scalar
//! function, so an (op, dtype) pair is one monomorphised loop; the loops
//! are compiled for AVX2 (and AVX-512F for the fused strips) and picked at
//! run time ([`wide`], [`widest`]), with no FMA and no reordering.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};

/// A C-order vector of exactly `product(shape)` elements as an array.
pub(super) fn shaped<U>(shape: &[usize], v: Vec<U>) -> ArrayD<U> {
    #[allow(clippy::expect_used)]
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("every loop here yields product(shape) elements")
}

/// `f` of every element, standard layout.
#[inline]
pub(super) fn map1<A: Copy, U>(a: &ArrayD<A>, f: impl Fn(A) -> U) -> ArrayD<U> {
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
pub(super) fn broadcast2(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
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
pub(crate) fn next_lane<S: AsRef<[usize]>>(
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
pub(crate) fn wide<R>(body: impl FnOnce() -> R) -> R {
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
pub(crate) fn widest<R>(body: impl FnOnce() -> R) -> R {
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
pub(super) fn map2<A: Copy, B: Copy, U>(
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
pub(super) fn map2_body<A: Copy, B: Copy, U>(
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
pub(super) fn reshaped<U>(a: ArrayD<U>, shape: &[usize]) -> ArrayD<U> {
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
pub(super) fn map1_same<T: Copy>(a: Cow<'_, ArrayD<T>>, f: impl Fn(T) -> T) -> ArrayD<T> {
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
pub(super) fn map2_same<T: Copy>(
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
pub(super) fn zip_into<T: Copy>(
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
pub(super) fn select3<T: Copy>(
    c: &ArrayD<bool>,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
) -> Result<ArrayD<T>> {
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
