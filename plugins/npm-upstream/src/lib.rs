//! `npm_upstream.wasm` (upstream-adapter): proxies another npm-compatible
//! registry, optionally with a token.
//!
//! ```toml
//! [plugins.config]
//! registry = "https://npm.example.com/api/npm/"
//! token = "npm_..."   # optional; sent as `Authorization: Bearer`
//! ```
//!
//! `packument(name)` is `GET <registry>/<name>` with the `/` of a scoped
//! name sent as `%2f`: 404 means the registry does not know the package, any
//! other non-2xx status is an error. Tarballs are fetched from the URLs the
//! packuments give; the token goes only to the registry's own host (scheme,
//! host and port), never to a third-party tarball host.

use cairn_plugin_sdk::upstream_adapter::{get, Adapter, Guest, HttpResponse};
use cairn_plugin_sdk::{log, Loaded};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    registry: String,
    #[serde(default)]
    token: Option<String>,
}

struct Upstream {
    /// Without the trailing `/`.
    registry: String,
    /// `Bearer <token>`.
    authorization: Option<String>,
}

static UPSTREAM: Loaded<Upstream> = Loaded::new();

fn load() -> Result<Upstream, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    if !(config.registry.starts_with("http://") || config.registry.starts_with("https://")) {
        return Err(format!("npm-upstream: `registry` must be an http:// or https:// URL, got `{}`", config.registry));
    }
    let authorization = match config.token.as_deref().map(str::trim) {
        None => None,
        Some("") => return Err("npm-upstream: `token` is empty (leave it out for anonymous access)".into()),
        Some(token) => Some(format!("Bearer {token}")),
    };
    Ok(Upstream { registry: config.registry.trim_end_matches('/').to_string(), authorization })
}

/// `scheme://host[:port]` of `url`, lower-cased.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?; // drop user:password@
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

impl Upstream {
    fn get(&self, url: &str, accept: &str) -> Result<HttpResponse, String> {
        let same_origin = origin(url).is_some() && origin(url) == origin(&self.registry);
        let mut headers = vec![("accept", accept)];
        if let (true, Some(authorization)) = (same_origin, &self.authorization) {
            headers.push(("authorization", authorization));
        }
        get(url, &headers).map_err(|e| format!("GET {url}: {e}"))
    }

    fn packument_url(&self, name: &str) -> String {
        format!("{}/{}", self.registry, name.replace('/', "%2f"))
    }
}

struct NpmUpstream;

impl Guest for NpmUpstream {
    fn init() -> Result<(), String> {
        let upstream = UPSTREAM.get_or_load(load)?;
        log::info(format!("proxying {}{}", upstream.registry, if upstream.authorization.is_some() { " with a token" } else { "" }));
        Ok(())
    }
}

impl Adapter for NpmUpstream {
    fn packument(name: String) -> Result<Option<String>, String> {
        let upstream = UPSTREAM.get_or_load(load)?;
        let url = upstream.packument_url(&name);
        let response = upstream.get(&url, "application/json")?;
        match response.status {
            404 => Ok(None),
            200..=299 => String::from_utf8(response.body).map(Some).map_err(|_| format!("GET {url}: the packument is not UTF-8")),
            status => Err(format!("GET {url}: HTTP {status}")),
        }
    }

    fn tarball(_name: String, _version: String, url: String) -> Result<Vec<u8>, String> {
        let upstream = UPSTREAM.get_or_load(load)?;
        let response = upstream.get(&url, "application/octet-stream")?;
        match response.status {
            200..=299 => Ok(response.body),
            status => Err(format!("GET {url}: HTTP {status}")),
        }
    }
}

cairn_plugin_sdk::export_upstream_adapter!(NpmUpstream);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(origin("https://Reg.example:8443/a/b?c").as_deref(), Some("https://reg.example:8443"));
        assert_eq!(origin("https://u:p@reg.example/x").as_deref(), Some("https://reg.example"));
        assert_ne!(origin("https://reg.example.evil/x"), origin("https://reg.example/"));
        assert_eq!(origin("nope"), None);
    }

    #[test]
    fn scoped_names_are_encoded() {
        let upstream = Upstream { registry: "https://r/api".into(), authorization: None };
        assert_eq!(upstream.packument_url("@s/p"), "https://r/api/@s%2fp");
        assert_eq!(upstream.packument_url("p"), "https://r/api/p");
    }
}
