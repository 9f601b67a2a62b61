//! A loaded plugin and the set of them, swapped as a whole on reload.

use std::sync::{Arc, Mutex};

use wasmtime::Engine;

use super::host_imports::Meta;
use super::pool::{Pre, Warm};
use super::stats::{PluginSummary, Stats};
use crate::config::{OnError, PluginKind};

/// A plugin call that went wrong on the plugin's side.
#[derive(Debug, Clone)]
pub struct Fault {
    pub message: String,
}

/// One compiled, linked plugin with its warm instances and statistics.
pub struct LoadedPlugin {
    pub(super) meta: Arc<Meta>,
    pub(super) hash: String,
    pub(super) wit_version: String,
    pub(super) engine: Engine,
    pub(super) clock: Arc<super::epoch::EpochClock>,
    pub(super) pre: Pre,
    pub(super) warm: Mutex<Vec<Warm>>,
    pub(super) stats: Stats,
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
    /// Whether this plugin may reach `url` (http(s), host in `allowed_hosts`):
    /// the rule of its `fetch`, also applied to what the host downloads for it.
    pub fn may_fetch(&self, url: &url::Url) -> Result<(), String> {
        super::host_imports::allowed(&self.meta, url)
    }
}

/// The loaded plugins, in configured order.
pub struct PluginSet {
    pub(super) plugins: Vec<Arc<LoadedPlugin>>,
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
