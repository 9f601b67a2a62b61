//! `chat_hook.wasm` (hook-formatter, built for `rich-hook-formatter`,
//! `cairn:plugin@0.1.1`): turns registry events into chat messages, in the
//! JSON shape Slack-style incoming webhooks (and the many services that copy
//! it) accept, with a link to the package.
//!
//! ```toml
//! [plugins.config]
//! username = "npm"                                 # default "cairn"
//! headers = { "X-Channel" = "#releases" }          # extra request headers
//! package_link = "https://web.example.com/package/{name}"   # optional; default: the package in the registry
//! ```
//!
//! A publish of `foo@1.0.0` by alice becomes
//!
//! ```json
//! {"text": "alice published foo@1.0.0: https://npm.example.com/foo", "username": "npm",
//!  "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*alice* published <https://npm.example.com/foo|foo@1.0.0>"}},
//!             {"type": "section", "text": {"type": "mrkdwn", "text": "> The description"}},
//!             {"type": "context", "elements": [{"type": "mrkdwn", "text": "package:publish · 2024-05-01T12:00:00Z · hook of bob"}]}]}
//! ```
//!
//! sent as `application/json`. The description (from the package document
//! the host passes) is left out when there is none.

use std::collections::BTreeMap;

use cairn_plugin_sdk::rich_hook_formatter::{Event, Guest, Header, HookContext, Outbound, RichFormatter};
use cairn_plugin_sdk::Loaded;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_username")]
    username: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// A link template; `{name}` becomes the package name.
    #[serde(default)]
    package_link: Option<String>,
}

fn default_username() -> String {
    "cairn".to_string()
}

static CONFIG: Loaded<Config> = Loaded::new();

fn load() -> Result<Config, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    for (name, value) in &config.headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(format!("chat-hook: `headers`: `{name}` is not a valid header name"));
        }
        if name.eq_ignore_ascii_case("content-type") {
            return Err("chat-hook: `headers`: the content type is always application/json".into());
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!("chat-hook: `headers`: the value of `{name}` has control characters"));
        }
    }
    if let Some(link) = &config.package_link {
        if !(link.starts_with("http://") || link.starts_with("https://")) {
            return Err(format!("chat-hook: `package_link` must be an http:// or https:// URL, got `{link}`"));
        }
    }
    Ok(config)
}

/// The event's payload field `key` as text, if it is a string.
fn payload_str<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str)
}

/// `(plain, markdown)` sentences describing `event`; in the markdown the
/// target links to `link` when there is one.
fn describe(event: &Event, link: Option<&str>) -> (String, String) {
    let payload: Value = serde_json::from_str(&event.payload_json).unwrap_or(Value::Null);
    let target = match &event.version {
        Some(version) => format!("{}@{version}", event.package),
        None => event.package.clone(),
    };
    let message = payload_str(&payload, "message").filter(|m| !m.is_empty()).map(one_line);
    let tag = payload_str(&payload, "tag").map(one_line);
    // \u{1}A and \u{1}T stand for the actor and the target until the end
    // (`one_line` keeps them out of the event's own text).
    let template = match (event.kind.as_str(), tag) {
        ("package:publish", _) => "\u{1}A published \u{1}T".to_string(),
        ("package:unpublish", _) => "\u{1}A unpublished \u{1}T".to_string(),
        ("package:deprecate", _) => match message {
            Some(message) => format!("\u{1}A deprecated \u{1}T: {message}"),
            None => "\u{1}A deprecated \u{1}T".to_string(),
        },
        ("package:dist-tag", Some(tag)) if event.version.is_some() => {
            format!("\u{1}A tagged \u{1}T as {tag}")
        }
        ("package:dist-tag", _) => "\u{1}A changed the dist-tags of \u{1}T".to_string(),
        ("package:owner", _) => "\u{1}A changed the owners of \u{1}T".to_string(),
        (kind, _) => format!("\u{1}A: {} on \u{1}T", one_line(kind)),
    };
    let actor = one_line(event.actor.as_deref().unwrap_or("someone"));
    let target = one_line(&target);
    let plain = template.replace("\u{1}A", &actor).replace("\u{1}T", &target);
    let target_md = match link {
        Some(link) => format!("<{}|{}>", escape(link), escape(&target).replace('|', "¦")),
        None => format!("`{}`", escape(&target)),
    };
    let markdown = escape(&template).replace("\u{1}A", &format!("*{}*", escape(&actor))).replace("\u{1}T", &target_md);
    (plain, markdown)
}

/// `text` with control characters (newlines included) turned into spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Escapes the three characters Slack-style markup reserves.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Where the message links to: the configured template, else the package in the registry.
fn link(config: &Config, event: &Event, context: &HookContext) -> Option<String> {
    match &config.package_link {
        Some(template) => Some(template.replace("{name}", &event.package)),
        None if context.package_url.is_empty() => None,
        None => Some(context.package_url.clone()),
    }
}

/// The package's description, from the document the host passed.
fn description(context: &HookContext) -> Option<String> {
    let doc: Value = serde_json::from_str(context.package_json.as_deref()?).ok()?;
    let text = doc.get("description").and_then(Value::as_str).map(one_line)?;
    let text: String = text.chars().take(300).collect();
    (!text.trim().is_empty()).then_some(text)
}

fn format(config: &Config, event: &Event, context: &HookContext) -> Outbound {
    let link = link(config, event, context);
    let (text, markdown) = describe(event, link.as_deref());
    let text = match &link {
        Some(link) => format!("{text}: {link}"),
        None => text,
    };
    let mut footer = if event.time.is_empty() { event.kind.clone() } else { format!("{} · {}", event.kind, event.time) };
    if !context.hook_owner.is_empty() {
        footer.push_str(&format!(" · hook of {}", escape(&one_line(&context.hook_owner))));
    }
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": markdown}})];
    if let Some(d) = description(context) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("> {}", escape(&d))}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]}));
    let body = json!({"text": text, "username": config.username, "blocks": blocks});
    Outbound {
        body: body.to_string().into_bytes(),
        content_type: "application/json".to_string(),
        headers: config.headers.iter().map(|(name, value)| Header { name: name.clone(), value: value.clone() }).collect(),
    }
}

struct ChatHook;

impl Guest for ChatHook {
    fn init() -> Result<(), String> {
        CONFIG.get_or_load(load).map(|_| ())
    }
}

impl RichFormatter for ChatHook {
    fn format(event: Event, context: HookContext) -> Result<Outbound, String> {
        Ok(format(CONFIG.get_or_load(load)?, &event, &context))
    }
}

cairn_plugin_sdk::export_rich_hook_formatter!(ChatHook);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, version: Option<&str>, actor: Option<&str>, payload: &str) -> Event {
        Event {
            kind: kind.into(),
            package: "foo".into(),
            version: version.map(Into::into),
            actor: actor.map(Into::into),
            time: "2024-05-01T12:00:00Z".into(),
            payload_json: payload.into(),
        }
    }

    fn context(doc: Option<&str>) -> HookContext {
        HookContext {
            delivery_id: "d1".into(),
            attempt: 1,
            hook_id: "h1".into(),
            hook_owner: "bob".into(),
            hook_type: "package".into(),
            hook_name: "foo".into(),
            registry_url: "http://npm.example.com".into(),
            package_url: "http://npm.example.com/foo".into(),
            package_json: doc.map(Into::into),
        }
    }

    fn config(package_link: Option<&str>) -> Config {
        Config { username: "cairn".into(), headers: [("X-A".into(), "b".into())].into(), package_link: package_link.map(Into::into) }
    }

    #[test]
    fn publish_message() {
        let doc = r#"{"name": "foo", "description": "Does <things>"}"#;
        let out = format(&config(None), &event("package:publish", Some("1.0.0"), Some("alice"), "{}"), &context(Some(doc)));
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["text"], "alice published foo@1.0.0: http://npm.example.com/foo");
        assert_eq!(body["username"], "cairn");
        assert_eq!(body["blocks"][0]["text"]["text"], "*alice* published <http://npm.example.com/foo|foo@1.0.0>");
        assert_eq!(body["blocks"][1]["text"]["text"], "> Does &lt;things&gt;");
        assert_eq!(body["blocks"][2]["elements"][0]["text"], "package:publish · 2024-05-01T12:00:00Z · hook of bob");
        assert_eq!(out.content_type, "application/json");
        assert_eq!(out.headers.len(), 1);
    }

    #[test]
    fn configured_link_and_no_document() {
        let out = format(&config(Some("https://web.example.com/p/{name}")), &event("package:publish", None, None, "{}"), &context(None));
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["blocks"][0]["text"]["text"], "*someone* published <https://web.example.com/p/foo|foo>");
        assert_eq!(body["blocks"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn other_events() {
        let text = |e: Event| describe(&e, None).0;
        assert_eq!(
            text(event("package:deprecate", Some("1.0.0"), Some("a"), r#"{"message":"use bar"}"#)),
            "a deprecated foo@1.0.0: use bar"
        );
        assert_eq!(text(event("package:owner", None, None, "")), "someone changed the owners of foo");
        let (_, markdown) = describe(&event("x:y", None, Some("<b>"), "{}"), None);
        assert_eq!(markdown, "*&lt;b&gt;*: x:y on `foo`");
    }
}
