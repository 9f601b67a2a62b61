//! Response shapes: the boxed [`Body`] every answer carries, and JSON answers.
//! Error bodies are built by `error.rs` from these.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};

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
