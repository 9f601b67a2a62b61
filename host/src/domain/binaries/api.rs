//! The `api` source: another Cairn's (or a cnpmcore's) `/-/binary/<category>/`
//! listings, JSON arrays of `{name, type, size, date, url, modified}`. A
//! resync asks only for what changed (`?since=&limit=`, pages followed by
//! the last `modified`); an upstream that ignores `since` is walked whole.

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
    #[serde(default)]
    modified: Option<String>,
}

/// Lists the directory at `url`; `None` when the upstream answers 404.
pub async fn list(app: &App, url: &str) -> Result<Option<Vec<Item>>, outbound::Error> {
    Ok(changes(app, url, None).await?.map(|c| c.items))
}

/// One listing answer and the upstream's `Date` (milliseconds).
async fn page(app: &App, url: &str) -> Result<Option<(Vec<Entry>, Option<i64>)>, outbound::Error> {
    let resp = app.outbound.get(url).max_bytes(16 << 20, "the binary page limit").send().await?;
    if resp.status() == 404 {
        return Ok(None);
    }
    let date = resp.header("date").and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()).map(|d| d.timestamp_millis());
    let body = resp.error_for_status()?.bytes().await?;
    let entries: Vec<Entry> = serde_json::from_slice(&body).map_err(|e| outbound::Error::Decode {
        what: format!("GET {}", crate::config::strip_userinfo(url)),
        why: format!("not a binary listing: {e}"),
    })?;
    Ok(Some((entries, date)))
}

/// A directory listed with `since`.
pub struct Changes {
    /// Only the entries modified since then, or every entry when not `incremental`.
    pub items: Vec<Item>,
    /// False when the upstream ignored `since` (an entry without `modified`,
    /// or modified before it): `items` is then the whole directory.
    pub incremental: bool,
    /// The upstream's clock when it answered the first page.
    pub date: Option<i64>,
}

/// Most entries asked per page of changes (the listing limit).
const PAGE: usize = 1000;

/// Lists what changed in the directory at `url` since `since` (ms, the
/// upstream's clock), following pages, or (without `since`) the whole
/// directory; `None` when the upstream answers 404.
pub async fn changes(app: &App, url: &str, since: Option<i64>) -> Result<Option<Changes>, outbound::Error> {
    let Some(since) = since else {
        let Some((entries, date)) = page(app, url).await? else { return Ok(None) };
        let items = entries.into_iter().filter_map(|e| item(e, url)).collect();
        return Ok(Some(Changes { items, incremental: false, date }));
    };
    let (mut items, mut seen, mut from, mut date) = (Vec::new(), std::collections::HashSet::new(), since, None);
    loop {
        let paged = format!("{url}?since={}&limit={PAGE}", crate::util::iso_ms(from));
        let Some((entries, answered)) = page(app, &paged).await? else { return Ok(None) };
        date = date.or(answered);
        let modified: Vec<Option<i64>> = entries.iter().map(|e| modified_ms(e.modified.as_deref())).collect();
        if modified.iter().any(|m| m.is_none_or(|m| m < from)) {
            // `since` was ignored: the answer is the whole directory.
            let items = entries.into_iter().filter_map(|e| item(e, url)).collect();
            return Ok(Some(Changes { items, incremental: false, date }));
        }
        let (full, last) = (entries.len() >= PAGE, modified.iter().flatten().max().copied());
        items.extend(entries.into_iter().filter(|e| seen.insert(e.name.clone())).filter_map(|e| item(e, url)));
        match last {
            Some(last) if full && last > from => from = last,
            // A full page of one instant cannot be paged by time: list the whole directory.
            _ if full => {
                let Some((entries, _)) = page(app, url).await? else { return Ok(None) };
                let items = entries.into_iter().filter_map(|e| item(e, url)).collect();
                return Ok(Some(Changes { items, incremental: false, date }));
            }
            _ => return Ok(Some(Changes { items, incremental: true, date })),
        }
    }
}

fn modified_ms(m: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(m?).ok().map(|d| d.timestamp_millis())
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
            modified: None,
        };
        let dir = item(e("v1.0.0/", "dir", None), "http://up.test/-/binary/node/").unwrap();
        assert_eq!((dir.url.as_str(), dir.size), ("http://up.test/-/binary/node/v1.0.0/", None));
        let file = item(e("a b.tgz", "file", Some("http://cdn.test/x")), "http://up.test/-/binary/node/").unwrap();
        assert_eq!((file.url.as_str(), file.size), ("http://cdn.test/x", Some(3)));
        assert!(item(e("../", "dir", None), "http://up.test/").is_none());
        assert!(item(e("x", "dir", None), "http://up.test/").is_none());
    }
}
