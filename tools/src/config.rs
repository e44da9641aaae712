//! Validation of raw command-line options into typed settings, and the
//! error that marks bad usage.
//!
//! Everything a user typed is checked here before any work starts: sizes
//! (`512MiB`), chunk lists (`1,500,500`), codecs, dtypes, write modes. A
//! failure is a [`UsageError`], which `main` turns into exit status 2.

use std::fmt;

use ndstream::formats::{Codec, WriteMode, ZarrVersion};
use ndstream::{DType, StoreOptions};

use crate::cli::{ExecArgs, StoreArgs};

/// A problem with what the user asked for (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a [`UsageError`] as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Executor settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecConfig {
    /// Budget in bytes.
    pub memory: u64,
    /// Worker threads.
    pub threads: usize,
    /// Show progress bars (stderr is a terminal and no `--quiet`).
    pub progress: bool,
}

/// A quarter of physical memory (from /proc/meminfo), at most 8 GiB.
pub fn default_memory() -> u64 {
    ndstream::default_memory()
}

impl ExecConfig {
    /// Validate `--memory` and `--threads`.
    ///
    /// # Errors
    /// A size that does not parse, a zero budget or zero threads.
    pub fn from_args(a: &ExecArgs, quiet: bool) -> anyhow::Result<ExecConfig> {
        let memory = match &a.memory {
            Some(s) => ndstream::parse_bytes(s).map_err(|e| usage(format!("--memory: {e}")))?,
            None => default_memory(),
        };
        if memory == 0 {
            return Err(usage("--memory: the budget must be positive"));
        }
        let threads = match a.threads {
            Some(0) => return Err(usage("--threads: must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let progress = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(ExecConfig {
            memory,
            threads,
            progress,
        })
    }
}

/// Parse a comma-separated list of non-negative integers (`1,500,500`).
///
/// # Errors
/// Anything else.
pub fn parse_u64_list(flag: &str, s: &str) -> anyhow::Result<Vec<u64>> {
    let s = s
        .trim()
        .trim_start_matches(['(', '['])
        .trim_end_matches([')', ']']);
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u64>().map_err(|_| {
                usage(format!(
                    "{flag}: `{p}` is not a non-negative integer (expected e.g. 1,500,500)"
                ))
            })
        })
        .collect::<anyhow::Result<Vec<u64>>>()
        .and_then(|v| {
            if v.is_empty() {
                Err(usage(format!("{flag}: empty list")))
            } else {
                Ok(v)
            }
        })
}

/// Parse a dtype name.
///
/// # Errors
/// An unknown name.
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
    s.parse::<DType>()
        .map_err(|e| usage(format!("--dtype: {e}")))
}

/// Validate the store options into the library's [`StoreOptions`]
/// (attributes are filled in by the caller).
///
/// # Errors
/// Bad chunk or shard lists, an unknown codec.
pub fn store_options(a: &StoreArgs) -> anyhow::Result<StoreOptions> {
    let codec: Codec = a
        .codec
        .parse()
        .map_err(|e: ndstream::Error| usage(format!("--codec: {e}")))?;
    let mode = if a.overwrite {
        WriteMode::Overwrite
    } else if a.resume {
        WriteMode::Resume
    } else {
        WriteMode::Create
    };
    let zarr_version = if a.zarr_version == "2" {
        ZarrVersion::V2
    } else {
        ZarrVersion::V3
    };
    if a.shard.is_some() && zarr_version == ZarrVersion::V2 {
        return Err(usage("--shard needs Zarr v3 (--zarr-version 3)"));
    }
    Ok(StoreOptions {
        chunks: a
            .chunks
            .as_deref()
            .map(|c| parse_u64_list("--chunks", c))
            .transpose()?,
        shards: a
            .shard
            .as_deref()
            .map(|c| parse_u64_list("--shard", c))
            .transpose()?,
        codec: Some(codec),
        mode,
        zarr_version,
        sync: a.sync,
        ..StoreOptions::default()
    })
}

/// Resolve chunk lengths against a shape: 0 means the whole axis, lengths
/// longer than the axis are clamped, and the rank must match.
///
/// # Errors
/// A rank mismatch.
pub fn resolve_chunks(chunks: &[u64], shape: &[u64]) -> anyhow::Result<Vec<u64>> {
    if chunks.len() != shape.len() {
        return Err(usage(format!(
            "--chunks: {} lengths given for an array of {} dimensions (shape {shape:?})",
            chunks.len(),
            shape.len()
        )));
    }
    Ok(chunks
        .iter()
        .zip(shape)
        .map(|(&c, &n)| if c == 0 || c > n { n.max(1) } else { c })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_args() -> StoreArgs {
        StoreArgs {
            chunks: None,
            codec: "none".into(),
            shard: None,
            overwrite: false,
            resume: false,
            zarr_version: "3".into(),
            sync: false,
        }
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_u64_list("--chunks", "1,500,500").ok(),
            Some(vec![1, 500, 500])
        );
        assert_eq!(
            parse_u64_list("--chunks", "(10, 20)").ok(),
            Some(vec![10, 20])
        );
        assert!(parse_u64_list("--chunks", "1,x").is_err());
        assert!(parse_u64_list("--chunks", "-1").is_err());
        assert!(parse_u64_list("--chunks", "").is_err());
        assert_eq!(
            resolve_chunks(&[0, 5000], &[10, 20]).ok(),
            Some(vec![10, 20])
        );
        assert!(resolve_chunks(&[1], &[10, 20]).is_err());
    }

    #[test]
    fn exec_and_store() {
        let e = ExecConfig::from_args(
            &ExecArgs {
                memory: Some("512MiB".into()),
                threads: Some(3),
            },
            true,
        );
        assert_eq!(
            e.ok().map(|c| (c.memory, c.threads, c.progress)),
            Some((512 << 20, 3, false))
        );
        assert!(ExecConfig::from_args(
            &ExecArgs {
                memory: Some("lots".into()),
                threads: None
            },
            true
        )
        .is_err());
        assert!(ExecConfig::from_args(
            &ExecArgs {
                memory: None,
                threads: Some(0)
            },
            true
        )
        .is_err());
        let d = ExecConfig::from_args(
            &ExecArgs {
                memory: None,
                threads: None,
            },
            true,
        )
        .ok();
        assert!(d.is_some_and(|c| c.memory > 0 && c.memory <= 8 << 30 && c.threads >= 1));

        let mut a = store_args();
        a.codec = "zstd:3".into();
        a.chunks = Some("2,2".into());
        a.resume = true;
        let o = store_options(&a).unwrap_or_default();
        assert_eq!(o.codec, Some(Codec::Zstd { level: 3 }));
        assert_eq!(o.chunks, Some(vec![2, 2]));
        assert_eq!(o.mode, WriteMode::Resume);
        a.codec = "lz77".into();
        assert!(store_options(&a).is_err());
        let mut a = store_args();
        a.shard = Some("4,4".into());
        a.zarr_version = "2".into();
        assert!(store_options(&a).is_err());
    }
}
