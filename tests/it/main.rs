//! Integration tests of the ndstream library: one test binary (STYLE.md habit 11).

mod common;
mod exec;
mod memory;
mod oracle;
