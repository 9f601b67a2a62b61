//! The server process itself: errors for unknown routes, body limits, slow
//! clients, graceful shutdown, configuration errors, environment overrides.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_e2e::{assert_error, both_backends, cairn_bin, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::json;

both_backends!(health_and_readiness, sigterm_turns_ready_off_then_drains);

/// `/-/health` answers while the process lives; `/-/ready` only while the
/// database and the blob store can be used.
async fn health_and_readiness(backend: Backend) {
    let s = Server::start(backend).await;
    assert_eq!(s.get("/-/health", None).await, (StatusCode::OK, json!({"ok": true})));
    assert_eq!(s.get("/-/ready", None).await, (StatusCode::OK, json!({"ok": true})));
    let head = s.client.head(s.url("/-/ready")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    // The blob directory gone: not ready (nothing could be stored), though alive.
    let blobs = s.data_dir.path().join("blobs");
    std::fs::rename(&blobs, s.data_dir.path().join("elsewhere")).unwrap();
    let (status, body) = s.get("/-/ready", None).await;
    assert_error(status, &body, 503);
    assert_eq!(body["reason"], "the blob store is unreachable");
    assert_eq!(s.get("/-/health", None).await.0, StatusCode::OK);
    std::fs::rename(s.data_dir.path().join("elsewhere"), &blobs).unwrap();
    assert_eq!(s.get("/-/ready", None).await.0, StatusCode::OK);
}

/// On SIGTERM `/-/ready` turns 503 at once while requests are still served for
/// `shutdown_delay_secs`; then the process stops accepting and exits cleanly.
async fn sigterm_turns_ready_off_then_drains(backend: Backend) {
    let mut s = Server::start_with(ServerOptions::new(backend).toml("shutdown_delay_secs = 4")).await;
    assert_eq!(s.get("/-/ready", None).await.0, StatusCode::OK);
    std::process::Command::new("kill").arg("-TERM").arg(s.pid().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = s.get("/-/ready", None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["reason"], "shutting down");
            break;
        }
        assert!(Instant::now() < deadline, "/-/ready still {status} after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still serving during the delay.
    assert_eq!(s.get("/-/health", None).await.0, StatusCode::OK);
    assert_eq!(s.get("/-/ping", None).await.0, StatusCode::OK);
    let status = s.stop_with("0").await;
    assert!(status.success(), "exit status {status:?}; log:\n{}", s.log());
    assert!(s.log().contains("draining: /-/ready answers 503"), "{}", s.log());
    assert!(TcpStream::connect(s.addr).is_err(), "the listener is closed");
}

#[tokio::test]
async fn unknown_routes_and_errors_are_json() {
    let s = Server::start(Backend::Sqlite).await;
    for (method, path) in [(Method::GET, "/-/no/such/route"), (Method::POST, "/-/whoami"), (Method::PATCH, "/-/ping")] {
        let (status, body) = s.call(method, path, None, None).await;
        assert_error(status, &body, 404);
    }
    // Control characters never reach storage (PostgreSQL cannot store NUL).
    for path in ["/-/v1/search?text=a%00b", "/foo%00bar", "/-/v1/search?te%01xt=a"] {
        let (status, body) = s.get(path, None).await;
        assert_error(status, &body, 400);
    }
    let resp = s.client.get(s.url("/-/ping")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-request-id").is_some());
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), json!({"pong": true}));
    // A request id given by the client is echoed and logged.
    let resp = s.client.get(s.url("/-/ping")).header("x-request-id", "trace-abc-123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.log().contains("trace-abc-123") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = s.log();
    let line = log.lines().find(|l| l.contains("trace-abc-123")).expect("request logged");
    for field in ["method=GET", "path=/-/ping", "status=200", "duration_ms="] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_naming_the_limit() {
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).toml("max_body_bytes = 4096")).await;
    let big = "x".repeat(10_000);
    let body = json!({"_id": "org.couchdb.user:big", "name": "big", "password": "password123", "type": "user", "pad": big});
    let (status, resp) = s.call(Method::PUT, "/-/user/org.couchdb.user:big", None, Some(&body)).await;
    assert_error(status, &resp, 413);
    assert!(resp["reason"].as_str().unwrap().contains("4096"), "{resp}");
    // Chunked bodies without a Content-Length are cut off at the limit too.
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(conn, "PUT /-/user/org.couchdb.user:big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = "x".repeat(3000);
    for _ in 0..2 {
        let _ = write!(conn, "{:x}\r\n{chunk}\r\n", chunk.len());
    }
    let _ = write!(conn, "0\r\n\r\n");
    let response = read_response(&mut conn);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("4096"), "{response}");
    // Nothing was created, and the server still answers.
    let (status, _) = s.get("/-/user/org.couchdb.user:big", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Reads one response head (up to the blank line), byte by byte so nothing after it is consumed.
fn read_head(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Reads until the peer closes or a full response with Content-Length arrived.
fn read_response(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn slow_clients_are_timed_out() {
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).toml("request_timeout_secs = 1")).await;
    // Headers that never finish: the connection is closed.
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(conn, "GET /-/ping HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).unwrap_or(0);
    let _ = n;
    assert!(started.elapsed() < Duration::from_secs(8), "header timeout did not fire");
    // A kept-alive connection gets the same time for its next request head,
    // counted from the end of the previous answer; answers keep it open.
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        write!(conn, "GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(read_response(&mut conn).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(600));
    }
    let idle_from = Instant::now();
    let n = conn.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the idle connection is closed, not answered");
    assert!(idle_from.elapsed() < Duration::from_secs(8), "idle keep-alive connection was not closed");
    // A body that stalls: 408 with the error body.
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(conn, "PUT /-/user/org.couchdb.user:slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"name\"").unwrap();
    let response = read_response(&mut conn);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"error\""), "{response}");
    // Meanwhile other clients are served.
    let (status, _) = s.get("/-/ping", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut s = Server::start(Backend::Sqlite).await;
    // Start a request and leave its body half sent.
    let body = json!({"_id": "org.couchdb.user:late", "name": "late", "password": "password123", "type": "user", "email": "l@example.com"})
        .to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // `Expect: 100-continue`: the server answers `100 Continue` once the handler
    // reads the body, which proves the request is in flight before the signal.
    write!(conn, "PUT /-/user/org.couchdb.user:late HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    conn.flush().unwrap();
    let interim = read_head(&mut conn);
    assert!(interim.starts_with("HTTP/1.1 100"), "expected 100 Continue, got {interim:?}");
    conn.write_all(first.as_bytes()).unwrap();
    conn.flush().unwrap();
    let pid = s.pid();
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    // New connections are refused while the old request is still open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(s.addr).is_ok() {
        assert!(Instant::now() < deadline, "listener still open 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.write_all(second.as_bytes()).unwrap();
    let response = read_response(&mut conn);
    assert!(response.starts_with("HTTP/1.1 201"), "in-flight request must complete: {response}");
    let status = s.stop_with("0").await;
    assert!(status.success(), "exit status {status:?}; log:\n{}", s.log());
    let log = s.log();
    assert!(log.contains("received SIGTERM") && log.contains("stopped"), "{log}");
    // The user created during shutdown is really stored.
    s.restart().await;
    let (status, _) = s.get("/-/user/org.couchdb.user:late", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn unknown_config_keys_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlisten_address = \"x\"\n").unwrap();
    let out = std::process::Command::new(cairn_bin()).arg("serve").arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen_address"), "{stderr}");
    std::fs::write(&path, "[auth]\nallow_registration = true\n").unwrap();
    let out = std::process::Command::new(cairn_bin()).arg("serve").arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_registration"));
}

/// With no config file, data goes to ./data under the working directory; the
/// environment overrides the listen address.
/// Signal handlers are in place by the time the address is announced: a SIGHUP
/// sent at once reloads instead of killing the process (the default action).
#[tokio::test]
async fn signals_right_after_start_are_handled() {
    let s = Server::start(Backend::Sqlite).await;
    std::process::Command::new("kill").arg("-HUP").arg(s.pid().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("received SIGHUP") {
        assert!(Instant::now() < deadline, "SIGHUP not handled; log:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = s.get("/-/ping", None).await;
    assert_eq!(status, StatusCode::OK, "the server survives an early SIGHUP");
}

#[tokio::test]
async fn runs_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(cairn_bin())
        .arg("serve")
        .current_dir(dir.path())
        .env("CAIRN_LISTEN", "127.0.0.1:0")
        .env("CAIRN_PUBLIC_URL", "http://registry.test:8080")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "server exited");
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(line.contains("public_url=http://registry.test:8080"), "{line}");
    let resp = reqwest::get(format!("http://{addr}/-/ping")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(dir.path().join("data/cairn.db").exists());
    assert!(dir.path().join("data/blobs").is_dir());
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `head` and then `body_len` bytes of body from another thread (the
/// server may answer before reading it); returns the response read meanwhile.
fn send_with_body(conn: &TcpStream, head: &str, body_len: usize) -> String {
    let mut writer = conn.try_clone().unwrap();
    let head = head.to_string();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let chunk = vec![b' '; 64 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n;
        }
    });
    let response = read_response(&mut conn.try_clone().unwrap());
    let _ = sender.join();
    response
}

/// An error given before the handler read the body (401 for an unknown token,
/// 404 for no route) still reaches the client whole, and the connection either
/// stays usable or the answer says `connection: close`: never a reset.
#[tokio::test]
async fn early_errors_with_an_unread_body_are_delivered() {
    let s = Server::start(Backend::Sqlite).await;
    let body_len = 1024 * 1024;
    let cases = [
        ("PUT /early-pkg HTTP/1.1\r\nAuthorization: Bearer not-a-token\r\n", "401"),
        ("PUT /-/no/such/route HTTP/1.1\r\n", "404"),
        ("PUT /-/package/early-pkg/dist-tags/latest HTTP/1.1\r\n", "401"),
    ];
    for (request_line, status) in cases {
        let conn = TcpStream::connect(s.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!("{request_line}Host: x\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n");
        let response = send_with_body(&conn, &head, body_len);
        assert!(response.starts_with(&format!("HTTP/1.1 {status}")), "{request_line}: {response}");
        let (resp_head, resp_body) = response.split_once("\r\n\r\n").unwrap();
        let value: serde_json::Value = serde_json::from_str(resp_body).unwrap_or_else(|e| panic!("{request_line}: {e}: {response}"));
        assert!(value["reason"].is_string(), "{response}");
        if resp_head.to_ascii_lowercase().contains("connection: close") {
            continue;
        }
        // Kept alive: the next request on the same connection is answered.
        let mut again = conn.try_clone().unwrap();
        write!(again, "GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let next = read_response(&mut again);
        assert!(next.starts_with("HTTP/1.1 200"), "{request_line}: after {resp_head}\nthe next request got: {next:?}");
    }
    // A client waiting for `100 Continue` is not asked for a body nobody reads.
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(conn, "PUT /early-pkg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-a-token\r\nExpect: 100-continue\r\nContent-Length: {body_len}\r\n\r\n").unwrap();
    let response = read_response(&mut conn);
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
}

/// npm shows an answer's `npm-notice` header to the person at the terminal:
/// it is there for refused writes and blocked packages, not for the plain 404
/// of a read (npm reads a new package's document before publishing it).
#[tokio::test]
async fn npm_notice_only_where_a_person_should_read_it() {
    let s = Server::start(Backend::Sqlite).await;
    let notice = |resp: &reqwest::Response| resp.headers().get("npm-notice").map(|v| v.to_str().unwrap().to_string());
    for path in ["/no-such-package", "/@scope%2fno-such-package", "/no-such-package/1.0.0", "/-/no/such/route"] {
        let resp = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(notice(&resp), None, "GET {path}");
        let resp = s.client.head(s.url(path)).send().await.unwrap();
        assert_eq!(notice(&resp), None, "HEAD {path}");
    }
    // Refused writes keep it.
    let resp = s.client.put(s.url("/some-package")).bearer_auth("not-a-token").json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(notice(&resp).is_some_and(|n| !n.is_empty()), "401 on a write");
    let resp = s.client.put(s.url("/-/package/some-package/dist-tags/latest")).json(&json!("1.0.0")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(notice(&resp).is_some(), "401 on a dist-tag write");
    let alice = s.add_user("alice", "password-alice").await;
    let resp = s.client.put(s.url("/some-package")).bearer_auth(&alice).body("{").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(notice(&resp).is_some(), "400 on a write");
    // A blocked package: its reason is for a person.
    let admin = s.add_admin("admin", "password-admin").await;
    let (status, body) = s.call(Method::PUT, "/-/package/blocked-pkg/blocks", Some(&admin), Some(&json!({"reason": "malware"}))).await;
    assert!(status.is_success(), "{status}: {body}");
    let resp = s.client.get(s.url("/blocked-pkg")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert!(notice(&resp).is_some_and(|n| n.contains("malware")), "451: {:?}", notice(&resp));
}

/// Hostile traffic does not make memory grow: a burst of wrong-password logins
/// (each argon2 run takes 19 MiB) and a few thousand fuzzed requests leave the
/// server's RSS within twice its idle size plus the cache budget, with no 5xx
/// (but the 501 of audits without an upstream) and no reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_traffic_keeps_memory_bounded() {
    use cairn_e2e::fuzz::{self, FuzzOptions, GenOptions};
    let budget_kib = 8 * 1024;
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).toml(&format!("cache_max_bytes = {}", budget_kib * 1024))).await;
    let token = s.add_user("fuzzer", "fuzzer-pass-1").await;
    let idle = fuzz::rss_kib(s.pid()).expect("server RSS");
    let mut logins = Vec::new();
    for i in 0..64 {
        let (client, url) = (s.client.clone(), s.url("/-/user/org.couchdb.user:fuzzer"));
        let body = json!({"_id": "org.couchdb.user:fuzzer", "name": "fuzzer", "password": format!("wrong-password-{i}"), "type": "user"});
        logins.push(tokio::spawn(async move { client.put(url).json(&body).send().await.map(|r| r.status()) }));
    }
    for l in logins {
        assert_eq!(l.await.unwrap().expect("login answered"), StatusCode::UNAUTHORIZED);
    }
    let after_logins = fuzz::rss_kib(s.pid()).unwrap();
    let opts = FuzzOptions { concurrency: 16, generator: GenOptions { token: Some(token), known_names: Vec::new() }, ..Default::default() };
    let report = fuzz::run(&s.base, 11, 3_000, &opts).await;
    let after = fuzz::rss_kib(s.pid()).unwrap();
    let bound = 2 * (idle + budget_kib);
    let figures = format!("idle {idle} KiB, after 64 logins {after_logins} KiB, after fuzzing {after} KiB, bound {bound} KiB");
    eprintln!("{figures}");
    assert!(after_logins <= bound && after <= bound, "{figures}");
    let failures = report.server_errors - report.statuses.get(&501).copied().unwrap_or(0);
    assert_eq!(failures, 0, "{report}");
    assert_eq!(report.transport_errors, 0, "{report}");
}
