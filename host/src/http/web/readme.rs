//! Readmes: Markdown rendered with pulldown-cmark, then sanitised with ammonia
//! (no script, no style, no event handler attributes, no `javascript:` or
//! other unsafe URL schemes; links get `rel="noopener noreferrer nofollow"`).
//! Relative links and images are resolved against the package's repository
//! (its `blob/HEAD/` and `raw/HEAD/` paths, below `repository.directory`).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde_json::Value;

/// Readmes past this many bytes are cut (the rest is not rendered).
const MAX_README_BYTES: usize = 512 * 1024;

/// The web address of a manifest's `repository` (`git+https://h/o/r.git` →
/// `https://h/o/r`), and its `directory` inside the repository.
pub fn repository_url(manifest: &Value) -> Option<(String, Option<String>)> {
    let repo = manifest.get("repository")?;
    let (raw, directory) = match repo {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => (o.get("url")?.as_str()?, o.get("directory").and_then(Value::as_str).map(str::to_string)),
        _ => return None,
    };
    let mut url = raw.trim().trim_start_matches("git+").to_string();
    if let Some(rest) = url.strip_prefix("git://") {
        url = format!("https://{rest}");
    } else if let Some(rest) = url.strip_prefix("ssh://git@") {
        url = format!("https://{rest}");
    } else if let Some(rest) = url.strip_prefix("git@") {
        url = format!("https://{}", rest.replacen(':', "/", 1));
    }
    let url = url.trim_end_matches('/').trim_end_matches(".git").to_string();
    let parsed = url::Url::parse(&url).ok()?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return None;
    }
    Some((parsed.to_string().trim_end_matches('/').to_string(), directory.filter(|d| !d.is_empty() && !d.contains(".."))))
}

/// Bases for relative links (`blob`) and images (`raw`).
struct Bases {
    links: url::Url,
    images: url::Url,
}

fn bases(manifest: &Value) -> Option<Bases> {
    let (repo, dir) = repository_url(manifest)?;
    let dir = dir.map(|d| format!("{}/", d.trim_matches('/'))).unwrap_or_default();
    Some(Bases {
        links: url::Url::parse(&format!("{repo}/blob/HEAD/{dir}")).ok()?,
        images: url::Url::parse(&format!("{repo}/raw/HEAD/{dir}")).ok()?,
    })
}

/// Resolves a relative URL against `base`; absolute URLs and `#anchors` are kept.
fn resolve<'a>(dest: CowStr<'a>, base: Option<&url::Url>) -> CowStr<'a> {
    if dest.starts_with('#') || url::Url::parse(&dest).is_ok() {
        return dest;
    }
    match base.and_then(|b| b.join(&dest).ok()) {
        Some(u) => CowStr::from(u.to_string()),
        None => dest,
    }
}

/// The readme as safe HTML.
pub fn render(markdown: &str, manifest: &Value) -> String {
    let mut end = markdown.len().min(MAX_README_BYTES);
    while !markdown.is_char_boundary(end) {
        end -= 1;
    }
    let bases = bases(manifest);
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(&markdown[..end], options).map(|event| match event {
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Link { link_type, dest_url: resolve(dest_url, bases.as_ref().map(|b| &b.links)), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Image { link_type, dest_url: resolve(dest_url, bases.as_ref().map(|b| &b.images)), title, id })
        }
        other => other,
    });
    let mut html = String::with_capacity(end * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    let mut cleaner = ammonia::Builder::default();
    cleaner.link_rel(Some("noopener noreferrer nofollow"));
    // Raw HTML in the readme: relative URLs resolved like Markdown links, or dropped.
    match bases {
        Some(b) => cleaner.url_relative(ammonia::UrlRelative::RewriteWithBase(b.links)),
        None => cleaner.url_relative(ammonia::UrlRelative::Deny),
    };
    cleaner.clean(&html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostile_markup_is_removed() {
        let md = "# Hi\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) <img src=x onerror=\"alert(3)\"> \
                  <a href=\"JaVaScRiPt:alert(4)\" onclick=\"alert(5)\">y</a> <iframe src=\"https://example.com\"></iframe> \
                  <style>body{}</style>";
        let html = render(md, &json!({}));
        let lower = html.to_lowercase();
        for bad in ["<script", "javascript:", "onerror", "onclick", "<iframe", "<style", "alert(1)"] {
            assert!(!lower.contains(bad), "{bad} survived: {html}");
        }
        assert!(html.contains("<h1>Hi</h1>"), "{html}");
    }

    #[test]
    fn relative_links_and_images_follow_the_repository() {
        let manifest = json!({"repository": {"type": "git", "url": "git+https://example.com/org/repo.git", "directory": "packages/a"}});
        let html = render("[doc](docs/x.md) ![logo](img/l.png) [abs](https://example.org/) [top](#usage)", &manifest);
        assert!(html.contains("href=\"https://example.com/org/repo/blob/HEAD/packages/a/docs/x.md\""), "{html}");
        assert!(html.contains("src=\"https://example.com/org/repo/raw/HEAD/packages/a/img/l.png\""), "{html}");
        assert!(html.contains("href=\"https://example.org/\""), "{html}");
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""), "{html}");
    }

    #[test]
    fn repository_forms() {
        let url = |v: Value| repository_url(&json!({"repository": v})).map(|(u, _)| u);
        assert_eq!(url(json!("git+https://example.com/o/r.git")).as_deref(), Some("https://example.com/o/r"));
        assert_eq!(url(json!("git://example.com/o/r.git")).as_deref(), Some("https://example.com/o/r"));
        assert_eq!(url(json!("git@example.com:o/r.git")).as_deref(), Some("https://example.com/o/r"));
        assert_eq!(url(json!({"url": "javascript:alert(1)"})), None);
        assert_eq!(url(json!(42)), None);
    }
}
