//! Proxy mode (`sync_mode = "proxy"`): a pull-through cache in front of a
//! default upstream registry, and the audit forwarder.
//!
//! The upstream is a second Cairn (started by the test, on loopback) or a
//! small fake HTTP server defined below: a fixed packument and tarball with a
//! delay, a counting reverse proxy in front of the second Cairn, a server that
//! never answers, or an audit service that records what it was sent. No public
//! registry is ever contacted: every npm run gets a throwaway HOME, npmrc and
//! cache pointing at the Cairn under test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_e2e::clients::{isolated_command, tail, Run};
use cairn_e2e::publish::{
    assert_published, enc, gunzip, integrity, publish_ok, publish_with, request, sha1_hex, tarball, tarball_path, CORGI_ACCEPT, PW,
};
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

use cairn_e2e::upstream::FakeUpstream;
use fake::{Fake, Reply, Seen};

both_backends!(
    install_tree_through_proxy,
    packument_reads,
    negative_cache,
    metadata_refresh,
    upstream_down_serves_cache,
    local_packages_win,
    search_merges_upstream
);

/// Bound on one npm command.
const NPM_TIMEOUT: Duration = Duration::from_secs(50);

// ---------------------------------------------------------------------------
// A tiny HTTP server for fake upstreams
// ---------------------------------------------------------------------------

mod fake {
    use std::collections::HashMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use serde_json::Value;

    /// One request the fake received.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub method: String,
        /// Path and query, as sent.
        pub path: String,
        /// Lower-case names.
        pub headers: HashMap<String, String>,
        pub body: Vec<u8>,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(String::as_str)
        }
    }

    pub struct Reply {
        pub status: u16,
        pub content_type: String,
        pub body: Vec<u8>,
    }

    impl Reply {
        pub fn json(status: u16, body: &Value) -> Reply {
            Reply { status, content_type: "application/json".into(), body: body.to_string().into_bytes() }
        }
        pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
            Reply { status, content_type: content_type.into(), body }
        }
    }

    type Handler = Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

    /// An HTTP/1.1 server on 127.0.0.1 answering every request with `handler`, recording them all.
    pub struct Fake {
        pub base: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        accept: tokio::task::JoinHandle<()>,
    }

    impl Fake {
        pub async fn start<F, Fut>(f: F) -> Fake
        where
            F: Fn(Seen) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Reply> + Send + 'static,
        {
            let handler: Handler = Arc::new(move |s| Box::pin(f(s)));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake upstream");
            let addr = listener.local_addr().unwrap();
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
            let seen_by_server = seen.clone();
            let accept = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let handler = handler.clone();
                    let seen = seen_by_server.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let handler = handler.clone();
                            let seen = seen.clone();
                            async move {
                                let method = req.method().to_string();
                                let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
                                    .collect();
                                let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                                let s = Seen { method, path, headers, body };
                                seen.lock().unwrap().push(s.clone());
                                let reply = handler(s).await;
                                let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
                                *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap();
                                resp.headers_mut().insert("content-type", reply.content_type.parse().unwrap());
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
            Fake { base: format!("http://{addr}"), seen, accept }
        }

        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        /// Requests received with this method and exact path (query included).
        pub fn count(&self, method: &str, path: &str) -> usize {
            self.seen.lock().unwrap().iter().filter(|s| s.method == method && s.path == path).count()
        }

        pub fn describe(&self) -> String {
            self.seen.lock().unwrap().iter().map(|s| format!("{} {}", s.method, s.path)).collect::<Vec<_>>().join("\n")
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }
}

/// A reverse proxy to `target` that counts what passes through it.
async fn counting_proxy(target: &str) -> Fake {
    let target = target.to_string();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Fake::start(move |s: Seen| {
        let client = client.clone();
        let target = target.clone();
        async move {
            let method = reqwest::Method::from_bytes(s.method.as_bytes()).unwrap();
            let mut req = client.request(method, format!("{target}{}", s.path));
            for h in ["accept", "authorization", "content-type", "content-encoding", "npm-replication-opt-in"] {
                if let Some(v) = s.header(h) {
                    req = req.header(h, v);
                }
            }
            if !s.body.is_empty() {
                req = req.body(s.body.clone());
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
                    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    Reply::bytes(status, &ct, body)
                }
                Err(e) => Reply::json(502, &json!({"error": "bad_gateway", "reason": e.to_string()})),
            }
        }
    })
    .await
}

/// A packument as a registry serves it, with one version whose tarball is at `http://{host}/...`.
fn fixed_packument(name: &str, version: &str, tgz: &[u8], host: &str) -> Value {
    json!({
        "_id": name,
        "name": name,
        "description": "served by a fake upstream",
        "dist-tags": {"latest": version},
        "versions": {
            version: {
                "_id": format!("{name}@{version}"),
                "name": name,
                "version": version,
                "description": "served by a fake upstream",
                "scripts": {"test": "echo ok"},
                "dependencies": {},
                "dist": {
                    "tarball": format!("http://{host}{}", tarball_path(name, version)),
                    "integrity": integrity(tgz),
                    "shasum": sha1_hex(tgz),
                },
            }
        },
        "time": {"created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", version: "2024-01-01T00:00:00.000Z"},
    })
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The upstream Cairn (always SQLite: it only stands in for a registry) and its publisher's token.
async fn start_upstream() -> (Server, String) {
    let up = Server::start(Backend::Sqlite).await;
    let token = up.add_user("alice", PW).await;
    (up, token)
}

fn registry_toml(host: &str) -> String {
    format!("[[registries]]\nname = \"up\"\nhost = \"{host}\"\ntype = \"npm\"\ndefault = true\n")
}

/// A Cairn in proxy mode whose default registry is `host`; `extra` are more top-level keys.
async fn start_proxy(backend: Backend, host: &str, extra: &str) -> Server {
    let mut top = String::from("sync_mode = \"proxy\"\nupstream_timeout_secs = 2\n");
    top.push_str(extra);
    Server::start_with(ServerOptions::new(backend).toml(&top).tail(&registry_toml(host))).await
}

/// GET with an Accept header; status, the content-type, body as JSON.
async fn get_accept(s: &Server, path: &str, accept: &str) -> (StatusCode, Option<String>, Value) {
    let r = request(s, Method::GET, path, None, &[("accept", accept)], None).await;
    (r.status, r.header("content-type"), r.json())
}

/// GET of raw bytes.
async fn get_bytes(s: &Server, path: &str) -> (StatusCode, Vec<u8>) {
    let r = request(s, Method::GET, path, None, &[], None).await;
    (r.status, r.bytes)
}

fn version_keys(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["versions"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    v.sort();
    v
}

/// A 5xx (or 404) answer with the error body: what an unreachable upstream may give.
#[track_caller]
fn assert_unavailable(status: StatusCode, body: &Value, what: &str) {
    assert!(status.is_server_error() || status == StatusCode::NOT_FOUND, "{what}: expected 5xx or 404, got {status}: {body}");
    assert!(body["error"].as_str().is_some_and(|s| !s.is_empty()), "{what}: error field in {body}");
    assert!(body["reason"].as_str().is_some_and(|s| !s.is_empty()), "{what}: reason field in {body}");
}

// ---------------------------------------------------------------------------
// npm CLI
// ---------------------------------------------------------------------------

/// A throwaway machine: HOME, npmrc (registry = `server`), global npmrc and cache in a temp dir.
struct Machine<'a> {
    server: &'a Server,
    dir: tempfile::TempDir,
}

impl<'a> Machine<'a> {
    fn new(server: &'a Server) -> Machine<'a> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::write(dir.path().join("npmrc"), format!("registry={}/\n", server.base)).unwrap();
        std::fs::write(dir.path().join("globalnpmrc"), "").unwrap();
        Machine { server, dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Logs this machine's npm in with `token`.
    fn login(&self, token: &str) {
        let host = self.server.base.trim_start_matches("http://");
        std::fs::write(self.path("npmrc"), format!("registry={}/\n//{host}/:_authToken={token}\n", self.server.base)).unwrap();
    }

    /// A project directory holding a publishable package.json.
    fn package(&self, name: &str, version: &str) -> PathBuf {
        let dir = self.path("work").join(name.replace('/', "+"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("package.json"), json!({"name": name, "version": version, "description": "x"}).to_string()).unwrap();
        dir
    }

    /// A clean project directory with a private package.json.
    fn project(&self, name: &str) -> PathBuf {
        let dir = self.path("work").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            serde_json::to_string_pretty(&json!({"name": name, "version": "1.0.0", "private": true})).unwrap(),
        )
        .unwrap();
        dir
    }

    async fn npm(&self, cwd: &Path, args: &[&str], audit: bool) -> Run {
        let mut cmd = isolated_command("npm", &self.path("npmrc"), &self.path("globalnpmrc"), &self.path("npm-cache"));
        let home = self.path("home");
        cmd.args(args)
            .current_dir(cwd)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("npm_config_audit", if audit { "true" } else { "false" });
        let what = format!("npm {}", args.join(" "));
        let out = match tokio::time::timeout(NPM_TIMEOUT, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("could not run `{what}`: {e}"),
            Err(_) => panic!("`{what}` did not finish within {NPM_TIMEOUT:?}\n--- server log (tail) ---\n{}", tail(&self.server.log(), 40)),
        };
        Run::from_output(what, out, tail(&self.server.log(), 40))
    }
}

fn installed_version(project: &Path, name: &str) -> String {
    let p = project.join("node_modules").join(name).join("package.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["version"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// Proxy mode
// ---------------------------------------------------------------------------

/// `npm install` of a package whose three-level tree (unscoped → scoped →
/// unscoped) exists only upstream: the lockfile points at the proxy with the
/// upstream's integrities, the tarballs are stored here (served with the
/// upstream stopped), and `npm ci` on another clean machine works offline from upstream.
async fn install_tree_through_proxy(backend: Backend) {
    let (mut up, tok) = start_upstream().await;
    let sfx = suffix();
    let (a, b, c) = (format!("tree-a-{sfx}"), format!("@sc{sfx}/tree-b-{sfx}"), format!("tree-c-{sfx}"));
    let mut upstream_tgz = Vec::new();
    for (name, deps) in [(&c, json!({})), (&b, json!({c.clone(): "^1.0.0"})), (&a, json!({b.clone(): "^1.0.0"}))] {
        let p = publish_with(&up, Some(&tok), name, "1.0.0", json!({"dependencies": deps}), None).await;
        assert_published(&p);
        upstream_tgz.push((name.clone(), p.tarball));
    }
    let s = start_proxy(backend, &up.base, "").await;

    let m = Machine::new(&s);
    let project = m.project("app");
    let run = m.npm(&project, &["install", &a], false).await;
    assert!(run.success(), "{}", run.describe());
    for (name, _) in &upstream_tgz {
        assert_eq!(installed_version(&project, name), "1.0.0", "{name} in node_modules");
    }

    let lock: Value = serde_json::from_str(&std::fs::read_to_string(project.join("package-lock.json")).unwrap()).unwrap();
    for (name, tgz) in &upstream_tgz {
        let entry = &lock["packages"][format!("node_modules/{name}")];
        let resolved = entry["resolved"].as_str().unwrap_or_else(|| panic!("no resolved for {name} in {lock}"));
        assert_eq!(resolved, s.url(&tarball_path(name, "1.0.0")), "lockfile resolved URL of {name} must point at the proxy");
        // The upstream's own integrity for that version.
        let (st, up_doc) = up.get(&format!("/{}", enc(name)), None).await;
        assert_eq!(st, StatusCode::OK);
        let up_integrity = up_doc["versions"]["1.0.0"]["dist"]["integrity"].as_str().unwrap().to_string();
        assert_eq!(up_integrity, integrity(tgz));
        assert_eq!(entry["integrity"].as_str(), Some(up_integrity.as_str()), "lockfile integrity of {name}");
    }

    // The tarballs are stored here: served with the upstream stopped.
    up.stop_with("TERM").await;
    for (name, tgz) in &upstream_tgz {
        let (st, bytes) = get_bytes(&s, &tarball_path(name, "1.0.0")).await;
        assert_eq!(st, StatusCode::OK, "tarball of {name} with the upstream stopped: {}", String::from_utf8_lossy(&bytes));
        assert!(bytes == *tgz, "tarball of {name} served by the proxy differs from the upstream's");
    }

    // A clean machine installs from the lockfile alone, the upstream still down.
    let other = Machine::new(&s);
    let project2 = other.project("app");
    std::fs::copy(project.join("package.json"), project2.join("package.json")).unwrap();
    std::fs::copy(project.join("package-lock.json"), project2.join("package-lock.json")).unwrap();
    let run = other.npm(&project2, &["ci"], false).await;
    assert!(run.success(), "{}", run.describe());
    for (name, _) in &upstream_tgz {
        assert_eq!(installed_version(&project2, name), "1.0.0", "{name} after npm ci");
    }
}

/// Full and abbreviated packuments, version reads and tarballs of
/// upstream-only packages (unscoped and scoped).
async fn packument_reads(backend: Backend) {
    let (up, tok) = start_upstream().await;
    let s = start_proxy(backend, &up.base, "").await;
    let sfx = suffix();
    for name in [format!("read-{sfx}"), format!("@sc{sfx}/read-{sfx}")] {
        let t1 = publish_ok(&up, &tok, &name, "1.0.0").await;
        let t2 = publish_ok(&up, &tok, &name, "1.1.0").await;
        let (_, up_doc) = up.get(&format!("/{}", enc(&name)), None).await;
        let path = format!("/{}", enc(&name));

        let (st, ct, doc) = get_accept(&s, &path, "application/json").await;
        assert_eq!(st, StatusCode::OK, "GET {path}: {doc}");
        assert!(ct.as_deref().is_some_and(|c| c.starts_with("application/json")), "content-type {ct:?}");
        assert_eq!(doc["name"], json!(name));
        assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"), "{doc}");
        assert_eq!(version_keys(&doc), vec!["1.0.0", "1.1.0"]);
        for v in ["1.0.0", "1.1.0"] {
            let dist = &doc["versions"][v]["dist"];
            assert_eq!(dist["tarball"], json!(s.url(&tarball_path(&name, v))), "full packument tarball URL of {name}@{v}");
            assert_eq!(dist["integrity"], up_doc["versions"][v]["dist"]["integrity"], "integrity of {name}@{v}");
            assert_eq!(dist["shasum"], up_doc["versions"][v]["dist"]["shasum"], "shasum of {name}@{v}");
        }
        assert_eq!(doc["versions"]["1.0.0"]["scripts"], json!({"test": "echo ok"}), "full manifests keep all fields");

        // Abbreviated, as npm install asks for it.
        let (st, ct, corgi) = get_accept(&s, &path, CORGI_ACCEPT).await;
        assert_eq!(st, StatusCode::OK, "abbreviated GET {path}: {corgi}");
        assert!(ct.as_deref().is_some_and(|c| c.starts_with("application/vnd.npm.install-v1+json")), "abbreviated content-type {ct:?}");
        assert_eq!(corgi["name"], json!(name));
        assert_eq!(corgi["dist-tags"]["latest"], json!("1.1.0"));
        assert_eq!(version_keys(&corgi), vec!["1.0.0", "1.1.0"]);
        for v in ["1.0.0", "1.1.0"] {
            let m = &corgi["versions"][v];
            assert_eq!(m["dist"]["tarball"], json!(s.url(&tarball_path(&name, v))), "abbreviated tarball URL of {name}@{v}");
            assert_eq!(m["dist"]["integrity"], up_doc["versions"][v]["dist"]["integrity"]);
            assert!(m.get("scripts").is_none(), "abbreviated manifest of {name}@{v} has scripts: {m}");
        }
        assert!(corgi.get("readme").is_none() && corgi.get("users").is_none(), "abbreviated document has full-only fields: {corgi}");

        // Version reads.
        let (st, m) = s.get(&format!("{path}/1.0.0"), None).await;
        assert_eq!(st, StatusCode::OK, "GET {path}/1.0.0: {m}");
        assert_eq!(m["version"], json!("1.0.0"));
        assert_eq!(m["name"], json!(name));
        assert_eq!(m["dist"]["tarball"], json!(s.url(&tarball_path(&name, "1.0.0"))));
        let (st, m) = s.get(&format!("{path}/latest"), None).await;
        assert_eq!(st, StatusCode::OK, "GET {path}/latest: {m}");
        assert_eq!(m["version"], json!("1.1.0"));
        let (st, body) = s.get(&format!("{path}/9.9.9"), None).await;
        assert_error(st, &body, 404);

        // Tarballs: the upstream's bytes.
        for (v, tgz) in [("1.0.0", &t1), ("1.1.0", &t2)] {
            let (st, bytes) = get_bytes(&s, &tarball_path(&name, v)).await;
            assert_eq!(st, StatusCode::OK, "tarball {name}@{v}: {}", String::from_utf8_lossy(&bytes));
            assert!(bytes == *tgz, "tarball bytes of {name}@{v}");
            // The stored copy, read again (streamed from the blob store), and HEAD.
            let integrity = up_doc["versions"][v]["dist"]["integrity"].as_str().unwrap().to_string();
            for method in [Method::GET, Method::HEAD] {
                let resp = s.client.request(method.clone(), s.url(&tarball_path(&name, v))).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "{method} stored tarball {name}@{v}");
                let h = resp.headers();
                assert_eq!(h["content-length"].to_str().unwrap(), tgz.len().to_string(), "{method} content-length of {name}@{v}");
                assert_eq!(h["etag"].to_str().unwrap(), format!("\"{integrity}\""), "{method} etag of {name}@{v}");
                let body = resp.bytes().await.unwrap();
                if method == Method::GET {
                    assert!(body[..] == tgz[..], "stored tarball bytes of {name}@{v}");
                } else {
                    assert!(body.is_empty(), "HEAD has no body");
                }
            }
        }
    }
    // Unknown upstream too: 404 with the error body.
    let (st, body) = s.get(&format!("/nothing-{sfx}"), None).await;
    assert_error(st, &body, 404);
}

/// An upstream 404 is remembered for `proxy_negative_ttl_secs`: no upstream
/// request within the TTL (packument, version or tarball reads), a new one after it.
async fn negative_cache(backend: Backend) {
    let (up, tok) = start_upstream().await;
    let counter = counting_proxy(&up.base).await;
    let s = start_proxy(backend, &counter.base, "proxy_negative_ttl_secs = 5\n").await;
    let name = format!("neg-{}", suffix());
    let path = format!("/{name}");

    let t0 = Instant::now();
    let (st, body) = s.get(&path, None).await;
    let t1 = Instant::now();
    assert_error(st, &body, 404);
    assert_eq!(counter.count("GET", &path), 1, "upstream requests after the first miss:\n{}", counter.describe());

    // Now it exists upstream; within the TTL the proxy still says 404 without asking.
    publish_ok(&up, &tok, &name, "1.0.0").await;
    let (st, body) = s.get(&path, None).await;
    assert_error(st, &body, 404);
    let (st, body) = s.get(&format!("{path}/1.0.0"), None).await;
    assert_error(st, &body, 404);
    let (st, body) = s.get(&tarball_path(&name, "1.0.0"), None).await;
    assert_error(st, &body, 404);
    assert!(t0.elapsed() < Duration::from_millis(4900), "the within-TTL reads took too long ({:?}) to prove anything", t0.elapsed());
    assert_eq!(counter.count("GET", &path), 1, "upstream requests within the negative TTL:\n{}", counter.describe());

    // After the TTL: asked again, and found.
    tokio::time::sleep((t1 + Duration::from_millis(5300)).saturating_duration_since(Instant::now())).await;
    let (st, doc) = s.get(&path, None).await;
    assert_eq!(st, StatusCode::OK, "GET {path} after the negative TTL: {doc}");
    assert_eq!(version_keys(&doc), vec!["1.0.0"]);
    assert_eq!(counter.count("GET", &path), 2, "upstream requests after the TTL:\n{}", counter.describe());
}

/// Cached metadata is served (without upstream requests) until
/// `proxy_max_age_secs`, then refreshed; a version missing from the cached
/// packument (version read or tarball) refreshes at once.
async fn metadata_refresh(backend: Backend) {
    const MAX_AGE: u64 = 5;
    let (up, tok) = start_upstream().await;
    let counter = counting_proxy(&up.base).await;
    let s = start_proxy(backend, &counter.base, &format!("proxy_max_age_secs = {MAX_AGE}\n")).await;
    let name = format!("fresh-{}", suffix());
    let path = format!("/{name}");
    let doc_requests = || counter.count("GET", &path);

    publish_ok(&up, &tok, &name, "1.0.0").await;
    let (st, doc) = s.get(&path, None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    assert_eq!(version_keys(&doc), vec!["1.0.0"]);
    assert_eq!(doc_requests(), 1);

    // Within the age: the cached document, no upstream request.
    publish_ok(&up, &tok, &name, "1.1.0").await;
    let published = Instant::now();
    let (st, doc) = s.get(&path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(version_keys(&doc), vec!["1.0.0"], "refreshed before proxy_max_age_secs");
    assert_eq!(doc_requests(), 1, "upstream requests within the age:\n{}", counter.describe());

    // Once the age has passed, the next read refreshes (allowing 2 s of slack after the age).
    tokio::time::sleep(Duration::from_secs(MAX_AGE)).await;
    let deadline = published + Duration::from_secs(MAX_AGE + 2);
    let mut last = Value::Null;
    let mut refreshed = false;
    while Instant::now() < deadline {
        let (st, doc) = s.get(&path, None).await;
        assert_eq!(st, StatusCode::OK);
        if version_keys(&doc) == ["1.0.0", "1.1.0"] {
            refreshed = true;
            break;
        }
        last = doc;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        refreshed,
        "1.1.0 (published upstream) not in the proxied packument {:?} after proxy_max_age_secs = {MAX_AGE} (+2 s); versions served: {:?}; upstream packument requests: {}",
        published.elapsed(),
        version_keys(&last),
        doc_requests()
    );
    let after_age = doc_requests();
    assert!(after_age >= 2, "no upstream request after the age");

    // A version the cached packument lacks: refreshed at once (version read).
    publish_ok(&up, &tok, &name, "1.2.0").await;
    let (st, m) = s.get(&format!("{path}/1.2.0"), None).await;
    assert_eq!(st, StatusCode::OK, "GET {path}/1.2.0 right after it was published upstream: {m}");
    assert_eq!(m["version"], json!("1.2.0"));
    assert_eq!(m["dist"]["tarball"], json!(s.url(&tarball_path(&name, "1.2.0"))));
    assert_eq!(doc_requests(), after_age + 1, "one upstream request for the missing version:\n{}", counter.describe());
    let (st, doc) = s.get(&path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(version_keys(&doc), vec!["1.0.0", "1.1.0", "1.2.0"], "the refreshed packument is served");

    // ... and its tarball.
    let t13 = publish_ok(&up, &tok, &name, "1.3.0").await;
    let (st, bytes) = get_bytes(&s, &tarball_path(&name, "1.3.0")).await;
    assert_eq!(st, StatusCode::OK, "tarball of 1.3.0 right after it was published upstream: {}", String::from_utf8_lossy(&bytes));
    assert!(bytes == t13, "tarball bytes of 1.3.0");
    let (st, doc) = s.get(&path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(version_keys(&doc), vec!["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
}

/// With the upstream stopped: the cached packument (past its age) and stored
/// tarballs are still served; an uncached package fails fast with an error body.
async fn upstream_down_serves_cache(backend: Backend) {
    let (mut up, tok) = start_upstream().await;
    let s = start_proxy(backend, &up.base, "proxy_max_age_secs = 1\npackument_cache_ttl_secs = 1\n").await;
    let sfx = suffix();
    let (a, b) = (format!("down-a-{sfx}"), format!("down-b-{sfx}"));
    let tgz = publish_ok(&up, &tok, &a, "1.0.0").await;
    publish_ok(&up, &tok, &b, "1.0.0").await;
    let (st, doc) = s.get(&format!("/{a}"), None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    let (st, _) = get_bytes(&s, &tarball_path(&a, "1.0.0")).await;
    assert_eq!(st, StatusCode::OK);

    up.stop_with("TERM").await;
    // Past the age and the in-memory cache: a refresh is attempted and fails.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let bound = Duration::from_secs(2 + 6);
    let started = Instant::now();
    let (st, ct, doc) = get_accept(&s, &format!("/{a}"), "application/json").await;
    assert_eq!(st, StatusCode::OK, "cached packument with the upstream down: {doc}");
    assert!(ct.is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(version_keys(&doc), vec!["1.0.0"]);
    assert_eq!(doc["versions"]["1.0.0"]["dist"]["tarball"], json!(s.url(&tarball_path(&a, "1.0.0"))));
    let (st, _, corgi) = get_accept(&s, &format!("/{a}"), CORGI_ACCEPT).await;
    assert_eq!(st, StatusCode::OK, "abbreviated with the upstream down: {corgi}");
    assert_eq!(version_keys(&corgi), vec!["1.0.0"]);
    let (st, m) = s.get(&format!("/{a}/1.0.0"), None).await;
    assert_eq!(st, StatusCode::OK, "version read with the upstream down: {m}");
    let (st, m) = s.get(&format!("/{a}/latest"), None).await;
    assert_eq!(st, StatusCode::OK, "latest with the upstream down: {m}");
    assert_eq!(m["version"], json!("1.0.0"));
    let (st, bytes) = get_bytes(&s, &tarball_path(&a, "1.0.0")).await;
    assert_eq!(st, StatusCode::OK, "stored tarball with the upstream down: {}", String::from_utf8_lossy(&bytes));
    assert!(bytes == tgz, "stored tarball bytes");
    assert!(started.elapsed() < bound, "cached reads with the upstream down took {:?}", started.elapsed());
    assert!(
        s.log().contains("serving the cached packument"),
        "the refresh past the age was attempted and fell back to the cached packument; log:\n{}",
        tail(&s.log(), 30)
    );

    // Uncached: an error, quickly.
    for path in [format!("/{b}"), format!("/{b}/1.0.0"), tarball_path(&b, "1.0.0"), format!("/{b}")] {
        let started = Instant::now();
        let (st, body) = s.get(&path, None).await;
        assert_unavailable(st, &body, &format!("GET {path} with the upstream down"));
        assert!(started.elapsed() < bound, "GET {path} with the upstream down took {:?}", started.elapsed());
    }
    // A version the cache lacks: not found (or unavailable), quickly.
    let started = Instant::now();
    let (st, body) = s.get(&format!("/{a}/2.0.0"), None).await;
    assert_unavailable(st, &body, "GET a missing version with the upstream down");
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
}

/// An upstream that accepts connections and never answers: reads fail with an
/// error body within `upstream_timeout_secs` (2) plus slack, never hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_hangs() {
    let fake = Fake::start(|_s: Seen| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Reply::json(200, &json!({}))
    })
    .await;
    let s = start_proxy(Backend::Sqlite, &fake.base, "").await;
    let name = format!("hang-{}", suffix());
    for path in [format!("/{name}"), format!("/{name}/1.0.0"), tarball_path(&name, "1.0.0")] {
        let started = Instant::now();
        let (st, body) = s.get(&path, None).await;
        let took = started.elapsed();
        assert_unavailable(st, &body, &format!("GET {path} with a hanging upstream"));
        assert!(took < Duration::from_secs(8), "GET {path} with a hanging upstream took {took:?} (upstream_timeout_secs = 2)");
    }
    assert!(fake.count("GET", &format!("/{name}")) >= 1, "the upstream was asked:\n{}", fake.describe());
}

/// A fake upstream with one package per name in `pkgs`; every answer is delayed by `delay`.
async fn slow_upstream(pkgs: Vec<(String, Vec<u8>)>, delay: Duration) -> Fake {
    let pkgs = std::sync::Arc::new(pkgs);
    Fake::start(move |s: Seen| {
        let pkgs = pkgs.clone();
        async move {
            tokio::time::sleep(delay).await;
            let host = s.header("host").unwrap_or("127.0.0.1").to_string();
            for (name, tgz) in pkgs.iter() {
                if s.method == "GET" && s.path == format!("/{}", enc(name)) {
                    return Reply::json(200, &fixed_packument(name, "1.0.0", tgz, &host));
                }
                if s.method == "GET" && s.path == tarball_path(name, "1.0.0") {
                    return Reply::bytes(200, "application/octet-stream", tgz.clone());
                }
            }
            Reply::json(404, &json!({"error": "not_found", "reason": "not here"}))
        }
    })
    .await
}

/// GETs `path` `n` times at once; returns (status, bytes) of each.
async fn concurrent_gets(s: &Server, path: &str, n: usize) -> Vec<(StatusCode, Vec<u8>)> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url) = (s.client.clone(), s.url(path));
        set.spawn(async move {
            let r = client.get(url).send().await.expect("request");
            let st = r.status();
            (st, r.bytes().await.expect("body").to_vec())
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

/// Ten identical concurrent misses of a packument make one upstream request;
/// ten concurrent tarball GETs of another uncached package make one packument
/// and one tarball request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_one_upstream_request() {
    let sfx = suffix();
    let (doc_name, tgz_name) = (format!("conc-doc-{sfx}"), format!("conc-tgz-{sfx}"));
    let (doc_tgz, tgz_tgz) = (tarball(&doc_name, "1.0.0", json!({})), tarball(&tgz_name, "1.0.0", json!({})));
    let fake = slow_upstream(vec![(doc_name.clone(), doc_tgz), (tgz_name.clone(), tgz_tgz.clone())], Duration::from_millis(700)).await;
    let s = start_proxy(Backend::Sqlite, &fake.base, "").await;

    for (st, body) in concurrent_gets(&s, &format!("/{doc_name}"), 10).await {
        assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(version_keys(&doc), vec!["1.0.0"]);
    }
    assert_eq!(fake.count("GET", &format!("/{doc_name}")), 1, "upstream packument requests for 10 concurrent GETs:\n{}", fake.describe());

    for (st, body) in concurrent_gets(&s, &tarball_path(&tgz_name, "1.0.0"), 10).await {
        assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert!(body == tgz_tgz, "tarball bytes");
    }
    assert_eq!(
        fake.count("GET", &format!("/{tgz_name}")),
        1,
        "upstream packument requests for 10 concurrent tarball GETs:\n{}",
        fake.describe()
    );
    assert_eq!(
        fake.count("GET", &tarball_path(&tgz_name, "1.0.0")),
        1,
        "upstream tarball requests for 10 concurrent tarball GETs:\n{}",
        fake.describe()
    );
}

/// Ten identical concurrent misses of a package the upstream does not have
/// make one upstream request too (the 404 is shared, then remembered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_not_found_misses_one_upstream_request() {
    let fake = slow_upstream(Vec::new(), Duration::from_millis(700)).await;
    let s = start_proxy(Backend::Sqlite, &fake.base, "").await;
    let name = format!("conc-missing-{}", suffix());
    for (st, body) in concurrent_gets(&s, &format!("/{name}"), 10).await {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_error(st, &body, 404);
    }
    assert_eq!(
        fake.count("GET", &format!("/{name}")),
        1,
        "upstream requests for 10 concurrent GETs of a missing package:\n{}",
        fake.describe()
    );
}

/// A package published here wins over the upstream's package of the same
/// name, whether or not the proxy had cached the upstream one.
async fn local_packages_win(backend: Backend) {
    let (up, up_tok) = start_upstream().await;
    let s = start_proxy(backend, &up.base, "").await;
    let tok = s.add_user("bob", PW).await;
    let sfx = suffix();

    // Cached from upstream first, then published here.
    let cached = format!("win-cached-{sfx}");
    let up1 = publish_ok(&up, &up_tok, &cached, "1.0.0").await;
    publish_ok(&up, &up_tok, &cached, "2.0.0").await;
    let (st, doc) = s.get(&format!("/{cached}"), None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    assert_eq!(version_keys(&doc), vec!["1.0.0", "2.0.0"]);
    let (st, bytes) = get_bytes(&s, &tarball_path(&cached, "1.0.0")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(bytes == up1);

    // Never read through the proxy, then published here.
    let fresh = format!("win-fresh-{sfx}");
    publish_ok(&up, &up_tok, &fresh, "1.0.0").await;
    publish_ok(&up, &up_tok, &fresh, "2.0.0").await;

    for name in [&cached, &fresh] {
        let local = publish_with(&s, Some(&tok), name, "1.0.0", json!({"description": "the local one"}), None).await;
        assert_published(&local);
        let (st, _, doc) = get_accept(&s, &format!("/{name}"), "application/json").await;
        assert_eq!(st, StatusCode::OK, "{doc}");
        assert_eq!(version_keys(&doc), vec!["1.0.0"], "only the local versions of {name}: {doc}");
        assert_eq!(doc["versions"]["1.0.0"]["description"], json!("the local one"));
        assert_eq!(doc["versions"]["1.0.0"]["dist"]["integrity"], json!(integrity(&local.tarball)));
        let (st, _, corgi) = get_accept(&s, &format!("/{name}"), CORGI_ACCEPT).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(version_keys(&corgi), vec!["1.0.0"], "abbreviated {name}: {corgi}");
        assert_eq!(corgi["versions"]["1.0.0"]["dist"]["integrity"], json!(integrity(&local.tarball)));
        let (st, bytes) = get_bytes(&s, &tarball_path(name, "1.0.0")).await;
        assert_eq!(st, StatusCode::OK);
        assert!(bytes == local.tarball, "the tarball of {name}@1.0.0 is the local one");
        // The upstream's other version is not served.
        let (st, body) = s.get(&format!("/{name}/2.0.0"), None).await;
        assert_error(st, &body, 404);
        let (st, body) = s.get(&tarball_path(name, "2.0.0"), None).await;
        assert_error(st, &body, 404);
        let (st, m) = s.get(&format!("/{name}/latest"), None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(m["version"], json!("1.0.0"));
    }
}

// ---------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------

const BULK: &str = "/-/npm/v1/security/advisories/bulk";

/// The advisory the fake audit service reports for `name`.
fn advisory(name: &str, base: &str) -> Value {
    json!({
        "id": 4242,
        "url": format!("{base}/advisories/4242"),
        "title": format!("Cairn test advisory for {name}"),
        "severity": "high",
        "vulnerable_versions": "<2.0.0",
        "cwe": ["CWE-400"],
        "cvss": {"score": 7.5, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"},
    })
}

/// A fake audit service: for a JSON (possibly gzipped) bulk body, one advisory
/// per package named; 400 for a body it cannot read; 404 for anything else.
async fn audit_service() -> Fake {
    Fake::start(|s: Seen| async move {
        if s.method != "POST" || s.path != BULK {
            return Reply::json(404, &json!({"error": "not_found", "reason": "no such route"}));
        }
        let body = if s.header("content-encoding") == Some("gzip") { gunzip(&s.body) } else { s.body.clone() };
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
            return Reply::json(400, &json!({"error": "bad_request", "reason": "not a JSON object"}));
        };
        let host = s.header("host").unwrap_or("127.0.0.1").to_string();
        let mut out = serde_json::Map::new();
        for name in req.keys() {
            if name == "teapot" {
                return Reply::json(418, &json!({"error": "teapot", "reason": "short and stout"}));
            }
            out.insert(name.clone(), json!([advisory(name, &format!("http://{host}"))]));
        }
        Reply::json(200, &Value::Object(out))
    })
    .await
}

/// The body sent upstream, decoded.
fn sent_json(s: &Seen) -> Value {
    let body = if s.header("content-encoding") == Some("gzip") { gunzip(&s.body) } else { s.body.clone() };
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// With a default registry, the bulk advisory request goes upstream as sent
/// and its answer (status and body) comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_bulk_is_forwarded() {
    let fake = audit_service().await;
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&registry_toml(&fake.base))).await;
    let sent = json!({"left-pad": ["1.0.0"]});
    let (st, body) = s.call(Method::POST, BULK, None, Some(&sent)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let host = fake.base.trim_start_matches("http://");
    assert_eq!(body, json!({"left-pad": [advisory("left-pad", &format!("http://{host}"))]}), "the upstream's answer");
    let seen: Vec<Seen> = fake.seen().into_iter().filter(|x| x.path == BULK).collect();
    assert_eq!(seen.len(), 1, "{}", fake.describe());
    assert_eq!(seen[0].method, "POST");
    assert_eq!(sent_json(&seen[0]), sent, "the body the upstream received");

    // A gzipped body, as npm sends it, arrives intact.
    let r = request(
        &s,
        Method::POST,
        BULK,
        None,
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        Some(cairn_e2e::publish::gzip(br#"{"ms":["2.0.0","2.1.1"]}"#)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["ms"][0]["id"], json!(4242));
    let last = fake.seen().into_iter().rfind(|x| x.path == BULK).unwrap();
    assert_eq!(sent_json(&last), json!({"ms": ["2.0.0", "2.1.1"]}));

    // The upstream's status comes back as it is.
    let (st, body) = s.call(Method::POST, BULK, None, Some(&json!({"teapot": ["1.0.0"]}))).await;
    assert_eq!(st.as_u16(), 418, "{body}");
    assert_eq!(body["error"], json!("teapot"));
}

/// Without any registry there is nobody to ask: 501 with the error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_without_registry() {
    let s = Server::start(Backend::Sqlite).await;
    let (st, body) = s.call(Method::POST, BULK, None, Some(&json!({"left-pad": ["1.0.0"]}))).await;
    assert_error(st, &body, 501);
}

/// The retired audit endpoints answer 404 or 410 with the error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_audit_endpoints() {
    let fake = audit_service().await;
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&registry_toml(&fake.base))).await;
    for path in ["/-/npm/v1/security/audits", "/-/npm/v1/security/audits/quick"] {
        for method in [Method::GET, Method::POST] {
            let body = (method == Method::POST).then(|| json!({"name": "app", "version": "1.0.0", "requires": {}, "dependencies": {}}));
            let (st, resp) = s.call(method.clone(), path, None, body.as_ref()).await;
            assert!(st == StatusCode::NOT_FOUND || st == StatusCode::GONE, "{method} {path}: {st} {resp}");
            assert!(resp["error"].as_str().is_some_and(|e| !e.is_empty()) && resp["reason"].as_str().is_some(), "{method} {path}: {resp}");
        }
    }
    assert!(fake.seen().is_empty(), "retired endpoints must not be forwarded: {}", fake.describe());
}

/// `npm audit` with the real CLI against a Cairn whose default upstream is
/// the fake audit service: npm sends the bulk request through Cairn and
/// reports the fake's advisory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_audit_reports_upstream_advisory() {
    let fake = audit_service().await;
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&registry_toml(&fake.base))).await;
    let tok = s.add_user("alice", PW).await;
    let name = format!("vuln-{}", suffix());
    publish_ok(&s, &tok, &name, "1.0.0").await;

    let m = Machine::new(&s);
    let project = m.project("app");
    let run = m.npm(&project, &["install", &name], false).await;
    assert!(run.success(), "{}", run.describe());

    let run = m.npm(&project, &["audit", "--json"], true).await;
    let bulk: Vec<Seen> = fake.seen().into_iter().filter(|x| x.path == BULK).collect();
    assert_eq!(bulk.len(), 1, "npm audit's bulk request reached the upstream once:\n{}\n{}", fake.describe(), run.describe());
    let sent = sent_json(&bulk[0]);
    assert_eq!(sent[&name], json!(["1.0.0"]), "bulk body the upstream received: {sent}");

    let report: Value =
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("npm audit --json output ({e}): {}", run.describe()));
    let vuln = &report["vulnerabilities"][&name];
    assert_eq!(vuln["severity"], json!("high"), "{}", run.describe());
    let via = vuln["via"].as_array().unwrap_or_else(|| panic!("no via: {}", run.describe()));
    assert!(
        via.iter().any(|v| v["title"] == json!(format!("Cairn test advisory for {name}")) && v["source"] == json!(4242)),
        "the fake's advisory in npm's report: {}",
        run.describe()
    );
    assert_eq!(report["metadata"]["vulnerabilities"]["high"], json!(1), "{}", run.describe());
    assert!(!run.success(), "npm audit exits non-zero when it finds a vulnerability: {}", run.describe());
}

/// An unreachable audit upstream: an error body, quickly (not a hang, not a fake 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_upstream_unreachable() {
    // A port nothing listens on any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).toml("upstream_timeout_secs = 2").tail(&registry_toml(&closed))).await;
    let started = Instant::now();
    let (st, body) = s.call(Method::POST, BULK, None, Some(&json!({"left-pad": ["1.0.0"]}))).await;
    assert_error(st, &body, 502);
    assert!(body["reason"].as_str().unwrap().contains("registry up"), "the reason names the upstream: {body}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
}

/// An upstream audit answer that is no audit answer (a bare 405, a 500) is a
/// 502 whose reason names the upstream, never its credentials; npm shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_upstream_failure_is_a_502_naming_it() {
    let fake = Fake::start(|s: Seen| async move {
        if s.body.windows(4).any(|w| w == b"boom") {
            return Reply::json(500, &json!({"error": "internal"}));
        }
        Reply::bytes(405, "text/plain", Vec::new())
    })
    .await;
    let host = fake.base.replace("http://", "http://auditor:hunter2@");
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&registry_toml(&host))).await;
    for (sent, status) in [(json!({"left-pad": ["1.0.0"]}), "405"), (json!({"boom": ["1.0.0"]}), "500")] {
        let r = request(&s, Method::POST, BULK, None, &[("content-type", "application/json")], Some(sent.to_string().into_bytes())).await;
        let body = r.json();
        assert_error(r.status, &body, 502);
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.contains("registry up") && reason.contains(status), "{reason}");
        let notice = r.header("npm-notice").unwrap_or_default();
        assert!(notice.contains("registry up"), "npm-notice {notice:?}");
        assert!(!body.to_string().contains("hunter2") && !notice.contains("hunter2"), "credentials leaked: {body}");
    }
}

// ---------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------

fn result_names(body: &Value) -> Vec<String> {
    body["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("objects in {body}"))
        .iter()
        .map(|o| o["package"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Search in proxy mode: local packages first, then the upstream's (a package
/// installed through the proxy too), a name that is both here and upstream
/// once; `npm search` shows them all.
async fn search_merges_upstream(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let sfx = suffix();
    let [both, up1, up2, local] = ["both", "up1", "up2", "local"].map(|k| format!("srch-{k}-{sfx}"));
    for name in [&both, &up1, &up2] {
        fake.add_version(name, "1.0.0", json!({}));
    }
    let s = start_proxy(backend, &fake.base, "").await;
    let tok = s.add_user("bob", PW).await;
    publish_ok(&s, &tok, &local, "1.0.0").await;
    publish_ok(&s, &tok, &both, "1.0.0").await;
    let (st, _) = s.get(&format!("/{up1}"), None).await;
    assert_eq!(st, StatusCode::OK, "read through the proxy");

    let (st, body) = s.get(&format!("/-/v1/search?text={sfx}"), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let names = result_names(&body);
    let mut first_two = names[..2.min(names.len())].to_vec();
    first_two.sort();
    assert_eq!(first_two, vec![both.clone(), local.clone()], "local packages first: {names:?}");
    assert_eq!(names[2..], [up1.clone(), up2.clone()], "then the upstream's, without the local name: {names:?}");
    assert_eq!(body["total"], json!(5), "{body}");
    let (_, body) = s.get(&format!("/-/v1/search?text={sfx}&size=3"), None).await;
    assert_eq!(result_names(&body).len(), 3, "{body}");
    let (_, body) = s.get(&format!("/-/v1/search?text={sfx}&from=2&size=1"), None).await;
    assert_eq!(result_names(&body), vec![up1.clone()], "a page past the local results: {body}");

    let m = Machine::new(&s);
    let project = m.project("app");
    let run = m.npm(&project, &["search", "--json", &sfx], false).await;
    assert!(run.success(), "{}", run.describe());
    for name in [&both, &up1, &up2, &local] {
        assert!(run.stdout.contains(name.as_str()), "npm search shows {name}: {}", run.describe());
    }
}

/// With the upstream unreachable (nothing listening) or hanging (accepting,
/// never answering), search answers with the local results: the first one
/// within the search deadline, the next ones at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_with_upstream_down_answers_local_results() {
    let hanging = Fake::start(|_s: Seen| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Reply::json(500, &json!({}))
    })
    .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for (what, base, first_within) in
        [("unreachable", closed, Duration::from_millis(1500)), ("hanging", hanging.base.clone(), Duration::from_millis(3500))]
    {
        let s = start_proxy(Backend::Sqlite, &base, "").await;
        let tok = s.add_user("bob", PW).await;
        let name = format!("down-search-{}", suffix());
        publish_ok(&s, &tok, &name, "1.0.0").await;
        for (round, within) in [(1, first_within), (2, Duration::from_millis(700))] {
            let started = Instant::now();
            let (st, body) = s.get("/-/v1/search?text=down-search", None).await;
            let took = started.elapsed();
            assert_eq!(st, StatusCode::OK, "{what}, search {round}: {body}");
            assert_eq!(result_names(&body), vec![name.clone()], "{what}, search {round}");
            assert!(took < within, "{what}: search {round} took {took:?} (limit {within:?})");
        }
    }
}

/// npm's registry clamps `size` to 250 and `from` to 0; a search without
/// text, or with a size that is not a number, is a 400 with the error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_parameters_like_npm() {
    let s = Server::start(Backend::Sqlite).await;
    let tok = s.add_user("bob", PW).await;
    let name = format!("params-{}", suffix());
    publish_ok(&s, &tok, &name, "1.0.0").await;
    for q in ["size=1000", "size=251", "from=-5", "size=0"] {
        let (st, body) = s.get(&format!("/-/v1/search?text={name}&{q}"), None).await;
        assert_eq!(st, StatusCode::OK, "{q}: {body}");
        assert_eq!(result_names(&body), vec![name.clone()], "{q}");
    }
    for q in ["", "text=", "text=%20%20", &format!("text={name}&size=abc"), &format!("text={name}&from=x")] {
        let (st, body) = s.get(&format!("/-/v1/search?{q}"), None).await;
        assert_error(st, &body, 400);
    }
}

// ---------------------------------------------------------------------------
// Upstream outage
// ---------------------------------------------------------------------------

/// Proxy mode with the upstream down (nothing listening, or accepting and
/// never answering): a read of a name never seen is a 404 naming the upstream
/// (npm does not retry a 404 as it does a 5xx), after at most one upstream
/// timeout, then at once; and `npm publish` of a new package, which reads the
/// name first, succeeds promptly and never sends the upstream anything but that read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_unknown_names_fail_fast_and_publish_works() {
    let hanging = Fake::start(|_s: Seen| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Reply::json(500, &json!({}))
    })
    .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // upstream_timeout_secs = 2 (start_proxy): the hanging upstream costs one timeout.
    for (what, base, first_within) in
        [("unreachable", closed, Duration::from_millis(1500)), ("hanging", hanging.base.clone(), Duration::from_millis(3500))]
    {
        let s = start_proxy(Backend::Sqlite, &base, "").await;
        let tok = s.add_user("alice", PW).await;
        for (round, within) in [(1, first_within), (2, Duration::from_millis(700))] {
            let path = format!("/never-seen-{}", suffix());
            let started = Instant::now();
            let r = request(&s, Method::GET, &path, None, &[("accept", CORGI_ACCEPT)], None).await;
            let took = started.elapsed();
            let body = r.json();
            assert_error(r.status, &body, 404);
            let reason = body["reason"].as_str().unwrap();
            assert!(reason.contains("registry up") && reason.contains("unreachable"), "{what}: the reason names the upstream: {reason}");
            assert!(r.header("npm-notice").is_some_and(|n| n.contains("unreachable")), "{what}: npm-notice");
            assert!(took < within, "{what}: read {round} took {took:?} (limit {within:?})");
        }

        let m = Machine::new(&s);
        m.login(&tok);
        let name = format!("fresh-pub-{}", suffix());
        let dir = m.package(&name, "1.0.0");
        let started = Instant::now();
        let run = m.npm(&dir, &["publish"], false).await;
        let took = started.elapsed();
        assert!(run.success(), "{what}: {}", run.describe());
        assert!(took < Duration::from_secs(20), "{what}: npm publish took {took:?}");
        let (st, doc) = s.get(&format!("/{name}"), None).await;
        assert_eq!(st, StatusCode::OK, "{doc}");
        assert_eq!(version_keys(&doc), vec!["1.0.0"]);
        eprintln!("{what}: npm publish of a new package took {took:?}");
    }
    assert!(hanging.seen().iter().all(|x| x.method == "GET"), "only reads reach the upstream:\n{}", hanging.describe());
}
