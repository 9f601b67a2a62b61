//! Registry-level endpoints: `/`, `/-/ping`, `/-/whoami`.

use serde_json::json;

use super::{ok_json, ApiResult, Req};

pub async fn root(req: Req) -> ApiResult {
    ok_json(json!({
        "db_name": "registry",
        "engine": "cairn",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": req.app.store.backend(),
    }))
}

pub async fn ping(req: Req) -> ApiResult {
    req.app.store.ping().await?;
    ok_json(json!({ "pong": true }))
}

pub async fn whoami(req: Req) -> ApiResult {
    let caller = req.caller()?;
    ok_json(json!({ "username": caller.name }))
}
