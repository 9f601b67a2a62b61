//! The `node` source: the autoindex HTML pages of a Node.js-style dist site,
//! one `<a href="NAME">NAME</a>   DATE TIME   SIZE` line per entry (`-` as
//! the size of a directory).

use crate::domain::App;
use crate::outbound;

/// Largest directory page or `SHASUMS256.txt` read.
const MAX_PAGE_BYTES: u64 = 16 << 20;

/// One upstream entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Directory names end with `/`.
    pub name: String,
    pub is_dir: bool,
    pub size: Option<u64>,
    /// As the upstream shows it.
    pub date: String,
    pub url: String,
}

/// A usable entry name: one path segment (plus `/` for a directory), no
/// `.`/`..`, no control characters.
pub(super) fn usable(name: &str) -> bool {
    let bare = name.strip_suffix('/').unwrap_or(name);
    !bare.is_empty()
        && bare != "."
        && bare != ".."
        && !bare.contains('/')
        && !bare.contains('\\')
        && !bare.chars().any(char::is_control)
        && name.len() <= 255
}

/// The entries of an autoindex page whose address is `base` (ending with `/`).
pub fn parse_index(html: &str, base: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<a href=\"") {
        rest = &rest[at + 9..];
        let Some(end) = rest.find('"') else { break };
        let href = &rest[..end];
        let Some(close) = rest.find("</a>") else { break };
        rest = &rest[close + 4..];
        let line = rest.split(['\n', '<']).next().unwrap_or("");
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some((size, date)) = tokens.split_last().filter(|(_, d)| !d.is_empty()) else { continue };
        let name = percent_encoding::percent_decode_str(href).decode_utf8_lossy().into_owned();
        if href.contains("://") || href.starts_with('/') || href.contains('?') || !usable(&name) {
            continue;
        }
        let is_dir = name.ends_with('/');
        items.push(Item {
            is_dir,
            size: if is_dir { None } else { size.parse().ok() },
            date: date.join(" "),
            url: format!("{base}{href}"),
            name,
        });
    }
    items
}

/// Lists the directory at `url`; `None` when the upstream answers 404.
pub async fn list(app: &App, url: &str) -> Result<Option<Vec<Item>>, outbound::Error> {
    let Some(body) = small(app, url).await? else { return Ok(None) };
    Ok(Some(parse_index(&String::from_utf8_lossy(&body), url)))
}

/// A small upstream document (a page, a checksum list); `None` on 404.
pub async fn small(app: &App, url: &str) -> Result<Option<bytes::Bytes>, outbound::Error> {
    small_guarded(app, url, &|_| Ok(())).await
}

/// [`small`] going only where `guard` allows (a plugin source's hosts).
pub async fn small_guarded(app: &App, url: &str, guard: outbound::Guard<'_>) -> Result<Option<bytes::Bytes>, outbound::Error> {
    let resp = app.outbound.get(url).max_bytes(MAX_PAGE_BYTES, "the binary page limit").guard(guard).send().await?;
    if resp.status() == 404 {
        return Ok(None);
    }
    Ok(Some(resp.error_for_status()?.bytes().await?))
}

/// `SHASUMS256.txt`: `<hex>  <path>` lines, as (path, lowercase hex).
pub fn parse_shasums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (hex, path) = l.trim().split_once(char::is_whitespace)?;
            let path = path.trim().trim_start_matches('*');
            (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| (path.to_string(), hex.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_autoindex_pages() {
        let html = "<html><body><h1>Index of /dist/</h1><hr><pre><a href=\"../\">../</a>\n\
            <a href=\"latest/\">latest/</a>                                            25-Apr-2023 15:41                   -\n\
            <a href=\"v0.1.100/\">v0.1.100/</a>                                         26-Aug-2011 20:07                   -\n\
            <a href=\"SHASUMS256.txt\">SHASUMS256.txt</a>                                   25-Apr-2023 15:41                5453\n\
            <a href=\"http://elsewhere.test/x\">x</a>     25-Apr-2023 15:41   1\n\
            <a href=\"..%2fescape\">e</a>     25-Apr-2023 15:41   1\n\
            </pre><hr></body></html>";
        let items = parse_index(html, "http://up.test/dist/");
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["latest/", "v0.1.100/", "SHASUMS256.txt"]);
        assert_eq!(items[1].date, "26-Aug-2011 20:07");
        assert!(items[1].is_dir && items[1].size.is_none());
        assert_eq!(items[2].size, Some(5453));
        assert_eq!(items[2].url, "http://up.test/dist/SHASUMS256.txt");
    }

    #[test]
    fn parses_shasums() {
        let hex = "a".repeat(64);
        let sums = parse_shasums(&format!("{hex}  node-v1.tar.gz\n{hex} *win-x64/node.exe\nbroken\n"));
        assert_eq!(sums, [("node-v1.tar.gz".to_string(), hex.clone()), ("win-x64/node.exe".to_string(), hex)]);
    }
}
