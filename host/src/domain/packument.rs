//! Packuments (package documents) built from storage, and the per-package cache
//! of their serialized forms. Reads are served from the cache: full and
//! abbreviated JSON, each also gzipped once at build time, with an ETag. Every
//! write to a package invalidates its entry; with several processes sharing a
//! database, entries also expire after `packument_cache_ttl_secs`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::app::App;
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

pub struct PackumentCache {
    entries: RwLock<HashMap<String, Arc<Cached>>>,
    ttl: Duration,
    capacity: usize,
    /// Names whose expired entry one request is revalidating; the others keep
    /// serving the entry meanwhile (no rebuild stampede).
    revalidating: Mutex<HashSet<String>>,
}

/// What the cache holds for a name.
enum Hit {
    Fresh(Arc<Cached>),
    /// Expired: revalidate it (this request won the claim) or serve it as is.
    Stale { entry: Arc<Cached>, claimed: bool },
    Miss,
}

impl PackumentCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        PackumentCache { entries: RwLock::new(HashMap::new()), ttl, capacity: capacity.max(1), revalidating: Mutex::new(HashSet::new()) }
    }

    pub fn invalidate(&self, name: &str) {
        self.entries.write().expect("cache lock").remove(name);
    }

    fn hit(&self, name: &str) -> Hit {
        let Some(entry) = self.entries.read().expect("cache lock").get(name).cloned() else { return Hit::Miss };
        if clock_ms().saturating_sub(entry.checked.load(Ordering::Relaxed)) < self.ttl.as_millis() as u64 {
            return Hit::Fresh(entry);
        }
        let claimed = self.revalidating.lock().expect("cache lock").insert(name.to_string());
        Hit::Stale { entry, claimed }
    }

    fn release(&self, name: &str) {
        self.revalidating.lock().expect("cache lock").remove(name);
    }

    pub(crate) fn put(&self, entry: Arc<Cached>) {
        let mut map = self.entries.write().expect("cache lock");
        if map.len() >= self.capacity {
            // Crude but bounded: drop half of the entries.
            let drop: Vec<String> = map.keys().take(map.len() / 2 + 1).cloned().collect();
            for k in drop {
                map.remove(&k);
            }
        }
        map.insert(entry.name.clone(), entry);
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
    let blocked = app.store.block(name).await?;
    let Some(record) = app.store.package(name).await? else {
        return Ok(Lookup::Missing(blocked));
    };
    let entry = Arc::new(build(&record, blocked, &app.config.public_url));
    app.packuments.put(entry.clone());
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
        }
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
    full.insert(
        "maintainers".into(),
        Value::Array(record.maintainers.iter().map(|(n, e)| json!({"name": n, "email": e})).collect()),
    );
    for field in ["keywords", "license", "homepage", "repository", "author", "bugs"] {
        if let Some(v) = latest_manifest.get(field) {
            full.insert(field.into(), v.clone());
        }
    }
    full.insert("readme".into(), json!(readme.unwrap_or_default()));
    full.insert("readmeFilename".into(), json!(if latest_manifest.get("readmeFilename").is_some() { latest_manifest["readmeFilename"].clone() } else { json!("README.md") }));
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
    }
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
