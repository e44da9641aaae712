//! ndstream: chunked n-dimensional arrays larger than memory.
pub use ndstream_engine::*;
