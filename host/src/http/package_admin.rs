//! `/-/package/:name/...`: dist-tags, blocks, collaborators.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::domain::packages;
use crate::domain::reads::{self, Reader};
use crate::util::iso_ms;

use super::{json_response, ok_json, ApiError, ApiResult, Req};

pub async fn dist_tags(req: Req, name: &str) -> ApiResult {
    let tags = reads::dist_tags(&req.app, Reader::new(req.identity.as_ref(), req.client_ip), name).await?;
    ok_json(Value::Object(tags.into_iter().map(|(t, v)| (t, Value::String(v))).collect::<Map<_, _>>()))
}

pub async fn put_dist_tag(mut req: Req, name: &str, tag: &str) -> ApiResult {
    req.caller()?;
    let body: Value = req.json().await?;
    let version = body.as_str().ok_or_else(|| ApiError::invalid("the body must be a JSON string naming a version"))?.to_string();
    let caller = req.caller()?;
    packages::set_dist_tag(&req.app, caller, name, tag, &version).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true})))
}

pub async fn delete_dist_tag(req: Req, name: &str, tag: &str) -> ApiResult {
    let caller = req.caller()?;
    packages::remove_dist_tag(&req.app, caller, name, tag).await?;
    ok_json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct BlockBody {
    reason: String,
}

pub async fn put_block(mut req: Req, name: &str) -> ApiResult {
    let caller = req.caller()?;
    packages::require_admin(caller)?;
    let body: BlockBody = req.json().await?;
    let caller = req.caller()?;
    let (block, exists) = packages::block(&req.app, caller, name, &body.reason).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"ok": true, "id": block.id, "package_id": if exists { Value::String(block.package) } else { Value::Null }}),
    ))
}

pub async fn delete_block(req: Req, name: &str) -> ApiResult {
    let caller = req.caller()?;
    packages::unblock(&req.app, caller, name).await?;
    ok_json(json!({"ok": true}))
}

pub async fn get_block(req: Req, name: &str) -> ApiResult {
    match reads::block(&req.app, Reader::new(req.identity.as_ref(), req.client_ip), name).await? {
        Some(b) => ok_json(json!({
            "blocked": true,
            "reason": format!("{} (operator: {})", b.reason, b.operator),
            "createdAt": iso_ms(b.created_at),
        })),
        None => ok_json(json!({"blocked": false, "reason": null, "createdAt": null})),
    }
}

pub async fn collaborators(req: Req, name: &str) -> ApiResult {
    let maintainers = reads::maintainers(&req.app, Reader::new(req.identity.as_ref(), req.client_ip), name).await?;
    ok_json(Value::Object(maintainers.into_iter().map(|m| (m, json!("read-write"))).collect()))
}
