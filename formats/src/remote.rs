//! Stores reached by URL: object storage (`s3://`, `gs://`, `az://`) and
//! web servers (`http(s)://`, read-only), through the `object_store` crate
//! and zarrs' adapter for it (feature `object-store`).
//!
//! Credentials, regions and endpoints come from each cloud's usual
//! environment variables, never from the path: for S3 `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` for an S3-compatible server and
//! `AWS_SKIP_SIGNATURE=true` for a public bucket, and what the environment
//! leaves unset from the profile `AWS_PROFILE` (else `default`) of the
//! shared files `~/.aws/credentials` and `~/.aws/config` (or
//! `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`): static keys,
//! `region` and `endpoint_url`, as boto3 and s3fs read them (see
//! [`aws_profile`]); for Google Cloud Storage
//! `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_APPLICATION_CREDENTIALS`); for Azure
//! `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY` (or a SAS
//! token, or a managed identity). An endpoint written as `http://…` (a
//! server on loopback, say) is used as written, as boto3 and s3fs do.
//!
//! An HDF5 or netCDF-4 file there is one object read by byte ranges
//! ([`RangeFile`], for `hdf5::url`), through the same clients.
//!
//! The stores are asynchronous. One small tokio runtime per process drives
//! their requests. A thread that reads a chunk waits for its request
//! (zarrs' async-to-sync adapter), and the read-ahead starts GETs on the
//! runtime without waiting ([`getter`]): the executor's threads stay the
//! only compute threads, and a request in flight costs its bytes, not a
//! thread.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ndstream_engine::{Error, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, RetryConfig};
use zarrs::storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};
use zarrs::storage::StoreKey;
use zarrs_object_store::AsyncObjectStore;

use crate::url::{split_url, SCHEMES};
use crate::zarr::{Claim, ClaimFn, GetDone, GetFn};

/// Chunk reads of an array in an object store kept in flight ahead of the
/// workers (`ChunkSource::read_ahead`): at 20–50 ms per request, 128 reads
/// at once move 0.6–1.6 GB/s of 250 KB chunks, and hold 128 chunks of the
/// budget at most (fewer where the budget has less room). The read-ahead
/// fetches them (no thread per request); see [`READ_AHEAD_THREADS`] for
/// reads that need a thread each.
pub(crate) const READ_AHEAD: usize = 128;

/// Chunk reads kept in flight ahead of the workers where each is a thread
/// waiting on its request (the inner chunks of a sharded Zarr array, a
/// contiguous HDF5 dataset read by byte ranges): 32, each I/O thread
/// reserved at the engine's 10 MiB.
pub(crate) const READ_AHEAD_THREADS: usize = 32;

/// A store reached by URL, with zarrs' synchronous storage traits
/// (readable, listable; writable where the service is).
pub(crate) type RemoteStore =
    AsyncToSyncStorageAdapter<AsyncObjectStore<Arc<dyn ObjectStore>>, BlockOn>;

/// Runs a store's requests to completion on the process's I/O runtime.
#[derive(Debug, Clone)]
pub(crate) struct BlockOn(tokio::runtime::Handle);

impl AsyncToSyncBlockOn for BlockOn {
    fn block_on<F: core::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// The process's I/O runtime: two threads drive every request in flight
/// (they wait on the network; they do no compute).
fn runtime() -> std::result::Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ndstream-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Retries: a few, quickly, so that a wrong endpoint or bucket is reported
/// in seconds rather than after object_store's three minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

/// The object store for `root` (a URL of [`SCHEMES`]), its keys relative
/// to the URL's path. `name` is the user's path, for errors.
fn object_store_for(name: &str, root: &str) -> Result<Arc<dyn ObjectStore>> {
    let u = split_url(root).ok_or_else(|| Error::open(name, "not a URL"))?;
    let scheme = u.scheme.to_ascii_lowercase();
    let cannot = |e: object_store::Error| Error::Open {
        path: name.to_string(),
        message: format!("cannot reach {root}: {e}"),
        cause: Some(Box::new(e)),
    };
    if u.authority.is_empty() {
        return Err(Error::open(
            name,
            format!("the URL {root} names no bucket, container or host"),
        ));
    }
    // The service at the bucket or container level; the path becomes a
    // prefix of every key.
    let service: Arc<dyn ObjectStore> = match scheme.as_str() {
        "s3" | "s3a" => {
            let b = s3_builder(name, root)?;
            let http = b
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .is_some_and(|e| e.starts_with("http://"));
            Arc::new(
                b.with_allow_http(http)
                    .with_retry(retry())
                    .build()
                    .map_err(cannot)?,
            )
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(root)
                .with_retry(retry())
                .build()
                .map_err(cannot)?,
        ),
        "az" | "azure" | "abfs" | "abfss" | "adl" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(root)
                .with_retry(retry())
                .build()
                .map_err(cannot)?,
        ),
        "http" | "https" => {
            // The whole URL is the base: keys are appended to its path.
            return Ok(Arc::new(
                HttpBuilder::new()
                    .with_url(root)
                    .with_client_options(ClientOptions::new().with_allow_http(scheme == "http"))
                    .with_retry(retry())
                    .build()
                    .map_err(cannot)?,
            ));
        }
        other => {
            return Err(Error::open(
                name,
                format!(
                    "unsupported URL scheme `{other}://`: expected one of {}",
                    SCHEMES.join(", ")
                ),
            ))
        }
    };
    if u.path.is_empty() {
        Ok(service)
    } else {
        Ok(Arc::new(PrefixStore::new(service, u.path)))
    }
}

/// An S3 service's settings for the URL `root`: the environment's, then
/// the AWS profile's (see [`aws_profile`]), then the URL's bucket.
fn s3_builder(name: &str, root: &str) -> Result<AmazonS3Builder> {
    let mut b = AmazonS3Builder::from_env();
    for (k, v) in aws_profile(&|k| std::env::var(k).ok()).map_err(|m| Error::open(name, m))? {
        b = b.with_config(k, v);
    }
    Ok(b.with_url(root))
}

/// S3 settings from the AWS shared files for what the environment (read
/// through `env`) leaves unset, as boto3 resolves them: the profile is
/// `AWS_PROFILE` (or `AWS_DEFAULT_PROFILE`, else `default`); its keys
/// (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`)
/// come from the credentials file's `[name]` section, else the config
/// file's (`[profile name]`, or `[default]`), and are taken only when the
/// environment sets no key; `region` and `endpoint_url` come from the
/// config file, each unless the environment sets it.
///
/// # Errors
/// A named profile (`AWS_PROFILE`) that neither file holds, a file that
/// cannot be parsed, and a profile whose credentials come some way other
/// than keys (a role, SSO, a process), which this reader does not follow.
fn aws_profile(
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Vec<(AmazonS3ConfigKey, String)>, String> {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    let home = env("HOME").unwrap_or_default();
    let file = |var: &str, leaf: &str| -> Option<std::path::PathBuf> {
        match env(var) {
            Some(p) if !p.is_empty() => Some(p.into()),
            _ if !home.is_empty() => Some(std::path::Path::new(&home).join(".aws").join(leaf)),
            _ => None,
        }
    };
    let load = |path: Option<std::path::PathBuf>| -> std::result::Result<Option<ini::Ini>, String> {
        let Some(path) = path else { return Ok(None) };
        match std::fs::read_to_string(&path) {
            Ok(text) => ini::Ini::load_from_str(&text)
                .map(Some)
                .map_err(|e| format!("cannot parse the AWS file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read the AWS file {}: {e}", path.display())),
        }
    };
    let named = env("AWS_PROFILE")
        .or_else(|| env("AWS_DEFAULT_PROFILE"))
        .filter(|p| !p.is_empty());
    let profile = named.clone().unwrap_or_else(|| "default".to_string());
    let creds_file = load(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"))?;
    let config_file = load(file("AWS_CONFIG_FILE", "config"))?;
    let creds = creds_file
        .as_ref()
        .and_then(|f| f.section(Some(profile.as_str())));
    let config_name = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let config = config_file
        .as_ref()
        .and_then(|f| f.section(Some(config_name.as_str())));
    if creds.is_none() && config.is_none() {
        return match named {
            Some(p) => Err(format!(
                "the AWS profile `{p}` (AWS_PROFILE) is in neither the credentials nor the config file"
            )),
            None => Ok(Vec::new()),
        };
    }
    let get = |k: &str| {
        creds
            .and_then(|c| c.get(k))
            .or_else(|| config.and_then(|c| c.get(k)))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let mut out = Vec::new();
    if !set("AWS_ACCESS_KEY_ID") {
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => {
                out.push((AmazonS3ConfigKey::AccessKeyId, id));
                out.push((AmazonS3ConfigKey::SecretAccessKey, secret));
                if let Some(token) = get("aws_session_token") {
                    out.push((AmazonS3ConfigKey::Token, token));
                }
            }
            _ => {
                let other = [
                    "role_arn",
                    "sso_session",
                    "sso_start_url",
                    "credential_process",
                    "web_identity_token_file",
                ]
                .into_iter()
                .find(|k| get(k).is_some());
                if let Some(k) = other {
                    return Err(format!(
                        "the AWS profile `{profile}` gets its credentials by `{k}`, which ndstream does not follow; \
                         export them instead (`eval \"$(aws configure export-credentials --profile {profile} --format env)\"`)"
                    ));
                }
            }
        }
    }
    let config_get = |k: &str| {
        config
            .and_then(|c| c.get(k))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
        if let Some(r) = config_get("region") {
            out.push((AmazonS3ConfigKey::Region, r.to_string()));
        }
    }
    if !set("AWS_ENDPOINT_URL") && !set("AWS_ENDPOINT_URL_S3") && !set("AWS_ENDPOINT") {
        if let Some(e) = config_get("endpoint_url") {
            out.push((AmazonS3ConfigKey::Endpoint, e.to_string()));
        }
    }
    Ok(out)
}

/// The store rooted at the URL `root`, with zarrs' synchronous traits.
///
/// # Errors
/// [`Error::Open`] for a URL of no known scheme, one naming no bucket, or
/// a service the environment's settings cannot configure.
pub(crate) fn open_store(name: &str, root: &str) -> Result<Arc<RemoteStore>> {
    Ok(open_fetching(name, root)?.0)
}

/// [`open_store`], and a [`getter`] of the same store's keys.
///
/// # Errors
/// As [`open_store`].
pub(crate) fn open_fetching(name: &str, root: &str) -> Result<(Arc<RemoteStore>, Arc<GetFn>)> {
    let (sync, store, rt) = open_parts(name, root)?;
    Ok((sync, getter(store, rt)))
}

/// [`open_store`], and a [`claimer`] of the same store's keys.
///
/// # Errors
/// As [`open_store`].
pub(crate) fn open_claiming(name: &str, root: &str) -> Result<(Arc<RemoteStore>, Box<ClaimFn>)> {
    let (sync, store, rt) = open_parts(name, root)?;
    Ok((sync, claimer(store, rt)))
}

/// The store rooted at `root` with zarrs' synchronous traits, the object
/// store under it, and the runtime that drives it.
fn open_parts(
    name: &str,
    root: &str,
) -> Result<(
    Arc<RemoteStore>,
    Arc<dyn ObjectStore>,
    tokio::runtime::Handle,
)> {
    let rt = runtime().map_err(|m| Error::open(name, m))?;
    let store = object_store_for(name, root)?;
    let sync = Arc::new(AsyncToSyncStorageAdapter::new(
        Arc::new(AsyncObjectStore::new(Arc::clone(&store))),
        BlockOn(rt.handle().clone()),
    ));
    Ok((sync, store, rt.handle().clone()))
}

/// Puts of a key that succeed only where no object has that key yet (a
/// conditional PUT: `If-None-Match: *` on S3, the services' own
/// preconditions on Google Cloud Storage and Azure): [`Claim::Taken`]
/// where one does, an error where the request failed otherwise (a service
/// without conditional PUTs among them).
fn claimer(store: Arc<dyn ObjectStore>, rt: tokio::runtime::Handle) -> Box<ClaimFn> {
    Box::new(move |key: &StoreKey, bytes: Vec<u8>| {
        let path = object_store::path::Path::from(key.as_str());
        let put = store.put_opts(&path, bytes.into(), PutMode::Create.into());
        match rt.block_on(put) {
            Ok(_) => Ok(Claim::Created),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Claim::Taken),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Starts GETs of `store`'s keys on the runtime `rt` without waiting: the
/// object's bytes (`None` where there is no such object, as zarrs' adapter
/// reads it) go to the request's [`GetDone`], called on a runtime thread.
fn getter(store: Arc<dyn ObjectStore>, rt: tokio::runtime::Handle) -> Arc<GetFn> {
    Arc::new(move |key: &StoreKey, done: GetDone| {
        let store = Arc::clone(&store);
        let path = object_store::path::Path::from(key.as_str());
        rt.spawn(async move {
            let got = match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
            done(got.map_err(|e| e.to_string()));
        });
    })
}

/// One object read by byte ranges: an HDF5 or netCDF-4 file in a bucket
/// or on a web server, whose chunks are read where its chunk index puts
/// them, each by one ranged GET.
#[derive(Debug)]
pub(crate) struct RangeFile {
    store: Arc<dyn ObjectStore>,
    key: object_store::path::Path,
    len: u64,
    /// The object's ETag at open: every read asks for that version
    /// (`If-Match`), so a file replaced while it is read is an error, not
    /// a mixture of two files.
    e_tag: Option<String>,
    rt: tokio::runtime::Handle,
    /// The object's URL as the user wrote it, for messages.
    pub(crate) url: String,
    /// Blocks of the object read for small reads (most recent last).
    blocks: std::sync::Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

/// Small reads of a [`RangeFile`] (an HDF5 file's metadata: superblock,
/// object headers, chunk index nodes, mostly near each other) are served
/// from aligned blocks of this many bytes, each one GET, instead of one
/// GET per read: libhdf5 reads a file's metadata in dozens of reads of a
/// few hundred bytes.
const BLOCK: u64 = 512 << 10;
/// Blocks kept per file, at most ([`BLOCK`] each: 4 MiB).
const BLOCKS: usize = 8;

/// Bytes a [`RangeFile::fetch`] got, as the response holds them (no copy).
pub(crate) struct RangeBytes(Box<dyn AsRef<[u8]> + Send>);

impl std::ops::Deref for RangeBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// The URL of the folder holding `url`'s object, and the object's name.
fn split_leaf(url: &str) -> Option<(String, &str)> {
    let u = split_url(url)?;
    let (dir, leaf) = u.path.rsplit_once('/').unwrap_or(("", u.path));
    if leaf.is_empty() {
        return None;
    }
    let base = format!("{}://{}", u.scheme, u.authority);
    Some((
        if dir.is_empty() {
            base
        } else {
            format!("{base}/{dir}")
        },
        leaf,
    ))
}

impl RangeFile {
    /// The object at `url` (`s3://bucket/dir/x.nc`, `https://host/x.h5`),
    /// its length asked by a HEAD request; settings as [`open_store`]'s.
    ///
    /// # Errors
    /// [`Error::Open`] for a URL naming no object, an object that is not
    /// there, and a service that cannot be reached (with an I/O cause).
    pub(crate) fn open(name: &str, url: &str) -> Result<RangeFile> {
        let mut one = RangeFile::open_all(&[(name.to_string(), url.to_string())])?;
        Ok(one.remove(0))
    }

    /// Open the objects `(name, url)` at once: every HEAD, and the GET of
    /// every object's first block (where a file's metadata begins), in
    /// flight together, so that opening many files costs a few round
    /// trips, not a few per file. As [`open`](Self::open) otherwise.
    ///
    /// # Errors
    /// As [`open`](Self::open), for the first object (in order) that fails.
    pub(crate) fn open_all(files: &[(String, String)]) -> Result<Vec<RangeFile>> {
        let Some((first_name, _)) = files.first() else {
            return Ok(Vec::new());
        };
        let rt = runtime().map_err(|m| Error::open(first_name, m))?;
        let mut set = tokio::task::JoinSet::new();
        for (i, (name, url)) in files.iter().enumerate() {
            let (dir, leaf) =
                split_leaf(url).ok_or_else(|| Error::open(name, format!("{url} names no file")))?;
            let store = object_store_for(name, &dir)?;
            let key = object_store::path::Path::from(leaf);
            set.spawn_on(
                async move {
                    let got = async {
                        let meta = store.head(&key).await?;
                        let options = object_store::GetOptions::new()
                            .with_range(Some(0..BLOCK.min(meta.size)))
                            .with_if_match(meta.e_tag.clone());
                        let first = if meta.size == 0 {
                            Vec::new()
                        } else {
                            store.get_opts(&key, options).await?.bytes().await?.to_vec()
                        };
                        Ok::<_, object_store::Error>((meta, first))
                    }
                    .await;
                    (i, store, key, got)
                },
                rt.handle(),
            );
        }
        let mut opened: Vec<Option<Result<RangeFile>>> = (0..files.len()).map(|_| None).collect();
        let done = rt.block_on(async {
            let mut done = Vec::new();
            while let Some(r) = set.join_next().await {
                done.push(r);
            }
            done
        });
        for r in done {
            let (i, store, key, got) = r.map_err(|e| Error::open(first_name, e.to_string()))?;
            let (name, url) = &files[i];
            opened[i] = Some(match got {
                Ok((meta, first)) => Ok(RangeFile {
                    store,
                    key,
                    len: meta.size,
                    e_tag: meta.e_tag,
                    rt: rt.handle().clone(),
                    url: url.clone(),
                    blocks: std::sync::Mutex::new(vec![(0, Arc::new(first))]),
                }),
                Err(object_store::Error::NotFound { .. }) => {
                    Err(Error::open(name, format!("no such file: {url}")))
                }
                Err(e) => Err(Error::Open {
                    path: name.clone(),
                    message: format!("cannot reach {url}: {e}"),
                    cause: Some(Box::new(e)),
                }),
            });
        }
        opened
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::open(first_name, "an open did not finish"))))
            .collect()
    }

    /// Fill `buf` from byte `at`, through the block cache where `buf` is
    /// no larger than a block (see [`BLOCK`]).
    pub(crate) fn read_cached(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        if buf.len() as u64 > BLOCK {
            return self.read_exact_at(buf, at);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = at + done as u64;
            let b = pos / BLOCK;
            let block = self.block(b)?;
            let off = (pos - b * BLOCK) as usize;
            let n = (buf.len() - done).min(block.len().saturating_sub(off));
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "byte {pos} lies past the end of the {}-byte object",
                        self.len
                    ),
                ));
            }
            buf[done..done + n].copy_from_slice(&block[off..off + n]);
            done += n;
        }
        Ok(())
    }

    /// Block `b` of the object, from the cache or by one GET.
    fn block(&self, b: u64) -> std::io::Result<Arc<Vec<u8>>> {
        let mut blocks = self
            .blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = blocks.iter().position(|(k, _)| *k == b) {
            let hit = blocks.remove(i);
            let data = Arc::clone(&hit.1);
            blocks.push(hit);
            return Ok(data);
        }
        let start = b * BLOCK;
        let end = (start + BLOCK).min(self.len);
        let n = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
        let data = Arc::new(self.with_range(start, n, <[u8]>::to_vec)?);
        if blocks.len() >= BLOCKS {
            blocks.remove(0);
        }
        blocks.push((b, Arc::clone(&data)));
        Ok(data)
    }

    /// Forget the cached blocks (once the file's metadata has been read).
    pub(crate) fn drop_cache(&self) {
        self.blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// A GET of bytes `range` of the version of the object that was opened.
    fn get(
        &self,
        range: std::ops::Range<u64>,
    ) -> impl core::future::Future<Output = std::io::Result<impl AsRef<[u8]> + Send + 'static>>
           + Send
           + 'static {
        let (store, key) = (Arc::clone(&self.store), self.key.clone());
        let url = self.url.clone();
        let options = object_store::GetOptions::new()
            .with_range(Some(range.clone()))
            .with_if_match(self.e_tag.clone());
        async move {
            let got = match store.get_opts(&key, options).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            got.map_err(|e| match e {
                object_store::Error::Precondition { .. } => std::io::Error::other(format!(
                    "{url} changed since it was opened (its ETag no longer matches); open it again"
                )),
                e => std::io::Error::other(format!(
                    "GET of bytes {}..{} of {url}: {e}",
                    range.start, range.end
                )),
            })
        }
    }

    /// The object's length in bytes, when it was opened.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The `n` bytes at `at`, by one ranged GET, handed to `use_bytes`.
    fn with_range<R>(
        &self,
        at: u64,
        n: usize,
        use_bytes: impl FnOnce(&[u8]) -> R,
    ) -> std::io::Result<R> {
        if n == 0 {
            return Ok(use_bytes(&[]));
        }
        let end = at
            .checked_add(n as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{n} bytes at {at} lie past the end of the {}-byte object",
                        self.len
                    ),
                )
            })?;
        let got = self.rt.block_on(self.get(at..end))?;
        let got = got.as_ref();
        if got.len() != n {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "GET of bytes {at}..{end} of {} gave {} bytes",
                    self.url,
                    got.len()
                ),
            ));
        }
        Ok(use_bytes(got))
    }

    /// Start a GET of the `n` bytes at `at` on the I/O runtime and return at
    /// once; `done` gets the bytes (or the request's error) on a runtime
    /// thread.
    pub(crate) fn fetch(
        &self,
        at: u64,
        n: usize,
        done: Box<dyn FnOnce(std::io::Result<RangeBytes>) + Send>,
    ) {
        let Some(end) = at.checked_add(n as u64).filter(|&e| e <= self.len) else {
            return done(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{n} bytes at {at} lie past the end of the {}-byte object",
                    self.len
                ),
            )));
        };
        let (get, url) = (self.get(at..end), self.url.clone());
        self.rt.spawn(async move {
            done(match get.await {
                Ok(b) if b.as_ref().len() == n => Ok(RangeBytes(Box::new(b))),
                Ok(b) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "GET of bytes {at}..{end} of {url} gave {} bytes",
                        b.as_ref().len()
                    ),
                )),
                Err(e) => Err(e),
            });
        });
    }

    /// Fill `buf` from byte `at` of the object.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        self.with_range(at, buf.len(), |got| buf.copy_from_slice(got))
    }

    /// Fill `buf` (uninitialised) from byte `at` of the object.
    pub(crate) fn read_exact_at_uninit(
        &self,
        buf: &mut [std::mem::MaybeUninit<u8>],
        at: u64,
    ) -> std::io::Result<()> {
        self.with_range(at, buf.len(), |got| {
            for (d, s) in buf.iter_mut().zip(got) {
                d.write(*s);
            }
        })
    }
}

/// How libhdf5's read-only S3 driver reaches an object: the `http(s)://`
/// URL it requests and, for a bucket with keys, how it signs.
#[derive(Debug)]
pub(crate) struct Ros3Target {
    pub(crate) url: String,
    pub(crate) signing: Option<Ros3Keys>,
}

/// Keys libhdf5's S3 driver signs its requests with.
pub(crate) struct Ros3Keys {
    pub(crate) region: String,
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) token: Option<String>,
}

impl std::fmt::Debug for Ros3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ros3Keys")
            .field("region", &self.region)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Characters a key keeps in a URL path: RFC 3986's unreserved ones and `/`.
const KEY_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The `http(s)://` URL of an S3 object: path-style under `endpoint`
/// where one is set, else AWS's virtual-hosted form; the key escaped as a
/// URL path.
fn s3_object_url(endpoint: Option<&str>, bucket: &str, region: &str, key: &str) -> String {
    let key = percent_encoding::utf8_percent_encode(key, KEY_ESCAPES);
    match endpoint {
        Some(e) => format!("{}/{bucket}/{key}", e.trim_end_matches('/')),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
    }
}

/// What libhdf5's S3 driver needs to read the object at `url`: a web
/// server's URL as it is, unsigned; an S3 object's at the endpoint the
/// environment or profile names (`{endpoint}/{bucket}/{key}`), else at
/// AWS (`https://{bucket}.s3.{region}.amazonaws.com/{key}`), signed with
/// the same keys [`open_store`] uses (unsigned where there are none or
/// `AWS_SKIP_SIGNATURE` is set).
///
/// # Errors
/// [`Error::Open`] for a scheme other than `s3`, `http` and `https`, and
/// settings the environment cannot give.
pub(crate) fn ros3_target(name: &str, url: &str) -> Result<Ros3Target> {
    let u = split_url(url).ok_or_else(|| Error::open(name, "not a URL"))?;
    match u.scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(Ros3Target {
            url: url.to_string(),
            signing: None,
        }),
        "s3" | "s3a" => {
            let b = s3_builder(name, &format!("s3://{}", u.authority))?;
            let get = |k: AmazonS3ConfigKey| b.get_config_value(&k).filter(|v| !v.is_empty());
            let bucket = get(AmazonS3ConfigKey::Bucket).unwrap_or_else(|| u.authority.to_string());
            let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_string());
            let endpoint = get(AmazonS3ConfigKey::Endpoint);
            let url = s3_object_url(endpoint.as_deref(), &bucket, &region, u.path);
            let skip = get(AmazonS3ConfigKey::SkipSignature).is_some_and(|v| v == "true");
            let signing = match (
                get(AmazonS3ConfigKey::AccessKeyId),
                get(AmazonS3ConfigKey::SecretAccessKey),
            ) {
                (Some(id), Some(secret)) if !skip => Some(Ros3Keys {
                    region,
                    id,
                    secret,
                    token: get(AmazonS3ConfigKey::Token),
                }),
                _ => None,
            };
            Ok(Ros3Target { url, signing })
        }
        other => Err(Error::open(
            name,
            format!(
                "HDF5 and netCDF-4 files are read by URL from s3://, http:// and https:// \
                 (through libhdf5's S3 driver), not {other}://; copy the file to a local path \
                 or a bucket to read it"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `aws_profile` with these variables set and `HOME` at `home`.
    fn profile(
        home: &std::path::Path,
        vars: &[(&str, &str)],
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("HOME".into(), home.display().to_string());
        aws_profile(&|k| env.get(k).cloned())
            .map(|v| v.into_iter().map(|(k, v)| (format!("{k:?}"), v)).collect())
    }

    #[test]
    fn an_aws_profile_fills_what_the_environment_leaves_unset() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n\
             [work]\naws_access_key_id=AKWORK\naws_secret_access_key=swork\naws_session_token=tok\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "# comment\n[default]\nregion = eu-west-1\n\n[profile work]\nregion=us-east-2\n\
             endpoint_url = http://127.0.0.1:9000\n\n[profile role]\nrole_arn = arn:aws:iam::1:role/r\n\
             source_profile = default\n\n[profile cfgkeys]\naws_access_key_id = AKCFG\naws_secret_access_key = scfg\n",
        )
        .unwrap();
        let kv = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            profile(home.path(), &[]).unwrap(),
            kv(&[
                ("AccessKeyId", "AKDEF"),
                ("SecretAccessKey", "sdef"),
                ("Region", "eu-west-1")
            ])
        );
        assert_eq!(
            profile(home.path(), &[("AWS_PROFILE", "work")]).unwrap(),
            kv(&[
                ("AccessKeyId", "AKWORK"),
                ("SecretAccessKey", "swork"),
                ("Token", "tok"),
                ("Region", "us-east-2"),
                ("Endpoint", "http://127.0.0.1:9000"),
            ])
        );
        // The environment wins, each setting on its own; keys go as a pair.
        assert_eq!(
            profile(
                home.path(),
                &[
                    ("AWS_PROFILE", "work"),
                    ("AWS_ACCESS_KEY_ID", "ENV"),
                    ("AWS_REGION", "r")
                ]
            )
            .unwrap(),
            kv(&[("Endpoint", "http://127.0.0.1:9000")])
        );
        // Keys in the config file serve too.
        assert_eq!(
            profile(home.path(), &[("AWS_PROFILE", "cfgkeys")]).unwrap(),
            kv(&[("AccessKeyId", "AKCFG"), ("SecretAccessKey", "scfg")])
        );
        // Files elsewhere, named by the environment.
        let other = tempfile::tempdir().unwrap();
        let creds = other.path().join("c");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id=A\naws_secret_access_key=B\n",
        )
        .unwrap();
        assert_eq!(
            profile(
                home.path(),
                &[
                    ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
                    ("AWS_CONFIG_FILE", "/nonexistent/config"),
                ]
            )
            .unwrap(),
            kv(&[("AccessKeyId", "A"), ("SecretAccessKey", "B")])
        );
        // No files and no profile named: nothing, no error.
        assert_eq!(profile(other.path(), &[]).unwrap(), Vec::new());
        // A named profile that is nowhere, and one by role, are refused.
        let e = profile(home.path(), &[("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(
            e.contains("the AWS profile `nope` (AWS_PROFILE) is in neither"),
            "{e}"
        );
        let e = profile(home.path(), &[("AWS_PROFILE", "role")]).unwrap_err();
        assert!(
            e.contains("by `role_arn`, which ndstream does not follow"),
            "{e}"
        );
    }

    #[test]
    fn an_s3_object_has_the_url_its_endpoint_or_aws_serves_it_at() {
        assert_eq!(
            s3_object_url(
                Some("http://127.0.0.1:9000/"),
                "b",
                "us-east-1",
                "era5/t 2m~é.nc"
            ),
            "http://127.0.0.1:9000/b/era5/t%202m~%C3%A9.nc"
        );
        assert_eq!(
            s3_object_url(None, "b", "eu-west-1", "d/x.h5"),
            "https://b.s3.eu-west-1.amazonaws.com/d/x.h5"
        );
        assert_eq!(
            split_leaf("s3://b/d/e/x.nc"),
            Some(("s3://b/d/e".to_string(), "x.nc"))
        );
        assert_eq!(
            split_leaf("https://h:1/x.h5"),
            Some(("https://h:1".to_string(), "x.h5"))
        );
        assert_eq!(split_leaf("s3://b"), None);
    }

    #[cfg(feature = "hdf5")]
    #[test]
    fn libhdf5s_s3_driver_is_not_asked_for_other_services() {
        let e = ros3_target("gs://b/x.nc", "gs://b/x.nc").unwrap_err();
        assert!(e.to_string().contains("not gs://"), "{e}");
        let t = ros3_target("n", "https://h:8/d/x.nc").unwrap();
        assert_eq!(t.url, "https://h:8/d/x.nc");
        assert!(t.signing.is_none());
    }

    #[test]
    fn a_url_without_a_bucket_or_of_another_scheme_is_refused() {
        let e = object_store_for("s3:///x.zarr", "s3:///x.zarr").unwrap_err();
        assert!(e.to_string().contains("names no bucket"), "{e}");
        let e = object_store_for("ftp://h/x.zarr", "ftp://h/x.zarr").unwrap_err();
        assert!(
            e.to_string().contains("unsupported URL scheme `ftp://`"),
            "{e}"
        );
    }
}
