//! [`ZarrSource`]: a Zarr v2/v3 array read chunk by chunk through zarrs.
//!
//! The grid is the array's chunk grid, or for a sharded v3 array the inner
//! chunk grid (reading an inner chunk reads only its bytes and the shard
//! index, cached per shard). `read_chunk` decodes one whole stored chunk,
//! so a truncated or corrupt chunk always fails to decode (never a partial
//! read that happens to fit) and becomes an `Error::Source` naming the chunk
//! and its file; a missing chunk reads as the fill value. zarrs returns edge
//! chunks padded to the full chunk shape; they are trimmed to the array.
//! The shard-index cache is bounded ([`SHARD_INDEX_CACHE`] shards).
//! Decoding runs on the calling thread (codec concurrency 1): the executor
//! owns the threads.
//!
//! An array in an object store also *fetches* (`ChunkSource::fetch`): the
//! read-ahead starts a chunk's GET on the store's I/O runtime and goes on,
//! and the worker that takes the chunk decodes the fetched bytes through
//! the same zarrs `retrieve_chunk` as a read: the bytes are handed to the
//! array's store ([`HandedStore`]) for that one call, so decoding, the
//! fill value of a missing chunk and the edge trim are a read's own.

use std::cell::RefCell;
use std::sync::Arc;

use ndarray::{ArrayD, SliceInfoElem};
use ndstream_engine::{
    Attributes, Block, BlockElement, ChunkGrid, ChunkIndex, ChunkSource, DType, Error, FetchDone,
    Fetched, Result,
};
use zarrs::array::{
    Array, ArrayShardedReadableExt, ArrayShardedReadableExtCache, CodecOptions, ElementOwned,
};

use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
};

use super::codec_options;
use super::meta::ArrayMeta;

/// Shard indexes kept at most (each is 16 bytes per inner chunk of a shard).
const SHARD_INDEX_CACHE: usize = 64;

/// What a [`GetFn`] hands over: the object's bytes (`None`: no such
/// object), or the request's error.
pub(crate) type GetDone = Box<dyn FnOnce(std::result::Result<MaybeBytes, String>) + Send>;

/// Starts a GET of a store key without waiting for it; calls its
/// [`GetDone`] once, from another thread, with the outcome.
pub(crate) type GetFn = dyn Fn(&StoreKey, GetDone) + Send + Sync;

thread_local! {
    /// A fetched object handed to this thread's next `get` of its key.
    static HANDED: RefCell<Option<(StoreKey, MaybeBytes)>> = const { RefCell::new(None) };
}

/// A store whose `get` of a key first takes the object handed to the
/// calling thread for it (by [`ZarrSource::decode_fetched`]), and asks the
/// store under it otherwise.
#[derive(Debug)]
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub(crate) struct HandedStore<S: ?Sized>(pub(crate) Arc<S>);

impl<S: ?Sized + ReadableStorageTraits> ReadableStorageTraits for HandedStore<S> {
    fn get(&self, key: &StoreKey) -> std::result::Result<MaybeBytes, StorageError> {
        let handed = HANDED.with(|h| {
            let mut h = h.borrow_mut();
            match h.as_ref() {
                Some((k, _)) if k == key => h.take().map(|(_, b)| b),
                _ => None,
            }
        });
        match handed {
            Some(bytes) => Ok(bytes),
            None => self.0.get(key),
        }
    }
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
        self.0.get_partial_many(key, byte_ranges)
    }
    fn size_key(&self, key: &StoreKey) -> std::result::Result<Option<u64>, StorageError> {
        self.0.size_key(key)
    }
    fn supports_get_partial(&self) -> bool {
        self.0.supports_get_partial()
    }
}

/// A Zarr array opened for reading.
pub(crate) struct ZarrSource {
    name: String,
    /// Where the array is (its directory, or its URL), for error messages.
    dir: String,
    array: Array<dyn ReadableStorageTraits>,
    meta: ArrayMeta,
    grid: ChunkGrid,
    shard_cache: Option<ArrayShardedReadableExtCache>,
    options: CodecOptions,
    /// Where the array can be opened again (see `ChunkSource::locator`).
    pub(crate) locator: Option<String>,
    /// Reads worth keeping in flight (see `ChunkSource::read_ahead`): 0 on
    /// local disk, more in an object store.
    pub(crate) read_ahead: usize,
    /// Starts a chunk's GET without waiting (an object store; the array's
    /// store must be a [`HandedStore`]): see `ChunkSource::fetch`.
    pub(crate) fetcher: Option<Arc<GetFn>>,
}

impl std::fmt::Debug for ZarrSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrSource")
            .field("name", &self.name)
            .field("meta", &self.meta)
            .finish()
    }
}

impl ZarrSource {
    /// Wrap an opened array whose metadata ndstream has already vetted.
    pub fn new(
        name: &str,
        dir: String,
        array: Array<dyn ReadableStorageTraits>,
        meta: ArrayMeta,
    ) -> ZarrSource {
        let (grid, shard_cache) = match &meta.inner {
            Some(inner) => (
                ChunkGrid::regular(&meta.shape, inner),
                Some(ArrayShardedReadableExtCache::new(&array)),
            ),
            None => (ChunkGrid::regular(&meta.shape, &meta.chunks), None),
        };
        ZarrSource {
            name: name.to_string(),
            dir,
            array,
            meta,
            grid,
            shard_cache,
            options: codec_options(),
            locator: None,
            read_ahead: 0,
            fetcher: None,
        }
    }

    /// The file (or object) holding chunk `idx` of the grid (the shard,
    /// when sharded).
    fn chunk_file(&self, idx: &[u64]) -> String {
        let stored: Vec<u64> = match &self.meta.inner {
            Some(inner) => idx
                .iter()
                .zip(inner)
                .zip(&self.meta.chunks)
                .map(|((&i, &c), &s)| i * c / s)
                .collect(),
            None => idx.to_vec(),
        };
        let key = self.array.chunk_key(&stored);
        format!("{}/{}", self.dir.trim_end_matches('/'), key.as_str())
    }

    fn read_typed<T: ElementOwned + BlockElement>(&self, idx: &[u64]) -> Result<Block> {
        let decoded: std::result::Result<ArrayD<T>, _> = match &self.shard_cache {
            Some(cache) => {
                // The cache holds one decoded shard index per shard read;
                // bound it so memory stays flat however many shards a job visits.
                if cache.len() >= SHARD_INDEX_CACHE {
                    cache.clear();
                }
                self.array
                    .retrieve_subchunk_opt::<ArrayD<T>>(cache, idx, &self.options)
            }
            None => self
                .array
                .retrieve_chunk_opt::<ArrayD<T>>(idx, &self.options),
        };
        let a = decoded.map_err(|e| Error::Source {
            source_name: self.name.clone(),
            chunk: ChunkIndex(idx.to_vec()),
            message: format!("{e} (file {})", self.chunk_file(idx)),
            cause: Some(Box::new(e)),
        })?;
        let want = self.grid.chunk_shape(idx);
        let want: Vec<usize> = want.iter().map(|&n| n as usize).collect();
        if a.shape() == want.as_slice() {
            return Ok(T::into_block(a));
        }
        if a.ndim() != want.len() || a.shape().iter().zip(&want).any(|(&got, &w)| got < w) {
            return Err(Error::source(
                &self.name,
                idx,
                format!(
                    "decoded a chunk of shape {:?}, expected at least {want:?} (file {})",
                    a.shape(),
                    self.chunk_file(idx)
                ),
            ));
        }
        let info: Vec<SliceInfoElem> = want
            .iter()
            .map(|&w| SliceInfoElem::Slice {
                start: 0,
                end: Some(w as isize),
                step: 1,
            })
            .collect();
        Ok(T::into_block(a.slice(info.as_slice()).to_owned()))
    }
}

impl ChunkSource for ZarrSource {
    fn locator(&self) -> Option<String> {
        self.locator.clone()
    }

    fn name(&self) -> &str {
        &self.name
    }
    fn shape(&self) -> &[u64] {
        &self.meta.shape
    }
    fn dtype(&self) -> DType {
        self.meta.dtype
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn read_ahead(&self) -> usize {
        self.read_ahead
    }
    fn fetches(&self) -> bool {
        // A chunk of an unsharded array is one object; an inner chunk of
        // a shard is a ranged read, left to `read_chunk`.
        self.fetcher.is_some() && self.meta.inner.is_none()
    }
    fn fetch(&self, idx: &[u64], done: FetchDone) {
        let Some(get) = self.fetcher.as_ref().filter(|_| self.fetches()) else {
            return done(self.read_chunk(idx).map(Fetched::new));
        };
        if let Err(m) = self.grid.check_chunk(idx) {
            return done(Err(Error::source(&self.name, idx, m)));
        }
        let key = self.array.chunk_key(idx);
        let (name, at, file) = (self.name.clone(), idx.to_vec(), self.chunk_file(idx));
        let handed = key.clone();
        get(
            &key,
            Box::new(move |got| {
                done(match got {
                    Ok(bytes) => Ok(Fetched::new((handed, bytes))),
                    Err(m) => Err(Error::source(&name, &at, format!("{m} (file {file})"))),
                })
            }),
        );
    }
    fn decode_fetched(&self, idx: &[u64], fetched: Fetched) -> Result<Block> {
        let Ok(handed) = fetched.downcast::<(StoreKey, MaybeBytes)>() else {
            return self.read_chunk(idx);
        };
        HANDED.with(|h| *h.borrow_mut() = Some(handed));
        let r = self.read_chunk(idx);
        HANDED.with(|h| h.borrow_mut().take());
        r
    }
    fn chunk_read_bytes(&self) -> u64 {
        // A chunk decodes whole, at its declared shape, even where the
        // array is smaller (the grid's chunk is clipped to the array).
        let stored = self.meta.inner.as_ref().unwrap_or(&self.meta.chunks);
        stored
            .iter()
            .fold(self.meta.dtype.size() as u64, |acc, &c| {
                acc.saturating_mul(c)
            })
    }
    fn read_chunk(&self, idx: &[u64]) -> Result<Block> {
        self.grid
            .check_chunk(idx)
            .map_err(|m| Error::source(&self.name, idx, m))?;
        match self.meta.dtype {
            DType::Bool => self.read_typed::<bool>(idx),
            DType::I8 => self.read_typed::<i8>(idx),
            DType::I16 => self.read_typed::<i16>(idx),
            DType::I32 => self.read_typed::<i32>(idx),
            DType::I64 => self.read_typed::<i64>(idx),
            DType::U8 => self.read_typed::<u8>(idx),
            DType::U16 => self.read_typed::<u16>(idx),
            DType::U32 => self.read_typed::<u32>(idx),
            DType::U64 => self.read_typed::<u64>(idx),
            DType::F32 => self.read_typed::<f32>(idx),
            DType::F64 => self.read_typed::<f64>(idx),
        }
    }
    fn attributes(&self) -> Attributes {
        self.meta.attributes.clone()
    }
}
