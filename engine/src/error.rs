//! The engine's error type.
//!
//! One enum, facts in fields. Format crates report their failures as
//! [`Error::Source`]/[`Error::Sink`] with the store's name and the chunk, so
//! a user always learns *which* file and chunk went wrong.

use crate::dtype::DType;
use crate::grid::ChunkIndex;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building or running an array program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Shapes that cannot be combined (broadcast, stack, concatenate, where).
    #[error("{op}: shapes {left:?} and {right:?} are incompatible")]
    Shape {
        op: &'static str,
        left: Vec<u64>,
        right: Vec<u64>,
    },

    /// Inputs to stack/concatenate that differ in dtype.
    #[error("{op}: input {index} has dtype {got}, expected {expected}")]
    DTypeMismatch {
        op: &'static str,
        index: usize,
        expected: DType,
        got: DType,
    },

    /// An operation that does not apply to a dtype.
    #[error("{op} is not defined for dtype {dtype}")]
    UnsupportedDType { op: &'static str, dtype: DType },

    /// An argument out of range or malformed.
    #[error("{op}: invalid argument `{arg}`: {reason}")]
    InvalidArgument {
        op: &'static str,
        arg: &'static str,
        reason: String,
    },

    /// An axis number out of range for the array.
    #[error("{op}: axis {axis} is out of bounds for an array of {ndim} dimensions")]
    AxisOutOfBounds {
        op: &'static str,
        axis: isize,
        ndim: usize,
    },

    /// An index out of range.
    #[error("index {index} is out of bounds for axis {axis} with size {size}")]
    IndexOutOfBounds { index: i64, axis: usize, size: u64 },

    /// The plan cannot run inside the memory budget.
    #[error(
        "{op} needs {needed} bytes ({needed_h}) at once but the memory budget is {budget} bytes ({budget_h}); {hint}"
    )]
    BudgetTooSmall {
        op: String,
        needed: u64,
        needed_h: String,
        budget: u64,
        budget_h: String,
        hint: String,
    },

    /// A store could not be opened or created (missing file, dataset or
    /// array path; unsupported dtype; existing output without overwrite).
    #[error("{path}: {message}")]
    Open {
        path: String,
        message: String,
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A source failed to produce a chunk.
    #[error("reading chunk {chunk} of {source_name}: {message}")]
    Source {
        source_name: String,
        chunk: ChunkIndex,
        message: String,
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A sink failed to store a chunk or to finish.
    #[error("writing {what} of {sink_name}: {message}")]
    Sink {
        sink_name: String,
        what: String,
        message: String,
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A user kernel (`map_blocks`) failed or returned the wrong shape/dtype.
    #[error("map_blocks on chunk {chunk}: {message}")]
    Kernel { chunk: ChunkIndex, message: String },

    /// A worker thread panicked; the job was cancelled.
    #[error("a worker thread panicked while computing {task}: {message}")]
    WorkerPanic { task: String, message: String },

    /// The job was cancelled (by the user, or because another task failed).
    #[error("cancelled")]
    Cancelled,

    /// An operation that needs a known length got an array of unknown length
    /// (the result of a boolean mask).
    /// An array whose byte size does not fit in `i64` (NumPy's limit):
    /// no store or memory could hold it, and sizes of it would overflow.
    #[error("an array of shape {shape:?} and dtype {dtype} would hold more than 2^63 bytes; no array can be that large")]
    ArrayTooLarge { shape: Vec<u64>, dtype: DType },

    /// The output of a write names (or contains, or lies inside) one of its
    /// inputs: writing would destroy the data being read. Refused before
    /// anything is opened for writing.
    #[error("{output}: the output would overwrite the input {input}; write to a different path (nothing was changed)")]
    OutputIsInput { output: String, input: String },

    /// An expression nested deeper than the engine evaluates.
    #[error("the expression is nested {depth} levels deep, more than the {limit} ndstream evaluates; compute or store an intermediate result")]
    TooDeep { depth: usize, limit: usize },

    /// The operating system refused a thread (its stack).
    #[error("cannot start a worker thread: {message}")]
    ThreadStart { message: String },

    #[error("{op}: the array has an unknown length (it is the result of a boolean mask); reduce it or compute it first")]
    UnknownLength { op: &'static str },
}

impl Error {
    /// A source error with no underlying cause.
    pub fn source(
        source_name: impl Into<String>,
        chunk: &[u64],
        message: impl Into<String>,
    ) -> Error {
        Error::Source {
            source_name: source_name.into(),
            chunk: ChunkIndex(chunk.to_vec()),
            message: message.into(),
            cause: None,
        }
    }

    /// An open/create error with no underlying cause.
    pub fn open(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Open {
            path: path.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// A sink error with no underlying cause.
    pub fn sink(
        sink_name: impl Into<String>,
        what: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Sink {
            sink_name: sink_name.into(),
            what: what.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// An invalid-argument error.
    pub fn invalid(op: &'static str, arg: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            op,
            arg,
            reason: reason.into(),
        }
    }
}

/// Format a byte count for people: `1.5 GiB`, `64 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Parse a byte size as people write it: `512MiB`, `2GB`, `1e9`, `64 KiB`, `1024`.
///
/// ```
/// use ndstream_engine::parse_bytes;
/// assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
/// assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
/// assert_eq!(parse_bytes("1e9").unwrap(), 1_000_000_000);
/// assert!(parse_bytes("lots").is_err());
/// ```
///
/// # Errors
/// A string that is not a number followed by an optional unit.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::invalid(
            "size",
            "size",
            format!("`{s}` is not a size (examples: 512MiB, 2GB, 1e9)"),
        )
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "ti" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    if !(v.is_finite() && v >= 0.0) {
        return Err(bad());
    }
    Ok((v * mult).round() as u64)
}
