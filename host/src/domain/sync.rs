//! Package sync: the task API, the queue workers and what a sync does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::app::App;
use crate::config::{SyncDeleteMode, SyncMode};
use crate::store::{now_ms, Block, NewVersion, PackageChange, PublishOutcome, Registry, Task, VersionRecord};
use crate::util::{iso_ms, next_rev, random_bytes};

use super::packument::highest;
use super::policy::{self, Action};
use super::upstream::{Fetched, Upstream, UpstreamError};
use super::{names, Error, Identity, Result};

pub const TASK_TYPE: &str = "package";

/// Options of a sync task, stored as the task's JSON data.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncOptions {
    pub skip_dependencies: bool,
    pub sync_download_data: bool,
    pub force_sync_history: bool,
    pub tips: Option<String>,
    pub registry_name: Option<String>,
    /// None: every version.
    pub specific_versions: Option<Vec<String>>,
}

/// A new task merged into a waiting one: the union of what both asked for.
pub fn merge(existing: &str, new: &str) -> String {
    let a: SyncOptions = serde_json::from_str(existing).unwrap_or_default();
    let b: SyncOptions = serde_json::from_str(new).unwrap_or_default();
    let specific_versions = match (a.specific_versions, b.specific_versions) {
        (Some(x), Some(y)) => Some(x.into_iter().chain(y).collect::<BTreeSet<_>>().into_iter().collect()),
        _ => None,
    };
    let merged = SyncOptions {
        skip_dependencies: a.skip_dependencies && b.skip_dependencies,
        sync_download_data: a.sync_download_data || b.sync_download_data,
        force_sync_history: a.force_sync_history || b.force_sync_history,
        tips: b.tips.or(a.tips),
        registry_name: b.registry_name.or(a.registry_name),
        specific_versions,
    };
    serde_json::to_string(&merged).expect("options serialize")
}

/// Who asked, and how.
pub struct SyncRequest {
    pub options: SyncOptions,
    pub force: bool,
}

/// Checks `sync_mode` and the caller's rights, then queues the sync.
pub async fn request(app: &App, caller: Option<&Identity>, client_ip: std::net::IpAddr, name: &str, req: SyncRequest) -> Result<Task> {
    match app.config.sync_mode {
        SyncMode::None => return Err(Error::Forbidden("syncing is disabled on this registry (sync_mode = none)".into())),
        SyncMode::Admin => {
            let c = super::auth::require(caller)?;
            if !c.is_admin {
                return Err(Error::Forbidden("only admins may sync on this registry (sync_mode = admin)".into()));
            }
        }
        SyncMode::All | SyncMode::Proxy => {
            super::auth::require(caller)?;
        }
    }
    let caller = super::auth::require(caller)?;
    if (req.force || req.options.force_sync_history) && !caller.is_admin {
        return Err(Error::Forbidden("force and forceSyncHistory are for admins".into()));
    }
    names::validate(name)?;
    if let Some(versions) = &req.options.specific_versions {
        for v in versions {
            names::validate_version(v)?;
        }
    }
    if let Some(r) = &req.options.registry_name {
        if app.store.registry(r).await?.is_none() {
            return Err(Error::Invalid(format!("registry {r} does not exist")));
        }
    }
    if let Some(pkg) = app.store.package(name).await? {
        if pkg.registry_id.is_none() {
            return Err(Error::Forbidden(format!("{name} is published on this registry; it cannot be synced")));
        }
    }
    policy::authorize(app, Action::Sync, Some((name, None)), Some(caller), client_ip).await?;
    enqueue(app, name, &req.options, req.force, Some(&caller.name)).await
}

/// Queues a sync without permission checks (dependencies, changes feed, CLI).
pub async fn enqueue(app: &App, name: &str, options: &SyncOptions, urgent: bool, author: Option<&str>) -> Result<Task> {
    let now = now_ms();
    let task = Task {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: TASK_TYPE.into(),
        target: name.to_string(),
        state: "waiting".into(),
        priority: if urgent { 10 } else { 0 },
        data: serde_json::to_string(options).expect("options serialize"),
        attempts: 0,
        error: None,
        author: author.map(str::to_string),
        claimed_by: None,
        run_after: now,
        heartbeat_at: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    let queued = app.store.enqueue_task(&task, &merge).await?;
    app.sync_wakeup.notify_waiters();
    Ok(queued)
}

pub fn log_key(task_id: &str) -> String {
    format!("logs/sync/{task_id}.log")
}

pub async fn read_log(app: &App, task_id: &str) -> Result<String> {
    match app.blobs.get(&log_key(task_id)).await? {
        None => Ok(String::new()),
        Some(blob) => {
            use futures_util::TryStreamExt;
            let chunks: Vec<bytes::Bytes> = blob.stream.try_collect().await.map_err(|e| Error::Internal(e.to_string()))?;
            Ok(String::from_utf8_lossy(&chunks.concat()).into_owned())
        }
    }
}

pub async fn find_task(app: &App, name: &str, id: &str) -> Result<Task> {
    match app.store.task(id).await? {
        Some(t) if t.target == name => Ok(t),
        _ => Err(Error::NotFound(format!("sync task {id} of {name} not found"))),
    }
}

/// A task's log, kept in memory and rewritten to the blob store after every
/// line, so it can be read while the task runs.
struct TaskLog {
    app: Arc<App>,
    key: String,
    text: String,
}

impl TaskLog {
    async fn new(app: Arc<App>, task_id: &str) -> TaskLog {
        let key = log_key(task_id);
        // A retried task continues its log.
        let text = read_log(&app, task_id).await.unwrap_or_default();
        TaskLog { app, key, text }
    }

    async fn line(&mut self, message: impl AsRef<str>) {
        // Task logs are readable over HTTP: upstream URLs lose their credentials.
        self.text.push_str(&format!("[{}] {}\n", iso_ms(now_ms()), crate::config::redact_url(message.as_ref())));
        if let Err(e) = self.app.blobs.put_cache(&self.key, bytes::Bytes::from(self.text.clone())).await {
            tracing::warn!(error = %e, key = self.key, "writing a sync log failed");
        }
    }
}

/// Starts `sync_workers` workers, the stale-task recovery loop and the changes followers.
pub fn start_workers(app: Arc<App>, worker_prefix: &str) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for i in 0..app.config.sync_workers {
        let app = app.clone();
        let worker = format!("{worker_prefix}-{i}");
        handles.push(tokio::spawn(async move { worker_loop(app, worker).await }));
    }
    let recovery = app.clone();
    handles.push(tokio::spawn(async move {
        let timeout = recovery.config.sync_task_timeout_secs.max(1) as i64 * 1000;
        loop {
            tokio::time::sleep(Duration::from_millis((timeout / 4).clamp(250, 10_000) as u64)).await;
            let now = now_ms();
            match recovery.store.recover_stale_tasks(now - timeout, now).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(tasks = n, "sync tasks of stopped workers queued again");
                    recovery.sync_wakeup.notify_waiters();
                }
                Err(e) => tracing::warn!(error = %e, "recovering stale sync tasks failed"),
            }
        }
    }));
    handles
}

async fn worker_loop(app: Arc<App>, worker: String) {
    loop {
        let claimed = app.store.claim_task(&worker, now_ms()).await;
        match claimed {
            Ok(Some(task)) => run_task(app.clone(), &worker, task).await,
            Ok(None) => {
                let notified = app.sync_wakeup.notified();
                let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, worker, "claiming a sync task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs one claimed task to its end state, with heartbeats while it runs.
pub async fn run_task(app: Arc<App>, worker: &str, task: Task) {
    let beat = {
        let (app, id, worker) = (app.clone(), task.id.clone(), worker.to_string());
        let every = Duration::from_millis((app.config.sync_task_timeout_secs.max(1) * 1000 / 4).max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = app.store.heartbeat_task(&id, &worker, now_ms()).await;
            }
        })
    };
    let mut log = TaskLog::new(app.clone(), &task.id).await;
    let options: SyncOptions = serde_json::from_str(&task.data).unwrap_or_default();
    log.line(format!("sync {} (attempt {}, worker {worker}){}", task.target, task.attempts, options.tips.as_deref().map(|t| format!(": {t}")).unwrap_or_default())).await;
    let result = sync_package(&app, &task.target, &options, &mut log).await;
    beat.abort();
    let now = now_ms();
    let outcome = match result {
        Ok(summary) => {
            log.line(format!("done: {summary}")).await;
            app.store.finish_task(&task.id, "success", None, now).await
        }
        Err(SyncError::Retry(message)) if (task.attempts as u32) < app.config.sync_max_attempts => {
            let backoff = (1000i64 << task.attempts.clamp(0, 8)).min(300_000);
            log.line(format!("upstream problem: {message}; retrying in {} s", backoff / 1000)).await;
            app.store.retry_task(&task.id, now + backoff, &message, now).await
        }
        Err(SyncError::Retry(message)) | Err(SyncError::Fail(message)) => {
            log.line(format!("failed: {message}")).await;
            app.store.finish_task(&task.id, "error", Some(&message), now).await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, task = task.id, "recording a sync task's end failed");
    }
    app.sync_done.notify_waiters();
}

enum SyncError {
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


fn parse_time(doc: &Value, version: &str) -> Option<i64> {
    let t = doc.get("time")?.get(version)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis())
}

/// Fields of an upstream version that describe the install, not the upload.
const VOLATILE: &[&str] = &["_attachments"];

async fn sync_package(app: &Arc<App>, name: &str, options: &SyncOptions, log: &mut TaskLog) -> std::result::Result<String, SyncError> {
    names::validate(name).map_err(|e| SyncError::Fail(e.to_string()))?;
    if app.store.block(name).await?.is_some() {
        return Err(SyncError::Fail(format!("{name} is blocked here")));
    }
    let local = app.store.package(name).await?;
    if local.as_ref().is_some_and(|p| p.registry_id.is_none()) {
        return Err(SyncError::Fail(format!("{name} is published on this registry; it cannot be synced")));
    }
    let registry = super::registries::choose(app, name, options.registry_name.as_deref(), local.as_ref().and_then(|p| p.registry_id.as_deref()))
        .await
        .map_err(|e| SyncError::Fail(e.to_string()))?;
    if let Some(p) = &local {
        if p.registry_id.as_deref() != Some(registry.id.as_str()) {
            return Err(SyncError::Fail(format!("{name} was synced from another registry; sync it from that one")));
        }
    }
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

    let present: BTreeSet<String> = local.iter().flat_map(|p| p.versions.iter().map(|v| v.version.clone())).collect();
    let mut wanted: Vec<String> = match &options.specific_versions {
        Some(list) => {
            let mut l: Vec<String> = list.clone();
            // The latest version comes along, so the package stays installable.
            if let Some(latest) = up_tags.get("latest").and_then(Value::as_str) {
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

    let mut synced = 0usize;
    let mut failed = Vec::new();
    let mut skipped = 0usize;
    let mut deps = BTreeSet::new();
    let mut rev = local.as_ref().map(|p| p.rev.clone());
    let up_latest = up_tags.get("latest").and_then(Value::as_str).map(str::to_string);
    // The package is installable throughout: the first version stored gets
    // `latest` until the upstream's own latest arrives.
    let mut has_latest = local.as_ref().is_some_and(|p| p.tags.iter().any(|(t, _)| t == "latest"));
    let mut retry: Option<String> = None;
    for version in &wanted {
        let manifest = &up_versions[version];
        for field in ["dependencies", "optionalDependencies"] {
            if let Some(d) = manifest.get(field).and_then(Value::as_object) {
                deps.extend(d.keys().cloned());
            }
        }
        let exists = present.contains(version);
        if exists && !options.force_sync_history {
            skipped += 1;
            continue;
        }
        if exists {
            // forceSyncHistory: replace the version with the upstream's.
            let change = PackageChange { new_rev: next_rev(rev.as_deref()), now: now_ms(), remove_versions: vec![version.clone()], ..Default::default() };
            if let Some(removed) = app.store.update_package(name, &change).await? {
                rev = Some(change.new_rev.clone());
                for v in removed {
                    let _ = app.blobs.delete(&v.tarball_key).await;
                }
            }
            app.store.untombstone(name, version).await?;
        }
        let tags = if !has_latest || up_latest.as_deref() == Some(version.as_str()) { vec!["latest".to_string()] } else { Vec::new() };
        match sync_version(app, &upstream, &registry, name, version, manifest, &doc, rev.as_deref(), tags, log).await {
            Ok(new_rev) => {
                rev = Some(new_rev);
                synced += 1;
                has_latest = true;
            }
            Err(SyncError::Retry(m)) => {
                // Keep going: the other versions, tags and maintainers still sync;
                // the task is retried for this one afterwards.
                log.line(format!("version {version} not synced yet: {m}")).await;
                failed.push(version.clone());
                retry.get_or_insert(m);
            }
            Err(SyncError::Fail(m)) => {
                log.line(format!("version {version} rejected: {m}")).await;
                failed.push(version.clone());
            }
        }
    }
    app.packuments.invalidate(name);

    // Tags, deprecations, maintainers and removals, in one change.
    let Some(record) = app.store.package(name).await? else {
        let summary = format!("0 versions stored, {} rejected", failed.len());
        return match retry {
            Some(m) => Err(SyncError::Retry(format!("{summary}; {m}"))),
            None if failed.is_empty() => Ok(summary),
            None => Err(SyncError::Fail(summary)),
        };
    };
    let mut change = PackageChange { expected_rev: Some(record.rev.clone()), new_rev: next_rev(Some(&record.rev)), now: now_ms(), ..Default::default() };
    let here: BTreeSet<&str> = record.versions.iter().map(|v| v.version.as_str()).collect();
    for v in &record.versions {
        if !up_versions.contains_key(&v.version) {
            match app.config.sync_delete_mode {
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
    let remaining: BTreeSet<&str> = here.iter().copied().filter(|v| !change.remove_versions.iter().any(|r| r == v)).collect();
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
    for (t, v) in &tags {
        if !record.tags.iter().any(|(rt, rv)| rt == t && rv == v) {
            change.set_tags.push((t.clone(), v.clone()));
        }
    }
    for (t, _) in &record.tags {
        if !tags.iter().any(|(nt, _)| nt == t) {
            change.remove_tags.push(t.clone());
        }
    }
    let mut maintainers: Vec<String> = doc
        .get("maintainers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.get("name").and_then(Value::as_str).or(m.as_str())).map(|n| format!("{}{n}", registry.user_prefix)).collect())
        .unwrap_or_default();
    maintainers.sort();
    maintainers.dedup();
    let mut current: Vec<String> = record.maintainers.iter().map(|(n, _)| n.clone()).collect();
    current.sort();
    if !maintainers.is_empty() && maintainers != current {
        change.maintainers = Some(maintainers);
    }
    if let Some(latest) = tags.iter().find(|(t, _)| t == "latest").map(|(_, v)| v) {
        if let Some(v) = record.versions.iter().find(|v| &v.version == latest) {
            let m: Value = serde_json::from_str(&v.manifest).unwrap_or(Value::Null);
            let description = m.get("description").and_then(Value::as_str).map(str::to_string);
            let keywords = m.get("keywords").filter(|k| k.is_array()).map(|k| k.to_string());
            change.search_fields = Some((description, keywords));
        }
    }
    let meaningful = !change.remove_versions.is_empty() || !change.manifests.is_empty() || !change.set_tags.is_empty() || !change.remove_tags.is_empty() || change.maintainers.is_some();
    if meaningful {
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
    }

    let mut queued = 0;
    if !options.skip_dependencies {
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
    }
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

/// Downloads, verifies, checks and stores one version. Returns the new rev.
#[allow(clippy::too_many_arguments)]
async fn sync_version(
    app: &Arc<App>,
    upstream: &Upstream,
    registry: &Registry,
    name: &str,
    version: &str,
    manifest: &Value,
    doc: &Value,
    rev: Option<&str>,
    tags: Vec<String>,
    log: &mut TaskLog,
) -> std::result::Result<String, SyncError> {
    names::validate_version(version).map_err(|e| SyncError::Fail(e.to_string()))?;
    if manifest.get("name").and_then(Value::as_str) != Some(name) || manifest.get("version").and_then(Value::as_str) != Some(version) {
        return Err(SyncError::Fail("the upstream manifest names another package or version".into()));
    }
    let dist = manifest.get("dist").cloned().unwrap_or(Value::Null);
    let url = dist.get("tarball").and_then(Value::as_str).ok_or_else(|| SyncError::Fail("no dist.tarball".into()))?;
    let bytes = upstream.tarball(name, version, url).await?;
    let integrity = super::upstream::verify(&bytes, &dist).map_err(SyncError::Fail)?;
    policy::check_version(app, name, version, manifest.to_string(), &bytes, policy::Origin::Sync)
        .await
        .map_err(|e| SyncError::Fail(e.to_string()))?;

    let file = names::tarball_file(name, version);
    let mut stored = manifest.as_object().cloned().unwrap_or_default();
    for field in VOLATILE {
        stored.remove(*field);
    }
    let readme = stored.remove("readme").and_then(|r| r.as_str().map(str::to_string));
    stored.insert("_id".into(), Value::String(format!("{name}@{version}")));
    let mut d = dist.as_object().cloned().unwrap_or_default();
    d.insert("tarball".into(), Value::String(format!("/{name}/-/{file}")));
    d.insert("integrity".into(), Value::String(integrity.clone()));
    d.insert("shasum".into(), Value::String(hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&bytes))));
    stored.insert("dist".into(), Value::Object(d));
    let stored = Value::Object(stored);
    let now = now_ms();
    let key = format!("tarballs/{name}/{}-{}.tgz", file.trim_end_matches(".tgz"), hex::encode(random_bytes(6)));
    let publisher = manifest.pointer("/_npmUser/name").and_then(Value::as_str).map(|n| format!("{}{n}", registry.user_prefix));
    let new_rev = next_rev(rev);
    let new = NewVersion {
        package: name.to_string(),
        version: VersionRecord {
            version: version.to_string(),
            manifest: stored.to_string(),
            readme: readme.or_else(|| doc.get("readme").and_then(Value::as_str).map(str::to_string)),
            tarball_key: key.clone(),
            tarball_file: file,
            size: bytes.len() as i64,
            integrity,
            publisher: publisher.clone(),
            created_at: parse_time(doc, version).unwrap_or(now),
        },
        tags,
        publisher: publisher.unwrap_or_else(|| format!("{}unknown", registry.user_prefix)),
        publisher_is_admin: true,
        new_rev: new_rev.clone(),
        description: None,
        keywords: None,
        sync_registry: Some(registry.id.clone()),
    };
    app.blobs.put(&key, bytes.clone()).await.map_err(|e| SyncError::Retry(e.to_string()))?;
    let outcome = app.store.publish(&new).await;
    let result = match outcome {
        Ok(PublishOutcome::Published) => {
            log.line(format!("version {version} synced ({} bytes)", bytes.len())).await;
            Ok(new_rev)
        }
        Ok(PublishOutcome::VersionExists) => Err(SyncError::Fail("stored concurrently by another task".into())),
        Ok(PublishOutcome::RegistryMismatch) | Ok(PublishOutcome::NotMaintainer) => {
            Err(SyncError::Fail(format!("{name} is not synced from {}", registry.name)))
        }
        Err(e) => Err(SyncError::Retry(e.to_string())),
    };
    if result.is_err() {
        let _ = app.blobs.delete(&key).await;
    }
    result
}

async fn removed_upstream(app: &Arc<App>, name: &str, exists: bool, log: &mut TaskLog) -> std::result::Result<String, SyncError> {
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

async fn import_downloads(app: &Arc<App>, upstream: &Upstream, name: &str, log: &mut TaskLog) -> std::result::Result<String, SyncError> {
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
