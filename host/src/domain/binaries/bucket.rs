//! The `bucket` source: an S3 or GCS bucket read with ListObjects (XML).
//! A directory is a key prefix listed with the delimiter `/`: its common
//! prefixes are the subdirectories, its objects the files (size,
//! `LastModified`). ListObjectsV2 pages are followed by their continuation
//! token, version 1 pages (a server that ignores `list-type=2`) by
//! `NextMarker` or the last key.

use quick_xml::events::Event;

use crate::config::BinaryConfig;
use crate::domain::App;
use crate::outbound;

use super::node::{self, Item};

/// Pages followed for one directory before the listing is refused.
const MAX_PAGES: usize = 10_000;

/// What a query value or an object key may hold unescaped (`/` stays in keys).
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
const KEY: &percent_encoding::AsciiSet = &QUERY.remove(b'/');

/// One object of a listing page.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: Option<u64>,
    pub last_modified: String,
}

/// One page of a ListObjects answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub prefixes: Vec<String>,
    pub objects: Vec<Object>,
    pub truncated: bool,
    /// ListObjectsV2.
    pub next_token: Option<String>,
    /// ListObjects (version 1), sent only with a delimiter.
    pub next_marker: Option<String>,
}

/// Reads a `ListBucketResult` document.
pub fn parse(xml: &str) -> Result<Page, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut page, mut path, mut text, mut object) = (Page::default(), Vec::<String>::new(), String::new(), Object::default());
    let mut root = false;
    loop {
        match reader.read_event().map_err(|e| format!("not a ListObjects answer: {e}"))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                root |= path.is_empty() && name == "ListBucketResult";
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.xml10_content().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
                Some(c) => text.push(c),
                None => {
                    let name = r.xml10_content().map_err(|e| e.to_string())?;
                    text.push_str(quick_xml::escape::resolve_xml_entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?);
                }
            },
            Event::End(_) => {
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                let value = std::mem::take(&mut text);
                match names.as_slice() {
                    ["ListBucketResult", "Contents"] => page.objects.push(std::mem::take(&mut object)),
                    ["ListBucketResult", "Contents", "Key"] => object.key = value,
                    ["ListBucketResult", "Contents", "Size"] => object.size = value.trim().parse().ok(),
                    ["ListBucketResult", "Contents", "LastModified"] => object.last_modified = value.trim().to_string(),
                    ["ListBucketResult", "CommonPrefixes", "Prefix"] => page.prefixes.push(value),
                    ["ListBucketResult", "IsTruncated"] => page.truncated = value.trim() == "true",
                    ["ListBucketResult", "NextContinuationToken"] => page.next_token = Some(value).filter(|v| !v.is_empty()),
                    ["ListBucketResult", "NextMarker"] => page.next_marker = Some(value).filter(|v| !v.is_empty()),
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if root && path.is_empty() {
        Ok(page)
    } else {
        Err("not a ListObjects answer".into())
    }
}

impl Page {
    /// The entries of the directory `prefix` (`""` or `a/b/`) on this page.
    fn items(&self, bucket: &str, prefix: &str) -> Vec<Item> {
        let dirs = self.prefixes.iter().filter_map(|p| {
            let name = p.strip_prefix(prefix)?;
            (name.ends_with('/') && node::usable(name)).then(|| Item {
                name: name.to_string(),
                is_dir: true,
                size: None,
                // Prefixes have no date: a directory is listed again on every sync.
                date: String::new(),
                url: format!("{bucket}{}", percent_encoding::utf8_percent_encode(p, KEY)),
            })
        });
        let files = self.objects.iter().filter_map(|o| {
            let name = o.key.strip_prefix(prefix)?;
            (!name.ends_with('/') && node::usable(name)).then(|| Item {
                name: name.to_string(),
                is_dir: false,
                size: o.size,
                date: o.last_modified.clone(),
                url: format!("{bucket}{}", percent_encoding::utf8_percent_encode(&o.key, KEY)),
            })
        });
        dirs.chain(files).collect()
    }

    /// The query parameter of the next page, if there is one.
    fn next(&self) -> Option<(&'static str, String)> {
        if let Some(token) = &self.next_token {
            return Some(("continuation-token", token.clone()));
        }
        if !self.truncated {
            return None;
        }
        let marker = self.next_marker.clone().or_else(|| self.objects.last().map(|o| o.key.clone()));
        marker.map(|m| ("marker", m))
    }
}

/// Lists the directory `parent` (`/` or `/a/b/`) of the bucket at
/// `cfg.dist_url`, every page; `None` when the bucket answers 404.
pub async fn list(app: &App, cfg: &BinaryConfig, parent: &str) -> Result<Option<Vec<Item>>, outbound::Error> {
    let prefix = parent.strip_prefix('/').unwrap_or(parent);
    let mut items = Vec::new();
    let mut next: Option<(&'static str, String)> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!("{}?list-type=2&delimiter=%2F&prefix={}", cfg.dist_url, percent_encoding::utf8_percent_encode(prefix, QUERY));
        if let Some((key, value)) = &next {
            url.push_str(&format!("&{key}={}", percent_encoding::utf8_percent_encode(value, QUERY)));
        }
        let Some(body) = node::small(app, &url).await? else { return Ok(None) };
        let decode = |why: String| outbound::Error::Decode { what: format!("GET {}", crate::config::strip_userinfo(&url)), why };
        let page = parse(&String::from_utf8_lossy(&body)).map_err(decode)?;
        items.extend(page.items(&cfg.dist_url, prefix));
        match page.next() {
            None => return Ok(Some(items)),
            Some(n) if next.as_ref() == Some(&n) => return Err(decode("the next page is the same page again".into())),
            Some(n) => next = Some(n),
        }
    }
    Err(outbound::Error::Decode { what: format!("listing {}{prefix}", cfg.dist_url), why: format!("more than {MAX_PAGES} pages") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listings() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>v1/</Prefix>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>
<Contents><Key>v1/</Key><Size>0</Size><LastModified>2024-01-01T10:00:00.000Z</LastModified></Contents>
<Contents><Key>v1/a &lt;b&gt;.tgz</Key><LastModified>2024-01-02T10:00:00.000Z</LastModified><ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag><Size>12</Size></Contents>
<CommonPrefixes><Prefix>v1/sub/</Prefix></CommonPrefixes><CommonPrefixes><Prefix><![CDATA[v1/../]]></Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page = parse(xml).unwrap();
        assert_eq!(page.next(), Some(("continuation-token", "tok&1".to_string())));
        let items = page.items("http://s3.test/b/", "v1/");
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["sub/", "a <b>.tgz"]);
        assert_eq!(items[1].size, Some(12));
        assert_eq!(items[1].date, "2024-01-02T10:00:00.000Z");
        assert_eq!(items[1].url, "http://s3.test/b/v1/a%20%3Cb%3E.tgz");
        assert_eq!(items[0].url, "http://s3.test/b/v1/sub/");

        let v1 =
            parse("<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>x</Key><Size>1</Size></Contents></ListBucketResult>")
                .unwrap();
        assert_eq!(v1.next(), Some(("marker", "x".to_string())));
        let last = parse("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").unwrap();
        assert_eq!(last.next(), None);
        assert!(parse("<Error><Code>AccessDenied</Code></Error>").is_err());
        assert!(parse("<html>").is_err());
    }
}
