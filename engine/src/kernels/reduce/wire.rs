//! A [`Partial`] as bytes and back, so a partial can travel between
//! processes (a task folded in one, merged in another).
//!
//! # Layout, version 1
//!
//! All integers are little-endian.
//!
//! | bytes      | field                                                         |
//! |------------|---------------------------------------------------------------|
//! | 4          | magic `NDRP`                                                  |
//! | 1          | version, 1                                                    |
//! | 1          | `n`, the length of the op's name                              |
//! | `n`        | the op's NumPy name ([`ReduceOp::name`]), ASCII               |
//! | 8          | the op's parameter, i64 (`ddof` or `k`; 0 for an op without)  |
//! | 1          | the input dtype: 0 bool, 1 int8, 2 int16, 3 int32, 4 int64, 5 uint8, 6 uint16, 7 uint32, 8 uint64, 9 float32, 10 float64 |
//! | 4          | `r`, the rank of the kept shape, u32                          |
//! | 8 `r`      | the kept shape, u64 each                                      |
//! | the rest   | the state, in its family's encoding                           |
//!
//! A family's state is a sequence of the items below, each vector holding
//! one item per kept element unless the family says otherwise (see the
//! `encode` of each family module); nothing follows the state.
//!
//! - u64, i64: 8 bytes; i128: 16 bytes; u32: 4 bytes; u8 and tags: 1 byte.
//! - f64: the 8 bytes of its IEEE-754 bits, so every value (the sign of a
//!   zero, a NaN's payload) comes back exactly.
//! - bool: one byte, 0 or 1 (anything else is refused).
//! - values of the input dtype: that dtype's little-endian bytes (NumPy's
//!   `'<f4'`, `'<i8'`, ...; bool as above).
//!
//! Reading never panics and never allocates more than the bytes given can
//! fill: garbage, truncated or mutated bytes are an [`Error`].

use super::{arg, boolean, extremes, moments, sums, topk};
use super::{Family, Partial, ReduceOp, Reduction, Stored};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The first bytes of every encoded partial.
const MAGIC: &[u8; 4] = b"NDRP";

/// The layout version this build writes and reads.
const VERSION: u8 = 1;

/// Dtype codes of the layout, by code. Deliberately not `DType::ALL`: a
/// code is part of the layout and must not move if that list is ever
/// reordered or grown; [`dtype_code`] is its inverse, and a new dtype
/// gets the next free code in both (the unit tests check they agree).
const DTYPES: [DType; 11] = [
    DType::Bool,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F32,
    DType::F64,
];

/// The layout's code of a dtype: an exhaustive match, so that a dtype
/// added to [`DType`] cannot be written without a code of its own.
fn dtype_code(d: DType) -> u8 {
    match d {
        DType::Bool => 0,
        DType::I8 => 1,
        DType::I16 => 2,
        DType::I32 => 3,
        DType::I64 => 4,
        DType::U8 => 5,
        DType::U16 => 6,
        DType::U32 => 7,
        DType::U64 => 8,
        DType::F32 => 9,
        DType::F64 => 10,
    }
}

fn garbage(reason: impl Into<String>) -> Error {
    Error::invalid("Partial::from_bytes", "bytes", reason)
}

impl Partial {
    /// The partial as bytes, in the versioned little-endian layout of
    /// `kernels/reduce/wire.rs`: the op, the input dtype, the kept shape
    /// and the family's state. [`from_bytes`](Partial::from_bytes) gives
    /// back a partial that merges and finalizes to the same bits.
    ///
    /// ```
    /// use ndstream_engine::{kernels::reduce::{self, Partial}, Block, ReduceOp};
    /// let a = Block::from(ndarray::arr1(&[1.5f64, f64::NAN, 4.0]).into_dyn());
    /// let op = ReduceOp::NanProd;
    /// let p = reduce::partial(op, &a, &[0], None, &[0], &[3]).unwrap();
    /// let q = Partial::from_bytes(&p.to_bytes()).unwrap();
    /// assert_eq!(reduce::finalize(op, q).unwrap().to_f64_vec(), vec![6.0]);
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(MAGIC);
        w.u8(VERSION);
        let name = self.op.name().as_bytes();
        w.u8(name.len() as u8);
        w.bytes(name);
        w.i64(self.op.param_value());
        w.u8(dtype_code(self.input));
        w.u32(self.kept.len() as u32);
        for &n in &self.kept {
            w.u64(n as u64);
        }
        self.state.encode(&mut w);
        w.buf
    }

    /// The partial [`to_bytes`](Partial::to_bytes) wrote.
    ///
    /// # Errors
    /// Bytes that are not a partial of this layout version: another magic
    /// or version, an unknown op or dtype, a parameter out of range, a kept
    /// shape too large, a state inconsistent with the op, dtype or shape,
    /// missing or extra bytes. Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Partial> {
        let mut r = Reader { bytes };
        if r.take(4)? != MAGIC {
            return Err(garbage("not an encoded partial (no NDRP magic)"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(garbage(format!(
                "layout version {version}; this build reads version {VERSION}"
            )));
        }
        let len = r.u8()? as usize;
        let name = r.take(len)?;
        let name = std::str::from_utf8(name).map_err(|_| garbage("the op name is not text"))?;
        let op =
            ReduceOp::from_name(name).ok_or_else(|| garbage(format!("unknown op `{name}`")))?;
        let param = r.i64()?;
        let op = match op.param() {
            Some(_) => op.with_param(param),
            None => (param == 0).then_some(op),
        }
        .ok_or_else(|| garbage(format!("parameter {param} out of range for {name}")))?;
        if matches!(op, ReduceOp::TopK { k: 0 } | ReduceOp::ArgTopK { k: 0 }) {
            return Err(garbage("topk with k = 0"));
        }
        let code = r.u8()?;
        let input = *DTYPES
            .get(code as usize)
            .ok_or_else(|| garbage(format!("unknown dtype code {code}")))?;
        let rank = r.u32()? as usize;
        // Each dimension takes 8 bytes: a rank the bytes cannot hold is
        // refused before anything is allocated.
        r.room(rank, 8)?;
        let mut kept = Vec::with_capacity(rank);
        for _ in 0..rank {
            let n = usize::try_from(r.u64()?).map_err(|_| garbage("kept dimension too large"))?;
            kept.push(n);
        }
        // No array can have more than isize::MAX elements, whatever its
        // zero-length axes (ndarray's own limit, checked before reshaping).
        kept.iter()
            .filter(|&&n| n != 0)
            .try_fold(1usize, |p, &n| p.checked_mul(n))
            .filter(|&p| p <= isize::MAX as usize)
            .ok_or_else(|| garbage(format!("kept shape {kept:?} too large")))?;
        let state = with_family!(op, R => R::wrap(R::decode(op, input, &kept, &mut r)?));
        if !r.bytes.is_empty() {
            return Err(garbage(format!("{} bytes after the state", r.bytes.len())));
        }
        Ok(Partial {
            op,
            input,
            kept,
            state,
        })
    }
}

/// Appends the items of the layout (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A u32.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    /// A u64.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// An i64.
    pub fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    /// u64s, no length.
    pub fn u64s(&mut self, v: &[u64]) {
        v.iter().for_each(|&x| self.u64(x));
    }

    /// i64s, no length.
    pub fn i64s(&mut self, v: &[i64]) {
        v.iter().for_each(|&x| self.i64(x));
    }

    /// i128s, no length.
    pub fn i128s(&mut self, v: &[i128]) {
        v.iter().for_each(|&x| self.bytes(&x.to_le_bytes()));
    }

    /// f64s as their bits, no length.
    pub fn f64s(&mut self, v: &[f64]) {
        v.iter().for_each(|&x| self.u64(x.to_bits()));
    }

    /// bools as 0/1 bytes, no length.
    pub fn bools(&mut self, v: &[bool]) {
        v.iter().for_each(|&x| self.u8(u8::from(x)));
    }

    /// The elements of `b` in C order, each as its dtype's little-endian
    /// bytes, no length or dtype.
    pub fn block(&mut self, b: &Block) {
        let mut bytes = b.to_ne_bytes();
        if cfg!(target_endian = "big") {
            bytes
                .chunks_exact_mut(b.dtype().size())
                .for_each(|e| e.reverse());
        }
        self.bytes(&bytes);
    }
}

/// Reads the items of the layout; every read checks the bytes left first.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(garbage(format!(
                "truncated: {n} more bytes wanted, {} left",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The bytes left hold `n` items of `size` bytes.
    ///
    /// # Errors
    /// They do not.
    pub fn room(&self, n: usize, size: usize) -> Result<usize> {
        n.checked_mul(size)
            .filter(|&b| b <= self.bytes.len())
            .ok_or_else(|| {
                garbage(format!(
                    "truncated: {n} items of {size} bytes wanted, {} bytes left",
                    self.bytes.len()
                ))
            })
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A u32.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A u64.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An i64.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A byte that must be 0 or 1.
    pub fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(garbage(format!("bool byte {b}"))),
        }
    }

    /// `n` u64s.
    pub fn u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        self.room(n, 8)?;
        (0..n).map(|_| self.u64()).collect()
    }

    /// `n` i64s.
    pub fn i64s(&mut self, n: usize) -> Result<Vec<i64>> {
        self.room(n, 8)?;
        (0..n).map(|_| self.i64()).collect()
    }

    /// `n` i128s.
    pub fn i128s(&mut self, n: usize) -> Result<Vec<i128>> {
        self.room(n, 16)?;
        (0..n)
            .map(|_| Ok(i128::from_le_bytes(self.array()?)))
            .collect()
    }

    /// `n` f64s from their bits.
    pub fn f64s(&mut self, n: usize) -> Result<Vec<f64>> {
        self.room(n, 8)?;
        (0..n).map(|_| Ok(f64::from_bits(self.u64()?))).collect()
    }

    /// `n` bools.
    pub fn bools(&mut self, n: usize) -> Result<Vec<bool>> {
        self.room(n, 1)?;
        (0..n).map(|_| self.bool()).collect()
    }

    /// A 1-D block of `n` elements of `dtype`, as
    /// [`Writer::block`] wrote it.
    pub fn block(&mut self, dtype: DType, n: usize) -> Result<Block> {
        let len = self.room(n, dtype.size())?;
        let mut bytes = self.take(len)?.to_vec();
        if cfg!(target_endian = "big") {
            bytes
                .chunks_exact_mut(dtype.size())
                .for_each(|e| e.reverse());
        }
        Block::from_ne_bytes(dtype, &[n], &bytes)
            .ok_or_else(|| garbage(format!("{n} values of {dtype} expected")))
    }

    /// A tag byte, which must be `want`.
    pub fn tag(&mut self, want: u8, what: &str) -> Result<()> {
        let t = self.u8()?;
        if t != want {
            return Err(garbage(format!("{what}: state tag {t}, expected {want}")));
        }
        Ok(())
    }
}

/// The error for a state that does not fit its op or shape.
pub(super) fn inconsistent(reason: impl Into<String>) -> Error {
    garbage(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dtype has a code, the codes are the positions in `DTYPES`, and
    /// they are the layout's version-1 codes (changing one breaks every
    /// partial already written).
    #[test]
    fn dtype_codes_are_stable_and_invert() {
        for d in DType::ALL {
            assert_eq!(DTYPES[dtype_code(d) as usize], d, "{d}");
        }
        assert_eq!(DTYPES.len(), DType::ALL.len());
        let names: Vec<String> = DTYPES.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            names,
            [
                "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float32", "float64"
            ]
        );
    }
}
