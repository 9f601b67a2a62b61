//! Browser sessions of the web UI: a random cookie value whose sha512 is the
//! stored key, and the CSRF token derived from it (forms of a signed-in person
//! carry it; a page of another site cannot read it). Sessions expire after
//! [`TTL_MS`]; signing out deletes the row.

use std::net::IpAddr;

use crate::domain::App;
use crate::store::{now_ms, User};
use crate::util::{random_bytes, sha512_hex};

use super::{Identity, Result};

/// How long a session lasts.
pub const TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// The longest cookie value looked up (ours are 64 hex characters).
const MAX_RAW: usize = 128;

/// A new random secret (cookie values, CSRF tokens of signed-out forms).
pub fn new_secret() -> String {
    hex::encode(random_bytes(32))
}

fn key(raw: &str) -> String {
    sha512_hex(raw.as_bytes())
}

/// Starts a session for `user`; the cookie's value.
pub async fn create(app: &App, user: &User) -> Result<String> {
    let now = now_ms();
    app.store.purge_web(now).await?;
    let raw = new_secret();
    app.store.create_web_session(&key(&raw), &user.id, now, now + TTL_MS).await?;
    Ok(raw)
}

/// The signed-in person of a cookie value, as an identity for reads and writes.
pub async fn identity(app: &App, raw: &str, client_ip: IpAddr) -> Result<Option<Identity>> {
    if raw.is_empty() || raw.len() > MAX_RAW {
        return Ok(None);
    }
    let Some(user) = app.store.web_session_user(&key(raw), now_ms()).await? else { return Ok(None) };
    Ok(Some(Identity {
        is_admin: super::users::is_admin(app, &user),
        user_id: user.id,
        name: user.name,
        email: user.email,
        // Not a token: no token's key is a session's (token keys are sha512 of `cairn_...`).
        token_key: format!("session:{}", &key(raw)[..16]),
        readonly: false,
        automation: false,
        client_ip,
    }))
}

/// Ends a session (signing out).
pub async fn end(app: &App, raw: &str) -> Result<()> {
    if !raw.is_empty() && raw.len() <= MAX_RAW {
        app.store.delete_web_session(&key(raw)).await?;
    }
    Ok(())
}

/// The CSRF token of a session: derived, so nothing more is stored.
pub fn csrf_token(raw: &str) -> String {
    sha512_hex(format!("cairn-csrf:{raw}").as_bytes())[..40].to_string()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
