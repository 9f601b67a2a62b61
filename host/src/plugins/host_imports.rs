//! What a guest may call: `host` (logging, its configuration) for every
//! plugin, `fetch` (limited to `allowed_hosts`) for upstream adapters, and the
//! sandboxed WASI context (no files, sockets or environment; captured stderr).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{auth, types as wit, upstream, Level};
use crate::config::{OnError, PluginKind};

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
    pub(super) limits: StoreLimits,
    pub(super) meta: Arc<Meta>,
    pub(super) stderr: MemoryOutputPipe,
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
    async fn fetch(&mut self, request: wit::HttpRequest) -> Result<wit::HttpResponse, String> {
        let url = reqwest::Url::parse(&request.url).map_err(|e| format!("invalid url {:?}: {e}", request.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("only http and https URLs may be fetched, not {}", url.scheme()));
        }
        let host = url.host_str().unwrap_or("");
        let host_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        if !self.meta.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&host_port)) {
            return Err(format!("host {host_port} is not in allowed_hosts of plugin {}", self.meta.name));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| format!("invalid method {:?}", request.method))?;
        let timeout = self.meta.timeout;
        async move {
            let mut req = http_client().request(method, url).timeout(timeout);
            for h in &request.headers {
                req = req.header(h.name.as_str(), h.value.as_str());
            }
            if let Some(body) = request.body {
                req = req.body(body);
            }
            let resp = req.send().await.map_err(|e| format!("fetch failed: {e}"))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some(wit::Header { name: k.to_string(), value: v.to_str().ok()?.to_string() }))
                .collect();
            let body = resp.bytes().await.map_err(|e| format!("reading the response failed: {e}"))?.to_vec();
            Ok(wit::HttpResponse { status, headers, body })
        }
        .await
    }
}

fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().build().expect("an HTTP client"))
}
