//! The `_changes` feed (so another Cairn can follow this one) and the
//! follower that queues syncs from upstreams' feeds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::App;
use crate::outbound::{self, Credentials};
use crate::store::{now_ms, Registry};

use super::reads::{readable, Reader};
use super::sync::{enqueue, SyncOptions};
use super::{Error, Result};

pub const PAGE: i64 = 1000;

/// CouchDB-style: `{results: [{seq, type, id, changes: [{rev}]}], last_seq}`.
/// Changes of packages `reader` may not read are left out (`last_seq` still
/// moves past them, so a follower does not ask for them again).
pub async fn feed(app: &App, reader: Reader<'_>, since: Option<&str>, limit: Option<&str>) -> Result<Value> {
    let since = match since {
        None | Some("") => 0,
        Some("now") => app.store.changes_since(i64::MAX - 1, 1).await?.last().map_or(0, |c| c.seq),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::Invalid(format!("since must be a non-negative integer, got {s:?}")))?,
    };
    let limit = match limit {
        None | Some("") => PAGE,
        Some(l) => {
            l.parse::<i64>().ok().filter(|n| (1..=PAGE).contains(n)).ok_or_else(|| Error::Invalid(format!("limit must be 1-{PAGE}")))?
        }
    };
    let rows = app.store.changes_since(since, limit).await?;
    let last_seq = rows.last().map_or(since, |c| c.seq);
    let allowed: HashSet<String> = readable(app, reader, rows.iter().map(|c| c.package.clone()).collect()).await?.into_iter().collect();
    let results: Vec<Value> = rows
        .iter()
        .filter(|c| allowed.contains(&c.package))
        .map(|c| {
            let data: Value = serde_json::from_str(&c.data).unwrap_or(Value::Null);
            json!({
                "seq": c.seq,
                "type": c.kind,
                "id": c.package,
                "changes": [{"rev": data.get("rev").cloned().unwrap_or(Value::Null)}],
                "time": crate::util::iso_ms(c.created_at),
            })
        })
        .collect();
    Ok(json!({"results": results, "last_seq": last_seq}))
}

/// Whether a change of `name` on `registry`'s feed concerns this registry.
async fn wanted(app: &App, registry: &Registry, name: &str) -> Result<bool> {
    if super::names::validate(name).is_err() {
        return Ok(false);
    }
    if let Some(p) = app.store.package(name).await? {
        return Ok(p.registry_id.as_deref() == Some(registry.id.as_str()));
    }
    let scopes = app.store.scopes(Some(&registry.id)).await?;
    match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
        Some((scope, _)) => {
            let scope = format!("@{scope}");
            match app.store.scope_by_name(&scope).await? {
                Some(s) => Ok(s.registry_id == registry.id),
                None => Ok(scopes.is_empty()),
            }
        }
        None => Ok(scopes.is_empty()),
    }
}

/// Follows the `change_stream` of every registry that has one, resuming from
/// the saved position; each relevant change queues a sync of that package.
pub fn start_follower(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_millis(app.config.changes_poll_ms.max(50));
        loop {
            tokio::time::sleep(every).await;
            let registries = match app.store.list_registries(0, 1000).await {
                Ok((r, _)) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "listing registries for the changes follower failed");
                    continue;
                }
            };
            for registry in registries.into_iter().filter(|r| r.change_stream.is_some()) {
                if let Err(e) = poll_once(&app, &registry).await {
                    tracing::warn!(registry = registry.name, error = %e, "following the changes feed failed; will retry");
                }
            }
        }
    })
}

/// One page of `registry`'s change stream. The registry's credentials go
/// with it only when the stream is on the registry's own origin; the body is
/// capped at `max_body_bytes`.
async fn poll_once(app: &Arc<App>, registry: &Registry) -> Result<()> {
    let stream = registry.change_stream.as_deref().unwrap_or_default();
    let since = app.store.change_position(&registry.id).await?.unwrap_or_else(|| "0".into());
    let sep = if stream.contains('?') { '&' } else { '?' };
    let url = format!("{stream}{sep}since={since}&limit={PAGE}");
    let credentials = Credentials::for_registry(&registry.host, registry.auth_token.as_deref());
    let body: Value = async {
        let resp = app.outbound.get(&url).header("npm-replication-opt-in", "true").credentials(credentials.as_ref()).send().await?;
        resp.error_for_status()?.json().await
    }
    .await
    .map_err(|e: outbound::Error| Error::Unavailable(e.to_string()))?;
    let results = body.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut position = since.clone();
    for change in &results {
        let Some(id) = change.get("id").and_then(Value::as_str) else { continue };
        if wanted(app, registry, id).await? {
            let options = SyncOptions { skip_dependencies: true, registry_name: Some(registry.name.clone()), ..Default::default() };
            let task = enqueue(app, id, &options, false, Some("changes")).await?;
            tracing::info!(registry = registry.name, package = id, task = task.id, "change followed: sync queued");
        }
        if let Some(seq) = change.get("seq") {
            position = seq.as_str().map(str::to_string).unwrap_or_else(|| seq.to_string());
            app.store.set_change_position(&registry.id, &position, now_ms()).await?;
        }
    }
    if results.is_empty() {
        if let Some(last) = body.get("last_seq") {
            let last = last.as_str().map(str::to_string).unwrap_or_else(|| last.to_string());
            if last != position && !last.is_empty() && last != "null" {
                app.store.set_change_position(&registry.id, &last, now_ms()).await?;
            }
        }
    }
    Ok(())
}
