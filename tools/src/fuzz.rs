//! The entry points of the `expr` and `program` fuzz targets (`fuzz/`),
//! shared with the regression tests that replay their corpora
//! (`tests/safety.rs`).
//!
//! `expr`: the bytes are a program of `ndstream eval`'s expression
//! language. `program`: they are a [`Program`](ndstream::Program) as JSON,
//! what a plan file (`ndstream plan`, read by `run-task` on any worker)
//! and a pickled Python array carry to another process; it is read and
//! rebuilt, with stored inputs refused (the fuzzer opens no file).
//! Either way the arrays it yields are computed when they are
//! small enough to print (as `eval` would), under a 256 MiB budget and a
//! watchdog that cancels a computation still running after two seconds (a
//! small result can stand for a huge reduction; that is slow, not a bug),
//! then formatted as text and JSON. Errors are the expected outcome for
//! most inputs; a panic, an abort or a stack overflow is a bug. Not a
//! stable API.

use std::sync::mpsc;
use std::time::Duration;

use crate::expr::{evaluate, Value};
use crate::format::{block_json, format_array};

/// The most elements an array of the result may have to be computed.
const MAX_ELEMENTS: u64 = 1 << 16;

/// How long a computation may run before the watchdog cancels it.
const WATCHDOG: Duration = Duration::from_secs(2);

fn collect(v: &Value, out: &mut Vec<ndstream::Array>) {
    match v {
        Value::Array(a) => out.push(a.clone()),
        Value::List(items) | Value::Tuple(items) => items.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// `expr`: `data` (if UTF-8) as an expression program.
pub fn expr(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = evaluate(src, &[]) else {
        return;
    };
    let mut arrays = Vec::new();
    collect(&value, &mut arrays);
    compute_small(src, &arrays);
}

/// `program`: `data` (if UTF-8) as a program's JSON, rebuilt with every
/// stored input refused.
pub fn program(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(program) = ndstream::Program::from_json(src) else {
        return;
    };
    let refuse = |locator: &str| -> ndstream::Result<std::sync::Arc<dyn ndstream::ChunkSource>> {
        Err(ndstream::Error::invalid(
            "fuzz",
            "locator",
            format!("no stored input while fuzzing: {locator}"),
        ))
    };
    let Ok(arrays) = program.build(&refuse) else {
        return;
    };
    compute_small(src, &arrays);
}

/// Compute `arrays` (what `src` yields) when each is small enough to print,
/// under the budget and the watchdog, and format the results.
fn compute_small(src: &str, arrays: &[ndstream::Array]) {
    if arrays.is_empty() || arrays.iter().any(|a| a.size() > MAX_ELEMENTS) {
        return;
    }
    let Ok(exec) = ndstream::Executor::builder()
        .memory(256 << 20)
        .threads(2)
        .build()
    else {
        return;
    };
    let cancel = exec.cancel_handle();
    let (done, wait) = mpsc::channel::<()>();
    let blocks = std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(WATCHDOG) {
                cancel.cancel();
            }
        });
        let blocks = exec.compute_many(arrays);
        let _ = done.send(());
        blocks
    });
    if let Ok(blocks) = blocks {
        for (a, b) in arrays.iter().zip(&blocks) {
            assert!(
                b.shape()
                    .iter()
                    .map(|&n| n as u64)
                    .eq(a.shape().iter().copied()),
                "{src:?}: computed shape {:?}, declared {:?}",
                b.shape(),
                a.shape()
            );
            let _ = format_array(b);
            let _ = block_json(b);
        }
    }
}
