//! The request toolkit every handler uses: [`Req`] (query, headers, caller;
//! the router hands each handler the path segments it names), reading the
//! body within `max_body_bytes` and `request_timeout_secs`, refusing an
//! oversized body (only once the rest of it has been drained, so the client
//! sees the 413), draining what a handler left unread, query parsing and
//! segment decoding. No routing and no policy here:
//! `router` decides what reaches a handler.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use serde::de::DeserializeOwned;

use crate::domain::App;
use crate::domain::{auth, Identity};

use super::ApiError;

/// One request as handlers see it: query, headers, the caller, and a
/// body that is read on demand within the configured size and time limits.
pub struct Req {
    pub app: Arc<App>,
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub client_ip: IpAddr,
    pub identity: Option<Identity>,
    pub(super) body: BodySlot,
}

/// Where a request body stands. `handle` looks at it after the handler: a body
/// left unread is drained (bounded) before the answer, or the answer says
/// `Connection: close`, since closing a connection with unread data makes the
/// kernel reset it and the client loses the answer.
pub(super) enum BodyState {
    Unread(Incoming),
    /// Read to its end.
    Read,
    /// Given up part way (too slow, too large, broken).
    Abandoned,
}

/// The request body, shared by the handler (which may read it) and `handle`.
/// A request without a body (most reads) shares nothing: `None`, always `Read`.
#[derive(Clone)]
pub(super) struct BodySlot(Option<Arc<std::sync::Mutex<BodyState>>>);

impl BodySlot {
    pub(super) fn new(body: Incoming) -> Self {
        BodySlot((!body.is_end_stream()).then(|| Arc::new(std::sync::Mutex::new(BodyState::Unread(body)))))
    }

    /// The unread body; the slot says `Abandoned` until `set` says otherwise.
    pub(super) fn take(&self) -> Option<Incoming> {
        let slot = self.0.as_ref()?;
        let state = std::mem::replace(&mut *slot.lock().expect("body lock"), BodyState::Abandoned);
        match state {
            BodyState::Unread(body) => Some(body),
            other => {
                *slot.lock().expect("body lock") = other;
                None
            }
        }
    }

    pub(super) fn set(&self, state: BodyState) {
        if let Some(slot) = &self.0 {
            *slot.lock().expect("body lock") = state;
        }
    }

    /// After the handler: drains what it left unread (as much as an oversized
    /// body would be), and says whether the connection can be kept.
    pub(super) async fn finish(&self, limit: u64, expects_continue: bool) -> bool {
        let Some(slot) = &self.0 else { return true };
        let Some(mut body) = self.take() else {
            return matches!(*slot.lock().expect("body lock"), BodyState::Read);
        };
        // A client waiting for `100 Continue` has not sent the body: closing is cheaper.
        let done = body.is_end_stream() || (!expects_continue && drain(&mut body, limit).await);
        self.set(if done { BodyState::Read } else { BodyState::Abandoned });
        done
    }
}

impl Req {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The caller, or 401.
    pub fn caller(&self) -> Result<&Identity, ApiError> {
        Ok(auth::require(self.identity.as_ref())?)
    }

    /// Reads the whole body: 413 past `max_body_bytes`, 408 past `request_timeout_secs`.
    pub async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        let Some(mut body) = self.body.take() else { return Ok(Bytes::new()) };
        let limit = self.app.config.max_body_bytes;
        let timeout = Duration::from_secs(self.app.config.request_timeout_secs);
        let read_failed = |e: hyper::Error| ApiError::bad_request(format!("reading the request body failed: {e}"));
        let mut buf = bytes::BytesMut::new();
        let collect = async {
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map_err(read_failed)?.into_data() else { continue };
                if (buf.len() + data.len()) as u64 > limit {
                    return Ok(false);
                }
                buf.extend_from_slice(&data);
            }
            Ok::<_, ApiError>(true)
        };
        match tokio::time::timeout(timeout, collect).await {
            Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request body was not received in time")),
            Ok(Err(e)) => Err(e),
            Ok(Ok(true)) => {
                self.body.set(BodyState::Read);
                Ok(buf.freeze())
            }
            Ok(Ok(false)) => Err(refuse_oversized(&mut body, limit, &self.body).await),
        }
    }

    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.bytes().await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("a JSON request body is required"));
        }
        // NUL cannot be stored by every database; nothing legitimate needs it.
        if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
            return Err(ApiError::invalid("NUL characters are not allowed in request bodies"));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// How long, and how much of, the rest of an oversized body is read (and
/// dropped) before the 413.
const DRAIN_OVERSIZED_FOR: Duration = Duration::from_secs(5);
const DRAIN_OVERSIZED_BYTES: u64 = 64 * 1024 * 1024;

/// The 413 for a body past `limit`, given only once the rest of the body has
/// been read and dropped (up to the larger of the limit and 64 MiB, for at most
/// 5 s): closing a connection with unread data makes the kernel reset it, and
/// the client would lose the 413 and its reason.
pub(super) async fn refuse_oversized(body: &mut Incoming, limit: u64, slot: &BodySlot) -> ApiError {
    let done = drain(body, limit).await;
    slot.set(if done { BodyState::Read } else { BodyState::Abandoned });
    too_large(limit)
}

/// Reads and drops the rest of a body (up to the larger of `limit` and 64 MiB,
/// for at most 5 s); true when its end was reached.
async fn drain(body: &mut Incoming, limit: u64) -> bool {
    let drain = async {
        let mut drained = 0u64;
        loop {
            match body.frame().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    drained += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if drained > DRAIN_OVERSIZED_BYTES.max(limit) {
                        return false;
                    }
                }
            }
        }
    };
    tokio::time::timeout(DRAIN_OVERSIZED_FOR, drain).await.unwrap_or(false)
}

pub(super) fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body exceeds the limit of {limit} bytes (max_body_bytes)"),
    )
}

/// One path segment, percent-decoded (borrowed when there was nothing to
/// decode): 400 when it is not UTF-8 or holds control characters.
pub(super) fn decode_segment(raw: &str) -> Result<std::borrow::Cow<'_, str>, ApiError> {
    let decoded =
        percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
    if decoded.chars().any(char::is_control) {
        return Err(ApiError::bad_request("the path contains control characters"));
    }
    Ok(decoded)
}

/// The query string as decoded (name, value) pairs, in order (`+` is a space).
pub(super) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}
