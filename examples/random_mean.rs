//! Tutorial section 2: `random.normal(10, 0.1, (20000, 20000), chunks=(1000, 1000))`
//! — 3.2 GB that never exists at once — then `mean(axis=0)[::100]`. The slice
//! is pushed into the generator, so only one column in a hundred is generated.
//!
//! `cargo run --release --example random_mean`

use std::time::Instant;

use ndstream::{random, Executor, IndexItem};

fn main() -> ndstream::Result<()> {
    let x = random::normal(10.0, 0.1, &[20_000, 20_000], [1000, 1000], 0)?;
    println!("{x}");
    println!("input size: {:.1} GB", x.nbytes() as f64 / 1e9);
    let y = x
        .mean(Some(0))?
        .index(&[IndexItem::slice(None, None, 100)])?;
    let exec = Executor::builder().memory(150 << 20).build()?;
    let t = Instant::now();
    let m = exec.compute(&y)?;
    println!(
        "mean(axis=0)[::100] in {:.3} s: {:?} ...",
        t.elapsed().as_secs_f64(),
        &m.to_f64_vec()[..5]
    );
    let t = Instant::now();
    let full = exec.compute(&x.mean(Some(0))?)?;
    println!(
        "mean(axis=0) (all 20000 columns) in {:.3} s, {} values",
        t.elapsed().as_secs_f64(),
        full.len()
    );
    Ok(())
}
