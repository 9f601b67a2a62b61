//! What every page knows about its request: the signed-in person (from the
//! session cookie), the CSRF token its forms carry, where Cairn's pages live;
//! and how a page is answered (headers: a strict CSP, no caching, cookies).

use http::{header, HeaderValue, StatusCode};
use maud::Markup;

use crate::domain::sessions;
use crate::domain::Identity;

use super::super::{full, ApiError, Req, Response};
use super::views;

pub const SESSION_COOKIE: &str = "cairn_session";
/// The CSRF token of signed-out forms (the sign-in form), double-submitted.
pub const CSRF_COOKIE: &str = "cairn_csrf";

/// Only Cairn's own scripts and styles; images may come from https readmes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct Ctx {
    /// The path of the public URL (`""` or `/prefix`): pages link below it.
    pub base: String,
    pub title: String,
    pub has_logo: bool,
    pub identity: Option<Identity>,
    /// The session cookie's value, when signed in.
    pub session: Option<String>,
    /// The token every form of this page carries.
    pub csrf: String,
    /// Cookies to set with the answer.
    pub set_cookies: Vec<String>,
    secure: bool,
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn is_secret(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Ctx {
    pub async fn new(req: &Req) -> Result<Ctx, ApiError> {
        let config = &req.app.config;
        let base = url::Url::parse(&config.public_url).map(|u| u.path().trim_end_matches('/').to_string()).unwrap_or_default();
        let secure = config.public_url.starts_with("https:");
        let session = cookie(req, SESSION_COOKIE).filter(|v| is_secret(v)).map(str::to_string);
        let identity = match &session {
            Some(raw) => sessions::identity(&req.app, raw, req.client_ip).await?,
            None => None,
        };
        let mut ctx = Ctx {
            base,
            title: config.web.title.clone(),
            has_logo: config.web.logo.is_some(),
            session: identity.as_ref().and(session),
            identity,
            csrf: String::new(),
            set_cookies: Vec::new(),
            secure,
        };
        ctx.csrf = match (&ctx.session, cookie(req, CSRF_COOKIE).filter(|v| is_secret(v))) {
            (Some(raw), _) => sessions::csrf_token(raw),
            (None, Some(pre)) => pre.to_string(),
            (None, None) => {
                let fresh = sessions::new_secret();
                ctx.set_cookie(CSRF_COOKIE, &fresh, None);
                fresh
            }
        };
        Ok(ctx)
    }

    /// A cookie for the answer: HttpOnly, SameSite=Lax, Secure when the public URL is https.
    pub fn set_cookie(&mut self, name: &str, value: &str, max_age_secs: Option<i64>) {
        let path = if self.base.is_empty() { "/".to_string() } else { self.base.clone() };
        let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age_secs {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        self.set_cookies.push(c);
    }

    /// A link below Cairn's public URL: `/-/web/...` becomes `{base}/-/web/...`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Refuses a form whose CSRF token is not this page's.
    pub fn check_csrf(&self, form: &[(String, String)]) -> Result<(), ApiError> {
        let given = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !self.csrf.is_empty() && sessions::same_secret(given, &self.csrf) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the form expired or came from another site: reload the page and try again",
            ))
        }
    }

    /// The signed-in person, or 401 (the page says to sign in).
    pub fn person(&self) -> Result<&Identity, ApiError> {
        self.identity.as_ref().ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first"))
    }

    /// A page: HTML with the security headers, no caching, and the cookies set.
    pub fn html(&self, status: StatusCode, markup: Markup) -> Response {
        let mut resp = http::Response::new(full(markup.into_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("Accept, Cookie"));
        for c in &self.set_cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        resp
    }

    /// A 303 to `path` (below the public URL), after a form.
    pub fn redirect(&self, path: &str) -> Response {
        let mut resp = self.html(StatusCode::SEE_OTHER, maud::html! {});
        if let Ok(v) = HeaderValue::from_str(&self.url(path)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp
    }

    /// An error as a page, with its status (and `Retry-After`).
    pub fn error_page(&self, e: ApiError) -> Response {
        let heading = e.status.canonical_reason().unwrap_or("Error");
        let reason = if e.reason.contains("://") { crate::config::redact_url(&e.reason) } else { e.reason.clone() };
        let body = views::error(self, e.status, heading, &reason);
        let mut resp = self.html(e.status, body);
        if let Some(secs) = e.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub async fn form(req: &mut Req) -> Result<Vec<(String, String)>, ApiError> {
    let body = req.bytes().await?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// One field of a form ("" when missing).
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}
