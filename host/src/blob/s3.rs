//! Blobs as objects in an S3-compatible bucket, on the `object_store` crate.
//!
//! The guarantees of [`super::LocalBlobStore`], the S3 way: an object appears
//! whole or not at all (a single `PUT`, or a multipart upload that is only
//! visible once completed and is aborted when its stream fails); large streams
//! go up in parts of [`PART_SIZE`] with at most [`MAX_PARTS_IN_FLIGHT`]
//! uploading, so memory stays flat in the object's size; reads are streamed,
//! ranges sent as `Range` requests. S3 acknowledges a `PUT` once the object is
//! stored durably, so `put` and `put_cache` are the same here.
//!
//! Every failure of the service (unreachable, timeouts, 5xx, refused
//! credentials) is [`BlobError::Unavailable`], which requests answer with 503.
//! Credentials never appear in a log line, an error or a debug dump.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig, WriteMultipart};

use super::{validate_key, Blob, BlobEntry, BlobError, BlobStore, ByteStream};
use crate::config::BlobsConfig;

/// The size of a multipart upload's parts (S3's smallest is 5 MiB); a stream
/// shorter than this is stored with one `PUT`.
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploading at once for one stream: with the part being filled, the
/// memory one upload holds is at most `(MAX_PARTS_IN_FLIGHT + 1) * PART_SIZE`.
const MAX_PARTS_IN_FLIGHT: usize = 2;
/// The longest a request without a streamed body may take (HEAD, DELETE,
/// list pages, the headers of a GET).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a `PUT` of a whole blob or one part may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub struct S3BlobStore {
    s3: AmazonS3,
    bucket: String,
    /// The key prefix, without slashes at either end ("" for none).
    prefix: String,
}

/// Names the bucket and prefix, never the credentials.
impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore").field("bucket", &self.bucket).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// A client for `[blobs]`; credentials from the config or else the
    /// standard AWS environment variables. Makes no request (see `check`).
    pub fn open(cfg: &BlobsConfig) -> anyhow::Result<S3BlobStore> {
        cfg.validate_s3()?;
        let bucket = cfg.bucket.clone().unwrap_or_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_client_options(
                // No total timeout: a download streams as long as its client reads.
                ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout_disabled(),
            )
            .with_retry(RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            });
        if let Some(region) = &cfg.region {
            builder = builder.with_region(region);
        } else if std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            if let Ok(region) = std::env::var("AWS_REGION") {
                builder = builder.with_region(region);
            }
        }
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let s3 = builder.build().map_err(|e| anyhow::anyhow!("[blobs] S3 settings: {}", crate::config::redact_url(&e.to_string())))?;
        Ok(S3BlobStore { s3, bucket, prefix: cfg.prefix.trim_matches('/').to_string() })
    }

    /// The object of `key`: `<prefix>/<key>`, each segment as `object_store` encodes it.
    fn path(&self, key: &str) -> Result<Path, BlobError> {
        validate_key(key)?;
        Ok(self.dir(key))
    }

    /// The object path of a key or a key prefix (no validation: used for listing too).
    fn dir(&self, key: &str) -> Path {
        Path::from_iter(self.prefix.split('/').chain(key.split('/')))
    }

    /// The key of a listed object: its path without the prefix, segments decoded.
    fn key_of(&self, location: &Path) -> Option<String> {
        let mut parts = location.parts();
        for expected in self.prefix.split('/').filter(|s| !s.is_empty()) {
            if parts.next()?.as_ref() != Path::from(expected).as_ref() {
                return None;
            }
        }
        let segments: Vec<String> =
            parts.map(|p| percent_encoding::percent_decode_str(p.as_ref()).decode_utf8_lossy().into_owned()).collect();
        (!segments.is_empty()).then(|| segments.join("/"))
    }

    /// One `PUT` of a whole object.
    async fn put_whole(&self, path: &Path, payload: PutPayload) -> Result<(), BlobError> {
        timed(UPLOAD_TIMEOUT, self.s3.put(path, payload)).await.map(drop)
    }

    /// Uploads what remains of `stream` after `first` (a full part) as a
    /// multipart upload, completed only when the stream ended well.
    async fn put_parts(&self, path: &Path, first: Vec<Bytes>, mut stream: ByteStream) -> Result<u64, BlobError> {
        let upload = timed(REQUEST_TIMEOUT, self.s3.put_multipart(path)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut size = 0u64;
        for chunk in first {
            size += chunk.len() as u64;
            writer.put(chunk);
        }
        let outcome: Result<(), BlobError> = async {
            loop {
                timed(UPLOAD_TIMEOUT, writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT)).await?;
                match stream.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        size += chunk.len() as u64;
                        writer.put(chunk);
                    }
                    None => return Ok(()),
                }
            }
        }
        .await;
        match outcome {
            Ok(()) => {
                timed(UPLOAD_TIMEOUT, writer.finish()).await?;
                Ok(size)
            }
            Err(e) => {
                // Nothing becomes visible; a failed abort leaves parts that a
                // bucket lifecycle rule for incomplete uploads removes.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "aborting a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    /// A GET with `options`; `None` when the object is absent.
    async fn open_read(&self, key: &str, options: GetOptions) -> Result<Option<Blob>, BlobError> {
        let path = self.path(key)?;
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, self.s3.get_opts(&path, options)).await {
            Err(_) => return Err(BlobError::Unavailable(format!("reading {key}: no answer in {}s", REQUEST_TIMEOUT.as_secs()))),
            Ok(Err(object_store::Error::NotFound { .. })) => return Ok(None),
            Ok(r) => r.map_err(unavailable)?,
        };
        let size = result.range.end - result.range.start;
        let stream = result.into_stream().map_err(|e| std::io::Error::other(unavailable(e))).boxed();
        Ok(Some(Blob { size, stream }))
    }
}

/// An `object_store` failure as a blob error (`NotFound` is handled by callers).
fn unavailable(e: object_store::Error) -> BlobError {
    BlobError::Unavailable(crate::config::redact_url(&e.to_string()))
}

/// Runs an `object_store` call with a deadline.
async fn timed<T>(limit: Duration, call: impl std::future::Future<Output = object_store::Result<T>>) -> Result<T, BlobError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(BlobError::Unavailable(format!("no answer from the object store in {}s", limit.as_secs()))),
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BlobError> {
        self.put_whole(&self.path(key)?, PutPayload::from(data)).await
    }

    async fn put_stream(&self, key: &str, mut stream: ByteStream) -> Result<u64, BlobError> {
        let path = self.path(key)?;
        let (mut first, mut buffered) = (Vec::new(), 0usize);
        while buffered < PART_SIZE {
            match stream.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    buffered += chunk.len();
                    first.push(chunk);
                }
                None => {
                    self.put_whole(&path, first.into_iter().collect()).await?;
                    return Ok(buffered as u64);
                }
            }
        }
        self.put_parts(&path, first, stream).await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Blob>, BlobError> {
        if len == 0 {
            // S3 cannot express an empty range.
            return Ok(self.head(key).await?.map(|_| Blob::from_bytes(Bytes::new())));
        }
        let options = GetOptions { range: Some(GetRange::Bounded(start..start + len)), ..Default::default() };
        self.open_read(key, options).await
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        self.open_read(key, GetOptions::default()).await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, BlobError> {
        let path = self.path(key)?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.s3.head(&path)).await {
            Ok(Ok(meta)) => Ok(Some(meta.size)),
            Ok(Err(object_store::Error::NotFound { .. })) => Ok(None),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(BlobError::Unavailable(format!("HEAD {key}: no answer in {}s", REQUEST_TIMEOUT.as_secs()))),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        // S3 answers a DELETE of a missing key like any other: ask first.
        if self.head(key).await?.is_none() {
            return Ok(false);
        }
        timed(REQUEST_TIMEOUT, self.s3.delete(&self.path(key)?)).await?;
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobEntry>, BlobError> {
        // List the deepest "directory" the prefix names, then filter by the whole prefix.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let dir = self.dir(dir_part);
        let mut listing = self.s3.list(Some(&dir));
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, listing.next())
                .await
                .map_err(|_| BlobError::Unavailable(format!("listing {prefix}: no answer in {}s", REQUEST_TIMEOUT.as_secs())))?;
            let Some(meta) = next.transpose().map_err(unavailable)? else { break };
            let Some(key) = self.key_of(&meta.location) else { continue };
            if key.starts_with(prefix) {
                out.push(BlobEntry { key, modified: SystemTime::from(meta.last_modified) });
            }
        }
        Ok(out)
    }

    /// One list request: it fails on a missing bucket, refused credentials or
    /// an unreachable endpoint, which HEAD requests could not tell apart.
    async fn check(&self) -> Result<(), BlobError> {
        let dir = self.dir("");
        match tokio::time::timeout(REQUEST_TIMEOUT, self.s3.list_with_delimiter(Some(&dir))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BlobError::Unavailable(explain(&self.bucket, &e.to_string()))),
            Err(_) => Err(BlobError::Unavailable(format!("bucket {}: no answer in {}s", self.bucket, REQUEST_TIMEOUT.as_secs()))),
        }
    }

    fn describe(&self) -> String {
        format!("s3 bucket {} prefix {:?}", self.bucket, self.prefix)
    }
}

/// A failed check as an operator should read it.
fn explain(bucket: &str, error: &str) -> String {
    let error = crate::config::redact_url(error);
    let what = if error.contains("NoSuchBucket") {
        format!("bucket {bucket} does not exist")
    } else if ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden", "401 Unauthorized"]
        .iter()
        .any(|s| error.contains(s))
    {
        format!("the credentials were refused for bucket {bucket}")
    } else {
        format!("bucket {bucket} cannot be listed")
    };
    format!("{what} ({error})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3BlobStore {
        let cfg = BlobsConfig {
            kind: crate::config::BlobKind::S3,
            bucket: Some("cairn-unit".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
            prefix: prefix.into(),
            access_key_id: Some("AKIDUNIT".into()),
            secret_access_key: Some("very-secret-key".into()),
        };
        S3BlobStore::open(&cfg).unwrap()
    }

    #[test]
    fn keys_map_to_paths_and_back() {
        for prefix in ["", "prod/", "a/b"] {
            let s = store(prefix);
            for key in ["tarballs/@s/n/n-1.0.0-ab.tgz", "proxy/x/x-1.0.0~beta%41.tgz", "logs/sync/t.log"] {
                let path = s.path(key).unwrap();
                assert_eq!(s.key_of(&path).as_deref(), Some(key), "prefix {prefix:?}");
            }
        }
        assert_eq!(store("prod/").path("a/b").unwrap().as_ref(), "prod/a/b");
        assert_eq!(store("prod/").key_of(&Path::from("other/a/b")), None);
        assert!(matches!(store("").path("a/../b"), Err(BlobError::InvalidKey(_))));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let s = store("p/");
        let dump = format!("{s:?} {:?}", BlobsConfig { secret_access_key: Some("very-secret-key".into()), ..Default::default() });
        assert!(!dump.contains("very-secret-key") && !dump.contains("AKIDUNIT"), "{dump}");
    }

    #[test]
    fn check_failures_say_what_is_wrong() {
        assert!(explain("b", "Client error 404: <Code>NoSuchBucket</Code>").starts_with("bucket b does not exist"));
        assert!(explain("b", "<Code>InvalidAccessKeyId</Code>").starts_with("the credentials were refused"));
        assert!(explain("b", "error sending request for url (http://u:p@h/)").contains("http://***@h/"));
    }
}
