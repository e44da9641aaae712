//! [`Staged`]: a plan's replacement of an existing Zarr array on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndstream_engine::{ChunkSink, Error, Result};

use crate::path::{parse_location, Location};
use crate::spec::SinkSpec;

/// The new array of a plan that overwrites a Zarr array on disk, written
/// beside the old one and swapped in by the plan's last stage.
///
/// The tasks of a plan run in many processes, so no one of them can hold
/// the old array's lock the whole time as an in-process overwrite does.
/// The plan's array is written instead into a staging directory named for
/// the plan (`.<name>.ndstream-plan-<id>` beside the array, holding the
/// plan's id), and the old array stays untouched and readable until the
/// last stage completes the new one and swaps it in with one atomic
/// exchange. Every step may run again after a kill; see the Zarr module's
/// `staged` docs for the protocol. (In object storage there is no rename:
/// a plan replaces a bucket's array in place, as
/// [`WriteMode::Overwrite`](crate::WriteMode::Overwrite) does there.)
///
/// ```
/// # #[cfg(feature = "zarr")] {
/// use ndstream_engine::DType;
/// use ndstream_formats::{create_sink, SinkSpec, Staged};
/// let d = tempfile::tempdir()?;
/// let out = d.path().join("x.zarr");
/// let out = out.to_str().unwrap();
/// let spec = SinkSpec::new(vec![4], DType::F64, vec![2]);
/// // Nothing stands at the output: a plan writes its array in place.
/// assert!(Staged::begin(out, "0123456789abcdef")?.is_none());
/// create_sink(out, &spec)?.finish()?;
/// // Now an array stands there: the plan stages its replacement.
/// let staged = Staged::begin(out, "0123456789abcdef")?.expect("a replacement");
/// assert!(staged.staging().ends_with(".x.zarr.ndstream-plan-0123456789abcdef"));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "zarr"), allow(dead_code))]
pub struct Staged {
    /// The output as named, for messages.
    pub(crate) name: String,
    /// The Zarr store's root and the array's path inside it.
    pub(crate) root: PathBuf,
    pub(crate) array: String,
    /// The array's directory (`root/array`), which the staged one replaces.
    pub(crate) target: PathBuf,
    /// The staging directory.
    pub(crate) staging: PathBuf,
    /// The plan's id.
    pub(crate) id: String,
}

impl Staged {
    /// The staging of the Zarr array on disk `output` for the plan `id`
    /// (nothing is checked or made); `None` for any other output.
    ///
    /// # Errors
    /// An `output` that cannot be parsed; an `id` that is not a plain
    /// name (letters, digits, `-` and `_`).
    pub fn of(output: &str, id: &str) -> Result<Option<Staged>> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::invalid(
                "staged replacement",
                "id",
                format!("{id:?} is not a plain name"),
            ));
        }
        let Location::Zarr { root, array } = parse_location(output)? else {
            return Ok(None);
        };
        let target = if array.is_empty() {
            root.clone()
        } else {
            root.join(&array)
        };
        Ok(Some(Staged {
            name: output.to_string(),
            staging: crate::swap::plan_sibling(&target, id),
            root,
            array,
            target,
            id: id.to_string(),
        }))
    }

    /// When a plan `id` that overwrites `output` is made: the staging to
    /// write, where a Zarr array or group (or an empty directory) stands
    /// on disk at `output`; `None` where nothing stands there, or
    /// `output` is not a Zarr array on disk (the plan writes in place).
    /// Nothing is made.
    ///
    /// # Errors
    /// What [`WriteMode::Overwrite`](crate::WriteMode::Overwrite) refuses
    /// to replace (a directory that is not Zarr's, a symbolic link); an
    /// array another process is writing; a staging directory that exists.
    pub fn begin(output: &str, id: &str) -> Result<Option<Staged>> {
        let Some(s) = Self::of(output, id)? else {
            return Ok(None);
        };
        #[cfg(feature = "zarr")]
        return crate::zarr::staged::begin(s);
        #[cfg(not(feature = "zarr"))]
        return Err(no_zarr(&s));
    }

    /// The staging directory.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Make the staging directory, with the plan's id, and the new array
    /// in it as `spec` describes (marked incomplete).
    ///
    /// # Errors
    /// A staging directory that exists; the new array's errors (nothing is
    /// left then).
    pub fn create(&self, spec: &SinkSpec) -> Result<()> {
        #[cfg(feature = "zarr")]
        return crate::zarr::staged::create(self, spec);
        #[cfg(not(feature = "zarr"))]
        {
            let _ = spec;
            Err(no_zarr(self))
        }
    }

    /// The sink a plan's task writes with: `spec.mode`
    /// [`Shared`](crate::WriteMode::Shared) writes chunks into the staged
    /// array; [`Into`](crate::WriteMode::Into), the last stage, completes
    /// it and swaps it in at `finish` (or, run again, tidies what an
    /// interrupted swap left).
    ///
    /// # Errors
    /// A staged array that is gone (a task after the swap); one that holds
    /// no plan id; the sink's errors.
    pub fn sink(&self, spec: &SinkSpec) -> Result<Arc<dyn ChunkSink>> {
        #[cfg(feature = "zarr")]
        return crate::zarr::staged::sink(self, spec);
        #[cfg(not(feature = "zarr"))]
        {
            let _ = spec;
            Err(no_zarr(self))
        }
    }

    /// Remove the staging directory (a plan abandoned or failed before it
    /// ran), if it is this plan's.
    pub fn remove(&self) {
        #[cfg(feature = "zarr")]
        crate::zarr::staged::remove(self);
    }
}

#[cfg(not(feature = "zarr"))]
fn no_zarr(s: &Staged) -> Error {
    Error::open(
        &s.name,
        "Zarr support is not built in (enable the `zarr` feature)",
    )
}
