//! What the web UI's package page shows beyond the packument: the packages
//! whose `latest` depends on it, and its downloads per week. Both take queries
//! a page view would otherwise run every time, so they are kept per package
//! for [`TTL`] (bounded by entries and bytes). Dependents are kept unfiltered
//! and filtered by `reads::readable` for each reader; every call asks the read
//! policy about the package first, like any read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use crate::domain::App;

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

/// The kept extras, by package name.
pub struct PageExtras {
    cache: Bounded<Extras>,
}

impl PageExtras {
    pub fn new(max_bytes: u64) -> Self {
        let weigh =
            |name: &str, e: &Extras| name.len() + 64 + e.dependents.iter().map(|d| d.len() + 24).sum::<usize>() + e.weekly.len() * 8;
        PageExtras { cache: bounded_cache(MAX_ENTRIES, max_bytes, weigh) }
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
