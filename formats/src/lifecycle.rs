//! The write modes, decided once for every format.
//!
//! Every sink begins the same way: it locks its output, looks at what
//! stands there, and decides from the [`WriteMode`] whether to write a new
//! output, replace the old one, resume it or write into it, or to refuse.
//! The looking is the format's (a Zarr array's metadata, an HDF5 dataset
//! in a file, a `.npy` header); the deciding, and every refusal's words,
//! are [`decide`]'s, so that the four sinks (`.npy`/raw, Zarr on a file
//! system, Zarr in a bucket, HDF5) treat the same state the same way.
//! The rest of the lifecycle is shared as helpers: the locks
//! ([`crate::lock`]), the temporaries and swaps ([`crate::swap`]).

use ndstream_engine::{Error, Result};

use crate::spec::WriteMode;

/// What a sink found at its output, as its format sees it.
pub(crate) enum Existing<'a> {
    /// Nothing (or only the marker of a write that stopped before its
    /// first byte of data).
    Nothing,
    /// An output of this format that is not an array to resume (a Zarr
    /// group, a prefix an interrupted write of ours left without
    /// metadata): `Overwrite` replaces it, nothing else takes it up.
    #[cfg_attr(not(any(feature = "zarr", feature = "hdf5")), allow(dead_code))]
    Other,
    /// An array of this format.
    Array(Found<'a>),
    /// Something of another kind, never replaced or taken up: `what`
    /// completes "exists and …" (`is not a Zarr array or group`).
    #[cfg_attr(not(any(feature = "zarr", feature = "hdf5")), allow(dead_code))]
    Foreign(&'a str),
}

/// An existing array, and how it compares with the write.
pub(crate) struct Found<'a> {
    /// `Ok` if its whole layout is the write's (shape, dtype, chunks,
    /// codecs), so its chunks can be kept: `Resume` and `Shared` need it.
    /// `Err` says how it differs.
    pub layout: Box<dyn Fn() -> std::result::Result<(), String> + 'a>,
    /// `Ok` if its shape, dtype and chunk grid are the write's: `Into`
    /// needs only that (it writes with the array's own codecs).
    pub grid: Box<dyn Fn() -> std::result::Result<(), String> + 'a>,
    /// Marked incomplete (a write has not finished it).
    pub incomplete: bool,
}

/// What the sink does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write a new output where there was none.
    New,
    /// Write a new output that replaces the existing one when it finishes.
    Replace,
    /// Keep the chunks an interrupted write left, write the rest.
    Resume,
    /// Write every chunk into the existing array, keeping its metadata
    /// (`Into`, and `Shared` side by side with the plan's other tasks).
    Into,
}

/// The action for `mode` where `existing` stands (`noun` names the
/// format's arrays in messages: "Zarr array"), or the refusal, an
/// [`Error::Open`] naming `name`.
pub(crate) fn decide(
    name: &str,
    mode: WriteMode,
    existing: Existing<'_>,
    noun: &str,
) -> Result<Action> {
    let refuse = |m: String| Err(Error::open(name, m));
    match (mode, existing) {
        (_, Existing::Foreign(what)) => match mode {
            WriteMode::Create => refuse(format!(
                "already exists and {what}; refusing to replace it (remove it, or name another output)"
            )),
            WriteMode::Overwrite => refuse(format!(
                "exists and {what}; refusing to delete it (remove it, or name another output)"
            )),
            WriteMode::Resume => refuse(format!("cannot resume: it exists and {what}")),
            WriteMode::Into | WriteMode::Shared => into_nothing(name, mode, noun),
        },
        (WriteMode::Into | WriteMode::Shared, Existing::Nothing | Existing::Other) => {
            into_nothing(name, mode, noun)
        }
        (WriteMode::Create | WriteMode::Overwrite | WriteMode::Resume, Existing::Nothing) => {
            Ok(Action::New)
        }
        (WriteMode::Create, Existing::Other | Existing::Array(_)) => refuse(
            "already exists; overwrite it or resume the write explicitly".into(),
        ),
        (WriteMode::Overwrite, Existing::Other | Existing::Array(_)) => Ok(Action::Replace),
        (WriteMode::Resume, Existing::Other) => refuse(format!(
            "cannot resume: the existing path is not a {noun}"
        )),
        (WriteMode::Resume, Existing::Array(found)) => match (found.layout)() {
            Ok(()) => Ok(Action::Resume),
            Err(m) => refuse(format!("cannot resume: {m}")),
        },
        (WriteMode::Into, Existing::Array(found)) => match (found.grid)() {
            Ok(()) => Ok(Action::Into),
            Err(m) => refuse(format!("cannot write into the existing array: {m}")),
        },
        (WriteMode::Shared, Existing::Array(found)) => match (found.layout)() {
            Err(m) => refuse(format!("the array is not the one the plan created: {m}")),
            Ok(()) if !found.incomplete => refuse(
                "the array is complete (or was not created by a plan): the tasks of a plan \
                 write only into the array the plan created"
                    .into(),
            ),
            Ok(()) => Ok(Action::Into),
        },
    }
}

/// The refusal of `Into` or `Shared` where there is no array.
pub(crate) fn into_nothing<T>(name: &str, mode: WriteMode, noun: &str) -> Result<T> {
    Err(Error::open(
        name,
        if mode == WriteMode::Shared {
            format!(
                "there is no {noun} here for the plan's tasks to write into (run `ndstream plan` again)"
            )
        } else {
            format!("there is no {noun} here to write into")
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [WriteMode; 5] = [
        WriteMode::Create,
        WriteMode::Overwrite,
        WriteMode::Resume,
        WriteMode::Into,
        WriteMode::Shared,
    ];

    /// The decision for every mode over one state, `Ok` actions or the
    /// refusal's text.
    fn table(state: impl Fn() -> Existing<'static>) -> Vec<std::result::Result<Action, String>> {
        MODES
            .iter()
            .map(|&m| decide("out", m, state(), "Zarr array").map_err(|e| e.to_string()))
            .collect()
    }

    fn ok() -> std::result::Result<(), String> {
        Ok(())
    }
    fn differs() -> std::result::Result<(), String> {
        Err("it is i2 [3]".into())
    }

    #[test]
    fn nothing_is_written_new_and_never_written_into() {
        let t = table(|| Existing::Nothing);
        assert_eq!(t[..3], [Ok(Action::New), Ok(Action::New), Ok(Action::New)]);
        assert!(t[3]
            .as_ref()
            .unwrap_err()
            .contains("no Zarr array here to write into"));
        assert!(t[4].as_ref().unwrap_err().contains("plan's tasks"));
    }

    #[test]
    fn a_foreign_path_is_refused_by_every_mode() {
        let t = table(|| Existing::Foreign("is not a Zarr array or group"));
        for (i, r) in t.into_iter().enumerate() {
            let m = r.unwrap_err();
            let want = if i < 3 {
                "not a Zarr array"
            } else {
                "no Zarr array here"
            };
            assert!(m.contains(want), "{m}");
        }
        let t = table(|| Existing::Foreign("is not an HDF5 file"));
        assert!(t[0].as_ref().unwrap_err().contains("already exists"));
        assert!(t[1].as_ref().unwrap_err().contains("refusing to delete it"));
        assert!(t[2].as_ref().unwrap_err().contains("cannot resume"));
    }

    #[test]
    fn an_array_is_kept_replaced_resumed_or_written_into_as_told() {
        let t = table(|| {
            Existing::Array(Found {
                layout: Box::new(ok),
                grid: Box::new(ok),
                incomplete: true,
            })
        });
        assert!(t[0].as_ref().unwrap_err().contains("already exists"));
        assert_eq!(
            t[1..],
            [
                Ok(Action::Replace),
                Ok(Action::Resume),
                Ok(Action::Into),
                Ok(Action::Into)
            ]
        );
        // Another layout: resumed by no one, written into where the grid is the same.
        let t = table(|| {
            Existing::Array(Found {
                layout: Box::new(differs),
                grid: Box::new(ok),
                incomplete: true,
            })
        });
        assert_eq!(t[1], Ok(Action::Replace));
        assert!(t[2]
            .as_ref()
            .unwrap_err()
            .contains("cannot resume: it is i2 [3]"));
        assert_eq!(t[3], Ok(Action::Into));
        assert!(t[4]
            .as_ref()
            .unwrap_err()
            .contains("not the one the plan created"));
        // Another grid: not written into.
        let t = table(|| {
            Existing::Array(Found {
                layout: Box::new(differs),
                grid: Box::new(differs),
                incomplete: true,
            })
        });
        assert!(t[3].as_ref().unwrap_err().contains("cannot write into"));
        // A complete array is no plan's.
        let t = table(|| {
            Existing::Array(Found {
                layout: Box::new(ok),
                grid: Box::new(ok),
                incomplete: false,
            })
        });
        assert!(t[4].as_ref().unwrap_err().contains("is complete"));
    }

    #[test]
    fn what_is_not_an_array_is_only_replaced() {
        let t = table(|| Existing::Other);
        assert!(t[0].as_ref().unwrap_err().contains("already exists"));
        assert_eq!(t[1], Ok(Action::Replace));
        assert!(t[2]
            .as_ref()
            .unwrap_err()
            .contains("cannot resume: the existing path is not a Zarr array"));
        assert!(t[3].is_err() && t[4].is_err());
    }
}
