//! Package sync: `/-/package/:name/syncs[...]`, the legacy `/:name/sync` forms,
//! `/_changes` and the audit forwarder.

use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::changes;
use crate::domain::reads::Reader;
use crate::domain::sync::{self, SyncOptions, SyncRequest};
use crate::domain::upstream::Upstream;
use crate::store::Task;

use super::{full, json_response, ok_json, ApiError, ApiResult, Req};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SyncBody {
    #[serde(default)]
    skip_dependencies: bool,
    #[serde(default)]
    sync_download_data: bool,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    force_sync_history: bool,
    tips: Option<String>,
    registry_name: Option<String>,
    /// A JSON string holding an array of versions.
    specific_versions: Option<String>,
}

fn log_url(req: &Req, name: &str, id: &str) -> String {
    format!("{}/-/package/{name}/syncs/{id}/log", req.app.config.public_url)
}

fn parse_specific(raw: Option<String>) -> Result<Option<Vec<String>>, ApiError> {
    match raw {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => match serde_json::from_str::<Vec<String>>(&s) {
            Ok(list) if !list.is_empty() => Ok(Some(list)),
            _ => Err(ApiError::invalid(format!("specificVersions must be a JSON string holding a non-empty array of versions, got {s:?}"))),
        },
    }
}

pub async fn create(mut req: Req, name: &str) -> ApiResult {
    let bytes = req.bytes().await?;
    let body: SyncBody = if bytes.iter().all(u8::is_ascii_whitespace) { SyncBody::default() } else { serde_json::from_slice(&bytes)? };
    let options = SyncOptions {
        skip_dependencies: body.skip_dependencies,
        sync_download_data: body.sync_download_data,
        force_sync_history: body.force_sync_history,
        tips: body.tips,
        registry_name: body.registry_name,
        specific_versions: parse_specific(body.specific_versions)?,
    };
    let task = sync::request(&req.app, req.identity.as_ref(), req.client_ip, name, SyncRequest { options, force: body.force }).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true, "id": task.id, "type": task.kind, "state": task.state})))
}

/// Legacy `PUT /:name/sync?nodeps=true`.
pub async fn create_legacy(req: Req, name: &str) -> ApiResult {
    let options = SyncOptions { skip_dependencies: req.query("nodeps") == Some("true"), ..Default::default() };
    let task = sync::request(&req.app, req.identity.as_ref(), req.client_ip, name, SyncRequest { options, force: false }).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true, "logId": task.id})))
}

fn task_json(req: &Req, name: &str, t: &Task) -> Value {
    let mut v =
        json!({"ok": true, "id": t.id, "type": t.kind, "state": t.state, "logUrl": log_url(req, name, &t.id), "attempts": t.attempts});
    if let Some(e) = &t.error {
        v["error"] = json!(e);
    }
    v
}

pub async fn show(req: Req, name: &str, id: &str) -> ApiResult {
    let task = sync::find_task(&req.app, name, id).await?;
    ok_json(task_json(&req, name, &task))
}

pub async fn log(req: Req, name: &str, id: &str) -> ApiResult {
    sync::find_task(&req.app, name, id).await?;
    let text = sync::read_log(&req.app, id).await?;
    let mut resp = http::Response::new(full(text));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(resp)
}

/// Legacy `GET /:name/sync/log/:id`.
pub async fn log_legacy(req: Req, name: &str, id: &str) -> ApiResult {
    let task = sync::find_task(&req.app, name, id).await?;
    let text = sync::read_log(&req.app, id).await?;
    let done = sync::TaskState::parse(&task.state).is_some_and(sync::TaskState::is_finished);
    let mut v = json!({"ok": true, "syncDone": done, "log": text, "logUrl": log_url(&req, name, id), "state": task.state});
    if let Some(e) = &task.error {
        v["error"] = json!(e);
    }
    ok_json(v)
}

pub async fn changes(req: Req) -> ApiResult {
    let reader = Reader::new(req.identity.as_ref(), req.client_ip);
    ok_json(changes::feed(&req.app, reader, req.query("since"), req.query("limit")).await?)
}

/// `POST /-/npm/v1/security/advisories/bulk`, forwarded to the default upstream.
pub async fn advisories(mut req: Req) -> ApiResult {
    let (all, _) = req.app.store.list_registries(0, 1000).await?;
    let Some(registry) = all.into_iter().find(|r| r.is_default) else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "audit needs a default upstream registry; none is configured",
        ));
    };
    let content_type = req.header(header::CONTENT_TYPE).map(str::to_string);
    let content_encoding = req.header(header::CONTENT_ENCODING).map(str::to_string);
    let body = req.bytes().await?;
    let name = registry.name.clone();
    let failed = |why: String| {
        ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", format!("the audit service of the upstream registry {name} {why}"))
    };
    let upstream = Upstream::for_registry(&req.app, registry).map_err(|e| failed(format!("cannot be used: {e}")))?;
    let (status, ct, bytes) = upstream
        .post_raw("/-/npm/v1/security/advisories/bulk", body, content_type.as_deref(), content_encoding.as_deref())
        .await
        .map_err(|e| failed(format!("is unreachable: {e}")))?;
    if !usable_audit_answer(status, &bytes) {
        let said =
            serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v.get("error").and_then(Value::as_str).map(|e| format!(" ({e})")));
        return Err(failed(format!("answered {status}{}; npm audit needs its advisories", said.unwrap_or_default())));
    }
    let mut resp = http::Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// An audit answer worth passing on as it is: a JSON object with a 2xx, or
/// with a 4xx about the request itself. A 5xx, a 404 or 405 (no audit service
/// there) or a body that is not JSON becomes a 502 naming the upstream.
fn usable_audit_answer(status: u16, body: &[u8]) -> bool {
    let json_object = || serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_object());
    match status {
        200..=299 => json_object(),
        404 | 405 => false,
        400..=499 => json_object(),
        _ => false,
    }
}

/// The retired audit endpoints.
pub async fn audit_gone(_req: Req) -> ApiResult {
    Err(ApiError::new(StatusCode::GONE, "gone", "this audit endpoint is retired; npm uses /-/npm/v1/security/advisories/bulk"))
}
