//! Per-plugin call statistics (calls, errors, recent latencies) and the
//! summary the admin API and `cairn plugin` show.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::plugin::LoadedPlugin;
use crate::config::OnError;

#[derive(Default)]
pub(super) struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    /// Recent call durations in microseconds.
    recent: Mutex<VecDeque<u32>>,
}

impl Stats {
    pub(super) fn record(&self, took: Duration, failed: bool) {
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

    /// An error the plugin reported itself (not a fault of the call).
    pub(super) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
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
}
