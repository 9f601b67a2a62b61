//! `/-/admin/...`: operator endpoints (admins only).

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use serde_json::{json, Value};

use crate::config::PluginKind;
use crate::domain::{packages::require_admin, Error};
use crate::plugins::inputs::{AuthInput, BlockInput, HookInput, UpstreamInput};
use crate::plugins::{types, Fault, LoadedPlugin};

use super::{ok_json, ApiError, ApiResult, Req};

pub async fn plugins(req: Req) -> ApiResult {
    require_admin(req.caller()?)?;
    let set = req.app.plugins.current();
    ok_json(json!({
        "plugins": set.summaries(),
        "loaded_at": set.loaded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "pooling_allocator": req.app.plugins.runtime().pooling,
    }))
}

pub async fn reload(req: Req) -> ApiResult {
    require_admin(req.caller()?)?;
    let started = Instant::now();
    match req.app.reload_plugins().await {
        Ok(set) => ok_json(json!({
            "ok": true,
            "loaded": set.summaries(),
            "took_ms": started.elapsed().as_secs_f64() * 1000.0,
        })),
        Err(e) => Err(ApiError::invalid(format!("reload failed, the previous plugins stay loaded: {e}"))),
    }
}

fn fault(plugin: &LoadedPlugin, f: Fault) -> ApiError {
    Error::Unavailable(format!("plugin {} failed: {}", plugin.name(), f.message)).into()
}

/// `POST /-/admin/plugins/:name/test`: calls one plugin with the given input
/// and shows its answer, so an operator can try a plugin before relying on it.
pub async fn test(mut req: Req, name: &str) -> ApiResult {
    require_admin(req.caller()?)?;
    let set = req.app.plugins.current();
    let plugin: Arc<LoadedPlugin> =
        set.get(name).cloned().ok_or_else(|| ApiError::not_found(format!("no plugin named {name} is loaded")))?;
    let body: Value = req.json().await?;
    match plugin.kind() {
        PluginKind::AuthPolicy => {
            let input: AuthInput = serde_json::from_value(body)?;
            let (act, package, caller) = input.into_call(req.client_ip).map_err(ApiError::invalid)?;
            let decision = plugin.authorize(act, package.as_ref(), &caller).await.map_err(|f| fault(&plugin, f))?;
            match decision {
                types::Decision::Allow => ok_json(json!({"decision": "allow"})),
                types::Decision::Deny(reason) => ok_json(json!({"decision": "deny", "reason": reason})),
            }
        }
        PluginKind::BlockRule => {
            let input: BlockInput = serde_json::from_value(body)?;
            let info = input.into_version().map_err(ApiError::invalid)?;
            let verdict = plugin.check(&info).await.map_err(|f| fault(&plugin, f))?;
            match verdict {
                types::Verdict::Accept => ok_json(json!({"verdict": "accept"})),
                types::Verdict::Block(reason) => ok_json(json!({"verdict": "block", "reason": reason})),
            }
        }
        PluginKind::UpstreamAdapter => test_upstream(&plugin, serde_json::from_value(body)?).await,
        PluginKind::HookFormatter => {
            let user = req.caller()?.name.clone();
            test_formatter(&plugin, serde_json::from_value(body)?, &user, &req.app.config.public_url).await
        }
    }
}

async fn test_upstream(plugin: &LoadedPlugin, input: UpstreamInput) -> ApiResult {
    let answer: Result<Value, Fault> = async {
        match (input.binary_path, input.version, input.url) {
            (Some(path), _, _) => {
                let entries = plugin.binary_list(&path).await?;
                let entries = entries.map(|list| {
                    list.into_iter()
                        .map(|e| json!({"name": e.name, "is_dir": e.is_dir, "url": e.url, "size": e.size, "date": e.date, "checksum": e.checksum}))
                        .collect::<Vec<_>>()
                });
                Ok(json!({ "entries": entries }))
            }
            (None, Some(version), Some(url)) => {
                let bytes = plugin.tarball(&input.package, &version, &url).await?;
                let sha512 = <sha2::Sha512 as sha2::Digest>::digest(&bytes);
                Ok(json!({
                    "tarball_size": bytes.len(),
                    "integrity": format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(sha512)),
                }))
            }
            _ => Ok(json!({"packument": plugin.packument(&input.package).await?})),
        }
    }
    .await;
    ok_json(answer.map_err(|f| fault(plugin, f))?)
}

/// A formatter's answer to `input`, with a context as if `user` owned a package hook on it.
async fn test_formatter(plugin: &LoadedPlugin, input: HookInput, user: &str, public_url: &str) -> ApiResult {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (event, context) = input.into_event(user, public_url, time);
    let out = plugin.format(&event, &context).await.map_err(|f| fault(plugin, f))?;
    ok_json(json!({
        "content_type": out.content_type,
        "headers": out.headers.iter().map(|h| json!([h.name, h.value])).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&out.body),
    }))
}
