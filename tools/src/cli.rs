//! The command line as clap parses it: raw arguments, before validation.
//!
//! Each subcommand is one variant of [`Command`] holding its `Args` struct
//! (defined here or in the subcommand's module); `main` dispatches on it.
//! Options shared by several commands are flattened from [`ExecArgs`]
//! (memory, threads) and [`StoreArgs`] (how outputs are written).
//! Validation into typed settings happens in [`crate::config`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plot::colormap::Colormap;

/// Chunked n-dimensional arrays larger than memory: inspect, convert,
/// compute and plot HDF5, Zarr, .npy and raw arrays in bounded memory.
#[derive(Debug, Parser)]
#[command(name = "ndstream", version, about, propagate_version = true)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a stored array, or the arrays in a group or HDF5 file.
    Info(InfoArgs),
    /// Copy an array from any format to any other: rechunk, recompress,
    /// change dtype, take a strided selection, stack a glob of inputs.
    Convert(ConvertArgs),
    /// Evaluate a NumPy-like expression (Python syntax) and print or store the result.
    Eval(EvalArgs),
    /// Draw a 2-D array (or a 2-D selection of one) as a PNG heatmap with a colour bar.
    Plot(PlotArgs),
    /// Run a synthetic out-of-core workload under a memory budget and report
    /// throughput, peak reserved bytes and peak RSS (exit 1 if RSS exceeds
    /// the budget plus a fixed overhead).
    Stress(crate::stress::StressArgs),
    /// The Dask "Arrays" tutorial end to end on generated data: blocked
    /// reductions, random normal, a weather stack with plots and stores,
    /// the Lennard-Jones potential.
    Demo(crate::demo::DemoArgs),
    /// Plan a `convert` or `eval -o` as stages of tasks that any number of
    /// processes or machines sharing the file system can run; writes the
    /// plan file and creates the (incomplete) output.
    Plan(PlanArgs),
    /// Run a range of one stage's tasks of a plan in this process.
    RunTask(RunTaskArgs),
    /// Run a whole plan on a pool of local processes (resumes where an
    /// interrupted run stopped).
    Run(RunArgs),
    /// Show how far a plan's job has got.
    Status(StatusArgs),
    /// Print an sbatch script that runs a plan as Slurm job arrays, one per
    /// stage, each after the one before it.
    Slurm(SlurmArgs),
}

/// `ndstream plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan file to write.
    #[arg(short, long, value_name = "PLAN")]
    pub output: PathBuf,
    /// Where tasks record their results: a directory every task's process
    /// sees, or a prefix in object storage (`s3://bucket/job.work`)
    /// [default: PLAN.work].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<String>,
    /// The job to plan (`--memory` there is the budget of every task).
    #[command(subcommand)]
    pub job: PlanJob,
}

/// What `ndstream plan` plans.
#[derive(Debug, Subcommand)]
pub enum PlanJob {
    /// A `convert SRC DST` (DST a .zarr, or an HDF5, .npy or raw file
    /// that the last stage copies from the tasks' Zarr array in the work
    /// directory; with `--overwrite` what stands there is replaced only by
    /// the plan's last stage; with `--resume` an output that an interrupted
    /// write left is finished).
    Convert(ConvertArgs),
    /// An `eval EXPR -o DST` (DST as for `convert`).
    Eval(EvalArgs),
}

/// `ndstream run-task`.
#[derive(Debug, Args)]
pub struct RunTaskArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// The stage (0, 1, ...; `ndstream status` lists them).
    #[arg(long, value_name = "S")]
    pub stage: usize,
    /// The tasks to run, `A..B` (B excluded) or `N` [default: all].
    #[arg(long, value_name = "A..B", conflicts_with = "part")]
    pub tasks: Option<String>,
    /// Run part I of the stage cut into K equal ranges of tasks (`I/K`,
    /// I from 0), as a job array's element does.
    #[arg(long, value_name = "I/K")]
    pub part: Option<String>,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `ndstream run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Processes at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub processes: usize,
    /// Worker threads per process [default: the cores shared out].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `ndstream status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ndstream slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Most elements of one job array (each runs a range of tasks).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub array_size: u64,
    /// CPUs per element (`--cpus-per-task`, and the threads it runs).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,
    /// Extra `sbatch` options for every job (e.g. "--partition=short --time=1:00:00").
    #[arg(long, value_name = "OPTS", allow_hyphen_values = true)]
    pub sbatch_options: Option<String>,
}

/// Memory and threads of the executor.
#[derive(Debug, Args, Clone)]
pub struct ExecArgs {
    /// Memory budget (e.g. 512MiB, 2GB, 1e9) [default: a quarter of RAM, at most 8 GiB].
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// How an output store is created.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Output chunk shape, e.g. 1,500,500 (0 = the whole axis) [default: the input's chunks].
    #[arg(long, value_name = "N,N,..")]
    pub chunks: Option<String>,
    /// Compression: none, zstd:LEVEL, gzip:LEVEL, blosc:CNAME:LEVEL.
    #[arg(long, value_name = "CODEC", default_value = "none")]
    pub codec: String,
    /// Zarr v3 shard shape, a multiple of the chunks on every axis.
    #[arg(long, value_name = "N,N,..")]
    pub shard: Option<String>,
    /// Replace an existing output.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Finish an interrupted write, keeping the chunks it completed.
    #[arg(long)]
    pub resume: bool,
    /// Zarr format version of a new .zarr output.
    #[arg(long, value_name = "2|3", default_value = "3", value_parser = ["2", "3"])]
    pub zarr_version: String,
    /// Flush the output to the disk (fsync) before marking it complete, so it
    /// survives a power loss; costs a disk flush.
    #[arg(long)]
    pub sync: bool,
}

/// `ndstream info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The array or group: file.h5[:/dataset], dir.zarr[/array], file.npy, file.bin?dtype=<f4&shape=.., s3://bucket/x.zarr[/array], s3://bucket/x.nc[:/variable]
    pub path: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ndstream convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input array (a path, or a URL: s3://bucket/x.zarr/a, s3://bucket/x.nc:/t2m), or a glob (`days/*.h5:/t2m`) stacked along a new first axis.
    pub src: String,
    /// Output: out.zarr[/array], out.h5:/dataset, out.npy, out.bin?dtype=..
    pub dst: String,
    /// Element type of the output (f4, float64, i2, ...).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<String>,
    /// Strided selection of the input, NumPy style: '::2,::2' or '[0, 100:200]'.
    #[arg(long, value_name = "INDEX")]
    pub select: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// `ndstream eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The expression, e.g. "x = open('a.h5:/x'); [x.mean(), x.std()]".
    #[arg(allow_hyphen_values = true)]
    pub expr: String,
    /// Store the (array) result here instead of printing it.
    #[arg(short, long, value_name = "DST")]
    pub output: Option<String>,
    /// Print the result as JSON: {"shape", "dtype", "data"} (a list for list results).
    #[arg(long)]
    pub json: bool,
    /// Element type of a stored result.
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// `ndstream plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The array to draw (bound as `x` in --eval).
    #[arg(required_unless_present = "eval")]
    pub src: Option<String>,
    /// Output PNG.
    #[arg(short, long, value_name = "PNG")]
    pub output: PathBuf,
    /// Colormap.
    #[arg(long, value_enum, default_value = "viridis")]
    pub cmap: Colormap,
    /// Value at the bottom of the colour range [default: the data's minimum].
    #[arg(long, allow_negative_numbers = true)]
    pub vmin: Option<f64>,
    /// Value at the top of the colour range [default: the data's maximum].
    #[arg(long, allow_negative_numbers = true)]
    pub vmax: Option<f64>,
    /// Selection applied before drawing: '0, :, :' or '::2, 100:'.
    #[arg(long, value_name = "INDEX")]
    pub select: Option<String>,
    /// Draw this expression instead (`x` is SRC when given), e.g. "x.mean(axis=0)".
    #[arg(long, value_name = "EXPR")]
    pub eval: Option<String>,
    /// Longest side of the heatmap in pixels; larger data is downsampled by an integer stride.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(16..=20000))]
    pub max_size: u32,
    #[command(flatten)]
    pub exec: ExecArgs,
}
