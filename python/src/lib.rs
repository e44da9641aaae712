//! `ndstream._ndstream`: the Python extension module under `import ndstream`.
//!
//! A thin layer over the `ndstream` crate: one Python class, [`PyArr`]
//! (`ndstream._ndstream.Array`), holding a lazy engine [`Array`], and module
//! functions that build arrays, compute them into NumPy arrays and store
//! them. Dask's names, argument parsing and the NumPy protocols live in the
//! pure-Python package (`python/ndstream/`); this module takes arguments
//! already normalised there (chunks as shapes or per-axis sizes, dtypes as
//! NumPy names, index items as tagged tuples).
//!
//! The engine runs with the GIL released, on a thread of its own, while the
//! calling thread watches for signals: Ctrl-C cancels the job (an output
//! store stays resumable) and raises `KeyboardInterrupt`. No Python code
//! runs per chunk except a user's `map_blocks` function.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ndarray::ArrayD;
use numpy::{PyArray, PyReadonlyArrayDyn};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyIndexError, PyKeyboardInterrupt, PyMemoryError,
    PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use ndstream::formats::{Codec, WriteMode, ZarrVersion};
use ndstream::{
    Array, BinaryOp, Block, Chunks, DType, Distribution, Error, Executor, IndexItem, Operand,
    Progress, ReduceOp, ReduceParam, Scalar, ScanOp, StoreOptions, UnaryOp,
};

/// The engine's buffers come from mimalloc, as in the CLI: it keeps freed
/// chunk buffers for reuse instead of trimming them back to the system and
/// faulting them in again (glibc). Measured through Python (release build,
/// 2-core VM, 4 runs each): W3a's compute took 0.41-0.46 s with glibc's
/// allocator and 0.33-0.39 s with mimalloc (the CLI: 0.39 s for its whole
/// process). Only the extension's own (Rust) allocations use it; Python's
/// are untouched.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    _ndstream,
    MemoryBudgetError,
    PyMemoryError,
    "The computation cannot run inside the memory budget.\n\n\
     Raised before anything is read or written: the plan's peak need is \
     larger than the budget (`ndstream.config.set(memory=...)` or \
     `compute(memory=...)`). The message says what needs the memory and how \
     to fit it (smaller chunks, a larger budget)."
);

/// An engine error as the Python exception a NumPy/Dask user expects.
fn to_pyerr(e: Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        Error::BudgetTooSmall { .. } => MemoryBudgetError::new_err(msg),
        Error::IndexOutOfBounds { .. } => PyIndexError::new_err(msg),
        Error::UnsupportedDType { .. } | Error::DTypeMismatch { .. } => PyTypeError::new_err(msg),
        Error::Cancelled => PyKeyboardInterrupt::new_err(msg),
        Error::Open { cause, message, .. } => {
            let io = cause
                .as_ref()
                .and_then(|c| c.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind);
            match io {
                Some(std::io::ErrorKind::NotFound) => PyFileNotFoundError::new_err(msg),
                Some(std::io::ErrorKind::AlreadyExists) => PyFileExistsError::new_err(msg),
                Some(std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput) => {
                    PyValueError::new_err(msg)
                }
                Some(_) => PyOSError::new_err(msg),
                None if message.contains("already exists") => PyFileExistsError::new_err(msg),
                None if message.contains("does not exist")
                    || message.contains("no such")
                    || message.contains("not found") =>
                {
                    PyFileNotFoundError::new_err(msg)
                }
                None => PyValueError::new_err(msg),
            }
        }
        Error::Source { .. } | Error::Sink { .. } => PyOSError::new_err(msg),
        Error::Kernel { .. } => match take_kernel_error() {
            Some(original) => original,
            None => PyRuntimeError::new_err(msg),
        },
        Error::WorkerPanic { .. } | Error::ThreadStart { .. } => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// The Python exception a `map_blocks` function raised in the job that is
/// failing, re-raised as is (its type and traceback) instead of a generic
/// error. The first one wins; each job starts with the slot empty.
static KERNEL_ERROR: Mutex<Option<PyErr>> = Mutex::new(None);

fn take_kernel_error() -> Option<PyErr> {
    KERNEL_ERROR.lock().ok().and_then(|mut e| e.take())
}

fn set_kernel_error(e: PyErr) {
    if let Ok(mut slot) = KERNEL_ERROR.lock() {
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

trait IntoPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for ndstream::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}

fn parse_dtype(name: &str) -> PyResult<DType> {
    name.parse::<DType>().map_err(|e| {
        PyTypeError::new_err(format!(
            "ndstream has no dtype {name:?}: {e} (complex, datetime, string and object arrays \
             are not supported)"
        ))
    })
}

/// Chunks as the Python layer passes them: `None` (about 8 MiB per chunk),
/// an int (about that many bytes), a list of ints (a chunk shape; 0 means
/// the whole axis) or a list of lists (Dask's explicit sizes per axis).
fn parse_chunks(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Chunks> {
    let Some(obj) = obj else {
        return Ok(Chunks::Auto);
    };
    if obj.is_none() {
        return Ok(Chunks::Auto);
    }
    if let Ok(bytes) = obj.extract::<u64>() {
        return Ok(Chunks::TargetBytes(bytes));
    }
    if let Ok(shape) = obj.extract::<Vec<u64>>() {
        return Ok(Chunks::Shape(shape));
    }
    if let Ok(sizes) = obj.extract::<Vec<Vec<u64>>>() {
        return Ok(Chunks::Sizes(sizes));
    }
    Err(PyValueError::new_err(format!(
        "chunks must be None, a byte count, a chunk shape or per-axis chunk sizes, not {}",
        obj.repr()?
    )))
}

/// A lazy ndstream array (the engine's `Array`): wrapped by
/// `ndstream.Array` in Python, which gives it Dask's interface.
#[pyclass(name = "Array", module = "ndstream._ndstream", frozen)]
#[derive(Debug, Clone)]
pub struct PyArr {
    a: Array,
}

impl From<Array> for PyArr {
    fn from(a: Array) -> PyArr {
        PyArr { a }
    }
}

/// A Python operand: an engine array or a Python scalar.
fn operand(obj: &Bound<'_, PyAny>) -> PyResult<Operand> {
    if let Ok(x) = obj.cast::<PyArr>() {
        return Ok(Operand::Array(x.get().a.clone()));
    }
    scalar(obj).map(Operand::Scalar)
}

fn scalar(obj: &Bound<'_, PyAny>) -> PyResult<Scalar> {
    // bool before int: Python's bool is an int.
    if let Ok(b) = obj.extract::<bool>() {
        if obj.is_instance_of::<pyo3::types::PyBool>() {
            return Ok(Scalar::Bool(b));
        }
    }
    if obj.is_instance_of::<pyo3::types::PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(Scalar::Int(i)),
            Err(_) => Err(PyValueError::new_err(format!(
                "the integer {} does not fit in int64",
                obj.repr()?
            ))),
        };
    }
    if let Ok(f) = obj.extract::<f64>() {
        return Ok(Scalar::Float(f));
    }
    Err(PyTypeError::new_err(format!(
        "unsupported operand type {} (expected an ndstream array or a real number)",
        obj.get_type().name()?
    )))
}

fn index_item(obj: &Bound<'_, PyAny>) -> PyResult<IndexItem> {
    let t = obj.cast::<PyTuple>()?;
    let tag: String = t.get_item(0)?.extract()?;
    Ok(match tag.as_str() {
        "i" => IndexItem::Index(t.get_item(1)?.extract()?),
        "s" => IndexItem::Slice {
            start: t.get_item(1)?.extract()?,
            stop: t.get_item(2)?.extract()?,
            step: t.get_item(3)?.extract()?,
        },
        "n" => IndexItem::NewAxis,
        "e" => IndexItem::Ellipsis,
        _ => return Err(PyValueError::new_err(format!("bad index item tag {tag:?}"))),
    })
}

fn reduce_op(name: &str, param: Option<i64>) -> PyResult<ReduceOp> {
    let op = ReduceOp::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("ndstream has no reduction {name:?}")))?;
    match param {
        None => Ok(op),
        Some(v) => op.with_param(v).ok_or_else(|| {
            PyValueError::new_err(format!(
                "{name}: invalid parameter {v} (ddof must be >= 0, k nonzero)"
            ))
        }),
    }
}

#[pymethods]
impl PyArr {
    /// The shape; for the result of a boolean mask its first length is an
    /// upper bound (see `known_len`).
    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.a.shape().to_vec()
    }

    /// False when the length is unknown until computed (a boolean mask).
    #[getter]
    fn known_len(&self) -> bool {
        self.a.known_len()
    }

    /// The NumPy name of the dtype (`float64`, `int32`, `bool`, ...).
    #[getter]
    fn dtype(&self) -> &'static str {
        self.a.dtype().name()
    }

    /// Chunk lengths per axis (Dask's `chunks`).
    #[getter]
    fn chunks(&self) -> Vec<Vec<u64>> {
        self.a.grid().sizes()
    }

    /// Bytes of the whole array (an upper bound for a masked one).
    #[getter]
    fn nbytes(&self) -> u64 {
        self.a.nbytes()
    }

    /// The engine's own summary: shape, dtype, chunks and the expression.
    fn describe(&self) -> String {
        self.a.to_string()
    }

    /// Nesting depth of the expression.
    #[getter]
    fn depth(&self) -> usize {
        self.a.depth()
    }

    /// A stable identifier of the node (equal for the same expression object).
    #[getter]
    fn id(&self) -> u64 {
        self.a.id()
    }

    /// Names of the files and stores the expression reads.
    fn sources(&self) -> Vec<String> {
        self.a
            .sources()
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    fn astype(&self, dtype: &str) -> PyResult<PyArr> {
        Ok(self.a.astype(parse_dtype(dtype)?).into())
    }

    fn unary(&self, name: &str) -> PyResult<PyArr> {
        let op = UnaryOp::from_name(name)
            .ok_or_else(|| PyValueError::new_err(format!("ndstream has no unary op {name:?}")))?;
        Ok(self.a.unary(op).py()?.into())
    }

    /// `self <op> other`, or `other <op> self` when `reflected`.
    #[pyo3(signature = (name, other, reflected=false))]
    fn binary(&self, name: &str, other: &Bound<'_, PyAny>, reflected: bool) -> PyResult<PyArr> {
        let op = BinaryOp::from_name(name)
            .ok_or_else(|| PyValueError::new_err(format!("ndstream has no binary op {name:?}")))?;
        let r = match operand(other)? {
            Operand::Array(b) if reflected => b.binary(op, &self.a),
            Operand::Array(b) => self.a.binary(op, &b),
            Operand::Scalar(s) => self.a.binary_scalar(op, s, reflected),
        };
        Ok(r.py()?.into())
    }

    #[pyo3(signature = (name, axes=None, keepdims=false, param=None))]
    fn reduce(
        &self,
        name: &str,
        axes: Option<Vec<isize>>,
        keepdims: bool,
        param: Option<i64>,
    ) -> PyResult<PyArr> {
        let op = reduce_op(name, param)?;
        Ok(self.a.reduce(op, axes.as_deref(), keepdims).py()?.into())
    }

    /// Index with items `("i", n)`, `("s", start, stop, step)`, `("n",)`
    /// (a new axis) and `("e",)` (an ellipsis).
    fn index(&self, items: &Bound<'_, PyList>) -> PyResult<PyArr> {
        let items: Vec<IndexItem> = items
            .iter()
            .map(|i| index_item(&i))
            .collect::<PyResult<_>>()?;
        Ok(self.a.index(&items).py()?.into())
    }

    /// The same elements in `shape` (C order, one length may be -1), with
    /// Dask's rechunking rules.
    fn reshape(&self, shape: Vec<i64>) -> PyResult<PyArr> {
        Ok(self.a.reshape(&shape).py()?.into())
    }

    /// A cumulative reduction (`cumsum`, `cumprod`, `nancumsum`,
    /// `nancumprod`) along `axis`, or over the flattened array (`None`).
    #[pyo3(signature = (name, axis=None))]
    fn scan(&self, name: &str, axis: Option<isize>) -> PyResult<PyArr> {
        let op = ScanOp::ALL
            .iter()
            .copied()
            .find(|op| op.name() == name)
            .ok_or_else(|| PyValueError::new_err(format!("ndstream has no scan {name:?}")))?;
        Ok(self.a.scan(op, axis).py()?.into())
    }

    /// The elements where `mask` (a bool array of the same shape) is true, in C order.
    fn mask(&self, mask: &PyArr) -> PyResult<PyArr> {
        Ok(self.a.mask(&mask.a).py()?.into())
    }

    #[pyo3(signature = (axes=None))]
    fn transpose(&self, axes: Option<Vec<usize>>) -> PyResult<PyArr> {
        Ok(self.a.transpose(axes.as_deref()).py()?.into())
    }

    #[pyo3(signature = (chunks=None))]
    fn rechunk(&self, chunks: Option<&Bound<'_, PyAny>>) -> PyResult<PyArr> {
        Ok(self.a.rechunk(parse_chunks(chunks)?).py()?.into())
    }

    fn triu(&self, k: i64) -> PyResult<PyArr> {
        Ok(self.a.triu(k).py()?.into())
    }

    fn tril(&self, k: i64) -> PyResult<PyArr> {
        Ok(self.a.tril(k).py()?.into())
    }

    #[pyo3(signature = (lo=None, hi=None))]
    fn clip(&self, lo: Option<f64>, hi: Option<f64>) -> PyResult<PyArr> {
        Ok(self.a.clip(lo, hi).py()?.into())
    }

    fn __repr__(&self) -> String {
        self.a.to_string()
    }
}

/// Unary elementwise ops: `(name, aliases, rule)` per op of the engine's table.
#[pyfunction]
fn unary_ops() -> Vec<(&'static str, Vec<&'static str>)> {
    UnaryOp::ALL
        .iter()
        .map(|op| (op.name(), op.aliases().to_vec()))
        .collect()
}

/// Binary elementwise ops: `(name, aliases)` per op of the engine's table.
#[pyfunction]
fn binary_ops() -> Vec<(&'static str, Vec<&'static str>)> {
    BinaryOp::ALL
        .iter()
        .map(|op| (op.name(), op.aliases().to_vec()))
        .collect()
}

/// Cumulative reductions by name (`cumsum`, ...).
#[pyfunction]
fn scan_ops() -> Vec<&'static str> {
    ScanOp::ALL.iter().map(|op| op.name()).collect()
}

/// Reductions: `(name, aliases, parameter)` with the parameter `"ddof"`,
/// `"k"` or `None`.
#[pyfunction]
fn reduce_ops() -> Vec<(&'static str, Vec<&'static str>, Option<&'static str>)> {
    ReduceOp::ALL
        .iter()
        .map(|op| {
            let p = op.param().map(|p| match p {
                ReduceParam::Ddof => "ddof",
                ReduceParam::K => "k",
                _ => "param",
            });
            (op.name(), op.aliases().to_vec(), p)
        })
        .collect()
}

macro_rules! numpy_to_block {
    ($obj:expr, $($t:ty),*) => {{
        $(
            if let Ok(a) = $obj.extract::<PyReadonlyArrayDyn<'_, $t>>() {
                return Ok(Block::from(a.as_array().to_owned()));
            }
        )*
    }};
}

/// A NumPy array's data as a block (one copy, into C order).
fn block_from_numpy(obj: &Bound<'_, PyAny>) -> PyResult<Block> {
    numpy_to_block!(obj, bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);
    let dtype = obj
        .getattr("dtype")
        .and_then(|d| d.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| "?".into());
    Err(PyTypeError::new_err(format!(
        "ndstream cannot hold NumPy arrays of dtype {dtype} (supported: bool, int8..int64, \
         uint8..uint64, float32, float64)"
    )))
}

fn block_to_numpy(py: Python<'_>, b: Block) -> Bound<'_, PyAny> {
    fn owned<'py, T: numpy::Element>(py: Python<'py>, a: ArrayD<T>) -> Bound<'py, PyAny> {
        PyArray::from_owned_array(py, a).into_any()
    }
    match b {
        Block::Bool(a) => owned(py, a),
        Block::I8(a) => owned(py, a),
        Block::I16(a) => owned(py, a),
        Block::I32(a) => owned(py, a),
        Block::I64(a) => owned(py, a),
        Block::U8(a) => owned(py, a),
        Block::U16(a) => owned(py, a),
        Block::U32(a) => owned(py, a),
        Block::U64(a) => owned(py, a),
        Block::F32(a) => owned(py, a),
        Block::F64(a) => owned(py, a),
    }
}

/// An in-memory array from a NumPy array (copied once), split into `chunks`.
#[pyfunction]
#[pyo3(signature = (data, chunks=None))]
fn from_numpy(data: &Bound<'_, PyAny>, chunks: Option<&Bound<'_, PyAny>>) -> PyResult<PyArr> {
    let block = block_from_numpy(data)?;
    Ok(Array::from_block(block, parse_chunks(chunks)?).py()?.into())
}

/// A source that reads through any Python object with `shape`, `dtype`
/// and NumPy slicing (`obj[i0:i1, j0:j1]`), one chunk per call, with the
/// GIL held only while the object is called.
struct PySource {
    obj: Py<PyAny>,
    name: String,
    shape: Vec<u64>,
    dtype: DType,
    grid: ndstream::ChunkGrid,
}

impl std::fmt::Debug for PySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PySource")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .finish()
    }
}

impl ndstream::ChunkSource for PySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn shape(&self) -> &[u64] {
        &self.shape
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn grid(&self) -> &ndstream::ChunkGrid {
        &self.grid
    }
    fn read_chunk(&self, idx: &[u64]) -> ndstream::Result<Block> {
        let region = self.grid.chunk_region(idx);
        let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        Python::attach(|py| {
            let read = || -> PyResult<Block> {
                let slices: Vec<Bound<'_, PyAny>> = region
                    .iter()
                    .map(|r| {
                        pyo3::types::PySlice::new(py, r.start as isize, r.end as isize, 1)
                            .into_any()
                    })
                    .collect();
                let key = PyTuple::new(py, slices)?;
                let data = self.obj.bind(py).get_item(key)?;
                let np = py.import("numpy")?;
                let data = np.call_method1("ascontiguousarray", (data, self.dtype.name()))?;
                block_from_numpy(&data)
            };
            match read() {
                Ok(b) if b.shape() == want.as_slice() => Ok(b),
                Ok(b) => Err(Error::source(
                    &self.name,
                    idx,
                    format!(
                        "the object returned a block of shape {:?} for a region of shape {want:?}",
                        b.shape()
                    ),
                )),
                Err(e) => Err(Error::source(&self.name, idx, e.to_string())),
            }
        })
    }
}

/// A lazy array read through a Python object with `shape`, `dtype` and
/// NumPy slicing, chunk by chunk (Dask's `from_array` for objects ndstream
/// has no reader of its own for).
#[pyfunction]
#[pyo3(signature = (obj, shape, dtype, chunks=None, name="array"))]
fn from_object(
    obj: Py<PyAny>,
    shape: Vec<u64>,
    dtype: &str,
    chunks: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<PyArr> {
    let dtype = parse_dtype(dtype)?;
    let grid = parse_chunks(chunks)?.resolve(&shape, dtype).py()?;
    let src = PySource {
        obj,
        name: name.to_string(),
        shape,
        dtype,
        grid,
    };
    Ok(Array::from_source(Arc::new(src)).into())
}

/// Open a stored array: `file.npy`, `store.zarr[/array/path]`,
/// `file.h5:/dataset`, `file.bin?dtype=<f4&shape=100,200`.
#[pyfunction]
fn open(path: &str) -> PyResult<PyArr> {
    Ok(ndstream::open(path).py()?.into())
}

/// Open every array a glob pattern names (sorted by path).
#[pyfunction]
fn open_many(pattern: &str) -> PyResult<Vec<PyArr>> {
    Ok(ndstream::open_many(pattern)
        .py()?
        .into_iter()
        .map(PyArr::from)
        .collect())
}

#[pyfunction]
#[pyo3(signature = (shape, value, dtype, chunks=None))]
fn full(
    shape: Vec<u64>,
    value: f64,
    dtype: &str,
    chunks: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArr> {
    Ok(
        ndstream::full(&shape, value, parse_dtype(dtype)?, parse_chunks(chunks)?)
            .py()?
            .into(),
    )
}

#[pyfunction]
#[pyo3(signature = (start, stop, step, dtype, chunks=None))]
fn arange(
    start: f64,
    stop: f64,
    step: f64,
    dtype: &str,
    chunks: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArr> {
    Ok(ndstream::arange(
        start,
        stop,
        step,
        parse_dtype(dtype)?,
        parse_chunks(chunks)?,
    )
    .py()?
    .into())
}

#[pyfunction]
#[pyo3(signature = (start, stop, num, chunks=None))]
fn linspace(start: f64, stop: f64, num: u64, chunks: Option<&Bound<'_, PyAny>>) -> PyResult<PyArr> {
    Ok(ndstream::linspace(start, stop, num, parse_chunks(chunks)?)
        .py()?
        .into())
}

/// Counter-based random values: `dist` is `normal` (a = loc, b = scale),
/// `uniform` (a = low, b = high) or `exponential` (a = scale).
#[pyfunction]
#[pyo3(signature = (dist, a, b, shape, seed, chunks=None))]
fn random(
    dist: &str,
    a: f64,
    b: f64,
    shape: Vec<u64>,
    seed: u64,
    chunks: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArr> {
    let d = match dist {
        "normal" => Distribution::Normal { loc: a, scale: b },
        "uniform" => Distribution::Uniform { low: a, high: b },
        "exponential" => Distribution::Exponential { scale: a },
        _ => {
            return Err(PyValueError::new_err(format!(
                "ndstream has no distribution {dist:?}"
            )))
        }
    };
    Ok(Array::random(d, &shape, parse_chunks(chunks)?, seed)
        .py()?
        .into())
}

fn arrays(xs: &[PyRef<'_, PyArr>]) -> Vec<Array> {
    xs.iter().map(|x| x.a.clone()).collect()
}

#[pyfunction]
fn stack(xs: Vec<PyRef<'_, PyArr>>, axis: isize) -> PyResult<PyArr> {
    Ok(ndstream::stack(&arrays(&xs), axis).py()?.into())
}

#[pyfunction]
fn concatenate(xs: Vec<PyRef<'_, PyArr>>, axis: isize) -> PyResult<PyArr> {
    Ok(ndstream::concatenate(&arrays(&xs), axis).py()?.into())
}

/// `where(cond, a, b)` with `a` and `b` arrays or scalars.
#[pyfunction]
fn where_(cond: &PyArr, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyArr> {
    Ok(ndstream::where_(&cond.a, operand(a)?, operand(b)?)
        .py()?
        .into())
}

/// `func` applied to each block of `xs` (rechunked like the first), giving
/// a block of dtype `dtype`: of the input block's shape, or, when `chunks`
/// is given, of the output's block sizes per axis, with output axis `o`
/// from input axis `axes[o]` (`None`: a new axis) and the input axes in
/// `dropped` given whole (see `ndstream::BlockMap`). The function runs with
/// the GIL held, on the engine's worker threads.
#[pyfunction]
#[pyo3(signature = (func, xs, dtype, name, chunks=None, axes=None, dropped=None))]
fn map_blocks(
    func: Py<PyAny>,
    xs: Vec<PyRef<'_, PyArr>>,
    dtype: &str,
    name: &str,
    chunks: Option<Vec<Vec<u64>>>,
    axes: Option<Vec<Option<usize>>>,
    dropped: Option<Vec<usize>>,
) -> PyResult<PyArr> {
    let out = parse_dtype(dtype)?;
    let f = move |blocks: &[Block]| -> ndstream::Result<Block> {
        Python::attach(|py| {
            let args: Vec<Bound<'_, PyAny>> = blocks
                .iter()
                .map(|b| block_to_numpy(py, b.clone()))
                .collect();
            let r = PyTuple::new(py, args)
                .and_then(|args| func.bind(py).call1(args))
                .and_then(|r| {
                    let np = py.import("numpy")?;
                    np.call_method1("ascontiguousarray", (r, out.name()))
                })
                .and_then(|r| block_from_numpy(&r));
            r.map_err(|e| {
                let msg = e.to_string();
                set_kernel_error(e);
                Error::invalid("map_blocks", "func", msg)
            })
        })
    };
    let xs = arrays(&xs);
    let Some(chunks) = chunks else {
        return Ok(ndstream::map_blocks(&xs, out, name, Arc::new(f))
            .py()?
            .into());
    };
    let ndim = xs.first().map_or(0, Array::ndim);
    let map = ndstream::BlockMap {
        axes: axes.unwrap_or_else(|| (0..ndim).map(Some).collect()),
        dropped: dropped.unwrap_or_default(),
    };
    Ok(
        ndstream::map_blocks_to(&xs, out, name, Arc::new(f), chunks, map)
            .py()?
            .into(),
    )
}

/// How a job reports progress to Python: the engine's callback stores the
/// latest counts; the waiting thread passes them to the Python callable.
#[derive(Debug, Default)]
struct Counts {
    done: AtomicU64,
    total: AtomicU64,
}

fn executor(
    memory: Option<u64>,
    threads: Option<usize>,
    counts: &Arc<Counts>,
) -> PyResult<Executor> {
    let mut b = Executor::builder();
    if let Some(m) = memory {
        b = b.memory(m);
    }
    if let Some(t) = threads {
        if t == 0 {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        b = b.threads(t);
    }
    let c = Arc::clone(counts);
    b = b.progress(Arc::new(move |p: &Progress| {
        c.done.store(p.chunks_done, Ordering::Relaxed);
        c.total.store(p.chunks_total, Ordering::Relaxed);
    }));
    b.build().py()
}

/// Run `job` on a thread of its own with the GIL released; meanwhile this
/// thread checks for signals (Ctrl-C cancels the job and raises
/// `KeyboardInterrupt`) and passes progress to `progress(done, total)`.
fn run_job<T: Send>(
    py: Python<'_>,
    exec: &Executor,
    counts: &Counts,
    progress: Option<&Bound<'_, PyAny>>,
    job: impl FnOnce() -> ndstream::Result<T> + Send,
) -> PyResult<T> {
    take_kernel_error();
    let cancel = exec.cancel_handle();
    let progress = progress.map(|p| p.clone().unbind());
    let mut interrupt: Option<PyErr> = None;
    let mut callback_error: Option<PyErr> = None;
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = crossbeam_channel::bounded::<()>(1);
            let worker = std::thread::Builder::new()
                .name("ndstream-job".into())
                .stack_size(64 << 20)
                .spawn_scoped(s, move || {
                    let r = job();
                    let _ = tx.send(());
                    r
                })
                .map_err(|e| Error::ThreadStart {
                    message: e.to_string(),
                })?;
            let mut last = (u64::MAX, u64::MAX);
            loop {
                let finished = !matches!(
                    rx.recv_timeout(Duration::from_millis(50)),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout)
                );
                let now = (
                    counts.done.load(Ordering::Relaxed),
                    counts.total.load(Ordering::Relaxed),
                );
                Python::attach(|py| {
                    if interrupt.is_none() {
                        if let Err(e) = py.check_signals() {
                            interrupt = Some(e);
                            cancel.cancel();
                        }
                    }
                    if let Some(p) = &progress {
                        if now != last && callback_error.is_none() {
                            if let Err(e) = p.bind(py).call1(now) {
                                callback_error = Some(e);
                                cancel.cancel();
                            }
                        }
                    }
                });
                last = now;
                if finished {
                    break;
                }
            }
            match worker.join() {
                Ok(r) => r,
                Err(p) => Err(Error::WorkerPanic {
                    task: "the job".into(),
                    message: p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default(),
                }),
            }
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    if let Some(e) = callback_error {
        return Err(e);
    }
    result.py()
}

/// Compute arrays in one pass over their shared inputs; NumPy arrays out
/// (the engine's buffers, handed to NumPy without a copy).
#[pyfunction]
#[pyo3(signature = (xs, memory=None, threads=None, progress=None))]
fn compute<'py>(
    py: Python<'py>,
    xs: Vec<PyRef<'py, PyArr>>,
    memory: Option<u64>,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let xs = arrays(&xs);
    let counts = Arc::new(Counts::default());
    let exec = executor(memory, threads, &counts)?;
    let blocks = run_job(py, &exec, &counts, progress, || exec.compute_many(&xs))?;
    Ok(blocks
        .into_iter()
        .map(|b| block_to_numpy(py, b.into_standard_layout()))
        .collect())
}

/// Check that `xs` can be computed within `memory` without computing it:
/// the plan's peak need, or `MemoryBudgetError`.
#[pyfunction]
#[pyo3(signature = (xs, memory=None, threads=None))]
fn plan(
    xs: Vec<PyRef<'_, PyArr>>,
    memory: Option<u64>,
    threads: Option<usize>,
) -> PyResult<String> {
    let counts = Arc::new(Counts::default());
    let exec = executor(memory, threads, &counts)?;
    Ok(format!("{:?}", exec.plan(&arrays(&xs)).py()?))
}

/// Stream `x` into a store at `path` (Zarr, HDF5, `.npy`, raw). `mode` is
/// `create`, `overwrite` or `resume`. Returns the store report as a dict.
#[pyfunction]
#[pyo3(signature = (x, path, chunks=None, codec=None, mode="create", zarr_version=3, memory=None, threads=None, progress=None, attributes=None))]
#[allow(clippy::too_many_arguments)]
fn store<'py>(
    py: Python<'py>,
    x: &PyArr,
    path: &str,
    chunks: Option<Vec<u64>>,
    codec: Option<&str>,
    mode: &str,
    zarr_version: u8,
    memory: Option<u64>,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
    attributes: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = store_options(chunks, codec, mode, zarr_version, attributes)?;
    let counts = Arc::new(Counts::default());
    let exec = executor(memory, threads, &counts)?;
    let a = x.a.clone();
    let path = path.to_string();
    let report = run_job(py, &exec, &counts, progress, || {
        ndstream::store(&exec, &a, &path, &opts)
    })?;
    let d = PyDict::new(py);
    d.set_item("chunks_written", report.chunks_written)?;
    d.set_item("chunks_skipped", report.chunks_skipped)?;
    d.set_item("bytes_written", report.bytes_written)?;
    d.set_item("peak_reserved", report.peak_reserved)?;
    Ok(d)
}

/// Store options from `store`'s and `plan_tasks`' arguments.
fn store_options(
    chunks: Option<Vec<u64>>,
    codec: Option<&str>,
    mode: &str,
    zarr_version: u8,
    attributes: Option<&str>,
) -> PyResult<StoreOptions> {
    let mut opts = StoreOptions {
        chunks,
        ..StoreOptions::default()
    };
    if let Some(c) = codec {
        opts.codec = Some(
            c.parse::<Codec>()
                .map_err(|e| PyValueError::new_err(format!("codec {c:?}: {e}")))?,
        );
    }
    opts.mode = match mode {
        "create" => WriteMode::Create,
        "overwrite" => WriteMode::Overwrite,
        "resume" => WriteMode::Resume,
        "into" => WriteMode::Into,
        _ => {
            return Err(PyValueError::new_err(format!(
                "mode must be create, overwrite, resume or into, not {mode:?}"
            )))
        }
    };
    opts.zarr_version = match zarr_version {
        2 => ZarrVersion::V2,
        3 => ZarrVersion::V3,
        v => {
            return Err(PyValueError::new_err(format!(
                "zarr_format must be 2 or 3, not {v}"
            )))
        }
    };
    if let Some(a) = attributes {
        let v: serde_json::Value = serde_json::from_str(a)
            .map_err(|e| PyValueError::new_err(format!("attributes: {e}")))?;
        match v {
            serde_json::Value::Object(m) => opts.attributes = m,
            _ => return Err(PyValueError::new_err("attributes must be a dict")),
        }
    }
    Ok(opts)
}

/// Plan a store of `x` at `path` (a Zarr array, or an HDF5, `.npy` or
/// raw file the last stage copies in) as stages of tasks that
/// other processes run (`ndstream::plan`): writes the plan file at
/// `plan_path`, creates the output (marked incomplete; with `mode`
/// "overwrite" an array that stands on disk is replaced only by the last
/// stage; with "resume" an interrupted output of the plan's layout is
/// finished) and the work directory. Returns the stages as
/// `(kind, tasks, memory)`.
#[pyfunction]
#[pyo3(signature = (x, path, plan_path, chunks=None, codec=None, zarr_version=3, attributes=None, memory=None, work_dir=None, mode="create"))]
#[allow(clippy::too_many_arguments)]
fn plan_tasks(
    py: Python<'_>,
    x: &PyArr,
    path: &str,
    plan_path: &str,
    chunks: Option<Vec<u64>>,
    codec: Option<&str>,
    zarr_version: u8,
    attributes: Option<&str>,
    memory: Option<u64>,
    work_dir: Option<&str>,
    mode: &str,
) -> PyResult<Vec<(String, u64, u64)>> {
    let opts = store_options(chunks, codec, mode, zarr_version, attributes)?;
    let counts = Arc::new(Counts::default());
    let exec = executor(memory, Some(1), &counts)?;
    let a = x.a.clone();
    let plan = py
        .detach(|| {
            ndstream::plan::PlanFile::create(
                &exec,
                &a,
                path,
                &opts,
                std::path::Path::new(plan_path),
                work_dir,
            )
        })
        .py()?;
    Ok(plan
        .stages
        .iter()
        .map(|s| (s.kind.name().to_string(), s.tasks, s.memory))
        .collect())
}

/// The plan at `plan_path`, or from its JSON `text` where given (a worker
/// that cannot see the plan file; `plan_path` then only names it).
fn load_plan(plan_path: &str, text: Option<&str>) -> ndstream::Result<ndstream::plan::PlanFile> {
    let path = std::path::Path::new(plan_path);
    match text {
        Some(t) => ndstream::plan::PlanFile::from_json(t, path),
        None => ndstream::plan::PlanFile::load(path),
    }
}

/// Run tasks `start..end` of stage `stage` of the plan at `plan_path` (or
/// given as its JSON `text`) in this process on `threads` threads;
/// `(ran, skipped)`.
#[pyfunction]
#[pyo3(signature = (plan_path, stage, start, end, threads, text=None))]
fn plan_run_task(
    py: Python<'_>,
    plan_path: &str,
    stage: usize,
    start: u64,
    end: u64,
    threads: usize,
    text: Option<&str>,
) -> PyResult<(u64, u64)> {
    if threads == 0 {
        return Err(PyValueError::new_err("threads must be at least 1"));
    }
    let r = py
        .detach(|| load_plan(plan_path, text)?.run_task(stage, start..end, threads))
        .py()?;
    Ok((r.ran, r.skipped))
}

/// Remove the work directory of the plan at `plan_path` (records and id;
/// the plan file and the output stay).
#[pyfunction]
fn plan_remove_work(py: Python<'_>, plan_path: &str) -> PyResult<()> {
    py.detach(|| load_plan(plan_path, None)?.remove_work()).py()
}

/// Remove a temporary directory (or bucket prefix) this package made for
/// a distributed `compute`, and all in it. Refused for any location whose
/// last component is not one of its names (`ndstream-compute-…`).
#[pyfunction]
fn remove_temporary(py: Python<'_>, location: &str) -> PyResult<()> {
    let last = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if !last.starts_with("ndstream-compute-") {
        return Err(PyValueError::new_err(format!(
            "{location} is not a temporary directory of ndstream's"
        )));
    }
    py.detach(|| ndstream::formats::work::WorkStore::open(location)?.clear())
        .py()
}

/// How far the plan at `plan_path` has got: `([(done, tasks)...], complete)`.
#[pyfunction]
fn plan_status(py: Python<'_>, plan_path: &str) -> PyResult<(Vec<(u64, u64)>, bool)> {
    let st = py
        .detach(|| ndstream::plan::PlanFile::load(std::path::Path::new(plan_path))?.status())
        .py()?;
    Ok((st.stages, st.complete))
}

/// The default memory budget (a quarter of the machine's memory), in bytes.
#[pyfunction]
fn default_memory() -> u64 {
    ndstream::default_memory()
}

/// The arrays (and all they read) described as a program, JSON text that
/// `from_program` turns back into the same arrays in any process that sees
/// the same files.
#[pyfunction]
fn to_program(xs: Vec<PyRef<'_, PyArr>>) -> PyResult<String> {
    Ok(ndstream::Program::of(&arrays(&xs)).py()?.to_json())
}

/// The arrays a program written by `to_program` describes.
#[pyfunction]
fn from_program(text: &str) -> PyResult<Vec<PyArr>> {
    let program = ndstream::Program::from_json(text).py()?;
    Ok(ndstream::from_program(&program)
        .py()?
        .into_iter()
        .map(PyArr::from)
        .collect())
}

/// `"256MiB"`, `"1.5GB"`, `"4096"` → bytes.
#[pyfunction]
fn parse_bytes(s: &str) -> PyResult<u64> {
    ndstream::parse_bytes(s).py()
}

/// Bytes as ndstream prints them (`"7.63 MiB"`).
#[pyfunction]
fn human_bytes(n: u64) -> String {
    ndstream::human_bytes(n)
}

/// Peak resident memory of this process so far, in bytes.
#[pyfunction]
fn peak_rss() -> u64 {
    ndstream::peak_rss()
}

#[pymodule]
fn _ndstream(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyArr>()?;
    m.add("MemoryBudgetError", m.py().get_type::<MemoryBudgetError>())?;
    m.add_function(wrap_pyfunction!(unary_ops, m)?)?;
    m.add_function(wrap_pyfunction!(binary_ops, m)?)?;
    m.add_function(wrap_pyfunction!(reduce_ops, m)?)?;
    m.add_function(wrap_pyfunction!(scan_ops, m)?)?;
    m.add_function(wrap_pyfunction!(from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(to_program, m)?)?;
    m.add_function(wrap_pyfunction!(from_program, m)?)?;
    m.add_function(wrap_pyfunction!(from_object, m)?)?;
    m.add_function(wrap_pyfunction!(open_many, m)?)?;
    m.add_function(wrap_pyfunction!(full, m)?)?;
    m.add_function(wrap_pyfunction!(arange, m)?)?;
    m.add_function(wrap_pyfunction!(linspace, m)?)?;
    m.add_function(wrap_pyfunction!(random, m)?)?;
    m.add_function(wrap_pyfunction!(stack, m)?)?;
    m.add_function(wrap_pyfunction!(concatenate, m)?)?;
    m.add_function(wrap_pyfunction!(where_, m)?)?;
    m.add_function(wrap_pyfunction!(map_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(compute, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(store, m)?)?;
    m.add_function(wrap_pyfunction!(plan_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(plan_run_task, m)?)?;
    m.add_function(wrap_pyfunction!(plan_status, m)?)?;
    m.add_function(wrap_pyfunction!(plan_remove_work, m)?)?;
    m.add_function(wrap_pyfunction!(remove_temporary, m)?)?;
    m.add_function(wrap_pyfunction!(default_memory, m)?)?;
    m.add_function(wrap_pyfunction!(parse_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(human_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(peak_rss, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
