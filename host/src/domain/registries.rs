//! Upstream registries and the scopes routed to them.

use crate::config::RegistryConfig;
use crate::domain::App;
use crate::store::{now_ms, Registry, Scope};

use super::{Error, Identity, Result};

pub const BUILT_IN_TYPES: &[&str] = &["npm", "cnpm"];

fn validate_scope(name: &str) -> Result<()> {
    if !name.starts_with('@') || name.len() < 2 || name.contains('/') || super::names::validate_new(&format!("{name}/x")).is_err() {
        return Err(Error::Invalid(format!("scope {name:?} must look like @name")));
    }
    Ok(())
}

fn validate_host(host: &str) -> Result<String> {
    let shown = crate::config::redact_url(host);
    let url = url::Url::parse(host).map_err(|e| Error::Invalid(format!("host {shown:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Invalid(format!("host {shown:?} must be an http(s) URL")));
    }
    Ok(host.trim_end_matches('/').to_string())
}

/// A registry type is `npm`, `cnpm` or a loaded upstream-adapter plugin.
fn validate_type(app: &App, kind: &str) -> Result<()> {
    let plugin = app.plugins.current().get(kind).is_some_and(|p| p.kind() == crate::config::PluginKind::UpstreamAdapter);
    if BUILT_IN_TYPES.contains(&kind) || plugin {
        Ok(())
    } else {
        Err(Error::Invalid(format!("type {kind:?} is neither npm, cnpm nor a loaded upstream-adapter plugin")))
    }
}

pub struct RegistryInput {
    pub name: Option<String>,
    pub host: Option<String>,
    pub change_stream: Option<Option<String>>,
    pub kind: Option<String>,
    pub user_prefix: Option<String>,
    pub auth_token: Option<Option<String>>,
    pub is_default: Option<bool>,
}

pub async fn create(app: &App, caller: &Identity, input: RegistryInput) -> Result<Registry> {
    super::packages::require_admin(caller)?;
    super::policy::authorize_caller(app, super::policy::Action::RegistryAdmin, None, caller).await?;
    let name = input.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| Error::Invalid("name is required".into()))?;
    let host = validate_host(&input.host.ok_or_else(|| Error::Invalid("host is required".into()))?)?;
    let kind = input.kind.unwrap_or_else(|| "npm".into());
    validate_type(app, &kind)?;
    let change_stream = input.change_stream.flatten().map(|c| validate_host(&c)).transpose()?;
    let now = now_ms();
    let registry = Registry {
        id: uuid::Uuid::new_v4().simple().to_string(),
        user_prefix: input.user_prefix.unwrap_or_else(|| format!("{name}:")),
        name,
        host,
        change_stream,
        kind,
        auth_token: input.auth_token.flatten(),
        is_default: input.is_default.unwrap_or(false),
        from_config: false,
        created_at: now,
        updated_at: now,
    };
    app.store.create_registry(&registry).await?;
    Ok(registry)
}

pub async fn update(app: &App, caller: &Identity, id: &str, input: RegistryInput) -> Result<Registry> {
    super::packages::require_admin(caller)?;
    super::policy::authorize_caller(app, super::policy::Action::RegistryAdmin, None, caller).await?;
    let mut r = find(app, id).await?;
    if let Some(name) = input.name {
        if name.trim().is_empty() {
            return Err(Error::Invalid("name may not be empty".into()));
        }
        r.name = name;
    }
    if let Some(host) = input.host {
        r.host = validate_host(&host)?;
    }
    if let Some(kind) = input.kind {
        validate_type(app, &kind)?;
        r.kind = kind;
    }
    if let Some(cs) = input.change_stream {
        r.change_stream = cs.map(|c| validate_host(&c)).transpose()?;
    }
    if let Some(prefix) = input.user_prefix {
        if prefix != r.user_prefix {
            return Err(Error::Invalid("userPrefix cannot change: synced maintainers carry it".into()));
        }
    }
    if let Some(token) = input.auth_token {
        r.auth_token = token;
    }
    if let Some(d) = input.is_default {
        r.is_default = d;
    }
    r.updated_at = now_ms();
    app.store.update_registry(&r).await?;
    Ok(r)
}

pub async fn delete(app: &App, caller: &Identity, id: &str) -> Result<()> {
    super::packages::require_admin(caller)?;
    super::policy::authorize_caller(app, super::policy::Action::RegistryAdmin, None, caller).await?;
    let r = find(app, id).await?;
    app.store.delete_registry(&r.id).await?;
    Ok(())
}

pub async fn find(app: &App, id_or_name: &str) -> Result<Registry> {
    app.store.registry(id_or_name).await?.ok_or_else(|| Error::NotFound(format!("registry {id_or_name} not found")))
}

pub async fn create_scope(app: &App, caller: &Identity, name: &str, registry_id: &str) -> Result<Scope> {
    super::packages::require_admin(caller)?;
    super::policy::authorize_caller(app, super::policy::Action::RegistryAdmin, None, caller).await?;
    validate_scope(name)?;
    let registry =
        app.store.registry(registry_id).await?.ok_or_else(|| Error::Invalid(format!("registry {registry_id} does not exist")))?;
    let now = now_ms();
    let scope = Scope {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: name.to_string(),
        registry_id: registry.id,
        created_at: now,
        updated_at: now,
    };
    app.store.create_scope(&scope).await?;
    Ok(scope)
}

pub async fn delete_scope(app: &App, caller: &Identity, id: &str) -> Result<()> {
    super::packages::require_admin(caller)?;
    super::policy::authorize_caller(app, super::policy::Action::RegistryAdmin, None, caller).await?;
    if app.store.delete_scope(id).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("scope {id} not found")))
    }
}

/// Writes the `[[registries]]` of the configuration into the database (by
/// name), with their scopes. Registries created through the API stay.
pub async fn seed(app: &App, configured: &[RegistryConfig]) -> Result<()> {
    let now = now_ms();
    for rc in configured {
        validate_host(&rc.host)?;
        let existing = app.store.registry(&rc.name).await?;
        let registry = Registry {
            id: existing.as_ref().map(|r| r.id.clone()).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            name: rc.name.clone(),
            host: rc.host.trim_end_matches('/').to_string(),
            change_stream: rc.change_stream.clone(),
            kind: rc.kind.clone(),
            user_prefix: existing
                .as_ref()
                .map(|r| r.user_prefix.clone())
                .or_else(|| rc.user_prefix.clone())
                .unwrap_or_else(|| format!("{}:", rc.name)),
            auth_token: rc.auth_token.clone(),
            is_default: rc.default,
            from_config: true,
            created_at: existing.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
        };
        if existing.is_some() {
            app.store.update_registry(&registry).await?;
        } else {
            app.store.create_registry(&registry).await?;
        }
        for scope in &rc.scopes {
            // A scope routed elsewhere moves to this registry.
            match app.store.scope_by_name(scope).await? {
                Some(s) if s.registry_id == registry.id => continue,
                Some(s) => {
                    app.store.delete_scope(&s.id).await?;
                }
                None => {}
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            app.store
                .create_scope(&Scope { id, name: scope.clone(), registry_id: registry.id.clone(), created_at: now, updated_at: now })
                .await?;
        }
    }
    Ok(())
}

/// The registry a package syncs from: the task's choice, else its scope's,
/// else the one it was synced from before, else the default.
pub async fn choose(app: &App, name: &str, requested: Option<&str>, package_registry: Option<&str>) -> Result<Registry> {
    if let Some(r) = requested {
        return app.store.registry(r).await?.ok_or_else(|| Error::Invalid(format!("registry {r} does not exist")));
    }
    if let Some((scope, _)) = name.split_once('/').filter(|_| name.starts_with('@')) {
        if let Some(s) = app.store.scope_by_name(scope).await? {
            if let Some(r) = app.store.registry(&s.registry_id).await? {
                return Ok(r);
            }
        }
    }
    if let Some(id) = package_registry {
        if let Some(r) = app.store.registry(id).await? {
            return Ok(r);
        }
    }
    let (all, _) = app.store.list_registries(0, 1000).await?;
    all.into_iter()
        .find(|r| r.is_default)
        .ok_or_else(|| Error::Invalid("no upstream registry is configured: add one with default = true".into()))
}
