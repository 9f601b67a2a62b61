//! Registry-level endpoints: `/`, `/-/ping`, `/-/whoami`.

use serde_json::json;

use super::{ok_json, ApiResult, Req};

/// `GET /` for clients that do not ask for HTML (browsers get the web UI's home page).
pub async fn root(req: Req) -> ApiResult {
    let mut resp = ok_json(json!({
        "db_name": "registry",
        "engine": "cairn",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": req.app.store.backend(),
    }))?;
    if req.app.config.web.enabled {
        // The answer depends on `Accept`: a cache must not hand this to a browser.
        resp.headers_mut().insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
    }
    Ok(resp)
}

pub async fn ping(req: Req) -> ApiResult {
    req.app.store.ping().await?;
    ok_json(json!({ "pong": true }))
}

pub async fn whoami(req: Req) -> ApiResult {
    let caller = req.caller()?;
    ok_json(json!({ "username": caller.name }))
}
