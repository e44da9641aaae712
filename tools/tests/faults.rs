//! The `ndstream` command under faults: killed at random moments and
//! resumed, two writers at once (ndstream and h5py), a full disk, a
//! read-only output directory, corrupt chunks, `--overwrite` of one
//! dataset inside an HDF5 file that holds others.
//!
//! Each case checks the exit status, that the error names the culprit, the
//! result against the input bit for bit, and that every file that existed
//! before and is not the output kept its bytes (a snapshot of the tree).
//! The full-disk and read-only cases mount a small tmpfs (root only; they
//! print why they skip otherwise); the h5py cases need a Python with
//! numpy and h5py (`$NDSTREAM_PYTHON`, else `python3`), and skip without.

#![allow(clippy::unwrap_used)]
// The h5py helpers serve the HDF5 cases only.
#![cfg_attr(not(feature = "hdf5"), allow(dead_code))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ndstream");

/// The input every case converts: 1 MiB of uniform f64 in 256 KiB chunks.
const INPUT: &str = "random.uniform(0, 1, size=(256, 512), chunks=(64, 512), seed=1)";

fn ndstream(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir).arg("--quiet").args(args);
    c.stdin(Stdio::null());
    c
}

/// Run to the end: (status, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out: Output = ndstream(dir, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) {
    let (code, err) = run(dir, args);
    assert_eq!(code, 0, "{args:?}: {err}");
}

/// A fresh directory holding `in.npy` (the input).
fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["eval", INPUT, "-o", "in.npy"]);
    d
}

/// The native bytes of a stored array (the whole array, computed).
fn bytes_of(dir: &Path, path: &str) -> Vec<u8> {
    let p = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", dir.display())
    };
    ndstream::open(&p)
        .and_then(|a| a.compute())
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .to_ne_bytes()
}

fn info_json(dir: &Path, path: &str) -> Option<serde_json::Value> {
    let out = ndstream(dir, &["info", "--json", path]).output().unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Every entry below `dir`: a file's length and a hash of its bytes.
///
/// A writer may be running while this walks (its temporary files come and
/// go, a finished output is swapped in): an entry that vanishes between
/// being listed and being read is left out, as if listed a moment later.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    use std::hash::{Hash, Hasher};
    fn gone<T>(r: std::io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{e}"),
        }
    }
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Some(entries) = gone(std::fs::read_dir(&d)) else {
            out.remove(&d);
            continue;
        };
        for e in entries {
            let Some(e) = gone(e) else { continue };
            let Some(t) = gone(e.file_type()) else {
                continue;
            };
            if t.is_dir() {
                out.insert(e.path(), (0, 0));
                stack.push(e.path());
            } else if t.is_file() {
                let Some(bytes) = gone(std::fs::read(e.path())) else {
                    continue;
                };
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(e.path(), (bytes.len() as u64, h.finish()));
            }
        }
    }
    out
}

/// Entries of `before` outside `output` that changed or went.
fn changed_besides(
    before: &BTreeMap<PathBuf, (u64, u64)>,
    dir: &Path,
    output: &str,
) -> Vec<PathBuf> {
    let now = tree(dir);
    let out = dir.join(output.split([':', '?']).next().unwrap());
    before
        .iter()
        .filter(|(p, _)| !p.starts_with(&out))
        .filter(|(p, h)| now.get(*p) != Some(h))
        .map(|(p, _)| p.clone())
        .collect()
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_keys()
        .filter(|p| p.display().to_string().contains(".ndstream-"))
        .collect()
}

/// A small deterministic generator for kill delays (the seed is printed).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("kill delays from seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A Python that imports numpy and h5py, or `None` (printing why).
fn python() -> Option<String> {
    let candidates = match std::env::var("NDSTREAM_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".to_string()],
    };
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy, h5py"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        eprintln!("skipped: no Python with numpy and h5py");
    }
    found
}

fn py(python: &str, dir: &Path, code: &str) -> String {
    let out = Command::new(python)
        .current_dir(dir)
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{code}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python that prints every dataset's values and every attribute of an
/// HDF5 file, skipping `skip`, as JSON (what must not change).
const DUMP: &str = r#"
import h5py, json, sys, numpy as np
def val(v):
    v = np.asarray(v)
    if v.dtype.kind in 'SUO':
        return [str(x) for x in v.ravel()]
    return [float(x) for x in v.ravel().astype('f8')]
out = {}
with h5py.File(sys.argv[1], 'r') as f:
    out['/'] = {k: val(v) for k, v in f.attrs.items()}
    def visit(name, obj):
        if ('/' + name).startswith(sys.argv[2]) or '.ndstream-new' in name:
            return
        d = {'attrs': {k: val(v) for k, v in obj.attrs.items() if not k.startswith('_ndstream')}}
        if isinstance(obj, h5py.Dataset):
            d['data'] = val(obj[()])
            d['dtype'] = str(obj.dtype)
        out[name] = d
    f.visititems(visit)
print(json.dumps(out, sort_keys=True))
"#;

fn dump(python: &str, dir: &Path, file: &str, skip: &str) -> String {
    let out = Command::new(python)
        .current_dir(dir)
        .args(["-c", DUMP, file, skip])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Remove a stored output (the file or directory its path names).
fn remove_output(dir: &Path, output: &str) {
    let p = dir.join(output.split([':', '?']).next().unwrap());
    if p.is_dir() {
        std::fs::remove_dir_all(&p).unwrap();
    } else if p.exists() {
        std::fs::remove_file(&p).unwrap();
    }
}

/// Kill `ndstream convert in.npy <output> <args> <mode>` (SIGKILL) after a
/// random delay below `max_ms`: `Some(status)` if it had finished first.
/// Where [`run_killed`] leaves the stderr of its last run: beside the work
/// directory `d`, not inside it, where the checks hash every file.
fn stderr_file(d: &Path) -> PathBuf {
    let mut name = d.file_name().unwrap().to_os_string();
    name.push(".stderr");
    d.with_file_name(name)
}

fn run_killed(
    d: &Path,
    output: &str,
    args: &[&str],
    mode: &str,
    max_ms: u64,
    rng: &mut Rng,
) -> Option<bool> {
    let mut a = vec!["convert", "in.npy", output];
    a.extend_from_slice(args);
    a.push(mode);
    let err = std::fs::File::create(stderr_file(d)).unwrap();
    let mut child: Child = ndstream(d, &a)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.below(max_ms)));
    let finished = child.try_wait().unwrap().map(|s| s.success());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    finished.or_else(|| status.code().map(|c| c == 0))
}

/// SIGKILL `ndstream convert in.npy <output>` at random moments, again and
/// again, and check what every kill leaves:
///
/// 1. A fresh write resumed after each kill (`--resume`), until 20 kills
///    have hit a running write: after each, the output reads as incomplete
///    (or, killed after `finish`, is an exact copy), and `check` holds;
///    when a run gets to the end, its output is an exact copy, and the
///    next write starts afresh (`output(k)` names the k-th: the same path,
///    removed, or a new dataset in the same HDF5 file).
/// 2. Five kills of an `--overwrite` of a finished output: the output is
///    still complete and exact after each.
///
/// At the end nothing of ndstream's temporaries is left.
fn kill_loop(
    output: impl Fn(usize) -> String,
    args: &[&str],
    setup: impl Fn(&Path),
    check: impl Fn(&Path),
) {
    let dir = workdir();
    let d = dir.path();
    setup(d);
    let want = bytes_of(d, "in.npy");
    let mut rng = Rng::new();
    // How long a whole write takes here (on a scratch output): kills land anywhere in it.
    let scratch = output(1000);
    let t0 = Instant::now();
    let mut a = vec!["convert", "in.npy", scratch.as_str()];
    a.extend_from_slice(args);
    ok(d, &a);
    let max_ms = t0.elapsed().as_millis() as u64 + 20;
    if !scratch.contains(".h5:") {
        remove_output(d, &scratch);
    }
    let exact = |out: &str| assert_eq!(bytes_of(d, out), want, "{out}: not an exact copy");
    let (mut k, mut kills, mut runs) = (0, 0, 0);
    let mut out = output(k);
    while kills < 20 {
        runs += 1;
        assert!(runs < 300, "{out}: only {kills} kills hit a running write");
        match run_killed(d, &out, args, "--resume", max_ms, &mut rng) {
            None => {
                kills += 1;
                if let Some(i) = info_json(d, &out) {
                    if i["incomplete"] == serde_json::json!(false) {
                        exact(&out);
                    }
                }
            }
            Some(true) => {
                exact(&out);
                assert_eq!(
                    info_json(d, &out).unwrap()["incomplete"],
                    serde_json::json!(false)
                );
                k += 1;
                let next = output(k);
                if next == out {
                    remove_output(d, &out);
                }
                out = next;
            }
            Some(false) => panic!(
                "{out}: a run that was not killed failed: {}",
                std::fs::read_to_string(stderr_file(d)).unwrap_or_default()
            ),
        }
        check(d);
    }
    let mut a = vec!["convert", "in.npy", out.as_str()];
    a.extend_from_slice(args);
    a.push("--resume");
    ok(d, &a);
    exact(&out);
    let mut overwrite_kills = 0;
    while overwrite_kills < 5 {
        runs += 1;
        assert!(
            runs < 400,
            "{out}: only {overwrite_kills} kills hit an overwrite"
        );
        if run_killed(d, &out, args, "--overwrite", max_ms, &mut rng).is_none() {
            overwrite_kills += 1;
        }
        exact(&out);
        assert_eq!(
            info_json(d, &out).unwrap()["incomplete"],
            serde_json::json!(false),
            "{out}"
        );
        check(d);
    }
    ok(d, &a);
    exact(&out);
    assert!(leftovers(d).is_empty(), "{out}: {:?}", leftovers(d));
    let _ = std::fs::remove_file(stderr_file(d));
}

#[test]
fn killed_zarr_v2_resumes_exactly() {
    kill_loop(
        |_| "o.zarr".to_string(),
        &[
            "--chunks",
            "8,32",
            "--zarr-version",
            "2",
            "--codec",
            "gzip:1",
        ],
        |_| {},
        |_| {},
    );
}

#[test]
fn killed_zarr_v3_resumes_exactly() {
    kill_loop(
        |_| "o.zarr".to_string(),
        &["--chunks", "8,32", "--codec", "zstd:1"],
        |_| {},
        |_| {},
    );
}

#[test]
fn killed_sharded_zarr_v3_in_a_group_resumes_exactly() {
    kill_loop(
        |_| "g.zarr/o".to_string(),
        &[
            "--chunks",
            "4,32",
            "--shard",
            "8,64",
            "--codec",
            "blosc:lz4:5",
        ],
        |_| {},
        |_| {},
    );
}

#[test]
fn killed_npy_resumes_exactly() {
    kill_loop(
        |_| "o.npy".to_string(),
        &["--chunks", "8,64"],
        |_| {},
        |_| {},
    );
}

#[test]
fn killed_raw_resumes_exactly() {
    kill_loop(
        |_| "o.bin?dtype=>f8&shape=256,512".to_string(),
        &["--chunks", "8,64"],
        |_| {},
        |_| {},
    );
}

#[cfg(feature = "hdf5")]
#[test]
fn killed_hdf5_resumes_exactly() {
    kill_loop(
        |_| "o.h5:/g/x".to_string(),
        &["--chunks", "8,32"],
        |_| {},
        |_| {},
    );
}

#[cfg(feature = "hdf5")]
#[test]
fn killed_hdf5_gzip_resumes_exactly() {
    kill_loop(
        |_| "o.h5:/x".to_string(),
        &["--chunks", "8,32", "--codec", "gzip:1"],
        |_| {},
        |_| {},
    );
}

/// A new dataset killed mid-write inside an HDF5 file that holds another:
/// the other keeps its values after every kill (read by ndstream and, with
/// h5py, by h5py with every attribute of the file), and the new one reads
/// as incomplete until a run finishes it.
#[cfg(feature = "hdf5")]
#[test]
fn killed_hdf5_dataset_inside_an_existing_file_resumes_exactly() {
    let python = python();
    let setup = |d: &Path| {
        ok(
            d,
            &[
                "eval",
                "random.uniform(0, 1, size=(64, 32), chunks=(16, 32), seed=2)",
                "-o",
                "e.h5:/keep",
            ],
        );
        std::fs::write(d.join("keep.bin"), bytes_of(d, "e.h5:/keep")).unwrap();
        if let Some(p) = &python {
            py(
                p,
                d,
                "import h5py\nwith h5py.File('e.h5', 'a') as f:\n    f.attrs['title'] = 'kept'\n    f['keep'].attrs['units'] = 'K'\n    f.create_group('g').attrs['n'] = 3",
            );
            std::fs::write(d.join("keep.json"), dump(p, d, "e.h5", "/x")).unwrap();
        }
    };
    let check = |d: &Path| {
        assert_eq!(
            bytes_of(d, "e.h5:/keep"),
            std::fs::read(d.join("keep.bin")).unwrap(),
            "the other dataset changed"
        );
        if let Some(p) = &python {
            let before = std::fs::read_to_string(d.join("keep.json")).unwrap();
            assert_eq!(dump(p, d, "e.h5", "/x"), before, "h5py reads another file");
        }
    };
    kill_loop(
        |k| format!("e.h5:/x{k}"),
        &["--chunks", "8,32", "--codec", "gzip:1"],
        setup,
        check,
    );
}

/// Start `ndstream convert big.npy <output> <args>` in the background and
/// wait until it has begun writing (`started` names a path that appears).
fn start_slow(d: &Path, output: &str, args: &[&str], started: &Path) -> Child {
    let mut a = vec!["convert", "big.npy", output, "--threads", "1"];
    a.extend_from_slice(args);
    let child = ndstream(d, &a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !started.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{output} never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

fn first_temporary(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.display().to_string().contains(".ndstream-new-"))
}

/// The input of the concurrency cases: large enough (32 MiB, gzip on one
/// thread) that a second command starts while the first writes.
fn big_workdir() -> tempfile::TempDir {
    let d = workdir();
    ok(
        d.path(),
        &[
            "eval",
            "random.uniform(0, 1, size=(4096, 1024), chunks=(256, 1024), seed=4)",
            "-o",
            "big.npy",
        ],
    );
    d
}

#[test]
fn a_second_writer_gets_in_use_and_changes_nothing() {
    let mut outputs = vec![
        ("o.zarr", vec!["--codec", "gzip:6", "--chunks", "64,1024"]),
        ("o.npy", vec!["--chunks", "64,1024"]),
    ];
    if cfg!(feature = "hdf5") {
        outputs.push(("o.h5:/x", vec!["--codec", "gzip:6", "--chunks", "64,1024"]));
    }
    for (output, args) in outputs {
        let dir = big_workdir();
        let d = dir.path();
        // An existing output, being overwritten by a slow first writer.
        let mut first_args = args.clone();
        first_args.push("--overwrite");
        ok(d, &["convert", "in.npy", output]);
        let old = bytes_of(d, output);
        let t0 = Instant::now();
        let mut first = start_slow(d, output, &first_args, d);
        while first_temporary(d).is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(2));
        }
        let before = tree(d);
        let mut raced = false;
        for mode in ["--overwrite", "--resume"] {
            let (code, err) = run(d, &["convert", "in.npy", output, mode]);
            // (On a very busy machine the first may end first: then the
            // second simply ran after it, which is no conflict to test.)
            // (The first may also have finished its output and be exiting.)
            let finished = first.try_wait().unwrap().is_some()
                || (code != 1 && bytes_of(d, output) == bytes_of(d, "big.npy"));
            if finished {
                eprintln!("{output}: the first writer ended before the second was tried");
                raced = true;
                break;
            }
            assert_eq!(code, 1, "{output} {mode}: {err}");
            assert!(err.contains("in use by another process"), "{err}");
            assert!(err.contains(output.split(':').next().unwrap()), "{err}");
            assert_eq!(bytes_of(d, output), old, "{output}: replaced early");
        }
        if raced {
            first.wait().unwrap();
            continue;
        }
        let now = tree(d);
        // The first writer's temporary changes as it writes; once it has
        // ended, its output has legitimately been replaced too (the second
        // writer's attempts checked the output's bytes above).
        let first_ended = first.try_wait().unwrap().is_some();
        let out_path = d.join(output.split(':').next().unwrap());
        let changed: Vec<_> = before
            .iter()
            .filter(|(p, h)| {
                let temporary = p.display().to_string().contains(".ndstream-new-");
                let replaced = first_ended && p.starts_with(&out_path);
                !temporary && !replaced && now.get(*p) != Some(h)
            })
            .collect();
        assert!(changed.is_empty(), "{output}: {changed:?}");
        assert!(
            first.wait().unwrap().success(),
            "{output}: the first writer failed"
        );
        assert_eq!(bytes_of(d, output), bytes_of(d, "big.npy"), "{output}");
        assert!(leftovers(d).is_empty(), "{output}: {:?}", leftovers(d));
    }
}

/// h5py and ndstream keep out of each other's way: a file h5py holds open
/// for writing is "in use" for ndstream (status 1, the file unchanged), and
/// h5py cannot open a file ndstream is writing.
#[cfg(feature = "hdf5")]
#[test]
fn h5py_and_ndstream_do_not_write_one_file_at_once() {
    let Some(python) = python() else { return };
    let dir = big_workdir();
    let d = dir.path();
    ok(d, &["convert", "in.npy", "e.h5:/keep"]);
    // h5py holds the file open for writing while ndstream tries.
    let mut holder = Command::new(&python)
        .current_dir(d)
        .args([
            "-c",
            "import h5py, sys, time\nf = h5py.File('e.h5', 'a')\nprint('open', flush=True)\nsys.stdin.read()\nf.close()",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut b = [0u8; 4];
        holder.stdout.as_mut().unwrap().read_exact(&mut b).unwrap();
        assert_eq!(&b, b"open");
    }
    let before = tree(d);
    for (output, mode) in [
        ("e.h5:/keep", "--overwrite"),
        ("e.h5:/y", "--resume"),
        ("e.h5:/z", "--overwrite"),
    ] {
        let (code, err) = run(d, &["convert", "in.npy", output, mode]);
        assert_eq!(code, 1, "{output} {mode}: {err}");
        assert!(err.contains("in use by another process"), "{err}");
        assert!(err.contains("e.h5"), "{err}");
    }
    assert_eq!(tree(d), before, "a refused write changed files");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());

    // ndstream writes while h5py tries to open the file.
    let mut writer = start_slow(
        d,
        "e.h5:/y",
        &["--codec", "gzip:6", "--chunks", "64,1024"],
        d,
    );
    let t0 = Instant::now();
    loop {
        let out = Command::new(&python)
            .current_dir(d)
            .args([
                "-c",
                "import h5py\ntry:\n    f = h5py.File('e.h5', 'a')\n    print('opened')\nexcept OSError as e:\n    print('refused', e)",
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        if writer.try_wait().unwrap().is_some() {
            panic!("the writer ended before h5py was tried");
        }
        if said.starts_with("refused") {
            assert!(said.contains("lock"), "{said}");
            break;
        }
        // Before the writer opened the file, h5py may still get in.
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "h5py opened a file ndstream writes: {said}"
        );
    }
    assert!(writer.wait().unwrap().success());
    assert_eq!(bytes_of(d, "e.h5:/y"), bytes_of(d, "big.npy"));
}

/// `--overwrite` of one dataset inside an HDF5 file touches nothing else:
/// h5py reads every other dataset and every attribute the same before and
/// after (in a netCDF-4 file too); a netCDF-3 file is refused untouched.
#[cfg(feature = "hdf5")]
#[test]
fn overwrite_of_one_dataset_keeps_the_rest_of_the_file() {
    let dir = workdir();
    let d = dir.path();
    let make = "import h5py, numpy as np
for name, nc in [('e.h5', False), ('n.nc', True)]:
    with h5py.File(name, 'w') as f:
        if nc:
            f.attrs['_NCProperties'] = 'version=2,netcdf=4.9.2,hdf5=1.14.3'
        f.attrs['title'] = 'kept'
        f['a'] = np.arange(100, dtype='i4').reshape(10, 10)
        f['a'].attrs['units'] = 'm'
        g = f.create_group('g')
        g.attrs['n'] = 3
        g.create_dataset('b', data=np.linspace(0, 1, 500), chunks=(50,), compression='gzip', shuffle=True)
        f['x'] = np.zeros((3, 3))
        f['x'].attrs['old'] = 1";
    let python = python();
    match &python {
        Some(p) => {
            py(p, d, make);
        }
        None => {
            ok(d, &["eval", "arange(100)", "-o", "e.h5:/a"]);
            ok(d, &["eval", "zeros((3, 3))", "-o", "e.h5:/x"]);
            std::fs::copy(d.join("e.h5"), d.join("n.nc")).unwrap();
        }
    }
    for file in ["e.h5", "n.nc"] {
        let before = python.as_ref().map(|p| dump(p, d, file, "/x"));
        let a_before = bytes_of(d, &format!("{file}:/a"));
        let out = format!("{file}:/x");
        ok(
            d,
            &[
                "convert",
                "in.npy",
                &out,
                "--overwrite",
                "--chunks",
                "64,64",
                "--codec",
                "gzip:1",
            ],
        );
        assert_eq!(bytes_of(d, &out), bytes_of(d, "in.npy"), "{out}");
        assert_eq!(bytes_of(d, &format!("{file}:/a")), a_before, "{file}:/a");
        if let (Some(p), Some(before)) = (&python, before) {
            assert_eq!(
                dump(p, d, file, "/x"),
                before,
                "{file}: h5py sees other changes"
            );
            let x = py(p, d, &format!("import h5py\nf = h5py.File('{file}', 'r')\nprint(f['x'].shape, sorted(k for k in f))"));
            assert_eq!(x.trim(), "(256, 512) ['a', 'g', 'x']", "{file}");
        }
    }
    // netCDF-3 (classic): not HDF5, so refused in every mode, never truncated.
    let classic = b"CDF\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    std::fs::write(d.join("c.nc"), classic).unwrap();
    for mode in ["--overwrite", "--resume"] {
        let (code, err) = run(d, &["convert", "in.npy", "c.nc:/x", mode]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("c.nc") && err.contains("not an HDF5 file"),
            "{err}"
        );
        assert_eq!(std::fs::read(d.join("c.nc")).unwrap(), classic);
    }
}

/// A small tmpfs mounted under a temporary directory (root only), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn remount_read_only(&self) {
        let s = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(s.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Free bytes on the file system of `dir` (from `df`).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// A full disk: status 1, an error naming the output, the chunk and the
/// reason; the output marked incomplete, everything else untouched;
/// `--resume` after space is freed (or `--overwrite`) gives an exact copy.
#[test]
fn a_full_disk_is_status_1_and_resumable() {
    // Room for the input, an output and its replacement (an overwrite
    // keeps the old output until the new one is complete).
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let mut outputs = vec![
        ("o.zarr", vec!["--codec", "zstd:1"]),
        ("v2.zarr", vec!["--zarr-version", "2"]),
        ("s.zarr", vec!["--chunks", "8,32", "--shard", "32,128"]),
        ("o.npy", vec![]),
        ("o.bin?dtype=<f8&shape=256,512", vec![]),
    ];
    if cfg!(feature = "hdf5") {
        outputs.push(("o.h5:/x", vec!["--codec", "gzip:1"]));
        outputs.push(("p.h5:/x", vec![]));
    }
    let src = workdir();
    for (output, args) in outputs {
        let d = fs.path().join("w");
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(src.path().join("in.npy"), d.join("in.npy")).unwrap();
        std::fs::write(d.join("other.txt"), b"must stay").unwrap();
        let before = tree(&d);
        let free = free_bytes(fs.path());
        // Room for about 40% of the 1 MiB output.
        let filler = fs.path().join("filler");
        std::fs::write(&filler, vec![7u8; free.saturating_sub(400 << 10) as usize]).unwrap();
        let mut a = vec!["convert", "in.npy", output, "--chunks", "16,64"];
        if args.contains(&"--chunks") {
            a.truncate(3);
        }
        a.extend(args.iter().copied());
        let (code, err) = run(&d, &a);
        assert_eq!(code, 1, "{output}: {err}");
        assert!(
            err.contains("No space left") || err.contains("errno = 28"),
            "{output}: {err}"
        );
        assert!(err.contains(output), "{output}: {err}");
        assert!(
            err.contains("chunk") || err.contains("metadata"),
            "{output}: {err}"
        );
        assert!(changed_besides(&before, &d, output).is_empty(), "{output}");
        if let Some(i) = info_json(&d, output) {
            assert_eq!(i["incomplete"], serde_json::json!(true), "{output}");
        }
        // Still no room: the resume fails the same way, changing nothing else.
        let mut resume = a.clone();
        resume.push("--resume");
        let (code, err) = run(&d, &resume);
        assert_eq!(code, 1, "{output} resumed on a full disk: {err}");
        std::fs::remove_file(&filler).unwrap();
        ok(&d, &resume);
        assert_eq!(bytes_of(&d, output), bytes_of(&d, "in.npy"), "{output}");
        assert_eq!(
            info_json(&d, output).unwrap()["incomplete"],
            serde_json::json!(false)
        );
        // A full disk under --overwrite: the finished output stays.
        let free = free_bytes(fs.path());
        std::fs::write(&filler, vec![7u8; free.saturating_sub(400 << 10) as usize]).unwrap();
        let mut over = a.clone();
        over.push("--overwrite");
        let (code, err) = run(&d, &over);
        assert_eq!(code, 1, "{output} overwritten on a full disk: {err}");
        assert_eq!(bytes_of(&d, output), bytes_of(&d, "in.npy"), "{output}");
        assert!(leftovers(&d).is_empty(), "{output}: {:?}", leftovers(&d));
        std::fs::remove_file(&filler).unwrap();
        ok(&d, &over);
        assert_eq!(bytes_of(&d, output), bytes_of(&d, "in.npy"), "{output}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A plan that replaces an output, on a disk that fills: the job fails
/// (status 1, "No space left"), the output and every other file keep
/// their bytes, and once there is room `run` again finishes it with the
/// new values. A Zarr array fills the disk while its tasks write the
/// staged array; an HDF5 dataset while the last stage copies the work
/// array into the file.
#[test]
fn a_full_disk_under_a_plan_that_overwrites_leaves_the_old_output() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    // (output, room left for the job)
    let mut outputs = vec![("old.zarr", 400u64 << 10)];
    if cfg!(feature = "hdf5") {
        // Room for the work array (1 MiB, uncompressed), not the copy.
        outputs.push(("old.h5:/x", 1400 << 10));
    }
    let src = workdir();
    for (output, room) in outputs {
        let d = fs.path().join("w");
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(src.path().join("in.npy"), d.join("in.npy")).unwrap();
        std::fs::write(d.join("other.txt"), b"must stay").unwrap();
        ok(&d, &["convert", "in.npy", output, "--chunks", "16,64"]);
        let before = tree(&d);
        let free = free_bytes(fs.path());
        let filler = fs.path().join("filler");
        std::fs::write(&filler, vec![7u8; free.saturating_sub(room) as usize]).unwrap();
        let job = [
            "eval",
            "open('in.npy') * 2",
            "-o",
            output,
            "--overwrite",
            "--chunks",
            "16,64",
        ];
        let mut plan = vec!["plan", "-o", "p.json"];
        plan.extend(job);
        ok(&d, &plan);
        let (code, err) = run(&d, &["run", "p.json", "--processes", "2"]);
        assert_eq!(code, 1, "{output}: {err}");
        assert!(
            err.contains("No space left") || err.contains("errno = 28"),
            "{output}: {err}"
        );
        let now = tree(&d);
        let changed: Vec<_> = before
            .iter()
            .filter(|(p, h)| now.get(*p) != Some(h))
            .map(|(p, _)| p.clone())
            .collect();
        assert!(changed.is_empty(), "{output}: {changed:?}");
        assert_eq!(bytes_of(&d, output), bytes_of(&d, "in.npy"), "{output}");
        if output.contains(".h5") {
            // The tasks were done: the copy filled the disk.
            let out = ndstream(&d, &["status", "p.json", "--json"])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let last = v["stages"].as_array().unwrap().len() - 1;
            assert_eq!(v["next_stage"], serde_json::json!(last), "{v}");
        }
        std::fs::remove_file(&filler).unwrap();
        ok(&d, &["run", "p.json"]);
        let twice: Vec<u8> = bytes_of(&d, "in.npy")
            .chunks(8)
            .flat_map(|b| (f64::from_ne_bytes(b.try_into().unwrap()) * 2.0).to_ne_bytes())
            .collect();
        assert_eq!(bytes_of(&d, output), twice, "{output}");
        assert!(leftovers(&d).is_empty(), "{output}: {:?}", leftovers(&d));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A read-only output directory: status 1, the output named, nothing changed.
#[test]
fn a_read_only_output_directory_is_status_1() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let src = workdir();
    std::fs::copy(src.path().join("in.npy"), fs.path().join("in.npy")).unwrap();
    ok(
        fs.path(),
        &["convert", "in.npy", "old.zarr", "--chunks", "64,64"],
    );
    fs.remount_read_only();
    let before = tree(fs.path());
    let mut outputs = vec!["new.zarr", "old.zarr", "o.npy", "g.zarr/x"];
    if cfg!(feature = "hdf5") {
        outputs.push("o.h5:/x");
    }
    for output in outputs {
        for mode in ["--overwrite", "--resume"] {
            let (code, err) = run(
                fs.path(),
                &["convert", "in.npy", output, mode, "--chunks", "64,64"],
            );
            assert_eq!(code, 1, "{output} {mode}: {err}");
            assert!(err.contains(output.split(':').next().unwrap()), "{err}");
            assert!(err.contains("Read-only file system"), "{output}: {err}");
            assert_eq!(tree(fs.path()), before, "{output}");
        }
    }
}

/// A corrupt chunk of every codec: status 1, the error names the chunk
/// and the file, and the partial output is marked incomplete.
#[test]
fn corrupt_chunks_name_the_chunk() {
    let dir = workdir();
    let d = dir.path();
    for (name, args, chunk_file) in [
        ("z.zarr", vec!["--codec", "zstd:3"], "z.zarr/c/1/0"),
        ("g.zarr", vec!["--codec", "gzip:3"], "g.zarr/c/1/0"),
        ("b.zarr", vec!["--codec", "blosc:lz4:5"], "b.zarr/c/1/0"),
        (
            "v2.zarr",
            vec!["--codec", "zstd:3", "--zarr-version", "2"],
            "v2.zarr/1.0",
        ),
        (
            "s.zarr",
            vec![
                "--chunks", "32,64", "--shard", "64,128", "--codec", "zstd:1",
            ],
            "s.zarr/c/1/0",
        ),
    ] {
        let mut a = vec!["convert", "in.npy", name, "--chunks", "64,128"];
        if args.contains(&"--chunks") {
            a.truncate(3);
        }
        a.extend(args.iter().copied());
        ok(d, &a);
        // Cut short (zstd frames carry no checksum here, so a flipped byte
        // may decode to other values; a cut never decodes). A gzip stream
        // has a CRC, so there a flipped byte must fail too.
        let f = d.join(chunk_file);
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        if name == "g.zarr" {
            for b in &mut bytes[n / 2..n / 2 + 8] {
                *b ^= 0x5a;
            }
        } else {
            bytes.truncate(n / 2);
        }
        std::fs::write(&f, &bytes).unwrap();
        let out = format!("copy-{name}");
        let (code, err) = run(d, &["convert", name, &out]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(chunk_file), "{name}: {err}");
        assert!(
            err.contains("chunk (") || err.contains("chunk ["),
            "{name}: {err}"
        );
        if let Some(i) = info_json(d, &out) {
            assert_eq!(i["incomplete"], serde_json::json!(true), "{out}");
        }
    }
    #[cfg(feature = "hdf5")]
    {
        let fixture =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hdf5/corrupt.h5");
        for (ds, chunk, what) in [
            ("/gzip", "chunk (1,)", "deflate"),
            ("/fletcher", "chunk (2,)", "fletcher32"),
        ] {
            let src = format!("{}:{ds}", fixture.display());
            let (code, err) = run(d, &["convert", &src, "copy.npy", "--overwrite"]);
            assert_eq!(code, 1, "{ds}: {err}");
            assert!(err.contains(chunk) && err.contains(what), "{ds}: {err}");
            assert!(err.contains("corrupt.h5"), "{err}");
        }
        // Shuffle + deflate as ndstream writes them, with h5py to find a chunk.
        if let Some(p) = python() {
            ok(
                d,
                &[
                    "convert", "in.npy", "s.h5:/x", "--codec", "gzip:3", "--chunks", "64,128",
                ],
            );
            let at = py(
                &p,
                d,
                "import h5py\nf = h5py.File('s.h5', 'r')\ni = f['x'].id.get_chunk_info_by_coord((64, 128))\nprint(i.byte_offset, i.size)",
            );
            let mut it = at.split_whitespace().map(|v| v.parse::<u64>().unwrap());
            let (off, size) = (it.next().unwrap(), it.next().unwrap());
            let mut bytes = std::fs::read(d.join("s.h5")).unwrap();
            for b in &mut bytes[(off + size / 2) as usize..(off + size / 2 + 16) as usize] {
                *b ^= 0x5a;
            }
            std::fs::write(d.join("s.h5"), &bytes).unwrap();
            let (code, err) = run(d, &["convert", "s.h5:/x", "copy2.npy"]);
            assert_eq!(code, 1, "{err}");
            assert!(err.contains("(1, 1)") && err.contains("s.h5"), "{err}");
        }
    }
}

/// A plan's tasks on a full disk: `ndstream run` fails with status 1 naming
/// the cause, the input and every other file keep their bytes, the output
/// stays marked incomplete; after space is freed, `run` again finishes it
/// with the input's bytes.
#[test]
fn a_plan_on_a_full_disk_is_status_1_and_runs_again() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let src = workdir();
    let d = fs.path().join("w");
    std::fs::create_dir(&d).unwrap();
    std::fs::copy(src.path().join("in.npy"), d.join("in.npy")).unwrap();
    std::fs::write(d.join("other.txt"), b"must stay").unwrap();
    let before = tree(&d);
    ok(
        &d,
        &[
            "plan", "-o", "job.json", "convert", "in.npy", "o.zarr", "--chunks", "16,64",
        ],
    );
    let free = free_bytes(fs.path());
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![7u8; free.saturating_sub(400 << 10) as usize]).unwrap();
    let (code, err) = run(&d, &["run", "job.json", "--processes", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("No space left") || err.contains("errno = 28"),
        "{err}"
    );
    assert!(changed_besides(&before, &d, "o.zarr").is_empty());
    assert_eq!(
        info_json(&d, "o.zarr").unwrap()["incomplete"],
        serde_json::json!(true)
    );
    std::fs::remove_file(&filler).unwrap();
    ok(&d, &["run", "job.json"]);
    assert_eq!(bytes_of(&d, "o.zarr"), bytes_of(&d, "in.npy"));
    assert_eq!(
        info_json(&d, "o.zarr").unwrap()["incomplete"],
        serde_json::json!(false)
    );
    assert!(changed_besides(&before, &d, "o.zarr").is_empty());
}
