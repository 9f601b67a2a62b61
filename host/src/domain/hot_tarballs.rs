//! Small tarballs kept in memory: an install reads the same few thousand
//! files over and over, and a file read costs more than the request around
//! it. Keyed by blob key: a key is never written twice (every stored tarball
//! gets a fresh one), so an entry never goes stale and needs no invalidation.

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;

use crate::blob::{Blob, BlobError, BlobStore};

use super::packument::{bounded_cache, Bounded};

/// Files larger than this are always streamed from the blob store.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub struct HotTarballs {
    entries: Option<Bounded<Bytes>>,
    max_file: u64,
}

impl HotTarballs {
    /// A cache of `max_bytes` in all (0: none), for files up to 1/16 of it.
    pub fn new(max_bytes: u64) -> Self {
        if max_bytes == 0 {
            return HotTarballs { entries: None, max_file: 0 };
        }
        let max_file = (max_bytes / 16).clamp(1, MAX_FILE_BYTES);
        let entries = (max_bytes / 1024).clamp(16, 1_000_000) as usize;
        HotTarballs { entries: Some(bounded_cache(entries, max_bytes, |key, bytes: &Bytes| key.len() + bytes.len())), max_file }
    }

    /// The blob under `key`, whose size the caller expects to be `size`:
    /// from memory, or read from `blobs` (and kept when small). `None` when
    /// the blob store has no such blob.
    pub async fn get(&self, blobs: &dyn BlobStore, key: &str, size: u64) -> Result<Option<Blob>, BlobError> {
        let Some(entries) = self.entries.as_ref().filter(|_| size <= self.max_file) else {
            return blobs.get(key).await;
        };
        if let Some(bytes) = entries.get(key) {
            return Ok(Some(Blob::from_bytes(bytes)));
        }
        let Some(blob) = blobs.get(key).await? else { return Ok(None) };
        if blob.size > self.max_file {
            return Ok(Some(blob));
        }
        let mut buf = BytesMut::with_capacity(blob.size as usize);
        let mut stream = blob.stream;
        while let Some(chunk) = stream.try_next().await? {
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        entries.insert(key.to_string(), bytes.clone());
        Ok(Some(Blob::from_bytes(bytes)))
    }

    /// Entries and their weight in bytes.
    pub fn usage(&self) -> (usize, u64) {
        self.entries.as_ref().map_or((0, 0), |e| (e.len(), e.weight()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_blobs_are_kept_and_large_ones_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = crate::blob::LocalBlobStore::open(dir.path()).unwrap();
        blobs.put("tarballs/a/small.tgz", Bytes::from_static(b"small")).await.unwrap();
        blobs.put("tarballs/a/big.tgz", Bytes::from(vec![7u8; 5000])).await.unwrap();
        let hot = HotTarballs::new(16 * 1024);
        let read = |blob: Blob| async move { blob.stream.try_collect::<Vec<Bytes>>().await.unwrap().concat() };
        assert_eq!(read(hot.get(&blobs, "tarballs/a/small.tgz", 5).await.unwrap().unwrap()).await, b"small");
        assert_eq!(hot.usage().0, 1);
        // Served from memory now: the file can go.
        blobs.delete("tarballs/a/small.tgz").await.unwrap();
        assert_eq!(read(hot.get(&blobs, "tarballs/a/small.tgz", 5).await.unwrap().unwrap()).await, b"small");
        assert_eq!(read(hot.get(&blobs, "tarballs/a/big.tgz", 5000).await.unwrap().unwrap()).await.len(), 5000);
        assert_eq!(hot.usage().0, 1, "a file over 1/16 of the cache is not kept");
        assert!(hot.get(&blobs, "tarballs/a/none.tgz", 5).await.unwrap().is_none());
        let off = HotTarballs::new(0);
        assert!(off.get(&blobs, "tarballs/a/none.tgz", 5).await.unwrap().is_none());
        assert_eq!(read(off.get(&blobs, "tarballs/a/big.tgz", 5000).await.unwrap().unwrap()).await.len(), 5000);
    }
}
