//! The URL tree and the rules that hold before it.
//!
//! `route` is the whole URL tree (with `route_package_admin` and
//! `route_package` for the subtrees under a package name). `handle`, the entry
//! point of every request, and `prepare_and_route`, the rules every route gets
//! before dispatch (body size limit, control characters, authentication, CIDR
//! whitelists, readonly tokens), live here too rather than in `request`:
//! those rules are decisions about routes (login skips token authentication,
//! a readonly token may still log itself out), so the one file that says what
//! reaches a handler is this one. `request` stays a toolkit without policy.

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{header, HeaderValue, Method};
use hyper::body::Incoming;

use crate::domain::App;
use crate::domain::{auth, Identity};

use super::request::{decode_segment, parse_query, refuse_oversized, too_large, BodySlot};
use super::{admin, binaries, downloads, health, hooks, meta, package_admin, packages, registries, search, sync, tokens, users, web};
use super::{ApiError, ApiResult, Req, Response};

/// Routes that authenticate themselves from the body (login), so a stale token
/// in the client's config must not make them fail.
fn skips_token_auth(method: &Method, segs: &[&str]) -> bool {
    matches!(
        (method, segs),
        (&Method::PUT, ["-", "user", _]) | (&Method::POST, ["-", "v1", "login"]) | (&Method::GET, ["-", "v1", "done", _])
    )
}

/// Writes that a readonly token may still make: revoking that very token (logout).
fn readonly_exempt(method: &Method, segs: &[&str], identity: &Identity) -> bool {
    matches!((method, segs), (&Method::DELETE, ["-", "user", "token", raw]) if crate::domain::tokens::key_of(raw) == identity.token_key)
}

/// Entry point for every request: parse, authenticate, enforce the rules that
/// hold on every route (`prepare_and_route`), then dispatch (`route`).
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

/// The rules that hold on every route, before routing: body size limit,
/// control characters in the path and query, authentication (an unknown token
/// is 401 everywhere, except on login), CIDR whitelists, readonly tokens never
/// write (except to log out).
async fn prepare_and_route(app: Arc<App>, parts: http::request::Parts, body: BodySlot, client_ip: IpAddr) -> ApiResult {
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if len > app.config.max_body_bytes {
            let Some(mut incoming) = body.take() else { return Err(too_large(app.config.max_body_bytes)) };
            return Err(refuse_oversized(&mut incoming, app.config.max_body_bytes, &body).await);
        }
    }
    let path = parts.uri.path();
    let decoded: Vec<Cow<str>>;
    let seg_refs: Vec<&str> = if path.contains('%') {
        decoded = path.split('/').filter(|s| !s.is_empty()).map(decode_segment).collect::<Result<_, _>>()?;
        decoded.iter().map(AsRef::as_ref).collect()
    } else {
        // Nothing to decode (most requests): the segments are slices of the path.
        if path.bytes().any(|b| b.is_ascii_control()) {
            return Err(ApiError::bad_request("the path contains control characters"));
        }
        path.split('/').filter(|s| !s.is_empty()).collect()
    };
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
    let req = Req { app, method: parts.method, query, headers: parts.headers, client_ip, identity, body };
    route(req, &seg_refs).await
}

/// Splits a package name off the front of `segs`: `@s%2fn` (one segment),
/// `@s/n` (two) or `n`. Returns the name and the segments after it.
fn split_name<'a>(segs: &'a [&'a str]) -> Option<(Cow<'a, str>, &'a [&'a str])> {
    let first = *segs.first()?;
    if !first.contains('/') && first.starts_with('@') && segs.len() >= 2 {
        Some((Cow::Owned(format!("{first}/{}", segs[1])), &segs[2..]))
    } else {
        Some((Cow::Borrowed(first), &segs[1..]))
    }
}

/// A handler's answer to come, in its own allocation.
type Handler<'a> = Pin<Box<dyn Future<Output = ApiResult> + Send + 'a>>;

/// The URL tree, over the decoded path segments: the handler a request goes
/// to. Each handler's future is boxed and `route` itself awaits nothing: the
/// request's future is moved several times per request, and if it held the
/// handlers inline it would be as large as the largest one's (a publish's),
/// which cost every tarball read about 3 µs of copying.
fn route<'a>(req: Req, segs: &'a [&'a str]) -> Handler<'a> {
    let m = req.method.clone();
    let no_route =
        || -> Handler<'a> { Box::pin(std::future::ready(Err(ApiError::not_found(format!("no route for {m} /{}", segs.join("/")))))) };
    match (&m, segs) {
        (&Method::GET | &Method::HEAD, []) if web::wants_html(&req) => Box::pin(web::route(req, &[])),
        (&Method::GET | &Method::HEAD, []) => Box::pin(meta::root(req)),
        (_, ["-", "web", rest @ ..]) => Box::pin(web::route(req, rest)),
        (&Method::POST, ["-", "v1", "login"]) => Box::pin(web::login::start(req)),
        (&Method::GET, ["-", "v1", "done", id]) => Box::pin(web::login::done(req, id)),
        (&Method::GET | &Method::HEAD, ["-", "ping"]) => Box::pin(meta::ping(req)),
        (&Method::GET | &Method::HEAD, ["-", "health"]) => Box::pin(health::health(req)),
        (&Method::GET | &Method::HEAD, ["-", "ready"]) => Box::pin(health::ready(req)),
        (&Method::GET, ["-", "whoami"]) => Box::pin(meta::whoami(req)),

        (&Method::PUT, ["-", "user", couch]) => Box::pin(users::login(req, couch)),
        (&Method::GET, ["-", "user", couch]) => Box::pin(users::show(req, couch)),
        (&Method::DELETE, ["-", "user", "token", token]) => Box::pin(users::logout(req, token)),

        (&Method::GET, ["-", "npm", "v1", "tokens"]) => Box::pin(tokens::list(req)),
        (&Method::POST, ["-", "npm", "v1", "tokens"]) => Box::pin(tokens::create(req)),
        (&Method::DELETE, ["-", "npm", "v1", "tokens", "token", key]) => Box::pin(tokens::delete(req, key)),

        (&Method::GET, ["-", "npm", "v1", "hooks"]) => Box::pin(hooks::list(req)),
        (&Method::POST, ["-", "npm", "v1", "hooks", "hook"]) => Box::pin(hooks::create(req)),
        (&Method::GET, ["-", "npm", "v1", "hooks", "hook", id]) => Box::pin(hooks::show(req, id)),
        (&Method::PUT, ["-", "npm", "v1", "hooks", "hook", id]) => Box::pin(hooks::update(req, id)),
        (&Method::DELETE, ["-", "npm", "v1", "hooks", "hook", id]) => Box::pin(hooks::delete(req, id)),
        (&Method::GET, ["-", "npm", "v1", "hooks", "hook", id, "deliveries"]) => Box::pin(hooks::deliveries(req, id)),

        (&Method::GET, ["-", "admin", "plugins"]) => Box::pin(admin::plugins(req)),
        (&Method::POST, ["-", "admin", "plugins", "reload"]) => Box::pin(admin::reload(req)),
        (&Method::POST, ["-", "admin", "plugins", name, "test"]) => Box::pin(admin::test(req, name)),

        (&Method::GET, ["-", "registry"]) => Box::pin(registries::list(req)),
        (&Method::POST, ["-", "registry"]) => Box::pin(registries::create(req)),
        (&Method::GET, ["-", "registry", id]) => Box::pin(registries::show(req, id)),
        (&Method::PATCH, ["-", "registry", id]) => Box::pin(registries::update(req, id)),
        (&Method::DELETE, ["-", "registry", id]) => Box::pin(registries::delete(req, id)),
        (&Method::GET, ["-", "registry", id, "scopes"]) => Box::pin(registries::scopes(req, id)),
        (&Method::POST, ["-", "scope"]) => Box::pin(registries::create_scope(req)),
        (&Method::DELETE, ["-", "scope", id]) => Box::pin(registries::delete_scope(req, id)),

        (&Method::POST, ["-", "npm", "v1", "security", "advisories", "bulk"]) => Box::pin(sync::advisories(req)),
        (_, ["-", "npm", "v1", "security", "audits", ..]) => Box::pin(sync::audit_gone(req)),
        (&Method::GET, ["_changes"]) => Box::pin(sync::changes(req)),

        (&Method::GET, ["-", "v1", "search"]) => Box::pin(search::search(req)),
        (&Method::GET, ["-", "_view", "starredByUser"]) => Box::pin(search::starred_by_user(req)),

        (&Method::GET | &Method::HEAD, ["-", "binary"]) => Box::pin(binaries::list(req)),
        (&Method::POST, ["-", "binary", name, "sync"]) => Box::pin(binaries::create_sync(req, name)),
        (&Method::GET, ["-", "binary", name, "syncs", id]) => Box::pin(binaries::show_sync(req, name, id)),
        (&Method::GET, ["-", "binary", name, "syncs", id, "log"]) => Box::pin(binaries::sync_log(req, name, id)),
        (&Method::GET | &Method::HEAD, ["-", "binary", name, rest @ ..]) => Box::pin(binaries::browse(req, name, rest)),

        (_, ["-", "package", rest @ ..]) => {
            let Some((name, tail)) = split_name(rest) else { return no_route() };
            route_package_admin(req, &m, name, tail).unwrap_or_else(no_route)
        }
        (_, ["-", ..]) => no_route(),

        (&Method::GET, ["downloads", "point", period, rest @ ..]) if !rest.is_empty() => {
            let Some((name, [])) = split_name(rest) else { return no_route() };
            Box::pin(async move { downloads::point(req, period, &name).await })
        }
        (&Method::GET, ["downloads", "range", period, rest @ ..]) if !rest.is_empty() => {
            let Some((name, [])) = split_name(rest) else { return no_route() };
            Box::pin(async move { downloads::range(req, period, &name).await })
        }

        _ => {
            let Some((name, tail)) = split_name(segs) else { return no_route() };
            route_package(req, &m, name, tail).unwrap_or_else(no_route)
        }
    }
}

/// `/-/package/:name/...`: dist-tags, blocks, collaborators, sync tasks.
/// `None` when no route matches (the request is handed back untouched).
fn route_package_admin<'a>(req: Req, m: &Method, name: Cow<'a, str>, tail: &'a [&'a str]) -> Option<Handler<'a>> {
    Some(match (m, tail) {
        (&Method::GET, ["dist-tags"]) => Box::pin(async move { package_admin::dist_tags(req, &name).await }),
        (&Method::PUT | &Method::POST, ["dist-tags", tag]) => Box::pin(async move { package_admin::put_dist_tag(req, &name, tag).await }),
        (&Method::DELETE, ["dist-tags", tag]) => Box::pin(async move { package_admin::delete_dist_tag(req, &name, tag).await }),
        (&Method::GET, ["blocks"]) => Box::pin(async move { package_admin::get_block(req, &name).await }),
        (&Method::PUT, ["blocks"]) => Box::pin(async move { package_admin::put_block(req, &name).await }),
        (&Method::DELETE, ["blocks"]) => Box::pin(async move { package_admin::delete_block(req, &name).await }),
        (&Method::GET, ["collaborators"]) => Box::pin(async move { package_admin::collaborators(req, &name).await }),
        (&Method::PUT, ["syncs"]) => Box::pin(async move { sync::create(req, &name).await }),
        (&Method::GET, ["syncs", id]) => Box::pin(async move { sync::show(req, &name, id).await }),
        (&Method::GET, ["syncs", id, "log"]) => Box::pin(async move { sync::log(req, &name, id).await }),
        _ => return None,
    })
}

/// `/:name/...`: packuments, versions, tarballs, publishes and npm's write flows.
fn route_package<'a>(req: Req, m: &Method, name: Cow<'a, str>, tail: &'a [&'a str]) -> Option<Handler<'a>> {
    Some(match (m, tail) {
        (&Method::GET | &Method::HEAD, []) => Box::pin(async move { packages::packument(req, &name).await }),
        (&Method::PUT, []) => Box::pin(async move { packages::put(req, &name).await }),
        (&Method::GET | &Method::HEAD, ["-", file]) => Box::pin(async move { packages::tarball(req, &name, file).await }),
        // The Verdaccio-style alias `/@s/n/-/@s/n-1.0.0.tgz`.
        (&Method::GET | &Method::HEAD, ["-", _scope, file]) if name.starts_with('@') => {
            Box::pin(async move { packages::tarball(req, &name, file).await })
        }
        (&Method::PUT, ["sync"]) => Box::pin(async move { sync::create_legacy(req, &name).await }),
        (&Method::GET, ["sync", "log", id]) => Box::pin(async move { sync::log_legacy(req, &name, id).await }),
        (&Method::GET | &Method::HEAD, [spec]) => Box::pin(async move { packages::version(req, &name, spec).await }),
        (&Method::PUT, ["-rev", rev]) => Box::pin(async move { packages::put_rev(req, &name, rev).await }),
        (&Method::DELETE, ["-rev", rev]) => Box::pin(async move { packages::delete_rev(req, &name, rev).await }),
        (&Method::DELETE, ["-", file, "-rev", rev]) => Box::pin(async move { packages::delete_tarball(req, &name, file, rev).await }),
        _ => return None,
    })
}
