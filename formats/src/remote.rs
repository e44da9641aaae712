//! Stores reached by URL: object storage (`s3://`, `gs://`, `az://`) and
//! web servers (`http(s)://`, read-only), through the `object_store` crate
//! and zarrs' adapter for it (feature `object-store`).
//!
//! Credentials, regions and endpoints come from each cloud's usual
//! environment variables, never from the path: for S3 `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` for an S3-compatible server and
//! `AWS_SKIP_SIGNATURE=true` for a public bucket; for Google Cloud Storage
//! `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_APPLICATION_CREDENTIALS`); for Azure
//! `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY` (or a SAS
//! token, or a managed identity). An endpoint written as `http://…` (a
//! server on loopback, say) is used as written, as boto3 and s3fs do.
//!
//! The stores are asynchronous. One small tokio runtime per process drives
//! their requests, and the thread that reads a chunk waits for its request
//! (zarrs' async-to-sync adapter): the executor's threads stay the only
//! compute threads.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ndstream_engine::{Error, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use zarrs::storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};
use zarrs_object_store::AsyncObjectStore;

use crate::url::{split_url, SCHEMES};

/// Chunk reads of an array in an object store kept in flight ahead of the
/// workers (`ChunkSource::read_ahead`): at 20–50 ms per request, 32 reads
/// at once move 160–400 MB/s of 250 KB chunks, and hold 32 chunks of the
/// budget at most (fewer where the budget has less room).
pub(crate) const READ_AHEAD: usize = 32;

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
            let b = AmazonS3Builder::from_env().with_url(root);
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

/// The store rooted at the URL `root`, with zarrs' synchronous traits.
///
/// # Errors
/// [`Error::Open`] for a URL of no known scheme, one naming no bucket, or
/// a service the environment's settings cannot configure.
pub(crate) fn open_store(name: &str, root: &str) -> Result<Arc<RemoteStore>> {
    let rt = runtime().map_err(|m| Error::open(name, m))?;
    let store = object_store_for(name, root)?;
    Ok(Arc::new(AsyncToSyncStorageAdapter::new(
        Arc::new(AsyncObjectStore::new(store)),
        BlockOn(rt.handle().clone()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

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
