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
