//! `map_blocks_to`: Dask's `map_blocks` with `drop_axis`, `new_axis` and
//! `chunks`, checked against closed forms over `arange` inputs, for every
//! thread count and budget of [`executors`].

use std::sync::Arc;

use ndstream_engine::{map_blocks_to, Block, BlockMap, DType, Error};

use crate::common::{executors, iota};

/// Sums over axis 1 of each block (Dask: `x.map_blocks(lambda b: b.sum(axis=1), drop_axis=1)`).
fn row_sums(b: &[Block]) -> ndstream_engine::Result<Block> {
    let a = b[0].view::<f64>().expect("f64");
    Ok(Block::from(a.sum_axis(ndarray::Axis(1))))
}

#[test]
fn a_dropped_axis_is_given_whole_and_its_blocks_concatenated() {
    // arange(30).reshape(5, 6) in chunks (2, 2): the dropped axis 1 has three
    // blocks, which each call gets together.
    let x = iota(&[5, 6], &[vec![2, 2, 1], vec![2, 2, 2]]);
    let map = BlockMap {
        axes: vec![Some(0)],
        dropped: vec![1],
    };
    let y = map_blocks_to(
        &[x],
        DType::F64,
        "rowsum",
        Arc::new(row_sums),
        vec![vec![2, 2, 1]],
        map,
    )
    .unwrap();
    assert_eq!(y.shape(), &[5]);
    // Row r holds 6r .. 6r+5: its sum is 36r + 15.
    let want: Vec<f64> = (0..5).map(|r| 36.0 * r as f64 + 15.0).collect();
    for e in executors(&y) {
        assert_eq!(e.compute(&y).unwrap().to_f64_vec(), want);
    }
}

#[test]
fn a_new_axis_and_new_chunk_sizes() {
    // Each block of a 1-d arange(7) in chunks (3, 3, 1) becomes a (2, n)
    // block: the block and its square stacked on a new axis 0.
    let x = iota(&[7], &[vec![3, 3, 1]]);
    let map = BlockMap {
        axes: vec![None, Some(0)],
        dropped: vec![],
    };
    let f = Arc::new(|b: &[Block]| {
        let a = b[0].view::<f64>().expect("f64");
        let sq = a.mapv(|v| v * v);
        Ok(Block::from(
            ndarray::stack(ndarray::Axis(0), &[a.view(), sq.view()])
                .expect("same shapes")
                .into_dyn(),
        ))
    });
    let y = map_blocks_to(
        &[x],
        DType::F64,
        "pair",
        f,
        vec![vec![2], vec![3, 3, 1]],
        map,
    )
    .unwrap();
    assert_eq!(y.shape(), &[2, 7]);
    let want: Vec<f64> = (0..7)
        .map(|v| v as f64)
        .chain((0..7).map(|v| (v * v) as f64))
        .collect();
    for e in executors(&y) {
        assert_eq!(e.compute(&y).unwrap().to_f64_vec(), want);
    }
    // A part of it reads only the blocks it needs and gives the same values.
    let part = y.index(&ndstream_engine::s![1, 2..5]).unwrap();
    assert_eq!(part.compute().unwrap().to_f64_vec(), vec![4.0, 9.0, 16.0]);
}

#[test]
fn blocks_of_another_size_per_block() {
    // Each block of 4 elements becomes its first 2 (Dask: chunks=(2,)).
    let x = iota(&[12], &[vec![4, 4, 4]]);
    let f = Arc::new(|b: &[Block]| {
        let a = b[0].view::<f64>().expect("f64");
        Ok(Block::from(a.slice(ndarray::s![..2]).to_owned().into_dyn()))
    });
    let y = map_blocks_to(
        &[x],
        DType::F64,
        "head",
        f,
        vec![vec![2, 2, 2]],
        BlockMap::identity(1),
    )
    .unwrap();
    assert_eq!(
        y.compute().unwrap().to_f64_vec(),
        vec![0.0, 1.0, 4.0, 5.0, 8.0, 9.0]
    );
}

#[test]
fn a_block_of_the_wrong_shape_and_bad_maps_are_errors() {
    let x = iota(&[5, 6], &[vec![2, 2, 1], vec![3, 3]]);
    // Declared 2 rows per block, the kernel gives sums over the whole block.
    let f = Arc::new(|b: &[Block]| {
        let a = b[0].view::<f64>().expect("f64");
        Ok(Block::from(ndarray::arr1(&[a.sum()]).into_dyn()))
    });
    let map = BlockMap {
        axes: vec![Some(0)],
        dropped: vec![1],
    };
    let y = map_blocks_to(
        std::slice::from_ref(&x),
        DType::F64,
        "k",
        f.clone(),
        vec![vec![2, 2, 1]],
        map.clone(),
    )
    .unwrap();
    match y.compute() {
        Err(Error::Kernel { message, .. }) => assert!(message.contains("shape [1]"), "{message}"),
        other => panic!("{other:?}"),
    }
    let err = |chunks: Vec<Vec<u64>>, map: BlockMap| {
        map_blocks_to(
            std::slice::from_ref(&x),
            DType::F64,
            "k",
            f.clone(),
            chunks,
            map,
        )
        .unwrap_err()
        .to_string()
    };
    // Axis 1 neither kept nor dropped.
    let e = err(
        vec![vec![2, 2, 1]],
        BlockMap {
            axes: vec![Some(0)],
            dropped: vec![],
        },
    );
    assert!(e.contains("input axis 1"), "{e}");
    // Block counts not kept along a mapped axis.
    let e = err(vec![vec![5]], map.clone());
    assert!(e.contains("must have 3"), "{e}");
    // A new axis of two blocks.
    let e = err(
        vec![vec![1, 1], vec![2, 2, 1]],
        BlockMap {
            axes: vec![None, Some(0)],
            dropped: vec![1],
        },
    );
    assert!(e.contains("a new axis"), "{e}");
    // Chunks of the wrong rank.
    let e = err(vec![vec![2, 2, 1], vec![6]], map);
    assert!(e.contains("2 axes of chunks"), "{e}");
}
