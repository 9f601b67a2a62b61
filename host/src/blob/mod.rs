//! Blob storage for tarballs and logs, behind [`BlobStore`].
//!
//! Keys are relative, `/`-separated paths such as `packages/foo/foo-1.0.0.tgz`.
//! Callers never see file paths or object URLs: [`LocalBlobStore`] keeps files
//! under a directory, [`S3BlobStore`] objects in an S3-compatible bucket, and
//! [`open`] picks one from `[blobs]`. Invariant: a reader sees either no blob
//! or a whole blob under a key, never a partial one.

pub mod copy;
mod local;
mod s3;
pub mod sweep;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use local::LocalBlobStore;
pub use s3::{S3BlobStore, PART_SIZE as S3_PART_SIZE};

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub struct Blob {
    pub size: u64,
    pub stream: ByteStream,
}

impl Blob {
    /// A blob already in memory (e.g. a tarball just fetched from an upstream).
    pub fn from_bytes(bytes: Bytes) -> Blob {
        Blob { size: bytes.len() as u64, stream: Box::pin(futures_util::stream::once(async move { Ok(bytes) })) }
    }
}

/// A stored blob as listed by [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub key: String,
    /// When the blob was last written (a file's mtime, an object's LastModified).
    pub modified: std::time::SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// A local I/O error, or the error a stream handed to `put_stream` ended with.
    #[error("blob io error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage service cannot be reached or refused the request (S3 down,
    /// timeouts, bad credentials): worth retrying later.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `data` under `key`, replacing any blob there, atomically.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BlobError>;
    /// Like `put`, for data that can be fetched or rebuilt again (proxied
    /// tarballs, task logs): still atomic, but not forced to disk.
    async fn put_cache(&self, key: &str, data: Bytes) -> Result<(), BlobError> {
        self.put(key, data).await
    }
    /// Stores what `stream` yields under `key`, durably and atomically; when
    /// the stream ends in an error nothing is stored. Returns the size.
    async fn put_stream(&self, key: &str, stream: ByteStream) -> Result<u64, BlobError> {
        use futures_util::TryStreamExt;
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        let data = Bytes::from(chunks.concat());
        let size = data.len() as u64;
        self.put(key, data).await?;
        Ok(size)
    }
    /// `len` bytes of the blob from `start` (which the caller keeps within
    /// the size); `None` when absent.
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Blob>, BlobError> {
        use futures_util::StreamExt;
        let Some(blob) = self.get(key).await? else { return Ok(None) };
        let mut pos = 0u64;
        let stream = blob.stream.filter_map(move |chunk| {
            let out = chunk.map(|c| {
                let (from, to) = (pos, pos + c.len() as u64);
                pos = to;
                let (a, b) = (start.clamp(from, to), (start + len).clamp(from, to));
                c.slice((a - from) as usize..(b - from) as usize)
            });
            std::future::ready(match out {
                Ok(c) if c.is_empty() => None,
                other => Some(other),
            })
        });
        Ok(Some(Blob { size: len, stream: Box::pin(stream) }))
    }
    /// Opens the blob for streaming; `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError>;
    /// The blob's size; `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<u64>, BlobError>;
    /// Removes the blob; false when it was absent.
    async fn delete(&self, key: &str) -> Result<bool, BlobError>;
    /// The blobs whose key starts with `prefix` (e.g. `tarballs/`), in no
    /// particular order, with their age; writes in progress are not listed.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobEntry>, BlobError>;
    /// Whether the store can be used now (for `/-/ready` and the check at start).
    async fn check(&self) -> Result<(), BlobError> {
        Ok(())
    }
    /// What the store is, for logs: `local <dir>` or `s3 <bucket>/<prefix>`.
    fn describe(&self) -> String {
        "blob store".into()
    }
}

/// The blob store `[blobs]` configures, checked: a missing bucket or refused
/// credentials fail here, at start, not on the first publish.
pub async fn open(config: &crate::config::Config) -> anyhow::Result<std::sync::Arc<dyn BlobStore>> {
    open_kind(config, config.blobs.kind).await
}

/// A blob store of `kind` with the settings of `config` (local: `<data_dir>/blobs`;
/// s3: the `[blobs]` keys), checked.
pub async fn open_kind(config: &crate::config::Config, kind: crate::config::BlobKind) -> anyhow::Result<std::sync::Arc<dyn BlobStore>> {
    use crate::config::BlobKind;
    let store: std::sync::Arc<dyn BlobStore> = match kind {
        BlobKind::Local => std::sync::Arc::new(
            LocalBlobStore::open(config.blob_dir())
                .map_err(|e| anyhow::anyhow!("opening blob store {}: {e}", config.blob_dir().display()))?,
        ),
        BlobKind::S3 => std::sync::Arc::new(S3BlobStore::open(&config.blobs)?),
    };
    store.check().await.map_err(|e| anyhow::anyhow!("the blob store ({}) cannot be used: {e}", store.describe()))?;
    Ok(store)
}

/// Rejects keys that could escape the store: empty, absolute, `.`/`..` or empty segments, NUL or backslash.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        Err(BlobError::InvalidKey(key.to_string()))
    } else {
        Ok(())
    }
}
