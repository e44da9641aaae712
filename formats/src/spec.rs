//! What a new store should look like: [`SinkSpec`], [`Codec`], [`WriteMode`].
//!
//! Shared by every format's sink constructor; the CLI's `--codec`,
//! `--chunks`, `--shard` and `--overwrite/--resume` flags parse into these.

use ndstream_engine::{Attributes, DType, Error, Result};

/// Compression for a new store.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Codec {
    /// No compression.
    None,
    /// Zstandard at a level (1..=22).
    Zstd { level: i32 },
    /// gzip/deflate at a level (0..=9). For HDF5 this is the deflate filter with shuffle.
    Gzip { level: u32 },
    /// Blosc with an inner compressor (`lz4`, `zstd`, `blosclz`, `zlib`, `lz4hc`), level, byte shuffle.
    Blosc {
        cname: String,
        clevel: u8,
        shuffle: bool,
    },
}

impl std::str::FromStr for Codec {
    type Err = Error;
    /// `none`, `zstd:3`, `gzip:6`, `blosc:lz4:5` (level optional: zstd 3, gzip 6, blosc 5).
    fn from_str(s: &str) -> Result<Codec> {
        let bad = |why: &str| {
            Error::invalid(
                "codec",
                "codec",
                format!("`{s}`: {why} (examples: none, zstd:3, gzip:6, blosc:lz4:5)"),
            )
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let level = |i: usize, default: i64| -> Result<i64> {
            match parts.get(i) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .map_err(|_| bad("the level is not an integer")),
            }
        };
        match parts[0].to_ascii_lowercase().as_str() {
            "none" | "raw" if parts.len() == 1 => Ok(Codec::None),
            "zstd" if parts.len() <= 2 => {
                let l = level(1, 3)?;
                if !(-7..=22).contains(&l) {
                    return Err(bad("zstd levels go from -7 to 22"));
                }
                Ok(Codec::Zstd { level: l as i32 })
            }
            "gzip" | "zlib" | "deflate" if parts.len() <= 2 => {
                let l = level(1, 6)?;
                if !(0..=9).contains(&l) {
                    return Err(bad("gzip levels go from 0 to 9"));
                }
                Ok(Codec::Gzip { level: l as u32 })
            }
            "blosc" if parts.len() <= 4 => {
                let cname = parts.get(1).copied().unwrap_or("lz4").to_ascii_lowercase();
                if !["lz4", "lz4hc", "blosclz", "zstd", "zlib"].contains(&cname.as_str()) {
                    return Err(bad("blosc compressors are lz4, lz4hc, blosclz, zstd, zlib"));
                }
                let l = level(2, 5)?;
                if !(0..=9).contains(&l) {
                    return Err(bad("blosc levels go from 0 to 9"));
                }
                let shuffle = match parts.get(3).map(|p| p.to_ascii_lowercase()) {
                    None => true,
                    Some(p) if p == "shuffle" => true,
                    Some(p) if p == "noshuffle" => false,
                    Some(_) => return Err(bad("blosc's fourth part is shuffle or noshuffle")),
                };
                Ok(Codec::Blosc {
                    cname,
                    clevel: l as u8,
                    shuffle,
                })
            }
            _ => Err(bad("unknown codec")),
        }
    }
}

impl std::fmt::Display for Codec {
    /// The text [`FromStr`](std::str::FromStr) reads back as the same codec:
    /// `none`, `zstd:3`, `gzip:6`, `blosc:lz4:5` (`blosc:lz4:5:noshuffle`
    /// without the byte shuffle).
    ///
    /// ```
    /// use ndstream_formats::Codec;
    /// for s in ["none", "zstd:-1", "gzip:9", "blosc:zstd:5", "blosc:lz4:1:noshuffle"] {
    ///     let c: Codec = s.parse().unwrap();
    ///     assert_eq!(c.to_string(), s);
    ///     assert_eq!(c.to_string().parse::<Codec>().unwrap(), c);
    /// }
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::None => f.write_str("none"),
            Codec::Zstd { level } => write!(f, "zstd:{level}"),
            Codec::Gzip { level } => write!(f, "gzip:{level}"),
            Codec::Blosc {
                cname,
                clevel,
                shuffle,
            } => {
                write!(f, "blosc:{cname}:{clevel}")?;
                if !shuffle {
                    f.write_str(":noshuffle")?;
                }
                Ok(())
            }
        }
    }
}

/// What to do when the output already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Refuse, leaving the existing store untouched.
    #[default]
    Create,
    /// Replace it.
    Overwrite,
    /// Keep chunks an interrupted run already wrote (they must match the spec).
    Resume,
    /// Write every chunk into an existing array, keeping its metadata,
    /// codecs and attributes (what Dask's `store(x, zarr_array)` does).
    /// Its shape, dtype and chunk (and shard) shape must be the spec's;
    /// the spec's codec, version and attributes are not used. Zarr only.
    Into,
    /// One of several processes writing chunks into an array that a plan
    /// created and marked incomplete (the tasks of a distributed job):
    /// the array's layout must be the spec's, as for `Resume` (shape,
    /// dtype, chunks, shards, codecs, version), and chunks are encoded as
    /// the sink that created it encodes them (the same bytes); but the
    /// array's lock is taken *shared*, so the tasks write side by side
    /// while any other writer is refused; nothing is tidied, every chunk is
    /// written (none counts as done, unless
    /// [`SinkSpec::keep_written`]) and `finish` leaves the array marked
    /// incomplete (the plan's last stage, an `Into` sink, marks it
    /// complete). Zarr only.
    Shared,
}

/// Zarr format version for new Zarr stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ZarrVersion {
    V2,
    #[default]
    V3,
}

/// The shape, type, chunking and encoding of a store to create.
#[derive(Clone, Debug)]
pub struct SinkSpec {
    pub shape: Vec<u64>,
    pub dtype: DType,
    /// Chunk shape (the inner chunks when sharded).
    pub chunks: Vec<u64>,
    /// Zarr v3 shard shape (a multiple of `chunks` on every axis), if sharded.
    pub shards: Option<Vec<u64>>,
    pub codec: Codec,
    pub attributes: Attributes,
    pub mode: WriteMode,
    pub zarr_version: ZarrVersion,
    /// Store without chunking where the format allows it (HDF5's contiguous
    /// layout; `.npy` and raw are always contiguous). `chunks` then only sets
    /// how the executor delivers the data. Zarr ignores it.
    pub contiguous: bool,
    /// Flush the written data to the disk (fsync) before `finish` marks the
    /// store complete, so that it survives a power loss or OS crash. Off
    /// by default, as in NumPy, h5py and zarr-python: the data is then
    /// handed to the OS, which is enough for the store to be complete after
    /// the program exits or fails (the incomplete marker covers a job that
    /// stops midway either way). A plan's task (`WriteMode::Shared`, Zarr
    /// on disk) flushes each chunk as it writes it instead: the task is
    /// recorded done as soon as it returns.
    pub sync: bool,
    /// With [`WriteMode::Shared`] (the tasks of a plan that finishes an
    /// interrupted write): a chunk already stored, that decodes, counts as
    /// done, as `Resume` counts it, instead of being written again. Off
    /// for a plan's new array, where looking for each chunk would cost a
    /// read (a request, in object storage) per chunk. Zarr only.
    pub keep_written: bool,
}

impl SinkSpec {
    /// A spec with no compression, no attributes, create mode, Zarr v3.
    pub fn new(shape: Vec<u64>, dtype: DType, chunks: Vec<u64>) -> SinkSpec {
        SinkSpec {
            shape,
            dtype,
            chunks,
            shards: None,
            codec: Codec::None,
            attributes: Attributes::new(),
            mode: WriteMode::Create,
            zarr_version: ZarrVersion::V3,
            contiguous: false,
            sync: false,
            keep_written: false,
        }
    }
}

/// What `ndstream info` shows about one stored array.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayInfo {
    /// How to open it again (`file.h5:/group/x`, `dir.zarr/a`).
    pub path: String,
    /// Format and version (`zarr v3`, `zarr v2`, `hdf5`, `npy`, `raw`).
    pub format: String,
    pub shape: Vec<u64>,
    pub dtype: DType,
    /// Storage chunk shape, or `None` for contiguous storage.
    pub chunks: Option<Vec<u64>>,
    /// Shard shape for sharded Zarr v3 arrays.
    pub shards: Option<Vec<u64>>,
    /// Codec/filter pipeline in words (`zstd(level=3)`, `shuffle+gzip(6)`, `none`).
    pub codec: String,
    /// Bytes on disk, where known.
    pub stored_bytes: Option<u64>,
    /// Bytes of the decoded array (`product(shape) * itemsize`).
    pub logical_bytes: u64,
    /// Fill value for missing chunks, where the format has one.
    pub fill_value: Option<f64>,
    pub attributes: Attributes,
    /// True when a sink created the store but never finished it (an
    /// interrupted write): the data may be partial. Such a store still reads.
    pub incomplete: bool,
}

/// What `ndstream info` shows about a path: one array, or a group/file with arrays inside.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreInfo {
    Array(ArrayInfo),
    /// A Zarr group or an HDF5 file/group: its attributes and the arrays below it (recursively).
    Group {
        path: String,
        format: String,
        attributes: Attributes,
        arrays: Vec<ArrayInfo>,
    },
}
