//! A webhook receiver on loopback for the hook tests: records every request,
//! checks its signature, and can answer an error status to (or hang on) the
//! first N requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: Option<String>,
    pub signature: Option<String>,
    pub delivery_id: Option<String>,
    /// Every header whose value is text, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `x-npm-signature` is `sha256=<hex HMAC-SHA256(secret, body)>`.
    pub fn signed_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&self.body);
        self.signature.as_deref() == Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())).as_str())
    }
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    failures_left: Arc<AtomicUsize>,
    hangs_left: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// How the receiver answers its first requests.
#[derive(Clone, Copy)]
struct Script {
    fail_first: usize,
    fail_status: u16,
    hang_first: usize,
}

impl Receiver {
    /// Listens on 127.0.0.1; answers 503 to the first `fail_first` requests, then 200.
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver::start_with(Script { fail_first, fail_status: 503, hang_first: 0 }).await
    }

    /// Answers `status` to the first `fail_first` requests (`usize::MAX`: to all), then 200.
    pub async fn start_failing_with(status: u16, fail_first: usize) -> Receiver {
        Receiver::start_with(Script { fail_first, fail_status: status, hang_first: 0 }).await
    }

    /// Records, then never answers the first `hang_first` requests (the connection stays open).
    pub async fn start_hanging(hang_first: usize) -> Receiver {
        Receiver::start_with(Script { fail_first: 0, fail_status: 503, hang_first }).await
    }

    async fn start_with(script: Script) -> Receiver {
        let Script { fail_first, fail_status, hang_first } = script;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let failures_left = Arc::new(AtomicUsize::new(fail_first));
        let hangs_left = Arc::new(AtomicUsize::new(hang_first));
        let (g, f, h) = (got.clone(), failures_left.clone(), hangs_left.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (g, f, h) = (g.clone(), f.clone(), h.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| record(req, g.clone(), f.clone(), fail_status, h.clone()));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Receiver { url, got, failures_left, hangs_left, task }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub fn failures_left(&self) -> usize {
        self.failures_left.load(Ordering::SeqCst)
    }

    pub fn hangs_left(&self) -> usize {
        self.hangs_left.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    req: Request<Incoming>,
    got: Arc<Mutex<Vec<Received>>>,
    failures_left: Arc<AtomicUsize>,
    fail_status: u16,
    hangs_left: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (path, content_type, signature, delivery_id) =
        (req.uri().path().to_string(), header("content-type"), header("x-npm-signature"), header("x-cairn-delivery"));
    let headers = req.headers().iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    got.lock().unwrap().push(Received { path, content_type, signature, delivery_id, headers, body });
    if hangs_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        std::future::pending::<()>().await;
    }
    let fail = failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
    if fail {
        *resp.status_mut() = hyper::StatusCode::from_u16(fail_status).expect("a valid status");
    }
    Ok(resp)
}
