//! One delivery attempt: the signed POST, and what its outcome means (done,
//! retry later, failed for good).
//!
//! The request goes through a guarded [`Outbound`] (see [`client`]): it only
//! ever connects to addresses the target policy allows (names are checked as
//! they resolve, IP literals before sending), follows no redirect, uses no
//! proxy from the environment, and reads at most [`MAX_RESPONSE_BYTES`] of an
//! answer.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::outbound::{self, Outbound};
use crate::store::hooks::{Attempt, Delivery, Hook};

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

async fn send(client: &Outbound, hook: &Hook, d: &Delivery) -> Outcome {
    let sent = client
        .post(&hook.endpoint)
        .describe("the request".into())
        .header("content-type", "application/json")
        .header("x-npm-signature", &signature(&hook.secret, d.body.as_bytes()))
        .header("x-cairn-delivery", &d.id)
        .body(d.body.clone())
        .send()
        .await;
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

/// Sends `d` once; the outcome as the store records it.
pub async fn attempt(client: &Outbound, hook: &Hook, d: &Delivery, max_attempts: i64, base_ms: u64, now: impl Fn() -> i64) -> Attempt {
    match send(client, hook, d).await {
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
        assert_eq!(super::signature("Jefe", b"what do ya want for nothing?"), "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
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
