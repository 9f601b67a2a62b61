//! The home page (search box, recently changed packages, counts) and search results.

use http::StatusCode;
use serde_json::Value;

use crate::domain::{reads, search, web_pages};

use super::super::{ApiError, Req, Response};
use super::{views, Ctx};

/// Packages listed as recently changed.
const RECENT: usize = 12;
/// Results per search page.
pub const PAGE_SIZE: i64 = 20;
/// The last page a search goes to.
const MAX_PAGE: i64 = 250;

/// One line of a listing, from a local packument or an upstream's search result.
pub struct Listed {
    pub name: String,
    pub description: String,
    pub version: String,
    pub date: String,
    pub keywords: Vec<String>,
}

impl Listed {
    fn from_doc(doc: &Value) -> Listed {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        let version = s(doc.pointer("/dist-tags/latest"));
        let date = s(doc.get("time").and_then(|t| t.get(&version)));
        Listed {
            name: s(doc.get("name")),
            description: s(doc.get("description")),
            date: date.get(..10).unwrap_or("").to_string(),
            version,
            keywords: keywords(doc.get("keywords")),
        }
    }

    fn from_upstream(object: &Value) -> Listed {
        let p = object.get("package").cloned().unwrap_or_default();
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let date = s("date");
        Listed {
            name: s("name"),
            description: s("description"),
            version: s("version"),
            date: date.get(..10).unwrap_or("").to_string(),
            keywords: keywords(p.get("keywords")),
        }
    }
}

pub fn keywords(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).take(20).map(str::to_string).collect()).unwrap_or_default()
}

/// `GET /` (with `Accept: text/html`) and `GET /-/web/`.
pub async fn home(req: &Req, ctx: &Ctx) -> Result<Response, ApiError> {
    let reader = reads::Reader::new(ctx.identity.as_ref(), req.client_ip);
    let home = web_pages::home(&req.app, reader, RECENT).await?;
    Ok(ctx.html(StatusCode::OK, views::home::home(ctx, &home)))
}

/// `GET /-/web/search?q=TEXT&page=N`: what `/-/v1/search` would list, a page at a time.
pub async fn search(req: &Req, ctx: &Ctx) -> Result<Response, ApiError> {
    let q = req.query.iter().find(|(k, _)| k == "q").map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let page = req.query.iter().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse::<i64>().ok()).unwrap_or(1).clamp(1, MAX_PAGE);
    if q.is_empty() {
        return Ok(ctx.html(StatusCode::OK, views::home::results(ctx, &q, &[], (0, false), 1)));
    }
    if q.chars().count() > 200 {
        return Err(ApiError::invalid("the search text is longer than 200 characters"));
    }
    let reader = reads::Reader::new(ctx.identity.as_ref(), req.client_ip);
    let found = search::search(&req.app, reader, &q, (page - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    let mut listed: Vec<Listed> = found.local.iter().map(|e| Listed::from_doc(&e.value)).collect();
    listed.extend(found.upstream.iter().map(Listed::from_upstream));
    Ok(ctx.html(StatusCode::OK, views::home::results(ctx, &q, &listed, (found.total, found.more), page)))
}
