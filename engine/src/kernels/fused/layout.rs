//! How a chain walks its output: lanes along the last (merged) axis, and
//! each leaf's strides along a lane and along the outer axes.

use super::super::elementwise::next_lane;

/// How the output is walked: lanes along the last (merged) axis, and per
/// leaf the stride along a lane and along each outer axis.
#[derive(Debug)]
pub(super) struct Lanes {
    pub(super) outer: Vec<usize>,
    pub(super) len: usize,
    /// Per leaf: strides along the outer axes.
    pub(super) strides: Vec<Vec<usize>>,
    /// Per leaf: stride along a lane.
    pub(super) lane: Vec<usize>,
}

impl Lanes {
    /// The walk of an output of `out` shape over leaves read with these
    /// strides (one per output axis, 0 along a broadcast axis).
    pub(super) fn new(out: &[usize], per_leaf: &[Vec<usize>]) -> Lanes {
        let nd = out.len();
        // Drop length-1 axes, then merge each axis into the next one when
        // every leaf steps over both as over one.
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<usize>> = vec![Vec::new(); per_leaf.len()];
        for d in 0..nd {
            if out[d] == 1 {
                continue;
            }
            let merge = !dims.is_empty()
                && per_leaf.iter().zip(&strides).all(|(st, m)| {
                    let prev = m.last().copied().unwrap_or(0);
                    prev == st[d] * out[d]
                });
            if merge {
                if let Some(l) = dims.last_mut() {
                    *l *= out[d];
                }
                for (m, st) in strides.iter_mut().zip(per_leaf) {
                    if let Some(l) = m.last_mut() {
                        *l = st[d];
                    }
                }
            } else {
                dims.push(out[d]);
                for (m, st) in strides.iter_mut().zip(per_leaf) {
                    m.push(st[d]);
                }
            }
        }
        let len = dims.pop().unwrap_or(1);
        let lane = strides.iter_mut().map(|m| m.pop().unwrap_or(0)).collect();
        Lanes {
            outer: dims,
            len,
            strides,
            lane,
        }
    }

    /// The outer index of lane `lane` (C order).
    pub(super) fn index(&self, mut lane: usize) -> Vec<usize> {
        let mut idx = vec![0usize; self.outer.len()];
        for d in (0..self.outer.len()).rev() {
            idx[d] = lane % self.outer[d];
            lane /= self.outer[d];
        }
        idx
    }

    /// Move `idx` and the leaves' offsets `off` on to the next lane.
    #[inline(always)]
    pub(super) fn step(&self, idx: &mut [usize], off: &mut [usize]) {
        next_lane(idx, &self.outer, &self.strides, off);
    }

    /// Each leaf's offset at the start of lane `lane` (C order).
    pub(super) fn offsets(&self, mut lane: usize, offs: &mut [usize]) {
        offs.iter_mut().for_each(|o| *o = 0);
        for d in (0..self.outer.len()).rev() {
            let i = lane % self.outer[d];
            lane /= self.outer[d];
            for (o, s) in offs.iter_mut().zip(&self.strides) {
                *o += i * s[d];
            }
        }
    }

    /// Call `f` with each leaf's offset at the start of every lane, in the
    /// output's C order.
    #[inline(always)]
    pub(super) fn for_each(&self, mut f: impl FnMut(&[usize])) {
        let lanes: usize = self.outer.iter().product();
        let mut idx = vec![0usize; self.outer.len()];
        let mut off = vec![0usize; self.lane.len()];
        for _ in 0..lanes {
            f(&off);
            self.step(&mut idx, &mut off);
        }
    }
}

/// The strides of a standard-layout leaf of `shape` broadcast to `out`
/// (axes aligned from the right; 0 along the axes it repeats over).
pub(crate) fn broadcast_strides(out: &[usize], shape: &[usize]) -> Vec<usize> {
    let nd = out.len();
    let off = nd - shape.len().min(nd);
    let mut st = vec![0usize; nd];
    let mut acc = 1;
    for d in (0..nd).rev() {
        let dim = if d >= off { shape[d - off] } else { 1 };
        st[d] = if dim == 1 { 0 } else { acc };
        acc *= dim;
    }
    st
}

/// True if a leaf read with `strides` holds the elements of an output of
/// `out` shape in the output's C order (no broadcast axis, no gap).
pub(crate) fn laid_out_as(out: &[usize], strides: &[usize]) -> bool {
    let c = broadcast_strides(out, out);
    (0..out.len()).all(|d| out[d] == 1 || strides[d] == c[d])
}

/// The length of the lanes a chain with an output of `out` shape and
/// leaves read with these strides runs along: a chain is worth running
/// only when its lanes are long enough to carry the per-lane dispatch.
pub(crate) fn lane_len(out: &[usize], strides: &[Vec<usize>]) -> usize {
    Lanes::new(out, strides).len
}
