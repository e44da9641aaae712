//! Plans run as tasks (`ndstream plan`, `run-task`, `run`, `status`,
//! `slurm`): every runner writes the bytes the in-process `convert` or
//! `eval -o` writes (the tutorial's workloads in small: a stacked mean, a
//! strided subset to Zarr, an HDF5 stack to sharded Zarr v3, the
//! Lennard-Jones energy, nested staged reductions); `kill -9` at random
//! moments then `run` again finishes the job with the same bytes; what a
//! plan cannot do is refused with exit 2 before anything is created.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ndstream")
}

fn ndstream(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("--quiet")
        .args(args)
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

fn refused(args: &[&str], dir: &Path, words: &str) {
    let before = tree(dir);
    let (code, _, err) = ndstream(args, dir);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(err.contains(words), "{args:?}: {err}");
    assert_eq!(tree(dir), before, "{args:?} changed files");
}

/// Every file below `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn same_store(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "{} and {} hold different files",
        a.display(),
        b.display()
    );
    for (k, v) in &ta {
        assert!(
            v == &tb[k],
            "{} differs between {} and {}",
            k.display(),
            a.display(),
            b.display()
        );
    }
}

/// Three small "days" of HDF5 data and a Zarr input, as the tutorial's.
fn inputs(dir: &Path) {
    for day in 0..3 {
        ok(
            &[
                "eval",
                &format!(
                    "random.normal(280, 10, size=(120, 90), chunks=(50, 40), seed={day}).astype('f4')"
                ),
                "-o",
                &format!("day{day}.h5:/t2m"),
                "--chunks",
                "50,40",
            ],
            dir,
        );
    }
    ok(
        &[
            "eval",
            "random.normal(3, 2, size=(300, 200), chunks=(70, 60), seed=7)",
            "-o",
            "x.zarr",
        ],
        dir,
    );
}

const LJ: &str = "c = random.normal(0, 500, size=(300, 3), chunks=(75, 3), seed=1981) - 0.5; \
    d = c[:, None, :] - c[None, :, :]; r2 = (d * d).sum(axis=2); sr6 = (1 / r2) ** 3; \
    nansum(4 * (sr6 * sr6 - sr6)) / 2";

/// (name, the job's arguments after `plan -o P` with DST for its output).
fn jobs() -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (
            "w3a-mean",
            s(&["eval", "stack([open('day0.h5:/t2m'), open('day1.h5:/t2m'), open('day2.h5:/t2m')]).mean(axis=0)", "-o", "DST"]),
        ),
        (
            "w3c-strided",
            s(&["convert", "day*.h5:/t2m", "DST", "--select", ":, ::2, ::2", "--codec", "zstd:3"]),
        ),
        (
            "w5a-sharded",
            s(&["convert", "day*.h5:/t2m", "DST", "--chunks", "1,50,40", "--shard", "1,100,80", "--codec", "zstd:3"]),
        ),
        ("lj", s(&["eval", LJ, "-o", "DST"])),
        (
            "standardised-v2",
            s(&["eval", "x = open('x.zarr'); (x - x.mean(axis=0)) / x.std()", "-o", "DST", "--zarr-version", "2", "--memory", "8MiB"]),
        ),
    ]
}

fn with_dst(args: &[String], dst: &str) -> Vec<String> {
    args.iter()
        .map(|a| {
            if a == "DST" {
                dst.to_string()
            } else {
                a.clone()
            }
        })
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_process_runner_and_the_slurm_script_write_the_in_process_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    // A stand-in for sbatch: runs every element of the array one after
    // the other with SLURM_ARRAY_TASK_ID set, as Slurm's job array would.
    let fake = dir.join("bin");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(
        fake.join("sbatch"),
        "#!/bin/bash\nset -e\nwrap=\"\"; array=\"\"\nfor a in \"$@\"; do case \"$a\" in --wrap=*) wrap=\"${a#--wrap=}\";; --array=*) array=\"${a#--array=}\";; esac; done\n\
         echo \"$@\" >> \"$SBATCH_LOG\"\nlast=${array#*-}\nfor i in $(seq ${array%-*} $last); do SLURM_ARRAY_TASK_ID=$i bash -c \"$wrap\" >&2; done\necho \"$RANDOM;cluster\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        fake.join("sbatch"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for (name, job) in jobs() {
        let reference = format!("{name}-ref.zarr");
        // The in-process run of the same command.
        let mut args = with_dst(&job, &reference);
        ok(&strs(&args), dir);
        // The process pool.
        let out = format!("{name}-pool.zarr");
        let plan = format!("{name}-pool.json");
        args = vec!["plan".into(), "-o".into(), plan.clone()];
        args.extend(with_dst(&job, &out));
        ok(&strs(&args), dir);
        let status = ok(&["status", &plan], dir);
        assert!(status.contains("incomplete, next stage 0"), "{status}");
        // The output exists, marked incomplete, before any task runs.
        assert!(dir.join(&out).join(".ndstream-incomplete").exists());
        ok(&["run", &plan, "--processes", "3"], dir);
        same_store(&dir.join(&out), &dir.join(&reference));
        let status = ok(&["status", &plan, "--json"], dir);
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["complete"], true, "{status}");
        // A finished plan runs again as a no-op.
        ok(&["run", &plan], dir);
        same_store(&dir.join(&out), &dir.join(&reference));

        // The Slurm script, its sbatch calls run by the stand-in.
        let out = format!("{name}-slurm.zarr");
        let plan = format!("{name}-slurm.json");
        args = vec!["plan".into(), "-o".into(), plan.clone()];
        args.extend(with_dst(&job, &out));
        ok(&strs(&args), dir);
        let script = ok(&["slurm", &plan, "--array-size", "4"], dir);
        std::fs::write(dir.join("job.sh"), &script).unwrap();
        let log = dir.join(format!("{name}-sbatch.log"));
        let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
        let o = Command::new("bash")
            .arg("job.sh")
            .env("PATH", path)
            .env("SBATCH_LOG", &log)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        same_store(&dir.join(&out), &dir.join(&reference));
        // One job array per stage, each after the one before.
        let calls = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = calls.lines().collect();
        let stages: serde_json::Value =
            serde_json::from_str(&ok(&["status", &plan, "--json"], dir)).unwrap();
        assert_eq!(lines.len(), stages["stages"].as_array().unwrap().len());
        assert!(!lines[0].contains("--dependency"));
        assert!(lines[1..]
            .iter()
            .all(|l| l.contains("--dependency=afterok:")));
    }
}

/// Kill the process group of `ndstream run` at a moment in `0..max_ms`.
fn run_and_kill(plan: &str, dir: &Path, after_ms: u64) -> bool {
    let mut child = Command::new(bin())
        .args(["--quiet", "run", plan, "--processes", "2", "--threads", "1"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    std::thread::sleep(Duration::from_millis(after_ms));
    let finished = child.try_wait().unwrap().is_some_and(|s| s.success());
    // The group may be gone already (the run finished).
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    finished
}

/// The arrays at `a` and `b` hold the same values: the same Zarr store,
/// file for file, or for another format (HDF5) the same `.npy` converted
/// from each.
fn same_array(dir: &Path, a: &str, b: &str) {
    if a.ends_with(".zarr") {
        return same_store(&dir.join(a), &dir.join(b));
    }
    ok(&["convert", a, "a.npy", "--overwrite"], dir);
    ok(&["convert", b, "b.npy", "--overwrite"], dir);
    assert!(
        std::fs::read(dir.join("a.npy")).unwrap() == std::fs::read(dir.join("b.npy")).unwrap(),
        "{a} and {b} differ"
    );
}

/// Run `expr` into `ref.zarr` (or `ref.h5:/x` where `h5`) in one process,
/// then plan it again and again, `kill -9` each run at pseudo-random
/// moments under `20 + spread` ms (wider where the reference took longer
/// than `want × spread / 2`) and run the plan once more, until `want`
/// kills have landed: every plan must end with the reference's bytes.
/// Returns the plan's status JSON and the stage each kill left next.
fn kill_and_resume(
    dir: &Path,
    expr: &str,
    store: &[&str],
    want: usize,
    spread: u64,
    h5: bool,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let dst = |name: &str| {
        if h5 {
            format!("{name}.h5:/x")
        } else {
            format!("{name}.zarr")
        }
    };
    let reference = dst("ref");
    let mut args = vec!["eval", expr, "-o", &reference];
    args.extend(store);
    let started = std::time::Instant::now();
    ok(&args, dir);
    // On a slower machine or build the moments spread wider: `want` kills
    // at moments averaging a `want`th of the job land all through it.
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let spread = spread.max(2 * took / want as u64);
    // A cheap pseudo-random sequence of moments.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    let mut plans = 0;
    let mut states = Vec::new();
    let mut status = serde_json::Value::Null;
    // Plan again until enough kills have landed (a fast machine finishes a
    // job in fewer); every plan must end with the reference's bytes.
    while kills < want {
        assert!(plans < 10, "{kills} kills in {plans} plans");
        let (plan, out) = (format!("job{plans}.json"), dst(&format!("out{plans}")));
        let mut args = vec!["plan", "-o", &plan, "eval", expr, "-o", &out];
        args.extend(store);
        ok(&args, dir);
        status = serde_json::from_str(&ok(&["status", &plan, "--json"], dir)).unwrap();
        for _ in 0..60 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if run_and_kill(&plan, dir, 20 + seed % spread) {
                break;
            }
            kills += 1;
            let v: serde_json::Value =
                serde_json::from_str(&ok(&["status", &plan, "--json"], dir)).unwrap();
            states.push(v["next_stage"].clone());
            if v["complete"] == true {
                break;
            }
        }
        ok(&["run", &plan], dir);
        same_array(dir, &out, &reference);
        plans += 1;
    }
    (status, states)
}

#[test]
fn kill_9_at_random_moments_then_run_again_finishes_with_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough (a few seconds) for 20 kills at moments under 0.22 s.
    let expr = "x = random.normal(3, 2, size=(4000, 2000), chunks=(100, 100), seed=3); \
                y = x - x.mean(axis=0); y / y.std()";
    let (_, mut states) = kill_and_resume(
        tmp.path(),
        expr,
        &["--chunks", "50,200", "--codec", "zstd:1"],
        20,
        200,
        false,
    );
    // Kills landed in more than one stage.
    states.sort_by_key(|v| v.as_i64());
    states.dedup();
    assert!(states.len() > 1, "{states:?}");
}

/// A store's root reduction over many chunks is folded into the write
/// tasks (no partials, no merge stage): each write task reduces its own
/// output chunk. Killed mid-stage and run again, it ends with the
/// in-process bytes.
#[test]
fn kill_9_during_a_root_reduction_folded_into_the_writes_then_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let expr = "x = random.normal(3, 2, size=(3000, 6400), chunks=(100, 100), seed=5); \
                x.std(axis=0)";
    let (status, _) = kill_and_resume(
        tmp.path(),
        expr,
        &["--chunks", "100", "--codec", "zstd:1"],
        8,
        300,
        false,
    );
    let kinds: Vec<&str> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "a write stage and a finish: {status}");
    // The column standard deviations of N(3, 2) over 3,000 rows.
    let out = ok(
        &["eval", "x = open('ref.zarr'); [x.min(), x.max()]"],
        tmp.path(),
    );
    let v: Vec<f64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(
        v.len() == 2 && v.iter().all(|s| (1.85..2.15).contains(s)),
        "{out}"
    );
}

/// An HDF5 output, written by the last stage from the tasks' work array:
/// killed in any stage, the copy included, and run again, it ends with
/// the in-process values; the last stage's copy is long enough here
/// (tens of MB, gzip) for kills to land in it.
#[test]
fn kill_9_of_a_plan_to_hdf5_then_run_again_finishes_with_the_same_values() {
    let tmp = tempfile::tempdir().unwrap();
    let expr = "x = random.normal(3, 2, size=(3000, 2000), chunks=(100, 100), seed=3); \
                x - x.mean(axis=0)";
    let (status, mut states) = kill_and_resume(
        tmp.path(),
        expr,
        &["--chunks", "100,250", "--codec", "gzip:1"],
        12,
        400,
        true,
    );
    let last = status["stages"].as_array().unwrap().len() - 1;
    assert!(
        states.iter().any(|s| s.as_u64() == Some(last as u64)),
        "{states:?}"
    );
    states.dedup();
    assert!(states.len() > 1, "{states:?}");
}

/// `plan --resume` finishes outputs that an in-process convert left
/// incomplete (it failed on a damaged input chunk): a Zarr array, whose
/// tasks keep the chunks the convert stored (the same files) and write
/// the rest, and an HDF5 dataset, whose copy keeps them; both end as a
/// clean convert's. A resume of another layout is refused with nothing
/// changed.
#[test]
fn a_plan_resumes_an_interrupted_in_process_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    let job = |dst: &'static str| -> Vec<&'static str> {
        vec![
            "convert", "x.zarr", dst, "--chunks", "50,50", "--codec", "gzip:1",
        ]
    };
    ok(&job("ref.zarr"), dir);
    ok(&job("ref.h5:/x"), dir);
    // The input's last chunk, damaged: the converts fail part way.
    let chunk = dir.join("x.zarr/c/4/3");
    let good = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, b"not a zstd frame").unwrap();
    for dst in ["out.zarr", "out.h5:/x"] {
        let (code, _, err) = ndstream(&job(dst), dir);
        assert_eq!(code, 1, "{dst}: {err}");
        assert!(err.contains("--resume"), "{dst}: {err}");
    }
    std::fs::write(&chunk, good).unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", "out.zarr", "--json"], dir)).unwrap();
    assert_eq!(info["incomplete"], true, "{info}");
    // The chunk files the convert stored (each written to a temporary and
    // renamed into place: one written again is another inode).
    let inodes = |root: &Path| -> BTreeMap<PathBuf, u64> {
        use std::os::unix::fs::MetadataExt;
        tree(root)
            .into_keys()
            .filter(|k| k.starts_with("c"))
            .map(|k| {
                let ino = std::fs::metadata(root.join(&k)).unwrap().ino();
                (k, ino)
            })
            .collect()
    };
    let stored = inodes(&dir.join("out.zarr"));
    let all = tree(&dir.join("ref.zarr"))
        .into_keys()
        .filter(|k| k.starts_with("c"))
        .count();
    assert!(
        !stored.is_empty() && stored.len() < all,
        "{} of {all} chunks stored",
        stored.len()
    );
    // Another chunking is not the interrupted write's.
    refused(
        &[
            "plan", "-o", "p.json", "convert", "x.zarr", "out.zarr", "--chunks", "40,40",
            "--codec", "gzip:1", "--resume",
        ],
        dir,
        "cannot resume",
    );
    for (plan, dst) in [("p.json", "out.zarr"), ("q.json", "out.h5:/x")] {
        let mut args = vec!["plan", "-o", plan];
        args.extend(job(dst));
        args.push("--resume");
        ok(&args, dir);
        if dst == "out.zarr" {
            // A second writer (an in-process resume holds the array's
            // directory exclusively): the plan's tasks fail as a runtime
            // conflict naming the output, and no byte of it changes.
            let held = std::fs::File::open(dir.join("out.zarr")).unwrap();
            held.try_lock().unwrap();
            let before = tree(&dir.join("out.zarr"));
            let (code, _, err) = ndstream(&["run", plan, "--processes", "2"], dir);
            assert_eq!(code, 1, "{err}");
            assert!(
                err.contains("out.zarr") && err.contains("in use by another process"),
                "{err}"
            );
            assert!(
                tree(&dir.join("out.zarr")) == before,
                "the held output changed"
            );
            drop(held);
        }
        ok(&["run", plan, "--processes", "2"], dir);
    }
    same_store(&dir.join("out.zarr"), &dir.join("ref.zarr"));
    let after = inodes(&dir.join("out.zarr"));
    for (k, ino) in &stored {
        assert_eq!(after[k], *ino, "{} was written again", k.display());
    }
    same_array(dir, "out.h5:/x", "ref.h5:/x");
    for dst in ["out.zarr", "out.h5:/x"] {
        let info: serde_json::Value =
            serde_json::from_str(&ok(&["info", dst, "--json"], dir)).unwrap();
        assert_eq!(info["incomplete"], false, "{dst}: {info}");
    }
}

#[test]
fn two_copies_of_a_task_range_at_once_write_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    let job = [
        "convert", "x.zarr", "DST", "--chunks", "10,10", "--codec", "zstd:3",
    ];
    fn with<'a>(job: &[&'a str], dst: &'a str) -> Vec<&'a str> {
        job.iter()
            .map(|a| if *a == "DST" { dst } else { a })
            .collect()
    }
    ok(&with(&job, "ref.zarr"), dir);
    let mut args = vec!["plan", "-o", "job.json"];
    args.extend(with(&job, "out.zarr"));
    ok(&args, dir);
    let spawn = || {
        Command::new(bin())
            .args(["--quiet", "run-task", "job.json", "--stage", "0"])
            .current_dir(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // While the tasks' shared hold is gone, a plain writer may have it; but
    // the output is not complete before the finish stage.
    assert!(dir.join("out.zarr/.ndstream-incomplete").exists());
    ok(&["run-task", "job.json", "--stage", "1"], dir);
    same_store(&dir.join("out.zarr"), &dir.join("ref.zarr"));
}

#[test]
fn what_a_plan_cannot_do_is_refused_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    refused(
        &[
            "plan",
            "-o",
            "p.json",
            "convert",
            "x.zarr",
            "s3://b/out.h5:/x",
        ],
        dir,
        "HDF5, .npy and raw files on disk",
    );
    std::fs::write(dir.join("notes.h5"), b"mine").unwrap();
    refused(
        &[
            "plan",
            "-o",
            "p.json",
            "convert",
            "x.zarr",
            "notes.h5:/x",
            "--overwrite",
        ],
        dir,
        "is not an HDF5 file",
    );
    refused(
        &["plan", "-o", "p.json", "convert", "x.zarr", "x.zarr"],
        dir,
        "x.zarr",
    );
    // Nor with --overwrite or --resume: an input is never written, Zarr
    // or HDF5.
    for mode in ["--overwrite", "--resume"] {
        refused(
            &[
                "plan",
                "-o",
                "p.json",
                "eval",
                "open('x.zarr') * 2",
                "-o",
                "x.zarr",
                mode,
            ],
            dir,
            "would overwrite the input",
        );
        refused(
            &[
                "plan",
                "-o",
                "p.json",
                "convert",
                "day0.h5:/t2m",
                "day0.h5:/t2m",
                mode,
            ],
            dir,
            "would overwrite the input",
        );
    }
    refused(
        &[
            "plan",
            "-o",
            "x.zarr/p.json",
            "convert",
            "x.zarr",
            "out.zarr",
        ],
        dir,
        "x.zarr",
    );
    refused(
        &[
            "plan",
            "-o",
            "p.json",
            "--work-dir",
            "out.zarr/w",
            "convert",
            "x.zarr",
            "out.zarr",
        ],
        dir,
        "out.zarr",
    );
    refused(
        &["plan", "-o", "p.json", "eval", "open('x.zarr').sum()"],
        dir,
        "-o DST",
    );
    refused(
        &[
            "plan",
            "-o",
            "p.json",
            "eval",
            "x = open('x.zarr'); x - x.mean()",
            "-o",
            "o.zarr",
            "--memory",
            "1KiB",
        ],
        dir,
        "budget",
    );
    // An existing plan file is never replaced.
    std::fs::write(dir.join("p.json"), "mine").unwrap();
    refused(
        &["plan", "-o", "p.json", "convert", "x.zarr", "out.zarr"],
        dir,
        "exists",
    );
    std::fs::remove_file(dir.join("p.json")).unwrap();
    // A work directory that cannot be made (below a file): the output
    // made before it is taken away again.
    std::fs::write(dir.join("a-file"), "mine").unwrap();
    refused(
        &[
            "plan",
            "-o",
            "p.json",
            "--work-dir",
            "a-file/w",
            "convert",
            "x.zarr",
            "new/out.zarr",
        ],
        dir,
        "cannot create the work directory: Not a directory (os error 20)",
    );
    assert!(!dir.join("new").exists() && !dir.join("p.json").exists());
    std::fs::remove_file(dir.join("a-file")).unwrap();

    // Stages out of order, ranges outside a stage, a work directory of
    // another plan.
    ok(
        &[
            "plan",
            "-o",
            "p.json",
            "eval",
            "x = open('x.zarr'); x - x.mean()",
            "-o",
            "o.zarr",
        ],
        dir,
    );
    refused(&["run-task", "p.json", "--stage", "1"], dir, "stage 0");
    refused(&["run-task", "p.json", "--stage", "2"], dir, "stage 1");
    refused(&["run-task", "p.json", "--stage", "9"], dir, "stages 0..4");
    refused(
        &["run-task", "p.json", "--stage", "0", "--tasks", "0..9999"],
        dir,
        "not inside",
    );
    refused(
        &["run-task", "p.json", "--stage", "0", "--part", "3/3"],
        dir,
        "I/K",
    );
    refused(&["run", "p.json", "--processes", "0"], dir, "--processes");
    refused(&["status", "nothing.json"], dir, "nothing.json");
    std::fs::write(dir.join("p.json.work/plan-id"), "another").unwrap();
    refused(&["run-task", "p.json", "--stage", "0"], dir, "another plan");
    // A plain writer cannot take the plan's output meanwhile.
    let (code, _, err) = ndstream(&["convert", "x.zarr", "o.zarr"], dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
}

/// `plan --overwrite` of an array that stands: killed at random moments,
/// the array at the output is always the old one or the new one whole
/// (the staged array is swapped in by the last stage), and `run` again
/// ends with the bytes of an in-process `eval -o` (no staging directory
/// or plan id left).
#[test]
fn a_plan_that_overwrites_shows_the_old_array_or_the_new_one_never_a_mixture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let expr = "x = random.normal(3, 2, size=(3000, 2000), chunks=(100, 100), seed=3); \
                y = x - x.mean(axis=0); y / y.std()";
    let store = ["--chunks", "50,200", "--codec", "zstd:1"];
    let mut args = vec!["eval", expr, "-o", "ref.zarr"];
    args.extend(store);
    ok(&args, dir);
    let new = tree(&dir.join("ref.zarr"));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    for round in 0..3 {
        ok(
            &[
                "eval",
                "arange(4000, dtype='int32') * 2",
                "-o",
                "out.zarr",
                "--overwrite",
            ],
            dir,
        );
        let old = tree(&dir.join("out.zarr"));
        let plan = format!("p{round}.json");
        let mut args = vec![
            "plan",
            "-o",
            &plan,
            "eval",
            expr,
            "-o",
            "out.zarr",
            "--overwrite",
        ];
        args.extend(store);
        ok(&args, dir);
        assert_eq!(
            tree(&dir.join("out.zarr")),
            old,
            "planning changed the old array"
        );
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if run_and_kill(&plan, dir, 20 + seed % 400) {
                break;
            }
            kills += 1;
            let mut now = tree(&dir.join("out.zarr"));
            // Between the swap and the end of the last stage the new
            // array holds the plan's id.
            now.remove(Path::new(".ndstream-plan-id"));
            assert!(now == old || now == new, "a mixture after a kill");
        }
        ok(&["run", &plan], dir);
        same_store(&dir.join("out.zarr"), &dir.join("ref.zarr"));
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("ndstream-plan"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    assert!(kills > 0);
}

/// The fsync calls `ndstream ARGS` makes in `dir`, counted by strace, or
/// `None` where strace is not installed (`.ci/run` installs it).
fn fsyncs(args: &[&str], dir: &Path) -> Option<usize> {
    let log = dir.join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(bin())
        .arg("--quiet")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    Some(
        text.lines()
            .filter(|l| {
                (l.contains("fsync(") || l.contains("fdatasync(")) && !l.contains("resumed>")
            })
            .count(),
    )
}

/// `--sync` reaches every task of a plan: each chunk a task writes, and
/// its record, is flushed (a file and its directory entry each) before
/// the task counts as done; without it nothing is.
#[test]
fn a_plan_with_sync_flushes_each_task_before_recording_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    let convert = [
        "convert", "x.zarr", "OUT", "--chunks", "100,50", "--codec", "zstd:3",
    ];
    let with = |out: &str, plan: &str, extra: &[&'static str]| {
        let mut a = vec!["plan", "-o", plan];
        a.extend(convert.iter().map(|&s| if s == "OUT" { out } else { s }));
        a.extend(extra);
        ok(&a, dir);
    };
    with("synced.zarr", "synced.json", &["--sync"]);
    with("plain.zarr", "plain.json", &[]);
    let stages = |plan: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join(plan)).unwrap())
            .unwrap()["stages"]
            .clone()
    };
    let tasks = stages("synced.json")[0]["tasks"].as_u64().unwrap();
    assert_eq!(stages("synced.json")[0]["kind"], "write");
    assert!(tasks >= 4, "{tasks}");
    let task_range = format!("0..{tasks}");
    let run = |plan: &'static str| {
        fsyncs(
            &["run-task", plan, "--stage", "0", "--tasks", &task_range],
            dir,
        )
    };
    let (Some(synced), Some(plain)) = (run("synced.json"), run("plain.json")) else {
        eprintln!("strace is not installed: the flushes are not counted");
        return;
    };
    // Per task: one chunk file and its directory, one record and its directory.
    assert!(
        synced >= 4 * tasks as usize,
        "{synced} fsyncs for {tasks} tasks"
    );
    assert_eq!(plain, 0);
    ok(&["run", "synced.json", "--processes", "2"], dir);
    ok(&["run", "plain.json", "--processes", "2"], dir);
    assert_eq!(
        tree(&dir.join("synced.zarr")),
        tree(&dir.join("plain.zarr"))
    );
}

/// The generated script submitted to a real Slurm (a single node on
/// loopback, started by `scripts/slurm.sh`; `.ci/run` starts it and sets
/// `NDSTREAM_SLURM=1`). Without it the test says so and passes.
#[test]
fn a_real_slurm_runs_the_generated_script_to_the_same_bytes() {
    if std::env::var("NDSTREAM_SLURM").as_deref() != Ok("1") {
        eprintln!("NDSTREAM_SLURM is not 1: no Slurm to submit to (scripts/slurm.sh starts one)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    let expr = "x = open('x.zarr'); (x - x.mean(axis=0)) / x.std()";
    ok(
        &[
            "eval", expr, "-o", "ref.zarr", "--chunks", "50,50", "--codec", "zstd:3",
        ],
        dir,
    );
    ok(
        &[
            "plan", "-o", "job.json", "eval", expr, "-o", "out.zarr", "--chunks", "50,50",
            "--codec", "zstd:3", "--memory", "64MiB",
        ],
        dir,
    );
    let script = ok(&["slurm", "job.json", "--array-size", "3"], dir);
    std::fs::write(dir.join("job.sh"), &script).unwrap();
    let o = Command::new("bash")
        .arg("job.sh")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["status", "job.json", "--json"], dir)).unwrap();
        if v["complete"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm did not finish the plan in 300 s: {v}\n{}",
            String::from_utf8_lossy(&Command::new("squeue").output().unwrap().stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    same_store(&dir.join("out.zarr"), &dir.join("ref.zarr"));
}
