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

use super::elementwise::{BinaryOp, Float, UnaryOp};

mod layout;
mod run;
mod strip;
#[cfg(test)]
mod tests;

use layout::Lanes;
pub(crate) use layout::{broadcast_strides, laid_out_as, lane_len};
pub(crate) use run::{LeafArg, LeafIn, Prepared, Ready};
use strip::{exec, gather, scratch_for, Dst, Read, Strip};

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
pub(super) enum Arg<T> {
    Reg(usize),
    Leaf(usize),
    Const(T),
}

/// `x ** e` for a one-element exponent, decoded as the whole-tile kernel
/// decodes it.
#[derive(Clone, Copy, Debug)]
pub(super) enum PowBy<T> {
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
pub(super) enum Step<T> {
    Unary(UnaryOp, Arg<T>),
    Binary(BinaryOp, Arg<T>, Arg<T>),
    Pow(Arg<T>, PowBy<T>),
    Clip(Arg<T>, Option<T>, Option<T>),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Instr<T> {
    pub(super) step: Step<T>,
    pub(super) dst: usize,
}

/// The exponent fast paths of the whole-tile `power` kernel, exactly.
pub(super) fn pow_by<T: Float>(e: f64) -> PowBy<T> {
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
pub(super) fn compile<T: Float>(chain: &Chain) -> (Vec<Instr<T>>, usize, usize) {
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
