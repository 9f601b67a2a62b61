//! Copying every blob from one store to another (`cairn blobs copy`), for
//! moving an installation between local files and object storage.
//!
//! Resumable: an object already at the destination with the same size and
//! SHA-256 is skipped. Verified: every copied object is read back and its size
//! and SHA-256 compared with what was read from the source. Objects are
//! streamed, never held whole in memory.

use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::{BlobError, BlobStore};

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Copied, then read back and found equal.
    Copied,
    /// Already at the destination with the same size and digest.
    Present,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub copied: usize,
    pub present: usize,
    /// Bytes copied (objects already present not counted).
    pub bytes: u64,
}

/// One object done: its position (from 1), the total, its key, size and outcome.
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub key: &'a str,
    pub size: u64,
    pub outcome: Outcome,
}

/// Size and SHA-256 of a stored blob; `None` when absent.
pub async fn digest(store: &dyn BlobStore, key: &str) -> Result<Option<(u64, [u8; 32])>, BlobError> {
    let Some(blob) = store.get(key).await? else { return Ok(None) };
    let mut stream = blob.stream;
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Some((size, hasher.finalize().into())))
}

/// Copies one object (unless present), hashing it on the way, then verifies the copy.
async fn copy_one(from: &dyn BlobStore, to: &dyn BlobStore, key: &str) -> anyhow::Result<(u64, Outcome)> {
    let source_size = from.head(key).await?.ok_or_else(|| anyhow::anyhow!("{key} vanished from the source while copying"))?;
    if to.head(key).await? == Some(source_size) {
        let (source, dest) = (digest(from, key).await?, digest(to, key).await?);
        if source.is_some() && source == dest {
            return Ok((source_size, Outcome::Present));
        }
    }
    let blob = from.get(key).await?.ok_or_else(|| anyhow::anyhow!("{key} vanished from the source while copying"))?;
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let h = hasher.clone();
    let stream = blob
        .stream
        .map_ok(move |chunk| {
            h.lock().expect("digest lock").update(&chunk);
            chunk
        })
        .boxed();
    let size = to.put_stream(key, stream).await?;
    let expected: [u8; 32] = std::mem::take(&mut *hasher.lock().expect("digest lock")).finalize().into();
    match digest(to, key).await? {
        Some((n, d)) if n == size && d == expected => Ok((size, Outcome::Copied)),
        Some((n, _)) => anyhow::bail!("verifying {key}: the copy has {n} bytes or another SHA-256 than the {size} bytes read"),
        None => anyhow::bail!("verifying {key}: the copy is missing right after it was written"),
    }
}

/// Copies every blob of `from` (all keys, as listed) to `to`, reporting each.
/// Stops at the first failure; running it again resumes.
pub async fn copy_all(from: &dyn BlobStore, to: &dyn BlobStore, mut progress: impl FnMut(Progress<'_>)) -> anyhow::Result<CopyReport> {
    let mut keys: Vec<String> = from.list("").await?.into_iter().map(|e| e.key).collect();
    keys.sort();
    let mut report = CopyReport::default();
    let total = keys.len();
    for (i, key) in keys.iter().enumerate() {
        let (size, outcome) = copy_one(from, to, key).await.map_err(|e| anyhow::anyhow!("copying {key}: {e:#}"))?;
        match outcome {
            Outcome::Copied => {
                report.copied += 1;
                report.bytes += size;
            }
            Outcome::Present => report.present += 1,
        }
        progress(Progress { done: i + 1, total, key, size, outcome });
    }
    Ok(report)
}
