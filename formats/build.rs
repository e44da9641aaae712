//! Build script of ndstream-formats: compile-time gates for the HDF5 module.
//!
//! hdf5-metno-sys (`links = "hdf5"`) tells crates that depend on it directly
//! which HDF5 it found, as `DEP_HDF5_VERSION_X_Y_Z` for every known release
//! up to that one. `H5Pset_file_locking` exists in 1.10.7+ of the 1.10
//! series and in 1.12.1+; where it does, the cfg `ndstream_hdf5_file_locking`
//! lets read-only opens skip HDF5's `flock` (see `src/hdf5/mod.rs`). In
//! the 1.10 series from 1.10.8 on, `ndstream_hdf5_vfd_1_10` builds the
//! driver that reads files by URL (`src/hdf5/vfd.rs`). Without the `hdf5`
//! feature nothing is set.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(ndstream_hdf5_file_locking)");
    let has = |v: &str| std::env::var_os(format!("DEP_HDF5_VERSION_{v}")).is_some();
    if has("1_10_7") && (!has("1_12_0") || has("1_12_1")) {
        println!("cargo::rustc-cfg=ndstream_hdf5_file_locking");
    }
    // The virtual file driver of `src/hdf5/vfd.rs` lays out libhdf5's
    // driver class as the 1.10 series has it from 1.10.8 on.
    println!("cargo::rustc-check-cfg=cfg(ndstream_hdf5_vfd_1_10)");
    if has("1_10_8") && !has("1_12_0") {
        println!("cargo::rustc-cfg=ndstream_hdf5_vfd_1_10");
    }
}
