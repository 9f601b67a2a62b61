//! What one sync of a package does: checks where it comes from, fetches the
//! upstream packument, stores the missing versions (`version`), applies tags,
//! deprecations, maintainers and removals (`change`) and queues dependencies.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::SyncDeleteMode;
use crate::domain::upstream::{Fetched, Upstream, UpstreamError};
use crate::domain::App;
use crate::domain::{names, registries, Error};
use crate::store::{now_ms, Block, PackageChange, PackageRecord, Registry};
use crate::util::next_rev;

use super::{change, enqueue, version, SyncOptions, TaskLog};

/// How a sync failed: `Retry` puts the task back (upstream or storage
/// trouble), `Fail` ends it.
pub(crate) enum SyncError {
    Retry(String),
    Fail(String),
}

impl From<UpstreamError> for SyncError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Retryable(m) => SyncError::Retry(crate::config::redact_url(&m)),
            UpstreamError::Fatal(m) => SyncError::Fail(crate::config::redact_url(&m)),
        }
    }
}

impl From<Error> for SyncError {
    fn from(e: Error) -> Self {
        SyncError::Fail(e.to_string())
    }
}

impl From<crate::store::StoreError> for SyncError {
    fn from(e: crate::store::StoreError) -> Self {
        SyncError::Retry(e.to_string())
    }
}

/// The package being synced and what its upstream says about it.
pub(super) struct Source<'a> {
    pub app: &'a Arc<App>,
    pub name: &'a str,
    pub registry: &'a Registry,
    pub upstream: &'a Upstream,
    /// The upstream packument.
    pub doc: &'a Value,
    /// Its `versions`.
    pub versions: &'a Map<String, Value>,
    /// Its `dist-tags`.
    pub tags: &'a Map<String, Value>,
}

/// How the versions went.
#[derive(Default)]
struct Progress {
    synced: usize,
    skipped: usize,
    failed: Vec<String>,
    /// The first retryable failure: the task runs again for it.
    retry: Option<String>,
}

pub(super) async fn sync_package(app: &Arc<App>, name: &str, options: &SyncOptions, log: &mut TaskLog) -> Result<String, SyncError> {
    let (local, registry) = origin(app, name, options).await?;
    log.line(format!("upstream: {} ({}, {})", registry.name, registry.host, registry.kind)).await;
    let upstream = Upstream::for_registry(app, registry.clone())?;

    if options.sync_download_data {
        return import_downloads(app, &upstream, name, log).await;
    }

    let doc = match upstream.packument(name).await? {
        Fetched::Found(doc) => doc,
        Fetched::NotFound if !app.config.sync_delete_on_not_found => {
            return Err(SyncError::Fail(format!("{name} was not found upstream (nothing deleted: sync_delete_on_not_found is off)")));
        }
        Fetched::NotFound | Fetched::Removed => return removed_upstream(app, name, local.is_some(), log).await,
    };
    let empty = Map::new();
    let up_versions = doc.get("versions").and_then(Value::as_object).unwrap_or(&empty);
    let up_tags: Map<String, Value> = doc.get("dist-tags").and_then(Value::as_object).cloned().unwrap_or_default();
    log.line(format!("upstream has {} versions, dist-tags {}", up_versions.len(), Value::Object(up_tags.clone()))).await;
    let source = Source { app, name, registry: &registry, upstream: &upstream, doc: &doc, versions: up_versions, tags: &up_tags };

    let wanted = wanted_versions(&source, options, log).await;
    let progress = store_versions(&source, local.as_ref(), &wanted, options, log).await?;
    app.packuments.invalidate(name);

    let Some(record) = app.store.package(name).await? else {
        let summary = format!("0 versions stored, {} rejected", progress.failed.len());
        return match progress.retry {
            Some(m) => Err(SyncError::Retry(format!("{summary}; {m}"))),
            None if progress.failed.is_empty() => Ok(summary),
            None => Err(SyncError::Fail(summary)),
        };
    };
    change::apply(&source, &record, log).await?;

    let queued = if options.skip_dependencies { 0 } else { queue_dependencies(app, name, dependencies(&source, &wanted), log).await? };
    let Progress { synced, skipped, failed, retry } = progress;
    let summary = format!("{synced} versions synced, {skipped} already here, {} rejected, {queued} dependencies queued", failed.len());
    if let Some(m) = retry {
        return Err(SyncError::Retry(format!("{summary}; {m}")));
    }
    if failed.is_empty() {
        Ok(summary)
    } else {
        Err(SyncError::Fail(format!("{summary}; rejected: {}", failed.join(", "))))
    }
}

/// The local package (if any) and the registry it is synced from; refuses
/// blocked packages, packages published here and a change of registry.
async fn origin(app: &Arc<App>, name: &str, options: &SyncOptions) -> Result<(Option<PackageRecord>, Registry), SyncError> {
    names::validate(name).map_err(|e| SyncError::Fail(e.to_string()))?;
    if app.store.block(name).await?.is_some() {
        return Err(SyncError::Fail(format!("{name} is blocked here")));
    }
    let local = app.store.package(name).await?;
    if local.as_ref().is_some_and(|p| p.registry_id.is_none()) {
        return Err(SyncError::Fail(format!("{name} is published on this registry; it cannot be synced")));
    }
    let registry = registries::choose(app, name, options.registry_name.as_deref(), local.as_ref().and_then(|p| p.registry_id.as_deref()))
        .await
        .map_err(|e| SyncError::Fail(e.to_string()))?;
    if let Some(p) = &local {
        if p.registry_id.as_deref() != Some(registry.id.as_str()) {
            return Err(SyncError::Fail(format!("{name} was synced from another registry; sync it from that one")));
        }
    }
    Ok((local, registry))
}

/// The versions to sync, oldest first: the requested ones that exist
/// upstream (plus its latest), or all of them.
async fn wanted_versions(source: &Source<'_>, options: &SyncOptions, log: &mut TaskLog) -> Vec<String> {
    let up_versions = source.versions;
    let mut wanted: Vec<String> = match &options.specific_versions {
        Some(list) => {
            let mut l: Vec<String> = list.clone();
            // The latest version comes along, so the package stays installable.
            if let Some(latest) = source.tags.get("latest").and_then(Value::as_str) {
                if !l.iter().any(|v| v == latest) {
                    l.push(latest.to_string());
                }
            }
            for v in list {
                if !up_versions.contains_key(v) {
                    log.line(format!("version {v} does not exist upstream")).await;
                }
            }
            l.into_iter().filter(|v| up_versions.contains_key(v)).collect()
        }
        None => up_versions.keys().cloned().collect(),
    };
    wanted.sort_by(|a, b| match (nodejs_semver::Version::parse(a), nodejs_semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    });
    wanted
}

/// The dependencies (and optional ones) of the wanted versions.
fn dependencies(source: &Source<'_>, wanted: &[String]) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    for version in wanted {
        for field in ["dependencies", "optionalDependencies"] {
            if let Some(d) = source.versions[version].get(field).and_then(Value::as_object) {
                deps.extend(d.keys().cloned());
            }
        }
    }
    deps
}

/// Stores the wanted versions that are missing (or all of them with
/// `forceSyncHistory`). A version that fails does not stop the others.
async fn store_versions(
    source: &Source<'_>,
    local: Option<&PackageRecord>,
    wanted: &[String],
    options: &SyncOptions,
    log: &mut TaskLog,
) -> Result<Progress, SyncError> {
    let present: BTreeSet<String> = local.iter().flat_map(|p| p.versions.iter().map(|v| v.version.clone())).collect();
    let mut rev = local.map(|p| p.rev.clone());
    let up_latest = source.tags.get("latest").and_then(Value::as_str).map(str::to_string);
    // The package is installable throughout: the first version stored gets
    // `latest` until the upstream's own latest arrives.
    let mut has_latest = local.is_some_and(|p| p.tags.iter().any(|(t, _)| t == "latest"));
    let mut progress = Progress::default();
    for version in wanted {
        let exists = present.contains(version);
        if exists && !options.force_sync_history {
            progress.skipped += 1;
            continue;
        }
        if exists {
            replace_version(source.app, source.name, version, &mut rev).await?;
        }
        let tags = if !has_latest || up_latest.as_deref() == Some(version.as_str()) { vec!["latest".to_string()] } else { Vec::new() };
        match version::sync_version(source, version, rev.as_deref(), tags, log).await {
            Ok(new_rev) => {
                rev = Some(new_rev);
                progress.synced += 1;
                has_latest = true;
            }
            Err(SyncError::Retry(m)) => {
                // Keep going: the other versions, tags and maintainers still sync;
                // the task is retried for this one afterwards.
                log.line(format!("version {version} not synced yet: {m}")).await;
                progress.failed.push(version.clone());
                progress.retry.get_or_insert(m);
            }
            Err(SyncError::Fail(m)) => {
                log.line(format!("version {version} rejected: {m}")).await;
                progress.failed.push(version.clone());
            }
        }
    }
    Ok(progress)
}

/// forceSyncHistory: removes the local copy of `version` (and its
/// tombstone) so the upstream's replaces it.
async fn replace_version(app: &Arc<App>, name: &str, version: &str, rev: &mut Option<String>) -> Result<(), SyncError> {
    let change = PackageChange {
        new_rev: next_rev(rev.as_deref()),
        now: now_ms(),
        remove_versions: vec![version.to_string()],
        ..Default::default()
    };
    if let Some(removed) = app.store.update_package(name, &change).await? {
        *rev = Some(change.new_rev.clone());
        for v in removed {
            let _ = app.blobs.delete(&v.tarball_key).await;
        }
    }
    app.store.untombstone(name, version).await?;
    Ok(())
}

/// Queues a sync of each dependency that is not here yet; how many.
async fn queue_dependencies(app: &Arc<App>, name: &str, deps: BTreeSet<String>, log: &mut TaskLog) -> Result<usize, SyncError> {
    let mut queued = 0;
    for dep in deps {
        if dep == name || names::validate(&dep).is_err() {
            continue;
        }
        if app.store.package(&dep).await?.is_some() {
            continue;
        }
        let dep_options = SyncOptions { skip_dependencies: false, ..Default::default() };
        match enqueue(app, &dep, &dep_options, false, Some("dependency")).await {
            Ok(t) => {
                queued += 1;
                log.line(format!("dependency {dep} queued (task {})", t.id)).await;
            }
            Err(e) => log.line(format!("dependency {dep} not queued: {e}")).await,
        }
    }
    Ok(queued)
}

async fn removed_upstream(app: &Arc<App>, name: &str, exists: bool, log: &mut TaskLog) -> Result<String, SyncError> {
    if !exists {
        return Err(SyncError::Fail(format!("{name} does not exist upstream")));
    }
    match app.config.sync_delete_mode {
        SyncDeleteMode::Ignore => {
            log.line("the package is gone upstream; kept (sync_delete_mode = ignore)").await;
            Ok("package gone upstream, kept".into())
        }
        SyncDeleteMode::Block => {
            let block = Block {
                id: uuid::Uuid::new_v4().simple().to_string(),
                package: name.to_string(),
                reason: "removed from its upstream registry".into(),
                operator: "sync".into(),
                created_at: now_ms(),
            };
            app.store.put_block(&block).await?;
            app.packuments.invalidate(name);
            log.line("the package is gone upstream: blocked (sync_delete_mode = block)").await;
            Ok("package gone upstream, blocked".into())
        }
        SyncDeleteMode::Delete => {
            if let Some(removed) = app.store.delete_package(name, None).await? {
                for v in removed {
                    let _ = app.blobs.delete(&v.tarball_key).await;
                }
            }
            app.packuments.invalidate(name);
            log.line("the package is gone upstream: removed (sync_delete_mode = delete)").await;
            Ok("package gone upstream, removed".into())
        }
    }
}

async fn import_downloads(app: &Arc<App>, upstream: &Upstream, name: &str, log: &mut TaskLog) -> Result<String, SyncError> {
    if app.store.package(name).await?.is_none() {
        return Err(SyncError::Fail(format!("{name} is not here yet; sync it first")));
    }
    let today = chrono::Utc::now().date_naive();
    let start = (today - chrono::Duration::days(365)).format("%Y-%m-%d").to_string();
    let end = today.format("%Y-%m-%d").to_string();
    let days = upstream.downloads(name, &start, &end).await?;
    let total: i64 = days.iter().map(|(_, n)| n).sum();
    app.store.import_downloads(name, &days).await?;
    log.line(format!("imported {} days of download counts ({total} downloads) from {start} to {end}", days.len())).await;
    Ok(format!("{total} downloads imported"))
}
