//! Integration tests of the formats crate: one binary (see STYLE.md habit 11).
//!
//! - `conformance`: the suite every format's sink and source pass (HDF5 too);
//! - `suite`: that suite for Zarr v2/v3/sharded, `.npy` and raw;
//! - `fixtures`: reading what zarr-python and NumPy wrote;
//! - `corpus`: the real-file corpus (h5py, netCDF4, h5netcdf, xarray,
//!   zarr-python files), read and compared with what they read, or refused;
//! - `errors`: bad input of every kind, each a typed error and never a panic;
//! - `faults`: overwrites, second writers, a full disk, readers during a
//!   swap and links inside stores, checked against snapshots of the tree;
//! - `interop`: what our sinks write, read back by zarr-python and NumPy;
//! - `mapped`: mapped sources and the resident set;
//! - `netcdf3`: netCDF-3 files netCDF-C wrote, read as it reads them;
//! - `plugin_filters`: HDF5 zstd/lz4/blosc/bzip2 datasets h5py and
//!   hdf5plugin wrote, read with no plugin installed.

// Test helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod conformance;
mod corpus;
mod errors;
mod faults;
mod fixtures;
#[cfg(feature = "hdf5")]
mod hdf5;
mod interop;
mod mapped;
mod netcdf3;
#[cfg(feature = "hdf5")]
mod plugin_filters;
mod sha256;
mod suite;
