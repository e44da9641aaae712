//! `ndstream demo`: the Dask "Arrays" tutorial, end to end, on generated data.
//!
//! Generates the tutorial's inputs into `--dir` (skipped when present and
//! complete): `random.hdf5` with a contiguous float32 dataset `/x` of
//! exponential values, and `weather-big/2014-01-DD.hdf5`, 31 daily `/t2m`
//! float32 fields with HDF5 chunks (500, 500). Then runs each step of the
//! tutorial, printing what the tutorial prints, writing plots and stores.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::plot::colormap::Colormap;
use ndstream::formats::{Codec, WriteMode};
use ndstream::{
    linspace, open, open_many, parse_bytes, random, stack, store, Array, BinaryOp, Chunks, DType,
    Executor, IndexItem, StoreOptions,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// Small inputs: runs in about a minute on two cores.
    Small,
    /// The tutorial's sizes: 1e9-element random.hdf5, 31 fields of 5760 x 11520 (~13 GB of data).
    Tutorial,
    /// Tiny inputs for the test suite.
    #[value(hide = true)]
    Test,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Input sizes.
    #[arg(long, value_enum, default_value = "small")]
    pub scale: Scale,
    /// Where to put the data, plots and stores.
    #[arg(long, default_value = "demo-data")]
    pub dir: PathBuf,
    /// Memory budget.
    #[arg(long, default_value = "256MiB")]
    pub memory: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

struct Sizes {
    random_len: u64,
    field: [u64; 2],
    days: u64,
    particles: u64,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Small => Sizes {
            random_len: 20_000_000,
            field: [720, 1440],
            days: 31,
            particles: 7000,
        },
        Scale::Test => Sizes {
            random_len: 2_000_000,
            field: [120, 250],
            days: 31,
            particles: 400,
        },
        Scale::Tutorial => Sizes {
            random_len: 1_000_000_000,
            field: [5760, 11520],
            days: 31,
            particles: 7000,
        },
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

/// The tutorial's weather: a smooth temperature field in kelvin (cold poles,
/// warm tropics, a daily wave) plus noise, different each day.
fn weather_day(shape: [u64; 2], day: u64) -> Result<Array> {
    let [h, w] = shape;
    let lat =
        linspace(-90.0, 90.0, h, Chunks::Auto)?.index(&[IndexItem::FULL, IndexItem::NewAxis])?;
    let lon =
        linspace(0.0, 360.0, w, Chunks::Auto)?.index(&[IndexItem::NewAxis, IndexItem::FULL])?;
    let rad = std::f64::consts::PI / 180.0;
    let base = &(&(&lat * rad).cos()? * 45.0) + 250.0;
    let wave = &(&(&lon * (2.0 * rad)) + day as f64 * 0.4).sin()? * 6.0;
    let noise = random::normal(0.0, 1.5, &[h, w], [500, 500], 1000 + day)?;
    let t = &(&base + &wave) + &noise;
    Ok(t.astype(DType::F32)
        .rechunk(Chunks::Shape(vec![500, 500]))?)
}

fn generate(dir: &Path, s: &Sizes, exec: &Executor) -> Result<()> {
    std::fs::create_dir_all(dir.join("weather-big"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let rnd = format!("{}:/x", path_str(&dir.join("random.hdf5")));
    if open(&rnd)
        .map(|a| a.shape() == [s.random_len])
        .unwrap_or(false)
    {
        println!("using existing {rnd}");
    } else {
        let t = Instant::now();
        let x = random::exponential(1.0, &[s.random_len], [1_000_000], 1)?.astype(DType::F32);
        let opts = StoreOptions {
            mode: WriteMode::Overwrite,
            contiguous: true,
            ..StoreOptions::default()
        };
        store(exec, &x, &rnd, &opts)?;
        println!(
            "wrote {rnd}: {} float32 exponential values, contiguous ({:.1} s)",
            s.random_len,
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let mut made = 0;
    for day in 1..=s.days {
        let p = format!(
            "{}:/t2m",
            path_str(&dir.join(format!("weather-big/2014-01-{day:02}.hdf5")))
        );
        if open(&p).map(|a| a.shape() == s.field).unwrap_or(false) {
            continue;
        }
        let opts = StoreOptions {
            chunks: Some(vec![500, 500]),
            mode: WriteMode::Overwrite,
            ..StoreOptions::default()
        };
        store(exec, &weather_day(s.field, day)?, &p, &opts)?;
        made += 1;
    }
    if made > 0 {
        println!(
            "wrote {made} weather files of {:?} float32, HDF5 chunks (500, 500) ({:.1} s)",
            s.field,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let s = sizes(args.scale);
    let memory = parse_bytes(&args.memory).context("--memory")?;
    let mut b = Executor::builder().memory(memory);
    if let Some(t) = args.threads {
        b = b.threads(t);
    }
    let exec = b.build()?;
    let dir = &args.dir;
    println!("ndstream demo: the Dask \"Arrays\" tutorial ({:?} scale) in {} with a {} memory budget, {} threads",
        args.scale, dir.display(), args.memory, exec.threads());
    generate(dir, &s, &exec)?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // 1. Blocked algorithms.
    let rnd = format!("{}:/x", path_str(&dir.join("random.hdf5")));
    section(&format!("1. Blocked sum and mean of {rnd}"));
    let src = ndstream::formats::open_source(&rnd)?;
    println!(
        "{} {} elements, {:.2} GB, read in blocks of {} elements",
        src.dtype(),
        src.shape()[0],
        (src.shape()[0] * 4) as f64 / 1e9,
        src.grid().max_chunk_shape()[0]
    );
    let t = Instant::now();
    let mut sums = Vec::with_capacity(src.grid().num_chunks() as usize);
    for i in 0..src.grid().num_chunks() {
        let block = src.read_chunk(&src.grid().unravel(i))?;
        let v = block.view::<f32>().context("/x is float32")?;
        sums.push(v.iter().map(|&e| e as f64).sum::<f64>());
    }
    let by_hand: f64 = sums.iter().sum();
    let n = src.shape()[0] as f64;
    println!(
        "by hand:   sum = {by_hand}, mean = {}  ({:.3} s)",
        by_hand / n,
        t.elapsed().as_secs_f64()
    );
    let x = open(&rnd)?;
    let t = Instant::now();
    // Accumulate in float64 (NumPy's `x.sum(dtype='f8')`); a float32 sum is
    // rounded to float32 at the end, as NumPy's is.
    let xd = x.astype(DType::F64);
    let r = exec.compute_many(&[
        xd.sum(None)?,
        xd.mean(None)?,
        xd.std(None, 0)?,
        xd.var(None, 0)?,
    ])?;
    let v: Vec<f64> = r.iter().map(|b| b.to_f64_vec()[0]).collect();
    println!(
        "ndstream:  sum = {}, mean = {}, std = {}, var = {}  ({:.3} s, one pass)",
        v[0],
        v[1],
        v[2],
        v[3],
        t.elapsed().as_secs_f64()
    );
    let rel = ((v[0] - by_hand) / by_hand).abs();
    println!(
        "agree: {} (relative difference {rel:.1e})",
        if rel < 1e-9 { "yes" } else { "NO" }
    );
    if rel >= 1e-9 {
        bail!("the blocked sum and x.sum() disagree");
    }

    // 2. random.normal(...).mean(axis=0)[::100]
    section(
        "2. random.normal(10, 0.1, size=(20000, 20000), chunks=(1000, 1000)).mean(axis=0)[::100]",
    );
    let y = random::normal(10.0, 0.1, &[20000, 20000], [1000, 1000], 0)?;
    println!("{y}");
    println!("input size: {:.2} GB", y.nbytes() as f64 / 1e9);
    let t = Instant::now();
    let m = exec
        .compute(
            &y.mean(Some(0))?
                .index(&[IndexItem::slice(None, None, 100)])?,
        )?
        .to_f64_vec();
    println!(
        "result: {} values [{:.6}, {:.6}, {:.6}, ...] in {:.3} s",
        m.len(),
        m[0],
        m[1],
        m[2],
        t.elapsed().as_secs_f64()
    );

    // 3. Weather.
    section(&format!("3. {} days of weather, stacked", s.days));
    let pattern = format!("{}/weather-big/*.hdf5:/t2m", path_str(dir));
    let days = open_many(&pattern)?;
    let x = stack(&days, 0)?;
    println!("{x}");
    let t = Instant::now();
    let mean = x.mean(Some(0))?;
    let mean_path = path_str(&out.join("mean.zarr"));
    let ow = StoreOptions {
        mode: WriteMode::Overwrite,
        ..StoreOptions::default()
    };
    store(&exec, &mean, &mean_path, &ow)?;
    println!(
        "mean over time -> {mean_path} ({:.2} s)",
        t.elapsed().as_secs_f64()
    );
    let png = dir.join("mean.png");
    crate::plot::plot_array(&exec, &open(&mean_path)?, &png, Colormap::RdBuR, 1200)?;
    println!("plotted {}", png.display());
    let anomaly = x
        .index(&[IndexItem::Index(0)])?
        .binary(BinaryOp::Sub, &mean)?;
    let png = dir.join("anomaly.png");
    let t = Instant::now();
    crate::plot::plot_array(&exec, &anomaly, &png, Colormap::RdBuR, 1200)?;
    println!(
        "x[0] - x.mean(axis=0) plotted to {} ({:.2} s)",
        png.display(),
        t.elapsed().as_secs_f64()
    );
    let every2 = IndexItem::slice(None, None, 2);
    let sub = x.index(&[IndexItem::FULL, every2, every2])?;
    let zarr = path_str(&out.join("sub.zarr"));
    let t = Instant::now();
    let zopts = StoreOptions {
        codec: Some(Codec::Zstd { level: 3 }),
        ..ow.clone()
    };
    let r = store(&exec, &sub, &zarr, &zopts)?;
    println!(
        "x[:, ::2, ::2] {:?} -> {zarr} (zstd:3): {} chunks in {:.2} s, peak reserved {:.0} MiB",
        sub.shape(),
        r.chunks_written,
        t.elapsed().as_secs_f64(),
        r.peak_reserved as f64 / 1048576.0
    );
    let h5 = format!("{}:/t2m", path_str(&out.join("sub.h5")));
    let t = Instant::now();
    let r = store(&exec, &sub, &h5, &ow)?;
    println!(
        "x[:, ::2, ::2] -> {h5}: {} chunks in {:.2} s",
        r.chunks_written,
        t.elapsed().as_secs_f64()
    );

    // 4. Lennard-Jones.
    section(&format!(
        "4. Lennard-Jones potential of {} particles",
        s.particles
    ));
    let n = s.particles;
    let cores = exec.threads() as u64;
    let cluster = exec.compute(&(&random::normal(0.0, 500.0, &[n, 3], [n, 3], 1981)? - 0.5))?;
    let c = Array::from_block(cluster, Chunks::Shape(vec![(n / cores).max(1), 3]))?;
    let d = &c.index(&[IndexItem::FULL, IndexItem::NewAxis, IndexItem::FULL])?
        - &c.index(&[IndexItem::NewAxis, IndexItem::FULL, IndexItem::FULL])?;
    let r2 = (&d * &d).sum(Some(2))?;
    let sr6 = (1.0 / &r2).pow(3.0)?;
    let energy = (4.0 * (&(&sr6 * &sr6) - &sr6)).nansum(None)? / 2.0;
    let t = Instant::now();
    let e = exec.compute(&energy)?.to_f64_vec()[0];
    println!(
        "energy = {e} ({:.3} s; the (N, N, 3) distances, {:.1} GB, never exist)",
        t.elapsed().as_secs_f64(),
        (n * n * 3 * 8) as f64 / 1e9
    );
    println!(
        "\npeak memory reserved over the whole demo: {:.1} MiB of {}",
        exec.budget().peak() as f64 / 1048576.0,
        args.memory
    );
    Ok(())
}
