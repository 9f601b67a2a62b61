//! Packuments (package documents) built from storage, and the per-package cache
//! of their serialized forms. Reads are served from the cache: full and
//! abbreviated JSON, each also gzipped once at build time, with an ETag. Every
//! write to a package invalidates its entry, and so does every write another
//! process makes to the same database while this one follows the store's
//! change signals ([`PackumentCache::follow`]). Only while it does not (no
//! signal for a few seconds) do entries expire after `packument_cache_ttl_secs`
//! and get revalidated against storage. The cache is
//! bounded by entries and by bytes (`packument_cache_entries`, `cache_max_bytes`).

use std::collections::{HashMap, HashSet};
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
    /// The entity tag, as sent (`W/"…"`): shared bytes, so an answer copies nothing.
    pub etag: Bytes,
}

pub struct Cached {
    pub name: String,
    pub rev: String,
    pub full: Doc,
    pub abbreviated: Doc,
    /// The full document as a value, for version reads.
    pub value: Value,
    pub blocked: Option<Block>,
    /// The stored tarballs, by file name (empty for proxied documents): a
    /// tarball read on a cache hit needs no query.
    pub tarballs: HashMap<String, TarballRef>,
    /// When the entry was last known to match storage (ms since `EPOCH`).
    checked: AtomicU64,
    /// Roughly the bytes this entry holds (documents, gzips and the value).
    weight: usize,
}

/// A stored tarball, as a read needs it (shared, so a read copies nothing).
#[derive(Debug, Clone)]
pub struct TarballRef {
    pub version: Arc<str>,
    pub key: String,
    /// The integrity in double quotes: the tarball's entity tag as sent.
    pub etag: Bytes,
    pub size: u64,
}

impl TarballRef {
    /// The integrity string (the entity tag without its quotes).
    pub fn integrity(&self) -> &str {
        std::str::from_utf8(&self.etag).unwrap_or_default().trim_matches('"')
    }
}

/// `integrity` as an entity tag: in double quotes.
pub fn quoted(integrity: &str) -> Bytes {
    Bytes::from(format!("\"{integrity}\""))
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
    /// Bumped by every invalidation of a name hashing to the slot. A document
    /// built from a read that began before an invalidation of its name is not
    /// kept: a reader racing a write must not cache what the write replaced.
    generations: Box<[AtomicU64]>,
    /// Until when (ms, [`clock_ms`]) every change made elsewhere is known to
    /// reach [`PackumentCache::invalidate`]: entries do not expire before then.
    following_until: AtomicU64,
}

const GENERATION_SLOTS: usize = 256;

/// How long one change signal `Live` vouches for the feed (the store sends
/// one at least every second while it works).
pub const FOLLOW_WINDOW: Duration = Duration::from_secs(3);

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
        let generations = (0..GENERATION_SLOTS).map(|_| AtomicU64::new(0)).collect();
        PackumentCache { entries, ttl, revalidating: Mutex::new(HashSet::new()), generations, following_until: AtomicU64::new(0) }
    }

    /// The store's change feed is working: every change committed elsewhere
    /// until now has been passed to [`invalidate`](Self::invalidate), and
    /// entries need no TTL for [`FOLLOW_WINDOW`]. After a gap (the window ran
    /// out) changes may have been missed, so everything is dropped first.
    pub fn follow(&self) {
        let now = clock_ms();
        if self.following_until.load(Ordering::SeqCst) <= now {
            self.clear();
        }
        self.following_until.store(now + FOLLOW_WINDOW.as_millis() as u64, Ordering::SeqCst);
    }

    /// Changes may have been missed: drop everything, and let entries expire
    /// by the TTL until the feed works again.
    pub fn unfollow(&self) {
        self.following_until.store(0, Ordering::SeqCst);
        self.clear();
    }

    fn following(&self, now: u64) -> bool {
        now < self.following_until.load(Ordering::Relaxed)
    }

    pub fn invalidate(&self, name: &str) {
        self.generation_slot(name).fetch_add(1, Ordering::SeqCst);
        self.entries.remove(name);
    }

    /// Drops every entry (changes may have been missed).
    pub fn clear(&self) {
        for slot in self.generations.iter() {
            slot.fetch_add(1, Ordering::SeqCst);
        }
        self.entries.clear();
    }

    fn generation_slot(&self, name: &str) -> &AtomicU64 {
        // FNV-1a: cheap, and only spreads names over the slots.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        &self.generations[(hash % GENERATION_SLOTS as u64) as usize]
    }

    /// The generation to hand to [`PackumentCache::put`], read before storage is.
    fn generation(&self, name: &str) -> u64 {
        self.generation_slot(name).load(Ordering::SeqCst)
    }

    fn hit(&self, name: &str) -> Hit {
        let Some(entry) = self.entries.get(name) else { return Hit::Miss };
        let now = clock_ms();
        if self.following(now) || now.saturating_sub(entry.checked.load(Ordering::Relaxed)) < self.ttl.as_millis() as u64 {
            return Hit::Fresh(entry);
        }
        let claimed = self.revalidating.lock().expect("cache lock").insert(name.to_string());
        Hit::Stale { entry, claimed }
    }

    fn release(&self, name: &str) {
        self.revalidating.lock().expect("cache lock").remove(name);
    }

    /// Keeps `entry`, built from storage read after `generation` was taken,
    /// unless its name was invalidated since. Checked again after the insert:
    /// an invalidation between the check and the insert removes it then.
    fn put(&self, entry: Arc<Cached>, generation: u64) {
        let slot = self.generation_slot(&entry.name);
        if slot.load(Ordering::SeqCst) != generation {
            return;
        }
        let name = entry.name.clone();
        self.entries.insert(name.clone(), entry);
        if slot.load(Ordering::SeqCst) != generation {
            self.entries.remove(&name);
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
    let generation = app.packuments.generation(name);
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
    let etag = Bytes::from(format!("W/\"{}\"", &crate::util::sha512_hex(&body)[..40]));
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
            tarballs: HashMap::new(),
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
        let tarballs = self
            .tarballs
            .iter()
            .map(|(file, t)| file.len() + t.version.len() + t.key.len() + t.etag.len() + std::mem::size_of::<TarballRef>() + 32)
            .sum::<usize>();
        self.weight = std::mem::size_of::<Cached>() + self.name.len() + self.rev.len() + docs + value_bytes(&self.value) + tarballs;
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

/// The stored tarballs of `record`, by file name.
fn tarball_refs(record: &PackageRecord) -> HashMap<String, TarballRef> {
    let by_file = |v: &crate::store::VersionRecord| {
        let size = u64::try_from(v.size).unwrap_or(0);
        let t = TarballRef { version: v.version.as_str().into(), key: v.tarball_key.clone(), etag: quoted(&v.integrity), size };
        (v.tarball_file.clone(), t)
    };
    record.versions.iter().map(by_file).collect()
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
        tarballs: tarball_refs(record),
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

    /// A reader that read storage before a write's invalidation must not
    /// cache what it built: the write's change would stay invisible until the TTL.
    #[test]
    fn a_build_older_than_an_invalidation_is_not_kept() {
        let cache = PackumentCache::new(Duration::from_secs(60), 100, 1 << 20);
        let before = cache.generation("busy");
        cache.invalidate("busy");
        cache.put(entry("busy", 10), before);
        assert!(matches!(cache.hit("busy"), Hit::Miss), "a document built before the invalidation was cached");

        let after = cache.generation("busy");
        cache.put(entry("busy", 10), after);
        assert!(matches!(cache.hit("busy"), Hit::Fresh(_)));
        let other = cache.generation("other");
        cache.invalidate("busy");
        cache.put(entry("other", 10), other);
        assert!(matches!(cache.hit("busy"), Hit::Miss));
    }

    /// While the change feed works, entries do not expire (every change
    /// elsewhere arrives as an invalidation); when it stops, or after a gap,
    /// nothing cached before can be trusted.
    #[test]
    fn entries_outlive_the_ttl_only_while_changes_are_followed() {
        let cache = PackumentCache::new(Duration::ZERO, 100, 1 << 20);
        cache.put(entry("a", 10), cache.generation("a"));
        assert!(matches!(cache.hit("a"), Hit::Stale { claimed: true, .. }), "a TTL of 0 expires at once");
        cache.release("a");

        cache.follow();
        assert!(matches!(cache.hit("a"), Hit::Miss), "the first signal drops what was cached without one");
        cache.put(entry("a", 10), cache.generation("a"));
        assert!(matches!(cache.hit("a"), Hit::Fresh(_)), "followed: no TTL");
        cache.follow();
        assert!(matches!(cache.hit("a"), Hit::Fresh(_)), "no gap: kept");
        cache.invalidate("a");
        assert!(matches!(cache.hit("a"), Hit::Miss));

        cache.put(entry("a", 10), cache.generation("a"));
        cache.unfollow();
        assert!(matches!(cache.hit("a"), Hit::Miss), "signals lost: everything goes");
        cache.put(entry("a", 10), cache.generation("a"));
        assert!(matches!(cache.hit("a"), Hit::Stale { .. }), "and the TTL applies again");
        cache.release("a");

        // A window that ran out is a gap.
        cache.follow();
        cache.put(entry("a", 10), cache.generation("a"));
        cache.following_until.store(clock_ms(), Ordering::SeqCst);
        assert!(matches!(cache.hit("a"), Hit::Stale { .. }), "the window ran out");
        cache.release("a");
        cache.follow();
        assert!(matches!(cache.hit("a"), Hit::Miss), "a signal after a gap drops everything");
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
