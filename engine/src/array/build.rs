//! Building expressions: elementwise math with NumPy broadcasting and type
//! promotion, reductions, indexing, stacking, and user kernels.
//!
//! Every builder checks shapes, dtypes and arguments at once and computes
//! the new node's chunk grid, so a program that builds is a program that
//! can run (memory permitting, which the planner checks next).

use std::sync::Arc;

use super::{Array, BlockFn, BlockMap, IndexItem, Op};
use crate::block::Block;
use crate::dtype::{DType, Kind};
use crate::error::{Error, Result};
use crate::grid::{AxisChunks, ChunkGrid};
use crate::kernels::elementwise::{
    binary_dtypes, binary_table, unary_dtype, unary_table, BinaryOp, UnaryOp,
};
use crate::kernels::reduce::{empty_value, result_dtype, ReduceOp};

/// A Python-style scalar operand: *weak* in NumPy's promotion (NEP 50), so
/// `f32_array * 2.0` stays f32.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    fn kind(self) -> Kind {
        match self {
            Scalar::Bool(_) => Kind::Bool,
            Scalar::Int(_) => Kind::Signed,
            Scalar::Float(_) => Kind::Float,
        }
    }

    fn value(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Scalar {
        Scalar::Float(v)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Scalar {
        Scalar::Int(v)
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Scalar {
        Scalar::Bool(v)
    }
}

pub(super) fn normalize_axis(op: &'static str, axis: isize, ndim: usize) -> Result<usize> {
    let a = if axis < 0 { axis + ndim as isize } else { axis };
    if a < 0 || a >= ndim as isize {
        return Err(Error::AxisOutOfBounds { op, axis, ndim });
    }
    Ok(a as usize)
}

/// A reduction with nothing to reduce (a zero-length reduced axis) or
/// nothing to produce (an empty output), as NumPy defines it: the identity
/// (`sum` 0, `prod` 1, `any` false, `all` true), NaN for the means and
/// moments, and an error for the reductions without identity (`max`,
/// `argmax`, …) unless the output itself is empty. The reduction's family
/// decides ([`empty_value`]).
fn empty_reduction(
    op: ReduceOp,
    input: DType,
    shape: Vec<u64>,
    dtype: DType,
    grid: ChunkGrid,
) -> Result<Array> {
    let value = if shape.contains(&0) {
        0.0
    } else {
        empty_value(op, input)?
    };
    Ok(Array::new(Op::Full { value }, shape, dtype, grid))
}

fn broadcast_shapes(op: &'static str, a: &[u64], b: &[u64]) -> Result<Vec<u64>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::Shape {
                op,
                left: a.to_vec(),
                right: b.to_vec(),
            });
        };
    }
    Ok(out)
}

/// The grid of a broadcast result: along each axis, the finest chunking of
/// any input that is not broadcast there.
fn broadcast_grid(shape: &[u64], inputs: &[&Array]) -> ChunkGrid {
    let n = shape.len();
    let axes = (0..n)
        .map(|d| {
            let mut best: Option<&AxisChunks> = None;
            for x in inputs {
                let k = x.ndim();
                if d + k < n {
                    continue;
                }
                let ax = &x.grid().axes()[d + k - n];
                if ax.len() == shape[d] && best.is_none_or(|b| ax.count() > b.count()) {
                    best = Some(ax);
                }
            }
            best.cloned()
                .unwrap_or_else(|| AxisChunks::regular(shape[d], shape[d].max(1)))
        })
        .collect();
    ChunkGrid::from_axes(axes)
}

/// An operand of an elementwise operation: an array or a weak scalar.
#[derive(Clone, Debug)]
pub enum Operand {
    Array(Array),
    Scalar(Scalar),
}

impl From<&Array> for Operand {
    fn from(a: &Array) -> Operand {
        Operand::Array(a.clone())
    }
}
impl From<Array> for Operand {
    fn from(a: Array) -> Operand {
        Operand::Array(a)
    }
}
impl From<f64> for Operand {
    fn from(v: f64) -> Operand {
        Operand::Scalar(Scalar::Float(v))
    }
}
impl From<i64> for Operand {
    fn from(v: i64) -> Operand {
        Operand::Scalar(Scalar::Int(v))
    }
}
impl From<bool> for Operand {
    fn from(v: bool) -> Operand {
        Operand::Scalar(Scalar::Bool(v))
    }
}
impl From<Scalar> for Operand {
    fn from(v: Scalar) -> Operand {
        Operand::Scalar(v)
    }
}

/// Split masked operands into (data, shared mask). Elementwise math on the
/// result of `x[m]` runs on `x` and keeps the mask, so it never needs the
/// masked length.
fn unmask(op: &'static str, xs: &[&Array]) -> Result<(Vec<Array>, Option<Array>)> {
    let mut mask: Option<Array> = None;
    let mut out = Vec::with_capacity(xs.len());
    for x in xs {
        match &x.0.op {
            Op::Masked { x: data, mask: m } => {
                if let Some(prev) = &mask {
                    if !prev.same_node(m) {
                        return Err(Error::UnknownLength { op });
                    }
                }
                mask = Some(m.clone());
                out.push(data.clone());
            }
            _ => out.push((*x).clone()),
        }
    }
    if mask.is_some()
        && out
            .iter()
            .zip(xs)
            .any(|(d, x)| x.known_len() && d.ndim() > 0)
    {
        return Err(Error::UnknownLength { op });
    }
    Ok((out, mask))
}

fn remask(x: Array, mask: Option<Array>) -> Array {
    match mask {
        None => x,
        Some(m) => masked_node(x, m),
    }
}

pub(super) fn masked_node(x: Array, mask: Array) -> Array {
    let n = x.size();
    let chunk = x.grid().max_chunk_elems().max(1);
    let dtype = x.dtype();
    Array::new(
        Op::Masked { x, mask },
        vec![n],
        dtype,
        ChunkGrid::regular(&[n], &[chunk]),
    )
}

impl Array {
    /// Cast to `dtype` (NumPy `astype`); free when the dtype already matches.
    pub fn astype(&self, dtype: DType) -> Array {
        if self.dtype() == dtype {
            return self.clone();
        }
        match &self.0.op {
            Op::Full { value } => Array::new(
                Op::Full { value: *value },
                self.shape().to_vec(),
                dtype,
                self.grid().clone(),
            ),
            Op::Masked { x, mask } => masked_node(x.astype(dtype), mask.clone()),
            _ => Array::new(
                Op::Cast { x: self.clone() },
                self.shape().to_vec(),
                dtype,
                self.grid().clone(),
            ),
        }
    }

    /// Apply a one-input elementwise operation.
    ///
    /// # Errors
    /// An operation not defined for the dtype (e.g. `Not` on floats).
    pub fn unary(&self, op: UnaryOp) -> Result<Array> {
        let (xs, mask) = unmask("unary", &[self])?;
        let x = &xs[0];
        let dtype = unary_dtype(op, x.dtype())?;
        let out = Array::new(
            Op::Unary { op, x: x.clone() },
            x.shape().to_vec(),
            dtype,
            x.grid().clone(),
        );
        Ok(remask(out, mask))
    }

    /// Apply a two-input elementwise operation with NumPy broadcasting and
    /// type promotion; `other` may be an array or a scalar.
    ///
    /// ```
    /// use ndstream_engine::{Array, BinaryOp, Chunks};
    /// let x = Array::from_ndarray(ndarray::arr1(&[1.0f32, 2.0, 3.0]).into_dyn(), Chunks::Auto).unwrap();
    /// let y = x.apply(BinaryOp::Mul, 2.0).unwrap();
    /// assert_eq!(y.dtype(), ndstream_engine::DType::F32); // weak scalar
    /// let col = x.index(&[ndstream_engine::IndexItem::FULL, ndstream_engine::IndexItem::NewAxis]).unwrap();
    /// let table = col.apply(BinaryOp::Sub, &x).unwrap();
    /// assert_eq!(table.shape(), &[3, 3]);
    /// ```
    ///
    /// # Errors
    /// Shapes that do not broadcast; an operation not defined for the dtypes.
    pub fn apply(&self, op: BinaryOp, other: impl Into<Operand>) -> Result<Array> {
        match other.into() {
            Operand::Array(b) => binary(op, self, &b),
            Operand::Scalar(s) => self.binary_scalar(op, s, false),
        }
    }

    /// `self op other` for two arrays.
    ///
    /// # Errors
    /// As [`apply`](Array::apply).
    pub fn binary(&self, op: BinaryOp, other: &Array) -> Result<Array> {
        binary(op, self, other)
    }

    /// `self op scalar`, or `scalar op self` when `scalar_on_left`.
    ///
    /// # Errors
    /// An operation not defined for the dtypes.
    pub fn binary_scalar(&self, op: BinaryOp, s: Scalar, scalar_on_left: bool) -> Result<Array> {
        let weak = self.dtype().promote_weak(s.kind());
        let sa = Array::new(
            Op::Full { value: s.value() },
            vec![],
            weak,
            ChunkGrid::from_axes(vec![]),
        );
        let x = self.astype(weak);
        if scalar_on_left {
            binary(op, &sa, &x)
        } else {
            binary(op, &x, &sa)
        }
    }

    /// `clip(x, lo, hi)` (either bound optional).
    ///
    /// # Errors
    /// Bool arrays.
    pub fn clip(&self, lo: Option<f64>, hi: Option<f64>) -> Result<Array> {
        if self.dtype() == DType::Bool {
            return Err(Error::UnsupportedDType {
                op: "clip",
                dtype: DType::Bool,
            });
        }
        let (xs, mask) = unmask("clip", &[self])?;
        let x = &xs[0];
        let out = Array::new(
            Op::Clip {
                x: x.clone(),
                lo,
                hi,
            },
            x.shape().to_vec(),
            x.dtype(),
            x.grid().clone(),
        );
        Ok(remask(out, mask))
    }

    /// Reduce over `axes` (all axes when `None`; negative axes count from the end).
    ///
    /// ```
    /// use ndstream_engine::{Array, Chunks, ReduceOp};
    /// let x = Array::from_ndarray(ndarray::arr2(&[[1.0, 2.0], [3.0, 5.0]]).into_dyn(), Chunks::from(&[1, 1][..])).unwrap();
    /// let m = x.reduce(ReduceOp::Mean, Some(&[-1]), true).unwrap();
    /// assert_eq!(m.shape(), &[2, 1]);
    /// assert_eq!(m.compute().unwrap().to_f64_vec(), vec![1.5, 4.0]);
    /// ```
    ///
    /// # Errors
    /// Axes out of range; TopK without exactly one axis or with `|k|` too large;
    /// a masked array reduced over anything but all axes.
    pub fn reduce(&self, op: ReduceOp, axes: Option<&[isize]>, keepdims: bool) -> Result<Array> {
        let dtype = result_dtype(op, self.dtype())?;
        if let Op::Masked { x, .. } = &self.0.op {
            if let Some(ax) = axes {
                if ax.iter().any(|&a| a != 0 && a != -1) {
                    return Err(Error::UnknownLength {
                        op: "reduce over an axis",
                    });
                }
            }
            if matches!(op, ReduceOp::TopK { .. } | ReduceOp::ArgTopK { .. }) {
                return Err(Error::UnknownLength { op: "topk" });
            }
            let all: Vec<usize> = (0..x.ndim()).collect();
            let (shape, grid) = if keepdims {
                (vec![1], ChunkGrid::regular(&[1], &[1]))
            } else {
                (vec![], ChunkGrid::from_axes(vec![]))
            };
            return Ok(Array::new(
                Op::Reduce {
                    op,
                    x: self.clone(),
                    axes: all,
                    keepdims,
                },
                shape,
                dtype,
                grid,
            ));
        }
        let ndim = self.ndim();
        let mut ax: Vec<usize> = match axes {
            None => (0..ndim).collect(),
            Some(a) => a
                .iter()
                .map(|&a| normalize_axis("reduce", a, ndim))
                .collect::<Result<_>>()?,
        };
        ax.sort_unstable();
        ax.dedup();
        if let ReduceOp::TopK { k } | ReduceOp::ArgTopK { k } = op {
            if ax.len() != 1 {
                return Err(Error::invalid(
                    "topk",
                    "axis",
                    "topk/argtopk reduce exactly one axis",
                ));
            }
            let a = ax[0];
            let kk = k.unsigned_abs();
            if k == 0 || kk > self.shape()[a] {
                return Err(Error::invalid(
                    "topk",
                    "k",
                    format!("k={k} but axis {a} has length {}", self.shape()[a]),
                ));
            }
            let mut shape = self.shape().to_vec();
            shape[a] = kk;
            let mut axes_g = self.grid().axes().to_vec();
            axes_g[a] = AxisChunks::regular(kk, kk);
            return Ok(Array::new(
                Op::Reduce {
                    op,
                    x: self.clone(),
                    axes: ax,
                    keepdims: true,
                },
                shape,
                dtype,
                ChunkGrid::from_axes(axes_g),
            ));
        }
        if ax.is_empty() {
            // A 0-d array, or `axis=()`: each output element reduces exactly
            // one input element. Reduce a new trailing axis of length 1, so
            // the one reduction path serves (var 0, argmax 0, nansum(nan) 0).
            let y = self.index(&[IndexItem::Ellipsis, IndexItem::NewAxis])?;
            return y.reduce(op, Some(&[-1]), false);
        }
        let mut shape = Vec::new();
        let mut gaxes = Vec::new();
        for d in 0..ndim {
            if ax.contains(&d) {
                if keepdims {
                    shape.push(1);
                    gaxes.push(AxisChunks::regular(1, 1));
                }
            } else {
                shape.push(self.shape()[d]);
                gaxes.push(self.grid().axes()[d].clone());
            }
        }
        let grid = ChunkGrid::from_axes(gaxes);
        if ax.iter().any(|&d| self.shape()[d] == 0) || shape.contains(&0) {
            return empty_reduction(op, self.dtype(), shape, dtype, grid);
        }
        Ok(Array::new(
            Op::Reduce {
                op,
                x: self.clone(),
                axes: ax,
                keepdims,
            },
            shape,
            dtype,
            grid,
        ))
    }

    /// Apply a Rust closure to every chunk (as Dask's `map_blocks`): it gets
    /// the chunk as a [`Block`] and must return a block of the same shape
    /// and of dtype `out_dtype`.
    ///
    /// ```
    /// use ndstream_engine::{Array, Block, Chunks, DType};
    /// let x = Array::from_ndarray(ndarray::arr1(&[1.0, 2.0, 3.0]).into_dyn(), Chunks::from(&[2][..])).unwrap();
    /// let y = x.map_blocks(DType::F64, "double", |b: &[Block]| {
    ///     let a = b[0].view::<f64>().expect("f64 input");
    ///     Ok(Block::from(a.mapv(|v| v * 2.0)))
    /// }).unwrap();
    /// assert_eq!(y.compute().unwrap().to_f64_vec(), vec![2.0, 4.0, 6.0]);
    /// ```
    ///
    /// # Errors
    /// None at build time; the closure's errors surface when computing.
    pub fn map_blocks(
        &self,
        out_dtype: DType,
        name: &str,
        f: impl Fn(&[Block]) -> Result<Block> + Send + Sync + 'static,
    ) -> Result<Array> {
        map_blocks(std::slice::from_ref(self), out_dtype, name, Arc::new(f))
    }
}

/// [`Array::map_blocks`] over several inputs of the same shape; they are
/// rechunked to the first input's grid, and the closure gets one block per input.
///
/// # Errors
/// No inputs, or inputs of different shapes.
pub fn map_blocks(xs: &[Array], out_dtype: DType, name: &str, f: Arc<BlockFn>) -> Result<Array> {
    let first = xs
        .first()
        .ok_or_else(|| Error::invalid("map_blocks", "arrays", "needs at least one input"))?;
    let mut inputs = Vec::with_capacity(xs.len());
    for x in xs {
        if x.shape() != first.shape() {
            return Err(Error::Shape {
                op: "map_blocks",
                left: first.shape().to_vec(),
                right: x.shape().to_vec(),
            });
        }
        inputs.push(if x.grid() == first.grid() {
            x.clone()
        } else {
            Array::new(
                Op::Rechunk { x: x.clone() },
                x.shape().to_vec(),
                x.dtype(),
                first.grid().clone(),
            )
        });
    }
    let map = Arc::new(BlockMap::identity(first.ndim()));
    Ok(Array::new(
        Op::MapBlocks {
            xs: inputs,
            f,
            name: name.to_string(),
            map,
        },
        first.shape().to_vec(),
        out_dtype,
        first.grid().clone(),
    ))
}

/// [`map_blocks`] whose output blocks have other shapes than the inputs'
/// (Dask's `map_blocks` with `chunks=`, `drop_axis=`, `new_axis=`):
/// `chunks` gives the output's block sizes per axis, `map` which input
/// axis each output axis comes from and which input axes each call gets
/// whole (see [`BlockMap`]). The inputs are rechunked to the first one's
/// grid; the closure gets one region per input and must return a block of
/// the output block's shape.
///
/// ```
/// use std::sync::Arc;
/// use ndstream_engine::{map_blocks_to, Array, Block, BlockMap, Chunks, DType};
/// // Row sums of each block of rows: axis 1 dropped (each call gets whole rows).
/// let x = Array::from_ndarray(ndarray::Array2::<f64>::ones((4, 6)).into_dyn(), Chunks::from(&[2, 3][..])).unwrap();
/// let map = BlockMap { axes: vec![Some(0)], dropped: vec![1] };
/// let f = Arc::new(|b: &[Block]| {
///     let a = b[0].view::<f64>().expect("f64");
///     Ok(Block::from(a.sum_axis(ndarray::Axis(1))))
/// });
/// let y = map_blocks_to(&[x], DType::F64, "rowsum", f, vec![vec![2, 2]], map).unwrap();
/// assert_eq!(y.compute().unwrap().to_f64_vec(), vec![6.0; 4]);
/// ```
///
/// # Errors
/// No inputs, inputs of different shapes, an input axis neither mapped
/// nor dropped (or both, or twice), a mapped axis whose block count the
/// output's chunks do not keep, a new axis of more than one block, or a
/// shape too large.
pub fn map_blocks_to(
    xs: &[Array],
    out_dtype: DType,
    name: &str,
    f: Arc<BlockFn>,
    chunks: Vec<Vec<u64>>,
    map: BlockMap,
) -> Result<Array> {
    let same = map_blocks(xs, out_dtype, name, f)?;
    let Op::MapBlocks { xs: inputs, f, .. } = same.op() else {
        unreachable!("map_blocks builds a MapBlocks node")
    };
    let first = &inputs[0];
    let bad = |m: String| Error::invalid("map_blocks", "chunks", m);
    if chunks.len() != map.axes.len() {
        return Err(bad(format!(
            "{} axes of chunks for an output of {} axes",
            chunks.len(),
            map.axes.len()
        )));
    }
    let mut uses = vec![0usize; first.ndim()];
    for d in map.axes.iter().flatten().chain(&map.dropped) {
        if *d >= first.ndim() {
            return Err(bad(format!("input axis {d} of a {}-d input", first.ndim())));
        }
        uses[*d] += 1;
    }
    if let Some(d) = uses.iter().position(|&n| n != 1) {
        return Err(bad(format!(
            "input axis {d} must be kept or dropped exactly once"
        )));
    }
    for (o, c) in chunks.iter().enumerate() {
        let want = match map.axes[o] {
            Some(d) => first.grid().axes()[d].count(),
            None => 1,
        };
        if c.len() as u64 != want {
            return Err(bad(format!(
                "output axis {o} has {} blocks; it must have {want} ({})",
                c.len(),
                match map.axes[o] {
                    Some(d) => format!("as input axis {d}"),
                    None => "a new axis".to_string(),
                }
            )));
        }
    }
    let grid = ChunkGrid::from_sizes(&chunks);
    let shape = grid.shape();
    out_dtype.nbytes_of(&shape)?;
    Ok(Array::new(
        Op::MapBlocks {
            xs: inputs.clone(),
            f: f.clone(),
            name: name.to_string(),
            map: Arc::new(map),
        },
        shape,
        out_dtype,
        grid,
    ))
}

fn binary(op: BinaryOp, a: &Array, b: &Array) -> Result<Array> {
    let (xs, mask) = unmask("elementwise", &[a, b])?;
    let (a, b) = (&xs[0], &xs[1]);
    let (operand, result) = binary_dtypes(op, a.dtype(), b.dtype())?;
    let shape = broadcast_shapes("elementwise", a.shape(), b.shape())?;
    operand.nbytes_of(&shape)?;
    result.nbytes_of(&shape)?;
    let (a, b) = (a.astype(operand), b.astype(operand));
    let grid = broadcast_grid(&shape, &[&a, &b]);
    Ok(remask(
        Array::new(Op::Binary { op, a, b }, shape, result, grid),
        mask,
    ))
}

/// `where(cond, a, b)`: elements of `a` where `cond` is true, else of `b`,
/// with broadcasting; `a` and `b` promote to a common dtype.
///
/// # Errors
/// A non-bool condition; shapes that do not broadcast.
pub fn where_(cond: &Array, a: impl Into<Operand>, b: impl Into<Operand>) -> Result<Array> {
    if cond.dtype() != DType::Bool {
        return Err(Error::UnsupportedDType {
            op: "where (condition)",
            dtype: cond.dtype(),
        });
    }
    let to_array = |o: Operand, other_dtype: Option<DType>| -> Array {
        match o {
            Operand::Array(a) => a,
            Operand::Scalar(s) => {
                let dt = match other_dtype {
                    Some(d) => d.promote_weak(s.kind()),
                    None => match s {
                        Scalar::Bool(_) => DType::Bool,
                        Scalar::Int(_) => DType::I64,
                        Scalar::Float(_) => DType::F64,
                    },
                };
                Array::new(
                    Op::Full { value: s.value() },
                    vec![],
                    dt,
                    ChunkGrid::from_axes(vec![]),
                )
            }
        }
    };
    let (a, b) = (a.into(), b.into());
    let a_dt = if let Operand::Array(x) = &a {
        Some(x.dtype())
    } else {
        None
    };
    let b_dt = if let Operand::Array(x) = &b {
        Some(x.dtype())
    } else {
        None
    };
    let a = to_array(a, b_dt);
    let b = to_array(b, a_dt);
    let (xs, mask) = unmask("where", &[cond, &a, &b])?;
    let dt = xs[1].dtype().promote(xs[2].dtype());
    let (c, a, b) = (xs[0].clone(), xs[1].astype(dt), xs[2].astype(dt));
    let s1 = broadcast_shapes("where", c.shape(), a.shape())?;
    let shape = broadcast_shapes("where", &s1, b.shape())?;
    dt.nbytes_of(&shape)?;
    let grid = broadcast_grid(&shape, &[&c, &a, &b]);
    Ok(remask(
        Array::new(Op::Where { cond: c, a, b }, shape, dt, grid),
        mask,
    ))
}

/// Join arrays of the same shape and dtype along a new axis, like NumPy's `stack`.
///
/// ```
/// use ndstream_engine::{stack, ones, zeros, Chunks, DType};
/// let s = stack(&[zeros(&[2, 3], DType::F32, Chunks::Auto).unwrap(), ones(&[2, 3], DType::F32, Chunks::Auto).unwrap()], 0).unwrap();
/// assert_eq!(s.shape(), &[2, 2, 3]);
/// assert_eq!(s.mean(None).unwrap().compute().unwrap().to_f64_vec(), vec![0.5]);
/// ```
///
/// # Errors
/// No inputs; inputs that differ in shape or dtype (refused before anything is read).
pub fn stack(xs: &[Array], axis: isize) -> Result<Array> {
    let first = xs
        .first()
        .ok_or_else(|| Error::invalid("stack", "arrays", "needs at least one array"))?;
    check_same("stack", xs, None)?;
    let axis = normalize_axis("stack", axis, first.ndim() + 1)?;
    let mut shape = first.shape().to_vec();
    shape.insert(axis, xs.len() as u64);
    first.dtype().nbytes_of(&shape)?;
    let mut gaxes = first.grid().axes().to_vec();
    gaxes.insert(axis, AxisChunks::regular(xs.len() as u64, 1));
    Ok(Array::new(
        Op::Stack {
            xs: xs.to_vec(),
            axis,
        },
        shape,
        first.dtype(),
        ChunkGrid::from_axes(gaxes),
    ))
}

/// Join arrays along an existing axis, like NumPy's `concatenate`.
///
/// # Errors
/// No inputs; inputs that differ in dtype or in shape off the axis.
pub fn concatenate(xs: &[Array], axis: isize) -> Result<Array> {
    let first = xs
        .first()
        .ok_or_else(|| Error::invalid("concatenate", "arrays", "needs at least one array"))?;
    if first.ndim() == 0 {
        return Err(Error::invalid(
            "concatenate",
            "arrays",
            "zero-dimensional arrays cannot be concatenated",
        ));
    }
    let axis = normalize_axis("concatenate", axis, first.ndim())?;
    check_same("concatenate", xs, Some(axis))?;
    let mut shape = first.shape().to_vec();
    shape[axis] = xs
        .iter()
        .try_fold(0u64, |acc, x| acc.checked_add(x.shape()[axis]))
        .unwrap_or(u64::MAX);
    first.dtype().nbytes_of(&shape)?;
    let mut gaxes = first.grid().axes().to_vec();
    let sizes: Vec<u64> = xs
        .iter()
        .flat_map(|x| x.grid().axes()[axis].sizes())
        .collect();
    gaxes[axis] = AxisChunks::from_sizes(&sizes);
    if shape[axis] == 0 {
        gaxes[axis] = AxisChunks::regular(0, 1);
    }
    Ok(Array::new(
        Op::Concat {
            xs: xs.to_vec(),
            axis,
        },
        shape,
        first.dtype(),
        ChunkGrid::from_axes(gaxes),
    ))
}

fn check_same(op: &'static str, xs: &[Array], except_axis: Option<usize>) -> Result<()> {
    let first = &xs[0];
    for (i, x) in xs.iter().enumerate() {
        if !x.known_len() {
            return Err(Error::UnknownLength { op });
        }
        if x.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                index: i,
                expected: first.dtype(),
                got: x.dtype(),
            });
        }
        let same = x.ndim() == first.ndim()
            && x.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(d, (a, b))| a == b || Some(d) == except_axis);
        if !same {
            return Err(Error::Shape {
                op,
                left: first.shape().to_vec(),
                right: x.shape().to_vec(),
            });
        }
    }
    Ok(())
}

macro_rules! reductions {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// An axis out of range, or a dtype the reduction does not take.
                pub fn $name(&self, axis: Option<isize>) -> Result<Array> {
                    match axis {
                        None => self.reduce($op, None, false),
                        Some(a) => self.reduce($op, Some(&[a]), false),
                    }
                }
            )*
        }
    };
}

reductions! {
    /// Sum over one axis or all (`None`).
    sum => ReduceOp::Sum;
    /// Product over one axis or all.
    prod => ReduceOp::Prod;
    /// Mean over one axis or all (accumulated in f64).
    mean => ReduceOp::Mean;
    /// Minimum over one axis or all.
    min => ReduceOp::Min;
    /// Maximum over one axis or all.
    max => ReduceOp::Max;
    /// Index of the minimum (flat C-order index when `None`).
    argmin => ReduceOp::ArgMin;
    /// Index of the maximum (flat C-order index when `None`).
    argmax => ReduceOp::ArgMax;
    /// True if any element is non-zero.
    any => ReduceOp::Any;
    /// True if every element is non-zero.
    all => ReduceOp::All;
    /// Number of non-zero elements.
    count_nonzero => ReduceOp::CountNonzero;
    /// Sum ignoring NaNs.
    nansum => ReduceOp::NanSum;
    /// Mean ignoring NaNs.
    nanmean => ReduceOp::NanMean;
    /// Minimum ignoring NaNs.
    nanmin => ReduceOp::NanMin;
    /// Maximum ignoring NaNs.
    nanmax => ReduceOp::NanMax;
    /// Product treating NaNs as 1 (NumPy's `nanprod`).
    nanprod => ReduceOp::NanProd;
}

impl Array {
    /// Variance with `ddof` delta degrees of freedom (NumPy's `var`).
    ///
    /// # Errors
    /// As [`sum`](Array::sum).
    pub fn var(&self, axis: Option<isize>, ddof: u32) -> Result<Array> {
        self.reduce_axis(ReduceOp::Var { ddof }, axis)
    }

    /// Standard deviation with `ddof` (NumPy's `std`).
    ///
    /// # Errors
    /// As [`sum`](Array::sum).
    pub fn std(&self, axis: Option<isize>, ddof: u32) -> Result<Array> {
        self.reduce_axis(ReduceOp::Std { ddof }, axis)
    }

    /// Variance ignoring NaNs.
    ///
    /// # Errors
    /// As [`sum`](Array::sum).
    pub fn nanvar(&self, axis: Option<isize>, ddof: u32) -> Result<Array> {
        self.reduce_axis(ReduceOp::NanVar { ddof }, axis)
    }

    /// Standard deviation ignoring NaNs.
    ///
    /// # Errors
    /// As [`sum`](Array::sum).
    pub fn nanstd(&self, axis: Option<isize>, ddof: u32) -> Result<Array> {
        self.reduce_axis(ReduceOp::NanStd { ddof }, axis)
    }

    /// The `k` largest values along `axis` in descending order (`k < 0`: the
    /// `-k` smallest, ascending), as Dask's `topk`.
    ///
    /// # Errors
    /// `k == 0` or `|k|` larger than the axis.
    pub fn topk(&self, k: i64, axis: isize) -> Result<Array> {
        self.reduce(ReduceOp::TopK { k }, Some(&[axis]), true)
    }

    /// Indices of what [`topk`](Array::topk) returns.
    ///
    /// # Errors
    /// As [`topk`](Array::topk).
    pub fn argtopk(&self, k: i64, axis: isize) -> Result<Array> {
        self.reduce(ReduceOp::ArgTopK { k }, Some(&[axis]), true)
    }

    fn reduce_axis(&self, op: ReduceOp, axis: Option<isize>) -> Result<Array> {
        match axis {
            None => self.reduce(op, None, false),
            Some(a) => self.reduce(op, Some(&[a]), false),
        }
    }
}

/// One `Array` method per unary op table row with a `method` name.
macro_rules! unary_methods {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident,
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        $(unary_method!([$(#[$doc])*] $v [$($m)?]);)*
    };
}

macro_rules! unary_method {
    ([$($doc:tt)*] $v:ident []) => {};
    ([$($doc:tt)*] $v:ident [$m:ident]) => {
        impl Array {
            $($doc)*
            ///
            /// # Errors
            /// A dtype the operation does not take.
            pub fn $m(&self) -> Result<Array> {
                self.unary(UnaryOp::$v)
            }
        }
    };
}

/// One `Array` method per binary op table row with a `method` name.
macro_rules! binary_methods {
    ($(
        $(#[$doc:meta])*
        $v:ident = $name:literal, aliases [$($alias:literal),*], method [$($m:ident)?],
        rule $rule:ident, fused $fz:ident, tile [$($tile:path)?],
        float [$($ff:expr)?], int [$($fi:expr)?], bool [$($fb:expr)?];
    )*) => {
        $(binary_method!([$(#[$doc])*] $v [$($m)?]);)*
    };
}

macro_rules! binary_method {
    ([$($doc:tt)*] $v:ident []) => {};
    ([$($doc:tt)*] $v:ident [$m:ident]) => {
        impl Array {
            $($doc)*
            ///
            /// # Errors
            /// Shapes that do not broadcast, or a dtype the operation does
            /// not take.
            pub fn $m(&self, other: impl Into<Operand>) -> Result<Array> {
                self.apply(BinaryOp::$v, other)
            }
        }
    };
}

unary_table!(unary_methods);
binary_table!(binary_methods);

macro_rules! operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<R: Into<Operand>> std::ops::$trait<R> for &Array {
            type Output = Array;
            /// Panics if the shapes do not broadcast; use [`Array::apply`] for a `Result`.
            fn $method(self, rhs: R) -> Array {
                match self.apply(BinaryOp::$op, rhs) {
                    Ok(a) => a,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        impl<R: Into<Operand>> std::ops::$trait<R> for Array {
            type Output = Array;
            fn $method(self, rhs: R) -> Array {
                std::ops::$trait::$method(&self, rhs)
            }
        }
        impl std::ops::$trait<&Array> for f64 {
            type Output = Array;
            fn $method(self, rhs: &Array) -> Array {
                match rhs.binary_scalar(BinaryOp::$op, Scalar::Float(self), true) {
                    Ok(a) => a,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        impl std::ops::$trait<Array> for f64 {
            type Output = Array;
            fn $method(self, rhs: Array) -> Array {
                std::ops::$trait::$method(self, &rhs)
            }
        }
    };
}

operator!(Add, add, Add);
operator!(Sub, sub, Sub);
operator!(Mul, mul, Mul);
operator!(Div, div, Div);
operator!(Rem, rem, Rem);
operator!(BitAnd, bitand, And);
operator!(BitOr, bitor, Or);

impl std::ops::Neg for &Array {
    type Output = Array;
    /// Panics for bool arrays; use [`Array::unary`] for a `Result`.
    fn neg(self) -> Array {
        match self.unary(UnaryOp::Neg) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }
}

impl std::ops::Neg for Array {
    type Output = Array;
    fn neg(self) -> Array {
        -&self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        assert_eq!(
            broadcast_shapes("t", &[7, 1, 3], &[1, 7, 3]).unwrap(),
            vec![7, 7, 3]
        );
        assert_eq!(broadcast_shapes("t", &[3], &[]).unwrap(), vec![3]);
        assert!(broadcast_shapes("t", &[2, 3], &[3, 2]).is_err());
    }
}
