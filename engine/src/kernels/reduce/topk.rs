//! `TopK` / `ArgTopK` state: for every kept element, the best `|k|`
//! `(value, global index)` candidates seen so far along the one reduced axis,
//! best first.
//!
//! Order: `k > 0` ranks values descending, `k < 0` ascending; NaN ranks as the
//! largest value (NumPy's sort order), and equal values rank by lower global
//! index first. The order is total (indexes are unique), so which selection
//! algorithm runs never changes the result, and merging two sorted candidate
//! lists is exact.

use std::cmp::Ordering;

use ndarray::{ArrayD, Axis, IxDyn};

use super::layout::Num;
use crate::block::{Block, BlockElement};
use crate::error::{Error, Result};

/// Candidates of a TopK reduction (see the module docs).
#[derive(Clone, Debug)]
pub(super) struct Candidates {
    /// 1-D, `kept_n * len` values: kept element `j`'s candidates are
    /// `j * len .. (j + 1) * len`, best first.
    vals: Block,
    /// Global indexes along the axis, laid out as `vals`.
    idx: Vec<i64>,
    /// Candidates per kept element: `min(|k|, seen)`.
    len: usize,
    /// `|k|`.
    kk: usize,
    largest: bool,
    /// Elements seen along the axis (the same for every kept element).
    seen: u64,
    /// Position of the axis in the input (and in the result).
    axis: usize,
}

/// NumPy's sort order: NaN above everything, NaNs equal to each other.
#[inline]
fn total<T: Num>(a: T, b: T) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()),
    }
}

/// `Less` when `a` ranks before `b`.
#[inline]
fn rank<T: Num>(largest: bool, a: &(T, i64), b: &(T, i64)) -> Ordering {
    let o = total(a.0, b.0);
    let o = if largest { o.reverse() } else { o };
    o.then(a.1.cmp(&b.1))
}

impl Candidates {
    /// The candidates of one tile `a`, reduced along `axis`, whose first
    /// element along `axis` has global index `origin`.
    pub fn tile<T: Num>(a: &ArrayD<T>, axis: usize, k: i64, origin: u64) -> Candidates {
        let kk = k.unsigned_abs() as usize;
        let largest = k > 0;
        let n = a.shape()[axis];
        let len = kk.min(n);
        let kept_n: usize = a.len() / n.max(1);
        let mut vals: Vec<T> = Vec::with_capacity(kept_n * len);
        let mut idx: Vec<i64> = Vec::with_capacity(kept_n * len);
        let mut buf: Vec<(T, i64)> = Vec::with_capacity(n);
        let cmp = |x: &(T, i64), y: &(T, i64)| rank(largest, x, y);
        if n > 0 {
            for lane in a.lanes(Axis(axis)) {
                buf.clear();
                buf.extend(
                    lane.iter()
                        .enumerate()
                        .map(|(i, &x)| (x, origin as i64 + i as i64)),
                );
                if len < buf.len() {
                    if len > 0 {
                        buf.select_nth_unstable_by(len - 1, cmp);
                    }
                    buf.truncate(len);
                }
                buf.sort_unstable_by(cmp);
                for &(v, i) in &buf {
                    vals.push(v);
                    idx.push(i);
                }
            }
        }
        Candidates {
            vals: T::into_block(ndarray::Array1::from(vals).into_dyn()),
            idx,
            len,
            kk,
            largest,
            seen: n as u64,
            axis,
        }
    }

    /// Bytes of state per candidate (value and index).
    pub fn bytes_per_candidate(elem_size: usize) -> usize {
        elem_size + 8
    }

    /// Fold `next` into `self`: per kept element, merge the two sorted lists
    /// and keep the best `|k|`.
    pub fn merge(&mut self, next: Candidates) -> Result<()> {
        if self.kk != next.kk || self.largest != next.largest || self.axis != next.axis {
            return Err(Error::invalid(
                "topk",
                "partial",
                "merging partials of different topk reductions",
            ));
        }
        let la = self.len;
        let lb = next.len;
        let len = self.kk.min(la + lb);
        let kept_a = self.idx.len().checked_div(la);
        let kept_b = next.idx.len().checked_div(lb);
        if let (Some(a), Some(b)) = (kept_a, kept_b) {
            if a != b {
                return Err(Error::invalid(
                    "topk",
                    "partial",
                    "merging partials of different shapes",
                ));
            }
        }
        let kept_n = kept_a.or(kept_b).unwrap_or(0);
        let largest = self.largest;
        let mut idx = Vec::with_capacity(kept_n * len);
        let vals = crate::with_block!(&self.vals, va, T => {
            let vb = T::from_block(next.vals).map_err(|_| {
                Error::invalid("topk", "partial", "merging partials of different dtypes")
            })?;
            let (Some(va), Some(vb)) = (va.as_slice(), vb.as_slice()) else {
                return Err(Error::invalid("topk", "partial", "candidate storage is not contiguous"));
            };
            let mut out: Vec<T> = Vec::with_capacity(kept_n * len);
            for j in 0..kept_n {
                let (mut p, mut q) = (0usize, 0usize);
                for _ in 0..len {
                    let take_a = if p == la {
                        false
                    } else if q == lb {
                        true
                    } else {
                        let x = (va[j * la + p], self.idx[j * la + p]);
                        let y = (vb[j * lb + q], next.idx[j * lb + q]);
                        rank(largest, &x, &y) != Ordering::Greater
                    };
                    if take_a {
                        out.push(va[j * la + p]);
                        idx.push(self.idx[j * la + p]);
                        p += 1;
                    } else {
                        out.push(vb[j * lb + q]);
                        idx.push(next.idx[j * lb + q]);
                        q += 1;
                    }
                }
            }
            T::into_block(ndarray::Array1::from(out).into_dyn())
        });
        self.vals = vals;
        self.idx = idx;
        self.len = len;
        self.seen += next.seen;
        Ok(())
    }

    /// The result: values (`want_index == false`) or global indexes, shaped as
    /// `kept` with an axis of length `|k|` inserted at the reduced axis's
    /// position.
    ///
    /// # Errors
    /// Fewer than `|k|` elements were seen along the axis.
    pub fn finish(self, kept: &[usize], want_index: bool) -> Result<Block> {
        if self.seen < self.kk as u64 {
            return Err(Error::invalid(
                "topk",
                "k",
                format!("k={} but the axis has only {} elements", self.kk, self.seen),
            ));
        }
        let mut flat_shape = kept.to_vec();
        flat_shape.push(self.kk);
        let nd = flat_shape.len();
        let mut perm: Vec<usize> = (0..self.axis).collect();
        perm.push(nd - 1);
        perm.extend(self.axis..nd - 1);
        fn place<T: Clone>(v: Vec<T>, shape: &[usize], perm: &[usize]) -> Result<ArrayD<T>> {
            let a = ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| {
                Error::invalid("topk", "partial", format!("inconsistent state: {e}"))
            })?;
            Ok(a.permuted_axes(IxDyn(perm))
                .as_standard_layout()
                .into_owned())
        }
        if want_index {
            return Ok(Block::from(place(self.idx, &flat_shape, &perm)?));
        }
        Ok(crate::with_block!(self.vals, a, T => {
            let v: Vec<T> = a.into_iter().collect();
            T::into_block(place(v, &flat_shape, &perm)?)
        }))
    }
}
