//! Accounts: registration, login, lookup.

use crate::domain::App;
use crate::store::{now_ms, User};

use super::tokens::{self, NewToken};
use super::{password, Error, Result};

pub const COUCH_PREFIX: &str = "org.couchdb.user:";

/// npm's user-name rules: 1–100 characters, lowercase, URL-safe, not starting with a dot.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid("name must be 1-100 characters".into()));
    }
    if name.starts_with('.') {
        return Err(Error::Invalid("name may not start with a period".into()));
    }
    if name != name.to_lowercase() {
        return Err(Error::Invalid("name must be lowercase".into()));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')) {
        return Err(Error::Invalid("name may only contain a-z, 0-9, '-', '_', '.' and '~'".into()));
    }
    Ok(())
}

pub fn validate_email(email: &str) -> Result<()> {
    let invalid = || Error::Invalid(format!("email {email:?} is not a valid address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.contains('@') || domain.len() < 3 {
        return Err(invalid());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-')) {
        return Err(invalid());
    }
    Ok(())
}

/// A login or registration as npm sends it (`PUT /-/user/org.couchdb.user:NAME`).
pub struct LoginRequest {
    pub url_name: String,
    /// Where the request came from (failed logins are limited per address).
    pub client_ip: std::net::IpAddr,
    pub id: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
    pub email: Option<String>,
    pub kind: Option<String>,
}

pub struct LoginOutcome {
    pub id: String,
    pub rev: String,
    pub token: String,
    pub created: bool,
}

/// Logs an existing user in or registers a new one; either way issues a new token.
pub async fn login_or_register(app: &App, req: LoginRequest) -> Result<LoginOutcome> {
    let name = req.name.ok_or_else(|| Error::Invalid("name is required".into()))?;
    if name != req.url_name {
        return Err(Error::Invalid(format!("name {name:?} in the body differs from {:?} in the URL", req.url_name)));
    }
    let expected_id = format!("{COUCH_PREFIX}{name}");
    if req.id.as_deref() != Some(expected_id.as_str()) {
        return Err(Error::Invalid(format!("_id must be {expected_id:?}")));
    }
    if req.kind.as_deref() != Some("user") {
        return Err(Error::Invalid("type must be \"user\"".into()));
    }
    validate_name(&name)?;
    let password = req.password.ok_or_else(|| Error::Invalid("password is required".into()))?;
    password::validate(&password)?;
    if let Some(email) = &req.email {
        validate_email(email)?;
    }

    app.login_limiter.check(&name, req.client_ip)?;
    let (user, created) = match app.store.user_by_name(&name).await? {
        Some(user) => {
            check_password(app, &user, &password, req.client_ip).await?;
            if let (Some(given), Some(stored)) = (&req.email, &user.email) {
                if !given.eq_ignore_ascii_case(stored) {
                    return Err(Error::Conflict(format!("user {name} already exists with another email")));
                }
            }
            (user, false)
        }
        None => {
            check_registration(app, &name)?;
            // Like the npm registry: `npm login` with an unknown name must not
            // silently create an account; `npm adduser` sends an email.
            let Some(email) = req.email.as_deref() else {
                app.login_limiter.failed_ip(req.client_ip);
                return Err(Error::NotFound(format!("user {name} does not exist; register with `npm adduser` (an email is required)")));
            };
            let user = create(app, &name, Some(email), &password, false).await?;
            (user, true)
        }
    };
    let issued = tokens::issue(app, &user, NewToken { name: Some("login".into()), ..NewToken::default() }).await?;
    Ok(LoginOutcome { id: expected_id, rev: user.rev, token: issued.raw, created })
}

/// Whether `name` may be registered over HTTP: public registration is on, and
/// it is not an admin name (whoever registered a listed name first would be
/// administrator).
fn check_registration(app: &App, name: &str) -> Result<()> {
    if app.is_admin_name(name) {
        return Err(Error::Forbidden(format!(
            "{name} is an admin name ([auth] admins) and cannot be registered over HTTP; the operator creates it with `cairn user create {name} --admin`"
        )));
    }
    if !app.config.auth.allow_public_registration {
        return Err(Error::Forbidden("public registration is disabled".into()));
    }
    Ok(())
}

/// A new account from the web (npm's web `adduser`): the registration rules
/// of `npm adduser`, an email required.
pub async fn register(app: &App, name: &str, email: &str, password_plain: &str) -> Result<User> {
    validate_name(name)?;
    check_registration(app, name)?;
    create(app, name, Some(email), password_plain, false).await
}

/// Verifies `password` for an existing account, counting a failure against the
/// account and the address (`login_limit`); the caller checked the limit first.
async fn check_password(app: &App, user: &User, password_plain: &str, client_ip: std::net::IpAddr) -> Result<()> {
    if !password::verify(password_plain, &user.password_hash).await? {
        app.login_limiter.failed(&user.name, client_ip);
        return Err(Error::Unauthenticated(format!("wrong password for user {}", user.name)));
    }
    app.login_limiter.succeeded(&user.name);
    Ok(())
}

/// A password sign-in (the web UI's and npm's web login): the login limits,
/// then the password. An unknown name fails like a wrong password.
pub async fn authenticate(app: &App, name: &str, password_plain: &str, client_ip: std::net::IpAddr) -> Result<User> {
    let wrong = || Error::Unauthenticated("wrong user name or password".into());
    if validate_name(name).is_err() || password_plain.is_empty() || password_plain.len() > 1024 {
        app.login_limiter.failed_ip(client_ip);
        return Err(wrong());
    }
    app.login_limiter.check(name, client_ip)?;
    let Some(user) = app.store.user_by_name(name).await? else {
        app.login_limiter.failed_ip(client_ip);
        return Err(wrong());
    };
    check_password(app, &user, password_plain, client_ip).await.map_err(|e| match e {
        Error::Unauthenticated(_) => wrong(),
        other => other,
    })?;
    Ok(user)
}

/// Creates a user without any registration policy check (used by the CLI and by
/// registration). Only the CLI makes admins.
pub async fn create(app: &App, name: &str, email: Option<&str>, password_plain: &str, is_admin: bool) -> Result<User> {
    validate_name(name)?;
    password::validate(password_plain)?;
    if let Some(email) = email {
        validate_email(email)?;
    }
    let now = now_ms();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        email: email.map(str::to_string),
        password_hash: password::hash(password_plain).await?,
        rev: crate::util::next_rev(None),
        created_at: now,
        updated_at: now,
        is_admin,
    };
    app.store.create_user(&user).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(_) => Error::Conflict(format!("user {name} already exists")),
        other => other.into(),
    })?;
    Ok(user)
}

/// An admin is marked in the database, or (for configurations from before the
/// flag) an existing account whose name is in `[auth] admins`.
pub fn is_admin(app: &App, user: &User) -> bool {
    user.is_admin || app.is_admin_name(&user.name)
}

pub async fn find(app: &App, name: &str) -> Result<User> {
    app.store.user_by_name(name).await?.ok_or_else(|| Error::NotFound(format!("user {name} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "a.b-c_d~e", "x1"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".a", "Alice", "a b", "a/b", "a@b", &"x".repeat(101)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            validate_email(ok).unwrap();
        }
        for bad in ["", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@-b.co", "a@b..co"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
