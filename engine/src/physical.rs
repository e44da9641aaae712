//! The physical plan: every decision a job takes, made once, before
//! anything is read or created.
//!
//! [`compile`] rewrites the expressions ([`plan::rewrite`]), picks the
//! reductions to compute ahead of the main job (*stages*: small results of
//! large inputs, such as the mean that centres `x - x.mean(0)`), groups the
//! results that share one reduction pass, chooses each job's strategy and
//! computes its tiling, task count and least working set, and refuses a
//! plan the budget cannot hold ([`Error::BudgetTooSmall`], naming the
//! operation, the bytes and what to change). The executor then only
//! follows the plan: the strategy and the runs of tiles folded into each
//! partial are constants of the plan, never of the thread count, so the
//! results are the same bits for any thread count and schedule.
//!
//! A stage's reduction is replaced, in the later stages and the main job,
//! by a *stand-in* of its result's shape, dtype and chunks (a lazy constant
//! whose working set is what the computed result's will be), so that the
//! main job's working set is estimated before any stage runs. Before a
//! job runs, [`substitute`] puts the computed results in the stand-ins'
//! places.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::array::{Array, Chunks, Op};
use crate::error::{human_bytes, Error, Result};
use crate::eval::{estimate, tiles_per_task, ReduceSetup, MIN_REDUCE_TASKS};
use crate::grid::{AxisSel, ChunkGrid, Selection};
use crate::plan;
#[cfg(doc)]
use crate::ChunkSource;

/// How a job's tasks cover its output.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// One task per chunk of the output grid (a reduction folds all of an
    /// output chunk's tiles inside its task, in runs of `run_len`).
    Map,
    /// A reduction's tasks are runs of `run_len` chunk tiles of one output
    /// chunk (`runs` per output chunk, `tiles` in all); the partials are
    /// merged in task order.
    Reduce {
        /// Tiles along the reduced axes of each output chunk.
        tiles: u64,
        /// Tiles folded into one partial (one task).
        run_len: u64,
        /// Tasks per output chunk (`tiles / run_len`, rounded up).
        runs: u64,
    },
    /// A boolean-mask selection (an unknown length), evaluated whole.
    Masked,
}

/// One job of a plan: a strategy over a grid of output chunks.
#[derive(Clone, Debug)]
pub struct Job {
    /// How the tasks cover the output.
    pub strategy: Strategy,
    /// The output's chunk grid (a store's: the sink's write units).
    pub grid: ChunkGrid,
    /// Tasks in the job.
    pub tasks: u64,
    /// The least memory the job needs at once (one task's working set, the
    /// result of a `compute`, the accumulators of a reduction), bytes.
    pub least_bytes: u64,
}

impl Job {
    /// What task `n` computes: its output chunk (an index into
    /// [`grid`](Job::grid)) and the range of chunk tiles it folds (for a
    /// reduction; empty for other jobs).
    pub fn task(&self, n: u64) -> TaskSpec {
        match self.strategy {
            Strategy::Reduce {
                tiles,
                run_len,
                runs,
            } => {
                let (o, r) = (n / runs, n % runs);
                TaskSpec {
                    chunk: self.grid.unravel(o),
                    tiles: r * run_len..((r + 1) * run_len).min(tiles),
                }
            }
            Strategy::Map | Strategy::Masked => TaskSpec {
                chunk: self.grid.unravel(n),
                tiles: 0..0,
            },
        }
    }
}

/// One task of a [`Job`]: an output chunk and, for a reduction, the chunk
/// tiles it folds. A fixed piece of work: its result does not depend on
/// where, when or how often it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// The output chunk's index in the job's grid.
    pub chunk: Vec<u64>,
    /// The chunk tiles folded (reductions), in input order.
    pub tiles: std::ops::Range<u64>,
}

/// A reduction (or a scan's carry) computed ahead of the main job.
#[derive(Debug)]
pub(crate) struct Stage {
    /// The reduction; its inputs may hold stand-ins of earlier stages.
    pub(crate) node: Array,
    /// What the later stages and the roots hold in its place.
    pub(crate) stand_in: Array,
    pub(crate) job: Job,
}

/// Results computed by one pass (several reductions of one input over the
/// same axes share it), or a store.
#[derive(Debug)]
pub(crate) struct Part {
    /// Indexes of the roots this pass computes.
    pub(crate) results: Vec<usize>,
    pub(crate) job: Job,
}

/// A job compiled before anything runs (see the module docs). Built by
/// [`Executor::plan`](crate::Executor::plan) and
/// [`Executor::plan_store`](crate::Executor::plan_store); its `Display` is
/// a summary of the stages and jobs, one per line.
#[derive(Debug)]
pub struct PhysicalPlan {
    pub(crate) stages: Vec<Stage>,
    /// The rewritten roots, staged reductions replaced by stand-ins.
    pub(crate) roots: Vec<Array>,
    /// The rewritten roots as given (what the chunk-cache analysis sees).
    pub(crate) rewritten: Vec<Array>,
    pub(crate) parts: Vec<Part>,
    /// The budget the plan was checked against, bytes.
    pub(crate) budget: u64,
}

impl PhysicalPlan {
    /// The jobs in the order they run: staged reductions first, then the
    /// main job's passes.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.stages
            .iter()
            .map(|s| &s.job)
            .chain(self.parts.iter().map(|p| &p.job))
    }

    /// Reductions computed ahead of the main job.
    pub fn staged(&self) -> usize {
        self.stages.len()
    }

    /// The most memory any one job needs at least, bytes.
    pub fn least_bytes(&self) -> u64 {
        self.jobs().map(|j| j.least_bytes).max().unwrap_or(0)
    }

    /// The stored arrays the plan reads, each once, with where another
    /// process could open it ([`ChunkSource::locator`]; `None` for a
    /// source that lives only in this process). Everything else a task
    /// reads is generated from the plan's own parameters (random arrays by
    /// seed and index, constants, ranges), so a plan whose inputs all have
    /// locators can be run by tasks in other processes.
    pub fn inputs(&self) -> Vec<(String, Option<String>)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for r in &self.rewritten {
            for src in r.sources() {
                // One source object may hold its name once per array that reads it.
                if seen.insert(Arc::as_ptr(&src).cast::<()>()) {
                    out.push((src.name().to_string(), src.locator()));
                }
            }
        }
        out
    }
}

impl std::fmt::Display for PhysicalPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = |f: &mut std::fmt::Formatter<'_>, what: String, j: &Job| {
            let how = match &j.strategy {
                Strategy::Map => "a task per output chunk".to_string(),
                Strategy::Reduce { run_len, runs, .. } => format!(
                    "{runs} run(s) of {run_len} chunk tile(s) per output chunk, merged in order"
                ),
                Strategy::Masked => "evaluated whole".to_string(),
            };
            writeln!(
                f,
                "{what}: {} task(s), {how}; needs at least {} of {}",
                j.tasks,
                human_bytes(j.least_bytes),
                human_bytes(self.budget)
            )
        };
        for (i, s) in self.stages.iter().enumerate() {
            line(f, format!("stage {} ({:?})", i + 1, s.node), &s.job)?;
        }
        for p in &self.parts {
            let names: Vec<String> = p
                .results
                .iter()
                .map(|&i| format!("{:?}", self.roots[i]))
                .collect();
            line(f, names.join(", "), &p.job)?;
        }
        for (name, locator) in self.inputs() {
            match locator {
                Some(l) if l != name => writeln!(f, "reads {name} (opened again as {l})")?,
                Some(_) => writeln!(f, "reads {name}")?,
                None => writeln!(f, "reads {name} (in this process only)")?,
            }
        }
        Ok(())
    }
}

/// Where a stored plan's chunks go: the sink's write grid and its own
/// bytes per write unit ([`ChunkSink::memory_per_chunk`](crate::ChunkSink::memory_per_chunk)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SinkNeeds<'a> {
    pub(crate) grid: &'a ChunkGrid,
    pub(crate) bytes_per_chunk: u64,
}

/// Compile `roots` (or, with `sink`, a store of `roots[0]`) against a budget
/// of `limit` bytes of which `available` are free.
///
/// Results stay in memory while later work runs (a stage's until the job
/// ends, a compute's until all are returned), so each job must fit beside
/// the results of the jobs before it.
pub(crate) fn compile(
    roots: &[Array],
    sink: Option<SinkNeeds<'_>>,
    limit: u64,
    available: u64,
) -> Result<PhysicalPlan> {
    let held = Cell::new(0u64);
    let fits = |need: u64, node: &Array, unit: &str| -> Result<()> {
        let need = need.saturating_add(held.get());
        if need > available {
            Err(plan::too_small(node, need, limit, unit))
        } else {
            Ok(())
        }
    };
    let rewritten: Vec<Array> = roots.iter().map(plan::rewrite).collect();
    let mut stages = Vec::new();
    let mut memo: HashMap<u64, Array> = HashMap::new();
    let mut staged_roots = Vec::with_capacity(rewritten.len());
    // A compute's roots are the main job itself. A store's root reduction
    // is evaluated by the map job, a sink chunk per task, when both it and
    // the sink have enough chunks to keep every thread busy (each chunk's
    // tiles are folded in the one task, as the reduce strategy would fold
    // them); otherwise it is staged like any inner reduction (its tiles
    // split across tasks) and its result copied out by the map job.
    let root_is_job = |r: &Array| match &sink {
        None => true,
        Some(s) => {
            matches!(r.op(), Op::Reduce { .. })
                && r.grid().num_chunks() >= MIN_REDUCE_TASKS
                && s.grid.num_chunks() >= MIN_REDUCE_TASKS
        }
    };
    for r in &rewritten {
        staged_roots.push(stage(
            r,
            root_is_job(r),
            limit,
            &fits,
            &held,
            &mut memo,
            &mut stages,
        )?);
    }
    let mut parts = Vec::new();
    if let Some(s) = sink {
        let root = &staged_roots[0];
        let job = Job {
            strategy: Strategy::Map,
            grid: s.grid.clone(),
            tasks: s.grid.num_chunks(),
            least_bytes: map_need(root, s.grid).saturating_add(s.bytes_per_chunk),
        };
        // Errors name the expression as written, not its stand-ins.
        fits(job.least_bytes, &rewritten[0], "one output chunk")?;
        parts.push(Part {
            results: vec![0],
            job,
        });
    } else {
        for g in groups(&staged_roots) {
            let nodes: Vec<Array> = g.iter().map(|&i| staged_roots[i].clone()).collect();
            let job = main_job(&nodes, available.saturating_sub(held.get()))?;
            fits(job.least_bytes, &rewritten[g[0]], unit_of(&job.strategy))?;
            let results = nodes.iter().fold(0u64, |t, n| t.saturating_add(n.nbytes()));
            held.set(held.get().saturating_add(results));
            parts.push(Part { results: g, job });
        }
    }
    Ok(PhysicalPlan {
        stages,
        roots: staged_roots,
        rewritten,
        parts,
        budget: limit,
    })
}

/// The reduce-strategy job of reductions `nodes` (one pass over the
/// first's input and grid): runs of chunk tiles per output chunk, as
/// [`tiles_per_task`] cuts them.
fn reduce_job(nodes: &[Array]) -> Result<Job> {
    let first = &nodes[0];
    let grid = first.grid().clone();
    let tiles = setup_of(first)?.num_chunk_tiles().max(1);
    let run_len = tiles_per_task(grid.num_chunks(), tiles);
    let runs = tiles.div_ceil(run_len);
    Ok(Job {
        strategy: Strategy::Reduce {
            tiles,
            run_len,
            runs,
        },
        tasks: grid.num_chunks() * runs,
        least_bytes: reduce_need(nodes)?,
        grid,
    })
}

fn unit_of(s: &Strategy) -> &'static str {
    match s {
        Strategy::Map => "one output chunk",
        Strategy::Reduce { .. } => "one tile of the reduction",
        Strategy::Masked => "the masked selection",
    }
}

/// Top-level reductions that share their input, axes, keepdims and grid
/// run in one pass; every other root alone.
fn groups(roots: &[Array]) -> Vec<Vec<usize>> {
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
    groups
}

/// The job computing `nodes` (one root, or reductions sharing a pass) into
/// memory. A reduction with many output chunks is a map job (each task
/// folds its chunk's runs of tiles); one with few splits its tiles across
/// tasks, unless the partials in flight do not fit where one task per
/// output chunk does (the same bits either way).
fn main_job(nodes: &[Array], available: u64) -> Result<Job> {
    let first = &nodes[0];
    let grid = first.grid().clone();
    let map = |grid: ChunkGrid| Job {
        strategy: Strategy::Map,
        tasks: grid.num_chunks(),
        least_bytes: first.nbytes() + map_need(first, &grid),
        grid,
    };
    Ok(match first.op() {
        Op::Reduce { .. } if nodes.len() == 1 && grid.num_chunks() >= MIN_REDUCE_TASKS => map(grid),
        Op::Reduce { .. } => {
            let reduce = reduce_job(nodes)?;
            let map = map(grid);
            if reduce.least_bytes > available && nodes.len() == 1 && map.least_bytes <= available {
                map
            } else {
                reduce
            }
        }
        Op::Masked { x, mask } => Job {
            strategy: Strategy::Masked,
            tasks: 1,
            least_bytes: x.nbytes() + estimate_masked(x, mask),
            grid,
        },
        _ => map(grid),
    })
}

/// True if `a` is a reduction computed ahead of the job that uses it
/// (small, at most min(budget / 8, 64 MiB), and at least halving its
/// input), or a scan's carry of at most budget / 8 (evaluated inside the
/// tasks, each would read the chunks before its own again).
fn is_staged(a: &Array, limit: u64) -> bool {
    match a.op() {
        Op::Reduce { x, .. } => {
            let small = a.nbytes() <= (limit / 8).min(64 << 20);
            small && x.size() >= 2 * a.size().max(1)
        }
        Op::ScanCarry { .. } => a.nbytes() <= limit / 8,
        _ => false,
    }
}

/// `a` with the reductions below it that run ahead replaced by stand-ins
/// (bottom-up; each pushed to `stages` once, shared nodes stay shared).
fn stage(
    a: &Array,
    is_root: bool,
    limit: u64,
    fits: &dyn Fn(u64, &Array, &str) -> Result<()>,
    held: &Cell<u64>,
    memo: &mut HashMap<u64, Array>,
    stages: &mut Vec<Stage>,
) -> Result<Array> {
    if !is_root {
        if let Some(done) = memo.get(&a.id()) {
            return Ok(done.clone());
        }
    }
    let inputs = a.inputs();
    let mut changed = false;
    let mut new_inputs = Vec::with_capacity(inputs.len());
    for x in inputs {
        let y = stage(x, false, limit, fits, held, memo, stages)?;
        changed |= !y.same_node(x);
        new_inputs.push(y);
    }
    let b = if changed {
        plan::with_inputs(a, new_inputs)
    } else {
        a.clone()
    };
    let out = if !is_root && is_staged(&b, limit) {
        let job = match b.op() {
            Op::Reduce { .. } => reduce_job(std::slice::from_ref(&b))?,
            // A scan's carry: a map job into memory.
            _ => Job {
                strategy: Strategy::Map,
                tasks: b.grid().num_chunks(),
                least_bytes: b.nbytes() + map_need(&b, b.grid()),
                grid: b.grid().clone(),
            },
        };
        fits(job.least_bytes, a, unit_of(&job.strategy))?;
        // Its result is held (as the stand-in's data) until the job ends.
        held.set(held.get().saturating_add(b.nbytes()));
        let stand_in = crate::array::full(
            b.shape(),
            0.0,
            b.dtype(),
            Chunks::Shape(b.grid().max_chunk_shape()),
        )?;
        stages.push(Stage {
            node: b,
            stand_in: stand_in.clone(),
            job,
        });
        stand_in
    } else {
        b
    };
    if !is_root {
        memo.insert(a.id(), out.clone());
    }
    Ok(out)
}

/// `a` with every node whose id `with` maps replaced by its value (shared
/// nodes stay shared).
pub(crate) fn substitute(a: &Array, with: &HashMap<u64, Array>) -> Array {
    fn go(a: &Array, with: &HashMap<u64, Array>, memo: &mut HashMap<u64, Array>) -> Array {
        if let Some(b) = with.get(&a.id()) {
            return b.clone();
        }
        if let Some(b) = memo.get(&a.id()) {
            return b.clone();
        }
        let inputs = a.inputs();
        let mut changed = false;
        let mut new_inputs = Vec::with_capacity(inputs.len());
        for x in inputs {
            let y = go(x, with, memo);
            changed |= !y.same_node(x);
            new_inputs.push(y);
        }
        let b = if changed {
            plan::with_inputs(a, new_inputs)
        } else {
            a.clone()
        };
        memo.insert(a.id(), b.clone());
        b
    }
    if with.is_empty() {
        return a.clone();
    }
    go(a, with, &mut HashMap::new())
}

fn setup_of(a: &Array) -> Result<ReduceSetup> {
    ReduceSetup::of(a)
        .ok_or_else(|| Error::invalid("compute", "array", "internal: not a reduction"))
}

/// The selection of `grid`'s largest chunk.
pub(crate) fn largest_chunk(grid: &ChunkGrid) -> Selection {
    grid.max_chunk_shape()
        .iter()
        .map(|&n| AxisSel::full(n))
        .collect()
}

/// Bytes one task of a map job over `grid` needs (its largest output chunk).
pub(crate) fn map_need(root: &Array, grid: &ChunkGrid) -> u64 {
    estimate(root, &largest_chunk(grid))
}

/// Bytes the reduce strategy needs at least for `nodes` (reductions of one
/// input over the same axes): the results, the accumulators, and one task's
/// tile working set with its partial in flight (as the executor's
/// `run_reduce` reserves them).
pub(crate) fn reduce_need(nodes: &[Array]) -> Result<u64> {
    let setups: Vec<ReduceSetup> = nodes.iter().map(setup_of).collect::<Result<_>>()?;
    let Some(first) = setups.first() else {
        return Ok(0);
    };
    let big = largest_chunk(nodes[0].grid());
    let partial: u64 = setups.iter().map(|s| s.partial_bytes(&big)).sum();
    let result_bytes: u64 = nodes.iter().map(|n| n.nbytes()).sum();
    Ok(result_bytes + first.tile_bytes(&big) + 3 * partial)
}

/// Bytes a boolean-mask selection holds besides its result: the data and
/// the mask of one chunk row (the largest chunk along the first axis).
pub(crate) fn estimate_masked(x: &Array, mask: &Array) -> u64 {
    let ax0 = x.grid().axes();
    if ax0.is_empty() {
        return x.dtype().size() as u64 + 1;
    }
    let mut sel: Selection = x.shape().iter().map(|&n| AxisSel::full(n)).collect();
    sel[0] = AxisSel::full(ax0[0].max_size());
    estimate(x, &sel) + estimate(mask, &sel)
}
