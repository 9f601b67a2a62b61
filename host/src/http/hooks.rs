//! `/-/npm/v1/hooks`: register, list, change and delete webhooks, and see
//! their deliveries. The secret is never part of any answer.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::hooks::{self, NewHook};
use crate::store::hooks::{Delivery, Hook};
use crate::util::iso_ms;

use super::{ok_json, ApiError, ApiResult, Req};

#[derive(Deserialize)]
struct CreateBody {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    endpoint: String,
    secret: String,
    #[serde(default)]
    formatter: Option<String>,
}

#[derive(Deserialize)]
struct UpdateBody {
    endpoint: String,
    secret: String,
    /// Absent: unchanged; `null`: npm's body again; a name: that formatter.
    #[serde(default, deserialize_with = "present")]
    formatter: Option<Option<String>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn hook_json(h: &Hook) -> Value {
    json!({
        "id": h.id,
        "name": h.name,
        "type": h.kind,
        "endpoint": h.endpoint,
        "formatter": h.formatter,
        "created": iso_ms(h.created_at),
        "updated": iso_ms(h.updated_at),
        "delivered": h.delivered,
        "last_delivery": h.last_delivery.map(iso_ms),
        "response_code": h.response_code,
        "status": h.status,
    })
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event": d.event,
        "name": d.package,
        "state": d.state,
        "attempts": d.attempts,
        "response_code": d.response_code,
        "created": iso_ms(d.created_at),
        "updated": iso_ms(d.updated_at),
        "finished": d.finished_at.map(iso_ms),
        "next_attempt": (d.state == "pending").then(|| iso_ms(d.run_after)),
        "error": d.last_error,
    })
}

fn number(req: &Req, name: &str, default: i64) -> Result<i64, ApiError> {
    match req.query(name) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| ApiError::invalid(format!("{name} must be a number"))),
    }
}

pub async fn create(mut req: Req) -> ApiResult {
    req.caller()?;
    let body: CreateBody = req.json().await?;
    let caller = req.caller()?;
    let new = NewHook { kind: body.kind, name: body.name, endpoint: body.endpoint, secret: body.secret, formatter: body.formatter };
    let hook = hooks::create(&req.app, caller, new).await?;
    ok_json(hook_json(&hook))
}

pub async fn list(req: Req) -> ApiResult {
    let caller = req.caller()?;
    let all = req.query("all") == Some("true");
    let package = req.query("package").filter(|p| !p.is_empty());
    let (offset, limit) = (number(&req, "offset", 0)?, number(&req, "limit", 100)?);
    let list = hooks::list(&req.app, caller, all, package, offset, limit).await?;
    let objects: Vec<Value> = list.iter().map(hook_json).collect();
    ok_json(json!({ "objects": objects, "total": objects.len(), "urls": {} }))
}

pub async fn show(req: Req, id: &str) -> ApiResult {
    let caller = req.caller()?;
    ok_json(hook_json(&hooks::get(&req.app, caller, id).await?))
}

pub async fn update(mut req: Req, id: &str) -> ApiResult {
    req.caller()?;
    let body: UpdateBody = req.json().await?;
    let caller = req.caller()?;
    ok_json(hook_json(&hooks::update(&req.app, caller, id, &body.endpoint, &body.secret, body.formatter).await?))
}

pub async fn delete(req: Req, id: &str) -> ApiResult {
    let caller = req.caller()?;
    let hook = hooks::delete(&req.app, caller, id).await?;
    let mut body = hook_json(&hook);
    body["deleted"] = json!(iso_ms(crate::store::now_ms()));
    ok_json(body)
}

pub async fn deliveries(req: Req, id: &str) -> ApiResult {
    let caller = req.caller()?;
    let list = hooks::deliveries(&req.app, caller, id).await?;
    let objects: Vec<Value> = list.iter().map(delivery_json).collect();
    ok_json(json!({ "objects": objects, "total": objects.len() }))
}
