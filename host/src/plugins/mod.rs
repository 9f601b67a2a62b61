//! The WebAssembly plugin runtime: loads components (auth policies, block
//! rules, upstream adapters, hook formatters), runs them sandboxed and swaps
//! the whole set atomically on reload.
//!
//! Invariants:
//! - One `Engine` per process; each plugin is compiled once and its native
//!   code cached on disk, keyed by the wasm's sha256 and the engine's
//!   compatibility hash, so restarts load in milliseconds.
//! - Guests get no files, no sockets, no environment, no inherited stdio. Their
//!   stderr is captured per instance and logged when they fail. Only upstream
//!   adapters get `fetch`, checked against their `allowed_hosts`.
//! - Every call runs under a wall-time deadline (epochs) and a memory cap. A
//!   trap, timeout, memory exhaustion or malformed result is a [`Fault`]; the
//!   plugin's `on_error` decides what it means. A faulted instance is dropped.
//! - Instances are reused between calls (warm pool per plugin) and dropped on any fault.
//! - The WIT-generated types never leave this module: callers use the plain
//!   host types of [`types`], converted at this edge.
//!
//! Files: `bindings` (the one `bindgen!`), `types` (host types and their
//! conversions), `host_imports` (what a guest may call), `load` (engine,
//! compile cache, linkers, loading a set), `inspect` (kind and contract
//! version of a component), `pool` (warm instances, deadlines, faults),
//! `calls` (one method per export), `stats`, `plugin` (a loaded plugin, the set),
//! `inputs` (a call's input as data, for the admin test endpoint and `cairn
//! plugin test`), `probe` (a fresh instance's start, first call and memory, for `cairn plugin check`).

mod bindings;
mod calls;
mod epoch;
mod host_imports;
pub mod inputs;
mod inspect;
mod load;
mod plugin;
mod pool;
mod probe;
mod stats;
pub mod types;

pub use bindings::WIT_VERSION;
pub use inspect::{inspect, Inspection};
pub use load::PluginRuntime;
pub use plugin::{Fault, LoadedPlugin, PluginSet};
pub use pool::setup_budget;
pub use probe::{Probe, WARM_CALLS};
pub use stats::PluginSummary;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, OnError, PluginKind};

/// What the plugins said about a request.
#[derive(Debug)]
pub enum Refusal {
    /// A plugin denied, with its reason.
    Denied { plugin: String, reason: String },
    /// A plugin failed and its `on_error` is `deny`.
    Failed { plugin: String, message: String },
}

/// The live plugin set, swapped atomically on reload.
pub struct Plugins {
    runtime: Arc<PluginRuntime>,
    current: ArcSwap<PluginSet>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Plugins {
    /// Loads the configured plugins; any failure is an error naming the plugin.
    pub async fn load(config: &Config) -> anyhow::Result<Plugins> {
        let runtime = Arc::new(PluginRuntime::new(config.plugin_cache_dir())?);
        let set = runtime.load_set(config).await?;
        Ok(Plugins { runtime, current: ArcSwap::from_pointee(set), reload_lock: tokio::sync::Mutex::new(()) })
    }

    pub fn current(&self) -> Arc<PluginSet> {
        self.current.load_full()
    }

    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    /// Builds a new set from `config` off the request path and swaps it in.
    /// On failure the old set stays and the error says why.
    pub async fn reload(&self, config: Config) -> Result<Arc<PluginSet>, String> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let set = self.runtime.load_set(&config).await.map_err(|e| format!("{e:#}"))?;
        let set = Arc::new(set);
        self.current.store(set.clone());
        Ok(set)
    }

    /// Runs the auth-policy plugins in order; the first deny wins.
    pub async fn authorize(&self, action: types::Action, package: Option<types::PackageRef>, caller: types::Caller) -> Result<(), Refusal> {
        let set = self.current();
        let policies: Vec<_> = set.of_kind(PluginKind::AuthPolicy).collect();
        if policies.is_empty() {
            return Ok(());
        }
        // Converted once for all the policies.
        let (action, package, caller) =
            (action.into(), package.map(bindings::types::PackageRef::from), bindings::types::Caller::from(caller));
        {
            for plugin in policies {
                match plugin.authorize_wit(action, package.as_ref(), &caller).await {
                    Ok(bindings::types::Decision::Allow) => {}
                    Ok(bindings::types::Decision::Deny(reason)) => {
                        return Err(Refusal::Denied { plugin: plugin.name().to_string(), reason })
                    }
                    Err(fault) => {
                        if plugin.on_error() == OnError::Deny {
                            return Err(Refusal::Failed { plugin: plugin.name().to_string(), message: fault.message });
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// Runs the block-rule plugins in order; the first block wins.
    pub async fn check_version(&self, info: types::VersionInfo) -> Result<(), Refusal> {
        let set = self.current();
        let rules: Vec<_> = set.of_kind(PluginKind::BlockRule).collect();
        if rules.is_empty() {
            return Ok(());
        }
        let info = bindings::types::VersionInfo::from(info);
        {
            for plugin in rules {
                match plugin.check_wit(&info).await {
                    Ok(bindings::types::Verdict::Accept) => {}
                    Ok(bindings::types::Verdict::Block(reason)) => {
                        return Err(Refusal::Denied { plugin: plugin.name().to_string(), reason })
                    }
                    Err(fault) => {
                        if plugin.on_error() == OnError::Deny {
                            return Err(Refusal::Failed { plugin: plugin.name().to_string(), message: fault.message });
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// Whether any auth-policy plugin is loaded (the read path skips building a caller otherwise).
    pub fn has_auth_policies(&self) -> bool {
        self.current.load().of_kind(PluginKind::AuthPolicy).next().is_some()
    }

    /// Whether any block-rule plugin is loaded (so callers can skip listing tarball files).
    pub fn has_block_rules(&self) -> bool {
        self.current().of_kind(PluginKind::BlockRule).next().is_some()
    }
}
