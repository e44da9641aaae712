//! Executor behaviour: determinism, refusal, errors naming chunks,
//! cancellation, stores.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ndstream::{Array, Chunks, Error, Executor, IndexItem};

use crate::common::{CountingSink, PatternSource};

#[test]
fn identical_bits_for_any_thread_count() {
    let x = ndstream::random::normal(10.0, 0.1, &[300, 200], [17, 23], 3).unwrap();
    let progs = vec![
        x.sum(None).unwrap(),
        x.mean(Some(0)).unwrap(),
        x.std(Some(1), 1).unwrap(),
        x.index(&[IndexItem::slice(None, None, 3)])
            .unwrap()
            .var(None, 0)
            .unwrap(),
        (&x - &x.mean(None).unwrap())
            .abs()
            .unwrap()
            .max(Some(0))
            .unwrap(),
    ];
    for p in &progs {
        let mut first: Option<Vec<u64>> = None;
        for threads in [1, 2, 3, 8] {
            let exec = Executor::builder()
                .memory(8 << 20)
                .threads(threads)
                .build()
                .unwrap();
            let bits: Vec<u64> = exec
                .compute(p)
                .unwrap()
                .to_f64_vec()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            match &first {
                None => first = Some(bits),
                Some(f) => assert_eq!(f, &bits, "{p} differs with {threads} threads"),
            }
        }
    }
}

/// The strategy (a task per output chunk, or tiles split across tasks and
/// merged) and the order in which partials are associated are fixed by the
/// plan, never by the thread count or the budget: every reduction along
/// every axis, with few and with many output chunks, gives the same bits
/// for 1, 2, 8 and 64 threads and for a large and a small budget.
#[test]
fn identical_bits_along_each_axis_for_any_thread_count_and_budget() {
    use ndstream::ReduceOp::*;
    let ops = [
        Sum,
        Mean,
        Prod,
        NanProd,
        Var { ddof: 0 },
        Std { ddof: 1 },
        NanVar { ddof: 1 },
        ArgMax,
        TopK { k: 3 },
    ];
    // Few output chunks (9 along axis 1 of a (17, 23) grid) and many (100
    // along axis 1 of (300, 2)), with many tiles to fold in each.
    for (chunks, seed) in [([17u64, 23u64], 7u64), ([300, 2], 8), ([3, 200], 9)] {
        let x = ndstream::random::uniform(0.5, 1.5, &[300, 200], chunks, seed).unwrap();
        for op in ops {
            for axis in [0isize, 1] {
                let keep = matches!(op, TopK { .. });
                let p = x.reduce(op, Some(&[axis]), keep).unwrap();
                let mut first: Option<(Vec<u8>, String)> = None;
                for (threads, memory) in [
                    (1, 1u64 << 30),
                    (2, 1 << 30),
                    (8, 1 << 30),
                    (64, 1 << 30),
                    (1, 3 << 20),
                    (8, 3 << 20),
                ] {
                    let exec = Executor::builder()
                        .memory(memory)
                        .threads(threads)
                        .build()
                        .unwrap();
                    let bits = exec.compute(&p).unwrap().to_ne_bytes();
                    let run = format!("{threads} threads, {} MiB", memory >> 20);
                    match &first {
                        None => first = Some((bits, run)),
                        Some((f, r)) => assert!(
                            f == &bits,
                            "{op:?} along axis {axis} of chunks {chunks:?}: {run} differs from {r}"
                        ),
                    }
                }
            }
        }
    }
}

/// Jobs started from several threads on one shared executor each get the
/// bits they get alone, under a budget that holds one job at a time (they
/// run one after another; before, they shared the budget's free memory, the
/// cache evictor slot and the cancel flag, and were refused or stalled).
#[test]
fn concurrent_jobs_on_one_executor_get_their_own_results() {
    let x = ndstream::random::uniform(0.5, 1.5, &[2000, 1200], [250, 300], 11).unwrap();
    let jobs: Vec<Array> = vec![
        (&x - &x.mean(Some(0)).unwrap()).std(None, 0).unwrap(),
        x.var(Some(1), 1).unwrap(),
        (&x * &x).sum(Some(0)).unwrap(),
        x.index(&ndstream::s![..;3, 1..;2])
            .unwrap()
            .max(Some(1))
            .unwrap(),
    ];
    // Room for the hungriest job and a half: two at once do not fit.
    let probe = Executor::builder()
        .memory(1 << 30)
        .threads(2)
        .build()
        .unwrap();
    let least = jobs
        .iter()
        .map(|j| probe.plan(std::slice::from_ref(j)).unwrap().least_bytes())
        .max()
        .unwrap();
    let memory = least * 3 / 2;
    let alone: Vec<Vec<u8>> = jobs
        .iter()
        .map(|j| {
            let exec = Executor::builder()
                .memory(memory)
                .threads(2)
                .build()
                .unwrap();
            exec.compute(j).unwrap().to_ne_bytes()
        })
        .collect();
    let shared = Executor::builder()
        .memory(memory)
        .threads(2)
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .flat_map(|round| jobs.iter().enumerate().map(move |(i, j)| (round, i, j)))
            .map(|(round, i, j)| {
                let shared = &shared;
                (round, i, scope.spawn(move || shared.compute(j)))
            })
            .collect();
        for (round, i, run) in runs {
            let got = run.join().unwrap();
            let got = got.unwrap_or_else(|e| panic!("job {i} of round {round} failed: {e}"));
            assert!(
                got.to_ne_bytes() == alone[i],
                "job {i} of round {round}: other bits than alone"
            );
        }
    });
    assert!(shared.budget().peak() <= memory);
}

/// A plan names every stored array it reads with a locator that opens the
/// same array from anywhere; generated arrays need none, and a source that
/// lives only in this process says so.
#[test]
fn a_plan_lists_its_inputs_and_how_to_reopen_them() {
    let dir = tempfile::tempdir().unwrap();
    let exec = Executor::builder()
        .memory(64 << 20)
        .threads(2)
        .build()
        .unwrap();
    let x = ndstream::random::uniform(0.0, 1.0, &[40, 30], [10, 10], 3).unwrap();
    let opts = ndstream::StoreOptions::default();
    let npy = dir.path().join("a.npy").display().to_string();
    let zarr = dir.path().join("g.zarr/b").display().to_string();
    ndstream::store(&exec, &x, &npy, &opts).unwrap();
    ndstream::store(&exec, &(&x * 2.0), &zarr, &opts).unwrap();
    let (a, b) = (
        ndstream::open(&npy).unwrap(),
        ndstream::open(&zarr).unwrap(),
    );
    let mem = Array::from_source(Arc::new(PatternSource::new(&[40, 30], &[10, 10])));
    let y = (&(&a + &b) - &x.mean(Some(0)).unwrap()).sum(None).unwrap();
    let plan = exec
        .plan(&[y.clone(), (&y + &mem.sum(None).unwrap())])
        .unwrap();
    let inputs = plan.inputs();
    assert_eq!(inputs.len(), 3, "{inputs:?}");
    assert_eq!(inputs[0], (npy.clone(), Some(npy.clone())));
    assert_eq!(inputs[1], (zarr.clone(), Some(zarr.clone())));
    assert_eq!(inputs[2].1, None);
    // Reopened through its locator, an input computes the same bits.
    let again = ndstream::open(inputs[1].1.as_ref().unwrap()).unwrap();
    let want = exec.compute(&b).unwrap().to_ne_bytes();
    assert!(exec.compute(&again).unwrap().to_ne_bytes() == want);
    assert!(plan.to_string().contains(&format!("reads {npy}")), "{plan}");
}

#[test]
fn thin_tiles_of_a_stack_fold_together_with_the_same_bits_and_values() {
    // Nine (150, 130) days stacked: the reduction over time folds chunk
    // tiles one day deep whose running sums (19,500 kept elements) are
    // large enough to fold several days at a time. The result must not
    // depend on threads or budget, and must match a plain f64 oracle to
    // float32 rounding (the result is float32, as NumPy's).
    let days: Vec<ndstream::Array> = (0..9)
        .map(|d| {
            let x = ndstream::random::normal(10.0, 1.0, &[150, 130], [150, 130], 40 + d).unwrap();
            // About a sixth NaN, for the NaN-ignoring pair.
            (&x - 9.0).sqrt().unwrap().astype(ndstream::DType::F32)
        })
        .collect();
    let x = ndstream::stack(&days, 0).unwrap();
    let values: Vec<Vec<f64>> = days
        .iter()
        .map(|d| Executor::new().compute(d).unwrap().to_f64_vec())
        .collect();
    let nans = values.iter().flatten().filter(|v| v.is_nan()).count();
    assert!(nans > 9 * 150 * 130 / 10, "the data has NaNs ({nans})");
    let oracle = |skip: bool, mean: bool| -> Vec<f64> {
        (0..150 * 130)
            .map(|k| {
                let v: Vec<f64> = values
                    .iter()
                    .map(|d| d[k])
                    .filter(|v| !(skip && v.is_nan()))
                    .collect();
                let s: f64 = v.iter().sum();
                if mean {
                    s / v.len() as f64
                } else {
                    s
                }
            })
            .collect()
    };
    let progs = [
        (x.sum(Some(0)).unwrap(), oracle(false, false)),
        (x.nansum(Some(0)).unwrap(), oracle(true, false)),
        (x.mean(Some(0)).unwrap(), oracle(false, true)),
        (x.nanmean(Some(0)).unwrap(), oracle(true, true)),
    ];
    for (p, want) in &progs {
        let mut first: Option<Vec<u64>> = None;
        for (threads, memory) in [(1, 16 << 20), (2, 64 << 20), (4, 1 << 30)] {
            let exec = Executor::builder()
                .memory(memory)
                .threads(threads)
                .build()
                .unwrap();
            let got = exec.compute(p).unwrap().to_f64_vec();
            let bits: Vec<u64> = got.iter().map(|v| v.to_bits()).collect();
            match &first {
                None => first = Some(bits),
                Some(f) => assert_eq!(f, &bits, "{p} differs with {threads} threads"),
            }
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1.2e-7 * w.abs(),
                    "{p} element {k}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn a_chunk_larger_than_the_budget_is_refused_before_reading() {
    // One 3.2 GB chunk under a 1 GiB budget.
    let src = Arc::new(PatternSource::new(&[400_000_000], &[400_000_000]));
    let x = Array::from_source(src.clone());
    let exec = Executor::builder()
        .memory(1 << 30)
        .threads(2)
        .build()
        .unwrap();
    let err = exec.compute(&x.sum(None).unwrap()).unwrap_err();
    assert!(matches!(err, Error::BudgetTooSmall { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("pattern://test"), "names the operation: {msg}");
    assert!(
        msg.contains("GiB") && msg.contains("budget"),
        "says how much: {msg}"
    );
    assert!(
        msg.contains("smaller chunks") || msg.contains("rechunk"),
        "says what to change: {msg}"
    );
    assert_eq!(src.reads.load(Ordering::Relaxed), 0, "nothing was read");
}

/// A store the budget cannot hold is refused before the output exists and
/// before anything is read, also when a reduction would be staged ahead
/// of the main job (the staged mean fits; the main job's chunk does not),
/// for every output format.
#[test]
fn a_refused_store_creates_nothing_and_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = vec!["o.zarr", "g.zarr/x", "o.npy"];
    if cfg!(feature = "hdf5") {
        outputs.push("o.h5:/x");
    }
    for out in outputs {
        let src = Arc::new(PatternSource::new(&[2000, 1000], &[100, 1000]));
        let x = Array::from_source(src.clone());
        // x - mean(x, axis=0): the mean (8 KB) is staged ahead.
        let a = &x - &x.mean(Some(0)).unwrap();
        let exec = Executor::builder()
            .memory(8 << 20)
            .threads(2)
            .build()
            .unwrap();
        let opts = ndstream::StoreOptions {
            chunks: Some(vec![2000, 1000]),
            ..Default::default()
        };
        let path = dir.path().join(out).display().to_string();
        let err = ndstream::store(&exec, &a, &path, &opts).unwrap_err();
        assert!(matches!(err, Error::BudgetTooSmall { .. }), "{out}: {err}");
        assert!(err.to_string().contains("budget"), "{out}: {err}");
        assert_eq!(src.reads.load(Ordering::Relaxed), 0, "{out}: nothing read");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{out}: {left:?} left behind");
        // The same store fits a larger budget and then runs (the refusal
        // was not a side effect: no "already exists").
        let exec = Executor::builder()
            .memory(1 << 30)
            .threads(2)
            .build()
            .unwrap();
        ndstream::store(&exec, &a, &path, &opts).unwrap();
        assert!(src.reads.load(Ordering::Relaxed) > 0);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
}

/// The same for compute(): a staged reduction does not run when the main
/// job it feeds is refused.
#[test]
fn a_refused_compute_reads_nothing_even_with_a_staged_reduction() {
    let src = Arc::new(PatternSource::new(&[4000, 1000], &[100, 1000]));
    let x = Array::from_source(src.clone());
    let a = (&x - &x.mean(Some(0)).unwrap())
        .rechunk(Chunks::Shape(vec![4000, 1000]))
        .unwrap();
    let exec = Executor::builder()
        .memory(24 << 20)
        .threads(2)
        .build()
        .unwrap();
    let err = exec.compute(&a.sum(Some(1)).unwrap()).unwrap_err();
    assert!(matches!(err, Error::BudgetTooSmall { .. }), "{err}");
    assert_eq!(src.reads.load(Ordering::Relaxed), 0, "nothing read");
    // The refusal names the expression as written, the mean included (not
    // the placeholder that stands for its result while planning).
    let text = err.to_string();
    assert!(text.contains("mean(") && !text.contains("full("), "{text}");
}

#[test]
fn the_first_error_cancels_and_names_the_chunk() {
    let mut s = PatternSource::new(&[1000, 10], &[10, 10]);
    s.fail_at = Some(vec![37, 0]);
    let src = Arc::new(s);
    let x = Array::from_source(src.clone());
    let exec = Executor::builder()
        .memory(1 << 20)
        .threads(4)
        .build()
        .unwrap();
    let err = exec.compute(&x.sum(None).unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("(37, 0)") && err.contains("pattern://test"),
        "{err}"
    );
    assert!(
        src.reads.load(Ordering::Relaxed) < 100,
        "the job stopped early"
    );
    // The executor is reusable after a failure.
    let ok = Array::from_source(Arc::new(PatternSource::new(&[100, 10], &[10, 10])));
    exec.compute(&ok.sum(None).unwrap()).unwrap();
}

#[test]
fn store_streams_every_chunk_and_finishes() {
    let src = Arc::new(PatternSource::new(&[64, 48], &[16, 16]));
    let x = Array::from_source(src);
    let y = (&x * 2.0)
        .index(&[IndexItem::slice(None, None, 2), IndexItem::FULL])
        .unwrap();
    let sink = CountingSink::new(&[32, 48], ndstream::DType::F64, &[10, 48]);
    let exec = Executor::builder()
        .memory(4 << 20)
        .threads(2)
        .build()
        .unwrap();
    let report = exec.store(&y, &sink).unwrap();
    assert_eq!(report.chunks_written, 4);
    assert_eq!(sink.chunks.load(Ordering::Relaxed), 4);
    assert_eq!(sink.finished.load(Ordering::Relaxed), 1);
    let want: f64 = (0..32u64)
        .flat_map(|i| (0..48u64).map(move |j| 2.0 * PatternSource::value(2 * i * 48 + j)))
        .sum();
    let got = *sink.sum.lock().unwrap();
    assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
}

#[test]
fn cancel_handle_stops_a_job() {
    // Cancel from another thread as soon as the first chunk is done (no
    // timing race: the job has 1,600 chunks, so it cannot finish first).
    let x = ndstream::random::normal(0.0, 1.0, &[4000, 4000], [100, 100], 1).unwrap();
    let handle: Arc<std::sync::OnceLock<ndstream::CancelHandle>> =
        Arc::new(std::sync::OnceLock::new());
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let tx = std::sync::Mutex::new(tx);
    let exec = Executor::builder()
        .memory(64 << 20)
        .threads(2)
        .progress(Arc::new(move |_p: &ndstream::Progress| {
            let _ = tx.lock().unwrap().try_send(());
        }))
        .build()
        .unwrap();
    handle.set(exec.cancel_handle()).unwrap();
    let done = std::sync::atomic::AtomicU64::new(0);
    let (handle_ref, done_ref) = (&handle, &done);
    std::thread::scope(|s| {
        s.spawn(move || {
            if rx.recv().is_ok() {
                handle_ref.get().unwrap().cancel();
            }
            done_ref.store(1, Ordering::SeqCst);
        });
        let r = exec.compute(&x.sum(Some(0)).unwrap());
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    });
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn progress_reports_every_chunk() {
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d2 = done.clone();
    let exec = Executor::builder()
        .memory(8 << 20)
        .threads(2)
        .progress(Arc::new(move |p: &ndstream::Progress| {
            assert!(p.chunks_done <= p.chunks_total);
            d2.store(p.chunks_done, Ordering::Relaxed);
        }))
        .build()
        .unwrap();
    let x = ndstream::zeros(
        &[100, 100],
        ndstream::DType::F32,
        Chunks::Shape(vec![10, 10]),
    )
    .unwrap();
    exec.compute(&(&x + 1.0)).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 100);
}

#[test]
fn repr_is_like_dask() {
    let x = ndstream::random::normal(10.0, 0.1, &[20000, 20000], [1000, 1000], 0).unwrap();
    let s = x.mean(Some(0)).unwrap().to_string();
    assert!(s.contains("shape=(20000,)"), "{s}");
    assert!(s.contains("dtype=float64"), "{s}");
    assert!(s.contains("chunksize=(1000,)"), "{s}");
    assert!(s.contains("chunks=20"), "{s}");
    assert!(s.contains("mean(random.normal(10, 0.1"), "{s}");
}

/// `s` in `s * s - s` is evaluated once per tile, not three times, in a
/// reduction and in an elementwise map alike; the values are unchanged.
#[test]
fn a_shared_subexpression_is_evaluated_once_per_tile() {
    use std::sync::atomic::AtomicUsize;
    let v = ndarray::Array2::from_shape_fn((64, 48), |(i, j)| (i * 48 + j) as f64 * 0.25 - 300.0)
        .into_dyn();
    let x = Array::from_ndarray(v.clone(), Chunks::Shape(vec![16, 48])).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let s = x
        .map_blocks(
            ndstream::DType::F64,
            "counted_double",
            move |b: &[ndstream::Block]| {
                c.fetch_add(1, Ordering::SeqCst);
                let a = b[0]
                    .view::<f64>()
                    .ok_or_else(|| Error::invalid("test", "b", "not f64"))?;
                Ok(ndstream::Block::from(a.mapv(|t| 2.0 * t)))
            },
        )
        .unwrap();
    let y = &(&s * &s) - &s;
    let want = v.mapv(|t| 4.0 * t * t - 2.0 * t);
    let exec = Executor::builder().threads(2).build().unwrap();

    let total = exec.compute(&y.sum(None).unwrap()).unwrap().to_f64_vec()[0];
    assert_eq!(total, want.sum(), "exact: every term is a multiple of 1/16");
    assert_eq!(calls.swap(0, Ordering::SeqCst), 4, "one call per chunk");

    let got = exec.compute(&y).unwrap().to_f64_vec();
    assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
    assert_eq!(calls.load(Ordering::SeqCst), 4, "one call per chunk");
}

#[test]
fn a_square_of_a_node_evaluates_it_once() {
    // `s * s` is `s` squared: one evaluation of `s` per tile (no second
    // use kept), with the bits of the product, NaN, infinities and -0.0
    // included.
    use std::sync::atomic::AtomicUsize;
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        1e200,
        -3.5,
    ];
    let v = ndarray::Array2::from_shape_fn((40, 30), |(i, j)| {
        let k = i * 30 + j;
        if k % 97 < specials.len() {
            specials[k % 97]
        } else {
            k as f64 * 0.37 - 111.0
        }
    })
    .into_dyn();
    let x = Array::from_ndarray(v.clone(), Chunks::Shape(vec![16, 30])).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let s = x
        .map_blocks(
            ndstream::DType::F64,
            "counted_copy",
            move |b: &[ndstream::Block]| {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(b[0].clone())
            },
        )
        .unwrap();
    let y = &s * &s;
    let exec = Executor::builder().threads(2).build().unwrap();
    let got = exec.compute(&y).unwrap().to_f64_vec();
    let want: Vec<f64> = v.iter().map(|&t| t * t).collect();
    let bits = |v: &[f64]| v.iter().map(|t| t.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want));
    assert_eq!(calls.swap(0, Ordering::SeqCst), 3, "one call per chunk");
}

#[test]
fn pair_distances_summed_inside_a_reduction_match_the_oracle_for_any_threads() {
    // The Lennard-Jones shape: (d*d).sum(-1) of broadcast differences,
    // evaluated inside a reduction's tiles. Large enough (500 particles)
    // that the inner reduction splits its three coordinates into tiles
    // that fold together.
    let n = 500usize;
    let pos = ndarray::Array2::from_shape_fn((n, 3), |(i, k)| {
        ((i * 7 + k * 13) % 101) as f64 * 0.5 + i as f64 * 0.01 - 20.0
    })
    .into_dyn();
    let x = Array::from_ndarray(pos.clone(), Chunks::Shape(vec![n as u64 / 2, 3])).unwrap();
    let a = x
        .index(&[IndexItem::FULL, IndexItem::NewAxis, IndexItem::FULL])
        .unwrap();
    let b = x
        .index(&[IndexItem::NewAxis, IndexItem::FULL, IndexItem::FULL])
        .unwrap();
    let d = &a - &b;
    let r2 = (&d * &d).sum(Some(2)).unwrap();
    let total = r2.sum(None).unwrap();
    // Oracle: the same sums in plain f64 (exact here: every term is a
    // multiple of 1/10000 well inside 2^53 ulps).
    let mut want = 0.0f64;
    for i in 0..n {
        for j in 0..n {
            for k in 0..3 {
                let t = pos[[i, k]] - pos[[j, k]];
                want += t * t;
            }
        }
    }
    let mut first: Option<u64> = None;
    for threads in [1, 2, 4] {
        let exec = Executor::builder().threads(threads).build().unwrap();
        let got = exec.compute(&total).unwrap().to_f64_vec()[0];
        assert!(
            (got - want).abs() <= 1e-12 * want.abs(),
            "{got} vs {want} with {threads} threads"
        );
        match first {
            None => first = Some(got.to_bits()),
            Some(f) => assert_eq!(f, got.to_bits(), "{threads} threads"),
        }
    }
    // The per-pair sums themselves.
    let exec = Executor::builder().threads(2).build().unwrap();
    let got = exec.compute(&r2).unwrap().to_f64_vec();
    for (e, g) in got.iter().enumerate() {
        let (i, j) = (e / n, e % n);
        let w: f64 = (0..3).map(|k| (pos[[i, k]] - pos[[j, k]]).powi(2)).sum();
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1e-300),
            "({i}, {j}): {g} vs {w}"
        );
    }
}

/// A reduction over thin tiles of a fused elementwise chain folds the
/// chain's rows as it computes them (never storing a tile); the bits are
/// those of folding the same values held as blocks (here: behind an
/// identity `map_blocks`, which no chain reaches through), and the values
/// match the oracle.
#[test]
fn a_fused_chain_folds_into_a_reduction_with_the_bits_of_its_blocks() {
    // (x[:, None] - y[None, :]) ** 2 + 0.5 summed over axis 0, with 16384
    // kept columns: six sub-tiles of 2 rows are folded as one group.
    let (n, m) = (12usize, 16384usize);
    let xs = ndarray::Array1::from_shape_fn(n, |i| i as f64 * 0.75 - 3.0).into_dyn();
    let ys =
        ndarray::Array1::from_shape_fn(m, |j| ((j * 37) % 1009) as f64 * 0.01 - 5.0).into_dyn();
    let x = Array::from_ndarray(xs.clone(), Chunks::Shape(vec![n as u64])).unwrap();
    let y = Array::from_ndarray(ys.clone(), Chunks::Shape(vec![m as u64])).unwrap();
    let col = x.index(&[IndexItem::FULL, IndexItem::NewAxis]).unwrap();
    let row = y.index(&[IndexItem::NewAxis, IndexItem::FULL]).unwrap();
    let d = &col - &row;
    let chain = &(&d * &d) + 0.5;
    let held = chain
        .map_blocks(
            ndstream::DType::F64,
            "identity",
            |b: &[ndstream::Block]| Ok::<_, Error>(b[0].clone()),
        )
        .unwrap();
    let exec = Executor::builder().threads(2).build().unwrap();
    let fused = exec
        .compute(&chain.sum(Some(0)).unwrap())
        .unwrap()
        .to_f64_vec();
    let blocks = exec
        .compute(&held.sum(Some(0)).unwrap())
        .unwrap()
        .to_f64_vec();
    assert_eq!(fused.len(), m);
    for (j, (f, b)) in fused.iter().zip(&blocks).enumerate() {
        assert_eq!(f.to_bits(), b.to_bits(), "column {j}: {f} vs {b}");
        let want: f64 = (0..n).map(|i| (xs[i] - ys[j]).powi(2) + 0.5).sum();
        assert!(
            (f - want).abs() <= 1e-12 * want,
            "column {j}: {f} vs {want}"
        );
    }
    // The mean and the NaN-ignoring sum take the same path.
    let mean = exec
        .compute(&chain.mean(Some(0)).unwrap())
        .unwrap()
        .to_f64_vec();
    let held_mean = exec
        .compute(&held.mean(Some(0)).unwrap())
        .unwrap()
        .to_f64_vec();
    assert_eq!(mean, held_mean);
}

#[test]
fn a_power_with_an_exponent_array_is_powf_in_every_chunking() {
    // `x ** y` with `y` an array, not a scalar: every element is
    // powf(x, y), as NumPy's power of two arrays, whatever the chunking.
    // With one-element chunks, a tile of `y` has one element, which used to
    // take the scalar exponent's fast paths (`sqrt`, `x * x * x`, ...).
    let xs = vec![-0.0f64, 1.1, 0.7, -0.0, 3.3, 1e-3, 2.9, 1.7];
    let ys = vec![0.5f64, 3.0, 3.0, 0.5, 7.0, -2.0, 2.0, 3.0];
    let want: Vec<f64> = xs.iter().zip(&ys).map(|(x, y)| x.powf(*y)).collect();
    // The test can fail: sqrt(-0.0) is -0.0 where powf(-0.0, 0.5) is +0.0.
    assert_ne!((-0.0f64).sqrt().to_bits(), want[0].to_bits());
    let exec = Executor::builder().threads(2).build().unwrap();
    for c in [1u64, 2, 3, 8] {
        let arr = |v: &Vec<f64>| {
            let a = ndarray::Array1::from(v.clone()).into_dyn();
            Array::from_ndarray(a, Chunks::Shape(vec![c])).unwrap()
        };
        let (x, y) = (arr(&xs), arr(&ys));
        for (what, e) in [
            ("x ** y", x.binary(ndstream::BinaryOp::Pow, &y).unwrap()),
            // Fused with further ops, and read through a slice.
            (
                "(x ** y)[::-1] * 1",
                (&x.binary(ndstream::BinaryOp::Pow, &y)
                    .unwrap()
                    .index(&[IndexItem::slice(None, None, -1)])
                    .unwrap()
                    * 1.0),
            ),
        ] {
            let got = exec.compute(&e).unwrap().to_f64_vec();
            let mut w = want.clone();
            if what.contains("::-1") {
                w.reverse();
            }
            for (i, (g, w)) in got.iter().zip(&w).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{what}, chunks of {c}, element {i}: {g} vs {w}"
                );
            }
        }
    }
}

/// A graph that uses nodes more than once (a logistic map: each step uses
/// `x` twice) is planned by visiting each node once: its estimate counts
/// a shared node once, as the tile's memo evaluates it once. Walking it as
/// a tree took 2^steps visits and estimated 2^20 blocks for 20 steps, so a
/// budget of a few blocks was refused (at 40 steps it never finished).
#[test]
fn a_graph_that_reuses_nodes_is_planned_once_per_node() {
    let x0 = ndstream::random::uniform(0.0, 1.0, &[1000], [100], 3).unwrap();
    let mut x = x0.clone();
    for _ in 0..20 {
        x = &(&x * 3.9) * &(1.0 - &x);
    }
    let exec = Executor::builder()
        .memory(1 << 20)
        .threads(2)
        .build()
        .unwrap();
    let got = exec.compute(&x.mean(None).unwrap()).unwrap().to_f64_vec()[0];
    // The same map in plain f64 from the same starting values.
    let start = exec.compute(&x0).unwrap().to_f64_vec();
    let want = start
        .iter()
        .map(|&v| (0..20).fold(v, |x, _| 3.9 * x * (1.0 - x)))
        .sum::<f64>()
        / 1000.0;
    assert!((got - want).abs() <= 1e-9 * want.abs(), "{got} vs {want}");
    // A deeper chain plans as fast (its estimate does not grow with the
    // number of paths through it).
    let mut y = x0.clone();
    for _ in 0..60 {
        y = &(&y * 3.9) * &(1.0 - &y);
    }
    let plan = exec.plan(&[y.mean(None).unwrap()]).unwrap();
    assert!(plan.least_bytes() <= 1 << 20, "{}", plan.least_bytes());
}

/// The results of `compute_many` are held until all are returned, so each
/// later job must fit beside the earlier results: two results of 8 MiB
/// each are refused under 16 MiB before anything runs (each alone fits),
/// and under 64 MiB the budget's peak covers both at once.
#[test]
fn results_held_by_compute_many_count_against_the_budget() {
    let a = ndstream::ones(
        &[1024, 1024],
        ndstream::DType::F64,
        Chunks::Shape(vec![64, 1024]),
    )
    .unwrap();
    let b = &a * 2.0;
    let jobs = [&a + 1.0, &b + 1.0];
    let small = Executor::builder()
        .memory(16 << 20)
        .threads(2)
        .build()
        .unwrap();
    for j in &jobs {
        small.plan(std::slice::from_ref(j)).unwrap();
    }
    let err = small.compute_many(&jobs).unwrap_err();
    assert!(matches!(err, Error::BudgetTooSmall { .. }), "{err}");
    assert_eq!(small.budget().peak(), 0, "refused before anything ran");
    let big = Executor::builder()
        .memory(64 << 20)
        .threads(2)
        .build()
        .unwrap();
    let out = big.compute_many(&jobs).unwrap();
    assert_eq!(out[0].to_f64_vec()[..3], [2.0, 2.0, 2.0]);
    assert_eq!(out[1].to_f64_vec()[..3], [3.0, 3.0, 3.0]);
    let peak = big.budget().peak();
    assert!(peak >= 16 << 20, "both results reserved at once: {peak}");
    assert!(peak <= 64 << 20);
}

/// Boolean-mask reductions of an empty and of a 0-d array: NumPy's
/// answers (`np.zeros(0)[m].sum()` is 0, a 0-d `x[x > 0]` is one element),
/// not a panic while planning.
#[test]
fn masked_reductions_of_empty_and_0d_arrays_work() {
    let empty = ndstream::zeros(&[0], ndstream::DType::F64, Chunks::Shape(vec![4])).unwrap();
    let s = empty
        .mask(&empty.gt(0.0).unwrap())
        .unwrap()
        .sum(None)
        .unwrap();
    assert_eq!(s.compute().unwrap().to_f64_vec(), [0.0]);
    let empty2 = ndstream::zeros(&[0, 3], ndstream::DType::F64, Chunks::Shape(vec![2, 3])).unwrap();
    let s = empty2
        .mask(&empty2.gt(0.0).unwrap())
        .unwrap()
        .sum(None)
        .unwrap();
    assert_eq!(s.compute().unwrap().to_f64_vec(), [0.0]);
    let scalar = ndstream::full(&[], 2.5, ndstream::DType::F64, Chunks::Shape(vec![])).unwrap();
    let m = scalar.mask(&scalar.gt(0.0).unwrap()).unwrap();
    assert_eq!(m.sum(None).unwrap().compute().unwrap().to_f64_vec(), [2.5]);
    assert_eq!(m.max(None).unwrap().compute().unwrap().to_f64_vec(), [2.5]);
    let none = scalar.mask(&scalar.lt(0.0).unwrap()).unwrap();
    assert_eq!(
        none.sum(None).unwrap().compute().unwrap().to_f64_vec(),
        [0.0]
    );
}

/// A panic in the progress callback (which runs in the in-order merge)
/// fails the job with a clear error instead of leaving the workers waiting
/// for a window that never moves.
#[test]
fn a_panicking_progress_callback_fails_the_job() {
    let exec = Executor::builder()
        .memory(8 << 20)
        .threads(1)
        .progress(Arc::new(|p: &ndstream::Progress| {
            if p.chunks_done == 3 {
                panic!("callback gave up");
            }
        }))
        .build()
        .unwrap();
    let x = ndstream::zeros(
        &[400, 100],
        ndstream::DType::F32,
        Chunks::Shape(vec![10, 10]),
    )
    .unwrap();
    let err = exec.compute(&(&x + 1.0)).unwrap_err();
    assert!(matches!(err, Error::WorkerPanic { .. }), "{err}");
    assert!(err.to_string().contains("callback gave up"), "{err}");
    // The executor runs the next job (two chunks: the callback passes).
    let y = ndstream::zeros(&[20, 10], ndstream::DType::F32, Chunks::Shape(vec![10, 10])).unwrap();
    let s = exec.compute(&(&y + 1.0).sum(None).unwrap()).unwrap();
    assert_eq!(s.to_f64_vec(), [200.0]);
}
