//! Dask-like text representation of an [`Array`]: shape, dtype, chunk
//! size, bytes, number of chunks, and the expression that makes it.

use std::fmt;

use super::{Array, Op, SelItem};
use crate::error::human_bytes;
use crate::random::Distribution;

fn tuple(v: &[u64], unknown_first: bool) -> String {
    let parts: Vec<String> = v
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if unknown_first && i == 0 {
                "nan".to_string()
            } else {
                x.to_string()
            }
        })
        .collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

fn axis_sel(s: &crate::grid::AxisSel) -> String {
    if s.step == 1 {
        format!("{}:{}", s.start, s.start + s.len)
    } else if s.step > 0 {
        format!(
            "{}:{}:{}",
            s.start,
            s.start as i64 + s.len as i64 * s.step,
            s.step
        )
    } else {
        format!("{}::{}", s.start, s.step)
    }
}

/// The expression as a short formula (depth-limited).
pub(crate) fn expr(a: &Array) -> String {
    expr_depth(a, 0)
}

fn expr_depth(a: &Array, depth: usize) -> String {
    if depth > 6 {
        return "…".to_string();
    }
    let e = |x: &Array| expr_depth(x, depth + 1);
    match a.op() {
        Op::Source { src } => format!("open('{}')", src.name()),
        Op::Memory { .. } => format!("array{}", tuple(a.shape(), false)),
        Op::Random { dist, seed } => match dist {
            Distribution::Normal { loc, scale } => {
                format!("random.normal({loc}, {scale}, seed={seed})")
            }
            Distribution::Uniform { low, high } => {
                format!("random.uniform({low}, {high}, seed={seed})")
            }
            Distribution::Exponential { scale } => {
                format!("random.exponential({scale}, seed={seed})")
            }
        },
        Op::Full { value } => {
            if a.ndim() == 0 {
                format!("{value}")
            } else {
                format!("full({value})")
            }
        }
        Op::Arange { start, step, .. } => format!("arange({start}, step={step})"),
        Op::Unary { op, x } => format!("{}({})", format!("{op:?}").to_lowercase(), e(x)),
        Op::Binary { op, a: x, b: y } => {
            format!("{}({}, {})", format!("{op:?}").to_lowercase(), e(x), e(y))
        }
        Op::Where { cond, a: x, b: y } => format!("where({}, {}, {})", e(cond), e(x), e(y)),
        Op::Clip { x, lo, hi } => format!("clip({}, {lo:?}, {hi:?})", e(x)),
        Op::Cast { x } => format!("{}.astype({})", e(x), a.dtype()),
        Op::Reduce { op, x, axes, .. } => {
            format!(
                "{}({}, axis={})",
                op.name(),
                e(x),
                tuple(&axes.iter().map(|&v| v as u64).collect::<Vec<_>>(), false)
            )
        }
        Op::Select { x, items } => {
            let mut per_axis: Vec<String> = Vec::new();
            for it in items {
                match it {
                    SelItem::Keep { sel, .. } => per_axis.push(axis_sel(sel)),
                    SelItem::Drop { index, .. } => per_axis.push(index.to_string()),
                    SelItem::New => per_axis.push("None".to_string()),
                }
            }
            format!("{}[{}]", e(x), per_axis.join(", "))
        }
        Op::Stack { xs, axis } => format!("stack([{} arrays], axis={axis})", xs.len()),
        Op::Concat { xs, axis } => format!("concatenate([{} arrays], axis={axis})", xs.len()),
        Op::Transpose { x, perm } => format!("transpose({}, {perm:?})", e(x)),
        Op::Tri { x, k, upper } => {
            format!("{}({}, k={k})", if *upper { "triu" } else { "tril" }, e(x))
        }
        Op::Masked { x, mask } => format!("{}[{}]", e(x), e(mask)),
        Op::MapBlocks { xs, name, .. } => {
            format!(
                "map_blocks({name}, {})",
                xs.iter().map(e).collect::<Vec<_>>().join(", ")
            )
        }
        Op::Rechunk { x } => format!("rechunk({}, {})", e(x), a.grid()),
        Op::Reshape { x, .. } => format!("reshape({}, {})", e(x), tuple(a.shape(), false)),
        Op::Scan { op, x, axis, .. } => format!("{}({}, axis={axis})", op.name(), e(x)),
        Op::ScanCarry { op, x, axis } => format!("{}_carry({}, axis={axis})", op.name(), e(x)),
    }
}

impl fmt::Display for Array {
    /// ```
    /// use ndstream_engine::{Array, Chunks, Distribution};
    /// let x = Array::random(Distribution::Normal { loc: 10.0, scale: 0.1 }, &[20000, 20000], Chunks::from(&[1000, 1000][..]), 0).unwrap();
    /// let s = x.to_string();
    /// assert!(s.contains("shape=(20000, 20000)"), "{s}");
    /// assert!(s.contains("chunks=400"), "{s}");
    /// assert!(s.contains("2.98 GiB"), "{s}");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = !self.known_len();
        let chunk_bytes = self.grid().max_chunk_elems() * self.dtype().size() as u64;
        write!(
            f,
            "ndstream.Array<shape={}, dtype={}, chunksize={}, chunks={}, bytes={}{} (chunk {})>\n  {}",
            tuple(self.shape(), unknown),
            self.dtype(),
            self.grid(),
            self.grid().num_chunks(),
            if unknown { "≤" } else { "" },
            human_bytes(self.nbytes()),
            human_bytes(chunk_bytes),
            expr(self)
        )
    }
}
