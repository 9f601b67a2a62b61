//! `cloudevents_hook.wasm` (hook-formatter, built for `rich-hook-formatter`,
//! `cairn:plugin@0.1.1`): sends each registry event as a CloudEvents 1.0
//! event in structured mode (`application/cloudevents+json`), which event
//! routers and serverless platforms accept as is.
//!
//! ```toml
//! [plugins.config]
//! type_prefix = "com.example.registry"   # default "cairn"; `package:publish` → `<prefix>.package.publish`
//! source = "https://npm.example.com"     # default: the registry's public URL
//! ```
//!
//! A publish of `foo@1.0.0` by alice becomes
//!
//! ```json
//! {"specversion": "1.0", "id": "<delivery id>", "source": "https://npm.example.com",
//!  "type": "cairn.package.publish", "subject": "foo", "time": "2024-05-01T12:00:00.000Z",
//!  "datacontenttype": "application/json",
//!  "data": {"event": "package:publish", "name": "foo", "type": "package", "version": "1.0.0",
//!           "hookOwner": {"username": "bob"}, "actor": "alice", "change": {...},
//!           "packageUrl": "https://npm.example.com/foo", "payload": {<the package document>}}}
//! ```
//!
//! `id` is the delivery's id, the same on every retry, so receivers
//! deduplicate on (`source`, `id`) as the CloudEvents spec asks. `data`
//! follows npm's hook body.

use cairn_plugin_sdk::rich_hook_formatter::{Event, Guest, HookContext, Outbound, RichFormatter};
use cairn_plugin_sdk::Loaded;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The content type of a structured-mode CloudEvent in JSON.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_prefix")]
    type_prefix: String,
    #[serde(default)]
    source: Option<String>,
}

fn default_prefix() -> String {
    "cairn".to_string()
}

static CONFIG: Loaded<Config> = Loaded::new();

fn load() -> Result<Config, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if config.type_prefix.is_empty() || !config.type_prefix.chars().all(ok) {
        return Err(format!("cloudevents-hook: `type_prefix` must be letters, digits, '.', '_' or '-', got `{}`", config.type_prefix));
    }
    if config.source.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err("cloudevents-hook: `source` is empty (leave it out to use the registry's URL)".into());
    }
    Ok(config)
}

/// `package:dist-tag-rm` → `<prefix>.package.dist-tag-rm`.
fn event_type(prefix: &str, kind: &str) -> String {
    let kind: String = kind.chars().map(|c| if c == ':' { '.' } else { c }).collect();
    format!("{prefix}.{kind}")
}

fn cloud_event(config: &Config, event: &Event, context: &HookContext) -> Result<Value, String> {
    let source = config.source.clone().unwrap_or_else(|| context.registry_url.clone());
    if source.is_empty() {
        return Err("cloudevents-hook: no source (the host gave no registry URL; set `source`)".into());
    }
    let id = if context.delivery_id.is_empty() { format!("{}-{}", event.kind, event.time) } else { context.delivery_id.clone() };
    let change: Value = serde_json::from_str(&event.payload_json).unwrap_or_else(|_| json!({}));
    let payload = match context.package_json.as_deref() {
        Some(doc) => serde_json::from_str(doc).map_err(|e| format!("cloudevents-hook: the package document is not JSON: {e}"))?,
        None => Value::Null,
    };
    let data = json!({
        "event": event.kind,
        "name": event.package,
        "type": "package",
        "version": event.version,
        "hookOwner": {"username": context.hook_owner},
        "actor": event.actor,
        "change": change,
        "packageUrl": context.package_url,
        "payload": payload,
    });
    let mut ce = Map::new();
    ce.insert("specversion".into(), json!("1.0"));
    ce.insert("id".into(), json!(id));
    ce.insert("source".into(), json!(source));
    ce.insert("type".into(), json!(event_type(&config.type_prefix, &event.kind)));
    ce.insert("subject".into(), json!(event.package));
    if !event.time.is_empty() {
        ce.insert("time".into(), json!(event.time));
    }
    ce.insert("datacontenttype".into(), json!("application/json"));
    ce.insert("data".into(), data);
    Ok(Value::Object(ce))
}

struct CloudEventsHook;

impl Guest for CloudEventsHook {
    fn init() -> Result<(), String> {
        CONFIG.get_or_load(load).map(|_| ())
    }
}

impl RichFormatter for CloudEventsHook {
    fn format(event: Event, context: HookContext) -> Result<Outbound, String> {
        let ce = cloud_event(CONFIG.get_or_load(load)?, &event, &context)?;
        Ok(Outbound { body: ce.to_string().into_bytes(), content_type: CONTENT_TYPE.to_string(), headers: Vec::new() })
    }
}

cairn_plugin_sdk::export_rich_hook_formatter!(CloudEventsHook);

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            kind: "package:publish".into(),
            package: "@acme/foo".into(),
            version: Some("1.0.0".into()),
            actor: Some("alice".into()),
            time: "2024-05-01T12:00:00.000Z".into(),
            payload_json: r#"{"version":"1.0.0"}"#.into(),
        }
    }

    fn context() -> HookContext {
        HookContext {
            delivery_id: "d1".into(),
            attempt: 2,
            hook_id: "h1".into(),
            hook_owner: "bob".into(),
            hook_type: "scope".into(),
            hook_name: "@acme".into(),
            registry_url: "http://npm.example.com".into(),
            package_url: "http://npm.example.com/@acme/foo".into(),
            package_json: Some(r#"{"name":"@acme/foo"}"#.into()),
        }
    }

    #[test]
    fn structured_cloud_event() {
        let config = Config { type_prefix: "cairn".into(), source: None };
        let ce = cloud_event(&config, &event(), &context()).unwrap();
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!((ce["id"].as_str(), ce["source"].as_str()), (Some("d1"), Some("http://npm.example.com")));
        assert_eq!((ce["type"].as_str(), ce["subject"].as_str()), (Some("cairn.package.publish"), Some("@acme/foo")));
        assert_eq!(ce["time"], "2024-05-01T12:00:00.000Z");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["data"]["hookOwner"]["username"], "bob");
        assert_eq!(ce["data"]["payload"]["name"], "@acme/foo");
        assert_eq!(ce["data"]["change"]["version"], "1.0.0");
    }

    #[test]
    fn types_and_sources() {
        assert_eq!(event_type("com.example", "package:dist-tag-rm"), "com.example.package.dist-tag-rm");
        let config = Config { type_prefix: "x".into(), source: Some("urn:registry".into()) };
        let ce = cloud_event(&config, &event(), &HookContext { package_json: None, ..context() }).unwrap();
        assert_eq!((ce["source"].as_str(), &ce["data"]["payload"]), (Some("urn:registry"), &Value::Null));
        let none = Config { type_prefix: "x".into(), source: None };
        assert!(cloud_event(&none, &event(), &HookContext { registry_url: String::new(), ..context() }).is_err());
    }
}
