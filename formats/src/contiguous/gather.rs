//! Gathering chunks and strided selections out of a mapped contiguous array.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn};
use ndstream_engine::{AxisSel, Block, DType};

/// The elements `sel` picks from `src` (element 0 at byte `base`, byte
/// `strides` per axis) as a block of `dtype`, byte-swapped when `swap`.
/// The block's buffer is written once by the gather, never zeroed first.
/// `None` if a bool byte is neither 0 nor 1. Indices must be in bounds.
pub(crate) fn gather_block(
    dtype: DType,
    src: &[u8],
    base: usize,
    strides: &[i64],
    sel: &[AxisSel],
    swap: bool,
) -> Option<Block> {
    let shape: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
    let item = dtype.size();
    if dtype == DType::Bool {
        let v = gather_to_vec(src, base, strides, sel, item);
        if v.iter().any(|&b| b > 1) {
            return None;
        }
        let v: Vec<bool> = v.into_iter().map(|b| b == 1).collect();
        return ArrayD::from_shape_vec(IxDyn(&shape), v)
            .ok()
            .map(Block::from);
    }
    // SAFETY: `gather` writes every byte of the buffer, whose length is the
    // selection's element count times `item` (it checks that).
    let block = unsafe {
        Block::from_ne_fill_uninit(dtype, &shape, |dst| {
            gather(src, base, strides, sel, item, dst);
            if swap {
                // SAFETY: the gather above initialised every byte.
                swap_bytes(assume_init(dst), item);
            }
            Ok::<(), std::convert::Infallible>(())
        })
    };
    match block {
        Ok(b) => Some(b),
        Err(never) => match never {},
    }
}

/// [`gather`] into a new vector of the selection's bytes.
fn gather_to_vec(
    src: &[u8],
    base: usize,
    strides: &[i64],
    sel: &[AxisSel],
    item: usize,
) -> Vec<u8> {
    let n = sel.iter().map(|s| s.len as usize).product::<usize>() * item;
    let mut v: Vec<u8> = Vec::with_capacity(n);
    gather(
        src,
        base,
        strides,
        sel,
        item,
        &mut v.spare_capacity_mut()[..n],
    );
    // SAFETY: `gather` wrote all `n` bytes (it checks the length).
    unsafe { v.set_len(n) };
    v
}

/// View bytes known to be initialised as plain bytes.
///
/// # Safety
/// Every byte of `b` must have been written.
unsafe fn assume_init(b: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the caller
    // guarantees every byte is initialised.
    unsafe { &mut *(b as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// `copy_from_slice` into bytes that may be uninitialised.
#[inline(always)]
fn copy_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "a copy between equal lengths");
    // SAFETY: both are `src.len()` bytes long and cannot overlap (one is
    // borrowed shared, the other exclusively).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) }
}

/// Copy `dst.len() / N` elements of `N` bytes, `step` bytes apart from
/// byte `off` of `src`, to `dst`: one fixed-size move each, with the bounds
/// checked once for the whole run (a strided run such as `x[::2]` of a
/// mapped chunk is a tight loop of loads and stores).
#[inline(always)]
fn strided_run<const N: usize>(
    dst: &mut [MaybeUninit<u8>],
    src: &[u8],
    off: i64,
    step: i64,
    n: usize,
) {
    if n == 0 {
        return;
    }
    let last = off + (n as i64 - 1) * step;
    let inside = |o: i64| o >= 0 && (o as usize).checked_add(N).is_some_and(|e| e <= src.len());
    assert!(
        inside(off) && inside(last) && dst.len() >= n * N,
        "a strided run lies inside the array"
    );
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr().cast::<u8>());
    if step == 2 * N as i64 {
        // Every other element (`x[..., ::2]`): with the stride a constant,
        // the compiler turns the loop into wide loads and shuffles.
        for j in 0..n {
            // SAFETY: as below, with `step` = 2 * N.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    s.offset(off as isize).add(j * 2 * N),
                    d.add(j * N),
                    N,
                );
            }
        }
        return;
    }
    for j in 0..n {
        // SAFETY: the run's first and last elements lie inside `src`
        // (checked above) and the others lie between them; `dst` holds
        // `n` elements of `N` bytes; `src` and `dst` do not overlap (one
        // is borrowed shared, the other exclusively).
        unsafe {
            std::ptr::copy_nonoverlapping(
                s.offset((off + j as i64 * step) as isize),
                d.add(j * N),
                N,
            );
        }
    }
}

/// Copy the elements `sel` picks from `src` (element 0 at byte `base`,
/// byte `strides` per axis) into `dst` in C order, writing every byte of
/// `dst`, which must hold exactly the selection's elements. Indices must be
/// in bounds.
pub(crate) fn gather(
    src: &[u8],
    base: usize,
    strides: &[i64],
    sel: &[AxisSel],
    item: usize,
    dst: &mut [MaybeUninit<u8>],
) {
    let count: u64 = sel.iter().map(|s| s.len).product();
    assert_eq!(
        dst.len() as u64,
        count * item as u64,
        "the gather's output holds exactly the selection"
    );
    // Trailing length-1 axes only move the start: a column `x[:, k]` is
    // then one strided run, not a run of one element per row.
    let mut base = base;
    let mut keep = sel.len();
    while keep > 1 && sel[keep - 1].len == 1 {
        base = (base as i64 + sel[keep - 1].start as i64 * strides[keep - 1]) as usize;
        keep -= 1;
    }
    let (sel, strides) = (&sel[..keep], &strides[..keep]);
    let Some((inner, outer)) = sel.split_last() else {
        copy_bytes(&mut dst[..item], &src[base..base + item]);
        return;
    };
    let d = outer.len();
    let inner_step = inner.step * strides[d];
    let run = inner.len as usize * item;
    let contiguous = inner.len <= 1 || inner_step == item as i64;
    let n_outer: u64 = outer.iter().map(|s| s.len).product();
    if run == 0 || n_outer == 0 {
        return;
    }
    let mut idx = vec![0u64; d];
    let mut pos = 0usize;
    for _ in 0..n_outer {
        let mut off = base as i64
            + inner.start as i64 * strides[d]
            + (0..d)
                .map(|k| outer[k].index(idx[k]) as i64 * strides[k])
                .sum::<i64>();
        if contiguous && run != item {
            let o = off as usize;
            copy_bytes(&mut dst[pos..pos + run], &src[o..o + run]);
        } else {
            let n = inner.len as usize;
            let d = &mut dst[pos..pos + run];
            match item {
                8 => strided_run::<8>(d, src, off, inner_step, n),
                4 => strided_run::<4>(d, src, off, inner_step, n),
                2 => strided_run::<2>(d, src, off, inner_step, n),
                1 => strided_run::<1>(d, src, off, inner_step, n),
                // (every dtype is 1, 2, 4 or 8 bytes; any other size copies a slice)
                _ => {
                    for e in d.chunks_exact_mut(item) {
                        let o = off as usize;
                        copy_bytes(e, &src[o..o + item]);
                        off += inner_step;
                    }
                }
            }
        }
        pos += run;
        for k in (0..d).rev() {
            idx[k] += 1;
            if idx[k] < outer[k].len {
                break;
            }
            idx[k] = 0;
        }
    }
}

pub(super) fn swap_bytes(bytes: &mut [u8], item: usize) {
    if item > 1 {
        for c in bytes.chunks_exact_mut(item) {
            c.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contiguous::Layout;

    #[test]
    fn gather_matches_ndarray_slicing() {
        // A 3x4x5 C-order u16 array, values = linear index.
        let vals: Vec<u16> = (0..60).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let layout = Layout {
            dtype: DType::U16,
            shape: vec![3, 4, 5],
            little_endian: true,
            fortran: false,
            offset: 0,
            record_stride: None,
        };
        let sel = [
            AxisSel {
                start: 2,
                step: -1,
                len: 2,
            },
            AxisSel {
                start: 1,
                step: 2,
                len: 2,
            },
            AxisSel {
                start: 0,
                step: 1,
                len: 5,
            },
        ];
        let out = gather_to_vec(&bytes, 0, &layout.strides(), &sel, 2);
        let got: Vec<u16> = out
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        let want: Vec<u16> = [2usize, 1]
            .iter()
            .flat_map(|&i| {
                [1usize, 3]
                    .iter()
                    .flat_map(move |&j| (0..5).map(move |k| (i * 20 + j * 5 + k) as u16))
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn strided_runs_of_every_item_size_and_step() {
        // Inner steps of 1, 2 (the constant-stride loop), 3 and -2, for
        // elements of 1, 2, 4 and 8 bytes, against an element-by-element copy.
        let src: Vec<u8> = (0..200u32).map(|v| (v * 7 + 3) as u8).collect();
        for item in [1usize, 2, 4, 8] {
            for (start, step) in [(0u64, 1i64), (1, 2), (0, 3), (20, -2)] {
                let n = 9u64;
                let sel = [AxisSel {
                    start,
                    step,
                    len: n,
                }];
                let got = gather_to_vec(&src, 0, &[item as i64], &sel, item);
                let want: Vec<u8> = (0..n)
                    .flat_map(|j| {
                        let e = sel[0].index(j) as usize * item;
                        src[e..e + item].to_vec()
                    })
                    .collect();
                assert_eq!(got, want, "item {item} start {start} step {step}");
            }
        }
    }

    #[test]
    fn bool_bytes_validated() {
        let sel = [AxisSel::full(2)];
        let ok = gather_block(DType::Bool, &[1, 0], 0, &[1], &sel, false);
        assert_eq!(
            ok,
            Some(Block::from(ndarray::arr1(&[true, false]).into_dyn()))
        );
        assert!(gather_block(DType::Bool, &[2, 0], 0, &[1], &sel, false).is_none());
    }
}
