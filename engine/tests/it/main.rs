//! Integration tests of the engine's public API: one test binary
//! (STYLE.md habit 11). Expected values are NumPy's and Dask's, as closed
//! forms or literals computed with NumPy 2.4 and Dask 2026.8.
#![allow(clippy::unwrap_used)]

mod common;
mod latency;
mod map_blocks;
mod program;
mod reshape;
mod scan;
mod tasks;
