//! Chunk grids and strided selections: the geometry of chunked arrays.
//!
//! A [`ChunkGrid`] splits an array's shape into chunks along each axis,
//! either regularly (every chunk `size` long, the last one ragged) or
//! irregularly (Dask-style explicit sizes per axis). A chunk is named by its
//! [`ChunkIndex`] (one index per axis) or by its linear C-order number.
//!
//! An [`AxisSel`] is a strided run of indices along one axis
//! (`start, start+step, ...`, `len` of them, `step` may be negative); a
//! selection (`&[AxisSel]`) is the unit in which the engine asks a node for
//! data. Plain regions are selections with step 1.

use std::fmt;
use std::ops::Range;

/// Index of a chunk: one chunk number per axis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkIndex(pub Vec<u64>);

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{c}")?;
        }
        if self.0.len() == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

/// An axis of an array (NumPy's `axis=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Axis(pub usize);

/// How one axis is split into chunks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AxisChunks {
    /// Chunks of `size` elements; the last may be shorter.
    Regular { size: u64, len: u64 },
    /// Explicit chunk boundaries: `offsets[0] == 0`, `offsets[n] == len`,
    /// strictly increasing (no empty chunks except for a zero-length axis).
    Irregular { offsets: Vec<u64> },
}

impl AxisChunks {
    /// Regular chunks of `size` (at least 1) over `len` elements.
    pub fn regular(len: u64, size: u64) -> AxisChunks {
        AxisChunks::Regular {
            size: size.max(1),
            len,
        }
    }

    /// Chunks of the given sizes; zero sizes are dropped.
    pub fn from_sizes(sizes: &[u64]) -> AxisChunks {
        let mut offsets = vec![0];
        for &s in sizes {
            if s > 0 {
                offsets.push(offsets[offsets.len() - 1] + s);
            }
        }
        // Collapse to Regular when it is one (cheaper, and equality compares better).
        let len = offsets[offsets.len() - 1];
        if offsets.len() >= 2 {
            let first = offsets[1];
            let regular = offsets.windows(2).enumerate().all(|(i, w)| {
                w[1] - w[0] == first || (i == offsets.len() - 2 && w[1] - w[0] < first)
            });
            if regular {
                return AxisChunks::Regular { size: first, len };
            }
        }
        AxisChunks::Irregular { offsets }
    }

    /// Length of the axis.
    pub fn len(&self) -> u64 {
        match self {
            AxisChunks::Regular { len, .. } => *len,
            AxisChunks::Irregular { offsets } => offsets[offsets.len() - 1],
        }
    }

    /// True for a zero-length axis.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of chunks (0 for a zero-length axis).
    pub fn count(&self) -> u64 {
        match self {
            AxisChunks::Regular { size, len } => len.div_ceil(*size),
            AxisChunks::Irregular { offsets } => offsets.len() as u64 - 1,
        }
    }

    /// The element range of chunk `i`.
    pub fn range(&self, i: u64) -> Range<u64> {
        match self {
            AxisChunks::Regular { size, len } => (i * size).min(*len)..((i + 1) * size).min(*len),
            AxisChunks::Irregular { offsets } => offsets[i as usize]..offsets[i as usize + 1],
        }
    }

    /// The chunk holding element `x` (x < len).
    pub fn chunk_of(&self, x: u64) -> u64 {
        match self {
            AxisChunks::Regular { size, .. } => x / size,
            AxisChunks::Irregular { offsets } => (offsets.partition_point(|&o| o <= x) - 1) as u64,
        }
    }

    /// Chunks overlapping the element range `r` (empty if `r` is empty).
    pub fn chunks_overlapping(&self, r: &Range<u64>) -> Range<u64> {
        if r.start >= r.end {
            return 0..0;
        }
        self.chunk_of(r.start)..self.chunk_of(r.end - 1) + 1
    }

    /// Chunk sizes in order.
    pub fn sizes(&self) -> Vec<u64> {
        (0..self.count())
            .map(|i| {
                let r = self.range(i);
                r.end - r.start
            })
            .collect()
    }

    /// The largest chunk length.
    pub fn max_size(&self) -> u64 {
        match self {
            AxisChunks::Regular { size, len } => (*size).min(*len),
            AxisChunks::Irregular { offsets } => {
                offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
            }
        }
    }
}

/// The chunking of an n-dimensional array.
///
/// ```
/// use ndstream_engine::ChunkGrid;
/// let g = ChunkGrid::regular(&[10, 7], &[4, 7]);
/// assert_eq!(g.grid_shape(), vec![3, 1]);
/// assert_eq!(g.num_chunks(), 3);
/// assert_eq!(g.chunk_region(&[2, 0]), vec![8..10, 0..7]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkGrid {
    axes: Vec<AxisChunks>,
}

impl ChunkGrid {
    /// Regular chunks (`chunk[i]` clamped to at least 1).
    pub fn regular(shape: &[u64], chunk: &[u64]) -> ChunkGrid {
        assert_eq!(shape.len(), chunk.len(), "chunk rank must match shape rank");
        ChunkGrid {
            axes: shape
                .iter()
                .zip(chunk)
                .map(|(&n, &c)| AxisChunks::regular(n, c))
                .collect(),
        }
    }

    /// From per-axis splits.
    pub fn from_axes(axes: Vec<AxisChunks>) -> ChunkGrid {
        ChunkGrid { axes }
    }

    /// Dask-style explicit chunk sizes per axis, e.g. `[[1000, 1000, 500], [7]]`.
    pub fn from_sizes(sizes: &[Vec<u64>]) -> ChunkGrid {
        ChunkGrid {
            axes: sizes.iter().map(|s| AxisChunks::from_sizes(s)).collect(),
        }
    }

    /// A single chunk covering the whole shape.
    pub fn single(shape: &[u64]) -> ChunkGrid {
        ChunkGrid::regular(shape, &shape.iter().map(|&n| n.max(1)).collect::<Vec<_>>())
    }

    /// Chunks of about `target_bytes` each (at most that), as square as
    /// the shape allows, like Dask's `chunks="auto"`.
    pub fn auto(shape: &[u64], itemsize: usize, target_bytes: u64) -> ChunkGrid {
        let ndim = shape.len();
        if ndim == 0 {
            return ChunkGrid { axes: vec![] };
        }
        let target_elems = (target_bytes / itemsize.max(1) as u64).max(1);
        let mut chunk: Vec<u64> = shape.iter().map(|&n| n.max(1)).collect();
        let elems = |c: &[u64]| c.iter().map(|&x| x as u128).product::<u128>();
        // Halve the largest axis until the chunk fits, then grow the axis
        // halved last back up to the target: square-ish chunks of about the
        // target size.
        let mut last = None;
        while elems(&chunk) > target_elems as u128 {
            let i = (0..ndim)
                .max_by_key(|&i| (chunk[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            if chunk[i] == 1 {
                break;
            }
            chunk[i] = chunk[i].div_ceil(2);
            last = Some(i);
        }
        if let Some(i) = last {
            let others = elems(&chunk) / chunk[i] as u128;
            let fit = (target_elems as u128 / others.max(1)) as u64;
            chunk[i] = fit.clamp(chunk[i], shape[i].max(1));
        }
        ChunkGrid::regular(shape, &chunk)
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.axes.len()
    }

    /// The array shape.
    pub fn shape(&self) -> Vec<u64> {
        self.axes.iter().map(|a| a.len()).collect()
    }

    /// Per-axis splits.
    pub fn axes(&self) -> &[AxisChunks] {
        &self.axes
    }

    /// Chunks per axis.
    pub fn grid_shape(&self) -> Vec<u64> {
        self.axes.iter().map(|a| a.count()).collect()
    }

    /// Total number of chunks (1 for a 0-d array).
    pub fn num_chunks(&self) -> u64 {
        self.axes.iter().map(|a| a.count()).product()
    }

    /// `Ok` if `idx` names a chunk of this grid (right rank, in range), else
    /// the words for an error that names the grid.
    ///
    /// ```
    /// use ndstream_engine::ChunkGrid;
    /// let g = ChunkGrid::regular(&[10, 7], &[4, 4]);
    /// assert!(g.check_chunk(&[2, 1]).is_ok());
    /// assert_eq!(g.check_chunk(&[3, 0]).unwrap_err(), "no such chunk in a grid of [3, 2] chunks");
    /// ```
    pub fn check_chunk(&self, idx: &[u64]) -> std::result::Result<(), String> {
        if idx.len() == self.ndim() && idx.iter().zip(&self.axes).all(|(&i, a)| i < a.count()) {
            Ok(())
        } else {
            Err(format!(
                "no such chunk in a grid of {:?} chunks",
                self.grid_shape()
            ))
        }
    }

    /// The element region of a chunk.
    pub fn chunk_region(&self, idx: &[u64]) -> Vec<Range<u64>> {
        self.axes
            .iter()
            .zip(idx)
            .map(|(a, &i)| a.range(i))
            .collect()
    }

    /// The shape of a chunk (edge chunks are smaller).
    pub fn chunk_shape(&self, idx: &[u64]) -> Vec<u64> {
        self.chunk_region(idx)
            .iter()
            .map(|r| r.end - r.start)
            .collect()
    }

    /// The largest chunk shape along each axis.
    pub fn max_chunk_shape(&self) -> Vec<u64> {
        self.axes.iter().map(|a| a.max_size()).collect()
    }

    /// Elements in the largest chunk.
    pub fn max_chunk_elems(&self) -> u64 {
        self.max_chunk_shape().iter().product()
    }

    /// The chunk index of linear chunk number `n` (C order).
    pub fn unravel(&self, mut n: u64) -> Vec<u64> {
        let gs = self.grid_shape();
        let mut idx = vec![0; gs.len()];
        for d in (0..gs.len()).rev() {
            idx[d] = n % gs[d].max(1);
            n /= gs[d].max(1);
        }
        idx
    }

    /// The linear chunk number (C order) of a chunk index.
    pub fn ravel(&self, idx: &[u64]) -> u64 {
        let gs = self.grid_shape();
        idx.iter().zip(&gs).fold(0, |acc, (&i, &g)| acc * g + i)
    }

    /// Ranges of chunk indices per axis that overlap `region`.
    pub fn chunks_overlapping(&self, region: &[Range<u64>]) -> Vec<Range<u64>> {
        self.axes
            .iter()
            .zip(region)
            .map(|(a, r)| a.chunks_overlapping(r))
            .collect()
    }

    /// Sizes per axis, Dask's `.chunks`.
    pub fn sizes(&self) -> Vec<Vec<u64>> {
        self.axes.iter().map(|a| a.sizes()).collect()
    }
}

impl fmt::Display for ChunkGrid {
    /// Like Dask's chunksize: the largest chunk shape, e.g. `(1000, 1000)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        let m = self.max_chunk_shape();
        for (i, c) in m.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{c}")?;
        }
        if m.len() == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

/// A strided run of indices along one axis: `start + i * step` for `i in 0..len`.
///
/// `step` is never 0. With a negative step the run goes down from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AxisSel {
    pub start: u64,
    pub step: i64,
    pub len: u64,
}

impl AxisSel {
    /// The contiguous range `r` (step 1).
    pub fn range(r: Range<u64>) -> AxisSel {
        AxisSel {
            start: r.start,
            step: 1,
            len: r.end.saturating_sub(r.start),
        }
    }

    /// The whole axis of length `n`.
    pub fn full(n: u64) -> AxisSel {
        AxisSel::range(0..n)
    }

    /// The `i`-th selected index.
    #[inline]
    pub fn index(&self, i: u64) -> u64 {
        (self.start as i64 + i as i64 * self.step) as u64
    }

    /// The smallest and one-past-largest index touched (empty for len 0).
    pub fn bounds(&self) -> Range<u64> {
        if self.len == 0 {
            return self.start..self.start;
        }
        let last = self.index(self.len - 1);
        self.start.min(last)..self.start.max(last) + 1
    }

    /// True if this is a contiguous ascending run.
    pub fn is_contiguous(&self) -> bool {
        self.step == 1 || self.len <= 1
    }

    /// The sub-run `i in r` of this run.
    pub fn sub(&self, r: Range<u64>) -> AxisSel {
        AxisSel {
            start: if r.start < self.len || self.len == 0 {
                self.index(r.start.min(self.len.saturating_sub(1)))
            } else {
                self.start
            },
            step: self.step,
            len: r.end.min(self.len).saturating_sub(r.start),
        }
    }

    /// Compose: select `outer` (positions within this run) from this run.
    pub fn compose(&self, outer: &AxisSel) -> AxisSel {
        AxisSel {
            start: if outer.len == 0 {
                self.start
            } else {
                self.index(outer.start)
            },
            step: self.step * outer.step,
            len: outer.len,
        }
    }

    /// Positions `i` (as a range over `0..len`) whose index falls in `r`,
    /// and the matching sub-run. Works for either step sign.
    pub fn intersect(&self, r: &Range<u64>) -> Range<u64> {
        if self.len == 0 || r.start >= r.end {
            return 0..0;
        }
        let (s, st) = (self.start as i64, self.step);
        let (lo, hi) = (r.start as i64, r.end as i64 - 1);
        // Solve lo <= s + i*st <= hi for integer i in [0, len).
        let (a, b) = if st > 0 {
            (div_ceil_i(lo - s, st), div_floor_i(hi - s, st))
        } else {
            (div_ceil_i(hi - s, st), div_floor_i(lo - s, st))
        };
        let a = a.max(0);
        let b = b.min(self.len as i64 - 1);
        if a > b {
            0..0
        } else {
            a as u64..b as u64 + 1
        }
    }
}

fn div_floor_i(a: i64, b: i64) -> i64 {
    let (q, r) = (a / b, a % b);
    if r != 0 && ((r < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

fn div_ceil_i(a: i64, b: i64) -> i64 {
    -div_floor_i(-a, b)
}

/// A selection over every axis.
pub type Selection = Vec<AxisSel>;

/// The selection of a plain region.
pub fn region_sel(region: &[Range<u64>]) -> Selection {
    region.iter().cloned().map(AxisSel::range).collect()
}

/// The shape of a selection.
pub fn sel_shape(sel: &[AxisSel]) -> Vec<usize> {
    sel.iter().map(|s| s.len as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn irregular_axis() {
        let a = AxisChunks::from_sizes(&[3, 5, 2]);
        assert_eq!(a.count(), 3);
        assert_eq!(a.range(1), 3..8);
        assert_eq!(a.chunk_of(7), 1);
        assert_eq!(a.chunk_of(8), 2);
        assert_eq!(a.chunks_overlapping(&(2..9)), 0..3);
        assert_eq!(
            AxisChunks::from_sizes(&[4, 4, 2]),
            AxisChunks::regular(10, 4)
        );
    }

    #[test]
    fn auto_chunks_fit_target() {
        let g = ChunkGrid::auto(&[20000, 20000], 8, 8 << 20);
        let m = g.max_chunk_shape();
        assert!(m[0] * m[1] * 8 <= 8 << 20, "{m:?}");
        assert!(m[0] * m[1] * 8 >= 2 << 20, "{m:?}");
        let g = ChunkGrid::auto(&[1_000_000_000], 4, 4_000_000);
        assert_eq!(g.max_chunk_shape(), vec![1_000_000]);
        let g = ChunkGrid::auto(&[10, 10], 8, 1 << 30);
        assert_eq!(g.num_chunks(), 1);
    }

    #[test]
    fn negative_step_intersect() {
        // indices 9, 7, 5, 3, 1
        let s = AxisSel {
            start: 9,
            step: -2,
            len: 5,
        };
        assert_eq!(s.bounds(), 1..10);
        assert_eq!(s.intersect(&(4..8)), 1..3); // 7, 5
        assert_eq!(s.intersect(&(0..2)), 4..5); // 1
        assert_eq!(s.intersect(&(10..12)), 0..0);
    }

    fn axis_strategy() -> impl Strategy<Value = AxisChunks> {
        prop_oneof![
            (0u64..50, 1u64..12).prop_map(|(n, c)| AxisChunks::regular(n, c)),
            proptest::collection::vec(1u64..9, 0..8).prop_map(|v| AxisChunks::from_sizes(&v)),
        ]
    }

    proptest! {
        #[test]
        fn chunks_tile_the_axis(a in axis_strategy()) {
            let mut next = 0;
            for i in 0..a.count() {
                let r = a.range(i);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                for x in r.clone() {
                    prop_assert_eq!(a.chunk_of(x), i);
                }
                next = r.end;
            }
            prop_assert_eq!(next, a.len());
        }

        #[test]
        fn overlap_is_exact(a in axis_strategy(), lo in 0u64..60, w in 0u64..60) {
            let n = a.len();
            let r = lo.min(n)..(lo + w).min(n);
            let got = a.chunks_overlapping(&r);
            for i in 0..a.count() {
                let c = a.range(i);
                let overlaps = r.start < r.end && c.start < r.end && r.start < c.end;
                prop_assert_eq!(overlaps, got.contains(&i), "chunk {} {:?} vs {:?}", i, c, r);
            }
        }

        #[test]
        fn strided_intersect_is_exact(start in 0u64..40, step in prop_oneof![-7i64..=-1, 1i64..=7], len in 0u64..12, lo in 0u64..45, w in 0u64..20) {
            // keep indices non-negative
            let len = if step < 0 { len.min(start / (-step) as u64 + 1) } else { len };
            let s = AxisSel { start, step, len };
            let r = lo..lo + w;
            let got = s.intersect(&r);
            for i in 0..len {
                prop_assert_eq!(r.contains(&s.index(i)), got.contains(&i));
            }
        }

        #[test]
        fn compose_matches_indices(start in 0u64..20, step in 1i64..5, len in 1u64..10, os in 0u64..10, ostep in prop_oneof![-3i64..=-1, 1i64..=3], olen in 0u64..5) {
            let inner = AxisSel { start, step, len };
            let os = os % len;
            let olen = if ostep > 0 { olen.min((len - 1 - os) / ostep as u64 + 1) } else { olen.min(os / (-ostep) as u64 + 1) };
            let outer = AxisSel { start: os, step: ostep, len: olen };
            let c = inner.compose(&outer);
            for i in 0..olen {
                prop_assert_eq!(c.index(i), inner.index(outer.index(i)));
            }
        }

        #[test]
        fn ravel_unravel(sizes in proptest::collection::vec(1u64..6, 1..4)) {
            let shape: Vec<u64> = sizes.iter().map(|s| s * 3).collect();
            let g = ChunkGrid::regular(&shape, &sizes);
            for n in 0..g.num_chunks() {
                prop_assert_eq!(g.ravel(&g.unravel(n)), n);
            }
        }
    }
}
