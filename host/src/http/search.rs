//! `/-/v1/search` and `/-/_view/starredByUser`.

use serde_json::{json, Value};

use crate::domain::packument::{self, Lookup};

use super::{ok_json, ApiError, ApiResult, Req};

fn int_param(req: &Req, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    match req.query(name) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!("{name} must be an integer from {min} to {max}"))),
        },
    }
}

pub async fn search(req: Req) -> ApiResult {
    let text = req.query("text").unwrap_or("").trim().to_string();
    let size = int_param(&req, "size", 20, 1, 250)?;
    let from = int_param(&req, "from", 0, 0, 1_000_000)?;
    let started = std::time::Instant::now();
    let (names, total) = req.app.store.search(&text, from, size).await?;
    let mut objects = Vec::new();
    for name in names {
        let Lookup::Found(entry) = packument::lookup(&req.app, &name, false).await? else { continue };
        if entry.blocked.is_some() {
            continue;
        }
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
        let score = if exact { 1.0 } else if name.starts_with(&text) { 0.8 } else { 0.5 };
        let mut links = json!({"npm": format!("{}/{}", req.app.config.public_url, name)});
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
        objects.push(json!({
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
        }));
    }
    ok_json(json!({
        "objects": objects,
        "total": total,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "took_ms": started.elapsed().as_millis() as u64,
    }))
}

pub async fn starred_by_user(req: Req) -> ApiResult {
    let key = req.query("key").ok_or_else(|| ApiError::invalid("key is required, e.g. ?key=\"alice\""))?;
    let user = serde_json::from_str::<String>(key).unwrap_or_else(|_| key.to_string());
    let packages = req.app.store.starred_by(&user).await?;
    ok_json(json!({"rows": packages.into_iter().map(|p| json!({"key": user, "value": p})).collect::<Vec<_>>()}))
}
