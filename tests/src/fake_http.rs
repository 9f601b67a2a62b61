//! A small HTTP server on loopback whose answers come from a closure, for
//! fake upstreams (S3 listings, a GitHub API, a dist site, a counting proxy):
//! every request is recorded (`path?query`) so tests can count them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// An answer: status, headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply { status: 200, headers: Vec::new(), body: body.into() }
    }
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: b"no".to_vec() }
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a handler sees of a request.
pub struct Seen {
    pub path: String,
    /// Without the `?`; empty when absent.
    pub query: String,
    /// The request's own address (`http://127.0.0.1:PORT`).
    pub base: String,
}

impl Seen {
    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| decode(v))
    }
}

/// Percent-decoding (and `+` as a space) of a query value.
pub fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub type Handler = Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// A running fake; stopped on drop.
pub struct FakeHttp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHttp {
    /// A fake answering with the future `handler` returns (it may wait: a proxy, a slow file).
    pub async fn start_async<F, Fut>(handler: F) -> FakeHttp
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |seen: Seen| -> Pin<Box<dyn Future<Output = Reply> + Send>> { Box::pin(handler(seen)) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (seen, own) = (requests.clone(), base.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, seen, own) = (handler.clone(), seen.clone(), own.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (path, query) = (req.uri().path().to_string(), req.uri().query().unwrap_or("").to_string());
                        seen.lock().unwrap().push(if query.is_empty() { path.clone() } else { format!("{path}?{query}") });
                        let reply = handler(Seen { path, query, base: own.clone() });
                        async move {
                            let reply = reply.await;
                            let mut resp = Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                resp = resp.header(k, v);
                            }
                            Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        FakeHttp { base, requests, task }
    }

    /// A fake answering synchronously with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeHttp {
        FakeHttp::start_async(move |seen: Seen| std::future::ready(handler(&seen))).await
    }

    /// Every request so far, `path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests whose path is `path` (any query).
    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.split('?').next() == Some(path)).count()
    }

    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }
}
