//! {{name}} (upstream-adapter): serves the packages listed in its
//! configuration, whose tarballs it downloads through the host's `fetch`
//! (only from hosts in the plugin's `allowed_hosts`). Replace `packument`
//! with a call to your own source: `fetch` a listing and build the document.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cairn::plugin::fetch::fetch;
use cairn::plugin::types::HttpRequest;
use exports::cairn::plugin::adapter::Guest as Adapter;

wit_bindgen::generate!({ path: "wit", world: "upstream-adapter" });

/// `[plugins.config.packages.NAME] "1.0.0" = "https://host/NAME-1.0.0.tgz"`
static PACKAGES: OnceLock<BTreeMap<String, BTreeMap<String, String>>> = OnceLock::new();

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&cairn::plugin::host::config()).map_err(|e| e.to_string())?;
        let packages = config.get("packages").cloned().unwrap_or_else(|| serde_json::json!({}));
        let packages = serde_json::from_value(packages).map_err(|e| format!("`packages` must map names to {{version = url}}: {e}"))?;
        let _ = PACKAGES.set(packages);
        Ok(())
    }
}

impl Adapter for Plugin {
    fn packument(name: String) -> Result<Option<String>, String> {
        let Some(versions) = PACKAGES.get().and_then(|p| p.get(&name)) else { return Ok(None) };
        let docs: serde_json::Map<String, serde_json::Value> = versions
            .iter()
            .map(|(v, url)| (v.clone(), serde_json::json!({ "name": name, "version": v, "dist": { "tarball": url } })))
            .collect();
        let latest = versions.keys().last().cloned().unwrap_or_default();
        let doc = serde_json::json!({ "name": name, "dist-tags": { "latest": latest }, "versions": docs });
        Ok(Some(doc.to_string()))
    }

    fn tarball(_name: String, _version: String, url: String) -> Result<Vec<u8>, String> {
        let response = fetch(&HttpRequest { method: "GET".into(), url: url.clone(), headers: vec![], body: None })?;
        match response.status {
            200 => Ok(response.body),
            status => Err(format!("GET {url}: status {status}")),
        }
    }
}

export!(Plugin);
