//! The HTTP server: accept loop, per-connection hyper service, request logs,
//! panic containment, background flushes and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::{redact_url, Config};
use crate::domain::App;
use crate::http::{self, ApiError};
use crate::store;

mod slow_clients;

/// Opens storage and builds the application state.
pub async fn build_app(config: Config) -> anyhow::Result<Arc<App>> {
    let url = config.effective_database_url();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| anyhow::anyhow!("creating data_dir {}: {e}", config.data_dir.display()))?;
    let store = store::open(&url, config.database_max_connections)
        .await
        .map_err(|e| anyhow::anyhow!("opening database {}: {e}", redact_url(&url)))?;
    let blobs = crate::blob::open(&config).await?;
    let plugins = crate::plugins::Plugins::load(&config).await?;
    let app = App::new(config, store, blobs, plugins);
    crate::domain::registries::seed(&app, &app.config.registries)
        .await
        .map_err(|e| anyhow::anyhow!("seeding [[registries]] from the config: {e}"))?;
    Ok(app)
}

/// A name for this process's workers: host and pid.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (up to `shutdown_grace_secs`), flushes buffered state and closes the database.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    // Signal handlers are installed before the address is announced: a SIGHUP
    // that arrives early must reload, not kill the process.
    let reloader = spawn_sighup_reloader(app.clone());
    let graceful = GracefulShutdown::new();
    let flusher = spawn_flusher(app.clone());
    // Listening for other nodes' changes before the first request is served.
    let cluster = crate::domain::cluster::start(app.clone()).await;
    tracing::info!(listen = %local, storage = app.store.backend(), blobs = %app.blobs.describe(), public_url = %app.config.public_url, "cairn is serving");
    let mut workers = crate::domain::sync::start_workers(app.clone(), &worker_id());
    workers.extend(crate::domain::hooks::worker::start(app.clone()));
    let follower = crate::domain::changes::start_follower(app.clone());
    let sweeper = crate::blob::sweep::spawn(
        app.store.clone(),
        app.blobs.clone(),
        Duration::from_secs(app.config.blob_sweep_min_age_secs),
        Duration::from_secs(app.config.blob_sweep_interval_secs),
    );
    let slow_clients = slow_clients::Guard::new(Duration::from_secs(app.config.request_timeout_secs.max(1)));
    let sweeper_of_slow_clients = tokio::spawn(slow_clients.clone().sweep());
    // On the signal, `/-/ready` answers 503 at once; requests are still
    // accepted for `shutdown_delay_secs`, so a load balancer can take this
    // process out of rotation before it stops listening.
    let drain = async {
        shutdown.await;
        app.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        let delay = Duration::from_secs(app.config.shutdown_delay_secs);
        tracing::info!(delay_secs = delay.as_secs(), "draining: /-/ready answers 503");
        tokio::time::sleep(delay).await;
    };
    tokio::pin!(drain);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve_connection(&app, &graceful, stream, peer, &slow_clients),
                Err(e) => {
                    // Running out of file descriptors must not end the server.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut drain => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let grace = Duration::from_secs(app.config.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
    }
    flusher.abort();
    sweeper_of_slow_clients.abort();
    reloader.abort();
    follower.abort();
    if let Some(cluster) = cluster {
        cluster.abort();
    }
    sweeper.abort();
    for w in workers {
        w.abort();
    }
    if let Err(e) = app.token_usage.flush(app.store.as_ref()).await {
        tracing::warn!(error = %e, "flushing token usage at shutdown failed");
    }
    if let Err(e) = app.downloads.flush(app.store.as_ref()).await {
        tracing::warn!(error = %e, "flushing download counts at shutdown failed");
    }
    app.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves one accepted connection on its own task, watched for graceful shutdown.
fn serve_connection(
    app: &Arc<App>,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slow_clients: &Arc<slow_clients::Guard>,
) {
    let _ = stream.set_nodelay(true);
    let app = app.clone();
    let deadline = slow_clients.deadline();
    let service_deadline = deadline.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        let deadline = service_deadline.clone();
        deadline.lift();
        async move {
            let (parts, body) = handle_logged(app, req, peer).await.into_parts();
            Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(parts, slow_clients::Restarts::new(body, deadline)))
        }
    });
    let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    let conn = graceful.watch(conn);
    let task = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    });
    slow_clients.watch(deadline, task.abort_handle());
}

/// Reloads plugins on SIGHUP.
/// The handler is installed before this returns (not when the task first runs).
fn spawn_sighup_reloader(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let Ok(mut hup) = hup else {
                tracing::warn!("cannot listen for SIGHUP; reload plugins through POST /-/admin/plugins/reload");
                return;
            };
            while hup.recv().await.is_some() {
                tracing::info!("received SIGHUP: reloading plugins");
                let _ = app.reload_plugins().await;
            }
        }
    })
}

/// Periodic writes of state buffered in memory (token last-use, download counts).
fn spawn_flusher(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let tokens_every = Duration::from_secs(app.config.auth.last_used_flush_secs.max(1));
    let downloads_every = Duration::from_secs(app.config.downloads_flush_secs.max(1));
    tokio::spawn(async move {
        let mut tokens = tokio::time::interval(tokens_every);
        let mut downloads = tokio::time::interval(downloads_every);
        tokens.tick().await;
        downloads.tick().await;
        loop {
            tokio::select! {
                _ = tokens.tick() => {
                    if let Err(e) = app.token_usage.flush(app.store.as_ref()).await {
                        tracing::warn!(error = %e, "flushing token usage failed; will retry");
                    }
                }
                _ = downloads.tick() => {
                    if let Err(e) = app.downloads.flush(app.store.as_ref()).await {
                        tracing::warn!(error = %e, "flushing download counts failed; will retry");
                    }
                }
            }
        }
    })
}

/// The request id's header, parsed once.
const X_REQUEST_ID: ::http::HeaderName = ::http::HeaderName::from_static("x-request-id");

async fn handle_logged(app: Arc<App>, req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr) -> http::Response {
    // The client's id when it is a sane one (the header value it came in,
    // not copied), else a fresh one.
    let id = req
        .headers()
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.as_bytes().iter().all(u8::is_ascii_graphic))
        .cloned()
        .unwrap_or_else(next_request_id);
    // The request line and the clock are only read when request logs are on:
    // a hot read pays for nothing it does not log.
    let logged = tracing::enabled!(tracing::Level::INFO).then(|| (Instant::now(), req.method().clone(), req.uri().clone()));
    let mut resp = contain_panics(http::handle(app, req, peer.ip()), id.to_str().unwrap_or_default()).await;
    resp.headers_mut().insert(X_REQUEST_ID, id);
    if let Some((started, method, uri)) = logged {
        let request_id = resp.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
        // Paths can carry secrets (`DELETE /-/user/token/<token>`): never log them raw.
        let path = crate::telemetry::redact_path(uri.path());
        tracing::info!(
            request_id = %request_id,
            %method,
            %path,
            status = resp.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            client = %peer.ip(),
            "request"
        );
    }
    resp
}

/// Request ids: a random per-process prefix and a counter (no syscall per
/// request), written as 20 hex digits without the formatting machinery.
fn next_request_id() -> ::http::HeaderValue {
    static PREFIX: std::sync::OnceLock<[u8; 12]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let prefix = PREFIX.get_or_init(|| {
        let mut out = [0u8; 12];
        out.copy_from_slice(hex::encode(crate::util::random_bytes(6)).as_bytes());
        out
    });
    // The prefix, then the counter in hex: at least 8 digits, more once it needs them.
    let mut n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = [0u8; 28];
    id[..12].copy_from_slice(prefix);
    let mut end = 28;
    while end > 20 || n > 0 {
        end -= 1;
        id[end] = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    id.copy_within(end..28, 12);
    let id = &id[..12 + 28 - end];
    ::http::HeaderValue::from_bytes(id).expect("hex digits are a header value")
}

/// Runs a handler; a panic inside it becomes a logged 500 with the error body
/// instead of a dropped connection, and the server keeps serving. Not an
/// `async fn`: that would hold `handler` twice (as its argument and inside
/// `catch_unwind`), and this future is moved on every request.
fn contain_panics<'a>(
    handler: impl Future<Output = http::Response> + 'a,
    request_id: &'a str,
) -> impl Future<Output = http::Response> + 'a {
    AssertUnwindSafe(handler).catch_unwind().map(move |outcome| match outcome {
        Ok(resp) => resp,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(request_id = %request_id, panic = %message, "handler panicked");
            ApiError::internal().into_response()
        }
    })
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed
/// when this is called, not when the future is first polled: a signal sent
/// right after start must shut down gracefully, not kill the process (the
/// default action) with requests in flight and counts unflushed.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let (int, term) = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    };
    async move {
        #[cfg(unix)]
        {
            let recv = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = recv(int) => tracing::info!("received SIGINT"),
                _ = recv(term) => tracing::info!("received SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_error_body() {
        let resp = contain_panics(async { panic!("boom") }, "req-1").await;
        assert_eq!(resp.status(), 500);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"], "internal_server_error");
        assert!(value["reason"].is_string());
        // The runtime is intact afterwards.
        let ok = contain_panics(async { http::json_response(::http::StatusCode::OK, &serde_json::json!({})) }, "req-2").await;
        assert_eq!(ok.status(), 200);
    }

    #[test]
    fn request_ids_are_a_prefix_and_a_counter_in_hex() {
        let (a, b) = (next_request_id(), next_request_id());
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert!(a.len() >= 20 && a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_eq!(a[..12], b[..12], "one prefix per process");
        let n = |id: &str| u64::from_str_radix(&id[12..], 16).unwrap();
        assert!(n(b) > n(a), "{a} then {b}");
    }

    fn future_size<A, B, C, F: Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The future of a request is moved (copied) several times per request,
    /// so its size is a per-request cost: a route's handler runs in its own
    /// allocation instead of making every request as large as the largest
    /// handler (15 KB before; a tarball read cost about 3 µs more CPU).
    #[test]
    fn the_per_request_future_stays_small() {
        let size = future_size(handle_logged);
        assert!(size <= 4096, "handle_logged's future is {size} bytes: box the handler that grew it (see http::router::route)");
    }
}
