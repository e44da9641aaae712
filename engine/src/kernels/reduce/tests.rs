//! Reduction kernels against independent oracles: every op, several dtypes
//! and axis sets, the input tiled into one, two and one-element tiles along
//! the reduced axes, folded left to right; accuracy against exact sums.

use ndarray::{ArrayD, IxDyn, Slice};

use super::*;

/// Deterministic pseudo-random numbers in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn data(dtype: DType, shape: &[usize], seed: u64) -> Block {
    let mut r = Lcg(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| match dtype {
            DType::Bool => (r.next() < 0.6) as u8 as f64,
            DType::U8 => (r.next() * 256.0).floor(),
            // Few distinct values, so arg-reductions and topk meet ties.
            DType::I32 => (r.next() * 21.0).floor() - 10.0,
            _ => ((r.next() * 40.0).floor() - 20.0) * 0.25 + r.next() * 1e-3,
        })
        .collect();
    Block::from(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()).astype(dtype)
}

/// Tile origins and shapes: each reduced axis split into pieces of `piece`
/// elements (`0`: whole), C order over the tile grid.
fn tiles(shape: &[usize], axes: &[usize], piece: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut out = vec![(vec![0; shape.len()], shape.to_vec())];
    for &d in axes {
        let p = if piece == 0 { shape[d].max(1) } else { piece };
        let mut next = Vec::new();
        for (o, s) in &out {
            let mut start = 0;
            while start < shape[d] {
                let len = p.min(shape[d] - start);
                let (mut o2, mut s2) = (o.clone(), s.clone());
                o2[d] = start;
                s2[d] = len;
                next.push((o2, s2));
                start += len;
            }
        }
        out = next;
    }
    out
}

fn cut<T: Clone>(a: &ArrayD<T>, origin: &[usize], shape: &[usize]) -> ArrayD<T> {
    a.slice_each_axis(|ax| {
        let d = ax.axis.index();
        Slice::from(origin[d]..origin[d] + shape[d])
    })
    .to_owned()
}

/// `finalize(fold(partials))` over the tiles of `piece`.
fn run(
    op: ReduceOp,
    b: &Block,
    axes: &[usize],
    mask: Option<&ArrayD<bool>>,
    piece: usize,
) -> Result<Block> {
    let full: Vec<u64> = b.shape().iter().map(|&n| n as u64).collect();
    let mut acc: Option<Partial> = None;
    // Tiles fold as the engine folds sub-tiles (`accumulate`), with every
    // third merged as a separate partial (as task partials are).
    for (i, (o, s)) in tiles(b.shape(), axes, piece).into_iter().enumerate() {
        let t = crate::with_block!(b, a, T => Block::from(cut(a, &o, &s)));
        let m = mask.map(|m| cut(m, &o, &s));
        let origin: Vec<u64> = o.iter().map(|&x| x as u64).collect();
        match acc.as_mut() {
            Some(a) if i % 3 == 2 => {
                merge(op, a, partial(op, &t, axes, m.as_ref(), &origin, &full)?)?
            }
            _ => accumulate(op, &mut acc, &t, axes, m.as_ref(), &origin, &full)?,
        }
    }
    let acc = match acc {
        Some(a) => a,
        None => partial(op, b, axes, None, &vec![0; full.len()], &full)?,
    };
    finalize(op, acc)
}

/// Per kept element (C order), its `(value, global reduced flat index)`s in
/// reduced C order.
fn lanes(b: &Block, axes: &[usize]) -> Vec<Vec<(f64, i64)>> {
    let shape = b.shape().to_vec();
    let v = b.to_f64_vec();
    let kept_n: usize = (0..shape.len())
        .filter(|d| !axes.contains(d))
        .map(|d| shape[d])
        .product();
    let mut out = vec![Vec::new(); kept_n];
    for (e, &x) in v.iter().enumerate() {
        let mut rem = e;
        let mut coord = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            coord[d] = rem % shape[d];
            rem /= shape[d];
        }
        let (mut k, mut r) = (0usize, 0i64);
        for d in 0..shape.len() {
            if axes.contains(&d) {
                r = r * shape[d] as i64 + coord[d] as i64;
            } else {
                k = k * shape[d] + coord[d];
            }
        }
        out[k].push((x, r));
    }
    out
}

/// The oracle for every non-TopK op on one lane; `None`: an error.
/// `float`: the input dtype is a float (NumPy's nan-ops on integers are
/// the plain ones, whose `ddof >= n` rule differs).
fn oracle(op: ReduceOp, lane: &[(f64, i64)], float: bool) -> Option<f64> {
    use ReduceOp::*;
    let xs: Vec<f64> = lane.iter().map(|p| p.0).collect();
    let valid: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    let n = xs.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // NumPy: `var` divides by max(n - ddof, 0) (inf, or NaN for 0 / 0);
    // `nanvar` of floats gives NaN when n <= ddof.
    let var_by = |v: &[f64], ddof: u32, nan_rule: bool| {
        let m = if v.is_empty() { 0.0 } else { mean(v) };
        let dof = v.len() as f64 - f64::from(ddof);
        if dof <= 0.0 && nan_rule {
            f64::NAN
        } else {
            v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / dof.max(0.0)
        }
    };
    let var = |v: &[f64], ddof: u32| var_by(v, ddof, false);
    let nanvar = |v: &[f64], ddof: u32| var_by(v, ddof, float);
    let has_nan = xs.iter().any(|x| x.is_nan());
    let ext = |v: &[f64], max: bool| {
        v.iter().copied().fold(
            if max {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            },
            |a, x| {
                if max {
                    a.max(x)
                } else {
                    a.min(x)
                }
            },
        )
    };
    let arg = |max: bool| {
        if let Some(p) = lane.iter().find(|p| p.0.is_nan()) {
            return p.1 as f64;
        }
        let best = ext(&xs, max);
        lane.iter()
            .find(|p| p.0 == best)
            .map(|p| p.1 as f64)
            .unwrap_or(-1.0)
    };
    Some(match op {
        Sum => xs.iter().sum(),
        NanSum => valid.iter().sum(),
        Prod => xs.iter().product(),
        NanProd => valid.iter().product(),
        Mean => mean(&xs),
        NanMean => mean(&valid),
        Var { ddof } => var(&xs, ddof),
        Std { ddof } => var(&xs, ddof).sqrt(),
        NanVar { ddof } => nanvar(&valid, ddof),
        NanStd { ddof } => nanvar(&valid, ddof).sqrt(),
        Min | Max if xs.is_empty() => return None,
        NanMin | NanMax if xs.is_empty() => return None,
        ArgMin | ArgMax if xs.is_empty() => return None,
        Min if has_nan => f64::NAN,
        Max if has_nan => f64::NAN,
        Min | NanMin if valid.is_empty() => f64::NAN,
        Max | NanMax if valid.is_empty() => f64::NAN,
        Min | NanMin => ext(&valid, false),
        Max | NanMax => ext(&valid, true),
        ArgMin => arg(false),
        ArgMax => arg(true),
        Any => xs.iter().any(|&x| x != 0.0) as u8 as f64,
        All => xs.iter().all(|&x| x != 0.0) as u8 as f64,
        CountNonzero => xs.iter().filter(|&&x| x != 0.0).count() as f64,
        TopK { .. } | ArgTopK { .. } => unreachable!(),
    })
    .map(|v| {
        if n == 0.0 && matches!(op, Sum | NanSum) {
            0.0
        } else {
            v
        }
    })
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got.is_nan() && want.is_nan())
        || got == want
        || (got - want).abs() <= tol * want.abs().max(1.0)
}

/// Check `op` on `b` over `axes` for every tiling against the oracle.
fn check(op: ReduceOp, b: &Block, axes: &[usize]) {
    let want_dtype = result_dtype(op, b.dtype()).unwrap();
    let kept: Vec<usize> = (0..b.ndim())
        .filter(|d| !axes.contains(d))
        .map(|d| b.shape()[d])
        .collect();
    let ls = lanes(b, axes);
    let want: Option<Vec<f64>> = ls
        .iter()
        .map(|l| oracle(op, l, b.dtype().is_float()))
        .collect();
    let tol = if b.dtype() == DType::F32 || want_dtype == DType::F32 {
        1e-6
    } else {
        1e-12
    };
    for piece in [0, 2, 1] {
        let got = run(op, b, axes, None, piece);
        let ctx = format!("{op:?} {} axes {axes:?} piece {piece}", b.dtype());
        match &want {
            None => assert!(got.is_err(), "{ctx}: expected an error"),
            Some(w) => {
                let got = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(got.dtype(), want_dtype, "{ctx}");
                assert_eq!(got.shape(), &kept[..], "{ctx}");
                for (j, (&g, &w)) in got.to_f64_vec().iter().zip(w).enumerate() {
                    // Results are compared in the output dtype.
                    let w = Block::from(ndarray::arr0(w).into_dyn())
                        .astype(want_dtype)
                        .to_f64_vec()[0];
                    assert!(close(g, w, tol), "{ctx} [{j}]: got {g}, want {w}");
                }
            }
        }
    }
}

const OPS: [ReduceOp; 21] = [
    ReduceOp::Sum,
    ReduceOp::Prod,
    ReduceOp::NanProd,
    ReduceOp::Mean,
    ReduceOp::Var { ddof: 0 },
    ReduceOp::Std { ddof: 1 },
    ReduceOp::Min,
    ReduceOp::Max,
    ReduceOp::ArgMin,
    ReduceOp::ArgMax,
    ReduceOp::Any,
    ReduceOp::All,
    ReduceOp::CountNonzero,
    ReduceOp::NanSum,
    ReduceOp::NanMean,
    ReduceOp::NanVar { ddof: 1 },
    ReduceOp::NanStd { ddof: 0 },
    ReduceOp::NanMin,
    ReduceOp::NanMax,
    ReduceOp::Var { ddof: 5 },
    ReduceOp::NanVar { ddof: 0 },
];

const AXES: [&[usize]; 7] = [&[0, 1, 2], &[0], &[2], &[1], &[], &[0, 2], &[1, 2]];

#[test]
fn every_op_dtype_and_axis_set_matches_the_oracle() {
    for dtype in [DType::F64, DType::F32, DType::I32, DType::U8, DType::Bool] {
        let b = data(dtype, &[3, 4, 5], 7);
        for op in OPS {
            // Products of 60 values overflow i64 differently than f64; checked below.
            if matches!(op, ReduceOp::Prod | ReduceOp::NanProd) && !dtype.is_float() {
                continue;
            }
            for axes in AXES {
                check(op, &b, axes);
            }
        }
    }
}

/// The oracle test covers every reduction of the table (TopK has its own).
#[test]
fn every_op_of_the_table_is_in_the_oracle_test() {
    for &op in ReduceOp::ALL {
        if matches!(op, ReduceOp::TopK { .. } | ReduceOp::ArgTopK { .. }) {
            continue;
        }
        assert!(
            OPS.iter().any(|o| o.name() == op.name()),
            "{} is missing from OPS",
            op.name()
        );
    }
}

#[test]
fn integer_sums_and_products_wrap_exactly() {
    let v: Vec<i64> = vec![i64::MAX, 1, 2, -3, 7, 11];
    let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[6]), v.clone()).unwrap());
    for piece in [0, 2, 1] {
        let s = run(ReduceOp::Sum, &b, &[0], None, piece).unwrap();
        let want = v.iter().fold(0i64, |a, &x| a.wrapping_add(x));
        assert_eq!(s, Block::from(ndarray::arr0(want).into_dyn()));
        let p = run(ReduceOp::Prod, &b, &[0], None, piece).unwrap();
        let want = v.iter().fold(1i64, |a, &x| a.wrapping_mul(x));
        assert_eq!(p, Block::from(ndarray::arr0(want).into_dyn()));
    }
    let u =
        Block::from(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![200u8, 100, 3, 4, 5, 6]).unwrap());
    let s = run(ReduceOp::Sum, &u, &[1], None, 1).unwrap();
    assert_eq!(s, Block::from(ndarray::arr1(&[303u64, 15]).into_dyn()));
    let p = run(ReduceOp::Prod, &u, &[0], None, 1).unwrap();
    assert_eq!(p, Block::from(ndarray::arr1(&[800u64, 500, 18]).into_dyn()));
    let big = Block::from(ndarray::arr1(&[u64::MAX, 2]).into_dyn());
    let s = run(ReduceOp::Sum, &big, &[0], None, 1).unwrap();
    assert_eq!(s, Block::from(ndarray::arr0(1u64).into_dyn()));
    // The integer mean sums exactly (NumPy's f64 sum would lose the 1s).
    let m = Block::from(ndarray::arr1(&[i64::MAX, 1, 1, -i64::MAX]).into_dyn());
    let r = run(ReduceOp::Mean, &m, &[0], None, 1).unwrap();
    assert_eq!(r.to_f64_vec(), vec![0.5]);
}

#[test]
fn nan_semantics_follow_numpy() {
    let nan = f64::NAN;
    let a = ArrayD::from_shape_vec(
        IxDyn(&[3, 4]),
        vec![1.0, nan, 3.0, nan, nan, nan, nan, nan, 2.0, 0.5, nan, 7.0],
    )
    .unwrap();
    for dtype in [DType::F64, DType::F32] {
        let b = Block::from(a.clone()).astype(dtype);
        for op in OPS {
            for axes in [&[0usize, 1][..], &[0], &[1]] {
                check(op, &b, axes);
            }
        }
    }
    // Spot values NumPy gives.
    let b = Block::from(a);
    let f = |op| run(op, &b, &[1], None, 1).unwrap().to_f64_vec();
    assert_eq!(f(ReduceOp::NanSum), vec![4.0, 0.0, 9.5]);
    assert_eq!(f(ReduceOp::ArgMax), vec![1.0, 0.0, 2.0]);
    assert!(f(ReduceOp::NanMin)[1].is_nan());
    assert!(f(ReduceOp::NanMean)[1].is_nan());
    assert!(f(ReduceOp::Sum)[0].is_nan());
    let inf = Block::from(ndarray::arr1(&[f64::INFINITY, 1.0, 2.0]).into_dyn());
    assert_eq!(
        run(ReduceOp::Sum, &inf, &[0], None, 1)
            .unwrap()
            .to_f64_vec(),
        vec![f64::INFINITY]
    );
    assert!(run(ReduceOp::Var { ddof: 0 }, &inf, &[0], None, 1)
        .unwrap()
        .to_f64_vec()[0]
        .is_nan());
}

#[test]
fn empty_reductions() {
    let b = Block::zeros(DType::F64, &[0, 3]);
    let f = |op, axes: &[usize]| run(op, &b, axes, None, 1);
    assert_eq!(f(ReduceOp::Sum, &[0]).unwrap().to_f64_vec(), vec![0.0; 3]);
    assert_eq!(f(ReduceOp::Prod, &[0]).unwrap().to_f64_vec(), vec![1.0; 3]);
    assert!(f(ReduceOp::Mean, &[0])
        .unwrap()
        .to_f64_vec()
        .iter()
        .all(|x| x.is_nan()));
    assert!(f(ReduceOp::Var { ddof: 0 }, &[0])
        .unwrap()
        .to_f64_vec()
        .iter()
        .all(|x| x.is_nan()));
    assert_eq!(f(ReduceOp::All, &[0]).unwrap().to_f64_vec(), vec![1.0; 3]);
    assert_eq!(
        f(ReduceOp::CountNonzero, &[0, 1]).unwrap().to_f64_vec(),
        vec![0.0]
    );
    let e = f(ReduceOp::Min, &[0]).unwrap_err().to_string();
    assert!(
        e.contains("zero-size array to reduction operation minimum"),
        "{e}"
    );
    assert!(f(ReduceOp::ArgMax, &[0, 1]).is_err());
    // Kept axis of length 0: an empty result, not an error.
    assert_eq!(f(ReduceOp::Max, &[1]).unwrap().shape(), &[0]);
    let i = Block::zeros(DType::I32, &[0]);
    assert!(run(ReduceOp::Mean, &i, &[0], None, 1).unwrap().to_f64_vec()[0].is_nan());
}

#[test]
fn argmin_argmax_return_global_indexes_with_first_occurrence() {
    // Ties everywhere: the first (lowest global index) must win across tiles
    // whose C order differs from the flat order.
    let v: Vec<i32> = (0..48).map(|i| [3, 1, 4, 1, 5, 9, 2, 6][i % 8]).collect();
    let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[4, 3, 4]), v).unwrap());
    for axes in [&[0usize, 1, 2][..], &[0, 2], &[1], &[2], &[0, 1]] {
        for op in [ReduceOp::ArgMin, ReduceOp::ArgMax] {
            check(op, &b, axes);
        }
    }
    // Merging in the reverse order still picks the lower index.
    let t = |v: Vec<f64>, o: u64| {
        partial(
            ReduceOp::ArgMax,
            &Block::from(ndarray::Array1::from(v).into_dyn()),
            &[0],
            None,
            &[o],
            &[6],
        )
        .unwrap()
    };
    let mut acc = t(vec![1.0, 5.0, 2.0], 3);
    merge(ReduceOp::ArgMax, &mut acc, t(vec![5.0, 0.0, 5.0], 0)).unwrap();
    assert_eq!(
        finalize(ReduceOp::ArgMax, acc).unwrap().to_f64_vec(),
        vec![0.0]
    );
}

fn topk_oracle(b: &Block, axis: usize, k: i64, index: bool) -> Vec<f64> {
    let ls = lanes(b, &[axis]);
    let kk = k.unsigned_abs() as usize;
    let mut per: Vec<Vec<f64>> = Vec::new();
    for mut l in ls {
        l.sort_by(|a, c| {
            let o = if a.0.is_nan() || c.0.is_nan() {
                a.0.is_nan().cmp(&c.0.is_nan())
            } else {
                a.0.partial_cmp(&c.0).unwrap()
            };
            let o = if k > 0 { o.reverse() } else { o };
            o.then(a.1.cmp(&c.1))
        });
        per.push(
            l[..kk]
                .iter()
                .map(|p| if index { p.1 as f64 } else { p.0 })
                .collect(),
        );
    }
    // Lay out as the result: kept shape with the k axis at `axis`.
    let mut shape = b.shape().to_vec();
    shape[axis] = kk;
    let mut kept_shape = shape.clone();
    kept_shape.remove(axis);
    let out = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
        let mut kix = 0;
        let mut j = 0;
        for d in 0..shape.len() {
            if d == axis {
                continue;
            }
            kix = kix * kept_shape[j] + ix[d];
            j += 1;
        }
        per[kix][ix[axis]]
    });
    out.iter().copied().collect()
}

#[test]
fn topk_and_argtopk_with_ties_and_negative_k() {
    let nan = f64::NAN;
    for dtype in [DType::I32, DType::F64, DType::F32, DType::U8] {
        let b = data(dtype, &[3, 7, 2], 11);
        for axis in 0..3 {
            let n = b.shape()[axis] as i64;
            for k in [1, 2, -1, -2, n, -n] {
                for (op, index) in [
                    (ReduceOp::TopK { k }, false),
                    (ReduceOp::ArgTopK { k }, true),
                ] {
                    for piece in [0, 2, 1] {
                        let got = run(op, &b, &[axis], None, piece).unwrap();
                        let mut shape = b.shape().to_vec();
                        shape[axis] = k.unsigned_abs() as usize;
                        assert_eq!(got.shape(), &shape[..], "{op:?} axis {axis}");
                        assert_eq!(got.dtype(), result_dtype(op, dtype).unwrap());
                        assert_eq!(
                            got.to_f64_vec(),
                            topk_oracle(&b, axis, k, index),
                            "{op:?} {dtype} axis {axis} piece {piece}"
                        );
                    }
                }
            }
        }
    }
    // NaN ranks largest; ties go to the lower index.
    let b = Block::from(ndarray::arr1(&[2.0, nan, 5.0, 2.0, 5.0]).into_dyn());
    let f = |op| run(op, &b, &[0], None, 1).unwrap().to_f64_vec();
    assert_eq!(f(ReduceOp::ArgTopK { k: 3 }), vec![1.0, 2.0, 4.0]);
    assert_eq!(f(ReduceOp::ArgTopK { k: -3 }), vec![0.0, 3.0, 2.0]);
    // Fewer elements than |k|.
    let p = partial(
        ReduceOp::TopK { k: 4 },
        &Block::from(ndarray::arr1(&[1.0, 2.0]).into_dyn()),
        &[0],
        None,
        &[0],
        &[2],
    )
    .unwrap();
    assert!(matches!(
        finalize(ReduceOp::TopK { k: 4 }, p),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(partial(ReduceOp::TopK { k: 1 }, &b, &[], None, &[0], &[5]).is_err());
}

#[test]
fn masked_reductions_use_only_selected_elements() {
    let b = data(DType::F64, &[4, 6], 3);
    let m = ArrayD::from_shape_fn(IxDyn(&[4, 6]), |ix| (ix[0] * 7 + ix[1] * 3) % 5 < 2);
    let sel: Vec<(f64, i64)> = b
        .to_f64_vec()
        .iter()
        .zip(m.iter())
        .filter(|(_, &m)| m)
        .enumerate()
        .map(|(i, (&x, _))| (x, i as i64))
        .collect();
    for op in [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::CountNonzero,
        ReduceOp::Var { ddof: 1 },
        ReduceOp::Max,
    ] {
        let want = oracle(op, &sel, b.dtype().is_float()).unwrap();
        for piece in [0, 2, 1] {
            let got = run(op, &b, &[0, 1], Some(&m), piece).unwrap().to_f64_vec()[0];
            assert!(
                close(got, want, 1e-12),
                "{op:?} piece {piece}: {got} vs {want}"
            );
        }
    }
    // Positions in the masked 1-D array: tiles must be C-order ranges.
    let flat = Block::from(ndarray::Array1::from(b.to_f64_vec()).into_dyn());
    let mflat = ndarray::Array1::from(m.iter().copied().collect::<Vec<_>>()).into_dyn();
    for op in [ReduceOp::ArgMin, ReduceOp::ArgMax] {
        let want = oracle(op, &sel, b.dtype().is_float()).unwrap();
        for piece in [0, 5, 1] {
            assert_eq!(
                run(op, &flat, &[0], Some(&mflat), piece)
                    .unwrap()
                    .to_f64_vec(),
                vec![want]
            );
        }
        // Whole rows are C-order ranges too; 2-wide column tiles are not.
        assert_eq!(
            run(op, &b, &[0, 1], Some(&m), 0).unwrap().to_f64_vec(),
            vec![want]
        );
        assert!(run(op, &b, &[0, 1], Some(&m), 2).is_err());
    }
    // Nothing selected.
    let none = ArrayD::from_elem(IxDyn(&[4, 6]), false);
    assert_eq!(
        run(ReduceOp::Sum, &b, &[0, 1], Some(&none), 2)
            .unwrap()
            .to_f64_vec(),
        vec![0.0]
    );
    assert!(run(ReduceOp::Mean, &b, &[0, 1], Some(&none), 2)
        .unwrap()
        .to_f64_vec()[0]
        .is_nan());
    assert!(run(ReduceOp::Min, &b, &[0, 1], Some(&none), 2).is_err());
}

/// The exact sum of f32 values >= 2^-57 (fixed point in units of 2^-80).
fn exact_sum(v: &[f32]) -> f64 {
    let total: i128 = v
        .iter()
        .map(|&x| (f64::from(x) * 2f64.powi(80)) as i128)
        .sum();
    total as f64 / 2f64.powi(80)
}

#[test]
fn float_sums_are_accurate() {
    let n = 1_000_000;
    let mut r = Lcg(42);
    let expo: Vec<f32> = (0..n)
        .map(|_| (-(1.0 - r.next()).ln() as f32).max(1e-6))
        .collect();
    let tenth = vec![0.1f32; n];
    for v in [expo, tenth] {
        let exact = exact_sum(&v);
        let b32 = Block::from(ndarray::Array1::from(v.clone()).into_dyn());
        let b64 = b32.clone().astype(DType::F64);
        // The f32 mean before the cast matches the exact mean to ~1e-15.
        let p = partial(ReduceOp::Mean, &b32, &[0], None, &[0], &[n as u64]).unwrap();
        let State::Sums(sums::Acc::FMean {
            n: c, s, c: comp, ..
        }) = &p.state
        else {
            panic!("state")
        };
        let mean = layout::resolve(s[0], comp[0]) / c[0] as f64;
        assert!(((mean - exact / n as f64) / mean).abs() < 1e-15);
        for piece in [0, 4096, 99_999] {
            // f64 input: the accumulation itself.
            let s = run(ReduceOp::Sum, &b64, &[0], None, piece)
                .unwrap()
                .to_f64_vec()[0];
            assert!(((s - exact) / exact).abs() < 1e-12, "sum {s} vs {exact}");
            // f32 input: summed in f64, rounded once.
            let s = run(ReduceOp::Sum, &b32, &[0], None, piece)
                .unwrap()
                .to_f64_vec()[0];
            assert_eq!(s, f64::from(exact as f32));
        }
    }
    // Row accumulation (reducing the leading axis) is compensated too: a
    // plain running sum would drop every 1.0 added to 1e16.
    let v: Vec<f64> = (0..20_000)
        .map(|i| if i % 4 == 0 { 1e16 } else { 1.0 })
        .collect();
    let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[10_000, 2]), v).unwrap());
    let s = run(ReduceOp::Sum, &b, &[0], None, 0).unwrap().to_f64_vec();
    assert_eq!(s, vec![50_000_000_000_000_005_000i128 as f64, 10_000.0]);
    // Cancellation between pairwise blocks is compensated (within a block
    // the sum is pairwise, as NumPy's).
    let mut v = vec![1.0; 128];
    v.push(1e100);
    v.extend([0.0; 127]);
    v.extend([1.0; 128]);
    v.push(-1e100);
    let c = Block::from(ndarray::Array1::from(v).into_dyn());
    for piece in [0, 1, 128] {
        assert_eq!(
            run(ReduceOp::Sum, &c, &[0], None, piece)
                .unwrap()
                .to_f64_vec(),
            vec![256.0]
        );
    }
}

#[test]
fn variance_is_stable_against_two_pass() {
    let mut r = Lcg(5);
    let v: Vec<f64> = (0..30_000).map(|_| 1e8 + r.next()).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let want = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() - 1) as f64;
    let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[100, 300]), v).unwrap());
    for (axes, piece) in [(&[0usize, 1][..], 0), (&[0, 1], 7), (&[0, 1], 1)] {
        let got = run(ReduceOp::Var { ddof: 1 }, &b, axes, None, piece)
            .unwrap()
            .to_f64_vec()[0];
        assert!(
            ((got - want) / want).abs() < 1e-9,
            "piece {piece}: {got} vs {want}"
        );
    }
    // Axis 0 (row accumulation) against a two-pass oracle per column.
    let got = run(ReduceOp::Std { ddof: 0 }, &b, &[0], None, 3)
        .unwrap()
        .to_f64_vec();
    for (j, l) in lanes(&b, &[0]).iter().enumerate() {
        let xs: Vec<f64> = l.iter().map(|p| p.0).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let w = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!(
            ((got[j] - w) / w).abs() < 1e-9,
            "column {j}: {} vs {w}",
            got[j]
        );
    }
}

#[test]
fn non_standard_layouts_and_determinism() {
    let b = data(DType::F32, &[5, 6], 9);
    let t = crate::with_block!(&b, a, T => Block::from(a.t().to_owned().reversed_axes()));
    assert_eq!(t, b);
    // A Fortran-ordered tile gives the same bits as a C-ordered one.
    let fort = crate::with_block!(&b, a, T => {
        let mut f = ArrayD::<T>::default(IxDyn(&[6, 5])).reversed_axes();
        f.assign(a);
        Block::from(f)
    });
    for op in OPS {
        for axes in [&[0usize, 1][..], &[0], &[1]] {
            let x = finalize(op, partial(op, &b, axes, None, &[0, 0], &[5, 6]).unwrap());
            let y = finalize(
                op,
                partial(op, &fort, axes, None, &[0, 0], &[5, 6]).unwrap(),
            );
            match (x, y) {
                (Ok(x), Ok(y)) => assert_eq!(x.to_ne_bytes(), y.to_ne_bytes(), "{op:?}"),
                (x, y) => assert_eq!(x.is_err(), y.is_err()),
            }
        }
    }
}

#[test]
fn bad_arguments_and_mismatched_partials_are_errors() {
    let b = data(DType::F64, &[2, 3], 1);
    assert!(partial(ReduceOp::Sum, &b, &[1, 0], None, &[0, 0], &[2, 3]).is_err());
    assert!(partial(ReduceOp::Sum, &b, &[2], None, &[0, 0], &[2, 3]).is_err());
    assert!(partial(ReduceOp::Sum, &b, &[0], None, &[0], &[2, 3]).is_err());
    let m = ArrayD::from_elem(IxDyn(&[2, 3]), true);
    assert!(partial(ReduceOp::Sum, &b, &[0], Some(&m), &[0, 0], &[2, 3]).is_err());
    let mut p = partial(ReduceOp::Sum, &b, &[0], None, &[0, 0], &[2, 3]).unwrap();
    let q = partial(ReduceOp::Sum, &b, &[1], None, &[0, 0], &[2, 3]).unwrap();
    assert!(merge(ReduceOp::Sum, &mut p, q).is_err());
    let q = partial(ReduceOp::Max, &b, &[0], None, &[0, 0], &[2, 3]).unwrap();
    assert!(merge(ReduceOp::Sum, &mut p, q).is_err());
    let q = partial(
        ReduceOp::Sum,
        &b.clone().astype(DType::F32),
        &[0],
        None,
        &[0, 0],
        &[2, 3],
    )
    .unwrap();
    assert!(merge(ReduceOp::Sum, &mut p, q).is_err());
}

#[test]
fn result_dtypes_and_sizes() {
    use DType::*;
    let cases = [
        (ReduceOp::Sum, Bool, I64),
        (ReduceOp::Sum, I8, I64),
        (ReduceOp::Sum, U16, U64),
        (ReduceOp::Sum, F32, F32),
        (ReduceOp::Prod, U8, U64),
        (ReduceOp::NanSum, F64, F64),
        (ReduceOp::Mean, Bool, F64),
        (ReduceOp::Mean, U8, F64),
        (ReduceOp::Std { ddof: 0 }, F32, F32),
        (ReduceOp::NanVar { ddof: 0 }, I16, F64),
        (ReduceOp::Min, U16, U16),
        (ReduceOp::NanMax, F32, F32),
        (ReduceOp::ArgMin, F32, I64),
        (ReduceOp::ArgTopK { k: 2 }, U8, I64),
        (ReduceOp::TopK { k: -2 }, U8, U8),
        (ReduceOp::Any, F64, Bool),
        (ReduceOp::CountNonzero, Bool, I64),
    ];
    for (op, i, o) in cases {
        assert_eq!(result_dtype(op, i).unwrap(), o, "{op:?} {i}");
        assert!(partial_bytes_per_elem(op, i) > 0);
    }
    fn traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    traits::<Partial>();
}

/// The bits of a compensated sum or mean's state: each element's running
/// sum, compensation and count (which differ for another addition order
/// even where the finalized value does not).
fn state_bits(p: &Partial) -> Vec<(u64, u64, u64)> {
    match &p.state {
        State::Sums(sums::Acc::FSum { s, c }) => s
            .iter()
            .zip(c)
            .map(|(s, c)| (s.to_bits(), c.to_bits(), 0))
            .collect(),
        State::Sums(sums::Acc::FMean { n, s, c, every }) => s
            .iter()
            .zip(c)
            .zip(n)
            .map(|((s, c), n)| (s.to_bits(), c.to_bits(), n + every))
            .collect(),
        _ => panic!("not a compensated sum"),
    }
}

#[test]
fn folding_tiles_together_keeps_the_bits_of_one_by_one() {
    // Tiles one deep along the reduced axis (a stack's days) and two deep,
    // with more kept elements than a strip holds (ragged last strip), NaNs
    // and large cancelling values; each way must give the bits of folding
    // the tiles one by one, and be close to the exact result.
    use ReduceOp::*;
    let (days, rows, cols) = (7, 3, 1_500);
    for dtype in [DType::F32, DType::F64] {
        let mut v = data(DType::F64, &[days, rows, cols], 11).to_f64_vec();
        for (i, x) in v.iter_mut().enumerate() {
            if i % 97 == 5 {
                *x = f64::NAN;
            } else if i % 89 == 3 {
                *x = if (i / 89) % 2 == 0 { 3e7 } else { -3e7 };
            }
        }
        let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[days, rows, cols]), v).unwrap());
        let b = b.astype(dtype);
        let full = [days as u64, rows as u64, cols as u64];
        for depth in [1, 2] {
            let tiles: Vec<Block> = (0..days)
                .step_by(depth)
                .map(|d0| {
                    let d1 = (d0 + depth).min(days);
                    crate::with_block!(&b, a, T => Block::from(
                        a.slice_axis(ndarray::Axis(0), Slice::from(d0..d1)).to_owned()))
                })
                .collect();
            let origins: Vec<Vec<u64>> = (0..days)
                .step_by(depth)
                .map(|d0| vec![d0 as u64, 0, 0])
                .collect();
            for op in [Sum, NanSum, Mean, NanMean] {
                let mut one = None;
                for (t, o) in tiles.iter().zip(&origins) {
                    accumulate(op, &mut one, t, &[0], None, o, &full).unwrap();
                }
                let one = one.unwrap();
                let want = state_bits(&one);
                let one = finalize(op, one).unwrap();
                // All at once, and in groups of three after a first tile.
                let refs: Vec<&Block> = tiles.iter().collect();
                let mut all = None;
                accumulate_many(op, &mut all, &refs, &[0], &origins, &full).unwrap();
                let mut groups = None;
                accumulate_many(op, &mut groups, &refs[..1], &[0], &origins[..1], &full).unwrap();
                for (g, o) in refs[1..].chunks(3).zip(origins[1..].chunks(3)) {
                    accumulate_many(op, &mut groups, g, &[0], o, &full).unwrap();
                }
                assert!(state_bits(&all.unwrap()) == want, "{op:?} {dtype} {depth}");
                assert!(
                    state_bits(&groups.unwrap()) == want,
                    "{op:?} {dtype} {depth}"
                );
                // Against the oracle, element by element.
                let got = one.to_f64_vec();
                for (k, lane) in lanes(&b, &[0]).iter().enumerate() {
                    match oracle(op, lane, b.dtype().is_float()) {
                        Some(w) if w.is_nan() => assert!(got[k].is_nan(), "{op:?} {k}"),
                        Some(w) => assert!(close(got[k], w, 1e-6), "{op:?} {k}: {} vs {w}", got[k]),
                        None => {}
                    }
                }
            }
        }
    }
}

/// `np.nanprod`: NaN counts as 1 (all-NaN and empty give 1), integers and
/// bool as `prod`, the dtypes of `prod`. The values are dyadic, so every
/// product is exact whatever the tiling; the expected values are NumPy's.
#[test]
fn nanprod_treats_nan_as_one_along_each_axis() {
    let nan = f64::NAN;
    #[rustfmt::skip]
    let v = vec![
        1.5, nan, 2.0, -1.0,   nan, nan, nan, nan,   0.5, 4.0, nan, 3.0,
        -2.0, 0.25, nan, 8.0,  1.0, nan, -0.5, 2.0,  nan, 10.0, 0.125, nan,
    ];
    let a = ArrayD::from_shape_vec(IxDyn(&[2, 3, 4]), v).unwrap();
    #[rustfmt::skip]
    let cases: [(&[usize], Vec<f64>); 5] = [
        (&[0], vec![-3.0, 0.25, 2.0, -8.0, 1.0, 1.0, -0.5, 2.0, 0.5, 40.0, 0.125, 3.0]),
        (&[1], vec![0.75, 4.0, 2.0, -3.0, -2.0, 2.5, -0.0625, 16.0]),
        (&[2], vec![-3.0, 1.0, 6.0, -4.0, -1.0, 1.25]),
        (&[0, 1, 2], vec![-90.0]),
        (&[0, 2], vec![12.0, -1.0, 7.5]),
    ];
    for dtype in [DType::F64, DType::F32] {
        let b = Block::from(a.clone()).astype(dtype);
        for (axes, want) in &cases {
            for piece in [0, 2, 1] {
                let got = run(ReduceOp::NanProd, &b, axes, None, piece).unwrap();
                assert_eq!(got.dtype(), dtype);
                assert_eq!(
                    got.to_f64_vec(),
                    *want,
                    "{dtype} axes {axes:?} piece {piece}"
                );
            }
            // Prod propagates the NaNs nanprod skips.
            let p = run(ReduceOp::Prod, &b, axes, None, 1).unwrap().to_f64_vec();
            assert!(p.iter().any(|x| x.is_nan()), "{axes:?}");
        }
    }
    let one = |v: Vec<f64>| {
        let b = Block::from(ndarray::Array1::from(v).into_dyn());
        run(ReduceOp::NanProd, &b, &[0], None, 1)
            .unwrap()
            .to_f64_vec()[0]
    };
    assert_eq!(one(vec![nan, nan]), 1.0);
    assert_eq!(one(vec![]), 1.0);
    // inf * 0 is NaN before any NaN is skipped, as in NumPy.
    assert!(one(vec![f64::INFINITY, 0.0, nan]).is_nan());
    assert_eq!(empty_value(ReduceOp::NanProd, DType::F32).unwrap(), 1.0);
    assert_eq!(empty_value(ReduceOp::NanProd, DType::U8).unwrap(), 1.0);
    // Integers: prod's wrapping int64/uint64; bool: int64.
    let i = Block::from(
        ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![3i32, -7, 100_000, 100_000]).unwrap(),
    );
    let got = run(ReduceOp::NanProd, &i, &[0], None, 1).unwrap();
    assert_eq!(
        got,
        Block::from(ndarray::arr1(&[300_000i64, -700_000]).into_dyn())
    );
    let w = Block::from(ndarray::arr1(&[i64::MAX, 3, -5]).into_dyn());
    assert_eq!(
        run(ReduceOp::NanProd, &w, &[0], None, 1).unwrap(),
        run(ReduceOp::Prod, &w, &[0], None, 1).unwrap()
    );
    let u = Block::from(ndarray::arr1(&[200u8, 3]).into_dyn());
    assert_eq!(
        run(ReduceOp::NanProd, &u, &[0], None, 2).unwrap(),
        Block::from(ndarray::arr0(600u64).into_dyn())
    );
    for (input, out) in [
        (DType::Bool, DType::I64),
        (DType::I8, DType::I64),
        (DType::U16, DType::U64),
        (DType::F32, DType::F32),
        (DType::F64, DType::F64),
    ] {
        assert_eq!(result_dtype(ReduceOp::NanProd, input).unwrap(), out);
        assert_eq!(
            result_dtype(ReduceOp::NanProd, input).unwrap(),
            result_dtype(ReduceOp::Prod, input).unwrap()
        );
    }
    assert_eq!(ReduceOp::from_name("nanprod"), Some(ReduceOp::NanProd));
    assert_eq!(ReduceOp::NanProd.name(), "nanprod");
}

/// Names and parameters come from the table: every op is found by its
/// name and aliases, and parameters round-trip.
#[test]
fn names_and_parameters_come_from_the_table() {
    for &op in ReduceOp::ALL {
        assert_eq!(ReduceOp::from_name(op.name()), Some(op));
        for a in op.aliases() {
            assert_eq!(ReduceOp::from_name(a), Some(op));
        }
        match op.param() {
            None => {
                assert_eq!(op.param_value(), 0);
                assert_eq!(op.with_param(3), None);
            }
            Some(ReduceParam::Ddof) => {
                assert_eq!(op.with_param(3).map(|o| o.param_value()), Some(3));
                assert_eq!(op.with_param(-1), None);
            }
            Some(ReduceParam::K) => {
                assert_eq!(op.with_param(-4).map(|o| o.param_value()), Some(-4));
            }
        }
    }
    let names: std::collections::HashSet<&str> = ReduceOp::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), ReduceOp::ALL.len(), "names are distinct");
    assert_eq!(ReduceOp::from_name("amin"), Some(ReduceOp::Min));
    assert_eq!(
        ReduceOp::from_name("nanvar").and_then(|o| o.with_param(2)),
        Some(ReduceOp::NanVar { ddof: 2 })
    );
    assert_eq!(
        ReduceOp::from_name("argtopk").and_then(|o| o.with_param(-2)),
        Some(ReduceOp::ArgTopK { k: -2 })
    );
    assert_eq!(ReduceOp::from_name("median"), None);
}

/// Every op with every parameter variant the tests use.
fn wire_ops() -> Vec<ReduceOp> {
    let mut ops: Vec<ReduceOp> = OPS.to_vec();
    ops.extend([
        ReduceOp::TopK { k: 2 },
        ReduceOp::TopK { k: -3 },
        ReduceOp::ArgTopK { k: 1 },
        ReduceOp::ArgTopK { k: -2 },
    ]);
    ops
}

/// `finalize(fold(partials))` as [`run`] folds them, each partial sent
/// through bytes first when `wire`.
fn run_wire(op: ReduceOp, b: &Block, axes: &[usize], piece: usize, wire: bool) -> Result<Block> {
    let full: Vec<u64> = b.shape().iter().map(|&n| n as u64).collect();
    let through = |p: Partial| -> Partial {
        if !wire {
            return p;
        }
        let bytes = p.to_bytes();
        let q = Partial::from_bytes(&bytes).unwrap();
        assert_eq!(q.to_bytes(), bytes, "{op:?}: the encoding is canonical");
        q
    };
    let mut acc: Option<Partial> = None;
    for (i, (o, s)) in tiles(b.shape(), axes, piece).into_iter().enumerate() {
        let t = crate::with_block!(b, a, T => Block::from(cut(a, &o, &s)));
        let origin: Vec<u64> = o.iter().map(|&x| x as u64).collect();
        match acc.as_mut() {
            // Every other tile's partial is shipped, and so is the running
            // accumulator it is merged into.
            Some(a) if i % 2 == 1 => {
                let next = through(partial(op, &t, axes, None, &origin, &full)?);
                merge(op, a, next)?;
                *a = through(a.clone());
            }
            _ => accumulate(op, &mut acc, &t, axes, None, &origin, &full)?,
        }
    }
    let acc = match acc {
        Some(a) => a,
        None => through(partial(op, b, axes, None, &vec![0; full.len()], &full)?),
    };
    finalize(op, through(acc))
}

/// A partial through bytes and back merges and finalizes to the bits it
/// would have: every op, dtype, several axis sets and tilings, derived
/// partials and masked arg-reductions.
#[test]
fn partials_round_trip_through_bytes_with_the_same_bits() {
    let dtypes = [
        DType::Bool,
        DType::I8,
        DType::U16,
        DType::I32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];
    for dtype in dtypes {
        let mut b = data(dtype, &[3, 4, 5], 21);
        if dtype.is_float() {
            let mut v = b.to_f64_vec();
            v.iter_mut().step_by(7).for_each(|x| *x = f64::NAN);
            b = Block::from(ArrayD::from_shape_vec(IxDyn(&[3, 4, 5]), v).unwrap()).astype(dtype);
        }
        for op in wire_ops() {
            let topk = matches!(op, ReduceOp::TopK { .. } | ReduceOp::ArgTopK { .. });
            for axes in AXES {
                if topk && axes.len() != 1 {
                    continue;
                }
                for piece in [0, 2] {
                    let plain = run_wire(op, &b, axes, piece, false);
                    let wired = run_wire(op, &b, axes, piece, true);
                    let ctx = format!("{op:?} {dtype} {axes:?} {piece}");
                    match (plain, wired) {
                        (Ok(x), Ok(y)) => {
                            assert_eq!(x.dtype(), y.dtype(), "{ctx}");
                            assert_eq!(x.shape(), y.shape(), "{ctx}");
                            assert_eq!(x.to_ne_bytes(), y.to_ne_bytes(), "{ctx}");
                        }
                        (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{ctx}"),
                        (x, y) => panic!("{ctx}: {x:?} vs {y:?}"),
                    }
                }
            }
        }
    }
    // Derived partials (a sum read off a variance's moments) and masked
    // arg-reductions (which carry the range they cover).
    let b = data(DType::F64, &[4, 6], 3);
    let var = partial(
        ReduceOp::Var { ddof: 0 },
        &b,
        &[0, 1],
        None,
        &[0, 0],
        &[4, 6],
    )
    .unwrap();
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Std { ddof: 1 }] {
        let d = derive(op, &var).unwrap();
        let back = Partial::from_bytes(&d.to_bytes()).unwrap();
        assert_eq!(
            finalize(op, d).unwrap().to_ne_bytes(),
            finalize(op, back).unwrap().to_ne_bytes(),
            "{op:?}"
        );
    }
    let m = ArrayD::from_shape_fn(IxDyn(&[4, 6]), |ix| (ix[0] * 7 + ix[1] * 3) % 4 != 0);
    for op in [ReduceOp::ArgMin, ReduceOp::ArgMax, ReduceOp::NanProd] {
        let fold = |wire: bool| {
            let mut acc: Option<Partial> = None;
            for r in 0..4 {
                let t = crate::with_block!(&b, a, T => Block::from(cut(a, &[r, 0], &[1, 6])));
                let mm = cut(&m, &[r, 0], &[1, 6]);
                let mut p = partial(op, &t, &[0, 1], Some(&mm), &[r as u64, 0], &[4, 6]).unwrap();
                if wire {
                    p = Partial::from_bytes(&p.to_bytes()).unwrap();
                }
                match acc.as_mut() {
                    None => acc = Some(p),
                    Some(a) => merge(op, a, p).unwrap(),
                }
            }
            finalize(op, acc.unwrap()).unwrap().to_ne_bytes()
        };
        assert_eq!(fold(false), fold(true), "masked {op:?}");
    }
}

/// `from_bytes` never panics: every truncation and a few thousand
/// mutations of real encodings are an error or a partial that merges and
/// finalizes (to something or an error) without panicking; garbage and
/// other versions are refused.
#[test]
fn from_bytes_refuses_garbage_without_panicking() {
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for dtype in [DType::Bool, DType::I16, DType::U64, DType::F32, DType::F64] {
        let b = data(dtype, &[3, 4], 5);
        for op in wire_ops() {
            if let Ok(p) = partial(op, &b, &[1], None, &[0, 0], &[3, 4]) {
                samples.push(p.to_bytes());
            }
        }
    }
    let b = data(DType::F64, &[2, 3], 5);
    let m = ArrayD::from_elem(IxDyn(&[2, 3]), true);
    let p = partial(ReduceOp::ArgMax, &b, &[0, 1], Some(&m), &[0, 0], &[2, 3]).unwrap();
    samples.push(p.to_bytes());
    let exercise = |bytes: &[u8]| {
        if let Ok(p) = Partial::from_bytes(bytes) {
            let op = p.op;
            let mut q = p.clone();
            let _ = merge(op, &mut q, p.clone());
            let _ = finalize(op, q);
            let _ = finalize(op, p);
        }
    };
    let mut r = Lcg(77);
    for s in &samples {
        assert!(Partial::from_bytes(s).is_ok());
        for len in 0..s.len() {
            assert!(
                Partial::from_bytes(&s[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = s.clone();
        longer.push(0);
        assert!(Partial::from_bytes(&longer).is_err(), "a trailing byte");
        for pos in 0..s.len() {
            for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                let mut t = s.clone();
                t[pos] = v;
                exercise(&t);
            }
        }
        for _ in 0..200 {
            let mut t = s.clone();
            for _ in 0..1 + (r.next() * 4.0) as usize {
                let pos = (r.next() * t.len() as f64) as usize;
                t[pos] = (r.next() * 256.0) as u8;
            }
            exercise(&t);
        }
    }
    assert!(Partial::from_bytes(b"").is_err());
    assert!(Partial::from_bytes(b"not a partial at all").is_err());
    let mut v2 = samples[0].clone();
    v2[4] = 2;
    let e = Partial::from_bytes(&v2).unwrap_err().to_string();
    assert!(e.contains("version 2"), "{e}");
    // A huge kept shape or parameter is refused before anything is allocated.
    let mut huge = b"NDRP\x01\x03sum".to_vec();
    huge.extend(0i64.to_le_bytes());
    huge.push(10);
    huge.extend(2u32.to_le_bytes());
    huge.extend(u64::MAX.to_le_bytes());
    huge.extend(0u64.to_le_bytes());
    huge.push(2);
    assert!(Partial::from_bytes(&huge).is_err());
    let mut big = b"NDRP\x01\x03sum".to_vec();
    big.extend(0i64.to_le_bytes());
    big.push(10);
    big.extend(1u32.to_le_bytes());
    big.extend((1u64 << 40).to_le_bytes());
    big.push(2);
    assert!(Partial::from_bytes(&big).is_err());
    let mut ddof = b"NDRP\x01\x03var".to_vec();
    ddof.extend((-1i64).to_le_bytes());
    assert!(Partial::from_bytes(&ddof).is_err());
}
