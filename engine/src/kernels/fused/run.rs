//! A chain ready to run: its evaluated leaves, the strips it runs in, and
//! the walk that fills the output (or runs of it) strip by strip.

use std::cell::RefCell;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::super::elementwise::{widest, Float};
use super::{
    compile, exec, gather, laid_out_as, scratch_for, Chain, Dst, Instr, Lanes, Read, Strip, STRIP,
};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};

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
pub(super) enum Leaf<T> {
    Owned(ArrayD<T>),
    Shared(Arc<Block>),
}

impl<T: Float> Leaf<T> {
    pub(super) fn new(b: LeafIn, index: usize) -> Result<Leaf<T>> {
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

    pub(super) fn array(&self) -> &ArrayD<T> {
        match self {
            Leaf::Owned(a) => a,
            #[allow(clippy::expect_used)]
            Leaf::Shared(b) => T::as_array(b).expect("checked in Leaf::new"),
        }
    }

    pub(super) fn data(&self) -> &[T] {
        #[allow(clippy::expect_used)]
        self.array().as_slice().expect("leaves are standard layout")
    }
}

/// A chain ready to run over its evaluated leaves: the output, or any run
/// of its elements in C order ([`Ready::fill`], for a reduction that
/// consumes them strip by strip).
pub(crate) struct Ready<T> {
    pub(super) instrs: Vec<Instr<T>>,
    pub(super) nregs: usize,
    pub(super) root: usize,
    pub(super) leaves: Vec<Leaf<T>>,
    /// Per leaf: whether it holds the output's elements in the output's
    /// order (so its buffer can take the result).
    pub(super) like_out: Vec<bool>,
    pub(super) lanes: Lanes,
    pub(super) out: Vec<usize>,
    /// Registers and scratch strips of [`Ready::fill`], kept across calls.
    pub(super) work: RefCell<Option<Work<T>>>,
}

/// The strips a chain runs in.
pub(super) struct Work<T> {
    /// `nregs` strips of [`STRIP`] elements, one after the other.
    pub(super) regs: Vec<T>,
    pub(super) scratch: Vec<Vec<T>>,
    pub(super) offs: Vec<usize>,
    pub(super) reads: Vec<Read>,
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
    pub(super) fn new(chain: &Chain, args: Vec<LeafArg>, out: &[usize]) -> Result<Ready<T>> {
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
    pub(super) fn to_array(&self) -> ArrayD<T> {
        let mut v = Vec::with_capacity(self.len());
        self.fill_into(0, self.len(), Dst::Extend(&mut v));
        #[allow(clippy::expect_used)]
        ArrayD::from_shape_vec(IxDyn(&self.out), v).expect("the chain wrote every element")
    }

    /// Elements of the output.
    pub(crate) fn len(&self) -> usize {
        self.out.iter().product()
    }

    pub(super) fn leaf_bytes(&self) -> usize {
        self.leaves
            .iter()
            .map(|l| l.array().len() * std::mem::size_of::<T>())
            .sum()
    }

    /// How each leaf is read along a lane (`reused`: the leaf whose buffer
    /// takes the result).
    pub(super) fn reads(&self, reused: Option<usize>) -> Vec<Read> {
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
    pub(super) fn run(mut self) -> ArrayD<T> {
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
    pub(super) fn run_in_place(&self, reads: &[Read], out: &mut [T]) {
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
    pub(super) fn fill_into(&self, at: usize, count: usize, mut dst: Dst<'_, T>) {
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
    pub(super) fn fill_body(
        &self,
        work: &mut Work<T>,
        at: usize,
        count: usize,
        dst: &mut Dst<'_, T>,
    ) {
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
    pub(super) fn strip(
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
