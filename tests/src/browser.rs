//! A small HTTP "browser" for the web UI tests: keeps cookies, sends forms,
//! reads CSRF tokens out of pages. Redirects are not followed (tests look at them).

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> String {
        attr_after(&self.body, "name=\"csrf\"", "value").unwrap_or_else(|| panic!("no CSRF field in the page:\n{}", self.body))
    }
}

/// The value of attribute `attr` in the tag containing `marker`.
pub fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].replace("&amp;", "&"))
}

#[derive(Default)]
pub struct Browser {
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new() -> Browser {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { client, cookies: BTreeMap::new() }
    }

    async fn send(&mut self, method: Method, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = self.client.request(method, url).header("accept", "text/html,application/xhtml+xml");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(COOKIE, jar.join("; "));
        }
        if let Some(fields) = form {
            req = req.form(fields);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap_or("");
            let Some((k, rest)) = c.split_once('=') else { continue };
            let v = rest.split(';').next().unwrap_or("");
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        Page { status, headers, body: resp.text().await.unwrap_or_default() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.send(Method::GET, url, None).await
    }

    pub async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        self.send(Method::POST, url, Some(fields)).await
    }
}
