//! Tutorial section 3: 31 daily weather files stacked into one (31, H, W)
//! array, averaged over time, a day's anomaly, and the stack subsampled
//! `[:, ::2, ::2]` and stored to Zarr and HDF5 — all in bounded memory.
//!
//! `cargo run --release --example weather -- [demo-data] [out-dir]`
//! (make the data with `ndstream demo --scale small`).

use ndstream::formats::{Codec, WriteMode};
use ndstream::{open_many, stack, store, Executor, IndexItem, StoreOptions};

fn main() -> ndstream::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo-data".to_string());
    let out = std::env::args()
        .nth(2)
        .unwrap_or_else(|| format!("{dir}/out"));
    std::fs::create_dir_all(&out).map_err(|e| ndstream::Error::open(&out, e.to_string()))?;
    let days = open_many(&format!("{dir}/weather-big/*.hdf5:/t2m"))?;
    println!("{} files, each {:?}", days.len(), days[0].shape());
    let x = stack(&days, 0)?;
    println!("{x}");
    let exec = Executor::builder().memory(256 << 20).build()?;

    let mean = x.mean(Some(0))?;
    let anomaly = &x.index(&[IndexItem::Index(0)])? - &mean;
    let opts = StoreOptions {
        mode: WriteMode::Overwrite,
        ..StoreOptions::default()
    };
    store(&exec, &mean, &format!("{out}/mean.zarr"), &opts)?;
    store(&exec, &anomaly, &format!("{out}/anomaly.zarr"), &opts)?;

    let every = IndexItem::slice(None, None, 2);
    let sub = x.index(&[IndexItem::FULL, every, every])?;
    let zopts = StoreOptions {
        codec: Some(Codec::Zstd { level: 3 }),
        ..opts.clone()
    };
    let r = store(&exec, &sub, &format!("{out}/sub.zarr"), &zopts)?;
    println!(
        "x[:, ::2, ::2] -> {out}/sub.zarr: {} chunks, peak reserved {} MiB",
        r.chunks_written,
        r.peak_reserved >> 20
    );
    store(&exec, &sub, &format!("{out}/sub.h5:/t2m"), &opts)?;
    println!(
        "mean of the anomaly (should be ~0): {}",
        exec.compute(&anomaly.mean(None)?)?.to_f64_vec()[0]
    );
    Ok(())
}
