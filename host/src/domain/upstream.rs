//! Talking to an upstream registry: built-in npm/cnpm over HTTP, or an
//! upstream-adapter plugin. Errors say whether a retry may help.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::app::App;
use crate::plugins::LoadedPlugin;
use crate::store::Registry;

#[derive(Debug)]
pub enum UpstreamError {
    /// 5xx, 429, timeouts, connection failures: worth retrying later.
    Retryable(String),
    /// Anything else: retrying will not help.
    Fatal(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Retryable(m) | UpstreamError::Fatal(m) => f.write_str(m),
        }
    }
}

/// Status of a package upstream.
pub enum Fetched {
    Found(Value),
    NotFound,
    /// 451 or an unpublished marker: the upstream removed it.
    Removed,
}

pub enum Upstream {
    /// `max_bytes` caps every body read from the upstream (`max_body_bytes`).
    Http { registry: Registry, client: reqwest::Client, max_bytes: u64 },
    Plugin { registry: Registry, plugin: Arc<LoadedPlugin> },
}

/// Upstreams that failed recently (unreachable, timed out, 5xx, 429), by
/// registry id. Reads a client waits on (proxy packuments, search) do not ask
/// such an upstream again until `upstream_outage_secs` have passed, so an
/// outage costs one timeout, not one per request. Syncs, which retry with
/// backoff anyway, do not look at it. One entry per registry at most.
#[derive(Default)]
pub struct Outages {
    down_until: Mutex<HashMap<String, Instant>>,
}

impl Outages {
    /// Whether `registry` failed within the last `upstream_outage_secs`.
    pub fn is_down(&self, registry: &Registry) -> bool {
        let mut map = self.down_until.lock().expect("outage lock");
        match map.get(&registry.id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                map.remove(&registry.id);
                false
            }
            None => false,
        }
    }

    /// Records the outcome of a request to `registry`: a retryable failure
    /// marks it down for `window`; an answer clears the mark.
    pub fn record<T>(&self, registry: &Registry, outcome: &Result<T, UpstreamError>, window: Duration) {
        let mut map = self.down_until.lock().expect("outage lock");
        match outcome {
            Err(UpstreamError::Retryable(_)) if !window.is_zero() => {
                if map.insert(registry.id.clone(), Instant::now() + window).is_none() {
                    tracing::warn!(registry = registry.name, secs = window.as_secs(), "upstream unreachable; reads will not wait on it for a while");
                }
            }
            Err(_) => {}
            Ok(_) => {
                map.remove(&registry.id);
            }
        }
    }
}

/// An HTTP client for upstream registries (built once, in `App::new`).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client")
}

/// Reads a response body, refusing (not retrying) one larger than `max` bytes:
/// a broken or hostile upstream must not exhaust memory.
/// `what` names the request in errors (`GET <url>`).
async fn read_capped(mut resp: reqwest::Response, what: &str, max: u64) -> Result<Bytes, UpstreamError> {
    let too_big = || UpstreamError::Fatal(format!("{what}: the body is larger than max_body_bytes ({max} bytes)"));
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_big());
    }
    let mut buf = bytes::BytesMut::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|e| UpstreamError::Retryable(format!("{what}: reading the body failed: {}", without_url(&e))))? {
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(too_big());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl Upstream {
    pub fn for_registry(app: &App, registry: Registry) -> Result<Upstream, UpstreamError> {
        if matches!(registry.kind.as_str(), "npm" | "cnpm") {
            return Ok(Upstream::Http { registry, client: app.upstream_client.clone(), max_bytes: app.config.max_body_bytes });
        }
        let set = app.plugins.current();
        match set.get(&registry.kind) {
            Some(p) if p.kind() == crate::config::PluginKind::UpstreamAdapter => Ok(Upstream::Plugin { plugin: p.clone(), registry }),
            _ => Err(UpstreamError::Fatal(format!("registry {} has type {:?}, but no upstream-adapter plugin of that name is loaded", registry.name, registry.kind))),
        }
    }

    pub fn registry(&self) -> &Registry {
        match self {
            Upstream::Http { registry, .. } | Upstream::Plugin { registry, .. } => registry,
        }
    }

    fn same_origin(&self, url: &str) -> bool {
        let (Ok(a), Ok(b)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.registry().host)) else { return false };
        a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
    }

    async fn get(&self, client: &reqwest::Client, url: &str, accept: &str) -> Result<reqwest::Response, UpstreamError> {
        let mut req = client.get(url).header("accept", accept);
        if let Some(token) = &self.registry().auth_token {
            // The token goes only to the registry itself, never to a third-party tarball host.
            if self.same_origin(url) {
                req = req.bearer_auth(token);
            }
        }
        req.send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "failed" };
            UpstreamError::Retryable(format!("GET {url} {what}: {}", without_url(&e)))
        })
    }

    /// The upstream's packument of `name`.
    pub async fn packument(&self, name: &str) -> Result<Fetched, UpstreamError> {
        match self {
            Upstream::Http { registry, client, max_bytes } => {
                let url = format!("{}/{}", registry.host, name.replace('/', "%2f"));
                let resp = self.get(client, &url, "application/json").await?;
                let status = resp.status();
                if status == 404 {
                    return Ok(Fetched::NotFound);
                }
                if status == 451 {
                    return Ok(Fetched::Removed);
                }
                if status.is_server_error() || status == 429 {
                    return Err(UpstreamError::Retryable(format!("GET {url} answered {status}")));
                }
                if !status.is_success() {
                    return Err(UpstreamError::Fatal(format!("GET {url} answered {status}")));
                }
                let body = read_capped(resp, &format!("GET {url}"), *max_bytes).await?;
                let doc: Value = serde_json::from_slice(&body)
                    .map_err(|e| UpstreamError::Retryable(format!("GET {url}: the body is not a JSON packument: {e}")))?;
                if doc.get("versions").is_none_or(|v| !v.is_object()) {
                    if doc.pointer("/time/unpublished").is_some() {
                        return Ok(Fetched::Removed);
                    }
                    return Err(UpstreamError::Fatal(format!("GET {url}: the packument has no versions")));
                }
                Ok(Fetched::Found(doc))
            }
            Upstream::Plugin { plugin, .. } => {
                match plugin.packument(name).await {
                    Ok(Some(doc)) => Ok(Fetched::Found(doc)),
                    Ok(None) => Ok(Fetched::NotFound),
                    Err(f) => Err(UpstreamError::Retryable(format!("plugin {}: {}", plugin.name(), f.message))),
                }
            }
        }
    }

    /// The tarball bytes of `name`@`version` at `url` (from the packument).
    pub async fn tarball(&self, name: &str, version: &str, url: &str) -> Result<Bytes, UpstreamError> {
        match self {
            Upstream::Http { client, max_bytes, .. } => {
                let resp = self.get(client, url, "application/octet-stream").await?;
                let status = resp.status();
                if status.is_server_error() || status == 429 {
                    return Err(UpstreamError::Retryable(format!("GET {url} answered {status}")));
                }
                if !status.is_success() {
                    return Err(UpstreamError::Fatal(format!("GET {url} answered {status}")));
                }
                let expected = resp.content_length();
                let bytes = read_capped(resp, &format!("GET {url}"), *max_bytes).await?;
                if let Some(n) = expected {
                    if bytes.len() as u64 != n {
                        return Err(UpstreamError::Retryable(format!("GET {url}: got {} of {n} bytes", bytes.len())));
                    }
                }
                Ok(bytes)
            }
            Upstream::Plugin { plugin, .. } => {
                plugin
                    .tarball(name, version, url)
                    .await
                    .map(Bytes::from).map_err(|f| UpstreamError::Retryable(format!("plugin {}: {}", plugin.name(), f.message)))
            }
        }
    }

    /// Daily download counts of `name` between two days, as `(day, count)`.
    pub async fn downloads(&self, name: &str, start: &str, end: &str) -> Result<Vec<(String, i64)>, UpstreamError> {
        let Upstream::Http { registry, client, .. } = self else {
            return Err(UpstreamError::Fatal("download counts can only be imported from npm or cnpm registries".into()));
        };
        let url = format!("{}/downloads/range/{start}:{end}/{name}", registry.host);
        let resp = self.get(client, &url, "application/json").await?;
        if !resp.status().is_success() {
            return Err(UpstreamError::Fatal(format!("GET {url} answered {}", resp.status())));
        }
        let doc: Value = resp.json().await.map_err(|e| UpstreamError::Fatal(format!("GET {url}: {}", without_url(&e))))?;
        Ok(doc["downloads"]
            .as_array()
            .map(|days| {
                days.iter()
                    .filter_map(|d| Some((d["day"].as_str()?.to_string(), d["downloads"].as_i64()?)))
                    .filter(|(_, n)| *n > 0)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Forwards an audit request body to the upstream: its status, content
    /// type and body (capped). Errors name the registry, not its URL.
    pub async fn post_raw(&self, path: &str, body: Bytes, content_type: Option<&str>, content_encoding: Option<&str>) -> Result<(u16, String, Bytes), UpstreamError> {
        let Upstream::Http { registry, client, max_bytes } = self else {
            return Err(UpstreamError::Fatal("this upstream is a plugin; it has no audit endpoint".into()));
        };
        let url = format!("{}{path}", registry.host);
        let mut req = client.post(&url).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(ce) = content_encoding {
            req = req.header("content-encoding", ce);
        }
        if let Some(token) = &registry.auth_token {
            req = req.bearer_auth(token);
        }
        let what = format!("POST {path} on registry {}", registry.name);
        let resp = req.send().await.map_err(|e| {
            let how = if e.is_timeout() { "timed out" } else { "failed" };
            UpstreamError::Retryable(format!("{what} {how}: {}", without_url(&e)))
        })?;
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
        let bytes = read_capped(resp, &what, *max_bytes).await?;
        Ok((status, ct, bytes))
    }

    /// One page of the upstream's `/-/v1/search`: its result objects and its
    /// total. Plugin upstreams have no search: an empty page.
    pub async fn search(&self, text: &str, from: i64, size: i64) -> Result<(Vec<Value>, i64), UpstreamError> {
        let Upstream::Http { registry, client, max_bytes } = self else { return Ok((Vec::new(), 0)) };
        let base = format!("{}/-/v1/search", registry.host);
        let params = [("text", text.to_string()), ("from", from.to_string()), ("size", size.to_string())];
        let url = reqwest::Url::parse_with_params(&base, &params).map_err(|e| UpstreamError::Fatal(format!("the search URL of registry {}: {e}", registry.name)))?;
        let resp = self.get(client, url.as_str(), "application/json").await?;
        let status = resp.status();
        if status.is_server_error() || status == 429 {
            return Err(UpstreamError::Retryable(format!("GET {base} answered {status}")));
        }
        if !status.is_success() {
            return Err(UpstreamError::Fatal(format!("GET {base} answered {status}")));
        }
        let body = read_capped(resp, &format!("GET {base}"), (*max_bytes).min(SEARCH_MAX_BYTES)).await?;
        let doc: Value = serde_json::from_slice(&body).map_err(|e| UpstreamError::Fatal(format!("GET {base}: not a search result: {e}")))?;
        let objects = doc.get("objects").and_then(Value::as_array).cloned().unwrap_or_default();
        let total = doc.get("total").and_then(Value::as_i64).unwrap_or(objects.len() as i64);
        Ok((objects, total))
    }
}

/// Largest upstream search answer read (250 results are far below this).
const SEARCH_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// reqwest errors embed the URL; ours already name it.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(&format!(" ({url})"), "").replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

/// Verifies tarball bytes against the upstream's `dist.integrity` (its sha512
/// and sha1 digests, `domain::integrity`) and `dist.shasum`; returns the
/// sha512 integrity to store.
pub fn verify(bytes: &[u8], dist: &Value) -> Result<String, String> {
    use super::integrity::{check, Digests, IntegrityError};
    let digests = Digests::new(bytes);
    let mut checked = false;
    if let Some(integrity) = dist.get("integrity").and_then(Value::as_str) {
        match check(integrity, &digests) {
            Ok(()) => checked = true,
            Err(IntegrityError::Mismatch) => return Err(format!("integrity mismatch: upstream says {integrity}, the bytes are {}", digests.sri())),
            Err(IntegrityError::NoDigest) => return Err(format!("the upstream's integrity {integrity:?} has no sha512 or sha1 digest")),
            Err(IntegrityError::Malformed(why)) => return Err(format!("the upstream's integrity {integrity} is malformed: {why}")),
        }
    }
    if let Some(shasum) = dist.get("shasum").and_then(Value::as_str) {
        if !shasum.eq_ignore_ascii_case(&digests.sha1_hex()) {
            return Err(format!("shasum mismatch: upstream says {shasum}, the bytes are {}", digests.sha1_hex()));
        }
        checked = true;
    }
    if !checked {
        return Err("the upstream gives no integrity or shasum to verify the tarball against".into());
    }
    Ok(digests.sri())
}
