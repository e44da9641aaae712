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
//! `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`): static keys or a
//! `credential_process`, `region` and `endpoint_url`, as boto3 and s3fs
//! read them (see
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

#[cfg(feature = "hdf5")]
mod range;
#[cfg(feature = "hdf5")]
pub(crate) use range::{ros3_target, RangeBytes, RangeFile, Ros3Target};

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

/// The keys a profile's `credential_process` gives: the command is run
/// by `sh -c` with no input, and its output read as the AWS CLI specifies
/// it (JSON with `Version` 1, `AccessKeyId`, `SecretAccessKey` and, for
/// temporary keys, `SessionToken`; an `Expiration` is not followed: the
/// keys serve the whole job).
fn credential_process(
    profile: &str,
    cmd: &str,
) -> std::result::Result<(String, String, Option<String>), String> {
    let what = format!("the credential_process of the AWS profile `{profile}`");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{what} printed no JSON credentials: {e}"))?;
    if v.get("Version").and_then(serde_json::Value::as_u64) != Some(1) {
        return Err(format!(
            "{what} printed credentials of a version other than 1"
        ));
    }
    let field = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(id), Some(secret)) => Ok((id, secret, field("SessionToken"))),
        _ => Err(format!("{what} printed no AccessKeyId and SecretAccessKey")),
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
/// file's (`[profile name]`, or `[default]`), or from the profile's
/// `credential_process` (see [`credential_process`]), and are taken only
/// when the environment sets no key; `region` and `endpoint_url` come
/// from the config file, each unless the environment sets it.
///
/// # Errors
/// A named profile (`AWS_PROFILE`) that neither file holds, a file that
/// cannot be parsed, a credential process that fails, and a profile whose
/// credentials come by a role or SSO, which this reader does not follow.
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
            _ if get("credential_process").is_some() => {
                let cmd = get("credential_process").unwrap_or_default();
                let (id, secret, token) = credential_process(&profile, &cmd)?;
                out.push((AmazonS3ConfigKey::AccessKeyId, id));
                out.push((AmazonS3ConfigKey::SecretAccessKey, secret));
                if let Some(token) = token {
                    out.push((AmazonS3ConfigKey::Token, token));
                }
            }
            _ => {
                let other = [
                    "role_arn",
                    "sso_session",
                    "sso_start_url",
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Owned key-value pairs, as `profile` gives them.
    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
    fn a_profiles_credential_process_gives_its_keys() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        let script = home.path().join("creds.sh");
        std::fs::write(
            &script,
            "echo '{\"Version\": 1, \"AccessKeyId\": \"AKP\", \"SecretAccessKey\": \"sp\", \
             \"SessionToken\": \"tp\", \"Expiration\": \"2030-01-01T00:00:00Z\"}'\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            format!(
                "[profile proc]\ncredential_process = sh {}\nregion = eu-north-1\n\n\
                 [profile fails]\ncredential_process = echo no such role >&2; exit 3\n\n\
                 [profile old]\ncredential_process = echo '{{\"Version\": 2}}'\n",
                script.display()
            ),
        )
        .unwrap();
        assert_eq!(
            profile(home.path(), &[("AWS_PROFILE", "proc")]).unwrap(),
            kv(&[
                ("AccessKeyId", "AKP"),
                ("SecretAccessKey", "sp"),
                ("Token", "tp"),
                ("Region", "eu-north-1"),
            ])
        );
        // Keys in the environment win: the process is not run.
        assert_eq!(
            profile(
                home.path(),
                &[("AWS_PROFILE", "fails"), ("AWS_ACCESS_KEY_ID", "ENV")]
            )
            .unwrap(),
            Vec::new()
        );
        let e = profile(home.path(), &[("AWS_PROFILE", "fails")]).unwrap_err();
        assert!(
            e.contains("credential_process of the AWS profile `fails` failed")
                && e.contains("no such role"),
            "{e}"
        );
        let e = profile(home.path(), &[("AWS_PROFILE", "old")]).unwrap_err();
        assert!(e.contains("a version other than 1"), "{e}");
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
