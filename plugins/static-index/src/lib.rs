//! `static_index.wasm` (upstream-adapter): serves packages listed in one
//! static JSON document, e.g. a file on an internal web server.
//!
//! ```toml
//! [plugins.config]
//! index_url = "https://files.example.com/npm/index.json"
//! ```
//!
//! The index:
//!
//! ```json
//! {"packages": {
//!   "left-pad": {
//!     "versions": {
//!       "1.0.0": {"tarball": "left-pad-1.0.0.tgz", "integrity": "sha512-...",
//!                 "dependencies": {}, "description": "Pads strings"}
//!     },
//!     "dist-tags": {"latest": "1.0.0"}
//!   }
//! }}
//! ```
//!
//! Each version becomes a packument version with `name`, `version`, and
//! `dist.tarball` (a relative `tarball` is resolved against `index_url`),
//! `dist.integrity` / `dist.shasum` when given; its other keys
//! (`dependencies`, `description`, `license`, `bin`, ...) are copied as they
//! are. `dist-tags` is optional; `latest` defaults to the highest version
//! (the highest release when there is one, by semver). The index is fetched on
//! every `packument` call; Cairn caches packuments itself.

use cairn_plugin_sdk::upstream_adapter::{get, Adapter, Guest};
use cairn_plugin_sdk::{log, Loaded};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    index_url: String,
}

static CONFIG: Loaded<Config> = Loaded::new();

fn load() -> Result<Config, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    if !(config.index_url.starts_with("http://") || config.index_url.starts_with("https://")) {
        return Err(format!("static-index: `index_url` must be an http:// or https:// URL, got `{}`", config.index_url));
    }
    Ok(config)
}

/// Fetches `url`, failing on anything but 2xx.
fn fetch_ok(url: &str, accept: &str) -> Result<Vec<u8>, String> {
    let response = get(url, &[("accept", accept)]).map_err(|e| format!("GET {url}: {e}"))?;
    if !(200..300).contains(&response.status) {
        return Err(format!("GET {url}: HTTP {}", response.status));
    }
    Ok(response.body)
}

/// `reference` resolved against `base` (an absolute http(s) URL).
fn resolve_url(base: &str, reference: &str) -> String {
    if reference.contains("://") {
        return reference.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = &base[..base.find(['?', '#']).unwrap_or(base.len())];
    if let Some(rest) = reference.strip_prefix("//") {
        return format!("{}//{rest}", &base[..scheme_end.saturating_sub(2)]);
    }
    let origin_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    if reference.starts_with('/') {
        return format!("{}{reference}", &base[..origin_end]);
    }
    let dir_end = base[origin_end..].rfind('/').map_or(base.len(), |i| origin_end + i);
    format!("{}/{reference}", &base[..dir_end])
}

/// The npm packument for index entry `entry` of package `name`.
fn packument(name: &str, entry: &Value, index_url: &str) -> Result<Value, String> {
    let entry = entry.as_object().ok_or_else(|| format!("index entry for {name} is not an object"))?;
    let listed = match entry.get("versions") {
        None => Map::new(),
        Some(Value::Object(versions)) => versions.clone(),
        Some(_) => return Err(format!("index entry for {name}: `versions` is not an object")),
    };

    let mut versions = Map::new();
    for (version, info) in listed {
        let Value::Object(mut info) = info else {
            return Err(format!("index entry for {name}@{version} is not an object"));
        };
        let tarball = match info.remove("tarball") {
            Some(Value::String(url)) => resolve_url(index_url, &url),
            _ => return Err(format!("index entry for {name}@{version} has no `tarball` URL")),
        };
        let mut dist = Map::new();
        dist.insert("tarball".into(), Value::String(tarball));
        for key in ["integrity", "shasum"] {
            if let Some(value) = info.remove(key) {
                dist.insert(key.into(), value);
            }
        }
        let mut out = Map::new();
        out.insert("name".into(), Value::String(name.to_string()));
        out.insert("version".into(), Value::String(version.clone()));
        out.insert("dependencies".into(), Value::Object(Map::new()));
        info.remove("dist");
        info.remove("name");
        info.remove("version");
        out.extend(info);
        out.insert("dist".into(), Value::Object(dist));
        versions.insert(version, Value::Object(out));
    }

    let mut tags = match entry.get("dist-tags") {
        None => Map::new(),
        Some(Value::Object(tags)) => tags.clone(),
        Some(_) => return Err(format!("index entry for {name}: `dist-tags` is not an object")),
    };
    if !tags.contains_key("latest") {
        if let Some(latest) = highest(versions.keys()) {
            tags.insert("latest".into(), Value::String(latest));
        }
    }

    let mut doc = Map::new();
    doc.insert("name".into(), Value::String(name.to_string()));
    if let Some(description) = entry.get("description") {
        doc.insert("description".into(), description.clone());
    } else if let Some(description) =
        tags.get("latest").and_then(Value::as_str).and_then(|latest| versions.get(latest)).and_then(|v| v.get("description"))
    {
        doc.insert("description".into(), description.clone());
    }
    doc.insert("dist-tags".into(), Value::Object(tags));
    doc.insert("versions".into(), Value::Object(versions));
    Ok(Value::Object(doc))
}

/// The highest release among `versions`, or the highest pre-release when
/// there is no release; versions that are not semver are skipped.
fn highest<'a>(versions: impl Iterator<Item = &'a String>) -> Option<String> {
    versions
        .filter_map(|v| semver::Version::parse(v).ok().map(|parsed| (parsed, v)))
        .max_by(|(a, _), (b, _)| (a.pre.is_empty(), a).cmp(&(b.pre.is_empty(), b)))
        .map(|(_, v)| v.clone())
}

struct StaticIndex;

impl Guest for StaticIndex {
    fn init() -> Result<(), String> {
        let config = CONFIG.get_or_load(load)?;
        log::info(format!("serving packages from {}", config.index_url));
        Ok(())
    }
}

impl Adapter for StaticIndex {
    fn packument(name: String) -> Result<Option<String>, String> {
        let config = CONFIG.get_or_load(load)?;
        let body = fetch_ok(&config.index_url, "application/json")?;
        let index: Value = serde_json::from_slice(&body).map_err(|e| format!("index {} is not valid JSON: {e}", config.index_url))?;
        let packages = index
            .get("packages")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("index {} has no `packages` object", config.index_url))?;
        let Some(entry) = packages.get(&name) else {
            return Ok(None);
        };
        let doc = packument(&name, entry, &config.index_url)?;
        Ok(Some(doc.to_string()))
    }

    fn tarball(_name: String, _version: String, url: String) -> Result<Vec<u8>, String> {
        fetch_ok(&url, "application/octet-stream")
    }
}

cairn_plugin_sdk::export_upstream_adapter!(StaticIndex);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_tarball_urls() {
        let base = "https://h:1/npm/index.json?x=1";
        assert_eq!(resolve_url(base, "a.tgz"), "https://h:1/npm/a.tgz");
        assert_eq!(resolve_url(base, "/a.tgz"), "https://h:1/a.tgz");
        assert_eq!(resolve_url(base, "//cdn/a.tgz"), "https://cdn/a.tgz");
        assert_eq!(resolve_url(base, "http://o/a.tgz"), "http://o/a.tgz");
        assert_eq!(resolve_url("http://h", "a.tgz"), "http://h/a.tgz");
    }

    #[test]
    fn latest_is_the_highest_release() {
        let v = |list: &[&str]| highest(list.iter().map(|s| s.to_string()).collect::<Vec<_>>().iter());
        assert_eq!(v(&["1.2.0", "1.10.0", "2.0.0-rc.1"]).as_deref(), Some("1.10.0"));
        assert_eq!(v(&["1.0.0-a", "1.0.0-b"]).as_deref(), Some("1.0.0-b"));
        assert_eq!(v(&["nope"]), None);
    }

    #[test]
    fn converts_an_entry() {
        let entry = serde_json::json!({
            "versions": {"1.0.0": {"tarball": "x.tgz", "integrity": "sha512-x", "description": "d"}},
        });
        let doc = packument("p", &entry, "http://h/i.json").unwrap();
        assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
        let v = &doc["versions"]["1.0.0"];
        assert_eq!(v["name"], "p");
        assert_eq!(v["dist"]["tarball"], "http://h/x.tgz");
        assert_eq!(v["dist"]["integrity"], "sha512-x");
        assert_eq!(v["dependencies"], serde_json::json!({}));
        assert!(v.get("tarball").is_none());
        assert!(packument("p", &serde_json::json!({"versions": {"1.0.0": {}}}), "http://h/").is_err());
    }
}
