//! Loading: the one engine (pooling allocator when available, epoch ticker),
//! the on-disk cache of compiled components, the linkers of each world, and
//! building a plugin set from the configuration.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use sha2::Digest;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{auth, binsrc, block, hook, rich_hook, upstream, WIT_PACKAGE};
use super::epoch::EpochClock;
use super::host_imports::{HostState, Meta};
use super::inspect::{inspect, Inspection};
use super::plugin::{LoadedPlugin, PluginSet};
use super::pool::Pre;
use super::stats::Stats;
use crate::config::{Config, PluginConfig, PluginKind};

pub struct PluginRuntime {
    engine: Engine,
    clock: Arc<EpochClock>,
    pub pooling: bool,
    pub(super) cache_dir: PathBuf,
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
        let clock = EpochClock::start(&engine).context("starting the epoch thread")?;
        let linkers = Linkers::new(&engine)?;
        Ok(PluginRuntime { engine, clock, pooling, cache_dir, engine_hash, linkers })
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
        let pre = self.link(pc.kind, &component, &inspection)?;
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
            clock: self.clock.clone(),
            pre,
            warm: Mutex::new(Vec::new()),
            stats: Stats::default(),
        };
        // Init once now, so a bad config fails at load rather than on the first request.
        let first = plugin.instantiate().await.map_err(|f| anyhow!("{}", f.message))?;
        plugin.warm.lock().expect("warm pool lock").push(first);
        Ok(plugin)
    }

    /// Links `component` for the world of `kind` it was built for: a formatter
    /// exporting `rich-formatter` (0.1.1) binds to `rich-hook-formatter`, any
    /// other to `hook-formatter`; an upstream adapter exporting `binary-source`
    /// (0.1.1) to `binary-source-adapter`, any other to `upstream-adapter`.
    fn link(&self, kind: PluginKind, component: &Component, inspection: &Inspection) -> anyhow::Result<Pre> {
        let link_err = |e: wasmtime::Error| anyhow!("it cannot be linked (wrong world or contract version?): {e:#}");
        Ok(match kind {
            PluginKind::AuthPolicy => {
                Pre::Auth(auth::AuthPolicyPre::new(self.linkers.auth.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?)
            }
            PluginKind::BlockRule => {
                Pre::Block(block::BlockRulePre::new(self.linkers.block.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?)
            }
            PluginKind::UpstreamAdapter if inspection.exports_interface("binary-source") => Pre::BinarySource(
                binsrc::BinarySourceAdapterPre::new(self.linkers.upstream.instantiate_pre(component).map_err(link_err)?)
                    .map_err(link_err)?,
            ),
            PluginKind::UpstreamAdapter => Pre::Upstream(
                upstream::UpstreamAdapterPre::new(self.linkers.upstream.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?,
            ),
            PluginKind::HookFormatter if inspection.exports_interface("rich-formatter") => Pre::RichHook(
                rich_hook::RichHookFormatterPre::new(self.linkers.hook.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?,
            ),
            PluginKind::HookFormatter => {
                Pre::Hook(hook::HookFormatterPre::new(self.linkers.hook.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?)
            }
        })
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
        // A `[[binaries]]` source naming a plugin needs its `binary-source`
        // export; a `[[registries]]` type naming one, its `adapter`.
        for b in config.binaries.iter().filter(|b| config.is_plugin_source(b)) {
            if !plugins.iter().any(|p| p.name() == b.kind && p.is_binary_source()) {
                bail!("binary {:?}: plugin {:?} does not export {WIT_PACKAGE}/binary-source (built against 0.1.0?)", b.category, b.kind);
            }
        }
        for r in &config.registries {
            if plugins.iter().any(|p| p.name() == r.kind && p.is_binary_source()) {
                bail!("registry {:?}: plugin {:?} is a binary source (binary-source-adapter), it serves no packages", r.name, r.kind);
            }
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
        // `hook` and `upstream` also link the 0.1.1 worlds of their kinds
        // (`rich-hook-formatter`, `binary-source-adapter`): same imports.
        let mut hook_l = base(engine)?;
        hook::HookFormatter::add_to_linker::<_, HasSelf<_>>(&mut hook_l, |s| s)?;
        Ok(Linkers { auth: auth_l, block: block_l, upstream: upstream_l, hook: hook_l })
    }
}
