//! The binary mirror: `/-/binary/` listings and files (ETag, HEAD, Range,
//! If-None-Match), path validation, and syncs from a fake Node.js-style dist
//! site on loopback (autoindex pages, `SHASUMS256.txt`, a file whose checksum
//! is wrong), including an incremental second sync. The tests of the
//! Node.js-style source run once per implementation of it: the built-in
//! `node` source and the `node_dist.wasm` plugin (a `binary-source` plugin).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use cairn_e2e::publish::{poll, PW};
use cairn_e2e::{assert_error, both_backends, plugin, Backend, Method, Server, ServerOptions, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(cairn_mirrors_cairn, plugin_sources_fetch_only_from_allowed_hosts);

/// The implementations of the Node.js-style source.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// `type = "node"`.
    BuiltIn,
    /// `type = "node-dist"`, the `node_dist.wasm` plugin.
    Plugin,
}

/// Each test on both backends, with each implementation of the source.
macro_rules! node_sources {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::{Backend, Source};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite, Source::BuiltIn).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres, Source::BuiltIn).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plugin_sqlite() {
                super::$name(Backend::Sqlite, Source::Plugin).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plugin_postgres() {
                super::$name(Backend::Postgres, Source::Plugin).await
            }
        }
    )*};
}

node_sources!(
    browse_and_download,
    sync_is_incremental_and_verified,
    paths_and_permissions,
    cli_sync,
    scheduled_sync,
    orphan_binary_blobs_are_swept,
    resumes_after_kill,
);

// ------------------------------------------------------------------ fake dist site

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A static site: path → body, with a hit count per path.
struct Dist {
    base: String,
    files: Files,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Paths answered only after this pause, once.
    delays: Arc<Mutex<HashMap<String, std::time::Duration>>>,
    /// Paths answered with a redirect to another URL.
    redirects: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Dist {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dist {
    async fn start() -> Dist {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/dist/", listener.local_addr().unwrap());
        let files: Files = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let delays: Arc<Mutex<HashMap<String, std::time::Duration>>> = Arc::default();
        let redirects: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let (f, h, w, r) = (files.clone(), hits.clone(), delays.clone(), redirects.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (f, h, w, r) = (f.clone(), h.clone(), w.clone(), r.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let path = req.uri().path().to_string();
                        *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                        let body = f.lock().unwrap().get(&path).cloned();
                        let delay = w.lock().unwrap().remove(&path);
                        let redirect = r.lock().unwrap().get(&path).cloned();
                        async move {
                            if let Some(d) = delay {
                                tokio::time::sleep(d).await;
                            }
                            let resp = match (redirect, body) {
                                (Some(to), _) => {
                                    Response::builder().status(302).header("location", to).body(Full::new(Bytes::new())).unwrap()
                                }
                                (None, Some(b)) => Response::new(Full::new(Bytes::from(b))),
                                (None, None) => Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found"))).unwrap(),
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Dist { base, files, hits, delays, redirects, task }
    }

    /// Answers `path` with a redirect to `to`.
    fn redirect(&self, path: &str, to: &str) {
        self.redirects.lock().unwrap().insert(format!("/dist/{path}"), to.to_string());
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(format!("/dist/{path}"), body);
    }

    fn delay(&self, path: &str, d: std::time::Duration) {
        self.delays.lock().unwrap().insert(format!("/dist/{path}"), d);
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(&format!("/dist/{path}")).copied().unwrap_or(0)
    }

    /// An autoindex page of `dir` listing (name, date, size) entries; a size of None is a directory.
    fn page(&self, dir: &str, entries: &[(&str, &str, Option<usize>)]) {
        let mut html = format!("<html><head><title>Index of /dist/{dir}</title></head><body><pre><a href=\"../\">../</a>\n");
        for (name, date, size) in entries {
            let size = size.map_or("-".to_string(), |s| s.to_string());
            html.push_str(&format!("<a href=\"{name}\">{name}</a>{}{date}{size:>20}\n", " ".repeat(50 - name.len().min(49))));
        }
        html.push_str("</pre></body></html>\n");
        self.put(dir, html.into_bytes());
    }
}

fn bytes_of(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

const D1: &str = "01-Jan-2024 10:00";
const D2: &str = "02-Feb-2024 11:00";

/// The tree: `/`, `v1.0.0/` (SHASUMS256.txt, a good file, `bad.tar.gz`
/// whose checksum is wrong, `docs/readme.txt`) and `v2.0.0/`.
struct Tree {
    good: Vec<u8>,
    bad: Vec<u8>,
    v2: Vec<u8>,
}

fn publish_tree(d: &Dist, bad_sum_wrong: bool, v2: Vec<u8>, v2_date: &str) -> Tree {
    let good = bytes_of(1, 300_000);
    let bad = bytes_of(2, 1000);
    let readme = b"read me\n".to_vec();
    d.page("", &[("v1.0.0/", D1, None), ("v2.0.0/", D1, None), ("index.json", D1, Some(2))]);
    d.put("index.json", b"[]".to_vec());
    let bad_sum = if bad_sum_wrong { sha(b"something else") } else { sha(&bad) };
    let sums = format!("{}  node-v1.0.0.tar.gz\n{bad_sum}  bad.tar.gz\n{}  docs/readme.txt\n", sha(&good), sha(&readme));
    d.page(
        "v1.0.0/",
        &[
            ("docs/", D1, None),
            ("SHASUMS256.txt", D1, Some(sums.len())),
            ("bad.tar.gz", D1, Some(bad.len())),
            ("node-v1.0.0.tar.gz", D1, Some(good.len())),
        ],
    );
    d.put("v1.0.0/SHASUMS256.txt", sums.into_bytes());
    d.put("v1.0.0/node-v1.0.0.tar.gz", good.clone());
    d.put("v1.0.0/bad.tar.gz", bad.clone());
    d.page("v1.0.0/docs/", &[("readme.txt", D1, Some(readme.len()))]);
    d.put("v1.0.0/docs/readme.txt", readme);
    d.page("v2.0.0/", &[("node-v2.0.0.tar.gz", v2_date, Some(v2.len()))]);
    d.put("v2.0.0/node-v2.0.0.tar.gz", v2.clone());
    Tree { good, bad, v2 }
}

async fn server(backend: Backend, src: Source, d: &Dist) -> Server {
    Server::start_with(ServerOptions::new(backend).tail(&node_toml(src, &d.base, ""))).await
}

/// The `[[binaries]]` entry `node` (`extra` goes into it) reading the dist site
/// at `dist_url` through `src`, and for the plugin its `[[plugins]]` entry.
fn node_toml(src: Source, dist_url: &str, extra: &str) -> String {
    let kind = match src {
        Source::BuiltIn => "node",
        Source::Plugin => "node-dist",
    };
    let binary = binary_toml(kind, dist_url, extra);
    match src {
        Source::BuiltIn => binary,
        Source::Plugin => {
            let host = dist_url.split('/').nth(2).expect("a host in dist_url");
            format!("{binary}\n{}", node_dist_plugin(host, dist_url))
        }
    }
}

/// The `node-dist` plugin reading `dist_url`, allowed to reach `host` only.
fn node_dist_plugin(host: &str, dist_url: &str) -> String {
    format!(
        "[[plugins]]\nname = \"node-dist\"\nkind = \"upstream-adapter\"\npath = {:?}\ntimeout_ms = 10000\nallowed_hosts = [{host:?}]\n[plugins.config]\ndist_url = {dist_url:?}\n",
        plugin("node_dist").display().to_string()
    )
}

fn binary_toml(kind: &str, dist_url: &str, extra: &str) -> String {
    format!(
        "[[binaries]]\ncategory = \"node\"\ndescription = \"Node.js runtime\"\ntype = {kind:?}\ndist_url = {dist_url:?}\nrepo_url = \"https://example.test/node\"\nignore_files = [\"*.pdb\"]\n{extra}\n"
    )
}

async fn server_of(backend: Backend, kind: &str, dist_url: &str, extra: &str) -> Server {
    Server::start_with(ServerOptions::new(backend).tail(&binary_toml(kind, dist_url, extra))).await
}

/// Queues a sync as `token` and waits for it to end; (task, log).
async fn sync(s: &Server, token: &str) -> (Value, String) {
    let (status, body) = s.call(Method::POST, "/-/binary/node/sync", Some(token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ok"], true);
    let id = body["taskId"].as_str().unwrap().to_string();
    assert_eq!(body["logUrl"], format!("{}/-/binary/node/syncs/{id}/log", s.base));
    let task = poll(60, || async {
        let (_, t) = s.get(&format!("/-/binary/node/syncs/{id}"), None).await;
        matches!(t["state"].as_str(), Some("success" | "error")).then_some(t)
    })
    .await
    .unwrap_or_else(|| panic!("binary sync did not end; log:\n{}", s.log()));
    let (status, log) = s.get(&format!("/-/binary/node/syncs/{id}/log"), None).await;
    assert_eq!(status, StatusCode::OK);
    (task, log.as_str().unwrap_or_default().to_string())
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

async fn fetch(s: &Server, path: &str, headers: &[(&str, &str)], method: Method) -> reqwest::Response {
    let mut req = s.client.request(method, s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A request written as raw bytes (clients normalise `..` away).
async fn raw_status(s: &Server, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

// ------------------------------------------------------------------ tests

async fn browse_and_download(backend: Backend, src: Source) {
    let d = Dist::start().await;
    let tree = publish_tree(&d, true, bytes_of(3, 5000), D1);
    let s = server(backend, src, &d).await;
    let admin = s.add_admin("admin", PW).await;

    let (status, list) = s.get("/-/binary/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["name"], "node/");
    assert_eq!(list[0]["distUrl"], d.base);
    assert_eq!(list[0]["url"], format!("{}/-/binary/node/", s.base));
    let (status, root) = s.get("/-/binary/node/", None).await;
    assert_eq!((status, root.as_array().unwrap().len()), (StatusCode::OK, 0), "nothing synced yet");

    let (task, log) = sync(&s, &admin).await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("bad.tar.gz: rejected"), "{log}");

    // v1.0.0/ is incomplete (bad.tar.gz was rejected): not listed as a directory yet.
    let (_, root) = s.get("/-/binary/node/", None).await;
    assert_eq!(names(&root), ["index.json", "v2.0.0/"]);
    let v2 = root.as_array().unwrap().iter().find(|e| e["name"] == "v2.0.0/").unwrap();
    assert_eq!((v2["type"].as_str(), v2["date"].as_str()), (Some("dir"), Some(D1)));
    assert_eq!(v2["url"], format!("{}/-/binary/node/v2.0.0/", s.base));
    let (status, v1) = s.get("/-/binary/node/v1.0.0/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&v1), ["SHASUMS256.txt", "docs/", "node-v1.0.0.tar.gz"]);
    let good = v1.as_array().unwrap().iter().find(|e| e["name"] == "node-v1.0.0.tar.gz").unwrap();
    assert_eq!((good["type"].as_str(), good["size"].as_u64()), (Some("file"), Some(tree.good.len() as u64)));
    let (_, docs) = s.get("/-/binary/node/v1.0.0/docs", None).await;
    assert_eq!(names(&docs), ["readme.txt"]);

    // A file: streamed with its length and ETag; HEAD, Range, If-None-Match.
    let path = "/-/binary/node/v1.0.0/node-v1.0.0.tar.gz";
    let resp = fetch(&s, path, &[], Method::GET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], tree.good.len().to_string().as_str());
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha(&tree.good)));
    assert!(resp.headers().contains_key("last-modified"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.good.as_slice());
    let head = fetch(&s, path, &[], Method::HEAD).await;
    assert_eq!((head.status(), head.headers()["content-length"].to_str().unwrap()), (StatusCode::OK, tree.good.len().to_string().as_str()));
    let part = fetch(&s, path, &[("range", "bytes=1000-1009")], Method::GET).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], format!("bytes 1000-1009/{}", tree.good.len()).as_str());
    assert_eq!(part.bytes().await.unwrap().as_ref(), &tree.good[1000..1010]);
    let tail = fetch(&s, path, &[("range", "bytes=-5")], Method::GET).await;
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &tree.good[tree.good.len() - 5..]);
    let beyond = fetch(&s, path, &[("range", "bytes=999999999-")], Method::GET).await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let cached = fetch(&s, path, &[("if-none-match", &etag)], Method::GET).await;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert!(cached.bytes().await.unwrap().is_empty());

    // The rejected file is not served; unknown paths and binaries are 404s.
    for p in ["/-/binary/node/v1.0.0/bad.tar.gz", "/-/binary/node/v9.9.9/", "/-/binary/nope/", "/-/binary/node/v1.0.0/docs/nothing"] {
        let (status, body) = s.get(p, None).await;
        assert_error(status, &body, 404);
    }
    drop(tree.bad);

    // ?since=&limit=
    let (status, some) = s.get("/-/binary/node/v1.0.0/?since=2000-01-01&limit=1", None).await;
    assert_eq!((status, some.as_array().unwrap().len()), (StatusCode::OK, 1));
    let (status, none) = s.get("/-/binary/node/v1.0.0/?since=2999-01-01T00:00:00Z", None).await;
    assert_eq!((status, none.as_array().unwrap().len()), (StatusCode::OK, 0));
    let (status, body) = s.get("/-/binary/node/v9.9.9/?since=2000-01-01", None).await;
    assert_error(status, &body, 404);
    let (status, body) = s.get("/-/binary/node/?limit=1001", None).await;
    assert_error(status, &body, 400);
    let (status, body) = s.get("/-/binary/node/?since=yesterday", None).await;
    assert_error(status, &body, 400);
}

async fn sync_is_incremental_and_verified(backend: Backend, src: Source) {
    let d = Dist::start().await;
    publish_tree(&d, true, bytes_of(3, 5000), D1);
    let s = server(backend, src, &d).await;
    let admin = s.add_admin("admin", PW).await;
    sync(&s, &admin).await;
    assert_eq!((d.hits("v1.0.0/node-v1.0.0.tar.gz"), d.hits("v1.0.0/docs/readme.txt"), d.hits("v2.0.0/node-v2.0.0.tar.gz")), (1, 1, 1));

    // Upstream: the checksum list is fixed, the newest version's file changed (same directory date).
    let tree = publish_tree(&d, false, bytes_of(4, 7000), D2);
    let (task, log) = sync(&s, &admin).await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(!log.contains(": rejected"), "{log}");
    assert_eq!(d.hits("v1.0.0/node-v1.0.0.tar.gz"), 1, "an unchanged file is not fetched again:\n{log}");
    assert_eq!(d.hits("v1.0.0/docs/"), 1, "a complete directory is not listed again:\n{log}");
    assert_eq!(d.hits("v1.0.0/bad.tar.gz"), 2, "the rejected file is fetched again");
    assert_eq!(d.hits("v2.0.0/node-v2.0.0.tar.gz"), 2, "the newest directory is always checked");
    let (_, root) = s.get("/-/binary/node/", None).await;
    assert_eq!(names(&root), ["index.json", "v1.0.0/", "v2.0.0/"], "v1.0.0/ is complete now");
    let resp = fetch(&s, "/-/binary/node/v2.0.0/node-v2.0.0.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.v2.as_slice());
    let resp = fetch(&s, "/-/binary/node/v1.0.0/bad.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.bad.as_slice());

    // A third sync with nothing changed fetches no file.
    let (_, log) = sync(&s, &admin).await;
    assert!(log.contains("0 files fetched"), "{log}");
}

async fn paths_and_permissions(backend: Backend, src: Source) {
    let d = Dist::start().await;
    publish_tree(&d, true, bytes_of(3, 10), D1);
    let s = server(backend, src, &d).await;
    let bob = s.add_user("bob", PW).await;
    let (status, body) = s.call(Method::POST, "/-/binary/node/sync", Some(&bob), None).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::POST, "/-/binary/node/sync", None, None).await;
    assert_error(status, &body, 401);
    let admin = s.add_admin("admin", PW).await;
    let (status, body) = s.call(Method::POST, "/-/binary/nope/sync", Some(&admin), None).await;
    assert_error(status, &body, 404);
    let (status, body) = s.get("/-/binary/node/syncs/nope", None).await;
    assert_error(status, &body, 404);

    assert_eq!(raw_status(&s, "/-/binary/node/../x").await, 400);
    assert_eq!(raw_status(&s, "/-/binary/node/v1.0.0/%2e%2e/x").await, 400);
    assert_eq!(raw_status(&s, "/-/binary/node/a%01b").await, 400);
    assert_eq!(raw_status(&s, &format!("/-/binary/node/{}", "a/".repeat(600))).await, 400);
    assert_eq!(raw_status(&s, "/-/binary/node/v1.0.0/").await, 404, "not synced yet");
}

/// The `api` source: a second Cairn mirrors the first one's `/-/binary/node/`.
async fn cairn_mirrors_cairn(backend: Backend) {
    let d = Dist::start().await;
    let tree = publish_tree(&d, false, bytes_of(3, 5000), D1);
    let up = server(backend, Source::BuiltIn, &d).await;
    let up_admin = up.add_admin("admin", PW).await;
    let (task, log) = sync(&up, &up_admin).await;
    assert_eq!(task["state"], "success", "{log}");
    let here = server_of(Backend::Sqlite, "api", &format!("{}/-/binary/node/", up.base), "").await;
    let admin = here.add_admin("admin", PW).await;
    let (task, log) = sync(&here, &admin).await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("6 files fetched"), "{log}");
    let (_, root) = here.get("/-/binary/node/", None).await;
    assert_eq!(names(&root), ["index.json", "v1.0.0/", "v2.0.0/"]);
    let (_, v1) = here.get("/-/binary/node/v1.0.0/", None).await;
    assert_eq!(names(&v1), ["SHASUMS256.txt", "bad.tar.gz", "docs/", "node-v1.0.0.tar.gz"]);
    let resp = fetch(&here, "/-/binary/node/v1.0.0/node-v1.0.0.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.good.as_slice());
    let (_, log) = sync(&here, &admin).await;
    assert!(log.contains("0 files fetched"), "a second sync fetches nothing: {log}");
}

/// `cairn sync --binary node` queues the sync, runs it and waits for it.
async fn cli_sync(backend: Backend, src: Source) {
    let d = Dist::start().await;
    publish_tree(&d, false, bytes_of(3, 5000), D1);
    let s = server(backend, src, &d).await;
    let out = s.cli(&["sync", "--binary", "node"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, root) = s.get("/-/binary/node/", None).await;
    assert_eq!(names(&root), ["index.json", "v1.0.0/", "v2.0.0/"]);
    let out = s.cli(&["sync", "--binary", "nope"], "").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// `sync_interval_secs` queues syncs by itself.
async fn scheduled_sync(backend: Backend, src: Source) {
    let d = Dist::start().await;
    publish_tree(&d, false, bytes_of(3, 5000), D1);
    let s = Server::start_with(ServerOptions::new(backend).tail(&node_toml(src, &d.base, "sync_interval_secs = 1"))).await;
    let synced = poll(60, || async {
        let (_, root) = s.get("/-/binary/node/", None).await;
        (names(&root).len() == 3).then_some(())
    })
    .await;
    assert!(synced.is_some(), "no scheduled sync ran:\n{}", s.log());
    d.put("index.json", b"[1]".to_vec());
    d.page("", &[("v1.0.0/", D1, None), ("v2.0.0/", D1, None), ("index.json", D2, Some(3))]);
    let again = poll(60, || async {
        (fetch(&s, "/-/binary/node/index.json", &[], Method::GET).await.bytes().await.ok()?.as_ref() == b"[1]").then_some(())
    })
    .await;
    assert!(again.is_some(), "the schedule repeats");
}

/// Sets a file's modification time to `hours` hours ago.
fn age_file(path: &std::path::Path, hours: u32) {
    let status = std::process::Command::new("touch").arg("-m").arg("-d").arg(format!("{hours} hours ago")).arg(path).status().unwrap();
    assert!(status.success(), "touch {}", path.display());
}

/// A binary blob no row references (a crash between blob and row) is swept;
/// the mirrored files stay.
async fn orphan_binary_blobs_are_swept(backend: Backend, src: Source) {
    let d = Dist::start().await;
    let tree = publish_tree(&d, false, bytes_of(3, 5000), D1);
    let mut s = server(backend, src, &d).await;
    let admin = s.add_admin("admin", PW).await;
    sync(&s, &admin).await;
    s.stop_with("KILL").await;
    let dir = s.data_dir.path().join("blobs/binaries/node");
    for f in std::fs::read_dir(&dir).unwrap() {
        age_file(&f.unwrap().path(), 2);
    }
    let orphan = dir.join("0123456789abcdef0123456789abcdef");
    std::fs::write(&orphan, b"left by a crash").unwrap();
    age_file(&orphan, 2);
    s.restart().await;
    let gone = poll(30, || async { (!orphan.exists()).then_some(()) }).await;
    assert!(gone.is_some(), "the orphan is still there:\n{}", s.log());
    let resp = fetch(&s, "/-/binary/node/v1.0.0/node-v1.0.0.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.good.as_slice(), "a referenced blob is kept");
}

/// kill -9 in the middle of a sync: after the restart the task is recovered
/// and resumes; what was complete is not fetched again.
async fn resumes_after_kill(backend: Backend, src: Source) {
    let d = Dist::start().await;
    let tree = publish_tree(&d, false, bytes_of(3, 5000), D1);
    d.delay("v2.0.0/node-v2.0.0.tar.gz", std::time::Duration::from_secs(30));
    let tail = node_toml(src, &d.base, "");
    let mut s = Server::start_with(ServerOptions::new(backend).toml("sync_task_timeout_secs = 2").tail(&tail)).await;
    let admin = s.add_admin("admin", PW).await;
    let (status, body) = s.call(Method::POST, "/-/binary/node/sync", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["taskId"].as_str().unwrap().to_string();
    let stuck = poll(30, || async { (d.hits("v2.0.0/node-v2.0.0.tar.gz") == 1).then_some(()) }).await;
    assert!(stuck.is_some(), "the sync never reached the slow file:\n{}", s.log());
    s.stop_with("KILL").await;
    s.restart().await;
    let task = poll(60, || async {
        let (_, t) = s.get(&format!("/-/binary/node/syncs/{id}"), None).await;
        (t["state"] == "success").then_some(t)
    })
    .await;
    assert!(task.is_some(), "the task did not resume:\n{}", s.log());
    assert_eq!(d.hits("v1.0.0/node-v1.0.0.tar.gz"), 1, "a complete directory is not fetched again");
    assert_eq!(d.hits("v2.0.0/node-v2.0.0.tar.gz"), 2);
    let resp = fetch(&s, "/-/binary/node/v2.0.0/node-v2.0.0.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.v2.as_slice());
}

/// A plugin source's files are downloaded by the host, and only from the
/// plugin's `allowed_hosts`: a file that redirects to another host is refused
/// (the built-in source follows it), the rest of the tree is mirrored.
async fn plugin_sources_fetch_only_from_allowed_hosts(backend: Backend) {
    let (d, elsewhere) = (Dist::start().await, Dist::start().await);
    let tree = publish_tree(&d, false, bytes_of(3, 5000), D1);
    elsewhere.put("v2.tgz", tree.v2.clone());
    d.redirect("v2.0.0/node-v2.0.0.tar.gz", &format!("{}v2.tgz", elsewhere.base));
    let s = server(backend, Source::Plugin, &d).await;
    let admin = s.add_admin("admin", PW).await;
    let (task, log) = sync(&s, &admin).await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("walking plugin node-dist"), "{log}");
    assert!(log.contains("v2.0.0/node-v2.0.0.tar.gz") && log.contains("not in allowed_hosts of plugin node-dist"), "{log}");
    assert_eq!(elsewhere.hits("v2.tgz"), 0, "nothing was fetched from a host the plugin may not reach");
    let (_, root) = s.get("/-/binary/node/", None).await;
    assert_eq!(names(&root), ["index.json", "v1.0.0/"], "v2.0.0/ is incomplete");
    let resp = fetch(&s, "/-/binary/node/v1.0.0/node-v1.0.0.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.good.as_slice());
    // The built-in source follows the redirect.
    let builtin = server(Backend::Sqlite, Source::BuiltIn, &d).await;
    let admin = builtin.add_admin("admin", PW).await;
    let (_, log) = sync(&builtin, &admin).await;
    assert_eq!(elsewhere.hits("v2.tgz"), 1, "{log}");
    let resp = fetch(&builtin, "/-/binary/node/v2.0.0/node-v2.0.0.tar.gz", &[], Method::GET).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), tree.v2.as_slice());
}

/// A `type` that is neither a built-in source nor an upstream-adapter plugin
/// exporting `binary-source` stops the server at start, saying why; so does a
/// registry whose `type` is a binary source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_sources_are_checked_at_start() {
    let npm_upstream = format!(
        "[[plugins]]\nname = \"npm-up\"\nkind = \"upstream-adapter\"\npath = {:?}\n[plugins.config]\nregistry = \"http://127.0.0.1:9/\"\n",
        plugin("npm_upstream").display().to_string()
    );
    let node_dist = node_dist_plugin("127.0.0.1:9", "http://127.0.0.1:9/dist/");
    let cases = [
        (binary_toml("nope", "http://127.0.0.1:9/dist/", ""), "neither a known source"),
        (format!("{}\n{npm_upstream}", binary_toml("npm-up", "", "")), "does not export cairn:plugin/binary-source"),
        (
            format!("[[registries]]\nname = \"up\"\nhost = \"http://127.0.0.1:9\"\ntype = \"node-dist\"\n\n{node_dist}"),
            "is a binary source (binary-source-adapter), it serves no packages",
        ),
    ];
    for (tail, needle) in cases {
        let Err(log) = Server::try_start_with(ServerOptions::new(Backend::Sqlite).tail(&tail)).await else { panic!("started with {tail}") };
        assert!(log.contains(needle), "expected {needle:?} in:\n{log}");
    }
}

/// The mirror on S3 (moto): a file larger than a multipart part streamed up
/// and served whole and by `Range`; the file whose checksum is wrong left no
/// object in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_s3_storage() {
    let endpoint = cairn_e2e::s3::endpoint();
    let bucket = cairn_e2e::s3::create_bucket(&endpoint).await;
    let d = Dist::start().await;
    let big = bytes_of(3, 6_000_000);
    let tree = publish_tree(&d, true, big.clone(), D1);
    let tail = format!(
        "{}\n[[binaries]]\ncategory = \"node\"\ntype = \"node\"\ndist_url = {:?}\n",
        cairn_e2e::s3::blobs_toml(&endpoint, &bucket),
        d.base
    );
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&tail)).await;
    let admin = s.add_admin("admin", PW).await;
    let (task, log) = sync(&s, &admin).await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("bad.tar.gz: rejected"), "{log}");

    let path = "/-/binary/node/v2.0.0/node-v2.0.0.tar.gz";
    let resp = fetch(&s, path, &[], Method::GET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), big.as_slice());
    let (start, end) = (5 * 1024 * 1024 - 100, 5 * 1024 * 1024 + 99);
    let resp = fetch(&s, path, &[("range", &format!("bytes={start}-{end}"))], Method::GET).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["content-range"], format!("bytes {start}-{end}/{}", big.len()).as_str());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &big[start..=end]);
    let resp = fetch(&s, "/-/binary/node/v1.0.0/node-v1.0.0.tar.gz", &[], Method::HEAD).await;
    assert_eq!(resp.headers()["content-length"], tree.good.len().to_string().as_str());

    // index.json, SHASUMS256.txt, the good file, docs/readme.txt and the big one; not bad.tar.gz.
    let xml = reqwest::get(format!("{endpoint}/{bucket}?list-type=2&prefix=cairn/binaries/")).await.unwrap().text().await.unwrap();
    let sizes: Vec<usize> = xml.split("<Size>").skip(1).filter_map(|s| s.split("</Size>").next()?.parse().ok()).collect();
    assert_eq!(sizes.len(), 5, "{xml}");
    assert!(!sizes.contains(&tree.bad.len()), "no object of the rejected file: {sizes:?}");
    assert!(!s.data_dir.path().join("blobs/binaries").exists());
}
