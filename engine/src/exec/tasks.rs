//! A store run as numbered tasks by any number of processes: the engine's
//! half of a job that is planned once and run elsewhere (a process pool,
//! a job array, a cluster).
//!
//! [`Executor::plan_tasks`] compiles a store into [`TaskPlan`] stages, in
//! order, each a number of independent tasks:
//!
//! - for every reduction the physical plan computes ahead of the main job
//!   (a *staged* reduction, or a scan's carry): a **partials** stage, one
//!   task per task of that job ([`Job::task`](crate::Job::task): a run of
//!   chunk tiles of one output chunk, or one output chunk), each recording
//!   its partial (or chunk) as bytes; then a **merge** stage of one task
//!   that folds the partials strictly in task order, exactly as the
//!   in-process reduction merges them, and records the result;
//! - a **write** stage, one task per write unit of the sink (a chunk or a
//!   shard), each evaluating its unit with the staged results in place
//!   and writing it into the sink (atomically, so a task run twice, or two
//!   copies at once, leave the same bytes);
//! - a **finish** stage of one task that marks the output complete.
//!
//! Elementwise chains, slicing and stacking stay fused inside a task:
//! only staged reductions cross stages. Every process compiles the same
//! plan from the same graph and budget, so task `n` of stage `s` is the
//! same piece of work everywhere, and the output has the bits of the
//! in-process [`Executor::store`].
//!
//! What a task did is recorded in a [`TaskStore`] (a directory:
//! [`DirStore`]) under `stage-S/N`: a partial's or chunk's bytes, or an
//! empty record for a written unit. A recorded task is skipped when run
//! again, so an interrupted job resumes where it stopped.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::array::{Array, Chunks};
use crate::block::Block;
use crate::budget::lock;
use crate::cache::ChunkCache;
use crate::error::{Error, Result};
use crate::eval::{fold_tiles, place, ReduceSetup};
use crate::grid::{region_sel, ChunkGrid};
use crate::kernels::reduce;
use crate::physical::{self, Job, PhysicalPlan, Strategy};
use crate::plan;
use crate::runner::Msg;
use crate::source::ChunkSink;

use super::jobs::{Deliver, Marks};
use super::{on_deep_stack, Executor};

/// Where the tasks of a plan record what they did: small values by key,
/// each written whole or not at all (see [`DirStore`]).
pub trait TaskStore: Send + Sync {
    /// Record `bytes` under `key`, atomically (a reader sees the old value
    /// or the new one, never a part), replacing any value.
    ///
    /// # Errors
    /// The store cannot be written.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// The value under `key`, if any.
    ///
    /// # Errors
    /// The store cannot be read.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Whether `key` has a value.
    ///
    /// # Errors
    /// The store cannot be read.
    fn has(&self, key: &str) -> Result<bool>;
    /// How many of tasks `0..tasks` of `stage` have a record (by default
    /// one look per task; a store that can list does better).
    ///
    /// # Errors
    /// The store cannot be read.
    fn count(&self, stage: usize, tasks: u64) -> Result<u64> {
        let mut n = 0;
        for t in 0..tasks {
            n += u64::from(self.has(&task_key(stage, t))?);
        }
        Ok(n)
    }
}

/// A [`TaskStore`] in a directory: a key is a relative path below it
/// (`stage-0/17`), a value a file, written to a temporary beside it and
/// renamed into place.
///
/// ```
/// use ndstream_engine::exec::{DirStore, TaskStore};
/// let dir = std::env::temp_dir().join(format!("ndstream-doc-dirstore-{}", std::process::id()));
/// let store = DirStore::new(&dir);
/// store.put("stage-0/3", b"partial").unwrap();
/// assert_eq!(store.get("stage-0/3").unwrap().as_deref(), Some(&b"partial"[..]));
/// assert!(!store.has("stage-0/4").unwrap());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
    sync: bool,
}

impl DirStore {
    /// The store in `root` (made when the first value is put).
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore {
            root: root.into(),
            sync: false,
        }
    }

    /// This store, flushing each value it puts to the disk (the file, then
    /// its directory's entry) before `put` returns, where `sync`: records
    /// of tasks whose output is flushed too survive a power loss.
    #[must_use]
    pub fn with_sync(mut self, sync: bool) -> DirStore {
        self.sync = sync;
        self
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn io(&self, what: &str, path: &Path, e: std::io::Error) -> Error {
        Error::Sink {
            sink_name: self.root.display().to_string(),
            what: "the work directory".into(),
            message: format!("{what} {}: {e}", path.display()),
            cause: Some(Box::new(e)),
        }
    }
}

/// Refuse a key of a [`TaskStore`] that is not a plain relative path of
/// visible names (`stage-S/N`, `plan-id`): keys are made by the plans,
/// and one that could leave the work directory is refused all the same.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the key.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.starts_with('.'))
    {
        return Err(Error::invalid(
            "task store",
            "key",
            format!("`{key}` is not a key of the work directory"),
        ));
    }
    Ok(())
}

/// Write `bytes` into `file` (newly made at `tmp`, beside `path`) and
/// rename it to `path`; where `sync`, the file is flushed to the disk
/// before the rename and the directory's entry after it. The whole-value
/// write of a [`DirStore`] and of the Zarr sinks' chunk files.
///
/// # Errors
/// The write, flush or rename fails (the temporary is left to the caller).
pub fn write_then_rename(
    mut file: std::fs::File,
    bytes: &[u8],
    tmp: &Path,
    path: &Path,
    sync: bool,
) -> std::io::Result<()> {
    std::io::Write::write_all(&mut file, bytes)?;
    if sync {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(tmp, path)?;
    if sync {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

impl TaskStore for DirStore {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| self.io("cannot create", dir, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            TEMPORARIES.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::File::create(&tmp)
            .and_then(|f| write_then_rename(f, bytes, &tmp, &path, self.sync));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io("cannot write", &path, e));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("cannot read", &path, e)),
        }
    }

    fn has(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io("cannot look at", &path, e)),
        }
    }

    /// Lists the stage's directory: the time is that of the records there,
    /// whatever `tasks` says.
    fn count(&self, stage: usize, tasks: u64) -> Result<u64> {
        let dir = self.root.join(format!("stage-{stage}"));
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.io("cannot list", &dir, e)),
        };
        let mut n = 0;
        for e in entries {
            let e = e.map_err(|e| self.io("cannot list", &dir, e))?;
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            let task = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok());
            if is_file && task.is_some_and(|t| t < tasks) {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The key under which task `n` of stage `stage` records what it did
/// (`stage-S/N`).
pub fn task_key(stage: usize, n: u64) -> String {
    format!("stage-{stage}/{n}")
}

/// What the tasks of a stage do (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StageKind {
    /// Compute the partials (or chunks) of a staged reduction.
    Partials,
    /// Fold a staged reduction's partials, in task order, into its result.
    Merge,
    /// Write the output's units into the sink.
    Write,
    /// Mark the output complete.
    Finish,
}

impl StageKind {
    /// The kind's name in a plan file (`partials`, `merge`, `write`, `finish`).
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Partials => "partials",
            StageKind::Merge => "merge",
            StageKind::Write => "write",
            StageKind::Finish => "finish",
        }
    }
}

/// One stage of a [`TaskPlan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStage {
    /// What its tasks do.
    pub kind: StageKind,
    /// Its tasks, numbered `0..tasks`.
    pub tasks: u64,
    /// The memory one of its tasks needs at least (a process running it
    /// needs a budget at least this large), bytes.
    pub memory: u64,
    /// What it computes, in words.
    pub what: String,
}

/// A store compiled into stages of numbered tasks (see the module docs).
/// Built by [`Executor::plan_tasks`]; run stage by stage with
/// [`Executor::run_stage`], in this process or any other that compiles the
/// same array with the same budget.
#[derive(Debug)]
pub struct TaskPlan {
    physical: PhysicalPlan,
    stages: Vec<TaskStage>,
}

/// What [`Executor::run_stage`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Tasks run.
    pub ran: u64,
    /// Tasks skipped because they were recorded as done.
    pub skipped: u64,
}

impl TaskPlan {
    /// The stages, in the order they must run.
    pub fn stages(&self) -> &[TaskStage] {
        &self.stages
    }

    /// The physical plan the stages come from.
    pub fn physical(&self) -> &PhysicalPlan {
        &self.physical
    }

    /// How many tasks of `stage` `store` records as done.
    ///
    /// # Errors
    /// A stage that does not exist; a store that cannot be read.
    pub fn done(&self, stage: usize, store: &dyn TaskStore) -> Result<u64> {
        let st = self.stage(stage)?;
        store.count(stage, st.tasks)
    }

    /// The first task of `stage` not recorded as done, if any.
    fn first_missing(&self, stage: usize, store: &dyn TaskStore) -> Result<Option<u64>> {
        for t in 0..self.stages[stage].tasks {
            if !store.has(&task_key(stage, t))? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    fn stage(&self, stage: usize) -> Result<&TaskStage> {
        self.stages.get(stage).ok_or_else(|| {
            Error::invalid(
                "run task",
                "stage",
                format!(
                    "there is no stage {stage}: the plan has stages 0..{}",
                    self.stages.len()
                ),
            )
        })
    }

    /// The staged job behind stage `stage` (partials or merge).
    fn staged(&self, stage: usize) -> &physical::Stage {
        &self.physical.stages[stage / 2]
    }
}

impl Executor {
    /// Compile a store of `a` into a sink written in the units of `grid`
    /// (with `sink_bytes_per_chunk` of its own per unit) as stages of
    /// numbered tasks that other processes can run. `a` must have the
    /// sink's dtype. Nothing is read or created.
    ///
    /// ```
    /// use ndstream_engine::{Array, Distribution, Executor, ChunkGrid};
    /// use ndstream_engine::exec::StageKind;
    /// let exec = Executor::builder().memory(64 << 20).threads(2).build().unwrap();
    /// let x = Array::random(Distribution::Normal { loc: 0.0, scale: 1.0 }, &[4000, 1000], [500, 1000].into(), 1).unwrap();
    /// let centred = &x - &x.mean(None).unwrap();
    /// let grid = ChunkGrid::regular(&[4000, 1000], &[500, 1000]);
    /// let plan = exec.plan_tasks(&centred, &grid, 0).unwrap();
    /// let kinds: Vec<StageKind> = plan.stages().iter().map(|s| s.kind).collect();
    /// assert_eq!(kinds, [StageKind::Partials, StageKind::Merge, StageKind::Write, StageKind::Finish]);
    /// assert_eq!(plan.stages()[2].tasks, 8);
    /// ```
    ///
    /// # Errors
    /// As [`plan_store`](Executor::plan_store); an array of unknown length.
    pub fn plan_tasks(
        &self,
        a: &Array,
        grid: &ChunkGrid,
        sink_bytes_per_chunk: u64,
    ) -> Result<TaskPlan> {
        if !a.known_len() {
            return Err(Error::UnknownLength { op: "store" });
        }
        let physical = self.plan_store(a, grid, sink_bytes_per_chunk)?;
        let mut stages = Vec::new();
        for (k, st) in physical.stages.iter().enumerate() {
            let what = format!("{:?}", st.node);
            stages.push(TaskStage {
                kind: StageKind::Partials,
                tasks: st.job.tasks,
                memory: st.job.least_bytes,
                what: format!("staged reduction {k}: {what}"),
            });
            stages.push(TaskStage {
                kind: StageKind::Merge,
                tasks: 1,
                memory: merge_bytes(st)?,
                what: format!("merge of staged reduction {k}"),
            });
        }
        let main = physical.parts.first().ok_or_else(|| {
            Error::invalid("plan", "array", "internal: a store plan without its job")
        })?;
        let held: u64 = physical.stages.iter().map(|s| s.node.nbytes()).sum();
        stages.push(TaskStage {
            kind: StageKind::Write,
            tasks: main.job.tasks,
            memory: main.job.least_bytes.saturating_add(held),
            what: format!("write of {:?}", physical.roots[0]),
        });
        stages.push(TaskStage {
            kind: StageKind::Finish,
            tasks: 1,
            memory: 0,
            what: "mark the output complete".into(),
        });
        Ok(TaskPlan { physical, stages })
    }

    /// Run the tasks `tasks` of stage `stage` of `plan` on this executor's
    /// threads, recording each in `store`; tasks already recorded are
    /// skipped. The stages before it must be done (each stage's tasks need
    /// the results of the merges before it; a merge needs every partial;
    /// the finish needs every write). `sink` opens the output, and is
    /// called only by a write or finish stage with a task left to run.
    ///
    /// # Errors
    /// A stage or task range outside the plan, an earlier stage not done
    /// (naming its first missing task), the store's and the sink's
    /// failures, and anything [`store`](Executor::store) can fail with.
    pub fn run_stage(
        &self,
        plan: &TaskPlan,
        stage: usize,
        tasks: Range<u64>,
        store: &dyn TaskStore,
        sink: &(dyn Fn() -> Result<Arc<dyn ChunkSink>> + Sync),
    ) -> Result<StageReport> {
        let st = plan.stage(stage)?;
        if tasks.start > tasks.end || tasks.end > st.tasks {
            return Err(Error::invalid(
                "run task",
                "tasks",
                format!(
                    "tasks {}..{} are not inside stage {stage}'s 0..{}",
                    tasks.start, tasks.end, st.tasks
                ),
            ));
        }
        if stage > 0 {
            let before = stage - 1;
            // One listing of the stage's records; a look per task only to
            // name the missing one.
            let whole = plan.stages[before].tasks;
            let missing = if store.count(before, whole)? < whole {
                plan.first_missing(before, store)?
            } else {
                None
            };
            if let Some(t) = missing {
                return Err(Error::invalid(
                    "run task",
                    "stage",
                    format!(
                        "stage {stage} needs stage {before} ({}) done first: its task {t} is not",
                        plan.stages[before].what
                    ),
                ));
            }
        }
        let _job = lock(&self.running);
        let roots = std::slice::from_ref(&plan.physical.roots[0]);
        on_deep_stack(roots, || {
            self.run_stage_here(plan, stage, tasks, store, sink)
        })
    }

    fn run_stage_here(
        &self,
        plan: &TaskPlan,
        stage: usize,
        tasks: Range<u64>,
        store: &dyn TaskStore,
        sink: &(dyn Fn() -> Result<Arc<dyn ChunkSink>> + Sync),
    ) -> Result<StageReport> {
        self.start();
        let st = &plan.stages[stage];
        let marks = Marks { store, stage };
        let todo = tasks
            .clone()
            .filter(|&n| !matches!(store.has(&marks.key(n)), Ok(true)));
        if todo.count() == 0 {
            return Ok(StageReport {
                ran: 0,
                skipped: tasks.end - tasks.start,
            });
        }
        let physical = &plan.physical;
        let cache = ChunkCache::new(&self.budget, self.budget.limit() / 4);
        let reuse = plan::Reuse::of(&physical.rewritten);
        // The results of the merges before this stage, as the in-process
        // run holds them (`run_stages`); the finish reads none (its sink
        // may run a job of its own under the budget).
        let mut held = Vec::new();
        let mut done: HashMap<u64, Array> = HashMap::new();
        let merged = match st.kind {
            StageKind::Partials | StageKind::Merge => stage / 2,
            StageKind::Write => physical.stages.len(),
            StageKind::Finish => 0,
        };
        for (k, s) in physical.stages.iter().take(merged).enumerate() {
            let node = physical::substitute(&s.node, &done);
            let bytes = store.get(&task_key(2 * k + 1, 0))?.ok_or_else(|| {
                Error::invalid("run task", "stage", "internal: a merge recorded no result")
            })?;
            held.push(self.reserve_for(&node, node.nbytes())?);
            let shape: Vec<usize> = node.shape().iter().map(|&n| n as usize).collect();
            let b = Block::from_ne_bytes(node.dtype(), &shape, &bytes)
                .ok_or_else(|| damaged(2 * k + 1, 0))?;
            let a = Array::from_block(b, Chunks::Shape(node.grid().max_chunk_shape()))?;
            done.insert(s.stand_in.id(), a);
        }
        let report = match st.kind {
            StageKind::Partials => {
                let s = plan.staged(stage);
                let node = physical::substitute(&s.node, &done);
                let reuse = reuse.for_roots(std::slice::from_ref(&node));
                match s.job.strategy {
                    Strategy::Reduce { .. } => {
                        self.partials_job(&node, &s.job, tasks.clone(), marks, &reuse, &cache)?
                    }
                    _ => {
                        let deliver = Deliver::Task { sink: None, marks };
                        let r = self.map_job(
                            &node,
                            node.grid(),
                            &deliver,
                            &reuse,
                            &cache,
                            tasks.clone(),
                        )?;
                        StageReport {
                            ran: r.chunks_written,
                            skipped: r.chunks_skipped,
                        }
                    }
                }
            }
            StageKind::Merge => {
                let s = plan.staged(stage);
                let node = physical::substitute(&s.node, &done);
                let b = self.merge_job(&node, &s.job, store, stage - 1)?;
                b.with_ne_bytes(|bytes| store.put(&task_key(stage, 0), bytes))?;
                StageReport { ran: 1, skipped: 0 }
            }
            StageKind::Write => {
                let root = physical::substitute(&physical.roots[0], &done);
                let reuse = reuse.for_roots(std::slice::from_ref(&root));
                let sink = sink()?;
                let grid = &physical.parts[0].job.grid;
                check_sink(sink.as_ref(), &root, grid)?;
                let deliver = Deliver::Task {
                    sink: Some(sink.as_ref()),
                    marks,
                };
                let r = self.map_job(&root, grid, &deliver, &reuse, &cache, tasks.clone())?;
                // Releases the sink's hold on the output (it stays
                // incomplete until the finish stage).
                sink.finish()?;
                StageReport {
                    ran: r.chunks_written,
                    skipped: r.chunks_skipped,
                }
            }
            StageKind::Finish => {
                let sink = sink()?;
                sink.finish()?;
                store.put(&task_key(stage, 0), &[])?;
                StageReport { ran: 1, skipped: 0 }
            }
        };
        drop(held);
        // Tasks found done before the run, or by its workers.
        Ok(StageReport {
            ran: report.ran,
            skipped: (tasks.end - tasks.start) - report.ran,
        })
    }

    /// The tasks `range` of a staged reduction's job: each folds its run of
    /// chunk tiles ([`Job::task`]) into a partial and records its bytes, as
    /// the in-process reduction's tasks fold them.
    fn partials_job(
        &self,
        node: &Array,
        job: &Job,
        range: Range<u64>,
        marks: Marks<'_>,
        reuse: &plan::Reuse,
        cache: &ChunkCache,
    ) -> Result<StageReport> {
        let setup = setup_of(node)?;
        let setups = std::slice::from_ref(&setup);
        let grid = &job.grid;
        let big = physical::largest_chunk(grid);
        let partial = setup.partial_bytes(&big);
        let tile_ws = setup.tile_bytes(&big) + partial;
        if tile_ws > self.budget.limit() {
            return Err(plan::too_small(
                node,
                tile_ws,
                self.budget.limit(),
                "one tile of the reduction",
            ));
        }
        let first = range.start;
        let total = range.end - range.start;
        let threads = (self.threads as u64)
            .min((self.budget.limit() / tile_ws.max(1)).max(1))
            .min(total.max(1)) as usize;
        let window = (threads as u64 * 16).min(total.max(1));
        let skipped = AtomicU64::new(0);
        let work = |i: u64, ctx: &crate::eval::EvalCtx<'_>| -> Result<Msg> {
            let n = first + i;
            let key = marks.key(n);
            if marks.store.has(&key)? {
                skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(Msg::Chunk {
                    n: i,
                    written: false,
                });
            }
            let task = job.task(n);
            let out_sel = region_sel(&grid.chunk_region(&task.chunk));
            let want = setup.tile_bytes(&out_sel) + partial;
            let res = self.budget.reserve(want, "a tile of a reduction")?;
            let in_sel = setup.in_sel(&out_sel);
            let mut parts = vec![None];
            fold_tiles(setups, &mut parts, &in_sel, task.tiles, ctx)?;
            // An empty run records no partial (the merge then uses none).
            let bytes = parts[0].as_ref().map(reduce::Partial::to_bytes);
            let mut record = Vec::with_capacity(1 + bytes.as_ref().map_or(0, Vec::len));
            match bytes {
                Some(b) => {
                    record.push(1);
                    record.extend_from_slice(&b);
                }
                None => record.push(0),
            }
            marks.store.put(&key, &record)?;
            drop(res);
            // The runner merges by the task's place in the range.
            Ok(Msg::Chunk {
                n: i,
                written: true,
            })
        };
        let mut ran = 0;
        let room = self.budget.limit().saturating_sub(threads as u64 * tile_ws);
        let ra = self.read_ahead(&[&setup.x], total, window, room, |i, out| {
            super::jobs::reduce_footprint(&setup, job, first + i, out)
        });
        self.run_tasks(
            total,
            threads,
            window,
            reuse,
            cache,
            ra.as_ref(),
            work,
            |msg| {
                if let Msg::Chunk { written: true, .. } = msg {
                    ran += 1;
                }
                Ok(())
            },
        )?;
        Ok(StageReport {
            ran,
            skipped: skipped.load(Ordering::Relaxed),
        })
    }

    /// A staged job's result from the records of its tasks (stage
    /// `stage`), merged on this thread in task order: for a reduction, the
    /// partials of each output chunk left to right, then finished, as
    /// `run_reduce` merges them; for a map job, the chunks placed.
    fn merge_job(
        &self,
        node: &Array,
        job: &Job,
        store: &dyn TaskStore,
        stage: usize,
    ) -> Result<Block> {
        let shape: Vec<usize> = node.shape().iter().map(|&n| n as usize).collect();
        let grid = &job.grid;
        let record = |n: u64| -> Result<Vec<u8>> {
            store.get(&task_key(stage, n))?.ok_or_else(|| {
                Error::invalid(
                    "run task",
                    "stage",
                    format!("the merge needs task {n} of stage {stage}, which has not run"),
                )
            })
        };
        let at = |sel: &crate::grid::Selection| -> Vec<Range<usize>> {
            sel.iter()
                .map(|s| s.start as usize..(s.start + s.len) as usize)
                .collect()
        };
        let Strategy::Reduce { runs: per_out, .. } = job.strategy else {
            let _res = self.reserve_for(node, node.nbytes().saturating_mul(2))?;
            let mut out = Block::zeros(node.dtype(), &shape);
            for n in 0..job.tasks {
                let idx = grid.unravel(n);
                let sel = region_sel(&grid.chunk_region(&idx));
                let cs: Vec<usize> = crate::grid::sel_shape(&sel);
                let b = Block::from_ne_bytes(node.dtype(), &cs, &record(n)?)
                    .ok_or_else(|| damaged(stage, n))?;
                place(&mut out, &at(&sel), &b);
            }
            return Ok(out);
        };
        let setup = setup_of(node)?;
        let big = physical::largest_chunk(grid);
        let partial = setup.partial_bytes(&big);
        let _res = self.reserve_for(
            node,
            node.nbytes().saturating_add(partial.saturating_mul(3)),
        )?;
        let mut out = Block::zeros(node.dtype(), &shape);
        let mut acc: Option<reduce::Partial> = None;
        for n in 0..job.tasks {
            let bytes = record(n)?;
            let p = match bytes.split_first() {
                Some((0, [])) => None,
                Some((1, rest)) => Some(reduce::Partial::from_bytes(rest)?),
                _ => return Err(damaged(stage, n)),
            };
            if let Some(p) = p {
                match acc.as_mut() {
                    None => acc = Some(p),
                    Some(a) => reduce::merge(setup.op, a, p)?,
                }
            }
            if n % per_out == per_out - 1 {
                let idx = grid.unravel(n / per_out);
                let out_sel = region_sel(&grid.chunk_region(&idx));
                let p = match acc.take() {
                    Some(p) => p,
                    None => setup.empty_partial(&setup.in_sel(&out_sel))?,
                };
                let b = setup.finish(node, p, &out_sel)?;
                place(&mut out, &at(&out_sel), &b);
            }
        }
        Ok(out)
    }
}

/// Bytes a merge task holds: the result, the running and the next partial.
fn merge_bytes(st: &physical::Stage) -> Result<u64> {
    let extra = match st.job.strategy {
        Strategy::Reduce { .. } => {
            let setup = setup_of(&st.node)?;
            setup
                .partial_bytes(&physical::largest_chunk(&st.job.grid))
                .saturating_mul(3)
        }
        _ => st.node.nbytes(),
    };
    Ok(st.node.nbytes().saturating_add(extra))
}

fn setup_of(node: &Array) -> Result<ReduceSetup> {
    ReduceSetup::of(node)
        .ok_or_else(|| Error::invalid("run task", "plan", "internal: not a reduction"))
}

fn damaged(stage: usize, n: u64) -> Error {
    Error::invalid(
        "run task",
        "work directory",
        format!(
            "the record of task {n} of stage {stage} is damaged; delete {} and run the task again",
            task_key(stage, n)
        ),
    )
}

/// The sink a write stage writes must be the plan's output.
fn check_sink(sink: &dyn ChunkSink, root: &Array, grid: &ChunkGrid) -> Result<()> {
    if sink.shape() != root.shape() || sink.dtype() != root.dtype() || sink.grid() != grid {
        return Err(Error::open(
            sink.name(),
            format!(
                "the output is {} {:?} in units {:?}, the plan writes {} {:?} in units {:?}",
                sink.dtype().name(),
                sink.shape(),
                sink.grid().max_chunk_shape(),
                root.dtype().name(),
                root.shape(),
                grid.max_chunk_shape()
            ),
        ));
    }
    Ok(())
}
