use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::*;
use crate::block::{Block, BlockElement};
use crate::dtype::DType;
use crate::kernels::elementwise::{binary, clip, unary};
use proptest::prelude::*;

/// A random chain: its ops, leaf shapes and output shape.
#[derive(Clone, Debug)]
struct Case {
    out: Vec<usize>,
    leaves: Vec<Vec<usize>>,
    chain: Chain,
    f32: bool,
    seed: u64,
}

/// The fusable unary ops other than `power` (from the op table).
fn unary_ops() -> Vec<UnaryOp> {
    UnaryOp::ALL
        .iter()
        .copied()
        .filter(|o| o.fusable())
        .collect()
}

/// The fusable binary ops other than `power`, which gets its constant
/// exponents below.
fn binary_ops() -> Vec<BinaryOp> {
    BinaryOp::ALL
        .iter()
        .copied()
        .filter(|&o| o.fusable() && o != BinaryOp::Pow)
        .collect()
}

const EXPONENTS: [f64; 9] = [2.0, 3.0, 0.5, -1.0, 1.0, 0.0, 4.0, -2.0, 1.7];

fn case() -> impl Strategy<Value = Case> {
    // Output shapes from one long axis (lanes over several strips) to
    // three short ones; leaves drop or shrink axes to broadcast.
    let out = prop_oneof![
        (1usize..1400).prop_map(|n| vec![n]),
        (1usize..12, 1usize..80).prop_map(|(a, b)| vec![a, b]),
        (1usize..6, 1usize..9, 1usize..40).prop_map(|(a, b, c)| vec![a, b, c]),
    ];
    (
        out,
        proptest::collection::vec(any::<u8>(), 1..4),
        proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 1..7),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(out, masks, ops, f32, seed)| {
            let (unary, binary) = (unary_ops(), binary_ops());
            let leaves: Vec<Vec<usize>> = masks
                .iter()
                .map(|&m| {
                    let mut s: Vec<usize> = out
                        .iter()
                        .enumerate()
                        .map(|(d, &n)| if m & (1 << d) != 0 { 1 } else { n })
                        .collect();
                    if m & 0x80 != 0 && s.len() > 1 {
                        s.remove(0);
                    }
                    s
                })
                .collect();
            let nl = leaves.len();
            let mut chain = Chain::default();
            for (j, &(kind, a, b, p)) in ops.iter().enumerate() {
                let pick = |x: u8| -> Ref {
                    let k = x as usize % (j + nl + 1);
                    if k < j {
                        Ref::Op(k)
                    } else if k < j + nl {
                        Ref::Leaf(k - j)
                    } else {
                        Ref::Const(f64::from(x) / 16.0 - 4.0)
                    }
                };
                let op = match kind % 4 {
                    0 => (
                        FusedOp::Unary(unary[p as usize % unary.len()]),
                        vec![pick(a)],
                    ),
                    1 => (
                        FusedOp::Binary(BinaryOp::Pow),
                        vec![pick(a), Ref::Const(EXPONENTS[p as usize % EXPONENTS.len()])],
                    ),
                    2 => (
                        FusedOp::Clip {
                            lo: (p & 1 != 0).then_some(-1.5),
                            hi: (p & 2 != 0).then_some(2.25),
                        },
                        vec![pick(a)],
                    ),
                    _ => (
                        FusedOp::Binary(binary[p as usize % binary.len()]),
                        vec![pick(a), pick(b)],
                    ),
                };
                chain.ops.push(op);
            }
            Case {
                out,
                leaves,
                chain,
                f32,
                seed,
            }
        })
}

fn leaf_blocks(c: &Case) -> Vec<Block> {
    let mut state = c.seed | 1;
    c.leaves
        .iter()
        .map(|s| {
            let n: usize = s.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    match state % 23 {
                        0 => f64::NAN,
                        1 => 0.0,
                        _ => (state >> 11) as f64 / (1u64 << 53) as f64 * 10.0 - 5.0,
                    }
                })
                .collect();
            let b = Block::from(ArrayD::from_shape_vec(IxDyn(s), v).unwrap());
            if c.f32 {
                b.astype(DType::F32)
            } else {
                b
            }
        })
        .collect()
}

/// The chain run op by op with the whole-tile kernels, broadcast to
/// the output's shape.
fn op_by_op(c: &Case, leaves: &[Block]) -> Vec<f64> {
    let dtype = if c.f32 { DType::F32 } else { DType::F64 };
    let mut vals: Vec<Block> = Vec::new();
    for (op, args) in &c.chain.ops {
        let get = |r: &Ref| -> Block {
            match *r {
                Ref::Op(i) => vals[i].clone(),
                Ref::Leaf(i) => leaves[i].clone(),
                Ref::Const(v) => Block::full(dtype, &[], v),
            }
        };
        let v = match *op {
            FusedOp::Unary(u) => unary(u, &get(&args[0])).unwrap(),
            FusedOp::Binary(b) => binary(b, &get(&args[0]), &get(&args[1])).unwrap(),
            FusedOp::Clip { lo, hi } => clip(&get(&args[0]), lo, hi).unwrap(),
        };
        vals.push(v);
    }
    let last = vals.pop().unwrap().astype(DType::F64);
    let a = f64::as_array(&last).unwrap();
    a.broadcast(IxDyn(&c.out))
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn bits_eq(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A chain gives the bits of its ops run one by one, whether it
    /// writes into an owned leaf, into a new buffer, or fills any run
    /// of its output.
    #[test]
    fn chains_equal_their_ops_one_by_one(c in case(), cut in any::<(u16, u16)>()) {
        let leaves = leaf_blocks(&c);
        let want = op_by_op(&c, &leaves);
        let dtype = if c.f32 { DType::F32 } else { DType::F64 };
        let arg = |block: LeafIn, shape: &[usize]| LeafArg {
            block,
            strides: broadcast_strides(&c.out, shape),
        };
        let shared: Vec<LeafArg> = leaves
            .iter()
            .map(|b| arg(LeafIn::Shared(Arc::new(b.clone())), b.shape()))
            .collect();
        let p = Prepared::new(&c.chain, shared, &c.out, dtype).unwrap();
        let got = p.to_block();
        prop_assert_eq!(got.shape(), c.out.as_slice());
        prop_assert!(bits_eq(&got.astype(DType::F64).to_f64_vec(), &want));
        // A run of the output, anywhere.
        let n = want.len();
        let at = cut.0 as usize % n;
        let len = (cut.1 as usize % (n - at)).max(1).min(n - at);
        let part: Vec<f64> = match &p {
            Prepared::F32(r) => {
                let mut v = vec![0f32; len];
                r.fill(at, &mut v);
                v.into_iter().map(f64::from).collect()
            }
            Prepared::F64(r) => {
                let mut v = vec![0f64; len];
                r.fill(at, &mut v);
                v
            }
        };
        prop_assert!(bits_eq(&part, &want[at..at + len]));
        // Owned leaves: one of the output's shape takes the result.
        let owned: Vec<LeafArg> = leaves
            .into_iter()
            .map(|b| {
                let shape = b.shape().to_vec();
                arg(LeafIn::Owned(b), &shape)
            })
            .collect();
        let got = Prepared::new(&c.chain, owned, &c.out, dtype).unwrap().run();
        prop_assert!(bits_eq(&got.astype(DType::F64).to_f64_vec(), &want));
    }
}

fn lanes(out: &[usize], shapes: &[&[usize]]) -> Lanes {
    let st: Vec<Vec<usize>> = shapes.iter().map(|s| broadcast_strides(out, s)).collect();
    Lanes::new(out, &st)
}

#[test]
fn lanes_merge_axes_that_step_alike_and_drop_length_one_axes() {
    // (4, 1, 6) out of a full leaf and a (1, 1, 6) leaf: axes 0 and 2
    // cannot merge (the second leaf repeats along axis 0).
    let l = lanes(&[4, 1, 6], &[&[4, 1, 6], &[1, 1, 6]]);
    assert_eq!((l.outer.clone(), l.len), (vec![4], 6));
    assert_eq!(l.lane, vec![1, 1]);
    assert_eq!(l.strides, vec![vec![6], vec![0]]);
    // Equal shapes merge into one lane.
    let l = lanes(&[3, 5, 7], &[&[3, 5, 7], &[5, 7]]);
    assert_eq!((l.outer.len(), l.len), (1, 35));
    assert_eq!(l.outer, vec![3]);
    // A column leaf is read one value per lane.
    let l = lanes(&[8, 9], &[&[8, 1], &[9]]);
    assert_eq!(
        (l.outer.clone(), l.len, l.lane.clone()),
        (vec![8], 9, vec![0, 1])
    );
    let mut offs = vec![0; 2];
    l.offsets(5, &mut offs);
    assert_eq!(offs, vec![5, 0]);
}

/// Sums and means folded straight from chains (strip by strip, never
/// stored) have the bits of folding the chains' blocks.
#[test]
fn chains_fold_into_sums_with_the_bits_of_their_blocks() {
    use crate::kernels::reduce::{accumulate_chains, accumulate_many, finalize, ReduceOp};
    // (a - b)**2 / 3 over tiles of (rows, 5000): a (rows, 1) against
    // b (5000,), then summed over axis 0.
    let chain = Chain {
        ops: vec![
            (
                FusedOp::Binary(BinaryOp::Sub),
                vec![Ref::Leaf(0), Ref::Leaf(1)],
            ),
            (
                FusedOp::Binary(BinaryOp::Pow),
                vec![Ref::Op(0), Ref::Const(2.0)],
            ),
            (
                FusedOp::Binary(BinaryOp::Div),
                vec![Ref::Op(1), Ref::Const(3.0)],
            ),
        ],
    };
    let m = 5000usize;
    let b: Vec<f64> = (0..m)
        .map(|j| ((j * 37) % 1009) as f64 * 0.013 - 5.0)
        .collect();
    let b = Block::from(ArrayD::from_shape_vec(IxDyn(&[m]), b).unwrap());
    let tiles: Vec<(Prepared, Block)> = [3usize, 3, 2, 3]
        .iter()
        .enumerate()
        .map(|(t, &rows)| {
            let a: Vec<f64> = (0..rows).map(|i| (t * 3 + i) as f64 * 0.7 - 4.0).collect();
            let a = Block::from(ArrayD::from_shape_vec(IxDyn(&[rows, 1]), a).unwrap());
            let out = [rows, m];
            let leaves = vec![
                LeafArg {
                    strides: broadcast_strides(&out, a.shape()),
                    block: LeafIn::Owned(a),
                },
                LeafArg {
                    strides: broadcast_strides(&out, b.shape()),
                    block: LeafIn::Shared(Arc::new(b.clone())),
                },
            ];
            let p = Prepared::new(&chain, leaves, &out, DType::F64).unwrap();
            let block = p.to_block();
            (p, block)
        })
        .collect();
    for op in [
        ReduceOp::Sum,
        ReduceOp::NanSum,
        ReduceOp::Mean,
        ReduceOp::NanMean,
    ] {
        let (mut by_chain, mut by_block) = (None, None);
        let chains: Vec<&Prepared> = tiles.iter().map(|t| &t.0).collect();
        let blocks: Vec<&Block> = tiles.iter().map(|t| &t.1).collect();
        let origins: Vec<Vec<u64>> = vec![vec![0, 0]; blocks.len()];
        // Two groups, as a fold over more sub-tiles than a group holds.
        for (c, (bl, o)) in chains
            .chunks(2)
            .zip(blocks.chunks(2).zip(origins.chunks(2)))
        {
            assert!(
                accumulate_chains(op, &mut by_chain, c, &[0]).unwrap(),
                "{op:?}"
            );
            accumulate_many(op, &mut by_block, bl, &[0], o, &[11, m as u64]).unwrap();
        }
        let got = finalize(op, by_chain.unwrap()).unwrap().to_f64_vec();
        let want = finalize(op, by_block.unwrap()).unwrap().to_f64_vec();
        assert!(bits_eq(&got, &want), "{op:?}");
    }
    // A single tile is not a group: the caller folds its block.
    let mut acc = None;
    assert!(!accumulate_chains(ReduceOp::Sum, &mut acc, &[&tiles[0].0], &[0]).unwrap());
    assert!(acc.is_none());
}

#[test]
fn registers_are_reused_once_free() {
    // ((a + 1) * 2 - 3) / 4: a straight line needs two registers.
    let chain = Chain {
        ops: vec![
            (
                FusedOp::Binary(BinaryOp::Add),
                vec![Ref::Leaf(0), Ref::Const(1.0)],
            ),
            (
                FusedOp::Binary(BinaryOp::Mul),
                vec![Ref::Op(0), Ref::Const(2.0)],
            ),
            (
                FusedOp::Binary(BinaryOp::Sub),
                vec![Ref::Op(1), Ref::Const(3.0)],
            ),
            (
                FusedOp::Binary(BinaryOp::Div),
                vec![Ref::Op(2), Ref::Const(4.0)],
            ),
        ],
    };
    let (instrs, nregs, root) = compile::<f64>(&chain);
    assert_eq!(nregs, 2);
    assert_eq!(instrs.len(), 4);
    assert_eq!(root, instrs[3].dst);
    for w in instrs.windows(2) {
        assert_ne!(
            w[0].dst, w[1].dst,
            "an op never writes the register it reads"
        );
    }
}
