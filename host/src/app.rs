//! The shared state every request and worker sees.

use std::sync::Arc;

use crate::blob::BlobStore;
use crate::config::Config;
use crate::domain::downloads::DownloadCounter;
use crate::domain::packument::PackumentCache;
use crate::domain::tokens::TokenUsage;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub token_usage: TokenUsage,
    pub packuments: PackumentCache,
    pub downloads: DownloadCounter,
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Arc<App> {
        let packuments = PackumentCache::new(
            std::time::Duration::from_secs(config.packument_cache_ttl_secs),
            config.packument_cache_entries,
        );
        Arc::new(App { config, store, blobs, token_usage: TokenUsage::default(), packuments, downloads: DownloadCounter::default() })
    }

    pub fn is_admin_name(&self, name: &str) -> bool {
        self.config.auth.admins.iter().any(|a| a == name)
    }
}
