//! `/-/registry` and `/-/scope`: upstream registries and scope routing.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::strip_userinfo;
use crate::domain::registries::{self, RegistryInput};
use crate::store::{Registry, Scope};
use crate::util::iso_ms;

use super::{json_response, ok_json, ApiError, ApiResult, Req};

/// The wire form. Credentials are never shown: not the auth token (only
/// whether one is set), nor a `user:password@` inside the URLs.
fn registry_json(r: &Registry) -> Value {
    json!({
        "registryId": r.id,
        "name": r.name,
        "host": strip_userinfo(&r.host),
        "changeStream": r.change_stream.as_deref().map(strip_userinfo),
        "type": r.kind,
        "userPrefix": r.user_prefix,
        "default": r.is_default,
        "authTokenSet": r.auth_token.is_some(),
        "fromConfig": r.from_config,
        "createdAt": iso_ms(r.created_at),
        "updatedAt": iso_ms(r.updated_at),
        "response": null,
    })
}

fn scope_json(s: &Scope) -> Value {
    json!({"scopeId": s.id, "name": s.name, "registryId": s.registry_id, "createdAt": iso_ms(s.created_at), "updatedAt": iso_ms(s.updated_at)})
}

fn int_query(req: &Req, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    match req.query(name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("{name} must be an integer from {min} to {max}"))),
    }
}

pub async fn list(req: Req) -> ApiResult {
    let size = int_query(&req, "pageSize", 20, 1, 100)?;
    let index = int_query(&req, "pageIndex", 0, 0, 1_000_000)?;
    let (rows, total) = req.app.store.list_registries(index * size, size).await?;
    ok_json(json!({"data": rows.iter().map(registry_json).collect::<Vec<_>>(), "total": total}))
}

pub async fn show(req: Req, id: &str) -> ApiResult {
    ok_json(registry_json(&registries::find(&req.app, id).await?))
}

pub async fn scopes(req: Req, id: &str) -> ApiResult {
    let r = registries::find(&req.app, id).await?;
    let scopes = req.app.store.scopes(Some(&r.id)).await?;
    ok_json(json!({"data": scopes.iter().map(scope_json).collect::<Vec<_>>(), "total": scopes.len()}))
}

/// `null` clears a field; absent leaves it.
fn nullable(v: &Value, key: &str) -> Result<Option<Option<String>>, ApiError> {
    match v.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::invalid(format!("{key} must be a string or null"))),
    }
}

fn string(v: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(format!("{key} must be a string"))),
    }
}

fn input(v: &Value) -> Result<RegistryInput, ApiError> {
    if !v.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    let allowed = ["name", "host", "changeStream", "type", "userPrefix", "authToken", "default"];
    if let Some(unknown) = v.as_object().and_then(|o| o.keys().find(|k| !allowed.contains(&k.as_str()))) {
        return Err(ApiError::invalid(format!("unknown field {unknown:?}; fields are {}", allowed.join(", "))));
    }
    Ok(RegistryInput {
        name: string(v, "name")?,
        host: string(v, "host")?,
        change_stream: nullable(v, "changeStream")?,
        kind: string(v, "type")?,
        user_prefix: string(v, "userPrefix")?,
        auth_token: nullable(v, "authToken")?,
        is_default: match v.get("default") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(ApiError::invalid("default must be a boolean")),
        },
    })
}

pub async fn create(mut req: Req) -> ApiResult {
    req.caller()?;
    let body: Value = req.json().await?;
    let r = registries::create(&req.app, req.caller()?, input(&body)?).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true, "registry": registry_json(&r), "registryId": r.id})))
}

pub async fn update(mut req: Req, id: &str) -> ApiResult {
    req.caller()?;
    let body: Value = req.json().await?;
    let r = registries::update(&req.app, req.caller()?, id, input(&body)?).await?;
    ok_json(json!({"ok": true, "registry": registry_json(&r)}))
}

pub async fn delete(req: Req, id: &str) -> ApiResult {
    registries::delete(&req.app, req.caller()?, id).await?;
    ok_json(json!({"ok": true}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScopeBody {
    name: String,
    registry_id: String,
}

pub async fn create_scope(mut req: Req) -> ApiResult {
    req.caller()?;
    let body: ScopeBody = req.json().await?;
    let s = registries::create_scope(&req.app, req.caller()?, &body.name, &body.registry_id).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true, "scope": scope_json(&s), "scopeId": s.id})))
}

pub async fn delete_scope(req: Req, id: &str) -> ApiResult {
    registries::delete_scope(&req.app, req.caller()?, id).await?;
    ok_json(json!({"ok": true}))
}
