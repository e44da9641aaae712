//! HDF5 and netCDF-4 files reached by URL (feature `hdf5` beside
//! `object-store`): one object read by byte ranges ([`RangeFile`]), and
//! what libhdf5's own S3 driver needs to reach it ([`ros3_target`]).

use std::sync::Arc;

use ndstream_engine::{Error, Result};
use object_store::aws::AmazonS3ConfigKey;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{object_store_for, runtime, s3_builder};
use crate::url::split_url;

/// One object read by byte ranges: an HDF5 or netCDF-4 file in a bucket
/// or on a web server, whose chunks are read where its chunk index puts
/// them, each by one ranged GET.
#[derive(Debug)]
pub(crate) struct RangeFile {
    store: Arc<dyn ObjectStore>,
    key: object_store::path::Path,
    len: u64,
    /// The object's ETag at open (a strong one; see [`strong`]): every read
    /// asks for that version (`If-Match`), so a file replaced while it is
    /// read is an error, not a mixture of two files.
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

/// An ETag that `If-Match` can compare: a weak one (`W/"…"`, which a web
/// server may give for a representation it re-encodes) never matches, so
/// a file with one is read unpinned.
fn strong(e_tag: Option<&str>) -> Option<String> {
    e_tag.filter(|t| !t.starts_with("W/")).map(str::to_string)
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
                            .with_if_match(strong(meta.e_tag.as_deref()));
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
                    e_tag: strong(meta.e_tag.as_deref()),
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

    #[test]
    fn reads_are_pinned_to_strong_etags_only() {
        assert_eq!(strong(Some("\"abc\"")), Some("\"abc\"".to_string()));
        assert_eq!(strong(Some("W/\"abc\"")), None);
        assert_eq!(strong(None), None);
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

    #[test]
    fn libhdf5s_s3_driver_is_not_asked_for_other_services() {
        let e = ros3_target("gs://b/x.nc", "gs://b/x.nc").unwrap_err();
        assert!(e.to_string().contains("not gs://"), "{e}");
        let t = ros3_target("n", "https://h:8/d/x.nc").unwrap();
        assert_eq!(t.url, "https://h:8/d/x.nc");
        assert!(t.signing.is_none());
    }
}
