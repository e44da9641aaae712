//! Fusing elementwise chains: the float ops under a node, of the node's
//! shape, run together strip by strip (see [`crate::kernels::fused`])
//! instead of one whole-tile pass per op.
//!
//! The chain under a node `a` at a selection takes in every float `Unary`,
//! `Binary` and `Clip` node of `a`'s dtype reached through such nodes and
//! through slices and indexes (`Select`), each at the selection it is
//! evaluated at, as long as it covers the whole output (no broadcast).
//! Anything else is a leaf, evaluated as usual and read by the chain in
//! place: other ops, inputs that broadcast (read along the lanes with
//! stride 0), and a node that is also used outside the chain (kept in the
//! tile's memo for its other uses). One-element `full` inputs (the scalars
//! of `4 * x`) become constants. A `**` whose exponent is not a scalar
//! constant is a leaf, so the exponent fast paths apply exactly where the
//! whole-tile kernel applies them: to a scalar exponent only.
//!
//! Each node of the chain keeps the map from its axes to the output's (an
//! index drops an axis, a new axis or a broadcast has none), so a leaf's
//! strides along the output's axes come from its own block's layout:
//! `(d * d)[:, :, k]` over `d = x[:, None, :] - x[None, :, :]` reads row
//! `i` of `x[:, k]` once per lane and column `k` of `x` along it.

use std::sync::Arc;

use crate::array::{Array, Op, SelItem};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;
use crate::eval::{broadcast_sel, eval_val, select_child_sel, self_square, EvalCtx, Val};
use crate::grid::{sel_shape, AxisSel, Selection};
use crate::kernels::elementwise::{BinaryOp, UnaryOp};
use crate::kernels::fused::{self, Chain, FusedOp, LeafArg, LeafIn, Prepared, Ref};

/// The shortest lanes a chain with broadcast leaves runs along: below
/// this, dispatching each op per lane costs more than the passes it saves.
const MIN_BROADCAST_LANE: usize = 32;

/// `a` at `sel` through its fused chain, or `None` when `a` heads no chain
/// of two ops or more (the caller evaluates it op by op).
pub(crate) fn try_eval(a: &Array, sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Option<Result<Block>> {
    prepare(a, sel, ctx).map(|p| p.map(Prepared::run))
}

/// The fused chain headed by `a` at `sel` with its leaves evaluated, or
/// `None` when `a` heads no chain of two ops or more.
pub(crate) fn prepare(a: &Array, sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Option<Result<Prepared>> {
    let dtype = a.dtype();
    let out = sel_shape(sel);
    if !dtype.is_float() || out.iter().product::<usize>() <= 1 || !fusable(a, dtype) {
        return None;
    }
    let region = Region::find(a, sel, ctx)?;
    let strides: Vec<Vec<usize>> = region.leaves.iter().map(|l| l.strides(&out)).collect();
    let broadcast = strides.iter().any(|st| !fused::laid_out_as(&out, st));
    if broadcast && fused::lane_len(&out, &strides) < MIN_BROADCAST_LANE {
        return None;
    }
    Some(region.prepare(strides, &out, dtype, ctx))
}

/// True if `n` can be an op of a chain of `dtype`.
fn fusable(n: &Array, dtype: DType) -> bool {
    if n.dtype() != dtype {
        return false;
    }
    match n.op() {
        Op::Unary { op, x } => FusedOp::Unary(*op).supported() && x.dtype() == dtype,
        Op::Binary { op, a, b } => {
            FusedOp::Binary(*op).supported()
                && a.dtype() == dtype
                && b.dtype() == dtype
                && (*op != BinaryOp::Pow || matches!(b.op(), Op::Full { .. }) && b.size() == 1)
        }
        Op::Clip { x, .. } => x.dtype() == dtype,
        _ => false,
    }
}

/// Per axis of a node's selection: the output axis it runs along, or
/// `None` for a length-1 axis (an index, a new axis, a broadcast).
type AxisMap = Vec<Option<usize>>;

/// A leaf of a chain: a node at a selection, and its axes' map.
struct LeafSpec<'a> {
    x: &'a Array,
    sel: Selection,
    map: AxisMap,
    /// Chain operands that read it.
    uses: u32,
}

impl LeafSpec<'_> {
    /// The leaf block's element strides along the output's axes.
    fn strides(&self, out: &[usize]) -> Vec<usize> {
        let shape = sel_shape(&self.sel);
        let own = fused::broadcast_strides(&shape, &shape);
        let mut st = vec![0usize; out.len()];
        for (d, m) in self.map.iter().enumerate() {
            if let Some(r) = *m {
                if shape[d] > 1 {
                    st[r] = own[d];
                }
            }
        }
        st
    }
}

/// The chain under a node, with its leaves.
struct Region<'a> {
    /// The output's shape.
    out: Vec<usize>,
    dtype: DType,
    chain: Chain,
    /// Node, selection and axis map of each op of the chain, and how many
    /// chain ops use it. (One node at one selection can stand for two
    /// arrangements of the output: `x[:, None]` and `x[None, :]` in a tile
    /// on the diagonal.)
    ids: Vec<(u64, Selection, AxisMap)>,
    uses: Vec<u32>,
    leaves: Vec<LeafSpec<'a>>,
    /// Nodes kept out of the chain (used outside it too).
    forced: Vec<u64>,
    shared: &'a std::collections::HashMap<u64, u32>,
}

impl<'a> Region<'a> {
    /// The chain under `root` at `sel`, if it has two ops or more. A node
    /// that is also used outside the chain (its plan-wide use count is
    /// above its uses inside) becomes a leaf, and the chain is found again
    /// without it.
    fn find(root: &'a Array, sel: &[AxisSel], ctx: &'a EvalCtx<'_>) -> Option<Region<'a>> {
        let mut forced: Vec<u64> = Vec::new();
        loop {
            let mut r = Region {
                out: sel_shape(sel),
                dtype: root.dtype(),
                chain: Chain::default(),
                ids: Vec::new(),
                uses: Vec::new(),
                leaves: Vec::new(),
                forced,
                shared: &ctx.reuse.shared,
            };
            let map: AxisMap = (0..sel.len()).map(Some).collect();
            r.node(root, sel.to_vec(), map);
            let last = r.ids.len().saturating_sub(1);
            let mut inside: Vec<(u64, u32)> = Vec::new();
            for ((id, _, _), &u) in r.ids.iter().zip(&r.uses).take(last) {
                match inside.iter_mut().find(|(i, _)| i == id) {
                    Some((_, n)) => *n += u,
                    None => inside.push((*id, u)),
                }
            }
            let outside: Vec<u64> = inside
                .iter()
                .filter(|(id, n)| r.shared.get(id).is_some_and(|&u| u > *n))
                .map(|(id, _)| *id)
                .collect();
            if outside.is_empty() {
                return (r.chain.ops.len() >= 2).then_some(r);
            }
            forced = r.forced;
            forced.extend(outside);
        }
    }

    /// Add the fusable node `n` at `sel` (after its operands).
    fn node(&mut self, n: &'a Array, sel: Selection, map: AxisMap) -> Ref {
        let (op, args): (FusedOp, Vec<&'a Array>) = match (self_square(n), n.op()) {
            (Some(x), _) => (FusedOp::Unary(UnaryOp::Square), vec![x]),
            (None, Op::Unary { op, x }) => (FusedOp::Unary(*op), vec![x]),
            (None, Op::Binary { op, a, b }) => (FusedOp::Binary(*op), vec![a, b]),
            (None, Op::Clip { x, lo, hi }) => (FusedOp::Clip { lo: *lo, hi: *hi }, vec![x]),
            _ => unreachable!("only fusable nodes are added"),
        };
        let refs: Vec<Ref> = args
            .into_iter()
            .map(|c| {
                // Operands broadcast: axes aligned from the right.
                let csel = broadcast_sel(&sel, c.shape());
                let off = sel.len() - csel.len();
                let cmap: AxisMap = (0..csel.len())
                    .map(|d| if csel[d].len == 1 { None } else { map[d + off] })
                    .collect();
                self.operand(c, csel, cmap)
            })
            .collect();
        self.chain.ops.push((op, refs));
        self.ids.push((n.id(), sel, map));
        self.uses.push(0);
        Ref::Op(self.ids.len() - 1)
    }

    /// True if a node at `sel` with `map` covers every output element
    /// once (no output axis broadcast).
    fn full(&self, sel: &[AxisSel], map: &AxisMap) -> bool {
        (0..self.out.len()).all(|r| {
            self.out[r] == 1 || map.iter().zip(sel).any(|(m, s)| *m == Some(r) && s.len > 1)
        })
    }

    /// The ref of operand `c` at `sel`: a constant, an op of the chain, or
    /// a leaf. Slices and indexes are looked through.
    fn operand(&mut self, c: &'a Array, sel: Selection, map: AxisMap) -> Ref {
        if let Op::Full { value } = c.op() {
            if c.shape().iter().product::<u64>() == 1 {
                return Ref::Const(*value);
            }
        }
        if let Op::Select { x, items } = c.op() {
            if !self.shared.contains_key(&c.id()) {
                let xsel = select_child_sel(x, items, &sel);
                let mut xmap: AxisMap = vec![None; x.ndim()];
                let mut j = 0;
                for it in items {
                    match it {
                        SelItem::Keep { axis, .. } => {
                            xmap[*axis] = map[j];
                            j += 1;
                        }
                        SelItem::Drop { .. } => {}
                        SelItem::New => j += 1,
                    }
                }
                if (0..xsel.len()).all(|d| xsel[d].len <= 1 || xmap[d].is_some()) {
                    return self.operand(x, xsel, xmap);
                }
            }
        }
        if fusable(c, self.dtype) && !self.forced.contains(&c.id()) && self.full(&sel, &map) {
            let i = match self
                .ids
                .iter()
                .position(|(id, s, m)| *id == c.id() && *s == sel && *m == map)
            {
                Some(i) => i,
                None => match self.node(c, sel, map) {
                    Ref::Op(i) => i,
                    r => return r,
                },
            };
            self.uses[i] += 1;
            return Ref::Op(i);
        }
        let i = match self
            .leaves
            .iter()
            .position(|l| l.x.id() == c.id() && l.sel == sel && l.map == map)
        {
            Some(i) => i,
            None => {
                self.leaves.push(LeafSpec {
                    x: c,
                    sel,
                    map,
                    uses: 0,
                });
                self.leaves.len() - 1
            }
        };
        self.leaves[i].uses += 1;
        Ref::Leaf(i)
    }

    /// Evaluate the leaves at their selections, ready to run the chain.
    fn prepare(
        &self,
        strides: Vec<Vec<usize>>,
        out: &[usize],
        dtype: DType,
        ctx: &EvalCtx<'_>,
    ) -> Result<Prepared> {
        let mut leaves = Vec::with_capacity(self.leaves.len());
        for (l, st) in self.leaves.iter().zip(strides) {
            let v = eval_val(l.x, &l.sel, ctx)?;
            // A node kept for several uses is read once here for all of the
            // chain's uses: take them all from the memo, so that it lets go
            // of the block once no use is left outside.
            if ctx.reuse.shared.contains_key(&l.x.id()) {
                for _ in 1..l.uses {
                    drop(eval_val(l.x, &l.sel, ctx)?);
                }
            }
            let block = match v {
                Val::Owned(b) => LeafIn::Owned(b),
                Val::Shared(a) => match Arc::try_unwrap(a) {
                    Ok(b) => LeafIn::Owned(b),
                    Err(a) => LeafIn::Shared(a),
                },
            };
            leaves.push(LeafArg { block, strides: st });
        }
        Prepared::new(&self.chain, leaves, out, dtype)
    }
}
