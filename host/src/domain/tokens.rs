//! Access tokens. Only the sha512 of a token is stored; that hash is also the
//! token's public `key`. The raw token is returned once, at creation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;

use crate::domain::App;
use crate::store::{now_ms, Store, Token, User};
use crate::util::{random_bytes, sha512_hex};

use super::{password, Error, Identity, Result};

pub const PREFIX: &str = "cairn_";
pub const MAX_CIDRS: usize = 10;

#[derive(Debug, Default, Clone)]
pub struct NewToken {
    pub name: Option<String>,
    pub readonly: bool,
    pub automation: bool,
    pub cidr_whitelist: Vec<String>,
}

pub struct Issued {
    pub raw: String,
    pub token: Token,
}

/// `cairn_` + 64 hex characters (256 random bits).
fn generate() -> String {
    format!("{PREFIX}{}", hex::encode(random_bytes(32)))
}

pub fn key_of(raw: &str) -> String {
    sha512_hex(raw.as_bytes())
}

/// The masked form shown in listings: the prefix and 4 characters, then the last 4.
fn mask(raw: &str) -> String {
    let head = &raw[..PREFIX.len() + 4];
    let tail = &raw[raw.len() - 4..];
    format!("{head}...{tail}")
}

/// Parses and normalizes a CIDR whitelist: at most [`MAX_CIDRS`] entries, each a
/// CIDR or a bare address (taken as /32 or /128).
pub fn parse_cidrs(list: &[String]) -> Result<Vec<IpNet>> {
    if list.len() > MAX_CIDRS {
        return Err(Error::Invalid(format!("cidr_whitelist has {} entries; at most {MAX_CIDRS} are allowed", list.len())));
    }
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| Error::Invalid(format!("cidr_whitelist entry {s:?} is not a valid IP address or CIDR")))
        })
        .collect()
}

pub fn cidr_allows(whitelist: &[String], ip: IpAddr) -> bool {
    if whitelist.is_empty() {
        return true;
    }
    // An IPv4 client may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    whitelist.iter().filter_map(|c| c.parse::<IpNet>().ok()).any(|net| net.contains(&ip))
}

pub async fn issue(app: &App, user: &User, new: NewToken) -> Result<Issued> {
    let cidrs: Vec<String> = parse_cidrs(&new.cidr_whitelist)?.iter().map(|n| n.to_string()).collect();
    let raw = generate();
    let now = now_ms();
    let token = Token {
        key: key_of(&raw),
        user_id: user.id.clone(),
        mark: mask(&raw),
        name: new.name,
        readonly: new.readonly,
        automation: new.automation,
        cidr_whitelist: cidrs,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    app.store.create_token(&token).await?;
    Ok(Issued { raw, token })
}

/// `POST /-/npm/v1/tokens`: needs the caller's current password.
pub async fn create_with_password(app: &App, caller: &Identity, password_plain: &str, new: NewToken) -> Result<Issued> {
    password::validate(password_plain)?;
    parse_cidrs(&new.cidr_whitelist)?;
    super::policy::authorize_caller(app, super::policy::Action::Token, None, caller).await?;
    app.login_limiter.check(&caller.name, caller.client_ip)?;
    let user = super::users::find(app, &caller.name).await?;
    if !password::verify(password_plain, &user.password_hash).await? {
        app.login_limiter.failed(&caller.name, caller.client_ip);
        return Err(Error::Unauthenticated("wrong password".into()));
    }
    issue(app, &user, new).await
}

/// The caller's tokens, with last-use times not yet flushed merged in.
pub async fn list(app: &App, caller: &Identity) -> Result<Vec<Token>> {
    let mut tokens = app.store.tokens_for_user(&caller.user_id).await?;
    for t in &mut tokens {
        if let Some(at) = app.token_usage.pending(&t.key) {
            t.last_used_at = Some(t.last_used_at.map_or(at, |old| old.max(at)));
        }
    }
    Ok(tokens)
}

/// Revokes a token named by its key (one of the caller's own) or by the raw
/// token itself. Whoever presents a raw token could use it anyway, so it is
/// revoked whoever owns it: a leaked token can be killed by whoever finds it.
pub async fn revoke(app: &App, caller: &Identity, key_or_token: &str) -> Result<()> {
    super::policy::authorize_caller(app, super::policy::Action::Token, None, caller).await?;
    let (key, owner) = if key_or_token.starts_with(PREFIX) {
        let key = key_of(key_or_token);
        match app.store.token_with_user(&key).await? {
            Some((token, _)) => (key, token.user_id),
            None => return Err(Error::NotFound("token not found (already revoked or never issued)".into())),
        }
    } else {
        (key_or_token.to_string(), caller.user_id.clone())
    };
    if app.store.delete_token(&owner, &key).await? {
        app.token_usage.forget(&key);
        Ok(())
    } else {
        Err(Error::NotFound("token not found among your tokens".into()))
    }
}

/// Last-use times of tokens, kept in memory and written to the database in
/// batches, so authenticating a request costs no database write.
#[derive(Default)]
pub struct TokenUsage {
    pending: Mutex<HashMap<String, i64>>,
}

impl TokenUsage {
    pub fn record(&self, key: &str, at: i64) {
        let mut map = self.pending.lock().expect("token usage lock");
        match map.get_mut(key) {
            Some(old) => *old = (*old).max(at),
            None => {
                map.insert(key.to_string(), at);
            }
        }
    }

    pub fn pending(&self, key: &str) -> Option<i64> {
        self.pending.lock().expect("token usage lock").get(key).copied()
    }

    fn forget(&self, key: &str) {
        self.pending.lock().expect("token usage lock").remove(key);
    }

    /// Writes pending times to the store; on failure they are kept for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize> {
        let batch: Vec<(String, i64)> = std::mem::take(&mut *self.pending.lock().expect("token usage lock")).into_iter().collect();
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.touch_tokens(&batch).await {
            for (k, at) in batch {
                self.record(&k, at);
            }
            return Err(e.into());
        }
        Ok(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        let ok = parse_cidrs(&["127.0.0.1".into(), "192.168.1.0/24".into(), "::1".into()]).unwrap();
        assert_eq!(ok[0].to_string(), "127.0.0.1/32");
        assert!(parse_cidrs(&["nope".into()]).is_err());
        assert!(parse_cidrs(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_cidrs(&vec!["127.0.0.1".to_string(); 11]).is_err());
    }

    #[test]
    fn cidr_matching() {
        let list = vec!["10.0.0.0/8".to_string()];
        assert!(cidr_allows(&list, "10.1.2.3".parse().unwrap()));
        assert!(cidr_allows(&list, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!cidr_allows(&list, "127.0.0.1".parse().unwrap()));
        assert!(cidr_allows(&[], "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn tokens_and_masks() {
        let raw = generate();
        assert_eq!(raw.len(), PREFIX.len() + 64);
        assert_eq!(key_of(&raw).len(), 128);
        let m = mask(&raw);
        assert!(m.starts_with(PREFIX) && m.contains("...") && m.len() < 20, "{m}");
    }
}
