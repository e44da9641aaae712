//! The streaming executor: runs array programs on worker threads inside one
//! memory budget.
//!
//! A job is a list of *tasks*, generated lazily as numbers (never a
//! heap-allocated task graph): task `n` is an output chunk, or for a
//! reduction at the top of the plan, a run of chunk tiles of one output
//! chunk (`n = o * runs + r`; the run length is fixed by the plan, never by
//! the thread count, and the worker folds the run itself). Workers (scoped
//! threads) claim task numbers in order; before running one they reserve its whole working set from the
//! [`Budget`] (admission: a started task can always finish, so the job cannot
//! deadlock on its own memory). Results travel on a bounded crossbeam
//! channel to the calling thread, which merges reduction partials strictly
//! in task order (determinism: the same bits for any thread count) and
//! delivers finished chunks. A window bounds how far claims run ahead of the
//! merge, so partials waiting to be merged are bounded too.
//!
//! Stores are written by the workers themselves (`ChunkSink::write_chunk`
//! is thread-safe), so compression runs on every core.
//!
//! Before the main job, small reductions inside the expression (a mean
//! used to centre data, `nansum(...) / 2`) run as jobs of their own and are
//! replaced by their in-memory result, and slices are pushed below
//! reductions (`x.mean(0)[::100]` reduces only the columns it keeps).
//!
//! This module holds the executor's API and the order of a job's parts;
//! `jobs.rs` runs each job (map, reduction) through the runner.

mod jobs;
mod tasks;

pub use tasks::{
    check_key, task_key, write_then_rename, DirStore, StageKind, StageReport, TaskPlan, TaskStage,
    TaskStore,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::array::{Array, Chunks, Op, EVAL_STACK_BYTES, MAX_DEPTH};
use crate::block::Block;
use crate::budget::{lock, Budget, Reservation};
use crate::cache::ChunkCache;
use crate::error::{Error, Result};
use crate::eval::{eval_masked, EvalCtx, Setups};
use crate::grid::ChunkGrid;
use crate::physical::{self, PhysicalPlan, SinkNeeds, Strategy};
use crate::plan;
use crate::source::ChunkSink;

/// How far a job has got, for progress bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub chunks_done: u64,
    pub chunks_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A progress callback.
pub type ProgressFn = dyn Fn(&Progress) + Send + Sync;

/// What a [`Executor::store`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Chunks written in this run.
    pub chunks_written: u64,
    /// Chunks skipped because an earlier run had written them (resume).
    pub chunks_skipped: u64,
    /// Uncompressed bytes written.
    pub bytes_written: u64,
    /// The budget's high-water mark so far (this job and any before it on
    /// the same executor; `budget().reset_peak()` starts afresh).
    pub peak_reserved: u64,
}

/// Stops a running job from another thread (e.g. a Ctrl-C handler).
#[derive(Clone, Debug)]
pub struct CancelHandle {
    flag: Arc<AtomicBool>,
    budget: Budget,
}

impl CancelHandle {
    /// Ask the job to stop: no new task starts, running ones finish or
    /// abort, and the job returns [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.budget.cancel();
    }
}

/// Builds an [`Executor`].
#[derive(Default)]
pub struct ExecutorBuilder {
    memory: Option<u64>,
    threads: Option<usize>,
    progress: Option<Arc<ProgressFn>>,
}

impl std::fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("memory", &self.memory)
            .field("threads", &self.threads)
            .finish()
    }
}

impl ExecutorBuilder {
    /// The memory budget in bytes (default: a quarter of RAM, at most 8 GiB).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// The memory budget as people write it: `256MiB`, `2GB`, `1e9`.
    ///
    /// # Errors
    /// A string that is not a size.
    pub fn memory_str(self, size: &str) -> Result<Self> {
        Ok(self.memory(crate::parse_bytes(size)?))
    }

    /// Worker threads (default: all cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Call `f` as chunks finish.
    pub fn progress(mut self, f: Arc<ProgressFn>) -> Self {
        self.progress = Some(f);
        self
    }

    /// The executor.
    ///
    /// # Errors
    /// A zero budget.
    pub fn build(self) -> Result<Executor> {
        let memory = self.memory.unwrap_or_else(default_memory);
        if memory == 0 {
            return Err(Error::invalid(
                "executor",
                "memory",
                "the memory budget must be positive",
            ));
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let budget = Budget::new(memory);
        Ok(Executor {
            cancel: CancelHandle {
                flag: Arc::new(AtomicBool::new(false)),
                budget: budget.clone(),
            },
            budget,
            threads,
            progress: self.progress,
            running: Mutex::new(()),
        })
    }
}

/// This process's peak resident set size in bytes (Linux `VmHWM`; 0 where
/// unknown): what memory-budget tests and `ndstream stress` check.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// A quarter of physical memory, capped at 8 GiB (1 GiB if unknown).
pub fn default_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map(|kib| kib * 1024);
    match total {
        Some(t) => (t / 4).min(8 << 30),
        None => 1 << 30,
    }
}

/// Runs array programs: worker threads, one memory budget, a chunk cache.
///
/// ```
/// use ndstream_engine::{Array, Distribution, Executor};
/// let exec = Executor::builder().memory(64 << 20).threads(2).build().unwrap();
/// let x = Array::random(Distribution::Normal { loc: 10.0, scale: 0.1 }, &[2000, 2000], [500, 500].into(), 42).unwrap();
/// let m = exec.compute(&x.mean(Some(0)).unwrap()).unwrap();
/// assert_eq!(m.shape(), &[2000]);
/// assert!(exec.budget().peak() <= 64 << 20);
/// ```
///
/// # Several jobs on one executor
/// An `Executor` is `Send + Sync` and can be shared between threads (for
/// example in an `Arc`). It runs **one job at a time**: a `compute`,
/// `compute_many` or `store` called while another runs waits for it to
/// finish, then has the whole budget and every thread to itself, so jobs
/// never compete for memory and each gets the bits it would get alone.
/// [`CancelHandle::cancel`] stops the job running at that moment (a job
/// still waiting starts afterwards as usual); [`plan`](Executor::plan)
/// does not wait. A job must not start another on the same executor from
/// inside itself (a [`map_blocks`](crate::Array::map_blocks) closure or a
/// progress callback): that waits for itself forever. To run jobs side by
/// side, give each its own executor and budget.
pub struct Executor {
    budget: Budget,
    threads: usize,
    progress: Option<Arc<ProgressFn>>,
    cancel: CancelHandle,
    /// Held for the whole of a job: jobs on one executor run one at a time
    /// (they share the cancel flag and the budget's evictor slot).
    running: Mutex<()>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("budget", &self.budget)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Executor {
    /// A builder with the defaults (all cores, a quarter of RAM).
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// An executor with the defaults.
    pub fn new() -> Executor {
        #[allow(clippy::expect_used)]
        ExecutorBuilder::default()
            .build()
            .expect("the default budget is positive")
    }

    /// The memory budget (its `peak()` is the high-water mark of all jobs so far).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// A handle that stops the running job from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Compute an array into memory.
    ///
    /// # Errors
    /// A result or working set larger than the budget (refused before any
    /// read), a source or kernel failure (naming the chunk), cancellation.
    pub fn compute(&self, a: &Array) -> Result<Block> {
        let mut v = self.compute_many(std::slice::from_ref(a))?;
        Ok(v.remove(0))
    }

    /// Compute several arrays in one pass: reductions of the same input
    /// (e.g. its sum, mean and std) read each input chunk once.
    ///
    /// # Errors
    /// As [`compute`](Executor::compute).
    pub fn compute_many(&self, arrays: &[Array]) -> Result<Vec<Block>> {
        let _job = lock(&self.running);
        on_deep_stack(arrays, || self.compute_many_here(arrays))
    }

    fn compute_many_here(&self, arrays: &[Array]) -> Result<Vec<Block>> {
        self.start();
        let plan = self.compile(arrays, None)?;
        let cache = ChunkCache::new(&self.budget, self.budget.limit() / 4);
        let reuse = plan::Reuse::of(&plan.rewritten);
        // Every result stays reserved until it is returned (the plan
        // counts the ones held while later parts run).
        let mut held = Vec::new();
        let roots = self.run_stages(&plan, &reuse, &cache, &mut held)?;
        let reuse = reuse.for_roots(&roots);
        let mut out: Vec<Option<Block>> = vec![None; roots.len()];
        for part in &plan.parts {
            let first = &roots[part.results[0]];
            match (&part.job.strategy, first.op()) {
                (Strategy::Reduce { .. }, _) => {
                    let nodes: Vec<Array> =
                        part.results.iter().map(|&i| roots[i].clone()).collect();
                    let blocks = self.run_reduce(&nodes, &part.job, &reuse, &cache, &mut held)?;
                    for (&i, b) in part.results.iter().zip(blocks) {
                        out[i] = Some(b);
                    }
                }
                (Strategy::Masked, Op::Masked { x, mask }) => {
                    let mut res = self.reserve_for(first, part.job.least_bytes)?;
                    let setups = Setups::default();
                    let ctx = EvalCtx {
                        cache: &cache,
                        reuse: &reuse,
                        cancel: &self.cancel.flag,
                        setups: &setups,
                        readahead: None,
                    };
                    let b = eval_masked(x, mask, &ctx)?;
                    res.shrink_to(b.nbytes() as u64);
                    held.push(res);
                    out[part.results[0]] = Some(b);
                }
                _ => {
                    out[part.results[0]] = self.run_map(first, &reuse, &cache, &mut held)?;
                }
            }
        }
        out.into_iter()
            .map(|b| {
                b.ok_or_else(|| {
                    Error::invalid("compute", "arrays", "internal: a result was not produced")
                })
            })
            .collect()
    }

    /// Run a plan's staged reductions (and scan carries) in order, each with the results of
    /// the stages before it in their stand-ins' places; the plan's roots
    /// with every stand-in replaced by its computed result. The results'
    /// reservations go to `held` (the roots hold the results).
    fn run_stages(
        &self,
        plan: &PhysicalPlan,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        held: &mut Vec<Reservation>,
    ) -> Result<Vec<Array>> {
        let mut done: HashMap<u64, Array> = HashMap::new();
        for st in &plan.stages {
            let node = physical::substitute(&st.node, &done);
            let b = match st.job.strategy {
                Strategy::Reduce { .. } => self
                    .run_reduce(std::slice::from_ref(&node), &st.job, reuse, cache, held)?
                    .into_iter()
                    .next(),
                // A scan's carry: a map job into memory.
                _ => self.run_map(&node, reuse, cache, held)?,
            }
            .unwrap_or_else(|| Block::zeros(node.dtype(), &[]));
            let a = Array::from_block(b, Chunks::Shape(node.grid().max_chunk_shape()))?;
            done.insert(st.stand_in.id(), a);
        }
        Ok(plan
            .roots
            .iter()
            .map(|r| physical::substitute(r, &done))
            .collect())
    }

    /// Stream an array into a sink chunk by chunk, then mark it complete.
    /// Chunks the sink reports as already written (a resumed run) are skipped.
    ///
    /// # Errors
    /// A sink whose shape or dtype differs from the array; a working set
    /// larger than the budget (refused before any read); source, kernel or
    /// sink failures (naming the chunk); cancellation (the store is left
    /// incomplete and resumable).
    pub fn store(&self, a: &Array, sink: &dyn ChunkSink) -> Result<StoreReport> {
        let _job = lock(&self.running);
        on_deep_stack(std::slice::from_ref(a), || self.store_here(a, sink))
    }

    fn store_here(&self, a: &Array, sink: &dyn ChunkSink) -> Result<StoreReport> {
        self.start();
        if !a.known_len() {
            return Err(Error::UnknownLength { op: "store" });
        }
        if sink.shape() != a.shape() {
            return Err(Error::Shape {
                op: "store",
                left: a.shape().to_vec(),
                right: sink.shape().to_vec(),
            });
        }
        let a = if sink.dtype() != a.dtype() {
            a.astype(sink.dtype())
        } else {
            a.clone()
        };
        let plan = self.compile(
            std::slice::from_ref(&a),
            Some(SinkNeeds {
                grid: sink.grid(),
                bytes_per_chunk: sink.memory_per_chunk(),
            }),
        )?;
        let cache = ChunkCache::new(&self.budget, self.budget.limit() / 4);
        let reuse = plan::Reuse::of(&plan.rewritten);
        let mut held = Vec::new();
        let roots = self.run_stages(&plan, &reuse, &cache, &mut held)?;
        let root = &roots[0];
        let reuse = reuse.for_roots(&roots);
        let report = self.run_map_sink(root, sink, &reuse, &cache)?;
        sink.finish()?;
        Ok(report)
    }

    /// Compile `arrays` for [`compute_many`](Executor::compute_many)
    /// without running anything: the staged reductions, each job's
    /// strategy, tasks and least memory, checked against this executor's
    /// budget (see [`PhysicalPlan`]).
    ///
    /// ```
    /// use ndstream_engine::{Array, Distribution, Executor};
    /// let exec = Executor::builder().memory(64 << 20).threads(2).build().unwrap();
    /// let x = Array::random(Distribution::Normal { loc: 0.0, scale: 1.0 }, &[4000, 1000], [500, 1000].into(), 1).unwrap();
    /// let centred = &x - &x.mean(Some(0)).unwrap();
    /// let plan = exec.plan(&[centred.std(None, 0).unwrap()]).unwrap();
    /// assert_eq!(plan.staged(), 1); // the mean runs first
    /// assert!(plan.least_bytes() <= 64 << 20);
    /// ```
    ///
    /// # Errors
    /// [`Error::BudgetTooSmall`] naming the operation, the bytes and what to
    /// change; [`Error::TooDeep`] for an expression deeper than
    /// [`MAX_DEPTH`](crate::MAX_DEPTH).
    pub fn plan(&self, arrays: &[Array]) -> Result<PhysicalPlan> {
        on_deep_stack(arrays, || self.compile(arrays, None))
    }

    /// Compile a store of `a` into a sink written in the units of `grid`,
    /// which needs `sink_bytes_per_chunk` of its own per unit
    /// ([`ChunkSink::memory_per_chunk`]), without running or creating
    /// anything. Callers that create the sink (the facade's `store`) call
    /// this first, so that a plan the budget refuses leaves no file behind.
    ///
    /// # Errors
    /// As [`plan`](Executor::plan).
    pub fn plan_store(
        &self,
        a: &Array,
        grid: &ChunkGrid,
        sink_bytes_per_chunk: u64,
    ) -> Result<PhysicalPlan> {
        on_deep_stack(std::slice::from_ref(a), || {
            self.compile(
                std::slice::from_ref(a),
                Some(SinkNeeds {
                    grid,
                    bytes_per_chunk: sink_bytes_per_chunk,
                }),
            )
        })
    }

    /// The plan against the whole budget: a job runs alone on its executor
    /// (one at a time), so what another job holds now, or what a caller of
    /// [`plan`](Executor::plan) sees in use, never changes the plan.
    fn compile(&self, arrays: &[Array], sink: Option<SinkNeeds<'_>>) -> Result<PhysicalPlan> {
        let limit = self.budget.limit();
        physical::compile(arrays, sink, limit, limit)
    }

    fn start(&self) {
        self.cancel.flag.store(false, Ordering::SeqCst);
        self.budget.uncancel();
    }

    fn reserve_for(&self, a: &Array, bytes: u64) -> Result<Reservation> {
        self.budget.try_reserve(bytes, &format!("computing {a:?}"))
    }
}

impl Array {
    /// Compute into memory with a default [`Executor`] (all cores, a
    /// quarter of RAM).
    ///
    /// # Errors
    /// As [`Executor::compute`].
    pub fn compute(&self) -> Result<Block> {
        Executor::new().compute(self)
    }

    /// Stream into a sink with a default [`Executor`].
    ///
    /// # Errors
    /// As [`Executor::store`].
    pub fn store(&self, sink: &dyn ChunkSink) -> Result<StoreReport> {
        Executor::new().store(self, sink)
    }
}

/// Compute several arrays in one pass with a default [`Executor`]; shared
/// inputs are read once (`compute(&[x.sum(None)?, x.mean(None)?, x.std(None, 0)?])`).
///
/// # Errors
/// As [`Executor::compute_many`].
pub fn compute(arrays: &[Array]) -> Result<Vec<Block>> {
    Executor::new().compute_many(arrays)
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

/// Run `f` (a whole job: planning, then the workers) on the calling thread,
/// or, for an expression deeper than a caller's stack is sure to hold, on
/// a scoped thread with a stack sized for [`MAX_DEPTH`]. Deeper expressions
/// are refused before anything runs.
fn on_deep_stack<T: Send>(arrays: &[Array], f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let depth = arrays.iter().map(Array::depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep {
            depth,
            limit: MAX_DEPTH,
        });
    }
    if depth <= SHALLOW_DEPTH {
        return f();
    }
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("ndstream-plan".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| Error::ThreadStart {
                message: e.to_string(),
            })?;
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Expressions up to this deep are planned on the caller's thread (any
/// thread's stack holds them); deeper ones on a thread of their own.
const SHALLOW_DEPTH: usize = 200;
