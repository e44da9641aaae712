//! ndstream-formats: storage formats as chunk sources and sinks.
//!
//! The engine sees only [`ChunkSource`](ndstream_engine::ChunkSource) and
//! [`ChunkSink`](ndstream_engine::ChunkSink); this crate implements them
//! for Zarr v2/v3 (feature `zarr`, through zarrs), HDF5 (feature `hdf5`),
//! NumPy `.npy` (feature `npy`) and raw binary files (memory-mapped),
//! reads netCDF-3 files (classic, 64-bit offset and CDF-5, memory-mapped),
//! and picks one from a path:
//!
//! - [`Format`]: one per format, listed by [`formats`]; [`format_of`]
//!   picks the one that serves a location (see [`format`](mod@format));
//! - [`parse_location`]: the path syntax (`file.h5:/dset`, `dir.zarr/a`,
//!   `file.npy`, `file.bin?dtype=<f4&shape=100,200`), see [`path`];
//! - [`open_source`] / [`open_many`]: read an array (or every array a glob matches);
//! - [`create_sink`]: write one, as a [`SinkSpec`] describes;
//! - [`info`]: describe an array or a group;
//! - [`check_output`]: refuse a write whose output is, holds or lies
//!   inside one of its inputs (see [`identity`]).
//!
//! Every sink marks its store incomplete until `finish`, refuses to
//! replace an existing store unless told to ([`WriteMode`]), and can resume
//! an interrupted write. No zarrs or hdf5 type appears in this API.
//!
//! Features: `zarr` and `npy` (default; pure Rust), `hdf5` (links
//! libhdf5), `object-store` (Zarr by `s3://`, `gs://`, `az://` and
//! `http(s)://` URLs; implies `zarr`). A path of a format the build lacks
//! is parsed as usual and refused when opened or created, naming the
//! feature to enable.

#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "hdf5")]
pub mod hdf5;
pub mod identity;
pub mod path;
pub mod spec;
mod staged;

mod contiguous;
pub mod format;
mod lifecycle;
mod lock;
mod netcdf3;
#[cfg(feature = "npy")]
mod npy;
mod open;
mod raw;
#[cfg(feature = "object-store")]
mod remote;
mod swap;
mod url;
pub mod work;
#[cfg(feature = "zarr")]
mod zarr;

pub use format::{format_of, formats, Format};
pub use identity::{check_output, check_output_dir, check_output_file, real_path};
pub use open::{create_sink, info, is_pattern, open_many, open_source, sink_needs, write_location};
pub use path::{parse_location, Location, RawSpec};
pub use spec::{ArrayInfo, Codec, SinkSpec, StoreInfo, WriteMode, ZarrVersion};
pub use staged::Staged;

/// Target chunk size (bytes) for stores without their own chunking
/// (`.npy`, raw binary, contiguous HDF5 datasets).
pub const DEFAULT_TARGET_CHUNK_BYTES: u64 = 4 << 20;
