//! Response shapes: the boxed [`Body`] every answer carries, and JSON answers.
//! Error bodies are built by `error.rs` from these.

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;

use crate::blob::Blob;

use super::ApiError;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Response = http::Response<Body>;
pub type ApiResult = Result<Response, ApiError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut resp = http::Response::new(full(serde_json::to_vec(value).expect("JSON values serialize")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn ok_json(value: serde_json::Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, &value))
}

/// The headers of a stored file (tarball, mirrored binary).
pub struct FileHeaders<'a> {
    pub content_type: &'static str,
    pub cache_control: &'static str,
    /// Sent quoted.
    pub etag: &'a str,
    /// Milliseconds since the epoch.
    pub last_modified: Option<i64>,
}

/// A stored file's answer: its bytes streamed (none for HEAD) with
/// `Content-Length`, type, cache rules, CORS, `ETag` and `Last-Modified`.
pub fn blob_response(method: &Method, blob: Blob, h: &FileHeaders) -> Response {
    let body = if method == Method::HEAD { full(Bytes::new()) } else { StreamBody::new(blob.stream.map_ok(Frame::data)).boxed_unsync() };
    let mut resp = http::Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(h.content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(h.cache_control));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", h.etag)) {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) = h.last_modified.and_then(chrono::DateTime::from_timestamp_millis) {
        if let Ok(v) = HeaderValue::from_str(&v.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
            headers.insert(header::LAST_MODIFIED, v);
        }
    }
    resp
}
