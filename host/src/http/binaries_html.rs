//! The binary mirror's browsing pages: `/-/binary/` and its directories as
//! plain HTML for a client whose `Accept` prefers `text/html` to JSON (a
//! browser). The same data as the JSON listings; every shown string is
//! escaped, every link's path percent-encoded.

use http::{header, HeaderValue};

use crate::config::BinaryConfig;
use crate::store::BinaryEntry;
use crate::util::iso_ms;

use super::{full, Req, Response};

/// What a path segment may hold unescaped in a link.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'+');

/// The quality the `Accept` header gives `mime` (`type/sub`): its own entry,
/// else `type/*`, else `*/*`, else 0.
fn quality(accept: &str, mime: &str) -> f32 {
    let family = format!("{}/*", mime.split('/').next().unwrap_or(""));
    let mut best: Option<(u8, f32)> = None;
    for part in accept.split(',') {
        let mut fields = part.split(';');
        let range = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = fields.filter_map(|f| f.trim().strip_prefix("q=")).find_map(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        let rank = match range.as_str() {
            r if r == mime => 3,
            r if r == family => 2,
            "*/*" => 1,
            _ => continue,
        };
        if best.is_none_or(|(b, _)| rank > b) {
            best = Some((rank, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// True when the client prefers HTML to JSON (a browser's `Accept`).
pub fn wants_html(req: &Req) -> bool {
    let Some(accept) = req.header(header::ACCEPT) else { return false };
    let html = quality(accept, "text/html");
    html > 0.0 && html > quality(accept, "application/json")
}

/// `&`, `<`, `>`, `"` and `'` as character references.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link to `name` (a directory's ends with `/`) below `dir_url`.
fn href(dir_url: &str, name: &str) -> String {
    let (bare, slash) = name.strip_suffix('/').map_or((name, ""), |b| (b, "/"));
    escape(&format!("{dir_url}{}{slash}", percent_encoding::utf8_percent_encode(bare, SEGMENT)))
}

/// One page: a title, a parent link and rows of (link, name, date, size, modified).
fn page(title: &str, parent: Option<&str>, rows: &[[String; 5]]) -> Response {
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {t}</title>\
         <style>body{{font-family:sans-serif}}td,th{{padding:0 1em;text-align:left}}</style></head>\n\
         <body><h1>Index of {t}</h1>\n<table>\n<tr><th>Name</th><th>Date</th><th>Size</th><th>Modified</th></tr>\n",
        t = escape(title)
    );
    if let Some(up) = parent {
        html.push_str(&format!("<tr><td><a href=\"{}\">../</a></td><td></td><td></td><td></td></tr>\n", escape(up)));
    }
    for [link, name, date, size, modified] in rows {
        html.push_str(&format!(
            "<tr><td><a href=\"{link}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(name),
            escape(date),
            escape(size),
            escape(modified)
        ));
    }
    html.push_str("</table>\n</body></html>\n");
    let mut resp = http::Response::new(full(html));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `GET /-/binary/` as HTML: one row per configured binary.
pub fn index(public_url: &str, binaries: &[BinaryConfig]) -> Response {
    let root = format!("{public_url}/-/binary/");
    let rows: Vec<[String; 5]> = binaries
        .iter()
        .map(|b| [href(&root, &format!("{}/", b.category)), format!("{}/", b.category), b.description.clone(), "-".into(), String::new()])
        .collect();
    page("/-/binary/", None, &rows)
}

/// A directory (`parent`: `/` or `/a/b/`) of `category` as HTML.
pub fn dir(public_url: &str, category: &str, parent: &str, entries: &[BinaryEntry]) -> Response {
    let path = format!("/-/binary/{category}{parent}");
    let dir_url = format!("{public_url}{}", escape_path(&path));
    let up = match parent.trim_end_matches('/').rsplit_once('/') {
        Some((above, _)) => format!("{public_url}{}", escape_path(&format!("/-/binary/{category}{above}/"))),
        None => format!("{public_url}/-/binary/"),
    };
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            let size = if e.is_dir { "-".to_string() } else { e.size.to_string() };
            [href(&dir_url, &e.name), e.name.clone(), e.date.clone(), size, iso_ms(e.updated_at)]
        })
        .collect();
    page(&path, Some(&up), &rows)
}

/// A path with each segment percent-encoded.
fn escape_path(path: &str) -> String {
    path.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_escaping() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(quality(browser, "text/html") > quality(browser, "application/json"));
        assert_eq!(quality("*/*", "text/html"), quality("*/*", "application/json"));
        assert_eq!(quality("application/json", "text/html"), 0.0);
        assert_eq!(quality("text/*;q=0.5, application/json", "text/html"), 0.5);
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(href("http://h/-/binary/n/", "a <b>/"), "http://h/-/binary/n/a%20%3Cb%3E/");
        assert_eq!(escape_path("/-/binary/n/v 1/"), "/-/binary/n/v%201/");
    }
}
