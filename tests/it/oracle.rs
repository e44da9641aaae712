//! The oracle tester: every operation, over several chunkings (whole,
//! ragged, one element per chunk), 1 and 4 threads, and the smallest budget
//! the planner accepts, compared with the same computation done with
//! `ndarray` in memory.

use ndarray::{Array1, ArrayD, Axis as NdAxis, IxDyn};
use ndstream::{
    Array, BinaryOp, Block, Chunks, DType, Error, Executor, IndexItem, ReduceOp, UnaryOp,
};

/// Deterministic test data: smooth values with some spread, optional NaNs.
pub fn data(shape: &[usize], seed: u64, nans: bool) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let v: Vec<f64> = (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            if nans && i % 7 == 3 {
                f64::NAN
            } else {
                (u - 0.4) * 10.0 + (i % 5) as f64 * 0.25
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

/// The chunkings every case runs with: one chunk, ragged chunks, 1-element chunks.
fn chunkings(shape: &[usize]) -> Vec<Chunks> {
    vec![
        Chunks::Shape(shape.iter().map(|&n| n.max(1) as u64).collect()),
        Chunks::Shape(
            shape
                .iter()
                .map(|&n| ((n as u64).div_ceil(2)).clamp(1, 3))
                .collect(),
        ),
        Chunks::Shape(vec![1; shape.len()]),
    ]
}

/// The smallest budget (within a factor of 1.25) with which `a` computes.
fn smallest_budget(a: &Array) -> u64 {
    let mut lo = 0u64;
    let mut hi = 1024u64;
    loop {
        let exec = Executor::builder().memory(hi).threads(1).build().unwrap();
        match exec.compute(a) {
            Ok(_) => break,
            Err(Error::BudgetTooSmall { .. }) => {
                lo = hi;
                hi *= 2;
                assert!(hi < 1 << 34, "no budget fits {a}");
            }
            Err(e) => panic!("computing {a}: {e}"),
        }
    }
    while hi - lo > hi / 4 {
        let mid = (lo + hi) / 2;
        let exec = Executor::builder().memory(mid).threads(1).build().unwrap();
        match exec.compute(a) {
            Ok(_) => hi = mid,
            Err(Error::BudgetTooSmall { .. }) => lo = mid,
            Err(e) => panic!("computing {a}: {e}"),
        }
    }
    hi
}

pub fn assert_close(got: &Block, want: &ArrayD<f64>, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.to_f64_vec().iter().zip(want.iter()).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs().max(1.0);
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// Run `build` over every chunking, thread count and the smallest budget;
/// compare with `want`. Also checks the results are bit-identical across
/// thread counts.
pub fn check(
    what: &str,
    inputs: &[ArrayD<f64>],
    build: impl Fn(&[Array]) -> ndstream::Result<Array>,
    want: &ArrayD<f64>,
    tol: f64,
) {
    for (ci, chunks) in chunkings(inputs[0].shape()).into_iter().enumerate() {
        let arrays: Vec<Array> = inputs
            .iter()
            .map(|x| {
                let c = match &chunks {
                    Chunks::Shape(s) if s.len() == x.ndim() => chunks.clone(),
                    _ => Chunks::Shape(x.shape().iter().map(|&n| (n as u64).clamp(1, 3)).collect()),
                };
                Array::from_ndarray(x.clone(), c).unwrap()
            })
            .collect();
        let a = build(&arrays).unwrap_or_else(|e| panic!("{what}: building: {e}"));
        let budget = smallest_budget(&a);
        let mut first: Option<Vec<u64>> = None;
        for threads in [1, 4] {
            for mem in [budget, 1 << 30] {
                let exec = Executor::builder()
                    .memory(mem)
                    .threads(threads)
                    .build()
                    .unwrap();
                let got = exec.compute(&a).unwrap_or_else(|e| {
                    panic!("{what} (chunking {ci}, {threads} threads, budget {mem}): {e}")
                });
                assert_close(
                    &got,
                    want,
                    tol,
                    &format!("{what} (chunking {ci}, {threads} threads, budget {mem})"),
                );
                assert!(
                    exec.budget().peak() <= mem,
                    "{what}: peak {} over budget {mem}",
                    exec.budget().peak()
                );
                let bits: Vec<u64> = got.to_f64_vec().iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert_eq!(
                        f, &bits,
                        "{what}: results differ between thread counts/budgets"
                    ),
                }
            }
        }
    }
}

fn v1(a: ArrayD<f64>) -> ArrayD<f64> {
    a
}

#[test]
fn elementwise_binary_ops() {
    let x = data(&[5, 4], 1, false);
    let y = data(&[5, 4], 2, false).mapv(|v| v.abs() + 0.5);
    // Every binary op of the table that takes floats: chunked, threaded
    // and budgeted results have the bits of the whole-array kernel, which
    // the engine's `numpy_tests` checks against NumPy row by row.
    let (bx, by) = (
        Block::from(x.clone().into_dyn()),
        Block::from(y.clone().into_dyn()),
    );
    for &op in BinaryOp::ALL {
        let Ok(want) = ndstream::engine::kernels::elementwise::binary(op, &bx, &by) else {
            continue;
        };
        let want = ArrayD::from_shape_vec(want.shape().to_vec(), want.to_f64_vec()).unwrap();
        check(
            op.name(),
            &[x.clone(), y.clone()],
            |a| a[0].binary(op, &a[1]),
            &want,
            0.0,
        );
    }
    let want = ndarray::Zip::from(&x)
        .and(&y)
        .map_collect(|&a, &b| a.abs().powf(b));
    check(
        "pow",
        &[x.clone(), y.clone()],
        |a| a[0].abs()?.apply(BinaryOp::Pow, &a[1]),
        &want,
        1e-12,
    );
}

#[test]
fn scalars_on_either_side_and_unary_ops() {
    let x = data(&[6, 5], 3, false);
    check(
        "x * 2.5",
        std::slice::from_ref(&x),
        |a| a[0].apply(BinaryOp::Mul, 2.5),
        &x.mapv(|v| v * 2.5),
        0.0,
    );
    check(
        "1 / x",
        std::slice::from_ref(&x),
        |a| a[0].binary_scalar(BinaryOp::Div, ndstream::Scalar::Float(1.0), true),
        &x.mapv(|v| 1.0 / v),
        1e-15,
    );
    check(
        "3 - x",
        std::slice::from_ref(&x),
        |a| Ok(3.0 - &a[0]),
        &x.mapv(|v| 3.0 - v),
        0.0,
    );
    check(
        "-x",
        std::slice::from_ref(&x),
        |a| Ok(-&a[0]),
        &x.mapv(|v| -v),
        0.0,
    );
    let pos = x.mapv(|v| v.abs() + 0.1);
    // Every unary op of the table that takes floats, against the
    // whole-array kernel (checked against NumPy in the engine's
    // `numpy_tests`).
    let bpos = Block::from(pos.clone().into_dyn());
    for &op in UnaryOp::ALL {
        let Ok(want) = ndstream::engine::kernels::elementwise::unary(op, &bpos) else {
            continue;
        };
        let want = ArrayD::from_shape_vec(want.shape().to_vec(), want.to_f64_vec()).unwrap();
        check(
            op.name(),
            std::slice::from_ref(&pos),
            |a| a[0].unary(op),
            &want,
            0.0,
        );
    }
    check(
        "clip",
        std::slice::from_ref(&x),
        |a| a[0].clip(Some(-1.0), Some(2.0)),
        &x.mapv(|v| v.clamp(-1.0, 2.0)),
        0.0,
    );
    let xn = data(&[6, 5], 4, true);
    check(
        "isnan",
        std::slice::from_ref(&xn),
        |a| a[0].isnan(),
        &xn.mapv(|v| v.is_nan() as u8 as f64),
        0.0,
    );
    check(
        "isfinite",
        std::slice::from_ref(&xn),
        |a| a[0].isfinite(),
        &xn.mapv(|v| v.is_finite() as u8 as f64),
        0.0,
    );
    check(
        "logical and/or/not",
        std::slice::from_ref(&x),
        |a| {
            let p = a[0].gt(0.0)?;
            let q = a[0].lt(2.0)?;
            p.logical_and(&q)?.logical_or(&a[0].gt(4.0)?)?.logical_not()
        },
        &x.mapv(|v| !((v > 0.0 && v < 2.0) || v > 4.0) as u8 as f64),
        0.0,
    );
    check(
        "where",
        std::slice::from_ref(&x),
        |a| ndstream::where_(&a[0].gt(1.0)?, &a[0], 0.0),
        &x.mapv(|v| if v > 1.0 { v } else { 0.0 }),
        0.0,
    );
    check(
        "astype i32",
        std::slice::from_ref(&x),
        |a| Ok(a[0].astype(DType::I32)),
        &x.mapv(|v| v.trunc()),
        0.0,
    );
}

#[test]
fn broadcasting_with_new_axes_is_the_pairwise_difference() {
    // x[:, None, :] - x[None, :, :], as in the Lennard-Jones example.
    let x = data(&[6, 3], 5, false);
    let n = 6;
    let mut want = ArrayD::<f64>::zeros(IxDyn(&[n, n, 3]));
    for i in 0..n {
        for j in 0..n {
            for k in 0..3 {
                want[[i, j, k]] = x[[i, k]] - x[[j, k]];
            }
        }
    }
    check(
        "x[:, None, :] - x[None, :, :]",
        std::slice::from_ref(&x),
        |a| {
            let l = a[0].index(&[IndexItem::FULL, IndexItem::NewAxis, IndexItem::FULL])?;
            let r = a[0].index(&[IndexItem::NewAxis, IndexItem::FULL, IndexItem::FULL])?;
            l.binary(BinaryOp::Sub, &r)
        },
        &want,
        0.0,
    );
    let r2 = want.mapv(|v| v * v).sum_axis(NdAxis(2));
    let lj = r2.mapv(|r: f64| {
        let s6 = (1.0 / r).powi(3);
        4.0 * (s6 * s6 - s6)
    });
    let total: f64 = lj.iter().filter(|v| !v.is_nan()).sum::<f64>() / 2.0;
    check(
        "lennard-jones nansum",
        std::slice::from_ref(&x),
        |a| {
            let l = a[0].index(&[IndexItem::FULL, IndexItem::NewAxis, IndexItem::FULL])?;
            let r = a[0].index(&[IndexItem::NewAxis, IndexItem::FULL, IndexItem::FULL])?;
            let d = l.binary(BinaryOp::Sub, &r)?;
            let r2 = (&d * &d).sum(Some(2))?;
            let sr6 = (1.0 / &r2).apply(BinaryOp::Pow, 3.0)?;
            let pot = 4.0 * (&(&sr6 * &sr6) - &sr6);
            Ok(pot.nansum(None)? / 2.0)
        },
        &ArrayD::from_elem(IxDyn(&[]), total),
        1e-12,
    );
}

fn reduce_oracle(x: &ArrayD<f64>, axes: &[usize], f: &dyn Fn(&[f64]) -> f64) -> ArrayD<f64> {
    let kept: Vec<usize> = (0..x.ndim()).filter(|d| !axes.contains(d)).collect();
    let out_shape: Vec<usize> = kept.iter().map(|&d| x.shape()[d]).collect();
    let mut out = ArrayD::<f64>::zeros(IxDyn(&out_shape));
    for (oi, o) in out.indexed_iter_mut() {
        let mut vals = Vec::new();
        for (ii, &v) in x.indexed_iter() {
            if kept.iter().enumerate().all(|(k, &d)| ii[d] == oi[k]) {
                vals.push(v);
            }
        }
        *o = f(&vals);
    }
    out
}

fn fsum(v: &[f64]) -> f64 {
    // Exact enough for test data: Neumaier.
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for &x in v {
        let t = s + x;
        c += if s.abs() >= x.abs() {
            (s - t) + x
        } else {
            (x - t) + s
        };
        s = t;
    }
    s + c
}

#[test]
fn reductions_over_axis_sets() {
    let x = data(&[5, 4, 3], 6, false);
    let xn = data(&[5, 4, 3], 7, true);
    let mean = |v: &[f64]| fsum(v) / v.len() as f64;
    let var = move |v: &[f64], ddof: f64| {
        let m = fsum(v) / v.len() as f64;
        fsum(&v.iter().map(|x| (x - m) * (x - m)).collect::<Vec<_>>()) / (v.len() as f64 - ddof)
    };
    let nn = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| !x.is_nan())
            .collect::<Vec<_>>()
    };
    type F = Box<dyn Fn(&[f64]) -> f64>;
    let ops: Vec<(ReduceOp, F, bool)> = vec![
        (ReduceOp::Sum, Box::new(fsum), false),
        (
            ReduceOp::Prod,
            Box::new(|v: &[f64]| v.iter().product()),
            false,
        ),
        (ReduceOp::Mean, Box::new(mean), false),
        (
            ReduceOp::Var { ddof: 0 },
            Box::new(move |v: &[f64]| var(v, 0.0)),
            false,
        ),
        (
            ReduceOp::Std { ddof: 1 },
            Box::new(move |v: &[f64]| var(v, 1.0).sqrt()),
            false,
        ),
        (
            ReduceOp::Min,
            Box::new(|v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min)),
            false,
        ),
        (
            ReduceOp::Max,
            Box::new(|v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            false,
        ),
        (
            ReduceOp::Any,
            Box::new(|v: &[f64]| v.iter().any(|&x| x > 3.0) as u8 as f64),
            false,
        ),
        (
            ReduceOp::CountNonzero,
            Box::new(|v: &[f64]| v.iter().filter(|&&x| x > 3.0).count() as f64),
            false,
        ),
        (
            ReduceOp::NanSum,
            Box::new(move |v: &[f64]| fsum(&nn(v))),
            true,
        ),
        (
            ReduceOp::NanProd,
            Box::new(move |v: &[f64]| nn(v).iter().product()),
            true,
        ),
        (
            ReduceOp::NanMean,
            Box::new(move |v: &[f64]| mean(&nn(v))),
            true,
        ),
        (
            ReduceOp::NanStd { ddof: 0 },
            Box::new(move |v: &[f64]| var(&nn(v), 0.0).sqrt()),
            true,
        ),
        (
            ReduceOp::NanMin,
            Box::new(move |v: &[f64]| nn(v).into_iter().fold(f64::INFINITY, f64::min)),
            true,
        ),
        (
            ReduceOp::NanMax,
            Box::new(move |v: &[f64]| nn(v).into_iter().fold(f64::NEG_INFINITY, f64::max)),
            true,
        ),
    ];
    for (op, f, with_nans) in &ops {
        let input = if *with_nans { &xn } else { &x };
        for axes in [vec![0usize, 1, 2], vec![0], vec![2], vec![1], vec![0, 2]] {
            let bool_op = matches!(op, ReduceOp::Any | ReduceOp::CountNonzero);
            let want = reduce_oracle(input, &axes, f.as_ref());
            let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let op = *op;
            check(
                &format!("{op:?} over {axes:?}"),
                std::slice::from_ref(input),
                |a| {
                    let src = if bool_op { a[0].gt(3.0)? } else { a[0].clone() };
                    src.reduce(op, Some(&ax), false)
                },
                &want,
                1e-12,
            );
        }
    }
    // keepdims and negative axes.
    let want = reduce_oracle(&x, &[2], &mean).insert_axis(NdAxis(2));
    check(
        "mean keepdims axis=-1",
        std::slice::from_ref(&x),
        |a| a[0].reduce(ReduceOp::Mean, Some(&[-1]), true),
        &want,
        1e-12,
    );
}

#[test]
fn arg_reductions_and_topk() {
    let x = data(&[6, 5], 8, false);
    let want = x.map_axis(NdAxis(0), |c| {
        c.iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0 as f64
    });
    check(
        "argmax axis 0",
        std::slice::from_ref(&x),
        |a| a[0].argmax(Some(0)),
        &want.into_dyn(),
        0.0,
    );
    let flat: Vec<f64> = x.iter().copied().collect();
    let amin = flat
        .iter()
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |b, (i, &v)| if v < b.1 { (i, v) } else { b },
        )
        .0;
    check(
        "argmin all",
        std::slice::from_ref(&x),
        |a| a[0].argmin(None),
        &ArrayD::from_elem(IxDyn(&[]), amin as f64),
        0.0,
    );
    // topk along axis 1: the 2 largest per row, descending; -2: the 2 smallest ascending.
    for k in [2i64, -2] {
        let mut want = ArrayD::<f64>::zeros(IxDyn(&[6, 2]));
        let mut wanti = ArrayD::<f64>::zeros(IxDyn(&[6, 2]));
        for i in 0..6 {
            let mut row: Vec<(usize, f64)> = (0..5).map(|j| (j, x[[i, j]])).collect();
            if k > 0 {
                row.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
            } else {
                row.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
            }
            for j in 0..2 {
                want[[i, j]] = row[j].1;
                wanti[[i, j]] = row[j].0 as f64;
            }
        }
        check(
            &format!("topk {k}"),
            std::slice::from_ref(&x),
            |a| a[0].topk(k, 1),
            &want,
            0.0,
        );
        check(
            &format!("argtopk {k}"),
            std::slice::from_ref(&x),
            |a| a[0].argtopk(k, -1),
            &wanti,
            0.0,
        );
    }
}

#[test]
fn indexing() {
    let x = data(&[7, 6], 9, false);
    let s = |a: Option<i64>, b: Option<i64>, c: i64| IndexItem::slice(a, b, c);
    check(
        "x[::2, 1:]",
        std::slice::from_ref(&x),
        |a| a[0].index(&[s(None, None, 2), s(Some(1), None, 1)]),
        &x.slice(ndarray::s![..;2, 1..]).to_owned().into_dyn(),
        0.0,
    );
    check(
        "x[::-1, -2::-3]",
        std::slice::from_ref(&x),
        |a| a[0].index(&[s(None, None, -1), s(Some(-2), None, -3)]),
        &{
            let rows: Vec<usize> = (0..7).rev().collect();
            let cols: Vec<usize> = vec![4, 1];
            ArrayD::from_shape_fn(IxDyn(&[7, 2]), |i| x[[rows[i[0]], cols[i[1]]]])
        },
        0.0,
    );
    check(
        "x[3]",
        std::slice::from_ref(&x),
        |a| a[0].index(&[IndexItem::Index(3)]),
        &x.index_axis(NdAxis(0), 3).to_owned().into_dyn(),
        0.0,
    );
    check(
        "x[..., -1]",
        std::slice::from_ref(&x),
        |a| a[0].index(&[IndexItem::Ellipsis, IndexItem::Index(-1)]),
        &x.index_axis(NdAxis(1), 5).to_owned().into_dyn(),
        0.0,
    );
    check(
        "x[None, 1:5:2, None]",
        std::slice::from_ref(&x),
        |a| {
            a[0].index(&[
                IndexItem::NewAxis,
                s(Some(1), Some(5), 2),
                IndexItem::NewAxis,
            ])
        },
        &x.slice(ndarray::s![1..5;2, ..])
            .to_owned()
            .insert_axis(NdAxis(0))
            .insert_axis(NdAxis(2))
            .into_dyn(),
        0.0,
    );
    check(
        "x.T",
        std::slice::from_ref(&x),
        |a| a[0].transpose(None),
        &x.t().to_owned().into_dyn(),
        0.0,
    );
    let tri = |k: i64, upper: bool| {
        ArrayD::from_shape_fn(IxDyn(&[7, 6]), |i| {
            let d = i[1] as i64 - i[0] as i64;
            if (upper && d >= k) || (!upper && d <= k) {
                x[[i[0], i[1]]]
            } else {
                0.0
            }
        })
    };
    check(
        "triu(1)",
        std::slice::from_ref(&x),
        |a| a[0].triu(1),
        &tri(1, true),
        0.0,
    );
    check(
        "tril(-1)",
        std::slice::from_ref(&x),
        |a| a[0].tril(-1),
        &tri(-1, false),
        0.0,
    );
    // Slices of slices, and a slice pushed below a reduction.
    check(
        "x.mean(0)[::2]",
        std::slice::from_ref(&x),
        |a| a[0].mean(Some(0))?.index(&[s(None, None, 2)]),
        &{
            let m = reduce_oracle(&x, &[0], &|v| fsum(v) / v.len() as f64);
            m.slice_each_axis(|_| ndarray::Slice::new(0, None, 2))
                .to_owned()
        },
        1e-12,
    );
    check(
        "x[1:][::2]",
        std::slice::from_ref(&x),
        |a| {
            a[0].index(&[s(Some(1), None, 1)])?
                .index(&[s(None, None, 2)])
        },
        &x.slice(ndarray::s![1..;2, ..]).to_owned().into_dyn(),
        0.0,
    );
}

#[test]
fn boolean_masks_feed_reductions() {
    let x = data(&[6, 5], 10, false);
    let sel: Vec<f64> = x.iter().copied().filter(|&v| v > 1.0).collect();
    check(
        "x[x > 1].sum()",
        std::slice::from_ref(&x),
        |a| a[0].mask(&a[0].gt(1.0)?)?.sum(None),
        &ArrayD::from_elem(IxDyn(&[]), fsum(&sel)),
        1e-12,
    );
    check(
        "x[x > 1].mean()",
        std::slice::from_ref(&x),
        |a| a[0].mask(&a[0].gt(1.0)?)?.mean(None),
        &ArrayD::from_elem(IxDyn(&[]), fsum(&sel) / sel.len() as f64),
        1e-12,
    );
    let t: Vec<f64> = sel.iter().map(|v| v * v + 1.0).collect();
    check(
        "(x[x > 1] ** 2 + 1).sum()",
        std::slice::from_ref(&x),
        |a| {
            let m = a[0].mask(&a[0].gt(1.0)?)?;
            (&(&m * &m) + 1.0).sum(None)
        },
        &ArrayD::from_elem(IxDyn(&[]), fsum(&t)),
        1e-12,
    );
    check(
        "x[x > 1]",
        std::slice::from_ref(&x),
        |a| a[0].mask(&a[0].gt(1.0)?),
        &Array1::from(sel.clone()).into_dyn(),
        0.0,
    );
}

#[test]
fn stack_and_concatenate_many() {
    for n in [3usize, 31] {
        let xs: Vec<ArrayD<f64>> = (0..n)
            .map(|i| data(&[4, 5], 100 + i as u64, false))
            .collect();
        let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
        let want = ndarray::stack(NdAxis(0), &views).unwrap();
        check(
            &format!("stack {n}"),
            &xs,
            |a| ndstream::stack(a, 0),
            &want,
            0.0,
        );
        let mean = want.mean_axis(NdAxis(0)).unwrap();
        check(
            &format!("stack {n} mean(0)"),
            &xs,
            |a| ndstream::stack(a, 0)?.mean(Some(0)),
            &mean,
            1e-12,
        );
        let want = ndarray::concatenate(NdAxis(1), &views).unwrap();
        check(
            &format!("concatenate {n} axis 1"),
            &xs,
            |a| ndstream::concatenate(a, 1),
            &want,
            0.0,
        );
        let want = ndarray::stack(NdAxis(2), &views).unwrap();
        check(
            &format!("stack {n} axis -1"),
            &xs,
            |a| ndstream::stack(a, -1),
            &want,
            0.0,
        );
    }
    // The anomaly: x[0] - x.mean(axis=0).
    let xs: Vec<ArrayD<f64>> = (0..4).map(|i| data(&[4, 5], 200 + i, false)).collect();
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    let st = ndarray::stack(NdAxis(0), &views).unwrap();
    let want = &st.index_axis(NdAxis(0), 0) - &st.mean_axis(NdAxis(0)).unwrap();
    check(
        "x[0] - x.mean(0)",
        &xs,
        |a| {
            let s = ndstream::stack(a, 0)?;
            s.index(&[IndexItem::Index(0)])?
                .binary(BinaryOp::Sub, &s.mean(Some(0))?)
        },
        &v1(want.into_dyn()),
        1e-12,
    );
}

#[test]
fn map_blocks_and_rechunk() {
    let x = data(&[7, 5], 11, false);
    check(
        "map_blocks",
        std::slice::from_ref(&x),
        |a| {
            a[0].map_blocks(DType::F64, "square_plus_one", |b: &[Block]| {
                let v = b[0]
                    .view::<f64>()
                    .ok_or_else(|| ndstream::Error::invalid("test", "b", "not f64"))?;
                Ok(Block::from(v.mapv(|t| t * t + 1.0)))
            })
        },
        &x.mapv(|t| t * t + 1.0),
        0.0,
    );
    check(
        "rechunk",
        std::slice::from_ref(&x),
        |a| a[0].rechunk(Chunks::Shape(vec![2, 2])),
        &x,
        0.0,
    );
    check(
        "rechunk then sum(1)",
        std::slice::from_ref(&x),
        |a| {
            a[0].rechunk(Chunks::Sizes(vec![vec![1, 6], vec![5]]))?
                .sum(Some(1))
        },
        &reduce_oracle(&x, &[1], &fsum),
        1e-12,
    );
}

#[test]
fn creation_functions() {
    let z = ndstream::arange(2.0, 11.0, 3.0, DType::I64, Chunks::Shape(vec![2])).unwrap();
    assert_eq!(z.compute().unwrap().to_f64_vec(), vec![2.0, 5.0, 8.0]);
    let l = ndstream::linspace(0.0, 1.0, 11, Chunks::Shape(vec![4])).unwrap();
    let v = l.compute().unwrap().to_f64_vec();
    assert_eq!(v.len(), 11);
    assert_eq!(v[10], 1.0);
    assert!((v[3] - 0.3).abs() < 1e-15);
    let f = ndstream::full(&[3, 2], 7.0, DType::U8, Chunks::Auto).unwrap();
    assert_eq!(
        f.sum(None).unwrap().compute().unwrap().to_f64_vec(),
        vec![42.0]
    );
    let o = ndstream::ones(&[4], DType::F32, Chunks::Auto).unwrap();
    assert_eq!(o.dtype(), DType::F32);
    assert_eq!(o.compute().unwrap().to_f64_vec(), vec![1.0; 4]);
}

#[test]
fn random_arrays_do_not_depend_on_chunking_and_slices_match() {
    let a = ndstream::random::normal(10.0, 0.1, &[40, 30], [40, 30], 7).unwrap();
    let whole = a.compute().unwrap();
    for chunks in [[7u64, 4], [1, 1], [13, 30]] {
        let b = ndstream::random::normal(10.0, 0.1, &[40, 30], chunks, 7).unwrap();
        assert_eq!(b.compute().unwrap(), whole, "chunks {chunks:?}");
    }
    let sl = a
        .index(&[
            IndexItem::slice(Some(3), None, 5),
            IndexItem::slice(None, None, -7),
        ])
        .unwrap();
    let got = sl.compute().unwrap();
    let w = whole.view::<f64>().unwrap();
    let want = w
        .slice_each_axis(|ax| {
            if ax.axis.index() == 0 {
                ndarray::Slice::new(3, None, 5)
            } else {
                ndarray::Slice::new(0, None, -7)
            }
        })
        .to_owned();
    assert_eq!(got, Block::from(want));
    let u = ndstream::random::uniform(-1.0, 1.0, &[10000], [1000], 1)
        .unwrap()
        .compute()
        .unwrap()
        .to_f64_vec();
    assert!(u.iter().all(|v| (-1.0..1.0).contains(v)));
    let e = ndstream::random::exponential(2.0, &[20000], [3000], 1)
        .unwrap()
        .mean(None)
        .unwrap()
        .compute()
        .unwrap()
        .to_f64_vec()[0];
    assert!((e - 2.0).abs() < 0.1, "{e}");
}

#[test]
fn compute_many_shares_one_pass() {
    let x = data(&[50, 8], 12, false);
    let a = Array::from_ndarray(x.clone(), Chunks::Shape(vec![7, 8])).unwrap();
    let exec = Executor::builder()
        .memory(1 << 20)
        .threads(2)
        .build()
        .unwrap();
    let r = exec
        .compute_many(&[
            a.sum(None).unwrap(),
            a.mean(None).unwrap(),
            a.std(None, 0).unwrap(),
        ])
        .unwrap();
    let v: Vec<f64> = x.iter().copied().collect();
    let m = fsum(&v) / v.len() as f64;
    let sd =
        (fsum(&v.iter().map(|t| (t - m) * (t - m)).collect::<Vec<_>>()) / v.len() as f64).sqrt();
    assert!((r[0].to_f64_vec()[0] - fsum(&v)).abs() < 1e-10);
    assert!((r[1].to_f64_vec()[0] - m).abs() < 1e-12);
    assert!((r[2].to_f64_vec()[0] - sd).abs() < 1e-12);
}

/// Sums, means and variances of one input over the same axes fold the
/// tiles once (a sum is read off the mean beside it, a full sum or mean off
/// the variance beside it): each result has the bits it has when computed
/// alone, with NaNs, both NaN rules and several axes.
#[test]
fn shared_sums_means_and_moments_have_the_bits_of_lone_ones() {
    let x = data(&[40, 9, 6], 5, true);
    let a = Array::from_ndarray(x, Chunks::Shape(vec![7, 4, 6])).unwrap();
    let exec = Executor::builder().threads(2).build().unwrap();
    let mut arrays = Vec::new();
    for axes in [None, Some(&[0isize][..]), Some(&[1, 2][..])] {
        for op in [
            ReduceOp::Sum,
            ReduceOp::NanSum,
            ReduceOp::Mean,
            ReduceOp::NanMean,
            ReduceOp::Sum,
            ReduceOp::Std { ddof: 1 },
            ReduceOp::Var { ddof: 0 },
            ReduceOp::NanVar { ddof: 0 },
            ReduceOp::NanStd { ddof: 1 },
        ] {
            arrays.push(a.reduce(op, axes, false).unwrap());
        }
    }
    let together = exec.compute_many(&arrays).unwrap();
    for (arr, t) in arrays.iter().zip(&together) {
        let alone = exec.compute(arr).unwrap();
        let bits = |b: &Block| {
            b.to_f64_vec()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(t), bits(&alone), "{arr}");
    }
    // The NaN-skipping sum differs from the plain one: the test can fail.
    assert_ne!(
        together[0].to_f64_vec()[0].to_bits(),
        together[1].to_f64_vec()[0].to_bits()
    );
}

#[test]
fn shape_and_dtype_errors_are_clear() {
    let a = Array::from_ndarray(data(&[3, 4], 1, false), Chunks::Auto).unwrap();
    let b = Array::from_ndarray(data(&[4, 3], 1, false), Chunks::Auto).unwrap();
    let e = a.binary(BinaryOp::Add, &b).unwrap_err().to_string();
    assert!(e.contains("[3, 4]") && e.contains("[4, 3]"), "{e}");
    let e = ndstream::stack(&[a.clone(), b.clone()], 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("stack"), "{e}");
    let c = a.astype(DType::F32);
    let e = ndstream::stack(&[a.clone(), c], 0).unwrap_err().to_string();
    assert!(e.contains("float32") && e.contains("float64"), "{e}");
    let e = a.index(&[IndexItem::Index(5)]).unwrap_err().to_string();
    assert!(e.contains("out of bounds"), "{e}");
    let e = a.sum(Some(2)).unwrap_err().to_string();
    assert!(e.contains("axis 2"), "{e}");
}

/// The math ops added with the Python layer (`sinh`, `cbrt`, `arctan2`,
/// `hypot`, `log10`, `rint`, `fmax`, `expm1`, `sign`, `trunc`) fused in one
/// chain over two inputs, against NumPy 2.4:
/// `arctan2(sinh(x*3), cbrt(y)) + hypot(log10(y), rint(x*4)) - fmax(expm1(x), sign(x)*trunc(y*2))`.
#[test]
fn new_math_ops_in_a_fused_chain_match_numpy() {
    const X: [u64; 20] = [
        0xbfeccccccccccccd,
        0xbfe9c4b73dfa9c4c,
        0xbfe6bca1af286bca,
        0xbfe3b48c20563b49,
        0xbfe0ac7691840ac8,
        0xbfdb48c20563b48c,
        0xbfd53896e7bf538a,
        0xbfce50d79435e50c,
        0xbfc2308158ed2308,
        0xbfa840ac76918410,
        0x3fa840ac76918410,
        0x3fc2308158ed230c,
        0x3fce50d79435e50c,
        0x3fd53896e7bf538a,
        0x3fdb48c20563b48e,
        0x3fe0ac7691840ac7,
        0x3fe3b48c20563b49,
        0x3fe6bca1af286bcb,
        0x3fe9c4b73dfa9c4b,
        0x3feccccccccccccd,
    ];
    const Y: [u64; 20] = [
        0x3fb999999999999a,
        0x3fc999999999999a,
        0x3fd3333333333333,
        0x3fd999999999999a,
        0x3fe0000000000000,
        0x3fe3333333333333,
        0x3fe6666666666666,
        0x3fe9999999999999,
        0x3feccccccccccccc,
        0x3fefffffffffffff,
        0x3ff1999999999999,
        0x3ff3333333333333,
        0x3ff4cccccccccccd,
        0x3ff6666666666666,
        0x3ff8000000000000,
        0x3ff9999999999999,
        0x3ffb333333333333,
        0x3ffccccccccccccd,
        0x3ffe666666666666,
        0x4000000000000000,
    ];
    const WANT: [u64; 20] = [
        0x4004eb4ff143ce68,
        0x3ff9d4c8eb2ed46e,
        0x3ffa259b3e979ef8,
        0x3fe67922e261beb8,
        0x3ff3149b7c926910,
        0x3ff42634303aa5a1,
        0x3fd7eaca545a35d5,
        0x3fe0b3d188081cd4,
        0x3fe69b6699f3a242,
        0xbfb869dcf703f904,
        0xbffd244068261320,
        0xbfe35ac4d592aa6a,
        0xbfd830e53e751278,
        0xbfc7663a9f3df2b8,
        0xbf9a90505c4cc000,
        0x3fbb8b59d48eb420,
        0x3fcb9d43add64b10,
        0x3ff4bfc14ddfd4cc,
        0x3ff5d44c6648083c,
        0x3ff69e2078f50500,
    ];
    let shaped = |v: &[u64]| {
        ArrayD::from_shape_vec(
            IxDyn(&[4, 5]),
            v.iter().map(|&b| f64::from_bits(b)).collect(),
        )
        .unwrap()
    };
    let (x, y, want) = (shaped(&X), shaped(&Y), shaped(&WANT));
    let chain = |a: &[Array]| {
        let (x, y) = (&a[0], &a[1]);
        let angle = (x * 3.0).sinh()?.arctan2(y.cbrt()?)?;
        let hyp = y.log10()?.hypot((x * 4.0).rint()?)?;
        let step = x.sign()?.apply(BinaryOp::Mul, (y * 2.0).trunc()?)?;
        (&angle + &hyp).apply(BinaryOp::Sub, x.expm1()?.fmax(step)?)
    };
    check("new math ops", &[x, y], chain, &want, 4e-15);
}

/// `tan` (one row of the op table) inside a fused chain, `(x * 2).tan() + 1`
/// on a chunked array, against NumPy:
/// `x = np.linspace(-0.7, 0.7, 20).reshape(4, 5); np.tan(x * 2) + 1`.
/// NumPy's `tan` is a SIMD loop an ulp or so from glibc's, hence the
/// tolerance; the fused chain has the bits of the ops run one by one.
#[test]
fn tan_in_a_fused_chain_matches_numpy() {
    const X: [u64; 20] = [
        0xbfe6666666666666,
        0xbfe40ac7691840ac,
        0xbfe1af286bca1af2,
        0xbfdea712dcf7ea71,
        0xbfd9efd4e25b9efd,
        0xbfd53896e7bf5389,
        0xbfd08158ed230816,
        0xbfc79435e50d7944,
        0xbfbc4b73dfa9c4b8,
        0xbfa2dcf7ea712dd0,
        0x3fa2dcf7ea712dd0,
        0x3fbc4b73dfa9c4b8,
        0x3fc79435e50d7940,
        0x3fd08158ed230814,
        0x3fd53896e7bf5388,
        0x3fd9efd4e25b9efc,
        0x3fdea712dcf7ea70,
        0x3fe1af286bca1af2,
        0x3fe40ac7691840ac,
        0x3fe6666666666666,
    ];
    const WANT: [u64; 20] = [
        0xc01331086dc00a35,
        0xc0004a3c7957c44a,
        0xbfefb30eba96459a,
        0xbfdb01a8a0094ef4,
        0xbfaa6671b2e73540,
        0x3fcc026130779d84,
        0x3fdbb687182497ca,
        0x3fe3a57f1a4e323e,
        0x3fe8cf0d9e782d26,
        0x3feda348bda53ce7,
        0x3ff12e5ba12d618d,
        0x3ff3987930c3e96d,
        0x3ff62d4072d8e6e0,
        0x3ff9125e39f6da0c,
        0x3ffc7fb3d9f10c4e,
        0x40006999c6cb9cd4,
        0x40036035140129de,
        0x4007ecc3aea59166,
        0x4010251e3cabe225,
        0x401b31086dc00a35,
    ];
    let shaped = |v: &[u64]| {
        ArrayD::from_shape_vec(
            IxDyn(&[4, 5]),
            v.iter().map(|&b| f64::from_bits(b)).collect(),
        )
        .unwrap()
    };
    let (x, want) = (shaped(&X), shaped(&WANT));
    let chain = |a: &[Array]| (&a[0] * 2.0).tan()?.apply(BinaryOp::Add, 1.0);
    check(
        "(x * 2).tan() + 1",
        std::slice::from_ref(&x),
        chain,
        &want,
        4e-16,
    );
    // Op by op with the whole-tile kernels: the same bits as the chain.
    use ndstream::engine::kernels::elementwise::{binary, unary};
    let two = Block::from(ndarray::arr0(2.0).into_dyn());
    let one = Block::from(ndarray::arr0(1.0).into_dyn());
    let xb = Block::from(x.clone());
    let by_op = binary(
        BinaryOp::Add,
        &unary(UnaryOp::Tan, &binary(BinaryOp::Mul, &xb, &two).unwrap()).unwrap(),
        &one,
    )
    .unwrap();
    let a = Array::from_ndarray(x, Chunks::Shape(vec![3, 2])).unwrap();
    let got = Executor::builder()
        .threads(2)
        .build()
        .unwrap()
        .compute(&chain(&[a]).unwrap())
        .unwrap();
    let bits = |b: &Block| -> Vec<u64> { b.to_f64_vec().iter().map(|v| v.to_bits()).collect() };
    assert_eq!(bits(&got), bits(&by_op));
}
