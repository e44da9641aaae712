//! [`Array::reshape`]: NumPy's reshape (C order, one `-1` inferred) with
//! Dask's output chunks.
//!
//! A reshape that only adds or drops length-1 axes is a plain
//! [`Op::Select`] (new axes and integer indices). Any other is an
//! [`Op::Reshape`] node whose output chunks are those Dask's `reshape`
//! gives (`dask/array/reshape.py`, `reshape_rechunk`, ported in
//! [`dask_rechunk`]): each output chunk is, axis group by axis group, a
//! contiguous run of C-order positions, so it is made from one rectangular
//! block of the input. Dask rechunks the input to those blocks; here the
//! evaluator reads each output chunk's block straight from the input at
//! whatever chunking it has (`eval/reshape.rs`), so no rechunk node is
//! needed. Where Dask refuses (axes split unevenly, `(6, 4) -> (4, 6)`
//! with several chunks) the reshape still works: each such group of axes
//! is cut into runs of a size both shapes hold as blocks ([`own_chunks`]).
//!
//! `Op::Reshape` keeps `read`, the largest input block one output chunk
//! reads, per input axis: what the planner reserves for it.

use super::{Array, Op, SelItem};
use crate::error::{Error, Result};
use crate::grid::{AxisSel, ChunkGrid};

impl Array {
    /// The same elements in C order with a new `shape`, like NumPy's
    /// `reshape`; one entry may be `-1`, inferred from the others.
    ///
    /// Output chunks are Dask's: `ones((4, 6), chunks=(2, 3)).reshape(24)`
    /// has chunks `(6, 6, 6, 6)`. The result is lazy: an output chunk reads
    /// only the input block that holds its elements. The same shape returns
    /// this array; adding or dropping length-1 axes is a free selection.
    ///
    /// ```
    /// use ndstream_engine::{arange, Chunks, DType};
    /// let x = arange(0.0, 24.0, 1.0, DType::I64, Chunks::from(&[5][..])).unwrap();
    /// let y = x.reshape(&[4, -1]).unwrap();
    /// assert_eq!(y.shape(), &[4, 6]);
    /// let row = y.reshape(&[2, 2, 6]).unwrap().compute().unwrap().to_f64_vec();
    /// assert_eq!(row[7], 7.0);
    /// ```
    ///
    /// # Errors
    /// A shape whose size differs from the array's, more than one `-1`, a
    /// negative length other than `-1` ([`Error::InvalidArgument`]), or the
    /// unknown length of a masked selection ([`Error::UnknownLength`]).
    pub fn reshape(&self, shape: &[i64]) -> Result<Array> {
        if !self.known_len() {
            return Err(Error::UnknownLength { op: "reshape" });
        }
        let out = resolve_shape(self.shape(), shape)?;
        self.dtype().nbytes_of(&out)?;
        if out == self.shape() {
            return Ok(self.clone());
        }
        let non1 = |s: &[u64]| s.iter().copied().filter(|&n| n != 1).collect::<Vec<_>>();
        if non1(self.shape()) == non1(&out) {
            return self.index_ones(&out);
        }
        let (out_sizes, read) = chunks_of(self.shape(), &out, self.grid());
        Ok(Array::new(
            Op::Reshape {
                x: self.clone(),
                read,
            },
            out,
            self.dtype(),
            ChunkGrid::from_sizes(&out_sizes),
        ))
    }

    /// `self` with length-1 axes dropped and added to reach `out` (whose
    /// other lengths are this array's, in order).
    fn index_ones(&self, out: &[u64]) -> Result<Array> {
        let mut items = Vec::with_capacity(out.len() + self.ndim());
        let mut keep = (0..self.ndim())
            .filter(|&d| self.shape()[d] != 1)
            .peekable();
        for (d, &n) in self.shape().iter().enumerate() {
            if n == 1 {
                items.push(SelItem::Drop { axis: d, index: 0 });
            }
        }
        for &n in out {
            match keep.next_if(|_| n != 1) {
                Some(axis) => items.push(SelItem::Keep {
                    axis,
                    sel: AxisSel::full(n),
                }),
                None => items.push(SelItem::New),
            }
        }
        super::index::select(self, items)
    }
}

/// NumPy's reading of a requested shape for an array of `shape`.
fn resolve_shape(shape: &[u64], want: &[i64]) -> Result<Vec<u64>> {
    let size: u64 = shape.iter().product();
    let bad = |reason: String| Error::invalid("reshape", "shape", reason);
    let show = || format!("{want:?}");
    if want.iter().filter(|&&n| n == -1).count() > 1 {
        return Err(bad("can only specify one unknown dimension (-1)".into()));
    }
    if let Some(&n) = want.iter().find(|&&n| n < -1) {
        return Err(bad(format!("negative dimension {n} in {}", show())));
    }
    let known = want
        .iter()
        .filter(|&&n| n >= 0)
        .try_fold(1u64, |p, &n| p.checked_mul(n as u64));
    let mismatch = || {
        bad(format!(
            "cannot reshape an array of size {size} (shape {shape:?}) into shape {}",
            show()
        ))
    };
    let Some(known) = known else {
        return Err(mismatch());
    };
    let inferred = if want.contains(&-1) {
        if known == 0 || !size.is_multiple_of(known) {
            return Err(mismatch());
        }
        Some(size / known)
    } else {
        if known != size {
            return Err(mismatch());
        }
        None
    };
    Ok(want
        .iter()
        .map(|&n| {
            if n == -1 {
                inferred.unwrap_or(0)
            } else {
                n as u64
            }
        })
        .collect())
}

/// The output chunk sizes per axis and the largest input block an output
/// chunk reads, per input axis.
fn chunks_of(inshape: &[u64], outshape: &[u64], grid: &ChunkGrid) -> (Vec<Vec<u64>>, Vec<u64>) {
    let whole = || -> (Vec<Vec<u64>>, Vec<u64>) {
        (
            outshape.iter().map(|&n| vec![n]).collect(),
            inshape.to_vec(),
        )
    };
    // One input chunk (or nothing to read) is one output chunk, as in Dask.
    if grid.num_chunks() <= 1 || inshape.contains(&0) {
        return whole();
    }
    let inchunks = grid.sizes();
    if let Some((rin, rout)) = dask_rechunk(inshape, outshape, &inchunks) {
        let read = rin
            .iter()
            .map(|c| c.iter().copied().max().unwrap_or(0))
            .collect();
        return (rout, read);
    }
    own_chunks(inshape, outshape, &inchunks)
}

/// Chunk sizes per axis.
type Chunking = Vec<Vec<u64>>;

/// Dask's `reshape_rechunk` (dask 2026.8): the input's chunks after its
/// rechunk and the output's chunks, or `None` where Dask raises
/// `NotImplementedError` (a group of axes that is neither a merge nor a
/// split). Both shapes are non-empty with at least one axis longer than 1.
pub(crate) fn dask_rechunk(
    inshape: &[u64],
    outshape: &[u64],
    inchunks: &[Vec<u64>],
) -> Option<(Chunking, Chunking)> {
    let mut rin: Vec<Option<Vec<u64>>> = vec![None; inshape.len()];
    let mut rout: Vec<Option<Vec<u64>>> = vec![None; outshape.len()];
    let (mut ii, mut oi) = (inshape.len() as i64 - 1, outshape.len() as i64 - 1);
    let prod = |s: &[u64]| s.iter().product::<u64>();
    while ii >= 0 || oi >= 0 {
        // Once one side has run out, the other holds only length-1 axes
        // (Python's negative indices then only ever meet those).
        if ii < 0 {
            rout[oi as usize] = Some(vec![1]);
            oi -= 1;
            continue;
        }
        if oi < 0 {
            rin[ii as usize] = Some(vec![1]);
            ii -= 1;
            continue;
        }
        let (i, o) = (ii as usize, oi as usize);
        let (din, dout) = (inshape[i], outshape[o]);
        if din == dout {
            rin[i] = Some(inchunks[i].clone());
            rout[o] = Some(inchunks[i].clone());
            ii -= 1;
            oi -= 1;
        } else if din == 1 {
            rin[i] = Some(vec![1]);
            ii -= 1;
        } else if dout == 1 {
            rout[o] = Some(vec![1]);
            oi -= 1;
        } else if din < dout {
            // Merge: inputs ileft..=i make output o.
            let mut ileft = i as i64 - 1;
            while ileft >= 0 && prod(&inshape[ileft as usize..=i]) < dout {
                ileft -= 1;
            }
            if ileft < 0 || prod(&inshape[ileft as usize..=i]) != dout {
                return None;
            }
            let l = ileft as usize;
            if (0..i).all(|k| inchunks[k].len() as u64 == inshape[k]) {
                // All lower axes chunked by 1: blocks only move around.
                for (k, r) in rin.iter_mut().enumerate().take(i + 1) {
                    *r = Some(inchunks[k].clone());
                }
                let reps: usize = inchunks[l..i].iter().map(|c| c.len()).product();
                rout[o] = Some(inchunks[i].repeat(reps));
            } else {
                for k in l + 1..=i {
                    rin[k] = Some(vec![inshape[k]]);
                }
                let reduction: u64 = inchunks[l + 1..=i].iter().map(|c| c.len() as u64).product();
                rin[l] = Some(expand_tuple(&inchunks[l], reduction));
                let max_in = max_chunk(&inchunks[l..=i]);
                let mut res: Vec<Vec<u64>> = rin[l..=i]
                    .iter()
                    .map(|c| c.clone().unwrap_or_default())
                    .collect();
                smooth_chunks(0, i - l, max_in, &mut res);
                rout[o] = Some(lower_dimension_chunks(&res));
                for (k, c) in res.into_iter().enumerate() {
                    rin[l + k] = Some(c);
                }
            }
            oi -= 1;
            ii = ileft - 1;
        } else {
            // Split: input i makes outputs oleft..=o.
            let mut oleft = o as i64 - 1;
            while oleft >= 0 && prod(&outshape[oleft as usize..=o]) < din {
                oleft -= 1;
            }
            if oleft < 0 || prod(&outshape[oleft as usize..=o]) != din {
                return None;
            }
            let l = oleft as usize;
            let cs = prod(&outshape[l + 1..=o]);
            let contracted = contract_tuple(&inchunks[i], cs);
            let mut res: Vec<Vec<u64>> = Vec::with_capacity(o - l + 1);
            res.push(contracted.iter().map(|c| c / cs).collect());
            res.extend(outshape[l + 1..=o].iter().map(|&n| vec![n]));
            let max_in = max_chunk(&inchunks[i..=i]);
            smooth_chunks(0, o - l, max_in, &mut res);
            rin[i] = Some(lower_dimension_chunks(&res));
            for (k, c) in res.into_iter().enumerate() {
                rout[l + k] = Some(c);
            }
            oi = oleft - 1;
            ii -= 1;
        }
    }
    let rin: Vec<Vec<u64>> = rin.into_iter().collect::<Option<_>>()?;
    let rout: Vec<Vec<u64>> = rout.into_iter().collect::<Option<_>>()?;
    let sums =
        |c: &[Vec<u64>], s: &[u64]| c.iter().zip(s).all(|(c, &n)| c.iter().sum::<u64>() == n);
    (sums(&rin, inshape) && sums(&rout, outshape)).then_some((rin, rout))
}

/// Product of the largest chunk of each axis (`_cal_max_chunk_size`).
fn max_chunk(chunks: &[Vec<u64>]) -> u64 {
    chunks
        .iter()
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .product()
}

/// The chunk sizes of the axes merged into one, in C order of their
/// blocks (`_calc_lower_dimension_chunks`).
fn lower_dimension_chunks(chunks: &[Vec<u64>]) -> Vec<u64> {
    let mut out = vec![1u64];
    for c in chunks {
        out = out
            .iter()
            .flat_map(|&p| c.iter().map(move |&s| p * s))
            .collect();
    }
    out
}

/// Dask's `expand_tuple`: split each chunk in about `factor` pieces.
fn expand_tuple(chunks: &[u64], factor: u64) -> Vec<u64> {
    if factor == 1 {
        return chunks.to_vec();
    }
    let mut out = Vec::new();
    for &c in chunks {
        let mut x = c;
        let part = (c as f64 / factor as f64).max(1.0);
        while x as f64 >= 2.0 * part {
            out.push(part as u64);
            x -= part as u64;
        }
        if x > 0 {
            out.push(x);
        }
    }
    out
}

/// Dask's `contract_tuple`: chunks that are multiples of `factor`.
fn contract_tuple(chunks: &[u64], factor: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut residual = 0;
    for &c in chunks {
        let c = c + residual;
        residual = c % factor;
        let good = c - residual;
        if good > 0 {
            out.push(good);
        }
    }
    out
}

/// Dask's `_smooth_chunks` over `res[left..=right]`: split the first axis
/// whose chunks are not all 1 so that blocks stay near `max_in` elements.
fn smooth_chunks(left: usize, right: usize, max_in: u64, res: &mut [Vec<u64>]) {
    let max_res = max_chunk(&res[left..=right]);
    if max_in == max_res || max_in == 0 {
        return;
    }
    let mut l = left;
    while l <= right && res[l].iter().all(|&x| x == 1) {
        l += 1;
    }
    if l > right {
        return;
    }
    let factor = (max_res as f64 / max_in as f64).ceil() as u64;
    if res[l].len() == 1 {
        let elem = res[l][0];
        let factor = factor.min(elem).max(1);
        let ceil_elem = elem.div_ceil(factor);
        let mut new = vec![ceil_elem; factor as usize];
        for v in new.iter_mut().take((ceil_elem * factor - elem) as usize) {
            *v -= 1;
        }
        let all_ones = new.iter().all(|&x| x == 1);
        res[l] = new;
        if all_ones && l < right {
            smooth_chunks(left, right, max_in, res);
        }
    } else {
        let top = res[l].iter().copied().max().unwrap_or(1).max(1);
        let other = max_res / top;
        let mut out = Vec::new();
        for &e in &res[l] {
            if e * other <= max_in {
                out.push(e);
                continue;
            }
            let factor = ((e * other) as f64 / max_in as f64).ceil() as u64;
            let ceil_elem = e.div_ceil(factor);
            let mut new = vec![ceil_elem; factor as usize];
            for v in new
                .iter_mut()
                .take((ceil_elem * factor).saturating_sub(e) as usize)
            {
                *v = v.saturating_sub(1);
            }
            // Dask can make empty chunks here; a grid drops them.
            out.extend(new.into_iter().filter(|&v| v > 0));
        }
        res[l] = out;
    }
}

/// Groups of axes that map onto each other: input axes `ins` hold the same
/// elements as output axes `outs` (length-1 axes belong to no group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub ins: Vec<usize>,
    pub outs: Vec<usize>,
}

/// The finest groups of a reshape between shapes of one non-zero size.
pub(crate) fn groups(inshape: &[u64], outshape: &[u64]) -> Vec<Group> {
    let ins: Vec<usize> = (0..inshape.len()).filter(|&d| inshape[d] != 1).collect();
    let outs: Vec<usize> = (0..outshape.len()).filter(|&d| outshape[d] != 1).collect();
    let (mut i, mut o) = (0, 0);
    let mut out = Vec::new();
    while i < ins.len() && o < outs.len() {
        let mut g = Group {
            ins: vec![ins[i]],
            outs: vec![outs[o]],
        };
        let (mut pin, mut pout) = (inshape[ins[i]], outshape[outs[o]]);
        i += 1;
        o += 1;
        while pin != pout {
            if pin < pout && i < ins.len() {
                pin *= inshape[ins[i]];
                g.ins.push(ins[i]);
                i += 1;
            } else if o < outs.len() {
                pout *= outshape[outs[o]];
                g.outs.push(outs[o]);
                o += 1;
            } else {
                break;
            }
        }
        out.push(g);
    }
    out
}

/// Chunks where Dask has none: a group of one axis on each side keeps the
/// input's chunks; any other group is cut into runs of `u` C-order
/// positions, with `u` a block size of both sides' axes (1s, then a
/// divisor of one axis, then whole axes) near the input's largest block.
fn own_chunks(
    inshape: &[u64],
    outshape: &[u64],
    inchunks: &[Vec<u64>],
) -> (Vec<Vec<u64>>, Vec<u64>) {
    let mut out: Vec<Vec<u64>> = outshape.iter().map(|&n| vec![n]).collect();
    let mut read: Vec<u64> = inshape.to_vec();
    for g in groups(inshape, outshape) {
        if let ([i], [o]) = (g.ins.as_slice(), g.outs.as_slice()) {
            out[*o] = inchunks[*i].clone();
            read[*i] = inchunks[*i].iter().copied().max().unwrap_or(0);
            continue;
        }
        let dims = |axes: &[usize], s: &[u64]| axes.iter().map(|&d| s[d]).collect::<Vec<u64>>();
        let (din, dout) = (dims(&g.ins, inshape), dims(&g.outs, outshape));
        let target: u64 = g
            .ins
            .iter()
            .map(|&d| inchunks[d].iter().copied().max().unwrap_or(1))
            .product();
        let cin = block_sizes(&din);
        let common: Vec<u64> = block_sizes(&dout)
            .into_iter()
            .filter(|u| cin.binary_search(u).is_ok())
            .collect();
        let u = common
            .iter()
            .rev()
            .find(|&&u| u <= target)
            .or(common.first())
            .copied()
            .unwrap_or_else(|| din.iter().product());
        for (k, &ax) in g.outs.iter().enumerate() {
            out[ax] = regular_sizes(outshape[ax], block_shape(&dout, u)[k]);
        }
        for (k, &ax) in g.ins.iter().enumerate() {
            read[ax] = block_shape(&din, u)[k];
        }
    }
    (out, read)
}

/// Chunk sizes of a regular split of `n` into pieces of `size`.
fn regular_sizes(n: u64, size: u64) -> Vec<u64> {
    let size = size.max(1);
    let mut v = vec![size; (n / size) as usize];
    if !n.is_multiple_of(size) {
        v.push(n % size);
    }
    v
}

/// Sizes `u` (sorted) for which runs of `u` C-order positions over axes
/// `dims` are blocks: `c * prod(dims[d+1..])` with `c` dividing `dims[d]`.
fn block_sizes(dims: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut inner = 1u64;
    for &n in dims.iter().rev() {
        for c in divisors(n) {
            out.push(c * inner);
        }
        inner *= n;
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The block shape over `dims` of a run of `u` positions (one of
/// [`block_sizes`]): 1s, then `u / inner`, then whole axes.
fn block_shape(dims: &[u64], u: u64) -> Vec<u64> {
    let mut out = vec![1; dims.len()];
    let mut inner = 1u64;
    for d in (0..dims.len()).rev() {
        if u <= inner * dims[d] {
            out[d] = u / inner;
            return out;
        }
        out[d] = dims[d];
        inner *= dims[d];
    }
    out
}

/// Divisors of `n` found by trial division up to a million (enough for
/// any axis a chunk can cut; a missed large divisor only coarsens chunks).
fn divisors(n: u64) -> Vec<u64> {
    let mut v = Vec::new();
    let mut i = 1u64;
    while i <= 1_000_000 && i.saturating_mul(i) <= n {
        if n.is_multiple_of(i) {
            v.push(i);
            v.push(n / i);
        }
        i += 1;
    }
    v.push(n);
    v
}
