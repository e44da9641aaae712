//! HDF5 datasets as chunk sources and sinks (feature `hdf5`).
//!
//! Work in progress: the public entry points exist so the dispatcher compiles.

use std::path::Path;
use std::sync::Arc;

use ndstream_engine::{ChunkSink, ChunkSource, Error, Result};

use crate::spec::{SinkSpec, StoreInfo};

/// Open dataset `dataset` of HDF5 file `file` as a chunk source (`name` is the user's path, for errors).
///
/// # Errors
/// [`Error::Open`] for a missing file or dataset or an unsupported dtype.
pub fn open_source(file: &Path, dataset: &str, name: &str) -> Result<Arc<dyn ChunkSource>> {
    let _ = (file, dataset);
    Err(Error::open(name, "HDF5 reading is not available yet"))
}

/// Create (or resume, or overwrite) dataset `dataset` in `file` as `spec` describes.
///
/// # Errors
/// [`Error::Open`] if the dataset exists in create mode, or the spec cannot be stored in HDF5.
pub fn create_sink(file: &Path, dataset: &str, name: &str, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
    let _ = (file, dataset, spec);
    Err(Error::open(name, "HDF5 writing is not available yet"))
}

/// Describe a dataset, or every dataset in a file or group.
///
/// # Errors
/// [`Error::Open`] for a missing file or path.
pub fn info(file: &Path, dataset: Option<&str>, name: &str) -> Result<StoreInfo> {
    let _ = (file, dataset);
    Err(Error::open(name, "HDF5 info is not available yet"))
}
