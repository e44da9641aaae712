//! The built-in subcommands, one module each: `info`, `convert`, `eval`.
//! (`plot` lives in [`crate::plot`] with its renderer.)

pub mod convert;
pub mod eval;
pub mod info;
