//! `/-/user/...`: npm's CouchDB-style login and adduser, profile lookup, logout.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::domain::tokens;
use crate::domain::users::{self, LoginRequest, COUCH_PREFIX};

use super::{json_response, ok_json, ApiError, ApiResult, Req};

fn name_from_couch_id(segment: &str) -> Result<&str, ApiError> {
    segment.strip_prefix(COUCH_PREFIX).ok_or_else(|| ApiError::not_found(format!("expected /-/user/{COUCH_PREFIX}NAME")))
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "_id")]
    id: Option<String>,
    name: Option<String>,
    password: Option<String>,
    email: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn login(mut req: Req, couch: &str) -> ApiResult {
    let url_name = name_from_couch_id(couch)?.to_string();
    let body: LoginBody = req.json().await?;
    let outcome = users::login_or_register(
        &req.app,
        LoginRequest {
            url_name,
            client_ip: req.client_ip,
            id: body.id,
            name: body.name,
            password: body.password,
            email: body.email.filter(|e| !e.is_empty()),
            kind: body.kind,
        },
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, &json!({ "ok": true, "id": outcome.id, "rev": outcome.rev, "token": outcome.token })))
}

pub async fn show(req: Req, couch: &str) -> ApiResult {
    let name = name_from_couch_id(couch)?;
    let user = users::find(&req.app, name).await?;
    let mut doc = json!({
        "_id": format!("{COUCH_PREFIX}{}", user.name),
        "_rev": user.rev,
        "name": user.name,
        "type": "user",
        "roles": [],
        "date": crate::util::iso_ms(user.updated_at),
    });
    // An address is private: only its owner and admins see it.
    if req.identity.as_ref().is_some_and(|id| id.is_admin || id.user_id == user.id) {
        doc["email"] = json!(user.email);
    }
    ok_json(doc)
}

pub async fn logout(req: Req, token: &str) -> ApiResult {
    let caller = req.caller()?;
    tokens::revoke(&req.app, caller, token).await?;
    ok_json(json!({ "ok": true }))
}
