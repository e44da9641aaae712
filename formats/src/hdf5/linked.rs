//! Symbols of the libhdf5 this process loaded, looked up at run time:
//! libhdf5's own filter functions and the szip library it links, which
//! ndstream calls itself so that it, not libhdf5, checks the lengths a
//! chunk states (see [`super::szip`] and [`super::builtin`]).
//!
//! The library is found through `dladdr` of `H5open` and opened again
//! without loading (`RTLD_NOLOAD`); `dlsym` on that handle searches it and
//! the libraries it depends on. A symbol a build lacks (a libhdf5 without
//! szip, a static link that exports nothing) is `None`, and the datasets
//! that need it are read by libhdf5 as before.

use std::ffi::{c_void, CStr};
use std::sync::OnceLock;

/// The address of `name` in the loaded libhdf5 or its dependencies.
pub(crate) fn symbol(name: &CStr) -> Option<*mut c_void> {
    // The handle, as an address (a raw pointer is not `Sync`).
    static HANDLE: OnceLock<Option<usize>> = OnceLock::new();
    let handle = (*HANDLE.get_or_init(|| {
        // SAFETY: dladdr only reads the address and fills `info`; the file
        // name it gives is a C string owned by the loader, used at once.
        let h = unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let here = hdf5_sys::h5::H5open as *const c_void;
            if libc::dladdr(here, &mut info) == 0 || info.dli_fname.is_null() {
                return None;
            }
            libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD)
        };
        (!h.is_null()).then_some(h as usize)
    }))?;
    // SAFETY: `handle` came from dlopen and is never closed; `name` is a C
    // string.
    let p = unsafe { libc::dlsym(handle as *mut c_void, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}
