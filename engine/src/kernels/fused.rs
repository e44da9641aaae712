//! Fused float elementwise chains, run strip by strip.
//!
//! Run op by op (see [`super::elementwise`]), a chain such as
//! `4 * (s*s - s)` with `s = (1/r2)**3` reads and writes a whole tile per
//! op (256 KiB for 32K f64s), through the L2 cache. A [`Chain`] is the same
//! ops as a small register program, run over strips of at most [`STRIP`]
//! elements, so the intermediates stay in L1. Each input is read once and
//! the result is written once.
//!
//! Every op applies the same scalar function as its whole-tile kernel: the
//! same fast paths for a one-element exponent, the same NaN rules, no
//! reassociation and no FMA contraction. The bits are the same as running
//! the chain op by op.
//!
//! Inputs ("leaves") may broadcast. The output is walked lane by lane along
//! its last axis (length-1 axes dropped, compatible axes merged), and each
//! leaf is read along a lane as a slice (stride 1), as one value (stride 0:
//! a broadcast axis) or through a gather (any other stride).

use std::cell::RefCell;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::elementwise::{
    binary_table, float_divmod, nan_max, nan_min, next_lane, unary_table, widest, BinaryOp, Float,
    UnaryOp,
};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Elements per strip: 4 KiB of f64 per register, so a chain's few live
/// registers and its inputs' strips stay in the L1 cache.
pub(crate) const STRIP: usize = 512;

/// An operand: an earlier op of the chain, a leaf (an input block), or a
/// scalar (a one-element input, read once).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Ref {
    Op(usize),
    Leaf(usize),
    Const(f64),
}

/// An op of a chain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FusedOp {
    Unary(UnaryOp),
    Binary(BinaryOp),
    Clip { lo: Option<f64>, hi: Option<f64> },
}

impl FusedOp {
    /// True for the ops a chain can run: float-valued ops that keep their
    /// operand's float dtype (the op table's `fused` column).
    pub(crate) fn supported(self) -> bool {
        match self {
            FusedOp::Unary(op) => op.fusable(),
            FusedOp::Binary(op) => op.fusable(),
            FusedOp::Clip { .. } => true,
        }
    }
}

/// Elementwise ops in evaluation order, each with its operands (one or
/// two); the last op is the result. An [`Ref::Op`] refers to an earlier op.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chain {
    pub ops: Vec<(FusedOp, Vec<Ref>)>,
}

/// A typed operand of a compiled instruction.
#[derive(Clone, Copy, Debug)]
enum Arg<T> {
    Reg(usize),
    Leaf(usize),
    Const(T),
}

/// `x ** e` for a one-element exponent, decoded as the whole-tile kernel
/// decodes it.
#[derive(Clone, Copy, Debug)]
enum PowBy<T> {
    Square,
    Cube,
    Sqrt,
    Recip,
    Ident,
    One,
    Int(i32),
    Float(T),
}

#[derive(Clone, Copy, Debug)]
enum Step<T> {
    Unary(UnaryOp, Arg<T>),
    Binary(BinaryOp, Arg<T>, Arg<T>),
    Pow(Arg<T>, PowBy<T>),
    Clip(Arg<T>, Option<T>, Option<T>),
}

#[derive(Clone, Copy, Debug)]
struct Instr<T> {
    step: Step<T>,
    dst: usize,
}

/// The exponent fast paths of the whole-tile `power` kernel, exactly.
fn pow_by<T: Float>(e: f64) -> PowBy<T> {
    if e == 2.0 {
        PowBy::Square
    } else if e == 3.0 {
        PowBy::Cube
    } else if e == 0.5 {
        PowBy::Sqrt
    } else if e == -1.0 {
        PowBy::Recip
    } else if e == 1.0 {
        PowBy::Ident
    } else if e == 0.0 {
        PowBy::One
    } else if e.fract() == 0.0 && e.abs() <= 16.0 {
        PowBy::Int(e as i32)
    } else {
        PowBy::Float(T::from_f64(e))
    }
}

/// The chain as instructions over registers (one strip each), and the
/// register count and the result's register. A register is freed after its
/// value's last use, and an op's destination is taken before its operands'
/// registers are freed, so no instruction writes a register it reads.
fn compile<T: Float>(chain: &Chain) -> (Vec<Instr<T>>, usize, usize) {
    let n = chain.ops.len();
    let mut last = vec![usize::MAX; n];
    for (j, (_, args)) in chain.ops.iter().enumerate() {
        for a in args {
            if let Ref::Op(i) = *a {
                last[i] = j;
            }
        }
    }
    if let Some(l) = last.last_mut() {
        *l = usize::MAX;
    }
    let mut reg = vec![0usize; n];
    let mut free: Vec<usize> = Vec::new();
    let mut count = 0;
    let mut out = Vec::with_capacity(n);
    for (j, (op, args)) in chain.ops.iter().enumerate() {
        let dst = free.pop().unwrap_or_else(|| {
            count += 1;
            count - 1
        });
        let arg = |k: usize| match args.get(k).copied().unwrap_or(Ref::Const(0.0)) {
            Ref::Op(i) => Arg::Reg(reg[i]),
            Ref::Leaf(i) => Arg::Leaf(i),
            Ref::Const(v) => Arg::Const(T::from_f64(v)),
        };
        let step = match *op {
            FusedOp::Unary(u) => Step::Unary(u, arg(0)),
            FusedOp::Binary(BinaryOp::Pow) => match args.get(1) {
                Some(Ref::Const(e)) => Step::Pow(arg(0), pow_by::<T>(T::from_f64(*e).to_f64())),
                _ => Step::Binary(BinaryOp::Pow, arg(0), arg(1)),
            },
            FusedOp::Binary(b) => Step::Binary(b, arg(0), arg(1)),
            FusedOp::Clip { lo, hi } => {
                Step::Clip(arg(0), lo.map(T::from_f64), hi.map(T::from_f64))
            }
        };
        out.push(Instr { step, dst });
        reg[j] = dst;
        let mut freed: Vec<usize> = Vec::new();
        for a in args {
            if let Ref::Op(i) = *a {
                if last[i] == j && !freed.contains(&i) {
                    freed.push(i);
                    free.push(reg[i]);
                }
            }
        }
    }
    (out, count, reg[n.saturating_sub(1)])
}

/// How the output is walked: lanes along the last (merged) axis, and per
/// leaf the stride along a lane and along each outer axis.
#[derive(Debug)]
struct Lanes {
    outer: Vec<usize>,
    len: usize,
    /// Per leaf: strides along the outer axes.
    strides: Vec<Vec<usize>>,
    /// Per leaf: stride along a lane.
    lane: Vec<usize>,
}

impl Lanes {
    /// The walk of an output of `out` shape over leaves read with these
    /// strides (one per output axis, 0 along a broadcast axis).
    fn new(out: &[usize], per_leaf: &[Vec<usize>]) -> Lanes {
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
    fn index(&self, mut lane: usize) -> Vec<usize> {
        let mut idx = vec![0usize; self.outer.len()];
        for d in (0..self.outer.len()).rev() {
            idx[d] = lane % self.outer[d];
            lane /= self.outer[d];
        }
        idx
    }

    /// Move `idx` and the leaves' offsets `off` on to the next lane.
    #[inline(always)]
    fn step(&self, idx: &mut [usize], off: &mut [usize]) {
        next_lane(idx, &self.outer, &self.strides, off);
    }

    /// Each leaf's offset at the start of lane `lane` (C order).
    fn offsets(&self, mut lane: usize, offs: &mut [usize]) {
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
    fn for_each(&self, mut f: impl FnMut(&[usize])) {
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

/// A leaf as the chain gets it: owned (its buffer may take the result) or
/// shared with the tile's other uses.
pub(crate) enum LeafIn {
    Owned(Block),
    Shared(Arc<Block>),
}

/// A leaf and how it is read: its element strides along each output axis.
pub(crate) struct LeafArg {
    pub block: LeafIn,
    pub strides: Vec<usize>,
}

/// A typed leaf, standard layout.
enum Leaf<T> {
    Owned(ArrayD<T>),
    Shared(Arc<Block>),
}

impl<T: Float> Leaf<T> {
    fn new(b: LeafIn, index: usize) -> Result<Leaf<T>> {
        let mismatch = |got: DType| Error::DTypeMismatch {
            op: "fused elementwise chain",
            index,
            expected: T::DTYPE,
            got,
        };
        let owned = match b {
            LeafIn::Shared(a) => match T::as_array(&a) {
                Some(x) if x.is_standard_layout() => return Ok(Leaf::Shared(a)),
                Some(x) => x.as_standard_layout().into_owned(),
                None => return Err(mismatch(a.dtype())),
            },
            LeafIn::Owned(b) => T::from_block(b).map_err(|b| mismatch(b.dtype()))?,
        };
        Ok(Leaf::Owned(if owned.is_standard_layout() {
            owned
        } else {
            owned.as_standard_layout().into_owned()
        }))
    }

    fn array(&self) -> &ArrayD<T> {
        match self {
            Leaf::Owned(a) => a,
            #[allow(clippy::expect_used)]
            Leaf::Shared(b) => T::as_array(b).expect("checked in Leaf::new"),
        }
    }

    fn data(&self) -> &[T] {
        #[allow(clippy::expect_used)]
        self.array().as_slice().expect("leaves are standard layout")
    }
}

/// A chain ready to run over its evaluated leaves: the output, or any run
/// of its elements in C order ([`Ready::fill`], for a reduction that
/// consumes them strip by strip).
pub(crate) struct Ready<T> {
    instrs: Vec<Instr<T>>,
    nregs: usize,
    root: usize,
    leaves: Vec<Leaf<T>>,
    /// Per leaf: whether it holds the output's elements in the output's
    /// order (so its buffer can take the result).
    like_out: Vec<bool>,
    lanes: Lanes,
    out: Vec<usize>,
    /// Registers and scratch strips of [`Ready::fill`], kept across calls.
    work: RefCell<Option<Work<T>>>,
}

/// The strips a chain runs in.
struct Work<T> {
    /// `nregs` strips of [`STRIP`] elements, one after the other.
    regs: Vec<T>,
    scratch: Vec<Vec<T>>,
    offs: Vec<usize>,
    reads: Vec<Read>,
}

/// A [`Ready`] chain of either float dtype.
pub(crate) enum Prepared {
    F32(Ready<f32>),
    F64(Ready<f64>),
}

impl Prepared {
    /// `chain` over `leaves` (blocks of the chain's float dtype `dtype`,
    /// each broadcasting to `out`).
    ///
    /// # Errors
    /// A leaf whose dtype is not `dtype`, or a dtype other than f32 and f64.
    pub(crate) fn new(
        chain: &Chain,
        leaves: Vec<LeafArg>,
        out: &[usize],
        dtype: DType,
    ) -> Result<Prepared> {
        match dtype {
            DType::F32 => Ready::new(chain, leaves, out).map(Prepared::F32),
            DType::F64 => Ready::new(chain, leaves, out).map(Prepared::F64),
            other => Err(Error::UnsupportedDType {
                op: "fused elementwise chain",
                dtype: other,
            }),
        }
    }

    /// The output block. An owned leaf of the output's shape is
    /// overwritten with the result (no new tile-sized buffer).
    pub(crate) fn run(self) -> Block {
        match self {
            Prepared::F32(r) => Block::from(r.run()),
            Prepared::F64(r) => Block::from(r.run()),
        }
    }

    /// The output block, leaving the leaves as they are.
    pub(crate) fn to_block(&self) -> Block {
        match self {
            Prepared::F32(r) => Block::from(r.to_array()),
            Prepared::F64(r) => Block::from(r.to_array()),
        }
    }

    /// Bytes the evaluated leaves hold.
    pub(crate) fn leaf_bytes(&self) -> usize {
        match self {
            Prepared::F32(r) => r.leaf_bytes(),
            Prepared::F64(r) => r.leaf_bytes(),
        }
    }

    /// The f32 chain, if it is one.
    pub(crate) fn as_f32(&self) -> Option<&Ready<f32>> {
        match self {
            Prepared::F32(r) => Some(r),
            Prepared::F64(_) => None,
        }
    }

    /// The f64 chain, if it is one.
    pub(crate) fn as_f64(&self) -> Option<&Ready<f64>> {
        match self {
            Prepared::F64(r) => Some(r),
            Prepared::F32(_) => None,
        }
    }

    /// The output's shape.
    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Prepared::F32(r) => &r.out,
            Prepared::F64(r) => &r.out,
        }
    }
}

impl<T: Float> Ready<T> {
    fn new(chain: &Chain, args: Vec<LeafArg>, out: &[usize]) -> Result<Ready<T>> {
        let (instrs, nregs, root) = compile::<T>(chain);
        let mut leaves = Vec::with_capacity(args.len());
        let mut strides = Vec::with_capacity(args.len());
        for (i, a) in args.into_iter().enumerate() {
            leaves.push(Leaf::new(a.block, i)?);
            strides.push(a.strides);
        }
        let lanes = Lanes::new(out, &strides);
        // A leaf laid out as the output (same elements, same order) can
        // take the result.
        let n: usize = out.iter().product();
        let like_out: Vec<bool> = leaves
            .iter()
            .zip(&strides)
            .map(|(l, st)| l.array().len() == n && n > 0 && laid_out_as(out, st))
            .collect();
        Ok(Ready {
            instrs,
            nregs,
            root,
            leaves,
            like_out,
            lanes,
            out: out.to_vec(),
            work: RefCell::new(None),
        })
    }

    /// The output array in a new buffer.
    fn to_array(&self) -> ArrayD<T> {
        let mut v = Vec::with_capacity(self.len());
        self.fill_into(0, self.len(), Dst::Extend(&mut v));
        #[allow(clippy::expect_used)]
        ArrayD::from_shape_vec(IxDyn(&self.out), v).expect("the chain wrote every element")
    }

    /// Elements of the output.
    pub(crate) fn len(&self) -> usize {
        self.out.iter().product()
    }

    fn leaf_bytes(&self) -> usize {
        self.leaves
            .iter()
            .map(|l| l.array().len() * std::mem::size_of::<T>())
            .sum()
    }

    /// How each leaf is read along a lane (`reused`: the leaf whose buffer
    /// takes the result).
    fn reads(&self, reused: Option<usize>) -> Vec<Read> {
        self.lanes
            .lane
            .iter()
            .enumerate()
            .map(|(i, &s)| match s {
                _ if Some(i) == reused => Read::Output,
                0 => Read::Splat,
                1 => Read::Slice,
                s => Read::Gather(s),
            })
            .collect()
    }

    /// The output array.
    fn run(mut self) -> ArrayD<T> {
        let n: usize = self.out.iter().product();
        let reuse = self
            .leaves
            .iter()
            .zip(&self.like_out)
            .position(|(l, &like)| like && matches!(l, Leaf::Owned(_)));
        let mut buf = None;
        if let Some(k) = reuse {
            let empty = Leaf::Owned(ArrayD::from_elem(IxDyn(&[0]), T::ZERO));
            if let Leaf::Owned(a) = std::mem::replace(&mut self.leaves[k], empty) {
                let (v, off) = a.into_raw_vec_and_offset();
                match off {
                    Some(0) | None if v.len() == n => buf = Some(v),
                    _ => {
                        // An owned view into a larger buffer: keep the leaf.
                        let o = off.unwrap_or(0);
                        let kept = v.get(o..o + n).map(<[T]>::to_vec).unwrap_or_default();
                        #[allow(clippy::expect_used)]
                        let shape = self.leaves[k].array().shape().to_vec();
                        let back = ArrayD::from_shape_vec(IxDyn(&shape), kept)
                            .expect("a standard-layout array's elements follow its offset");
                        self.leaves[k] = Leaf::Owned(back);
                    }
                }
            }
        }
        let Some(mut v) = buf else {
            return self.to_array();
        };
        let reads = self.reads(reuse);
        widest(
            #[inline(always)]
            || self.run_in_place(&reads, &mut v),
        );
        #[allow(clippy::expect_used)]
        ArrayD::from_shape_vec(IxDyn(&self.out), v).expect("the chain wrote every element")
    }

    /// Overwrite `out` (the buffer of the leaf read as [`Read::Output`])
    /// with the result, lane by lane in C order.
    #[inline(always)]
    fn run_in_place(&self, reads: &[Read], out: &mut [T]) {
        let data: Vec<&[T]> = self.leaves.iter().map(Leaf::data).collect();
        let mut regs: Vec<T> = vec![T::ZERO; STRIP * self.nregs];
        let mut scratch = scratch_for(reads);
        let l = self.lanes.len;
        let mut pos = 0;
        self.lanes.for_each(
            #[inline(always)]
            |offs| {
                let mut k0 = 0;
                while k0 < l {
                    let len = STRIP.min(l - k0);
                    for (i, r) in reads.iter().enumerate() {
                        if *r == Read::Output {
                            scratch[i][..len].copy_from_slice(&out[pos..pos + len]);
                        }
                    }
                    gather(reads, &data, offs, k0, len, &mut scratch);
                    self.strip(
                        reads,
                        &data,
                        offs,
                        k0,
                        &scratch,
                        &mut regs,
                        len,
                        Some(&mut out[pos..pos + len]),
                    );
                    pos += len;
                    k0 += len;
                }
            },
        );
    }

    /// Elements `at..at + dst.len()` of the output (in C order) into `dst`.
    pub(crate) fn fill(&self, at: usize, dst: &mut [T]) {
        self.fill_into(at, dst.len(), Dst::Slice(dst));
    }

    /// Elements `at..at + count` of the output into `dst`.
    fn fill_into(&self, at: usize, count: usize, mut dst: Dst<'_, T>) {
        let mut work = self.work.borrow_mut();
        let work = work.get_or_insert_with(|| {
            let reads = self.reads(None);
            Work {
                regs: vec![T::ZERO; STRIP * self.nregs],
                scratch: scratch_for(&reads),
                offs: vec![0; reads.len()],
                reads,
            }
        });
        widest(
            #[inline(always)]
            || self.fill_body(work, at, count, &mut dst),
        );
    }

    #[inline(always)]
    fn fill_body(&self, work: &mut Work<T>, at: usize, count: usize, dst: &mut Dst<'_, T>) {
        let data: Vec<&[T]> = self.leaves.iter().map(Leaf::data).collect();
        let Work {
            regs,
            scratch,
            offs,
            reads,
        } = work;
        let l = self.lanes.len.max(1);
        let mut done = 0;
        let mut idx = Vec::new();
        while done < count {
            let p = at + done;
            if done == 0 {
                self.lanes.offsets(p / l, offs);
                idx = self.lanes.index(p / l);
            } else {
                self.lanes.step(&mut idx, offs);
            }
            let mut k0 = p % l;
            let stop = (count - done).min(l - k0) + done;
            while done < stop {
                let len = STRIP.min(stop - done);
                gather(reads, &data, offs, k0, len, scratch);
                match dst {
                    Dst::Slice(d) => {
                        let d = &mut d[done..done + len];
                        self.strip(reads, &data, offs, k0, scratch, regs, len, Some(d));
                    }
                    Dst::Extend(v) => {
                        self.strip(reads, &data, offs, k0, scratch, regs, len, None);
                        let r = self.root * STRIP;
                        v.extend_from_slice(&regs[r..r + len]);
                    }
                }
                done += len;
                k0 += len;
            }
        }
    }

    /// Run the instructions over one strip (`len` elements of a lane from
    /// `k0`), the last one into `dst` when given (else into its register).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn strip(
        &self,
        reads: &[Read],
        data: &[&[T]],
        offs: &[usize],
        k0: usize,
        scratch: &[Vec<T>],
        regs: &mut [T],
        len: usize,
        dst: Option<&mut [T]>,
    ) {
        let leaves = Strip {
            reads,
            data,
            offs,
            k0,
            len,
            scratch,
        };
        let (body, last) = match dst {
            Some(d) => match self.instrs.split_last() {
                Some((last, rest)) => (rest, Some((last, d))),
                None => return,
            },
            None => (self.instrs.as_slice(), None),
        };
        for ins in body {
            // The destination strip apart from the others (an op never
            // reads the register it writes).
            let (lo, rest) = regs.split_at_mut(ins.dst * STRIP);
            let (d, hi) = rest.split_at_mut(STRIP);
            let (lo, hi) = (&*lo, &*hi);
            exec(
                ins.step,
                &mut d[..len],
                #[inline(always)]
                |a| leaves.arg(a, lo, hi, ins.dst),
            );
        }
        if let Some((last, d)) = last {
            let all = &*regs;
            exec(
                last.step,
                d,
                #[inline(always)]
                |a| leaves.arg(a, all, &[], self.nregs),
            );
        }
    }
}

/// Where [`Ready::fill_into`] puts the elements.
enum Dst<'a, T> {
    Slice(&'a mut [T]),
    Extend(&'a mut Vec<T>),
}

/// Where the leaves' strips are.
struct Strip<'a, T> {
    reads: &'a [Read],
    data: &'a [&'a [T]],
    offs: &'a [usize],
    k0: usize,
    len: usize,
    scratch: &'a [Vec<T>],
}

impl<'a, T: Copy> Strip<'a, T> {
    /// An operand along the strip.
    #[inline(always)]
    fn arg<'r>(&self, a: Arg<T>, lo: &'r [T], hi: &'r [T], dst: usize) -> Src<'r, T>
    where
        'a: 'r,
    {
        let (k0, len) = (self.k0, self.len);
        match a {
            // Registers below the destination are in `lo`, those above in `hi`.
            Arg::Reg(r) if r < dst => Src::Slice(&lo[r * STRIP..r * STRIP + len]),
            Arg::Reg(r) => {
                let o = (r - dst - 1) * STRIP;
                Src::Slice(&hi[o..o + len])
            }
            Arg::Const(v) => Src::Splat(v),
            Arg::Leaf(i) => {
                let off = self.offs[i];
                match self.reads[i] {
                    Read::Slice => Src::Slice(&self.data[i][off + k0..off + k0 + len]),
                    Read::Splat => Src::Splat(self.data[i][off]),
                    Read::Gather(_) | Read::Output => Src::Slice(&self.scratch[i][..len]),
                }
            }
        }
    }
}

/// Scratch strips for the leaves that need one.
fn scratch_for<T: Float>(reads: &[Read]) -> Vec<Vec<T>> {
    reads
        .iter()
        .map(|r| match r {
            Read::Gather(_) | Read::Output => vec![T::ZERO; STRIP],
            _ => Vec::new(),
        })
        .collect()
}

/// Gather the strided leaves' strips into their scratch.
#[inline(always)]
fn gather<T: Copy>(
    reads: &[Read],
    data: &[&[T]],
    offs: &[usize],
    k0: usize,
    len: usize,
    scratch: &mut [Vec<T>],
) {
    for (i, r) in reads.iter().enumerate() {
        if let Read::Gather(s) = *r {
            let base = offs[i] + k0 * s;
            for (t, v) in scratch[i][..len].iter_mut().enumerate() {
                *v = data[i][base + t * s];
            }
        }
    }
}

/// An operand along one strip.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    Slice(&'a [T]),
    Splat(T),
}

/// How a leaf is read along a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Contiguous: read in place.
    Slice,
    /// One value per lane (a broadcast axis).
    Splat,
    /// Gathered into a scratch strip.
    Gather(usize),
    /// The output buffer itself (an owned leaf reused for the result):
    /// copied to a scratch strip before the strip's result overwrites it.
    Output,
}

/// One instruction over one strip into `d`.
#[inline(always)]
fn exec<'a, T: Float>(step: Step<T>, d: &mut [T], arg: impl Fn(Arg<T>) -> Src<'a, T>) {
    match step {
        Step::Unary(op, x) => exec_unary(op, d, arg(x)),
        Step::Binary(op, a, b) => exec_binary(op, d, arg(a), arg(b)),
        Step::Pow(x, e) => {
            let x = arg(x);
            match e {
                PowBy::Square => un(d, x, |v| v * v),
                PowBy::Cube => un(d, x, |v| v * v * v),
                PowBy::Sqrt => un(d, x, T::sqrt),
                PowBy::Recip => un(d, x, |v| T::ONE / v),
                PowBy::Ident => un(d, x, |v| v),
                PowBy::One => un(d, x, |_| T::ONE),
                PowBy::Int(k) => un(d, x, |v| v.powi(k)),
                PowBy::Float(e) => un(d, x, |v| v.powf(e)),
            }
        }
        Step::Clip(x, lo, hi) => {
            let x = arg(x);
            match (lo, hi) {
                (Some(l), Some(h)) => un(d, x, |v| nan_min(nan_max(v, l), h)),
                (Some(l), None) => un(d, x, |v| nan_max(v, l)),
                (None, Some(h)) => un(d, x, |v| nan_min(v, h)),
                (None, None) => un(d, x, |v| v),
            }
        }
    }
}

/// A fusable row's whole arm, or `unreachable!` for the others (a chain
/// holds only the ops whose `fused` column is `yes`; [`FusedOp::supported`]).
macro_rules! fused_arm {
    (yes, $($e:tt)*) => {
        $($e)*
    };
    (no, $($e:tt)*) => {
        unreachable!("a chain holds fusable ops only")
    };
}

/// The strip loops of the fusable ops, from the op tables' float column:
/// the same scalar functions as the whole-tile kernels.
macro_rules! fused_unary {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident,
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        /// One unary op over one strip into `d`.
        #[inline(always)]
        fn exec_unary<T: Float>(op: UnaryOp, d: &mut [T], x: Src<'_, T>) {
            match op {
                $(UnaryOp::$v => fused_arm!($fz, un(d, x, $($ff)?)),)*
            }
        }
    };
}

macro_rules! fused_binary {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident, tile [$($tile:path)?],
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        /// One binary op over one strip into `d` (`power` with an array
        /// exponent: a constant exponent is a [`Step::Pow`]).
        #[inline(always)]
        fn exec_binary<T: Float>(op: BinaryOp, d: &mut [T], a: Src<'_, T>, b: Src<'_, T>) {
            match op {
                $(BinaryOp::$v => fused_arm!($fz, bin(d, a, b, $($ff)?)),)*
            }
        }
    };
}

unary_table!(fused_unary);
binary_table!(fused_binary);

#[inline(always)]
fn un<T: Copy>(d: &mut [T], x: Src<'_, T>, f: impl Fn(T) -> T) {
    match x {
        Src::Slice(x) => {
            for (o, &v) in d.iter_mut().zip(x) {
                *o = f(v);
            }
        }
        Src::Splat(v) => d.fill(f(v)),
    }
}

#[inline(always)]
fn bin<T: Copy>(d: &mut [T], a: Src<'_, T>, b: Src<'_, T>, f: impl Fn(T, T) -> T) {
    match (a, b) {
        (Src::Slice(a), Src::Slice(b)) => {
            for ((o, &p), &q) in d.iter_mut().zip(a).zip(b) {
                *o = f(p, q);
            }
        }
        (Src::Slice(a), Src::Splat(q)) => {
            for (o, &p) in d.iter_mut().zip(a) {
                *o = f(p, q);
            }
        }
        (Src::Splat(p), Src::Slice(b)) => {
            for (o, &q) in d.iter_mut().zip(b) {
                *o = f(p, q);
            }
        }
        (Src::Splat(p), Src::Splat(q)) => d.fill(f(p, q)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockElement;
    use crate::kernels::elementwise::{binary, clip, unary};
    use proptest::prelude::*;

    /// A random chain: its ops, leaf shapes and output shape.
    #[derive(Clone, Debug)]
    struct Case {
        out: Vec<usize>,
        leaves: Vec<Vec<usize>>,
        chain: Chain,
        f32: bool,
        seed: u64,
    }

    /// The fusable unary ops other than `power` (from the op table).
    fn unary_ops() -> Vec<UnaryOp> {
        UnaryOp::ALL
            .iter()
            .copied()
            .filter(|o| o.fusable())
            .collect()
    }

    /// The fusable binary ops other than `power`, which gets its constant
    /// exponents below.
    fn binary_ops() -> Vec<BinaryOp> {
        BinaryOp::ALL
            .iter()
            .copied()
            .filter(|&o| o.fusable() && o != BinaryOp::Pow)
            .collect()
    }

    const EXPONENTS: [f64; 9] = [2.0, 3.0, 0.5, -1.0, 1.0, 0.0, 4.0, -2.0, 1.7];

    fn case() -> impl Strategy<Value = Case> {
        // Output shapes from one long axis (lanes over several strips) to
        // three short ones; leaves drop or shrink axes to broadcast.
        let out = prop_oneof![
            (1usize..1400).prop_map(|n| vec![n]),
            (1usize..12, 1usize..80).prop_map(|(a, b)| vec![a, b]),
            (1usize..6, 1usize..9, 1usize..40).prop_map(|(a, b, c)| vec![a, b, c]),
        ];
        (
            out,
            proptest::collection::vec(any::<u8>(), 1..4),
            proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 1..7),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(|(out, masks, ops, f32, seed)| {
                let (unary, binary) = (unary_ops(), binary_ops());
                let leaves: Vec<Vec<usize>> = masks
                    .iter()
                    .map(|&m| {
                        let mut s: Vec<usize> = out
                            .iter()
                            .enumerate()
                            .map(|(d, &n)| if m & (1 << d) != 0 { 1 } else { n })
                            .collect();
                        if m & 0x80 != 0 && s.len() > 1 {
                            s.remove(0);
                        }
                        s
                    })
                    .collect();
                let nl = leaves.len();
                let mut chain = Chain::default();
                for (j, &(kind, a, b, p)) in ops.iter().enumerate() {
                    let pick = |x: u8| -> Ref {
                        let k = x as usize % (j + nl + 1);
                        if k < j {
                            Ref::Op(k)
                        } else if k < j + nl {
                            Ref::Leaf(k - j)
                        } else {
                            Ref::Const(f64::from(x) / 16.0 - 4.0)
                        }
                    };
                    let op = match kind % 4 {
                        0 => (
                            FusedOp::Unary(unary[p as usize % unary.len()]),
                            vec![pick(a)],
                        ),
                        1 => (
                            FusedOp::Binary(BinaryOp::Pow),
                            vec![pick(a), Ref::Const(EXPONENTS[p as usize % EXPONENTS.len()])],
                        ),
                        2 => (
                            FusedOp::Clip {
                                lo: (p & 1 != 0).then_some(-1.5),
                                hi: (p & 2 != 0).then_some(2.25),
                            },
                            vec![pick(a)],
                        ),
                        _ => (
                            FusedOp::Binary(binary[p as usize % binary.len()]),
                            vec![pick(a), pick(b)],
                        ),
                    };
                    chain.ops.push(op);
                }
                Case {
                    out,
                    leaves,
                    chain,
                    f32,
                    seed,
                }
            })
    }

    fn leaf_blocks(c: &Case) -> Vec<Block> {
        let mut state = c.seed | 1;
        c.leaves
            .iter()
            .map(|s| {
                let n: usize = s.iter().product();
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        match state % 23 {
                            0 => f64::NAN,
                            1 => 0.0,
                            _ => (state >> 11) as f64 / (1u64 << 53) as f64 * 10.0 - 5.0,
                        }
                    })
                    .collect();
                let b = Block::from(ArrayD::from_shape_vec(IxDyn(s), v).unwrap());
                if c.f32 {
                    b.astype(DType::F32)
                } else {
                    b
                }
            })
            .collect()
    }

    /// The chain run op by op with the whole-tile kernels, broadcast to
    /// the output's shape.
    fn op_by_op(c: &Case, leaves: &[Block]) -> Vec<f64> {
        let dtype = if c.f32 { DType::F32 } else { DType::F64 };
        let mut vals: Vec<Block> = Vec::new();
        for (op, args) in &c.chain.ops {
            let get = |r: &Ref| -> Block {
                match *r {
                    Ref::Op(i) => vals[i].clone(),
                    Ref::Leaf(i) => leaves[i].clone(),
                    Ref::Const(v) => Block::full(dtype, &[], v),
                }
            };
            let v = match *op {
                FusedOp::Unary(u) => unary(u, &get(&args[0])).unwrap(),
                FusedOp::Binary(b) => binary(b, &get(&args[0]), &get(&args[1])).unwrap(),
                FusedOp::Clip { lo, hi } => clip(&get(&args[0]), lo, hi).unwrap(),
            };
            vals.push(v);
        }
        let last = vals.pop().unwrap().astype(DType::F64);
        let a = f64::as_array(&last).unwrap();
        a.broadcast(IxDyn(&c.out))
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    fn bits_eq(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// A chain gives the bits of its ops run one by one, whether it
        /// writes into an owned leaf, into a new buffer, or fills any run
        /// of its output.
        #[test]
        fn chains_equal_their_ops_one_by_one(c in case(), cut in any::<(u16, u16)>()) {
            let leaves = leaf_blocks(&c);
            let want = op_by_op(&c, &leaves);
            let dtype = if c.f32 { DType::F32 } else { DType::F64 };
            let arg = |block: LeafIn, shape: &[usize]| LeafArg {
                block,
                strides: broadcast_strides(&c.out, shape),
            };
            let shared: Vec<LeafArg> = leaves
                .iter()
                .map(|b| arg(LeafIn::Shared(Arc::new(b.clone())), b.shape()))
                .collect();
            let p = Prepared::new(&c.chain, shared, &c.out, dtype).unwrap();
            let got = p.to_block();
            prop_assert_eq!(got.shape(), c.out.as_slice());
            prop_assert!(bits_eq(&got.astype(DType::F64).to_f64_vec(), &want));
            // A run of the output, anywhere.
            let n = want.len();
            let at = cut.0 as usize % n;
            let len = (cut.1 as usize % (n - at)).max(1).min(n - at);
            let part: Vec<f64> = match &p {
                Prepared::F32(r) => {
                    let mut v = vec![0f32; len];
                    r.fill(at, &mut v);
                    v.into_iter().map(f64::from).collect()
                }
                Prepared::F64(r) => {
                    let mut v = vec![0f64; len];
                    r.fill(at, &mut v);
                    v
                }
            };
            prop_assert!(bits_eq(&part, &want[at..at + len]));
            // Owned leaves: one of the output's shape takes the result.
            let owned: Vec<LeafArg> = leaves
                .into_iter()
                .map(|b| {
                    let shape = b.shape().to_vec();
                    arg(LeafIn::Owned(b), &shape)
                })
                .collect();
            let got = Prepared::new(&c.chain, owned, &c.out, dtype).unwrap().run();
            prop_assert!(bits_eq(&got.astype(DType::F64).to_f64_vec(), &want));
        }
    }

    fn lanes(out: &[usize], shapes: &[&[usize]]) -> Lanes {
        let st: Vec<Vec<usize>> = shapes.iter().map(|s| broadcast_strides(out, s)).collect();
        Lanes::new(out, &st)
    }

    #[test]
    fn lanes_merge_axes_that_step_alike_and_drop_length_one_axes() {
        // (4, 1, 6) out of a full leaf and a (1, 1, 6) leaf: axes 0 and 2
        // cannot merge (the second leaf repeats along axis 0).
        let l = lanes(&[4, 1, 6], &[&[4, 1, 6], &[1, 1, 6]]);
        assert_eq!((l.outer.clone(), l.len), (vec![4], 6));
        assert_eq!(l.lane, vec![1, 1]);
        assert_eq!(l.strides, vec![vec![6], vec![0]]);
        // Equal shapes merge into one lane.
        let l = lanes(&[3, 5, 7], &[&[3, 5, 7], &[5, 7]]);
        assert_eq!((l.outer.len(), l.len), (1, 35));
        assert_eq!(l.outer, vec![3]);
        // A column leaf is read one value per lane.
        let l = lanes(&[8, 9], &[&[8, 1], &[9]]);
        assert_eq!(
            (l.outer.clone(), l.len, l.lane.clone()),
            (vec![8], 9, vec![0, 1])
        );
        let mut offs = vec![0; 2];
        l.offsets(5, &mut offs);
        assert_eq!(offs, vec![5, 0]);
    }

    /// Sums and means folded straight from chains (strip by strip, never
    /// stored) have the bits of folding the chains' blocks.
    #[test]
    fn chains_fold_into_sums_with_the_bits_of_their_blocks() {
        use crate::kernels::reduce::{accumulate_chains, accumulate_many, finalize, ReduceOp};
        // (a - b)**2 / 3 over tiles of (rows, 5000): a (rows, 1) against
        // b (5000,), then summed over axis 0.
        let chain = Chain {
            ops: vec![
                (
                    FusedOp::Binary(BinaryOp::Sub),
                    vec![Ref::Leaf(0), Ref::Leaf(1)],
                ),
                (
                    FusedOp::Binary(BinaryOp::Pow),
                    vec![Ref::Op(0), Ref::Const(2.0)],
                ),
                (
                    FusedOp::Binary(BinaryOp::Div),
                    vec![Ref::Op(1), Ref::Const(3.0)],
                ),
            ],
        };
        let m = 5000usize;
        let b: Vec<f64> = (0..m)
            .map(|j| ((j * 37) % 1009) as f64 * 0.013 - 5.0)
            .collect();
        let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[m]), b).unwrap());
        let tiles: Vec<(Prepared, Block)> = [3usize, 3, 2, 3]
            .iter()
            .enumerate()
            .map(|(t, &rows)| {
                let a: Vec<f64> = (0..rows).map(|i| (t * 3 + i) as f64 * 0.7 - 4.0).collect();
                let a = Block::from(ArrayD::from_shape_vec(IxDyn(&[rows, 1]), a).unwrap());
                let out = [rows, m];
                let leaves = vec![
                    LeafArg {
                        strides: broadcast_strides(&out, a.shape()),
                        block: LeafIn::Owned(a),
                    },
                    LeafArg {
                        strides: broadcast_strides(&out, b.shape()),
                        block: LeafIn::Shared(Arc::new(b.clone())),
                    },
                ];
                let p = Prepared::new(&chain, leaves, &out, DType::F64).unwrap();
                let block = p.to_block();
                (p, block)
            })
            .collect();
        for op in [
            ReduceOp::Sum,
            ReduceOp::NanSum,
            ReduceOp::Mean,
            ReduceOp::NanMean,
        ] {
            let (mut by_chain, mut by_block) = (None, None);
            let chains: Vec<&Prepared> = tiles.iter().map(|t| &t.0).collect();
            let blocks: Vec<&Block> = tiles.iter().map(|t| &t.1).collect();
            let origins: Vec<Vec<u64>> = vec![vec![0, 0]; blocks.len()];
            // Two groups, as a fold over more sub-tiles than a group holds.
            for (c, (bl, o)) in chains
                .chunks(2)
                .zip(blocks.chunks(2).zip(origins.chunks(2)))
            {
                assert!(
                    accumulate_chains(op, &mut by_chain, c, &[0]).unwrap(),
                    "{op:?}"
                );
                accumulate_many(op, &mut by_block, bl, &[0], o, &[11, m as u64]).unwrap();
            }
            let got = finalize(op, by_chain.unwrap()).unwrap().to_f64_vec();
            let want = finalize(op, by_block.unwrap()).unwrap().to_f64_vec();
            assert!(bits_eq(&got, &want), "{op:?}");
        }
        // A single tile is not a group: the caller folds its block.
        let mut acc = None;
        assert!(!accumulate_chains(ReduceOp::Sum, &mut acc, &[&tiles[0].0], &[0]).unwrap());
        assert!(acc.is_none());
    }

    #[test]
    fn registers_are_reused_once_free() {
        // ((a + 1) * 2 - 3) / 4: a straight line needs two registers.
        let chain = Chain {
            ops: vec![
                (
                    FusedOp::Binary(BinaryOp::Add),
                    vec![Ref::Leaf(0), Ref::Const(1.0)],
                ),
                (
                    FusedOp::Binary(BinaryOp::Mul),
                    vec![Ref::Op(0), Ref::Const(2.0)],
                ),
                (
                    FusedOp::Binary(BinaryOp::Sub),
                    vec![Ref::Op(1), Ref::Const(3.0)],
                ),
                (
                    FusedOp::Binary(BinaryOp::Div),
                    vec![Ref::Op(2), Ref::Const(4.0)],
                ),
            ],
        };
        let (instrs, nregs, root) = compile::<f64>(&chain);
        assert_eq!(nregs, 2);
        assert_eq!(instrs.len(), 4);
        assert_eq!(root, instrs[3].dst);
        for w in instrs.windows(2) {
            assert_ne!(
                w[0].dst, w[1].dst,
                "an op never writes the register it reads"
            );
        }
    }
}
