//! The `ndstream` command's module tree, as a library so that tests and the
//! fuzz targets (`fuzz/`) can reach the expression language without
//! spawning the binary. `main.rs` is the thin shell that parses the
//! arguments and dispatches to these modules; nothing here is a stable API.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod demo;
pub mod expr;
pub mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod plot;
pub mod session;
pub mod stress;
