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
