//! The built-in subcommands, one module each: `info`, `convert`, `eval`,
//! and `plan` (with `run-task`, `run`, `status`, `slurm`).
//! (`plot` lives in [`crate::plot`] with its renderer.)

pub mod convert;
pub mod eval;
pub mod info;
pub mod plan;
