//! Tutorial section 1: blocked sum and mean of a large contiguous HDF5 dataset,
//! first by hand (a loop over 1e6-element blocks), then with the array API —
//! sum, mean, std and var computed together in one pass over the file.
//!
//! `cargo run --release --example blocked_reductions -- [demo-data/random.hdf5:/x]`
//! (make the data with `ndstream demo --scale small`).

use ndstream::{open, Executor, IndexItem};

fn main() -> ndstream::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo-data/random.hdf5:/x".to_string());
    let x = open(&path)?;
    println!("{x}");
    let exec = Executor::builder().memory(256 << 20).build()?;

    // By hand: one block of a million elements at a time, like the tutorial's loop.
    let n = x.shape()[0] as i64;
    let mut sums = Vec::new();
    for start in (0..n).step_by(1_000_000) {
        let block = x.index(&[IndexItem::slice(Some(start), Some(start + 1_000_000), 1)])?;
        sums.push(exec.compute(&block.sum(None)?)?.to_f64_vec()[0]);
    }
    let total: f64 = sums.iter().sum();
    println!("by hand: sum = {total}, mean = {}", total / n as f64);

    // The array API: one pass computes all four.
    let r = exec.compute_many(&[
        x.sum(None)?,
        x.mean(None)?,
        x.std(None, 0)?,
        x.var(None, 0)?,
    ])?;
    let v: Vec<f64> = r.iter().map(|b| b.to_f64_vec()[0]).collect();
    println!(
        "sum = {}, mean = {}, std = {}, var = {}",
        v[0], v[1], v[2], v[3]
    );
    Ok(())
}
