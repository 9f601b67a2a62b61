//! Hook-formatter plugins across contract versions: a `chat_hook.wasm` built
//! against `cairn:plugin@0.1.0` (a committed build, `tests/fixtures/plugins/`)
//! still loads and formats deliveries; the 0.1.1 samples get the delivery's
//! context (hook owner, package document, links): `chat_hook.wasm` links to
//! the package and `cloudevents_hook.wasm` sends CloudEvents 1.0; and a
//! formatter that traps, loops or answers garbage (`hostile_hook.wasm`) fails
//! only its own deliveries, named on them.

use std::path::PathBuf;

use cairn_e2e::hook_receiver::{Received, Receiver};
use cairn_e2e::publish::*;
use cairn_e2e::samples::CHAT_HOOK;
use cairn_e2e::{both_backends, plugin, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(
    formatters_built_against_0_1_0_still_work,
    chat_hook_links_the_package,
    cloudevents_hook_sends_cloud_events,
    faulting_formatters_fail_only_their_deliveries,
);

const SECRET: &str = "s3cret-value-42";
const HOOKS: &str = "[hooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_base_ms = 50\ntimeout_ms = 2000\nmax_attempts = 2\n";

/// `chat_hook.wasm` as built from the plugins of `cairn:plugin@0.1.0`.
fn old_chat_hook() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/chat_hook-0.1.0.wasm");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

fn formatter_toml(name: &str, path: &std::path::Path, timeout_ms: u64, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\nkind = \"hook-formatter\"\npath = {:?}\ntimeout_ms = {timeout_ms}\n[plugins.config]\n{config}\n",
        path.display().to_string()
    )
}

async fn start(backend: Backend, plugins: &[String]) -> Server {
    let tail = format!("{HOOKS}\n{}", plugins.join("\n"));
    Server::start_with(ServerOptions::new(backend).tail(&tail)).await
}

/// A `package` hook on `name` to `endpoint`, formatted by `formatter`.
async fn add_hook(s: &Server, token: &str, name: &str, endpoint: &str, formatter: &str) -> Value {
    let body = json!({"type": "package", "name": name, "endpoint": endpoint, "secret": SECRET, "formatter": formatter});
    let (status, hook) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(token), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "create hook: {hook}");
    hook
}

async fn wait_for(r: &Receiver, n: usize) -> Vec<Received> {
    poll(30, || async {
        let got = r.received();
        (got.len() >= n).then_some(got)
    })
    .await
    .unwrap_or_else(|| panic!("expected {n} deliveries, got {}", r.received().len()))
}

async fn deliveries(s: &Server, token: &str, hook: &Value) -> Vec<Value> {
    let path = format!("/-/npm/v1/hooks/hook/{}/deliveries", hook["id"].as_str().unwrap());
    let (status, list) = s.get(&path, Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["objects"].as_array().cloned().unwrap_or_default()
}

/// The plugin summaries of `/-/admin/plugins`, by name.
async fn plugin_summary(s: &Server, admin: &str, name: &str) -> Value {
    let (status, body) = s.get("/-/admin/plugins", Some(admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["plugins"].as_array().unwrap().iter().find(|p| p["name"] == json!(name)).cloned().unwrap_or(Value::Null)
}

async fn formatters_built_against_0_1_0_still_work(backend: Backend) {
    let config = "username = \"old-bot\"\nheaders = { \"X-Channel\" = \"#releases\" }";
    let s = start(backend, &[formatter_toml("old-chat", &old_chat_hook(), 2000, config)]).await;
    let admin = s.add_admin("admin", PW).await;
    let alice = s.add_user("alice", PW).await;
    assert_eq!(plugin_summary(&s, &admin, "old-chat").await["wit_version"], json!("0.1.0"));
    let r = Receiver::start(0).await;
    add_hook(&s, &alice, "foo", &r.url, "old-chat").await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let got = wait_for(&r, 1).await;
    // 0.1.0's message, built from the event alone (no context, so no link).
    let msg = got[0].json();
    assert_eq!(msg["text"], json!("alice published foo@1.0.0"), "{msg}");
    assert_eq!(msg["blocks"][0]["text"]["text"], json!("*alice* published `foo@1.0.0`"), "{msg}");
    assert_eq!(msg["username"], json!("old-bot"));
    assert_eq!((got[0].content_type.as_deref(), got[0].header("x-channel")), (Some("application/json"), Some("#releases")));
    assert!(got[0].signed_with(SECRET) && got[0].delivery_id.is_some(), "{got:?}");
    // The admin test endpoint calls it the same way.
    let input = json!({"kind": "package:publish", "package": "foo", "version": "2.0.0", "actor": "bob"});
    let (status, out) = s.call(Method::POST, "/-/admin/plugins/old-chat/test", Some(&admin), Some(&input)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out["body"].as_str().unwrap().contains("bob published foo@2.0.0"), "{out}");
}

/// Once per build of the sample (Rust, JavaScript, ...).
async fn chat_hook_links_the_package(backend: Backend) {
    for (label, file) in CHAT_HOOK {
        eprintln!("chat hook: {label} ({file}.wasm)");
        chat_hook_links(backend, file).await;
    }
}

async fn chat_hook_links(backend: Backend, file: &str) {
    let plugins = [
        formatter_toml("chat", &plugin(file), 2000, "username = \"registry-bot\""),
        formatter_toml("chat-web", &plugin(file), 2000, "package_link = \"https://web.example.com/package/{name}\""),
    ];
    let s = start(backend, &plugins).await;
    let admin = s.add_admin("admin", PW).await;
    let alice = s.add_user("alice", PW).await;
    assert_eq!(plugin_summary(&s, &admin, "chat").await["wit_version"], json!("0.1.1"));
    let (r, r2) = (Receiver::start(0).await, Receiver::start(0).await);
    add_hook(&s, &alice, "@acme/foo", &r.url, "chat").await;
    add_hook(&s, &alice, "@acme/foo", &r2.url, "chat-web").await;
    publish_ok(&s, &alice, "@acme/foo", "1.0.0").await;
    let got = wait_for(&r, 1).await;
    let msg = got[0].json();
    let link = format!("{}/@acme/foo", s.base);
    assert_eq!(msg["text"], json!(format!("alice published @acme/foo@1.0.0: {link}")), "{msg}");
    assert_eq!(msg["blocks"][0]["text"]["text"], json!(format!("*alice* published <{link}|@acme/foo@1.0.0>")), "{msg}");
    // The footer names the hook's owner, from the context.
    let footer = msg["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"].as_str().unwrap().to_string();
    assert!(footer.starts_with("package:publish · ") && footer.ends_with(" · hook of alice"), "{msg}");
    assert_eq!(msg["username"], json!("registry-bot"));
    assert!(got[0].signed_with(SECRET));
    // The link points at the package document this registry serves.
    let (status, doc) = s.get("/@acme/foo", None).await;
    assert_eq!((status, &doc["name"]), (StatusCode::OK, &json!("@acme/foo")));
    let msg2 = wait_for(&r2, 1).await[0].json();
    assert_eq!(msg2["blocks"][0]["text"]["text"], json!("*alice* published <https://web.example.com/package/@acme/foo|@acme/foo@1.0.0>"));
    // With a document (the test endpoint takes one), the description is quoted.
    let input = json!({"kind": "package:publish", "package": "bar", "version": "1.0.0", "actor": "bob",
        "document": {"name": "bar", "description": "Bars & <things>"}});
    let (status, out) = s.call(Method::POST, "/-/admin/plugins/chat/test", Some(&admin), Some(&input)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["blocks"][1]["text"]["text"], json!("> Bars &amp; &lt;things&gt;"), "{body}");
}

async fn cloudevents_hook_sends_cloud_events(backend: Backend) {
    let s = start(backend, &[formatter_toml("ce", &plugin("cloudevents_hook"), 2000, "type_prefix = \"com.example.registry\"")]).await;
    let alice = s.add_user("alice", PW).await;
    let r = Receiver::start(1).await;
    add_hook(&s, &alice, "foo", &r.url, "ce").await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    // The first attempt is refused (503); the retry carries the same event id.
    let got = wait_for(&r, 2).await;
    let (first, ce) = (got[0].json(), got[1].json());
    assert_eq!(first, ce, "a retry sends the same bytes");
    assert_eq!(got[1].content_type.as_deref(), Some("application/cloudevents+json"));
    assert!(got[1].signed_with(SECRET));
    assert_eq!(ce["specversion"], json!("1.0"));
    assert_eq!(ce["id"].as_str(), got[1].delivery_id.as_deref(), "id is the delivery id: {ce}");
    assert_eq!(ce["source"], json!(s.base));
    assert_eq!(ce["type"], json!("com.example.registry.package.publish"));
    assert_eq!(ce["subject"], json!("foo"));
    assert!(ce["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{ce}");
    assert_eq!(ce["datacontenttype"], json!("application/json"));
    let data = &ce["data"];
    assert_eq!((&data["event"], &data["name"], &data["version"]), (&json!("package:publish"), &json!("foo"), &json!("1.0.0")), "{ce}");
    assert_eq!(data["hookOwner"]["username"], json!("alice"));
    assert_eq!(data["actor"], json!("alice"));
    assert_eq!(data["packageUrl"], json!(format!("{}/foo", s.base)));
    // The package document as it was when the event was fanned out.
    assert_eq!(data["payload"]["name"], json!("foo"), "{ce}");
    assert!(data["payload"]["versions"]["1.0.0"].is_object(), "{ce}");
}

/// Three hostile formatters (trap, loop, garbage) and one that works. Each
/// hostile one fails its own delivery (after `max_attempts`), with the
/// plugin's name in the error; the working hook and the server go on.
async fn faulting_formatters_fail_only_their_deliveries(backend: Backend) {
    let hostile = plugin("hostile_hook");
    let plugins = [
        formatter_toml("h-trap", &hostile, 2000, "mode = \"trap\"\nonly = \"foo\""),
        formatter_toml("h-loop", &hostile, 300, "mode = \"loop\""),
        formatter_toml("h-garbage", &hostile, 2000, "mode = \"garbage\""),
        formatter_toml("chat", &plugin("chat_hook"), 2000, ""),
    ];
    let s = start(backend, &plugins).await;
    let alice = s.add_user("alice", PW).await;
    let (bad, good, other) = (Receiver::start(0).await, Receiver::start(0).await, Receiver::start(0).await);
    let mut hooks = Vec::new();
    for formatter in ["h-trap", "h-loop", "h-garbage"] {
        hooks.push((formatter, add_hook(&s, &alice, "foo", &bad.url, formatter).await));
    }
    add_hook(&s, &alice, "foo", &good.url, "chat").await;
    // The same trapping plugin formats another package's events (it misbehaves only for foo).
    add_hook(&s, &alice, "bar", &other.url, "h-trap").await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "bar", "1.0.0").await;

    assert!(wait_for(&good, 1).await[0].json()["text"].as_str().unwrap().contains("foo@1.0.0"));
    let got = wait_for(&other, 1).await;
    assert_eq!(got[0].json()["hostile"], json!("ok"));
    assert_eq!(got[0].json()["hookOwner"], json!("alice"));
    for (formatter, hook) in &hooks {
        let failed = poll(30, || async {
            let list = deliveries(&s, &alice, hook).await;
            list.into_iter().find(|d| d["state"] == json!("failed"))
        })
        .await
        .unwrap_or_else(|| panic!("{formatter}: no failed delivery; log:\n{}", s.log()));
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("formatter {formatter} failed")), "{formatter}: {failed}");
        let why = match *formatter {
            "h-trap" => "trapped",
            "h-loop" => "timed out",
            _ => "malformed result",
        };
        assert!(error.contains(why) && error.contains("gave up after 2 attempts"), "{formatter}: {failed}");
        assert_eq!(failed["attempts"], json!(2), "{failed}");
    }
    assert!(bad.received().is_empty(), "nothing a faulting formatter was asked for is sent");
    // The server and the other hooks go on.
    let (status, _) = s.get("/foo", None).await;
    assert_eq!(status, StatusCode::OK);
    publish_ok(&s, &alice, "foo", "1.0.1").await;
    let got = wait_for(&good, 2).await;
    assert!(got[1].json()["text"].as_str().unwrap().contains("foo@1.0.1") && got[1].signed_with(SECRET));
    assert!(s.log().contains("h-loop"), "the fault is logged with the plugin's name");
}
