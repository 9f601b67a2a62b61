//! After the versions: the upstream's dist-tags, deprecations, maintainers
//! (prefixed) and removals, applied here as one compare-and-swap change. The
//! diffing is `packages::diff`, shared with a client's read-modify-write.

use crate::config::SyncDeleteMode;
use crate::domain::packages::diff::{self, Doc};
use crate::store::{now_ms, PackageChange, PackageRecord};
use crate::util::next_rev;

use super::package::{Source, SyncError};
use super::TaskLog;

/// Builds the change from `record` (the package as stored now) and applies
/// it if there is anything to change.
pub(super) async fn apply(source: &Source<'_>, record: &PackageRecord, log: &mut TaskLog) -> Result<(), SyncError> {
    let (app, name) = (source.app, source.name);
    let doc = Doc::Upstream { user_prefix: &source.registry.user_prefix };
    let mut change =
        PackageChange { expected_rev: Some(record.rev.clone()), new_rev: next_rev(Some(&record.rev)), now: now_ms(), ..Default::default() };
    let deprecations = diff::deprecations(record, source.versions, doc)?;
    change.deprecations = deprecations.changed;
    // Versions gone upstream are removed only with `sync_delete_mode = delete`.
    if app.config.sync_delete_mode == SyncDeleteMode::Delete {
        change.remove_versions = deprecations.missing;
    }
    let remaining: Vec<&str> =
        record.versions.iter().map(|v| v.version.as_str()).filter(|v| !change.remove_versions.iter().any(|r| r == v)).collect();
    let tags = diff::tags(&record.tags, Some(source.tags), &remaining, &change.remove_versions, doc)?;
    (change.set_tags, change.remove_tags) = (tags.set, tags.remove);
    change.maintainers = diff::maintainers(record, source.doc.get("maintainers"), doc)?;
    let meaningful = !change.remove_versions.is_empty()
        || !change.deprecations.is_empty()
        || !change.set_tags.is_empty()
        || !change.remove_tags.is_empty()
        || change.maintainers.is_some();
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
        log.line(format!("dist-tags now {}", tags.wanted.iter().map(|(t, v)| format!("{t}={v}")).collect::<Vec<_>>().join(", "))).await;
    }
    if !change.deprecations.is_empty() {
        log.line(format!("deprecations updated on {} versions", change.deprecations.len())).await;
    }
    app.packuments.invalidate(name);
    Ok(())
}
