//! npm's web login. `POST /-/v1/login` answers `{loginUrl, doneUrl}`; the
//! person opens the loginUrl (`/-/web/login/ID`) and signs in there (or, when
//! already signed in, confirms); npm polls the doneUrl (`/-/v1/done/ID`),
//! which answers 202 with `Retry-After` until then and the token once after.

use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::domain::{sessions, users, web_login, Error};

use super::super::{json_response, ApiError, ApiResult, Req, Response};
use super::ctx::{field, form, SESSION_COOKIE};
use super::{views, Ctx};

/// Seconds npm waits between two polls of the doneUrl.
const POLL_SECS: u64 = 1;

/// `POST /-/v1/login`. With the web UI off this route does not exist (npm then
/// falls back to its username/password prompt).
pub async fn start(mut req: Req) -> ApiResult {
    if !req.app.config.web.enabled {
        return Err(ApiError::not_found("no route for POST /-/v1/login (the web UI is disabled)"));
    }
    let body = req.bytes().await?;
    let hostname = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("hostname")?.as_str().map(str::to_string));
    let started = web_login::start(&req.app, hostname.as_deref()).await?;
    let base = &req.app.config.public_url;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "loginUrl": format!("{base}/-/web/login/{}", started.login_id),
            "doneUrl": format!("{base}/-/v1/done/{}", started.done_id),
        }),
    ))
}

/// `GET /-/v1/done/ID`: 202 with `Retry-After` while pending, then `{token}` once.
pub async fn done(req: Req, id: &str) -> ApiResult {
    match web_login::poll(&req.app, id).await? {
        web_login::Done::Pending => {
            let mut resp = json_response(StatusCode::ACCEPTED, &json!({}));
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(POLL_SECS));
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        web_login::Done::Token(token) => {
            let mut resp = json_response(StatusCode::OK, &json!({ "token": token }));
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
    }
}

/// `GET /-/web/login/ID`: the sign-in form (or a confirmation when signed in),
/// and a registration form when public registration is on (npm's web `adduser`).
pub async fn page(req: &Req, ctx: &Ctx, id: &str) -> Result<Response, ApiError> {
    let login = web_login::pending(&req.app, id).await?;
    let register = req.app.config.auth.allow_public_registration;
    Ok(ctx.html(StatusCode::OK, views::login::cli_login(ctx, id, login.hostname.as_deref(), register, None)))
}

/// `POST /-/web/login/ID`: signs in, registers (with an email) or confirms as
/// the signed-in person, and lets npm's poll take its token. A sign-in or a
/// registration also starts a session. A refused attempt shows the forms again.
pub async fn submit(mut req: Req, ctx: &mut Ctx, id: &str) -> Result<Response, ApiError> {
    let fields = form(&mut req).await?;
    ctx.check_csrf(&fields)?;
    let login = web_login::pending(&req.app, id).await?;
    let (name, password, email) = (field(&fields, "name"), field(&fields, "password"), field(&fields, "email"));
    let attempt = match (&ctx.identity, name) {
        (Some(person), "") => users::find(&req.app, &person.name).await.map(|u| (u, false)),
        _ if !email.is_empty() => users::register(&req.app, name, email, password).await.map(|u| (u, true)),
        _ => users::authenticate(&req.app, name, password, req.client_ip).await.map(|u| (u, true)),
    };
    let user = match attempt {
        Ok((user, fresh)) => {
            if fresh {
                let raw = sessions::create(&req.app, &user).await?;
                ctx.set_cookie(SESSION_COOKIE, &raw, Some(sessions::TTL_MS / 1000));
            }
            user
        }
        Err(e @ (Error::Unauthenticated(_) | Error::Invalid(_) | Error::Conflict(_) | Error::Forbidden(_))) => {
            let api = ApiError::from(e);
            let register = req.app.config.auth.allow_public_registration;
            let page = views::login::cli_login(ctx, id, login.hostname.as_deref(), register, Some(&api.reason));
            return Ok(ctx.html(api.status, page));
        }
        Err(e) => return Err(e.into()),
    };
    web_login::approve(&req.app, id, &user).await?;
    Ok(ctx.html(StatusCode::OK, views::login::cli_done(ctx, &user.name)))
}
