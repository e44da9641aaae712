//! HDF5 and netCDF-4 files read by URL (`s3://bucket/x.nc:/t2m`,
//! `https://host/x.h5:/x`; features `hdf5` and `object-store`), without
//! downloading them.
//!
//! libhdf5 reads the file's metadata (superblock, object headers, the
//! chunk index) through ndstream's own read-only file driver (`vfd`, for
//! libhdf5 1.10.8+ of the 1.10 series), whose reads go through a
//! [`RangeFile`] and its block cache: a few ranged GETs per file, by the
//! `object_store` client, with the same settings, credentials and retries
//! as a Zarr store in the same bucket (so `gs://` and `az://` too). Other
//! libhdf5 releases use libhdf5's own read-only S3 driver (ROS3), one
//! request per metadata read, `s3://` and `http(s)://` only: it is looked
//! up in the loaded library when first needed (`H5Pset_fapl_ros3`), so a
//! libhdf5 built without it still runs ndstream and refuses only URLs, and
//! it signs with a static key pair (a session token where libhdf5 ≥ 1.14.2
//! takes one). The chunk index is looked up once at open, as for a local
//! file; chunks are then read by ranged GETs through the `RangeFile`
//! (fetched ahead of the workers) and decoded exactly as a local file's.
//! Every read checks the object's length at open, so a chunk index
//! pointing past the end is an error, as on disk.
//!
//! Before libhdf5 decodes an object's header, ndstream checks it (see
//! `header`); reading by URL, the check's reads are ranged GETs of the
//! same object. Variable-length string attributes are left out of a file
//! read by URL: their check (`heap`) scans the whole file.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::sync::Arc;

use hdf5_sys::h5i::hid_t;
use ndstream_engine::{Error, Result};

use crate::remote::{ros3_target, RangeFile, Ros3Target};

/// `H5FD_ros3_fapl_t` of libhdf5 1.10–1.14 (version 1).
#[repr(C)]
struct Ros3Fapl {
    version: i32,
    authenticate: u8,
    aws_region: [c_char; 33],
    secret_id: [c_char; 129],
    secret_key: [c_char; 129],
}

type SetFapl = unsafe extern "C" fn(hid_t, *mut Ros3Fapl) -> hdf5_sys::h5::herr_t;
type SetToken = unsafe extern "C" fn(hid_t, *const c_char) -> hdf5_sys::h5::herr_t;

/// The address of `symbol` in the process (libhdf5 is loaded), if any.
fn symbol(name: &std::ffi::CStr) -> Option<*mut std::ffi::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT only looks the name up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Copy `s` into a C string field of `N` bytes (NUL-terminated), or say
/// which setting is too long.
fn field<const N: usize>(s: &str, what: &str) -> std::result::Result<[c_char; N], String> {
    if s.len() >= N || s.contains('\0') {
        return Err(format!(
            "the {what} is too long for libhdf5's S3 driver ({} bytes, at most {})",
            s.len(),
            N - 1
        ));
    }
    let mut out = [0 as c_char; N];
    for (d, b) in out.iter_mut().zip(s.bytes()) {
        *d = b as c_char;
    }
    Ok(out)
}

thread_local! {
    /// The file being opened by URL on this thread, for the header check's
    /// reads (libhdf5 names the file by the driver's URL).
    static OPENING: RefCell<Option<(String, Arc<RangeFile>)>> = const { RefCell::new(None) };
}

/// The ranged reader of the file libhdf5 knows as `filename`, while it is
/// being opened on this thread.
pub(crate) fn opening(filename: &str) -> Option<Arc<RangeFile>> {
    OPENING.with(|o| {
        o.borrow()
            .as_ref()
            .filter(|(name, _)| name == filename)
            .map(|(_, f)| Arc::clone(f))
    })
}

/// True if libhdf5's `filename` is a file read by URL.
pub(crate) fn is_url(filename: &str) -> bool {
    crate::url::split_url(filename).is_some()
}

/// A file opened by URL: libhdf5's handle, its ranged reader, and how the
/// user named it.
pub(crate) struct Opened {
    pub(crate) file: hdf5::File,
    pub(crate) raw: Arc<RangeFile>,
    /// The driver's URL, the name libhdf5 gives the file.
    driver_url: String,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("url", &self.raw.url)
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// Run `f` with this file's header checks reading through its ranged
    /// reader.
    pub(crate) fn checked<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<(String, Arc<RangeFile>)>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let old = self.0.take();
                OPENING.with(|o| *o.borrow_mut() = old);
            }
        }
        let old = OPENING.with(|o| {
            o.borrow_mut()
                .replace((self.driver_url.clone(), Arc::clone(&self.raw)))
        });
        let _restore = Restore(old);
        f()
    }
}

/// Open the HDF5 file at `url` read-only. `name` is the user's path.
///
/// # Errors
/// [`Error::Open`] for a missing object, one that is not HDF5 (naming a
/// netCDF-3 file as such), a libhdf5 without its S3 driver, and a file the
/// driver cannot open (credentials, a service it cannot reach).
pub(crate) fn open(url: &str, name: &str) -> Result<Opened> {
    open_raw(Arc::new(RangeFile::open(name, url)?), url, name)
}

/// [`open`] of a file whose [`RangeFile`] is open already.
///
/// # Errors
/// As [`open`].
pub(crate) fn open_raw(raw: Arc<RangeFile>, url: &str, name: &str) -> Result<Opened> {
    let mut head = [0u8; 8];
    let n = raw.len().min(8) as usize;
    raw.read_cached(&mut head[..n], 0)
        .map_err(|e| Error::Open {
            path: name.to_string(),
            message: format!("cannot read {url}: {e}"),
            cause: Some(Box::new(e)),
        })?;
    if head.starts_with(b"CDF") {
        return Err(Error::open(
            name,
            format!(
                "{url} is a netCDF-3 file, which is read from a local path only; \
                 copy it to a local path to read it"
            ),
        ));
    }
    let cannot = |m: String| Error::Open {
        path: name.to_string(),
        message: format!("cannot open {url} as an HDF5 file: {m}"),
        cause: Some(Box::new(std::io::Error::other(m))),
    };
    // `NDSTREAM_HDF5_URL_DRIVER=ros3` picks libhdf5's S3 driver where
    // ndstream's own would serve (to compare them, or to test it).
    #[cfg(ndstream_hdf5_vfd_1_10)]
    if super::vfd::usable() && std::env::var("NDSTREAM_HDF5_URL_DRIVER").as_deref() != Ok("ros3") {
        let c = CString::new(url).map_err(|_| Error::open(name, "the URL holds a NUL"))?;
        let file = hdf5::sync::sync(|| super::vfd::open_file(&raw, &c)).map_err(cannot)?;
        return Ok(Opened {
            file,
            raw,
            driver_url: url.to_string(),
        });
    }
    let target = ros3_target(name, url)?;
    let file = hdf5::sync::sync(|| open_ros3(&target)).map_err(cannot)?;
    Ok(Opened {
        file,
        raw,
        driver_url: target.url,
    })
}

/// H5Fopen through the S3 driver (under hdf5-metno's lock).
fn open_ros3(target: &Ros3Target) -> std::result::Result<hdf5::File, String> {
    let (major, minor, _) = hdf5::library_version();
    if major >= 2 || (major, minor) < (1, 10) {
        return Err(format!(
            "ndstream reads by URL through the S3 driver of libhdf5 1.10 to 1.14; this is {major}.{minor}"
        ));
    }
    let set = symbol(c"H5Pset_fapl_ros3").ok_or(
        "this libhdf5 was built without its read-only S3 driver (ROS3); \
         copy the file to a local path to read it",
    )?;
    // SAFETY: the symbol is libhdf5's `H5Pset_fapl_ros3`, of this type.
    let set: SetFapl = unsafe { std::mem::transmute::<*mut std::ffi::c_void, SetFapl>(set) };
    let mut fa = Ros3Fapl {
        version: 1,
        authenticate: 0,
        aws_region: [0; 33],
        secret_id: [0; 129],
        secret_key: [0; 129],
    };
    if let Some(k) = &target.signing {
        fa.authenticate = 1;
        fa.aws_region = field(&k.region, "region")?;
        fa.secret_id = field(&k.id, "access key id")?;
        fa.secret_key = field(&k.secret, "secret access key")?;
    }
    let fapl = hdf5::plist::FileAccess::try_new().map_err(|e| e.to_string())?;
    // SAFETY: `fapl` is a live file access list; `fa` outlives the call,
    // which copies it.
    if unsafe { set(fapl.id(), &mut fa) } < 0 {
        return Err("libhdf5 refused the S3 driver's settings".into());
    }
    if let Some(token) = target.signing.as_ref().and_then(|k| k.token.as_ref()) {
        let set_token = symbol(c"H5Pset_fapl_ros3_token").ok_or(
            "the credentials carry a session token (AWS_SESSION_TOKEN), which this libhdf5's \
             S3 driver cannot sign with (it needs libhdf5 1.14.2 or later)",
        )?;
        // SAFETY: the symbol is libhdf5's `H5Pset_fapl_ros3_token`, of this type.
        let set_token: SetToken =
            unsafe { std::mem::transmute::<*mut std::ffi::c_void, SetToken>(set_token) };
        let token = CString::new(token.as_str()).map_err(|_| "the session token holds a NUL")?;
        // SAFETY: a live access list and a NUL-terminated string the call copies.
        if unsafe { set_token(fapl.id(), token.as_ptr()) } < 0 {
            return Err("libhdf5 refused the session token".into());
        }
    }
    let c = CString::new(target.url.as_str()).map_err(|_| "the URL holds a NUL")?;
    // SAFETY: a NUL-terminated name and a live access list.
    let id =
        unsafe { hdf5_sys::h5f::H5Fopen(c.as_ptr(), hdf5_sys::h5f::H5F_ACC_RDONLY, fapl.id()) };
    if id < 0 {
        let hint = if target.signing.is_some() {
            "the driver signs with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile's keys)"
        } else {
            "the driver sent no credentials (none are set, or AWS_SKIP_SIGNATURE is)"
        };
        return Err(format!(
            "libhdf5's S3 driver cannot open {} (not an HDF5 file, or access denied: {hint})",
            target.url
        ));
    }
    // SAFETY: `id` is a file identifier H5Fopen just returned, owned here.
    unsafe { hdf5::from_id::<hdf5::File>(id) }.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_too_long_for_the_driver_are_named() {
        let ok: [c_char; 4] = field("abc", "region").unwrap();
        assert_eq!(ok, [b'a' as c_char, b'b' as c_char, b'c' as c_char, 0]);
        let e = field::<4>("abcd", "region").unwrap_err();
        assert!(e.contains("the region is too long"), "{e}");
    }
}
