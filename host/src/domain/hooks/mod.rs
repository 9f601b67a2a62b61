//! Webhooks: who may register which hook (this file), the address rules for
//! endpoints (`targets.rs`), and the workers that fan events out and deliver
//! them (`worker.rs`, `deliver.rs`). Events are written by the store in the
//! transaction of the change itself (the outbox), so none is lost.
pub mod deliver;
pub mod targets;
pub mod worker;

use crate::domain::App;
use crate::store::hooks::{Delivery, Hook, HookOverview};
use crate::store::now_ms;

use super::policy::{self, Action};
use super::{auth, Error, Identity, Result};

/// A hook as asked for by `POST /-/npm/v1/hooks/hook`.
pub struct NewHook {
    pub kind: String,
    pub name: String,
    pub endpoint: String,
    pub secret: String,
    /// A configured `hook-formatter` plugin.
    pub formatter: Option<String>,
}

/// Deliveries listed by the history endpoint.
pub const DELIVERY_HISTORY: i64 = 100;

fn check_len(what: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(Error::Invalid(format!("{what} must be 1-{max} characters long")));
    }
    Ok(())
}

fn check_target(kind: &str, name: &str) -> Result<()> {
    check_len("name", name, 428)?;
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Invalid("name must not contain spaces or control characters".into()));
    }
    match kind {
        "package" => Ok(()),
        "scope" if name.starts_with('@') && name.len() > 1 && !name.contains('/') => Ok(()),
        "scope" => Err(Error::Invalid(format!("a scope hook names a scope like @name, not {name:?}"))),
        "owner" if !name.contains('/') && !name.starts_with('@') => Ok(()),
        "owner" => Err(Error::Invalid(format!("an owner hook names a user, not {name:?}"))),
        other => Err(Error::Invalid(format!("type must be package, scope or owner, not {other:?}"))),
    }
}

/// Checks endpoint and secret: lengths, an absolute http(s) URL whose host
/// resolves only to addresses hooks may reach.
async fn check_endpoint(app: &App, endpoint: &str, secret: &str) -> Result<()> {
    check_len("endpoint", endpoint, 2048)?;
    check_len("secret", secret, 200)?;
    let url = url::Url::parse(endpoint).map_err(|_| Error::Invalid("endpoint must be an absolute http(s) URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Invalid("endpoint must be an absolute http(s) URL".into()));
    }
    let policy = targets::TargetPolicy::new(app.config.hooks.allowed_nets());
    policy.check_url(&url).await.map_err(|e| Error::Invalid(format!("endpoint refused: {e}")))
}

/// A formatter must be a configured `hook-formatter` plugin.
fn check_formatter(app: &App, formatter: Option<&str>) -> Result<()> {
    let Some(name) = formatter else { return Ok(()) };
    match app.plugins.current().get(name) {
        Some(p) if p.kind() == crate::config::PluginKind::HookFormatter => Ok(()),
        Some(_) => Err(Error::Invalid(format!("plugin {name:?} is not a hook-formatter plugin"))),
        None => Err(Error::Invalid(format!("formatter {name:?} is not a configured hook-formatter plugin"))),
    }
}

/// The hook, if the caller may see and change it: its owner or an admin.
async fn owned(app: &App, caller: &Identity, id: &str) -> Result<Hook> {
    let hook = app.store.hook(id).await?.ok_or_else(|| Error::NotFound(format!("no hook {id}")))?;
    if hook.owner != caller.name && !caller.is_admin {
        return Err(Error::Forbidden(format!("hook {id} belongs to another user")));
    }
    Ok(hook)
}

async fn ask_policy(app: &App, caller: &Identity, kind: &str, name: &str) -> Result<()> {
    let package = (kind == "package").then_some((name, None));
    policy::authorize_caller(app, Action::HookAdmin, package, caller).await
}

pub async fn create(app: &App, caller: &Identity, new: NewHook) -> Result<Hook> {
    auth::check_write(Some(caller))?;
    check_target(&new.kind, &new.name)?;
    check_endpoint(app, &new.endpoint, &new.secret).await?;
    check_formatter(app, new.formatter.as_deref())?;
    ask_policy(app, caller, &new.kind, &new.name).await?;
    let now = now_ms();
    let hook = Hook {
        id: uuid::Uuid::new_v4().simple().to_string(),
        owner: caller.name.clone(),
        kind: new.kind,
        name: new.name,
        endpoint: new.endpoint,
        secret: new.secret,
        formatter: new.formatter,
        created_at: now,
        updated_at: now,
        delivered: false,
        last_delivery: None,
        response_code: None,
        status: "active".into(),
    };
    let max = app.config.hooks.max_per_user;
    if !app.store.create_hook(&hook, max as i64).await? {
        return Err(Error::Forbidden(format!("you have {max} hooks already, the most one user may have ([hooks] max_per_user)")));
    }
    Ok(hook)
}

/// Whose hooks a listing shows (None: everyone's), once the caller may list
/// them (`all`: admins only) with this paging.
fn listed_owner(caller: &Identity, all: bool, offset: i64, limit: i64) -> Result<Option<&str>> {
    if all && !caller.is_admin {
        return Err(Error::Forbidden("only admins may list every user's hooks".into()));
    }
    if !(0..=100).contains(&limit) || offset < 0 {
        return Err(Error::Invalid("limit must be 0-100 and offset at least 0".into()));
    }
    Ok((!all).then_some(caller.name.as_str()))
}

/// The caller's hooks (everyone's for an admin asking for `all`).
pub async fn list(app: &App, caller: &Identity, all: bool, package: Option<&str>, offset: i64, limit: i64) -> Result<Vec<Hook>> {
    let owner = listed_owner(caller, all, offset, limit)?;
    Ok(app.store.hooks(owner, package, offset, limit).await?)
}

/// [`list`] for pages: the hooks with the counts of their pending and failed
/// deliveries, the secrets left out (pages show no secret).
pub async fn overview(app: &App, caller: &Identity, all: bool, offset: i64, limit: i64) -> Result<Vec<HookOverview>> {
    let owner = listed_owner(caller, all, offset, limit)?;
    let mut list = app.store.hook_overviews(owner, offset, limit).await?;
    for o in &mut list {
        o.hook.secret.clear();
    }
    Ok(list)
}

/// A hook and its latest deliveries, for its owner or an admin, the secret
/// left out.
pub async fn with_deliveries(app: &App, caller: &Identity, id: &str) -> Result<(Hook, Vec<Delivery>)> {
    let mut hook = owned(app, caller, id).await?;
    hook.secret.clear();
    Ok((hook, app.store.deliveries(id, DELIVERY_HISTORY).await?))
}

pub async fn get(app: &App, caller: &Identity, id: &str) -> Result<Hook> {
    owned(app, caller, id).await
}

/// Sets endpoint and secret, and the formatter when given (`Some(None)` clears it).
pub async fn update(
    app: &App,
    caller: &Identity,
    id: &str,
    endpoint: &str,
    secret: &str,
    formatter: Option<Option<String>>,
) -> Result<Hook> {
    auth::check_write(Some(caller))?;
    let hook = owned(app, caller, id).await?;
    check_endpoint(app, endpoint, secret).await?;
    let formatter = formatter.unwrap_or(hook.formatter.clone());
    check_formatter(app, formatter.as_deref())?;
    ask_policy(app, caller, &hook.kind, &hook.name).await?;
    if !app.store.update_hook(id, endpoint, secret, formatter.as_deref(), now_ms()).await? {
        return Err(Error::NotFound(format!("no hook {id}")));
    }
    app.store.hook(id).await?.ok_or_else(|| Error::NotFound(format!("no hook {id}")))
}

/// Deletes the hook; returns it as it was.
pub async fn delete(app: &App, caller: &Identity, id: &str) -> Result<Hook> {
    auth::check_write(Some(caller))?;
    let hook = owned(app, caller, id).await?;
    ask_policy(app, caller, &hook.kind, &hook.name).await?;
    if !app.store.delete_hook(id).await? {
        return Err(Error::NotFound(format!("no hook {id}")));
    }
    Ok(hook)
}

pub async fn deliveries(app: &App, caller: &Identity, id: &str) -> Result<Vec<Delivery>> {
    owned(app, caller, id).await?;
    Ok(app.store.deliveries(id, DELIVERY_HISTORY).await?)
}
