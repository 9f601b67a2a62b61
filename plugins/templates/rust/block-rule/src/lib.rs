//! {{name}} (block-rule): blocks package versions whose install scripts use
//! one of the configured words (say `curl` or `wget`), on publish and on sync.

use std::sync::OnceLock;

use cairn::plugin::host::{log, Level};
use cairn::plugin::types::{Verdict, VersionInfo};
use exports::cairn::plugin::rule::Guest as Rule;

wit_bindgen::generate!({ path: "wit", world: "block-rule" });

/// `[plugins.config] words = ["curl", "wget"]`
static WORDS: OnceLock<Vec<String>> = OnceLock::new();

fn load() -> Result<Vec<String>, String> {
    let config: serde_json::Value = serde_json::from_str(&cairn::plugin::host::config()).map_err(|e| e.to_string())?;
    let words = config.get("words").cloned().unwrap_or_else(|| serde_json::json!([]));
    serde_json::from_value(words).map_err(|e| format!("`words` must be a list of strings: {e}"))
}

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), String> {
        let words = load()?;
        log(Level::Info, &format!("blocking install scripts that use {}", words.join(", ")));
        let _ = WORDS.set(words);
        Ok(())
    }
}

impl Rule for Plugin {
    fn check(version: VersionInfo) -> Verdict {
        let manifest: serde_json::Value = serde_json::from_str(&version.manifest_json).unwrap_or_default();
        for hook in ["preinstall", "install", "postinstall"] {
            let script = manifest["scripts"][hook].as_str().unwrap_or("");
            if let Some(word) = WORDS.get().into_iter().flatten().find(|w| script.contains(w.as_str())) {
                return Verdict::Block(format!("{}@{}: its {hook} script uses {word}", version.name, version.version));
            }
        }
        Verdict::Accept
    }
}

export!(Plugin);
