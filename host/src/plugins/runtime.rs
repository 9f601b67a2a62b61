//! Engine, compilation cache, loading, sandboxed calls and statistics.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use sha2::Digest;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{auth, block, hook, types, upstream, Level, WIT_PACKAGE, WIT_VERSION};
use crate::config::{Config, OnError, PluginConfig, PluginKind};

/// Epoch ticks: the deadline granularity.
const TICK: Duration = Duration::from_millis(5);
/// Idle instances kept per plugin.
const MAX_WARM: usize = 16;
/// An instance is retired after this many calls, bounding leaks inside guests.
const MAX_USES: u64 = 10_000;
const STDERR_CAPACITY: usize = 64 * 1024;
const MAX_REASON: usize = 1024;

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
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    meta: Arc<Meta>,
    stderr: MemoryOutputPipe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

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
    async fn fetch(&mut self, request: types::HttpRequest) -> Result<types::HttpResponse, String> {
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
                .filter_map(|(k, v)| Some(types::Header { name: k.to_string(), value: v.to_str().ok()?.to_string() }))
                .collect();
            let body = resp.bytes().await.map_err(|e| format!("reading the response failed: {e}"))?.to_vec();
            Ok(types::HttpResponse { status, headers, body })
        }
        .await
    }
}

fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().build().expect("an HTTP client"))
}

/// A plugin call that went wrong on the plugin's side.
#[derive(Debug, Clone)]
pub struct Fault {
    pub message: String,
}

enum Pre {
    Auth(auth::AuthPolicyPre<HostState>),
    Block(block::BlockRulePre<HostState>),
    Upstream(upstream::UpstreamAdapterPre<HostState>),
    Hook(hook::HookFormatterPre<HostState>),
}

enum Bound {
    Auth(auth::AuthPolicy),
    Block(block::BlockRule),
    Upstream(upstream::UpstreamAdapter),
    Hook(hook::HookFormatter),
}

struct Warm {
    store: Store<HostState>,
    bound: Bound,
    uses: u64,
}

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    /// Recent call durations in microseconds.
    recent: Mutex<VecDeque<u32>>,
}

impl Stats {
    fn record(&self, took: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = self.recent.lock().expect("stats lock");
        if recent.len() == 2048 {
            recent.pop_front();
        }
        recent.push_back(took.as_micros().min(u32::MAX as u128) as u32);
    }

    fn percentile_ms(&self, p: f64) -> Option<f64> {
        let mut v: Vec<u32> = self.recent.lock().expect("stats lock").iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
        Some(v[idx] as f64 / 1000.0)
    }
}

pub struct LoadedPlugin {
    meta: Arc<Meta>,
    hash: String,
    wit_version: String,
    engine: Engine,
    pre: Pre,
    warm: Mutex<Vec<Warm>>,
    stats: Stats,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub kind: &'static str,
    pub path: String,
    pub hash: String,
    pub wit_version: String,
    pub timeout_ms: u64,
    pub max_memory_mb: u64,
    pub on_error: &'static str,
    pub calls: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.meta.name
    }
    pub fn kind(&self) -> PluginKind {
        self.meta.kind
    }
    pub fn on_error(&self) -> OnError {
        self.meta.on_error
    }

    pub fn summary(&self) -> PluginSummary {
        PluginSummary {
            name: self.meta.name.clone(),
            kind: self.meta.kind.as_str(),
            path: self.meta.path.display().to_string(),
            hash: self.hash.clone(),
            wit_version: self.wit_version.clone(),
            timeout_ms: self.meta.timeout.as_millis() as u64,
            max_memory_mb: (self.meta.max_memory_bytes / (1024 * 1024)) as u64,
            on_error: match self.meta.on_error {
                OnError::Deny => "deny",
                OnError::Allow => "allow",
            },
            calls: self.stats.calls.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            p50_ms: self.stats.percentile_ms(0.50),
            p99_ms: self.stats.percentile_ms(0.99),
        }
    }

    fn new_store(&self) -> Store<HostState> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new().stderr(stderr.clone()).build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.meta.max_memory_bytes)
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState { wasi, table: ResourceTable::new(), limits, meta: self.meta.clone(), stderr },
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store
    }

    fn deadline_ticks(&self) -> u64 {
        (self.meta.timeout.as_millis() as u64).div_ceil(TICK.as_millis() as u64) + 1
    }

    /// A fresh instance with `init` already called. Setup gets at least a
    /// second: it is a one-time cost per instance, not the plugin's decision.
    async fn instantiate(&self) -> Result<Warm, Fault> {
        let mut store = self.new_store();
        store.set_epoch_deadline(self.deadline_ticks().max(1000 / TICK.as_millis() as u64));
        let result: wasmtime::Result<(Bound, Result<(), String>)> = async {
            Ok(match &self.pre {
                Pre::Auth(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Auth(b), r)
                }
                Pre::Block(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Block(b), r)
                }
                Pre::Upstream(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Upstream(b), r)
                }
                Pre::Hook(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Hook(b), r)
                }
            })
        }
        .await;
        match result {
            Ok((bound, Ok(()))) => Ok(Warm { store, bound, uses: 0 }),
            Ok((_, Err(message))) => Err(Fault { message: format!("init failed: {message}") }),
            Err(e) => Err(self.fault(&store, &e)),
        }
    }

    fn fault(&self, store: &Store<HostState>, e: &wasmtime::Error) -> Fault {
        let what = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!("timed out after {} ms", self.meta.timeout.as_millis()),
            _ if format!("{e:#}").contains("forcing trap when growing memory") => {
                format!("exceeded its memory limit of {} MiB", self.meta.max_memory_bytes / (1024 * 1024))
            }
            _ => format!("trapped: {}", first_line(&format!("{e:#}"))),
        };
        let stderr = String::from_utf8_lossy(&store.data().stderr.contents()).trim().to_string();
        let stderr: String = stderr.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
        let message = if stderr.is_empty() { what } else { format!("{what}; stderr: {stderr}") };
        Fault { message }
    }

    /// Takes a warm instance (or makes one) with the deadline set.
    async fn take(&self, started: Instant) -> Result<Warm, Fault> {
        let popped = self.warm.lock().expect("warm pool lock").pop();
        let mut warm = match popped {
            Some(w) => w,
            None => match self.instantiate().await {
                Ok(w) => w,
                Err(fault) => {
                    self.stats.record(started.elapsed(), true);
                    tracing::warn!(plugin = %self.meta.name, error = %fault.message, "plugin failed to start");
                    return Err(fault);
                }
            },
        };
        warm.store.set_epoch_deadline(self.deadline_ticks());
        Ok(warm)
    }

    /// Records the call's outcome and returns the instance to the pool unless it faulted.
    fn settle<R>(&self, started: Instant, mut warm: Warm, outcome: wasmtime::Result<R>, validate: impl FnOnce(&R) -> Result<(), String>) -> Result<R, Fault> {
        let result = match outcome {
            Ok(value) => match validate(&value) {
                Ok(()) => Ok(value),
                Err(why) => Err(Fault { message: format!("returned a malformed result: {why}") }),
            },
            Err(e) => Err(self.fault(&warm.store, &e)),
        };
        self.stats.record(started.elapsed(), result.is_err());
        match &result {
            Ok(_) => {
                warm.uses += 1;
                let stderr_full = warm.store.data().stderr.contents().len() > STDERR_CAPACITY / 2;
                if warm.uses < MAX_USES && !stderr_full {
                    let mut pool = self.warm.lock().expect("warm pool lock");
                    if pool.len() < MAX_WARM {
                        pool.push(warm);
                    }
                }
            }
            Err(fault) => {
                tracing::warn!(plugin = %self.meta.name, kind = self.meta.kind.as_str(), error = %fault.message, "plugin call failed");
            }
        }
        result
    }

    pub async fn authorize(&self, action: types::Action, package: Option<&types::PackageRef>, caller: &types::Caller) -> Result<types::Decision, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Auth(b) => b.cairn_plugin_policy().call_authorize(&mut warm.store, action, package, caller).await,
            _ => Err(wasmtime::Error::msg("not an auth-policy plugin")),
        };
        self.settle(started, warm, outcome, |d| match d {
            types::Decision::Deny(reason) => check_reason(reason),
            types::Decision::Allow => Ok(()),
        })
    }

    pub async fn check(&self, info: &types::VersionInfo) -> Result<types::Verdict, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Block(b) => b.cairn_plugin_rule().call_check(&mut warm.store, info).await,
            _ => Err(wasmtime::Error::msg("not a block-rule plugin")),
        };
        self.settle(started, warm, outcome, |v| match v {
            types::Verdict::Block(reason) => check_reason(reason),
            types::Verdict::Accept => Ok(()),
        })
    }

    /// The upstream's packument of `name` (validated as a JSON object naming it), or None.
    pub async fn packument(&self, name: &str) -> Result<Option<serde_json::Value>, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Upstream(b) => b.cairn_plugin_adapter().call_packument(&mut warm.store, name).await,
            _ => Err(wasmtime::Error::msg("not an upstream-adapter plugin")),
        };
        let raw = self.settle(started, warm, outcome, |_| Ok(()))?;
        match raw {
            Err(message) => Err(self.reported(message)),
            Ok(None) => Ok(None),
            Ok(Some(json)) => {
                let value: serde_json::Value = serde_json::from_str(&json)
                    .map_err(|e| Fault { message: format!("returned a malformed packument: {e}") })?;
                if value.get("name").and_then(|n| n.as_str()) != Some(name) || !value.get("versions").is_some_and(|v| v.is_object()) {
                    return Err(Fault { message: format!("returned a packument that is not an object with name {name:?} and versions") });
                }
                Ok(Some(value))
            }
        }
    }

    pub async fn tarball(&self, name: &str, version: &str, url: &str) -> Result<Vec<u8>, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Upstream(b) => b.cairn_plugin_adapter().call_tarball(&mut warm.store, name, version, url).await,
            _ => Err(wasmtime::Error::msg("not an upstream-adapter plugin")),
        };
        let raw = self.settle(started, warm, outcome, |_| Ok(()))?;
        raw.map_err(|message| self.reported(message))
    }

    /// An error the plugin returned itself: counted, and logged like a fault.
    fn reported(&self, message: String) -> Fault {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let message: String = message.chars().take(2000).collect();
        tracing::warn!(plugin = %self.meta.name, error = %message, "plugin reported an error");
        Fault { message: format!("reported an error: {message}") }
    }

    pub async fn format(&self, event: &types::Event) -> Result<types::Outbound, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Hook(b) => b.cairn_plugin_formatter().call_format(&mut warm.store, event).await,
            _ => Err(wasmtime::Error::msg("not a hook-formatter plugin")),
        };
        let raw = self.settle(started, warm, outcome, |r| match r {
            Ok(out) => {
                http::HeaderValue::from_str(&out.content_type).map_err(|_| format!("invalid content type {:?}", out.content_type))?;
                for h in &out.headers {
                    http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| format!("invalid header name {:?}", h.name))?;
                    http::HeaderValue::from_str(&h.value).map_err(|_| format!("invalid value for header {}", h.name))?;
                }
                Ok(())
            }
            Err(_) => Ok(()),
        })?;
        raw.map_err(|message| self.reported(message))
    }
}

impl LoadedPlugin {
    /// Average cost of an auth-policy decision: on a fresh instance each time
    /// (instantiate + init + call) and on one reused instance.
    pub async fn bench_authorize(&self, calls: u32) -> Result<(Duration, Duration), Fault> {
        let package = types::PackageRef { name: "@acme/bench".into(), scope: Some("@acme".into()), version: Some("1.0.0".into()) };
        let caller = types::Caller { user: Some("alice".into()), admin: false, token_readonly: false, token_automation: false, client_ip: "127.0.0.1".into() };
        let started = Instant::now();
        for _ in 0..calls {
            let mut warm = self.instantiate().await?;
            self.bench_call(&mut warm, &package, &caller).await?;
        }
        let fresh = started.elapsed() / calls.max(1);
        let mut warm = self.instantiate().await?;
        self.bench_call(&mut warm, &package, &caller).await?;
        let started = Instant::now();
        for _ in 0..calls {
            self.bench_call(&mut warm, &package, &caller).await?;
        }
        let reused = started.elapsed() / calls.max(1);
        Ok((fresh, reused))
    }

    async fn bench_call(&self, warm: &mut Warm, package: &types::PackageRef, caller: &types::Caller) -> Result<(), Fault> {
        warm.store.set_epoch_deadline(self.deadline_ticks());
        match &warm.bound {
            Bound::Auth(b) => b
                .cairn_plugin_policy()
                .call_authorize(&mut warm.store, types::Action::Publish, Some(package), caller)
                .await
                .map(|_| ())
                .map_err(|e| self.fault(&warm.store, &e)),
            _ => Err(Fault { message: "not an auth-policy plugin".into() }),
        }
    }
}

fn check_reason(reason: &str) -> Result<(), String> {
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(format!("a reason must be 1-{MAX_REASON} bytes, got {}", reason.len()));
    }
    if reason.chars().any(|c| c.is_control()) {
        return Err("a reason may not contain control characters".into());
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(500).collect()
}

/// The loaded plugins, in configured order.
pub struct PluginSet {
    plugins: Vec<Arc<LoadedPlugin>>,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

impl PluginSet {
    pub fn of_kind(&self, kind: PluginKind) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.iter().filter(move |p| p.kind() == kind)
    }
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.name() == name)
    }
    pub fn summaries(&self) -> Vec<PluginSummary> {
        self.plugins.iter().map(|p| p.summary()).collect()
    }
}

/// What a component is, read from its exports.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub kind: PluginKind,
    pub wit_version: String,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

fn interface_kind(interface: &str) -> Option<PluginKind> {
    match interface {
        "policy" => Some(PluginKind::AuthPolicy),
        "rule" => Some(PluginKind::BlockRule),
        "adapter" => Some(PluginKind::UpstreamAdapter),
        "formatter" => Some(PluginKind::HookFormatter),
        _ => None,
    }
}

/// Reads kind and contract version from a component's exports.
pub fn inspect(engine: &Engine, component: &Component) -> anyhow::Result<Inspection> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
    let mut found = None;
    for e in &exports {
        let Some(rest) = e.strip_prefix(&format!("{WIT_PACKAGE}/")) else { continue };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if let Some(kind) = interface_kind(interface) {
            found = Some((kind, version.to_string()));
        }
    }
    let Some((kind, wit_version)) = found else {
        bail!("it exports no {WIT_PACKAGE} interface (policy, rule, adapter or formatter); exports: {}", exports.join(", "));
    };
    let (major_minor, host_major_minor) = (major_minor(&wit_version), major_minor(WIT_VERSION));
    if major_minor != host_major_minor {
        bail!("it was built against {WIT_PACKAGE}@{wit_version}; this Cairn supports {WIT_PACKAGE}@{}.x", host_major_minor);
    }
    if !exports.iter().any(|e| e == "init") {
        bail!("it does not export init");
    }
    Ok(Inspection { kind, wit_version, exports, imports })
}

fn major_minor(v: &str) -> String {
    let mut parts = v.split('.');
    format!("{}.{}", parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

pub struct PluginRuntime {
    engine: Engine,
    pub pooling: bool,
    cache_dir: PathBuf,
    engine_hash: String,
    linkers: Linkers,
}

struct Linkers {
    auth: Linker<HostState>,
    block: Linker<HostState>,
    upstream: Linker<HostState>,
    hook: Linker<HostState>,
}

fn engine_config(pooling: bool) -> EngineConfig {
    let mut c = EngineConfig::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(256);
        pool.total_core_instances(1024);
        pool.total_memories(512);
        pool.total_tables(1024);
        pool.max_memory_size(4 << 30);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

impl PluginRuntime {
    /// One engine for the process: the pooling allocator when it can reserve its
    /// memory, on-demand allocation otherwise. Starts the epoch ticker.
    pub fn new(cache_dir: PathBuf) -> anyhow::Result<PluginRuntime> {
        let (engine, pooling) = match Engine::new(&engine_config(true)) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "pooling allocator unavailable; using on-demand allocation");
                (Engine::new(&engine_config(false)).map_err(|e| anyhow!("creating the wasm engine: {e:#}"))?, false)
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("cairn-wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                match ticker.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            })
            .context("starting the epoch thread")?;
        let linkers = Linkers::new(&engine)?;
        Ok(PluginRuntime { engine, pooling, cache_dir, engine_hash, linkers })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from the cache) the component at `path`.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<(Component, String)> {
        if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
            bail!("it is not a WebAssembly file");
        }
        if bytes[4..8] != [0x0d, 0x00, 0x01, 0x00] {
            bail!("it is a core WebAssembly module, not a component (build it for wasm32-wasip2)");
        }
        let hash = hex::encode(sha2::Sha256::digest(bytes));
        let cached = self.cache_dir.join(format!("{hash}-{}.cwasm", self.engine_hash));
        if cached.exists() {
            // SAFETY: the cache directory is Cairn's own; the file was written by
            // `precompile_component` of an engine with the same compatibility hash.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(c) => return Ok((c, hash)),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), path = %cached.display(), "ignoring a bad cached plugin"),
            }
        }
        let native = self.engine.precompile_component(bytes).map_err(|e| anyhow!("it does not compile: {e:#}"))?;
        std::fs::create_dir_all(&self.cache_dir)?;
        let tmp = self.cache_dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, &native)?;
        std::fs::rename(&tmp, &cached)?;
        // SAFETY: as above; written just now by this engine.
        let component = unsafe { Component::deserialize_file(&self.engine, &cached) }?;
        Ok((component, hash))
    }

    async fn load_one(&self, base: &Config, pc: &PluginConfig) -> anyhow::Result<LoadedPlugin> {
        let path = base.plugin_path(pc);
        let bytes = std::fs::read(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        // Compiling is CPU work: off the async threads.
        let (component, hash) = tokio::task::block_in_place(|| self.compile(&bytes))?;
        let inspection = inspect(&self.engine, &component)?;
        if inspection.kind != pc.kind {
            bail!("it is a {} plugin, but is configured as kind = {:?}", inspection.kind.as_str(), pc.kind.as_str());
        }
        let link_err = |e: wasmtime::Error| anyhow!("it cannot be linked (wrong world or contract version?): {e:#}");
        let pre = match pc.kind {
            PluginKind::AuthPolicy => Pre::Auth(auth::AuthPolicyPre::new(self.linkers.auth.instantiate_pre(&component).map_err(link_err)?).map_err(link_err)?),
            PluginKind::BlockRule => Pre::Block(block::BlockRulePre::new(self.linkers.block.instantiate_pre(&component).map_err(link_err)?).map_err(link_err)?),
            PluginKind::UpstreamAdapter => Pre::Upstream(upstream::UpstreamAdapterPre::new(self.linkers.upstream.instantiate_pre(&component).map_err(link_err)?).map_err(link_err)?),
            PluginKind::HookFormatter => Pre::Hook(hook::HookFormatterPre::new(self.linkers.hook.instantiate_pre(&component).map_err(link_err)?).map_err(link_err)?),
        };
        let config_value = serde_json::to_value(&pc.config)?;
        let config = config_value.as_object().cloned().unwrap_or_default();
        let meta = Arc::new(Meta {
            name: pc.name.clone(),
            kind: pc.kind,
            path,
            config_json: config_value.to_string(),
            config,
            allowed_hosts: pc.allowed_hosts.clone(),
            timeout: Duration::from_millis(pc.timeout_ms()),
            max_memory_bytes: (pc.max_memory_mb() as usize) << 20,
            on_error: pc.on_error(),
        });
        let plugin = LoadedPlugin {
            meta,
            hash,
            wit_version: inspection.wit_version,
            engine: self.engine.clone(),
            pre,
            warm: Mutex::new(Vec::new()),
            stats: Stats::default(),
        };
        // Init once now, so a bad config fails at load rather than on the first request.
        let first = plugin.instantiate().await.map_err(|f| anyhow!("{}", f.message))?;
        plugin.warm.lock().expect("warm pool lock").push(first);
        Ok(plugin)
    }

    /// Loads every configured plugin; the first failure is an error naming it.
    pub async fn load_set(&self, config: &Config) -> anyhow::Result<PluginSet> {
        let mut plugins = Vec::new();
        for pc in &config.plugins {
            let started = Instant::now();
            let plugin = self
                .load_one(config, pc)
                .await
                .map_err(|e| anyhow!("plugin {:?} ({}): {e:#}", pc.name, config.plugin_path(pc).display()))?;
            tracing::info!(plugin = %pc.name, kind = pc.kind.as_str(), hash = %&plugin.hash[..12], took_ms = started.elapsed().as_secs_f64() * 1000.0, "plugin loaded");
            plugins.push(Arc::new(plugin));
        }
        Ok(PluginSet { plugins, loaded_at: chrono::Utc::now() })
    }
}

impl Linkers {
    fn new(engine: &Engine) -> anyhow::Result<Linkers> {
        fn base(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
            let mut l = Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut l)?;
            Ok(l)
        }
        let mut auth_l = base(engine)?;
        auth::AuthPolicy::add_to_linker::<_, HasSelf<_>>(&mut auth_l, |s| s)?;
        let mut block_l = base(engine)?;
        block::BlockRule::add_to_linker::<_, HasSelf<_>>(&mut block_l, |s| s)?;
        let mut upstream_l = base(engine)?;
        upstream::UpstreamAdapter::add_to_linker::<_, HasSelf<_>>(&mut upstream_l, |s| s)?;
        let mut hook_l = base(engine)?;
        hook::HookFormatter::add_to_linker::<_, HasSelf<_>>(&mut hook_l, |s| s)?;
        Ok(Linkers { auth: auth_l, block: block_l, upstream: upstream_l, hook: hook_l })
    }
}

/// For `cairn plugin check`: compile without caching and describe the component.
pub fn check_file(path: &Path) -> anyhow::Result<Inspection> {
    let runtime = PluginRuntime::new(std::env::temp_dir().join(format!("cairn-plugin-check-{}", std::process::id())))?;
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let (component, _) = runtime.compile(&bytes)?;
    let _ = std::fs::remove_dir_all(&runtime.cache_dir);
    inspect(&runtime.engine, &component)
}
