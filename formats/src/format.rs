//! The [`Format`] trait and the registry of formats.
//!
//! A format is one module that implements [`Format`]: it says which parsed
//! locations it serves ([`Format::probe`]) and opens, describes and
//! creates arrays there. [`formats`] lists them in the order they are
//! asked, and every entry point of this crate ([`open_source`],
//! [`open_many`], [`info`], [`sink_needs`], [`create_sink`]) is the same
//! three steps: parse the path ([`parse_location`]), find the first format
//! that serves it ([`format_of`]), call it. Adding a format is one module
//! implementing the trait and one line in [`formats`] (and, for a new path
//! syntax, a [`Location`] variant).
//!
//! A format this build lacks (its cargo feature is off) is still listed,
//! under the same name: it serves the same locations and refuses each of
//! them, naming the feature to enable, so that a path is never taken for
//! another format's.
//!
//! [`open_source`]: crate::open_source
//! [`open_many`]: crate::open_many
//! [`info`]: crate::info
//! [`sink_needs`]: crate::sink_needs
//! [`create_sink`]: crate::create_sink
//! [`parse_location`]: crate::parse_location

use std::sync::Arc;

use ndstream_engine::{ChunkGrid, ChunkSink, ChunkSource, Error, Result};

use crate::path::Location;
use crate::spec::{SinkSpec, StoreInfo};

/// One storage format: how the arrays at the locations it serves are
/// opened, described and written.
///
/// `path` is always the user's path as written (the name in every error);
/// `loc` is what [`parse_location`](crate::parse_location) made of it (for
/// a write, with a raw file's layout completed from the spec).
///
/// ```
/// use ndstream_formats::{format_of, formats, parse_location};
/// let names: Vec<&str> = formats().iter().map(|f| f.name()).collect();
/// assert_eq!(names, ["netcdf3", "hdf5", "zarr", "npy", "raw"]);
/// let loc = parse_location("runs/a.zarr/t2m").unwrap();
/// assert_eq!(format_of(&loc).unwrap().name(), "zarr");
/// let loc = parse_location("x.bin?dtype=<f4&shape=3").unwrap();
/// assert_eq!(format_of(&loc).unwrap().name(), "raw");
/// ```
pub trait Format: Send + Sync {
    /// The format's short name: `zarr`, `hdf5`, `netcdf3`, `npy`, `raw`.
    fn name(&self) -> &'static str;

    /// Whether this format serves `loc`. Formats are asked in the order of
    /// [`formats`], and the first that says yes serves it; a probe may
    /// read a few bytes of an existing file (netCDF-3 tells itself apart
    /// from HDF5 by its magic number), never more, and never writes.
    fn probe(&self, loc: &Location) -> bool;

    /// Open the array at `loc` as a chunk source, with its native chunking.
    ///
    /// # Errors
    /// [`Error::Open`] naming `path`: a missing file, dataset or array, an
    /// unsupported dtype, a damaged header.
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>>;

    /// Open several arrays this format serves, in order (the matches of a
    /// glob). By default one after another; a format that can reach many
    /// stores at once (files in a bucket) overrides it.
    ///
    /// # Errors
    /// As [`Format::open`], for the first that fails.
    fn open_all(&self, found: &[(String, Location)]) -> Result<Vec<Arc<dyn ChunkSource>>> {
        found.iter().map(|(p, loc)| self.open(p, loc)).collect()
    }

    /// Describe the array at `loc`, or the group or file and every array in it.
    ///
    /// # Errors
    /// As [`Format::open`].
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo>;

    /// What writing `spec` at `loc` needs, known before anything is opened
    /// or created: the grid of the units the sink is written in and the
    /// sink's own bytes per unit (see [`sink_needs`](crate::sink_needs)).
    /// Read-only formats refuse here, so a refused write changes nothing.
    ///
    /// # Errors
    /// What [`Format::create`] would refuse in the spec or the location.
    fn sink_needs(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        let _ = (loc, spec);
        Err(read_only(path, self.name()))
    }

    /// Create (or, per `spec.mode`, replace or resume) the array at `loc`.
    /// The sink marks its output incomplete until `finish`, holds its
    /// output's lock, and leaves an existing output as it was when it
    /// refuses (see `docs/DESIGN.md`, "The sink lifecycle").
    ///
    /// # Errors
    /// [`Error::Open`] for a spec the format cannot store, an existing
    /// output under [`WriteMode::Create`](crate::WriteMode::Create), a
    /// resume that does not match; [`Error::Sink`] for an output in use.
    fn create(&self, path: &str, loc: &Location, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        let _ = (loc, spec);
        Err(read_only(path, self.name()))
    }

    /// Whether the format writes into an existing array at `loc`, keeping
    /// its metadata ([`WriteMode::Into`](crate::WriteMode::Into) and
    /// [`WriteMode::Shared`](crate::WriteMode::Shared)). No by default.
    fn writes_into(&self, loc: &Location) -> bool {
        let _ = loc;
        false
    }
}

/// The refusal of a write to a format ndstream reads only.
fn read_only(path: &str, name: &str) -> Error {
    Error::open(path, format!("ndstream reads {name} but does not write it"))
}

/// A format this build lacks: it serves its locations and refuses them,
/// naming the feature to enable.
#[cfg_attr(
    all(feature = "hdf5", feature = "zarr", feature = "npy"),
    allow(dead_code)
)]
struct Lacking {
    name: &'static str,
    serves: fn(&Location) -> bool,
    /// Why, for a location it serves.
    why: fn(&Location) -> String,
}

impl Format for Lacking {
    fn name(&self) -> &'static str {
        self.name
    }
    fn probe(&self, loc: &Location) -> bool {
        (self.serves)(loc)
    }
    fn open(&self, path: &str, loc: &Location) -> Result<Arc<dyn ChunkSource>> {
        Err(Error::open(path, (self.why)(loc)))
    }
    fn info(&self, path: &str, loc: &Location) -> Result<StoreInfo> {
        Err(Error::open(path, (self.why)(loc)))
    }
    fn sink_needs(&self, path: &str, loc: &Location, _: &SinkSpec) -> Result<(ChunkGrid, u64)> {
        Err(Error::open(path, (self.why)(loc)))
    }
    fn create(&self, path: &str, loc: &Location, _: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        Err(Error::open(path, (self.why)(loc)))
    }
}

/// "this build has no X support; rebuild ndstream with the `f` feature".
#[cfg_attr(
    all(feature = "hdf5", feature = "zarr", feature = "npy"),
    allow(dead_code)
)]
pub(crate) fn lacking(format: &str, feature: &str) -> String {
    format!("this build has no {format} support; rebuild ndstream with the `{feature}` feature")
}

#[cfg(feature = "hdf5")]
const HDF5: &dyn Format = &crate::hdf5::Hdf5;
#[cfg(not(feature = "hdf5"))]
const HDF5: &dyn Format = &Lacking {
    name: "hdf5",
    serves: |loc| matches!(loc, Location::Hdf5 { .. } | Location::Hdf5Url { .. }),
    why: |loc| match loc {
        Location::Hdf5Url { .. } => "this build cannot read HDF5 files by URL; rebuild ndstream \
                                     with the `hdf5` and `object-store` features"
            .into(),
        _ => lacking("HDF5", "hdf5"),
    },
};

#[cfg(feature = "zarr")]
const ZARR: &dyn Format = &crate::zarr::Zarr;
#[cfg(not(feature = "zarr"))]
const ZARR: &dyn Format = &Lacking {
    name: "zarr",
    serves: |loc| matches!(loc, Location::Zarr { .. } | Location::ZarrUrl { .. }),
    why: |_| lacking("Zarr", "zarr"),
};

#[cfg(feature = "npy")]
const NPY: &dyn Format = &crate::npy::Npy;
#[cfg(not(feature = "npy"))]
const NPY: &dyn Format = &Lacking {
    name: "npy",
    serves: |loc| matches!(loc, Location::Npy(_)),
    why: |_| lacking(".npy", "npy"),
};

/// Every format, in the order they are asked whether they serve a
/// location: netCDF-3 before HDF5 (the two share their path syntax, and
/// netCDF-3 is told apart by its magic number), then Zarr, `.npy` and raw
/// binary. Formats this build lacks are listed too (see the module doc).
pub fn formats() -> &'static [&'static dyn Format] {
    &[&crate::netcdf3::NetCdf3, HDF5, ZARR, NPY, &crate::raw::Raw]
}

/// The format that serves `loc`: the first of [`formats`] whose probe says yes.
///
/// # Errors
/// [`Error::Open`] if none does (no parsed location is left unserved).
pub fn format_of(loc: &Location) -> Result<&'static dyn Format> {
    formats()
        .iter()
        .copied()
        .find(|f| f.probe(loc))
        .ok_or_else(|| Error::open(format!("{loc:?}"), "no format serves this location"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_location;

    #[test]
    fn every_location_has_exactly_one_first_format() {
        for (path, want) in [
            ("a.h5:/x", "hdf5"),
            ("a.nc", "hdf5"),
            ("s3://b/a.nc:/t", "hdf5"),
            ("a.zarr/x", "zarr"),
            ("s3://b/a.zarr", "zarr"),
            ("a.npy", "npy"),
            ("a.bin?dtype=<f4&shape=2", "raw"),
        ] {
            let loc = parse_location(path).unwrap();
            assert_eq!(format_of(&loc).unwrap().name(), want, "{path}");
        }
    }

    #[test]
    fn a_netcdf3_file_is_probed_by_its_magic_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.nc");
        std::fs::write(&f, b"CDF\x01\0\0\0\0").unwrap();
        let loc = parse_location(&format!("{}:/x", f.display())).unwrap();
        assert_eq!(format_of(&loc).unwrap().name(), "netcdf3");
    }
}
