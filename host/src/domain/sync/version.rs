//! Syncing one version: download the tarball, verify it against the
//! upstream's integrity, run the block rules, store the blob, then the row.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::domain::{names, policy};
use crate::store::{now_ms, NewVersion, PublishOutcome, VersionRecord};
use crate::util::{next_rev, random_bytes};

use super::package::{Source, SyncError};
use super::TaskLog;

/// Fields of an upstream version that describe the install, not the upload.
const VOLATILE: &[&str] = &["_attachments"];

fn parse_time(doc: &Value, version: &str) -> Option<i64> {
    let t = doc.get("time")?.get(version)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis())
}

/// Downloads, verifies, checks and stores one version. Returns the new rev.
pub(super) async fn sync_version(source: &Source<'_>, version: &str, rev: Option<&str>, tags: Vec<String>, log: &mut TaskLog) -> Result<String, SyncError> {
    let (name, registry) = (source.name, source.registry);
    let manifest = &source.versions[version];
    let (bytes, dist, integrity) = download(source, version, manifest).await?;
    let file = names::tarball_file(name, version);
    let (stored, readme) = stored_manifest(name, version, &file, manifest, &dist, &integrity, &bytes);
    let now = now_ms();
    let key = format!("tarballs/{name}/{}-{}.tgz", file.trim_end_matches(".tgz"), hex::encode(random_bytes(6)));
    let publisher = manifest.pointer("/_npmUser/name").and_then(Value::as_str).map(|n| format!("{}{n}", registry.user_prefix));
    let new_rev = next_rev(rev);
    let new = NewVersion {
        package: name.to_string(),
        version: VersionRecord {
            version: version.to_string(),
            manifest: stored.to_string(),
            readme: readme.or_else(|| source.doc.get("readme").and_then(Value::as_str).map(str::to_string)),
            tarball_key: key.clone(),
            tarball_file: file,
            size: bytes.len() as i64,
            integrity,
            publisher: publisher.clone(),
            created_at: parse_time(source.doc, version).unwrap_or(now),
        },
        tags,
        publisher: publisher.unwrap_or_else(|| format!("{}unknown", registry.user_prefix)),
        publisher_is_admin: true,
        new_rev: new_rev.clone(),
        description: None,
        keywords: None,
        sync_registry: Some(registry.id.clone()),
    };
    store(source, &new, bytes, log).await?;
    Ok(new_rev)
}

/// The tarball, verified against the manifest's `dist` and passed by the
/// block rules: (bytes, dist, the sha512 integrity to store).
async fn download(source: &Source<'_>, version: &str, manifest: &Value) -> Result<(Bytes, Value, String), SyncError> {
    let name = source.name;
    names::validate_version(version).map_err(|e| SyncError::Fail(e.to_string()))?;
    if manifest.get("name").and_then(Value::as_str) != Some(name) || manifest.get("version").and_then(Value::as_str) != Some(version) {
        return Err(SyncError::Fail("the upstream manifest names another package or version".into()));
    }
    let dist = manifest.get("dist").cloned().unwrap_or(Value::Null);
    let url = dist.get("tarball").and_then(Value::as_str).ok_or_else(|| SyncError::Fail("no dist.tarball".into()))?;
    let bytes = source.upstream.tarball(name, version, url).await?;
    let integrity = crate::domain::upstream::verify(&bytes, &dist).map_err(SyncError::Fail)?;
    policy::check_version(source.app, name, version, manifest.to_string(), &bytes, policy::Origin::Sync)
        .await
        .map_err(|e| SyncError::Fail(e.to_string()))?;
    Ok((bytes, dist, integrity))
}

/// The manifest as stored here (tarball URL, integrity and shasum of the
/// bytes here), and its readme taken out.
fn stored_manifest(name: &str, version: &str, file: &str, manifest: &Value, dist: &Value, integrity: &str, bytes: &[u8]) -> (Value, Option<String>) {
    let mut stored = manifest.as_object().cloned().unwrap_or_default();
    for field in VOLATILE {
        stored.remove(*field);
    }
    let readme = stored.remove("readme").and_then(|r| r.as_str().map(str::to_string));
    stored.insert("_id".into(), Value::String(format!("{name}@{version}")));
    let mut d: Map<String, Value> = dist.as_object().cloned().unwrap_or_default();
    d.insert("tarball".into(), Value::String(format!("/{name}/-/{file}")));
    d.insert("integrity".into(), Value::String(integrity.to_string()));
    d.insert("shasum".into(), Value::String(hex::encode(<sha1::Sha1 as sha1::Digest>::digest(bytes))));
    stored.insert("dist".into(), Value::Object(d));
    (Value::Object(stored), readme)
}

/// The blob first, then the row; the blob is removed if the row is not stored.
async fn store(source: &Source<'_>, new: &NewVersion, bytes: Bytes, log: &mut TaskLog) -> Result<(), SyncError> {
    let (app, key, size) = (source.app, &new.version.tarball_key, bytes.len());
    app.blobs.put(key, bytes).await.map_err(|e| SyncError::Retry(e.to_string()))?;
    let result = match app.store.publish(new).await {
        Ok(PublishOutcome::Published) => {
            log.line(format!("version {} synced ({size} bytes)", new.version.version)).await;
            Ok(())
        }
        Ok(PublishOutcome::VersionExists) => Err(SyncError::Fail("stored concurrently by another task".into())),
        Ok(PublishOutcome::RegistryMismatch) | Ok(PublishOutcome::NotMaintainer) => {
            Err(SyncError::Fail(format!("{} is not synced from {}", source.name, source.registry.name)))
        }
        Err(e) => Err(SyncError::Retry(e.to_string())),
    };
    if result.is_err() {
        let _ = app.blobs.delete(key).await;
    }
    result
}
