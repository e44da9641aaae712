//! A store planned as stages of numbered tasks (`Executor::plan_tasks`)
//! and run stage by stage, in ranges, on executors of any thread count
//! and budget, writes the bits the in-process store writes; recorded
//! tasks are skipped; stages out of order and damaged records are errors.

use std::sync::{Arc, Mutex};

use ndstream_engine::exec::{DirStore, StageKind, TaskStore};
use ndstream_engine::{
    Array, Block, ChunkGrid, ChunkSink, Chunks, DType, Distribution, Error, Executor, ScanOp,
};

use crate::common::bits;

/// A sink in memory that records how often it was finished.
#[derive(Debug)]
struct MemSink {
    grid: ChunkGrid,
    shape: Vec<u64>,
    dtype: DType,
    data: Mutex<Block>,
    finished: Mutex<u32>,
}

impl MemSink {
    fn new(a: &Array, chunks: &[u64]) -> Arc<MemSink> {
        let shape: Vec<usize> = a.shape().iter().map(|&n| n as usize).collect();
        Arc::new(MemSink {
            grid: ChunkGrid::regular(a.shape(), chunks),
            shape: a.shape().to_vec(),
            dtype: a.dtype(),
            data: Mutex::new(Block::full(a.dtype(), &shape, f64::NAN)),
            finished: Mutex::new(0),
        })
    }
}

impl ChunkSink for MemSink {
    fn name(&self) -> &str {
        "memory"
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
    fn write_chunk(&self, idx: &[u64], data: &Block) -> ndstream_engine::Result<()> {
        let region = self.grid.chunk_region(idx);
        let mut all = self.data.lock().unwrap();
        let mut v: Vec<f64> = all.to_f64_vec();
        let shape = &self.shape;
        let vals = data.to_f64_vec();
        let sizes: Vec<u64> = region.iter().map(|r| r.end - r.start).collect();
        for (k, val) in vals.iter().enumerate() {
            // Unravel k in the chunk, then ravel in the array (C order).
            let mut rem = k as u64;
            let mut pos = vec![0u64; sizes.len()];
            for ax in (0..sizes.len()).rev() {
                pos[ax] = region[ax].start + rem % sizes[ax];
                rem /= sizes[ax];
            }
            let flat = pos
                .iter()
                .zip(shape)
                .fold(0u64, |acc, (&p, &n)| acc * n + p);
            v[flat as usize] = *val;
        }
        let s: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
        *all = Block::from(ndarray::ArrayD::from_shape_vec(s, v).unwrap()).astype(self.dtype);
        Ok(())
    }
    fn finish(&self) -> ndstream_engine::Result<()> {
        *self.finished.lock().unwrap() += 1;
        Ok(())
    }
}

fn normal(shape: &[u64], chunks: &[u64], seed: u64) -> Array {
    Array::random(
        Distribution::Normal {
            loc: 3.0,
            scale: 2.0,
        },
        shape,
        Chunks::Shape(chunks.to_vec()),
        seed,
    )
    .unwrap()
}

fn work_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ndstream-tasks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Run every stage of `a`'s task plan in ranges of `step` tasks,
/// alternating executors, into a fresh sink; the sink's data.
fn run_in_tasks(a: &Array, chunks: &[u64], execs: &[Executor], step: u64, name: &str) -> Block {
    let sink = MemSink::new(a, chunks);
    let dir = work_dir(name);
    let store = DirStore::new(&dir);
    let plans: Vec<_> = execs
        .iter()
        .map(|e| e.plan_tasks(a, sink.grid(), 0).unwrap())
        .collect();
    // Every executor compiles the same stages.
    for p in &plans[1..] {
        assert_eq!(p.stages(), plans[0].stages());
    }
    let open = || -> ndstream_engine::Result<Arc<dyn ChunkSink>> { Ok(sink.clone()) };
    let mut turn = 0;
    for (s, st) in plans[0].stages().iter().enumerate() {
        let mut t = 0;
        while t < st.tasks {
            let end = (t + step).min(st.tasks);
            let k = turn % execs.len();
            let r = execs[k]
                .run_stage(&plans[k], s, t..end, &store, &open)
                .unwrap();
            assert_eq!(r.ran + r.skipped, end - t);
            turn += 1;
            t = end;
        }
        assert_eq!(plans[0].done(s, &store).unwrap(), st.tasks);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let b = sink.data.lock().unwrap().clone();
    b
}

fn in_process(a: &Array, chunks: &[u64]) -> Block {
    let sink = MemSink::new(a, chunks);
    Executor::builder()
        .threads(3)
        .memory(256 << 20)
        .build()
        .unwrap()
        .store(a, sink.as_ref())
        .unwrap();
    let b = sink.data.lock().unwrap().clone();
    b
}

/// Stores with staged reductions (one, nested, a map-strategy one, a
/// scan's carry) and a root reduction.
fn cases() -> Vec<(&'static str, Array, Vec<u64>)> {
    let x = normal(&[400, 300], &[70, 90], 5);
    let mean = x.mean(None).unwrap();
    let centred = &x - &mean;
    let z = &centred / &x.std(None, 1).unwrap();
    // A mean along axis 0 with many output chunks (a map job of its own).
    let y = normal(&[60, 700], &[25, 10], 9);
    let col = &y - &y.mean(Some(0)).unwrap();
    let scan = x.scan(ScanOp::CumSum, Some(0)).unwrap();
    vec![
        ("centred", centred, vec![100, 100]),
        ("standardised", z, vec![70, 300]),
        ("columns", col, vec![60, 350]),
        ("root-reduction", x.sum(Some(1)).unwrap(), vec![50]),
        // A root reduction of 70 output chunks into 70 sink chunks: no
        // stage of its own, each write task folds its chunk.
        ("wide-root-reduction", y.mean(Some(0)).unwrap(), vec![10]),
        ("scan", scan, vec![150, 150]),
        ("plain", &x * 2.0, vec![400, 300]),
    ]
}

#[test]
fn tasks_in_any_process_order_write_the_in_process_bits() {
    for (name, a, chunks) in cases() {
        let want = in_process(&a, &chunks);
        let execs: Vec<Executor> = [(1, 256u64 << 20), (4, 64 << 20), (2, 256 << 20)]
            .into_iter()
            .map(|(t, m)| Executor::builder().threads(t).memory(m).build().unwrap())
            .collect();
        // Each task plan is compiled against one budget: executors of
        // another budget compile the same stages only if they agree, so
        // run with executors of one budget, then of the other.
        for (i, group) in [vec![0, 2], vec![1]].into_iter().enumerate() {
            let es: Vec<Executor> = group
                .iter()
                .map(|&k| {
                    Executor::builder()
                        .threads(execs[k].threads())
                        .memory(execs[k].budget().limit())
                        .build()
                        .unwrap()
                })
                .collect();
            for step in [1, 3, 1000] {
                let got = run_in_tasks(&a, &chunks, &es, step, &format!("{name}-{i}-{step}"));
                assert_eq!(bits(&got), bits(&want), "{name}: group {i}, step {step}");
            }
        }
    }
}

#[test]
fn recorded_tasks_are_skipped_and_stages_run_in_order() {
    let x = normal(&[200, 100], &[50, 50], 3);
    let a = &x - &x.mean(None).unwrap();
    let exec = Executor::builder()
        .threads(2)
        .memory(64 << 20)
        .build()
        .unwrap();
    let sink = MemSink::new(&a, &[50, 100]);
    let plan = exec.plan_tasks(&a, sink.grid(), 0).unwrap();
    let kinds: Vec<StageKind> = plan.stages().iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StageKind::Partials,
            StageKind::Merge,
            StageKind::Write,
            StageKind::Finish
        ]
    );
    let dir = work_dir("order");
    let store = DirStore::new(&dir);
    let open = || -> ndstream_engine::Result<Arc<dyn ChunkSink>> { Ok(sink.clone()) };
    // The merge before its partials: refused, naming the missing task.
    let e = exec.run_stage(&plan, 1, 0..1, &store, &open).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }));
    assert!(e.to_string().contains("task 0 is not"), "{e}");
    // A range outside the stage.
    let n = plan.stages()[0].tasks;
    let e = exec
        .run_stage(&plan, 0, 0..n + 1, &store, &open)
        .unwrap_err();
    assert!(e.to_string().contains("not inside"), "{e}");
    let e = exec.run_stage(&plan, 9, 0..1, &store, &open).unwrap_err();
    assert!(e.to_string().contains("no stage 9"), "{e}");
    // Half the partials, then all: the first half is skipped.
    let r = exec.run_stage(&plan, 0, 0..n / 2, &store, &open).unwrap();
    assert_eq!((r.ran, r.skipped), (n / 2, 0));
    let r = exec.run_stage(&plan, 0, 0..n, &store, &open).unwrap();
    assert_eq!((r.ran, r.skipped), (n - n / 2, n / 2));
    // A damaged partial is an error naming the task, not a panic.
    let key = "stage-0/1";
    let good = store.get(key).unwrap().unwrap();
    store.put(key, &good[..good.len() / 2]).unwrap();
    let e = exec.run_stage(&plan, 1, 0..1, &store, &open).unwrap_err();
    assert!(!e.to_string().is_empty());
    store.put(key, &[7]).unwrap();
    let e = exec.run_stage(&plan, 1, 0..1, &store, &open).unwrap_err();
    assert!(e.to_string().contains("task 1 of stage 0"), "{e}");
    store.put(key, &good).unwrap();
    exec.run_stage(&plan, 1, 0..1, &store, &open).unwrap();
    let w = plan.stages()[2].tasks;
    exec.run_stage(&plan, 2, 0..w, &store, &open).unwrap();
    // Writes release the sink (one finish per write range), the finish
    // stage finishes it once more; run again, nothing happens.
    assert_eq!(*sink.finished.lock().unwrap(), 1);
    exec.run_stage(&plan, 3, 0..1, &store, &open).unwrap();
    assert_eq!(*sink.finished.lock().unwrap(), 2);
    for s in 0..4 {
        let t = plan.stages()[s].tasks;
        let r = exec.run_stage(&plan, s, 0..t, &store, &open).unwrap();
        assert_eq!((r.ran, r.skipped), (0, t));
    }
    assert_eq!(*sink.finished.lock().unwrap(), 2);
    assert_eq!(
        bits(&sink.data.lock().unwrap()),
        bits(&in_process(&a, &[50, 100]))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_task_store_keeps_keys_inside_its_directory() {
    let dir = work_dir("keys");
    let store = DirStore::new(&dir);
    for bad in ["", "../x", "a/../../b", "/abs", ".hidden", "a//b"] {
        assert!(store.put(bad, b"x").is_err(), "{bad:?}");
        assert!(store.get(bad).is_err(), "{bad:?}");
    }
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A root reduction written a chunk per task has the bits of the same
/// reduction staged (its tiles split across tasks and merged in order),
/// which a coarse sink grid or a compute of few output chunks gets.
#[test]
fn a_root_reduction_has_the_same_bits_staged_or_not() {
    let y = normal(&[60, 700], &[25, 10], 9);
    let exec = Executor::builder()
        .threads(2)
        .memory(256 << 20)
        .build()
        .unwrap();
    for r in [
        y.mean(Some(0)).unwrap(),
        y.std(Some(0), 1).unwrap(),
        y.max(Some(0)).unwrap(),
    ] {
        let fine = in_process(&r, &[10]);
        let coarse = in_process(&r, &[700]);
        let kinds = |chunks: &[u64]| -> Vec<&str> {
            let grid = ChunkGrid::regular(r.shape(), chunks);
            let plan = exec.plan_tasks(&r, &grid, 0).unwrap();
            plan.stages().iter().map(|s| s.kind.name()).collect()
        };
        assert_eq!(kinds(&[10]), ["write", "finish"]);
        assert_eq!(kinds(&[700]), ["partials", "merge", "write", "finish"]);
        assert_eq!(bits(&fine), bits(&coarse), "{r:?}");
    }
    // The values, against a column mean summed here.
    let data = exec_values(&y);
    let got = in_process(&y.mean(Some(0)).unwrap(), &[10]).to_f64_vec();
    for (j, g) in got.iter().enumerate() {
        let want = (0..60).map(|i| data[i * 700 + j]).sum::<f64>() / 60.0;
        assert!(
            (g - want).abs() <= 1e-12 * want.abs().max(1.0),
            "column {j}: {g} != {want}"
        );
    }
}

fn exec_values(a: &Array) -> Vec<f64> {
    let exec = Executor::builder()
        .threads(1)
        .memory(64 << 20)
        .build()
        .unwrap();
    exec.compute(a).unwrap().to_f64_vec()
}

#[test]
fn stages_cross_only_at_staged_reductions() {
    let exec = Executor::builder()
        .threads(2)
        .memory(256 << 20)
        .build()
        .unwrap();
    let got: Vec<(&str, Vec<String>)> = cases()
        .into_iter()
        .map(|(name, a, chunks)| {
            let grid = ChunkGrid::regular(a.shape(), &chunks);
            let plan = exec.plan_tasks(&a, &grid, 0).unwrap();
            let stages = plan
                .stages()
                .iter()
                .map(|s| format!("{}:{}", s.kind.name(), s.tasks))
                .collect();
            (name, stages)
        })
        .collect();
    let want: Vec<(&str, Vec<&str>)> = vec![
        (
            "centred",
            vec!["partials:24", "merge:1", "write:12", "finish:1"],
        ),
        (
            "standardised",
            vec![
                "partials:24",
                "merge:1",
                "partials:24",
                "merge:1",
                "write:6",
                "finish:1",
            ],
        ),
        // 70 output chunks: one task per output chunk.
        (
            "columns",
            vec!["partials:70", "merge:1", "write:2", "finish:1"],
        ),
        (
            "root-reduction",
            vec!["partials:24", "merge:1", "write:8", "finish:1"],
        ),
        ("wide-root-reduction", vec!["write:70", "finish:1"]),
        // A scan's carry.
        ("scan", vec!["partials:4", "merge:1", "write:6", "finish:1"]),
        // Elementwise work stays fused inside the write tasks.
        ("plain", vec!["write:1", "finish:1"]),
    ];
    assert_eq!(got.len(), want.len());
    for ((name, stages), (wname, wstages)) in got.iter().zip(&want) {
        assert_eq!(name, wname);
        assert_eq!(stages, wstages, "{name}");
    }
}
