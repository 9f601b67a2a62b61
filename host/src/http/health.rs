//! `GET /-/health` (the process is alive) and `GET /-/ready` (it can serve:
//! 503 with the error body when the database or the blob store cannot be
//! reached, and from SIGTERM on while it drains), for load balancers.

use serde_json::json;

use crate::domain::health;

use super::{ok_json, ApiResult, Req};

pub async fn health(_req: Req) -> ApiResult {
    ok_json(json!({ "ok": true }))
}

pub async fn ready(req: Req) -> ApiResult {
    health::ready(&req.app).await?;
    ok_json(json!({ "ok": true }))
}
