//! Test helpers shared by the integration tests: synthetic sources and a
//! counting sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ndarray::{ArrayD, IxDyn};
use ndstream::{Block, ChunkGrid, ChunkSink, ChunkSource, DType, Error, Result};

/// A source of `shape` f64 values `v(i) = hash(i)`-based, cheap to make,
/// counting its reads; chunk `fail_at` (if any) fails.
#[derive(Debug)]
pub struct PatternSource {
    pub shape: Vec<u64>,
    pub grid: ChunkGrid,
    pub reads: AtomicU64,
    pub fail_at: Option<Vec<u64>>,
}

impl PatternSource {
    pub fn new(shape: &[u64], chunks: &[u64]) -> PatternSource {
        PatternSource {
            shape: shape.to_vec(),
            grid: ChunkGrid::regular(shape, chunks),
            reads: AtomicU64::new(0),
            fail_at: None,
        }
    }

    /// The value at flat index `i`.
    pub fn value(i: u64) -> f64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 27;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl ChunkSource for PatternSource {
    fn name(&self) -> &str {
        "pattern://test"
    }
    fn shape(&self) -> &[u64] {
        &self.shape
    }
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn read_chunk(&self, idx: &[u64]) -> Result<Block> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if self.fail_at.as_deref() == Some(idx) {
            return Err(Error::source(self.name(), idx, "simulated corrupt chunk"));
        }
        let region = self.grid.chunk_region(idx);
        let shape: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        let nd = self.shape.len();
        let mut strides = vec![1u64; nd];
        for d in (0..nd.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * self.shape[d + 1];
        }
        let n: usize = shape.iter().product();
        let row = *shape.last().unwrap_or(&1);
        let mut v = Vec::with_capacity(n);
        let mut odo = vec![0u64; nd.saturating_sub(1)];
        while v.len() < n {
            let base: u64 = (0..nd.saturating_sub(1))
                .map(|d| (region[d].start + odo[d]) * strides[d])
                .sum::<u64>()
                + region.last().map_or(0, |r| r.start);
            v.extend((0..row as u64).map(|j| PatternSource::value(base + j)));
            for d in (0..odo.len()).rev() {
                odo[d] += 1;
                if odo[d] < shape[d] as u64 {
                    break;
                }
                odo[d] = 0;
            }
        }
        Ok(Block::from(
            ArrayD::from_shape_vec(IxDyn(&shape), v)
                .map_err(|e| Error::source(self.name(), idx, e.to_string()))?,
        ))
    }
}

/// A sink that keeps a checksum of what it gets and counts chunks.
#[derive(Debug)]
pub struct CountingSink {
    pub shape: Vec<u64>,
    pub dtype: DType,
    pub grid: ChunkGrid,
    pub chunks: AtomicU64,
    pub sum: Mutex<f64>,
    pub finished: AtomicU64,
}

impl CountingSink {
    pub fn new(shape: &[u64], dtype: DType, chunks: &[u64]) -> CountingSink {
        CountingSink {
            shape: shape.to_vec(),
            dtype,
            grid: ChunkGrid::regular(shape, chunks),
            chunks: AtomicU64::new(0),
            sum: Mutex::new(0.0),
            finished: AtomicU64::new(0),
        }
    }
}

impl ChunkSink for CountingSink {
    fn name(&self) -> &str {
        "counting://test"
    }
    fn shape(&self) -> &[u64] {
        &self.shape
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn write_chunk(&self, idx: &[u64], data: &Block) -> Result<()> {
        assert_eq!(
            data.shape().iter().map(|&n| n as u64).collect::<Vec<_>>(),
            self.grid.chunk_shape(idx)
        );
        let s: f64 = data.to_f64_vec().iter().sum();
        *self.sum.lock().unwrap() += s;
        self.chunks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn finish(&self) -> Result<()> {
        self.finished.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
