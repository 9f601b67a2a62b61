//! The orphan sweep: removes tarball blobs that no row references.
//!
//! A publish, sync or proxy fetch stores its tarball before committing the row
//! that references it, and deletes the blob when the row fails. A crash (or a
//! failed delete) between the two leaves a blob nothing points at. The sweep
//! removes such blobs once they are older than `min_age`, which keeps it away
//! from writes still in progress. Task logs (`logs/`) are not swept: each is
//! written after its task row, and task rows are never deleted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::Store;

use super::BlobStore;

/// The key prefixes of blobs that rows reference.
const SWEPT_PREFIXES: &[&str] = &["tarballs/", "proxy/", "binaries/"];

/// Removes the unreferenced blobs older than `min_age`; how many were removed.
pub async fn sweep(store: &dyn Store, blobs: &dyn BlobStore, min_age: Duration) -> anyhow::Result<usize> {
    let cutoff = SystemTime::now().checked_sub(min_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for prefix in SWEPT_PREFIXES {
        let old: Vec<String> = blobs.list(prefix).await?.into_iter().filter(|e| e.modified <= cutoff).map(|e| e.key).collect();
        for chunk in old.chunks(1000) {
            let referenced = store.referenced_blobs(chunk).await?;
            for key in chunk.iter().filter(|k| !referenced.contains(k)) {
                if blobs.delete(key).await? {
                    tracing::info!(key, "removed a blob no row references");
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Sweeps once at start, then every `interval` (never again when it is zero).
pub fn spawn(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, min_age: Duration, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sweep(store.as_ref(), blobs.as_ref(), min_age).await {
                Ok(0) => tracing::debug!("blob sweep: nothing to remove"),
                Ok(n) => tracing::info!(removed = n, "blob sweep done"),
                Err(e) => tracing::warn!(error = %e, "blob sweep failed; will try again"),
            }
            if interval.is_zero() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    })
}
