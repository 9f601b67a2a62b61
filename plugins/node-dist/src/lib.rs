//! `node_dist.wasm` (upstream-adapter, built for `binary-source-adapter`,
//! `cairn:plugin@0.1.1`): the binary mirror's `node`
//! source as a plugin. It reads the autoindex HTML pages of a Node.js-style
//! dist site, one `<a href="NAME">NAME</a>   DATE TIME   SIZE` line per
//! entry (`-` as the size of a directory), and gives each file in a directory
//! with a `SHASUMS256.txt` its checksum from that list.
//!
//! ```toml
//! [[plugins]]
//! name = "node-dist"
//! kind = "upstream-adapter"
//! path = "plugins/node_dist.wasm"
//! allowed_hosts = ["dist.example.com"]   # the dist site (and any host its files redirect to)
//! [plugins.config]
//! dist_url = "https://dist.example.com/dist/"
//!
//! [[binaries]]
//! category = "node"
//! type = "node-dist"                     # the plugin's name
//! ```
//!
//! Cairn downloads the files itself, from the URLs listed here (the plugin
//! never handles their bytes).

use cairn_plugin_sdk::binary_source_adapter::{get, BinaryEntry, BinarySource, Guest};
use cairn_plugin_sdk::Loaded;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    dist_url: String,
}

/// The dist site's root, ending with `/`.
static ROOT: Loaded<String> = Loaded::new();

fn load() -> Result<String, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    let url = config.dist_url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("node-dist: `dist_url` must be an http:// or https:// URL, got `{url}`"));
    }
    Ok(if url.ends_with('/') { url.to_string() } else { format!("{url}/") })
}

/// A usable entry name: one path segment (plus `/` for a directory), no
/// `.`/`..`, no control characters.
fn usable(name: &str) -> bool {
    let bare = name.strip_suffix('/').unwrap_or(name);
    !bare.is_empty()
        && bare != "."
        && bare != ".."
        && !bare.contains(['/', '\\'])
        && !bare.chars().any(char::is_control)
        && name.len() <= 255
}

/// `%XX` escapes decoded (invalid ones kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The entries of an autoindex page whose address is `base` (ending with `/`).
fn parse_index(html: &str, base: &str) -> Vec<BinaryEntry> {
    let mut entries = Vec::new();
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
        let name = percent_decode(href);
        if href.contains("://") || href.starts_with('/') || href.contains('?') || !usable(&name) {
            continue;
        }
        let is_dir = name.ends_with('/');
        entries.push(BinaryEntry {
            is_dir,
            size: if is_dir { None } else { size.parse().ok() },
            date: Some(date.join(" ")),
            url: format!("{base}{href}"),
            checksum: None,
            name,
        });
    }
    entries
}

/// `SHASUMS256.txt`: `<hex>  <path>` lines, as (path, lowercase hex).
fn parse_shasums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (hex, path) = l.trim().split_once(char::is_whitespace)?;
            let path = path.trim().trim_start_matches('*');
            (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| (path.to_string(), hex.to_ascii_lowercase()))
        })
        .collect()
}

/// The body of `url`; None on 404, an error on any other failure.
fn fetch_text(url: &str) -> Result<Option<String>, String> {
    let resp = get(url, &[])?;
    match resp.status {
        404 => Ok(None),
        200..=299 => Ok(Some(String::from_utf8_lossy(&resp.body).into_owned())),
        status => Err(format!("node-dist: GET {url} answered {status}")),
    }
}

/// Lists `path` (`/` or `/a/b/`) of the dist site at `root`.
fn list(root: &str, path: &str) -> Result<Option<Vec<BinaryEntry>>, String> {
    let path = path.trim_start_matches('/');
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("node-dist: invalid path `{path}`"));
    }
    let base = format!("{root}{path}");
    let Some(html) = fetch_text(&base)? else { return Ok(None) };
    let mut entries = parse_index(&html, &base);
    if let Some(sums) = entries.iter().find(|e| e.name == "SHASUMS256.txt").map(|e| e.url.clone()) {
        // The directory's own list; files below it are checked by the host against it too.
        let sums = fetch_text(&sums)?.map(|t| parse_shasums(&t)).unwrap_or_default();
        for e in entries.iter_mut().filter(|e| !e.is_dir) {
            e.checksum = sums.iter().find(|(p, _)| *p == e.name).map(|(_, hex)| format!("sha256:{hex}"));
        }
    }
    Ok(Some(entries))
}

struct NodeDist;

impl Guest for NodeDist {
    fn init() -> Result<(), String> {
        ROOT.get_or_load(load).map(|_| ())
    }
}

impl BinarySource for NodeDist {
    fn list(path: String) -> Result<Option<Vec<BinaryEntry>>, String> {
        list(ROOT.get_or_load(load)?, &path)
    }
}

cairn_plugin_sdk::export_binary_source_adapter!(NodeDist);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_autoindex_pages() {
        let html = "<html><body><h1>Index of /dist/</h1><hr><pre><a href=\"../\">../</a>\n\
            <a href=\"latest/\">latest/</a>                                            25-Apr-2023 15:41                   -\n\
            <a href=\"v0.1.100/\">v0.1.100/</a>                                         26-Aug-2011 20:07                   -\n\
            <a href=\"SHASUMS256.txt\">SHASUMS256.txt</a>                                   25-Apr-2023 15:41                5453\n\
            <a href=\"a%20b.txt\">a b.txt</a>                                   25-Apr-2023 15:41                1\n\
            <a href=\"http://elsewhere.test/x\">x</a>     25-Apr-2023 15:41   1\n\
            <a href=\"..%2fescape\">e</a>     25-Apr-2023 15:41   1\n\
            </pre><hr></body></html>";
        let entries = parse_index(html, "http://up.test/dist/");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["latest/", "v0.1.100/", "SHASUMS256.txt", "a b.txt"]);
        assert_eq!(entries[1].date.as_deref(), Some("26-Aug-2011 20:07"));
        assert!(entries[1].is_dir && entries[1].size.is_none());
        assert_eq!(entries[2].size, Some(5453));
        assert_eq!(entries[2].url, "http://up.test/dist/SHASUMS256.txt");
        assert_eq!(entries[3].url, "http://up.test/dist/a%20b.txt");
    }

    #[test]
    fn parses_shasums_and_escapes() {
        let hex = "A".repeat(64);
        let sums = parse_shasums(&format!("{hex}  node-v1.tar.gz\n{hex} *win-x64/node.exe\nbroken\n"));
        let lower = hex.to_ascii_lowercase();
        assert_eq!(sums, [("node-v1.tar.gz".to_string(), lower.clone()), ("win-x64/node.exe".to_string(), lower)]);
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
