//! Edge-case shapes and graphs: zero-length axes and 0-d arrays behave as
//! in NumPy (the oracle values below are NumPy's: an empty sum is 0, an
//! empty product 1, an empty mean NaN, an empty max an error), shapes too
//! large for any array and expressions too deep to evaluate are refused
//! with an error, and none of them panics.

use ndarray::{arr0, ArrayD, IxDyn};
use ndstream::{zeros, Array, Chunks, DType, Error, Executor, ReduceOp};

fn exec(threads: usize) -> Executor {
    Executor::builder()
        .memory(64 << 20)
        .threads(threads)
        .build()
        .unwrap()
}

fn values(a: &Array, threads: usize) -> (Vec<usize>, Vec<f64>) {
    let b = exec(threads).compute(a).unwrap();
    (b.shape().to_vec(), b.to_f64_vec())
}

fn same(got: &[f64], want: &[f64]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g.is_nan() && w.is_nan()) || g == w)
}

/// Arrays with a zero-length axis, in memory, generated, and with several chunkings.
fn empties() -> Vec<(String, Array)> {
    let mut v = Vec::new();
    for chunks in [
        Chunks::Auto,
        Chunks::Shape(vec![1, 2]),
        Chunks::Shape(vec![0, 3]),
    ] {
        v.push((
            format!("zeros((0, 5), chunks={chunks:?})"),
            zeros(&[0, 5], DType::F64, chunks.clone()).unwrap(),
        ));
        v.push((
            format!("from_ndarray((0, 5), chunks={chunks:?})"),
            Array::from_ndarray(ArrayD::<f64>::zeros(IxDyn(&[0, 5])), chunks.clone()).unwrap(),
        ));
        v.push((
            format!("random((0, 5), chunks={chunks:?})"),
            ndstream::random::uniform(0.0, 1.0, &[0, 5], chunks, 3).unwrap(),
        ));
    }
    v
}

#[test]
fn reductions_of_zero_length_arrays_follow_numpy() {
    for (name, x) in empties() {
        for threads in [1, 2] {
            let all = |op: ReduceOp| values(&x.reduce(op, None, false).unwrap(), threads);
            let ax0 = |op: ReduceOp| values(&x.reduce(op, Some(&[0]), false).unwrap(), threads);
            let ax1 = |op: ReduceOp| values(&x.reduce(op, Some(&[1]), false).unwrap(), threads);
            let nan = f64::NAN;
            for (op, whole, along0) in [
                (ReduceOp::Sum, 0.0, 0.0),
                (ReduceOp::NanSum, 0.0, 0.0),
                (ReduceOp::Prod, 1.0, 1.0),
                (ReduceOp::Mean, nan, nan),
                (ReduceOp::NanMean, nan, nan),
                (ReduceOp::Var { ddof: 0 }, nan, nan),
                (ReduceOp::Std { ddof: 1 }, nan, nan),
                (ReduceOp::Any, 0.0, 0.0),
                (ReduceOp::All, 1.0, 1.0),
                (ReduceOp::CountNonzero, 0.0, 0.0),
            ] {
                let what = format!("{name}: {op:?} (threads {threads})");
                let (s, v) = all(op);
                assert!(s.is_empty() && same(&v, &[whole]), "{what}: {s:?} {v:?}");
                let (s, v) = ax0(op);
                assert!(
                    s == [5] && same(&v, &[along0; 5]),
                    "{what} axis 0: {s:?} {v:?}"
                );
                let (s, v) = ax1(op);
                assert!(s == [0] && v.is_empty(), "{what} axis 1: {s:?} {v:?}");
            }
            for op in [
                ReduceOp::Min,
                ReduceOp::Max,
                ReduceOp::NanMin,
                ReduceOp::NanMax,
                ReduceOp::ArgMin,
                ReduceOp::ArgMax,
            ] {
                for axes in [None, Some(&[0isize][..])] {
                    let e = x.reduce(op, axes, false).unwrap_err();
                    let m = e.to_string();
                    assert!(
                        m.contains("zero-size array") || m.contains("empty sequence"),
                        "{name}: {op:?} {axes:?}: {e}"
                    );
                }
                // Reducing the non-empty axis gives an empty result, as in NumPy.
                let (s, v) = ax1(op);
                assert!(s == [0] && v.is_empty(), "{name}: {op:?} axis 1");
            }
            // Elementwise, slicing and stacking keep the zero length.
            let y = ndstream::stack(
                &[
                    &x + 1.0,
                    x.index(&[ndstream::IndexItem::slice(None, None, -1)])
                        .unwrap(),
                ],
                0,
            )
            .unwrap();
            let (s, v) = values(&y, threads);
            assert!(s == [2, 0, 5] && v.is_empty(), "{name}: stack {s:?}");
        }
    }
}

#[test]
fn zero_d_arrays_reduce_to_themselves() {
    let x = Array::from_ndarray(arr0(3.5f64).into_dyn(), Chunks::Auto).unwrap();
    let y = Array::from_ndarray(arr0(-2i32).into_dyn(), Chunks::Auto).unwrap();
    for threads in [1, 2] {
        for (op, want_x, want_y) in [
            (ReduceOp::Sum, 3.5, -2.0),
            (ReduceOp::Prod, 3.5, -2.0),
            (ReduceOp::Mean, 3.5, -2.0),
            (ReduceOp::Min, 3.5, -2.0),
            (ReduceOp::Max, 3.5, -2.0),
            (ReduceOp::NanMax, 3.5, -2.0),
            (ReduceOp::ArgMax, 0.0, 0.0),
            (ReduceOp::Var { ddof: 0 }, 0.0, 0.0),
            (ReduceOp::Any, 1.0, 1.0),
        ] {
            for (a, want) in [(&x, want_x), (&y, want_y)] {
                let (s, v) = values(&a.reduce(op, None, false).unwrap(), threads);
                assert!(s.is_empty() && v == [want], "{op:?} of {a:?}: {v:?}");
            }
        }
        // A 0-d array has no axis 0.
        assert!(matches!(x.sum(Some(0)), Err(Error::AxisOutOfBounds { .. })));
        let (s, v) = values(&(&(&x * 2.0) + &y.astype(DType::F64)), threads);
        assert!(s.is_empty() && v == [5.0]);
    }
}

#[test]
fn shapes_too_large_for_any_array_are_refused() {
    let huge = [1u64 << 32, 1 << 32];
    for dtype in [DType::Bool, DType::F64] {
        let e = zeros(&huge, dtype, Chunks::Auto).unwrap_err();
        assert!(matches!(e, Error::ArrayTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("2^63 bytes"), "{e}");
    }
    // 2^62 f64 elements are 2^65 bytes; 2^62 bools fit (and stay lazy).
    let big = [1u64 << 31, 1 << 31];
    assert!(zeros(&big, DType::F64, Chunks::Auto).is_err());
    let b = zeros(&big, DType::Bool, Chunks::Shape(vec![1 << 20, 1 << 20])).unwrap();
    assert_eq!(b.size(), 1 << 62);
    // Broadcasting and stacking can grow a shape past the limit too.
    let col = zeros(&[1 << 32, 1], DType::F64, Chunks::Auto).unwrap();
    let row = zeros(&[1, 1 << 32], DType::F64, Chunks::Auto).unwrap();
    assert!(matches!(
        col.binary(ndstream::BinaryOp::Add, &row),
        Err(Error::ArrayTooLarge { .. })
    ));
    let half = zeros(&[1 << 59], DType::F64, Chunks::Shape(vec![1 << 30])).unwrap();
    assert!(matches!(
        ndstream::concatenate(&[half.clone(), half.clone()], 0),
        Err(Error::ArrayTooLarge { .. })
    ));
    assert!(matches!(
        ndstream::stack(&[half.clone(), half], 0),
        Err(Error::ArrayTooLarge { .. })
    ));
}

#[test]
fn long_chains_evaluate_and_drop_without_overflowing_the_stack() {
    // `x = x + 1` ten thousand times, as a loop in a user's program would build it.
    let x0 = Array::from_ndarray(
        ArrayD::<f64>::zeros(IxDyn(&[4, 3])),
        Chunks::Shape(vec![2, 2]),
    )
    .unwrap();
    let mut x = x0.clone();
    for _ in 0..10_000 {
        x = &x + 1.0;
    }
    assert_eq!(x.depth(), 10_001);
    for threads in [1, 2] {
        let (s, v) = values(&x, threads);
        assert_eq!(s, [4, 3]);
        assert_eq!(v, vec![10_000.0; 12]);
        let (_, v) = values(&x.sum(None).unwrap(), threads);
        assert_eq!(v, [120_000.0]);
    }
    let _ = format!("{x}");
    drop(x);
    // Deeper than the engine evaluates: refused, not a crash.
    let mut y = x0;
    for _ in 0..ndstream::MAX_DEPTH {
        y = &y * 1.0;
    }
    let e = exec(2).compute(&y).unwrap_err();
    assert!(matches!(e, Error::TooDeep { .. }), "{e}");
}

/// A stored chunk declared far larger than its array decodes whole: the
/// plan pays for the declared size, and a budget that cannot hold it
/// refuses before the chunk is read (instead of decoding 100 MB outside
/// the budget). A 100 MB Zarr chunk under an array of 10 elements.
#[test]
fn a_stored_chunk_larger_than_its_array_is_paid_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big-chunk.zarr").display().to_string();
    let n = 12_500_000u64;
    let roomy = Executor::builder()
        .memory(1 << 30)
        .threads(1)
        .build()
        .unwrap();
    let big = zeros(&[n], DType::F64, Chunks::Shape(vec![n])).unwrap();
    let opts = ndstream::StoreOptions {
        codec: Some(ndstream::formats::Codec::Zstd { level: 1 }),
        ..Default::default()
    };
    ndstream::store(&roomy, &big, &path, &opts).unwrap();
    // Declare a 10-element array over the stored 12,500,000-element chunk.
    let meta = dir.path().join("big-chunk.zarr/zarr.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    m["shape"] = serde_json::json!([10]);
    std::fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
    let x = ndstream::open(&path).unwrap();
    assert_eq!(x.shape(), &[10]);
    let small = Executor::builder()
        .memory(16 << 20)
        .threads(1)
        .build()
        .unwrap();
    let err = small.compute(&x.sum(None).unwrap()).unwrap_err();
    assert!(matches!(err, Error::BudgetTooSmall { .. }), "{err}");
    assert!(err.to_string().contains("big-chunk.zarr"), "{err}");
    // A budget that holds the chunk reads it, and gets the right answer.
    let s = roomy.compute(&x.sum(None).unwrap()).unwrap();
    assert_eq!(s.to_f64_vec(), vec![0.0]);
}
