//! Packuments (package documents) built from storage, and the per-package cache
//! of their serialized forms. Reads are served from the cache: full and
//! abbreviated JSON, each also gzipped once at build time, with an ETag. Every
//! write to a package invalidates its entry, here and (on PostgreSQL) in every
//! other process sharing the database (`domain::cluster`); entries also expire
//! after `packument_cache_ttl_secs`, a safety net for an announcement lost. The
//! cache is bounded by entries and by bytes (`packument_cache_entries`,
//! `cache_max_bytes`).

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::domain::App;
use crate::store::{Block, PackageRecord};
use crate::util::iso_ms;

use super::Result;

/// One serialized document.
pub struct Doc {
    pub body: Bytes,
    pub gzip: Bytes,
    pub etag: String,
}

pub struct Cached {
    pub name: String,
    pub rev: String,
    pub full: Doc,
    pub abbreviated: Doc,
    /// The full document as a value, for version reads.
    pub value: Value,
    pub blocked: Option<Block>,
    /// When the entry was last known to match storage (ms since `EPOCH`).
    checked: AtomicU64,
    /// Roughly the bytes this entry holds (documents, gzips and the value).
    weight: usize,
}

/// A process-local clock for cache ages.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn clock_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a packument lookup found.
pub enum Lookup {
    Found(Arc<Cached>),
    /// No such package (but maybe a block on the name).
    Missing(Option<Block>),
}

/// A cache bounded by entries and by bytes.
pub(crate) type Bounded<V> = quick_cache::sync::Cache<String, V, ByBytes<V>>;

/// Weighs an entry by its bytes, but at least `floor` (`max_bytes / max_entries`),
/// so neither bound can be passed.
pub(crate) struct ByBytes<V> {
    weigh: fn(&str, &V) -> usize,
    floor: u64,
}

impl<V> Clone for ByBytes<V> {
    fn clone(&self) -> Self {
        ByBytes { weigh: self.weigh, floor: self.floor }
    }
}

impl<V> quick_cache::Weighter<String, V> for ByBytes<V> {
    fn weight(&self, key: &String, value: &V) -> u64 {
        ((self.weigh)(key, value) as u64).max(self.floor)
    }
}

/// A cache of at most `max_entries` entries weighing `max_bytes` together
/// (quick_cache: CLOCK-Pro eviction; one shard, so one entry may take the
/// whole budget, as a package with thousands of versions can).
pub(crate) fn bounded_cache<V: Clone>(max_entries: usize, max_bytes: u64, weigh: fn(&str, &V) -> usize) -> Bounded<V> {
    let max_bytes = max_bytes.max(1);
    let floor = (max_bytes / max_entries.max(1) as u64).max(1);
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(max_entries.clamp(1, 100_000))
        .weight_capacity(max_bytes)
        .shards(1)
        .build()
        .expect("cache options");
    Bounded::with_options(options, ByBytes { weigh, floor }, Default::default(), Default::default())
}

pub struct PackumentCache {
    entries: Bounded<Arc<Cached>>,
    ttl: Duration,
    /// Names whose expired entry one request is revalidating; the others keep
    /// serving the entry meanwhile (no rebuild stampede).
    revalidating: Mutex<HashSet<String>>,
    /// Bumped by every invalidation: an entry built from a read that began
    /// before one is not cached (it may predate the write).
    generation: AtomicU64,
    /// Names this process changed, for the other processes.
    pub(crate) outbox: crate::domain::cluster::Outbox,
}

/// What the cache holds for a name.
enum Hit {
    Fresh(Arc<Cached>),
    /// Expired: revalidate it (this request won the claim) or serve it as is.
    Stale {
        entry: Arc<Cached>,
        claimed: bool,
    },
    Miss,
}

impl PackumentCache {
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: u64) -> Self {
        let entries = bounded_cache(max_entries, max_bytes, |name, entry: &Arc<Cached>| name.len() + entry.weight);
        PackumentCache {
            entries,
            ttl,
            revalidating: Mutex::new(HashSet::new()),
            generation: AtomicU64::new(0),
            outbox: crate::domain::cluster::Outbox::new(),
        }
    }

    /// After a write to `name`: drops its entry here and announces the change
    /// to the other processes.
    pub fn invalidate(&self, name: &str) {
        self.forget(name);
        self.outbox.push(name);
    }

    /// Drops the entry of `name` (another process changed it).
    pub fn forget(&self, name: &str) {
        self.entries.remove(name);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops every entry (announcements may have been missed).
    pub fn clear(&self) {
        self.entries.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn hit(&self, name: &str) -> Hit {
        let Some(entry) = self.entries.get(name) else { return Hit::Miss };
        if clock_ms().saturating_sub(entry.checked.load(Ordering::Relaxed)) < self.ttl.as_millis() as u64 {
            return Hit::Fresh(entry);
        }
        let claimed = self.revalidating.lock().expect("cache lock").insert(name.to_string());
        Hit::Stale { entry, claimed }
    }

    fn release(&self, name: &str) {
        self.revalidating.lock().expect("cache lock").remove(name);
    }

    /// Caches `entry`, built from a read that began at `generation`, unless an
    /// invalidation came since.
    pub(crate) fn put(&self, entry: Arc<Cached>, generation: u64) {
        if self.generation.load(Ordering::SeqCst) == generation {
            self.entries.insert(entry.name.clone(), entry);
        }
    }

    /// Entries and their weight in bytes.
    pub fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }
}

/// The cached packument of `name`, built from storage on a miss (or always, with `fresh`).
///
/// An expired entry is revalidated by one request (a cheap check of the
/// package's rev and block), while concurrent requests keep serving it; it is
/// rebuilt only when storage changed.
pub async fn lookup(app: &App, name: &str, fresh: bool) -> Result<Lookup> {
    if !fresh {
        match app.packuments.hit(name) {
            Hit::Fresh(entry) => return Ok(Lookup::Found(entry)),
            Hit::Stale { entry, claimed: false } => return Ok(Lookup::Found(entry)),
            Hit::Stale { entry, claimed: true } => {
                let result = revalidate(app, name, &entry).await;
                app.packuments.release(name);
                match result {
                    Ok(true) => return Ok(Lookup::Found(entry)),
                    Ok(false) => {}
                    Err(e) => return Err(e),
                }
            }
            Hit::Miss => {}
        }
    }
    let generation = app.packuments.generation.load(Ordering::SeqCst);
    let blocked = app.store.block(name).await?;
    let Some(record) = app.store.package(name).await? else {
        return Ok(Lookup::Missing(blocked));
    };
    let entry = Arc::new(build(&record, blocked, &app.config.public_url));
    app.packuments.put(entry.clone(), generation);
    Ok(Lookup::Found(entry))
}

/// Whether `entry` still matches storage; if so its age restarts.
async fn revalidate(app: &App, name: &str, entry: &Cached) -> Result<bool> {
    let block = app.store.block(name).await?;
    let same_block = block.as_ref().map(|b| (&b.id, &b.reason)) == entry.blocked.as_ref().map(|b| (&b.id, &b.reason));
    let same_rev = app.store.package_rev(name).await?.as_deref() == Some(entry.rev.as_str());
    if same_block && same_rev {
        entry.checked.store(clock_ms(), Ordering::Relaxed);
        return Ok(true);
    }
    Ok(false)
}

fn doc(value: &Value) -> Doc {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::default());
    gz.write_all(&body).expect("writing to memory");
    let gzip = gz.finish().expect("writing to memory");
    let etag = format!("W/\"{}\"", &crate::util::sha512_hex(&body)[..40]);
    Doc { body: Bytes::from(body), gzip: Bytes::from(gzip), etag }
}

/// The version the `latest` tag points at, else the highest.
pub fn latest_version(record: &PackageRecord) -> Option<&str> {
    if let Some((_, v)) = record.tags.iter().find(|(t, _)| t == "latest") {
        if record.versions.iter().any(|r| &r.version == v) {
            return Some(v);
        }
    }
    highest(record.versions.iter().map(|v| v.version.as_str()))
}

pub fn highest<'a>(versions: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    versions.filter_map(|v| nodejs_semver::Version::parse(v).ok().map(|p| (p, v))).max_by(|a, b| a.0.cmp(&b.0)).map(|(_, v)| v)
}

/// The version document as served: `dist.tarball` made absolute.
pub fn served_manifest(manifest: &str, public_url: &str) -> Value {
    let mut value: Value = serde_json::from_str(manifest).unwrap_or_else(|_| json!({}));
    if let Some(tarball) = value.pointer_mut("/dist/tarball") {
        if let Some(path) = tarball.as_str().filter(|p| p.starts_with('/')) {
            *tarball = Value::String(format!("{public_url}{path}"));
        }
    }
    value
}

const ABBREVIATED_FIELDS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "libc",
    "dist",
    "_hasShrinkwrap",
];

pub fn has_install_script(manifest: &Value) -> bool {
    manifest
        .get("scripts")
        .and_then(Value::as_object)
        .is_some_and(|s| ["preinstall", "install", "postinstall"].iter().any(|k| s.contains_key(*k)))
}

pub(crate) fn abbreviate(manifest: &Value) -> Value {
    let mut out = Map::new();
    for field in ABBREVIATED_FIELDS {
        if let Some(v) = manifest.get(*field) {
            out.insert((*field).to_string(), v.clone());
        }
    }
    if has_install_script(manifest) {
        out.insert("hasInstallScript".into(), Value::Bool(true));
    }
    Value::Object(out)
}

impl Cached {
    /// An entry from documents built elsewhere (proxy mode).
    pub fn from_docs(name: &str, rev: &str, full: Value, abbreviated: Value) -> Cached {
        Cached {
            name: name.to_string(),
            rev: rev.to_string(),
            full: doc(&full),
            abbreviated: doc(&abbreviated),
            value: full,
            blocked: None,
            checked: AtomicU64::new(clock_ms()),
            weight: 0,
        }
        .weighed()
    }

    /// Roughly the bytes this entry holds.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Sets `weight` from what the entry holds.
    fn weighed(mut self) -> Cached {
        let docs = [&self.full, &self.abbreviated].iter().map(|d| d.body.len() + d.gzip.len() + d.etag.len()).sum::<usize>();
        self.weight = std::mem::size_of::<Cached>() + self.name.len() + self.rev.len() + docs + value_bytes(&self.value);
        self
    }
}

/// Roughly the heap a JSON value holds: its nodes, strings and map entries.
fn value_bytes(value: &Value) -> usize {
    let node = std::mem::size_of::<Value>();
    node + match value {
        Value::String(s) => s.capacity(),
        Value::Array(items) => items.iter().map(value_bytes).sum(),
        // Key, hash and index beside each value (the map keeps insertion order).
        Value::Object(map) => map.iter().map(|(k, v)| k.capacity() + 16 + std::mem::size_of::<String>() + value_bytes(v)).sum(),
        _ => 0,
    }
}

pub fn build(record: &PackageRecord, blocked: Option<Block>, public_url: &str) -> Cached {
    let mut versions = Map::new();
    let mut abbreviated_versions = Map::new();
    let mut time = Map::new();
    time.insert("created".into(), json!(iso_ms(record.created_at)));
    time.insert("modified".into(), json!(iso_ms(record.modified_at)));
    for v in &record.versions {
        let manifest = served_manifest(&v.manifest, public_url);
        abbreviated_versions.insert(v.version.clone(), abbreviate(&manifest));
        versions.insert(v.version.clone(), manifest);
        time.insert(v.version.clone(), json!(iso_ms(v.created_at)));
    }
    let tags: Map<String, Value> = record.tags.iter().map(|(t, v)| (t.clone(), json!(v))).collect();
    let latest = latest_version(record);
    let latest_manifest = latest.and_then(|v| versions.get(v)).cloned().unwrap_or_else(|| json!({}));
    let readme = latest.and_then(|l| record.versions.iter().find(|v| v.version == l)).and_then(|v| v.readme.clone());

    let mut full = Map::new();
    full.insert("_id".into(), json!(record.name));
    full.insert("_rev".into(), json!(record.rev));
    full.insert("name".into(), json!(record.name));
    if let Some(d) = latest_manifest.get("description") {
        full.insert("description".into(), d.clone());
    }
    full.insert("dist-tags".into(), Value::Object(tags.clone()));
    full.insert("versions".into(), Value::Object(versions));
    full.insert("time".into(), Value::Object(time.clone()));
    full.insert("maintainers".into(), Value::Array(record.maintainers.iter().map(|(n, e)| json!({"name": n, "email": e})).collect()));
    for field in ["keywords", "license", "homepage", "repository", "author", "bugs"] {
        if let Some(v) = latest_manifest.get(field) {
            full.insert(field.into(), v.clone());
        }
    }
    full.insert("readme".into(), json!(readme.unwrap_or_default()));
    full.insert(
        "readmeFilename".into(),
        json!(if latest_manifest.get("readmeFilename").is_some() { latest_manifest["readmeFilename"].clone() } else { json!("README.md") }),
    );
    full.insert("users".into(), Value::Object(record.stars.iter().map(|u| (u.clone(), Value::Bool(true))).collect()));
    let full = Value::Object(full);

    let abbreviated = json!({
        "name": record.name,
        "modified": iso_ms(record.modified_at),
        "dist-tags": tags,
        "versions": abbreviated_versions,
        "time": time,
    });
    Cached {
        name: record.name.clone(),
        rev: record.rev.clone(),
        full: doc(&full),
        abbreviated: doc(&abbreviated),
        value: full,
        blocked,
        checked: AtomicU64::new(clock_ms()),
        weight: 0,
    }
    .weighed()
}

/// Resolves a tag, an exact version or a range to a version of the package.
/// A range picks the highest match, preferring the `latest` tag when it matches.
pub fn resolve_spec(doc: &Value, spec: &str) -> Option<String> {
    let versions = doc.get("versions")?.as_object()?;
    if versions.contains_key(spec) {
        return Some(spec.to_string());
    }
    // The parser accepts things node-semver does not, such as `1.0.0.0`.
    let core_parts = |t: &str| t.split(['-', '+']).next().unwrap_or("").split('.').count();
    if spec.split(|c: char| c.is_whitespace() || "<>=~^|".contains(c)).any(|t| core_parts(t) > 3) {
        return None;
    }
    let tags = doc.get("dist-tags").and_then(Value::as_object);
    if let Some(v) = tags.and_then(|t| t.get(spec)).and_then(Value::as_str) {
        return versions.contains_key(v).then(|| v.to_string());
    }
    if versions.contains_key(spec) {
        return Some(spec.to_string());
    }
    if let Ok(v) = nodejs_semver::Version::parse(spec) {
        let canonical = v.to_string();
        return versions.contains_key(&canonical).then_some(canonical);
    }
    let range = nodejs_semver::Range::parse(spec).ok()?;
    if let Some(latest) = tags.and_then(|t| t.get("latest")).and_then(Value::as_str) {
        if nodejs_semver::Version::parse(latest).is_ok_and(|v| range.satisfies(&v)) && versions.contains_key(latest) {
            return Some(latest.to_string());
        }
    }
    highest(versions.keys().map(String::as_str).filter(|v| nodejs_semver::Version::parse(*v).is_ok_and(|p| range.satisfies(&p))))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, payload: usize) -> Arc<Cached> {
        // Varied text, so that neither JSON nor gzip makes it small.
        let text: String = (0..payload).map(|i| char::from(b'a' + ((i * 7919 + name.len()) % 26) as u8)).collect();
        Arc::new(Cached::from_docs(name, "1-a", json!({"name": name, "readme": text}), json!({"name": name})))
    }

    #[test]
    fn the_cache_is_bounded_by_entries_and_by_bytes() {
        let cache = PackumentCache::new(Duration::from_secs(60), 4, 1 << 20);
        for i in 0..100 {
            cache.put(entry(&format!("small-{i}"), 10), 0);
        }
        let (entries, _) = cache.usage();
        assert!(entries <= 4, "{entries} entries kept, 4 allowed");

        let cache = PackumentCache::new(Duration::from_secs(60), 10_000, 1 << 20);
        let big = entry("big-0", 100_000);
        assert!(big.weight() > 200_000, "weight {} counts documents, gzips and the value", big.weight());
        for i in 0..50 {
            cache.put(entry(&format!("big-{i}"), 100_000), 0);
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 1 << 20, "{bytes} bytes kept in {entries} entries, 1 MiB allowed");
        assert!(entries >= 1);
    }

    #[test]
    fn an_entry_read_before_an_invalidation_is_not_cached() {
        let cache = PackumentCache::new(Duration::from_secs(60), 100, 1 << 20);
        let before = cache.generation.load(Ordering::SeqCst);
        cache.forget("a");
        cache.put(entry("a", 10), before);
        assert!(matches!(cache.hit("a"), Hit::Miss), "built before the change: not cached");
        cache.put(entry("a", 10), cache.generation.load(Ordering::SeqCst));
        assert!(matches!(cache.hit("a"), Hit::Fresh(_)));
        cache.invalidate("a");
        assert!(matches!(cache.hit("a"), Hit::Miss));
        assert_eq!(cache.outbox.drain(), ["a"], "a local write is announced");
        cache.put(entry("b", 10), cache.generation.load(Ordering::SeqCst));
        cache.clear();
        assert!(matches!(cache.hit("b"), Hit::Miss));
    }

    #[test]
    fn resolves_specs() {
        let doc = json!({
            "dist-tags": {"latest": "1.2.0", "beta": "2.0.0-beta.1"},
            "versions": {"1.0.0": {}, "1.2.0": {}, "1.3.0": {}, "2.0.0-beta.1": {}}
        });
        assert_eq!(resolve_spec(&doc, "latest").as_deref(), Some("1.2.0"));
        assert_eq!(resolve_spec(&doc, "beta").as_deref(), Some("2.0.0-beta.1"));
        assert_eq!(resolve_spec(&doc, "1.0.0").as_deref(), Some("1.0.0"));
        assert_eq!(resolve_spec(&doc, "^1.0.0").as_deref(), Some("1.2.0"), "latest preferred");
        assert_eq!(resolve_spec(&doc, ">=1.3.0 <2").as_deref(), Some("1.3.0"));
        assert_eq!(resolve_spec(&doc, "1.x || >=3").as_deref(), Some("1.2.0"));
        assert_eq!(resolve_spec(&doc, "^3"), None);
        assert_eq!(resolve_spec(&doc, "nope"), None);
        assert_eq!(resolve_spec(&doc, "9.9.9"), None);
        assert_eq!(resolve_spec(&doc, "1.0.0.0"), None);
        assert_eq!(resolve_spec(&doc, "1.0.0.0.0"), None);
        assert_eq!(resolve_spec(&doc, "2.0.0-beta.1").as_deref(), Some("2.0.0-beta.1"));
        assert_eq!(resolve_spec(&doc, ">=2.0.0-beta.0").as_deref(), Some("2.0.0-beta.1"));
    }
}
