//! Response shapes: the boxed [`Body`] every answer carries, and JSON answers.
//! Error bodies are built by `error.rs` from these.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::{Frame, SizeHint};

use crate::blob::{Blob, ByteStream};

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
pub struct FileHeaders {
    pub content_type: &'static str,
    pub cache_control: &'static str,
    /// The entity tag as sent (in double quotes).
    pub etag: Bytes,
    /// Milliseconds since the epoch.
    pub last_modified: Option<i64>,
}

/// A stored file's answer: its bytes streamed (none for HEAD) with
/// `Content-Length`, type, cache rules, CORS, `ETag` and `Last-Modified`.
pub fn blob_response(method: &Method, blob: Blob, h: &FileHeaders) -> Response {
    let body =
        if method == Method::HEAD { full(Bytes::new()) } else { BlobBody { stream: blob.stream, remaining: blob.size }.boxed_unsync() };
    let mut resp = http::Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(h.content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(h.cache_control));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_maybe_shared(h.etag.clone()) {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) = h.last_modified.and_then(chrono::DateTime::from_timestamp_millis) {
        if let Ok(v) = HeaderValue::from_str(&v.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
            headers.insert(header::LAST_MODIFIED, v);
        }
    }
    resp
}

/// A stored file's bytes as a body of known length: hyper learns the length
/// from the body itself and that it has ended with the last chunk (no poll
/// past it), so a file held in memory goes out in one write.
struct BlobBody {
    stream: ByteStream,
    remaining: u64,
}

impl hyper::body::Body for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            other => other.map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
