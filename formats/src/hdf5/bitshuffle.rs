//! The bitshuffle filter (HDF5 filter 32008, as `hdf5plugin.Bitshuffle`
//! and h5py's users write it), decoded and encoded bit-compatibly with the
//! reference C library's scalar code; no maintained Rust crate implements
//! it.
//!
//! Bitshuffle transposes the bits of each block of `block` elements of
//! `elem` bytes (a multiple of 8 elements): all the elements' bit 0 of byte
//! 0 first, then bit 1, and so on. A chunk of `n` elements is cut into
//! blocks of `block` elements, then one block of the rest rounded down to
//! a multiple of 8, then the last `n % 8` elements, stored as they are.
//!
//! Stored forms, by the filter's `cd_values[4]`:
//! - 0: the shuffled blocks only, as long as the data (`block` from
//!   `cd_values[3]`, or the library's default for `elem`);
//! - 2 (LZ4) and 3 (zstd): a 12-byte header (the data's length as a
//!   big-endian u64, the block size in bytes as a big-endian u32), then
//!   each block as a big-endian u32 length and one LZ4 block or zstd frame
//!   of its shuffled bytes, then the raw leftover elements.

/// The compression a bitshuffle chunk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Packing {
    None,
    Lz4,
    Zstd,
}

/// Elements per block the C library picks when none is given.
pub(crate) fn default_block(elem: usize) -> usize {
    let b = 8192 / elem.max(1) / 8 * 8;
    b.max(128)
}

/// Transpose the 8x8 bit matrix held in `x` (rows are bytes, little-endian).
#[inline]
fn trans_bit_8x8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x = x ^ t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x = x ^ t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

fn load(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Bitshuffle `n` elements of `elem` bytes (`n % 8 == 0`) from `src` into
/// `dst` (both `n * elem` bytes).
fn shuffle_block(src: &[u8], dst: &mut [u8], n: usize, elem: usize) {
    let nbyte = n * elem;
    // Bytes of the same position in each element together.
    let mut a = vec![0u8; nbyte];
    for i in 0..n {
        for j in 0..elem {
            a[j * n + i] = src[i * elem + j];
        }
    }
    // Bits of each byte row transposed, 8 bytes at a time.
    let rows = nbyte / 8;
    let mut b = vec![0u8; nbyte];
    for i in 0..rows {
        let mut x = trans_bit_8x8(load(&a, i * 8));
        for k in 0..8 {
            b[k * rows + i] = x as u8;
            x >>= 8;
        }
    }
    // Rows of bits regrouped: an 8 x elem matrix of rows of n/8 bytes.
    let row = n / 8;
    for i in 0..8 {
        for j in 0..elem {
            let from = (i * elem + j) * row;
            let to = (j * 8 + i) * row;
            dst[to..to + row].copy_from_slice(&b[from..from + row]);
        }
    }
}

/// The inverse of [`shuffle_block`].
fn unshuffle_block(src: &[u8], dst: &mut [u8], n: usize, elem: usize) {
    let nbyte = n * elem;
    let row = n / 8;
    let mut a = vec![0u8; nbyte];
    for j in 0..elem {
        for i in 0..row {
            for k in 0..8 {
                a[i * 8 * elem + j * 8 + k] = src[(j * 8 + k) * row + i];
            }
        }
    }
    for j in (0..8 * elem).step_by(8) {
        for i in (0..nbyte).step_by(8 * elem) {
            let mut x = trans_bit_8x8(load(&a, i + j));
            for k in 0..8 {
                dst[i + j / 8 + k * elem] = x as u8;
                x >>= 8;
            }
        }
    }
}

/// The blocks a chunk of `n` elements is cut into: (first element, count).
fn blocks(n: usize, block: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / block;
    let last = n % block / 8 * 8;
    (0..full)
        .map(move |b| (b * block, block))
        .chain((last > 0).then_some((full * block, last)))
}

/// Decode a bitshuffle chunk (`src`) of elements of `elem` bytes into
/// `dst`, producing at most `limit` bytes.
pub(crate) fn decode(
    src: &[u8],
    dst: &mut Vec<u8>,
    elem: usize,
    block: usize,
    packing: Packing,
    limit: usize,
) -> Result<(), String> {
    let bad = |why: String| format!("corrupt bitshuffle chunk: {why}");
    if elem == 0 {
        return Err(bad("an element size of 0".into()));
    }
    let (total, block, mut at) = match packing {
        Packing::None => (src.len(), block, 0),
        Packing::Lz4 | Packing::Zstd => {
            let head = src
                .get(..12)
                .ok_or_else(|| bad("shorter than its header".into()))?;
            let total = u64::from_be_bytes(head[..8].try_into().unwrap_or([0; 8]));
            let bytes = u32::from_be_bytes(head[8..12].try_into().unwrap_or([0; 4])) as usize;
            let total = usize::try_from(total)
                .ok()
                .filter(|&t| t <= limit)
                .ok_or_else(|| bad(format!("it declares {total} bytes, more than {limit}")))?;
            (total, bytes / elem, 12)
        }
    };
    if total % elem != 0 {
        return Err(bad(format!(
            "{total} bytes are not whole {elem}-byte elements"
        )));
    }
    // A header's block size of 0 (or under one element) means the
    // default, as the reference filter reads it.
    let block = if block == 0 {
        default_block(elem)
    } else {
        block
    };
    if block % 8 != 0 {
        return Err(bad(format!(
            "a block of {block} elements (not a multiple of 8)"
        )));
    }
    let n = total / elem;
    dst.clear();
    dst.resize(total, 0);
    let mut tmp = Vec::new();
    for (first, count) in blocks(n, block) {
        let bytes = count * elem;
        let out = &mut dst[first * elem..first * elem + bytes];
        let shuffled: &[u8] = match packing {
            Packing::None => {
                let s = &src[at..at + bytes];
                at += bytes;
                s
            }
            Packing::Lz4 | Packing::Zstd => {
                let size = src
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .ok_or_else(|| bad("it ends inside a block header".into()))?;
                at += 4;
                let data = src
                    .get(at..at.saturating_add(size))
                    .ok_or_else(|| bad("it ends inside a block".into()))?;
                at += size;
                tmp.clear();
                tmp.resize(bytes, 0);
                let got = if packing == Packing::Lz4 {
                    lz4_flex::block::decompress_into(data, &mut tmp)
                        .map_err(|e| bad(format!("lz4: {e}")))?
                } else {
                    super::codec::zstd_decode_into(data, &mut tmp[..])
                        .map_err(|e| bad(format!("zstd: {e}")))?
                };
                if got != bytes {
                    return Err(bad(format!("a block decoded to {got} bytes, not {bytes}")));
                }
                &tmp
            }
        };
        unshuffle_block(shuffled, out, count, elem);
    }
    // The last n % 8 elements, stored as they are.
    let done = blocks(n, block).map(|(_, c)| c).sum::<usize>() * elem;
    let rest = total - done;
    let tail = src
        .get(at..at + rest)
        .ok_or_else(|| bad("it ends before its last elements".into()))?;
    dst[done..].copy_from_slice(tail);
    Ok(())
}

/// Encode `src` (elements of `elem` bytes, a whole number of them) as the
/// filter does.
pub(crate) fn encode(src: &[u8], elem: usize, block: usize, packing: Packing) -> Vec<u8> {
    let elem = elem.max(1);
    let n = src.len() / elem;
    let mut out = Vec::with_capacity(src.len() + 16);
    if packing != Packing::None {
        out.extend_from_slice(&(src.len() as u64).to_be_bytes());
        out.extend_from_slice(&((block * elem) as u32).to_be_bytes());
    }
    let mut tmp = Vec::new();
    for (first, count) in blocks(n, block) {
        let bytes = count * elem;
        tmp.clear();
        tmp.resize(bytes, 0);
        shuffle_block(
            &src[first * elem..first * elem + bytes],
            &mut tmp,
            count,
            elem,
        );
        match packing {
            Packing::None => out.extend_from_slice(&tmp),
            Packing::Lz4 | Packing::Zstd => {
                let c = if packing == Packing::Lz4 {
                    lz4_flex::block::compress(&tmp)
                } else {
                    zstd::bulk::compress(&tmp, 3).unwrap_or_default()
                };
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
        }
    }
    let done = blocks(n, block).map(|(_, c)| c).sum::<usize>() * elem;
    out.extend_from_slice(&src[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_8x1_block_transposes_bits() {
        // Eight one-byte elements: element i has only bit i set, so bit
        // plane k holds only element k: byte k of the output is 1 << k.
        let src: Vec<u8> = (0..8).map(|i| 1u8 << i).collect();
        let mut dst = vec![0u8; 8];
        shuffle_block(&src, &mut dst, 8, 1);
        assert_eq!(dst, (0..8).map(|k| 1u8 << k).collect::<Vec<_>>());
        // All ones in element 0 only: every bit plane has bit 0 set.
        let mut src = vec![0u8; 8];
        src[0] = 0xff;
        shuffle_block(&src, &mut dst, 8, 1);
        assert_eq!(dst, vec![1u8; 8]);
    }

    #[test]
    fn round_trips_for_every_packing_and_shape() {
        for elem in [1, 2, 4, 8] {
            for n in [0, 7, 8, 64, 1000, 1029] {
                let src: Vec<u8> = (0..n * elem).map(|i| (i * 37 % 251) as u8).collect();
                for block in [8, 128, default_block(elem)] {
                    for p in [Packing::None, Packing::Lz4, Packing::Zstd] {
                        let enc = encode(&src, elem, block, p);
                        let mut out = Vec::new();
                        decode(&enc, &mut out, elem, block, p, src.len()).unwrap();
                        assert!(out == src, "elem {elem} n {n} block {block} {p:?}");
                        for cut in [0, 5, 12, enc.len() / 2] {
                            if cut < enc.len() {
                                let _ = decode(&enc[..cut], &mut out, elem, block, p, src.len());
                            }
                        }
                    }
                }
            }
        }
    }
}
