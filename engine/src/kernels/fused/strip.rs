//! One strip: where the leaves' elements come from along it, and the
//! instructions' loops over it (each op's float arm from the op tables).

use super::super::elementwise::{
    binary_table, float_divmod, nan_max, nan_min, unary_table, BinaryOp, Float, UnaryOp,
};
use super::{Arg, PowBy, Step, STRIP};

/// Where [`Ready::fill_into`] puts the elements.
pub(super) enum Dst<'a, T> {
    Slice(&'a mut [T]),
    Extend(&'a mut Vec<T>),
}

/// Where the leaves' strips are.
pub(super) struct Strip<'a, T> {
    pub(super) reads: &'a [Read],
    pub(super) data: &'a [&'a [T]],
    pub(super) offs: &'a [usize],
    pub(super) k0: usize,
    pub(super) len: usize,
    pub(super) scratch: &'a [Vec<T>],
}

impl<'a, T: Copy> Strip<'a, T> {
    /// An operand along the strip.
    #[inline(always)]
    pub(super) fn arg<'r>(&self, a: Arg<T>, lo: &'r [T], hi: &'r [T], dst: usize) -> Src<'r, T>
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
pub(super) fn scratch_for<T: Float>(reads: &[Read]) -> Vec<Vec<T>> {
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
pub(super) fn gather<T: Copy>(
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
pub(super) enum Src<'a, T> {
    Slice(&'a [T]),
    Splat(T),
}

/// How a leaf is read along a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
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
pub(super) fn exec<'a, T: Float>(step: Step<T>, d: &mut [T], arg: impl Fn(Arg<T>) -> Src<'a, T>) {
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
pub(super) fn un<T: Copy>(d: &mut [T], x: Src<'_, T>, f: impl Fn(T) -> T) {
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
pub(super) fn bin<T: Copy>(d: &mut [T], a: Src<'_, T>, b: Src<'_, T>, f: impl Fn(T, T) -> T) {
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
