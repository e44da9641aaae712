//! Cumulative sums and products: NumPy's values and dtypes, Dask's bits
//! across chunks, the same bits for any thread count and budget.

use ndstream_engine::{Array, Chunks, DType, Error, IndexItem as I, ScanOp};

use crate::common::{bits, executors, f64s};

/// `np.array([[1,2,3,4,5],[6,7,8,9,10],[-1,-2,-3,-4,-5]], dtype=int32)`.
fn ints(chunks: &[Vec<u64>]) -> Array {
    let v: Vec<i32> = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1, -2, -3, -4, -5];
    let data = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[3, 5]), v).unwrap();
    Array::from_ndarray(data, Chunks::Sizes(chunks.to_vec())).unwrap()
}

/// Chunkings of a (3, 5) array: one chunk, ragged, tiny.
fn chunkings_3x5() -> Vec<Vec<Vec<u64>>> {
    vec![
        vec![vec![3], vec![5]],
        vec![vec![2, 1], vec![2, 2, 1]],
        vec![vec![1, 1, 1], vec![1; 5]],
        vec![vec![1, 2], vec![4, 1]],
    ]
}

#[test]
fn integer_scans_match_numpy_over_each_axis() {
    // np.cumsum(a, 0), np.cumsum(a, 1), np.cumprod(a, 0/1), and axis=None.
    let want: [(ScanOp, Option<isize>, Vec<i64>); 6] = [
        (
            ScanOp::CumSum,
            Some(0),
            vec![1, 2, 3, 4, 5, 7, 9, 11, 13, 15, 6, 7, 8, 9, 10],
        ),
        (
            ScanOp::CumSum,
            Some(-1),
            vec![1, 3, 6, 10, 15, 6, 13, 21, 30, 40, -1, -3, -6, -10, -15],
        ),
        (
            ScanOp::CumProd,
            Some(0),
            vec![1, 2, 3, 4, 5, 6, 14, 24, 36, 50, -6, -28, -72, -144, -250],
        ),
        (
            ScanOp::CumProd,
            Some(1),
            vec![
                1, 2, 6, 24, 120, 6, 42, 336, 3024, 30240, -1, 2, -6, 24, -120,
            ],
        ),
        (
            ScanOp::CumSum,
            None,
            vec![1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 54, 52, 49, 45, 40],
        ),
        (
            ScanOp::CumProd,
            None,
            vec![
                1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, -3628800, 7257600, -21772800,
                87091200, -435456000,
            ],
        ),
    ];
    for chunks in chunkings_3x5() {
        let a = ints(&chunks);
        for (op, axis, v) in &want {
            let y = a.scan(*op, *axis).unwrap();
            assert_eq!(y.dtype(), DType::I64);
            if axis.is_some() {
                assert_eq!(y.grid(), a.grid(), "a scan keeps the input's chunks");
            }
            let got = y.compute().unwrap();
            let got: Vec<i64> = got.view::<i64>().unwrap().iter().copied().collect();
            assert_eq!(&got, v, "{op:?} axis {axis:?} chunks {chunks:?}");
            // nancumsum/nancumprod of integers are cumsum/cumprod.
            let nan_op = if *op == ScanOp::CumSum {
                ScanOp::NanCumSum
            } else {
                ScanOp::NanCumProd
            };
            let n = a.scan(nan_op, *axis).unwrap().compute().unwrap();
            assert_eq!(
                n.view::<i64>().unwrap().iter().copied().collect::<Vec<_>>(),
                *v
            );
        }
    }
}

/// `f = [[1.5, nan, 2], [nan, .5, -1], [3, 2, nan], [.25, nan, 4]]`.
fn floats(chunks: &[Vec<u64>]) -> Array {
    let n = f64::NAN;
    let v = [1.5, n, 2.0, n, 0.5, -1.0, 3.0, 2.0, n, 0.25, n, 4.0];
    f64s(&v, &[4, 3], chunks)
}

#[test]
fn float_scans_and_nans_match_numpy() {
    let n = f64::NAN;
    #[rustfmt::skip]
    let want: Vec<(ScanOp, Option<isize>, Vec<f64>)> = vec![
        (ScanOp::CumSum, Some(0), vec![1.5, n, 2.0, n, n, 1.0, n, n, n, n, n, n]),
        (ScanOp::CumSum, Some(1), vec![1.5, n, n, n, n, n, 3.0, 5.0, n, 0.25, n, n]),
        (ScanOp::CumSum, None, vec![1.5, n, n, n, n, n, n, n, n, n, n, n]),
        (ScanOp::CumProd, Some(0), vec![1.5, n, 2.0, n, n, -2.0, n, n, n, n, n, n]),
        (ScanOp::CumProd, Some(1), vec![1.5, n, n, n, n, n, 3.0, 6.0, n, 0.25, n, n]),
        (ScanOp::NanCumSum, Some(0), vec![1.5, 0.0, 2.0, 1.5, 0.5, 1.0, 4.5, 2.5, 1.0, 4.75, 2.5, 5.0]),
        (ScanOp::NanCumSum, Some(1), vec![1.5, 1.5, 3.5, 0.0, 0.5, -0.5, 3.0, 5.0, 5.0, 0.25, 0.25, 4.25]),
        (ScanOp::NanCumSum, None, vec![1.5, 1.5, 3.5, 3.5, 4.0, 3.0, 6.0, 8.0, 8.0, 8.25, 8.25, 12.25]),
        (ScanOp::NanCumProd, Some(0), vec![1.5, 1.0, 2.0, 1.5, 0.5, -2.0, 4.5, 1.0, -2.0, 1.125, 1.0, -8.0]),
        (ScanOp::NanCumProd, Some(1), vec![1.5, 1.5, 3.0, 1.0, 0.5, -0.5, 3.0, 6.0, 6.0, 0.25, 0.25, 1.0]),
        (ScanOp::NanCumProd, None, vec![1.5, 1.5, 3.0, 3.0, 1.5, -1.5, -4.5, -9.0, -9.0, -2.25, -2.25, -9.0]),
    ];
    let chunkings = [
        vec![vec![4], vec![3]],
        vec![vec![3, 1], vec![2, 1]],
        vec![vec![1; 4], vec![1; 3]],
    ];
    for chunks in chunkings {
        let f = floats(&chunks);
        for (op, axis, v) in &want {
            let y = f.scan(*op, *axis).unwrap();
            assert_eq!(y.dtype(), DType::F64);
            let got = y.compute().unwrap().to_f64_vec();
            let same = got
                .iter()
                .zip(v)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            assert!(same, "{op:?} {axis:?} {chunks:?}: {got:?} vs {v:?}");
        }
    }
    // float32 stays float32.
    let g = floats(&[vec![4], vec![3]])
        .astype(DType::F32)
        .nancumsum(Some(0))
        .unwrap();
    assert_eq!(g.dtype(), DType::F32);
}

#[test]
fn bool_and_small_integer_dtypes_follow_numpy() {
    let b = Array::from_ndarray(
        ndarray::arr1(&[true, false, true, true, false, true, true]).into_dyn(),
        Chunks::from(&[3][..]),
    )
    .unwrap();
    let c = b.cumsum(None).unwrap();
    assert_eq!(c.dtype(), DType::I64);
    assert_eq!(
        c.compute().unwrap().to_f64_vec(),
        vec![1., 1., 2., 3., 3., 4., 5.]
    );
    let p = b.cumprod(Some(0)).unwrap().compute().unwrap();
    assert_eq!(p.to_f64_vec(), vec![1., 0., 0., 0., 0., 0., 0.]);
    // np.cumsum(np.uint8([200, 100, 250, 7])) is uint64 [200, 300, 550, 557]
    let u = Array::from_ndarray(
        ndarray::arr1(&[200u8, 100, 250, 7]).into_dyn(),
        Chunks::from(&[3][..]),
    )
    .unwrap();
    let s = u.cumsum(Some(0)).unwrap();
    assert_eq!(s.dtype(), DType::U64);
    assert_eq!(
        s.compute().unwrap().to_f64_vec(),
        vec![200., 300., 550., 557.]
    );
    let p = u.cumprod(Some(0)).unwrap().compute().unwrap();
    assert_eq!(p.to_f64_vec(), vec![200., 20000., 5000000., 35000000.]);
    // np.cumprod(np.int8([100, 100, 100, -128])) accumulates in int64.
    let i = Array::from_ndarray(
        ndarray::arr1(&[100i8, 100, 100, -128]).into_dyn(),
        Chunks::from(&[1][..]),
    )
    .unwrap();
    let p = i.cumprod(Some(0)).unwrap().compute().unwrap();
    assert_eq!(p.to_f64_vec(), vec![100., 10000., 1000000., -128000000.]);
    // int64 wraps as NumPy's does: np.cumprod(np.int64([2**32, 2**32, 3])).
    let w = Array::from_ndarray(
        ndarray::arr1(&[1i64 << 32, 1 << 32, 3]).into_dyn(),
        Chunks::from(&[2][..]),
    )
    .unwrap();
    let p = w.cumprod(Some(0)).unwrap().compute().unwrap();
    assert_eq!(
        p.view::<i64>().unwrap().iter().copied().collect::<Vec<_>>(),
        vec![1i64 << 32, 0, 0]
    );
}

#[test]
fn bits_across_chunks_are_dasks() {
    // da.from_array(np.full(10, 0.1), chunks=3).cumsum(axis=0) (and cumprod),
    // whose bits differ from NumPy's sequential ones from element 5 on.
    let x = f64s(&[0.1; 10], &[10], &[vec![3, 3, 3, 1]]);
    let sum: [u64; 10] = [
        0x3fb999999999999a,
        0x3fc999999999999a,
        0x3fd3333333333334,
        0x3fd999999999999a,
        0x3fe0000000000000,
        0x3fe3333333333334,
        0x3fe6666666666667,
        0x3fe999999999999a,
        0x3fecccccccccccce,
        0x3ff0000000000001,
    ];
    let prod: [u64; 10] = [
        0x3fb999999999999a,
        0x3f847ae147ae147c,
        0x3f50624dd2f1a9fd,
        0x3f1a36e2eb1c432f,
        0x3ee4f8b588e368f3,
        0x3eb0c6f7a0b5ed8f,
        0x3e7ad7f29abcaf4c,
        0x3e45798ee2308c3d,
        0x3e112e0be826d698,
        0x3ddb7cdfd9d7bdc0,
    ];
    assert_eq!(bits(&x.cumsum(Some(0)).unwrap().compute().unwrap()), sum);
    assert_eq!(bits(&x.cumprod(Some(0)).unwrap().compute().unwrap()), prod);
}

#[test]
fn slices_of_a_scan_match_numpy() {
    // np.cumsum(a, 1)[::-1, 4:0:-2] and np.cumsum(a, 0)[2, 1::3]
    let a = ints(&[vec![2, 1], vec![2, 2, 1]]);
    let y = a.cumsum(Some(1)).unwrap();
    let s = y
        .index(&[I::slice(None, None, -1), I::slice(Some(4), Some(0), -2)])
        .unwrap();
    assert_eq!(
        s.compute().unwrap().to_f64_vec(),
        vec![-15., -6., 40., 21., 15., 6.]
    );
    let y = a.cumsum(Some(0)).unwrap();
    let s = y.index(&[I::Index(2), I::slice(Some(1), None, 3)]).unwrap();
    assert_eq!(s.compute().unwrap().to_f64_vec(), vec![7., 10.]);
}

#[test]
fn same_bits_for_any_threads_and_budget() {
    let normal = ndstream_engine::Distribution::Normal {
        loc: 1.0,
        scale: 0.5,
    };
    let r = Array::random(normal, &[40, 30], Chunks::from(&[7, 4][..]), 9).unwrap();
    for y in [
        r.cumsum(Some(0)).unwrap(),
        r.cumprod(Some(1)).unwrap(),
        r.nancumsum(None).unwrap(),
        (&r.cumsum(Some(0)).unwrap() * 2.0).sum(Some(1)).unwrap(),
    ] {
        let want = bits(&y.compute().unwrap());
        for e in executors(&y) {
            assert_eq!(bits(&e.compute(&y).unwrap()), want, "{y:?}");
        }
    }
}

#[test]
fn a_long_axis_is_staged_and_read_in_chunks() {
    // A carry small enough is computed ahead of the main job.
    let x = ndstream_engine::arange(0.0, 1000.0, 1.0, DType::I64, Chunks::from(&[10][..])).unwrap();
    let y = x.cumsum(Some(0)).unwrap();
    let exec = ndstream_engine::Executor::builder()
        .memory(1 << 20)
        .build()
        .unwrap();
    assert_eq!(exec.plan(std::slice::from_ref(&y)).unwrap().staged(), 1);
    let v = exec.compute(&y).unwrap().to_f64_vec();
    // sum(0..=k) = k (k + 1) / 2
    let want: Vec<f64> = (0..1000u64).map(|k| (k * (k + 1) / 2) as f64).collect();
    assert_eq!(v, want);
}

#[test]
fn bad_axes_are_refused() {
    let a = ints(&[vec![3], vec![5]]);
    assert!(matches!(
        a.cumsum(Some(2)),
        Err(Error::AxisOutOfBounds { .. })
    ));
    assert!(matches!(
        a.cumprod(Some(-3)),
        Err(Error::AxisOutOfBounds { .. })
    ));
    // A 0-d array flattens to one element (np.cumsum(np.float64(7.)) == [7.]).
    let z = f64s(&[7.0], &[], &[]);
    let c = z.cumsum(None).unwrap();
    assert_eq!(c.shape(), &[1]);
    assert_eq!(c.compute().unwrap().to_f64_vec(), vec![7.0]);
    assert!(z.cumsum(Some(0)).is_err());
    assert_eq!(ScanOp::from_name("nancumprod"), Some(ScanOp::NanCumProd));
}
