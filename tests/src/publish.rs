//! npm package helpers: real gzipped tarballs, the publish body exactly as
//! libnpmpublish builds it, raw HTTP requests and small assertions shared by
//! the package tests.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};
use sha1::Digest as _;

use crate::{Method, Server, StatusCode};

/// What `npm install` sends to get the abbreviated ("corgi") packument.
pub const CORGI_ACCEPT: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

pub const PW: &str = "password123";

/// The `package.json` that [`tarball`] writes: a few fields npm always has,
/// then `extra` (an object) merged over them.
pub fn package_json(name: &str, version: &str, extra: &Value) -> Value {
    let mut pj = json!({
        "name": name,
        "version": version,
        "description": format!("{name} test package"),
        "main": "index.js",
        "scripts": {"test": "echo ok"},
        "license": "MIT",
        "dependencies": {},
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            pj[k] = v.clone();
        }
    }
    pj
}

/// A gzipped tar with `package/package.json` and `package/index.js`, laid out
/// like `npm pack` does (fixed mtime, so equal inputs give equal bytes).
pub fn tarball(name: &str, version: &str, extra: Value) -> Vec<u8> {
    let pj = serde_json::to_vec_pretty(&package_json(name, version, &extra)).unwrap();
    let index = format!("module.exports = {{ name: {name:?}, version: {version:?} }};\n").into_bytes();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for (path, data) in [("package/package.json", &pj), ("package/index.js", &index)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(499162500); // 1985-10-26T08:15:00Z, as npm pack
        header.set_cksum();
        builder.append_data(&mut header, path, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// `package/package.json` read back out of a tarball.
pub fn read_package_json(tgz: &[u8]) -> Value {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("package/package.json") {
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            return serde_json::from_str(&s).unwrap();
        }
    }
    panic!("no package/package.json in tarball");
}

pub fn sha1_hex(data: &[u8]) -> String {
    sha1::Sha1::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn integrity(data: &[u8]) -> String {
    format!("sha512-{}", b64(&sha2::Sha512::digest(data)))
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The body of `npm publish` (libnpmpublish `buildMetadata`): the version
/// manifest is the tarball's package.json plus `_id` and `dist`.
pub fn publish_body(name: &str, version: &str, tarball: &[u8], tag: Option<&str>, base_url: &str) -> Value {
    let mut manifest = read_package_json(tarball);
    // The version npm publishes is the one in the manifest; let callers override both.
    manifest["name"] = json!(name);
    manifest["version"] = json!(version);
    let tarball_name = format!("{name}-{version}.tgz");
    manifest["_id"] = json!(format!("{name}@{version}"));
    manifest["_nodeVersion"] = json!("22.12.0");
    manifest["_npmVersion"] = json!("10.9.0");
    manifest["dist"] = json!({
        "integrity": integrity(tarball),
        "shasum": sha1_hex(tarball),
        "tarball": format!("{}/{name}/-/{tarball_name}", base_url.trim_end_matches('/')),
    });
    let mut dist_tags = Map::new();
    dist_tags.insert(tag.unwrap_or("latest").to_string(), json!(version));
    let mut versions = Map::new();
    versions.insert(version.to_string(), manifest.clone());
    let mut attachments = Map::new();
    attachments.insert(tarball_name, json!({"content_type": "application/octet-stream", "data": b64(tarball), "length": tarball.len()}));
    let mut root = Map::new();
    root.insert("_id".into(), json!(name));
    root.insert("name".into(), json!(name));
    if let Some(d) = manifest.get("description") {
        root.insert("description".into(), d.clone());
    }
    root.insert("dist-tags".into(), Value::Object(dist_tags));
    root.insert("versions".into(), Value::Object(versions));
    root.insert("access".into(), Value::Null);
    root.insert("_attachments".into(), Value::Object(attachments));
    Value::Object(root)
}

/// The name as it appears in a URL path: `@scope/name` → `@scope%2fname` (as npm sends it).
pub fn enc(name: &str) -> String {
    name.replace('/', "%2f")
}

/// The last path part of a package name: `@scope/name` → `name`.
pub fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap()
}

/// The canonical tarball path: `/name/-/name-1.0.0.tgz`, `/@s/n/-/n-1.0.0.tgz`.
pub fn tarball_path(name: &str, version: &str) -> String {
    format!("/{name}/-/{}-{version}.tgz", basename(name))
}

pub struct Published {
    pub status: StatusCode,
    pub body: Value,
    pub tarball: Vec<u8>,
}

/// Builds a tarball with `extra` fields and publishes it under `tag` (None: latest).
pub async fn publish_with(s: &Server, token: Option<&str>, name: &str, version: &str, extra: Value, tag: Option<&str>) -> Published {
    let tgz = tarball(name, version, extra);
    let body = publish_body(name, version, &tgz, tag, &s.base);
    let (status, resp) = s.call(Method::PUT, &format!("/{}", enc(name)), token, Some(&body)).await;
    Published { status, body: resp, tarball: tgz }
}

/// Publishes and asserts 201 `{ok: true}`; returns the tarball bytes.
#[track_caller]
pub fn assert_published(p: &Published) {
    assert_eq!(p.status, StatusCode::CREATED, "publish: {}", p.body);
    assert_eq!(p.body["ok"], json!(true), "publish body: {}", p.body);
}

pub async fn publish_ok(s: &Server, token: &str, name: &str, version: &str) -> Vec<u8> {
    let p = publish_with(s, Some(token), name, version, json!({}), None).await;
    assert_published(&p);
    p.tarball
}

pub async fn publish_tagged(s: &Server, token: &str, name: &str, version: &str, tag: &str) -> Vec<u8> {
    let p = publish_with(s, Some(token), name, version, json!({}), Some(tag)).await;
    assert_published(&p);
    p.tarball
}

/// `GET /NAME?write=true` as npm does before owner/deprecate/unpublish/star; asserts 200.
pub async fn write_doc(s: &Server, token: &str, name: &str) -> Value {
    let (status, doc) = s.get(&format!("/{}?write=true", enc(name)), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "GET ?write=true: {doc}");
    assert!(doc["_rev"].as_str().is_some_and(|r| !r.is_empty()), "_rev in {doc}");
    doc
}

/// The full packument, asked for as npm asks for full metadata (`Accept: application/json`).
pub async fn packument(s: &Server, name: &str) -> Value {
    let r = request(s, Method::GET, &format!("/{}", enc(name)), None, &[("accept", "application/json")], None).await;
    let doc = r.json();
    assert_eq!(r.status, StatusCode::OK, "GET /{name}: {doc}");
    doc
}

/// A readonly token for the user that owns `login_token`.
pub async fn readonly_token(s: &Server, login_token: &str) -> String {
    let (status, body) =
        s.call(Method::POST, "/-/npm/v1/tokens", Some(login_token), Some(&json!({"password": PW, "readonly": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "create readonly token: {body}");
    body["token"].as_str().unwrap().to_string()
}

/// A response with its headers and raw bytes.
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.bytes).into_owned()))
    }
}

/// Any request: extra headers, optional raw body.
pub async fn request(s: &Server, method: Method, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
    let mut req = s.client.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body").to_vec();
    Resp { status, headers, bytes }
}

/// A request whose path goes on the wire exactly as given (no URL
/// normalisation of `..` or `%2e%2e`). Returns status and the body as JSON.
pub async fn raw_http(s: &Server, method: &str, raw_path: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let mut head = format!("{method} {raw_path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", s.addr);
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or(b"");
    if !body.is_empty() || method == "PUT" || method == "POST" {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut resp)).await.expect("response in time").unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad response: {text}"));
    let body_text = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let value = serde_json::from_str(body_text).unwrap_or(Value::String(body_text.to_string()));
    (status, value)
}

/// Every file under the blob store (its `.tmp` scratch directory excluded), sorted.
pub fn blob_files(s: &Server) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == ".tmp") {
                    continue;
                }
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root = s.data_dir.path().join("blobs");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Asserts a client error (4xx) with the `{"error", "reason"}` body, its status one of `allowed`
/// (empty: any 4xx).
#[track_caller]
pub fn assert_error_in(status: StatusCode, body: &Value, allowed: &[u16], what: &str) {
    assert!(status.is_client_error(), "{what}: expected a 4xx, got {status}: {body}");
    if !allowed.is_empty() {
        assert!(allowed.contains(&status.as_u16()), "{what}: expected one of {allowed:?}, got {status}: {body}");
    }
    assert!(body["error"].as_str().is_some_and(|s| !s.is_empty()), "{what}: error field in {body}");
    assert!(body["reason"].as_str().is_some_and(|s| !s.is_empty()), "{what}: reason field in {body}");
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    civil_date(secs.div_euclid(86400))
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's algorithm).
pub fn civil_date(days: i64) -> String {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// Gunzips `data`.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("valid gzip");
    out
}

/// Gzips `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Polls `f` every 100 ms until it returns Some, for at most `secs` seconds.
pub async fn poll<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `npm unpublish NAME@VERSION`, step by step as libnpmpublish does it.
pub async fn unpublish_version(s: &Server, token: &str, name: &str, version: &str) {
    let mut doc = write_doc(s, token, name).await;
    let tarball_url = doc["versions"][version]["dist"]["tarball"].as_str().unwrap().to_string();
    let latest = doc["dist-tags"]["latest"].clone();
    doc["versions"].as_object_mut().unwrap().remove(version);
    let tags = doc["dist-tags"].as_object_mut().unwrap();
    tags.retain(|_, v| v != &json!(version));
    if latest == json!(version) {
        let mut remaining: Vec<String> = doc["versions"].as_object().unwrap().keys().cloned().collect();
        remaining.sort_by_key(|v| semverish(v));
        doc["dist-tags"]["latest"] = json!(remaining.last().unwrap());
    }
    let o = doc.as_object_mut().unwrap();
    o.remove("_revisions");
    o.remove("_attachments");
    let rev = doc["_rev"].as_str().unwrap().to_string();
    let (status, body) = s.call(Method::PUT, &format!("/{}/-rev/{rev}", enc(name)), Some(token), Some(&doc)).await;
    assert!(status.is_success(), "unpublish PUT -rev: {status} {body}");
    let doc = write_doc(s, token, name).await;
    let rev = doc["_rev"].as_str().unwrap();
    // npm takes the path of dist.tarball, whatever its host.
    let after_scheme = tarball_url.split_once("://").map_or(tarball_url.as_str(), |(_, rest)| rest);
    let path = &after_scheme[after_scheme.find('/').expect("a path in dist.tarball")..];
    let (status, body) = s.call(Method::DELETE, &format!("{path}/-rev/{rev}"), Some(token), None).await;
    assert!(status.is_success(), "unpublish DELETE tarball: {status} {body}");
}

/// Orders like `semver.compareLoose` for the versions these tests use: numbers, then a
/// release above its prereleases.
fn semverish(v: &str) -> (Vec<u64>, bool, String) {
    let (core, pre) = v.split_once('-').unwrap_or((v, ""));
    (core.split('.').map(|p| p.parse().unwrap_or(0)).collect(), pre.is_empty(), pre.to_string())
}
