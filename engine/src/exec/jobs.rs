//! Running one job of a plan: a map job (into memory or a sink) or a
//! reduction, through the runner, with the budget's admission.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::array::Array;
use crate::block::Block;
use crate::budget::Reservation;
use crate::cache::ChunkCache;
use crate::error::{human_bytes, Error, Result};
use crate::eval::{estimate, eval, fold_tiles, place, scope, EvalCtx, ReduceSetup, Setups};
use crate::grid::{region_sel, sel_shape, ChunkGrid, Selection};
use crate::kernels::reduce;
use crate::physical::{self, Job, Strategy};
use crate::plan;
use crate::readahead::{self, footprint, ReadAhead};
use crate::runner::{Msg, Runner, Tasks, Threads};
use crate::source::ChunkSink;
use crate::writebehind::WriteBehind;

use super::tasks::{task_key, TaskStore};
use super::{Executor, Progress, StoreReport};

/// Where a job's finished chunks go.
pub(super) enum Deliver<'a> {
    /// Into an in-memory result of the node's shape.
    Memory(Mutex<Block>),
    /// Into a sink (written by the workers).
    Sink(&'a dyn ChunkSink),
    /// A task of a plan run by tasks (see `tasks.rs`): into the sink, then
    /// an empty record of the task; or, without a sink, the chunk's bytes
    /// as the task's record. A task already recorded is skipped, as is
    /// one whose chunk the sink counts done ([`ChunkSink::is_done`]: a
    /// plan that finishes an interrupted write), which is recorded.
    Task {
        sink: Option<&'a dyn ChunkSink>,
        marks: Marks<'a>,
    },
}

/// Where the tasks of one stage of a plan record what they did.
#[derive(Clone, Copy)]
pub(super) struct Marks<'a> {
    pub(super) store: &'a dyn TaskStore,
    pub(super) stage: usize,
}

impl Marks<'_> {
    pub(super) fn key(&self, n: u64) -> String {
        task_key(self.stage, n)
    }
}

impl Executor {
    /// Map strategy into memory: one task per chunk of the root's grid.
    /// The result's reservation goes to `held`, for as long as the caller
    /// holds the result.
    pub(super) fn run_map(
        &self,
        root: &Array,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        held: &mut Vec<Reservation>,
    ) -> Result<Option<Block>> {
        let result_bytes = root.nbytes();
        let result_res = self.reserve_for(root, result_bytes).map_err(|e| match e {
            Error::BudgetTooSmall {
                needed,
                needed_h,
                budget,
                budget_h,
                ..
            } => {
                // The result may fit the budget but not what is free of it now.
                let held = if needed <= budget {
                    format!("{} of it are in use; ", human_bytes(self.budget.used()))
                } else {
                    String::new()
                };
                Error::BudgetTooSmall {
                    op: format!("holding the result of compute() ({:?})", root),
                    needed,
                    needed_h,
                    budget,
                    budget_h,
                    hint: format!("{held}store() it instead, or raise the memory budget"),
                }
            }
            other => other,
        })?;
        let shape: Vec<usize> = root.shape().iter().map(|&n| n as usize).collect();
        let deliver = Deliver::Memory(Mutex::new(Block::zeros(root.dtype(), &shape)));
        let grid = root.grid().clone();
        self.map_job(root, &grid, &deliver, reuse, cache, 0..grid.num_chunks())?;
        held.push(result_res);
        match deliver {
            Deliver::Memory(m) => Ok(Some(m.into_inner().unwrap_or_else(|e| e.into_inner()))),
            Deliver::Sink(_) | Deliver::Task { .. } => Ok(None),
        }
    }

    pub(super) fn run_map_sink(
        &self,
        root: &Array,
        sink: &dyn ChunkSink,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
    ) -> Result<StoreReport> {
        let deliver = Deliver::Sink(sink);
        let grid = sink.grid().clone();
        self.map_job(root, &grid, &deliver, reuse, cache, 0..grid.num_chunks())
    }

    /// Run the tasks `range` of a map job over `grid` (task `n` is chunk
    /// `n`), delivering each.
    pub(super) fn map_job(
        &self,
        root: &Array,
        grid: &ChunkGrid,
        deliver: &Deliver<'_>,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        range: std::ops::Range<u64>,
    ) -> Result<StoreReport> {
        let first = range.start;
        let total = range.end.saturating_sub(range.start);
        let big: Selection = grid
            .max_chunk_shape()
            .iter()
            .map(|&n| crate::grid::AxisSel::full(n))
            .collect();
        let sink_extra = match deliver {
            Deliver::Sink(s)
            | Deliver::Task {
                sink: Some(s),
                marks: _,
            } => s.memory_per_chunk(),
            Deliver::Memory(_) | Deliver::Task { sink: None, .. } => 0,
        };
        let ws = estimate(root, &big) + sink_extra;
        // The cache's chunks (an earlier stage's, say) are evicted on demand.
        let available = self
            .budget
            .limit()
            .saturating_sub(self.budget.used().saturating_sub(cache.bytes()));
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
        let bytes_total = if total == grid.num_chunks() {
            root.nbytes()
        } else {
            range.clone().map(bytes_per_chunk).sum::<u64>()
        };
        let skipped = std::sync::atomic::AtomicU64::new(0);
        // A sink that writes by requests gets its chunks from writer
        // threads, paid from the room the workers leave.
        let wb = match deliver {
            Deliver::Sink(s) => WriteBehind::new(
                *s,
                available.saturating_sub(threads as u64 * ws),
                ws,
                &self.cancel.flag,
                &self.budget,
            ),
            _ => None,
        };
        let work = |i: u64, ctx: &EvalCtx<'_>| -> Result<Msg> {
            let n = first + i;
            if let Deliver::Task { marks, .. } = deliver {
                if marks.store.has(&marks.key(n))? {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(Msg::Chunk {
                        n: i,
                        written: false,
                    });
                }
            }
            let idx = grid.unravel(n);
            let sel = region_sel(&grid.chunk_region(&idx));
            // Reserved before the resume check, which may read the stored
            // chunk back (within the sink's own bytes per chunk).
            let want = estimate(root, &sel) + sink_extra;
            // The label is formatted only where it is shown (a refusal).
            let res = if want > self.budget.limit() {
                let what = format!("chunk {} of {root:?}", crate::grid::ChunkIndex(idx.clone()));
                self.budget.reserve(want, &what)
            } else {
                self.budget.reserve(want, "an output chunk")
            }?;
            let sink = match deliver {
                Deliver::Sink(s) | Deliver::Task { sink: Some(s), .. } => Some(*s),
                _ => None,
            };
            if sink.is_some_and(|s| s.is_done(&idx)) {
                // A plan's task records a chunk it finds stored as done.
                if let Deliver::Task { marks, .. } = deliver {
                    marks.store.put(&marks.key(n), &[])?;
                }
                skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(Msg::Chunk {
                    n: i,
                    written: false,
                });
            }
            let b = scope(|| eval(root, &sel, ctx))?;
            match deliver {
                Deliver::Sink(s) => {
                    match &wb {
                        Some(wb) => {
                            // The chunk and its encoding stay reserved
                            // until written.
                            let mut res = res;
                            res.shrink_to(b.nbytes() as u64 + sink_extra);
                            wb.write(idx, b, res)?;
                        }
                        None => {
                            s.write_chunk(&idx, &b)?;
                            drop((b, res));
                        }
                    }
                    Ok(Msg::Chunk {
                        n: i,
                        written: true,
                    })
                }
                Deliver::Task { sink, marks } => {
                    match sink {
                        Some(s) => {
                            s.write_chunk(&idx, &b)?;
                            marks.store.put(&marks.key(n), &[])?;
                        }
                        None => b.with_ne_bytes(|bytes| marks.store.put(&marks.key(n), bytes))?,
                    }
                    drop((b, res));
                    Ok(Msg::Chunk {
                        n: i,
                        written: true,
                    })
                }
                Deliver::Memory(m) => {
                    let pos: Vec<std::ops::Range<usize>> = sel
                        .iter()
                        .map(|s| s.start as usize..(s.start + s.len) as usize)
                        .collect();
                    let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
                    place(&mut g, &pos, &b);
                    drop((g, b, res));
                    Ok(Msg::Chunk {
                        n: i,
                        written: true,
                    })
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
        // Map results are small (a chunk number), merged at once: a window
        // of a few per worker keeps the channel small whatever the job size.
        let window = (threads as u64 * 16).min(total.max(1));
        // Read-ahead gets what is left when every worker holds a task
        // (and the write-behind its part).
        let wb_room = wb.as_ref().map_or(0, |w| w.room_used(ws));
        let ra = self.read_ahead(
            &[root],
            total,
            window,
            available
                .saturating_sub(threads as u64 * ws)
                .saturating_sub(wb_room),
            |i, out| {
                let idx = grid.unravel(first + i);
                footprint(root, &region_sel(&grid.chunk_region(&idx)), out);
            },
        );
        let mut run = || {
            self.run_tasks(
                total,
                threads,
                window,
                reuse,
                cache,
                ra.as_ref(),
                work,
                |msg| {
                    // Messages carry the task's place in the range.
                    if let Msg::Chunk { n: i, written: w } = msg {
                        let b = bytes_per_chunk(first + i);
                        progress.chunks_done += 1;
                        progress.bytes_done += b;
                        written += 1;
                        if w {
                            bytes_written += b;
                        }
                        if let Some(p) = &self.progress {
                            p(&progress);
                        }
                    }
                    Ok(())
                },
            )
        };
        let r = match &wb {
            None => run(),
            Some(wb) => std::thread::scope(|s| {
                let mut started = 0;
                for _ in 0..wb.writers() {
                    let spawned = std::thread::Builder::new()
                        .name("ndstream-write-behind".into())
                        .spawn_scoped(s, || wb.writer());
                    started += usize::from(spawned.is_ok());
                }
                if started == 0 {
                    wb.close();
                    return Err(Error::ThreadStart {
                        message: "no writer thread could start".into(),
                    });
                }
                let r = run();
                wb.close();
                r
            }),
        };
        // Every write handed over has ended: the first failed one is the
        // job's error (the others then saw the job cancelled).
        if let Some(e) = wb.as_ref().and_then(WriteBehind::take_error) {
            return Err(e);
        }
        r?;
        let skipped = skipped.load(Ordering::Relaxed);
        Ok(StoreReport {
            chunks_written: written - skipped,
            chunks_skipped: skipped,
            bytes_written,
            peak_reserved: self.budget.peak(),
        })
    }

    /// Reduce strategy, as `job` (a [`Strategy::Reduce`] job of `nodes`'
    /// grid) says: task `n` folds run `n % runs` of output chunk
    /// `n / runs`'s chunk tiles ([`Job::task`]), and task partials are
    /// merged in task order. `nodes` are Reduce nodes sharing input and axes.
    /// The results' reservation goes to `held`, for as long as the caller
    /// holds the results.
    pub(super) fn run_reduce(
        &self,
        nodes: &[Array],
        job: &Job,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        held: &mut Vec<Reservation>,
    ) -> Result<Vec<Block>> {
        let setups: Vec<ReduceSetup> = nodes
            .iter()
            .map(|n| {
                ReduceSetup::of(n)
                    .ok_or_else(|| Error::invalid("compute", "array", "internal: not a reduction"))
            })
            .collect::<Result<_>>()?;
        let Strategy::Reduce { runs: per_out, .. } = job.strategy else {
            return Err(Error::invalid(
                "compute",
                "plan",
                "internal: not a reduce job",
            ));
        };
        let first = &nodes[0];
        let grid = &job.grid;
        let total = job.tasks;
        let big = physical::largest_chunk(grid);
        let result_bytes: u64 = nodes.iter().map(|n| n.nbytes()).sum();
        let result_res = self.reserve_for(first, result_bytes)?;
        // Per task: the tile working set (input evaluated once for all fused
        // reductions) and the partials; per pending merge: the partials.
        let partial: u64 = setups.iter().map(|s| s.partial_bytes(&big)).sum();
        let tile_ws = setups[0].tile_bytes(&big) + partial;
        let acc_bytes = partial;
        // The cache's chunks (an earlier stage's, say) are evicted on demand.
        let available = self
            .budget
            .limit()
            .saturating_sub(self.budget.used().saturating_sub(cache.bytes()));
        let min_need = tile_ws + acc_bytes + partial;
        if min_need > available {
            return Err(plan::too_small(
                first,
                min_need,
                self.budget.limit(),
                "one tile of the reduction",
            ));
        }
        // Scheduling only (how many tasks at once): never the results.
        let threads = (self.threads as u64)
            .min(((available - acc_bytes) / (tile_ws + partial).max(1)).max(1))
            .min(total.max(1)) as usize;
        // Claims run ahead of the in-order merge by partials alone (a
        // finished task's reservation shrinks to its partial): room for
        // every thread's working set, the rest in partials. A window of a
        // few tasks per worker keeps workers from waiting on the merging
        // thread when tasks are short (W2: 80 tasks of ~0.2 ms).
        let room = (available - acc_bytes).saturating_sub(threads as u64 * tile_ws);
        let window = ((threads as u64) * 16)
            .min((room / partial.max(1)).max(threads as u64))
            .min(total.max(1));
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
            let task = job.task(n);
            let out_sel = region_sel(&grid.chunk_region(&task.chunk));
            let want = setups[0].tile_bytes(&out_sel) + partial;
            let res = if want > self.budget.limit() {
                self.budget.reserve(want, &format!("a tile of {first:?}"))
            } else {
                self.budget.reserve(want, "a tile of a reduction")
            }?;
            let in_sel = setups[0].in_sel(&out_sel);
            let mut parts = vec![None; setups.len()];
            fold_tiles(&setups, &mut parts, &in_sel, task.tiles, ctx)?;
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
        let ra = self.read_ahead(
            &[&setups[0].x],
            total,
            window,
            room.saturating_sub(window * partial),
            |n, out| reduce_footprint(&setups[0], job, n, out),
        );
        self.run_tasks(
            total,
            threads,
            window,
            reuse,
            cache,
            ra.as_ref(),
            work,
            |msg| {
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
            },
        )?;
        drop(acc_res);
        held.push(result_res);
        Ok(results)
    }

    /// The read-ahead of a job over `roots` with tasks `0..total`, whose
    /// task `n` reads what `plan(n, out)` appends, within `room` bytes of
    /// the budget; `None` when no source under `roots` is latency-bound or
    /// the room holds no chunk.
    pub(super) fn read_ahead<'a>(
        &'a self,
        roots: &[&Array],
        total: u64,
        window: u64,
        room: u64,
        plan: impl Fn(u64, &mut Vec<readahead::Want>) + Sync + 'a,
    ) -> Option<ReadAhead<'a>> {
        let want = readahead::wanted(roots);
        if want.depth == 0 {
            return None;
        }
        ReadAhead::new(
            total,
            window,
            want,
            room,
            &self.budget,
            &self.cancel.flag,
            plan,
        )
    }

    /// Run tasks `0..total` on this executor's worker threads (the
    /// [`Threads`] runner), at most `window` ahead of the in-order merge,
    /// with `readahead`'s I/O threads reading ahead of them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_tasks(
        &self,
        total: u64,
        threads: usize,
        window: u64,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
        readahead: Option<&ReadAhead<'_>>,
        work: impl Fn(u64, &EvalCtx<'_>) -> Result<Msg> + Sync,
        mut merge: impl FnMut(Msg) -> Result<()>,
    ) -> Result<()> {
        let runner = Threads {
            threads,
            budget: &self.budget,
            cancel: &self.cancel.flag,
        };
        let setups = Setups::default();
        let tasks = Tasks {
            total,
            window,
            ctx: EvalCtx {
                cache,
                reuse,
                cancel: &self.cancel.flag,
                setups: &setups,
                readahead,
            },
        };
        let Some(ra) = readahead else {
            return runner.run(&tasks, &work, &mut merge);
        };
        let work = |n: u64, ctx: &EvalCtx<'_>| {
            ra.claimed(n);
            let r = readahead::as_task(n, || work(n, ctx));
            ra.finished(n);
            r
        };
        let r = std::thread::scope(|s| {
            for _ in 0..ra.io_threads() {
                // A thread that cannot start leaves fewer reads in flight.
                let _ = std::thread::Builder::new()
                    .name("ndstream-read-ahead".into())
                    .spawn_scoped(s, || ra.io_loop());
            }
            let r = runner.run(&tasks, &work, &mut merge);
            ra.stop();
            r
        });
        ra.clear();
        r
    }
}

/// The chunks task `n` of reduce job `job` reads: its run of chunk tiles.
pub(super) fn reduce_footprint(
    setup: &ReduceSetup,
    job: &Job,
    n: u64,
    out: &mut Vec<readahead::Want>,
) {
    let task = job.task(n);
    let out_sel = region_sel(&job.grid.chunk_region(&task.chunk));
    let in_sel = setup.in_sel(&out_sel);
    for c in task.tiles {
        footprint(&setup.x, &setup.chunk_tile(&in_sel, c), out);
    }
}
