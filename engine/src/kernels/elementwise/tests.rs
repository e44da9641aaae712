//! The elementwise kernels: dtype rules, values per kind, broadcasting,
//! in-place reuse (the op tables row by row against NumPy are in
//! `numpy_tests.rs`).

use super::dtype::{binary_dtypes, unary_dtype};
use super::*;
use crate::block::{Block, BlockElement};
use crate::dtype::DType;
use crate::error::Error;
use ndarray::{arr0, arr1, arr2, ArrayD, IxDyn};
use proptest::prelude::*;
use DType::*;

fn blk<T: BlockElement>(shape: &[usize], v: Vec<T>) -> Block {
    T::into_block(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

fn get<T: BlockElement + Clone>(b: &Block) -> ArrayD<T> {
    match T::as_array(b) {
        Some(a) => a.clone(),
        None => panic!("expected {}, got {}", T::DTYPE, b.dtype()),
    }
}

fn v1<T: BlockElement>(v: Vec<T>) -> Block {
    let n = v.len();
    blk(&[n], v)
}

type F1 = fn(f64) -> f64;
type F2 = fn(f64, f64) -> f64;

fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

// (op, a, b, result) from NumPy 2.4: `f(np.ones(2, a), np.ones(2, b)).dtype`.
const NUMPY_BINARY_DTYPES: &str = "
    Add i1 u1 i2 Add i4 f4 f8 Add u2 f4 f4 Add i8 u8 f8 Add f4 f4 f4 Add i4 i4 i4 Add u1 u1 u1
    Add ? i1 i1 Add ? f4 f4 Add u4 i2 i8 Add f4 f8 f8 Add ? ? b1 Add i2 u2 i4 Add u1 f4 f4
    Sub i1 u1 i2 Sub i4 f4 f8 Sub ? ? ERR Sub u4 i2 i8 Mul ? ? b1 Mul u2 f4 f4
    Div i1 u1 f8 Div i4 f4 f8 Div u2 f4 f4 Div i8 u8 f8 Div f4 f4 f4 Div i4 i4 f8 Div u1 u1 f8
    Div ? i1 f8 Div ? f4 f4 Div u4 i2 f8 Div f4 f8 f8 Div ? ? f8 Div i2 u2 f8 Div u1 f4 f4
    FloorDiv i1 u1 i2 FloorDiv i4 f4 f8 FloorDiv f4 f4 f4 FloorDiv ? ? i1 FloorDiv u4 i2 i8
    Rem i8 u8 f8 Rem ? i1 i1 Rem ? ? i1 Rem u1 f4 f4 Pow i4 i4 i4 Pow ? ? i1 Pow u2 f4 f4
    Maximum i1 u1 i2 Maximum ? ? b1 Maximum i4 f4 f8 Maximum ? f4 f4
    Lt i1 u1 b1 Lt i4 f4 b1 Lt ? ? b1 Lt i8 u8 b1
    And i1 u1 i2 And i4 f4 ERR And u2 f4 ERR And i8 u8 ERR And f4 f4 ERR And i4 i4 i4 And ? i1 i1
    And ? ? b1 And u4 i2 i8 Xor ? f4 ERR Xor ? ? b1 Xor i2 u2 i4 Xor u1 f4 ERR";

fn parse_op(s: &str) -> BinaryOp {
    match s {
        "Add" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        "FloorDiv" => BinaryOp::FloorDiv,
        "Rem" => BinaryOp::Rem,
        "Pow" => BinaryOp::Pow,
        "Maximum" => BinaryOp::Maximum,
        "Lt" => BinaryOp::Lt,
        "And" => BinaryOp::And,
        "Xor" => BinaryOp::Xor,
        other => panic!("{other}"),
    }
}

#[test]
fn binary_result_dtypes_match_numpy() {
    let toks: Vec<&str> = NUMPY_BINARY_DTYPES.split_whitespace().collect();
    assert_eq!(toks.len() % 4, 0);
    for c in toks.chunks(4) {
        let (op, a, b) = (
            parse_op(c[0]),
            c[1].parse::<DType>().unwrap(),
            c[2].parse::<DType>().unwrap(),
        );
        let got = binary_dtypes(op, a, b);
        let got_r = binary_dtypes(op, b, a);
        // Documented deviation: arithmetic on two bools runs on int8.
        let want = match (op, a, b) {
            (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul, Bool, Bool) => "i1",
            _ => c[3],
        };
        if want == "ERR" {
            assert!(
                matches!(got, Err(Error::UnsupportedDType { .. })),
                "{c:?}: {got:?}"
            );
            assert!(got_r.is_err(), "{c:?} reversed");
        } else {
            let want: DType = want.parse().unwrap();
            assert_eq!(got.unwrap().1, want, "{c:?}");
            assert_eq!(got_r.unwrap().1, want, "{c:?} reversed");
        }
    }
}

#[test]
fn binary_operand_dtypes() {
    let cases = [
        (BinaryOp::Lt, I32, F32, (F64, Bool)),
        (BinaryOp::Eq, Bool, Bool, (Bool, Bool)),
        (BinaryOp::Ge, U8, I8, (I16, Bool)),
        (BinaryOp::Div, I8, I8, (F64, F64)),
        (BinaryOp::Div, F32, F32, (F32, F32)),
        (BinaryOp::Div, U16, F32, (F32, F32)),
        (BinaryOp::Add, Bool, Bool, (I8, I8)),
        (BinaryOp::Pow, I64, I64, (I64, I64)),
        (BinaryOp::Or, Bool, U8, (U8, U8)),
        (BinaryOp::Minimum, Bool, Bool, (Bool, Bool)),
    ];
    for (op, a, b, want) in cases {
        assert_eq!(binary_dtypes(op, a, b).unwrap(), want, "{op:?} {a} {b}");
        // Idempotent: operands already cast give the same dtypes.
        assert_eq!(
            binary_dtypes(op, want.0, want.0).unwrap(),
            want,
            "{op:?} on the operand dtype"
        );
    }
    match binary_dtypes(BinaryOp::And, I32, F32) {
        Err(Error::UnsupportedDType { op, dtype }) => {
            assert_eq!((op, dtype), ("bitwise_and", F32))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unary_dtypes() {
    // NumPy gives float16 for bool/int8/uint8; we have no f16 and use f32.
    let float_of = [
        (Bool, F32),
        (I8, F32),
        (U8, F32),
        (I16, F32),
        (U16, F32),
        (I32, F64),
        (U32, F64),
        (I64, F64),
        (U64, F64),
        (F32, F32),
        (F64, F64),
    ];
    for (d, want) in float_of {
        // Which ops are float-valued is checked against NumPy in
        // `numpy_tests::table_names_and_aliases`.
        for &op in UnaryOp::ALL.iter().filter(|o| o.is_float_valued()) {
            assert_eq!(unary_dtype(op, d).unwrap(), want, "{op:?} {d}");
        }
        assert_eq!(unary_dtype(UnaryOp::IsNan, d).unwrap(), Bool);
        assert_eq!(unary_dtype(UnaryOp::IsFinite, d).unwrap(), Bool);
        for op in [UnaryOp::Abs, UnaryOp::Floor, UnaryOp::Ceil] {
            assert_eq!(unary_dtype(op, d).unwrap(), d, "{op:?} {d}");
        }
    }
    assert_eq!(unary_dtype(UnaryOp::Square, Bool).unwrap(), I8);
    assert_eq!(unary_dtype(UnaryOp::Square, U16).unwrap(), U16);
    assert_eq!(unary_dtype(UnaryOp::Neg, I8).unwrap(), I8);
    assert_eq!(unary_dtype(UnaryOp::Not, Bool).unwrap(), Bool);
    assert_eq!(unary_dtype(UnaryOp::Not, U32).unwrap(), U32);
    assert!(matches!(
        unary_dtype(UnaryOp::Neg, Bool),
        Err(Error::UnsupportedDType {
            op: "negative",
            dtype: Bool
        })
    ));
    assert!(matches!(
        unary_dtype(UnaryOp::Not, F64),
        Err(Error::UnsupportedDType {
            op: "invert",
            dtype: F64
        })
    ));
    assert!(unary(UnaryOp::Not, &v1(vec![1.0f32])).is_err());
    assert!(unary(UnaryOp::Neg, &v1(vec![true])).is_err());
}

#[test]
fn unary_float_values() {
    let x = vec![
        0.3f64,
        1.7,
        -2.5,
        4.0,
        0.0,
        -0.0,
        1e-12,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        100.0,
    ];
    let ops: Vec<(UnaryOp, F1)> = vec![
        (UnaryOp::Neg, |v| -v),
        (UnaryOp::Abs, f64::abs),
        (UnaryOp::Sqrt, f64::sqrt),
        (UnaryOp::Exp, f64::exp),
        (UnaryOp::Log, f64::ln),
        (UnaryOp::Log1p, f64::ln_1p),
        (UnaryOp::Sin, f64::sin),
        (UnaryOp::Cos, f64::cos),
        (UnaryOp::Tanh, f64::tanh),
        (UnaryOp::Square, |v| v * v),
        (UnaryOp::Floor, f64::floor),
        (UnaryOp::Ceil, f64::ceil),
    ];
    let xb = blk(&[11], x.clone());
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let xb32 = blk(&[11], x32.clone());
    for (op, f) in ops {
        let got = get::<f64>(&unary(op, &xb).unwrap());
        for (g, &v) in got.iter().zip(&x) {
            assert!(same_f64(*g, f(v)), "{op:?}({v}) = {g}");
        }
        let got32 = get::<f32>(&unary(op, &xb32).unwrap());
        for (g, &v) in got32.iter().zip(&x32) {
            let want = f(v as f64);
            let ok = same_f64(*g as f64, want as f32 as f64)
                || ((*g as f64) - want).abs() <= 2e-7 * want.abs().max(1e-30);
            assert!(ok, "f32 {op:?}({v}) = {g}, want {want}");
        }
    }
    let nan = get::<bool>(&unary(UnaryOp::IsNan, &xb).unwrap());
    let fin = get::<bool>(&unary(UnaryOp::IsFinite, &xb32).unwrap());
    for i in 0..x.len() {
        assert_eq!(nan[i], x[i].is_nan());
        assert_eq!(fin[i], x[i].is_finite());
    }
    // 2-d shape kept.
    let m = Block::from(arr2(&[[1.0f64, 4.0], [9.0, 16.0]]).into_dyn());
    assert_eq!(
        unary(UnaryOp::Sqrt, &m).unwrap(),
        Block::from(arr2(&[[1.0f64, 2.0], [3.0, 4.0]]).into_dyn())
    );
}

#[test]
fn unary_integer_and_bool_values() {
    let i8s = v1(vec![-128i8, -1, 0, 5, 127]);
    assert_eq!(
        get::<i8>(&unary(UnaryOp::Neg, &i8s).unwrap()),
        arr1(&[-128i8, 1, 0, -5, -127]).into_dyn()
    );
    assert_eq!(
        get::<i8>(&unary(UnaryOp::Abs, &i8s).unwrap()),
        arr1(&[-128i8, 1, 0, 5, 127]).into_dyn()
    );
    assert_eq!(
        get::<i8>(&unary(UnaryOp::Not, &i8s).unwrap()),
        arr1(&[127i8, 0, -1, -6, -128]).into_dyn()
    );
    assert_eq!(
        get::<i8>(&unary(UnaryOp::Square, &i8s).unwrap()),
        arr1(&[0i8, 1, 0, 25, 1]).into_dyn()
    );
    assert_eq!(
        get::<i8>(&unary(UnaryOp::Floor, &i8s).unwrap()),
        arr1(&[-128i8, -1, 0, 5, 127]).into_dyn()
    );
    let u8s = v1(vec![0u8, 1, 255]);
    assert_eq!(
        get::<u8>(&unary(UnaryOp::Neg, &u8s).unwrap()),
        arr1(&[0u8, 255, 1]).into_dyn()
    );
    assert_eq!(
        get::<u8>(&unary(UnaryOp::Abs, &u8s).unwrap()),
        arr1(&[0u8, 1, 255]).into_dyn()
    );
    assert_eq!(
        get::<u8>(&unary(UnaryOp::Not, &u8s).unwrap()),
        arr1(&[255u8, 254, 0]).into_dyn()
    );
    assert_eq!(
        get::<u8>(&unary(UnaryOp::Ceil, &u8s).unwrap()),
        arr1(&[0u8, 1, 255]).into_dyn()
    );
    assert_eq!(
        get::<i16>(&unary(UnaryOp::Square, &v1(vec![300i16])).unwrap()),
        arr1(&[24464i16]).into_dyn()
    );
    assert_eq!(
        get::<f64>(&unary(UnaryOp::Sqrt, &v1(vec![4i32, 9])).unwrap()),
        arr1(&[2.0, 3.0]).into_dyn()
    );
    assert_eq!(
        get::<f32>(&unary(UnaryOp::Sqrt, &v1(vec![16u8])).unwrap()),
        arr1(&[4.0f32]).into_dyn()
    );
    assert_eq!(
        get::<f64>(&unary(UnaryOp::Exp, &v1(vec![0u64])).unwrap()),
        arr1(&[1.0]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&unary(UnaryOp::IsNan, &v1(vec![3i64])).unwrap()),
        arr1(&[false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&unary(UnaryOp::IsFinite, &v1(vec![3u16])).unwrap()),
        arr1(&[true]).into_dyn()
    );
    let bools = v1(vec![true, false]);
    assert_eq!(
        get::<bool>(&unary(UnaryOp::Not, &bools).unwrap()),
        arr1(&[false, true]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&unary(UnaryOp::Abs, &bools).unwrap()),
        arr1(&[true, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&unary(UnaryOp::Floor, &bools).unwrap()),
        arr1(&[true, false]).into_dyn()
    );
    assert_eq!(
        get::<i8>(&unary(UnaryOp::Square, &bools).unwrap()),
        arr1(&[1i8, 0]).into_dyn()
    );
    assert_eq!(
        get::<f32>(&unary(UnaryOp::Cos, &bools).unwrap()),
        arr1(&[1f32.cos(), 1.0]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&unary(UnaryOp::IsFinite, &bools).unwrap()),
        arr1(&[true, true]).into_dyn()
    );
}

#[test]
fn binary_float_values() {
    let a = vec![1.5f64, -2.0, 0.0, 7.25, -0.5, 3.0];
    let b = vec![0.5f64, 4.0, -3.0, 7.25, 2.0, -1.5];
    let ops: Vec<(BinaryOp, F2)> = vec![
        (BinaryOp::Add, |p, q| p + q),
        (BinaryOp::Sub, |p, q| p - q),
        (BinaryOp::Mul, |p, q| p * q),
        (BinaryOp::Div, |p, q| p / q),
        (BinaryOp::FloorDiv, |p, q| (p / q).floor()),
        (BinaryOp::Rem, |p, q| p - (p / q).floor() * q),
        (BinaryOp::Maximum, f64::max),
        (BinaryOp::Minimum, f64::min),
        (BinaryOp::Eq, |p, q| (p == q) as u8 as f64),
        (BinaryOp::Ne, |p, q| (p != q) as u8 as f64),
        (BinaryOp::Lt, |p, q| (p < q) as u8 as f64),
        (BinaryOp::Le, |p, q| (p <= q) as u8 as f64),
        (BinaryOp::Gt, |p, q| (p > q) as u8 as f64),
        (BinaryOp::Ge, |p, q| (p >= q) as u8 as f64),
    ];
    for dt in [F64, F32] {
        let (ab, bb) = (
            blk(&[2, 3], a.clone()).astype(dt),
            blk(&[2, 3], b.clone()).astype(dt),
        );
        for &(op, f) in &ops {
            let got = binary(op, &ab, &bb).unwrap();
            assert_eq!(got.dtype(), binary_dtypes(op, dt, dt).unwrap().1, "{op:?}");
            assert_eq!(got.shape(), &[2, 3]);
            let want: Vec<f64> = a.iter().zip(&b).map(|(&p, &q)| f(p, q)).collect();
            let want = blk(&[2, 3], want).astype(got.dtype()).to_f64_vec();
            assert_eq!(got.to_f64_vec(), want, "{op:?} {dt}");
        }
    }
}

#[test]
fn integer_arithmetic_wraps() {
    let add = binary(
        BinaryOp::Add,
        &v1(vec![127i8, -128, 5]),
        &v1(vec![1i8, -1, 6]),
    )
    .unwrap();
    assert_eq!(get::<i8>(&add), arr1(&[-128i8, 127, 11]).into_dyn());
    let sub = binary(BinaryOp::Sub, &v1(vec![0u16, 5]), &v1(vec![1u16, 2])).unwrap();
    assert_eq!(get::<u16>(&sub), arr1(&[65535u16, 3]).into_dyn());
    let mul = binary(BinaryOp::Mul, &v1(vec![i64::MAX, 3]), &v1(vec![2i64, -4])).unwrap();
    assert_eq!(get::<i64>(&mul), arr1(&[-2i64, -12]).into_dyn());
    let mul = binary(BinaryOp::Mul, &v1(vec![200u8]), &v1(vec![2u8])).unwrap();
    assert_eq!(get::<u8>(&mul), arr1(&[144u8]).into_dyn());
    // Comparisons and max/min in the native type (u64 above 2^53).
    let (x, y) = (v1(vec![u64::MAX, 1, 7]), v1(vec![u64::MAX - 1, 2, 7]));
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Gt, &x, &y).unwrap()),
        arr1(&[true, false, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Ne, &x, &y).unwrap()),
        arr1(&[true, true, false]).into_dyn()
    );
    assert_eq!(
        get::<u64>(&binary(BinaryOp::Minimum, &x, &y).unwrap()),
        arr1(&[u64::MAX - 1, 1, 7]).into_dyn()
    );
    assert_eq!(
        get::<u64>(&binary(BinaryOp::Maximum, &x, &y).unwrap()),
        arr1(&[u64::MAX, 2, 7]).into_dyn()
    );
    // Bitwise on integers, logical on bools.
    let (p, q) = (v1(vec![0b1100i16, -1]), v1(vec![0b1010i16, 6]));
    assert_eq!(
        get::<i16>(&binary(BinaryOp::And, &p, &q).unwrap()),
        arr1(&[0b1000i16, 6]).into_dyn()
    );
    assert_eq!(
        get::<i16>(&binary(BinaryOp::Or, &p, &q).unwrap()),
        arr1(&[0b1110i16, -1]).into_dyn()
    );
    assert_eq!(
        get::<i16>(&binary(BinaryOp::Xor, &p, &q).unwrap()),
        arr1(&[0b0110i16, -7]).into_dyn()
    );
    let (s, t) = (
        v1(vec![true, true, false, false]),
        v1(vec![true, false, true, false]),
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::And, &s, &t).unwrap()),
        arr1(&[true, false, false, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Or, &s, &t).unwrap()),
        arr1(&[true, true, true, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Xor, &s, &t).unwrap()),
        arr1(&[false, true, true, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Maximum, &s, &t).unwrap()),
        arr1(&[true, true, true, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Minimum, &s, &t).unwrap()),
        arr1(&[true, false, false, false]).into_dyn()
    );
    assert_eq!(
        get::<bool>(&binary(BinaryOp::Lt, &s, &t).unwrap()),
        arr1(&[false, false, true, false]).into_dyn()
    );
    // Bool arithmetic runs on int8 (documented deviation from NumPy).
    assert_eq!(
        get::<i8>(&binary(BinaryOp::Add, &s, &t).unwrap()),
        arr1(&[2i8, 1, 1, 0]).into_dyn()
    );
    assert_eq!(
        get::<i8>(&binary(BinaryOp::Sub, &s, &t).unwrap()),
        arr1(&[0i8, 1, -1, 0]).into_dyn()
    );
    // Mixed dtypes are cast to the operand dtype inside `binary`.
    let m = binary(BinaryOp::Add, &v1(vec![-1i8, 100]), &v1(vec![255u8, 200])).unwrap();
    assert_eq!(get::<i16>(&m), arr1(&[254i16, 300]).into_dyn());
    let d = binary(BinaryOp::Div, &v1(vec![7i32, -1]), &v1(vec![2i32, 0])).unwrap();
    assert_eq!(get::<f64>(&d), arr1(&[3.5, f64::NEG_INFINITY]).into_dyn());
    assert!(matches!(
        binary(BinaryOp::Xor, &v1(vec![1.0f64]), &v1(vec![1i8])),
        Err(Error::UnsupportedDType {
            op: "bitwise_xor",
            dtype: F64
        })
    ));
}

#[test]
fn integer_pow() {
    let base = v1(vec![2i64, 3, -2, 0, 1, -1, -1, 5, 0, 2]);
    let exp = v1(vec![10i64, 4, 3, 0, -5, -3, -4, -2, -1, 62]);
    let got = get::<i64>(&binary(BinaryOp::Pow, &base, &exp).unwrap());
    assert_eq!(
        got,
        arr1(&[1024i64, 81, -8, 1, 1, -1, 1, 0, 0, 1 << 62]).into_dyn()
    );
    let wrap =
        get::<i8>(&binary(BinaryOp::Pow, &v1(vec![2i8, -2, 3]), &v1(vec![7i8, 7, 5])).unwrap());
    assert_eq!(wrap, arr1(&[-128i8, -128, -13]).into_dyn()); // 243 wraps to -13
    let u = get::<u8>(&binary(BinaryOp::Pow, &v1(vec![3u8, 2, 0]), &v1(vec![6u8, 8, 0])).unwrap());
    assert_eq!(u, arr1(&[217u8, 0, 1]).into_dyn());
    let big =
        get::<u64>(&binary(BinaryOp::Pow, &v1(vec![2u64, 3]), &blk(&[], vec![64u64])).unwrap());
    assert_eq!(big, arr1(&[0u64, 3u64.wrapping_pow(64)]).into_dyn());
}

#[test]
fn float_pow_fast_paths_match_powf() {
    let x: Vec<f64> = vec![0.3, 1.7, 2.5, 10.0, 0.0, 1e-3, 7.0, -1.5];
    let xb = v1(x.clone());
    for e in [
        2.0, 3.0, 0.5, -1.0, 1.0, 0.0, 5.0, -3.0, 16.0, 17.0, 2.5, -0.5,
    ] {
        for shape in [&[][..], &[1][..], &[1, 1][..]] {
            let eb = blk(shape, vec![e]);
            let got = binary(BinaryOp::Pow, &xb, &eb).unwrap();
            let want_shape: Vec<usize> = if shape.len() == 2 {
                vec![1, 8]
            } else {
                vec![8]
            };
            assert_eq!(got.shape(), &want_shape[..]);
            for (g, &v) in got.to_f64_vec().iter().zip(&x) {
                let w = v.powf(e);
                let ok = same_f64(*g, w) || (g - w).abs() <= 1e-14 * w.abs();
                assert!(ok, "{v} ** {e} = {g}, powf gives {w}");
            }
        }
        let got32 = binary(
            BinaryOp::Pow,
            &xb.clone().astype(F32),
            &blk(&[], vec![e as f32]),
        )
        .unwrap();
        assert_eq!(got32.dtype(), F32);
        for (g, &v) in got32.to_f64_vec().iter().zip(&x) {
            let w = (v as f32).powf(e as f32) as f64;
            assert!(
                same_f64(*g, w) || (g - w).abs() <= 1e-6 * w.abs(),
                "f32 {v} ** {e} = {g}, want {w}"
            );
        }
    }
    // NaN ** 0 is 1, as powf says; an elementwise exponent uses powf.
    let n = binary(BinaryOp::Pow, &v1(vec![f64::NAN]), &blk(&[], vec![0.0])).unwrap();
    assert_eq!(n.to_f64_vec(), vec![1.0]);
    let e = v1(vec![2.0, 0.5, -1.0, 3.3]);
    let b = v1(vec![3.0, 4.0, 8.0, 1.1]);
    let got = binary(BinaryOp::Pow, &b, &e).unwrap().to_f64_vec();
    assert_eq!(got, vec![9.0, 2.0, 0.125, 1.1f64.powf(3.3)]);
    // Scalar base, array exponent.
    let got = binary(BinaryOp::Pow, &blk(&[], vec![2.0]), &e)
        .unwrap()
        .to_f64_vec();
    assert_eq!(got, vec![4.0, 2f64.sqrt(), 0.5, 2f64.powf(3.3)]);
}

#[test]
fn python_floor_division_and_modulo() {
    let fd = |a: i32, b: i32| {
        get::<i32>(&binary(BinaryOp::FloorDiv, &v1(vec![a]), &v1(vec![b])).unwrap())[[0]]
    };
    let md = |a: i32, b: i32| {
        get::<i32>(&binary(BinaryOp::Rem, &v1(vec![a]), &v1(vec![b])).unwrap())[[0]]
    };
    assert_eq!((fd(-7, 2), md(-7, 2)), (-4, 1));
    assert_eq!((fd(7, -2), md(7, -2)), (-4, -1));
    assert_eq!((fd(7, 0), md(7, 0)), (0, 0));
    let ff = |a: f64, b: f64| {
        binary(BinaryOp::FloorDiv, &v1(vec![a]), &v1(vec![b]))
            .unwrap()
            .to_f64_vec()[0]
    };
    let fm = |a: f64, b: f64| {
        binary(BinaryOp::Rem, &v1(vec![a]), &v1(vec![b]))
            .unwrap()
            .to_f64_vec()[0]
    };
    assert_eq!((ff(-7.5, 2.0), fm(-7.5, 2.0)), (-4.0, 0.5));
    let fm32 = binary(
        BinaryOp::Rem,
        &v1(vec![-7.5f32, 7.0]),
        &v1(vec![2.0f32, -2.0]),
    )
    .unwrap();
    assert_eq!(get::<f32>(&fm32), arr1(&[0.5f32, -1.0]).into_dyn());
    // Unsigned: plain division, zero divisor gives 0.
    let u = binary(BinaryOp::FloorDiv, &v1(vec![7u32, 9]), &v1(vec![2u32, 0])).unwrap();
    assert_eq!(get::<u32>(&u), arr1(&[3u32, 0]).into_dyn());
    let u = binary(BinaryOp::Rem, &v1(vec![7u8, 9]), &v1(vec![2u8, 0])).unwrap();
    assert_eq!(get::<u8>(&u), arr1(&[1u8, 0]).into_dyn());
}

#[test]
fn divmod_matches_numpy_tables() {
    let (a, b): (Vec<f64>, Vec<f64>) = FLOAT_DIVMOD.iter().map(|r| (r.0, r.1)).unzip();
    let (ab, bb) = (v1(a), v1(b));
    let q = binary(BinaryOp::FloorDiv, &ab, &bb).unwrap().to_f64_vec();
    let m = binary(BinaryOp::Rem, &ab, &bb).unwrap().to_f64_vec();
    for (i, r) in FLOAT_DIVMOD.iter().enumerate() {
        assert!(
            same_f64(q[i], r.2),
            "{} // {} = {}, NumPy {}",
            r.0,
            r.1,
            q[i],
            r.2
        );
        assert!(
            same_f64(m[i], r.3),
            "{} % {} = {}, NumPy {}",
            r.0,
            r.1,
            m[i],
            r.3
        );
    }
    let (a, b): (Vec<i32>, Vec<i32>) = INT_DIVMOD.iter().map(|r| (r.0, r.1)).unzip();
    let (ab, bb) = (v1(a), v1(b));
    let q = get::<i32>(&binary(BinaryOp::FloorDiv, &ab, &bb).unwrap());
    let m = get::<i32>(&binary(BinaryOp::Rem, &ab, &bb).unwrap());
    for (i, r) in INT_DIVMOD.iter().enumerate() {
        assert_eq!((q[[i]], m[[i]]), (r.2, r.3), "{} divmod {}", r.0, r.1);
    }
}

#[test]
fn nan_handling() {
    let nan = f64::NAN;
    let a = v1(vec![nan, 1.0, 2.0, nan, -0.0]);
    let b = v1(vec![1.0, nan, 3.0, nan, 0.0]);
    let mx = binary(BinaryOp::Maximum, &a, &b).unwrap().to_f64_vec();
    let mn = binary(BinaryOp::Minimum, &a, &b).unwrap().to_f64_vec();
    assert!(mx[0].is_nan() && mx[1].is_nan() && mx[3].is_nan());
    assert!(mn[0].is_nan() && mn[1].is_nan() && mn[3].is_nan());
    assert_eq!((mx[2], mn[2]), (3.0, 2.0));
    let eq = get::<bool>(&binary(BinaryOp::Eq, &a, &b).unwrap());
    let ne = get::<bool>(&binary(BinaryOp::Ne, &a, &b).unwrap());
    let lt = get::<bool>(&binary(BinaryOp::Lt, &a, &b).unwrap());
    assert_eq!(eq, arr1(&[false, false, false, false, true]).into_dyn());
    assert_eq!(ne, arr1(&[true, true, true, true, false]).into_dyn());
    assert_eq!(lt, arr1(&[false, false, true, false, false]).into_dyn());
    let s = binary(BinaryOp::Add, &a, &blk(&[], vec![1.0]))
        .unwrap()
        .to_f64_vec();
    assert!(s[0].is_nan() && s[3].is_nan());
}

fn arange(shape: &[usize], start: f64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n).map(|i| start + i as f64 * 0.5).collect(),
    )
    .unwrap()
}

#[test]
fn broadcasting_matches_ndarray() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[3, 1, 2], &[1, 4, 2]),
        (&[4], &[3, 1]),
        (&[2, 3], &[3]),
        (&[], &[2, 3]),
        (&[2, 3], &[]),
        (&[], &[]),
        (&[1, 1, 1], &[5]),
        (&[5, 1], &[1]),
        (&[6, 1, 3], &[1, 6, 3]),
        (&[2, 1, 4, 1], &[3, 1, 5]),
        (&[1, 3], &[2, 0, 1]),
        (&[7, 5], &[7, 5]),
        (&[1, 1], &[1]),
    ];
    for &(sa, sb) in shapes {
        let (a, b) = (arange(sa, 1.0), arange(sb, -3.0));
        let (ba, bb) = (Block::from(a.clone()), Block::from(b.clone()));
        let got = binary(BinaryOp::Sub, &ba, &bb).unwrap();
        assert_eq!(got, Block::from(&a - &b), "{sa:?} - {sb:?}");
        let got = binary(BinaryOp::Lt, &ba, &bb).unwrap();
        let want = ndarray::Zip::from(&a.broadcast(got.shape()).unwrap())
            .and(&b.broadcast(got.shape()).unwrap())
            .map_collect(|&p, &q| p < q);
        assert_eq!(got, Block::from(want), "{sa:?} < {sb:?}");
    }
    let err = binary(
        BinaryOp::Add,
        &Block::from(arange(&[3], 0.0)),
        &Block::from(arange(&[2, 4], 0.0)),
    );
    match err {
        Err(Error::Shape { op, left, right }) => {
            assert_eq!((op, left, right), ("add", vec![3u64], vec![2u64, 4]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pairwise_difference_and_non_standard_inputs() {
    // x[:, None, :] - x[None, :, :], as the Lennard-Jones example builds it.
    let x = arange(&[5, 3], 0.25);
    let xa = x.clone().into_shape_with_order(IxDyn(&[5, 1, 3])).unwrap();
    let xb = x.clone().into_shape_with_order(IxDyn(&[1, 5, 3])).unwrap();
    let got = get::<f64>(&binary(BinaryOp::Sub, &Block::from(xa), &Block::from(xb)).unwrap());
    for i in 0..5 {
        for j in 0..5 {
            for k in 0..3 {
                assert_eq!(got[[i, j, k]], x[[i, k]] - x[[j, k]]);
            }
        }
    }
    assert!(got.is_standard_layout());
    // Transposed (Fortran-order) inputs give standard-layout outputs.
    let t = arange(&[4, 3], 0.0).reversed_axes();
    let u = arange(&[3, 4], 10.0);
    let got = get::<f64>(
        &binary(
            BinaryOp::Mul,
            &Block::from(t.clone()),
            &Block::from(u.clone()),
        )
        .unwrap(),
    );
    assert!(got.is_standard_layout());
    assert_eq!(got, &t * &u);
    let got =
        get::<f64>(&binary(BinaryOp::Add, &Block::from(t.clone()), &blk(&[], vec![1.0])).unwrap());
    assert!(got.is_standard_layout());
    assert_eq!(got, &t + 1.0);
    let got = get::<f64>(&unary(UnaryOp::Neg, &Block::from(t.clone())).unwrap());
    assert!(got.is_standard_layout());
    assert_eq!(got, -&t);
    let row = arange(&[4], 0.0);
    let got = get::<f64>(
        &binary(
            BinaryOp::Sub,
            &Block::from(t.clone()),
            &Block::from(row.clone()),
        )
        .unwrap(),
    );
    assert_eq!(got, &t - &row);
}

#[test]
fn where_broadcasts_three_ways() {
    let c = arr2(&[[true], [false], [true]]).into_dyn();
    let a = arange(&[1, 4], 1.0);
    let b = arr0(-1.0f64).into_dyn();
    let got = get::<f64>(
        &where_(
            &Block::from(c.clone()),
            &Block::from(a.clone()),
            &Block::from(b.clone()),
        )
        .unwrap(),
    );
    assert_eq!(got.shape(), &[3, 4]);
    for i in 0..3 {
        for j in 0..4 {
            assert_eq!(got[[i, j]], if c[[i, 0]] { a[[0, j]] } else { -1.0 });
        }
    }
    // Equal shapes, mixed dtypes promote.
    let c = v1(vec![true, false, false]);
    let got = where_(&c, &v1(vec![1i32, 2, 3]), &v1(vec![0.5f32, 1.5, 2.5])).unwrap();
    assert_eq!(get::<f64>(&got), arr1(&[1.0, 1.5, 2.5]).into_dyn());
    // Broadcast along the last axis with a contiguous condition.
    let c = Block::from(arr2(&[[true, false], [false, true]]).into_dyn());
    let got = where_(&c, &v1(vec![1u8, 2]), &blk(&[2, 1], vec![7u8, 8])).unwrap();
    assert_eq!(get::<u8>(&got), arr2(&[[1u8, 7], [8, 2]]).into_dyn());
    assert!(matches!(
        where_(&v1(vec![1i8]), &v1(vec![1.0]), &v1(vec![2.0])),
        Err(Error::UnsupportedDType { dtype: I8, .. })
    ));
    assert!(matches!(
        where_(&v1(vec![true, false]), &v1(vec![1.0; 3]), &v1(vec![2.0])),
        Err(Error::Shape { .. })
    ));
    let empty = where_(
        &blk::<bool>(&[0, 2], vec![]),
        &v1(vec![1.0, 2.0]),
        &blk(&[], vec![0.0]),
    )
    .unwrap();
    assert_eq!(empty.shape(), &[0, 2]);
}

#[test]
fn clip_casts_bounds_and_propagates_nan() {
    let nan = f64::NAN;
    let x = v1(vec![-3.0, 0.5, 9.0, nan]);
    let got = clip(&x, Some(-1.0), Some(2.0)).unwrap().to_f64_vec();
    assert_eq!(&got[..3], &[-1.0, 0.5, 2.0]);
    assert!(got[3].is_nan());
    assert_eq!(
        clip(&x, Some(0.0), None).unwrap().to_f64_vec()[..3],
        [0.0, 0.5, 9.0]
    );
    assert_eq!(
        clip(&x, None, Some(1.0)).unwrap().to_f64_vec()[..3],
        [-3.0, 0.5, 1.0]
    );
    assert_eq!(
        clip(&x, None, None).unwrap().to_f64_vec()[..3],
        [-3.0, 0.5, 9.0]
    );
    assert!(clip(&x, Some(nan), None)
        .unwrap()
        .to_f64_vec()
        .iter()
        .all(|v| v.is_nan()));
    // lo > hi gives hi, as minimum(maximum(x, lo), hi) does.
    assert_eq!(
        clip(&x, Some(5.0), Some(1.0)).unwrap().to_f64_vec()[..3],
        [1.0, 1.0, 1.0]
    );
    let i = v1(vec![-100i8, 0, 1, 2, 100]);
    let got = get::<i8>(&clip(&i, Some(0.9), Some(1.5)).unwrap());
    assert_eq!(got, arr1(&[0i8, 0, 1, 1, 1]).into_dyn());
    let got = get::<i8>(&clip(&i, Some(-1000.0), Some(1000.0)).unwrap());
    assert_eq!(got, arr1(&[-100i8, 0, 1, 2, 100]).into_dyn());
    let f = clip(&v1(vec![1.5f32, -7.0]), Some(-2.0), Some(1.0)).unwrap();
    assert_eq!(get::<f32>(&f), arr1(&[1.0f32, -2.0]).into_dyn());
}

/// Same dtype, shape and bits (NaN equals NaN).
fn same_block(a: &Block, b: &Block) -> bool {
    a.dtype() == b.dtype() && a.shape() == b.shape() && a.to_ne_bytes() == b.to_ne_bytes()
}

fn data_ptr(b: &Block) -> usize {
    crate::with_block!(b, a, T => a.as_ptr() as usize)
}

#[test]
fn owned_variants_match_and_reuse_buffers() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[3, 4]),
        (&[3, 4], &[4]),
        (&[3, 4], &[3, 1]),
        (&[4], &[3, 1]),
        (&[1, 4], &[3, 1]),
        (&[], &[2, 3]),
        (&[3], &[1, 1]),
        (&[1, 1], &[3]),
        (&[], &[]),
        (&[6, 1, 3], &[1, 6, 3]),
        (&[0, 3], &[3]),
    ];
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Rem,
        BinaryOp::Maximum,
        BinaryOp::Lt,
        BinaryOp::Ge,
    ];
    for &(sa, sb) in shapes {
        for dt in [F64, F32, I32, U8] {
            let a = Block::from(arange(sa, 1.0)).astype(dt);
            let b = Block::from(arange(sb, 0.5)).astype(dt);
            for op in ops {
                let want = binary(op, &a, &b).unwrap();
                let got = binary_owned(op, a.clone(), b.clone()).unwrap();
                assert!(
                    same_block(&got, &want),
                    "{op:?} {dt} {sa:?} {sb:?}: {got:?} vs {want:?}"
                );
                let got_ptr = data_ptr(&got);
                let got = got.into_standard_layout();
                assert_eq!(data_ptr(&got), got_ptr, "owned result is standard layout");
            }
        }
    }
    // The buffer of `a` (full shape) or of `b` is reused.
    let a = Block::from(arange(&[3, 4], 1.0));
    let pa = data_ptr(&a);
    let r = binary_owned(BinaryOp::Sub, a, Block::from(arange(&[4], 0.0))).unwrap();
    assert_eq!(data_ptr(&r), pa);
    let b = Block::from(arange(&[3, 4], 1.0));
    let pb = data_ptr(&b);
    let r = binary_owned(BinaryOp::Mul, blk(&[], vec![4.0]), b).unwrap();
    assert_eq!(data_ptr(&r), pb);
    assert_eq!(
        r,
        binary(
            BinaryOp::Mul,
            &blk(&[], vec![4.0]),
            &Block::from(arange(&[3, 4], 1.0))
        )
        .unwrap()
    );
    let x = Block::from(arange(&[5], 0.0));
    let px = data_ptr(&x);
    let r = binary_owned(BinaryOp::Pow, x, blk(&[], vec![3.0])).unwrap();
    assert_eq!(data_ptr(&r), px);
    // A transposed owned input is not overwritten, and the result is right.
    let t = arange(&[4, 3], 0.0).reversed_axes();
    let got = binary_owned(
        BinaryOp::Add,
        Block::from(t.clone()),
        Block::from(t.clone()),
    )
    .unwrap();
    assert_eq!(get::<f64>(&got), &t + &t);
    assert!(get::<f64>(&got).is_standard_layout());
    // Unary and clip.
    for op in [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::IsNan,
        UnaryOp::Floor,
        UnaryOp::Not,
    ] {
        for dt in [F64, I16, Bool] {
            let x = Block::from(arange(&[2, 3], -1.0)).astype(dt);
            match unary(op, &x) {
                Ok(want) => assert!(
                    same_block(&unary_owned(op, x).unwrap(), &want),
                    "{op:?} {dt}"
                ),
                Err(_) => assert!(unary_owned(op, x).is_err()),
            }
        }
    }
    let x = Block::from(arange(&[7], -1.0));
    let px = data_ptr(&x);
    let r = unary_owned(UnaryOp::Exp, x).unwrap();
    assert_eq!(data_ptr(&r), px);
    assert_eq!(
        r,
        unary(UnaryOp::Exp, &Block::from(arange(&[7], -1.0))).unwrap()
    );
    let x = Block::from(arange(&[7], -1.0));
    let want = clip(&x, Some(0.0), Some(1.5)).unwrap();
    assert_eq!(clip_owned(x, Some(0.0), Some(1.5)).unwrap(), want);
    assert!(matches!(
        binary_owned(BinaryOp::Add, v1(vec![1.0; 2]), v1(vec![1.0; 3])),
        Err(Error::Shape { .. })
    ));
}

/// Two shapes that broadcast together: a common shape with axes
/// independently set to 1 in either input and leading axes dropped.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        proptest::collection::vec((1usize..5, 0u8..3), 0..5),
        0usize..3,
        0usize..3,
    )
        .prop_map(|(axes, da, db)| {
            let a: Vec<usize> = axes
                .iter()
                .map(|&(n, m)| if m == 1 { 1 } else { n })
                .collect();
            let b: Vec<usize> = axes
                .iter()
                .map(|&(n, m)| if m == 2 { 1 } else { n })
                .collect();
            let (da, db) = (da.min(a.len()), db.min(b.len()));
            (a[da..].to_vec(), b[db..].to_vec())
        })
}

proptest! {
    #[test]
    fn add_mul_sub_match_ndarray((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 200.0 - 100.0
        };
        let a = ArrayD::from_shape_simple_fn(IxDyn(&sa), &mut next);
        let b = ArrayD::from_shape_simple_fn(IxDyn(&sb), &mut next);
        let (ba, bb) = (Block::from(a.clone()), Block::from(b.clone()));
        prop_assert_eq!(binary(BinaryOp::Add, &ba, &bb).unwrap(), Block::from(&a + &b));
        prop_assert_eq!(binary(BinaryOp::Mul, &ba, &bb).unwrap(), Block::from(&a * &b));
        prop_assert_eq!(binary(BinaryOp::Sub, &ba, &bb).unwrap(), Block::from(&a - &b));
        prop_assert_eq!(binary(BinaryOp::Sub, &bb, &ba).unwrap(), Block::from(&b - &a));
        prop_assert_eq!(binary_owned(BinaryOp::Sub, ba.clone(), bb.clone()).unwrap(), Block::from(&a - &b));
        prop_assert_eq!(binary_owned(BinaryOp::Mul, bb, ba).unwrap(), Block::from(&b * &a));
    }
}

const FLOAT_DIVMOD: &[(f64, f64, f64, f64)] = &[
    (-7.5, 2.0, -4.0, 0.5),
    (-7.5, -2.0, 3.0, -1.5),
    (-7.5, 0.1, -75.0, 4.163336342344337e-16),
    (-7.5, -0.0, f64::INFINITY, f64::NAN),
    (-7.5, 0.0, f64::NEG_INFINITY, f64::NAN),
    (-7.5, f64::INFINITY, -1.0, f64::INFINITY),
    (-7.5, 1e-300, -7.5e+300, 2.776101039702164e-301),
    (-7.5, 3.0, -3.0, 1.5),
    (-7.5, f64::NEG_INFINITY, 0.0, -7.5),
    (7.5, 2.0, 3.0, 1.5),
    (7.5, -2.0, -4.0, -0.5),
    (7.5, 0.1, 74.0, 0.09999999999999959),
    (7.5, -0.0, f64::NEG_INFINITY, f64::NAN),
    (7.5, 0.0, f64::INFINITY, f64::NAN),
    (7.5, f64::INFINITY, 0.0, 7.5),
    (7.5, 1e-300, 7.5e+300, 7.223898960297836e-301),
    (7.5, 3.0, 2.0, 1.5),
    (7.5, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
    (-7.0, 2.0, -4.0, 1.0),
    (-7.0, -2.0, 3.0, -1.0),
    (-7.0, 0.1, -70.0, 3.885780586188048e-16),
    (-7.0, -0.0, f64::INFINITY, f64::NAN),
    (-7.0, 0.0, f64::NEG_INFINITY, f64::NAN),
    (-7.0, f64::INFINITY, -1.0, f64::INFINITY),
    (-7.0, 1e-300, -7e+300, 7.25769430372202e-301),
    (-7.0, 3.0, -3.0, 2.0),
    (-7.0, f64::NEG_INFINITY, 0.0, -7.0),
    (7.0, 2.0, 3.0, 1.0),
    (7.0, -2.0, -4.0, -1.0),
    (7.0, 0.1, 69.0, 0.09999999999999962),
    (7.0, -0.0, f64::NEG_INFINITY, f64::NAN),
    (7.0, 0.0, f64::INFINITY, f64::NAN),
    (7.0, f64::INFINITY, 0.0, 7.0),
    (7.0, 1e-300, 7e+300, 2.7423056962779803e-301),
    (7.0, 3.0, 2.0, 1.0),
    (7.0, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
    (0.0, 2.0, 0.0, 0.0),
    (0.0, -2.0, -0.0, -0.0),
    (0.0, 0.1, 0.0, 0.0),
    (0.0, -0.0, f64::NAN, f64::NAN),
    (0.0, 0.0, f64::NAN, f64::NAN),
    (0.0, f64::INFINITY, 0.0, 0.0),
    (0.0, 1e-300, 0.0, 0.0),
    (0.0, 3.0, 0.0, 0.0),
    (0.0, f64::NEG_INFINITY, -0.0, -0.0),
    (-0.0, 2.0, -0.0, 0.0),
    (-0.0, -2.0, 0.0, -0.0),
    (-0.0, 0.1, -0.0, 0.0),
    (-0.0, -0.0, f64::NAN, f64::NAN),
    (-0.0, 0.0, f64::NAN, f64::NAN),
    (-0.0, f64::INFINITY, -0.0, 0.0),
    (-0.0, 1e-300, -0.0, 0.0),
    (-0.0, 3.0, -0.0, 0.0),
    (-0.0, f64::NEG_INFINITY, 0.0, -0.0),
    (1e+300, 2.0, 5e+299, 0.0),
    (1e+300, -2.0, -5e+299, -0.0),
    (1e+300, 0.1, 1e+301, 0.00011215964963492975),
    (1e+300, -0.0, f64::NEG_INFINITY, f64::NAN),
    (1e+300, 0.0, f64::INFINITY, f64::NAN),
    (1e+300, f64::INFINITY, 0.0, 1e+300),
    (1e+300, 1e-300, f64::INFINITY, 4.891554850853602e-301),
    (1e+300, 3.0, 3.3333333333333335e+299, 0.0),
    (1e+300, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
    (0.1, 2.0, 0.0, 0.1),
    (0.1, -2.0, -1.0, -1.9),
    (0.1, 0.1, 1.0, 0.0),
    (0.1, -0.0, f64::NEG_INFINITY, f64::NAN),
    (0.1, 0.0, f64::INFINITY, f64::NAN),
    (0.1, f64::INFINITY, 0.0, 0.1),
    (0.1, 1e-300, 1e+299, 1.353654169526866e-301),
    (0.1, 3.0, 0.0, 0.1),
    (0.1, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
    (-0.3, 2.0, -1.0, 1.7),
    (-0.3, -2.0, 0.0, -0.3),
    (-0.3, 0.1, -3.0, 2.7755575615628914e-17),
    (-0.3, -0.0, f64::INFINITY, f64::NAN),
    (-0.3, 0.0, f64::NEG_INFINITY, f64::NAN),
    (-0.3, f64::INFINITY, -1.0, f64::INFINITY),
    (
        -0.3,
        1e-300,
        -2.9999999999999998e+299,
        8.225715075033877e-301,
    ),
    (-0.3, 3.0, -1.0, 2.7),
    (-0.3, f64::NEG_INFINITY, 0.0, -0.3),
    (f64::INFINITY, 2.0, f64::NAN, f64::NAN),
    (f64::INFINITY, -2.0, f64::NAN, f64::NAN),
    (f64::INFINITY, 0.1, f64::NAN, f64::NAN),
    (f64::INFINITY, -0.0, f64::NEG_INFINITY, f64::NAN),
    (f64::INFINITY, 0.0, f64::INFINITY, f64::NAN),
    (f64::INFINITY, f64::INFINITY, f64::NAN, f64::NAN),
    (f64::INFINITY, 1e-300, f64::NAN, f64::NAN),
    (f64::INFINITY, 3.0, f64::NAN, f64::NAN),
    (f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::NAN),
    (f64::NAN, 2.0, f64::NAN, f64::NAN),
    (f64::NAN, -2.0, f64::NAN, f64::NAN),
    (f64::NAN, 0.1, f64::NAN, f64::NAN),
    (f64::NAN, -0.0, f64::NAN, f64::NAN),
    (f64::NAN, 0.0, f64::NAN, f64::NAN),
    (f64::NAN, f64::INFINITY, f64::NAN, f64::NAN),
    (f64::NAN, 1e-300, f64::NAN, f64::NAN),
    (f64::NAN, 3.0, f64::NAN, f64::NAN),
    (f64::NAN, f64::NEG_INFINITY, f64::NAN, f64::NAN),
    (5.0, 2.0, 2.0, 1.0),
    (5.0, -2.0, -3.0, -1.0),
    (5.0, 0.1, 49.0, 0.09999999999999973),
    (5.0, -0.0, f64::NEG_INFINITY, f64::NAN),
    (5.0, 0.0, f64::INFINITY, f64::NAN),
    (5.0, f64::INFINITY, 0.0, 5.0),
    (
        5.0,
        1e-300,
        4.9999999999999997e+300,
        4.8159326401985574e-301,
    ),
    (5.0, 3.0, 1.0, 2.0),
    (5.0, f64::NEG_INFINITY, -1.0, f64::NEG_INFINITY),
];
const INT_DIVMOD: &[(i32, i32, i32, i32)] = &[
    (-7, 2, -4, 1),
    (-7, -2, 3, -1),
    (-7, 0, 0, 0),
    (-7, -1, 7, 0),
    (-7, 3, -3, 2),
    (-7, -5, 1, -2),
    (7, 2, 3, 1),
    (7, -2, -4, -1),
    (7, 0, 0, 0),
    (7, -1, -7, 0),
    (7, 3, 2, 1),
    (7, -5, -2, -3),
    (0, 2, 0, 0),
    (0, -2, 0, 0),
    (0, 0, 0, 0),
    (0, -1, 0, 0),
    (0, 3, 0, 0),
    (0, -5, 0, 0),
    (-2147483648, 2, -1073741824, 0),
    (-2147483648, -2, 1073741824, 0),
    (-2147483648, 0, 0, 0),
    (-2147483648, -1, -2147483648, 0),
    (-2147483648, 3, -715827883, 1),
    (-2147483648, -5, 429496729, -3),
    (2147483647, 2, 1073741823, 1),
    (2147483647, -2, -1073741824, -1),
    (2147483647, 0, 0, 0),
    (2147483647, -1, -2147483647, 0),
    (2147483647, 3, 715827882, 1),
    (2147483647, -5, -429496730, -3),
    (-1, 2, -1, 1),
    (-1, -2, 0, -1),
    (-1, 0, 0, 0),
    (-1, -1, 1, 0),
    (-1, 3, -1, 2),
    (-1, -5, 0, -1),
    (13, 2, 6, 1),
    (13, -2, -7, -1),
    (13, 0, 0, 0),
    (13, -1, -13, 0),
    (13, 3, 4, 1),
    (13, -5, -3, -2),
];
