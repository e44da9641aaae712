//! `ndstream stress`: prove a workload of any size runs under a memory ceiling.
//!
//! Builds a synthetic out-of-core workload of `--input-size` (generated in
//! memory chunk by chunk, or written to a temporary directory first for the
//! on-disk operations), runs it under `--memory`, and reports throughput,
//! the budget's peak reservation and the process's peak RSS (VmHWM). Exits
//! with status 1 if the peak RSS exceeds the budget plus a fixed overhead
//! (the binary, thread stacks, allocator slack), so it can gate CI jobs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ndstream::formats::{Codec, WriteMode};
use ndstream::{parse_bytes, random, stack, store, Array, Executor, StoreOptions};

use crate::config::usage;

/// Fixed allowance above the budget for RSS: code, stacks, allocator slack.
pub const RSS_OVERHEAD: u64 = 96 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StressOp {
    /// Sum of a generated array.
    Sum,
    /// Mean over axis 0 of a generated array.
    MeanAxis0,
    /// Stack of on-disk Zarr arrays, mean over the stack axis.
    StackMean,
    /// Zarr (zstd:1) to Zarr (zstd:1) conversion with rechunking.
    Convert,
}

#[derive(Debug, Args)]
pub struct StressArgs {
    /// Total input size (e.g. 8GiB, 2GB, 1e9).
    #[arg(long, default_value = "8GiB")]
    pub input_size: String,
    /// Memory budget (e.g. 256MiB).
    #[arg(long, default_value = "256MiB")]
    pub memory: String,
    /// The workload.
    #[arg(long, value_enum, default_value = "sum")]
    pub op: StressOp,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where on-disk workloads put their data (default: a temporary directory, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// Rows of 4096 f64 (32 KiB) making up about `bytes`.
fn generated(bytes: u64, seed: u64) -> Result<Array> {
    let cols = 4096u64;
    let rows = (bytes / 8 / cols).max(1);
    // 1 MiB chunks: 32 rows x 4096.
    Ok(random::normal(0.0, 1.0, &[rows, cols], [32, cols], seed)?)
}

pub fn run(args: &StressArgs, quiet: bool) -> Result<()> {
    let input = parse_bytes(&args.input_size).map_err(|e| usage(format!("--input-size: {e}")))?;
    if input == 0 {
        return Err(usage("--input-size: must be positive"));
    }
    let memory = parse_bytes(&args.memory).map_err(|e| usage(format!("--memory: {e}")))?;
    if memory == 0 {
        return Err(usage("--memory: the budget must be positive"));
    }
    let mut b = Executor::builder().memory(memory);
    match args.threads {
        Some(0) => return Err(usage("--threads: must be at least 1")),
        Some(t) => b = b.threads(t),
        None => {}
    }
    let exec = b.build()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let mut prepare_secs = 0.0;
    let t0;
    let (what, result): (String, String) = match args.op {
        StressOp::Sum | StressOp::MeanAxis0 => {
            let x = generated(input, 1)?;
            t0 = Instant::now();
            if args.op == StressOp::Sum {
                let v = exec.compute(&x.sum(None)?)?.to_f64_vec()[0];
                (format!("sum of {:?} normals", x.shape()), format!("{v}"))
            } else {
                let m = exec.compute(&x.mean(Some(0))?)?;
                let v = m.to_f64_vec();
                let avg = v.iter().sum::<f64>() / v.len() as f64;
                (
                    format!("mean(axis=0) of {:?} normals", x.shape()),
                    format!("{} values, average {avg}", v.len()),
                )
            }
        }
        StressOp::StackMean | StressOp::Convert => {
            let files = 8u64;
            let per = (input / files).max(8 << 10);
            let p = Instant::now();
            let opts = StoreOptions {
                codec: Some(Codec::Zstd { level: 1 }),
                mode: WriteMode::Overwrite,
                ..StoreOptions::default()
            };
            let mut paths = Vec::new();
            for i in 0..files {
                let x = generated(per, 100 + i)?;
                let path = dir.join(format!("part-{i:02}.zarr"));
                let path = path.to_string_lossy().to_string();
                store(&exec, &x, &path, &opts)?;
                paths.push(path);
            }
            prepare_secs = p.elapsed().as_secs_f64();
            let arrays = paths
                .iter()
                .map(|p| ndstream::open(p))
                .collect::<ndstream::Result<Vec<_>>>()?;
            let x = stack(&arrays, 0)?;
            exec.budget().reset_peak();
            t0 = Instant::now();
            if args.op == StressOp::StackMean {
                let m = exec.compute(&x.mean(Some(0))?.mean(None)?)?.to_f64_vec()[0];
                (
                    format!(
                        "stack of {files} arrays {:?}, mean(axis=0)",
                        arrays[0].shape()
                    ),
                    format!("grand mean {m}"),
                )
            } else {
                let out = dir.join("converted.zarr").to_string_lossy().to_string();
                let o = StoreOptions {
                    chunks: Some(vec![1, 64, 4096]),
                    ..opts.clone()
                };
                let r = store(&exec, &x, &out, &o)?;
                (
                    format!(
                        "convert {:?} to zarr zstd:1, chunks (1, 64, 4096)",
                        x.shape()
                    ),
                    format!("{} chunks written", r.chunks_written),
                )
            }
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let peak = exec.budget().peak();
    let rss = ndstream::peak_rss();
    let limit = memory + RSS_OVERHEAD;
    if !quiet {
        println!("workload:       {what}");
        println!("result:         {result}");
        if prepare_secs > 0.0 {
            println!(
                "prepare:        {prepare_secs:.2} s (writing the input to {})",
                dir.display()
            );
        }
        println!(
            "input:          {:.2} GiB",
            input as f64 / (1u64 << 30) as f64
        );
        println!(
            "time:           {secs:.2} s ({:.0} MB/s)",
            input as f64 / secs / 1e6
        );
        println!("budget:         {:.1} MiB", mib(memory));
        println!("peak reserved:  {:.1} MiB", mib(peak));
        println!(
            "peak RSS:       {:.1} MiB (limit: budget + {:.0} MiB = {:.1} MiB)",
            mib(rss),
            mib(RSS_OVERHEAD),
            mib(limit)
        );
    }
    if peak > memory {
        bail!(
            "peak reservation {:.1} MiB exceeded the {:.1} MiB budget",
            mib(peak),
            mib(memory)
        );
    }
    if rss > limit {
        bail!(
            "peak RSS {:.1} MiB exceeded budget + overhead ({:.1} MiB)",
            mib(rss),
            mib(limit)
        );
    }
    Ok(())
}
