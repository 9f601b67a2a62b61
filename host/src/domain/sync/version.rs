//! Syncing one version: download the tarball, verify it against the
//! upstream's integrity, run the block rules, then store it as a publish
//! does (`packages::store_version`: the blob, then the row).

use bytes::Bytes;
use serde_json::Value;

use crate::domain::{names, packages, policy};
use crate::store::{now_ms, NewVersion, PublishOutcome, VersionRecord};
use crate::util::next_rev;

use super::package::{Source, SyncError};
use super::TaskLog;

/// Fields of an upstream version that describe the install, not the upload.
const VOLATILE: &[&str] = &["_attachments"];

fn parse_time(doc: &Value, version: &str) -> Option<i64> {
    let t = doc.get("time")?.get(version)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis())
}

/// Downloads, verifies, checks and stores one version. Returns the new rev.
pub(super) async fn sync_version(
    source: &Source<'_>,
    version: &str,
    rev: Option<&str>,
    tags: Vec<String>,
    log: &mut TaskLog,
) -> Result<String, SyncError> {
    let (name, registry) = (source.name, source.registry);
    let manifest = &source.versions[version];
    let (bytes, dist, integrity) = download(source, version, manifest).await?;
    let mut fields = manifest.as_object().cloned().unwrap_or_default();
    for field in VOLATILE {
        fields.remove(*field);
    }
    let shasum = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&bytes));
    let dist = dist.as_object().cloned().unwrap_or_default();
    let (stored, readme) = packages::stored_manifest(name, version, fields, dist, &integrity, shasum);
    let publisher = manifest.pointer("/_npmUser/name").and_then(Value::as_str).map(|n| format!("{}{n}", registry.user_prefix));
    let new_rev = next_rev(rev);
    let new = NewVersion {
        package: name.to_string(),
        version: VersionRecord {
            version: version.to_string(),
            manifest: Value::Object(stored).to_string(),
            readme: readme.or_else(|| source.doc.get("readme").and_then(Value::as_str).map(str::to_string)),
            tarball_key: String::new(),
            tarball_file: names::tarball_file(name, version),
            size: bytes.len() as i64,
            integrity,
            publisher: publisher.clone(),
            created_at: parse_time(source.doc, version).unwrap_or_else(now_ms),
        },
        tags,
        publisher: publisher.unwrap_or_else(|| format!("{}unknown", registry.user_prefix)),
        publisher_is_admin: true,
        new_rev: new_rev.clone(),
        description: None,
        keywords: None,
        sync_registry: Some(registry.id.clone()),
    };
    let size = bytes.len();
    match packages::store_version(source.app, new, bytes).await.map_err(|e| SyncError::Retry(e.to_string()))? {
        PublishOutcome::Published => {
            log.line(format!("version {version} synced ({size} bytes)")).await;
            Ok(new_rev)
        }
        PublishOutcome::VersionExists => Err(SyncError::Fail("stored concurrently by another task".into())),
        PublishOutcome::RegistryMismatch | PublishOutcome::NotMaintainer => {
            Err(SyncError::Fail(format!("{name} is not synced from {}", registry.name)))
        }
    }
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
