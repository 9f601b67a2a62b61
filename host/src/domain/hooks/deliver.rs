//! One delivery attempt: the signed POST, and what its outcome means (done,
//! retry later, failed for good).
//!
//! The request goes through a guarded [`Outbound`] (see [`client`]): it only
//! ever connects to addresses the target policy allows (names are checked as
//! they resolve, IP literals before sending), follows no redirect, uses no
//! proxy from the environment, and reads at most [`MAX_RESPONSE_BYTES`] of an
//! answer.
//!
//! A hook that names a formatter has each attempt's request built by that
//! `hook-formatter` plugin (body, content type, extra headers); the body it
//! returns is what is signed. Formatters built for `rich-formatter` (0.1.1)
//! also get the delivery's [`types::HookContext`]: the hook and its owner,
//! the package document, the registry's and the package's URLs. A formatter
//! that is gone or faults fails the attempt (retried like a connection
//! error), naming the plugin.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use serde_json::Value;

use crate::config::PluginKind;
use crate::outbound::{self, Outbound};
use crate::plugins::{types, Plugins};
use crate::store::hooks::{Attempt, Delivery, Hook, SentEvent};

use super::targets::TargetPolicy;

/// The most of a receiver's answer that is read.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024;

/// The hooks' outbound client: guarded by `policy`, `timeout` per attempt.
pub fn client(policy: Arc<TargetPolicy>, timeout: Duration) -> Outbound {
    Outbound::guarded(timeout, MAX_RESPONSE_BYTES, policy)
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What an attempt produced, before backoff is decided.
enum Outcome {
    Ok(i64),
    /// Worth another try (connection error, timeout, 5xx, 408, 429).
    Transient(Option<i64>, String),
    Fatal(Option<i64>, String),
}

/// Headers a formatter may not set: the host's own and the framing ones.
const RESERVED: &[&str] =
    &["content-type", "content-length", "transfer-encoding", "host", "connection", "x-npm-signature", "x-cairn-delivery"];

/// The event as a formatter sees it, from the delivery's npm body.
fn event_of(d: &Delivery, body: &Value) -> types::Event {
    let change = body.get("change").cloned().unwrap_or_else(|| Value::Object(Default::default()));
    let version = body.get("version").and_then(Value::as_str).map(str::to_string);
    types::Event {
        kind: d.event.clone(),
        package: d.package.clone(),
        actor: actor_of(&d.event, &change, body, version.as_deref()),
        version,
        time: body.get("time").and_then(Value::as_i64).map(crate::util::iso_ms).unwrap_or_default(),
        payload_json: change.to_string(),
    }
}

/// Who caused the event, where the outbox knows: the publisher of a
/// published version (its `_npmUser` in the document), the user who starred.
fn actor_of(event: &str, change: &Value, body: &Value, version: Option<&str>) -> Option<String> {
    let name = match event {
        "package:publish" => body.get("payload")?.get("versions")?.get(version?)?.pointer("/_npmUser/name"),
        "package:star" | "package:unstar" => change.get("user"),
        _ => None,
    };
    name.and_then(Value::as_str).map(str::to_string)
}

/// What a rich formatter gets besides the event, from the hook and the delivery's npm body.
fn context_of(hook: &Hook, d: &Delivery, body: &Value, registry_url: &str) -> types::HookContext {
    let registry_url = registry_url.trim_end_matches('/').to_string();
    types::HookContext {
        delivery_id: d.id.clone(),
        attempt: u32::try_from(d.attempts.max(1)).unwrap_or(u32::MAX),
        hook_id: hook.id.clone(),
        hook_owner: hook.owner.clone(),
        hook_type: hook.kind.clone(),
        hook_name: hook.name.clone(),
        package_url: format!("{registry_url}/{}", d.package),
        registry_url,
        package_json: body.get("payload").filter(|p| p.is_object()).map(Value::to_string),
    }
}

/// npm's JSON body of the delivery: built from its stored event (or the body
/// a delivery from before migration 0014 carries).
fn npm_body(hook: &Hook, d: &Delivery, event: Option<&SentEvent>) -> Result<String, String> {
    match (&d.body, event) {
        (Some(body), _) => Ok(body.clone()),
        (None, Some(event)) => Ok(super::worker::body(event, hook)),
        (None, None) => Err(format!("the event of delivery {} is gone", d.id)),
    }
}

/// The request to send: npm's JSON body, or what the hook's formatter makes of the event.
async fn request_of(
    plugins: &Plugins,
    hook: &Hook,
    d: &Delivery,
    event: Option<&SentEvent>,
    registry_url: &str,
) -> Result<types::Outbound, String> {
    let npm = npm_body(hook, d, event)?;
    let Some(name) = &hook.formatter else {
        return Ok(types::Outbound { body: npm.into_bytes(), content_type: "application/json".into(), headers: Vec::new() });
    };
    let set = plugins.current();
    let plugin = set
        .get(name)
        .filter(|p| p.kind() == PluginKind::HookFormatter)
        .ok_or_else(|| format!("formatter {name}: no such hook-formatter plugin is loaded"))?;
    let body: Value = serde_json::from_str(&npm).unwrap_or(Value::Null);
    let (event, context) = (event_of(d, &body), context_of(hook, d, &body, registry_url));
    let mut out = plugin.format(&event, &context).await.map_err(|f| format!("formatter {name} failed: {}", f.message))?;
    // Values must be visible ASCII (RFC 9110 deprecates anything else; many receivers cannot read it).
    if let Some(h) = out.headers.iter().find(|h| !h.value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))) {
        return Err(format!("formatter {name} returned a bad result: the value of header {} is not visible ASCII", h.name));
    }
    out.headers.retain(|h| !RESERVED.contains(&h.name.to_ascii_lowercase().as_str()));
    Ok(out)
}

async fn send(client: &Outbound, plugins: &Plugins, hook: &Hook, d: &Delivery, event: Option<&SentEvent>, registry_url: &str) -> Outcome {
    let out = match request_of(plugins, hook, d, event, registry_url).await {
        Ok(out) => out,
        Err(error) => return Outcome::Transient(None, error),
    };
    let mut req = client
        .post(&hook.endpoint)
        .describe("the request".into())
        .header("content-type", &out.content_type)
        .header("x-npm-signature", &signature(&hook.secret, &out.body))
        .header("x-cairn-delivery", &d.id);
    for h in &out.headers {
        req = req.header(&h.name, &h.value);
    }
    let sent = req.body(out.body).send().await;
    let resp = match sent {
        Ok(r) => r,
        Err(outbound::Error::Refused { why, .. }) => return Outcome::Fatal(None, format!("endpoint refused: {why}")),
        Err(e @ outbound::Error::Invalid { .. }) => return Outcome::Fatal(None, format!("the endpoint is not usable: {e}")),
        Err(e) => return Outcome::Transient(None, crate::config::redact_url(&e.to_string())),
    };
    let code = resp.status() as i64;
    // Read (up to the cap) so the connection can be reused; what it says does not matter.
    let _ = resp.bytes().await;
    match code {
        200..=299 => Outcome::Ok(code),
        408 | 429 | 500..=599 => Outcome::Transient(Some(code), format!("the endpoint answered {code}")),
        _ => Outcome::Fatal(Some(code), format!("the endpoint answered {code}")),
    }
}

/// The delay before try `attempts + 1`: `base` doubled per attempt, the upper half random.
pub fn backoff_ms(base: u64, attempts: i64) -> i64 {
    let full = base.saturating_mul(1u64 << (attempts.clamp(1, 20) - 1) as u32);
    let random = u64::from_le_bytes(crate::util::random_bytes(8).try_into().expect("eight bytes"));
    (full / 2 + random % (full / 2 + 1)) as i64
}

/// Sends `d` (built from `event`) once; the outcome as the store records it. `registry_url` (the
/// public URL) is for formatters' links.
#[allow(clippy::too_many_arguments)]
pub async fn attempt(
    client: &Outbound,
    plugins: &Plugins,
    registry_url: &str,
    hook: &Hook,
    d: &Delivery,
    event: Option<&SentEvent>,
    max_attempts: i64,
    base_ms: u64,
    now: impl Fn() -> i64,
) -> Attempt {
    match send(client, plugins, hook, d, event, registry_url).await {
        Outcome::Ok(code) => Attempt::Delivered { code },
        Outcome::Transient(code, error) if d.attempts < max_attempts => {
            Attempt::Retry { code, run_after: now() + backoff_ms(base_ms, d.attempts), error }
        }
        Outcome::Transient(code, error) => Attempt::Failed { code, error: format!("{error}; gave up after {} attempts", d.attempts) },
        Outcome::Fatal(code, error) => Attempt::Failed { code, error },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::store::hooks::{Delivery, Hook};

    #[test]
    fn events_and_contexts_come_from_the_npm_body() {
        let doc = json!({"name": "@a/b", "versions": {"1.0.0": {"_npmUser": {"name": "alice"}}}});
        let body = json!({"event": "package:publish", "name": "@a/b", "version": "1.0.0", "hookOwner": {"username": "bob"},
            "payload": doc, "change": {"version": "1.0.0"}, "time": 0});
        let d = Delivery {
            id: "d1".into(),
            hook_id: "h1".into(),
            event_seq: 1,
            event: "package:publish".into(),
            package: "@a/b".into(),
            body: None,
            state: "pending".into(),
            attempts: 2,
            response_code: None,
            last_error: None,
            run_after: 0,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
        };
        let hook = Hook {
            id: "h1".into(),
            owner: "bob".into(),
            kind: "scope".into(),
            name: "@a".into(),
            endpoint: "http://127.0.0.1:9/".into(),
            secret: "s".into(),
            formatter: Some("f".into()),
            created_at: 0,
            updated_at: 0,
            delivered: false,
            last_delivery: None,
            response_code: None,
            status: "active".into(),
        };
        let event = super::event_of(&d, &body);
        assert_eq!((event.actor.as_deref(), event.version.as_deref()), (Some("alice"), Some("1.0.0")));
        assert_eq!(event.payload_json, r#"{"version":"1.0.0"}"#);
        let c = super::context_of(&hook, &d, &body, "http://npm.example.com/");
        assert_eq!((c.delivery_id.as_str(), c.attempt, c.hook_owner.as_str(), c.hook_type.as_str()), ("d1", 2, "bob", "scope"));
        assert_eq!((c.registry_url.as_str(), c.package_url.as_str()), ("http://npm.example.com", "http://npm.example.com/@a/b"));
        assert_eq!(c.package_json.map(|j| serde_json::from_str::<serde_json::Value>(&j).unwrap()), Some(doc));
        let star = json!({"change": {"user": "carol"}});
        assert_eq!(super::actor_of("package:star", &star["change"], &star, None).as_deref(), Some("carol"));
        assert_eq!(super::actor_of("package:owner", &star["change"], &star, None), None);
    }
    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for attempts in 1..=8 {
            let full = 100i64 << (attempts - 1);
            let d = super::backoff_ms(100, attempts);
            assert!(d >= full / 2 && d <= full, "{attempts}: {d}");
        }
    }
}
