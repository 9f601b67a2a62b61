//! The package page: readme of the selected version, install commands,
//! versions and dist-tags, dependencies and dependents, maintainers, metadata,
//! tarball size and integrity, weekly downloads, deprecation and block banners.
//! Read through `domain::reads` like `GET /NAME`; dependents are filtered by
//! `reads::readable`.

use http::StatusCode;
use serde_json::Value;

use crate::domain::{reads, web_pages, Error};

use super::super::{ApiError, Req, Response};
use super::{readme, views, Ctx};

pub use web_pages::WEEKS;
/// Version rows shown unless `?all=1`.
pub const VERSION_ROWS: usize = 30;

/// Everything the page shows.
pub struct PackageView<'a> {
    pub name: &'a str,
    pub doc: &'a Value,
    pub version: String,
    pub manifest: &'a Value,
    pub readme_html: String,
    /// (version, publish date), newest first.
    pub versions: Vec<(String, String)>,
    pub all_versions: bool,
    /// (field, name, range)
    pub dependencies: Vec<(&'static str, String, String)>,
    pub dependents: Vec<String>,
    /// (size in bytes, integrity)
    pub tarball: Option<(u64, String)>,
    /// Downloads per week, oldest first.
    pub weekly: Vec<i64>,
}

fn query<'a>(req: &'a Req, key: &str) -> Option<&'a str> {
    req.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `GET /-/web/package/NAME[?version=V]`.
pub async fn page(req: &Req, ctx: &Ctx, name: &str) -> Result<Response, ApiError> {
    let reader = reads::Reader::new(ctx.identity.as_ref(), req.client_ip);
    let entry = match reads::packument(&req.app, reader, name, false).await {
        Ok(entry) => entry,
        Err(Error::Blocked(reason)) => {
            return Ok(ctx.html(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, views::package::blocked(ctx, name, &reason)))
        }
        Err(e) => return Err(e.into()),
    };
    let doc = &entry.value;
    let latest = doc.pointer("/dist-tags/latest").and_then(Value::as_str).unwrap_or("").to_string();
    let version = match query(req, "version") {
        Some(spec) => reads::version(&req.app, reader, name, spec).await?.get("version").and_then(Value::as_str).unwrap_or("").to_string(),
        None => latest.clone(),
    };
    let Some(manifest) = doc.get("versions").and_then(|v| v.get(&version)) else {
        return Err(ApiError::not_found(format!("package {name} has no versions")));
    };
    let readme_text = if version == latest {
        doc.get("readme").and_then(Value::as_str).map(str::to_string)
    } else {
        req.app.store.version_readme(name, &version).await?
    };
    let readme_html = readme::render(readme_text.as_deref().unwrap_or(""), manifest);
    let file = manifest.pointer("/dist/tarball").and_then(Value::as_str).and_then(|u| u.rsplit('/').next()).unwrap_or("");
    let tarball = entry.tarballs.get(file).map(|t| (t.size, t.integrity().to_string()));
    let (dependents, weekly) = web_pages::package_extras(&req.app, reader, name).await?;
    let view = PackageView {
        name,
        doc,
        version,
        manifest,
        readme_html,
        versions: versions(doc),
        all_versions: query(req, "all") == Some("1"),
        dependencies: dependencies(manifest),
        dependents,
        tarball,
        weekly,
    };
    Ok(ctx.html(StatusCode::OK, views::package::page(ctx, &view)))
}

/// Versions with their publish dates, newest first.
fn versions(doc: &Value) -> Vec<(String, String)> {
    let time = doc.get("time");
    let mut out: Vec<(String, String)> = doc
        .get("versions")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(|v| (v.clone(), time.and_then(|t| t.get(v)).and_then(Value::as_str).unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    out
}

fn dependencies(manifest: &Value) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for field in ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies"] {
        if let Some(map) = manifest.get(field).and_then(Value::as_object) {
            out.extend(map.iter().map(|(n, r)| (field, n.clone(), r.as_str().unwrap_or("").to_string())));
        }
    }
    out
}
