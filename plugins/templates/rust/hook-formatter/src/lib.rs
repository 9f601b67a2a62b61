//! {{name}} (hook-formatter): turns a registry event into a chat message,
//! `{"channel": ..., "text": "alice published left-pad@1.0.0"}`.

use std::sync::OnceLock;

use cairn::plugin::types::{Event, Header, Outbound};
use exports::cairn::plugin::formatter::Guest as Formatter;

wit_bindgen::generate!({ path: "wit", world: "hook-formatter" });

/// `[plugins.config] channel = "#releases"`
static CHANNEL: OnceLock<String> = OnceLock::new();

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&cairn::plugin::host::config()).map_err(|e| e.to_string())?;
        let channel = config["channel"].as_str().ok_or("`channel` (a string) is missing")?;
        let _ = CHANNEL.set(channel.to_string());
        Ok(())
    }
}

impl Formatter for Plugin {
    fn format(event: Event) -> Result<Outbound, String> {
        let who = event.actor.as_deref().unwrap_or("someone");
        let what = match event.kind.as_str() {
            "package:publish" => "published",
            "package:unpublish" => "unpublished",
            "package:deprecate" => "deprecated",
            "package:dist-tag" => "moved a dist-tag of",
            "package:owner" => "changed the owners of",
            other => other,
        };
        let version = event.version.map(|v| format!("@{v}")).unwrap_or_default();
        let text = format!("{who} {what} {}{version}", event.package);
        let body = serde_json::json!({ "channel": CHANNEL.get(), "text": text });
        Ok(Outbound {
            body: body.to_string().into_bytes(),
            content_type: "application/json".into(),
            headers: vec![Header { name: "x-chat-source".into(), value: "cairn".into() }],
        })
    }
}

export!(Plugin);
