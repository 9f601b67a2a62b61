//! `cairn plugin test`: cases written as data, run against a loaded plugin.
//!
//! A cases file is TOML (`[[case]]` tables) or JSON (a list, or `{"case": [...]}`).
//! Every case has an optional `name`, the input of its kind, `expect` (the
//! answer) and optional checks of that answer:
//!
//! The input is that of `POST /-/admin/plugins/:name/test` (`plugins::inputs`):
//!
//! | kind             | input                                                                   | expect                       |
//! |------------------|-------------------------------------------------------------------------|------------------------------|
//! | auth-policy      | `action`, `package`, `version`, `user`, `admin`, `readonly`, `automation`, `ip` | `allow`, `deny`      |
//! | block-rule       | `manifest` (with `name`, `version`), `files` (`[path, size]`), `tarball_size`, `origin` | `accept`, `block` |
//! | hook-formatter   | `kind`, `package`, `version`, `actor`, `payload`, `document`            | `ok`, `error`                |
//! | upstream-adapter | `package` (its packument), + `version`, `url` (a tarball), or `binary_path` | `found`, `missing`, `ok`, `error` |
//!
//! Any kind may also `expect = "fault"` (a trap, timeout, memory exhaustion
//! or malformed answer). `reason_contains` checks the reason, error or fault
//! message; formatters check `content_type`, `headers` and `body_contains`;
//! adapters `versions` (packument), `size` (tarball) and `entries` (list).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, bail};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::PluginKind;
use crate::plugins::inputs::{AuthInput, BlockInput, HookInput, UpstreamInput};
use crate::plugins::{types, LoadedPlugin};

/// What every case may say about the answer.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Checks {
    name: Option<String>,
    expect: String,
    reason_contains: Option<String>,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
    body_contains: Vec<String>,
    versions: Vec<String>,
    entries: Vec<String>,
    size: Option<u64>,
}

const CHECK_KEYS: &[&str] =
    &["name", "expect", "reason_contains", "content_type", "headers", "body_contains", "versions", "entries", "size"];

/// A plugin's answer: its outcome (`allow`, `block`, `fault`, ...), the
/// reason or message that came with it, and data for the finer checks.
struct Answer {
    outcome: &'static str,
    detail: Option<String>,
    data: Value,
}

impl Answer {
    fn of(outcome: &'static str) -> Answer {
        Answer { outcome, detail: None, data: Value::Null }
    }
    fn with(outcome: &'static str, detail: String) -> Answer {
        Answer { outcome, detail: Some(detail), data: Value::Null }
    }
    fn fault(fault: crate::plugins::Fault) -> Answer {
        Answer::with("fault", fault.message)
    }
}

/// Runs every case of `file`; prints one line per case (and the details of a
/// failure) and returns (passed, failed).
pub async fn run(plugin: &LoadedPlugin, file: &Path) -> anyhow::Result<(usize, usize)> {
    let cases = read_cases(file)?;
    if cases.is_empty() {
        bail!("{} holds no case", file.display());
    }
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in cases.into_iter().enumerate() {
        let (checks, input) = split(case).map_err(|e| anyhow!("{}: case {}: {e}", file.display(), i + 1))?;
        let label = checks.name.clone().unwrap_or_else(|| format!("case {}", i + 1));
        let answer = call(plugin, &input).await.map_err(|e| anyhow!("{}: {label}: {e}", file.display()))?;
        match judge(&checks, &answer) {
            Ok(()) => {
                passed += 1;
                println!("ok    {label}");
            }
            Err(why) => {
                failed += 1;
                println!("FAIL  {label}");
                println!("  input:    {}", Value::Object(input));
                println!("  expected: {}", expected(&checks));
                println!("  actual:   {}", actual(&answer));
                println!("  ({why})");
            }
        }
    }
    Ok((passed, failed))
}

fn read_cases(file: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
    let value: Value = if file.extension().is_some_and(|x| x == "json") {
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?
    } else {
        let table: toml::Table = text.parse().map_err(|e| anyhow!("{}: {e}", file.display()))?;
        serde_json::to_value(table)?
    };
    match value {
        Value::Array(cases) => Ok(cases),
        Value::Object(mut o) if o.len() == 1 && o.contains_key("case") => match o.remove("case") {
            Some(Value::Array(cases)) => Ok(cases),
            _ => bail!("{}: `case` must be a list of tables", file.display()),
        },
        _ => bail!("{}: expected [[case]] tables (TOML) or a list of cases (JSON)", file.display()),
    }
}

/// Separates the checks of a case from its input.
fn split(case: Value) -> anyhow::Result<(Checks, serde_json::Map<String, Value>)> {
    let Value::Object(mut input) = case else { bail!("a case must be a table") };
    let mut checks = serde_json::Map::new();
    for key in CHECK_KEYS {
        if let Some(v) = input.remove(*key) {
            checks.insert(key.to_string(), v);
        }
    }
    let checks: Checks = serde_json::from_value(Value::Object(checks))?;
    if checks.expect.is_empty() {
        bail!("`expect` is missing");
    }
    Ok((checks, input))
}

async fn call(plugin: &LoadedPlugin, input: &serde_json::Map<String, Value>) -> anyhow::Result<Answer> {
    let value = Value::Object(input.clone());
    Ok(match plugin.kind() {
        PluginKind::AuthPolicy => {
            let input: AuthInput = serde_json::from_value(value)?;
            let (action, package, caller) = input.into_call(IpAddr::from([127, 0, 0, 1])).map_err(|e| anyhow!(e))?;
            match plugin.authorize(action, package.as_ref(), &caller).await {
                Ok(types::Decision::Allow) => Answer::of("allow"),
                Ok(types::Decision::Deny(reason)) => Answer::with("deny", reason),
                Err(fault) => Answer::fault(fault),
            }
        }
        PluginKind::BlockRule => {
            let input: BlockInput = serde_json::from_value(value)?;
            match plugin.check(&input.into_version().map_err(|e| anyhow!(e))?).await {
                Ok(types::Verdict::Accept) => Answer::of("accept"),
                Ok(types::Verdict::Block(reason)) => Answer::with("block", reason),
                Err(fault) => Answer::fault(fault),
            }
        }
        PluginKind::HookFormatter => {
            let input: HookInput = serde_json::from_value(value)?;
            let (event, context) = input.into_event("admin", "http://127.0.0.1:7001", "2026-01-01T00:00:00.000Z".into());
            match plugin.format(&event, &context).await {
                Ok(out) => {
                    let headers: BTreeMap<String, String> =
                        out.headers.into_iter().map(|h| (h.name.to_ascii_lowercase(), h.value)).collect();
                    let body = String::from_utf8_lossy(&out.body).into_owned();
                    Answer {
                        outcome: "ok",
                        detail: None,
                        data: json!({"content_type": out.content_type, "headers": headers, "body": body}),
                    }
                }
                Err(fault) => error_or_fault(fault),
            }
        }
        PluginKind::UpstreamAdapter => upstream_call(plugin, serde_json::from_value(value)?).await,
    })
}

/// A fault whose message says the plugin returned an error itself is that error.
fn error_or_fault(fault: crate::plugins::Fault) -> Answer {
    match fault.message.strip_prefix("reported an error: ") {
        Some(message) => Answer::with("error", message.to_string()),
        None => Answer::fault(fault),
    }
}

async fn upstream_call(plugin: &LoadedPlugin, i: UpstreamInput) -> Answer {
    match (i.binary_path, i.version, i.url) {
        (Some(path), _, _) => match plugin.binary_list(&path).await {
            Ok(Some(entries)) => {
                Answer { outcome: "found", detail: None, data: json!(entries.iter().map(|e| &e.name).collect::<Vec<_>>()) }
            }
            Ok(None) => Answer::of("missing"),
            Err(fault) => error_or_fault(fault),
        },
        (None, Some(version), Some(url)) => match plugin.tarball(&i.package, &version, &url).await {
            Ok(bytes) => Answer { outcome: "ok", detail: None, data: json!({"size": bytes.len()}) },
            Err(fault) => error_or_fault(fault),
        },
        _ => match plugin.packument(&i.package).await {
            Ok(Some(doc)) => Answer { outcome: "found", detail: None, data: doc },
            Ok(None) => Answer::of("missing"),
            Err(fault) => error_or_fault(fault),
        },
    }
}

/// Whether the answer is the expected one; Err says what differs.
fn judge(checks: &Checks, answer: &Answer) -> Result<(), String> {
    if answer.outcome != checks.expect {
        return Err(format!("expected {}, got {}", checks.expect, answer.outcome));
    }
    if let Some(needle) = &checks.reason_contains {
        if !answer.detail.as_deref().unwrap_or("").contains(needle.as_str()) {
            return Err(format!("the reason does not contain {needle:?}"));
        }
    }
    let data = &answer.data;
    if let Some(ct) = checks.content_type.as_ref().filter(|ct| data["content_type"] != json!(ct)) {
        return Err(format!("content type is not {ct:?}"));
    }
    for (name, value) in &checks.headers {
        if data["headers"][name.to_ascii_lowercase()] != json!(value) {
            return Err(format!("header {name} is not {value:?}"));
        }
    }
    if let Some(missing) = checks.body_contains.iter().find(|n| !data["body"].as_str().unwrap_or("").contains(n.as_str())) {
        return Err(format!("the body does not contain {missing:?}"));
    }
    if let Some(v) = checks.versions.iter().find(|v| data["versions"].get(v.as_str()).is_none()) {
        return Err(format!("the packument has no version {v}"));
    }
    if let Some(e) = checks.entries.iter().find(|e| !data.as_array().is_some_and(|l| l.contains(&json!(e)))) {
        return Err(format!("the listing has no entry {e:?}"));
    }
    if let Some(size) = checks.size.filter(|s| data["size"] != json!(s)) {
        return Err(format!("the tarball is not {size} bytes"));
    }
    Ok(())
}

fn expected(checks: &Checks) -> String {
    let mut out = checks.expect.clone();
    if let Some(needle) = &checks.reason_contains {
        out.push_str(&format!(", reason containing {needle:?}"));
    }
    let extra = [
        checks.content_type.as_ref().map(|c| format!("content type {c:?}")),
        (!checks.headers.is_empty()).then(|| format!("headers {:?}", checks.headers)),
        (!checks.body_contains.is_empty()).then(|| format!("body containing {:?}", checks.body_contains)),
        (!checks.versions.is_empty()).then(|| format!("versions {:?}", checks.versions)),
        (!checks.entries.is_empty()).then(|| format!("entries {:?}", checks.entries)),
        checks.size.map(|s| format!("{s} bytes")),
    ];
    for e in extra.into_iter().flatten() {
        out.push_str(&format!(", {e}"));
    }
    out
}

fn actual(answer: &Answer) -> String {
    let mut out = answer.outcome.to_string();
    if let Some(detail) = &answer.detail {
        out.push_str(&format!(": {detail}"));
    }
    if !answer.data.is_null() {
        let data = answer.data.to_string();
        let shown: String = data.chars().take(2000).collect();
        out.push_str(&format!(" {shown}{}", if shown.len() < data.len() { "..." } else { "" }));
    }
    out
}
