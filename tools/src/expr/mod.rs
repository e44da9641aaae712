//! `ndstream eval`'s expression language: a small NumPy-like language with
//! Python syntax, lowered to the library's lazy arrays.
//!
//! Pipeline: [`lexer`] (text to tokens with spans) → [`parser`] (Pratt
//! parser with Python precedence, to the [`ast`]) → [`eval`] (names,
//! operators, indexing) with [`builtins`] (functions and methods) over
//! [`value`]s. Every error carries a span; [`error`] renders it with a
//! caret under the offending columns.

pub mod ast;
pub mod builtins;
pub mod error;
pub mod eval;
pub mod lexer;
pub mod parser;
pub mod value;

pub use error::{ExprError, SourcedError};
pub use eval::Evaluator;
pub use parser::{parse_index_list, parse_program};
pub use value::Value;

/// Parse and evaluate a program with `bindings` predefined.
///
/// # Errors
/// A syntax or evaluation error, rendered against `src`.
pub fn evaluate(src: &str, bindings: &[(&str, Value)]) -> Result<Value, SourcedError> {
    let prog = parse_program(src).map_err(|e| e.with_source(src))?;
    let mut ev = Evaluator::new();
    for (name, v) in bindings {
        ev.bind(name, v.clone());
    }
    ev.run(&prog).map_err(|e| e.with_source(src))
}

/// Parse a `--select` string (`::2,::2` or `[0, 10:20]`) into index items.
///
/// # Errors
/// A syntax error, or items that are not constant slices, integers, `None` or `...`.
pub fn parse_selection(src: &str) -> Result<Vec<ndstream::IndexItem>, SourcedError> {
    let items = parse_index_list(src).map_err(|e| e.with_source(src))?;
    let mut ev = Evaluator::new();
    let mut vals = Vec::with_capacity(items.len());
    for it in &items {
        let v = ev.eval(it).map_err(|e| e.with_source(src))?;
        vals.push((v, it.span));
    }
    eval::index_items(&vals).map_err(|e| e.with_source(src))
}
