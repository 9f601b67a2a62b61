//! HTTP: routing, request parsing, response shapes. The only layer that knows
//! status codes and headers. One file per API area; `route` is the URL tree.

mod admin;
mod downloads;
mod hooks;
pub mod error;
mod meta;
mod package_admin;
mod packages;
mod registries;
mod search;
mod sync;
mod tokens;
mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use serde::de::DeserializeOwned;

use crate::domain::App;
use crate::domain::{auth, Identity};

pub use error::ApiError;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Response = http::Response<Body>;
pub type ApiResult = Result<Response, ApiError>;

/// One request as handlers see it: decoded path segments, the caller, and a
/// body that is read on demand within the configured size and time limits.
pub struct Req {
    pub app: Arc<App>,
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub client_ip: IpAddr,
    pub identity: Option<Identity>,
    body: BodySlot,
}

/// Where a request body stands. `handle` looks at it after the handler: a body
/// left unread is drained (bounded) before the answer, or the answer says
/// `Connection: close`, since closing a connection with unread data makes the
/// kernel reset it and the client loses the answer.
enum BodyState {
    Unread(Incoming),
    /// Read to its end.
    Read,
    /// Given up part way (too slow, too large, broken).
    Abandoned,
}

/// The request body, shared by the handler (which may read it) and `handle`.
#[derive(Clone)]
struct BodySlot(Arc<std::sync::Mutex<BodyState>>);

impl BodySlot {
    fn new(body: Incoming) -> Self {
        BodySlot(Arc::new(std::sync::Mutex::new(BodyState::Unread(body))))
    }

    /// The unread body; the slot says `Abandoned` until `set` says otherwise.
    fn take(&self) -> Option<Incoming> {
        let state = std::mem::replace(&mut *self.0.lock().expect("body lock"), BodyState::Abandoned);
        match state {
            BodyState::Unread(body) => Some(body),
            other => {
                *self.0.lock().expect("body lock") = other;
                None
            }
        }
    }

    fn set(&self, state: BodyState) {
        *self.0.lock().expect("body lock") = state;
    }

    /// After the handler: drains what it left unread (as much as an oversized
    /// body would be), and says whether the connection can be kept.
    async fn finish(&self, limit: u64, expects_continue: bool) -> bool {
        let Some(mut body) = self.take() else {
            return matches!(*self.0.lock().expect("body lock"), BodyState::Read);
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
async fn refuse_oversized(body: &mut Incoming, limit: u64, slot: &BodySlot) -> ApiError {
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

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body exceeds the limit of {limit} bytes (max_body_bytes)"),
    )
}

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

fn decode_segment(raw: &str) -> Result<String, ApiError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
    if decoded.chars().any(char::is_control) {
        return Err(ApiError::bad_request("the path contains control characters"));
    }
    Ok(decoded)
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
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

/// Routes that authenticate themselves from the body (login), so a stale token
/// in the client's config must not make them fail.
fn skips_token_auth(method: &Method, segs: &[&str]) -> bool {
    matches!((method, segs), (&Method::PUT, ["-", "user", _]))
}

/// Writes that a readonly token may still make: revoking that very token (logout).
fn readonly_exempt(method: &Method, segs: &[&str], identity: &Identity) -> bool {
    matches!((method, segs), (&Method::DELETE, ["-", "user", "token", raw]) if crate::domain::tokens::key_of(raw) == identity.token_key)
}

/// Entry point for every request: parse, authenticate, enforce the rules that
/// hold on every route, then dispatch.
///
/// A body the handler left unread is drained (bounded) before the answer goes
/// out; when that is not possible the answer carries `Connection: close`.
pub async fn handle(app: Arc<App>, request: http::Request<Incoming>, client_ip: IpAddr) -> Response {
    let (parts, body) = request.into_parts();
    let body = BodySlot::new(body);
    let method = parts.method.clone();
    let expects_continue = parts.headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let limit = app.config.max_body_bytes;
    let mut resp = match prepare_and_route(app, parts, body.clone(), client_ip).await {
        Ok(resp) => resp,
        Err(e) => e.into_response_for(&method),
    };
    if !body.finish(limit, expects_continue).await {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn prepare_and_route(app: Arc<App>, parts: http::request::Parts, body: BodySlot, client_ip: IpAddr) -> ApiResult {
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if len > app.config.max_body_bytes {
            let Some(mut incoming) = body.take() else { return Err(too_large(app.config.max_body_bytes)) };
            return Err(refuse_oversized(&mut incoming, app.config.max_body_bytes, &body).await);
        }
    }
    let path = parts.uri.path();
    let segments = path
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()?;
    let seg_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let identity = if skips_token_auth(&parts.method, &seg_refs) {
        None
    } else {
        let authorization = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
        auth::authenticate(&app, authorization, client_ip).await?
    };
    let is_write = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if is_write {
        if let Some(id) = &identity {
            if !readonly_exempt(&parts.method, &seg_refs, id) {
                auth::check_write(Some(id))?;
            }
        }
    }
    let query = parse_query(parts.uri.query());
    if query.iter().any(|(k, v)| k.chars().chain(v.chars()).any(char::is_control)) {
        return Err(ApiError::bad_request("the query string contains control characters"));
    }
    let req = Req {
        app,
        method: parts.method,
        query,
        segments,
        headers: parts.headers,
        client_ip,
        identity,
        body,
    };
    route(req).await
}

/// Splits a package name off the front of `segs`: `@s%2fn` (one segment),
/// `@s/n` (two) or `n`. Returns the name and the segments after it.
fn split_name<'a>(segs: &'a [&'a str]) -> Option<(String, &'a [&'a str])> {
    let first = *segs.first()?;
    if first.contains('/') {
        Some((first.to_string(), &segs[1..]))
    } else if first.starts_with('@') && segs.len() >= 2 {
        Some((format!("{first}/{}", segs[1]), &segs[2..]))
    } else {
        Some((first.to_string(), &segs[1..]))
    }
}

/// The URL tree.
async fn route(req: Req) -> ApiResult {
    let segs: Vec<String> = req.segments.clone();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.clone();
    let no_route = || Err(ApiError::not_found(format!("no route for {} /{}", m, segs.join("/"))));
    match (&m, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, []) => meta::root(req).await,
        (&Method::GET | &Method::HEAD, ["-", "ping"]) => meta::ping(req).await,
        (&Method::GET, ["-", "whoami"]) => meta::whoami(req).await,

        (&Method::PUT, ["-", "user", couch]) => users::login(req, couch).await,
        (&Method::GET, ["-", "user", couch]) => users::show(req, couch).await,
        (&Method::DELETE, ["-", "user", "token", token]) => users::logout(req, token).await,

        (&Method::GET, ["-", "npm", "v1", "tokens"]) => tokens::list(req).await,
        (&Method::POST, ["-", "npm", "v1", "tokens"]) => tokens::create(req).await,
        (&Method::DELETE, ["-", "npm", "v1", "tokens", "token", key]) => tokens::delete(req, key).await,

        (&Method::GET, ["-", "npm", "v1", "hooks"]) => hooks::list(req).await,
        (&Method::POST, ["-", "npm", "v1", "hooks", "hook"]) => hooks::create(req).await,
        (&Method::GET, ["-", "npm", "v1", "hooks", "hook", id]) => hooks::show(req, id).await,
        (&Method::PUT, ["-", "npm", "v1", "hooks", "hook", id]) => hooks::update(req, id).await,
        (&Method::DELETE, ["-", "npm", "v1", "hooks", "hook", id]) => hooks::delete(req, id).await,
        (&Method::GET, ["-", "npm", "v1", "hooks", "hook", id, "deliveries"]) => hooks::deliveries(req, id).await,

        (&Method::GET, ["-", "admin", "plugins"]) => admin::plugins(req).await,
        (&Method::POST, ["-", "admin", "plugins", "reload"]) => admin::reload(req).await,
        (&Method::POST, ["-", "admin", "plugins", name, "test"]) => admin::test(req, name).await,

        (&Method::GET, ["-", "registry"]) => registries::list(req).await,
        (&Method::POST, ["-", "registry"]) => registries::create(req).await,
        (&Method::GET, ["-", "registry", id]) => registries::show(req, id).await,
        (&Method::PATCH, ["-", "registry", id]) => registries::update(req, id).await,
        (&Method::DELETE, ["-", "registry", id]) => registries::delete(req, id).await,
        (&Method::GET, ["-", "registry", id, "scopes"]) => registries::scopes(req, id).await,
        (&Method::POST, ["-", "scope"]) => registries::create_scope(req).await,
        (&Method::DELETE, ["-", "scope", id]) => registries::delete_scope(req, id).await,

        (&Method::POST, ["-", "npm", "v1", "security", "advisories", "bulk"]) => sync::advisories(req).await,
        (_, ["-", "npm", "v1", "security", "audits", ..]) => sync::audit_gone(req).await,
        (&Method::GET, ["_changes"]) => sync::changes(req).await,

        (&Method::GET, ["-", "v1", "search"]) => search::search(req).await,
        (&Method::GET, ["-", "_view", "starredByUser"]) => search::starred_by_user(req).await,

        (_, ["-", "package", rest @ ..]) => {
            let Some((name, tail)) = split_name(rest) else { return no_route() };
            match (&m, tail) {
                (&Method::GET, ["dist-tags"]) => package_admin::dist_tags(req, &name).await,
                (&Method::PUT | &Method::POST, ["dist-tags", tag]) => package_admin::put_dist_tag(req, &name, tag).await,
                (&Method::DELETE, ["dist-tags", tag]) => package_admin::delete_dist_tag(req, &name, tag).await,
                (&Method::GET, ["blocks"]) => package_admin::get_block(req, &name).await,
                (&Method::PUT, ["blocks"]) => package_admin::put_block(req, &name).await,
                (&Method::DELETE, ["blocks"]) => package_admin::delete_block(req, &name).await,
                (&Method::GET, ["collaborators"]) => package_admin::collaborators(req, &name).await,
                (&Method::PUT, ["syncs"]) => sync::create(req, &name).await,
                (&Method::GET, ["syncs", id]) => sync::show(req, &name, id).await,
                (&Method::GET, ["syncs", id, "log"]) => sync::log(req, &name, id).await,
                _ => no_route(),
            }
        }
        (_, ["-", ..]) => no_route(),

        (&Method::GET, ["downloads", "point", period, rest @ ..]) if !rest.is_empty() => {
            let Some((name, [])) = split_name(rest) else { return no_route() };
            downloads::point(req, period, &name).await
        }
        (&Method::GET, ["downloads", "range", period, rest @ ..]) if !rest.is_empty() => {
            let Some((name, [])) = split_name(rest) else { return no_route() };
            downloads::range(req, period, &name).await
        }

        _ => {
            let Some((name, tail)) = split_name(&segs) else { return no_route() };
            match (&m, tail) {
                (&Method::GET | &Method::HEAD, []) => packages::packument(req, &name).await,
                (&Method::PUT, []) => packages::put(req, &name).await,
                (&Method::GET | &Method::HEAD, ["-", file]) => packages::tarball(req, &name, file).await,
                // The Verdaccio-style alias `/@s/n/-/@s/n-1.0.0.tgz`.
                (&Method::GET | &Method::HEAD, ["-", _scope, file]) if name.starts_with('@') => packages::tarball(req, &name, file).await,
                (&Method::PUT, ["sync"]) => sync::create_legacy(req, &name).await,
                (&Method::GET, ["sync", "log", id]) => sync::log_legacy(req, &name, id).await,
                (&Method::GET | &Method::HEAD, [spec]) => packages::version(req, &name, spec).await,
                (&Method::PUT, ["-rev", rev]) => packages::put_rev(req, &name, rev).await,
                (&Method::DELETE, ["-rev", rev]) => packages::delete_rev(req, &name, rev).await,
                (&Method::DELETE, ["-", file, "-rev", rev]) => packages::delete_tarball(req, &name, file, rev).await,
                _ => no_route(),
            }
        }
    }
}
