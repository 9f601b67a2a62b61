//! The `github` source: a repository's releases from a GitHub-style API at
//! `api_url`. The root lists one directory per release (its tag name; drafts
//! are skipped), dated by its newest asset or publication; a release's
//! directory lists its assets as files (`browser_download_url`, size,
//! `updated_at`). Release pages are followed through `Link: rel="next"`,
//! only on the API's own origin.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::BinaryConfig;
use crate::domain::App;
use crate::outbound;

use super::node::{self, Item};

/// Releases asked per page.
const PER_PAGE: u32 = 100;

/// Pages of releases followed before the listing is refused.
const MAX_PAGES: usize = 1000;

/// What a tag may not hold unescaped in a URL path segment.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'+');

#[derive(Deserialize)]
struct Release {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    assets: Vec<Asset>,
}

#[derive(Deserialize)]
struct Asset {
    name: String,
    size: u64,
    #[serde(default)]
    updated_at: Option<String>,
    browser_download_url: String,
    #[serde(default)]
    state: Option<String>,
    /// `sha256:<hex>`, where the API gives one.
    #[serde(default)]
    digest: Option<String>,
}

impl Release {
    /// The newest of its publication and its assets' dates (RFC 3339 strings
    /// of one format, so they compare as text): a new asset changes it.
    fn date(&self) -> String {
        let own = self.published_at.iter().chain(self.created_at.iter());
        own.chain(self.assets.iter().filter_map(|a| a.updated_at.as_ref())).max().cloned().unwrap_or_default()
    }

    fn item(&self, cfg: &BinaryConfig) -> Option<Item> {
        let name = format!("{}/", self.tag_name);
        (!self.draft && node::usable(&name)).then(|| Item {
            url: format!(
                "{}/repos/{}/releases/tags/{}",
                cfg.api_url,
                cfg.repo,
                percent_encoding::utf8_percent_encode(&self.tag_name, SEGMENT)
            ),
            date: self.date(),
            is_dir: true,
            size: None,
            name,
        })
    }

    /// The uploaded assets as files; `sums` gets the SHA-256 digests the API
    /// gives (by name), which the sync verifies.
    fn files(self, sums: &mut HashMap<String, String>) -> Vec<Item> {
        let uploaded = self.assets.into_iter().filter(|a| a.state.as_deref().is_none_or(|s| s == "uploaded"));
        uploaded
            .filter(|a| {
                node::usable(&a.name) && (a.browser_download_url.starts_with("http://") || a.browser_download_url.starts_with("https://"))
            })
            .inspect(|a| {
                let hex = a.digest.as_deref().and_then(|d| d.strip_prefix("sha256:"));
                if let Some(hex) = hex.filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())) {
                    sums.insert(a.name.clone(), hex.to_ascii_lowercase());
                }
            })
            .map(|a| Item {
                is_dir: false,
                size: Some(a.size),
                date: a.updated_at.unwrap_or_default(),
                url: a.browser_download_url,
                name: a.name,
            })
            .collect()
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| matches!(p.trim().replace(' ', "").as_str(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// A JSON document from the API; `None` on 404, and the `Link` header's next page.
async fn get<T: serde::de::DeserializeOwned>(app: &App, url: &str) -> Result<Option<(T, Option<String>)>, outbound::Error> {
    let resp =
        app.outbound.get(url).header("accept", "application/vnd.github+json").max_bytes(16 << 20, "the binary page limit").send().await?;
    if resp.status() == 404 {
        return Ok(None);
    }
    let next = resp.header("link").and_then(next_link);
    Ok(Some((resp.error_for_status()?.json().await?, next)))
}

/// Lists `parent`: `/` (the releases, every page) or `/<tag>/` (its assets,
/// with the SHA-256 digests the API gives in `sums`); `None` when the API
/// answers 404 or the path is deeper.
pub async fn list(
    app: &App,
    cfg: &BinaryConfig,
    parent: &str,
    sums: &mut HashMap<String, String>,
) -> Result<Option<Vec<Item>>, outbound::Error> {
    sums.clear();
    let tag = parent.trim_matches('/');
    if tag.contains('/') {
        return Ok(None);
    }
    if !tag.is_empty() {
        let url = format!("{}/repos/{}/releases/tags/{}", cfg.api_url, cfg.repo, percent_encoding::utf8_percent_encode(tag, SEGMENT));
        return Ok(get::<Release>(app, &url).await?.map(|(r, _)| r.files(sums)));
    }
    let mut url = format!("{}/repos/{}/releases?per_page={PER_PAGE}&page=1", cfg.api_url, cfg.repo);
    let mut items = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some((releases, next)) = get::<Vec<Release>>(app, &url).await? else { return Ok(None) };
        items.extend(releases.iter().filter_map(|r| r.item(cfg)));
        match next {
            None => return Ok(Some(items)),
            Some(n) if !outbound::same_origin(&n, &cfg.api_url) || n == url => {
                return Err(outbound::Error::Redirect {
                    what: format!("GET {}", crate::config::strip_userinfo(&url)),
                    why: "the next page is not another page of the configured api_url".into(),
                })
            }
            Some(n) => url = n,
        }
    }
    Err(outbound::Error::Decode { what: format!("listing the releases of {}", cfg.repo), why: format!("more than {MAX_PAGES} pages") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_releases() {
        let link = r#"<http://api.test/repos/o/r/releases?per_page=2&page=2>; rel="next", <http://api.test/repos/o/r/releases?page=5>; rel="last""#;
        assert_eq!(next_link(link).as_deref(), Some("http://api.test/repos/o/r/releases?per_page=2&page=2"));
        assert_eq!(next_link(r#"<http://api.test/x?page=1>; rel="prev""#), None);
        let r: Release = serde_json::from_str(
            r#"{"tag_name":"v1.0.0","published_at":"2024-01-01T00:00:00Z","assets":[
                {"name":"a.tgz","size":3,"updated_at":"2024-02-01T00:00:00Z","browser_download_url":"http://dl.test/a.tgz",
                 "digest":"sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"},
                {"name":"b.tgz","size":3,"state":"starter","browser_download_url":"http://dl.test/b.tgz"},
                {"name":"../c","size":3,"browser_download_url":"http://dl.test/c"}]}"#,
        )
        .unwrap();
        assert_eq!(r.date(), "2024-02-01T00:00:00Z");
        let mut sums = HashMap::new();
        let files = r.files(&mut sums);
        assert_eq!(files.len(), 1);
        assert_eq!(sums.get("a.tgz").map(String::as_str), Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert_eq!(sums.len(), 1);
        assert_eq!((files[0].name.as_str(), files[0].size, files[0].url.as_str()), ("a.tgz", Some(3), "http://dl.test/a.tgz"));
    }
}
