//! Planning passes over an expression before it runs.
//!
//! - [`rewrite`] pushes slices below reductions, so `x.mean(0)[::100]`
//!   reduces (and generates, or reads) only the columns it keeps.
//! - [`Reuse::of`] finds the sources read more than once in a plan (only
//!   their chunks go through the LRU cache) and the subexpressions used
//!   several times at the same selection (evaluated once per tile).
//! - [`too_small`] is the one place that words the refusal of a plan that
//!   cannot fit its budget.

use std::collections::{HashMap, HashSet};

use crate::array::{Array, Op, SelItem};
use crate::error::{human_bytes, Error};
use crate::grid::AxisSel;

/// A copy of node `a` with new inputs (same op parameters, shape, dtype, grid).
pub(crate) fn with_inputs(a: &Array, inputs: Vec<Array>) -> Array {
    let mut it = inputs.into_iter();
    let mut next = || {
        it.next()
            .unwrap_or_else(|| unreachable!("input count matches the op"))
    };
    let op = match a.op() {
        Op::Source { .. }
        | Op::Memory { .. }
        | Op::Random { .. }
        | Op::Full { .. }
        | Op::Arange { .. } => return a.clone(),
        Op::Unary { op, .. } => Op::Unary { op: *op, x: next() },
        Op::Binary { op, .. } => {
            let x = next();
            Op::Binary {
                op: *op,
                a: x,
                b: next(),
            }
        }
        Op::Where { .. } => {
            let c = next();
            let x = next();
            Op::Where {
                cond: c,
                a: x,
                b: next(),
            }
        }
        Op::Clip { lo, hi, .. } => Op::Clip {
            x: next(),
            lo: *lo,
            hi: *hi,
        },
        Op::Cast { .. } => Op::Cast { x: next() },
        Op::Reduce {
            op, axes, keepdims, ..
        } => Op::Reduce {
            op: *op,
            x: next(),
            axes: axes.clone(),
            keepdims: *keepdims,
        },
        Op::Select { items, .. } => Op::Select {
            x: next(),
            items: items.clone(),
        },
        Op::Stack { xs, axis } => Op::Stack {
            xs: xs.iter().map(|_| next()).collect(),
            axis: *axis,
        },
        Op::Concat { xs, axis } => Op::Concat {
            xs: xs.iter().map(|_| next()).collect(),
            axis: *axis,
        },
        Op::Transpose { perm, .. } => Op::Transpose {
            x: next(),
            perm: perm.clone(),
        },
        Op::Tri { k, upper, .. } => Op::Tri {
            x: next(),
            k: *k,
            upper: *upper,
        },
        Op::Masked { .. } => {
            let x = next();
            Op::Masked { x, mask: next() }
        }
        Op::MapBlocks { xs, f, name, map } => Op::MapBlocks {
            xs: xs.iter().map(|_| next()).collect(),
            f: f.clone(),
            name: name.clone(),
            map: map.clone(),
        },
        Op::Rechunk { .. } => Op::Rechunk { x: next() },
        Op::Reshape { read, .. } => Op::Reshape {
            x: next(),
            read: read.clone(),
        },
        Op::Scan {
            op, axis, carry, ..
        } => {
            let x = next();
            Op::Scan {
                op: *op,
                x,
                axis: *axis,
                carry: carry.as_ref().map(|_| next()),
            }
        }
        Op::ScanCarry { op, axis, .. } => Op::ScanCarry {
            op: *op,
            x: next(),
            axis: *axis,
        },
    };
    Array::new(op, a.shape().to_vec(), a.dtype(), a.grid().clone())
}

/// Push slices below reductions everywhere in the expression.
pub(crate) fn rewrite(a: &Array) -> Array {
    let mut memo: HashMap<u64, Array> = HashMap::new();
    rewrite_memo(a, &mut memo)
}

fn rewrite_memo(a: &Array, memo: &mut HashMap<u64, Array>) -> Array {
    if let Some(r) = memo.get(&a.id()) {
        return r.clone();
    }
    let inputs = a.inputs();
    let new: Vec<Array> = inputs.iter().map(|x| rewrite_memo(x, memo)).collect();
    let changed = new.iter().zip(&inputs).any(|(n, o)| !n.same_node(o));
    let a2 = if changed {
        with_inputs(a, new)
    } else {
        a.clone()
    };
    let out = push_select_below_reduce(&a2).unwrap_or(a2);
    let out = unroll_short_sum(&out).unwrap_or(out);
    memo.insert(a.id(), out.clone());
    out
}

/// `Select(Reduce(y))` → `Reduce(Select'(y))` when the selection only
/// touches kept axes and inserts no new axes.
fn push_select_below_reduce(a: &Array) -> Option<Array> {
    let Op::Select { x: r, items } = a.op() else {
        return None;
    };
    let Op::Reduce {
        op,
        x: y,
        axes,
        keepdims,
    } = r.op()
    else {
        return None;
    };
    if !y.known_len()
        || matches!(
            op,
            crate::kernels::reduce::ReduceOp::TopK { .. }
                | crate::kernels::reduce::ReduceOp::ArgTopK { .. }
        )
    {
        return None;
    }
    if items.iter().any(|i| matches!(i, SelItem::New)) {
        return None;
    }
    // Reduce output axis j ↔ input axis of y.
    let out_to_in: Vec<usize> = (0..y.ndim())
        .filter(|d| *keepdims || !axes.contains(d))
        .collect();
    let mut y_items: Vec<Option<SelItem>> = vec![None; y.ndim()];
    for it in items {
        match it {
            SelItem::Keep { axis, sel } => {
                let d = out_to_in[*axis];
                if axes.contains(&d) {
                    if sel.len != 1 {
                        return None;
                    }
                    y_items[d] = Some(SelItem::Keep {
                        axis: d,
                        sel: AxisSel::full(y.shape()[d]),
                    });
                } else {
                    y_items[d] = Some(SelItem::Keep { axis: d, sel: *sel });
                }
            }
            SelItem::Drop { axis, index } => {
                let d = out_to_in[*axis];
                if axes.contains(&d) {
                    return None;
                }
                y_items[d] = Some(SelItem::Drop {
                    axis: d,
                    index: *index,
                });
            }
            SelItem::New => return None,
        }
    }
    let mut idx = Vec::with_capacity(y.ndim());
    let mut new_axes = Vec::new();
    let mut pos = 0isize;
    for (d, item) in y_items.iter().enumerate() {
        let it = item.unwrap_or(SelItem::Keep {
            axis: d,
            sel: AxisSel::full(y.shape()[d]),
        });
        match it {
            SelItem::Keep { sel, .. } => {
                if axes.contains(&d) {
                    new_axes.push(pos);
                }
                idx.push(crate::array::IndexItem::Slice {
                    start: Some(sel.start as i64),
                    stop: if sel.step > 0 {
                        Some(sel.start as i64 + sel.len as i64 * sel.step)
                    } else if sel.len == 0 {
                        Some(sel.start as i64)
                    } else {
                        let end = sel.start as i64 + sel.len as i64 * sel.step;
                        if end < 0 {
                            None
                        } else {
                            Some(end)
                        }
                    },
                    step: sel.step,
                });
                pos += 1;
            }
            SelItem::Drop { index, .. } => idx.push(crate::array::IndexItem::Index(index as i64)),
            SelItem::New => return None,
        }
    }
    let ys = y.index(&idx).ok()?;
    let out = ys.reduce(*op, Some(&new_axes), *keepdims).ok()?;
    (out.shape() == a.shape() && out.dtype() == a.dtype()).then_some(out)
}

/// `sum(x, axis=a)` over a short axis (at most 4 long) of a generated
/// float64 expression → `x[.., 0, ..] + x[.., 1, ..] + ...`: the pairwise
/// distances' `(d * d).sum(-1)` then fuses into plain elementwise passes
/// instead of a reduction with one accumulator per output element. NumPy
/// sums so few terms left to right as well.
fn unroll_short_sum(a: &Array) -> Option<Array> {
    let Op::Reduce {
        op: crate::kernels::reduce::ReduceOp::Sum,
        x,
        axes,
        keepdims: false,
    } = a.op()
    else {
        return None;
    };
    if axes.len() != 1 || x.dtype() != crate::DType::F64 || !x.known_len() || crate::eval::has_io(x)
    {
        return None;
    }
    let axis = axes[0];
    let n = x.shape()[axis];
    if !(1..=4).contains(&n) {
        return None;
    }
    let part = |i: u64| {
        let mut idx = vec![crate::array::IndexItem::FULL; x.ndim()];
        idx[axis] = crate::array::IndexItem::Index(i as i64);
        x.index(&idx)
    };
    let mut acc = part(0).ok()?;
    for i in 1..n {
        acc = acc
            .binary(crate::kernels::elementwise::BinaryOp::Add, &part(i).ok()?)
            .ok()?;
    }
    (acc.shape() == a.shape() && acc.dtype() == a.dtype()).then_some(acc)
}

/// What a plan reads or computes more than once.
#[derive(Debug, Default)]
pub(crate) struct Reuse {
    /// Sources whose chunks go through the LRU cache.
    pub sources: HashSet<u64>,
    /// Nodes used by several parents at the parents' own selection (e.g.
    /// `s` in `s * s - s`), with their number of uses: evaluation keeps
    /// their block for the other uses of the same tile.
    pub shared: HashMap<u64, u32>,
}

impl Reuse {
    /// The reuse in a plan of these roots.
    pub(crate) fn of(roots: &[Array]) -> Reuse {
        Reuse {
            sources: cached_sources(roots),
            shared: shared_nodes(roots),
        }
    }

    /// The same cached sources, with shared nodes found again in `roots`
    /// (a plan rewritten after small reductions ran as their own stage).
    pub(crate) fn for_roots(&self, roots: &[Array]) -> Reuse {
        Reuse {
            sources: self.sources.clone(),
            shared: shared_nodes(roots),
        }
    }
}

/// Nodes with several uses, every one at its parent's selection: inputs
/// of elementwise nodes (and masks) of their parent's shape. A node also
/// read through an index, a broadcast or a stack is left out: its uses see
/// different selections, so keeping its block would only cost a copy.
fn shared_nodes(roots: &[Array]) -> HashMap<u64, u32> {
    let mut uses: HashMap<u64, u32> = HashMap::new();
    let mut other: HashSet<u64> = HashSet::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut stack: Vec<&Array> = roots.iter().collect();
    while let Some(a) = stack.pop() {
        if !seen.insert(a.id()) {
            continue;
        }
        let elementwise = matches!(
            a.op(),
            Op::Unary { .. }
                | Op::Binary { .. }
                | Op::Where { .. }
                | Op::Clip { .. }
                | Op::Cast { .. }
                | Op::Rechunk { .. }
        );
        // A mask and its data are evaluated at the same tile.
        let masked = matches!(a.op(), Op::Masked { .. });
        // `d * d` evaluates `d` once (see `eval::self_square`).
        let inputs = match crate::eval::self_square(a) {
            Some(x) => vec![x],
            None => a.inputs(),
        };
        for x in inputs {
            if masked || (elementwise && x.shape() == a.shape()) {
                *uses.entry(x.id()).or_default() += 1;
            } else {
                other.insert(x.id());
            }
            stack.push(x);
        }
    }
    uses.retain(|id, n| *n > 1 && !other.contains(id));
    uses
}

/// Sources whose chunks are read more than once in these expressions:
/// referenced by several parents, or read through a slice, rechunk,
/// reshape or transpose (which may cut one chunk across several tasks).
fn cached_sources(roots: &[Array]) -> HashSet<u64> {
    let mut refs: HashMap<u64, usize> = HashMap::new();
    let mut under_cut: HashSet<u64> = HashSet::new();
    let mut seen: HashSet<u64> = HashSet::new();
    fn walk(
        a: &Array,
        cut: bool,
        refs: &mut HashMap<u64, usize>,
        under: &mut HashSet<u64>,
        seen: &mut HashSet<u64>,
    ) {
        if let Op::Source { .. } = a.op() {
            *refs.entry(a.id()).or_default() += 1;
            if cut {
                under.insert(a.id());
            }
            return;
        }
        let cut = cut
            || matches!(
                a.op(),
                Op::Select { .. }
                    | Op::Rechunk { .. }
                    | Op::Reshape { .. }
                    | Op::Transpose { .. }
                    | Op::MapBlocks { .. }
            );
        // Visit shared subexpressions once per path kind, but count every edge into a source.
        let first = seen.insert(a.id() ^ (cut as u64) << 63);
        // A selection of a stack reads only the inputs it picks (`x[0]` of
        // 31 files reads one): the others are not read through it.
        if let Op::Select { x, items } = a.op() {
            if let Op::Stack { xs, axis } = x.op() {
                let picked: Vec<usize> = items
                    .iter()
                    .find_map(|it| match it {
                        SelItem::Drop { axis: d, index } if d == axis => {
                            Some(vec![*index as usize])
                        }
                        SelItem::Keep { axis: d, sel } if d == axis => {
                            Some((0..sel.len).map(|i| sel.index(i) as usize).collect())
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| (0..xs.len()).collect());
                for x in picked.into_iter().filter_map(|i| xs.get(i)) {
                    if first || matches!(x.op(), Op::Source { .. }) {
                        walk(x, true, refs, under, seen);
                    }
                }
                return;
            }
        }
        for x in a.inputs() {
            if first || matches!(x.op(), Op::Source { .. }) {
                walk(x, cut, refs, under, seen);
            }
        }
    }
    for r in roots {
        walk(r, false, &mut refs, &mut under_cut, &mut seen);
    }
    refs.into_iter()
        .filter(|(id, n)| *n > 1 || under_cut.contains(id))
        .map(|(id, _)| id)
        .collect()
}

/// The error for a plan whose smallest unit of work does not fit the budget.
pub(crate) fn too_small(a: &Array, needed: u64, budget: u64, unit: &str) -> Error {
    let chunk = a.grid().max_chunk_shape();
    Error::BudgetTooSmall {
        op: format!("{unit} of {a:?} (chunks {chunk:?})"),
        needed,
        needed_h: human_bytes(needed),
        budget,
        budget_h: human_bytes(budget),
        hint: format!(
            "rechunk to smaller chunks (about {} per chunk would fit) or raise the memory budget (--memory)",
            human_bytes((budget / 8).max(1))
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::block::Block;
    use crate::dtype::DType;
    use crate::grid::ChunkGrid;
    use crate::source::ChunkSource;
    use crate::IndexItem;

    /// A (4, 6) f64 source of zeros, chunks (2, 3).
    #[derive(Debug)]
    struct Zeros(ChunkGrid);
    impl ChunkSource for Zeros {
        fn name(&self) -> &str {
            "zeros"
        }
        fn shape(&self) -> &[u64] {
            &[4, 6]
        }
        fn dtype(&self) -> DType {
            DType::F64
        }
        fn grid(&self) -> &ChunkGrid {
            &self.0
        }
        fn read_chunk(&self, idx: &[u64]) -> crate::Result<Block> {
            let r = self.0.chunk_region(idx);
            let shape: Vec<usize> = r.iter().map(|r| (r.end - r.start) as usize).collect();
            Ok(Block::zeros(DType::F64, &shape))
        }
    }

    fn source() -> Array {
        Array::from_source(Arc::new(Zeros(ChunkGrid::regular(&[4, 6], &[2, 3]))))
    }

    #[test]
    fn only_the_picked_input_of_a_stack_is_cached() {
        let xs: Vec<Array> = (0..3).map(|_| source()).collect();
        let x = crate::array::stack(&xs, 0).unwrap();
        // x[0] - x.mean(axis=0): input 0 is read twice, 1 and 2 once.
        let first = x.index(&[IndexItem::Index(0)]).unwrap();
        let y = &first - &x.mean(Some(0)).unwrap();
        let cached = cached_sources(&[rewrite(&y)]);
        assert_eq!(cached, HashSet::from([xs[0].id()]));
        // x[1:] picks inputs 1 and 2 (through a slice, so they are cached).
        let tail = x.index(&[IndexItem::slice(Some(1), None, 1)]).unwrap();
        let cached = cached_sources(&[rewrite(&tail.sum(None).unwrap())]);
        assert_eq!(cached, HashSet::from([xs[1].id(), xs[2].id()]));
    }

    #[test]
    fn shared_nodes_are_those_used_twice_at_one_selection() {
        let x = source();
        let s = (&x * 2.0).exp().unwrap();
        let y = &(&s * &s) - &s;
        let shared = shared_nodes(std::slice::from_ref(&y));
        // `s * s` evaluates `s` once (a square), `- s` is the second use.
        assert_eq!(shared.get(&s.id()), Some(&2));
        // A square alone keeps nothing.
        let sq = &s * &s;
        assert!(shared_nodes(std::slice::from_ref(&sq)).is_empty());
        // x is used once (by `x * 2`); a node also read through an index is left out.
        assert!(!shared.contains_key(&x.id()));
        let z = &(&s + &s) - &s.index(&[IndexItem::slice(None, None, -1)]).unwrap();
        assert!(!shared_nodes(std::slice::from_ref(&z)).contains_key(&s.id()));
    }
}
