//! A plugin source: `[[binaries]] type` names an upstream-adapter plugin that
//! exports `binary-source` (`cairn:plugin@0.1.1`). The plugin lists each
//! directory; the sync downloads the files itself, from the URLs it gave,
//! through the plugin's `allowed_hosts` (see [`Source::may_fetch`]), so file
//! bytes never pass through the plugin.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{BinaryConfig, PluginKind};
use crate::domain::App;
use crate::outbound;
use crate::plugins::{types, LoadedPlugin};

use super::node::{self, Item};

/// The plugin behind a binary, held for one sync (a reload meanwhile does not
/// change it under the walk).
pub struct Source {
    plugin: Arc<LoadedPlugin>,
}

/// The plugin source of `cfg`: None for a built-in source; an error when its
/// plugin is not loaded (a reload removed it) or exports no `binary-source`.
pub fn source(app: &App, cfg: &BinaryConfig) -> Result<Option<Source>, String> {
    if !app.config.is_plugin_source(cfg) {
        return Ok(None);
    }
    let set = app.plugins.current();
    let plugin = set
        .get(&cfg.kind)
        .filter(|p| p.kind() == PluginKind::UpstreamAdapter)
        .ok_or_else(|| format!("binary {}: plugin {} is not loaded", cfg.category, cfg.kind))?;
    if !plugin.is_binary_source() {
        return Err(format!("binary {}: plugin {} does not export cairn:plugin/binary-source", cfg.category, cfg.kind));
    }
    Ok(Some(Source { plugin: plugin.clone() }))
}

impl Source {
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Lists the directory `path` (`/` or `/a/b/`); None when the upstream has
    /// none. `sums` becomes the checksums the plugin gave (`sha256:<hex>`), by
    /// entry name, as hex.
    pub async fn list(&self, path: &str, sums: &mut HashMap<String, String>) -> Result<Option<Vec<Item>>, outbound::Error> {
        sums.clear();
        let entries = self
            .plugin
            .binary_list(path)
            .await
            .map_err(|f| outbound::Error::Decode { what: format!("plugin {} listing {path}", self.plugin.name()), why: f.message })?;
        let Some(entries) = entries else { return Ok(None) };
        Ok(Some(entries.into_iter().filter_map(|e| item(e, sums)).collect()))
    }

    /// The plugin's `allowed_hosts` rule, for every URL a download goes to.
    pub fn may_fetch(&self, url: &url::Url) -> Result<(), String> {
        self.plugin.may_fetch(url)
    }
}

fn item(e: types::BinaryEntry, sums: &mut HashMap<String, String>) -> Option<Item> {
    if !node::usable(&e.name) {
        return None;
    }
    if let Some(hex) = e.checksum.as_deref().and_then(|c| c.strip_prefix("sha256:")) {
        sums.insert(e.name.clone(), hex.to_ascii_lowercase());
    }
    Some(Item { is_dir: e.is_dir, size: if e.is_dir { None } else { e.size }, date: e.date.unwrap_or_default(), url: e.url, name: e.name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_items_and_checksums() {
        let e = |name: &str, is_dir: bool, checksum: Option<&str>| types::BinaryEntry {
            name: name.into(),
            is_dir,
            url: format!("http://up.test/{name}"),
            size: Some(3),
            date: Some("d".into()),
            checksum: checksum.map(str::to_string),
        };
        let mut sums = HashMap::new();
        let hex = "AB".repeat(32);
        let file = item(e("a.tgz", false, Some(&format!("sha256:{hex}"))), &mut sums).unwrap();
        assert_eq!((file.size, file.date.as_str(), file.url.as_str()), (Some(3), "d", "http://up.test/a.tgz"));
        assert_eq!(sums.get("a.tgz"), Some(&hex.to_ascii_lowercase()));
        let dir = item(e("v1/", true, None), &mut sums).unwrap();
        assert_eq!(dir.size, None);
        assert!(item(e("../", true, None), &mut sums).is_none());
        assert_eq!(sums.len(), 1);
    }
}
