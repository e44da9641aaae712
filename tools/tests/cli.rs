//! End-to-end tests of the `ndstream` binary: every command and its error
//! cases. Inputs are made with the CLI itself (`eval ... -o`), so no Python
//! is needed; values are checked against independent computations.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

#[path = "cli/corpus.rs"]
mod corpus;
#[path = "../../formats/tests/it/sha256.rs"]
mod sha256;

fn ndstream() -> Command {
    let mut c = Command::cargo_bin("ndstream").unwrap_or_else(|e| panic!("{e}"));
    c.arg("--quiet");
    c
}

/// Run and return (status, stdout, stderr).
fn run(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = ndstream()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str], dir: &Path) -> String {
    let (code, out, err) = run(args, dir);
    assert_eq!(code, 0, "{args:?} failed: {err}");
    out
}

fn fails(args: &[&str], dir: &Path, code: i32) -> String {
    let (c, _, err) = run(args, dir);
    assert_eq!(c, code, "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

const INPUT: &str = "random.uniform(0, 1, size=(100, 60), chunks=(30, 30), seed=3)";

#[test]
fn errors_are_one_line_with_status_2() {
    let d = tmp();
    let p = d.path();
    let e = fails(&["info", "missing.zarr"], p, 2);
    assert!(e.contains("missing.zarr"), "{e}");
    fails(&["eval", "open('nope.h5:/x').sum()"], p, 2);
    let e = fails(&["eval", "1", "--memory", "lots"], p, 2);
    assert!(e.contains("--memory") && e.contains("lots"), "{e}");
    fails(&["convert", "a.zarr", "b.zarr", "--codec", "lz77"], p, 2);
    fails(&["eval", "unknown_function(3)"], p, 2);
    fails(&["eval", "zeros((2, 3)).sum(axis=5)"], p, 2);
    let (code, _, _) = run(&["frobnicate"], p);
    assert_eq!(code, 2);
}

#[test]
fn bad_expressions_show_a_caret() {
    let d = tmp();
    let e = fails(&["eval", "mean(x"], d.path(), 2);
    assert_eq!(e.lines().nth(1), Some("  mean(x"), "{e}");
    assert_eq!(e.lines().nth(2), Some("        ^"), "{e}");
    let e = fails(&["eval", "x = 3; y + x"], d.path(), 2);
    assert!(e.contains("unknown name `y`"), "{e}");
    assert_eq!(e.lines().nth(2), Some("         ^"), "{e}");
}

#[test]
fn large_results_need_an_output() {
    let d = tmp();
    let e = fails(&["eval", "zeros((200, 200))"], d.path(), 2);
    assert!(e.contains("-o"), "{e}");
    ok(&["eval", "zeros((200, 200))", "-o", "z.zarr"], d.path());
    let info = json(&ok(&["info", "z.zarr", "--json"], d.path()));
    assert_eq!(info["shape"], serde_json::json!([200, 200]));
    assert_eq!(
        info["attributes"]["ndstream_expression"],
        "zeros((200, 200))"
    );
}

#[test]
fn eval_prints_like_numpy_and_lists_in_one_pass() {
    let d = tmp();
    let p = d.path();
    assert_eq!(ok(&["eval", "1 + 2 * 3"], p), "7\n");
    assert_eq!(ok(&["eval", "arange(5.)"], p), "[0. 1. 2. 3. 4.]\n");
    assert_eq!(
        ok(&["eval", "ones((2, 3), dtype='i4').sum(axis=0)"], p),
        "[2 2 2]\n"
    );
    assert_eq!(
        ok(&["eval", "linspace(0, 1, 5)[::-2]"], p),
        "[1.  0.5 0. ]\n"
    );
    assert_eq!(ok(&["eval", "-arange(4)**2"], p), "[ 0 -1 -4 -9]\n");
    assert_eq!(
        ok(&["eval", "x = arange(10.); x[x > 4.5]"], p),
        "[5. 6. 7. 8. 9.]\n"
    );
    assert_eq!(
        ok(&["eval", "where(arange(4) % 2 == 0, 1.5, -1)"], p),
        "[ 1.5 -1.   1.5 -1. ]\n"
    );
    assert_eq!(
        ok(&["eval", "(ones(3, dtype='f4') * 2.5).dtype"], p),
        "float32\n"
    );
    assert_eq!(
        ok(&["eval", "triu(ones((2, 2)), 1)"], p),
        "[[0. 1.]\n [0. 0.]]\n"
    );
    let e = fails(&["eval", "ones((2, 3)) + ones(4)"], p, 2);
    assert!(e.contains("[2, 3]") && e.contains("^^^"), "{e}");
    let expr = format!("x = {INPUT}; [x.sum(), x.mean(), x.std(), x.max(axis=0)[:3]]");
    let out = ok(&["eval", &expr], p);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    // Each item equals the same reduction computed on its own.
    for (i, red) in ["x.sum()", "x.mean()", "x.std()"].iter().enumerate() {
        let alone = ok(&["eval", &format!("x = {INPUT}; {red}")], p);
        assert_eq!(lines[i], alone.trim_end());
    }
    let j = json(&ok(&["eval", &expr, "--json"], p));
    let items = j.as_array().unwrap_or_else(|| panic!("{j}"));
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["shape"], serde_json::json!([]));
    assert_eq!(items[0]["dtype"], "float64");
    assert_eq!(items[3]["shape"], serde_json::json!([3]));
    let sum = items[0]["data"].as_f64().unwrap_or(f64::NAN);
    let mean = items[1]["data"].as_f64().unwrap_or(f64::NAN);
    assert!((sum / 6000.0 - mean).abs() < 1e-12, "{sum} {mean}");
    assert_eq!(lines[0].parse::<f64>().ok(), Some(sum));
}

/// The scans (rows of the library's scan table) and `reshape`, as
/// functions and methods, over chunkings that carry across chunks; the
/// expected text is what NumPy prints for the same calls.
#[test]
fn scans_and_reshape_print_like_numpy() {
    let d = tmp();
    let p = d.path();
    let cases = [
        ("cumsum(arange(1, 6, chunks=2))", "[ 1  3  6 10 15]\n"),
        (
            "arange(12.).reshape(3, 4).rechunk((2, 3)).cumsum(axis=0)",
            "[[ 0.  1.  2.  3.]\n [ 4.  6.  8. 10.]\n [12. 15. 18. 21.]]\n",
        ),
        (
            "cumprod(arange(1., 7., chunks=2).reshape((2, 3)), axis=1)",
            "[[  1.   2.   6.]\n [  4.  20. 120.]]\n",
        ),
        (
            "x = array([1., nan, 2., nan, 3.]).rechunk(2); [nancumsum(x), x.nancumprod()]",
            "[1. 1. 3. 3. 6.]\n[1. 1. 2. 2. 6.]\n",
        ),
        // NumPy accumulates in the dtype asked for (int8 wraps).
        (
            "x = cumsum(ones((2, 2), dtype='i4'), dtype='i1'); [x, x.dtype]",
            "[1 2 3 4]\nint8\n",
        ),
        ("arange(6).reshape(2, 3).cumsum()", "[ 0  1  3  6 10 15]\n"),
        (
            "[arange(6).reshape(2, -1), reshape(arange(6, chunks=4), (3, 2)).T]",
            "[[0 1 2]\n [3 4 5]]\n[[0 2 4]\n [1 3 5]]\n",
        ),
        (
            "reshape(arange(6), newshape=(2, 3))",
            "[[0 1 2]\n [3 4 5]]\n",
        ),
        (
            "arange(24, chunks=5).reshape((2, 3, 4)).reshape(6, 4)[:, 1]",
            "[ 1  5  9 13 17 21]\n",
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(ok(&["eval", expr], p), want, "{expr}");
    }
    let e = fails(&["eval", "arange(6).reshape(4, 2)"], p, 2);
    assert!(e.contains("cannot reshape an array of size 6"), "{e}");
    let e = fails(&["eval", "arange(6).cumsum(axis=1)"], p, 2);
    assert!(e.contains("axis 1 is out of bounds"), "{e}");
}

/// `tan` is a function of the language because it is a row of the op
/// table; NumPy prints `np.tan(np.linspace(0, 1, 5))` (and its float32
/// version) exactly so.
#[test]
fn tan_prints_like_numpy() {
    let d = tmp();
    let p = d.path();
    assert_eq!(
        ok(&["eval", "tan(linspace(0, 1, 5))"], p),
        "[0.         0.25534192 0.54630249 0.93159646 1.55740772]\n"
    );
    assert_eq!(
        ok(&["eval", "tan(linspace(0, 1, 5).astype('f4'))"], p),
        "[0.         0.25534192 0.5463025  0.93159646 1.5574077 ]\n"
    );
    // NumPy names the op tables give the language, with their aliases.
    assert_eq!(ok(&["eval", "remainder(-7, 2)"], p), "1\n");
    assert_eq!(ok(&["eval", "mod(-7, 2)"], p), "1\n");
    // Rows added with the Python layer, as NumPy 2.4 prints them.
    assert_eq!(
        ok(&["eval", "arctan2(linspace(-1, 1, 3), 2)"], p),
        "[-0.46364761  0.          0.46364761]\n"
    );
    assert_eq!(
        ok(&["eval", "rint(linspace(0.5, 2.5, 3))"], p),
        "[0. 2. 2.]\n"
    );
    assert_eq!(
        ok(&["eval", "sign(arange(-2, 3))"], p),
        "[-1 -1  0  1  1]\n"
    );
}

/// `nanprod` is a function and a method of the language because it is a
/// row of the library's reduction table; NumPy (2.4) prints each of these
/// exactly so: NaN counts as 1 (all-NaN and empty give 1), integers give
/// int64, float32 stays float32.
#[test]
fn nanprod_prints_like_numpy() {
    let d = tmp();
    let p = d.path();
    let y = "y = where(arange(6) % 4 == 1, nan, linspace(0.5, 3, 6))";
    let eval = |e: &str| ok(&["eval", &format!("{y}; {e}")], p);
    assert_eq!(eval("y"), "[0.5 nan 1.5 2.  2.5 nan]\n");
    assert_eq!(eval("nanprod(y)"), "3.75\n");
    assert_eq!(
        eval("nanprod(stack([y, y * 2]), axis=1)"),
        "[ 3.75 60.  ]\n"
    );
    assert_eq!(
        eval("stack([y, y * 2]).nanprod(axis=0)"),
        "[ 0.5  1.   4.5  8.  12.5  1. ]\n"
    );
    assert_eq!(
        eval("nanprod(stack([y, y]).astype('f4'), axis=0)"),
        "[0.25 1.   2.25 4.   6.25 1.  ]\n"
    );
    assert_eq!(eval("nanprod(y.astype('f4')).dtype"), "float32\n");
    assert_eq!(eval("nanprod(full((2, 2), nan), axis=1)"), "[1. 1.]\n");
    assert_eq!(eval("nanprod(zeros((0, 3)), axis=0)"), "[1. 1. 1.]\n");
    assert_eq!(eval("nanprod(arange(1, 6, dtype='i4'))"), "120\n");
    assert_eq!(eval("nanprod(arange(1, 6, dtype='i4')).dtype"), "int64\n");
}

/// Scalar arithmetic is the array kernels' arithmetic: `//` and `%` of
/// floats agree with Python (and with the same expression on an array).
#[test]
fn scalar_floor_division_and_modulo_agree_with_python() {
    let d = tmp();
    let p = d.path();
    // Python: 7.0 // 0.1 == 69.0 and 7.0 % 0.1 == 0.09999999999999962.
    assert_eq!(ok(&["eval", "7.0 // 0.1"], p), "69.0\n");
    assert_eq!(ok(&["eval", "7.0 % 0.1"], p), "0.09999999999999962\n");
    assert_eq!(ok(&["eval", "-7.5 // 2"], p), "-4.0\n");
    assert_eq!(ok(&["eval", "-7.5 % 2"], p), "0.5\n");
    assert_eq!(ok(&["eval", "2.0 ** -1"], p), "0.5\n");
    assert_eq!(
        ok(&["eval", "(full((), 7.0) // 0.1).compute()"], p),
        "69.0\n"
    );
}

#[test]
fn convert_refuses_an_existing_output_and_leaves_it_untouched() {
    let d = tmp();
    let p = d.path();
    ok(&["eval", INPUT, "-o", "in.zarr"], p);
    ok(&["eval", "zeros((4, 4))", "-o", "out.zarr"], p);
    let before = ok(&["eval", "open('out.zarr').sum()"], p);
    let e = fails(&["convert", "in.zarr", "out.zarr"], p, 2);
    assert!(e.contains("out.zarr"), "{e}");
    assert_eq!(
        json(&ok(&["info", "out.zarr", "--json"], p))["shape"],
        serde_json::json!([4, 4])
    );
    assert_eq!(ok(&["eval", "open('out.zarr').sum()"], p), before);
    ok(&["convert", "in.zarr", "out.zarr", "--overwrite"], p);
    assert_eq!(
        json(&ok(&["info", "out.zarr", "--json"], p))["shape"],
        serde_json::json!([100, 60])
    );
}

#[test]
fn convert_with_select_chunks_and_codec() {
    let d = tmp();
    let p = d.path();
    ok(&["eval", INPUT, "-o", "in.zarr"], p);
    ok(
        &[
            "convert",
            "in.zarr",
            "out.zarr",
            "--select",
            "::2, 10:50:3",
            "--chunks",
            "7,5",
            "--codec",
            "zstd:3",
        ],
        p,
    );
    let info = json(&ok(&["info", "out.zarr", "--json"], p));
    assert_eq!(info["shape"], serde_json::json!([50, 14]));
    assert_eq!(info["chunks"], serde_json::json!([7, 5]));
    assert!(
        info["codec"].as_str().unwrap_or("").contains("zstd"),
        "{info}"
    );
    let got = ok(&["eval", "open('out.zarr')[:, :]", "--json"], p);
    let want = ok(&["eval", "open('in.zarr')[::2, 10:50:3]", "--json"], p);
    assert_eq!(json(&got), json(&want));
    // Text info names the essentials too.
    let text = ok(&["info", "out.zarr"], p);
    assert!(
        text.contains("(50, 14)") && text.contains("float64"),
        "{text}"
    );
    // A dtype change and an HDF5-free round trip through .npy.
    ok(&["convert", "out.zarr", "small.npy", "--dtype", "f4"], p);
    let info = json(&ok(&["info", "small.npy", "--json"], p));
    assert_eq!(info["dtype"], "float32");
}

#[test]
fn convert_stacks_a_glob() {
    let d = tmp();
    let p = d.path();
    for i in 0..3 {
        ok(
            &[
                "eval",
                &format!("full((4, 5), {i}.5)"),
                "-o",
                &format!("part{i}.npy"),
            ],
            p,
        );
    }
    ok(&["convert", "part*.npy", "all.zarr"], p);
    let info = json(&ok(&["info", "all.zarr", "--json"], p));
    assert_eq!(info["shape"], serde_json::json!([3, 4, 5]));
    assert_eq!(
        ok(&["eval", "open('all.zarr').mean(axis=(1, 2))"], p),
        "[0.5 1.5 2.5]\n"
    );
    assert_eq!(ok(&["eval", "stack('part*.npy').shape"], p), "(3, 4, 5)\n");
}

#[test]
fn plot_writes_a_png_of_the_expected_size() {
    let d = tmp();
    let p = d.path();
    ok(&["eval", INPUT, "-o", "in.zarr"], p);
    ok(&["plot", "in.zarr", "-o", "a.png", "--cmap", "magma"], p);
    let img = image::open(p.join("a.png")).unwrap_or_else(|e| panic!("{e}"));
    // 100 x 60 data, enlarged 3x to 300 x 180; colour bar and labels on the right.
    assert_eq!(
        (img.width(), img.height()),
        (10 + 180 + 20 + 20 + 4 + 3 + 54 + 10, 10 + 300 + 10)
    );
    // Downsampled: a 4000-long side with --max-size 500 gets stride 8.
    ok(
        &[
            "eval",
            "random.normal(0, 1, size=(4000, 30), chunks=(1000, 30), seed=2)",
            "-o",
            "tall.zarr",
        ],
        p,
    );
    ok(
        &[
            "plot",
            "tall.zarr",
            "-o",
            "b.png",
            "--max-size",
            "500",
            "--cmap",
            "RdBu_r",
        ],
        p,
    );
    let img = image::open(p.join("b.png")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(img.height(), 10 + 500 + 10);
    // A 2-D slice of a 3-D stack, and errors for non-2-D input.
    ok(
        &["convert", "in.zarr", "in3.zarr", "--select", "None, :, :"],
        p,
    );
    ok(
        &["plot", "in3.zarr", "-o", "c.png", "--select", "0, :, :"],
        p,
    );
    ok(
        &[
            "plot",
            "in3.zarr",
            "-o",
            "d.png",
            "--eval",
            "x.mean(axis=0)",
            "--cmap",
            "gray",
        ],
        p,
    );
    let e = fails(&["plot", "in3.zarr", "-o", "e.png"], p, 2);
    assert!(e.contains("--select"), "{e}");
    assert!(!p.join("e.png").exists());
}

/// Start a convert, interrupt it, resume it, and compare with a clean run.
#[test]
fn an_interrupted_convert_resumes() {
    let d = tmp();
    let p = d.path();
    ok(
        &[
            "eval",
            "random.normal(0, 1, size=(2000, 2000), chunks=(100, 100), seed=1)",
            "-o",
            "in.zarr",
        ],
        p,
    );
    let bin = assert_cmd::cargo::cargo_bin("ndstream");
    let args = [
        "--quiet",
        "convert",
        "in.zarr",
        "out.zarr",
        "--chunks",
        "50,50",
        "--codec",
        "gzip:9",
        "--threads",
        "1",
    ];
    let mut child = StdCommand::new(&bin)
        .current_dir(p)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    let interrupted = child.try_wait().ok().flatten().is_none();
    if interrupted {
        // SIGINT: the Ctrl-C path cancels the executor cleanly.
        let _ = StdCommand::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed();
    if interrupted {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(err.contains("--resume"), "{err}");
        let info = json(&ok(&["info", "out.zarr", "--json"], p));
        assert_eq!(info["incomplete"], true, "{info}");
        // Without --resume or --overwrite the partial output is refused.
        fails(&args[1..], p, 2);
    }
    let mut resume = args[1..].to_vec();
    resume.push("--resume");
    ok(&resume, p);
    let info = json(&ok(&["info", "out.zarr", "--json"], p));
    assert_eq!(info["incomplete"], false, "{info}");
    ok(
        &["convert", "in.zarr", "clean.zarr", "--chunks", "50,50"],
        p,
    );
    let check = "[x.sum(), x.std(), x.min(), x.max(), x[::7, ::13].sum(axis=0)]";
    let a = ok(&["eval", &format!("x = open('out.zarr'); {check}")], p);
    let b = ok(&["eval", &format!("x = open('clean.zarr'); {check}")], p);
    assert_eq!(a, b);
    assert!(elapsed < Duration::from_secs(60));
}

/// The binary without `--quiet` (stress and demo report on stdout).
fn loud(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::cargo_bin("ndstream")
        .unwrap_or_else(|e| panic!("{e}"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mib_after(out: &str, label: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in:\n{out}"))
}

#[test]
fn stress_reports_memory_against_the_budget() {
    let d = tmp();
    let dir = d.path().to_string_lossy().to_string();
    for op in ["sum", "mean-axis0", "stack-mean", "convert"] {
        let args = [
            "stress",
            "--input-size",
            "40MiB",
            "--memory",
            "24MiB",
            "--op",
            op,
            "--dir",
            &dir,
        ];
        let (code, out, err) = loud(&args, d.path());
        assert_eq!(code, 0, "{op}: {err}\n{out}");
        let peak = mib_after(&out, "peak reserved:");
        assert!(
            peak > 0.0 && peak <= 24.0,
            "{op}: peak reserved {peak} MiB\n{out}"
        );
        assert!(mib_after(&out, "peak RSS:") > 0.0, "{out}");
        assert!(out.contains("MB/s"), "{out}");
    }
    // Generated data is reduced in 32K-element (256 KiB) tiles: a 64 KiB
    // budget is refused up front.
    let (code, _, err) = loud(
        &["stress", "--input-size", "8MiB", "--memory", "64KiB"],
        d.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("memory budget"), "{err}");
    let (code, _, err) = loud(&["stress", "--input-size", "lots"], d.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--input-size"), "{err}");
}

#[test]
fn demo_runs_every_tutorial_step() {
    let d = tmp();
    let dir = d.path().join("demo");
    let dir_s = dir.to_string_lossy().to_string();
    let (code, out, err) = loud(&["demo", "--scale", "test", "--dir", &dir_s], d.path());
    assert_eq!(code, 0, "{err}\n{out}");
    for want in [
        "1. Blocked sum and mean",
        "agree: yes",
        "input size: 3.20 GB",
        "result: 200 values",
        "31 days of weather",
        "x[:, ::2, ::2]",
        "energy = ",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    for f in [
        "mean.png",
        "anomaly.png",
        "out/sub.zarr",
        "out/sub.h5",
        "random.hdf5",
        "weather-big/2014-01-31.hdf5",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // The stored subsample is the stack's [:, ::2, ::2].
    let a = ok(
        &[
            "eval",
            &format!("stack('{dir_s}/weather-big/*.hdf5:/t2m')[:, ::2, ::2].sum()"),
        ],
        d.path(),
    );
    let b = ok(
        &["eval", &format!("open('{dir_s}/out/sub.zarr').sum()")],
        d.path(),
    );
    assert_eq!(a, b);
    // A second run reuses the data.
    let (code, out, err) = loud(&["demo", "--scale", "test", "--dir", &dir_s], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("using existing"), "{out}");
}
