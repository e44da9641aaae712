//! Sources and sinks whose every read or write is a request with latency.
//!
//! Read-ahead: chunks are read ahead of the workers (more reads in flight
//! than workers), each chunk once, within the budget, with the same bits
//! as without read-ahead; a failed read is reported by the task that
//! needed it. Write-behind: chunks are written by writer threads (more
//! writes in flight than workers), each once, all before the sink is
//! finished; a failed write is the job's error and the sink is not
//! finished.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ndstream_engine::{
    Array, Block, ChunkGrid, ChunkSink, ChunkSource, DType, Executor, FetchDone, Fetched,
};

use crate::common::bits;

/// A stored 3-D f64 array whose reads each take `delay`, as requests to an
/// object store do; it counts reads per chunk and the most at once.
#[derive(Debug)]
struct Remote {
    grid: ChunkGrid,
    shape: Vec<u64>,
    delay: Duration,
    depth: usize,
    fail_at: Option<Vec<u64>>,
    reads: Mutex<HashMap<Vec<u64>, u64>>,
    /// Reads and fetches under way.
    now: Arc<AtomicU64>,
    most: AtomicU64,
    /// Reads are started by `fetch` (a thread of its own stands in for an
    /// object store's I/O runtime) and decoded by `decode_fetched`.
    fetching: bool,
    /// Fetches per chunk, and decodes of fetched chunks.
    fetches: Mutex<HashMap<Vec<u64>, u64>>,
    decodes: AtomicU64,
    /// The threads that started fetches.
    fetchers: Mutex<HashSet<std::thread::ThreadId>>,
}

fn value(i: u64, j: u64, k: u64) -> f64 {
    ((i * 7919 + j * 104_729 + k * 31) % 1000) as f64 / 7.0 - 60.0
}

impl Remote {
    fn new(shape: [u64; 3], chunk: [u64; 3], delay_ms: u64, depth: usize) -> Arc<Remote> {
        Arc::new(Remote {
            grid: ChunkGrid::regular(&shape, &chunk),
            shape: shape.to_vec(),
            delay: Duration::from_millis(delay_ms),
            depth,
            fail_at: None,
            reads: Mutex::new(HashMap::new()),
            now: Arc::new(AtomicU64::new(0)),
            most: AtomicU64::new(0),
            fetching: false,
            fetches: Mutex::new(HashMap::new()),
            decodes: AtomicU64::new(0),
            fetchers: Mutex::new(HashSet::new()),
        })
    }

    fn fetching(shape: [u64; 3], chunk: [u64; 3], delay_ms: u64, depth: usize) -> Arc<Remote> {
        let mut r = Arc::into_inner(Remote::new(shape, chunk, delay_ms, depth)).unwrap();
        r.fetching = true;
        Arc::new(r)
    }

    fn failing(shape: [u64; 3], chunk: [u64; 3], at: [u64; 3]) -> Arc<Remote> {
        let mut r = Arc::into_inner(Remote::new(shape, chunk, 2, 8)).unwrap();
        r.fail_at = Some(at.to_vec());
        Arc::new(r)
    }

    fn array(self: &Arc<Self>) -> Array {
        Array::from_source(self.clone() as Arc<dyn ChunkSource>)
    }

    /// Reads of each chunk, and the most reads that were under way at once.
    fn counts(&self) -> (Vec<u64>, u64) {
        let m = self.reads.lock().unwrap();
        let mut v: Vec<u64> = m.values().copied().collect();
        v.sort_unstable();
        (v, self.most.load(Ordering::SeqCst))
    }
}

impl ChunkSource for Remote {
    fn name(&self) -> &str {
        "s3://bucket/remote.zarr"
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
    fn read_ahead(&self) -> usize {
        self.depth
    }
    fn read_chunk(&self, idx: &[u64]) -> ndstream_engine::Result<Block> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.now.fetch_sub(1, Ordering::SeqCst);
        *self.reads.lock().unwrap().entry(idx.to_vec()).or_default() += 1;
        if self.fail_at.as_deref() == Some(idx) {
            return Err(ndstream_engine::Error::source(
                self.name(),
                idx,
                "the server answered 500",
            ));
        }
        Ok(self.stored(idx))
    }
    fn fetches(&self) -> bool {
        self.fetching
    }
    fn fetch(&self, idx: &[u64], done: FetchDone) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        *self
            .fetches
            .lock()
            .unwrap()
            .entry(idx.to_vec())
            .or_default() += 1;
        self.fetchers
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
        let failed = self.fail_at.as_deref() == Some(idx);
        // What the store holds: the chunk's values as little-endian bytes.
        let bytes: Vec<u8> = match self.stored(idx) {
            Block::F64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            _ => unreachable!(),
        };
        let (delay, name, at) = (self.delay, self.name().to_string(), idx.to_vec());
        let now = Arc::clone(&self.now);
        // Detached, as an object store's runtime thread is: the job waits
        // for every fetch it started before it returns.
        #[allow(clippy::disallowed_methods)]
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            now.fetch_sub(1, Ordering::SeqCst);
            done(if failed {
                Err(ndstream_engine::Error::source(
                    &name,
                    &at,
                    "the server answered 500",
                ))
            } else {
                Ok(Fetched::new(bytes))
            })
        });
    }
    fn decode_fetched(&self, idx: &[u64], fetched: Fetched) -> ndstream_engine::Result<Block> {
        self.decodes.fetch_add(1, Ordering::SeqCst);
        let bytes = fetched.downcast::<Vec<u8>>().unwrap();
        let v: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let shape: Vec<usize> = self
            .grid
            .chunk_shape(idx)
            .iter()
            .map(|&n| n as usize)
            .collect();
        Ok(Block::from(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), v).unwrap(),
        ))
    }
}

impl Remote {
    /// Chunk `idx` as stored.
    fn stored(&self, idx: &[u64]) -> Block {
        let r = self.grid.chunk_region(idx);
        let shape: Vec<usize> = r.iter().map(|r| (r.end - r.start) as usize).collect();
        let mut v = Vec::with_capacity(shape.iter().product());
        for i in r[0].clone() {
            for j in r[1].clone() {
                for k in r[2].clone() {
                    v.push(value(i, j, k));
                }
            }
        }
        Block::from(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), v).unwrap())
    }
}

fn exec(threads: usize, memory: u64) -> Executor {
    Executor::builder()
        .threads(threads)
        .memory(memory)
        .build()
        .unwrap()
}

/// The mean over axis 0 as NumPy computes it in f64 (pairwise sums of 12
/// values are exact to well under 1e-12 here).
fn mean0(shape: [u64; 3]) -> Vec<f64> {
    let mut out = Vec::new();
    for j in 0..shape[1] {
        for k in 0..shape[2] {
            let s: f64 = (0..shape[0]).map(|i| value(i, j, k)).sum();
            out.push(s / shape[0] as f64);
        }
    }
    out
}

const SHAPE: [u64; 3] = [12, 64, 48];
const CHUNK: [u64; 3] = [1, 16, 16];

#[test]
fn a_reduction_reads_ahead_of_its_workers_each_chunk_once_with_the_same_bits() {
    let want = mean0(SHAPE);
    let local = Remote::new(SHAPE, CHUNK, 0, 0);
    let plain = exec(2, 64 << 20)
        .compute(&local.array().mean(Some(0)).unwrap())
        .unwrap();
    for (g, w) in plain.to_f64_vec().iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    for threads in [1, 2, 4] {
        let remote = Remote::new(SHAPE, CHUNK, 3, 16);
        let e = exec(threads, 512 << 20);
        let got = e.compute(&remote.array().mean(Some(0)).unwrap()).unwrap();
        assert_eq!(bits(&got), bits(&plain), "threads {threads}");
        let (reads, most) = remote.counts();
        assert_eq!(reads.len() as u64, 12 * 4 * 3, "every chunk read");
        assert!(reads.iter().all(|&n| n == 1), "each chunk once: {reads:?}");
        assert!(
            most > threads as u64,
            "{most} reads at once with {threads} workers: nothing was read ahead"
        );
        // The read-ahead's 16, and the workers reading what it has not reached.
        assert!(
            most <= 16 + threads as u64,
            "{most} reads at once, more than the source asks"
        );
        assert!(e.budget().peak() <= 512 << 20);
        assert_eq!(
            e.budget().used(),
            0,
            "every chunk read ahead was given back"
        );
    }
}

#[test]
fn a_map_job_reads_ahead_and_a_source_read_twice_goes_through_the_cache() {
    let local = Remote::new(SHAPE, CHUNK, 0, 0);
    let l = local.array();
    let plain = exec(2, 64 << 20)
        .compute(&(&(&l * 2.0) - &l.mean(Some(0)).unwrap()))
        .unwrap();
    for (g, (n, w)) in plain
        .to_f64_vec()
        .iter()
        .zip(mean0(SHAPE).iter().cycle().enumerate())
    {
        let (i, rest) = (n as u64 / (64 * 48), n as u64 % (64 * 48));
        let x = value(i, rest / 48, rest % 48);
        assert!((g - (2.0 * x - w)).abs() < 1e-9, "{n}: {g}");
    }
    for threads in [1, 3] {
        let remote = Remote::new(SHAPE, CHUNK, 2, 12);
        let r = remote.array();
        let e = exec(threads, 512 << 20);
        let got = e
            .compute(&(&(&r * 2.0) - &r.mean(Some(0)).unwrap()))
            .unwrap();
        assert_eq!(bits(&got), bits(&plain), "threads {threads}");
        let (_, most) = remote.counts();
        assert!(most > threads as u64, "{most} reads at once");
        assert_eq!(e.budget().used(), 0);
    }
}

#[test]
fn a_budget_with_no_room_beside_the_workers_reads_nothing_ahead() {
    let local = Remote::new(SHAPE, CHUNK, 0, 0);
    let plain = exec(1, 64 << 20)
        .compute(&local.array().sum(Some(0)).unwrap())
        .unwrap();
    // Room for one worker's task and the result, not for a chunk more.
    let remote = Remote::new(SHAPE, CHUNK, 1, 16);
    let a = remote.array().sum(Some(0)).unwrap();
    let least = exec(1, 64 << 20)
        .plan(std::slice::from_ref(&a))
        .unwrap()
        .least_bytes();
    let e = exec(1, least);
    let got = e.compute(&a).unwrap();
    assert_eq!(bits(&got), bits(&plain));
    assert!(e.budget().peak() <= least);
    let (reads, most) = remote.counts();
    assert!(reads.iter().all(|&n| n == 1));
    assert_eq!(most, 1, "one worker and no room: one read at a time");
}

#[test]
fn a_failed_read_ahead_is_reported_by_the_task_that_needed_it() {
    let remote = Remote::failing(SHAPE, CHUNK, [5, 2, 1]);
    for threads in [1, 2] {
        let err = exec(threads, 512 << 20)
            .compute(&remote.array().mean(Some(0)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://bucket/remote.zarr"), "{err}");
        assert!(err.contains("500"), "{err}");
        assert!(err.contains("5, 2, 1") || err.contains("5.2.1"), "{err}");
    }
}

#[test]
fn a_fetching_source_has_more_reads_in_flight_than_threads_each_chunk_once() {
    let want = mean0(SHAPE);
    let local = Remote::new(SHAPE, CHUNK, 0, 0);
    let plain = exec(2, 64 << 20)
        .compute(&local.array().mean(Some(0)).unwrap())
        .unwrap();
    for threads in [1, 2] {
        let remote = Remote::fetching(SHAPE, CHUNK, 20, 96);
        let e = exec(threads, 512 << 20);
        let got = e.compute(&remote.array().mean(Some(0)).unwrap()).unwrap();
        assert_eq!(bits(&got), bits(&plain), "threads {threads}");
        for (g, w) in got.to_f64_vec().iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        let reads = remote.reads.lock().unwrap().clone();
        let fetches = remote.fetches.lock().unwrap().clone();
        let decodes = remote.decodes.load(Ordering::SeqCst);
        assert!(decodes > 0, "nothing was fetched");
        assert_eq!(
            decodes,
            fetches.values().sum::<u64>(),
            "every chunk fetched was decoded by a worker"
        );
        assert_eq!(
            remote.fetchers.lock().unwrap().len(),
            1,
            "one I/O thread starts every fetch"
        );
        for i in 0..12 {
            for j in 0..4 {
                for k in 0..3 {
                    let c = vec![i, j, k];
                    let n = reads.get(&c).unwrap_or(&0) + fetches.get(&c).unwrap_or(&0);
                    assert_eq!(n, 1, "chunk {c:?} read {n} times");
                }
            }
        }
        // One I/O thread starts every fetch: with one read at a time per
        // thread, at most 1 + threads could be under way.
        let most = remote.most.load(Ordering::SeqCst);
        assert!(
            most > 8 + threads as u64,
            "{most} reads at once with {threads} workers and one I/O thread"
        );
        assert!(most <= 96 + threads as u64, "{most} reads at once");
        assert!(e.budget().peak() <= 512 << 20);
        assert_eq!(e.budget().used(), 0, "every fetched chunk was given back");
    }
}

#[test]
fn a_failed_fetch_is_reported_by_the_task_that_needed_it() {
    let mut r = Arc::into_inner(Remote::fetching(SHAPE, CHUNK, 2, 32)).unwrap();
    r.fail_at = Some(vec![7, 3, 0]);
    let remote = Arc::new(r);
    for threads in [1, 2] {
        let e = exec(threads, 512 << 20);
        let err = e
            .compute(&remote.array().mean(Some(0)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://bucket/remote.zarr"), "{err}");
        assert!(err.contains("500"), "{err}");
        assert!(err.contains("7, 3, 0") || err.contains("7.3.0"), "{err}");
        assert_eq!(e.budget().used(), 0);
    }
}

/// A chunk's bits and how many times it was written.
type Written = (Vec<u64>, u64);

/// A sink whose writes each take `delay`; it keeps each chunk's bits and
/// counts writes per chunk, the most at once, and what was written when
/// it was finished.
#[derive(Debug)]
struct RemoteSink {
    grid: ChunkGrid,
    shape: Vec<u64>,
    delay: Duration,
    writers: usize,
    fail_at: Option<Vec<u64>>,
    chunks: Mutex<HashMap<Vec<u64>, Written>>,
    now: AtomicU64,
    most: AtomicU64,
    /// Chunks written and writes under way when `finish` was called.
    finished: Mutex<Option<(usize, u64)>>,
}

impl RemoteSink {
    fn new(shape: &[u64], chunk: &[u64], delay_ms: u64, writers: usize) -> RemoteSink {
        RemoteSink {
            grid: ChunkGrid::regular(shape, chunk),
            shape: shape.to_vec(),
            delay: Duration::from_millis(delay_ms),
            writers,
            fail_at: None,
            chunks: Mutex::new(HashMap::new()),
            now: AtomicU64::new(0),
            most: AtomicU64::new(0),
            finished: Mutex::new(None),
        }
    }
}

impl ChunkSink for RemoteSink {
    fn name(&self) -> &str {
        "s3://bucket/out.zarr"
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
    fn write_behind(&self) -> usize {
        self.writers
    }
    fn write_chunk(&self, idx: &[u64], data: &Block) -> ndstream_engine::Result<()> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let failed = self.fail_at.as_deref() == Some(idx);
        if !failed {
            let mut m = self.chunks.lock().unwrap();
            let e = m.entry(idx.to_vec()).or_default();
            e.0 = bits(data);
            e.1 += 1;
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
        if failed {
            return Err(ndstream_engine::Error::sink(
                self.name(),
                format!("chunk {idx:?}"),
                "the server answered 503",
            ));
        }
        Ok(())
    }
    fn finish(&self) -> ndstream_engine::Result<()> {
        let written = self.chunks.lock().unwrap().len();
        *self.finished.lock().unwrap() = Some((written, self.now.load(Ordering::SeqCst)));
        Ok(())
    }
}

#[test]
fn a_store_hands_its_chunks_to_writers_each_once_all_before_finish() {
    let local = Remote::new(SHAPE, CHUNK, 0, 0);
    let x = &(&local.array() * 3.0) + 1.0;
    let want = exec(2, 64 << 20).compute(&x).unwrap();
    let want = want.to_f64_vec();
    for threads in [1, 2] {
        let sink = RemoteSink::new(&SHAPE, &[2, 32, 16], 3, 8);
        let e = exec(threads, 512 << 20);
        let report = e.store(&x, &sink).unwrap();
        assert_eq!(report.chunks_written, 6 * 2 * 3);
        let m = sink.chunks.lock().unwrap();
        assert_eq!(m.len(), 36, "every chunk written");
        for (idx, (b, n)) in m.iter() {
            assert_eq!(*n, 1, "chunk {idx:?} written {n} times");
            let r = sink.grid.chunk_region(idx);
            let mut k = 0;
            for i in r[0].clone() {
                for j in r[1].clone() {
                    for l in r[2].clone() {
                        let at = ((i * SHAPE[1] + j) * SHAPE[2] + l) as usize;
                        assert_eq!(b[k], want[at].to_bits(), "chunk {idx:?}");
                        k += 1;
                    }
                }
            }
        }
        let most = sink.most.load(Ordering::SeqCst);
        assert!(
            most > threads as u64,
            "{most} writes at once with {threads} workers"
        );
        assert!(most <= 8, "{most} writes at once, more than the sink asks");
        assert_eq!(
            *sink.finished.lock().unwrap(),
            Some((36, 0)),
            "finished after every write ended"
        );
        assert_eq!(e.budget().used(), 0, "every chunk's memory given back");
    }
}

#[test]
fn a_failed_write_behind_is_the_jobs_error_and_the_sink_is_not_finished() {
    let local = Remote::new(SHAPE, CHUNK, 0, 0);
    let x = &local.array() * 2.0;
    for threads in [1, 3] {
        let mut sink = RemoteSink::new(&SHAPE, &[2, 32, 16], 1, 4);
        sink.fail_at = Some(vec![3, 1, 2]);
        let e = exec(threads, 512 << 20);
        let err = e.store(&x, &sink).unwrap_err().to_string();
        assert!(err.contains("s3://bucket/out.zarr"), "{err}");
        assert!(err.contains("503"), "{err}");
        assert_eq!(*sink.finished.lock().unwrap(), None, "not finished");
        assert!(!sink.chunks.lock().unwrap().contains_key(&vec![3, 1, 2]));
        assert_eq!(
            sink.now.load(Ordering::SeqCst),
            0,
            "no write outlives the job"
        );
        assert_eq!(e.budget().used(), 0);
    }
}
