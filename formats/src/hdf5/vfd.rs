//! A read-only libhdf5 virtual file driver over a [`RangeFile`]: libhdf5
//! reads a file in object storage (its superblock, object headers and
//! chunk index) through `object_store`, with the same settings and
//! credentials as every other URL, and its many small metadata reads are
//! served from the file's block cache ([`RangeFile::read_cached`], a few
//! GETs per file instead of one per read).
//!
//! libhdf5's driver interface is a C struct of callbacks whose layout
//! changes between release series; this one is laid out as libhdf5 1.10.8
//! to 1.10.x declare it (`H5FDpublic.h`), built only against those headers
//! (the build script's `ndstream_hdf5_vfd_1_10`) and used only where the
//! loaded library says it is one of them ([`usable`]). Elsewhere files by
//! URL go through libhdf5's own S3 driver (see `url`).
//!
//! Every callback runs under hdf5-metno's lock (libhdf5 calls it from
//! inside a library call), never unwinds into C (a panic is an error
//! return), and keeps the last failure's message for the caller
//! ([`take_error`]).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::sync::{Arc, OnceLock};

use hdf5_sys::h5::{haddr_t, herr_t, hsize_t};
use hdf5_sys::h5i::hid_t;

use crate::remote::RangeFile;

/// `H5FD_mem_t`.
type Mem = c_int;
/// `H5FD_MEM_SUPER`, `H5FD_MEM_DRAW`.
const MEM_SUPER: Mem = 1;
const MEM_DRAW: Mem = 3;
/// `H5F_CLOSE_WEAK`.
const CLOSE_WEAK: c_int = 1;
/// `H5F_ACC_RDWR`, `H5F_ACC_TRUNC`, `H5F_ACC_EXCL`, `H5F_ACC_CREAT`.
const WRITE_FLAGS: c_uint = 0x0001 | 0x0002 | 0x0004 | 0x0010;
/// `H5FD_FEAT_DATA_SIEVE`: raw data read through libhdf5 is sieved.
const FEAT_DATA_SIEVE: c_ulong = 0x0008;

/// `struct H5FD_t` of libhdf5 1.10: the public head of every open file.
#[repr(C)]
struct Public {
    driver_id: hid_t,
    cls: *const Class,
    fileno: c_ulong,
    access_flags: c_uint,
    feature_flags: c_ulong,
    maxaddr: haddr_t,
    base_addr: haddr_t,
    threshold: hsize_t,
    alignment: hsize_t,
    paged_aggr: u8,
}

/// `H5FD_class_t` of libhdf5 1.10.8+.
#[repr(C)]
struct Class {
    name: *const c_char,
    maxaddr: haddr_t,
    fc_degree: c_int,
    terminate: Option<unsafe extern "C" fn() -> herr_t>,
    sb_size: Option<unsafe extern "C" fn(*mut Public) -> hsize_t>,
    sb_encode: Option<unsafe extern "C" fn(*mut Public, *mut c_char, *mut u8) -> herr_t>,
    sb_decode: Option<unsafe extern "C" fn(*mut Public, *const c_char, *const u8) -> herr_t>,
    fapl_size: usize,
    fapl_get: Option<unsafe extern "C" fn(*mut Public) -> *mut c_void>,
    fapl_copy: Option<unsafe extern "C" fn(*const c_void) -> *mut c_void>,
    fapl_free: Option<unsafe extern "C" fn(*mut c_void) -> herr_t>,
    dxpl_size: usize,
    dxpl_copy: Option<unsafe extern "C" fn(*const c_void) -> *mut c_void>,
    dxpl_free: Option<unsafe extern "C" fn(*mut c_void) -> herr_t>,
    open: Option<unsafe extern "C" fn(*const c_char, c_uint, hid_t, haddr_t) -> *mut Public>,
    close: Option<unsafe extern "C" fn(*mut Public) -> herr_t>,
    cmp: Option<unsafe extern "C" fn(*const Public, *const Public) -> c_int>,
    query: Option<unsafe extern "C" fn(*const Public, *mut c_ulong) -> herr_t>,
    get_type_map: Option<unsafe extern "C" fn(*const Public, *mut Mem) -> herr_t>,
    alloc: Option<unsafe extern "C" fn(*mut Public, Mem, hid_t, hsize_t) -> haddr_t>,
    free: Option<unsafe extern "C" fn(*mut Public, Mem, hid_t, haddr_t, hsize_t) -> herr_t>,
    get_eoa: Option<unsafe extern "C" fn(*const Public, Mem) -> haddr_t>,
    set_eoa: Option<unsafe extern "C" fn(*mut Public, Mem, haddr_t) -> herr_t>,
    get_eof: Option<unsafe extern "C" fn(*const Public, Mem) -> haddr_t>,
    get_handle: Option<unsafe extern "C" fn(*mut Public, hid_t, *mut *mut c_void) -> herr_t>,
    read: Option<
        unsafe extern "C" fn(*mut Public, Mem, hid_t, haddr_t, usize, *mut c_void) -> herr_t,
    >,
    write: Option<
        unsafe extern "C" fn(*mut Public, Mem, hid_t, haddr_t, usize, *const c_void) -> herr_t,
    >,
    flush: Option<unsafe extern "C" fn(*mut Public, hid_t, u8) -> herr_t>,
    truncate: Option<unsafe extern "C" fn(*mut Public, hid_t, u8) -> herr_t>,
    lock: Option<unsafe extern "C" fn(*mut Public, u8) -> herr_t>,
    unlock: Option<unsafe extern "C" fn(*mut Public) -> herr_t>,
    fl_map: [Mem; 7],
}

/// The class lives for the process; its name pointer is a static string.
struct StaticClass(Class);
// SAFETY: the class is never written after it is built, and its only
// pointer is to a static C string.
unsafe impl Sync for StaticClass {}

static CLASS: StaticClass = StaticClass(Class {
    name: c"ndstream-url".as_ptr(),
    // HDF5's `MAXADDR` for 8-byte file offsets.
    maxaddr: i64::MAX as haddr_t,
    fc_degree: CLOSE_WEAK,
    terminate: None,
    sb_size: None,
    sb_encode: None,
    sb_decode: None,
    fapl_size: 0,
    fapl_get: None,
    fapl_copy: None,
    fapl_free: None,
    dxpl_size: 0,
    dxpl_copy: None,
    dxpl_free: None,
    open: Some(open),
    close: Some(close),
    cmp: Some(cmp),
    query: Some(query),
    get_type_map: None,
    alloc: None,
    free: None,
    get_eoa: Some(get_eoa),
    set_eoa: Some(set_eoa),
    get_eof: Some(get_eof),
    get_handle: Some(get_handle),
    read: Some(read),
    write: Some(write),
    flush: None,
    truncate: None,
    lock: None,
    unlock: None,
    // `H5FD_FLMAP_DICHOTOMY`.
    fl_map: [
        MEM_SUPER, MEM_SUPER, MEM_SUPER, MEM_DRAW, MEM_DRAW, MEM_SUPER, MEM_SUPER,
    ],
});

/// An open file: the public head libhdf5 fills in, then ours.
#[repr(C)]
struct File {
    public: Public,
    raw: Arc<RangeFile>,
    eoa: haddr_t,
}

thread_local! {
    /// The file `open` hands libhdf5 on this thread (set around H5Fopen).
    static OPENING: RefCell<Option<Arc<RangeFile>>> = const { RefCell::new(None) };
    /// The last callback failure on this thread.
    static ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The last failure of a callback on this thread, if any.
pub(crate) fn take_error() -> Option<String> {
    ERROR.with(|e| e.borrow_mut().take())
}

fn fail(m: String) -> herr_t {
    ERROR.with(|e| *e.borrow_mut() = Some(m));
    -1
}

/// Run a callback body, turning a panic into an error return.
fn guarded<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        fail("the URL file driver panicked".into());
        on_panic
    })
}

/// True where the loaded libhdf5 lays its driver class out as this module
/// does (1.10.8 or a later 1.10).
pub(crate) fn usable() -> bool {
    let (major, minor, release) = hdf5::library_version();
    (major, minor) == (1, 10) && release >= 8
}

/// The driver's id, registered with libhdf5 once per process.
fn driver() -> std::result::Result<hid_t, String> {
    static ID: OnceLock<hid_t> = OnceLock::new();
    if let Some(&id) = ID.get() {
        return Ok(id);
    }
    // SAFETY: `CLASS` is laid out as this libhdf5's `H5FD_class_t` (see
    // `usable`) and lives for the process; libhdf5 copies what it keeps.
    let id = unsafe { hdf5_sys::h5fd::H5FDregister(std::ptr::from_ref(&CLASS.0).cast()) };
    if id < 0 {
        return Err("libhdf5 refused ndstream's URL file driver".into());
    }
    Ok(*ID.get_or_init(|| id))
}

/// Open `raw` read-only through this driver (under hdf5-metno's lock);
/// `name` is the name libhdf5 gives the file.
pub(crate) fn open_file(
    raw: &Arc<RangeFile>,
    name: &CStr,
) -> std::result::Result<hdf5::File, String> {
    let id = driver()?;
    let fapl = hdf5::plist::FileAccess::try_new().map_err(|e| e.to_string())?;
    // SAFETY: a live access list and a registered driver with no settings.
    if unsafe { hdf5_sys::h5p::H5Pset_driver(fapl.id(), id, std::ptr::null()) } < 0 {
        return Err("libhdf5 refused ndstream's URL file driver for the file".into());
    }
    take_error();
    OPENING.with(|o| *o.borrow_mut() = Some(Arc::clone(raw)));
    // SAFETY: a NUL-terminated name and a live access list.
    let fid =
        unsafe { hdf5_sys::h5f::H5Fopen(name.as_ptr(), hdf5_sys::h5f::H5F_ACC_RDONLY, fapl.id()) };
    OPENING.with(|o| o.borrow_mut().take());
    if fid < 0 {
        return Err(take_error().unwrap_or_else(|| "not an HDF5 file".to_string()));
    }
    // SAFETY: `fid` is a file identifier H5Fopen just returned, owned here.
    unsafe { hdf5::from_id::<hdf5::File>(fid) }.map_err(|e| e.to_string())
}

unsafe extern "C" fn open(
    _name: *const c_char,
    flags: c_uint,
    _fapl: hid_t,
    _maxaddr: haddr_t,
) -> *mut Public {
    guarded(std::ptr::null_mut(), || {
        if flags & WRITE_FLAGS != 0 {
            fail("a file read by URL is read-only".into());
            return std::ptr::null_mut();
        }
        let Some(raw) = OPENING.with(|o| o.borrow().clone()) else {
            fail("the URL file driver was asked to open a file it was not given".into());
            return std::ptr::null_mut();
        };
        let file = Box::new(File {
            // SAFETY: all-zero is a valid `Public` (integers and a null
            // pointer); libhdf5 fills it in after `open` returns.
            public: unsafe { std::mem::zeroed() },
            raw,
            eoa: 0,
        });
        Box::into_raw(file).cast::<Public>()
    })
}

/// The file behind libhdf5's pointer.
///
/// # Safety
/// `f` is a pointer `open` returned and `close` has not freed.
unsafe fn file<'a>(f: *const Public) -> &'a File {
    // SAFETY: per the contract, `f` is the head of a live `File`.
    unsafe { &*f.cast::<File>() }
}

unsafe extern "C" fn close(f: *mut Public) -> herr_t {
    guarded(-1, || {
        // SAFETY: `f` came from `open` (a boxed `File`), closed once.
        drop(unsafe { Box::from_raw(f.cast::<File>()) });
        0
    })
}

unsafe extern "C" fn cmp(a: *const Public, b: *const Public) -> c_int {
    guarded(0, || {
        // SAFETY: both are live files of this driver.
        let (a, b) = unsafe { (file(a), file(b)) };
        match Arc::as_ptr(&a.raw).cmp(&Arc::as_ptr(&b.raw)) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        }
    })
}

unsafe extern "C" fn query(_f: *const Public, flags: *mut c_ulong) -> herr_t {
    if flags.is_null() {
        return -1;
    }
    // SAFETY: libhdf5 passes a writable flags word.
    unsafe { *flags = FEAT_DATA_SIEVE };
    0
}

unsafe extern "C" fn get_eoa(f: *const Public, _type: Mem) -> haddr_t {
    // SAFETY: a live file of this driver.
    unsafe { file(f) }.eoa
}

unsafe extern "C" fn set_eoa(f: *mut Public, _type: Mem, addr: haddr_t) -> herr_t {
    // SAFETY: a live file of this driver, which libhdf5 holds exclusively
    // while it calls (under its lock).
    unsafe { (*f.cast::<File>()).eoa = addr };
    0
}

unsafe extern "C" fn get_eof(f: *const Public, _type: Mem) -> haddr_t {
    // SAFETY: a live file of this driver.
    unsafe { file(f) }.raw.len()
}

unsafe extern "C" fn get_handle(f: *mut Public, _fapl: hid_t, handle: *mut *mut c_void) -> herr_t {
    if handle.is_null() {
        return -1;
    }
    // SAFETY: libhdf5 passes a writable pointer; the handle is the file.
    unsafe { *handle = f.cast() };
    0
}

unsafe extern "C" fn read(
    f: *mut Public,
    _type: Mem,
    _dxpl: hid_t,
    addr: haddr_t,
    size: usize,
    buf: *mut c_void,
) -> herr_t {
    guarded(-1, || {
        if size == 0 {
            return 0;
        }
        if buf.is_null() {
            return fail("the URL file driver was given no buffer".into());
        }
        // SAFETY: a live file of this driver.
        let raw = &unsafe { file(f) }.raw;
        // SAFETY: libhdf5 passes a buffer of `size` writable bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
        // Bytes past the end of the file read as zeros, as the POSIX
        // driver reads them.
        let len = raw.len();
        let inside = usize::try_from(len.saturating_sub(addr)).map_or(size, |n| n.min(size));
        out[inside..].fill(0);
        match raw.read_cached(&mut out[..inside], addr) {
            Ok(()) => 0,
            Err(e) => fail(format!(
                "reading {inside} bytes at {addr} of {}: {e}",
                raw.url
            )),
        }
    })
}

unsafe extern "C" fn write(
    _f: *mut Public,
    _type: Mem,
    _dxpl: hid_t,
    _addr: haddr_t,
    _size: usize,
    _buf: *const c_void,
) -> herr_t {
    fail("a file read by URL is read-only".into())
}
