//! libhdf5's own n-bit (`H5Z_FILTER_NBIT`, 5) and scale-offset
//! (`H5Z_FILTER_SCALEOFFSET`, 6) filters, run as steps of ndstream's
//! pipeline ([`super::codec`]) so that ndstream checks every length around
//! them.
//!
//! libhdf5 1.10 decodes both without looking at how many bytes a chunk
//! holds: n-bit unpacks `cd_values[2]` elements of their precision's bits,
//! scale-offset a 21-byte header and then elements of the minimum bits the
//! header states, and both read past a chunk that is shorter (a crafted
//! file returned heap memory as data, or read past its buffer in a
//! `memcpy`). Here the chunk must hold every byte the decoder will read,
//! the parameters must describe the dataset's elements, and the decoded
//! length is checked by the pipeline; the bit-level decoding is still
//! libhdf5's own function, called under the HDF5 lock (it reports errors
//! on libhdf5's error stack), on a buffer from `H5allocate_memory` as it
//! expects.
//!
//! The functions are found in the loaded libhdf5 ([`super::linked`]);
//! where they are not, [`available`] is false and such datasets are read
//! by libhdf5 as before.

use std::ffi::{c_uint, c_void, CStr};
use std::sync::OnceLock;

use hdf5_sys::h5z::{H5Z_class2_t, H5Z_FLAG_REVERSE};

/// Which of libhdf5's filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Nbit,
    ScaleOffset,
}

/// `H5Z_func_t`, not optional.
type FilterFn = unsafe extern "C" fn(
    c_uint,
    usize,
    *const c_uint,
    usize,
    *mut usize,
    *mut *mut c_void,
) -> usize;

/// The parameters each filter's `set_local` stores for an integer or
/// floating-point dataset (n-bit's for an atomic type).
pub(crate) const NBIT_PARAMS: usize = 8;
pub(crate) const SCALEOFFSET_PARAMS: usize = 20;

/// The header scale-offset writes before its packed elements: the minimum
/// bits (4 bytes), the minimum value's size (1) and value (up to 16).
const SO_HEADER: usize = 21;

impl Builtin {
    fn name(self) -> &'static str {
        match self {
            Builtin::Nbit => "nbit",
            Builtin::ScaleOffset => "scaleoffset",
        }
    }

    /// The filter function of libhdf5's class for this filter.
    fn function(self) -> Option<FilterFn> {
        static NBIT: OnceLock<Option<FilterFn>> = OnceLock::new();
        static SO: OnceLock<Option<FilterFn>> = OnceLock::new();
        let (cell, class): (_, &CStr) = match self {
            Builtin::Nbit => (&NBIT, c"H5Z_NBIT"),
            Builtin::ScaleOffset => (&SO, c"H5Z_SCALEOFFSET"),
        };
        *cell.get_or_init(|| {
            let p = super::linked::symbol(class)?;
            // SAFETY: the symbol is libhdf5's `const H5Z_class2_t
            // H5Z_NBIT[1]` (or `H5Z_SCALEOFFSET`), immutable for the life
            // of the library, which is never unloaded.
            let class = unsafe { &*(p as *const H5Z_class2_t) };
            class.filter
        })
    }

    /// Whether this filter can be run here (see the module docs).
    pub(crate) fn available(self) -> bool {
        self.function().is_some()
    }
}

/// Decode one chunk `src` of a `filter` with stored parameters `cd` into
/// `dst` (replacing its contents): at most `limit` bytes, the most its
/// encoder's input can have been, for elements of `itemsize` bytes.
///
/// # Errors
/// Parameters that do not describe such elements, a decoded size over
/// `limit`, a chunk shorter than what the decoder reads, or libhdf5's
/// failure.
pub(crate) fn decode(
    filter: Builtin,
    src: &[u8],
    dst: &mut Vec<u8>,
    cd: &[u32],
    itemsize: usize,
    limit: usize,
) -> Result<(), String> {
    let name = filter.name();
    let need = match filter {
        Builtin::Nbit => nbit_reads(cd, itemsize)?,
        Builtin::ScaleOffset => scaleoffset_reads(src, cd, itemsize)?,
    };
    let Some(need) = need else {
        // Stored as it is (n-bit at full precision, scale-offset of
        // integers at their full width).
        dst.clear();
        dst.extend_from_slice(src);
        return Ok(());
    };
    // Both decode `cd_values[2]` elements of `cd_values[4]` bytes.
    let out = (cd[2] as usize).saturating_mul(itemsize);
    if out > limit {
        return Err(format!(
            "{name}: its parameters decode {out} bytes, more than the {limit} a chunk can hold"
        ));
    }
    if src.len() < need {
        return Err(format!(
            "{name}: the chunk holds {} bytes; decoding it reads {need}",
            src.len()
        ));
    }
    let f = filter
        .function()
        .ok_or_else(|| format!("{name} is not available in this build of libhdf5"))?;
    run(f, true, cd, src, dst).map_err(|why| format!("{name}: {why}"))?;
    if dst.len() != out {
        return Err(format!(
            "{name}: the chunk decoded to {} bytes, its parameters say {out}",
            dst.len()
        ));
    }
    Ok(())
}

/// How many bytes n-bit's decoder reads from a chunk with parameters `cd`,
/// or `None` where it leaves the chunk as it is.
fn nbit_reads(cd: &[u32], itemsize: usize) -> Result<Option<usize>, String> {
    // cd: count, "no need to compress", elements, class (1: atomic), size,
    // byte order, precision, offset.
    let bad = |why: &str| Err(format!("nbit: {why} (parameters {cd:?})"));
    if cd.len() != NBIT_PARAMS || cd[0] as usize != NBIT_PARAMS {
        return bad("not the parameters of an integer or floating-point type");
    }
    if cd[1] != 0 {
        return Ok(None);
    }
    let (size, precision, offset) = (cd[4] as usize, cd[6] as usize, cd[7] as usize);
    if cd[3] != 1 || size != itemsize {
        return bad(&format!("not an atomic type of {itemsize} bytes"));
    }
    if precision == 0 || precision.saturating_add(offset) > size * 8 || cd[5] > 1 {
        return bad("a precision and offset outside the type");
    }
    // Each element is `precision` bits, packed from the first byte on.
    Ok(Some((cd[2] as usize).saturating_mul(precision).div_ceil(8)))
}

/// How many bytes scale-offset's decoder reads from the chunk `src` with
/// parameters `cd`, or `None` where it leaves the chunk as it is.
fn scaleoffset_reads(src: &[u8], cd: &[u32], itemsize: usize) -> Result<Option<usize>, String> {
    // cd: scale type (0: float D-scale, 2: integer), scale factor,
    // elements, class (0: integer, 1: float), size, sign, byte order, fill
    // value defined, then the fill value.
    let bad = |why: &str| {
        Err(format!(
            "scaleoffset: {why} (parameters {:?})",
            &cd[..8.min(cd.len())]
        ))
    };
    if cd.len() != SCALEOFFSET_PARAMS {
        return bad("not the parameters of an integer or floating-point type");
    }
    let size = cd[4] as usize;
    let (integer, float) = (cd[3] == 0 && cd[0] == 2, cd[3] == 1 && cd[0] == 0);
    if size != itemsize || !matches!(size, 1 | 2 | 4 | 8) || !(integer || float) || cd[6] > 1 {
        return bad(&format!(
            "not an integer or D-scaled float type of {itemsize} bytes"
        ));
    }
    if integer && cd[1] as usize == size * 8 {
        return Ok(None);
    }
    let Some(head) = src.first_chunk::<4>() else {
        return Ok(Some(SO_HEADER));
    };
    let minbits = u32::from_le_bytes(*head) as usize;
    let elems = cd[2] as usize;
    if minbits > size * 8 {
        return Err(format!(
            "scaleoffset: the chunk states {minbits} bits an element, more than its {size}-byte type has"
        ));
    }
    Ok(Some(if minbits == size * 8 {
        SO_HEADER.saturating_add(elems.saturating_mul(size))
    } else if minbits == 0 {
        SO_HEADER
    } else {
        // libhdf5 writes a byte more than the packed bits fill (its
        // encoder's size); its decoder reads no further than that.
        SO_HEADER
            .saturating_add(elems.saturating_mul(minbits) / 8)
            .saturating_add(1)
    }))
}

/// Encode the raw bytes of a full chunk with `filter`, as libhdf5 writes
/// it; empty if libhdf5 lacks the filter or fails.
pub(crate) fn encode(filter: Builtin, src: &[u8], cd: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(f) = filter.function() {
        if run(f, false, cd, src, &mut out).is_err() {
            out.clear();
        }
    }
    out
}

/// Run libhdf5's filter function `f` on `src` (backwards, decoding, where
/// `reverse`), into `dst`.
fn run(
    f: FilterFn,
    reverse: bool,
    cd: &[u32],
    src: &[u8],
    dst: &mut Vec<u8>,
) -> Result<(), String> {
    hdf5::sync::sync(|| {
        // SAFETY: under the HDF5 lock. `buf` is allocated by libhdf5 for
        // `src.len()` bytes (at least 1), as its filters expect: they free
        // it and hand back another, which is read for the length returned
        // (checked against the size they report) and freed here.
        unsafe {
            let mut size = src.len();
            let mut buf = hdf5_sys::h5::H5allocate_memory(size.max(1), 0);
            if buf.is_null() {
                return Err(format!("libhdf5 could not allocate {size} bytes"));
            }
            std::ptr::copy_nonoverlapping(src.as_ptr(), buf.cast::<u8>(), src.len());
            let n = f(
                if reverse { H5Z_FLAG_REVERSE } else { 0 },
                cd.len(),
                cd.as_ptr(),
                src.len(),
                &mut size,
                &mut buf,
            );
            let r = if n == 0 || n > size || buf.is_null() {
                hdf5_sys::h5e::H5Eclear2(hdf5_sys::h5e::H5E_DEFAULT);
                Err("libhdf5 failed to decode the chunk".to_string())
            } else {
                dst.clear();
                dst.extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), n));
                Ok(())
            };
            if !buf.is_null() {
                hdf5_sys::h5::H5free_memory(buf);
            }
            r
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n-bit's parameters for 100 `<i4` of 20 bits (as libhdf5 stores them).
    const NBIT: [u32; 8] = [8, 0, 100, 1, 4, 0, 20, 0];
    /// scale-offset's for 100 `<i4`, minimum bits found per chunk, no fill.
    const SO: [u32; 20] = [2, 0, 100, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn raw() -> Vec<u8> {
        (0..100i32)
            .flat_map(|i| (i * 5003 % 400_000 - 200_000).to_le_bytes())
            .collect()
    }

    /// What n-bit gives back: each element's low 20 bits (libhdf5's type
    /// conversion, not the filter, sign-extends them).
    fn low_bits() -> Vec<u8> {
        raw()
            .chunks(4)
            .flat_map(|b| (u32::from_le_bytes(b.try_into().unwrap()) & 0xf_ffff).to_le_bytes())
            .collect()
    }

    #[test]
    fn libhdf5s_filters_round_trip() {
        for (filter, cd, want) in [
            (Builtin::Nbit, &NBIT[..], low_bits()),
            (Builtin::ScaleOffset, &SO[..], raw()),
        ] {
            assert!(filter.available(), "{filter:?}");
            let enc = encode(filter, &raw(), cd);
            assert!(
                !enc.is_empty() && enc.len() < 400,
                "{filter:?}: {}",
                enc.len()
            );
            let mut out = Vec::new();
            decode(filter, &enc, &mut out, cd, 4, 400).unwrap();
            assert_eq!(out, want, "{filter:?}");
        }
    }

    #[test]
    fn chunks_shorter_than_what_the_decoder_reads_are_errors() {
        let mut out = Vec::new();
        let enc = encode(Builtin::Nbit, &raw(), &NBIT);
        // 100 elements of 20 bits, and a byte libhdf5 writes past them.
        assert_eq!(enc.len(), 251);
        decode(Builtin::Nbit, &enc[..250], &mut out, &NBIT, 4, 400).unwrap();
        assert_eq!(out, low_bits());
        let e = decode(Builtin::Nbit, &enc[..249], &mut out, &NBIT, 4, 400).unwrap_err();
        assert!(e.contains("holds 249 bytes; decoding it reads 250"), "{e}");

        let enc = encode(Builtin::ScaleOffset, &raw(), &SO);
        let minbits = u32::from_le_bytes(enc[..4].try_into().unwrap()) as usize;
        let need = 21 + 100 * minbits / 8 + 1;
        assert_eq!(enc.len(), need);
        let e = decode(
            Builtin::ScaleOffset,
            &enc[..need - 1],
            &mut out,
            &SO,
            4,
            400,
        )
        .unwrap_err();
        assert!(e.contains(&format!("decoding it reads {need}")), "{e}");
        // A chunk stating every bit of its elements holds them all.
        let mut full = enc.clone();
        full[..4].copy_from_slice(&32u32.to_le_bytes());
        let e = decode(Builtin::ScaleOffset, &full, &mut out, &SO, 4, 400).unwrap_err();
        assert!(e.contains("decoding it reads 421"), "{e}");
        full[..4].copy_from_slice(&33u32.to_le_bytes());
        let e = decode(Builtin::ScaleOffset, &full, &mut out, &SO, 4, 400).unwrap_err();
        assert!(e.contains("33 bits an element"), "{e}");
    }

    #[test]
    fn parameters_that_do_not_describe_the_elements_are_errors() {
        let mut out = Vec::new();
        let src = [0u8; 400];
        for (cd, why) in [
            ([8, 0, 100, 1, 2, 0, 20, 0], "not an atomic type of 4 bytes"),
            ([8, 0, 100, 1, 4, 0, 30, 4], "precision and offset outside"),
            ([8, 0, 100, 1, 4, 0, 0, 0], "precision and offset outside"),
            ([8, 0, 100, 2, 4, 0, 20, 0], "not an atomic type"),
        ] {
            let e = decode(Builtin::Nbit, &src, &mut out, &cd, 4, 400).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let e = decode(Builtin::Nbit, &src, &mut out, &NBIT[..7], 4, 400).unwrap_err();
        assert!(e.contains("not the parameters"), "{e}");
        // More elements than a chunk holds.
        let mut cd = NBIT;
        cd[2] = 1000;
        let e = decode(Builtin::Nbit, &src, &mut out, &cd, 4, 400).unwrap_err();
        assert!(e.contains("decode 4000 bytes, more than the 400"), "{e}");
        let mut cd = SO;
        cd[4] = 3;
        let e = decode(Builtin::ScaleOffset, &src, &mut out, &cd, 3, 300).unwrap_err();
        assert!(
            e.contains("not an integer or D-scaled float type of 3 bytes"),
            "{e}"
        );
    }
}
