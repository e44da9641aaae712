//! Indexing: NumPy-style index expressions ([`IndexItem`], the [`s!`]
//! macro), strided selections and their chunk grids, boolean masks,
//! transposes, triangles and rechunking.

use super::build::masked_node;
use super::{Array, Op, SelItem};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{AxisChunks, AxisSel, ChunkGrid};

/// One item of a NumPy-style index expression (`x[1:, ::2, None, ..., 3]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexItem {
    /// `start:stop:step`; `None` bounds default as in NumPy; `step != 0`.
    Slice {
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
    },
    /// An integer index (negative counts from the end); drops the axis.
    Index(i64),
    /// `None` / `np.newaxis`: a new axis of length 1.
    NewAxis,
    /// `...`: as many full slices as needed.
    Ellipsis,
}

impl IndexItem {
    /// The full slice `:`.
    pub const FULL: IndexItem = IndexItem::Slice {
        start: None,
        stop: None,
        step: 1,
    };

    /// `start:stop:step` with every part given.
    pub fn slice(start: Option<i64>, stop: Option<i64>, step: i64) -> IndexItem {
        IndexItem::Slice { start, stop, step }
    }
}

/// The strided run NumPy's slice `start:stop:step` selects on an axis of length `n`.
pub(crate) fn normalize_slice(
    start: Option<i64>,
    stop: Option<i64>,
    step: i64,
    n: u64,
) -> Result<AxisSel> {
    if step == 0 {
        return Err(Error::invalid("index", "step", "slice step cannot be zero"));
    }
    let n = n as i64;
    let fix = |v: i64| if v < 0 { v + n } else { v };
    if step > 0 {
        let s = start.map(fix).unwrap_or(0).clamp(0, n);
        let e = stop.map(fix).unwrap_or(n).clamp(0, n);
        let len = if e > s { (e - s + step - 1) / step } else { 0 };
        Ok(AxisSel {
            start: s as u64,
            step,
            len: len as u64,
        })
    } else {
        let s = start.map(fix).unwrap_or(n - 1).clamp(-1, n - 1);
        let e = stop.map(fix).unwrap_or(-1).clamp(-1, n - 1);
        let len = if s > e {
            (s - e + (-step) - 1) / (-step)
        } else {
            0
        };
        Ok(AxisSel {
            start: s.max(0) as u64,
            step,
            len: len as u64,
        })
    }
}

/// The most chunks a strided selection may give one axis: its chunking
/// (one chunk per input chunk it touches) is held as a list, 8 bytes a
/// chunk, so more would take gigabytes before anything runs. An aligned
/// step-1 slice of a regular axis stays regular and has no limit.
pub(crate) const MAX_SELECTED_AXIS_CHUNKS: u64 = 1 << 24;

/// The chunking of a strided selection of an axis: one output chunk per
/// input chunk the selection touches, in output order.
///
/// # Errors
/// [`Error::InvalidArgument`] when that is more than
/// [`MAX_SELECTED_AXIS_CHUNKS`] chunks.
pub(crate) fn select_axis_chunks(input: &AxisChunks, sel: &AxisSel) -> Result<AxisChunks> {
    if sel.len == 0 {
        return Ok(AxisChunks::regular(0, 1));
    }
    if let AxisChunks::Regular { size, .. } = *input {
        if size > 0 && sel.step == 1 && sel.start.is_multiple_of(size) {
            return Ok(AxisChunks::regular(sel.len, size));
        }
    }
    let touched = input.chunks_overlapping(&sel.bounds());
    let count = touched.end - touched.start;
    if count > MAX_SELECTED_AXIS_CHUNKS {
        return Err(Error::invalid(
            "index",
            "index",
            format!(
                "the selection touches {count} chunks of one axis, more than the \
                 {MAX_SELECTED_AXIS_CHUNKS} ndstream keeps per axis; rechunk the array \
                 to larger chunks first"
            ),
        ));
    }
    let mut parts: Vec<(u64, u64)> = Vec::new();
    for c in input.chunks_overlapping(&sel.bounds()) {
        let r = sel.intersect(&input.range(c));
        if r.end > r.start {
            parts.push((r.start, r.end - r.start));
        }
    }
    parts.sort_unstable();
    Ok(AxisChunks::from_sizes(
        &parts.iter().map(|p| p.1).collect::<Vec<_>>(),
    ))
}

/// Ranges and integers that [`s!`](crate::s) turns into [`IndexItem`]s.
///
/// Implemented for Rust ranges (`a..b`, `a..`, `..b`, `..`, `a..=b`,
/// `..=b`) and integers of the common index types; see [`s!`](crate::s).
pub trait IntoIndexItem {
    /// The item: a range is a slice (step 1), an integer an index.
    fn into_index_item(self) -> IndexItem;
}

/// Ranges that take a step in [`s!`](crate::s) (`a..b;k`): NumPy's
/// `a:b:k`.
pub trait IntoSlice {
    /// The slice `start:stop:step`.
    fn into_slice(self, step: i64) -> IndexItem;
}

impl IntoIndexItem for IndexItem {
    fn into_index_item(self) -> IndexItem {
        self
    }
}

impl IntoIndexItem for std::ops::RangeFull {
    fn into_index_item(self) -> IndexItem {
        IndexItem::FULL
    }
}

impl IntoSlice for std::ops::RangeFull {
    fn into_slice(self, step: i64) -> IndexItem {
        IndexItem::slice(None, None, step)
    }
}

/// An inclusive end `..=e` as an exclusive stop (`-1` means the last
/// element, so its stop is the end of the axis).
fn stop_after(e: i64) -> Option<i64> {
    match e.checked_add(1) {
        Some(0) | None => None,
        Some(s) => Some(s),
    }
}

/// The range `start..stop` (NumPy bounds: negative counts from the end,
/// `None` is open) walked with `step`, as NumPy's slice: forwards from its
/// start, or for a negative step backwards from its last element, as
/// ndarray's `s![]` does (`1..6;-2` is 5, 3, 1: NumPy's `x[5:0:-2]`).
fn ranged(start: Option<i64>, stop: Option<i64>, step: i64) -> IndexItem {
    if step >= 0 {
        return IndexItem::slice(start, stop, step);
    }
    match stop {
        // `a..0` is empty whichever way it is walked (and `-1` would wrap).
        Some(0) => IndexItem::slice(Some(0), Some(0), step),
        _ => IndexItem::slice(
            stop.map(|e| e.saturating_sub(1)),
            match start {
                None | Some(0) => None,
                Some(s) => Some(s.saturating_sub(1)),
            },
            step,
        ),
    }
}

/// An index as `i64`; one beyond `i64::MAX` saturates (and is then out of
/// bounds for any array).
fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

macro_rules! index_conversions {
    ($($t:ty),*) => {$(
        impl IntoIndexItem for $t {
            fn into_index_item(self) -> IndexItem {
                IndexItem::Index(to_i64(self))
            }
        }
        impl IntoSlice for std::ops::Range<$t> {
            fn into_slice(self, step: i64) -> IndexItem {
                ranged(Some(to_i64(self.start)), Some(to_i64(self.end)), step)
            }
        }
        impl IntoSlice for std::ops::RangeFrom<$t> {
            fn into_slice(self, step: i64) -> IndexItem {
                ranged(Some(to_i64(self.start)), None, step)
            }
        }
        impl IntoSlice for std::ops::RangeTo<$t> {
            fn into_slice(self, step: i64) -> IndexItem {
                ranged(None, Some(to_i64(self.end)), step)
            }
        }
        impl IntoSlice for std::ops::RangeInclusive<$t> {
            fn into_slice(self, step: i64) -> IndexItem {
                ranged(Some(to_i64(*self.start())), stop_after(to_i64(*self.end())), step)
            }
        }
        impl IntoSlice for std::ops::RangeToInclusive<$t> {
            fn into_slice(self, step: i64) -> IndexItem {
                ranged(None, stop_after(to_i64(self.end)), step)
            }
        }
        impl IntoIndexItem for std::ops::Range<$t> {
            fn into_index_item(self) -> IndexItem {
                self.into_slice(1)
            }
        }
        impl IntoIndexItem for std::ops::RangeFrom<$t> {
            fn into_index_item(self) -> IndexItem {
                self.into_slice(1)
            }
        }
        impl IntoIndexItem for std::ops::RangeTo<$t> {
            fn into_index_item(self) -> IndexItem {
                self.into_slice(1)
            }
        }
        impl IntoIndexItem for std::ops::RangeInclusive<$t> {
            fn into_index_item(self) -> IndexItem {
                self.into_slice(1)
            }
        }
        impl IntoIndexItem for std::ops::RangeToInclusive<$t> {
            fn into_index_item(self) -> IndexItem {
                self.into_slice(1)
            }
        }
    )*};
}

index_conversions!(i32, i64, isize, u32, u64, usize);

/// A NumPy-style index expression as an array of [`IndexItem`]s, for
/// [`Array::index`], in the syntax of ndarray's `s![]`: ranges are slices,
/// integers are indices, `range;k` takes every `k`-th element of the range
/// (a negative `k` walks it from its end), `NewAxis` is a new axis and
/// `...` an ellipsis.
///
/// | NumPy              | `s![]`                 |
/// |--------------------|------------------------|
/// | `x[1:5]`           | `s![1..5]`             |
/// | `x[:, ::2]`        | `s![.., ..;2]`         |
/// | `x[-1, 2:]`        | `s![-1, 2..]`          |
/// | `x[::-1]`          | `s![..;-1]`            |
/// | `x[5:0:-2]`        | `s![1..6;-2]`          |
/// | `x[..., None, 0]`  | `s![..., NewAxis, 0]`  |
///
/// Bounds are NumPy's (negative ones count from the end, out-of-range ones
/// are clipped); inclusive ranges (`a..=b`) end at `b`. Integers of any
/// common index type work; one beyond `i64::MAX` is out of bounds. As with
/// ndarray, a range with literal bounds of mixed sign (`1..-1`) trips
/// clippy's `reversed_empty_ranges` lint: name a bound (`let end = -1;`).
///
/// ```
/// use ndstream_engine::{s, Array, Chunks};
/// // x = np.arange(24.0).reshape(4, 6), in chunks of (2, 4)
/// let v = ndarray::Array::from_shape_fn((4, 6), |(i, j)| (i * 6 + j) as f64);
/// let x = Array::from_ndarray(v.into_dyn(), Chunks::from(&[2, 4][..])).unwrap();
/// let y = x.index(&s![1..3, ..;-2]).unwrap();
/// assert_eq!(y.shape(), &[2, 3]);
/// assert_eq!(y.compute().unwrap().to_f64_vec(), vec![11.0, 9.0, 7.0, 17.0, 15.0, 13.0]);
/// let z = x.index(&s![.., NewAxis, -1]).unwrap();
/// assert_eq!(z.shape(), &[4, 1]);
/// ```
#[macro_export]
macro_rules! s {
    (@items [$($out:expr,)*]) => { [$($out),*] };
    (@items [$($out:expr,)*] ... $(, $($rest:tt)*)?) => {
        $crate::s!(@items [$($out,)* $crate::IndexItem::Ellipsis,] $($($rest)*)?)
    };
    (@items [$($out:expr,)*] NewAxis $(, $($rest:tt)*)?) => {
        $crate::s!(@items [$($out,)* $crate::IndexItem::NewAxis,] $($($rest)*)?)
    };
    (@items [$($out:expr,)*] $e:expr ; $step:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@items [$($out,)* $crate::IntoSlice::into_slice($e, $step),] $($($rest)*)?)
    };
    (@items [$($out:expr,)*] $e:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@items [$($out,)* $crate::IntoIndexItem::into_index_item($e),] $($($rest)*)?)
    };
    ($($t:tt)*) => { $crate::s!(@items [] $($t)*) };
}

impl Array {
    /// NumPy-style indexing: slices (any non-zero step, negative bounds),
    /// integer indices, new axes and one ellipsis.
    ///
    /// ```
    /// use ndstream_engine::{arange, Chunks, DType, IndexItem};
    /// let x = arange(0.0, 10.0, 1.0, DType::I64, Chunks::from(&[3][..])).unwrap();
    /// let y = x.index(&[IndexItem::slice(Some(-2), None, -3)]).unwrap();
    /// assert_eq!(y.compute().unwrap().to_f64_vec(), vec![8.0, 5.0, 2.0]);
    /// ```
    ///
    /// # Errors
    /// Too many indices, an index out of bounds, a zero step, two ellipses.
    pub fn index(&self, items: &[IndexItem]) -> Result<Array> {
        if !self.known_len() {
            return Err(Error::UnknownLength { op: "index" });
        }
        let ndim = self.ndim();
        let consuming = items
            .iter()
            .filter(|i| matches!(i, IndexItem::Slice { .. } | IndexItem::Index(_)))
            .count();
        let ellipses = items
            .iter()
            .filter(|i| matches!(i, IndexItem::Ellipsis))
            .count();
        if ellipses > 1 {
            return Err(Error::invalid(
                "index",
                "index",
                "an index can only have one ellipsis ('...')",
            ));
        }
        if consuming > ndim {
            return Err(Error::invalid(
                "index",
                "index",
                format!(
                    "too many indices: array is {ndim}-dimensional, but {consuming} were indexed"
                ),
            ));
        }
        let mut expanded: Vec<IndexItem> = Vec::new();
        for it in items {
            if let IndexItem::Ellipsis = it {
                expanded.extend(std::iter::repeat_n(IndexItem::FULL, ndim - consuming));
            } else {
                expanded.push(*it);
            }
        }
        if ellipses == 0 {
            expanded.extend(std::iter::repeat_n(IndexItem::FULL, ndim - consuming));
        }
        let mut sel_items = Vec::new();
        let mut axis = 0;
        for it in expanded {
            match it {
                IndexItem::NewAxis => sel_items.push(SelItem::New),
                IndexItem::Slice { start, stop, step } => {
                    let sel = normalize_slice(start, stop, step, self.shape()[axis])?;
                    sel_items.push(SelItem::Keep { axis, sel });
                    axis += 1;
                }
                IndexItem::Index(i) => {
                    let n = self.shape()[axis];
                    let j = if i < 0 { i + n as i64 } else { i };
                    if j < 0 || j >= n as i64 {
                        return Err(Error::IndexOutOfBounds {
                            index: i,
                            axis,
                            size: n,
                        });
                    }
                    sel_items.push(SelItem::Drop {
                        axis,
                        index: j as u64,
                    });
                    axis += 1;
                }
                IndexItem::Ellipsis => {}
            }
        }
        select(self, sel_items)
    }

    /// The elements where `mask` is true, flattened in C order, like NumPy's
    /// `x[mask]`. The result has an unknown length: reduce it (`.sum()`),
    /// apply elementwise math to it, or compute it.
    ///
    /// # Errors
    /// A mask that is not bool or not the same shape as the array.
    pub fn mask(&self, mask: &Array) -> Result<Array> {
        if mask.dtype() != DType::Bool {
            return Err(Error::UnsupportedDType {
                op: "boolean mask",
                dtype: mask.dtype(),
            });
        }
        if mask.shape() != self.shape() || !self.known_len() || !mask.known_len() {
            return Err(Error::Shape {
                op: "boolean mask",
                left: self.shape().to_vec(),
                right: mask.shape().to_vec(),
            });
        }
        Ok(masked_node(self.clone(), mask.clone()))
    }

    /// Permute the axes (reverse them when `None`), like NumPy's `transpose`.
    ///
    /// # Errors
    /// A permutation that is not one of `0..ndim`.
    pub fn transpose(&self, perm: Option<&[usize]>) -> Result<Array> {
        let ndim = self.ndim();
        let perm: Vec<usize> = match perm {
            None => (0..ndim).rev().collect(),
            Some(p) => p.to_vec(),
        };
        let mut seen = vec![false; ndim];
        if perm.len() != ndim
            || perm
                .iter()
                .any(|&p| p >= ndim || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "transpose",
                "axes",
                format!("{perm:?} is not a permutation of {ndim} axes"),
            ));
        }
        let shape = perm.iter().map(|&p| self.shape()[p]).collect();
        let grid = ChunkGrid::from_axes(
            perm.iter()
                .map(|&p| self.grid().axes()[p].clone())
                .collect(),
        );
        Ok(Array::new(
            Op::Transpose {
                x: self.clone(),
                perm,
            },
            shape,
            self.dtype(),
            grid,
        ))
    }

    /// The upper triangle of the last two axes (elements with `j - i >= k` kept, others zero).
    ///
    /// # Errors
    /// Arrays with fewer than two dimensions.
    pub fn triu(&self, k: i64) -> Result<Array> {
        self.tri(k, true)
    }

    /// The lower triangle of the last two axes (elements with `j - i <= k` kept, others zero).
    ///
    /// # Errors
    /// Arrays with fewer than two dimensions.
    pub fn tril(&self, k: i64) -> Result<Array> {
        self.tri(k, false)
    }

    fn tri(&self, k: i64, upper: bool) -> Result<Array> {
        if self.ndim() < 2 {
            return Err(Error::invalid(
                "triu/tril",
                "x",
                "needs at least two dimensions",
            ));
        }
        Ok(Array::new(
            Op::Tri {
                x: self.clone(),
                k,
                upper,
            },
            self.shape().to_vec(),
            self.dtype(),
            self.grid().clone(),
        ))
    }

    /// The same data with a new chunk grid.
    ///
    /// # Errors
    /// Chunks that do not fit the shape.
    pub fn rechunk(&self, chunks: super::Chunks) -> Result<Array> {
        if !self.known_len() {
            return Err(Error::UnknownLength { op: "rechunk" });
        }
        let grid = chunks.resolve(self.shape(), self.dtype())?;
        if &grid == self.grid() {
            return Ok(self.clone());
        }
        Ok(Array::new(
            Op::Rechunk { x: self.clone() },
            self.shape().to_vec(),
            self.dtype(),
            grid,
        ))
    }
}

/// A Select node, merging with a Select below it so chains of slices stay one node.
pub(super) fn select(x: &Array, items: Vec<SelItem>) -> Result<Array> {
    if items
        .iter()
        .enumerate()
        .all(|(i, it)| matches!(it, SelItem::Keep { axis, sel } if *axis == i && sel.start == 0 && sel.step == 1 && sel.len == x.shape()[i]))
        && items.len() == x.ndim()
    {
        return Ok(x.clone());
    }
    if let Op::Select {
        x: inner,
        items: inner_items,
    } = &x.0.op
    {
        // Output axis j of `inner_items` (non-Drop items in order) feeds our input axis j.
        let outs: Vec<&SelItem> = inner_items
            .iter()
            .filter(|i| !matches!(i, SelItem::Drop { .. }))
            .collect();
        let mut merged: Vec<SelItem> = inner_items
            .iter()
            .filter(|i| matches!(i, SelItem::Drop { .. }))
            .cloned()
            .collect();
        let mut new_items = Vec::new();
        for it in &items {
            match it {
                SelItem::New => new_items.push(SelItem::New),
                SelItem::Keep { axis, sel } => match outs[*axis] {
                    SelItem::Keep {
                        axis: ia,
                        sel: isel,
                    } => new_items.push(SelItem::Keep {
                        axis: *ia,
                        sel: isel.compose(sel),
                    }),
                    SelItem::New => new_items.push(SelItem::New),
                    SelItem::Drop { .. } => unreachable!("filtered"),
                },
                SelItem::Drop { axis, index } => match outs[*axis] {
                    SelItem::Keep {
                        axis: ia,
                        sel: isel,
                    } => merged.push(SelItem::Drop {
                        axis: *ia,
                        index: isel.index(*index),
                    }),
                    SelItem::New => {}
                    SelItem::Drop { .. } => unreachable!("filtered"),
                },
            }
        }
        merged.extend(new_items);
        return select_node(inner, merged);
    }
    select_node(x, items)
}

fn select_node(x: &Array, items: Vec<SelItem>) -> Result<Array> {
    let mut shape = Vec::new();
    let mut axes = Vec::new();
    for it in &items {
        match it {
            SelItem::Keep { axis, sel } => {
                shape.push(sel.len);
                axes.push(select_axis_chunks(&x.grid().axes()[*axis], sel)?);
            }
            SelItem::New => {
                shape.push(1);
                axes.push(AxisChunks::regular(1, 1));
            }
            SelItem::Drop { .. } => {}
        }
    }
    Ok(Array::new(
        Op::Select {
            x: x.clone(),
            items,
        },
        shape,
        x.dtype(),
        ChunkGrid::from_axes(axes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndexItem as I;

    #[test]
    fn numpy_slices() {
        let s = normalize_slice(None, None, -1, 5).unwrap();
        assert_eq!((s.start, s.step, s.len), (4, -1, 5));
        let s = normalize_slice(Some(-2), None, 1, 5).unwrap();
        assert_eq!((s.start, s.len), (3, 2));
        let s = normalize_slice(Some(10), Some(20), 1, 5).unwrap();
        assert_eq!(s.len, 0);
        let s = normalize_slice(None, Some(0), -2, 5).unwrap();
        assert_eq!((s.start, s.len), (4, 2)); // 4, 2
        let s = normalize_slice(None, None, 100, 20000).unwrap();
        assert_eq!(s.len, 200);
        assert!(normalize_slice(None, None, 0, 5).is_err());
    }

    #[test]
    fn strided_selection_chunks() {
        let ax = AxisChunks::regular(10, 4); // 0..4, 4..8, 8..10
        let s = AxisSel {
            start: 1,
            step: 3,
            len: 3,
        }; // 1, 4, 7
        assert_eq!(select_axis_chunks(&ax, &s).unwrap().sizes(), vec![1, 2]);
        let s = AxisSel {
            start: 9,
            step: -4,
            len: 3,
        }; // 9, 5, 1
        assert_eq!(select_axis_chunks(&ax, &s).unwrap().sizes(), vec![1, 1, 1]);
    }

    /// A strided selection of an axis of 190 million chunks is refused at
    /// once, naming the remedy, instead of listing its chunks (gigabytes:
    /// found by the `expr` fuzz target); an aligned step-1 slice of it
    /// stays regular and is allowed.
    #[test]
    fn a_selection_of_too_many_chunks_is_refused() {
        let x = crate::zeros(
            &[6_103_515_625, 301],
            crate::DType::F64,
            crate::Chunks::Shape(vec![32, 20]),
        )
        .unwrap();
        let e = x
            .index(&[I::slice(None, None, 8), I::slice(None, None, -3)])
            .unwrap_err();
        assert!(e.to_string().contains("rechunk"), "{e}");
        let y = x.index(&[I::slice(Some(64), None, 1)]).unwrap();
        assert_eq!(y.shape(), &[6_103_515_561, 301]);
        assert_eq!(y.grid().axes()[0].max_size(), 32);
        // Below the limit, an unaligned or strided selection is listed.
        let z = crate::zeros(&[1000], crate::DType::F64, crate::Chunks::Shape(vec![10])).unwrap();
        let w = z.index(&[I::slice(Some(5), None, 3)]).unwrap();
        assert_eq!(w.grid().axes()[0].sizes().iter().sum::<u64>(), 332);
    }

    /// `range;-k` is the range's elements walked from the end, every k-th
    /// (NumPy's `x[a:b][::-k]`), for ranges of every form and sign.
    #[test]
    fn a_negative_step_walks_the_range_from_its_end() {
        let n = 7i64;
        let x = crate::arange(
            0.0,
            n as f64,
            1.0,
            DType::I64,
            crate::Chunks::from(&[3][..]),
        )
        .unwrap();
        let values = |items: &[IndexItem]| x.index(items).unwrap().compute().unwrap().to_f64_vec();
        for a in -8..9i64 {
            for b in -8..9i64 {
                for k in 1..4i64 {
                    let forward = values(&crate::s![a..b]);
                    let want: Vec<f64> =
                        forward.iter().rev().step_by(k as usize).copied().collect();
                    assert_eq!(values(&crate::s![a..b;-k]), want, "{a}..{b};-{k}");
                    let from: Vec<f64> = values(&crate::s![a..])
                        .into_iter()
                        .rev()
                        .step_by(k as usize)
                        .collect();
                    assert_eq!(values(&crate::s![a..;-k]), from, "{a}..;-{k}");
                    let to: Vec<f64> = values(&crate::s![..b])
                        .into_iter()
                        .rev()
                        .step_by(k as usize)
                        .collect();
                    assert_eq!(values(&crate::s![..b;-k]), to, "..{b};-{k}");
                }
            }
        }
    }

    #[test]
    fn the_s_macro_spells_numpy_index_expressions() {
        let sl = I::slice;
        assert_eq!(crate::s![1..5], [sl(Some(1), Some(5), 1)]);
        assert_eq!(crate::s![.., ..;2], [I::FULL, sl(None, None, 2)]);
        assert_eq!(crate::s![-1, 2..], [I::Index(-1), sl(Some(2), None, 1)]);
        assert_eq!(crate::s![..;-1], [sl(None, None, -1)]);
        assert_eq!(crate::s![1..6;-2], [sl(Some(5), Some(0), -2)]);
        // Literal bounds of mixed sign (`2..-1`) trip clippy's
        // reversed_empty_ranges lint, as with ndarray: name one of them.
        let last = -1;
        assert_eq!(crate::s![2..last;-1], [sl(Some(-2), Some(1), -1)]);
        assert_eq!(crate::s![..3;-1], [sl(Some(2), None, -1)]);
        assert_eq!(crate::s![-2..;-1], [sl(None, Some(-3), -1)]);
        assert_eq!(crate::s![0..0;-1], [sl(Some(0), Some(0), -1)]);
        assert_eq!(crate::s![1..=3;-1], [sl(Some(3), Some(0), -1)]);
        assert_eq!(
            crate::s![..., NewAxis, 0],
            [I::Ellipsis, I::NewAxis, I::Index(0)]
        );
        assert_eq!(
            crate::s![..=2, 1..=last,],
            [sl(None, Some(3), 1), sl(Some(1), None, 1)]
        );
        let (i, n): (usize, u64) = (3, u64::MAX);
        assert_eq!(
            crate::s![i, ..n],
            [I::Index(3), sl(None, Some(i64::MAX), 1)]
        );
        let empty: [IndexItem; 0] = crate::s![];
        assert!(empty.is_empty());
    }
}
