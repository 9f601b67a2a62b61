//! Search: local packages first, then (proxy mode) the default upstream's
//! results, without names that are here; everything filtered by the read
//! policy, so a package a caller may not read is never listed to them.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::domain::App;

use super::packument::{self, Cached, Lookup};
use super::reads::{readable, Reader};
use super::{proxy, Result};

/// When a read policy filters local matches: once the page is full, matches
/// are counted exactly up to `EXACT_TOTAL_UP_TO` and not further (the total
/// is then the readable matches among those looked at, a lower bound, and
/// [`Page::more`] says so: an estimate from the unfiltered count would
/// reveal how many matches the reader may not see); nothing past
/// `SCAN_LIMIT` is looked at (a page there comes up short). Each match looked
/// at is one question to the plugins.
const EXACT_TOTAL_UP_TO: i64 = 1_000;
const SCAN_LIMIT: i64 = 5_000;
const SCAN_CHUNK: i64 = 250;

/// One page of results.
pub struct Page {
    /// Local packages, in rank order.
    pub local: Vec<Arc<Cached>>,
    /// Result objects from the upstream, as it sent them.
    pub upstream: Vec<Value>,
    /// Matches in all (local and upstream; upstream names that are also here
    /// may be counted twice); a lower bound when `more`.
    pub total: i64,
    /// Whether there are local matches past those counted in `total`.
    pub more: bool,
}

/// Results `from..from + size` of local packages, then upstream ones.
pub async fn search(app: &App, reader: Reader<'_>, text: &str, from: i64, size: i64) -> Result<Page> {
    let (names, local_total, more) = local_names(app, reader, text, from, size).await?;
    let mut local = Vec::with_capacity(names.len());
    for name in names {
        if let Lookup::Found(entry) = packument::lookup(app, &name, false).await? {
            if entry.blocked.is_none() {
                local.push(entry);
            }
        }
    }
    // Positions of this page past the local matches are the upstream's.
    let local_slots = (local_total - from).clamp(0, size);
    let wanted = size - local_slots;
    let upstream_from = (from - local_total).max(0);
    // A few more than needed, to make up for names dropped below; at least one, for the total.
    let ask = (wanted + 10).min(250);
    let Some((objects, upstream_total)) = proxy::search(app, text, upstream_from, ask).await? else {
        return Ok(Page { local, upstream: Vec::new(), total: local_total, more });
    };
    let upstream = upstream_results(app, reader, objects, wanted as usize).await?;
    Ok(Page { local, upstream, total: local_total + upstream_total, more })
}

/// Local names at `from..from + size` among the matches `reader` may read,
/// how many matches they may read in all (of those looked at), and whether
/// matches were left unlooked at.
async fn local_names(app: &App, reader: Reader<'_>, text: &str, from: i64, size: i64) -> Result<(Vec<String>, i64, bool)> {
    if !app.plugins.has_auth_policies() {
        let (names, total) = app.store.search(text, from, size).await?;
        return Ok((names, total, false));
    }
    let (mut page, mut visible, mut scanned) = (Vec::new(), 0i64, 0i64);
    loop {
        let (chunk, total) = app.store.search(text, scanned, SCAN_CHUNK).await?;
        let got = chunk.len() as i64;
        scanned += got;
        for name in readable(app, reader, chunk).await? {
            if visible >= from && visible < from + size {
                page.push(name);
            }
            visible += 1;
        }
        if got < SCAN_CHUNK || scanned >= total {
            return Ok((page, visible, false));
        }
        if (scanned >= EXACT_TOTAL_UP_TO && visible >= from + size) || scanned >= SCAN_LIMIT {
            return Ok((page, visible, true));
        }
    }
}

/// The upstream's result objects whose package is not here, not blocked here
/// and readable by `reader`; at most `limit`.
async fn upstream_results(app: &App, reader: Reader<'_>, objects: Vec<Value>, limit: usize) -> Result<Vec<Value>> {
    let mut candidates = Vec::new();
    for object in objects {
        let Some(name) = object.pointer("/package/name").and_then(Value::as_str).map(str::to_string) else { continue };
        if app.store.package_rev(&name).await?.is_some() || app.store.block(&name).await?.is_some() {
            continue;
        }
        candidates.push((name, object));
    }
    let allowed = readable(app, reader, candidates.iter().map(|(n, _)| n.clone()).collect()).await?;
    let allowed: std::collections::HashSet<String> = allowed.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    Ok(candidates
        .into_iter()
        .filter(|(n, _)| allowed.contains(n) && seen.insert(n.clone()))
        .map(|(_, o)| normalized(o))
        .take(limit)
        .collect())
}

/// An upstream result with the fields npm's search display reads (it fails
/// on a missing `maintainers` or `keywords` array) filled in when absent.
fn normalized(mut object: Value) -> Value {
    let Some(package) = object.get_mut("package").and_then(Value::as_object_mut) else { return object };
    let scope = package
        .get("name")
        .and_then(Value::as_str)
        .and_then(|n| n.strip_prefix('@')?.split_once('/'))
        .map_or("unscoped".to_string(), |(s, _)| s.to_string());
    for (field, default) in [("maintainers", json!([])), ("keywords", json!([])), ("links", json!({})), ("scope", json!(scope))] {
        let ok = match package.get(field) {
            Some(v) => v.is_array() == default.is_array() && v.is_object() == default.is_object() && v.is_string() == default.is_string(),
            None => false,
        };
        if !ok {
            package.insert(field.to_string(), default);
        }
    }
    object
}
