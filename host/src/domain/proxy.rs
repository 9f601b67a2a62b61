//! Proxy mode (pull-through cache): reads of packages Cairn does not have are
//! answered from the upstream, and tarballs are stored as first downloaded.
//! Upstream packuments are kept as sent (`proxy_packuments`) and refreshed
//! after `proxy_max_age_secs`; 404s are remembered for
//! `proxy_negative_ttl_secs`; identical concurrent misses make one upstream
//! request; when the upstream is down, what is cached is still served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::blob::Blob;
use crate::config::SyncMode;
use crate::domain::App;
use crate::store::{now_ms, ProxyTarball};
use crate::util::random_bytes;

use super::packument::{abbreviate, bounded_cache, Bounded, Cached};
use super::upstream::{Fetched, Upstream, UpstreamError};
use super::{names, policy, Error, Result};

pub struct ProxyState {
    /// Upstream 404s: the name and until when it is remembered.
    negative: Bounded<Instant>,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Served documents built from stored upstream packuments, with the time
    /// the upstream copy was fetched (so `proxy_max_age_secs` holds exactly).
    built: Bounded<(Arc<Cached>, i64)>,
}

/// Upstream 404s remembered at most (each weighs its name and an instant).
const NEGATIVE_ENTRIES: usize = 100_000;

impl ProxyState {
    /// Caches within `max_bytes`: the built documents may take 15/16 of it,
    /// the remembered 404s 1/16.
    pub fn new(max_entries: usize, max_bytes: u64) -> Self {
        ProxyState {
            negative: bounded_cache(NEGATIVE_ENTRIES, (max_bytes / 16).max(1), |name, _| name.len() + 64),
            inflight: Mutex::default(),
            built: bounded_cache(max_entries, max_bytes - max_bytes / 16, |name, (entry, _)| name.len() + entry.weight()),
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inflight.lock().expect("proxy lock");
        // Only locks in use are kept (at most one per request in flight).
        if map.len() > 1_000 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(key.to_string()).or_default().clone()
    }

    fn is_negative(&self, name: &str) -> bool {
        match self.negative.get(name) {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                self.negative.remove(name);
                false
            }
            None => false,
        }
    }

    fn remember_missing(&self, name: &str, ttl: Duration) {
        self.negative.insert(name.to_string(), Instant::now() + ttl);
    }

    pub fn forget(&self, name: &str) {
        self.negative.remove(name);
    }

    fn built(&self, name: &str, fetched_at: i64) -> Option<Arc<Cached>> {
        self.built.get(name).filter(|(_, at)| *at == fetched_at).map(|(c, _)| c)
    }

    fn fresh_built(&self, name: &str, max_age_ms: i64) -> Option<Arc<Cached>> {
        self.built.get(name).filter(|(_, at)| now_ms() - at < max_age_ms).map(|(c, _)| c)
    }

    fn keep_built(&self, name: &str, entry: Arc<Cached>, fetched_at: i64) {
        self.built.insert(name.to_string(), (entry, fetched_at));
    }

    /// Remembered 404s and built documents (entries).
    pub fn usage(&self) -> (usize, usize) {
        (self.negative.len(), self.built.len())
    }
}

pub fn enabled(app: &App) -> bool {
    app.config.sync_mode == SyncMode::Proxy
}

/// The upstream document as served: tarball URLs point here.
fn build(app: &App, name: &str, upstream: &Value) -> Cached {
    let public = &app.config.public_url;
    let mut full = upstream.as_object().cloned().unwrap_or_default();
    full.remove("_attachments");
    let mut abbreviated_versions = Map::new();
    if let Some(versions) = full.get_mut("versions").and_then(Value::as_object_mut) {
        for (v, manifest) in versions.iter_mut() {
            if let Some(tarball) = manifest.pointer_mut("/dist/tarball") {
                *tarball = Value::String(format!("{public}/{name}/-/{}", names::tarball_file(name, v)));
            }
            abbreviated_versions.insert(v.clone(), abbreviate(manifest));
        }
    }
    let rev = full.get("_rev").and_then(Value::as_str).unwrap_or("0-proxy").to_string();
    let time = full.get("time").cloned().unwrap_or_else(|| json!({}));
    let abbreviated = json!({
        "name": name,
        "modified": time.get("modified").cloned().unwrap_or(Value::Null),
        "dist-tags": full.get("dist-tags").cloned().unwrap_or_else(|| json!({})),
        "versions": abbreviated_versions,
        "time": time,
    });
    Cached::from_docs(name, &rev, Value::Object(full), abbreviated)
}

/// The proxied packument of `name`, or None when the upstream does not have it.
/// `refresh` forces an upstream request (a version was missing).
pub async fn packument(app: &App, name: &str, refresh: bool) -> Result<Option<Arc<Cached>>> {
    if !enabled(app) || names::validate(name).is_err() {
        return Ok(None);
    }
    let max_age = app.config.proxy_max_age_secs as i64 * 1000;
    if !refresh {
        if let Some(hit) = app.proxy.fresh_built(name, max_age.min(app.config.packument_cache_ttl_secs as i64 * 1000)) {
            return Ok(Some(hit));
        }
        if app.proxy.is_negative(name) {
            return Ok(None);
        }
    }
    let fresh_enough = |fetched_at: i64, refresh: bool| !refresh && now_ms() - fetched_at < max_age;
    let cached = app.store.proxy_packument(name).await?;
    if let Some((_, doc, fetched_at)) = &cached {
        if fresh_enough(*fetched_at, refresh) {
            return Ok(Some(serve(app, name, doc, *fetched_at)?));
        }
    }
    let lock = app.proxy.lock_for(&format!("doc:{name}"));
    let started = now_ms();
    let _guard = lock.lock().await;
    // Someone may have fetched it (or learned it is missing) while we waited.
    if app.proxy.is_negative(name) {
        return Ok(None);
    }
    let cached = app.store.proxy_packument(name).await?;
    if let Some((_, doc, fetched_at)) = &cached {
        if fresh_enough(*fetched_at, refresh) || *fetched_at >= started {
            return Ok(Some(serve(app, name, doc, *fetched_at)?));
        }
    }
    let registry = match super::registries::choose(app, name, None, None).await {
        Ok(r) => r,
        Err(e) => return upstream_failed(app, name, cached, &format!("cannot be chosen ({e})")),
    };
    if app.upstream_outages.is_down(&registry) {
        return upstream_failed(app, name, cached, &format!("{} is unreachable (it failed moments ago)", registry.name));
    }
    let upstream = match Upstream::for_registry(app, registry.clone()) {
        Ok(u) => u,
        Err(e) => return upstream_failed(app, name, cached, &format!("{} cannot be used ({e})", registry.name)),
    };
    let outcome = upstream.packument(name).await;
    app.upstream_outages.record(&registry, &outcome, outage_window(app));
    match outcome {
        Ok(Fetched::Found(doc)) => {
            let text = doc.to_string();
            let now = now_ms();
            app.store.put_proxy_packument(name, &registry.id, &text, now).await?;
            app.proxy.forget(name);
            Ok(Some(serve(app, name, &text, now)?))
        }
        Ok(Fetched::NotFound) | Ok(Fetched::Removed) => {
            app.proxy.remember_missing(name, Duration::from_secs(app.config.proxy_negative_ttl_secs));
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(package = name, registry = registry.name, error = %e, "upstream packument request failed");
            upstream_failed(app, name, cached, &format!("{} is unreachable or failing", registry.name))
        }
    }
}

fn outage_window(app: &App) -> Duration {
    Duration::from_secs(app.config.upstream_outage_secs)
}

/// What a read answers when the upstream could not be asked: the cached copy
/// when there is one; otherwise not found, with a reason naming the upstream
/// (`why` starts with its name). A 404, not a 5xx: npm retries a 5xx for about
/// a minute, and `npm publish` of a new package reads its name first, so a 5xx
/// would stall every first publish during an outage.
fn upstream_failed(app: &App, name: &str, cached: Option<(String, String, i64)>, why: &str) -> Result<Option<Arc<Cached>>> {
    match cached {
        Some((_, doc, fetched_at)) => {
            tracing::warn!(package = name, "the upstream registry {why}; serving the cached packument");
            Ok(Some(serve(app, name, &doc, fetched_at)?))
        }
        None => Err(Error::NotFoundUpstreamDown(format!("package {name} not found here, and the upstream registry {why}"))),
    }
}

/// Longest wait for the upstream's search: past it, search answers with local results only.
const SEARCH_DEADLINE: Duration = Duration::from_secs(3);

/// Proxy mode: one page of the default upstream's search; None without proxy
/// mode or a default upstream, or when the upstream is down, fails, or takes
/// longer than 3 s (`upstream_timeout_secs` if shorter).
pub async fn search(app: &App, text: &str, from: i64, size: i64) -> Result<Option<(Vec<Value>, i64)>> {
    if !enabled(app) {
        return Ok(None);
    }
    let (all, _) = app.store.list_registries(0, 1000).await?;
    let Some(registry) = all.into_iter().find(|r| r.is_default) else { return Ok(None) };
    if app.upstream_outages.is_down(&registry) {
        return Ok(None);
    }
    let Ok(upstream) = Upstream::for_registry(app, registry.clone()) else { return Ok(None) };
    let deadline = SEARCH_DEADLINE.min(Duration::from_secs(app.config.upstream_timeout_secs.max(1)));
    let outcome = match tokio::time::timeout(deadline, upstream.search(text, from, size)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(UpstreamError::Retryable(format!("no answer within {} ms", deadline.as_millis()))),
    };
    app.upstream_outages.record(&registry, &outcome, outage_window(app));
    match outcome {
        Ok(page) => Ok(Some(page)),
        Err(e) => {
            tracing::warn!(registry = registry.name, error = %e, "upstream search failed; answering with local results only");
            Ok(None)
        }
    }
}

/// The served form of a stored upstream packument (built once per fetch).
fn serve(app: &App, name: &str, doc: &str, fetched_at: i64) -> Result<Arc<Cached>> {
    if let Some(hit) = app.proxy.built(name, fetched_at) {
        return Ok(hit);
    }
    let value: Value = serde_json::from_str(doc).map_err(|e| Error::Internal(format!("cached packument of {name}: {e}")))?;
    let entry = Arc::new(build(app, name, &value));
    app.proxy.keep_built(name, entry.clone(), fetched_at);
    Ok(entry)
}

/// A proxied tarball: its version, integrity and bytes (streamed from the
/// blob store, or in memory when it was just fetched).
pub struct Tarball {
    pub version: String,
    pub integrity: String,
    pub blob: Blob,
}

/// The tarball `file` of a proxied package: from the local copy, or fetched,
/// verified and stored now. None when no proxied version has that file.
pub async fn tarball(app: &App, name: &str, file: &str) -> Result<Option<Tarball>> {
    if !enabled(app) {
        return Ok(None);
    }
    if let Some(hit) = stored_tarball(app, name, file).await? {
        return Ok(Some(hit));
    }
    let lock = app.proxy.lock_for(&format!("tgz:{name}/{file}"));
    let _guard = lock.lock().await;
    if let Some(hit) = stored_tarball(app, name, file).await? {
        return Ok(Some(hit));
    }
    // Find the version; a version missing from the cached packument triggers a refresh.
    let mut found = None;
    for refresh in [false, true] {
        if packument(app, name, refresh).await?.is_none() {
            return Ok(None);
        }
        if let Some((registry_id, doc, _)) = app.store.proxy_packument(name).await? {
            let doc: Value = serde_json::from_str(&doc).map_err(|e| Error::Internal(e.to_string()))?;
            let hit = doc
                .get("versions")
                .and_then(Value::as_object)
                .and_then(|vs| vs.iter().find(|(v, _)| names::tarball_file(name, v) == file).map(|(v, m)| (v.clone(), m.clone())));
            if let Some((version, manifest)) = hit {
                found = Some((registry_id, version, manifest));
                break;
            }
        }
    }
    let Some((registry_id, version, manifest)) = found else { return Ok(None) };
    let registry = app.store.registry(&registry_id).await?.ok_or_else(|| Error::Unavailable("the proxied registry was removed".into()))?;
    if app.upstream_outages.is_down(&registry) {
        return Err(Error::Unavailable(format!(
            "{file} is not stored here yet, and the upstream registry {} is unreachable",
            registry.name
        )));
    }
    let upstream = Upstream::for_registry(app, registry).map_err(|e| Error::Unavailable(e.to_string()))?;
    let dist = manifest.get("dist").cloned().unwrap_or(Value::Null);
    let url = dist
        .get("tarball")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Unavailable(format!("{name}@{version} has no tarball upstream")))?;
    let fetched = upstream.tarball(name, &version, url).await;
    app.upstream_outages.record(upstream.registry(), &fetched, outage_window(app));
    let bytes = fetched
        .map_err(|e| Error::Unavailable(format!("fetching {file} from the upstream registry {} failed: {e}", upstream.registry().name)))?;
    let integrity = super::upstream::verify(&bytes, &dist).map_err(|e| Error::Unavailable(format!("{file} from upstream: {e}")))?;
    policy::check_version(app, name, &version, manifest.to_string(), &bytes, policy::Origin::Sync).await?;
    let key = format!("proxy/{name}/{}-{}.tgz", file.trim_end_matches(".tgz"), hex::encode(random_bytes(6)));
    app.blobs.put_cache(&key, bytes.clone()).await?;
    let record = ProxyTarball {
        name: name.to_string(),
        file: file.to_string(),
        version: version.clone(),
        blob_key: key.clone(),
        size: bytes.len() as i64,
        integrity: integrity.clone(),
        created_at: now_ms(),
    };
    match app.store.put_proxy_tarball(&record).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = app.blobs.delete(&key).await;
        }
        Err(e) => {
            let _ = app.blobs.delete(&key).await;
            return Err(e.into());
        }
    }
    Ok(Some(Tarball { version, integrity, blob: Blob::from_bytes(bytes) }))
}

/// The stored copy, streamed; None when there is none (or its blob is gone).
async fn stored_tarball(app: &App, name: &str, file: &str) -> Result<Option<Tarball>> {
    let Some(t) = app.store.proxy_tarball(name, file).await? else { return Ok(None) };
    Ok(app.blobs.get(&t.blob_key).await?.map(|blob| Tarball { version: t.version, integrity: t.integrity, blob }))
}
