//! `ndstream plan`, `run-task`, `run`, `status` and `slurm`: a `convert`
//! or `eval -o` planned once ([`PlanFile`]) and run as numbered tasks by
//! any number of processes, here or on other machines that share the file
//! system, or reach the same object store (output and `--work-dir` in a
//! bucket).
//!
//! - `plan -o job.json convert SRC out.zarr ...` writes the plan and
//!   creates the output (marked incomplete until the last stage) and the
//!   work directory `job.json.work`. An HDF5, `.npy` or raw output is
//!   written by the last stage, from a Zarr array the tasks write in the
//!   work directory.
//! - `run-task job.json --stage S --tasks A..B` (or `--part I/K`) runs
//!   tasks of one stage in this process; tasks already done are skipped.
//! - `run job.json --processes N` is the reference runner: a pool of
//!   local `run-task` processes, stage after stage. Run it again after an
//!   interruption (a killed process, Ctrl-C) and it finishes the job.
//! - `status job.json` counts the tasks done per stage.
//! - `slurm job.json > job.sh` writes an `sbatch` script: one job array
//!   per stage, chained with `--dependency=afterok`.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ndstream::plan::PlanFile;
use ndstream::{human_bytes, Executor};
use serde_json::json;

use crate::cli::{PlanArgs, PlanJob, RunArgs, RunTaskArgs, SlurmArgs, StatusArgs};
use crate::config::{usage, ExecConfig};

/// Run `plan`.
///
/// # Errors
/// Bad options or inputs, an output a plan cannot write, a plan
/// the budget refuses (exit 2); failures creating the output (exit 1).
pub fn plan(args: &PlanArgs, quiet: bool) -> anyhow::Result<()> {
    let (a, opts, dst, exec_args) = match &args.job {
        PlanJob::Convert(c) => {
            let (a, o) = super::convert::prepare(c)?;
            (a, o, c.dst.clone(), &c.exec)
        }
        PlanJob::Eval(e) => {
            let dst = e
                .output
                .clone()
                .ok_or_else(|| usage("plan eval: name the output with -o DST"))?;
            let (a, o) = super::eval::prepare_store(e)?;
            (a, o, dst, &e.exec)
        }
    };
    let cfg = ExecConfig::from_args(exec_args, quiet)?;
    let exec = Executor::builder()
        .memory(cfg.memory)
        .threads(cfg.threads)
        .build()
        .map_err(|e| usage(format!("--memory: {e}")))?;
    let plan = PlanFile::create(
        &exec,
        &a,
        &dst,
        &opts,
        &args.output,
        args.work_dir.as_deref(),
    )?;
    if !quiet {
        let tasks: u64 = plan.stages.iter().map(|s| s.tasks).sum();
        eprintln!(
            "planned {} -> {}: {} stage(s), {tasks} task(s), each under {}; run it with `ndstream run {}`",
            args.output.display(),
            plan.output,
            plan.stages.len(),
            human_bytes(plan.memory),
            args.output.display()
        );
    }
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<PlanFile> {
    Ok(PlanFile::load(path)?)
}

/// `A..B` or `N` as a range of a stage of `total` tasks.
fn parse_tasks(s: &str, total: u64) -> anyhow::Result<Range<u64>> {
    let num = |t: &str| -> anyhow::Result<u64> {
        t.trim()
            .parse::<u64>()
            .map_err(|_| usage(format!("--tasks: `{s}` is not A..B or N")))
    };
    let r = match s.split_once("..") {
        Some((a, b)) => num(a)?..num(b)?,
        None => {
            let n = num(s)?;
            n..n.saturating_add(1)
        }
    };
    if r.start > r.end || r.end > total {
        return Err(usage(format!(
            "--tasks: {s} is not inside the stage's tasks 0..{total}"
        )));
    }
    Ok(r)
}

/// Part `I/K` of `total` tasks: the `I`-th of `K` ranges as equal as can be.
fn parse_part(s: &str, total: u64) -> anyhow::Result<Range<u64>> {
    let bad = || usage(format!("--part: `{s}` is not I/K with 0 <= I < K"));
    let (i, k) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let k: u64 = k.trim().parse().map_err(|_| bad())?;
    if k == 0 || i >= k {
        return Err(bad());
    }
    Ok(part(i, k, total))
}

fn part(i: u64, k: u64, total: u64) -> Range<u64> {
    let at = |j: u64| ((u128::from(total) * u128::from(j)) / u128::from(k)) as u64;
    at(i)..at(i + 1)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run `run-task`.
///
/// # Errors
/// A bad plan, stage or range (exit 2); an earlier stage not done (exit
/// 2); read/write failures (exit 1).
pub fn run_task(args: &RunTaskArgs, quiet: bool) -> anyhow::Result<()> {
    let plan = load(&args.plan)?;
    let st = plan.stages.get(args.stage).ok_or_else(|| {
        usage(format!(
            "--stage: the plan has stages 0..{}, not {}",
            plan.stages.len(),
            args.stage
        ))
    })?;
    let range = match (&args.tasks, &args.part) {
        (Some(t), _) => parse_tasks(t, st.tasks)?,
        (None, Some(p)) => parse_part(p, st.tasks)?,
        (None, None) => 0..st.tasks,
    };
    let threads = match args.threads {
        Some(0) => return Err(usage("--threads: must be at least 1")),
        Some(n) => n,
        None => default_threads(),
    };
    let t = Instant::now();
    let r = plan.run_task(args.stage, range.clone(), threads)?;
    if !quiet {
        eprintln!(
            "stage {} ({}) tasks {}..{}: {} run, {} already done, in {:.2} s",
            args.stage,
            st.kind.name(),
            range.start,
            range.end,
            r.ran,
            r.skipped,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Run `run`: every stage's tasks, in ranges, on a pool of `run-task`
/// processes of this executable.
///
/// # Errors
/// A bad plan or options (exit 2); a task process that failed (its exit
/// status 2 is passed on as 2, anything else is 1), after the processes
/// already running have finished.
pub fn run(args: &RunArgs, quiet: bool) -> anyhow::Result<()> {
    if args.processes == 0 {
        return Err(usage("--processes: must be at least 1"));
    }
    let threads = match args.threads {
        Some(0) => return Err(usage("--threads: must be at least 1")),
        Some(n) => n,
        None => (default_threads() / args.processes).max(1),
    };
    let plan = load(&args.plan)?;
    let status = plan.status()?;
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let mut ran_stages = 0;
    for (s, st) in plan.stages.iter().enumerate() {
        if status.stages[s].0 == st.tasks {
            continue;
        }
        // A few ranges per process, so a slow one does not hold the stage.
        let n = (args.processes as u64 * 4).min(st.tasks).max(1);
        let ranges: VecDeque<Range<u64>> = (0..n)
            .map(|i| part(i, n, st.tasks))
            .filter(|r| !r.is_empty())
            .collect();
        pool(&exe, &plan.path, s, ranges, args.processes, threads)?;
        ran_stages += 1;
    }
    if !quiet {
        eprintln!(
            "{}: {} complete ({} stage(s) run on {} process(es) in {:.2} s)",
            args.plan.display(),
            plan.output,
            ran_stages,
            args.processes,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Run `ranges` of stage `stage` on at most `processes` child processes at
/// once; the first failure stops new ones starting.
fn pool(
    exe: &Path,
    plan: &Path,
    stage: usize,
    ranges: VecDeque<Range<u64>>,
    processes: usize,
    threads: usize,
) -> anyhow::Result<()> {
    let queue = Mutex::new(ranges);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let fail = |e: anyhow::Error| {
        failed.store(true, Ordering::SeqCst);
        let mut g = first_error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..processes {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let Some(r) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    return;
                };
                let out = Command::new(exe)
                    .arg("--quiet")
                    .arg("run-task")
                    .arg(plan)
                    .args(["--stage", &stage.to_string()])
                    .args(["--tasks", &format!("{}..{}", r.start, r.end)])
                    .args(["--threads", &threads.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .output();
                match out {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => {
                        let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                        let how = match o.status.code() {
                            Some(c) => format!("exit status {c}"),
                            None => "killed by a signal".to_string(),
                        };
                        let msg = format!(
                            "stage {stage} tasks {}..{} failed ({how}): {why}; run the plan again to finish it",
                            r.start, r.end
                        );
                        fail(if o.status.code() == Some(2) {
                            usage(msg)
                        } else {
                            anyhow::anyhow!(msg)
                        });
                    }
                    Err(e) => fail(anyhow::Error::new(e).context(format!(
                        "cannot start a task process ({})",
                        exe.display()
                    ))),
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Run `status`.
///
/// # Errors
/// A plan that cannot be read, or whose work directory is not its own.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let plan = load(&args.plan)?;
    let st = plan.status()?;
    if args.json {
        let stages: Vec<_> = plan
            .stages
            .iter()
            .zip(&st.stages)
            .map(|(s, &(done, all))| {
                json!({"kind": s.kind.name(), "tasks": all, "done": done, "memory": s.memory, "what": s.what})
            })
            .collect();
        println!(
            "{}",
            json!({"plan": plan.path, "output": plan.output, "complete": st.complete,
                   "next_stage": st.next_stage(), "stages": stages})
        );
        return Ok(());
    }
    println!(
        "{} -> {}: {}",
        plan.path.display(),
        plan.output,
        if st.complete {
            "complete".to_string()
        } else {
            match st.next_stage() {
                Some(s) => format!("incomplete, next stage {s}"),
                None => "incomplete".to_string(),
            }
        }
    );
    for (i, (s, &(done, all))) in plan.stages.iter().zip(&st.stages).enumerate() {
        println!(
            "stage {i} {:<8} {done:>8}/{all:<8} needs {:>10}  {}",
            s.kind.name(),
            human_bytes(s.memory),
            s.what
        );
    }
    Ok(())
}

/// `s` quoted for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run `slurm`: print the script.
///
/// # Errors
/// A plan that cannot be read; bad options.
pub fn slurm(args: &SlurmArgs) -> anyhow::Result<()> {
    if args.array_size == 0 {
        return Err(usage("--array-size: must be at least 1"));
    }
    if args.cpus == 0 {
        return Err(usage("--cpus: must be at least 1"));
    }
    let plan = load(&args.plan)?;
    print!("{}", slurm_script(&plan, args, &std::env::current_exe()?));
    Ok(())
}

/// The script `slurm` prints.
fn slurm_script(plan: &PlanFile, args: &SlurmArgs, exe: &Path) -> String {
    let plan_path = plan.path.to_string_lossy();
    // The plan's budget and the process around it (the binary, the
    // allocator, the inputs' metadata).
    let mem_mib = plan.memory.div_ceil(1 << 20) + 256;
    let extra = args
        .sbatch_options
        .as_deref()
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str("#!/bin/bash\n");
    out.push_str(&format!(
        "# Runs the ndstream plan {plan_path} on Slurm: one job array per stage,\n\
         # each started after the one before it succeeded (afterok). Submit it with\n\
         # `bash` on a login node. `ndstream status {plan_path}` shows progress;\n\
         # after a failure, submitting it again finishes the job (tasks already\n\
         # done are skipped).\n"
    ));
    out.push_str("set -euo pipefail\n");
    out.push_str("dep=\"\"\n");
    for (s, st) in plan.stages.iter().enumerate() {
        let elements = st.tasks.min(args.array_size).max(1);
        let command = format!(
            "exec {} --quiet run-task {} --stage {s} --part \"$SLURM_ARRAY_TASK_ID/{elements}\" --threads {}",
            sh_quote(&exe.to_string_lossy()),
            sh_quote(&plan_path),
            args.cpus
        );
        out.push_str(&format!(
            "# stage {s}: {} ({} task(s) in {elements} element(s))\n",
            st.kind.name(),
            st.tasks
        ));
        out.push_str(&format!(
            "job=$(sbatch --parsable $dep --job-name=ndstream-{s} --array=0-{} --cpus-per-task={} --mem={mem_mib}M{extra} --wrap={})\n",
            elements - 1,
            args.cpus,
            sh_quote(&command)
        ));
        out.push_str("dep=\"--dependency=afterok:${job%%;*}\"\n");
    }
    out.push_str("echo \"submitted; the last stage is job ${job%%;*}\"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_tasks_once_in_order() {
        for total in [0u64, 1, 7, 100, 1001] {
            for k in [1u64, 2, 3, 8, 1000, 2000] {
                let mut next = 0;
                for i in 0..k {
                    let r = part(i, k, total);
                    assert_eq!(r.start, next);
                    assert!(r.end >= r.start);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn task_ranges_parse_and_are_checked() {
        assert_eq!(parse_tasks("3..9", 10).unwrap(), 3..9);
        assert_eq!(parse_tasks("4", 10).unwrap(), 4..5);
        assert_eq!(parse_tasks("0..0", 0).unwrap(), 0..0);
        for bad in ["9..3", "0..11", "10", "a..b", "", "-1..2"] {
            assert!(parse_tasks(bad, 10).is_err(), "{bad}");
        }
        assert_eq!(parse_part("2/4", 10).unwrap(), 5..7);
        for bad in ["4/4", "1/0", "x/2", "1", "1/2/3"] {
            assert!(parse_part(bad, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
