//! A programmable fake upstream registry on a loopback port (tokio + hyper 1),
//! and the helpers the sync tests share.
//!
//! It serves the packuments and tarballs a test registers, with faults per
//! request path: a status code, a delay, a truncated body (a `Content-Length`
//! larger than the bytes sent, then the connection closes) or different
//! tarball bytes than the packument's integrity says. It counts requests and
//! records the `Authorization` header of each, per path.
//!
//! Paths are compared decoded (`/@scope%2fname` is `/@scope/name`); tarballs are
//! served at `publish::tarball_path`.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::publish::{enc, integrity, package_json, poll, sha1_hex, tarball, tarball_path};
use crate::{Method, Server, StatusCode};

/// What goes wrong on one path.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Answer this status (with a small JSON error body) instead of the resource.
    pub status: Option<u16>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Announce the full length but send only half the bytes, then close.
    pub truncate: bool,
    /// The fault applies to this many requests, then clears itself. None: until cleared.
    pub times: Option<usize>,
}

impl Fault {
    pub fn status(code: u16) -> Fault {
        Fault { status: Some(code), ..Default::default() }
    }
    pub fn delay(d: Duration) -> Fault {
        Fault { delay: Some(d), ..Default::default() }
    }
    pub fn truncate() -> Fault {
        Fault { truncate: true, ..Default::default() }
    }
    /// Only the next `n` requests.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub at: Instant,
    /// The status answered (before any truncation).
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// Packuments by package name.
    packuments: BTreeMap<String, Value>,
    /// Raw files (tarballs) by decoded path.
    files: HashMap<String, Bytes>,
    faults: HashMap<String, Fault>,
    seen: Vec<Seen>,
    /// What `/_changes` answers (any query); default an empty feed.
    changes: Option<Changes>,
    /// Paths answered with `302 Location: <url>`.
    redirects: HashMap<String, String>,
}

/// What the fake's `/_changes` answers.
#[derive(Debug, Clone)]
pub enum Changes {
    /// This JSON document.
    Feed(Value),
    /// A body that never ends (chunks of a JSON array, no `Content-Length`);
    /// the bytes actually written are counted in [`FakeUpstream::endless_sent`].
    Endless,
}

pub struct FakeUpstream {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
    /// Bytes of endless bodies handed to hyper so far.
    endless_sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The decoded path of a packument: `/name`, `/@scope/name`.
pub fn packument_path(name: &str) -> String {
    format!("/{name}")
}

fn decode_path(raw: &str) -> String {
    raw.replace("%2f", "/").replace("%2F", "/").replace("%40", "@")
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake upstream");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let endless_sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sent = endless_sent.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (st, sent) = (st.clone(), sent.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| handle(st.clone(), sent.clone(), req));
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        FakeUpstream { base: format!("http://{addr}"), state, accept, endless_sent }
    }

    /// Adds `name`@`version` (a real tarball with `extra` package.json fields),
    /// makes it `latest`, and returns the tarball bytes.
    pub fn add_version(&self, name: &str, version: &str, extra: Value) -> Vec<u8> {
        let tgz = tarball(name, version, extra.clone());
        let mut manifest = package_json(name, version, &extra);
        manifest["_id"] = json!(format!("{name}@{version}"));
        manifest["_npmUser"] = json!({"name": "fakeuser", "email": "fakeuser@example.com"});
        manifest["dist"] = json!({
            "tarball": format!("{}{}", self.base, tarball_path(name, version)),
            "integrity": integrity(&tgz),
            "shasum": sha1_hex(&tgz),
        });
        let mut st = self.state.lock().unwrap();
        let doc = st.packuments.entry(name.to_string()).or_insert_with(|| {
            json!({
                "_id": name,
                "name": name,
                "dist-tags": {},
                "versions": {},
                "time": {"created": "2024-01-01T00:00:00.000Z"},
                "maintainers": [{"name": "fakeuser", "email": "fakeuser@example.com"}],
            })
        });
        let n = doc["versions"].as_object().unwrap().len();
        doc["versions"][version] = manifest;
        doc["dist-tags"]["latest"] = json!(version);
        doc["time"][version] = json!(format!("2024-01-01T00:{:02}:00.000Z", n.min(59)));
        doc["time"]["modified"] = doc["time"][version].clone();
        st.files.insert(tarball_path(name, version), Bytes::from(tgz.clone()));
        tgz
    }

    /// Changes a packument in place.
    pub fn edit(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.state.lock().unwrap();
        f(st.packuments.get_mut(name).unwrap_or_else(|| panic!("no packument {name} in the fake upstream")));
    }

    pub fn packument(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().packuments.get(name).cloned()
    }

    /// Removes a package: its packument and tarballs answer 404 from now on.
    pub fn remove(&self, name: &str) {
        let mut st = self.state.lock().unwrap();
        st.packuments.remove(name);
        let prefix = format!("/{name}/-/");
        st.files.retain(|p, _| !p.starts_with(&prefix));
    }

    /// Serves other bytes for a tarball than its packument's integrity describes.
    pub fn replace_tarball(&self, name: &str, version: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(tarball_path(name, version), Bytes::from(bytes));
    }

    /// Sets the fault of a (decoded) path, replacing any other.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state.lock().unwrap().faults.insert(path.to_string(), fault);
    }

    pub fn clear_fault(&self, path: &str) {
        self.state.lock().unwrap().faults.remove(path);
    }

    /// Requests received on a path.
    pub fn hits(&self, path: &str) -> usize {
        self.state.lock().unwrap().seen.iter().filter(|s| s.path == path).count()
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The `Authorization` headers received on a path, one per request.
    pub fn authorizations(&self, path: &str) -> Vec<Option<String>> {
        self.state.lock().unwrap().seen.iter().filter(|s| s.path == path).map(|s| s.authorization.clone()).collect()
    }

    /// Sets what `/_changes` answers.
    pub fn set_changes(&self, changes: Changes) {
        self.state.lock().unwrap().changes = Some(changes);
    }

    /// Answers `path` (decoded) with `302 Location: location` from now on.
    pub fn redirect(&self, path: &str, location: &str) {
        self.state.lock().unwrap().redirects.insert(path.to_string(), location.to_string());
    }

    /// Bytes of endless `/_changes` bodies handed to the connection so far.
    pub fn endless_sent(&self) -> u64 {
        self.endless_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `[[registries]]` table naming this fake, as the default upstream.
    pub fn registry_toml(&self, name: &str, extra: &str) -> String {
        format!("[[registries]]\nname = {name:?}\nhost = {:?}\ntype = \"npm\"\ndefault = true\n{extra}\n", self.base)
    }
}

/// The fake's answers: a [`FakeBody`], or an endless one.
type AnyBody = http_body_util::Either<FakeBody, EndlessBody>;

async fn handle(
    state: Arc<Mutex<State>>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    req: Request<Incoming>,
) -> Result<Response<AnyBody>, Infallible> {
    let path = decode_path(req.uri().path());
    let authorization = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(resp) = special(&state, &sent, &path, &authorization) {
        return Ok(resp);
    }
    handle_resource(state, path, authorization, req).await.map(|r| r.map(http_body_util::Either::Left))
}

/// `/_changes` and redirects, recorded like every request.
fn special(
    state: &Arc<Mutex<State>>,
    sent: &Arc<std::sync::atomic::AtomicU64>,
    path: &str,
    authorization: &Option<String>,
) -> Option<Response<AnyBody>> {
    let mut st = state.lock().unwrap();
    let fixed = |bytes: Bytes| http_body_util::Either::Left(FakeBody { data: Some(bytes), truncated: false, pause: None });
    let (status, body, location) = if let Some(to) = st.redirects.get(path) {
        (302, fixed(Bytes::new()), Some(to.clone()))
    } else if path == "/_changes" {
        match st.changes.clone() {
            Some(Changes::Endless) => (200, http_body_util::Either::Right(EndlessBody { sent: sent.clone() }), None),
            Some(Changes::Feed(doc)) => (200, fixed(Bytes::from(doc.to_string())), None),
            None => (200, fixed(Bytes::from(json!({"results": [], "last_seq": 0}).to_string())), None),
        }
    } else {
        return None;
    };
    st.seen.push(Seen { path: path.to_string(), authorization: authorization.clone(), at: Instant::now(), status });
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().unwrap());
    if let Some(to) = location {
        resp.headers_mut().insert(hyper::header::LOCATION, to.parse().unwrap());
    }
    Some(resp)
}

/// A body that never ends: 64 KiB chunks of a JSON array of change rows.
pub struct EndlessBody {
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Body for EndlessBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        static CHUNK: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let chunk = CHUNK.get_or_init(|| Bytes::from(r#"{"seq":1,"id":"endless"},"#.repeat(64 * 1024 / 25))).clone();
        let first = self.sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed) == 0;
        let data = if first { Bytes::from([&b"{\"results\":["[..], &chunk[..]].concat()) } else { chunk };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        false
    }
}

async fn handle_resource(
    state: Arc<Mutex<State>>,
    path: String,
    authorization: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Infallible> {
    let (fault, found) = {
        let mut st = state.lock().unwrap();
        let fault = match st.faults.get_mut(&path) {
            Some(f) => {
                let current = f.clone();
                if let Some(n) = f.times.as_mut() {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        st.faults.remove(&path);
                    }
                }
                if current.times == Some(0) {
                    Fault::default()
                } else {
                    current
                }
            }
            None => Fault::default(),
        };
        let found = if path == "/-/v1/search" {
            Some(("application/json", search_answer(&st.packuments, req.uri().query().unwrap_or(""))))
        } else if let Some(bytes) = st.files.get(&path) {
            Some(("application/octet-stream", bytes.clone()))
        } else {
            st.packuments.get(path.trim_start_matches('/')).map(|doc| ("application/json", Bytes::from(doc.to_string())))
        };
        let status = fault.status.unwrap_or(if found.is_some() { 200 } else { 404 });
        st.seen.push(Seen { path: path.clone(), authorization, at: Instant::now(), status });
        (fault, found)
    };
    if let Some(d) = fault.delay {
        tokio::time::sleep(d).await;
    }
    let (status, content_type, bytes) = match (fault.status, found) {
        (Some(code), _) => (code, "application/json", Bytes::from(json!({"error": format!("fake fault {code}")}).to_string())),
        (None, None) => (404, "application/json", Bytes::from(r#"{"error":"not_found"}"#)),
        (None, Some((ct, b))) => (200, ct, b),
    };
    let len = bytes.len();
    let body = if fault.truncate && len > 1 {
        FakeBody { data: Some(bytes.slice(..len / 2)), truncated: true, pause: None }
    } else {
        FakeBody { data: Some(bytes), truncated: false, pause: None }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    let h = resp.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, content_type.parse().unwrap());
    h.insert(hyper::header::CONTENT_LENGTH, len.to_string().parse().unwrap());
    if fault.truncate {
        h.insert(hyper::header::CONNECTION, "close".parse().unwrap());
    }
    Ok(resp)
}

/// `/-/v1/search?text=&from=&size=`: the packuments whose name contains
/// `text`, by name, in npm's result shape.
fn search_answer(packuments: &BTreeMap<String, Value>, query: &str) -> Bytes {
    let param =
        |k: &str| query.split('&').filter_map(|p| p.split_once('=')).find(|(n, _)| *n == k).map(|(_, v)| decode_path(&v.replace('+', " ")));
    let text = param("text").unwrap_or_default();
    let from: usize = param("from").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size: usize = param("size").and_then(|v| v.parse().ok()).unwrap_or(20);
    let hits: Vec<&Value> = packuments.iter().filter(|(n, _)| n.contains(&text)).map(|(_, d)| d).collect();
    let objects: Vec<Value> = hits
        .iter()
        .skip(from)
        .take(size)
        .map(|d| json!({"package": {"name": d["name"], "version": d["dist-tags"]["latest"], "description": "from the fake upstream"}, "score": {"final": 0.5}, "searchScore": 0.5}))
        .collect();
    Bytes::from(json!({"objects": objects, "total": hits.len(), "time": "2024-01-01T00:00:00.000Z"}).to_string())
}

/// A body of one chunk. A truncated one pauses after its chunk (so it is
/// flushed) and then fails, which makes hyper close the connection short of
/// the announced `Content-Length`.
struct FakeBody {
    data: Option<Bytes>,
    truncated: bool,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(d) = self.data.take() {
            if self.truncated {
                self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
            }
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if !self.truncated {
            return Poll::Ready(None);
        }
        if let Some(p) = self.pause.as_mut() {
            if p.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
            self.truncated = false;
            return Poll::Ready(Some(Err(std::io::Error::other("fake truncation"))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && !self.truncated
    }

    /// Never exact: hyper then keeps our `Content-Length` header as given.
    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

// ------------------------------------------------------------------ sync helpers

/// `PUT /-/package/NAME/syncs` with `body`; returns status and answer.
pub async fn request_sync(s: &Server, token: Option<&str>, name: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::PUT, &format!("/-/package/{}/syncs", enc(name)), token, Some(&body)).await
}

/// Requests a sync and asserts 201; returns the task id.
pub async fn sync_ok(s: &Server, token: &str, name: &str, body: Value) -> String {
    let (status, resp) = request_sync(s, Some(token), name, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "PUT /-/package/{name}/syncs {body}: {resp}");
    resp["id"].as_str().unwrap_or_else(|| panic!("no id in {resp}")).to_string()
}

/// `GET /-/package/NAME/syncs/ID`.
pub async fn task(s: &Server, name: &str, id: &str) -> Value {
    let (status, body) = s.get(&format!("/-/package/{}/syncs/{id}", enc(name)), None).await;
    assert_eq!(status, StatusCode::OK, "GET sync task {id} of {name}: {body}");
    body
}

/// `GET /-/package/NAME/syncs/ID/log` as text.
pub async fn task_log(s: &Server, name: &str, id: &str) -> String {
    let resp = s.client.get(s.url(&format!("/-/package/{}/syncs/{id}/log", enc(name)))).send().await.expect("log request");
    assert_eq!(resp.status(), StatusCode::OK, "GET sync log {id} of {name}");
    resp.text().await.unwrap()
}

/// Polls the task until it is `success` or `error` (at most `secs`); returns its JSON.
pub async fn wait_done(s: &Server, name: &str, id: &str, secs: u64) -> Value {
    let done = poll(secs, || async {
        let t = task(s, name, id).await;
        matches!(t["state"].as_str(), Some("success") | Some("error")).then_some(t)
    })
    .await;
    match done {
        Some(t) => t,
        None => {
            let t = task(s, name, id).await;
            let log = task_log(s, name, id).await;
            panic!("sync task {id} of {name} not done within {secs} s: {t}\nits log:\n{log}\nserver log tail:\n{}", tail(&s.log(), 40));
        }
    }
}

/// Waits for the task to end in `success`; returns its JSON.
pub async fn wait_success(s: &Server, name: &str, id: &str, secs: u64) -> Value {
    let t = wait_done(s, name, id, secs).await;
    if t["state"] != json!("success") {
        let log = task_log(s, name, id).await;
        panic!("sync task {id} of {name} ended in {}: {t}\nits log:\n{log}", t["state"]);
    }
    t
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
