//! The npm package routes: packuments, versions, tarballs, publish and the
//! write flows npm drives through `PUT`/`DELETE` on the package document.

use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::blob::Blob;
use crate::domain::names;
use crate::domain::packages;
use crate::domain::packument::Doc;
use crate::domain::reads::{self, Reader};

use super::response::{blob_response, FileHeaders};
use super::{json_response, ok_json, ApiError, ApiResult, Req, Response};

pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// q-value of `wanted` in an Accept header, by the most specific matching range.
fn accept_q(accept: &str, wanted: &str) -> f32 {
    let wanted_type = wanted.split_once('/').map_or(wanted, |(t, _)| t);
    let mut best: Option<(u8, f32)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let range = pieces.next().unwrap_or("").trim();
        let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.trim().parse::<f32>().ok())).unwrap_or(1.0);
        let specificity = if range.eq_ignore_ascii_case(wanted) {
            3
        } else if range.strip_suffix("/*").is_some_and(|t| t.eq_ignore_ascii_case(wanted_type)) {
            2
        } else if range == "*/*" {
            1
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// True when the client asks for the abbreviated document by name (as pacote
/// does) and ranks it at least as high as full JSON. `*/*` alone means full.
pub fn wants_abbreviated(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let named = accept.split(',').any(|p| p.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(ABBREVIATED));
    let abbreviated = accept_q(accept, ABBREVIATED);
    named && abbreviated > 0.0 && abbreviated >= accept_q(accept, "application/json")
}

fn accepts_gzip(req: &Req) -> bool {
    req.header(header::ACCEPT_ENCODING).is_some_and(|v| {
        v.split(',').any(|p| {
            let mut it = p.split(';');
            it.next().is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip")) && !it.any(|q| q.trim() == "q=0")
        })
    })
}

fn serve_doc(req: &Req, doc: &Doc, content_type: &'static str) -> Response {
    let not_modified = req.header(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == doc.etag));
    let gzip = accepts_gzip(req);
    let mut resp = if not_modified {
        let mut r = http::Response::new(super::full(bytes::Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if gzip {
        let mut r = http::Response::new(super::full(doc.gzip.clone()));
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        http::Response::new(super::full(doc.body.clone()))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_maybe_shared(doc.etag.clone()) {
        h.insert(header::ETAG, v);
    }
    // Metadata changes with every publish: clients may keep it but must revalidate (cheap with the ETag).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=0, must-revalidate"));
    h.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    resp
}

fn reader(req: &Req) -> Reader<'_> {
    Reader::new(req.identity.as_ref(), req.client_ip)
}

/// `GET /<name>`: through `domain::reads`, which asks the policy before the
/// lookup (a refused caller learns nothing about whether the package exists,
/// and cannot make a proxy fetch it from the upstream).
pub async fn packument(req: Req, name: &str) -> ApiResult {
    let write = req.query("write") == Some("true");
    let fresh = write || req.query("cache") == Some("0");
    // The domain's future in its own allocation: with the request beside it,
    // one block would pass 1 KiB, which glibc's malloc serves slowly (no
    // thread cache, and it consolidates its free lists first).
    let entry = Box::pin(reads::packument(&req.app, reader(&req), name, fresh)).await?;
    if !write && wants_abbreviated(req.header(header::ACCEPT)) {
        Ok(serve_doc(&req, &entry.abbreviated, ABBREVIATED))
    } else {
        Ok(serve_doc(&req, &entry.full, "application/json"))
    }
}

pub async fn version(req: Req, name: &str, spec: &str) -> ApiResult {
    ok_json(reads::version(&req.app, reader(&req), name, spec).await?)
}

pub async fn tarball(req: Req, name: &str, file: &str) -> ApiResult {
    // In its own allocation, as for `packument` above.
    let t = Box::pin(reads::tarball(&req.app, reader(&req), name, file)).await?;
    tarball_response(&req, name, &t.version, t.etag, t.blob)
}

/// The response for a tarball read: streamed, counted as a download unless HEAD.
fn tarball_response(req: &Req, name: &str, version: &str, etag: bytes::Bytes, blob: Blob) -> ApiResult {
    if req.method != Method::HEAD {
        req.app.downloads.count(name, version);
    }
    let headers = FileHeaders {
        content_type: "application/octet-stream",
        cache_control: "public, max-age=31536000, immutable",
        etag,
        last_modified: None,
    };
    Ok(blob_response(&req.method, blob, &headers))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    // Existing packages are found by exact name; new names are checked on publish.
    // Reject what could never be a package name before touching storage.
    if name.is_empty()
        || name.len() > names::MAX_NAME_LEN
        || name.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        || name.matches('/').count() > 1
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!("invalid package name {name:?}")));
    }
    Ok(())
}

pub async fn put(mut req: Req, name: &str) -> ApiResult {
    check_name(name)?;
    req.caller()?;
    let body: Value = req.json().await?;
    let caller = req.caller()?;
    // A document with attachments is a publish; without, it is the whole
    // packument sent back with a change (deprecate, star).
    if body.get("_attachments").is_none() {
        let updated = packages::update(&req.app, caller, name, None, &body).await?;
        return Ok(json_response(StatusCode::OK, &json!({"ok": true, "id": name, "rev": updated.rev})));
    }
    let published = packages::publish(&req.app, caller, name, &body).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true, "id": name, "rev": published.rev, "success": true})))
}

pub async fn put_rev(mut req: Req, name: &str, rev: &str) -> ApiResult {
    check_name(name)?;
    req.caller()?;
    let body: Value = req.json().await?;
    let caller = req.caller()?;
    let updated = packages::update(&req.app, caller, name, Some(rev), &body).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"ok": true, "id": name, "rev": updated.rev})))
}

pub async fn delete_rev(req: Req, name: &str, rev: &str) -> ApiResult {
    check_name(name)?;
    let caller = req.caller()?;
    packages::unpublish_package(&req.app, caller, name, rev).await?;
    ok_json(json!({"ok": true}))
}

pub async fn delete_tarball(req: Req, name: &str, file: &str, rev: &str) -> ApiResult {
    check_name(name)?;
    let caller = req.caller()?;
    packages::delete_tarball(&req.app, caller, name, file, rev).await?;
    ok_json(json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::wants_abbreviated;

    #[test]
    fn accept_negotiation() {
        assert!(wants_abbreviated(Some("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*")));
        assert!(wants_abbreviated(Some("application/vnd.npm.install-v1+json")));
        assert!(!wants_abbreviated(Some("*/*")));
        assert!(!wants_abbreviated(Some("application/json")));
        assert!(!wants_abbreviated(Some("application/json, application/vnd.npm.install-v1+json; q=0.5")));
        assert!(!wants_abbreviated(Some("application/vnd.npm.install-v1+json; q=0")));
        assert!(!wants_abbreviated(None));
    }
}
