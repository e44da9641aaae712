//! `TopK` / `ArgTopK` state: for every kept element, the best `|k|`
//! `(value, global index)` candidates seen so far along the one reduced axis,
//! best first.
//!
//! Order: `k > 0` ranks values descending, `k < 0` ascending; NaN ranks as the
//! largest value (NumPy's sort order), and equal values rank by lower global
//! index first. The order is total (indexes are unique), so which selection
//! algorithm runs never changes the result, and merging two sorted candidate
//! lists is exact.
//!
//! The family ([`TopK`]) takes exactly one reduced axis and no mask; its
//! result keeps the axis, with `|k|` elements.

use std::cmp::Ordering;

use ndarray::{ArrayD, Axis, IxDyn};

use super::family::{Reduction, Tile};
use super::layout::Num;
use super::wire::{inconsistent, Reader, Writer};
use super::{foreign, ReduceOp};
use crate::block::{Block, BlockElement};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The family (see the module docs); its state is [`Candidates`].
#[derive(Debug)]
pub(super) struct TopK;

/// `k` of a TopK op.
fn k_of(op: ReduceOp) -> Result<i64> {
    match op {
        ReduceOp::TopK { k } | ReduceOp::ArgTopK { k } => Ok(k),
        _ => Err(foreign(op)),
    }
}

impl Reduction for TopK {
    type State = Candidates;

    fn result_dtype(op: ReduceOp, input: DType) -> DType {
        if matches!(op, ReduceOp::ArgTopK { .. }) {
            DType::I64
        } else {
            input
        }
    }

    fn bytes_per_elem(_op: ReduceOp, input: DType) -> usize {
        Candidates::bytes_per_candidate(input.size())
    }

    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<Candidates> {
        let k = k_of(op)?;
        if t.axes.len() != 1 || k == 0 {
            return Err(Error::invalid(
                "topk",
                "k",
                format!(
                    "topk needs exactly one axis and k != 0 (got axes {:?}, k={k})",
                    t.axes
                ),
            ));
        }
        if t.mask.is_some() {
            return Err(Error::UnknownLength { op: "topk" });
        }
        let axis = t.axes[0];
        Ok(Candidates::tile::<T>(t.a, axis, k, t.origin[axis]))
    }

    fn merge(_op: ReduceOp, acc: &mut Candidates, next: Candidates) -> Result<()> {
        acc.merge(next)
    }

    fn finalize(op: ReduceOp, _input: DType, c: Candidates, kept: &[usize]) -> Result<Block> {
        c.finish(kept, matches!(op, ReduceOp::ArgTopK { .. }))
    }

    /// The axis (u32), the candidates per kept element and the elements
    /// seen (u64), then the candidates' values (values of the input dtype)
    /// and global indexes (i64s), kept element by kept element, best first.
    fn encode(c: &Candidates, w: &mut Writer) {
        w.u32(c.axis as u32);
        w.u64(c.len as u64);
        w.u64(c.seen);
        w.block(&c.vals);
        w.i64s(&c.idx);
    }

    fn decode(
        op: ReduceOp,
        input: DType,
        kept: &[usize],
        r: &mut Reader<'_>,
    ) -> Result<Candidates> {
        let k = k_of(op)?;
        let kk = usize::try_from(k.unsigned_abs())
            .map_err(|_| inconsistent(format!("topk: k={k} too large")))?;
        let axis = r.u32()? as usize;
        if axis > kept.len() {
            return Err(inconsistent(format!(
                "topk: axis {axis} of a result of {} dimensions",
                kept.len() + 1
            )));
        }
        let len =
            usize::try_from(r.u64()?).map_err(|_| inconsistent("topk: too many candidates"))?;
        let seen = r.u64()?;
        if len as u64 != (kk as u64).min(seen) {
            return Err(inconsistent(format!(
                "topk: {len} candidates for k={k} after {seen} elements"
            )));
        }
        let n = kept
            .iter()
            .product::<usize>()
            .checked_mul(len)
            .ok_or_else(|| inconsistent("topk: too many candidates"))?;
        Ok(Candidates {
            vals: r.block(input, n)?,
            idx: r.i64s(n)?,
            len,
            kk,
            largest: k > 0,
            seen,
            axis,
        })
    }
}

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
        let len = self.kk.min(la.saturating_add(lb));
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
        // Wrapping: real counts never come near the limit, and a state read
        // from bytes must not panic.
        self.seen = self.seen.wrapping_add(next.seen);
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
