//! One delivery attempt: the signed POST, and what its outcome means (done,
//! retry later, failed for good).
//!
//! The client resolves names through [`CheckedResolver`], so it only ever
//! connects to addresses the target policy allows; IP literals (which skip
//! the resolver) are checked here. Redirects are not followed, proxies from
//! the environment are not used, and at most [`MAX_RESPONSE_BYTES`] of an
//! answer are read.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::hooks::{Attempt, Delivery, Hook};

use super::targets::{CheckedResolver, Refused, TargetPolicy};

/// The most of a receiver's answer that is read.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The hooks' own HTTP client (to merge with a shared outbound client later).
pub fn client(policy: Arc<TargetPolicy>, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION"), " hooks"))
        .build()
        .expect("the hooks HTTP client builds")
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

fn refused_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = err.source();
    }
    None
}

async fn send(client: &reqwest::Client, policy: &TargetPolicy, hook: &Hook, d: &Delivery) -> Outcome {
    let url = match reqwest::Url::parse(&hook.endpoint) {
        Ok(u) => u,
        Err(e) => return Outcome::Fatal(None, format!("the endpoint is not a URL: {e}")),
    };
    if let Some(host) = url.host_str().filter(|h| h.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()) {
        if let Err(e) = policy.resolve(host, url.port_or_known_default().unwrap_or(80)).await {
            return Outcome::Fatal(None, format!("endpoint refused: {e}"));
        }
    }
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-npm-signature", signature(&hook.secret, d.body.as_bytes()))
        .header("x-cairn-delivery", &d.id)
        .body(d.body.clone())
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            if let Some(reason) = refused_in(&e) {
                return Outcome::Fatal(None, format!("endpoint refused: {reason}"));
            }
            let kind = if e.is_timeout() { "timed out" } else { "failed" };
            return Outcome::Transient(None, format!("the request {kind}: {}", crate::config::redact_url(&e.to_string())));
        }
    };
    let code = resp.status().as_u16() as i64;
    let mut read = 0;
    while let Ok(Some(chunk)) = resp.chunk().await {
        read += chunk.len();
        if read >= MAX_RESPONSE_BYTES {
            break;
        }
    }
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

/// Sends `d` once; the outcome as the store records it.
pub async fn attempt(
    client: &reqwest::Client,
    policy: &TargetPolicy,
    hook: &Hook,
    d: &Delivery,
    max_attempts: i64,
    base_ms: u64,
    now: impl Fn() -> i64,
) -> Attempt {
    match send(client, policy, hook, d).await {
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
