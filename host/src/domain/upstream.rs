//! Talking to an upstream registry: built-in npm/cnpm over HTTP, or an
//! upstream-adapter plugin. Errors say whether a retry may help.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::domain::App;
use crate::outbound::{self, Credentials, Outbound};
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
    /// Requests go through `outbound` (timeout, `max_body_bytes`); the
    /// registry's credentials are sent only to its own origin.
    Http {
        registry: Registry,
        outbound: Outbound,
        credentials: Option<Credentials>,
    },
    Plugin {
        registry: Registry,
        plugin: Arc<LoadedPlugin>,
    },
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
                    tracing::warn!(
                        registry = registry.name,
                        secs = window.as_secs(),
                        "upstream unreachable; reads will not wait on it for a while"
                    );
                }
            }
            Err(_) => {}
            Ok(_) => {
                map.remove(&registry.id);
            }
        }
    }
}

impl From<outbound::Error> for UpstreamError {
    fn from(e: outbound::Error) -> UpstreamError {
        if e.is_retryable() {
            UpstreamError::Retryable(e.to_string())
        } else {
            UpstreamError::Fatal(e.to_string())
        }
    }
}

impl Upstream {
    pub fn for_registry(app: &App, registry: Registry) -> Result<Upstream, UpstreamError> {
        if matches!(registry.kind.as_str(), "npm" | "cnpm") {
            let credentials = Credentials::for_registry(&registry.host, registry.auth_token.as_deref());
            return Ok(Upstream::Http { registry, outbound: app.outbound.clone(), credentials });
        }
        let set = app.plugins.current();
        match set.get(&registry.kind) {
            Some(p) if p.kind() == crate::config::PluginKind::UpstreamAdapter => Ok(Upstream::Plugin { plugin: p.clone(), registry }),
            _ => Err(UpstreamError::Fatal(format!(
                "registry {} has type {:?}, but no upstream-adapter plugin of that name is loaded",
                registry.name, registry.kind
            ))),
        }
    }

    pub fn registry(&self) -> &Registry {
        match self {
            Upstream::Http { registry, .. } | Upstream::Plugin { registry, .. } => registry,
        }
    }

    /// A GET through the outbound policy, with the registry's credentials
    /// (sent only to the registry's origin, never to a third-party tarball host).
    async fn get(&self, url: &str, accept: &str) -> Result<outbound::Response, UpstreamError> {
        let Upstream::Http { outbound, credentials, .. } = self else {
            return Err(UpstreamError::Fatal("a plugin upstream has no HTTP requests".into()));
        };
        Ok(outbound.get(url).header("accept", accept).credentials(credentials.as_ref()).send().await?)
    }

    /// The upstream's packument of `name`.
    pub async fn packument(&self, name: &str) -> Result<Fetched, UpstreamError> {
        match self {
            Upstream::Http { registry, .. } => {
                let url = format!("{}/{}", registry.host, name.replace('/', "%2f"));
                let resp = self.get(&url, "application/json").await?;
                match resp.status() {
                    404 => return Ok(Fetched::NotFound),
                    451 => return Ok(Fetched::Removed),
                    _ => {}
                }
                let doc: Value = match resp.error_for_status()?.json().await {
                    Err(e @ outbound::Error::Decode { .. }) => return Err(UpstreamError::Retryable(e.to_string())),
                    other => other?,
                };
                if doc.get("versions").is_none_or(|v| !v.is_object()) {
                    if doc.pointer("/time/unpublished").is_some() {
                        return Ok(Fetched::Removed);
                    }
                    return Err(UpstreamError::Fatal(format!("the packument of {name} on registry {} has no versions", registry.name)));
                }
                Ok(Fetched::Found(doc))
            }
            Upstream::Plugin { plugin, .. } => match plugin.packument(name).await {
                Ok(Some(doc)) => Ok(Fetched::Found(doc)),
                Ok(None) => Ok(Fetched::NotFound),
                Err(f) => Err(UpstreamError::Retryable(format!("plugin {}: {}", plugin.name(), f.message))),
            },
        }
    }

    /// The tarball bytes of `name`@`version` at `url` (from the packument).
    pub async fn tarball(&self, name: &str, version: &str, url: &str) -> Result<Bytes, UpstreamError> {
        match self {
            Upstream::Http { .. } => {
                let resp = self.get(url, "application/octet-stream").await?.error_for_status()?;
                let expected = resp.content_length();
                let bytes = resp.bytes().await?;
                if let Some(n) = expected {
                    if bytes.len() as u64 != n {
                        return Err(UpstreamError::Retryable(format!("the tarball of {name}@{version}: got {} of {n} bytes", bytes.len())));
                    }
                }
                Ok(bytes)
            }
            Upstream::Plugin { plugin, .. } => plugin
                .tarball(name, version, url)
                .await
                .map(Bytes::from)
                .map_err(|f| UpstreamError::Retryable(format!("plugin {}: {}", plugin.name(), f.message))),
        }
    }

    /// Daily download counts of `name` between two days, as `(day, count)`.
    pub async fn downloads(&self, name: &str, start: &str, end: &str) -> Result<Vec<(String, i64)>, UpstreamError> {
        let Upstream::Http { registry, .. } = self else {
            return Err(UpstreamError::Fatal("download counts can only be imported from npm or cnpm registries".into()));
        };
        let url = format!("{}/downloads/range/{start}:{end}/{name}", registry.host);
        let resp = self.get(&url, "application/json").await?;
        // Any failure here is final: download counts are a nicety.
        let doc: Value = resp
            .error_for_status()
            .map_err(|e| UpstreamError::Fatal(e.to_string()))?
            .json()
            .await
            .map_err(|e| UpstreamError::Fatal(e.to_string()))?;
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
    pub async fn post_raw(
        &self,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<(u16, String, Bytes), UpstreamError> {
        let Upstream::Http { registry, outbound, credentials } = self else {
            return Err(UpstreamError::Fatal("this upstream is a plugin; it has no audit endpoint".into()));
        };
        let url = format!("{}{path}", registry.host);
        let mut req =
            outbound.post(&url).body(body).credentials(credentials.as_ref()).describe(format!("POST {path} on registry {}", registry.name));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(ce) = content_encoding {
            req = req.header("content-encoding", ce);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let ct = resp.header("content-type").unwrap_or("application/json").to_string();
        let bytes = resp.bytes().await?;
        Ok((status, ct, bytes))
    }

    /// One page of the upstream's `/-/v1/search`: its result objects and its
    /// total. Plugin upstreams have no search: an empty page.
    pub async fn search(&self, text: &str, from: i64, size: i64) -> Result<(Vec<Value>, i64), UpstreamError> {
        let Upstream::Http { registry, outbound, credentials } = self else { return Ok((Vec::new(), 0)) };
        let base = format!("{}/-/v1/search", registry.host);
        let params = [("text", text.to_string()), ("from", from.to_string()), ("size", size.to_string())];
        let url = url::Url::parse_with_params(&base, &params)
            .map_err(|e| UpstreamError::Fatal(format!("the search URL of registry {}: {e}", registry.name)))?;
        let resp = outbound
            .get(url.as_str())
            .header("accept", "application/json")
            .credentials(credentials.as_ref())
            .max_bytes(outbound.max_body_bytes().min(SEARCH_MAX_BYTES), "the search answer limit")
            .send()
            .await?;
        let doc: Value = resp.error_for_status()?.json().await?;
        let objects = doc.get("objects").and_then(Value::as_array).cloned().unwrap_or_default();
        let total = doc.get("total").and_then(Value::as_i64).unwrap_or(objects.len() as i64);
        Ok((objects, total))
    }
}

/// Largest upstream search answer read (250 results are far below this).
const SEARCH_MAX_BYTES: u64 = 8 * 1024 * 1024;

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
            Err(IntegrityError::Mismatch) => {
                return Err(format!("integrity mismatch: upstream says {integrity}, the bytes are {}", digests.sri()))
            }
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
