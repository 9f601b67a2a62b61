//! After the versions: the upstream's dist-tags, deprecations, maintainers
//! (prefixed) and removals, applied here as one compare-and-swap change.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::config::SyncDeleteMode;
use crate::domain::names;
use crate::domain::packument::highest;
use crate::store::{now_ms, PackageChange, PackageRecord};
use crate::util::next_rev;

use super::package::{Source, SyncError};
use super::TaskLog;

/// Builds the change from `record` (the package as stored now) and applies
/// it if there is anything to change.
pub(super) async fn apply(source: &Source<'_>, record: &PackageRecord, log: &mut TaskLog) -> Result<(), SyncError> {
    let (app, name) = (source.app, source.name);
    let mut change = PackageChange { expected_rev: Some(record.rev.clone()), new_rev: next_rev(Some(&record.rev)), now: now_ms(), ..Default::default() };
    removals_and_deprecations(source.versions, record, app.config.sync_delete_mode, &mut change);
    let remaining: BTreeSet<&str> = record.versions.iter().map(|v| v.version.as_str()).filter(|v| !change.remove_versions.iter().any(|r| r == v)).collect();
    let tags = upstream_tags(source.tags, &remaining);
    diff_tags(&tags, record, &mut change);
    change.maintainers = maintainers(source, record);
    let meaningful = !change.remove_versions.is_empty() || !change.manifests.is_empty() || !change.set_tags.is_empty() || !change.remove_tags.is_empty() || change.maintainers.is_some();
    if !meaningful {
        return Ok(());
    }
    let removed = app.store.update_package(name, &change).await?;
    let Some(removed) = removed else {
        return Err(SyncError::Retry("the package changed during the sync".into()));
    };
    for v in &removed {
        let _ = app.blobs.delete(&v.tarball_key).await;
        log.line(format!("version {} is gone upstream: removed", v.version)).await;
    }
    if !change.set_tags.is_empty() || !change.remove_tags.is_empty() {
        log.line(format!("dist-tags now {}", tags.iter().map(|(t, v)| format!("{t}={v}")).collect::<Vec<_>>().join(", "))).await;
    }
    if !change.manifests.is_empty() {
        log.line(format!("deprecations updated on {} versions", change.manifests.len())).await;
    }
    app.packuments.invalidate(name);
    Ok(())
}

/// Versions gone upstream are removed (with `sync_delete_mode = delete`);
/// the others take the upstream's `deprecated`.
fn removals_and_deprecations(up_versions: &Map<String, Value>, record: &PackageRecord, delete_mode: SyncDeleteMode, change: &mut PackageChange) {
    for v in &record.versions {
        if !up_versions.contains_key(&v.version) {
            match delete_mode {
                SyncDeleteMode::Delete => change.remove_versions.push(v.version.clone()),
                SyncDeleteMode::Block | SyncDeleteMode::Ignore => {}
            }
            continue;
        }
        let up_dep = up_versions[&v.version].get("deprecated").and_then(Value::as_str).filter(|s| !s.is_empty());
        let mut manifest: Value = serde_json::from_str(&v.manifest).unwrap_or_else(|_| Value::Object(Map::new()));
        let ours = manifest.get("deprecated").and_then(Value::as_str);
        if ours != up_dep {
            if let Some(m) = manifest.as_object_mut() {
                match up_dep {
                    Some(d) => m.insert("deprecated".into(), Value::String(d.to_string())),
                    None => m.remove("deprecated"),
                };
            }
            change.manifests.push((v.version.clone(), manifest.to_string()));
        }
    }
}

/// The upstream's valid tags on versions that stay here; `latest` falls back
/// to the highest remaining version.
fn upstream_tags(up_tags: &Map<String, Value>, remaining: &BTreeSet<&str>) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = up_tags
        .iter()
        .filter_map(|(t, v)| Some((t.clone(), v.as_str()?.to_string())))
        .filter(|(t, v)| remaining.contains(v.as_str()) && names::validate_tag(t).is_ok())
        .collect();
    if !tags.iter().any(|(t, _)| t == "latest") {
        if let Some(h) = highest(remaining.iter().copied()) {
            tags.push(("latest".into(), h.to_string()));
        }
    }
    tags
}

fn diff_tags(tags: &[(String, String)], record: &PackageRecord, change: &mut PackageChange) {
    for (t, v) in tags {
        if !record.tags.iter().any(|(rt, rv)| rt == t && rv == v) {
            change.set_tags.push((t.clone(), v.clone()));
        }
    }
    for (t, _) in &record.tags {
        if !tags.iter().any(|(nt, _)| nt == t) {
            change.remove_tags.push(t.clone());
        }
    }
}

/// The upstream's maintainers with the registry's user prefix, when they
/// differ from ours (an upstream without maintainers changes nothing).
fn maintainers(source: &Source<'_>, record: &PackageRecord) -> Option<Vec<String>> {
    let mut maintainers: Vec<String> = source
        .doc
        .get("maintainers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.get("name").and_then(Value::as_str).or(m.as_str())).map(|n| format!("{}{n}", source.registry.user_prefix)).collect())
        .unwrap_or_default();
    maintainers.sort();
    maintainers.dedup();
    let mut current: Vec<String> = record.maintainers.iter().map(|(n, _)| n.clone()).collect();
    current.sort();
    (!maintainers.is_empty() && maintainers != current).then_some(maintainers)
}
