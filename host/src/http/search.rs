//! `/-/v1/search` and `/-/_view/starredByUser`.

use serde_json::{json, Value};

use crate::domain::packument::Cached;
use crate::domain::reads::{self, Reader};
use crate::domain::search;

use super::{ok_json, ApiError, ApiResult, Req};

/// An integer query parameter, clamped to `min..=max` as npm's registry does;
/// 400 when it is not an integer.
fn int_param(req: &Req, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    match req.query(name).map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => {
            v.parse::<i64>().map(|n| n.clamp(min, max)).map_err(|_| ApiError::bad_request(format!("{name} must be an integer, got {v:?}")))
        }
    }
}

pub async fn search(req: Req) -> ApiResult {
    let text = req.query("text").unwrap_or("").trim().to_string();
    if text.is_empty() {
        return Err(ApiError::bad_request("text is required: /-/v1/search?text=WORDS"));
    }
    let size = int_param(&req, "size", 20, 1, 250)?;
    let from = int_param(&req, "from", 0, 0, 1_000_000)?;
    let started = std::time::Instant::now();
    let reader = Reader::new(req.identity.as_ref(), req.client_ip);
    let page = search::search(&req.app, reader, &text, from, size).await?;
    let mut objects: Vec<Value> = page.local.iter().map(|entry| result_object(&req.app.config.public_url, &text, entry)).collect();
    objects.extend(page.upstream);
    ok_json(json!({
        "objects": objects,
        "total": page.total,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "took_ms": started.elapsed().as_millis() as u64,
    }))
}

/// The search result object of a local package, in npm's shape.
fn result_object(public_url: &str, text: &str, entry: &Cached) -> Value {
    let name = entry.name.as_str();
    let doc = &entry.value;
    let latest = doc["dist-tags"]["latest"].as_str().unwrap_or("").to_string();
    let manifest = &doc["versions"][&latest];
    let date = doc["time"][&latest].clone();
    let maintainers: Vec<Value> = doc["maintainers"]
        .as_array()
        .map(|a| a.iter().map(|m| json!({"username": m["name"], "email": m["email"]})).collect())
        .unwrap_or_default();
    let publisher = manifest
        .get("_npmUser")
        .map(|u| json!({"username": u["name"], "email": u["email"]}))
        .unwrap_or_else(|| maintainers.first().cloned().unwrap_or(Value::Null));
    let exact = name == text;
    let score = if exact {
        1.0
    } else if name.starts_with(text) {
        0.8
    } else {
        0.5
    };
    let mut links = json!({"npm": format!("{public_url}/{name}")});
    if let Some(h) = manifest.get("homepage").and_then(Value::as_str) {
        links["homepage"] = json!(h);
    }
    if let Some(r) = manifest.get("repository") {
        let url = r.get("url").or(Some(r)).and_then(Value::as_str);
        if let Some(url) = url {
            links["repository"] = json!(url);
        }
    }
    if let Some(b) = manifest.get("bugs").and_then(|b| b.get("url").or(Some(b))).and_then(Value::as_str) {
        links["bugs"] = json!(b);
    }
    let scope = name.strip_prefix('@').and_then(|n| n.split_once('/')).map_or("unscoped", |(s, _)| s);
    json!({
        "package": {
            "name": name,
            "scope": scope,
            "version": latest,
            "description": manifest.get("description").cloned().unwrap_or(Value::Null),
            "keywords": manifest.get("keywords").cloned().unwrap_or_else(|| json!([])),
            "date": date,
            "links": links,
            "publisher": publisher,
            "maintainers": maintainers,
        },
        "score": {"final": score, "detail": {"quality": score, "popularity": score, "maintenance": score}},
        "searchScore": score,
    })
}

pub async fn starred_by_user(req: Req) -> ApiResult {
    let key = req.query("key").ok_or_else(|| ApiError::invalid("key is required, e.g. ?key=\"alice\""))?;
    let user = serde_json::from_str::<String>(key).unwrap_or_else(|_| key.to_string());
    let packages = reads::starred_by(&req.app, Reader::new(req.identity.as_ref(), req.client_ip), &user).await?;
    ok_json(json!({"rows": packages.into_iter().map(|p| json!({"key": user, "value": p})).collect::<Vec<_>>()}))
}
