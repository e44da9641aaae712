//! Programs: an expression graph as data, to rebuild in another process.
//!
//! [`Program::of`] describes arrays as a [`Program`]: each node of their
//! graph once (a node that several others read stays one node), inputs
//! before the nodes that read them, as plain data that serde writes as
//! JSON ([`Program::to_json`]). [`Program::build`] makes the same arrays
//! again, in this process or another one, reopening stored inputs by their
//! [`ChunkSource::locator`] through an opener the caller gives (the
//! `ndstream` facade passes its formats' `open_source`). The rebuilt arrays
//! compute the same bits as the originals: every decision of the plan is
//! made from the graph, and the graph is the same.
//!
//! Every node is rebuilt through the builders the API uses (`unary`,
//! `index`, `reduce`, ...), which check their arguments, and a rebuilt node
//! must then have the shape, dtype and chunks the program recorded; so a
//! damaged or hand-written program is refused with an error naming the
//! node, never a panic, and a stored input that changed since the program
//! was written (another shape, dtype or chunking) is refused by name.
//!
//! What is not data cannot be described: [`Program::of`] refuses
//! `map_blocks` (a function of this process) and stored inputs without a
//! locator. Floats are kept as their IEEE bits, so NaN, infinities and
//! `-0.0` survive JSON; in-memory arrays are embedded as base64 of their
//! little-endian bytes.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::array::{concatenate, stack, where_, Array, IndexItem, Op, SelItem};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{AxisChunks, ChunkGrid};
use crate::kernels::elementwise::{BinaryOp, UnaryOp};
use crate::kernels::reduce::ReduceOp;
use crate::kernels::scan::ScanOp;
use crate::random::Distribution;
use crate::source::ChunkSource;

/// The program format this build writes and reads.
pub const PROGRAM_VERSION: u32 = 1;

/// Arrays described as data (see the module docs).
///
/// ```
/// use ndstream_engine::{program::Program, Array, Chunks, Distribution};
/// let x = Array::random(Distribution::Normal { loc: 0.0, scale: 1.0 }, &[100, 80], [30, 80].into(), 7).unwrap();
/// let y = (&x - &x.mean(Some(0)).unwrap()).std(None, 1).unwrap();
/// let json = Program::of(&[y.clone()]).unwrap().to_json();
/// let again = Program::from_json(&json).unwrap().build(&|l: &str| {
///     Err(ndstream_engine::Error::invalid("open", "locator", format!("no stored input here: {l}")))
/// }).unwrap();
/// let (a, b) = (y.compute().unwrap(), again[0].compute().unwrap());
/// assert_eq!(a.to_f64_vec()[0].to_bits(), b.to_f64_vec()[0].to_bits());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// [`PROGRAM_VERSION`] of the build that wrote it.
    pub version: u32,
    nodes: Vec<NodeSpec>,
    roots: Vec<usize>,
}

/// Opens a stored input again by its locator ([`ChunkSource::locator`]).
pub type Opener<'a> = dyn Fn(&str) -> Result<Arc<dyn ChunkSource>> + 'a;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct NodeSpec {
    op: OpSpec,
    shape: Vec<u64>,
    dtype: String,
    chunks: Vec<AxisSpec>,
}

/// One axis of a chunk grid, as [`AxisChunks`] holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AxisSpec {
    Regular { size: u64, len: u64 },
    Offsets(Vec<u64>),
}

/// A node's operation; `x`, `a`, `xs`, ... are indexes of earlier nodes;
/// floats are their bits (`f64::to_bits`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum OpSpec {
    Source {
        locator: String,
    },
    Memory {
        base64: String,
    },
    Random {
        dist: String,
        params: Vec<u64>,
        seed: u64,
    },
    Full {
        value: u64,
    },
    Arange {
        start: u64,
        step: u64,
        last: Option<u64>,
    },
    Unary {
        name: String,
        x: usize,
    },
    Binary {
        name: String,
        a: usize,
        b: usize,
    },
    Where {
        cond: usize,
        a: usize,
        b: usize,
    },
    Clip {
        x: usize,
        lo: Option<u64>,
        hi: Option<u64>,
    },
    Cast {
        x: usize,
    },
    Reduce {
        name: String,
        param: i64,
        x: usize,
        axes: Vec<usize>,
        keepdims: bool,
    },
    Select {
        x: usize,
        items: Vec<SelSpec>,
    },
    Stack {
        xs: Vec<usize>,
        axis: usize,
    },
    Concat {
        xs: Vec<usize>,
        axis: usize,
    },
    Transpose {
        x: usize,
        perm: Vec<usize>,
    },
    Tri {
        x: usize,
        k: i64,
        upper: bool,
    },
    Masked {
        x: usize,
        mask: usize,
    },
    Rechunk {
        x: usize,
    },
    Reshape {
        x: usize,
    },
    Scan {
        name: String,
        x: usize,
        axis: usize,
        carry: Option<usize>,
    },
    ScanCarry {
        name: String,
        x: usize,
        axis: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum SelSpec {
    Keep {
        axis: usize,
        start: u64,
        step: i64,
        len: u64,
    },
    Drop {
        axis: usize,
        index: u64,
    },
    New,
}

fn bad(what: impl Into<String>) -> Error {
    Error::invalid("program", "program", what)
}

/// Refuse a program of another format version than this build's.
fn check_version(version: u32) -> Result<()> {
    if version == PROGRAM_VERSION {
        Ok(())
    } else {
        Err(bad(format!(
            "a program of version {version} (this build reads version {PROGRAM_VERSION})"
        )))
    }
}

/// Node `j`, read by node `i`: it must come before `i`.
fn input(i: usize, j: usize, built: &[Array]) -> Result<&Array> {
    built.get(j).ok_or_else(|| {
        bad(format!(
            "node {i} reads node {j}, which does not come before it"
        ))
    })
}

impl Program {
    /// Describe `roots` (and everything they read) as a program.
    ///
    /// # Errors
    /// A `map_blocks` node (a function of this process) or a stored input
    /// that cannot be reopened elsewhere (no locator), each named.
    pub fn of(roots: &[Array]) -> Result<Program> {
        let mut index: HashMap<*const crate::array::Node, usize> = HashMap::new();
        let mut nodes = Vec::new();
        // Iterative post-order: graphs may be thousands of nodes deep.
        for root in roots {
            let mut stack: Vec<(Array, bool)> = vec![(root.clone(), false)];
            while let Some((a, expanded)) = stack.pop() {
                let key = Arc::as_ptr(&a.0);
                if index.contains_key(&key) {
                    continue;
                }
                if !expanded {
                    stack.push((a.clone(), true));
                    for x in a.inputs().into_iter().rev() {
                        if !index.contains_key(&Arc::as_ptr(&x.0)) {
                            stack.push((x.clone(), false));
                        }
                    }
                    continue;
                }
                let spec = describe(&a, &|x: &Array| index[&Arc::as_ptr(&x.0)])?;
                index.insert(key, nodes.len());
                nodes.push(spec);
            }
        }
        let roots = roots.iter().map(|r| index[&Arc::as_ptr(&r.0)]).collect();
        Ok(Program {
            version: PROGRAM_VERSION,
            nodes,
            roots,
        })
    }

    /// Nodes in the program.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a program of no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The program as JSON.
    pub fn to_json(&self) -> String {
        #[allow(clippy::expect_used)]
        serde_json::to_string(self).expect("a program serialises")
    }

    /// Read a program written by [`to_json`](Program::to_json).
    ///
    /// # Errors
    /// Text that is not a program, or one of another version.
    pub fn from_json(text: &str) -> Result<Program> {
        let p: Program =
            serde_json::from_str(text).map_err(|e| bad(format!("not an ndstream program: {e}")))?;
        check_version(p.version)?;
        Ok(p)
    }

    /// Make the arrays again, opening stored inputs with `open`.
    ///
    /// # Errors
    /// A node that does not rebuild as recorded (naming it), a stored input
    /// that cannot be opened or has changed, a program of another version.
    pub fn build(&self, open: &Opener<'_>) -> Result<Vec<Array>> {
        check_version(self.version)?;
        let mut built: Vec<Array> = Vec::with_capacity(self.nodes.len());
        for (i, spec) in self.nodes.iter().enumerate() {
            let a = rebuild(i, spec, &built, open)?;
            check_same(i, spec, &a)?;
            built.push(a);
        }
        self.roots
            .iter()
            .map(|&r| {
                built
                    .get(r)
                    .cloned()
                    .ok_or_else(|| bad(format!("root {r} is not a node")))
            })
            .collect()
    }
}

fn grid_spec(grid: &ChunkGrid) -> Vec<AxisSpec> {
    grid.axes()
        .iter()
        .map(|a| match a {
            AxisChunks::Regular { size, len } => AxisSpec::Regular {
                size: *size,
                len: *len,
            },
            AxisChunks::Irregular { offsets } => AxisSpec::Offsets(offsets.clone()),
        })
        .collect()
}

/// The grid a program records, checked: what the engine's own constructors
/// guarantee (sizes at least 1, offsets from 0 rising to the length).
fn grid_of(i: usize, spec: &NodeSpec) -> Result<ChunkGrid> {
    if spec.chunks.len() != spec.shape.len() {
        return Err(bad(format!(
            "node {i}: chunks of another rank than its shape"
        )));
    }
    let mut axes = Vec::with_capacity(spec.chunks.len());
    for (d, (c, &n)) in spec.chunks.iter().zip(&spec.shape).enumerate() {
        match c {
            AxisSpec::Regular { size, len } => {
                if *size == 0 || *len != n {
                    return Err(bad(format!("node {i}: bad chunks on axis {d}")));
                }
                axes.push(AxisChunks::Regular {
                    size: *size,
                    len: *len,
                });
            }
            AxisSpec::Offsets(o) => {
                let rising = o.windows(2).all(|w| w[0] < w[1]);
                if o.first() != Some(&0)
                    || o.last() != Some(&n)
                    || !rising
                    || (o.len() == 1 && n != 0)
                {
                    return Err(bad(format!("node {i}: bad chunks on axis {d}")));
                }
                axes.push(AxisChunks::Irregular { offsets: o.clone() });
            }
        }
    }
    Ok(ChunkGrid::from_axes(axes))
}

fn describe(a: &Array, at: &dyn Fn(&Array) -> usize) -> Result<NodeSpec> {
    let op = match a.op() {
        Op::Source { src } => OpSpec::Source {
            locator: src.locator().ok_or_else(|| {
                Error::invalid(
                    "program",
                    "arrays",
                    format!(
                        "{} can be read only in this process (it has no locator): store it first",
                        src.name()
                    ),
                )
            })?,
        },
        Op::Memory { data } => {
            let mut bytes = data.to_ne_bytes();
            to_little_endian(&mut bytes, data.dtype());
            OpSpec::Memory {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            }
        }
        Op::Random { dist, seed } => {
            let (name, params) = match *dist {
                Distribution::Normal { loc, scale } => ("normal", vec![loc, scale]),
                Distribution::Uniform { low, high } => ("uniform", vec![low, high]),
                Distribution::Exponential { scale } => ("exponential", vec![scale]),
            };
            OpSpec::Random {
                dist: name.to_string(),
                params: params.into_iter().map(f64::to_bits).collect(),
                seed: *seed,
            }
        }
        Op::Full { value } => OpSpec::Full {
            value: value.to_bits(),
        },
        Op::Arange { start, step, last } => OpSpec::Arange {
            start: start.to_bits(),
            step: step.to_bits(),
            last: last.map(f64::to_bits),
        },
        Op::Unary { op, x } => OpSpec::Unary {
            name: op.name().to_string(),
            x: at(x),
        },
        Op::Binary { op, a, b } => OpSpec::Binary {
            name: op.name().to_string(),
            a: at(a),
            b: at(b),
        },
        Op::Where { cond, a, b } => OpSpec::Where {
            cond: at(cond),
            a: at(a),
            b: at(b),
        },
        Op::Clip { x, lo, hi } => OpSpec::Clip {
            x: at(x),
            lo: lo.map(f64::to_bits),
            hi: hi.map(f64::to_bits),
        },
        Op::Cast { x } => OpSpec::Cast { x: at(x) },
        Op::Reduce {
            op,
            x,
            axes,
            keepdims,
        } => OpSpec::Reduce {
            name: op.name().to_string(),
            param: op.param_value(),
            x: at(x),
            axes: axes.clone(),
            keepdims: *keepdims,
        },
        Op::Select { x, items } => OpSpec::Select {
            x: at(x),
            items: items
                .iter()
                .map(|it| match *it {
                    SelItem::Keep { axis, sel } => SelSpec::Keep {
                        axis,
                        start: sel.start,
                        step: sel.step,
                        len: sel.len,
                    },
                    SelItem::Drop { axis, index } => SelSpec::Drop { axis, index },
                    SelItem::New => SelSpec::New,
                })
                .collect(),
        },
        Op::Stack { xs, axis } => OpSpec::Stack {
            xs: xs.iter().map(at).collect(),
            axis: *axis,
        },
        Op::Concat { xs, axis } => OpSpec::Concat {
            xs: xs.iter().map(at).collect(),
            axis: *axis,
        },
        Op::Transpose { x, perm } => OpSpec::Transpose {
            x: at(x),
            perm: perm.clone(),
        },
        Op::Tri { x, k, upper } => OpSpec::Tri {
            x: at(x),
            k: *k,
            upper: *upper,
        },
        Op::Masked { x, mask } => OpSpec::Masked {
            x: at(x),
            mask: at(mask),
        },
        Op::MapBlocks { name, .. } => {
            return Err(Error::invalid(
                "program",
                "arrays",
                format!(
                    "map_blocks({name}) runs a function of this process and cannot be \
                     described as data: store its result first"
                ),
            ))
        }
        Op::Rechunk { x } => OpSpec::Rechunk { x: at(x) },
        Op::Reshape { x, .. } => OpSpec::Reshape { x: at(x) },
        Op::Scan { op, x, axis, carry } => OpSpec::Scan {
            name: op.name().to_string(),
            x: at(x),
            axis: *axis,
            carry: carry.as_ref().map(at),
        },
        Op::ScanCarry { op, x, axis } => OpSpec::ScanCarry {
            name: op.name().to_string(),
            x: at(x),
            axis: *axis,
        },
    };
    Ok(NodeSpec {
        op,
        shape: a.shape().to_vec(),
        dtype: a.dtype().to_string(),
        chunks: grid_spec(a.grid()),
    })
}

/// Native-endian element bytes to little-endian (and back: the same swap).
fn to_little_endian(bytes: &mut [u8], dtype: DType) {
    if cfg!(target_endian = "big") && dtype.size() > 1 {
        for e in bytes.chunks_exact_mut(dtype.size()) {
            e.reverse();
        }
    }
}

fn rebuild(i: usize, spec: &NodeSpec, built: &[Array], open: &Opener<'_>) -> Result<Array> {
    let node = |j: usize| input(i, j, built);
    let dtype: DType = spec
        .dtype
        .parse()
        .map_err(|_| bad(format!("node {i}: unknown dtype {:?}", spec.dtype)))?;
    let unknown = |what: &str, name: &str| bad(format!("node {i}: unknown {what} {name:?}"));
    let leaf = |op: Op| -> Result<Array> {
        dtype.nbytes_of(&spec.shape)?;
        Ok(Array::new(op, spec.shape.clone(), dtype, grid_of(i, spec)?))
    };
    let f = f64::from_bits;
    Ok(match &spec.op {
        OpSpec::Source { locator } => {
            let a = Array::from_source(open(locator)?);
            if a.shape() != spec.shape.as_slice()
                || a.dtype() != dtype
                || a.grid().sizes() != grid_of(i, spec)?.sizes()
            {
                return Err(Error::invalid(
                    "program",
                    "input",
                    format!(
                        "{locator} is now {:?} {} in chunks {:?}; the program read {:?} {} \
                         (the input changed since the program was made)",
                        a.shape(),
                        a.dtype(),
                        a.grid().sizes(),
                        spec.shape,
                        spec.dtype,
                    ),
                ));
            }
            a
        }
        OpSpec::Memory { base64 } => {
            let mut bytes = base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|e| bad(format!("node {i}: bad base64 data: {e}")))?;
            to_little_endian(&mut bytes, dtype);
            let shape = spec
                .shape
                .iter()
                .map(|&n| usize::try_from(n))
                .collect::<std::result::Result<Vec<usize>, _>>()
                .map_err(|_| bad(format!("node {i}: shape too large")))?;
            dtype.nbytes_of(&spec.shape)?;
            let data = Block::from_ne_bytes(dtype, &shape, &bytes).ok_or_else(|| {
                bad(format!(
                    "node {i}: the data does not fit its shape and dtype"
                ))
            })?;
            leaf(Op::Memory {
                data: Arc::new(data),
            })?
        }
        OpSpec::Random { dist, params, seed } => {
            let p = |k: usize| {
                params
                    .get(k)
                    .map(|&b| f(b))
                    .ok_or_else(|| bad(format!("node {i}: missing parameters of {dist}")))
            };
            let d = match dist.as_str() {
                "normal" => Distribution::Normal {
                    loc: p(0)?,
                    scale: p(1)?,
                },
                "uniform" => Distribution::Uniform {
                    low: p(0)?,
                    high: p(1)?,
                },
                "exponential" => Distribution::Exponential { scale: p(0)? },
                other => return Err(unknown("distribution", other)),
            };
            if dtype != DType::F64 {
                return Err(bad(format!("node {i}: random values are f64")));
            }
            d.check()?;
            leaf(Op::Random {
                dist: d,
                seed: *seed,
            })?
        }
        OpSpec::Full { value } => leaf(Op::Full { value: f(*value) })?,
        OpSpec::Arange { start, step, last } => {
            if spec.shape.len() != 1 {
                return Err(bad(format!("node {i}: a range is 1-d")));
            }
            leaf(Op::Arange {
                start: f(*start),
                step: f(*step),
                last: last.map(f),
            })?
        }
        OpSpec::Unary { name, x } => node(*x)?.unary(
            UnaryOp::from_name(name).ok_or_else(|| unknown("elementwise operation", name))?,
        )?,
        OpSpec::Binary { name, a, b } => node(*a)?.binary(
            BinaryOp::from_name(name).ok_or_else(|| unknown("elementwise operation", name))?,
            node(*b)?,
        )?,
        OpSpec::Where { cond, a, b } => where_(node(*cond)?, node(*a)?, node(*b)?)?,
        OpSpec::Clip { x, lo, hi } => node(*x)?.clip(lo.map(f), hi.map(f))?,
        OpSpec::Cast { x } => node(*x)?.astype(dtype),
        OpSpec::Reduce {
            name,
            param,
            x,
            axes,
            keepdims,
        } => {
            let op = ReduceOp::from_name(name).ok_or_else(|| unknown("reduction", name))?;
            let op = if op.param().is_some() {
                op.with_param(*param)
                    .ok_or_else(|| bad(format!("node {i}: bad parameter {param} of {name}")))?
            } else {
                op
            };
            let x = node(*x)?;
            if x.known_len() {
                let axes = axes
                    .iter()
                    .map(|&a| isize::try_from(a).map_err(|_| bad(format!("node {i}: bad axis"))))
                    .collect::<Result<Vec<isize>>>()?;
                x.reduce(op, Some(&axes), *keepdims)?
            } else {
                x.reduce(op, None, *keepdims)?
            }
        }
        OpSpec::Select { x, items } => {
            let x = node(*x)?;
            x.index(&index_items(i, items, x.ndim())?)?
        }
        OpSpec::Stack { xs, axis } => stack(&nodes(i, xs, built)?, as_isize(i, *axis)?)?,
        OpSpec::Concat { xs, axis } => concatenate(&nodes(i, xs, built)?, as_isize(i, *axis)?)?,
        OpSpec::Transpose { x, perm } => node(*x)?.transpose(Some(perm))?,
        OpSpec::Tri { x, k, upper } => {
            if *upper {
                node(*x)?.triu(*k)?
            } else {
                node(*x)?.tril(*k)?
            }
        }
        OpSpec::Masked { x, mask } => node(*x)?.mask(node(*mask)?)?,
        OpSpec::Rechunk { x } => {
            let x = node(*x)?;
            let grid = grid_of(i, spec)?;
            if !x.known_len() || grid.shape() != x.shape() || dtype != x.dtype() {
                return Err(bad(format!("node {i}: a rechunk of another array")));
            }
            Array::new(
                Op::Rechunk { x: x.clone() },
                spec.shape.clone(),
                dtype,
                grid,
            )
        }
        OpSpec::Reshape { x } => {
            let shape = spec
                .shape
                .iter()
                .map(|&n| i64::try_from(n))
                .collect::<std::result::Result<Vec<i64>, _>>()
                .map_err(|_| bad(format!("node {i}: shape too large")))?;
            node(*x)?.reshape(&shape)?
        }
        OpSpec::Scan {
            name,
            x,
            axis,
            carry,
        } => {
            let op = ScanOp::from_name(name).ok_or_else(|| unknown("scan", name))?;
            let x = node(*x)?;
            let a = x.scan(op, Some(as_isize(i, *axis)?))?;
            // The builder makes its own carry; the recorded one must be the
            // same node of the same input (or absent for one chunk).
            let Op::Scan { carry: made, .. } = a.op() else {
                return Err(bad(format!("node {i}: not a scan")));
            };
            match (carry, made) {
                (None, None) => a,
                (Some(c), Some(m)) => {
                    let c = node(*c)?;
                    let same = matches!(c.op(), Op::ScanCarry { op: o, x: cx, axis: ax }
                        if *o == op && cx.same_node(x) && *ax == *axis)
                        && c.shape() == m.shape();
                    if !same {
                        return Err(bad(format!("node {i}: a scan with another carry")));
                    }
                    Array::new(
                        Op::Scan {
                            op,
                            x: x.clone(),
                            axis: *axis,
                            carry: Some(c.clone()),
                        },
                        a.shape().to_vec(),
                        a.dtype(),
                        a.grid().clone(),
                    )
                }
                _ => return Err(bad(format!("node {i}: a scan with another carry"))),
            }
        }
        OpSpec::ScanCarry { name, x, axis } => {
            let op = ScanOp::from_name(name).ok_or_else(|| unknown("scan", name))?;
            let x = node(*x)?;
            let a = x.scan(op, Some(as_isize(i, *axis)?))?;
            let Op::Scan {
                carry: Some(carry),
                x: sx,
                ..
            } = a.op()
            else {
                return Err(bad(format!("node {i}: a scan carry of one chunk")));
            };
            if !sx.same_node(x) {
                return Err(bad(format!("node {i}: a scan carry of another dtype")));
            }
            carry.clone()
        }
    })
}

fn nodes(i: usize, xs: &[usize], built: &[Array]) -> Result<Vec<Array>> {
    xs.iter().map(|&j| input(i, j, built).cloned()).collect()
}

fn as_isize(i: usize, axis: usize) -> Result<isize> {
    isize::try_from(axis).map_err(|_| bad(format!("node {i}: bad axis {axis}")))
}

/// The index items that select what `items` (a Select node's, in output
/// order) describe, in input-axis order for [`Array::index`].
fn index_items(i: usize, items: &[SelSpec], ndim: usize) -> Result<Vec<IndexItem>> {
    let err = || {
        bad(format!(
            "node {i}: a selection that is not one of its input's axes each once"
        ))
    };
    let as_i64 = |v: u64| i64::try_from(v).map_err(|_| err());
    // What consumes each input axis.
    let mut consumed: Vec<Option<IndexItem>> = vec![None; ndim];
    for it in items {
        let (axis, item) = match *it {
            SelSpec::Keep {
                axis,
                start,
                step,
                len,
            } => {
                if step == 0 {
                    return Err(err());
                }
                let span = i128::from(step) * i128::from(len);
                let stop = i128::from(start) + span;
                let stop = if stop < 0 {
                    None
                } else {
                    Some(i64::try_from(stop).map_err(|_| err())?)
                };
                (
                    axis,
                    IndexItem::Slice {
                        start: Some(as_i64(start)?),
                        stop,
                        step,
                    },
                )
            }
            SelSpec::Drop { axis, index } => (axis, IndexItem::Index(as_i64(index)?)),
            SelSpec::New => continue,
        };
        let slot = consumed.get_mut(axis).ok_or_else(err)?;
        if slot.replace(item).is_some() {
            return Err(err());
        }
    }
    // Output order: the kept axes rise; integer indices sit before the
    // next kept axis, new axes where they are.
    let mut out = Vec::with_capacity(items.len());
    let mut next = 0usize;
    for it in items {
        match *it {
            SelSpec::New => out.push(IndexItem::NewAxis),
            SelSpec::Keep { axis, .. } => {
                if axis < next {
                    return Err(err());
                }
                drops_until(&mut consumed, next, axis, &mut out).ok_or_else(err)?;
                out.push(consumed[axis].take().ok_or_else(err)?);
                next = axis + 1;
            }
            SelSpec::Drop { .. } => {}
        }
    }
    drops_until(&mut consumed, next, ndim, &mut out).ok_or_else(err)?;
    Ok(out)
}

/// Move the integer indices of input axes `from..to` to `out`; `None` if
/// one of those axes is not consumed by an integer index.
fn drops_until(
    consumed: &mut [Option<IndexItem>],
    from: usize,
    to: usize,
    out: &mut Vec<IndexItem>,
) -> Option<()> {
    for slot in consumed.get_mut(from..to)? {
        match slot.take() {
            Some(it @ IndexItem::Index(_)) => out.push(it),
            _ => return None,
        }
    }
    Some(())
}

/// A rebuilt node must be what the program recorded.
fn check_same(i: usize, spec: &NodeSpec, a: &Array) -> Result<()> {
    let recorded = grid_of(i, spec)?;
    if a.shape() != spec.shape.as_slice()
        || spec.dtype.parse::<DType>().ok() != Some(a.dtype())
        || a.grid().sizes() != recorded.sizes()
    {
        return Err(bad(format!(
            "node {i} rebuilds as {:?} {} in chunks {:?}, not as recorded ({:?} {})",
            a.shape(),
            a.dtype(),
            a.grid().sizes(),
            spec.shape,
            spec.dtype
        )));
    }
    Ok(())
}
