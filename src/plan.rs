//! Plan files: a store described once, run as numbered tasks by any
//! number of processes on any machines that share the file system or
//! reach the same object store (the output, and the work directory, may
//! be in a bucket: `s3://bucket/out.zarr`, `s3://bucket/job.work`).
//!
//! [`PlanFile::create`] checks a store as [`store`](crate::store) would
//! (output is not input, the budget holds every task), creates the output
//! (marked incomplete) and a work directory, and writes the
//! plan: the array as a [`Program`], the output, the memory budget every
//! task runs under and the stages ([`TaskStage`]). [`PlanFile::run_task`]
//! runs a range of one stage's tasks from the plan alone, in any process;
//! [`PlanFile::status`] says how far the job has got. A runner (the CLI's
//! process pool, a Slurm job array, Dask) runs each stage's tasks, in
//! any order and as often as it likes, before the next stage's; the output
//! then has the bits the in-process store writes.
//!
//! ```no_run
//! use ndstream::{plan::PlanFile, Executor, StoreOptions};
//! let x = ndstream::open("data.zarr")?;
//! let exec = Executor::builder().memory(256 << 20).build()?;
//! let y = &x - &x.mean(None)?;
//! let plan = PlanFile::create(&exec, &y, "out.zarr", &StoreOptions::default(), "job.json".as_ref(), None)?;
//! // In any process, each stage in order (here all in this one):
//! for (s, st) in plan.stages.iter().enumerate() {
//!     plan.run_task(s, 0..st.tasks, 2)?;
//! }
//! assert!(plan.status()?.complete);
//! # Ok::<(), ndstream::Error>(())
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndstream_engine::exec::{task_key, StageKind, StageReport, TaskPlan, TaskStage, TaskStore};
use ndstream_engine::program::Program;
use ndstream_formats as formats;
use serde_json::{json, Value};

use crate::{sink_spec, Array, ChunkSink, Error, Executor, Result, StoreOptions};

/// The plan file layout this build writes and reads.
pub const PLAN_VERSION: u64 = 1;

/// The file in the work directory that names the plan it belongs to.
const PLAN_ID_FILE: &str = "plan-id";

/// The Zarr array in the work directory that the tasks write where the
/// last stage copies the output ([`PlanFile::copies`]).
const WORK_ARRAY: &str = "output.zarr";

/// A store planned as stages of tasks (see the module docs), as written to
/// and read from a plan file.
#[derive(Clone, Debug)]
pub struct PlanFile {
    /// Where the plan file is.
    pub path: PathBuf,
    /// An id made when the plan was, also written into the work directory:
    /// records of another plan are never taken for this one's.
    pub id: String,
    /// The array stored.
    pub program: Program,
    /// The output, as an absolute location (`/data/out.zarr`,
    /// `/data/out.h5:/t2m`).
    pub output: String,
    /// The plan replaces what stood at `output`. A Zarr array on disk: the
    /// tasks write a new array beside it ([`formats::Staged`]), which the
    /// last stage swaps in. An output the last stage copies
    /// ([`PlanFile::copies`]): the copy overwrites it, as an in-process
    /// [`Overwrite`](formats::WriteMode::Overwrite) does. Otherwise the
    /// tasks write at `output` itself.
    pub replace: bool,
    /// The plan finishes a write that was interrupted (made with
    /// [`Resume`](formats::WriteMode::Resume)), and its tasks write into a
    /// Zarr output: a chunk already stored there, that decodes, is kept,
    /// not computed again ([`formats::SinkSpec::keep_written`]).
    pub resume: bool,
    /// The output's chunk shape, and its shard shape if sharded.
    pub chunks: Vec<u64>,
    pub shards: Option<Vec<u64>>,
    /// The output's compression and Zarr version (the tasks encode chunks
    /// as the sink that created the output does).
    pub codec: formats::Codec,
    pub zarr_version: formats::ZarrVersion,
    /// The output's layout is contiguous ([`StoreOptions::contiguous`];
    /// HDF5 only).
    pub contiguous: bool,
    /// The user attributes the output gets.
    pub attributes: crate::Attributes,
    /// Flush what each task writes (its chunks, then its record) to the
    /// disk before the task counts as done, and the output before it is
    /// marked complete ([`StoreOptions::sync`]).
    pub sync: bool,
    /// The memory budget every task runs under, bytes (the plan was
    /// checked against it).
    pub memory: u64,
    /// Where tasks record what they did (partials, merged results, done
    /// markers): an absolute directory path, or a URL of a prefix in
    /// object storage (`s3://bucket/jobs/x.work`).
    pub work_dir: String,
    /// The stages, in order.
    pub stages: Vec<TaskStage>,
}

/// A plan's array compiled into its task plan, and the output's spec.
#[derive(Debug)]
struct Compiled {
    tasks: TaskPlan,
    spec: formats::SinkSpec,
}

/// Plans compiled by this process, most recent last.
type CompiledCache = Vec<((PathBuf, String), Arc<Compiled>)>;
static COMPILED: std::sync::Mutex<CompiledCache> = std::sync::Mutex::new(Vec::new());
const COMPILED_KEPT: usize = 4;

/// How far a plan's job has got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanStatus {
    /// Per stage: tasks recorded as done, and tasks in all.
    pub stages: Vec<(u64, u64)>,
    /// The finish stage has run: the output is complete.
    pub complete: bool,
}

impl PlanStatus {
    /// The first stage with a task left, if any.
    pub fn next_stage(&self) -> Option<usize> {
        self.stages.iter().position(|&(done, all)| done < all)
    }
}

fn bad_plan(path: &Path, message: impl Into<String>) -> Error {
    Error::open(path.display().to_string(), message)
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Open {
        path: path.display().to_string(),
        message: format!("{what}: {e}"),
        cause: Some(Box::new(e)),
    }
}

/// A fresh id: time, process and a random hasher's seed.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// `path` made absolute (against the current directory), `.` and `..`
/// applied.
fn absolute(path: &Path) -> Result<PathBuf> {
    formats::real_path(path).map_err(|e| io_error(path, "cannot resolve the path", e))
}

impl PlanFile {
    /// Plan a store of `a` at `output` (a Zarr array, on disk or in object
    /// storage; or an HDF5, `.npy` or raw file on disk, which the last
    /// stage copies in, see [`PlanFile::copies`]) with `opts`, checked
    /// against `exec`'s budget, and write the plan to `plan_path`. The
    /// work directory (`work_dir`: a directory, or a URL such as
    /// `s3://bucket/job.work`; by default the plan file's path with
    /// `.work` added) is made and the output created, marked incomplete. The plan file may not exist, nor may
    /// the work directory hold anything. Nothing is read.
    ///
    /// With `opts.mode` [`Create`](formats::WriteMode::Create) the output
    /// may not exist. With [`Overwrite`](formats::WriteMode::Overwrite) a
    /// Zarr array or group that stands on disk at `output` is replaced
    /// only when the job finishes: the tasks write the new array beside
    /// it ([`formats::Staged`]) and the last stage swaps it in, so until
    /// then the old one is whole and readable, and an abandoned plan
    /// leaves it so ([`PlanFile::remove_work`]). In object storage, which
    /// has no rename, the old array is replaced in place when the plan is
    /// made, as an in-process overwrite there does. A copied file to
    /// replace is left as it is until the last stage's copy overwrites it.
    /// With [`Resume`](formats::WriteMode::Resume) an output that an
    /// interrupted write left (in this process or another, marked
    /// incomplete) is finished by the plan: it must have the plan's layout
    /// (shape, dtype, chunks, codec), its tasks keep the chunks stored
    /// there that decode and write the rest ([`PlanFile::resume`]; a copy
    /// keeps the chunks it finds), and the last stage marks it complete;
    /// where nothing stands, the output is created as with `Create`.
    ///
    /// # Errors
    /// An output a plan cannot write (read-only, or a file in object
    /// storage), or one that is an input ([`Error::OutputIsInput`]); an
    /// existing output with `Create`, or one that `Overwrite` refuses to
    /// replace (a directory that is not Zarr's, a file that is not HDF5);
    /// a plan file or work directory that exists or lies inside an input
    /// or the output; an output `Resume` cannot finish (another layout);
    /// `opts.mode` into (an interrupted plan resumes by running it
    /// again); an array that cannot be
    /// described as a program (an in-memory input of this process only,
    /// `map_blocks`); plan/budget errors as [`store`](crate::store).
    pub fn create(
        exec: &Executor,
        a: &Array,
        output: &str,
        opts: &StoreOptions,
        plan_path: &Path,
        work_dir: Option<&str>,
    ) -> Result<PlanFile> {
        if !matches!(
            opts.mode,
            formats::WriteMode::Create | formats::WriteMode::Overwrite | formats::WriteMode::Resume
        ) {
            return Err(Error::invalid(
                "plan",
                "mode",
                "a plan writes a new output, replaces one (overwrite) or finishes an interrupted write (resume); an interrupted plan resumes by running it again",
            ));
        }
        let loc = formats::parse_location(output)?;
        let copies = copied(output, &loc)?;
        let abs_output = loc.to_locator().ok_or_else(|| {
            Error::open(output, "the output path cannot be named to another process")
        })?;
        let inputs: Vec<String> = a.sources().iter().map(|s| s.name().to_string()).collect();
        formats::check_output(output, &inputs)?;
        let plan_path = absolute(plan_path)?;
        let work_dir = match work_dir {
            Some(w) if formats::work::is_url(w) => w.trim_end_matches('/').to_string(),
            Some(w) => text_of_path(&absolute(Path::new(w))?)?,
            None => {
                let mut w = plan_path.clone().into_os_string();
                w.push(".work");
                text_of_path(Path::new(&w))?
            }
        };
        let mut guarded = inputs.clone();
        guarded.push(abs_output.clone());
        formats::check_output_file(&plan_path, &guarded)?;
        if std::fs::symlink_metadata(&plan_path).is_ok() {
            return Err(bad_plan(
                &plan_path,
                "the plan file exists; remove it or name another",
            ));
        }
        formats::check_output_dir(&work_dir, &guarded)?;
        let work = formats::work::WorkStore::open(&work_dir)?;
        if !work.is_empty()? {
            return Err(Error::open(
                &work_dir,
                "the work directory exists; remove it or name another",
            ));
        }
        let program = Program::of(std::slice::from_ref(a))?;
        let mut spec = sink_spec(a, opts);
        let work = work.with_sync(spec.sync);
        // The output's spec is checked whoever writes it; the tasks write
        // the output, or the work array the last stage copies into it.
        let (grid, sink_bytes) = formats::sink_needs(output, &spec)?;
        let (tasks_at, tasks_spec, grid, sink_bytes) = if copies {
            let at = work_array(&work_dir);
            let t = copy_spec(&spec);
            let (g, b) = formats::sink_needs(&at, &t)?;
            (at, t, g, b)
        } else {
            (output.to_string(), spec.clone(), grid, sink_bytes)
        };
        let tasks = exec.plan_tasks(a, &grid, sink_bytes)?;
        let mut stages = tasks.stages().to_vec();
        if copies {
            with_copy(exec, &mut stages, &abs_output, &spec)?;
        }
        let id = new_id();
        // An array on disk to replace: the tasks write beside it. A copied
        // output is replaced by the copy. Anywhere else the output is
        // written in place (created new, or replaced in a bucket as
        // `Overwrite` does there).
        let overwrite = opts.mode == formats::WriteMode::Overwrite;
        let staged = if overwrite && !copies {
            formats::Staged::begin(&abs_output, &id)?
        } else {
            None
        };
        let resume = opts.mode == formats::WriteMode::Resume;
        if staged.is_some() || (!resume && !formats::work::is_url(output)) {
            // On disk the plan's own array is a new one (beside the old,
            // or where nothing stood), unless it finishes an interrupted
            // write.
            spec.mode = formats::WriteMode::Create;
        }
        let plan = PlanFile {
            path: plan_path,
            id,
            program,
            output: abs_output,
            replace: staged.is_some() || (copies && overwrite),
            resume: resume && !copies,
            chunks: spec.chunks.clone(),
            shards: spec.shards.clone(),
            codec: spec.codec.clone(),
            zarr_version: spec.zarr_version,
            contiguous: spec.contiguous,
            attributes: spec.attributes.clone(),
            sync: spec.sync,
            memory: exec.budget().limit(),
            work_dir,
            stages,
        };
        // What this call makes, so that a failure takes it away again: the
        // highest missing directory of the work directory (made with its
        // parents), or the id in an empty one (or under an empty prefix),
        // and the plan file.
        let new_work = work.dir().and_then(|d| highest_missing(&d));
        let mut saved = false;
        let made = (|| -> Result<()> {
            if let Some(d) = work.dir() {
                std::fs::create_dir_all(&d)
                    .map_err(|e| io_error(&d, "cannot create the work directory", e))?;
            }
            work.put(PLAN_ID_FILE, plan.id.as_bytes())?;
            plan.save()?;
            saved = true;
            // A copied output's work array, in the work directory.
            if copies {
                drop(formats::create_sink(&tasks_at, &tasks_spec)?);
            }
            // The output last, marked incomplete until the finish stage
            // (a sink dropped unfinished leaves a new array so). A sink
            // that refuses or fails leaves no output of its own making,
            // and none of another writer's is touched here (but for the
            // array in a bucket that `Overwrite` replaces in place). A
            // copied output to replace is left alone until the copy. An
            // interrupted output to resume is checked (its layout must be
            // the plan's) and stays marked incomplete: the tasks, and a
            // copy, keep the chunks it has.
            match &staged {
                Some(s) => s.create(&spec)?,
                None if copies && overwrite => {}
                None => drop(formats::create_sink(output, &spec)?),
            }
            Ok(())
        })();
        if let Err(e) = made {
            // The work directory was missing or empty, and the plan file
            // missing: nothing of anyone else's is removed.
            match &new_work {
                Some(p) => {
                    let _ = std::fs::remove_dir_all(p);
                }
                None => {
                    let _ = work.remove(PLAN_ID_FILE);
                }
            }
            if saved {
                let _ = std::fs::remove_file(&plan.path);
            }
            return Err(e);
        }
        Ok(plan)
    }

    /// The plan as JSON.
    pub fn to_json(&self) -> String {
        let stages: Vec<Value> = self
            .stages
            .iter()
            .map(|s| {
                json!({"kind": s.kind.name(), "tasks": s.tasks, "memory": s.memory, "what": s.what})
            })
            .collect();
        let program: Value = serde_json::from_str(&self.program.to_json()).unwrap_or(Value::Null);
        let v = json!({
            "ndstream_plan": PLAN_VERSION,
            "id": self.id,
            "output": {
                "path": self.output,
                "chunks": self.chunks,
                "shards": self.shards,
                "codec": self.codec.to_string(),
                "zarr_version": match self.zarr_version {
                    formats::ZarrVersion::V2 => 2,
                    _ => 3,
                },
                "sync": self.sync,
                "replace": self.replace,
                "resume": self.resume,
                "contiguous": self.contiguous,
                "attributes": self.attributes,
            },
            "memory": self.memory,
            "work_dir": self.work_dir,
            "stages": stages,
            "program": program,
        });
        // Stages first for a reader; the program last (it may be long).
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.ndstream-tmp-{}", std::process::id()));
        let written = std::fs::write(&tmp, self.to_json()).and_then(|()| {
            // Never replace a plan file that appeared meanwhile.
            std::fs::hard_link(&tmp, &self.path)
        });
        let _ = std::fs::remove_file(&tmp);
        written.map_err(|e| io_error(&self.path, "cannot write the plan file", e))
    }

    /// Read a plan file.
    ///
    /// # Errors
    /// A file that cannot be read or is not a plan of this version.
    pub fn load(path: &Path) -> Result<PlanFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io_error(path, "cannot read the plan file", e))?;
        Self::from_json(&text, &absolute(path)?)
    }

    /// A plan from its JSON text ([`PlanFile::to_json`]), as a worker
    /// that cannot see the plan file gets it (the Dask adapter sends the
    /// text with each task); `path` is where the plan file was written,
    /// which names the plan in messages.
    ///
    /// # Errors
    /// Text that is not a plan of this version.
    pub fn from_json(text: &str, path: &Path) -> Result<PlanFile> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| bad_plan(path, format!("not a plan file: {e}")))?;
        let version = v.get("ndstream_plan").and_then(Value::as_u64);
        if version != Some(PLAN_VERSION) {
            return Err(bad_plan(
                path,
                format!(
                    "not a plan file of version {PLAN_VERSION} (found {})",
                    version.map_or("no version".to_string(), |n| n.to_string())
                ),
            ));
        }
        let field = |name: &str| -> Result<&Value> {
            v.get(name)
                .ok_or_else(|| bad_plan(path, format!("the plan has no `{name}`")))
        };
        let text_of = |x: &Value, name: &str| -> Result<String> {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad_plan(path, format!("`{name}` is not text")))
        };
        let u64_of = |x: &Value, name: &str| -> Result<u64> {
            x.as_u64()
                .ok_or_else(|| bad_plan(path, format!("`{name}` is not a whole number")))
        };
        let list_of = |x: &Value, name: &str| -> Result<Vec<u64>> {
            x.as_array()
                .ok_or_else(|| bad_plan(path, format!("`{name}` is not a list")))?
                .iter()
                .map(|n| u64_of(n, name))
                .collect()
        };
        let out = field("output")?;
        let out_field = |name: &str| -> Result<&Value> {
            out.get(name)
                .ok_or_else(|| bad_plan(path, format!("the plan's output has no `{name}`")))
        };
        // An optional flag of the output: missing (a plan made before the
        // field existed) reads as false.
        let out_flag = |name: &str| -> Result<bool> {
            match out.get(name) {
                None | Some(Value::Null) => Ok(false),
                Some(v) => v.as_bool().ok_or_else(|| {
                    bad_plan(path, format!("the output's `{name}` is not true or false"))
                }),
            }
        };
        let shards = match out_field("shards")? {
            Value::Null => None,
            s => Some(list_of(s, "shards")?),
        };
        let codec: formats::Codec = text_of(out_field("codec")?, "codec")?
            .parse()
            .map_err(|e| bad_plan(path, format!("the output's codec: {e}")))?;
        let zarr_version = match out_field("zarr_version")?.as_u64() {
            Some(2) => formats::ZarrVersion::V2,
            Some(3) => formats::ZarrVersion::V3,
            _ => return Err(bad_plan(path, "the output's zarr_version is not 2 or 3")),
        };
        let mut stages = Vec::new();
        for s in field("stages")?
            .as_array()
            .ok_or_else(|| bad_plan(path, "`stages` is not a list"))?
        {
            let get = |name: &str| -> Result<&Value> {
                s.get(name)
                    .ok_or_else(|| bad_plan(path, format!("a stage has no `{name}`")))
            };
            let kind = match get("kind")?.as_str() {
                Some("partials") => StageKind::Partials,
                Some("merge") => StageKind::Merge,
                Some("write") => StageKind::Write,
                Some("finish") => StageKind::Finish,
                other => {
                    return Err(bad_plan(path, format!("unknown stage kind {other:?}")));
                }
            };
            stages.push(TaskStage {
                kind,
                tasks: u64_of(get("tasks")?, "tasks")?,
                memory: u64_of(get("memory")?, "memory")?,
                what: text_of(get("what")?, "what")?,
            });
        }
        let program = Program::from_json(&field("program")?.to_string())?;
        Ok(PlanFile {
            path: path.to_path_buf(),
            id: text_of(field("id")?, "id")?,
            program,
            output: text_of(out_field("path")?, "output path")?,
            // Plans written before the field existed wrote in place.
            replace: out_flag("replace")?,
            // Plans written before the field existed wrote every chunk.
            resume: out_flag("resume")?,
            chunks: list_of(out_field("chunks")?, "chunks")?,
            shards,
            codec,
            zarr_version,
            // Plans written before these fields existed wrote Zarr only,
            // which they do not concern.
            contiguous: out_flag("contiguous")?,
            attributes: match out.get("attributes") {
                None | Some(Value::Null) => crate::Attributes::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => {
                    return Err(bad_plan(path, "the output's `attributes` is not an object"))
                }
            },
            // Plans written before the field existed did not flush.
            sync: out_flag("sync")?,
            memory: u64_of(field("memory")?, "memory")?,
            work_dir: text_of(field("work_dir")?, "work_dir")?,
            stages,
        })
    }

    /// The work directory's store, checked to be this plan's.
    fn store(&self) -> Result<formats::work::WorkStore> {
        let store = formats::work::WorkStore::open(&self.work_dir)?.with_sync(self.sync);
        match store.get(PLAN_ID_FILE)? {
            Some(id) if id == self.id.as_bytes() => Ok(store),
            Some(_) => Err(Error::open(
                &self.work_dir,
                format!(
                    "the work directory belongs to another plan than {}",
                    self.path.display()
                ),
            )),
            None => Err(Error::open(
                &self.work_dir,
                format!(
                    "the work directory of {} is missing (or not a plan's)",
                    self.path.display()
                ),
            )),
        }
    }

    /// The array again, and its task plan compiled against the plan's
    /// budget; the stages must be the recorded ones. A process keeps the
    /// last few it compiled (by plan file and id), so a worker that runs
    /// many ranges of one plan (a Dask worker) reopens its inputs once.
    fn compiled(&self) -> Result<Arc<Compiled>> {
        let key = (self.path.clone(), self.id.clone());
        {
            let cache = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, c)) = cache.iter().find(|(k, _)| *k == key) {
                return Ok(Arc::clone(c));
            }
        }
        let arrays = crate::from_program(&self.program)?;
        let a = arrays
            .into_iter()
            .next()
            .ok_or_else(|| bad_plan(&self.path, "the plan's program holds no array"))?;
        let exec = self.executor(1)?;
        let out = self.output_spec(a.shape().to_vec(), a.dtype());
        let mut spec = if self.copies()? {
            copy_spec(&out)
        } else {
            out.clone()
        };
        spec.mode = formats::WriteMode::Shared;
        spec.keep_written = self.resume;
        let (grid, sink_bytes) = formats::sink_needs(&self.tasks_output()?, &spec)?;
        let tasks = exec.plan_tasks(&a, &grid, sink_bytes)?;
        let mut stages = tasks.stages().to_vec();
        if self.copies()? {
            with_copy(&exec, &mut stages, &self.output, &out)?;
        }
        // The same work (names of inputs may read differently once reopened
        // by their absolute locators).
        let shape = |s: &[TaskStage]| -> Vec<(StageKind, u64, u64)> {
            s.iter().map(|s| (s.kind, s.tasks, s.memory)).collect()
        };
        if shape(&stages) != shape(&self.stages) {
            return Err(bad_plan(
                &self.path,
                "the stages this build compiles from the plan's program differ from the recorded ones (a plan made by another version of ndstream?); plan again",
            ));
        }
        let c = Arc::new(Compiled { tasks, spec });
        let mut cache = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= COMPILED_KEPT {
            cache.remove(0);
        }
        cache.push((key, Arc::clone(&c)));
        Ok(c)
    }

    /// An executor under the plan's budget.
    fn executor(&self, threads: usize) -> Result<Executor> {
        Executor::builder()
            .memory(self.memory)
            .threads(threads)
            .build()
    }

    /// Run tasks `tasks` of stage `stage` in this process on `threads`
    /// threads, under the plan's budget. Tasks already recorded are
    /// skipped, so a task (or a whole range) may run again, or in two
    /// processes at once: the bytes written are the same. After the
    /// finish stage the work directory holds only the finish record.
    ///
    /// # Errors
    /// As [`Executor::run_stage`]; a plan whose work directory is not its
    /// own; an output that is not the one the plan created.
    pub fn run_task(&self, stage: usize, tasks: Range<u64>, threads: usize) -> Result<StageReport> {
        let store = self.store()?;
        let finish = self.stages.len().saturating_sub(1);
        if store.has(&task_key(finish, 0))? {
            // A finished plan: every task is done (the finish's own too, so
            // a runner's retry of it changes nothing).
            return Ok(StageReport {
                ran: 0,
                skipped: tasks.end.saturating_sub(tasks.start),
            });
        }
        let compiled = self.compiled()?;
        let (plan, spec) = (&compiled.tasks, &compiled.spec);
        let exec = self.executor(threads)?;
        let open = |kind: StageKind| -> Result<Arc<dyn ChunkSink>> {
            let mut spec = spec.clone();
            // The finish holds the array alone (an `Into` sink, whose
            // finish marks it complete); the writes share it.
            if kind == StageKind::Finish {
                spec.mode = formats::WriteMode::Into;
            }
            let sink = match self.staged()? {
                // The staged array; the finish swaps it in.
                Some(s) => s.sink(&spec)?,
                None => formats::create_sink(&self.tasks_output()?, &spec)?,
            };
            if kind == StageKind::Finish && self.copies()? {
                // The finish then copies the work array into the output.
                return Ok(Arc::new(CopyOut {
                    inner: sink,
                    plan: self.clone(),
                    threads,
                }));
            }
            Ok(sink)
        };
        let kind = self
            .stages
            .get(stage)
            .map(|s| s.kind)
            .unwrap_or(StageKind::Write);
        let report = exec.run_stage(plan, stage, tasks, &store, &|| open(kind))?;
        if kind == StageKind::Finish {
            // The records are no longer needed: the output is complete.
            for s in 0..finish {
                store.remove_all(&format!("stage-{s}"))?;
            }
            store.remove_all(WORK_ARRAY)?;
        }
        Ok(report)
    }

    /// Whether the output is in a format one process writes (HDF5, `.npy`,
    /// raw): the tasks then write a Zarr array in the work directory, and
    /// the last stage copies it into the output, chunk by chunk under the
    /// plan's budget, as an in-process [`store`](crate::store) writes it.
    /// A copy killed midway is resumed (or, replacing an output, redone)
    /// when the last stage runs again. Zarr outputs are written by the
    /// tasks themselves.
    ///
    /// # Errors
    /// An output that is not a location a plan writes.
    pub fn copies(&self) -> Result<bool> {
        copied(&self.output, &formats::parse_location(&self.output)?)
    }

    /// Where the tasks write: the output, or the work array the last stage
    /// copies into it.
    fn tasks_output(&self) -> Result<String> {
        Ok(if self.copies()? {
            work_array(&self.work_dir)
        } else {
            self.output.clone()
        })
    }

    /// The output's spec, as the plan was made with it.
    fn output_spec(&self, shape: Vec<u64>, dtype: crate::DType) -> formats::SinkSpec {
        let mut spec = formats::SinkSpec::new(shape, dtype, self.chunks.clone());
        spec.shards = self.shards.clone();
        spec.codec = self.codec.clone();
        spec.zarr_version = self.zarr_version;
        spec.contiguous = self.contiguous;
        spec.attributes = self.attributes.clone();
        spec.sync = self.sync;
        spec
    }

    /// The last stage's copy of the complete work array into the output:
    /// the output the plan created is resumed (what a killed copy wrote is
    /// kept), one to replace is overwritten.
    fn copy_out(&self, threads: usize) -> Result<()> {
        let x = crate::open(&work_array(&self.work_dir))?;
        let opts = StoreOptions {
            chunks: Some(self.chunks.clone()),
            shards: self.shards.clone(),
            codec: Some(self.codec.clone()),
            mode: if self.replace {
                formats::WriteMode::Overwrite
            } else {
                formats::WriteMode::Resume
            },
            zarr_version: self.zarr_version,
            attributes: self.attributes.clone(),
            contiguous: self.contiguous,
            sync: self.sync,
        };
        crate::store(&self.executor(threads)?, &x, &self.output, &opts).map(drop)
    }

    /// The staged replacement the tasks write, for a plan that replaces
    /// an array on disk.
    fn staged(&self) -> Result<Option<formats::Staged>> {
        if !self.replace || self.copies()? {
            return Ok(None);
        }
        formats::Staged::of(&self.output, &self.id)?
            .map(Some)
            .ok_or_else(|| {
                bad_plan(
                    &self.path,
                    "a plan that replaces an array names no Zarr array on disk",
                )
            })
    }

    /// Remove the work directory, records and plan id with it: after the
    /// job has finished, or to abandon it. An abandoned plan's new output
    /// stays, marked incomplete, until removed or overwritten; where the
    /// plan replaces an array on disk, its staged array is removed instead
    /// (if the last stage has not swapped it in), and the old array stays
    /// as it was. The plan file is left.
    ///
    /// # Errors
    /// A work directory that is another plan's, or cannot be removed.
    pub fn remove_work(&self) -> Result<()> {
        if let Some(s) = self.staged()? {
            s.remove();
        }
        let store = match self.store() {
            Ok(s) => s,
            // Nothing of this plan's is there (already removed).
            Err(_) if formats::work::WorkStore::open(&self.work_dir)?.is_empty()? => return Ok(()),
            Err(e) => return Err(e),
        };
        for s in 0..self.stages.len() {
            store.remove_all(&format!("stage-{s}"))?;
        }
        store.remove_all(WORK_ARRAY)?;
        store.remove(PLAN_ID_FILE)?;
        if let Some(d) = store.dir() {
            // The directory itself, if nothing else was put there.
            let _ = std::fs::remove_dir(d);
        }
        Ok(())
    }

    /// How far the job has got.
    ///
    /// # Errors
    /// A work directory that is not this plan's, or cannot be read.
    pub fn status(&self) -> Result<PlanStatus> {
        let store = self.store()?;
        let finish = self.stages.len().saturating_sub(1);
        let complete = store.has(&task_key(finish, 0))?;
        let mut stages = Vec::with_capacity(self.stages.len());
        for (s, st) in self.stages.iter().enumerate() {
            let done = if complete {
                st.tasks
            } else {
                store.count(s, st.tasks)?
            };
            stages.push((done, st.tasks));
        }
        Ok(PlanStatus { stages, complete })
    }
}

/// The highest directory of `p` and its ancestors that does not exist (the
/// first one `create_dir_all(p)` would make), if any.
fn highest_missing(p: &Path) -> Option<PathBuf> {
    let mut missing = None;
    for a in p.ancestors() {
        if a.as_os_str().is_empty() || std::fs::symlink_metadata(a).is_ok() {
            break;
        }
        missing = Some(a.to_path_buf());
    }
    missing
}

/// The finish stage's sink of a plan whose output is copied: its finish
/// marks the work array complete, then copies it into the output.
#[derive(Debug)]
struct CopyOut {
    inner: Arc<dyn ChunkSink>,
    plan: PlanFile,
    threads: usize,
}

impl ChunkSink for CopyOut {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn shape(&self) -> &[u64] {
        self.inner.shape()
    }
    fn dtype(&self) -> crate::DType {
        self.inner.dtype()
    }
    fn grid(&self) -> &crate::ChunkGrid {
        self.inner.grid()
    }
    fn write_chunk(&self, idx: &[u64], data: &crate::Block) -> Result<()> {
        self.inner.write_chunk(idx, data)
    }
    fn finish(&self) -> Result<()> {
        self.inner.finish()?;
        self.plan.copy_out(self.threads)
    }
}

/// Whether a plan's output at `output` is copied from a work array by its
/// last stage (a format one process writes: HDF5, `.npy`, raw) rather than
/// written by its tasks (Zarr, on disk or in object storage).
fn copied(output: &str, loc: &formats::Location) -> Result<bool> {
    match loc {
        formats::Location::Zarr { .. } | formats::Location::ZarrUrl { .. } => Ok(false),
        formats::Location::Hdf5 { .. } | formats::Location::Npy(_) | formats::Location::Raw { .. } => {
            Ok(true)
        }
        _ => Err(Error::open(
            output,
            "a plan writes Zarr outputs (on disk or in object storage), or HDF5, .npy and raw files on disk",
        )),
    }
}

/// The Zarr array in the work directory `work_dir` that a plan's tasks
/// write when the last stage copies the output.
fn work_array(work_dir: &str) -> String {
    format!("{}/{WORK_ARRAY}", work_dir.trim_end_matches('/'))
}

/// The work array's spec for an output of `spec`: the output's shape,
/// dtype and chunks, uncompressed (it is read once, by the copy), flushed
/// as the output is.
fn copy_spec(spec: &formats::SinkSpec) -> formats::SinkSpec {
    let mut t = formats::SinkSpec::new(spec.shape.clone(), spec.dtype, spec.chunks.clone());
    t.sync = spec.sync;
    t
}

/// `stages` with the finish stage's memory raised to what its copy into
/// `output` (`spec`) needs, checked against `exec`'s budget: a job of one
/// chunk-sized read per output chunk.
fn with_copy(
    exec: &Executor,
    stages: &mut [TaskStage],
    output: &str,
    spec: &formats::SinkSpec,
) -> Result<()> {
    let mut out = spec.clone();
    out.mode = formats::WriteMode::Create;
    let (grid, sink_bytes) = formats::sink_needs(output, &out)?;
    let stand_in = crate::zeros(
        &spec.shape,
        spec.dtype,
        crate::Chunks::Shape(spec.chunks.clone()),
    )?;
    let copy = exec.plan_tasks(&stand_in, &grid, sink_bytes)?;
    // The work array's chunk, read before it is copied.
    let read = spec.chunks.iter().product::<u64>() * spec.dtype.size() as u64;
    let need = copy
        .stages()
        .iter()
        .map(|s| s.memory)
        .max()
        .unwrap_or(0)
        .saturating_add(read);
    if let Some(finish) = stages.last_mut() {
        finish.memory = finish.memory.max(need);
        finish.what = format!("mark the work array complete, then copy it into {output}");
    }
    Ok(())
}

/// `p` as text, which a plan file holds (and other processes read back).
fn text_of_path(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| bad_plan(p, "the path is not UTF-8 and cannot be written into a plan"))
}
