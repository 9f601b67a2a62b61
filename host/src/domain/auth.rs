//! Turning a request's credentials into an [`Identity`], and the rules every
//! request obeys whatever its route: unknown tokens are refused, tokens with a
//! CIDR whitelist only work from inside it, readonly tokens never write.

use std::net::IpAddr;

use crate::domain::App;
use crate::store::now_ms;

use super::tokens::{cidr_allows, key_of};
use super::{Error, Identity, Result};

/// Resolves the `Authorization` header. `None` header → anonymous.
pub async fn authenticate(app: &App, authorization: Option<&str>, client_ip: IpAddr) -> Result<Option<Identity>> {
    let Some(header) = authorization else { return Ok(None) };
    let raw = match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => return Err(Error::Unauthenticated("only Bearer token authorization is supported".into())),
    };
    if raw.is_empty() || raw.len() > 512 {
        return Err(Error::Unauthenticated("invalid token".into()));
    }
    let key = key_of(raw);
    let Some((token, user)) = app.store.token_with_user(&key).await? else {
        return Err(Error::Unauthenticated("invalid or revoked token".into()));
    };
    if !cidr_allows(&token.cidr_whitelist, client_ip) {
        return Err(Error::Forbidden(format!("this token may not be used from {client_ip}")));
    }
    app.token_usage.record(&token.key, now_ms());
    Ok(Some(Identity {
        is_admin: super::users::is_admin(app, &user),
        user_id: user.id,
        name: user.name,
        email: user.email,
        token_key: token.key,
        readonly: token.readonly,
        automation: token.automation,
        client_ip,
    }))
}

/// The caller, or 401 when anonymous.
pub fn require(identity: Option<&Identity>) -> Result<&Identity> {
    identity.ok_or_else(|| Error::Unauthenticated("authentication required: log in first".into()))
}

/// Refuses writes with a readonly token.
pub fn check_write(identity: Option<&Identity>) -> Result<()> {
    match identity {
        Some(id) if id.readonly => Err(Error::Forbidden("this token is read-only and may not be used for writes".into())),
        _ => Ok(()),
    }
}
