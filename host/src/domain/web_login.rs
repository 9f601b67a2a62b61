//! npm's web login: `POST /-/v1/login` starts one (a loginUrl for the person,
//! a doneUrl for npm), the person signs in at the loginUrl, and the doneUrl
//! then answers a new token, once. Both URLs carry their own random secret,
//! stored only as its sha512: knowing the loginUrl does not give the token.
//! A login expires after [`TTL_MS`]; the token is a normal token
//! (`tokens::issue`), and the password check is the one every login uses
//! (`users::authenticate`, with its login limits).

use crate::domain::App;
use crate::store::web::{WebLogin, WebLoginPoll};
use crate::store::{now_ms, User};
use crate::util::{random_bytes, sha512_hex};

use super::tokens::{self, NewToken};
use super::{Error, Result};

/// How long a person has to sign in.
pub const TTL_MS: i64 = 10 * 60 * 1000;
/// The longest host name kept (it is only shown on the page).
const MAX_HOSTNAME: usize = 200;

/// The two secrets of a new login: the loginUrl's id and the doneUrl's.
pub struct Started {
    pub login_id: String,
    pub done_id: String,
}

/// What the doneUrl says.
pub enum Done {
    /// Nobody signed in yet: ask again later.
    Pending,
    /// The new token (raw), answered this once.
    Token(String),
}

fn secret() -> String {
    hex::encode(random_bytes(32))
}

fn gone() -> Error {
    Error::NotFound("this login is unknown, expired or already used: run `npm login` again".into())
}

/// Starts a login. `hostname` is what npm sends (the machine's name).
pub async fn start(app: &App, hostname: Option<&str>) -> Result<Started> {
    let now = now_ms();
    app.store.purge_web(now).await?;
    let hostname = hostname.map(|h| h.chars().filter(|c| !c.is_control()).take(MAX_HOSTNAME).collect::<String>()).filter(|h| !h.is_empty());
    let started = Started { login_id: secret(), done_id: secret() };
    let login = WebLogin {
        login_key: sha512_hex(started.login_id.as_bytes()),
        done_key: sha512_hex(started.done_id.as_bytes()),
        hostname,
        user_id: None,
        created_at: now,
        expires_at: now + TTL_MS,
    };
    app.store.create_web_login(&login).await?;
    Ok(started)
}

/// The login a loginUrl names, while it waits for a person.
pub async fn pending(app: &App, login_id: &str) -> Result<WebLogin> {
    match app.store.web_login(&sha512_hex(login_id.as_bytes()), now_ms()).await? {
        Some(login) if login.user_id.is_none() => Ok(login),
        _ => Err(gone()),
    }
}

/// The person signed in as `user` at the loginUrl.
pub async fn approve(app: &App, login_id: &str, user: &User) -> Result<()> {
    if app.store.approve_web_login(&sha512_hex(login_id.as_bytes()), &user.id, now_ms()).await? {
        Ok(())
    } else {
        Err(gone())
    }
}

/// npm polls the doneUrl: pending, or the token once.
pub async fn poll(app: &App, done_id: &str) -> Result<Done> {
    match app.store.poll_web_login(&sha512_hex(done_id.as_bytes()), now_ms()).await? {
        WebLoginPoll::Pending => Ok(Done::Pending),
        WebLoginPoll::Gone => Err(gone()),
        WebLoginPoll::Approved(user) => {
            let issued = tokens::issue(app, &user, NewToken { name: Some("web login".into()), ..NewToken::default() }).await?;
            Ok(Done::Token(issued.raw))
        }
    }
}
