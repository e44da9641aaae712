//! Integration tests of the ndstream library: one test binary (STYLE.md habit 11).
#![allow(clippy::unwrap_used)]

mod common;
mod corpus;
mod edge;
mod exec;
mod fuzz;
mod memory;
mod oracle;
mod plan;
