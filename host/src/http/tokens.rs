//! `/-/npm/v1/tokens`: create, list and revoke access tokens.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::tokens::{self, NewToken};
use crate::store::Token;
use crate::util::iso_ms;

use super::{json_response, ok_json, ApiResult, Req};

#[derive(Deserialize)]
struct CreateBody {
    password: String,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    automation: bool,
    #[serde(default)]
    cidr_whitelist: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
}

/// A token as shown: `shown` is the raw token at creation, the masked form after.
fn token_json(t: &Token, shown: &str) -> Value {
    json!({
        "token": shown,
        "key": t.key,
        "name": t.name,
        "cidr_whitelist": if t.cidr_whitelist.is_empty() { Value::Null } else { json!(t.cidr_whitelist) },
        "readonly": t.readonly,
        "automation": t.automation,
        "created": iso_ms(t.created_at),
        "updated": iso_ms(t.updated_at),
        "lastUsedAt": t.last_used_at.map(iso_ms),
    })
}

pub async fn create(mut req: Req) -> ApiResult {
    req.caller()?;
    let body: CreateBody = req.json().await?;
    let caller = req.caller()?;
    let new = NewToken {
        name: body.name,
        readonly: body.readonly,
        automation: body.automation,
        cidr_whitelist: body.cidr_whitelist.unwrap_or_default(),
    };
    let issued = tokens::create_with_password(&req.app, caller, &body.password, new).await?;
    Ok(json_response(StatusCode::CREATED, &token_json(&issued.token, &issued.raw)))
}

pub async fn list(req: Req) -> ApiResult {
    let caller = req.caller()?;
    let tokens = tokens::list(&req.app, caller).await?;
    let objects: Vec<Value> = tokens.iter().map(|t| token_json(t, &t.mark)).collect();
    ok_json(json!({ "objects": objects, "total": objects.len(), "urls": {} }))
}

pub async fn delete(req: Req, key: &str) -> ApiResult {
    let caller = req.caller()?;
    tokens::revoke(&req.app, caller, key).await?;
    ok_json(json!({ "ok": true }))
}
