//! The tutorial workloads that need no files (W2, W4), timed in-process.
//!
//! `cargo bench --bench tutorial -- [w2|w2-slice|w2-small-chunks|w4|all] [--runs N]`
//!
//! Prints, per workload: the median wall time of N runs, the budget's peak
//! reservation, and the process's peak RSS so far (VmHWM). For a clean RSS
//! figure per workload, run one workload per process (benches/peer/run.sh
//! does, under `/usr/bin/time -v`).

use std::time::Instant;

/// The allocator the `ndstream` binary uses (see tools/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ndstream::{random, Executor, IndexItem};

fn w2(chunk: u64, slice: bool) -> ndstream::Result<Vec<f64>> {
    let x = random::normal(10.0, 0.1, &[20000, 20000], [chunk, chunk], 0)?;
    let mut y = x.mean(Some(0))?;
    if slice {
        y = y.index(&[IndexItem::slice(None, None, 100)])?;
    }
    let exec = Executor::builder().memory(150 << 20).build()?;
    let r = exec.compute(&y)?;
    Ok(vec![
        r.to_f64_vec().iter().sum::<f64>() / r.len() as f64,
        exec.budget().peak() as f64,
    ])
}

/// The tutorial's Lennard-Jones potential: broadcast distances, `lj`, `nansum / 2`.
fn w4(n: usize) -> ndstream::Result<Vec<f64>> {
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(2) as u64;
    // The tutorial's cluster: normal(0, radius=500, (n, 3)) - 0.5 (make_cluster(7000, radius=500)).
    let pos =
        (&random::normal(0.0, 500.0, &[n as u64, 3], [n as u64, 3], 1981)? - 0.5).compute()?;
    let x = ndstream::Array::from_block(pos, [n as u64 / cores, 3].into())?;
    let l = x.index(&[IndexItem::FULL, IndexItem::NewAxis, IndexItem::FULL])?;
    let r = x.index(&[IndexItem::NewAxis, IndexItem::FULL, IndexItem::FULL])?;
    let d = &l - &r;
    let r2 = (&d * &d).sum(Some(2))?;
    let sr6 = (1.0 / &r2).pow(3.0)?;
    let pot = 4.0 * (&(&sr6 * &sr6) - &sr6);
    let e = pot.nansum(None)? / 2.0;
    let exec = Executor::builder().memory(256 << 20).build()?;
    let v = exec.compute(&e)?.to_f64_vec()[0];
    Ok(vec![v, exec.budget().peak() as f64])
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let which: Vec<&str> = args
        .iter()
        .map(|s| s.as_str())
        .filter(|a| a.starts_with('w') || *a == "all")
        .collect();
    let all = which.is_empty() || which.contains(&"all");
    type Work = Box<dyn Fn() -> ndstream::Result<Vec<f64>>>;
    let workloads: Vec<(&str, Work)> = vec![
        ("w2", Box::new(|| w2(1000, false))),
        ("w2-slice", Box::new(|| w2(1000, true))),
        ("w2-small-chunks", Box::new(|| w2(25, false))),
        ("w4", Box::new(|| w4(7000))),
    ];
    println!(
        "{:<18} {:>10} {:>14} {:>12}  result",
        "workload", "median s", "peak reserved", "VmHWM"
    );
    for (name, f) in workloads {
        if !all && !which.contains(&name) {
            continue;
        }
        let mut times = Vec::new();
        let mut last = vec![];
        for _ in 0..runs {
            let t = Instant::now();
            match f() {
                Ok(v) => last = v,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    std::process::exit(1);
                }
            }
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{:<18} {:>10.3} {:>11.1} MiB {:>8.1} MiB  {:.17}",
            name,
            times[times.len() / 2],
            last.get(1).copied().unwrap_or(0.0) / 1048576.0,
            ndstream::peak_rss() as f64 / 1048576.0,
            last.first().copied().unwrap_or(f64::NAN)
        );
    }
}
