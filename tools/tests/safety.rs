//! The `ndstream` command never destroys its input or writes outside the
//! named output: every command that writes is tried with an output that
//! is, holds or lies inside its input (for every format), and with paths
//! that climb out of a store. Each case checks the exit code (2: bad
//! usage), the message, and that no byte of any pre-existing file changed
//! and no file appeared. Also: shapes, zero-length arrays, deep chains and
//! bad flags give clear errors and the right exit codes, never a panic.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ndstream(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ndstream"))
        .args(args)
        .arg("--quiet")
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str], dir: &Path) -> String {
    let (code, out, err) = ndstream(args, dir);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// Every file under `dir` (not following symlinks) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            } else {
                out.insert(
                    p.clone(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            }
        }
    }
    out
}

/// Run a command that must be refused with exit 2 and a message containing
/// `says`, changing nothing under `root`.
fn refused(args: &[&str], dir: &Path, root: &Path, says: &str) {
    let before = snapshot(root);
    let (code, _, err) = ndstream(args, dir);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert!(!err.contains("internal error"), "{args:?}: {err}");
    let after = snapshot(root);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{args:?} added or removed files"
    );
    for (p, b) in &before {
        assert!(after[p] == *b, "{args:?} changed {}", p.display());
    }
}

/// A directory with one array in every format (and a group holding one).
fn fixtures() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(
        &[
            "eval",
            "ones((4, 6), chunks=(2, 5)) * arange(6)",
            "-o",
            "a.zarr",
        ],
        d,
    );
    ok(&["convert", "a.zarr", "grp.zarr/x"], d);
    ok(&["convert", "a.zarr", "m.npy"], d);
    ok(&["convert", "a.zarr", "r.bin?dtype=<f8&shape=4,6"], d);
    ok(&["convert", "a.zarr", "d.h5:/x"], d);
    ok(&["convert", "a.zarr", "d.h5:/g/y"], d);
    std::os::unix::fs::symlink(d.join("a.zarr"), d.join("link.zarr")).unwrap();
    std::fs::hard_link(d.join("m.npy"), d.join("hard.npy")).unwrap();
    t
}

#[test]
fn an_output_that_is_an_input_is_refused_for_every_command_and_format() {
    let t = fixtures();
    let d = t.path();
    let same = "would overwrite the input";
    let raw = "r.bin?dtype=<f8&shape=4,6";
    for mode in [&[][..], &["--overwrite"][..], &["--resume"][..]] {
        for (src, dst) in [
            ("a.zarr", "a.zarr"),
            ("a.zarr", "./sub/../a.zarr"),
            ("link.zarr", "a.zarr"),
            ("a.zarr", "link.zarr"),
            ("grp.zarr/x", "grp.zarr"),
            ("grp.zarr/x", "grp.zarr/x"),
            ("m.npy", "m.npy"),
            ("m.npy", "hard.npy"),
            (raw, raw),
            ("d.h5:/x", "d.h5:/x"),
            ("d.h5:/x", "d.h5"),
            ("d.h5:/g/y", "d.h5:/g"),
        ] {
            let mut args = vec!["convert", src, dst];
            args.extend_from_slice(mode);
            refused(&args, d, d, same);
            args.extend_from_slice(&["--chunks", "1,1"]);
            refused(&args, d, d, same);
        }
        for (expr, dst) in [
            ("open('a.zarr') * 2", "a.zarr"),
            ("open('grp.zarr/x') + open('m.npy')", "m.npy"),
            ("open('d.h5:/g/y') - 1", "d.h5"),
        ] {
            let mut args = vec!["eval", expr, "-o", dst];
            args.extend_from_slice(mode);
            refused(&args, d, d, same);
        }
    }
    refused(&["plot", "m.npy", "-o", "m.npy"], d, d, same);
    refused(&["plot", "a.zarr", "-o", "a.zarr/c/0/0"], d, d, same);
    refused(&["plot", "m.npy", "-o", "d.h5"], d, d, "not a PNG");
    // Different datasets of one file and different arrays of one group are fine.
    ok(&["convert", "d.h5:/x", "d.h5:/z"], d);
    ok(&["convert", "grp.zarr/x", "grp.zarr/w"], d);
    let v = ok(
        &["eval", "open('d.h5:/z').sum() + open('grp.zarr/w').sum()"],
        d,
    );
    assert_eq!(v.trim(), "120.0");
    // A plot replaces an earlier plot.
    ok(&["plot", "m.npy", "-o", "p.png"], d);
    ok(&["plot", "a.zarr", "-o", "p.png"], d);
}

#[test]
fn paths_never_climb_out_of_a_store() {
    let t = fixtures();
    let d = t.path().join("work");
    std::fs::create_dir(&d).unwrap();
    std::fs::rename(t.path().join("a.zarr"), d.join("a.zarr")).unwrap();
    std::fs::rename(t.path().join("grp.zarr"), d.join("grp.zarr")).unwrap();
    std::fs::copy(t.path().join("m.npy"), d.join("m.npy")).unwrap();
    let root = t.path();
    let inside = "must stay inside";
    refused(
        &["convert", "m.npy", "out.zarr/../../../escaped"],
        &d,
        root,
        inside,
    );
    refused(
        &["convert", "m.npy", "grp.zarr/../../escaped.zarr"],
        &d,
        root,
        inside,
    );
    refused(&["convert", "m.npy", "grp.zarr/./x2"], &d, root, inside);
    refused(&["info", "grp.zarr/../../other.zarr"], &d, root, inside);
    refused(&["info", "a.zarr/.."], &d, root, inside);
    refused(&["convert", "grp.zarr/x/../x", "o.npy"], &d, root, inside);
    refused(
        &["eval", "open('grp.zarr/../a.zarr').sum()"],
        &d,
        root,
        inside,
    );
    refused(&["convert", "m.npy", "../d.h5:/../x"], &d, root, inside);
}

#[test]
fn an_existing_path_with_glob_characters_opens_literally() {
    let t = fixtures();
    let d = t.path();
    ok(&["convert", "a.zarr", "datetime64[10ms].zarr"], d);
    ok(&["convert", "m.npy", "p[1].npy"], d);
    let info = ok(&["info", "datetime64[10ms].zarr", "--json"], d);
    assert!(info.contains("\"shape\""), "{info}");
    let v = ok(
        &[
            "eval",
            "open('datetime64[10ms].zarr').sum() + open('p[1].npy').sum()",
        ],
        d,
    );
    assert_eq!(v.trim(), "120.0");
    ok(&["convert", "datetime64[10ms].zarr", "c.npy"], d);
    // A real pattern still globs.
    let v = ok(&["eval", "stack('p*.npy').shape"], d);
    assert_eq!(v.trim(), "(1, 4, 6)");
}

#[test]
fn shapes_and_flags_give_clear_errors_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let r = ndstream(&["eval", "ones((2**32, 2**32))"], d);
    assert_eq!(r.0, 2, "{}", r.2);
    assert!(r.2.contains("2^63 bytes"), "{}", r.2);
    let r = ndstream(&["eval", "zeros((0,)).max()"], d);
    assert_eq!(r.0, 2, "{}", r.2);
    assert!(r.2.contains("zero-size array"), "{}", r.2);
    assert_eq!(ok(&["eval", "zeros((0, 5)).sum()"], d).trim(), "0.0");
    assert_eq!(
        ok(&["eval", "zeros((0, 5)).sum(axis=0)"], d).trim(),
        "[0. 0. 0. 0. 0.]"
    );
    assert_eq!(
        ok(&["eval", "ones(()).sum() + zeros((3, 0)).prod()"], d).trim(),
        "2.0"
    );
    for flags in [
        &["stress", "--threads", "0"][..],
        &["stress", "--memory", "0"][..],
        &["stress", "--input-size", "lots"][..],
        &["eval", "1", "--threads", "0"][..],
    ] {
        let (code, _, err) = ndstream(flags, d);
        assert_eq!(code, 2, "{flags:?}: {err}");
    }
    // Metadata that declares an impossible chunk: refused, not a panic.
    ok(&["eval", "ones((4, 6))", "-o", "big.zarr"], d);
    let meta = d.join("big.zarr/zarr.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["chunk_grid"]["configuration"]["chunk_shape"] = serde_json::json!([1u64 << 40, 1u64 << 40]);
    std::fs::write(&meta, v.to_string()).unwrap();
    for args in [
        &["eval", "open('big.zarr').sum()"][..],
        &["info", "big.zarr"][..],
    ] {
        let (code, _, err) = ndstream(args, d);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("2^63 bytes"), "{args:?}: {err}");
    }
    // A long chain of assignments, as a script's loop builds it.
    let mut prog = String::from("x = ones(3, chunks=2); ");
    prog.push_str(&"x = x + 1; ".repeat(3000));
    prog.push_str("x.sum()");
    assert_eq!(ok(&["eval", &prog], d).trim(), "9003.0");
}

/// Replay a fuzz target's corpus and crashers (`fuzz/corpus/TARGET`,
/// `fuzz/regressions/TARGET`) through its entry point: none may panic.
fn replay(target: &str, entry: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) {
            inputs.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    assert!(!inputs.is_empty(), "no corpus for the {target} fuzz target");
    inputs.sort();
    for p in inputs {
        let data = std::fs::read(&p).unwrap();
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            panic!("the fuzz input {} of {target} panics", p.display());
        }
    }
}

/// The `expr` fuzz target's inputs: programs the fuzzer found, each
/// parsed, evaluated, computed when small and printed.
#[test]
fn the_expr_fuzz_corpus_replays_without_a_panic() {
    replay("expr", ndstream_cli::fuzz::expr);
}

/// The `program` fuzz target's inputs: program JSON (what plan files and
/// pickled arrays carry), each read, rebuilt, computed when small and
/// printed.
#[test]
fn the_program_fuzz_corpus_replays_without_a_panic() {
    replay("program", ndstream_cli::fuzz::program);
}
