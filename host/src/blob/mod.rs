//! Blob storage for tarballs and logs, behind [`BlobStore`].
//!
//! Keys are relative, `/`-separated paths such as `packages/foo/foo-1.0.0.tgz`.
//! Callers never see file paths, so an S3-compatible store (for example on the
//! `object_store` crate) can be added as another implementation without
//! touching them. Invariant: a reader sees either no blob or a whole blob under
//! a key, never a partial one.

mod local;
pub mod sweep;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use local::LocalBlobStore;

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
    #[error("blob io error: {0}")]
    Io(#[from] std::io::Error),
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
