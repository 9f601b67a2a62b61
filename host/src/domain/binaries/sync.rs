//! One sync of a binary mirror: walk the upstream tree, fetch new entries and
//! entries whose date or size changed (the newest version directory is always
//! listed again), verify every file (advertised size, `SHASUMS256.txt` where
//! the directory has one) while streaming it to the blob store, and record a
//! directory only once every child succeeded, so an interrupted or failed
//! sync resumes where it stopped. An `api` source asks only for what changed
//! on a resync (`since` the upstream's clock at the start of the last
//! complete sync, kept in the root's own row: parent `""`, name `/`), in the
//! directories it already has; the store moves a directory's `modified`
//! with every row written below it, so a changed directory is listed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::blob::{BlobError, ByteStream};
use crate::config::BinaryConfig;
use crate::domain::sync::{SyncError, TaskLog};
use crate::domain::App;
use crate::outbound;
use crate::store::{now_ms, BinaryEntry};

use super::node::{self, Item};

const SHASUMS: &str = "SHASUMS256.txt";

/// What the walk did so far.
#[derive(Default)]
struct Stats {
    fetched: u64,
    bytes: u64,
    rejected: u64,
    failed: u64,
    /// A failure that another attempt may fix (timeouts, 5xx, resets).
    retryable: bool,
}

struct Walk<'a> {
    app: Arc<App>,
    cfg: BinaryConfig,
    /// A plugin source (`type` names a plugin), else None.
    plugin: Option<Arc<super::plugin::Source>>,
    /// Checksums the source gave with its last listing (a plugin's, GitHub's
    /// asset digests): name → SHA-256 hex.
    given_sums: HashMap<String, String>,
    log: &'a mut TaskLog,
    stats: Stats,
    /// `api`: the upstream's clock when it answered the first listing.
    upstream_date: Option<i64>,
}

/// A listed directory: its entries, and whether they are only what changed.
struct Listing {
    items: Vec<Item>,
    incremental: bool,
    /// An unchanged `SHASUMS256.txt` left out of an incremental listing,
    /// read to check the changed files.
    sums: Option<Item>,
}

/// Runs the sync of `category`; the summary line, or why it must run again.
pub(crate) async fn run(app: &Arc<App>, category: &str, log: &mut TaskLog) -> Result<String, SyncError> {
    let cfg = super::binary(app, category).map_err(|e| SyncError::Fail(e.to_string()))?.clone();
    let plugin = super::plugin::source(app, &cfg).map_err(SyncError::Fail)?.map(Arc::new);
    match &plugin {
        Some(p) => log.line(format!("binary {category}: walking plugin {}", p.name())).await,
        None => log.line(format!("binary {category}: walking {}", cfg.dist_url)).await,
    }
    let since = if cfg.kind == "api" && plugin.is_none() { last_complete(app, category).await } else { None };
    if let Some(since) = since {
        log.line(format!("asking only for what changed since {}", crate::util::iso_ms(since))).await;
    }
    let mut walk = Walk { app: app.clone(), cfg, plugin, given_sums: HashMap::new(), log, stats: Stats::default(), upstream_date: None };
    let complete = walk.dir("/".into(), HashMap::new(), since).await;
    if complete {
        walk.record_complete().await;
    }
    let s = &walk.stats;
    let summary = format!("{} files fetched ({} bytes), {} rejected, {} failed", s.fetched, s.bytes, s.rejected, s.failed);
    if !complete && s.retryable {
        return Err(SyncError::Retry(format!("incomplete: {summary}")));
    }
    Ok(if complete { summary } else { format!("incomplete: {summary}") })
}

/// Slack for rows the upstream stamped before, but committed after, it
/// answered a listing (and for its `Date` counting whole seconds).
const SINCE_MARGIN_MS: i64 = 5_000;

/// The root's own row: when (the upstream's clock, ms) the last complete
/// sync started, less [`SINCE_MARGIN_MS`].
async fn last_complete(app: &App, category: &str) -> Option<i64> {
    let root = app.store.binary_entry(category, "", "/").await.ok()??;
    root.date.parse::<i64>().ok().map(|ms| ms - SINCE_MARGIN_MS)
}

/// Queues a sync of every binary with a `sync_interval_secs`, at start and
/// then at that interval. A waiting task absorbs a repeat, so every process
/// may do this.
pub fn start_schedules(app: &Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let scheduled = app.config.binaries.iter().filter(|b| b.sync_interval_secs > 0);
    scheduled
        .map(|b| {
            let (app, category, every) = (app.clone(), b.category.clone(), std::time::Duration::from_secs(b.sync_interval_secs));
            tokio::spawn(async move {
                loop {
                    if let Err(e) = super::enqueue(&app, &category, None).await {
                        tracing::warn!(error = %e, binary = category, "queueing a scheduled binary sync failed");
                    }
                    tokio::time::sleep(every).await;
                }
            })
        })
        .collect()
}

/// The highest version directory (`vX.Y.Z/` or `X.Y.Z/`), if any.
fn newest_dir(items: &[Item]) -> Option<&str> {
    items
        .iter()
        .filter(|i| i.is_dir)
        .filter_map(|i| {
            nodejs_semver::Version::parse(i.name.trim_end_matches('/').trim_start_matches('v')).ok().map(|v| (v, i.name.as_str()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, n)| n)
}

/// The checksums that apply below `dir` (paths relative to it).
fn sums_below(sums: &HashMap<String, String>, dir: &str) -> HashMap<String, String> {
    sums.iter().filter_map(|(p, h)| Some((p.strip_prefix(dir)?.to_string(), h.clone()))).collect()
}

/// Whether the directory `name` (`v1.2.3/`, `1.2.3/`) is a version outside
/// `range`; a name that is not a version is never outside.
fn outside_versions(range: &str, name: &str) -> bool {
    let version = name.trim_end_matches('/');
    let version = version.strip_prefix('v').unwrap_or(version);
    match (nodejs_semver::Range::parse(range), nodejs_semver::Version::parse(version)) {
        (Ok(range), Ok(version)) => !range.satisfies(&version),
        _ => false,
    }
}

impl Walk<'_> {
    fn ignored(&self, item: &Item) -> bool {
        if item.is_dir && self.cfg.include_versions.as_deref().is_some_and(|r| outside_versions(r, &item.name)) {
            return true;
        }
        let (patterns, name) = if item.is_dir {
            (&self.cfg.ignore_dirs, item.name.trim_end_matches('/'))
        } else {
            (&self.cfg.ignore_files, item.name.as_str())
        };
        patterns.iter().any(|p| super::glob_match(p, name))
    }

    /// Where downloads may go: anywhere for a built-in source; a plugin
    /// source's URLs only to its `allowed_hosts` (every redirect hop too).
    fn guard(&self) -> impl Fn(&url::Url) -> Result<(), String> + Send + Sync + 'static {
        let plugin = self.plugin.clone();
        move |url| plugin.as_ref().map_or(Ok(()), |p| p.may_fetch(url))
    }

    fn failed(&mut self, retryable: bool) {
        self.stats.failed += 1;
        self.stats.retryable |= retryable;
    }

    /// Lists `parent` with the source of this binary (`since`: only what
    /// changed, where the source can tell).
    async fn list(&mut self, parent: &str, since: Option<i64>) -> Result<Option<Listing>, outbound::Error> {
        let url = format!("{}{}", self.cfg.dist_url, &parent[1..]);
        let full = |items: Option<Vec<Item>>| items.map(|items| Listing { items, incremental: false, sums: None });
        if let Some(plugin) = self.plugin.clone() {
            return Ok(full(plugin.list(parent, &mut self.given_sums).await?));
        }
        match self.cfg.kind.as_str() {
            "api" => {
                let Some(changes) = super::api::changes(&self.app, &url, since).await? else { return Ok(None) };
                self.upstream_date = self.upstream_date.or(changes.date);
                let unlisted = changes.incremental && !changes.items.iter().any(|i| i.name == SHASUMS);
                let sums = unlisted.then(|| Item {
                    name: SHASUMS.into(),
                    is_dir: false,
                    size: None,
                    date: String::new(),
                    url: format!("{url}{SHASUMS}"),
                });
                Ok(Some(Listing { items: changes.items, incremental: changes.incremental, sums }))
            }
            "bucket" => Ok(full(super::bucket::list(&self.app, &self.cfg, parent).await?)),
            "github" => Ok(full(super::github::list(&self.app, &self.cfg, parent, &mut self.given_sums).await?)),
            _ => Ok(full(node::list(&self.app, &url).await?)),
        }
    }

    /// Syncs the directory `parent` (`/` or `/a/b/`); true when every child
    /// succeeded. `since`: list only what changed (a directory mirrored before).
    fn dir(
        &mut self,
        parent: String,
        inherited: HashMap<String, String>,
        since: Option<i64>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            let Listing { items, incremental, sums } = match self.list(&parent, since).await {
                Ok(Some(listing)) => listing,
                Ok(None) => {
                    self.log.line(format!("{parent}: the upstream answered 404, skipped")).await;
                    return true;
                }
                Err(e) => {
                    self.log.line(format!("{parent}: listing failed: {e}")).await;
                    self.failed(e.is_retryable());
                    return false;
                }
            };
            let category = self.cfg.category.clone();
            let stored: HashMap<String, BinaryEntry> = self
                .app
                .store
                .binary_entries(&category, &parent, None, i64::MAX)
                .await
                .map(|v| v.into_iter().map(|e| (e.name.clone(), e)).collect())
                .unwrap_or_default();
            // An unchanged checksum list is read only when files changed beside it.
            let sums = sums.filter(|_| stored.contains_key(SHASUMS) && items.iter().any(|i| !i.is_dir));
            let sums_item = items.iter().find(|i| i.name == SHASUMS).or(sums.as_ref());
            let Some(mut sums) = self.checksums(&parent, sums_item, inherited).await else { return false };
            // The source's own checksums win over a SHASUMS256.txt.
            sums.extend(std::mem::take(&mut self.given_sums));
            let newest = newest_dir(&items).map(str::to_string);
            let mut complete = true;
            let wanted: Vec<&Item> = items.iter().filter(|i| !self.ignored(i)).collect();
            for item in wanted {
                let known = stored.get(&item.name);
                let same = known.is_some_and(|k| {
                    // A directory without a date (a bucket prefix) is listed every time.
                    let size_same =
                        if item.is_dir { !item.date.is_empty() } else { Some(k.size as u64) == item.size || item.size.is_none() };
                    k.date == item.date && size_same
                });
                let ok = if item.is_dir {
                    // Listed as changed, or possibly changed: walk it.
                    if same && !incremental && newest.as_deref() != Some(item.name.as_str()) {
                        continue;
                    }
                    let child = format!("{parent}{}", item.name);
                    let since = since.filter(|_| known.is_some());
                    self.dir(child, sums_below(&sums, &item.name), since).await && self.record_dir(&parent, item, known).await
                } else {
                    same || self.file(&parent, item, sums.get(&item.name).map(String::as_str), known).await
                };
                complete &= ok;
            }
            complete
        })
    }

    /// The checksums of this directory: its own `SHASUMS256.txt`, else those
    /// inherited from above. `None` when the listed checksum file cannot be read.
    async fn checksums(
        &mut self,
        parent: &str,
        item: Option<&Item>,
        inherited: HashMap<String, String>,
    ) -> Option<HashMap<String, String>> {
        let Some(item) = item else { return Some(inherited) };
        let guard = self.guard();
        match node::small_guarded(&self.app, &item.url, &guard).await {
            Ok(Some(text)) => Some(node::parse_shasums(&String::from_utf8_lossy(&text)).into_iter().collect()),
            Ok(None) => Some(inherited),
            Err(e) => {
                self.log.line(format!("{parent}SHASUMS256.txt: {e}")).await;
                self.failed(e.is_retryable());
                None
            }
        }
    }

    /// Records that the whole tree was walked, and the upstream's clock when
    /// it started (the `since` of the next `api` sync).
    async fn record_complete(&mut self) {
        let Some(date) = self.upstream_date.filter(|_| self.cfg.kind == "api") else { return };
        let root = Item { name: "/".into(), is_dir: true, size: None, date: date.to_string(), url: String::new() };
        let known = self.app.store.binary_entry(&self.cfg.category, "", "/").await.ok().flatten();
        let e = self.entry("", &root, known.as_ref(), 0, None, None);
        if let Err(e) = self.app.store.put_binary_entry(&e).await {
            self.log.line(format!("recording the sync's time failed: {e}")).await;
        }
    }

    async fn record_dir(&mut self, parent: &str, item: &Item, known: Option<&BinaryEntry>) -> bool {
        if known.is_some_and(|k| k.date == item.date) {
            // Walked again (the newest directory) and unchanged: its `modified` stays.
            return true;
        }
        let e = self.entry(parent, item, known, 0, None, None);
        match self.app.store.put_binary_entry(&e).await {
            Ok(_) => true,
            Err(e) => {
                self.log.line(format!("{parent}{}: recording failed: {e}", item.name)).await;
                self.failed(true);
                false
            }
        }
    }

    fn entry(
        &self,
        parent: &str,
        item: &Item,
        known: Option<&BinaryEntry>,
        size: i64,
        sha256: Option<String>,
        blob_key: Option<String>,
    ) -> BinaryEntry {
        let now = now_ms();
        BinaryEntry {
            category: self.cfg.category.clone(),
            parent: parent.to_string(),
            name: item.name.clone(),
            id: known.map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), |k| k.id.clone()),
            is_dir: item.is_dir,
            size,
            date: item.date.clone(),
            sha256,
            blob_key,
            created_at: known.map_or(now, |k| k.created_at),
            updated_at: now,
        }
    }

    /// Fetches, verifies and records one file; true when done or skipped (404).
    async fn file(&mut self, parent: &str, item: &Item, sha256: Option<&str>, known: Option<&BinaryEntry>) -> bool {
        let path = format!("{parent}{}", item.name);
        if item.size.is_some_and(|s| s > self.cfg.max_file_bytes) {
            self.log.line(format!("{path}: rejected, {} bytes is over max_file_bytes", item.size.unwrap_or(0))).await;
            self.stats.rejected += 1;
            return false;
        }
        let guard = self.guard();
        let req = self.app.outbound.get(&item.url).max_bytes(self.cfg.max_file_bytes, "max_file_bytes").guard(&guard);
        let resp = match req.send().await {
            Ok(r) if r.status() == 404 => {
                self.log.line(format!("{path}: the upstream answered 404, skipped")).await;
                return true;
            }
            Ok(r) => r.error_for_status(),
            Err(e) => Err(e),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.log.line(format!("{path}: {e}")).await;
                self.failed(e.is_retryable());
                return false;
            }
        };
        let key = format!("binaries/{}/{}", self.cfg.category, uuid::Uuid::new_v4().simple());
        let hex = Arc::new(std::sync::Mutex::new(String::new()));
        let stream = verified(resp.into_stream(), item.size, sha256.map(str::to_string), hex.clone());
        match self.app.blobs.put_stream(&key, stream).await {
            Ok(size) => {
                let e = self.entry(parent, item, known, size as i64, Some(hex.lock().expect("digest lock").clone()), Some(key));
                self.store_file(&path, e).await
            }
            Err(BlobError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.log.line(format!("{path}: rejected, {e}")).await;
                self.stats.rejected += 1;
                false
            }
            Err(e) => {
                self.log.line(format!("{path}: {e}")).await;
                self.failed(true);
                false
            }
        }
    }

    /// Records a verified file whose blob is stored; the blob it replaces is removed.
    async fn store_file(&mut self, path: &str, e: BinaryEntry) -> bool {
        let (size, key) = (e.size as u64, e.blob_key.clone().unwrap_or_default());
        match self.app.store.put_binary_entry(&e).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    let _ = self.app.blobs.delete(&old).await;
                }
                self.stats.fetched += 1;
                self.stats.bytes += size;
                self.log.line(format!("{path}: fetched, {size} bytes")).await;
                true
            }
            Err(err) => {
                let _ = self.app.blobs.delete(&key).await;
                self.log.line(format!("{path}: recording failed: {err}")).await;
                self.failed(true);
                false
            }
        }
    }
}

/// The body as a blob stream that ends in an `InvalidData` error when its
/// size or SHA-256 differs from the expected ones (so nothing is stored),
/// leaving the hex digest in `digest` when it ends well.
fn verified(
    inner: impl futures_util::Stream<Item = Result<bytes::Bytes, crate::outbound::Error>> + Send + 'static,
    size: Option<u64>,
    sha256: Option<String>,
    digest: Arc<std::sync::Mutex<String>>,
) -> ByteStream {
    let start = (Box::pin(inner), Sha256::new(), 0u64);
    Box::pin(futures_util::stream::unfold(Some(start), move |state| {
        let (sha256, digest) = (sha256.clone(), digest.clone());
        async move {
            let (mut inner, mut hasher, n) = state?;
            match inner.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    let n = n + chunk.len() as u64;
                    Some((Ok(chunk), Some((inner, hasher, n))))
                }
                Some(Err(e)) => {
                    let kind = if matches!(e, crate::outbound::Error::TooLarge { .. }) {
                        std::io::ErrorKind::InvalidData
                    } else {
                        std::io::ErrorKind::Other
                    };
                    Some((Err(std::io::Error::new(kind, e.to_string())), None))
                }
                None => {
                    let hex = hex::encode(hasher.finalize());
                    let why = if size.is_some_and(|s| s != n) {
                        Some(format!("{n} bytes received, {} advertised", size.unwrap_or(0)))
                    } else if sha256.as_ref().is_some_and(|s| *s != hex) {
                        Some(format!("sha256 {hex} differs from the listed checksum (SHASUMS256.txt or the source's)"))
                    } else {
                        None
                    };
                    *digest.lock().expect("digest lock") = hex;
                    why.map(|w| (Err(std::io::Error::new(std::io::ErrorKind::InvalidData, w)), None))
                }
            }
        }
    }))
}

#[cfg(test)]
mod include_versions_tests {
    use super::outside_versions;

    #[test]
    fn include_versions_keeps_only_its_range() {
        assert!(!outside_versions(">=18", "v20.1.0/"));
        assert!(outside_versions(">=18", "v16.20.2/"));
        assert!(!outside_versions("^20.0.0", "20.3.0/"));
        assert!(!outside_versions(">=18", "latest/"), "not a version: kept");
        assert!(!outside_versions(">=18", "docs/"));
    }
}
