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

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::bounded;

use crate::array::{Array, Op, EVAL_STACK_BYTES, MAX_DEPTH};
use crate::block::Block;
use crate::budget::{Budget, Reservation};
use crate::cache::ChunkCache;
use crate::error::{Error, Result};
use crate::eval::{estimate, eval, eval_masked, fold_tiles, place, scope, EvalCtx, ReduceSetup};
use crate::grid::{region_sel, sel_shape, ChunkGrid, Selection};
use crate::kernels::reduce;
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
pub struct Executor {
    budget: Budget,
    threads: usize,
    progress: Option<Arc<ProgressFn>>,
    cancel: CancelHandle,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("budget", &self.budget)
            .field("threads", &self.threads)
            .finish()
    }
}

/// Where a job's finished chunks go.
enum Deliver<'a> {
    /// Into an in-memory result of the node's shape.
    Memory(Mutex<Block>),
    /// Into a sink (written by the workers).
    Sink(&'a dyn ChunkSink),
}

/// One message from a worker to the merging thread.
enum Msg {
    /// A map task finished; its output is already delivered and its
    /// memory released (holding it until the in-order merge could starve
    /// the task the merge waits for).
    Chunk { n: u64 },
    /// The partials of one chunk tile (one per fused reduction).
    Partials {
        n: u64,
        parts: Vec<Option<reduce::Partial>>,
        _res: Reservation,
    },
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
        on_deep_stack(arrays, || self.compute_many_here(arrays))
    }

    fn compute_many_here(&self, arrays: &[Array]) -> Result<Vec<Block>> {
        self.start();
        let roots: Vec<Array> = arrays.iter().map(plan::rewrite).collect();
        let reuse = plan::Reuse::of(&roots);
        let cache = ChunkCache::new(&self.budget, self.budget.limit() / 4);
        let roots = roots
            .iter()
            .map(|r| self.stage_reductions(r, &reuse, &cache, true))
            .collect::<Result<Vec<_>>>()?;
        let reuse = reuse.for_roots(&roots);
        let mut out: Vec<Option<Block>> = vec![None; roots.len()];
        // Fuse top-level reductions that share their input and axes.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, r) in roots.iter().enumerate() {
            if let Op::Reduce {
                x, axes, keepdims, ..
            } = r.op()
            {
                if let Some(g) = groups.iter_mut().find(|g| {
                    matches!(roots[g[0]].op(), Op::Reduce { x: x2, axes: a2, keepdims: k2, .. }
                        if x2.same_node(x) && a2 == axes && k2 == keepdims && roots[g[0]].grid() == r.grid())
                }) {
                    g.push(i);
                    continue;
                }
            }
            groups.push(vec![i]);
        }
        for g in groups {
            let first = &roots[g[0]];
            match first.op() {
                // Many output chunks: fold each one's tiles inside its own
                // task (same fold order, so the same bits, with no merge
                // bottleneck on the calling thread).
                Op::Reduce { .. }
                    if g.len() == 1 && first.grid().num_chunks() >= 2 * self.threads as u64 =>
                {
                    out[g[0]] = self.run_map(first, None, &reuse, &cache)?;
                }
                Op::Reduce { .. } => {
                    let nodes: Vec<Array> = g.iter().map(|&i| roots[i].clone()).collect();
                    let blocks = match self.run_reduce(&nodes, None, &reuse, &cache) {
                        // Splitting tiles across workers needs room for
                        // partials in flight; folding inside one task per
                        // output chunk needs less. Same bits either way.
                        Err(Error::BudgetTooSmall { .. }) if g.len() == 1 => {
                            let b = self.run_map(first, None, &reuse, &cache)?;
                            b.into_iter().collect()
                        }
                        r => r?,
                    };
                    for (i, b) in g.into_iter().zip(blocks) {
                        out[i] = Some(b);
                    }
                }
                Op::Masked { x, mask } => {
                    let res = self.reserve_for(first, x.nbytes() + estimate_masked(x, mask))?;
                    let ctx = EvalCtx {
                        cache: &cache,
                        reuse: &reuse,
                        cancel: &self.cancel.flag,
                    };
                    let b = eval_masked(x, mask, &ctx)?;
                    drop(res);
                    out[g[0]] = Some(b);
                }
                _ => {
                    let b = self.run_map(first, None, &reuse, &cache)?;
                    out[g[0]] = b;
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

    /// Stream an array into a sink chunk by chunk, then mark it complete.
    /// Chunks the sink reports as already written (a resumed run) are skipped.
    ///
    /// # Errors
    /// A sink whose shape or dtype differs from the array; a working set
    /// larger than the budget (refused before any read); source, kernel or
    /// sink failures (naming the chunk); cancellation (the store is left
    /// incomplete and resumable).
    pub fn store(&self, a: &Array, sink: &dyn ChunkSink) -> Result<StoreReport> {
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
        let root = plan::rewrite(&a);
        let reuse = plan::Reuse::of(std::slice::from_ref(&root));
        let cache = ChunkCache::new(&self.budget, self.budget.limit() / 4);
        let root = self.stage_reductions(&root, &reuse, &cache, false)?;
        let reuse = reuse.for_roots(std::slice::from_ref(&root));
        let report = self.run_map_sink(&root, sink, &reuse, &cache)?;
        sink.finish()?;
        Ok(report)
    }

    fn start(&self) {
        self.cancel.flag.store(false, Ordering::SeqCst);
        self.budget.uncancel();
    }

    fn reserve_for(&self, a: &Array, bytes: u64) -> Result<Reservation> {
        self.budget.try_reserve(bytes, &format!("computing {a:?}"))
    }

    /// Replace small reductions below the root by their computed value.
    fn stage_reductions(
        &self,
        a: &Array,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        is_root: bool,
    ) -> Result<Array> {
        let inputs = a.inputs();
        let mut changed = false;
        let mut new_inputs = Vec::with_capacity(inputs.len());
        for x in inputs {
            let y = self.stage_reductions(x, reuse, cache, false)?;
            changed |= !y.same_node(x);
            new_inputs.push(y);
        }
        let a = if changed {
            plan::with_inputs(a, new_inputs)
        } else {
            a.clone()
        };
        if is_root {
            return Ok(a);
        }
        if let Op::Reduce { x, .. } = a.op() {
            let small = a.nbytes() <= (self.budget.limit() / 8).min(64 << 20);
            if small && x.size() >= 2 * a.size().max(1) {
                let b = self.run_reduce(std::slice::from_ref(&a), None, reuse, cache)?;
                let b = b
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Block::zeros(a.dtype(), &[]));
                return Array::from_block(
                    b,
                    crate::array::Chunks::Shape(a.grid().max_chunk_shape()),
                );
            }
        }
        Ok(a)
    }

    /// Map strategy into memory: one task per chunk of the root's grid.
    fn run_map(
        &self,
        root: &Array,
        _unused: Option<()>,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
    ) -> Result<Option<Block>> {
        let result_bytes = root.nbytes();
        let result_res = self.reserve_for(root, result_bytes).map_err(|e| match e {
            Error::BudgetTooSmall {
                needed,
                needed_h,
                budget,
                budget_h,
                ..
            } => Error::BudgetTooSmall {
                op: format!("holding the result of compute() ({:?})", root),
                needed,
                needed_h,
                budget,
                budget_h,
                hint: "store() it instead, or raise the memory budget".to_string(),
            },
            other => other,
        })?;
        let shape: Vec<usize> = root.shape().iter().map(|&n| n as usize).collect();
        let deliver = Deliver::Memory(Mutex::new(Block::zeros(root.dtype(), &shape)));
        let grid = root.grid().clone();
        self.map_job(root, &grid, &deliver, reuse, cache)?;
        drop(result_res);
        match deliver {
            Deliver::Memory(m) => Ok(Some(m.into_inner().unwrap_or_else(|e| e.into_inner()))),
            Deliver::Sink(_) => Ok(None),
        }
    }

    fn run_map_sink(
        &self,
        root: &Array,
        sink: &dyn ChunkSink,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
    ) -> Result<StoreReport> {
        let deliver = Deliver::Sink(sink);
        let grid = sink.grid().clone();
        self.map_job(root, &grid, &deliver, reuse, cache)
    }

    /// Run one task per chunk of `grid`, delivering each.
    fn map_job(
        &self,
        root: &Array,
        grid: &ChunkGrid,
        deliver: &Deliver<'_>,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
    ) -> Result<StoreReport> {
        let total = grid.num_chunks();
        let big: Selection = grid
            .max_chunk_shape()
            .iter()
            .map(|&n| crate::grid::AxisSel::full(n))
            .collect();
        let sink_extra = match deliver {
            Deliver::Sink(s) => s.memory_per_chunk(),
            Deliver::Memory(_) => 0,
        };
        let ws = estimate(root, &big) + sink_extra;
        let available = self.budget.limit().saturating_sub(self.budget.used());
        if ws > available {
            return Err(plan::too_small(
                root,
                ws,
                self.budget.limit(),
                "one output chunk",
            ));
        }
        let threads = (self.threads as u64)
            .min((available / ws.max(1)).max(1))
            .min(total.max(1)) as usize;
        let bytes_per_chunk = |n: u64| -> u64 {
            grid.chunk_shape(&grid.unravel(n)).iter().product::<u64>() * root.dtype().size() as u64
        };
        let bytes_total = root.nbytes();
        let skipped = std::sync::atomic::AtomicU64::new(0);
        let work = |n: u64, ctx: &EvalCtx<'_>| -> Result<Msg> {
            let idx = grid.unravel(n);
            let sel = region_sel(&grid.chunk_region(&idx));
            if let Deliver::Sink(s) = deliver {
                if s.is_done(&idx) {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(Msg::Chunk { n });
                }
            }
            let want = estimate(root, &sel) + sink_extra;
            let res = self.budget.reserve(
                want,
                &format!(
                    "chunk {} of {:?}",
                    crate::grid::ChunkIndex(idx.clone()),
                    root
                ),
            )?;
            let b = scope(|| eval(root, &sel, ctx))?;
            match deliver {
                Deliver::Sink(s) => {
                    s.write_chunk(&idx, &b)?;
                    drop((b, res));
                    Ok(Msg::Chunk { n })
                }
                Deliver::Memory(m) => {
                    let pos: Vec<std::ops::Range<usize>> = sel
                        .iter()
                        .map(|s| s.start as usize..(s.start + s.len) as usize)
                        .collect();
                    let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
                    place(&mut g, &pos, &b);
                    drop((g, b, res));
                    Ok(Msg::Chunk { n })
                }
            }
        };
        let mut progress = Progress {
            chunks_total: total,
            bytes_total,
            ..Progress::default()
        };
        let mut written = 0u64;
        let mut bytes_written = 0u64;
        self.run_tasks(total, threads, total.max(1), reuse, cache, work, |msg| {
            if let Msg::Chunk { n, .. } = msg {
                let b = bytes_per_chunk(n);
                progress.chunks_done += 1;
                progress.bytes_done += b;
                written += 1;
                bytes_written += b;
                if let Some(p) = &self.progress {
                    p(&progress);
                }
            }
            Ok(())
        })?;
        let skipped = skipped.load(Ordering::Relaxed);
        Ok(StoreReport {
            chunks_written: written - skipped,
            chunks_skipped: skipped,
            bytes_written,
            peak_reserved: self.budget.peak(),
        })
    }

    /// Reduce strategy: tasks are (output chunk, run of chunk tiles) pairs
    /// (see [`tiles_per_task`]); a task folds its tiles, and task partials
    /// are merged in task order. `nodes` are Reduce nodes sharing input and axes.
    fn run_reduce(
        &self,
        nodes: &[Array],
        _unused: Option<()>,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
    ) -> Result<Vec<Block>> {
        let setups: Vec<ReduceSetup> = nodes
            .iter()
            .map(|n| {
                ReduceSetup::of(n)
                    .ok_or_else(|| Error::invalid("compute", "array", "internal: not a reduction"))
            })
            .collect::<Result<_>>()?;
        let first = &nodes[0];
        let grid = first.grid().clone();
        let outs = grid.num_chunks();
        let tiles = setups[0].num_chunk_tiles().max(1);
        let group = tiles_per_task(outs, tiles);
        let per_out = tiles.div_ceil(group);
        let total = outs * per_out;
        let big: Selection = grid
            .max_chunk_shape()
            .iter()
            .map(|&n| crate::grid::AxisSel::full(n))
            .collect();
        let result_bytes: u64 = nodes.iter().map(|n| n.nbytes()).sum();
        let result_res = self.reserve_for(first, result_bytes)?;
        // Per task: the tile working set (input evaluated once for all fused
        // reductions) and the partials; per pending merge: the partials.
        let partial: u64 = setups.iter().map(|s| s.partial_bytes(&big)).sum();
        let tile_ws = setups[0].tile_bytes(&big) + partial;
        let acc_bytes = partial;
        let available = self.budget.limit().saturating_sub(self.budget.used());
        let min_need = tile_ws + acc_bytes + partial;
        if min_need > available {
            return Err(plan::too_small(
                first,
                min_need,
                self.budget.limit(),
                "one tile of the reduction",
            ));
        }
        let threads = (self.threads as u64)
            .min(((available - acc_bytes) / (tile_ws + partial).max(1)).max(1))
            .min(total) as usize;
        let window = ((threads as u64) * 4)
            .min(((available - acc_bytes) / (tile_ws + partial).max(1)).max(1));
        let acc_res = self
            .budget
            .try_reserve(acc_bytes, "reduction accumulators")?;

        let shapes: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| n.shape().iter().map(|&v| v as usize).collect())
            .collect();
        let mut results: Vec<Block> = nodes
            .iter()
            .zip(&shapes)
            .map(|(n, s)| Block::zeros(n.dtype(), s))
            .collect();
        let work = |n: u64, ctx: &EvalCtx<'_>| -> Result<Msg> {
            let (o, g) = (n / per_out, n % per_out);
            let out_sel = region_sel(&grid.chunk_region(&grid.unravel(o)));
            let want = setups[0].tile_bytes(&out_sel) + partial;
            let res = self.budget.reserve(want, &format!("a tile of {first:?}"))?;
            let in_sel = setups[0].in_sel(&out_sel);
            let mut parts = vec![None; setups.len()];
            let tiles = g * group..((g + 1) * group).min(tiles);
            fold_tiles(&setups, &mut parts, &in_sel, tiles, ctx)?;
            let mut res = res;
            res.shrink_to(partial);
            Ok(Msg::Partials {
                n,
                parts,
                _res: res,
            })
        };
        let mut accs: Vec<Option<reduce::Partial>> = vec![None; nodes.len()];
        let mut progress = Progress {
            chunks_total: total,
            bytes_total: setups[0].x.nbytes(),
            ..Progress::default()
        };
        let tile_bytes_est = setups[0].x.nbytes() / total.max(1);
        self.run_tasks(total, threads, window, reuse, cache, work, |msg| {
            let Msg::Partials { n, parts, .. } = msg else {
                return Ok(());
            };
            for (k, (acc, p)) in accs.iter_mut().zip(parts).enumerate() {
                if let Some(p) = p {
                    match acc.as_mut() {
                        None => *acc = Some(p),
                        Some(a) => reduce::merge(setups[k].op, a, p)?,
                    }
                }
            }
            if n % per_out == per_out - 1 {
                let o = n / per_out;
                let idx = grid.unravel(o);
                let out_sel = region_sel(&grid.chunk_region(&idx));
                let pos: Vec<std::ops::Range<usize>> = out_sel
                    .iter()
                    .map(|s| s.start as usize..(s.start + s.len) as usize)
                    .collect();
                for (k, acc) in accs.iter_mut().enumerate() {
                    let p = match acc.take() {
                        Some(p) => p,
                        None => setups[k].empty_partial(&setups[k].in_sel(&out_sel))?,
                    };
                    let b = setups[k].finish(&nodes[k], p, &out_sel)?;
                    debug_assert_eq!(b.shape(), sel_shape(&out_sel).as_slice());
                    place(&mut results[k], &pos, &b);
                }
            }
            progress.chunks_done += 1;
            progress.bytes_done += tile_bytes_est;
            if let Some(p) = &self.progress {
                p(&progress);
            }
            Ok(())
        })?;
        drop(acc_res);
        drop(result_res);
        Ok(results)
    }

    /// The worker pool: `threads` scoped workers claim task numbers
    /// `0..total` in order, at most `window` ahead of the merge; `merge`
    /// gets results strictly in task order on the calling thread.
    #[allow(clippy::too_many_arguments)]
    fn run_tasks(
        &self,
        total: u64,
        threads: usize,
        window: u64,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        work: impl Fn(u64, &EvalCtx<'_>) -> Result<Msg> + Sync,
        mut merge: impl FnMut(Msg) -> Result<()>,
    ) -> Result<()> {
        if total == 0 {
            return Ok(());
        }
        let threads = threads.max(1);
        let window = window.max(1);
        let claim = Mutex::new((0u64, 0u64)); // (next to claim, merged so far)
        let claim_cv = Condvar::new();
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let fail = |e: Error| {
            let mut g = first_error.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none() {
                *g = Some(e);
            }
            self.cancel.flag.store(true, Ordering::SeqCst);
            self.budget.cancel();
            claim_cv.notify_all();
        };
        let (tx, rx) = bounded::<Msg>(window as usize);
        let ctx = EvalCtx {
            cache,
            reuse,
            cancel: &self.cancel.flag,
        };
        std::thread::scope(|s| {
            for _ in 0..threads {
                let tx = tx.clone();
                let (work, claim, claim_cv, fail, ctx) = (&work, &claim, &claim_cv, &fail, &ctx);
                let worker = std::thread::Builder::new()
                    .name("ndstream-worker".into())
                    .stack_size(EVAL_STACK_BYTES);
                let spawned = worker.spawn_scoped(s, move || loop {
                    let n = {
                        let mut g = claim.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if self.cancel.flag.load(Ordering::SeqCst) || g.0 >= total {
                                return;
                            }
                            if g.0 < g.1 + window {
                                break;
                            }
                            g = claim_cv.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                        g.0 += 1;
                        g.0 - 1
                    };
                    let r = catch_unwind(AssertUnwindSafe(|| work(n, ctx)));
                    match r {
                        Ok(Ok(msg)) => {
                            if tx.send(msg).is_err() {
                                return;
                            }
                        }
                        Ok(Err(e)) => {
                            fail(e);
                            return;
                        }
                        Err(p) => {
                            let message = p
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_else(|| "unknown panic".to_string());
                            fail(Error::WorkerPanic {
                                task: format!("task {n}"),
                                message,
                            });
                            return;
                        }
                    }
                });
                if let Err(e) = spawned {
                    fail(Error::ThreadStart {
                        message: e.to_string(),
                    });
                    break;
                }
            }
            drop(tx);
            // Merge strictly in order.
            let mut pending: BTreeMap<u64, Msg> = BTreeMap::new();
            let mut next = 0u64;
            while next < total {
                let msg = match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break, // all workers gone: an error or cancellation
                };
                let n = match &msg {
                    Msg::Chunk { n, .. } | Msg::Partials { n, .. } => *n,
                };
                pending.insert(n, msg);
                while let Some(m) = pending.remove(&next) {
                    if let Err(e) = merge(m) {
                        fail(e);
                        break;
                    }
                    next += 1;
                    let mut g = claim.lock().unwrap_or_else(|p| p.into_inner());
                    g.1 = next;
                    claim_cv.notify_all();
                }
                if self.cancel.flag.load(Ordering::SeqCst) {
                    break;
                }
            }
            // Stop the workers (they see the flag or a closed channel).
            if next < total {
                self.cancel.flag.store(true, Ordering::SeqCst);
                self.budget.cancel();
                claim_cv.notify_all();
            }
            drop(rx);
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        if self.cancel.flag.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        Ok(())
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

fn estimate_masked(x: &Array, mask: &Array) -> u64 {
    let ax0 = x.grid().axes();
    if ax0.is_empty() {
        return x.dtype().size() as u64 + 1;
    }
    let mut sel: Selection = x
        .shape()
        .iter()
        .map(|&n| crate::grid::AxisSel::full(n))
        .collect();
    sel[0] = crate::grid::AxisSel::full(ax0[0].max_size());
    estimate(x, &sel) + estimate(mask, &sel)
}

/// Reduction tasks wanted at least (when there are enough chunk tiles):
/// work for every worker, and a constant, so the fold never depends on the
/// thread count.
const MIN_REDUCE_TASKS: u64 = 64;

/// Chunk tiles one reduction task folds: all of an output chunk's when
/// there are [`MIN_REDUCE_TASKS`] output chunks, else runs of them, cut so
/// that there are about that many tasks. Folding on the workers keeps the
/// in-order merge on the calling thread short (W3a: 72 merges, not 2232).
fn tiles_per_task(outs: u64, tiles: u64) -> u64 {
    let splits = MIN_REDUCE_TASKS
        .div_ceil(outs.max(1))
        .clamp(1, tiles.max(1));
    tiles.max(1).div_ceil(splits)
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
