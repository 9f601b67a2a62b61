//! The web UI for people: server-rendered pages (maud templates compiled into
//! the binary, `views.rs`), chosen by `Accept: text/html` on `/` and served
//! under `/-/web/`, plus npm's web login (`POST /-/v1/login`, `login.rs`).
//! One file per page group: `home` (home, search), `package`, `user` (sign
//! in/out, the user page, tokens), `admin` (tasks and logs, blocks, registries,
//! plugins), `hooks` (webhooks and their deliveries); `assets` (CSS, JS, logo: every asset is
//! served by Cairn), `readme` (Markdown rendered and sanitised), `ctx` (the
//! session cookie, CSRF tokens, the page answer and its headers).
//!
//! Every page reads through `domain::reads` like the npm API does, so what a
//! caller may not read never shows, in lists either.

mod admin;
mod assets;
mod ctx;
mod home;
mod hooks;
pub mod login;
mod package;
mod readme;
mod user;
mod views;

use http::{header, Method};

use super::{ApiError, ApiResult, Req};

pub use ctx::Ctx;

/// Whether the client asked for HTML (a browser) rather than JSON (npm).
pub fn wants_html(req: &Req) -> bool {
    req.app.config.web.enabled
        && req
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/html")))
}

/// `/-/web/...`: the pages. An error answers an HTML page with its status.
pub async fn route(req: Req, rest: &[&str]) -> ApiResult {
    if !req.app.config.web.enabled {
        return Err(ApiError::not_found("the web UI is disabled ([web] enabled = false)"));
    }
    let m = req.method.clone();
    match (&m, rest) {
        (&Method::GET | &Method::HEAD, ["app.css"]) => return Ok(assets::css()),
        (&Method::GET | &Method::HEAD, ["app.js"]) => return Ok(assets::js()),
        (&Method::GET | &Method::HEAD, ["logo"]) => return assets::logo(&req).await,
        _ => {}
    }
    let mut ctx = Ctx::new(&req).await?;
    let result = match (&m, rest) {
        (&Method::GET | &Method::HEAD, []) => home::home(&req, &ctx).await,
        (&Method::GET | &Method::HEAD, ["search"]) => home::search(&req, &ctx).await,
        (&Method::GET | &Method::HEAD, ["package", name @ ..]) if !name.is_empty() => package::page(&req, &ctx, &name.join("/")).await,
        (&Method::GET | &Method::HEAD, ["login", id]) => login::page(&req, &ctx, id).await,
        (&Method::POST, ["login", id]) => login::submit(req, &mut ctx, id).await,
        (&Method::GET | &Method::HEAD, ["signin"]) => user::signin_page(&req, &ctx).await,
        (&Method::POST, ["signin"]) => user::signin(req, &mut ctx).await,
        (&Method::POST, ["signout"]) => user::signout(req, &mut ctx).await,
        (&Method::GET | &Method::HEAD, ["user"]) => user::page(&req, &ctx, None).await,
        (&Method::POST, ["tokens"]) => user::create_token(req, &mut ctx).await,
        (&Method::POST, ["tokens", key, "delete"]) => user::revoke_token(req, &mut ctx, key).await,
        (&Method::GET | &Method::HEAD, ["admin"]) => admin::page(&req, &ctx).await,
        (&Method::GET | &Method::HEAD, ["admin", "tasks", id]) => admin::task(&req, &ctx, id).await,
        (&Method::GET | &Method::HEAD, ["admin", "hooks"]) => hooks::admin_list(&req, &ctx).await,
        (&Method::GET | &Method::HEAD, ["hooks", id]) => hooks::page(&req, &ctx, id).await,
        (&Method::POST, ["hooks", id, "delete"]) => hooks::delete(req, &mut ctx, id).await,
        _ => Err(ApiError::not_found("no such page")),
    };
    Ok(result.unwrap_or_else(|e| ctx.error_page(e)))
}
