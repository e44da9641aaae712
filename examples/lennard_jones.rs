//! Tutorial section 4: the Lennard-Jones potential of a cluster of particles,
//! written as in NumPy — broadcast pairwise differences, `lj`, `nansum / 2` —
//! and run in tiles so the (N, N, 3) intermediate never exists.
//!
//! `cargo run --release --example lennard_jones -- [N]`

use ndstream::{random, Array, Executor, IndexItem};

fn lj(r2: &Array) -> ndstream::Result<Array> {
    let sr6 = (1.0 / r2).pow(3.0)?;
    Ok(4.0 * (&(&sr6 * &sr6) - &sr6))
}

fn main() -> ndstream::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7000);
    let cores = std::thread::available_parallelism()
        .map(|c| c.get() as u64)
        .unwrap_or(2);
    // The tutorial's cluster: normal(0, 500, (n, 3)) - 0.5 (make_cluster(7000, radius=500)), chunked n // cores.
    let cluster = (&random::normal(0.0, 500.0, &[n, 3], [n, 3], 1981)? - 0.5).compute()?;
    let x = Array::from_block(cluster, [n / cores, 3].into())?;
    let d = &x.index(&[IndexItem::FULL, IndexItem::NewAxis, IndexItem::FULL])?
        - &x.index(&[IndexItem::NewAxis, IndexItem::FULL, IndexItem::FULL])?;
    let r2 = (&d * &d).sum(Some(2))?;
    let energy = lj(&r2)?.nansum(None)? / 2.0;
    let exec = Executor::builder().memory(256 << 20).build()?;
    let t = std::time::Instant::now();
    let e = exec.compute(&energy)?.to_f64_vec()[0];
    println!(
        "{n} particles: energy {e} in {:.3} s (peak reserved {} MiB)",
        t.elapsed().as_secs_f64(),
        exec.budget().peak() >> 20
    );
    Ok(())
}
