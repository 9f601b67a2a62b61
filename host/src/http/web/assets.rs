//! The assets of the pages, all served by Cairn (so the UI works behind a
//! firewall): the stylesheet and the one script, compiled into the binary,
//! and the operator's logo file (`[web] logo`).

use http::{header, HeaderValue};

use super::super::{full, ApiError, ApiResult, Req, Response};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");
/// The largest logo file served.
const MAX_LOGO_BYTES: u64 = 1 << 20;

fn asset(content_type: &'static str, cache: &'static str, body: impl Into<bytes::Bytes>) -> Response {
    let mut resp = http::Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

pub fn css() -> Response {
    asset("text/css; charset=utf-8", "public, max-age=300", CSS)
}

pub fn js() -> Response {
    asset("text/javascript; charset=utf-8", "public, max-age=300", JS)
}

/// `GET /-/web/logo`: the configured file, typed by its extension.
pub async fn logo(req: &Req) -> ApiResult {
    let Some(path) = &req.app.config.web.logo else { return Err(ApiError::not_found("no logo is configured")) };
    let content_type = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => return Err(ApiError::not_found("the logo must be a .png, .svg, .jpg, .gif or .webp file")),
    };
    let meta = tokio::fs::metadata(path).await.map_err(|_| ApiError::not_found("the logo file cannot be read"))?;
    if meta.len() > MAX_LOGO_BYTES {
        tracing::warn!(path = %path.display(), "[web] logo is larger than 1 MiB: not served");
        return Err(ApiError::not_found("the logo file is larger than 1 MiB"));
    }
    let bytes = tokio::fs::read(path).await.map_err(|_| ApiError::not_found("the logo file cannot be read"))?;
    let mut resp = asset(content_type, "public, max-age=300", bytes);
    // An SVG opened on its own must not run scripts.
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    Ok(resp)
}
