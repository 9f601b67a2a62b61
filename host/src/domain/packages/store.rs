//! Storing a verified version, for publishes and syncs alike: the manifest as
//! stored here, then the blob under a key of its own (fsynced by the blob
//! store), then the row; the blob is deleted when the row is not committed.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::blob::BlobError;
use crate::domain::App;
use crate::store::{NewVersion, PublishOutcome, StoreError};
use crate::util::random_bytes;

use super::super::Error;

/// Storing failed in the blob store or the database (not a refusal of the
/// version: that is a [`PublishOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreVersionError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StoreVersionError> for Error {
    fn from(e: StoreVersionError) -> Self {
        match e {
            StoreVersionError::Blob(e) => e.into(),
            StoreVersionError::Store(e) => e.into(),
        }
    }
}

/// A fresh blob key for the tarball `file` of `name`: a blob is never
/// written over another one, so a failed store never touches a stored version.
fn blob_key(name: &str, file: &str) -> String {
    format!("tarballs/{name}/{}-{}.tgz", file.trim_end_matches(".tgz"), hex::encode(random_bytes(6)))
}

/// The manifest of `name@version` as stored here: its readme taken out (and
/// returned), `_id` set, and `dist` (the given one) pointing at the tarball
/// here with the integrity and shasum of the bytes here.
pub fn stored_manifest(
    name: &str,
    version: &str,
    mut manifest: Map<String, Value>,
    mut dist: Map<String, Value>,
    integrity: &str,
    shasum: String,
) -> (Map<String, Value>, Option<String>) {
    let readme = manifest.remove("readme").and_then(|r| r.as_str().map(str::to_string));
    manifest.insert("_id".into(), Value::String(format!("{name}@{version}")));
    dist.insert("integrity".into(), Value::String(integrity.to_string()));
    dist.insert("shasum".into(), Value::String(shasum));
    dist.insert("tarball".into(), Value::String(format!("/{name}/-/{}", super::super::names::tarball_file(name, version))));
    manifest.insert("dist".into(), Value::Object(dist));
    (manifest, readme)
}

/// Stores a verified version: the blob first, under a fresh key (set here in
/// `new.version.tarball_key`) and fsynced by the blob store, then the row
/// (`Store::publish`). Whenever the row is not committed (a refusal or an
/// error), the blob is deleted again. The caller drops the packument cache.
pub async fn store_version(app: &App, mut new: NewVersion, bytes: Bytes) -> Result<PublishOutcome, StoreVersionError> {
    let key = blob_key(&new.package, &new.version.tarball_file);
    new.version.tarball_key = key.clone();
    app.blobs.put(&key, bytes).await?;
    let outcome = app.store.publish(&new).await;
    if !matches!(outcome, Ok(PublishOutcome::Published)) {
        if let Err(e) = app.blobs.delete(&key).await {
            tracing::warn!(error = %e, key, "removing the blob of a version not stored");
        }
    }
    Ok(outcome?)
}
