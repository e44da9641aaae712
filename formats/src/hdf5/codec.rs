//! The byte-level filters of HDF5's pipeline that ndstream runs itself.
//!
//! HDF5 stores a chunk as the bytes of the *full* chunk (edge chunks too)
//! passed through the dataset's filter pipeline in order; reading runs the
//! pipeline backwards, skipping filters whose bit is set in the chunk's
//! filter mask. Implemented here, bit-compatible with libhdf5:
//! - shuffle (`H5Z_FILTER_SHUFFLE`): byte `j` of element `i` goes to
//!   `j * n + i`; a tail of `len % size` bytes is left in place;
//! - deflate (`H5Z_FILTER_DEFLATE`): a zlib stream (header + adler32);
//! - fletcher32 (`H5Z_FILTER_FLETCHER32`): HDF5's Fletcher checksum over
//!   big-endian 16-bit words, appended little-endian (older files stored it
//!   with the bytes of each half swapped; both are accepted);
//! - the registered plugin filters h5py users get from `hdf5plugin` and
//!   netCDF-C writes, so such files read without any plugin installed:
//!   zstd (32015: one zstd frame, through the `zstd` crate), lz4 (32004:
//!   the plugin's framing, an 8-byte big-endian length and a block size,
//!   then each block as a 4-byte big-endian size and an LZ4 block, or the
//!   block raw when that size equals it; through `lz4_flex`), blosc
//!   (32001: one Blosc frame, through c-blosc from `blosc-src`, the build
//!   zarrs uses) and bzip2 (307: one bzip2 stream, through `bzip2`);
//!   bitshuffle (32008, with LZ4, zstd or no compression) in
//!   [`super::bitshuffle`];
//! - szip (`H5Z_FILTER_SZIP`) through the szip library libhdf5 links, its
//!   lengths checked here ([`super::szip`]);
//! - n-bit and scale-offset through libhdf5's own filter functions, after
//!   checking that the chunk holds what they read ([`super::builtin`]).
//!
//! Decoding never panics on bad input: a bad stream, a checksum mismatch or
//! a wrong decoded length is an `Err(String)` the caller turns into an
//! `Error::Source` naming the chunk. Everything here runs on the calling
//! worker thread with no HDF5 call, so chunks decode in parallel.

use std::cell::RefCell;
use std::io::Write;
use std::mem::MaybeUninit;

use flate2::{Decompress, FlushDecompress, Status};

pub(crate) use super::bitshuffle::Packing;
pub(crate) use super::builtin::{Builtin, SCALEOFFSET_PARAMS};

/// One filter of a pipeline that ndstream decodes (and encodes) itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Byte shuffle of elements of `size` bytes.
    Shuffle { size: usize },
    /// zlib/deflate.
    Deflate,
    /// Fletcher32 checksum appended to the data.
    Fletcher32,
    /// Zstandard (filter 32015).
    Zstd,
    /// LZ4 in the HDF5 plugin's block framing (filter 32004).
    Lz4,
    /// Blosc (filter 32001): the frame's header says how it was compressed.
    Blosc,
    /// bzip2 (filter 307).
    Bzip2,
    /// Bitshuffle (filter 32008) of elements of `elem` bytes in blocks of
    /// `block` elements, then LZ4, zstd or nothing (see [`super::bitshuffle`]).
    Bitshuffle {
        elem: usize,
        block: usize,
        packing: Packing,
    },
    /// szip (filter 4) with its stored parameters, through the szip
    /// library libhdf5 links (see [`super::szip`]).
    Szip { cd: [u32; 4] },
    /// libhdf5's n-bit or scale-offset filter, with the first `len` of its
    /// stored parameters `cd`, for elements of `size` bytes (see
    /// [`super::builtin`]).
    Builtin {
        filter: Builtin,
        cd: [u32; SCALEOFFSET_PARAMS],
        len: usize,
        size: usize,
    },
}

impl Step {
    /// The name `info` shows.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Step::Shuffle { .. } => "shuffle",
            Step::Deflate => "gzip",
            Step::Fletcher32 => "fletcher32",
            Step::Zstd => "zstd",
            Step::Lz4 => "lz4",
            Step::Blosc => "blosc",
            Step::Bzip2 => "bzip2",
            Step::Bitshuffle { .. } => "bitshuffle",
            Step::Szip { .. } => "szip",
            Step::Builtin {
                filter: Builtin::Nbit,
                ..
            } => "nbit",
            Step::Builtin {
                filter: Builtin::ScaleOffset,
                ..
            } => "scaleoffset",
        }
    }
}

// Scratch buffers reused by decodes on this thread: decompression into a
// fresh allocation per chunk ran at less than half the speed (DEPENDENCIES.md).
// Buffers larger than `KEEP_BYTES` are released after use.
thread_local! {
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The largest scratch buffer a thread keeps between chunks.
const KEEP_BYTES: usize = 64 << 20;

/// Run `f` with this thread's two scratch buffers (empty on entry).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (a, b) = &mut *bufs;
            a.clear();
            b.clear();
            let r = f(a, b);
            for v in [a, b] {
                if v.capacity() > KEEP_BYTES {
                    *v = Vec::new();
                }
            }
            r
        }
        // Re-entered on this thread (never in practice): use fresh buffers.
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

/// Decode stored chunk bytes in `cur` through `pipeline` backwards, skipping
/// the filters whose bit is set in `mask`; the result, which must be
/// `expected` bytes long, is left in `cur`. `tmp` is scratch space.
///
/// # Errors
/// A corrupt compressed stream, a Fletcher32 mismatch, or a decoded length
/// other than `expected`.
pub(crate) fn decode(
    cur: &mut Vec<u8>,
    tmp: &mut Vec<u8>,
    pipeline: &[Step],
    mask: u32,
    expected: usize,
) -> Result<(), String> {
    for (pos, step) in pipeline.iter().enumerate().rev() {
        if skipped(mask, pos) {
            continue;
        }
        // What decoding this step yields is the input its encoder had: at
        // most `limit` bytes, which bounds what a corrupt or hostile
        // stream can make us allocate.
        let limit = stage_bound(&pipeline[..pos], mask, expected);
        match *step {
            Step::Fletcher32 => {
                let n = cur.len();
                if n < 4 {
                    return Err(format!(
                        "fletcher32: the chunk is {n} bytes, too short to hold a checksum"
                    ));
                }
                let stored = u32::from_le_bytes([cur[n - 4], cur[n - 3], cur[n - 2], cur[n - 1]]);
                let sum = fletcher32(&cur[..n - 4]);
                if stored != sum && stored != swap_halves(sum) {
                    return Err(format!(
                        "fletcher32 checksum mismatch (stored {stored:#010x}, computed {sum:#010x}): the chunk is corrupt"
                    ));
                }
                cur.truncate(n - 4);
            }
            Step::Deflate => {
                inflate(cur, tmp, expected.min(limit), limit)?;
                std::mem::swap(cur, tmp);
            }
            Step::Shuffle { size } => {
                tmp.clear();
                tmp.resize(cur.len(), 0);
                unshuffle(cur, size, tmp);
                std::mem::swap(cur, tmp);
            }
            Step::Bitshuffle {
                elem,
                block,
                packing,
            } => {
                super::bitshuffle::decode(cur, tmp, elem, block, packing, limit)?;
                std::mem::swap(cur, tmp);
            }
            Step::Szip { cd } => {
                super::szip::decode(cur, tmp, cd, limit)?;
                std::mem::swap(cur, tmp);
            }
            Step::Builtin {
                filter,
                cd,
                len,
                size,
            } => {
                super::builtin::decode(filter, cur, tmp, &cd[..len], size, limit)?;
                std::mem::swap(cur, tmp);
            }
            Step::Zstd | Step::Lz4 | Step::Blosc | Step::Bzip2 => {
                match *step {
                    Step::Zstd => zstd_decode(cur, tmp, limit)?,
                    Step::Bzip2 => read_limited(bzip2::read::BzDecoder::new(&cur[..]), tmp, limit)
                        .map_err(|e| format!("corrupt bzip2 stream: {e}"))?,
                    Step::Lz4 => lz4_decode(cur, tmp, limit)?,
                    _ => blosc_decode(cur, tmp, limit)?,
                }
                std::mem::swap(cur, tmp);
            }
        }
    }
    if cur.len() != expected {
        return Err(format!(
            "the chunk decoded to {} bytes, expected {expected}",
            cur.len()
        ));
    }
    Ok(())
}

/// True if bit `pos` of a chunk's filter mask says filter `pos` was skipped.
fn skipped(mask: u32, pos: usize) -> bool {
    pos < 32 && mask & (1 << pos) != 0
}

/// The most bytes the output of `steps` (a pipeline's first filters, less
/// those `mask` skips) can hold for a chunk of `raw` bytes.
///
/// Each filter's worst growth is bounded generously: a compressor's output
/// by its input plus 1/8 plus 1 KiB (above zstd's, LZ4's, deflate's,
/// Blosc's and bzip2's documented bounds), and bitshuffle's with LZ4 or
/// zstd by its 12-byte header, 1/8 more, and 72 bytes per block of at
/// least 8 elements (a block's length, and zstd's bound for a tiny frame).
/// Only pipelines with a filter after a growing one (two compressors, or
/// bitshuffle's compression then another) have stages larger than the
/// chunk.
fn stage_bound(steps: &[Step], mask: u32, raw: usize) -> usize {
    let mut n = raw;
    for (pos, step) in steps.iter().enumerate() {
        if skipped(mask, pos) {
            continue;
        }
        n = match *step {
            Step::Shuffle { .. }
            | Step::Bitshuffle {
                packing: Packing::None,
                ..
            } => n,
            Step::Fletcher32 => n.saturating_add(4),
            Step::Bitshuffle { elem, .. } => {
                let blocks = n / (8 * elem.max(1)) + 2;
                n.saturating_add(n / 8)
                    .saturating_add(12)
                    .saturating_add(blocks.saturating_mul(72))
            }
            Step::Deflate
            | Step::Zstd
            | Step::Lz4
            | Step::Blosc
            | Step::Bzip2
            | Step::Szip { .. }
            | Step::Builtin { .. } => n.saturating_add(n / 8).saturating_add(1024),
        };
    }
    n
}

/// Encode the raw bytes of a full chunk through `pipeline` (in order).
pub(crate) fn encode(raw: &[u8], pipeline: &[Step], level: u32) -> Vec<u8> {
    let mut cur = raw.to_vec();
    for step in pipeline {
        match *step {
            Step::Shuffle { size } => {
                let mut out = vec![0u8; cur.len()];
                shuffle(&cur, size, &mut out);
                cur = out;
            }
            Step::Deflate => cur = deflate(&cur, level),
            Step::Fletcher32 => {
                let sum = fletcher32(&cur);
                cur.extend_from_slice(&sum.to_le_bytes());
            }
            // Compressing to a Vec cannot fail but for memory.
            Step::Zstd => cur = zstd::bulk::compress(&cur, level as i32).unwrap_or_default(),
            Step::Bzip2 => {
                let mut enc = bzip2::write::BzEncoder::new(
                    Vec::new(),
                    bzip2::Compression::new(level.clamp(1, 9)),
                );
                let _ = enc.write_all(&cur);
                cur = enc.finish().unwrap_or_default();
            }
            Step::Lz4 => cur = lz4_encode(&cur, LZ4_BLOCK),
            Step::Bitshuffle {
                elem,
                block,
                packing,
            } => cur = super::bitshuffle::encode(&cur, elem, block, packing),
            Step::Blosc => cur = blosc_encode(&cur, level),
            Step::Szip { cd } => cur = super::szip::encode(&cur, cd),
            Step::Builtin {
                filter, cd, len, ..
            } => cur = super::builtin::encode(filter, &cur, &cd[..len]),
        }
    }
    cur
}

/// The block size [`lz4_encode`] uses by default (the plugin's is 1 GiB,
/// so one block per chunk in practice).
const LZ4_BLOCK: usize = 1 << 30;

/// Decode the zstd frame(s) in `src` one-shot into `dst` (a slice, or a
/// `Vec`'s spare capacity, whose length it then sets), with this thread's
/// decoding context (about 100 KiB, made on first use). One-shot decoding
/// needs no window buffer, whose size the frame header (data of the file)
/// would choose, up to 128 MiB for a 10-byte frame: the output buffer is
/// the only one, and the caller bounds it.
pub(crate) fn zstd_decode_into<C>(src: &[u8], dst: &mut C) -> std::io::Result<usize>
where
    C: zstd::zstd_safe::WriteBuf + ?Sized,
{
    thread_local! {
        static DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { RefCell::new(None) };
    }
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new()?),
        };
        dctx.decompress_to_buffer(src, dst)
    })
}

/// Decode a zstd chunk into `dst`, failing past `limit` bytes.
fn zstd_decode(src: &[u8], dst: &mut Vec<u8>, limit: usize) -> Result<(), String> {
    dst.clear();
    dst.reserve_exact(limit);
    let n = zstd_decode_into(src, dst).map_err(|e| {
        format!("corrupt zstd stream, or one that decodes to more than {limit} bytes: {e}")
    })?;
    // A reused `dst` may have had room past `limit`.
    if n > limit {
        return Err(format!(
            "the zstd stream decodes to more than {limit} bytes"
        ));
    }
    Ok(())
}

/// Read all of `r` into `dst`, failing if it gives more than `limit` bytes.
fn read_limited(r: impl std::io::Read, dst: &mut Vec<u8>, limit: usize) -> std::io::Result<()> {
    use std::io::Read;
    dst.clear();
    r.take(limit as u64 + 1).read_to_end(dst)?;
    if dst.len() > limit {
        return Err(std::io::Error::other(format!(
            "it decodes to more than {limit} bytes"
        )));
    }
    Ok(())
}

/// Decode the HDF5 lz4 plugin's framing (see the module docs) into `dst`.
fn lz4_decode(src: &[u8], dst: &mut Vec<u8>, limit: usize) -> Result<(), String> {
    let bad = |why: &str| format!("corrupt lz4 chunk: {why}");
    let head = src
        .get(..12)
        .ok_or_else(|| bad("shorter than its header"))?;
    let total = u64::from_be_bytes(head[..8].try_into().unwrap_or([0; 8]));
    let block = u64::from(u32::from_be_bytes(head[8..12].try_into().unwrap_or([0; 4])));
    let total = usize::try_from(total)
        .ok()
        .filter(|&t| t <= limit)
        .ok_or_else(|| bad(&format!("it declares {total} bytes, more than {limit}")))?;
    if block == 0 && total > 0 {
        return Err(bad("a block size of 0"));
    }
    let block = usize::try_from(block).unwrap_or(usize::MAX).min(total);
    dst.clear();
    dst.resize(total, 0);
    let (mut done, mut at) = (0usize, 12usize);
    while done < total {
        let n = block.min(total - done);
        let size = src
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad("it ends inside a block header"))?;
        at += 4;
        let data = src
            .get(at..at.saturating_add(size))
            .ok_or_else(|| bad("it ends inside a block"))?;
        at += size;
        let out = &mut dst[done..done + n];
        if size == n {
            out.copy_from_slice(data);
        } else {
            let got =
                lz4_flex::block::decompress_into(data, out).map_err(|e| bad(&e.to_string()))?;
            if got != n {
                return Err(bad(&format!("a block decoded to {got} bytes, not {n}")));
            }
        }
        done += n;
    }
    Ok(())
}

/// Encode in the HDF5 lz4 plugin's framing, blocks of `block` bytes.
fn lz4_encode(src: &[u8], block: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() / 2 + 16);
    out.extend_from_slice(&(src.len() as u64).to_be_bytes());
    out.extend_from_slice(&(block.min(u32::MAX as usize) as u32).to_be_bytes());
    for b in src.chunks(block.max(1)) {
        let c = lz4_flex::block::compress(b);
        let (size, data) = if c.len() >= b.len() {
            (b.len(), b)
        } else {
            (c.len(), &c[..])
        };
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Decode one Blosc frame into `dst`, checking its header against `src`
/// first (c-blosc's own validation) so that no read or write leaves the
/// buffers.
fn blosc_decode(src: &[u8], dst: &mut Vec<u8>, limit: usize) -> Result<(), String> {
    if src.len() < 16 {
        return Err("corrupt blosc chunk: shorter than its header".into());
    }
    let mut nbytes = 0usize;
    // SAFETY: `src` is valid for `src.len()` (at least 16) bytes; c-blosc
    // reads only its 16-byte header and writes `nbytes`.
    let rc =
        unsafe { blosc_src::blosc_cbuffer_validate(src.as_ptr().cast(), src.len(), &mut nbytes) };
    if rc < 0 {
        return Err("corrupt blosc chunk: its header does not fit its length".into());
    }
    if nbytes > limit {
        return Err(format!(
            "corrupt blosc chunk: it declares {nbytes} bytes, more than {limit}"
        ));
    }
    dst.clear();
    dst.resize(nbytes, 0);
    // SAFETY: the frame was validated against `src.len()` above; `dst`
    // holds `nbytes` bytes, the most c-blosc writes (`destsize`); one
    // internal thread, so no global state is shared between workers.
    let n = unsafe {
        blosc_src::blosc_decompress_ctx(src.as_ptr().cast(), dst.as_mut_ptr().cast(), nbytes, 1)
    };
    if n < 0 || n as usize != nbytes {
        return Err(format!("corrupt blosc chunk (c-blosc returned {n})"));
    }
    Ok(())
}

/// Compress `src` as one Blosc frame (lz4, byte shuffle of 1-byte items).
fn blosc_encode(src: &[u8], level: u32) -> Vec<u8> {
    let mut out = vec![0u8; src.len() + 16];
    // SAFETY: `src` and `out` are valid for the lengths passed; c-blosc
    // writes at most `out.len()` bytes (`src.len() + BLOSC_MAX_OVERHEAD`).
    let n = unsafe {
        blosc_src::blosc_compress_ctx(
            level.min(9) as i32,
            1,
            1,
            src.len(),
            src.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            out.len(),
            c"lz4".as_ptr(),
            0,
            1,
        )
    };
    out.truncate(usize::try_from(n).unwrap_or(0));
    out
}

/// HDF5's shuffle: `dst[j * n + i] = src[i * size + j]` for `n = len / size`
/// elements; the `len % size` trailing bytes are copied unchanged.
pub(crate) fn shuffle(src: &[u8], size: usize, dst: &mut [u8]) {
    let n = src.len().checked_div(size).unwrap_or(0);
    if size <= 1 || n <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    for (j, plane) in dst[..n * size].chunks_exact_mut(n).enumerate() {
        for (d, &b) in plane.iter_mut().zip(src[j..n * size].iter().step_by(size)) {
            *d = b;
        }
    }
    dst[n * size..].copy_from_slice(&src[n * size..]);
}

/// The inverse of [`shuffle`].
pub(crate) fn unshuffle(src: &[u8], size: usize, dst: &mut [u8]) {
    let n = src.len().checked_div(size).unwrap_or(0);
    if size <= 1 || n <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    // One pass per byte plane: zipped iterators carry no bounds checks.
    for (j, plane) in src[..n * size].chunks_exact(n).enumerate() {
        for (d, &b) in dst[j..n * size].iter_mut().step_by(size).zip(plane) {
            *d = b;
        }
    }
    dst[n * size..].copy_from_slice(&src[n * size..]);
}

/// HDF5's Fletcher32 (`H5_checksum_fletcher32`): sums over big-endian
/// 16-bit words, a trailing odd byte counting as the high byte of a word.
pub(crate) fn fletcher32(data: &[u8]) -> u32 {
    let (mut sum1, mut sum2) = (0u32, 0u32);
    let words = data.chunks_exact(2);
    let tail = words.remainder();
    // 360 words keep both sums below 2^32 before folding (as libhdf5 does).
    let mut left = 360;
    for w in words {
        sum1 += (u32::from(w[0]) << 8) | u32::from(w[1]);
        sum2 += sum1;
        left -= 1;
        if left == 0 {
            sum1 = (sum1 & 0xffff) + (sum1 >> 16);
            sum2 = (sum2 & 0xffff) + (sum2 >> 16);
            left = 360;
        }
    }
    if left != 360 {
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if let [b] = tail {
        sum1 += u32::from(*b) << 8;
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    (sum2 << 16) | sum1
}

/// The checksum as some older HDF5 versions stored it: bytes swapped within each 16-bit half.
fn swap_halves(v: u32) -> u32 {
    ((v & 0x00ff_00ff) << 8) | ((v & 0xff00_ff00) >> 8)
}

/// Inflate the zlib stream `src` into `dst`, expecting about `hint` bytes
/// and refusing to produce more than `limit`.
pub(crate) fn inflate(
    src: &[u8],
    dst: &mut Vec<u8>,
    hint: usize,
    limit: usize,
) -> Result<(), String> {
    let mut d = Decompress::new(true);
    dst.clear();
    dst.reserve_exact(hint.clamp(64, limit.max(64)));
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let consumed = usize::try_from(in0).unwrap_or(usize::MAX).min(src.len());
        // No `Finish`: given it, a backend may try the whole stream in one
        // call and fail it when the first buffer is too small.
        let status = d
            .decompress_vec(&src[consumed..], dst, FlushDecompress::None)
            .map_err(|e| format!("corrupt deflate stream: {e}"))?;
        // `dst` may come with more room than `limit` (a reused buffer).
        if dst.len() > limit {
            return Err(format!(
                "the deflate stream decodes to more than {limit} bytes"
            ));
        }
        if status == Status::StreamEnd {
            return Ok(());
        }
        if dst.len() == dst.capacity() {
            if dst.len() >= limit {
                return Err(format!(
                    "the deflate stream decodes to more than {limit} bytes"
                ));
            }
            let grow = (dst.len() / 2).max(64).min(limit - dst.len());
            dst.reserve_exact(grow);
        } else if d.total_in() == in0 && d.total_out() == out0 {
            return Err("truncated deflate stream".to_string());
        }
    }
}

/// zlib-compress `src` at `level` (0..=9).
pub(crate) fn deflate(src: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(src.len() / 2 + 64),
        flate2::Compression::new(level.min(9)),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(src);
    enc.finish().unwrap_or_default()
}

/// Copy the box `[0, sub[d])` of a C-order array of shape `full` (elements
/// of `size` bytes) from `src` to a dense C-order `dst` of shape `sub`
/// (`trim`), or the other way round (`pad`, `dst` pre-filled).
pub(crate) fn copy_box(
    src: &[u8],
    full: &[usize],
    sub: &[usize],
    size: usize,
    dst: &mut [u8],
    to_sub: bool,
) {
    box_rows(full, sub, size, |foff, soff, row| {
        if to_sub {
            dst[soff..soff + row].copy_from_slice(&src[foff..foff + row]);
        } else {
            dst[foff..foff + row].copy_from_slice(&src[soff..soff + row]);
        }
    });
}

/// [`copy_box`]'s trim into memory not yet initialised: every byte of
/// `dst` (the dense box, `sub` elements) is written.
pub(crate) fn trim_uninit(
    src: &[u8],
    full: &[usize],
    sub: &[usize],
    size: usize,
    dst: &mut [MaybeUninit<u8>],
) {
    box_rows(full, sub, size, |foff, soff, row| {
        for (d, &s) in dst[soff..soff + row].iter_mut().zip(&src[foff..foff + row]) {
            d.write(s);
        }
    });
}

/// The rows of the box `[0, sub[d])` of a C-order array of shape `full`
/// (elements of `size` bytes): `f(offset in full, offset in the dense box,
/// row bytes)` for each, in order. A box as large as `full` is one row.
fn box_rows(full: &[usize], sub: &[usize], size: usize, mut f: impl FnMut(usize, usize, usize)) {
    let nd = full.len();
    if nd == 0 || full == sub {
        f(0, 0, sub.iter().product::<usize>() * size);
        return;
    }
    if sub.contains(&0) {
        return;
    }
    let row = sub[nd - 1] * size;
    let mut full_strides = vec![size; nd];
    for d in (0..nd - 1).rev() {
        full_strides[d] = full_strides[d + 1] * full[d + 1];
    }
    let rows: usize = sub[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd - 1];
    for r in 0..rows {
        let foff: usize = idx.iter().zip(&full_strides).map(|(i, s)| i * s).sum();
        f(foff, r * row, row);
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            if idx[d] < sub[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Reverse the bytes of every `size`-byte element in place (big-endian <-> little-endian).
pub(crate) fn swap_bytes(buf: &mut [u8], size: usize) {
    if size > 1 {
        for el in buf.chunks_exact_mut(size) {
            el.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_round_trip_with_tail() {
        let src: Vec<u8> = (0..23).collect();
        let mut s = vec![0; 23];
        shuffle(&src, 4, &mut s);
        // 5 elements of 4 bytes, then a 3-byte tail.
        assert_eq!(&s[..5], &[0, 4, 8, 12, 16]);
        assert_eq!(&s[20..], &[20, 21, 22]);
        let mut back = vec![0; 23];
        unshuffle(&s, 4, &mut back);
        assert_eq!(back, src);
    }

    #[test]
    fn fletcher32_known_values() {
        // Closed form for short inputs: words 0x0102, 0x0304 -> sum1 = 0x0406, sum2 = 0x0102 + 0x0406.
        assert_eq!(fletcher32(&[1, 2, 3, 4]), (0x0508 << 16) | 0x0406);
        // Odd length: the last byte is the high byte of a word.
        assert_eq!(fletcher32(&[1, 2, 3]), (0x0504 << 16) | 0x0402);
        // Long input exercises the folding; compare with an unfolded u64 reference.
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let (mut a, mut b) = (0u64, 0u64);
        for w in data.chunks(2) {
            a = (a + ((u64::from(w[0]) << 8) | w.get(1).map_or(0, |&x| u64::from(x)))) % 65535;
            b = (b + a) % 65535;
        }
        let got = fletcher32(&data);
        assert_eq!(u64::from(got & 0xffff) % 65535, a);
        assert_eq!(u64::from(got >> 16) % 65535, b);
    }

    #[test]
    fn pipeline_round_trip_and_corruption() {
        let raw: Vec<u8> = (0..4000u32)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect();
        let pipe = [Step::Shuffle { size: 4 }, Step::Deflate, Step::Fletcher32];
        let enc = encode(&raw, &pipe, 6);
        assert!(enc.len() < raw.len());
        let (mut cur, mut tmp) = (enc.clone(), Vec::new());
        decode(&mut cur, &mut tmp, &pipe, 0, raw.len()).unwrap();
        assert_eq!(cur, raw);
        let mut bad = enc.clone();
        bad[10] ^= 0xff;
        let mut cur = bad;
        let err = decode(&mut cur, &mut tmp, &pipe, 0, raw.len()).unwrap_err();
        assert!(err.contains("fletcher32"), "{err}");
        // Without the checksum, a damaged deflate stream is reported, never a panic.
        let pipe2 = [Step::Shuffle { size: 4 }, Step::Deflate];
        let mut cur = encode(&raw, &pipe2, 6);
        cur.truncate(cur.len() / 2);
        assert!(decode(&mut cur, &mut tmp, &pipe2, 0, raw.len()).is_err());
        let mut cur = vec![0x78, 0x9c, 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&mut cur, &mut tmp, &pipe2, 0, raw.len()).is_err());
        // A filter skipped by the mask (bit 1 = deflate) is not run.
        let mut cur = encode(&raw, &[Step::Shuffle { size: 4 }], 0);
        decode(&mut cur, &mut tmp, &pipe2, 0b10, raw.len()).unwrap();
        assert_eq!(cur, raw);
    }

    #[test]
    fn plugin_filters_round_trip_and_refuse_corruption() {
        let raw: Vec<u8> = (0..5000u32)
            .flat_map(|i| ((i % 97) as f64 * 0.25).to_le_bytes())
            .collect();
        for step in [Step::Zstd, Step::Lz4, Step::Blosc, Step::Bzip2] {
            for pipe in [
                vec![step],
                vec![Step::Shuffle { size: 8 }, step, Step::Fletcher32],
            ] {
                let enc = encode(&raw, &pipe, 5);
                assert!(enc.len() < raw.len() / 2, "{step:?} compresses");
                let (mut cur, mut tmp) = (enc.clone(), Vec::new());
                decode(&mut cur, &mut tmp, &pipe, 0, raw.len()).unwrap();
                assert!(cur == raw, "{step:?} round trip");
                // Truncated or damaged: an error, never a panic or a wrong length.
                for cut in [0, 1, 11, 12, 15, 16, enc.len() / 2, enc.len() - 1] {
                    let mut cur = enc[..cut].to_vec();
                    assert!(decode(&mut cur, &mut tmp, &pipe, 0, raw.len()).is_err());
                }
                for at in (0..enc.len()).step_by(enc.len() / 97 + 1) {
                    let mut cur = enc.clone();
                    cur[at] ^= 0x5a;
                    if decode(&mut cur, &mut tmp, &pipe, 0, raw.len()).is_ok() {
                        assert_eq!(cur.len(), raw.len());
                    }
                }
            }
        }
        // A stream that declares or yields more than the chunk is refused
        // before it is decoded in full.
        let big = vec![7u8; 1 << 20];
        for step in [Step::Zstd, Step::Lz4, Step::Blosc, Step::Bzip2] {
            let mut cur = encode(&big, &[step], 5);
            let e = decode(&mut cur, &mut Vec::new(), &[step], 0, 1000).unwrap_err();
            assert!(
                e.contains("more than") || e.contains("decoded to"),
                "{step:?}: {e}"
            );
        }
        // LZ4 blocks: several of them, a raw (incompressible) one among them.
        let mut mixed: Vec<u8> = vec![1; 3000];
        mixed.extend((0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        let enc = lz4_encode(&mixed, 1024);
        let mut out = Vec::new();
        lz4_decode(&enc, &mut out, mixed.len()).unwrap();
        assert_eq!(out, mixed);
    }

    #[test]
    fn stages_that_grow_round_trip() {
        // Incompressible bytes bitshuffled in 8-element blocks with zstd
        // grow (a frame per 8 bytes), so the stages decoded before the
        // bitshuffle are larger than the chunk; each must still decode.
        let raw: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for elem in [1, 8] {
            let bits = Step::Bitshuffle {
                elem,
                block: 8,
                packing: Packing::Zstd,
            };
            for later in [
                vec![Step::Deflate],
                vec![Step::Zstd],
                vec![Step::Bzip2],
                vec![Step::Lz4, Step::Blosc, Step::Fletcher32],
                vec![Step::Deflate, Step::Zstd, Step::Blosc],
            ] {
                let mut pipe = vec![Step::Shuffle { size: 3 }, bits];
                pipe.extend(later);
                for level in [0, 1, 9] {
                    let enc = encode(&raw, &pipe, level);
                    let (mut cur, mut tmp) = (enc, Vec::new());
                    decode(&mut cur, &mut tmp, &pipe, 0, raw.len())
                        .unwrap_or_else(|e| panic!("{pipe:?} level {level}: {e}"));
                    assert!(cur == raw, "{pipe:?} level {level}");
                }
            }
        }
        // A deflate stream larger than the first guess of its size grows
        // its buffer rather than failing.
        let enc = deflate(&raw, 6);
        let mut out = Vec::new();
        inflate(&enc, &mut out, 16, raw.len()).unwrap();
        assert!(out == raw);
        // ... but not past its limit.
        let e = inflate(&enc, &mut out, 16, 1000).unwrap_err();
        assert!(e.contains("more than 1000"), "{e}");
    }

    #[test]
    fn a_zstd_frame_declaring_a_huge_window_decodes_without_one() {
        // A 16-byte frame whose header asks for a 2 GiB window (window
        // descriptor exponent 21, no content size), then one raw block of
        // 5 bytes. A streaming decoder would allocate the window (or
        // refuse it past 128 MiB); decoded one-shot it needs none.
        let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
        frame.extend([0x00, 21 << 3]);
        frame.extend([(5 << 3) | 1, 0, 0]);
        frame.extend(b"hello");
        let (mut cur, mut tmp) = (frame, Vec::new());
        decode(&mut cur, &mut tmp, &[Step::Zstd], 0, 5).unwrap();
        assert_eq!(cur, b"hello");
    }

    #[test]
    fn box_trim_and_pad() {
        // full 3x4 of u16, sub 2x3
        let full: Vec<u8> = (0..12u16).flat_map(|v| v.to_ne_bytes()).collect();
        let mut sub = vec![0u8; 12];
        copy_box(&full, &[3, 4], &[2, 3], 2, &mut sub, true);
        let vals: Vec<u16> = sub
            .chunks(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(vals, vec![0, 1, 2, 4, 5, 6]);
        let mut padded = vec![0u8; 24];
        copy_box(&sub, &[3, 4], &[2, 3], 2, &mut padded, false);
        let vals: Vec<u16> = padded
            .chunks(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(vals, vec![0, 1, 2, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
    }
}
