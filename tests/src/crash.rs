//! Helpers for crash and fault tests (the hostile suite, the multi-node
//! tests): a client that treats network errors as values, publishers that
//! keep publishing until stopped or cut off, and the check that every
//! acknowledged publish is present and whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::publish::{enc, integrity, packument, poll, publish_body, request, tarball};
use crate::{Method, Server, StatusCode};

/// What spawned tasks hold instead of `&Server`: its address and a token.
/// Network errors are values here, since the server may die under them.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub type Sent = Result<(StatusCode, Value), String>;

impl Client {
    pub fn new(s: &Server, token: &str) -> Client {
        Client { http: s.client.clone(), base: s.base.clone(), token: token.to_string() }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Sent {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        // The status counts even if the body is cut off (a 201 is an acknowledgement).
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// `npm publish` of NAME@VERSION (tagged `latest`): the status and the tarball sent.
    pub async fn publish(&self, name: &str, version: &str) -> Result<(StatusCode, Vec<u8>), String> {
        self.publish_answered(name, version).await.map(|(status, _, tgz)| (status, tgz))
    }

    /// Like `publish`, with the answer's body too.
    pub async fn publish_answered(&self, name: &str, version: &str) -> Result<(StatusCode, Value, Vec<u8>), String> {
        let tgz = tarball(name, version, json!({}));
        let body = publish_body(name, version, &tgz, None, &self.base);
        let (status, answer) = self.send(Method::PUT, &format!("/{}", enc(name)), Some(&body)).await?;
        Ok((status, answer, tgz))
    }

    /// `GET /NAME?write=true`, as npm reads before a read-modify-write.
    pub async fn write_doc(&self, name: &str) -> Sent {
        self.send(Method::GET, &format!("/{}?write=true", enc(name)), None).await
    }

    /// `npm dist-tag add NAME@VERSION TAG`.
    pub async fn set_tag(&self, name: &str, tag: &str, version: &str) -> Sent {
        self.send(Method::PUT, &format!("/-/package/{}/dist-tags/{tag}", enc(name)), Some(&json!(version))).await
    }
}

/// The path of a URL (`dist.tarball` names the host it was served from).
pub fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    &rest[rest.find('/').unwrap_or(rest.len())..]
}

/// Tags naming a version the document does not have.
pub fn dangling_tags(doc: &Value) -> Vec<String> {
    let versions = doc["versions"].as_object().cloned().unwrap_or_default();
    let tags = doc["dist-tags"].as_object().cloned().unwrap_or_default();
    let mut out: Vec<String> = tags
        .iter()
        .filter(|(_, v)| !v.as_str().is_some_and(|v| versions.contains_key(v)))
        .map(|(t, v)| format!("{t} → {}", v.as_str().unwrap_or("?")))
        .collect();
    if !tags.contains_key("latest") && !versions.is_empty() {
        out.push("no latest".into());
    }
    out
}

/// Every tag names a present version, and `GET /NAME/latest` answers it.
pub async fn assert_tags_whole(s: &Server, name: &str, doc: &Value) {
    let dangling = dangling_tags(doc);
    assert!(dangling.is_empty(), "{name}: dangling dist-tags {dangling:?} in {}", doc["dist-tags"]);
    let (status, v) = s.get(&format!("/{}/latest", enc(name)), None).await;
    assert_eq!(status, StatusCode::OK, "GET /{name}/latest: {v}");
    assert_eq!(v["version"], doc["dist-tags"]["latest"], "GET /{name}/latest");
}

pub struct Acked {
    pub name: String,
    pub version: String,
    pub tarball: Vec<u8>,
}

/// A publish answered with something other than 201, or cut off (`status` None).
#[derive(Debug, Clone)]
pub struct Refused {
    pub base: String,
    pub name: String,
    pub version: String,
    pub status: Option<StatusCode>,
    pub error: String,
}

/// Workers publishing distinct versions of `crash-0` and `crash-1` back to
/// back, two per client (so through every node given), until stopped; a
/// worker whose server stops answering ends there.
pub struct Publishers {
    pub acked: Arc<Mutex<Vec<Acked>>>,
    pub refused: Arc<Mutex<Vec<Refused>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Publishers {
    /// `per_client` workers per client; versions are `MAJOR.W.I`.
    pub fn start(clients: &[Client], per_client: usize, major: usize) -> Publishers {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..clients.len() * per_client {
            let c = clients[w / per_client].clone();
            let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                for i in 0..10_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("crash-{}", w % 2);
                    let version = format!("{major}.{w}.{i}");
                    let refuse = |status, error: String| Refused {
                        base: c.base.clone(),
                        name: name.clone(),
                        version: version.clone(),
                        status,
                        error,
                    };
                    match c.publish_answered(&name, &version).await {
                        Ok((StatusCode::CREATED, _, tarball)) => acked.lock().unwrap().push(Acked { name, version, tarball }),
                        Ok((status, body, _)) => refused.lock().unwrap().push(refuse(Some(status), body.to_string())),
                        Err(e) => {
                            refused.lock().unwrap().push(refuse(None, e));
                            break;
                        }
                    }
                }
            }));
        }
        Publishers { acked, refused, stop, workers }
    }

    /// Waits until `n` publishes are acknowledged in all (at most `secs`).
    pub async fn wait_acked(&self, n: usize, secs: u64) -> bool {
        poll(secs, || {
            let got = self.acked.lock().unwrap().len();
            async move { (got >= n).then_some(()) }
        })
        .await
        .is_some()
    }

    /// Stops the workers (after the publish each has in flight); what they got.
    pub async fn finish(self) -> (Vec<Acked>, Vec<Refused>) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            w.await.unwrap();
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        let refused = std::mem::take(&mut *self.refused.lock().unwrap());
        (acked, refused)
    }
}

/// Returns how many versions the packuments hold.
pub async fn assert_all_present(s: &Server, acked: &[Acked]) -> usize {
    let mut present = 0;
    let mut names: Vec<&str> = acked.iter().map(|a| a.name.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let doc = packument(s, name).await;
        for a in acked.iter().filter(|a| a.name == name) {
            let v = &doc["versions"][&a.version];
            assert!(v.is_object(), "acknowledged {name}@{} is missing after kill -9", a.version);
            assert_eq!(v["dist"]["integrity"], json!(integrity(&a.tarball)), "{name}@{}: integrity", a.version);
        }
        // Every version there, acknowledged or not, is whole: its tarball
        // downloads and matches its integrity (so the acknowledged ones match
        // what was sent).
        for (version, v) in doc["versions"].as_object().unwrap() {
            let url = v["dist"]["tarball"].as_str().unwrap_or_else(|| panic!("{name}@{version}: dist.tarball in {v}"));
            let r = request(s, Method::GET, url_path(url), None, &[], None).await;
            assert_eq!(r.status, StatusCode::OK, "{name}@{version}: GET {url}");
            assert_eq!(json!(integrity(&r.bytes)), v["dist"]["integrity"], "{name}@{version}: tarball bytes");
        }
        assert_tags_whole(s, name, &doc).await;
        present += doc["versions"].as_object().unwrap().len();
    }
    present
}
