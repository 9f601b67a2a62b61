//! Signing in and out, the user page (the person's packages, tokens and
//! hooks), and creating and revoking tokens from it.

use http::StatusCode;

use crate::domain::tokens::{self, NewToken};
use crate::domain::{hooks, reads, sessions, users, Error};

use super::super::{ApiError, Req, Response};
use super::ctx::{field, form, CSRF_COOKIE, SESSION_COOKIE};
use super::{views, Ctx};

/// `GET /-/web/signin`.
pub async fn signin_page(_req: &Req, ctx: &Ctx) -> Result<Response, ApiError> {
    Ok(ctx.html(StatusCode::OK, views::login::signin(ctx, None)))
}

/// `POST /-/web/signin`: a session on success, the form again with the reason otherwise.
pub async fn signin(mut req: Req, ctx: &mut Ctx) -> Result<Response, ApiError> {
    let fields = form(&mut req).await?;
    ctx.check_csrf(&fields)?;
    match users::authenticate(&req.app, field(&fields, "name"), field(&fields, "password"), req.client_ip).await {
        Ok(user) => {
            let raw = sessions::create(&req.app, &user).await?;
            ctx.set_cookie(SESSION_COOKIE, &raw, Some(sessions::TTL_MS / 1000));
            Ok(ctx.redirect("/-/web/user"))
        }
        Err(Error::Unauthenticated(reason)) => Ok(ctx.html(StatusCode::UNAUTHORIZED, views::login::signin(ctx, Some(&reason)))),
        Err(e) => Err(e.into()),
    }
}

/// `POST /-/web/signout`: the session ends on the server and the cookie is cleared.
pub async fn signout(mut req: Req, ctx: &mut Ctx) -> Result<Response, ApiError> {
    let fields = form(&mut req).await?;
    ctx.check_csrf(&fields)?;
    if let Some(raw) = ctx.session.clone() {
        sessions::end(&req.app, &raw).await?;
    }
    ctx.set_cookie(SESSION_COOKIE, "", Some(0));
    ctx.set_cookie(CSRF_COOKIE, "", Some(0));
    Ok(ctx.redirect("/-/web/"))
}

/// `GET /-/web/user`: the person's packages, tokens and hooks; `created` is a
/// token just made, shown this once.
pub async fn page(req: &Req, ctx: &Ctx, created: Option<&str>) -> Result<Response, ApiError> {
    let person = ctx.person()?;
    let reader = reads::Reader::new(Some(person), req.client_ip);
    let packages = reads::readable(&req.app, reader, req.app.store.packages_of(&person.name).await?).await?;
    let tokens = tokens::list(&req.app, person).await?;
    // At most `max_per_user` hooks exist; the domain lists 100 at a time.
    let hooks = hooks::overview(&req.app, person, false, 0, 100).await?;
    let data = views::user::UserPage { packages: &packages, tokens: &tokens, hooks: &hooks, created };
    Ok(ctx.html(StatusCode::OK, views::user::page(ctx, person, &data)))
}

/// `POST /-/web/tokens`: a new token (readonly, CIDR whitelist), shown once;
/// the current password is asked, as `POST /-/npm/v1/tokens` does.
pub async fn create_token(mut req: Req, ctx: &mut Ctx) -> Result<Response, ApiError> {
    let fields = form(&mut req).await?;
    ctx.check_csrf(&fields)?;
    let person = ctx.person()?;
    let cidrs: Vec<String> =
        field(&fields, "cidr").split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    let name = field(&fields, "name").trim();
    let new = NewToken {
        name: Some(if name.is_empty() { "web".to_string() } else { name.chars().take(100).collect() }),
        readonly: field(&fields, "readonly") == "on",
        automation: false,
        cidr_whitelist: cidrs,
    };
    // As over the API: a new token needs the current password.
    let issued = tokens::create_with_password(&req.app, person, field(&fields, "password"), new).await?;
    page(&req, ctx, Some(&issued.raw)).await
}

/// `POST /-/web/tokens/KEY/delete`: revokes one of the person's tokens.
pub async fn revoke_token(mut req: Req, ctx: &mut Ctx, key: &str) -> Result<Response, ApiError> {
    let fields = form(&mut req).await?;
    ctx.check_csrf(&fields)?;
    let person = ctx.person()?;
    if key.starts_with(tokens::PREFIX) {
        return Err(ApiError::invalid("name a token by its key"));
    }
    tokens::revoke(&req.app, person, key).await?;
    Ok(ctx.redirect("/-/web/user"))
}
