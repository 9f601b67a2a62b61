//! Measuring a plugin outside a server (`cairn plugin check`): a fresh
//! instance's start (instantiate + `init`), its first call on a sample input
//! of its kind, the linear memory it then holds, and the cost of a call on
//! the warm instance (what a server pays per call once it runs).

use std::time::{Duration, Instant};

use super::plugin::{Fault, LoadedPlugin};
use super::types;
use crate::config::PluginKind;

/// What one fresh instance cost.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Instantiate + `init`.
    pub start: Duration,
    /// The first call after `init`; None for upstream adapters, whose calls reach the network.
    pub first_call: Option<Duration>,
    /// Linear memory held after that call (or after `init`), in bytes.
    pub memory_bytes: usize,
    /// Mean of `WARM_CALLS` further calls on the same instance; None for upstream adapters.
    pub warm_call: Option<Duration>,
}

/// Calls on the warm instance that `warm_call` is the mean of.
pub const WARM_CALLS: u32 = 200;

impl LoadedPlugin {
    /// The wall-time budget of a call and the memory cap, as configured.
    pub fn limits(&self) -> (Duration, usize) {
        (self.meta.timeout, self.meta.max_memory_bytes)
    }

    /// Starts a fresh instance and makes one sample call of the plugin's kind on it.
    pub async fn probe(&self) -> Result<Probe, Fault> {
        let started = Instant::now();
        let fresh = self.instantiate().await?;
        let start = started.elapsed();
        let memory_after_init = fresh.store.data().limits.memory_bytes;
        {
            // The next call takes this instance: the pool is a stack.
            let mut pool = self.warm.lock().expect("warm pool lock");
            pool.clear();
            pool.push(fresh);
        }
        let started = Instant::now();
        let called = self.sample_call().await?;
        let first_call = started.elapsed();
        let memory_bytes =
            self.warm.lock().expect("warm pool lock").last().map_or(memory_after_init, |w| w.store.data().limits.memory_bytes);
        if !called {
            return Ok(Probe { start, first_call: None, memory_bytes, warm_call: None });
        }
        let started = Instant::now();
        for _ in 0..WARM_CALLS {
            self.sample_call().await?;
        }
        let warm_call = started.elapsed() / WARM_CALLS;
        Ok(Probe { start, first_call: Some(first_call), memory_bytes, warm_call: Some(warm_call) })
    }

    /// One call of the plugin's kind on a sample input; false when the kind has
    /// no call that stays off the network (upstream adapters).
    async fn sample_call(&self) -> Result<bool, Fault> {
        match self.kind() {
            PluginKind::AuthPolicy => self.authorize(types::Action::Read, Some(&sample_package()), &sample_caller()).await.map(|_| true),
            PluginKind::BlockRule => self.check(&sample_version()).await.map(|_| true),
            PluginKind::HookFormatter => self.format(&sample_event(), &sample_context()).await.map(|_| true),
            PluginKind::UpstreamAdapter => Ok(false),
        }
    }
}

fn sample_package() -> types::PackageRef {
    types::PackageRef { name: "@cairn-check/sample".into(), scope: Some("@cairn-check".into()), version: Some("1.0.0".into()) }
}

fn sample_caller() -> types::Caller {
    types::Caller {
        user: Some("cairn-check".into()),
        admin: false,
        token_readonly: false,
        token_automation: false,
        client_ip: "127.0.0.1".into(),
    }
}

fn sample_version() -> types::VersionInfo {
    types::VersionInfo {
        name: "cairn-check-sample".into(),
        version: "1.0.0".into(),
        manifest_json: r#"{"name":"cairn-check-sample","version":"1.0.0","license":"MIT"}"#.into(),
        tarball_size: 512,
        files: vec![types::FileEntry { path: "package/package.json".into(), size: 64 }],
        origin: types::Origin::Publish,
    }
}

fn sample_event() -> types::Event {
    types::Event {
        kind: "package:publish".into(),
        package: "cairn-check-sample".into(),
        version: Some("1.0.0".into()),
        actor: Some("cairn-check".into()),
        time: "2026-01-01T00:00:00Z".into(),
        payload_json: "{}".into(),
    }
}

fn sample_context() -> types::HookContext {
    types::HookContext {
        delivery_id: "00000000-0000-0000-0000-000000000000".into(),
        attempt: 1,
        hook_id: "sample".into(),
        hook_owner: "cairn-check".into(),
        hook_type: "package".into(),
        hook_name: "cairn-check-sample".into(),
        registry_url: "http://127.0.0.1:7001".into(),
        package_url: "http://127.0.0.1:7001/cairn-check-sample".into(),
        package_json: None,
    }
}
