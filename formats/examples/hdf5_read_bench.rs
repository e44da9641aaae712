//! Reading a chunked, gzip-compressed HDF5 dataset from 1 and 2 threads:
//! plain hdf5-metno (`read_slice` per chunk, every call behind its global
//! lock) against ndstream's HDF5 source (chunk index read once, then
//! positioned reads and shuffle+inflate on the worker threads).
//!
//! Run: `cargo run --release -p ndstream-formats --example hdf5_read_bench [MiB]`
//! (default 200). The file is written once to `/tmp/ndstream_hdf5_bench_<MiB>.h5`
//! with ndstream's sink (float32, 1 MiB chunks, shuffle + gzip level 4) and
//! reused; each variant runs after a warm-up pass so the page cache is hot.
//! Throughput is uncompressed MB/s (10^6 bytes).

use std::path::Path;
use std::time::Instant;

use ndarray::{s, ArrayD, IxDyn};
use ndstream_engine::{AxisSel, Block, DType};
use ndstream_formats::{create_sink, open_source, Codec, SinkSpec};

const COLS: u64 = 1024;
const ROWS_PER_CHUNK: u64 = 256;
const THREADS: u64 = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200);
    let rows = mib * (1 << 20) / 4 / COLS;
    let file = format!("/tmp/ndstream_hdf5_bench_{mib}.h5");
    let loc = format!("{file}:/x");
    if !Path::new(&file).exists() {
        write_file(&loc, rows)?;
    }
    println!(
        "{file}: float32 [{rows}, {COLS}], chunks [{ROWS_PER_CHUNK}, {COLS}] (1 MiB), shuffle+gzip(4), {} on disk",
        std::fs::metadata(&file)?.len() / (1 << 20)
    );

    for threads in [1, THREADS] {
        let (a, b) = measure(&file, &loc, rows, threads)?;
        println!("{threads} thread(s): (a) hdf5-metno read_slice per chunk {a:6.0} MB/s   (b) ndstream source read_chunk {b:6.0} MB/s   ({:.2}x)", b / a);
    }
    Ok(())
}

/// Best of two timed passes (after a warm-up) of each variant, in MB/s.
fn measure(
    file: &str,
    loc: &str,
    rows: u64,
    threads: u64,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let bytes = (rows * COLS * 4) as f64;
    let nchunks = rows.div_ceil(ROWS_PER_CHUNK);
    // (a) hdf5-metno read_slice per chunk.
    let f = hdf5::File::open(file)?;
    let ds = f.dataset("x")?;
    let run_a = || -> Result<f64, String> {
        let t = Instant::now();
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|w| {
                    let ds = &ds;
                    sc.spawn(move || -> Result<f64, String> {
                        let mut sum = 0f64;
                        for c in (w..nchunks).step_by(threads as usize) {
                            let r0 = (c * ROWS_PER_CHUNK) as usize;
                            let r1 = ((c + 1) * ROWS_PER_CHUNK).min(rows) as usize;
                            let a: ndarray::Array2<f32> =
                                ds.read_slice(s![r0..r1, ..]).map_err(|e| e.to_string())?;
                            sum += f64::from(a[[0, 0]]);
                        }
                        Ok(sum)
                    })
                })
                .collect();
            hs.into_iter()
                .try_for_each(|h| h.join().map_err(|_| "panic".to_string())?.map(|_| ()))
        })?;
        Ok(bytes / t.elapsed().as_secs_f64() / 1e6)
    };
    run_a()?;
    let a = run_a()?.max(run_a()?);
    drop(ds);
    drop(f);

    // (b) ndstream's source, read_chunk.
    let src = open_source(loc)?;
    let run_b = || -> Result<f64, String> {
        let t = Instant::now();
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|w| {
                    let src = &src;
                    sc.spawn(move || -> Result<(), String> {
                        for c in (w..nchunks).step_by(threads as usize) {
                            let b = src.read_chunk(&[c, 0]).map_err(|e| e.to_string())?;
                            std::hint::black_box(&b);
                        }
                        Ok(())
                    })
                })
                .collect();
            hs.into_iter()
                .try_for_each(|h| h.join().map_err(|_| "panic".to_string())?)
        })?;
        Ok(bytes / t.elapsed().as_secs_f64() / 1e6)
    };
    run_b()?;
    let b = run_b()?.max(run_b()?);
    Ok((a, b))
}

/// Write the benchmark file through ndstream's sink from 2 threads.
fn write_file(loc: &str, rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut spec = SinkSpec::new(vec![rows, COLS], DType::F32, vec![ROWS_PER_CHUNK, COLS]);
    spec.codec = Codec::Gzip { level: 4 };
    let sink = create_sink(loc, &spec)?;
    let grid = sink.grid().clone();
    let n = grid.num_chunks();
    std::thread::scope(|sc| -> Result<(), String> {
        let hs: Vec<_> = (0..THREADS)
            .map(|w| {
                let (sink, grid) = (&sink, &grid);
                sc.spawn(move || -> Result<(), String> {
                    for c in (w..n).step_by(THREADS as usize) {
                        let idx = grid.unravel(c);
                        let region = grid.chunk_region(&idx);
                        let sel: Vec<AxisSel> =
                            region.iter().cloned().map(AxisSel::range).collect();
                        let shape: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
                        let r0 = region[0].start;
                        // A smooth field with a little noise: compresses like real data, not like zeros.
                        let a = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                            let (r, col) = ((r0 + ix[0] as u64) as f32, ix[1] as f32);
                            (r * 0.001).sin() * 100.0
                                + (col * 0.01).cos() * 10.0
                                + ((r as u32 ^ col as u32) % 7) as f32 * 0.01
                        });
                        sink.write_chunk(&idx, &Block::from(a))
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().map_err(|_| "panic".to_string())?)
    })?;
    sink.finish()?;
    Ok(())
}
