//! A check of a file's global heap collections before libhdf5 reads them.
//!
//! Variable-length data (h5py's and netCDF-4's string attributes) lives in
//! global heap collections (`GCOL`). libhdf5 1.10 loops forever on a
//! collection holding a free-space object of size 0 (its parser advances
//! by the object's size), and follows a huge object size past the end of
//! its buffer. So before ndstream reads a variable-length attribute it
//! checks every collection of the file: the file is scanned once for the
//! `GCOL` signature and each collection's objects are walked as libhdf5
//! walks them. A file with such a collection has its variable-length
//! attributes left out (as attribute types ndstream does not show are),
//! never a hang. The scan reads the file in 1 MiB blocks and walks
//! collections through small windows; its whole cost is capped at a few
//! times the file's length ([`Reader`]), and a file whose check would
//! cost more (collection signatures planted all through its data) counts
//! as not checked, like a corrupt one. The walk assumes 8-byte lengths,
//! what every common writer uses; a file whose superblock declares other
//! sizes counts as not checked too. Files larger than [`SCAN_LIMIT`] are
//! not scanned (the scan would cost more than the `info` it serves) and
//! are read as they are.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Files up to this size are scanned for collections.
pub(crate) const SCAN_LIMIT: u64 = 1 << 30;

/// A collection's header: "GCOL", version, 3 reserved, size (8 bytes).
const HEADER: usize = 16;
/// An object's header: index (2), references (2), reserved (4), size (8).
const OBJ_HEADER: usize = 16;

/// What was found for each file, by (device, inode, length, mtime).
type Seen = HashMap<(u64, u64, u64, i64, i64), Result<(), String>>;
static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

/// `Ok` if libhdf5 may read variable-length data of the file at `path`;
/// otherwise why not (naming the file and the collection's offset).
pub(crate) fn collections_ok(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > SCAN_LIMIT {
        return Ok(());
    }
    let key = (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    );
    let known = SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key).cloned());
    if let Some(r) = known {
        return r;
    }
    let r = scan(path);
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, r.clone());
    r
}

/// Bytes read at a time while scanning.
const BLOCK: usize = 1 << 20;

/// Bytes read at a time while walking a collection.
const WINDOW: usize = 4096;

fn scan(path: &Path) -> Result<(), String> {
    // Plain reads, not a map: a map of a file that shrinks, or of a sparse
    // file on a full tmpfs, kills the process with SIGBUS.
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if let Some(n) = length_size(&file, len).map_err(io)? {
        if n != 8 {
            return Err(format!(
                "{}: its superblock declares {n}-byte lengths; the global heap check reads 8-byte ones",
                path.display()
            ));
        }
    }
    let mut reader = Reader {
        file: &file,
        len,
        start: 0,
        buf: Vec::new(),
        cost: 0,
        // Every 16-byte read counts 16 and every window read its length:
        // well-formed files cost about their length once.
        limit: len.saturating_mul(4).saturating_add(16 << 20),
    };
    // Each well-formed collection: (its size, the object slots libhdf5
    // allocates for it).
    let mut collections: HashMap<u64, (u64, u64)> = HashMap::new();
    blocks(&file, len, 3, |base, block| {
        for at in memchr::memmem::find_iter(block, b"GCOL") {
            let pos = base + at as u64;
            let mut slots = (0, 0);
            if !collection_ok(pos, &mut reader, &mut slots).map_err(io)? {
                return Err(format!(
                    "{}: the global heap collection at byte {pos} is corrupt (an object that does not advance)",
                    path.display()
                ));
            }
            if slots.1 > 0 {
                collections.insert(pos, slots);
            }
        }
        Ok(())
    })?;
    if collections.is_empty() {
        return Ok(());
    }
    // A variable-length element on disk is its length (4 bytes), the
    // collection's address (8) and the object's index (4). libhdf5 1.10
    // reads `obj[index]` without checking the index against the slots it
    // allocated, so an element of non-zero length whose index is past them
    // makes it copy from a wild pointer. Every place that looks like such
    // an element counts (data that merely looks like one only costs the
    // file its variable-length attributes).
    let (lo, hi) = (
        collections.keys().min().copied().unwrap_or(0),
        collections.keys().max().copied().unwrap_or(0),
    );
    blocks(&file, len, 15, |base, block| {
        for j in 4..block.len().saturating_sub(11) {
            let word = |at: usize, n: usize| {
                block[at..at + n]
                    .iter()
                    .rev()
                    .fold(0u64, |v, &b| (v << 8) | u64::from(b))
            };
            let addr = word(j, 8);
            if addr < lo || addr > hi {
                continue;
            }
            let Some(&(size, slots)) = collections.get(&addr) else {
                continue;
            };
            let (n, index) = (word(j - 4, 4), word(j + 8, 4));
            if n >= 1 && n <= size && index >= slots {
                return Err(format!(
                    "{}: a variable-length element at byte {} refers to object {index} of the global heap collection at byte {addr}, which has {slots} slots",
                    path.display(),
                    base + j as u64 - 4
                ));
            }
        }
        Ok(())
    })
}

/// Call `f(offset, bytes)` on the whole file in blocks of [`BLOCK`] bytes,
/// each starting with the last `overlap` bytes of the one before (so that
/// a pattern up to `overlap + 1` bytes long straddling two blocks is seen
/// whole once).
fn blocks(
    file: &std::fs::File,
    len: u64,
    overlap: usize,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut tail: Vec<u8> = Vec::new();
    let mut off = 0u64;
    while off < len {
        let n = BLOCK.min((len - off) as usize);
        let mut block = std::mem::take(&mut tail);
        let base = off - block.len() as u64;
        let keep = block.len();
        block.resize(keep + n, 0);
        read_at(file, &mut block[keep..], off).map_err(|e| e.to_string())?;
        f(base, &block)?;
        tail = block[block.len().saturating_sub(overlap)..].to_vec();
        off += n as u64;
    }
    Ok(())
}

fn read_at(file: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, off)
}

/// The superblock's "size of lengths" (bytes), if the file has an HDF5
/// superblock where libhdf5 looks for one (byte 0, 512, 1024, 2048, ...).
fn length_size(file: &std::fs::File, len: u64) -> std::io::Result<Option<u8>> {
    const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
    let mut at = 0u64;
    while at.saturating_add(16) <= len {
        let mut h = [0u8; 16];
        read_at(file, &mut h, at)?;
        if &h[..8] == SIGNATURE {
            // Version 0 and 1: size of offsets at byte 13, of lengths at
            // 14; version 2 and 3: at 9 and 10.
            return Ok(Some(if h[8] < 2 { h[14] } else { h[10] }));
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    Ok(None)
}

/// Sequential 16-byte reads of a file through a window of [`WINDOW`]
/// bytes, at a capped cost.
struct Reader<'a> {
    file: &'a std::fs::File,
    len: u64,
    start: u64,
    buf: Vec<u8>,
    /// Bytes read and examined so far.
    cost: u64,
    /// What `cost` may reach before the check gives up.
    limit: u64,
}

/// Something 16 bytes at a time can be read from: the 16 bytes at `at`,
/// or `None` past the end.
trait Get16 {
    fn get16(&mut self, at: u64) -> std::io::Result<Option<[u8; 16]>>;
}

impl Get16 for Reader<'_> {
    fn get16(&mut self, at: u64) -> std::io::Result<Option<[u8; 16]>> {
        if at.checked_add(16).is_none_or(|end| end > self.len) {
            return Ok(None);
        }
        let end = self.start + self.buf.len() as u64;
        self.cost += 16;
        if at < self.start || at + 16 > end {
            let n = (WINDOW as u64).min(self.len - at) as usize;
            self.cost += n as u64;
            self.buf.resize(n, 0);
            read_at(self.file, &mut self.buf, at)?;
            self.start = at;
        }
        if self.cost > self.limit {
            return Err(std::io::Error::other(format!(
                "the global heap check gave up after reading {} bytes (collection signatures all through the file)",
                self.cost
            )));
        }
        let i = (at - self.start) as usize;
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.buf[i..i + 16]);
        Ok(Some(out))
    }
}

impl Get16 for &[u8] {
    fn get16(&mut self, at: u64) -> std::io::Result<Option<[u8; 16]>> {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        Ok(self
            .get(at..at.saturating_add(16))
            .and_then(|s| s.try_into().ok()))
    }
}

/// The offset of the first collection in `bytes` that libhdf5 1.10 would
/// loop on or overrun, if any (a walk that ends past the collection's
/// end counts: libhdf5 would move its pointer there).
#[cfg(test)]
fn check_collections(bytes: &[u8]) -> Result<(), usize> {
    for at in memchr::memmem::find_iter(bytes, b"GCOL") {
        if !collection_ok(at as u64, &mut &bytes[..], &mut (0, 0)).unwrap_or(true) {
            return Err(at);
        }
    }
    Ok(())
}

/// Walk the collection at `at` as libhdf5 does
/// (`H5HG__cache_heap_deserialize`): false if it would not advance or
/// would step past the collection's end. A collection walked whole sets
/// `slots` to its size and the object slots libhdf5 allocates for it (at
/// least one per 16 bytes, plus two, and one past the largest index).
fn collection_ok(at: u64, file: &mut impl Get16, slots: &mut (u64, u64)) -> std::io::Result<bool> {
    let Some(h) = file.get16(at)? else {
        return Ok(true); // a signature in the last bytes: no collection
    };
    if h[4] != 1 {
        return Ok(true); // a version libhdf5 refuses
    }
    let size = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    if at.checked_add(size).is_none() || file.get16(at + size - 16.min(size))?.is_none() {
        return Ok(true); // runs past the end of the file: libhdf5 fails to read it
    }
    let mut p = HEADER as u64;
    let mut most = size.saturating_sub(HEADER as u64) / OBJ_HEADER as u64 + 2;
    while p < size {
        if p + OBJ_HEADER as u64 > size {
            break; // too small for an object: free space
        }
        let Some(o) = file.get16(at + p)? else {
            return Ok(true);
        };
        let idx = u16::from_le_bytes([o[0], o[1]]);
        most = most.max(u64::from(idx) + 1);
        let obj = u64::from_le_bytes(o[8..16].try_into().unwrap_or_default());
        let need = if idx > 0 {
            obj.checked_add(7)
                .map(|n| n & !7)
                .and_then(|n| n.checked_add(OBJ_HEADER as u64))
        } else {
            Some(obj)
        };
        match need {
            Some(0) | None => return Ok(false),
            // Past the end: a pointer libhdf5 may wrap around.
            Some(n) if n > size - p => return Ok(false),
            Some(n) => p += n,
        }
    }
    *slots = (size, most);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::check_collections;

    fn collection(objects: &[(u16, u64)]) -> Vec<u8> {
        let mut c = b"GCOL\x01\0\0\0".to_vec();
        c.extend_from_slice(&4096u64.to_le_bytes());
        for &(idx, size) in objects {
            c.extend_from_slice(&idx.to_le_bytes());
            c.extend_from_slice(&[0; 6]);
            c.extend_from_slice(&size.to_le_bytes());
            if idx > 0 && size < 4096 {
                c.resize(c.len() + size.div_ceil(8) as usize * 8, b'x');
            }
        }
        c.resize(4096, 0);
        c
    }

    #[test]
    fn a_well_formed_collection_passes() {
        let mut f = vec![0u8; 100];
        f.extend(collection(&[(1, 15), (2, 8), (0, 4096 - 16 - 32 - 24)]));
        assert_eq!(check_collections(&f), Ok(()));
        // Free space too small for an object header ends the walk.
        f.truncate(100);
        f.extend(collection(&[(1, 4096 - 16 - 16 - 8)]));
        assert_eq!(check_collections(&f), Ok(()));
    }

    #[test]
    fn an_empty_free_space_object_is_found() {
        // The case libhdf5 1.10 loops on (found by the hdf5_open fuzz target).
        let mut f = vec![0u8; 2048];
        f.extend(collection(&[(1, 13), (8, 1), (0, 0)]));
        assert_eq!(check_collections(&f), Err(2048));
    }

    #[test]
    fn lengths_other_than_8_bytes_are_not_checked_but_refused() {
        let d = tempfile::tempdir().unwrap();
        for (version, at) in [(0u8, 14usize), (2, 10)] {
            let mut f = b"\x89HDF\r\n\x1a\n".to_vec();
            f.resize(512, 0);
            f[8] = version;
            f[at] = 4;
            f.extend(collection(&[(1, 15), (2, 8), (0, 4096 - 16 - 32 - 24)]));
            let path = d.path().join(format!("v{version}.h5"));
            std::fs::write(&path, &f).unwrap();
            let e = super::scan(&path).unwrap_err();
            assert!(e.contains("4-byte lengths"), "{e}");
            // With 8-byte lengths the same file passes.
            f[at] = 8;
            std::fs::write(&path, &f).unwrap();
            assert_eq!(super::scan(&path), Ok(()));
        }
    }

    #[test]
    fn signatures_planted_all_through_a_file_end_the_check() {
        // A "collection" every 32 bytes, each claiming 4 MiB + 16 and
        // holding well-formed 32-byte objects (the next unit's second
        // half): about 400,000 walks of 131,072 steps each, uncapped; the
        // check gives up at its cap instead.
        let mut unit = b"GCOL\x01\0\0\0".to_vec();
        unit.extend_from_slice(&((4u64 << 20) + 16).to_le_bytes());
        unit.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]);
        let f: Vec<u8> = unit.iter().copied().cycle().take(16 << 20).collect();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("planted.h5");
        std::fs::write(&path, &f).unwrap();
        let start = std::time::Instant::now();
        let e = super::scan(&path).unwrap_err();
        assert!(e.contains("gave up"), "{e}");
        // Not a timing test: a bound far above the cap's cost, far below
        // the uncapped walk's (hours).
        assert!(start.elapsed().as_secs() < 60);
    }

    #[test]
    fn an_element_past_the_collections_slots_is_found() {
        // A collection at byte 64 with two objects, and variable-length
        // elements (length, address, index) pointing into it.
        let d = tempfile::tempdir().unwrap();
        let element = |n: u32, index: u32| {
            let mut e = n.to_le_bytes().to_vec();
            e.extend_from_slice(&64u64.to_le_bytes());
            e.extend_from_slice(&index.to_le_bytes());
            e
        };
        for (n, index, ok) in [
            (5, 2, true),
            (5, 256, true),
            (5, 257, false),
            (0, 300, true),
        ] {
            let mut f = vec![0u8; 64];
            f.extend(collection(&[(1, 15), (2, 8), (0, 4096 - 16 - 32 - 24)]));
            f.extend(element(n, index));
            let path = d.path().join(format!("e{n}-{index}.h5"));
            std::fs::write(&path, &f).unwrap();
            let r = super::scan(&path);
            assert_eq!(r.is_ok(), ok, "{n} {index}: {r:?}");
        }
    }

    #[test]
    fn an_object_size_that_wraps_is_found() {
        let f = collection(&[(1, u64::MAX - 3)]);
        assert_eq!(check_collections(&f), Err(0));
    }
}
