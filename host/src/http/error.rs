//! The one error body of the API: `{"error": "<code>", "reason": "<message>"}`.

use http::{Method, StatusCode};
use serde_json::json;

use crate::domain::Error;

use super::{json_response, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// A 404 whose reason a person should read even on a read (see `into_response_for`).
    pub notable_miss: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        ApiError { status, code, reason: reason.into(), retry_after: None, notable_miss: false }
    }
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity", reason)
    }
    pub fn method_not_allowed(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", reason)
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error", "internal server error; see the server log")
    }

    /// The answer, with the reason in an `npm-notice` header.
    pub fn into_response(self) -> Response {
        self.response(true)
    }

    /// The answer to a request with `method`. npm prints only `error` of a
    /// body, but shows an `npm-notice` header: that is how the reason reaches
    /// the person at the terminal, so it is sent where a person should read it
    /// (refused writes, refused or blocked reads, failures), and not on the
    /// plain 404 of a read, which npm meets on its own (`npm publish` of a new
    /// package asks whether it exists, and would print "not found").
    pub fn into_response_for(self, method: &Method) -> Response {
        let plain_miss = self.status == StatusCode::NOT_FOUND && !self.notable_miss && matches!(*method, Method::GET | Method::HEAD);
        self.response(!plain_miss)
    }

    fn response(mut self, notice: bool) -> Response {
        // Reasons often quote upstream URLs: their credentials never leave the server.
        if self.reason.contains("://") {
            self.reason = crate::config::redact_url(&self.reason);
        }
        let mut resp = json_response(self.status, &json!({ "error": self.code, "reason": self.reason }));
        if notice {
            let notice: String = self.reason.chars().take(500).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
            if let Ok(v) = http::HeaderValue::from_str(&notice) {
                resp.headers_mut().insert("npm-notice", v);
            }
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::BadRequest(r) => ApiError::bad_request(r),
            Error::Invalid(r) => ApiError::invalid(r),
            Error::Unauthenticated(r) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", r),
            Error::Forbidden(r) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", r),
            Error::NotFound(r) => ApiError::not_found(r),
            Error::NotFoundUpstreamDown(r) => ApiError { notable_miss: true, ..ApiError::not_found(r) },
            Error::Conflict(r) => ApiError::new(StatusCode::CONFLICT, "conflict", r),
            Error::Unavailable(r) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", r),
            Error::Blocked(r) => ApiError::new(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "unavailable_for_legal_reasons", r),
            Error::TooManyRequests(r, secs) => {
                ApiError { retry_after: Some(secs), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", r) }
            }
            Error::Internal(r) => {
                tracing::error!(error = %r, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Error::from(e).into()
    }
}

/// Malformed JSON is a 400; JSON of the wrong shape (types, missing fields) a 422.
impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => ApiError::invalid(format!("invalid request body: {e}")),
            _ => ApiError::bad_request(format!("malformed JSON: {e}")),
        }
    }
}
