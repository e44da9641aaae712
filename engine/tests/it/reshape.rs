//! `Array::reshape`: NumPy's values (C order) and Dask's output chunks.

use ndstream_engine::{Array, Chunks, DType, Distribution, Error, IndexItem as I};

use crate::common::{bits, executors, f64s, iota, Counting};

/// Chunk sizes per axis.
fn chunks(a: &Array) -> Vec<Vec<u64>> {
    a.grid().sizes()
}

/// (input shape, input chunks, output shape, Dask's output chunks), from
/// `da.ones(shape, chunks=c).reshape(out).chunks` (dask 2026.8).
#[allow(clippy::type_complexity)]
fn dask_cases() -> Vec<(Vec<usize>, Vec<u64>, Vec<i64>, Vec<Vec<u64>>)> {
    vec![
        (vec![4, 6], vec![2, 3], vec![24], vec![vec![6, 6, 6, 6]]),
        (
            vec![24],
            vec![5],
            vec![4, 6],
            vec![vec![1, 1, 1, 1], vec![3, 3]],
        ),
        (vec![4, 6], vec![1, 3], vec![24], vec![vec![3; 8]]),
        (
            vec![2, 3, 4],
            vec![1, 2, 2],
            vec![6, 4],
            vec![vec![2, 1, 2, 1], vec![2, 2]],
        ),
        (
            vec![64],
            vec![16],
            vec![4, 4, 4],
            vec![vec![1, 1, 1, 1], vec![4], vec![4]],
        ),
        (
            vec![8, 6, 4],
            vec![3, 6, 4],
            vec![48, 4],
            vec![vec![18, 18, 12], vec![4]],
        ),
        (
            vec![8, 6, 4],
            vec![3, 2, 4],
            vec![8, 24],
            vec![vec![3, 3, 2], vec![8, 8, 8]],
        ),
        (vec![12], vec![5], vec![3, 4], vec![vec![1, 1, 1], vec![4]]),
        (
            vec![4, 6],
            vec![2, 3],
            vec![2, 2, 6],
            vec![vec![1, 1], vec![2], vec![3, 3]],
        ),
        (
            vec![2, 1, 3, 4],
            vec![1, 1, 2, 2],
            vec![6, 4],
            vec![vec![2, 1, 2, 1], vec![2, 2]],
        ),
        (
            vec![100, 100],
            vec![30, 40],
            vec![10000],
            vec![vec![
                1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 300, 300, 400,
            ]],
        ),
        (
            vec![10000],
            vec![1000],
            vec![100, 100],
            vec![vec![10; 10], vec![100]],
        ),
        (vec![10000], vec![300], vec![100, 100], {
            let mut v = vec![3; 33];
            v.push(1);
            vec![v, vec![100]]
        }),
        (
            vec![5, 7, 3],
            vec![2, 3, 2],
            vec![35, 3],
            vec![vec![3, 4, 3, 4, 3, 4, 3, 4, 3, 4], vec![2, 1]],
        ),
        (
            vec![35, 3],
            vec![10, 2],
            vec![5, 7, 3],
            vec![vec![1, 1, 1, 1, 1], vec![7], vec![2, 1]],
        ),
        // One input chunk: one output chunk (Dask's npartitions == 1).
        (vec![6, 4], vec![6, 4], vec![4, 6], vec![vec![4], vec![6]]),
    ]
}

#[test]
fn output_chunks_are_dasks() {
    for (shape, c, out, want) in dask_cases() {
        let x = Array::from_block(
            ndstream_engine::Block::full(DType::F64, &shape, 1.0),
            Chunks::from(c.clone()),
        )
        .unwrap();
        let y = x.reshape(&out).unwrap();
        assert_eq!(chunks(&y), want, "{shape:?} chunks {c:?} -> {out:?}");
    }
}

/// Every reshape holds NumPy's C order: `arange(n).reshape(a).reshape(b)`
/// is `arange(n)` in shape `b`, for every chunking and executor.
#[test]
#[allow(clippy::type_complexity)]
fn values_follow_c_order_for_every_chunking() {
    let mut cases: Vec<(Vec<usize>, Vec<Vec<u64>>, Vec<i64>)> = dask_cases()
        .into_iter()
        .map(|(shape, c, out, _)| {
            let sizes = shape
                .iter()
                .zip(&c)
                .map(|(&n, &k)| {
                    let mut v = vec![k; n / k as usize];
                    if !(n as u64).is_multiple_of(k) {
                        v.push(n as u64 % k);
                    }
                    v
                })
                .collect();
            (shape, sizes, out)
        })
        .collect();
    cases.extend([
        // Dask refuses these (uneven splits); NumPy and ndstream do not.
        (vec![6, 4], vec![vec![2; 3], vec![2; 2]], vec![4, 6]),
        (vec![4, 6], vec![vec![2, 2], vec![3, 3]], vec![3, 8]),
        (vec![4, 6], vec![vec![1, 3], vec![5, 1]], vec![8, 3]),
        (
            vec![2, 3, 4],
            vec![vec![1, 1], vec![1, 2], vec![3, 1]],
            vec![4, 3, 2],
        ),
        // Ragged and tiny chunks, -1, merging and splitting at once.
        (
            vec![6, 10],
            vec![vec![4, 2], vec![3, 3, 3, 1]],
            vec![3, -1, 5],
        ),
        (vec![30], vec![vec![1; 30]], vec![2, 3, 5]),
        (
            vec![2, 3, 5],
            vec![vec![1, 1], vec![1, 1, 1], vec![1; 5]],
            vec![-1],
        ),
        (vec![7, 3], vec![vec![7], vec![3]], vec![3, 7]),
    ]);
    for (shape, sizes, out) in cases {
        let n: usize = shape.iter().product();
        let x = iota(&shape, &sizes);
        let y = x.reshape(&out).unwrap();
        let want: Vec<f64> = (0..n).map(|v| v as f64).collect();
        for e in &executors(&y) {
            let got = e.compute(&y).unwrap();
            assert_eq!(got.to_f64_vec(), want, "{shape:?} {sizes:?} -> {out:?}");
            let shape_got: Vec<u64> = got.shape().iter().map(|&v| v as u64).collect();
            assert_eq!(shape_got, y.shape());
        }
        // And back again.
        let back: Vec<i64> = shape.iter().map(|&v| v as i64).collect();
        let z = y.reshape(&back).unwrap();
        assert_eq!(z.compute().unwrap().to_f64_vec(), want);
    }
}

#[test]
fn slices_of_a_reshape_match_numpy() {
    let x = iota(&[4, 6], &[vec![2, 2], vec![3, 3]]);
    let y = x.reshape(&[3, 8]).unwrap();
    // np.arange(24).reshape(3, 8)[1:3, ::3]
    let s = y
        .index(&[I::slice(Some(1), Some(3), 1), I::slice(None, None, 3)])
        .unwrap();
    assert_eq!(
        s.compute().unwrap().to_f64_vec(),
        vec![8.0, 11.0, 14.0, 16.0, 19.0, 22.0]
    );
    // np.arange(24).reshape(3, 8)[::-2, 6:1:-2]
    let s = y
        .index(&[I::slice(None, None, -2), I::slice(Some(6), Some(1), -2)])
        .unwrap();
    assert_eq!(
        s.compute().unwrap().to_f64_vec(),
        vec![22.0, 20.0, 18.0, 6.0, 4.0, 2.0]
    );
    // np.arange(24).reshape(4, 6).reshape(24)[5:19:4] -> [5, 9, 13, 17]
    let flat = x.reshape(&[24]).unwrap();
    let s = flat.index(&[I::slice(Some(5), Some(19), 4)]).unwrap();
    assert_eq!(
        s.compute().unwrap().to_f64_vec(),
        vec![5.0, 9.0, 13.0, 17.0]
    );
    // A single element: np.arange(24).reshape(2, 2, 6)[1, 0, 4] == 16
    let e = x
        .reshape(&[2, 2, 6])
        .unwrap()
        .index(&[I::Index(1), I::Index(0), I::Index(4)])
        .unwrap();
    assert_eq!(e.compute().unwrap().to_f64_vec(), vec![16.0]);
}

#[test]
fn a_slice_of_a_reshape_reads_only_its_chunks() {
    let src = Counting::new(100, 10);
    let x = Array::from_source(src.clone());
    let y = x.reshape(&[10, 10]).unwrap();
    let row = y.index(&[I::Index(3)]).unwrap();
    let v = row.compute().unwrap().to_f64_vec();
    assert_eq!(v, (30..40).map(|v| v as f64).collect::<Vec<_>>());
    assert_eq!(src.reads(), 1, "row 3 is input chunk 3");
    let src = Counting::new(100, 10);
    let x = Array::from_source(src.clone());
    let y = x
        .reshape(&[20, 5])
        .unwrap()
        .index(&[I::slice(Some(4), Some(6), 1)]);
    let v = y.unwrap().compute().unwrap().to_f64_vec();
    assert_eq!(v, (20..30).map(|v| v as f64).collect::<Vec<_>>());
    assert_eq!(src.reads(), 1);
}

#[test]
fn zero_and_one_dimensional_reshapes() {
    // np.array(7.).reshape(1, 1), .reshape(-1), and back to 0-d
    let x = f64s(&[7.0], &[], &[]);
    let y = x.reshape(&[1, 1]).unwrap();
    assert_eq!(y.shape(), &[1, 1]);
    assert_eq!(y.compute().unwrap().to_f64_vec(), vec![7.0]);
    let z = x.reshape(&[-1]).unwrap();
    assert_eq!(z.shape(), &[1]);
    let back = y.reshape(&[]).unwrap();
    assert_eq!(back.shape(), &[] as &[u64]);
    assert_eq!(back.compute().unwrap().to_f64_vec(), vec![7.0]);
    // Adding and removing length-1 axes is a selection, with the chunks kept.
    let x = iota(&[4, 1, 6], &[vec![3, 1], vec![1], vec![2, 4]]);
    let y = x.reshape(&[1, 4, 6, 1]).unwrap();
    assert!(matches!(y.op(), ndstream_engine::Op::Select { .. }));
    assert_eq!(chunks(&y), vec![vec![1], vec![3, 1], vec![2, 4], vec![1]]);
    let want: Vec<f64> = (0..24).map(|v| v as f64).collect();
    assert_eq!(y.compute().unwrap().to_f64_vec(), want);
    // The same shape is the same array.
    assert!(x.reshape(&[4, 1, -1]).unwrap().same_node(&x));
    // Empty arrays: np.zeros((0, 4)).reshape(2, 0, -1) has shape (2, 0, 2).
    let e = iota(&[0, 4], &[vec![], vec![2, 2]]);
    let r = e.reshape(&[2, 0, 2]).unwrap();
    assert_eq!(r.compute().unwrap().shape(), &[2, 0, 2]);
}

#[test]
fn bad_shapes_are_refused() {
    let x = iota(&[4, 6], &[vec![2, 2], vec![3, 3]]);
    for bad in [
        vec![5, 5],
        vec![-1, -1],
        vec![7, -1],
        vec![-2, -12],
        vec![0, -1],
    ] {
        let e = x.reshape(&bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{bad:?}: {e}");
    }
    let e = iota(&[0, 4], &[vec![], vec![2, 2]]);
    assert!(matches!(
        e.reshape(&[0, -1]).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    // A masked selection has no known length to reshape.
    let m = x
        .mask(&x.binary(ndstream_engine::BinaryOp::Gt, &x).unwrap())
        .unwrap();
    assert!(matches!(m.reshape(&[-1]), Err(Error::UnknownLength { .. })));
}

#[test]
fn reshape_is_lazy_and_bit_identical_across_executors() {
    let normal = Distribution::Normal {
        loc: 0.0,
        scale: 1.0,
    };
    let r = Array::random(normal, &[30, 40], Chunks::from(&[7, 9][..]), 3).unwrap();
    let y = (&r.reshape(&[6, 5, 4, 10]).unwrap() * 2.0)
        .sum(Some(1))
        .unwrap();
    let want = bits(&y.compute().unwrap());
    for e in executors(&y) {
        assert_eq!(bits(&e.compute(&y).unwrap()), want);
    }
}
