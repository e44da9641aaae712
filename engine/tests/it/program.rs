//! Programs: arrays described as data and rebuilt give the same bits as
//! the originals; shared nodes stay shared; what is not data is refused;
//! a damaged program is an error, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ndstream_engine::program::Program;
use ndstream_engine::{
    arange, concatenate, linspace, map_blocks, ones, stack, where_, Array, BinaryOp, Block,
    ChunkSource, Chunks, DType, Distribution, Error, Executor, IndexItem as I, ReduceOp, ScanOp,
    UnaryOp,
};

use crate::common::{bits, iota};

fn no_stored_inputs(l: &str) -> ndstream_engine::Result<Arc<dyn ChunkSource>> {
    Err(Error::invalid(
        "open",
        "locator",
        format!("no stored input {l}"),
    ))
}

fn rebuilt(arrays: &[Array]) -> Vec<Array> {
    let json = Program::of(arrays).unwrap().to_json();
    Program::from_json(&json)
        .unwrap()
        .build(&no_stored_inputs)
        .unwrap()
}

/// Arrays that between them use every operation a program describes.
fn zoo() -> Vec<(&'static str, Array)> {
    let x = iota(&[6, 10], &[vec![4, 2], vec![3, 3, 4]]);
    let r = Array::random(
        Distribution::Normal {
            loc: 1.0,
            scale: 2.0,
        },
        &[6, 10],
        [3, 5].into(),
        42,
    )
    .unwrap();
    let u = Array::random(
        Distribution::Uniform {
            low: -1.0,
            high: 1.0,
        },
        &[6, 10],
        [6, 4].into(),
        7,
    )
    .unwrap()
    .astype(DType::F32);
    let e = Array::random(
        Distribution::Exponential { scale: 3.0 },
        &[10],
        Chunks::Auto,
        1,
    )
    .unwrap();
    let ints = arange(-7.0, 23.0, 1.0, DType::I32, [7].into())
        .unwrap()
        .reshape(&[3, 10])
        .unwrap();
    let nan = ndstream_engine::full(&[6, 10], f64::NAN, DType::F64, [2, 10].into()).unwrap();
    let m = x.apply(BinaryOp::Gt, 17.5).unwrap();
    let centred = &r - &r.mean(Some(0)).unwrap();
    vec![
        ("iota", x.clone()),
        ("random + 1", r.apply(BinaryOp::Add, 1.0).unwrap()),
        ("f32 uniform * 3", u.apply(BinaryOp::Mul, 3.0).unwrap()),
        ("exp random", e.unary(UnaryOp::Sqrt).unwrap()),
        ("centred std", centred.std(Some(1), 1).unwrap()),
        ("var ddof 1", centred.var(None, 1).unwrap()),
        (
            "where nan",
            where_(&m, &nan, x.unary(UnaryOp::Neg).unwrap()).unwrap(),
        ),
        (
            "nanmean",
            where_(&m, &nan, &x).unwrap().nanmean(Some(0)).unwrap(),
        ),
        ("clip", x.clip(Some(3.0), Some(40.5)).unwrap()),
        ("clip one side", r.clip(None, Some(0.0)).unwrap()),
        (
            "strided",
            x.index(&[
                I::slice(Some(5), None, -2),
                I::NewAxis,
                I::slice(Some(1), Some(9), 3),
            ])
            .unwrap(),
        ),
        ("dropped axis", x.index(&[I::FULL, I::Index(-3)]).unwrap()),
        (
            "dropped then sliced",
            x.index(&[I::FULL, I::Index(4)])
                .unwrap()
                .index(&[I::Index(2)])
                .unwrap(),
        ),
        (
            "index in front",
            x.index(&[I::Index(1), I::NewAxis, I::slice(None, None, -1)])
                .unwrap(),
        ),
        (
            "stack",
            stack(&[x.clone(), r.clone(), x.clone()], 1).unwrap(),
        ),
        ("concat", concatenate(&[x.clone(), r.clone()], -1).unwrap()),
        ("transpose", x.transpose(None).unwrap()),
        ("triu", x.triu(1).unwrap()),
        ("tril", r.tril(-2).unwrap()),
        ("mask sum", x.mask(&m).unwrap().sum(None).unwrap()),
        (
            "mask * 2",
            x.mask(&m).unwrap().apply(BinaryOp::Mul, 2.0).unwrap(),
        ),
        ("rechunk", x.rechunk([5, 7].into()).unwrap()),
        (
            "rechunk sizes",
            r.rechunk(Chunks::Sizes(vec![vec![1, 5], vec![9, 1]]))
                .unwrap(),
        ),
        ("reshape", x.reshape(&[10, 6]).unwrap()),
        ("cumsum 1", x.scan(ScanOp::CumSum, Some(1)).unwrap()),
        ("cumprod int", ints.scan(ScanOp::CumProd, Some(0)).unwrap()),
        ("cumsum all", ints.scan(ScanOp::CumSum, None).unwrap()),
        (
            "argmax",
            r.reduce(ReduceOp::ArgMax, Some(&[0]), false).unwrap(),
        ),
        ("topk", r.topk(3, 1).unwrap()),
        ("argtopk", r.argtopk(-2, 0).unwrap()),
        (
            "max keepdims",
            x.reduce(ReduceOp::Max, Some(&[-1]), true).unwrap(),
        ),
        ("int sum", ints.sum(None).unwrap()),
        ("linspace", linspace(-1.0, 1.0, 11, [4].into()).unwrap()),
        (
            "ones bool",
            ones(&[4, 4], DType::Bool, Chunks::Auto).unwrap(),
        ),
        (
            "astype i16",
            r.apply(BinaryOp::Mul, 100.0).unwrap().astype(DType::I16),
        ),
        (
            "0-d",
            x.sum(None).unwrap().apply(BinaryOp::Sub, -0.0).unwrap(),
        ),
        (
            "empty",
            x.index(&[I::slice(Some(3), Some(3), 1)])
                .unwrap()
                .sum(Some(0))
                .unwrap(),
        ),
        (
            "in memory bool",
            Array::from_block(
                Block::from_ne_bytes(DType::Bool, &[2, 3], &[1, 0, 1, 1, 0, 0]).unwrap(),
                [1, 2].into(),
            )
            .unwrap(),
        ),
    ]
}

#[test]
fn rebuilt_arrays_compute_the_same_bits() {
    for (name, a) in zoo() {
        let again = rebuilt(std::slice::from_ref(&a));
        let b = &again[0];
        assert_eq!(b.shape(), a.shape(), "{name}");
        assert_eq!(b.dtype(), a.dtype(), "{name}");
        assert_eq!(b.grid().sizes(), a.grid().sizes(), "{name}");
        let want = a.compute().unwrap();
        for threads in [1, 3] {
            let exec = Executor::builder().threads(threads).build().unwrap();
            let got = exec.compute(b).unwrap();
            assert_eq!(got.shape(), want.shape(), "{name}");
            assert_eq!(got.dtype(), want.dtype(), "{name}");
            assert_eq!(bits(&got), bits(&want), "{name}, {threads} threads");
        }
    }
}

#[test]
fn a_known_result_survives_the_round_trip() {
    // sum over axis 0 of arange(60).reshape(6, 10): 6 * j + 10 * (0+1+...+5) = 6j + 150
    let x = iota(&[6, 10], &[vec![4, 2], vec![3, 3, 4]]);
    let again = rebuilt(&[x.sum(Some(0)).unwrap()]);
    let want: Vec<f64> = (0..10).map(|j| f64::from(6 * j + 150)).collect();
    assert_eq!(again[0].compute().unwrap().to_f64_vec(), want);
}

#[test]
fn shared_nodes_stay_shared_and_roots_keep_their_order() {
    let x = iota(&[4, 4], &[vec![2, 2], vec![4]]);
    let y = x.apply(BinaryOp::Mul, 2.0).unwrap();
    let a = &y + &y;
    let b = y.sum(None).unwrap();
    let p = Program::of(&[a.clone(), b.clone(), a.clone()]).unwrap();
    // x, the scalar 2, y, a; y.sum: 5 nodes, each once
    assert_eq!(p.len(), 5);
    let again = p.build(&no_stored_inputs).unwrap();
    assert_eq!(again.len(), 3);
    assert!(again[0].same_node(&again[2]));
    let (Some(l), Some(r)) = (
        again[0].inputs().first().copied(),
        again[0].inputs().get(1).copied(),
    ) else {
        panic!("a binary node");
    };
    assert!(l.same_node(r), "y + y reads one node twice");
    assert_eq!(again[1].compute().unwrap().to_f64_vec(), vec![240.0]);
}

#[test]
fn a_deep_expression_is_described_without_recursion() {
    let mut x = iota(&[8], &[vec![4, 4]]);
    for _ in 0..5000 {
        x = x.apply(BinaryOp::Add, 1.0).unwrap();
    }
    let again = rebuilt(std::slice::from_ref(&x));
    assert_eq!(
        again[0].compute().unwrap().to_f64_vec(),
        (0..8).map(|v| f64::from(v) + 5000.0).collect::<Vec<_>>()
    );
}

#[test]
fn what_is_not_data_is_refused_by_name() {
    let x = iota(&[4], &[vec![2, 2]]);
    let f: Arc<ndstream_engine::array::BlockFn> = Arc::new(|b: &[Block]| Ok(b[0].clone()));
    let y = map_blocks(&[x], DType::F64, "double_it", f).unwrap();
    let e = Program::of(&[y.apply(BinaryOp::Add, 1.0).unwrap()]).unwrap_err();
    assert!(e.to_string().contains("map_blocks(double_it)"), "{e}");
}

#[test]
fn stored_inputs_are_opened_by_locator_and_checked() {
    // A stored input stands for itself: a source with a locator.
    let x = Array::from_source(crate::common::Counting::located(12, 5, "test://twelve"));
    let p = Program::of(&[x.apply(BinaryOp::Mul, 3.0).unwrap()]).unwrap();
    assert!(p.to_json().contains("test://twelve"));
    let opened = std::sync::Mutex::new(Vec::new());
    let again = p
        .build(&|l: &str| {
            opened.lock().unwrap().push(l.to_string());
            let s: Arc<dyn ChunkSource> = crate::common::Counting::located(12, 5, l);
            Ok(s)
        })
        .unwrap();
    assert_eq!(*opened.lock().unwrap(), vec!["test://twelve".to_string()]);
    assert_eq!(
        again[0].compute().unwrap().to_f64_vec(),
        (0..12).map(|v| f64::from(v) * 3.0).collect::<Vec<_>>()
    );
    // the same locator with other chunks: the input changed
    let e = p
        .build(&|l: &str| {
            let s: Arc<dyn ChunkSource> = crate::common::Counting::located(12, 4, l);
            Ok(s)
        })
        .unwrap_err();
    assert!(e.to_string().contains("input changed"), "{e}");
    // no opener for it: the opener's own error
    let e = p.build(&no_stored_inputs).unwrap_err();
    assert!(e.to_string().contains("test://twelve"), "{e}");
}

#[test]
fn damaged_programs_are_errors() {
    let x = iota(&[6, 10], &[vec![4, 2], vec![3, 3, 4]]);
    let good = Program::of(&[x.sum(Some(0)).unwrap()]).unwrap().to_json();
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("\"version\":1", "\"version\":99"),
            "version 99",
        ),
        ("{}".to_string(), "not an ndstream program"),
        ("[1, 2".to_string(), "not an ndstream program"),
        (
            good.replace("\"float64\"", "\"complex128\""),
            "unknown dtype",
        ),
        (good.replace("\"sum\"", "\"summ\""), "unknown reduction"),
        (good.replace("\"axes\":[0]", "\"axes\":[5]"), "axis"),
        (
            good.replace("\"x\":0", "\"x\":7"),
            "does not come before it",
        ),
        (good.replace("\"roots\":[1]", "\"roots\":[9]"), "root 9"),
        (good.replace("\"shape\":[10]", "\"shape\":[11]"), "chunks"),
    ];
    for (text, want) in cases {
        assert_ne!(
            text, good,
            "the damage for {want:?} must change the program"
        );
        let r = Program::from_json(&text).and_then(|p| p.build(&no_stored_inputs));
        let e = r.err().unwrap_or_else(|| panic!("{want:?} was accepted"));
        assert!(e.to_string().contains(want), "{want:?} not in: {e}");
    }
}

/// Every one-character change of small programs: never a panic; what is
/// still accepted computes without one.
#[test]
fn mutated_programs_never_panic() {
    let x = iota(&[6, 10], &[vec![4, 2], vec![3, 3, 4]]);
    let arrays = [
        x.index(&[I::slice(Some(5), None, -2), I::NewAxis, I::Index(3)])
            .unwrap()
            .sum(None)
            .unwrap(),
        x.scan(ScanOp::CumSum, Some(1))
            .unwrap()
            .rechunk([3, 3].into())
            .unwrap(),
        x.mask(&x.apply(BinaryOp::Lt, 20.0).unwrap())
            .unwrap()
            .max(None)
            .unwrap(),
        arange(0.0, 12.0, 1.0, DType::I64, [5].into())
            .unwrap()
            .reshape(&[3, 4])
            .unwrap()
            .triu(0)
            .unwrap(),
    ];
    let exec = Executor::builder()
        .memory(64 << 20)
        .threads(2)
        .build()
        .unwrap();
    let replacements = [
        "0",
        "1",
        "9",
        "-1",
        "\"\"",
        "null",
        "1e30",
        "18446744073709551615",
    ];
    let mut accepted = 0;
    for a in &arrays {
        let good = Program::of(std::slice::from_ref(a)).unwrap().to_json();
        // replace each number in turn, and delete each character in turn
        let mut variants = Vec::new();
        let bytes = good.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                let end = (i..bytes.len())
                    .find(|&j| !bytes[j].is_ascii_digit())
                    .unwrap_or(bytes.len());
                for r in replacements {
                    variants.push(format!("{}{r}{}", &good[..i], &good[end..]));
                }
                i = end;
            } else {
                i += 1;
            }
        }
        for k in (0..good.len()).step_by(3) {
            variants.push(format!("{}{}", &good[..k], &good[k + 1..]));
        }
        for v in variants {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                if let Ok(again) = Program::from_json(&v).and_then(|p| p.build(&no_stored_inputs)) {
                    accepted += 1;
                    for b in again {
                        let _ = exec.compute(&b);
                    }
                }
            }));
            assert!(outcome.is_ok(), "panicked on {v}");
        }
    }
    assert!(accepted > 0);
}
