//! The shared state every request and worker sees.

use std::sync::Arc;

use crate::blob::BlobStore;
use crate::config::Config;
use crate::domain::downloads::DownloadCounter;
use crate::domain::packument::PackumentCache;
use crate::domain::tokens::TokenUsage;
use crate::plugins::Plugins;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub token_usage: TokenUsage,
    /// Failed password logins, per account and client address.
    pub login_limiter: crate::domain::login_limit::LoginLimiter,
    pub packuments: PackumentCache,
    /// Small tarballs in memory, by blob key.
    pub hot_tarballs: crate::domain::hot_tarballs::HotTarballs,
    pub downloads: DownloadCounter,
    pub plugins: Plugins,
    /// Wakes idle sync workers when a task is queued.
    pub sync_wakeup: tokio::sync::Notify,
    /// Signalled whenever a sync task ends.
    pub sync_done: tokio::sync::Notify,
    /// Proxy mode: upstream 404s remembered, and one fetch per name at a time.
    pub proxy: crate::domain::proxy::ProxyState,
    /// The outbound policy for upstream requests (`upstream_timeout_secs`,
    /// `max_body_bytes`); every request goes through `crate::outbound`.
    pub outbound: crate::outbound::Outbound,
    /// Upstreams that failed recently: proxy reads and search do not wait on them.
    pub upstream_outages: crate::domain::upstream::Outages,
    /// Set on SIGTERM/SIGINT: `/-/ready` answers 503 while in-flight work drains.
    pub draining: std::sync::atomic::AtomicBool,
    /// The web UI's package page: dependents and downloads per package, for a few seconds.
    pub web_extras: crate::domain::web_pages::PageExtras,
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, plugins: Plugins) -> Arc<App> {
        // The cache budget: all for packuments, or half of it for proxied documents in proxy mode.
        let budget = config.cache_max_bytes;
        let proxy_share = if config.sync_mode == crate::config::SyncMode::Proxy { budget / 2 } else { budget / 64 };
        // The web UI's package page extras (dependents, downloads): a sliver.
        let web_share = budget / 128;
        let packuments = PackumentCache::new(
            std::time::Duration::from_secs(config.packument_cache_ttl_secs),
            config.packument_cache_entries,
            budget - proxy_share - web_share,
        );
        let proxy = crate::domain::proxy::ProxyState::new(config.packument_cache_entries, proxy_share);
        let outbound = crate::outbound::Outbound::new(std::time::Duration::from_secs(config.upstream_timeout_secs), config.max_body_bytes);
        let login_limiter = crate::domain::login_limit::LoginLimiter::new(
            config.auth.login_max_failures,
            config.auth.login_max_failures_per_ip,
            std::time::Duration::from_secs(config.auth.login_window_secs),
        );
        let hot_tarballs = crate::domain::hot_tarballs::HotTarballs::new(config.tarball_cache_bytes);
        Arc::new(App {
            config,
            store,
            blobs,
            token_usage: TokenUsage::default(),
            login_limiter,
            packuments,
            hot_tarballs,
            downloads: DownloadCounter::default(),
            plugins,
            sync_wakeup: tokio::sync::Notify::new(),
            sync_done: tokio::sync::Notify::new(),
            proxy,
            outbound,
            upstream_outages: Default::default(),
            draining: Default::default(),
            web_extras: crate::domain::web_pages::PageExtras::new(web_share),
        })
    }

    pub fn is_admin_name(&self, name: &str) -> bool {
        self.config.auth.admins.iter().any(|a| a == name)
    }
}

impl App {
    /// Re-reads the config file's `[[plugins]]` and swaps in the new set.
    /// Other keys are not reloaded (they need a restart). On failure the old
    /// set stays loaded and the error says why.
    pub async fn reload_plugins(&self) -> Result<std::sync::Arc<crate::plugins::PluginSet>, String> {
        let mut effective = self.config.clone();
        if let Some(path) = &self.config.config_path {
            let fresh = Config::load(Some(path)).map_err(|e| e.to_string())?;
            effective.plugins = fresh.plugins;
        }
        let result = self.plugins.reload(effective).await;
        match &result {
            Ok(set) => tracing::info!(plugins = set.summaries().len(), "plugins reloaded"),
            Err(e) => tracing::error!(error = %e, "plugin reload failed; the previous plugins stay loaded"),
        }
        result
    }
}
