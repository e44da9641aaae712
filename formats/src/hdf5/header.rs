//! A check of an object's header messages before libhdf5 decodes them.
//!
//! libhdf5 1.10 trusts the datatype messages it decodes. An enum whose
//! declared size exceeds its base type's makes `H5T_copy` read past the
//! buffer the decoder allocated (found by fuzzing `hdf5_open`); a compound
//! member placed past the compound's end, an array whose size is not its
//! element's times its extent, or a float whose bit fields lie outside its
//! precision send later conversions past their buffers the same way; an
//! attribute whose value is shorter than its dataspace times its datatype
//! is copied from past its message. So before ndstream opens a dataset or
//! reads an object's attributes, it reads that object's header itself
//! (with plain positioned reads, following continuation chunks) and checks
//! every datatype message, the datatype and value length of every
//! attribute message, and the datatype of a committed (named) datatype one
//! of them refers to. An object that fails is not opened: its dataset is
//! refused with an error naming it, its attributes are left out.
//!
//! The check reads only what libhdf5 would read, at a capped cost
//! ([`BUDGET`] bytes, [`MAX_CHUNKS`] header chunks). What it does not
//! reach is read as it is: attributes kept in dense storage (a fractal
//! heap, used by files in the 1.8+ format for objects with more than 8
//! attributes) and datatypes kept in a shared-message heap.
//!
//! An object reached through an external link lives in another file; the
//! check refuses it (ndstream reads only the file it is named).

use std::ffi::CString;
use std::fs::File;
use std::os::unix::fs::FileExt;

use hdf5_sys::h5o::{H5O_info1_t, H5O_INFO_BASIC};

/// Header bytes the check reads for one object, at most.
const BUDGET: u64 = 16 << 20;
/// Header chunks (the first and its continuations) followed, at most.
const MAX_CHUNKS: usize = 4096;
/// Datatypes nested deeper than this are refused.
const MAX_DEPTH: usize = 32;
/// HDF5's largest dataspace rank.
const MAX_RANK: usize = 32;

const MSG_DATASPACE: u16 = 0x0001;
const MSG_DATATYPE: u16 = 0x0003;
const MSG_FILL_OLD: u16 = 0x0004;
const MSG_FILL: u16 = 0x0005;
const MSG_LAYOUT: u16 = 0x0008;
const MSG_ATTRIBUTE: u16 = 0x000C;
const MSG_CONTINUATION: u16 = 0x0010;
/// A message's flag: its body is a reference to a shared copy.
const FLAG_SHARED: u8 = 0x02;

/// `Ok` if libhdf5 may open the object `name` (relative to `loc`) and
/// read its attributes; otherwise why not. Callers hold the HDF5 lock.
pub(crate) fn object_ok_by_name(loc: &hdf5::Location, name: &str) -> Result<(), String> {
    let c = CString::new(name).map_err(|_| format!("{name}: the name holds a NUL byte"))?;
    let info =
        basic_info(loc, &c).ok_or_else(|| format!("{name}: libhdf5 cannot find the object"))?;
    check(loc, name, &info)
}

/// `Ok` if libhdf5 may read the attributes of the open object `loc`.
pub(crate) fn object_ok(loc: &hdf5::Location) -> Result<(), String> {
    let info = basic_info(loc, c".").ok_or("libhdf5 cannot describe the object")?;
    check(loc, &loc.name(), &info)
}

/// libhdf5's basic facts (address, file number) of the object `name`
/// relative to `loc`: they come from the header's prefix, no message body
/// is decoded.
fn basic_info(loc: &hdf5::Location, name: &std::ffi::CStr) -> Option<H5O_info1_t> {
    let mut info = std::mem::MaybeUninit::<H5O_info1_t>::uninit();
    // SAFETY: `info` is written by the call when it succeeds.
    let rc = unsafe {
        hdf5_sys::h5o::H5Oget_info_by_name2(
            loc.id(),
            name.as_ptr(),
            info.as_mut_ptr(),
            H5O_INFO_BASIC,
            hdf5_sys::h5p::H5P_DEFAULT,
        )
    };
    // SAFETY: the call succeeded.
    (rc >= 0).then(|| unsafe { info.assume_init() })
}

fn check(loc: &hdf5::Location, name: &str, info: &H5O_info1_t) -> Result<(), String> {
    // The file's own number, from its root group, tells an object reached
    // through an external link (another file) apart.
    let root = basic_info(loc, c"/").ok_or("libhdf5 cannot describe the file's root group")?;
    if root.fileno != info.fileno {
        return Err(format!(
            "{name} is an external link to another file (ndstream reads only the file it is given)"
        ));
    }
    let path = loc.filename();
    #[cfg(feature = "object-store")]
    if super::url::is_url(&path) {
        // A file read by URL: its header is read by ranged GETs.
        let Some(remote) = super::url::opening(&path) else {
            return Err(format!("{path} is not being opened by URL on this thread"));
        };
        let mut r = FileReader::new(&*remote).map_err(|e| format!("{}: {e}", remote.url))?;
        return r
            .object(info.addr, 0)
            .map_err(|why| format!("{name} in {}: corrupt object header: {why}", remote.url));
    }
    let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut r = FileReader::new(&file).map_err(|e| format!("{path}: {e}"))?;
    r.object(info.addr, 0)
        .map_err(|why| format!("{name} in {path}: corrupt object header: {why}"))
}

/// What the check reads from: a local file, or an object by URL.
trait ReadAt {
    fn len(&self) -> std::io::Result<u64>;
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, at)
    }
}

#[cfg(feature = "object-store")]
impl ReadAt for crate::remote::RangeFile {
    fn len(&self) -> std::io::Result<u64> {
        Ok(crate::remote::RangeFile::len(self))
    }
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        self.read_cached(buf, at)
    }
}

/// The file as the check sees it: sizes from the superblock, reads
/// counted against [`BUDGET`].
struct FileReader<'a> {
    file: &'a dyn ReadAt,
    len: u64,
    /// Where addresses count from: the superblock's own offset, as
    /// libhdf5 takes it.
    base: u64,
    offset_size: usize,
    length_size: usize,
    spent: u64,
}

type Check<T> = Result<T, String>;

impl<'a> FileReader<'a> {
    fn new(file: &'a dyn ReadAt) -> std::io::Result<FileReader<'a>> {
        const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
        let len = file.len()?;
        let mut at = 0u64;
        while at.saturating_add(16) <= len {
            let mut h = [0u8; 16];
            file.read_exact_at(&mut h, at)?;
            if &h[..8] == SIGNATURE {
                // Version 0 and 1: size of offsets at byte 13, of lengths
                // at 14; version 2 and 3: at 9 and 10.
                let (o, l) = if h[8] < 2 {
                    (h[13], h[14])
                } else {
                    (h[9], h[10])
                };
                return Ok(FileReader {
                    file,
                    len,
                    base: at,
                    offset_size: usize::from(o),
                    length_size: usize::from(l),
                    spent: 0,
                });
            }
            at = if at == 0 { 512 } else { at * 2 };
        }
        Err(std::io::Error::other("no HDF5 superblock"))
    }

    /// `n` bytes at file address `addr` (relative to the base).
    fn read(&mut self, addr: u64, n: u64) -> Check<Vec<u8>> {
        let at = self
            .base
            .checked_add(addr)
            .filter(|a| a.checked_add(n).is_some_and(|end| end <= self.len))
            .ok_or_else(|| format!("{n} bytes at address {addr} lie past the end of the file"))?;
        self.spent += n;
        if self.spent > BUDGET {
            return Err(format!("the header holds more than {BUDGET} bytes"));
        }
        let mut buf = vec![0u8; n as usize];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|e| format!("reading {n} bytes at address {addr}: {e}"))?;
        Ok(buf)
    }

    /// Check the object header at `addr`: every datatype and attribute
    /// message in every chunk. `depth` counts committed datatypes followed.
    fn object(&mut self, addr: u64, depth: usize) -> Check<()> {
        for msg in self.messages(addr)? {
            self.message(&msg, depth)?;
        }
        Ok(())
    }

    /// Every message of the object header at `addr`, continuations followed.
    fn messages(&mut self, addr: u64) -> Check<Vec<Message>> {
        let first = self.read(addr, 4)?;
        let mut out = Vec::new();
        let mut chunks: Vec<(u64, u64)> = Vec::new();
        let v2 = &first[..4] == b"OHDR";
        let mut flags = 0u8;
        if v2 {
            let pre = self.read(addr, 6)?;
            flags = pre[5];
            let mut off = 6u64;
            if flags & 0x20 != 0 {
                off += 16;
            }
            if flags & 0x10 != 0 {
                off += 4;
            }
            let width = 1u64 << (flags & 3);
            let size = le(&self.read(addr + off, width)?);
            off += width;
            self.chunk_v2(addr + off, size, flags, &mut out, &mut chunks)?;
        } else {
            if first[0] != 1 {
                // A version libhdf5 1.10 does not know: it refuses it itself.
                return Ok(Vec::new());
            }
            let pre = self.read(addr, 16)?;
            let size = le(&pre[8..12]);
            self.chunk_v1(addr + 16, size, &mut out, &mut chunks)?;
        }
        let mut i = 0;
        let mut seen = std::collections::HashSet::new();
        while i < chunks.len() {
            let (at, len) = chunks[i];
            i += 1;
            if !seen.insert(at) || seen.len() > MAX_CHUNKS {
                return Err(format!("continuation chunks loop or exceed {MAX_CHUNKS}"));
            }
            if v2 {
                let sig = self.read(at, 4)?;
                if &sig != b"OCHK" || len < 8 {
                    return Err(format!("no continuation chunk at address {at}"));
                }
                // Signature, messages, checksum.
                self.chunk_v2(at + 4, len - 8, flags, &mut out, &mut chunks)?;
            } else {
                self.chunk_v1(at, len, &mut out, &mut chunks)?;
            }
        }
        Ok(out)
    }

    /// The messages of a version 1 chunk of `len` bytes at `at`.
    fn chunk_v1(
        &mut self,
        at: u64,
        len: u64,
        out: &mut Vec<Message>,
        chunks: &mut Vec<(u64, u64)>,
    ) -> Check<()> {
        let bytes = self.read(at, len)?;
        let mut p = 0usize;
        while p + 8 <= bytes.len() {
            let kind = u16::from_le_bytes([bytes[p], bytes[p + 1]]);
            let size = usize::from(u16::from_le_bytes([bytes[p + 2], bytes[p + 3]]));
            let flags = bytes[p + 4];
            let body = bytes.get(p + 8..p + 8 + size).ok_or_else(|| {
                format!("message at address {} runs past its chunk", at + p as u64)
            })?;
            self.take(kind, flags, body, at + p as u64, out, chunks)?;
            p += 8 + size;
        }
        Ok(())
    }

    /// The messages of a version 2 chunk whose messages take `len` bytes at `at`.
    fn chunk_v2(
        &mut self,
        at: u64,
        len: u64,
        hdr_flags: u8,
        out: &mut Vec<Message>,
        chunks: &mut Vec<(u64, u64)>,
    ) -> Check<()> {
        let bytes = self.read(at, len)?;
        let head = if hdr_flags & 0x04 != 0 { 6 } else { 4 };
        let mut p = 0usize;
        while p + head <= bytes.len() {
            let kind = u16::from(bytes[p]);
            let size = usize::from(u16::from_le_bytes([bytes[p + 1], bytes[p + 2]]));
            let flags = bytes[p + 3];
            let body = bytes.get(p + head..p + head + size).ok_or_else(|| {
                format!("message at address {} runs past its chunk", at + p as u64)
            })?;
            self.take(kind, flags, body, at + p as u64, out, chunks)?;
            p += head + size;
        }
        Ok(())
    }

    fn take(
        &mut self,
        kind: u16,
        flags: u8,
        body: &[u8],
        at: u64,
        out: &mut Vec<Message>,
        chunks: &mut Vec<(u64, u64)>,
    ) -> Check<()> {
        match kind {
            MSG_CONTINUATION => {
                let mut c = Cursor::new(body);
                let off = c.uint(self.offset_size)?;
                let len = c.uint(self.length_size)?;
                chunks.push((off, len));
            }
            MSG_DATASPACE | MSG_DATATYPE | MSG_FILL_OLD | MSG_FILL | MSG_LAYOUT | MSG_ATTRIBUTE => {
                out.push(Message {
                    kind,
                    flags,
                    body: body.to_vec(),
                    at,
                })
            }
            _ => {}
        }
        Ok(())
    }

    fn message(&mut self, m: &Message, depth: usize) -> Check<()> {
        let here = |e: String| format!("{e} (message at address {})", m.at);
        if m.flags & FLAG_SHARED != 0 {
            return match m.kind {
                MSG_DATATYPE => self.shared(&m.body, depth).map_err(here),
                // Other shared messages (dataspaces, fill values) are
                // read as they are.
                _ => Ok(()),
            };
        }
        let body = &m.body;
        match m.kind {
            MSG_DATATYPE => datatype(&mut Cursor::new(body), 0).map(|_| ()),
            MSG_DATASPACE => elements(body, self.length_size).map(|_| ()),
            MSG_FILL_OLD | MSG_FILL => fill_value(m.kind, body),
            MSG_LAYOUT => layout(body),
            _ => self.attribute(body, depth),
        }
        .map_err(here)
    }

    /// A shared message's body: follow a committed datatype.
    fn shared(&mut self, body: &[u8], depth: usize) -> Check<()> {
        let mut c = Cursor::new(body);
        let version = c.u8()?;
        let kind = c.u8()?;
        let addr = match version {
            1 => {
                c.skip(6)?;
                c.uint(self.offset_size)?
            }
            2 => c.uint(self.offset_size)?,
            // Type 2: committed; type 1: in the shared-message heap,
            // not reached by this check.
            3 if kind == 1 => return Ok(()),
            3 => c.uint(self.offset_size)?,
            // Versions libhdf5 1.10 does not know it refuses itself.
            _ => return Ok(()),
        };
        if depth >= 4 {
            return Err("committed datatypes refer to each other".into());
        }
        self.object(addr, depth + 1)
    }

    fn attribute(&mut self, body: &[u8], depth: usize) -> Check<()> {
        let mut c = Cursor::new(body);
        let version = c.u8()?;
        let flags = c.u8()?;
        let name_len = usize::from(c.u16()?);
        let dt_len = usize::from(c.u16()?);
        let ds_len = usize::from(c.u16()?);
        if version == 3 {
            c.skip(1)?;
        }
        let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
        if !(1..=3).contains(&version) {
            return Ok(());
        }
        c.skip(pad(name_len))?;
        let dt = c.take(dt_len)?;
        c.skip(pad(dt_len) - dt_len)?;
        let ds = c.take(ds_len)?;
        c.skip(pad(ds_len) - ds_len)?;
        let shared_type = version > 1 && flags & 0x01 != 0;
        let shared_space = version > 1 && flags & 0x02 != 0;
        let size = if shared_type {
            self.shared(dt, depth)?;
            None
        } else {
            datatype(&mut Cursor::new(dt), 0)?
        };
        if let (Some(size), false) = (size, shared_space) {
            let Some(n) = elements(ds, self.length_size)? else {
                return Ok(());
            };
            let need = n
                .checked_mul(size)
                .ok_or("the attribute's value size overflows")?;
            if need > c.rest() as u64 {
                return Err(format!(
                    "the attribute's value needs {need} bytes, its message holds {}",
                    c.rest()
                ));
            }
        }
        Ok(())
    }
}

/// A message the check looks into.
struct Message {
    kind: u16,
    flags: u8,
    body: Vec<u8>,
    /// Its address, for errors.
    at: u64,
}

/// Little-endian unsigned integer of up to 8 bytes.
fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

/// Bounds-checked little-endian reads from a message body.
struct Cursor<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, p: 0 }
    }
    fn take(&mut self, n: usize) -> Check<&'a [u8]> {
        let s = self
            .p
            .checked_add(n)
            .and_then(|end| self.b.get(self.p..end))
            .ok_or_else(|| format!("a field of {n} bytes runs past its message"))?;
        self.p += n;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Check<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Check<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Check<u16> {
        Ok(le(self.take(2)?) as u16)
    }
    fn u32(&mut self) -> Check<u32> {
        Ok(le(self.take(4)?) as u32)
    }
    fn uint(&mut self, n: usize) -> Check<u64> {
        if !(1..=8).contains(&n) {
            return Err(format!("an address or length of {n} bytes"));
        }
        Ok(le(self.take(n)?))
    }
    fn rest(&self) -> usize {
        self.b.len() - self.p
    }
    /// A NUL-terminated name, then padding to a multiple of 8 when `pad`.
    fn name(&mut self, pad: bool) -> Check<()> {
        let rest = &self.b[self.p..];
        let n = rest
            .iter()
            .position(|&x| x == 0)
            .ok_or("a name without its terminating NUL")?
            + 1;
        self.skip(if pad { n.div_ceil(8) * 8 } else { n })
    }
}

/// Check one encoded datatype; its size in bytes, or `None` when it (or
/// a type inside it) has a version libhdf5 1.10 does not know, which
/// libhdf5 refuses itself before reading further.
fn datatype(c: &mut Cursor, depth: usize) -> Check<Option<u64>> {
    if depth > MAX_DEPTH {
        return Err(format!("a datatype nested more than {MAX_DEPTH} deep"));
    }
    let head = c.u8()?;
    let (class, version) = (head & 0x0f, head >> 4);
    let bits = le(c.take(3)?) as u32;
    let size = u64::from(c.u32()?);
    if !(1..=3).contains(&version) {
        return Ok(None);
    }
    let bit_span = |offset: u16, precision: u16| -> Check<()> {
        if u64::from(offset) + u64::from(precision) > size * 8 {
            return Err(format!(
                "a {size}-byte datatype with {precision} bits at bit {offset}"
            ));
        }
        Ok(())
    };
    match class {
        // Fixed-point, bitfield.
        0 | 4 => {
            let (offset, precision) = (c.u16()?, c.u16()?);
            bit_span(offset, precision)?;
        }
        // Floating-point.
        1 => {
            let (offset, precision) = (c.u16()?, c.u16()?);
            let (epos, esize, mpos, msize) = (c.u8()?, c.u8()?, c.u8()?, c.u8()?);
            let _bias = c.u32()?;
            bit_span(offset, precision)?;
            let sign = u64::from((bits >> 8) & 0xff);
            if sign >= size * 8 {
                return Err(format!("a {size}-byte float with its sign at bit {sign}"));
            }
            let p = u32::from(precision);
            if u32::from(epos) + u32::from(esize) > p || u32::from(mpos) + u32::from(msize) > p {
                return Err(format!(
                    "a float of {precision} bits with exponent bits {epos}+{esize}, mantissa bits {mpos}+{msize}"
                ));
            }
        }
        // Time.
        2 => {
            c.u16()?;
        }
        // String, reference.
        3 | 7 => {}
        // Opaque: a tag of (bits & 0xff) bytes.
        5 => c.skip((bits & 0xff) as usize)?,
        // Compound.
        6 => {
            let members = bits & 0xffff;
            for _ in 0..members {
                c.name(version < 3)?;
                let offset = if version < 3 {
                    u64::from(c.u32()?)
                } else {
                    // The offset takes as few bytes as the compound's size needs.
                    let width = (1..=4usize)
                        .find(|&w| w == 4 || size < (1u64 << (8 * w)))
                        .unwrap_or(4);
                    le(c.take(width)?)
                };
                let mut extent = 1u64;
                if version == 1 {
                    let ndims = usize::from(c.u8()?);
                    c.skip(3 + 4 + 4)?;
                    if ndims > 4 {
                        return Err(format!("a compound member of {ndims} dimensions"));
                    }
                    for i in 0..4 {
                        let d = u64::from(c.u32()?);
                        if i < ndims {
                            extent = extent.saturating_mul(d);
                        }
                    }
                }
                let Some(member) = datatype(c, depth + 1)? else {
                    return Ok(None);
                };
                let member = member.saturating_mul(extent);
                if offset.saturating_add(member) > size {
                    return Err(format!(
                        "a compound of {size} bytes with a {member}-byte member at byte {offset}"
                    ));
                }
            }
        }
        // Enumeration: base type, names, values.
        8 => {
            let members = (bits & 0xffff) as usize;
            let base_class = c.b.get(c.p).map(|h| h & 0x0f);
            let Some(base) = datatype(c, depth + 1)? else {
                return Ok(None);
            };
            if base_class != Some(0) {
                return Err("an enumeration over a base type that is not an integer".into());
            }
            if base != size {
                return Err(format!(
                    "an enumeration of {size} bytes over a {base}-byte integer"
                ));
            }
            for _ in 0..members {
                c.name(version < 3)?;
            }
            let values = (members as u64)
                .checked_mul(base)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("the enumeration's values overflow")?;
            c.skip(values)?;
        }
        // Variable-length: its base type.
        9 => {
            if datatype(c, depth + 1)?.is_none() {
                return Ok(None);
            }
        }
        // Array.
        10 => {
            let ndims = usize::from(c.u8()?);
            if ndims == 0 || ndims > MAX_RANK {
                return Err(format!("an array datatype of {ndims} dimensions"));
            }
            if version < 3 {
                c.skip(3)?;
            }
            let mut extent = 1u64;
            for _ in 0..ndims {
                let d = u64::from(c.u32()?);
                extent = extent
                    .checked_mul(d)
                    .ok_or("the array datatype's extent overflows")?;
            }
            if version < 3 {
                c.skip(4 * ndims)?;
            }
            let Some(base) = datatype(c, depth + 1)? else {
                return Ok(None);
            };
            if base.checked_mul(extent) != Some(size) {
                return Err(format!(
                    "an array datatype of {size} bytes holding {extent} elements of {base} bytes"
                ));
            }
        }
        k => return Err(format!("datatype class {k}")),
    }
    Ok(Some(size))
}

/// A fill value message holds the value bytes it declares.
fn fill_value(kind: u16, body: &[u8]) -> Check<()> {
    let mut c = Cursor::new(body);
    let declared = if kind == MSG_FILL_OLD {
        true
    } else {
        match c.u8()? {
            v @ (1 | 2) => {
                c.skip(2)?;
                let defined = c.u8()?;
                v == 1 || defined != 0
            }
            3 => c.u8()? & 0x20 != 0,
            _ => return Ok(()),
        }
    };
    if declared {
        let n = c.u32()? as usize;
        if n > c.rest() {
            return Err(format!(
                "a fill value of {n} bytes in a message of {}",
                body.len()
            ));
        }
    }
    Ok(())
}

/// A compact layout holds the data bytes it declares.
fn layout(body: &[u8]) -> Check<()> {
    let mut c = Cursor::new(body);
    let (declared, what) = match c.u8()? {
        1 | 2 => {
            let ndims = usize::from(c.u8()?);
            if c.u8()? != 0 {
                return Ok(());
            }
            c.skip(5 + 4 * ndims)?;
            (c.u32()? as usize, "compact data")
        }
        3 | 4 => {
            if c.u8()? != 0 {
                return Ok(());
            }
            (usize::from(c.u16()?), "compact data")
        }
        // Versions libhdf5 1.10 does not know it refuses itself.
        _ => return Ok(()),
    };
    if declared > c.rest() {
        return Err(format!(
            "{what} of {declared} bytes in a message of {}",
            body.len()
        ));
    }
    Ok(())
}

/// The number of elements a dataspace message describes (`None` for a
/// version libhdf5 1.10 does not know and refuses itself).
fn elements(ds: &[u8], length_size: usize) -> Check<Option<u64>> {
    let mut c = Cursor::new(ds);
    let version = c.u8()?;
    let rank = usize::from(c.u8()?);
    let _flags = c.u8()?;
    let kind = match version {
        1 => {
            c.skip(5)?;
            1
        }
        2 => c.u8()?,
        _ => return Ok(None),
    };
    if rank > MAX_RANK {
        return Err(format!("a dataspace of rank {rank}"));
    }
    match kind {
        // Null: no elements.
        2 => Ok(Some(0)),
        _ => {
            let mut n = 1u64;
            for _ in 0..rank {
                n = n
                    .checked_mul(c.uint(length_size)?)
                    .ok_or("the dataspace's element count overflows")?;
            }
            Ok(Some(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoded integer datatype (version 1) of `size` bytes.
    fn int(size: u32) -> Vec<u8> {
        let mut v = vec![0x10, 0x08, 0, 0];
        v.extend(size.to_le_bytes());
        v.extend(0u16.to_le_bytes());
        v.extend(((size * 8) as u16).to_le_bytes());
        v
    }

    fn float64() -> Vec<u8> {
        let mut v = vec![0x11, 0x20, 0x3f, 0];
        v.extend(8u32.to_le_bytes());
        v.extend([0, 0, 64, 0, 52, 11, 0, 52]);
        v.extend(1023u32.to_le_bytes());
        v
    }

    /// An enumeration (version 1) of `size` bytes over `base`, with one member.
    fn enumeration(size: u32, base: Vec<u8>, base_size: usize) -> Vec<u8> {
        let mut v = vec![0x18, 1, 0, 0];
        v.extend(size.to_le_bytes());
        v.extend(base);
        v.extend(b"a\0\0\0\0\0\0\0");
        v.extend(vec![0u8; base_size]);
        v
    }

    fn check(bytes: &[u8]) -> Check<Option<u64>> {
        datatype(&mut Cursor::new(bytes), 0)
    }

    #[test]
    fn well_formed_types_pass() {
        assert_eq!(check(&int(4)), Ok(Some(4)));
        assert_eq!(check(&float64()), Ok(Some(8)));
        assert_eq!(check(&enumeration(1, int(1), 1)), Ok(Some(1)));
        // A version libhdf5 1.10 does not know is left to it.
        let mut newer = int(4);
        newer[0] = 0x50;
        assert_eq!(check(&newer), Ok(None));
    }

    #[test]
    fn an_enumeration_wider_than_its_base_is_refused() {
        // What the fuzzer found: libhdf5 copies `members * size` bytes
        // from a buffer of `members * base size`.
        let e = check(&enumeration(3, int(1), 1)).unwrap_err();
        assert!(e.contains("enumeration of 3 bytes over a 1-byte"), "{e}");
    }

    #[test]
    fn a_compound_member_past_the_end_is_refused() {
        // Version 2 compound of 10 bytes: "a" f64 at 0 (fits), "b" f64 at 4 (does not).
        let mut v = vec![0x26, 2, 0, 0];
        v.extend(10u32.to_le_bytes());
        for (name, at) in [(b"a", 0u32), (b"b", 4)] {
            v.extend(name);
            v.extend([0u8; 7]);
            v.extend(at.to_le_bytes());
            v.extend(float64());
        }
        let e = check(&v).unwrap_err();
        assert!(e.contains("8-byte member at byte 4"), "{e}");
        v[4] = 12;
        assert_eq!(check(&v), Ok(Some(12)));
    }

    #[test]
    fn an_array_whose_size_is_not_its_extent_is_refused() {
        // Version 3 array of 2x3 int32: 24 bytes.
        let mk = |size: u32| {
            let mut v = vec![0x3a, 0, 0, 0];
            v.extend(size.to_le_bytes());
            v.push(2);
            v.extend(2u32.to_le_bytes());
            v.extend(3u32.to_le_bytes());
            v.extend(int(4));
            v
        };
        assert_eq!(check(&mk(24)), Ok(Some(24)));
        assert!(check(&mk(32))
            .unwrap_err()
            .contains("6 elements of 4 bytes"));
    }

    #[test]
    fn truncated_and_unknown_types_are_refused() {
        let f = float64();
        assert!(check(&f[..10]).unwrap_err().contains("runs past"));
        let mut bad = int(4);
        bad[0] = 0x1b;
        assert!(check(&bad).unwrap_err().contains("class 11"));
        let mut wide = int(2);
        wide[10] = 17;
        assert!(check(&wide).unwrap_err().contains("17 bits"));
    }

    /// A version 1 attribute message: int32, 3 elements, `data` bytes of value.
    fn attribute(data: usize) -> Vec<u8> {
        let mut ds = vec![1, 1, 0, 0, 0, 0, 0, 0];
        ds.extend(3u64.to_le_bytes());
        let dt = int(4);
        let mut v = vec![1, 0];
        v.extend(2u16.to_le_bytes());
        v.extend((dt.len() as u16).to_le_bytes());
        v.extend((ds.len() as u16).to_le_bytes());
        v.extend(b"a\0\0\0\0\0\0\0");
        v.extend(&dt);
        v.extend(vec![0u8; dt.len().div_ceil(8) * 8 - dt.len()]);
        v.extend(&ds);
        v.extend(vec![0u8; data]);
        v
    }

    #[test]
    fn attribute_values_shorter_than_declared_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        let mut sb = b"\x89HDF\r\n\x1a\n".to_vec();
        sb.extend([0, 0, 0, 0, 0, 8, 8, 0]);
        std::fs::write(&path, sb).unwrap();
        let file = File::open(&path).unwrap();
        let mut r = FileReader::new(&file).unwrap();
        assert_eq!(r.attribute(&attribute(12), 0), Ok(()));
        let e = r.attribute(&attribute(11), 0).unwrap_err();
        assert!(e.contains("needs 12 bytes"), "{e}");
    }

    #[test]
    fn attribute_values_shorter_than_their_dataspace_are_found() {
        // Dataspace version 1, rank 1, 3 elements.
        let mut ds = vec![1, 1, 0, 0, 0, 0, 0, 0];
        ds.extend(3u64.to_le_bytes());
        assert_eq!(elements(&ds, 8), Ok(Some(3)));
        // Version 2, null.
        assert_eq!(elements(&[2, 0, 0, 2], 8), Ok(Some(0)));
    }
}
