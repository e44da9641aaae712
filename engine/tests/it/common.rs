//! Shared fixtures: arrays with known values and executors of several
//! thread counts and budgets.

use ndstream_engine::{Array, Block, Chunks, Executor};

/// `arange(n).reshape(shape)` as f64, chunked by `chunks` (sizes per axis).
pub fn iota(shape: &[usize], chunks: &[Vec<u64>]) -> Array {
    let n: usize = shape.iter().product();
    let data = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(shape),
        (0..n).map(|v| v as f64).collect::<Vec<_>>(),
    )
    .unwrap();
    Array::from_ndarray(data, Chunks::Sizes(chunks.to_vec())).unwrap()
}

/// An f64 array of `values` in `shape`, chunked by `chunks`.
pub fn f64s(values: &[f64], shape: &[usize], chunks: &[Vec<u64>]) -> Array {
    let data = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values.to_vec()).unwrap();
    Array::from_ndarray(data, Chunks::Sizes(chunks.to_vec())).unwrap()
}

/// Executors over 1 and 4 threads, each under a roomy budget and the
/// smallest that admits the plan of `a`.
pub fn executors(a: &Array) -> Vec<Executor> {
    let roomy = Executor::builder().memory(256 << 20).build().unwrap();
    // The plan depends on the budget (what is staged): grow until it fits.
    let mut tight = roomy.plan(std::slice::from_ref(a)).unwrap().least_bytes();
    for _ in 0..100 {
        let e = Executor::builder().memory(tight).build().unwrap();
        match e.plan(std::slice::from_ref(a)) {
            Ok(p) if p.least_bytes() <= tight => break,
            _ => tight += tight / 8 + 1,
        }
    }
    let mut v = Vec::new();
    for threads in [1, 4] {
        for memory in [256 << 20, tight] {
            v.push(
                Executor::builder()
                    .threads(threads)
                    .memory(memory)
                    .build()
                    .unwrap(),
            );
        }
    }
    v
}

/// The block's elements as raw bits (to compare floats exactly, NaNs too).
pub fn bits(b: &Block) -> Vec<u64> {
    b.to_f64_vec().iter().map(|v| v.to_bits()).collect()
}

/// A stored 1-D f64 array `0, 1, 2, ...` that counts the chunks read.
#[derive(Debug)]
pub struct Counting {
    pub grid: ndstream_engine::ChunkGrid,
    pub shape: Vec<u64>,
    pub reads: std::sync::atomic::AtomicU64,
    /// Where another process would open it (`ChunkSource::locator`).
    pub locator: Option<String>,
}

impl Counting {
    pub fn new(n: u64, chunk: u64) -> std::sync::Arc<Counting> {
        std::sync::Arc::new(Counting {
            grid: ndstream_engine::ChunkGrid::regular(&[n], &[chunk]),
            shape: vec![n],
            reads: Default::default(),
            locator: None,
        })
    }

    /// The same, reopened elsewhere as `locator`.
    pub fn located(n: u64, chunk: u64, locator: &str) -> std::sync::Arc<Counting> {
        std::sync::Arc::new(Counting {
            grid: ndstream_engine::ChunkGrid::regular(&[n], &[chunk]),
            shape: vec![n],
            reads: Default::default(),
            locator: Some(locator.to_string()),
        })
    }

    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ndstream_engine::ChunkSource for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn shape(&self) -> &[u64] {
        &self.shape
    }
    fn dtype(&self) -> ndstream_engine::DType {
        ndstream_engine::DType::F64
    }
    fn grid(&self) -> &ndstream_engine::ChunkGrid {
        &self.grid
    }
    fn locator(&self) -> Option<String> {
        self.locator.clone()
    }
    fn read_chunk(&self, idx: &[u64]) -> ndstream_engine::Result<Block> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = self.grid.chunk_region(idx).remove(0);
        Ok(Block::from(
            ndarray::Array1::from_iter(r.map(|v| v as f64)).into_dyn(),
        ))
    }
}
