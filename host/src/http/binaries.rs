//! The binary mirror: `/-/binary/` (the configured binaries), directory
//! listings and files under `/-/binary/:name/...` (files with ETag, HEAD,
//! Range and If-None-Match), and its sync tasks. Listings are HTML pages
//! (`binaries_html`) for a client that prefers `text/html`.

use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::domain::binaries::{self, Lookup};
use crate::domain::sync;
use crate::store::{BinaryEntry, Task};
use crate::util::iso_ms;

use super::binaries_html;
use super::response::{blob_response, FileHeaders};
use super::{full, json_response, ok_json, ApiError, ApiResult, Req, Response};

fn base(req: &Req, category: &str) -> String {
    format!("{}/-/binary/{category}", req.app.config.public_url)
}

/// `GET /-/binary/`.
pub async fn list(req: Req) -> ApiResult {
    if binaries_html::wants_html(&req) {
        return Ok(binaries_html::index(&req.app.config.public_url, &req.app.config.binaries));
    }
    let list: Vec<Value> = req
        .app
        .config
        .binaries
        .iter()
        .map(|b| {
            json!({"name": format!("{}/", b.category), "category": format!("{}/", b.category), "description": b.description,
                "distUrl": crate::config::strip_userinfo(&b.dist_url), "repoUrl": b.repo_url, "type": "dir", "url": format!("{}/", base(&req, &b.category))})
        })
        .collect();
    Ok(with_header(ok_json(Value::Array(list))?, header::VARY, "Accept".into()))
}

fn entry_json(req: &Req, e: &BinaryEntry) -> Value {
    let mut v = json!({"id": e.id, "category": e.category, "name": e.name, "date": e.date, "type": if e.is_dir { "dir" } else { "file" },
        "url": format!("{}{}{}", base(req, &e.category), e.parent, e.name), "modified": iso_ms(e.updated_at)});
    if !e.is_dir {
        v["size"] = json!(e.size);
    }
    v
}

/// `?since=` as milliseconds: an RFC 3339 time or a `YYYY-MM-DD` date.
fn since(req: &Req) -> Result<Option<i64>, ApiError> {
    let Some(raw) = req.query("since").filter(|s| !s.is_empty()) else { return Ok(None) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.timestamp_millis()));
    }
    match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => Ok(Some(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis())),
        Err(_) => Err(ApiError::bad_request(format!("since must be an RFC 3339 time or a YYYY-MM-DD date, got {raw:?}"))),
    }
}

fn limit(req: &Req) -> Result<Option<i64>, ApiError> {
    match req.query("limit").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=binaries::MAX_LIMIT).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!("limit must be 1-{}, got {raw:?}", binaries::MAX_LIMIT))),
        },
    }
}

/// `GET|HEAD /-/binary/:name/...`: a directory's entries or a file.
pub async fn browse(req: Req, category: &str, path: &[&str]) -> ApiResult {
    let found = binaries::lookup(&req.app, category, path, since(&req)?, limit(&req)?).await?;
    match found {
        Lookup::Dir { parent, entries } if binaries_html::wants_html(&req) => {
            Ok(binaries_html::dir(&req.app.config.public_url, category, &parent, &entries))
        }
        Lookup::Dir { entries, .. } => {
            let mut list: Vec<Value> = entries.iter().map(|e| entry_json(&req, e)).collect();
            if req.method == Method::HEAD {
                list.clear();
            }
            Ok(with_header(ok_json(Value::Array(list))?, header::VARY, "Accept".into()))
        }
        Lookup::File(entry) => file(&req, &entry).await,
    }
}

/// A single `bytes=` range of a file of `size` bytes: (start, length);
/// `Err` when it cannot be satisfied; `None` when absent or not one range.
fn range(req: &Req, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = req.header(header::RANGE)?.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-').filter(|_| !spec.contains(','))?;
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), Some(end)) if start <= end && start < size => Ok((start, end.min(size - 1) - start + 1)),
        (Some(start), None) if b.is_empty() && start < size => Ok((start, size - start)),
        (None, Some(n)) if a.is_empty() && n > 0 && size > 0 => Ok((size - n.min(size), n.min(size))),
        _ if a.parse::<u64>().is_err() && b.parse::<u64>().is_err() => return None,
        _ => Err(()),
    };
    Some(parsed)
}

fn with_header(mut resp: Response, name: header::HeaderName, value: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(name, v);
    }
    resp
}

async fn file(req: &Req, e: &BinaryEntry) -> ApiResult {
    let (Some(key), Some(etag)) = (e.blob_key.as_deref(), e.sha256.as_deref()) else { return Err(ApiError::internal()) };
    let quoted = bytes::Bytes::from(format!("\"{etag}\""));
    let headers = FileHeaders {
        content_type: "application/octet-stream",
        cache_control: "public, max-age=0, must-revalidate",
        etag: quoted.clone(),
        last_modified: Some(e.updated_at),
    };
    if req.header(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == quoted || t.trim() == "*")) {
        let mut resp = blob_response(&Method::HEAD, crate::blob::Blob::from_bytes(bytes::Bytes::new()), &headers);
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        return Ok(resp);
    }
    let size = e.size as u64;
    let gone = || ApiError::not_found(format!("{}{} is missing from the blob store", e.parent, e.name));
    let resp = match range(req, size) {
        None => {
            let blob = req.app.blobs.get(key).await.map_err(crate::domain::Error::from)?.ok_or_else(gone)?;
            blob_response(&req.method, blob, &headers)
        }
        Some(Ok((start, len))) => {
            let blob = req.app.blobs.get_range(key, start, len).await.map_err(crate::domain::Error::from)?.ok_or_else(gone)?;
            let mut resp = blob_response(&req.method, blob, &headers);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            with_header(resp, header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", start + len - 1))
        }
        Some(Err(())) => {
            let mut resp = http::Response::new(full(bytes::Bytes::new()));
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            with_header(resp, header::CONTENT_RANGE, format!("bytes */{size}"))
        }
    };
    Ok(with_header(resp, header::ACCEPT_RANGES, "bytes".into()))
}

fn log_url(req: &Req, category: &str, id: &str) -> String {
    format!("{}/syncs/{id}/log", base(req, category))
}

fn task_json(req: &Req, category: &str, t: &Task) -> Value {
    let mut v = json!({"ok": true, "id": t.id, "taskId": t.id, "type": t.kind, "state": t.state, "logUrl": log_url(req, category, &t.id), "attempts": t.attempts});
    if let Some(e) = &t.error {
        v["error"] = json!(e);
    }
    v
}

/// `POST /-/binary/:name/sync` (admins).
pub async fn create_sync(req: Req, category: &str) -> ApiResult {
    let task = binaries::request_sync(&req.app, req.identity.as_ref(), category).await?;
    Ok(json_response(StatusCode::CREATED, &task_json(&req, category, &task)))
}

pub async fn show_sync(req: Req, category: &str, id: &str) -> ApiResult {
    let task = binaries::find_task(&req.app, category, id).await?;
    ok_json(task_json(&req, category, &task))
}

pub async fn sync_log(req: Req, category: &str, id: &str) -> ApiResult {
    binaries::find_task(&req.app, category, id).await?;
    let text = sync::read_log(&req.app, id).await?;
    let mut resp = http::Response::new(full(text));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(resp)
}
