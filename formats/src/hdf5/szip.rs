//! szip (`H5Z_FILTER_SZIP`, filter 4) through the szip library libhdf5 is
//! linked with (libaec's `libsz`, or the original SZIP), so that ndstream,
//! not libhdf5, checks what a chunk decodes to.
//!
//! libhdf5's szip filter trusts a chunk's stored length: a chunk is a
//! 4-byte little-endian decoded length, then the compressed stream, and
//! libhdf5 1.10 allocates that length, decodes into it, and copies a whole
//! chunk out of the result however short it is (a crafted file makes it
//! read past its buffer). Here the length must be one the chunk can hold
//! before anything is allocated, and the decoded length is checked.
//!
//! The library is found at run time, through the libhdf5 this process
//! loaded ([`super::linked`]), so a libhdf5 built without szip still
//! links; there the symbols are missing, [`available`] is false, and such
//! datasets are read by libhdf5 (which then refuses them itself).

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

/// The szip parameter block (`SZ_com_t`).
#[repr(C)]
struct SzCom {
    options_mask: c_int,
    bits_per_pixel: c_int,
    pixels_per_block: c_int,
    pixels_per_scanline: c_int,
}

/// `SZ_BufftoBuffCompress` and `SZ_BufftoBuffDecompress`: `(dest,
/// &mut dest_len, source, source_len, &params)`, 0 (`SZ_OK`) on success.
type BuffToBuff =
    unsafe extern "C" fn(*mut c_void, *mut usize, *const c_void, usize, *const SzCom) -> c_int;

struct Lib {
    compress: BuffToBuff,
    decompress: BuffToBuff,
}

/// The szip functions of the libhdf5 in this process, if it has them.
fn lib() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(|| {
        // SAFETY: both symbols have the `BuffToBuff` signature in every
        // szip library (szlib.h); `symbol` returns no null pointer.
        let f = |name: &CStr| {
            super::linked::symbol(name)
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, BuffToBuff>(p) })
        };
        Some(Lib {
            compress: f(c"SZ_BufftoBuffCompress")?,
            decompress: f(c"SZ_BufftoBuffDecompress")?,
        })
    })
    .as_ref()
}

/// Whether szip chunks can be decoded here (see the module docs).
pub(crate) fn available() -> bool {
    lib().is_some()
}

/// The filter's four stored parameters (`cd_values` after libhdf5's
/// `set_local`): options mask, pixels per block, bits per pixel, pixels per
/// scanline.
fn params(cd: [u32; 4]) -> Option<SzCom> {
    let [mask, ppb, bpp, pps] = cd;
    Some(SzCom {
        options_mask: c_int::try_from(mask).ok()?,
        bits_per_pixel: c_int::try_from(bpp).ok()?,
        pixels_per_block: c_int::try_from(ppb).ok()?,
        pixels_per_scanline: c_int::try_from(pps).ok()?,
    })
}

/// Decode one szip chunk `src` into `dst` (replacing its contents): at
/// most `limit` bytes, the most its encoder's input can have been.
///
/// # Errors
/// A chunk too short for its length, a length over `limit`, a stream the
/// library refuses, or one that decodes to less than its length.
pub(crate) fn decode(
    src: &[u8],
    dst: &mut Vec<u8>,
    cd: [u32; 4],
    limit: usize,
) -> Result<(), String> {
    let lib = lib().ok_or("szip is not available in this build of libhdf5")?;
    let p = params(cd).ok_or_else(|| format!("szip: invalid parameters {cd:?}"))?;
    let Some((len, stream)) = src.split_first_chunk::<4>() else {
        return Err(format!(
            "szip: the chunk is {} bytes, too short to hold its length",
            src.len()
        ));
    };
    let want = u32::from_le_bytes(*len) as usize;
    if want > limit {
        return Err(format!(
            "szip: the chunk says it decodes to {want} bytes, more than the {limit} it can hold"
        ));
    }
    dst.clear();
    dst.resize(want, 0);
    let mut got = want;
    // SAFETY: `dst` holds `got` writable bytes and `stream` its length;
    // the library writes at most `got` bytes and sets `got` to how many.
    let rc = unsafe {
        (lib.decompress)(
            dst.as_mut_ptr().cast(),
            &mut got,
            stream.as_ptr().cast(),
            stream.len(),
            &p,
        )
    };
    if rc != 0 {
        return Err(format!("corrupt szip stream (szip error {rc})"));
    }
    if got != want {
        return Err(format!(
            "szip: the chunk decoded to {got} bytes, its length says {want}"
        ));
    }
    Ok(())
}

/// Encode `src` as one szip chunk (its length, then the stream), as
/// libhdf5 writes it; empty if the library is missing or fails.
pub(crate) fn encode(src: &[u8], cd: [u32; 4]) -> Vec<u8> {
    let (Some(lib), Some(p), Ok(len)) = (lib(), params(cd), u32::try_from(src.len())) else {
        return Vec::new();
    };
    // Room for a stream that does not compress (szip falls back to raw
    // blocks, a few bits each).
    let mut out = vec![0u8; 4 + src.len() + src.len() / 8 + 1024];
    out[..4].copy_from_slice(&len.to_le_bytes());
    let mut n = out.len() - 4;
    // SAFETY: `out[4..]` holds `n` writable bytes and `src` its length.
    let rc = unsafe {
        (lib.compress)(
            out[4..].as_mut_ptr().cast(),
            &mut n,
            src.as_ptr().cast(),
            src.len(),
            &p,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    out.truncate(4 + n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RAW | NN | LSB, as libhdf5 stores `H5Pset_szip(NN, 8)` for little-endian
    /// 4-byte elements, 250 to a scanline.
    const CD: [u32; 4] = [128 | 32 | 8, 8, 32, 250];

    #[test]
    fn chunks_round_trip_and_bad_lengths_are_errors() {
        if !available() {
            eprintln!("this libhdf5 has no szip; skipped");
            return;
        }
        let raw: Vec<u8> = (0..250i32)
            .flat_map(|i| (i * 37 % 101 - 50).to_le_bytes())
            .collect();
        let enc = encode(&raw, CD);
        assert_eq!(enc[..4], 1000u32.to_le_bytes());
        let mut out = Vec::new();
        decode(&enc, &mut out, CD, 1000).unwrap();
        assert_eq!(out, raw);

        let e = decode(&enc[..3], &mut out, CD, 1000).unwrap_err();
        assert!(e.contains("3 bytes, too short"), "{e}");
        let e = decode(&enc, &mut out, CD, 999).unwrap_err();
        assert!(
            e.contains("decodes to 1000 bytes, more than the 999"),
            "{e}"
        );
        // A length short of the stream decodes no further than it (the
        // pipeline then refuses a chunk of the wrong length).
        let mut short = enc.clone();
        short[..4].copy_from_slice(&8u32.to_le_bytes());
        match decode(&short, &mut out, CD, 1000) {
            Ok(()) => assert_eq!(out.len(), 8),
            Err(e) => assert!(e.contains("szip"), "{e}"),
        }
    }
}
