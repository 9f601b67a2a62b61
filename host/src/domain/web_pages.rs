//! What the web UI's pages show beyond the npm API's documents, always as the
//! reader may read it. The package page: the packages whose `latest` depends
//! on it, and its downloads per week. Both take queries a page view would
//! otherwise run every time, so they are kept per package for [`TTL`]
//! (bounded by entries and bytes). Dependents are kept unfiltered and filtered
//! by `reads::readable` for each reader; every call asks the read policy about
//! the package first, like any read. The home page: the recently changed
//! packages and the counts of packages and versions, both of what the reader
//! may read (with a read policy, the counts walk every package and are kept
//! per caller for [`TTL`]).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use crate::domain::App;
use crate::plugins::PluginSet;
use crate::store::web::PackageSummary;

use super::packument::{bounded_cache, Bounded};
use super::reads::{self, Reader};
use super::Result;

/// Weeks of downloads shown.
pub const WEEKS: usize = 12;
/// Dependents listed at most.
const MAX_DEPENDENTS: usize = 50;
/// How long dependents and downloads are kept.
const TTL: Duration = Duration::from_secs(30);
/// Packages whose extras are kept at most.
const MAX_ENTRIES: usize = 4096;

#[derive(Clone)]
struct Extras {
    at: Instant,
    dependents: Arc<Vec<String>>,
    weekly: Arc<Vec<i64>>,
}

/// Counts of what one caller may read.
#[derive(Clone)]
struct Counts {
    at: Instant,
    /// The plugin set that decided (a reload makes the counts stale).
    plugins: Weak<PluginSet>,
    packages: i64,
    versions: i64,
    complete: bool,
}

/// The kept extras, by package name, and the home page's counts, by caller.
pub struct PageExtras {
    cache: Bounded<Extras>,
    counts: Bounded<Counts>,
}

impl PageExtras {
    pub fn new(max_bytes: u64) -> Self {
        let weigh =
            |name: &str, e: &Extras| name.len() + 64 + e.dependents.iter().map(|d| d.len() + 24).sum::<usize>() + e.weekly.len() * 8;
        let weigh_counts = |caller: &str, _: &Counts| caller.len() + 64;
        PageExtras { cache: bounded_cache(MAX_ENTRIES, max_bytes, weigh), counts: bounded_cache(MAX_ENTRIES, max_bytes / 16, weigh_counts) }
    }
}

/// What the home page shows a reader.
pub struct Home {
    /// Recently changed packages the reader may read, newest first.
    pub recent: Vec<PackageSummary>,
    /// Packages and versions the reader may read.
    pub packages: i64,
    pub versions: i64,
    /// False when the counts stopped at [`COUNT_SCAN_LIMIT`] packages (they
    /// are then lower bounds).
    pub complete: bool,
}

/// Recently changed packages looked at, at most, to find the readable ones.
const RECENT_SCAN_LIMIT: i64 = 1_000;
/// Packages a policy-filtered count looks at, at most.
pub const COUNT_SCAN_LIMIT: i64 = 100_000;
/// Packages read per query of a count.
const COUNT_CHUNK: i64 = 1_000;

/// The home page of `reader`: the `recent` newest packages and the counts,
/// of what they may read only.
pub async fn home(app: &App, reader: Reader<'_>, recent: usize) -> Result<Home> {
    let recent = recent_readable(app, reader, recent).await?;
    if !app.plugins.has_auth_policies() {
        let (packages, versions) = app.store.package_counts().await?;
        return Ok(Home { recent, packages, versions, complete: true });
    }
    let plugins = app.plugins.current();
    let key = caller_key(reader);
    let counts = match app.web_extras.counts.get(&key) {
        Some(c) if c.at.elapsed() < TTL && Weak::ptr_eq(&c.plugins, &Arc::downgrade(&plugins)) => c,
        _ => {
            let (packages, versions, complete) = readable_counts(app, reader).await?;
            let c = Counts { at: Instant::now(), plugins: Arc::downgrade(&plugins), packages, versions, complete };
            app.web_extras.counts.insert(key, c.clone());
            c
        }
    };
    Ok(Home { recent, packages: counts.packages, versions: counts.versions, complete: counts.complete })
}

/// Everything a policy plugin is told about a caller, as a cache key.
fn caller_key(reader: Reader<'_>) -> String {
    match reader.identity {
        Some(i) => format!("{}|{}|{}|{}|{}", i.name, i.is_admin, i.readonly, i.automation, reader.ip),
        None => format!("|anonymous|{}", reader.ip),
    }
}

/// The newest `n` packages `reader` may read (looking at most at [`RECENT_SCAN_LIMIT`]).
async fn recent_readable(app: &App, reader: Reader<'_>, n: usize) -> Result<Vec<PackageSummary>> {
    let chunk = (n as i64 * 4).max(1);
    let mut found = Vec::with_capacity(n);
    let mut offset = 0;
    while found.len() < n && offset < RECENT_SCAN_LIMIT {
        let rows = app.store.recent_packages(offset, chunk).await?;
        let got = rows.len() as i64;
        offset += got;
        let allowed = reads::readable(app, reader, rows.iter().map(|p| p.name.clone()).collect()).await?;
        found.extend(rows.into_iter().filter(|p| allowed.contains(&p.name)));
        if got < chunk {
            break;
        }
    }
    found.truncate(n);
    Ok(found)
}

/// (packages, versions, complete) of what `reader` may read: every package
/// asked about, up to [`COUNT_SCAN_LIMIT`].
async fn readable_counts(app: &App, reader: Reader<'_>) -> Result<(i64, i64, bool)> {
    let (mut packages, mut versions, mut scanned) = (0i64, 0i64, 0i64);
    let mut after = String::new();
    loop {
        let rows = app.store.package_version_counts(&after, COUNT_CHUNK).await?;
        let got = rows.len() as i64;
        scanned += got;
        let Some((last, _)) = rows.last() else { return Ok((packages, versions, true)) };
        after = last.clone();
        let allowed: std::collections::HashSet<String> =
            reads::readable(app, reader, rows.iter().map(|(n, _)| n.clone()).collect()).await?.into_iter().collect();
        for (name, n) in &rows {
            if allowed.contains(name) {
                packages += 1;
                versions += n;
            }
        }
        if got < COUNT_CHUNK {
            return Ok((packages, versions, true));
        }
        if scanned >= COUNT_SCAN_LIMIT {
            return Ok((packages, versions, false));
        }
    }
}

/// The dependents `reader` may read and the downloads per week (oldest first;
/// empty when unknown here, e.g. a proxied package) of `name`.
pub async fn package_extras(app: &App, reader: Reader<'_>, name: &str) -> Result<(Vec<String>, Vec<i64>)> {
    reads::authorize(app, reader, name, None).await?;
    let extras = match app.web_extras.cache.get(name) {
        Some(e) if e.at.elapsed() < TTL => e,
        _ => {
            let e = Extras {
                at: Instant::now(),
                dependents: Arc::new(dependents(app, name).await?),
                weekly: Arc::new(weekly(app, reader, name).await),
            };
            app.web_extras.cache.insert(name.to_string(), e.clone());
            e
        }
    };
    let mut readable = reads::readable(app, reader, extras.dependents.to_vec()).await?;
    readable.truncate(MAX_DEPENDENTS);
    Ok((readable, extras.weekly.to_vec()))
}

/// Packages whose `latest` names `name` in any dependency field, by name.
async fn dependents(app: &App, name: &str) -> Result<Vec<String>> {
    let candidates = app.store.dependent_candidates(name, 500).await?;
    Ok(candidates
        .into_iter()
        .filter(|(_, manifest)| {
            let m: Value = serde_json::from_str(manifest).unwrap_or_default();
            ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies"]
                .iter()
                .any(|f| m.get(*f).and_then(Value::as_object).is_some_and(|d| d.contains_key(name)))
        })
        .map(|(n, _)| n)
        .collect())
}

/// Downloads per week over the last [`WEEKS`] weeks.
async fn weekly(app: &App, reader: Reader<'_>, name: &str) -> Vec<i64> {
    let today = Utc::now().date_naive();
    let start = today - chrono::Duration::days(WEEKS as i64 * 7 - 1);
    let fmt = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    // Unknown here (a proxied package) or unreadable: no chart.
    let Ok(days) = reads::downloads(app, reader, name, &fmt(start), &fmt(today)).await else { return Vec::new() };
    let mut weeks = vec![0i64; WEEKS];
    for (day, count) in days {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d") {
            if let Some(w) = weeks.get_mut(((d - start).num_days() / 7) as usize) {
                *w += count;
            }
        }
    }
    weeks
}
