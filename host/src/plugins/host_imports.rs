//! What a guest may call: `host` (logging, its configuration) for every
//! plugin, `fetch` (limited to `allowed_hosts`) for upstream adapters, and the
//! sandboxed WASI context (no files, sockets or environment; captured stderr).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{auth, types as wit, upstream, Level};
use crate::config::{OnError, PluginKind};
use crate::outbound::{Credentials, Outbound};

/// Per-plugin facts the host functions need.
pub struct Meta {
    pub name: String,
    pub kind: PluginKind,
    pub path: PathBuf,
    pub config_json: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub allowed_hosts: Vec<String>,
    pub timeout: Duration,
    pub max_memory_bytes: usize,
    pub on_error: OnError,
}

pub struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: Limits,
    pub(super) meta: Arc<Meta>,
    pub(super) stderr: MemoryOutputPipe,
    /// The wall time the running call (or setup) was given, for fault messages.
    pub(super) budget: Duration,
}

/// The store's limits, counting the linear memory the instance holds.
pub struct Limits {
    pub(super) inner: StoreLimits,
    /// Bytes of linear memory, all memories together.
    pub(super) memory_bytes: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::Host for HostState {}

impl auth::cairn::plugin::host::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let plugin = self.meta.name.as_str();
        let message: String = message.chars().take(4096).collect();
        match level {
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    async fn config(&mut self) -> String {
        self.meta.config_json.clone()
    }

    async fn config_get(&mut self, key: String) -> Option<String> {
        self.meta.config.get(&key).map(|v| v.to_string())
    }
}

impl upstream::cairn::plugin::fetch::Host for HostState {
    /// Through `crate::outbound`: the plugin's timeout, a body cap of its
    /// memory limit (a larger body could not be handed to it anyway), and
    /// `allowed_hosts` checked on the URL and on every redirect hop.
    async fn fetch(&mut self, request: wit::HttpRequest) -> Result<wit::HttpResponse, String> {
        let meta = self.meta.clone();
        let allowed = |url: &url::Url| allowed(&meta, url);
        let url = url::Url::parse(&request.url).map_err(|e| format!("invalid url {:?}: {e}", crate::config::redact_url(&request.url)))?;
        allowed(&url)?;
        let method = http::Method::from_bytes(request.method.as_bytes()).map_err(|_| format!("invalid method {:?}", request.method))?;
        let outbound = Outbound::new(meta.timeout, meta.max_memory_bytes as u64);
        // User info in the URL is basic auth for that URL's origin only.
        let credentials = Credentials::for_registry(&request.url, None);
        let mut req = outbound
            .request(method, &request.url)
            .credentials(credentials.as_ref())
            .max_bytes(meta.max_memory_bytes as u64, "the plugin's memory limit")
            .guard(&allowed);
        for h in &request.headers {
            req = req.header(&h.name, &h.value);
        }
        if let Some(body) = request.body {
            req = req.body(body);
        }
        let resp = req.send().await.map_err(|e| format!("fetch failed: {e}"))?;
        let status = resp.status();
        let headers = resp.headers().map(|(name, value)| wit::Header { name: name.to_string(), value: value.to_string() }).collect();
        let body = resp.bytes().await.map_err(|e| format!("reading the response failed: {e}"))?.to_vec();
        Ok(wit::HttpResponse { status, headers, body })
    }
}

/// Whether `meta`'s plugin may fetch `url`: http(s), and its host (or
/// host:port) in `allowed_hosts`.
pub(super) fn allowed(meta: &Meta, url: &url::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("only http and https URLs may be fetched, not {}", url.scheme()));
    }
    let host = url.host_str().unwrap_or("");
    let host_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
    if !meta.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&host_port)) {
        return Err(format!("host {host_port} is not in allowed_hosts of plugin {}", meta.name));
    }
    Ok(())
}
