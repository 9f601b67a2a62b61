//! The `api` source: another Cairn's (or a cnpmcore's) `/-/binary/<category>/`
//! listings, JSON arrays of `{name, type, size, date, url}`.

use serde::Deserialize;

use crate::domain::App;
use crate::outbound;

use super::node::{self, Item};

/// What a name may not hold unescaped in a URL path (a directory's `/` stays).
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'<').add(b'>').add(b'?').add(b'`').add(b'{').add(b'}');

#[derive(Deserialize)]
struct Entry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// Lists the directory at `url`; `None` when the upstream answers 404.
pub async fn list(app: &App, url: &str) -> Result<Option<Vec<Item>>, outbound::Error> {
    let Some(body) = node::small(app, url).await? else { return Ok(None) };
    let entries: Vec<Entry> = serde_json::from_slice(&body).map_err(|e| outbound::Error::Decode {
        what: format!("GET {}", crate::config::strip_userinfo(url)),
        why: format!("not a binary listing: {e}"),
    })?;
    Ok(Some(entries.into_iter().filter_map(|e| item(e, url)).collect()))
}

fn item(e: Entry, base: &str) -> Option<Item> {
    let is_dir = e.kind == "dir";
    if is_dir != e.name.ends_with('/') || !node::usable(&e.name) {
        return None;
    }
    let own = format!("{base}{}", percent_encoding::utf8_percent_encode(&e.name, SEGMENT));
    // Directories are listed at this source's own addresses; files come from where the source says.
    let url = if is_dir { own } else { e.url.filter(|u| u.starts_with("http://") || u.starts_with("https://")).unwrap_or(own) };
    Some(Item { is_dir, size: if is_dir { None } else { e.size }, date: e.date.unwrap_or_default(), url, name: e.name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listings() {
        let e = |name: &str, kind: &str, url: Option<&str>| Entry {
            name: name.into(),
            kind: kind.into(),
            size: Some(3),
            date: Some("d".into()),
            url: url.map(str::to_string),
        };
        let dir = item(e("v1.0.0/", "dir", None), "http://up.test/-/binary/node/").unwrap();
        assert_eq!((dir.url.as_str(), dir.size), ("http://up.test/-/binary/node/v1.0.0/", None));
        let file = item(e("a b.tgz", "file", Some("http://cdn.test/x")), "http://up.test/-/binary/node/").unwrap();
        assert_eq!((file.url.as_str(), file.size), ("http://cdn.test/x", Some(3)));
        assert!(item(e("../", "dir", None), "http://up.test/").is_none());
        assert!(item(e("x", "dir", None), "http://up.test/").is_none());
    }
}
