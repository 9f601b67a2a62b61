//! Headless Chromium driven over the DevTools protocol: a WebSocket and JSON
//! messages (no generated bindings: the few commands the UI tests need are
//! named here). The browser gets a throwaway profile and is killed on drop.
//! Console errors, uncaught exceptions and JavaScript dialogs (`alert`) are
//! recorded, so a test can require a clean console.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Bound on one protocol command.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The `chromium` binary (`$CAIRN_CHROMIUM` or `chromium` on PATH).
pub fn chromium_bin() -> String {
    std::env::var("CAIRN_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

pub struct Chrome {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    http: String,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Tab {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    next: std::sync::atomic::AtomicU64,
    /// Console errors, exceptions, dialogs: one line each.
    pub problems: Arc<Mutex<Vec<String>>>,
}

impl Chrome {
    pub async fn launch() -> Chrome {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = tokio::process::Command::new(chromium_bin())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
            ])
            .args(["--disable-background-networking", "--disable-sync", "--remote-debugging-port=0", "--window-size=1200,900"])
            // Only loopback: any other host name fails here, without a lookup.
            .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (tests/run.sh installs Debian's chromium)", chromium_bin()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ws = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("chromium stderr") {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools address")
        })
        .await
        .expect("chromium printed no DevTools address within 60 s");
        // Keep draining stderr so chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = ws.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        Chrome { child, _profile: profile, http: format!("http://{host}") }
    }

    /// A new tab, with console and dialog events recorded.
    pub async fn tab(&self) -> Tab {
        let client = reqwest::Client::new();
        let target: Value = client.put(format!("{}/json/new?about:blank", self.http)).send().await.unwrap().json().await.unwrap();
        let ws_url = target["webSocketDebuggerUrl"].as_str().expect("webSocketDebuggerUrl").to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.expect("DevTools WebSocket");
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, pr) = (pending.clone(), problems.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Ok(text) = msg.into_text() else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    if let Some(tx) = p.lock().unwrap().remove(&id) {
                        let _ = tx.send(v);
                    }
                } else if let Some(problem) = problem(&v) {
                    pr.lock().unwrap().push(problem);
                }
            }
        });
        let tab = Tab { out, pending, next: 1.into(), problems };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            tab.call(domain, json!({})).await;
        }
        tab
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The line a console error, an uncaught exception or a dialog leaves.
fn problem(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event["method"].as_str()? {
        "Runtime.consoleAPICalled" if params["type"] == "error" || params["type"] == "assert" => {
            Some(format!("console.error: {}", params["args"]))
        }
        "Runtime.exceptionThrown" => Some(format!("exception: {}", params["exceptionDetails"])),
        "Log.entryAdded" if params["entry"]["level"] == "error" => {
            Some(format!("log: {} ({})", params["entry"]["text"], params["entry"]["url"]))
        }
        "Page.javascriptDialogOpening" => Some(format!("dialog ({}): {}", params["type"], params["message"])),
        _ => None,
    }
}

impl Tab {
    /// One protocol command; panics on an error answer.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out.send(json!({"id": id, "method": method, "params": params}).to_string()).expect("DevTools connection");
        let answer = tokio::time::timeout(CALL_TIMEOUT, rx).await.unwrap_or_else(|_| panic!("{method} got no answer")).expect("answer");
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The value of a JavaScript expression (promises awaited); None when it threw.
    pub async fn try_eval(&self, expression: &str) -> Option<Value> {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true})).await;
        if r.get("exceptionDetails").is_some() {
            return None;
        }
        Some(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    pub async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|| panic!("{expression} threw"))
    }

    /// Waits (up to 30 s) until `expression` is truthy.
    pub async fn wait_for(&self, expression: &str) {
        let wrapped = format!("(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if self.try_eval(&wrapped).await == Some(Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {expression}; page: {}", self.eval("location.href + '\\n' + document.body.innerText").await);
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(&format!("location.href === {} && document.readyState === 'complete'", json!(url))).await;
    }

    /// Clicks the element and, when it navigates, waits for the new page.
    pub async fn click_and_wait(&self, selector: &str) {
        let marker = self.eval("window.__cairn_page = Math.random(); window.__cairn_page").await;
        self.eval(&format!("document.querySelector({}).click()", json!(selector))).await;
        self.wait_for(&format!("window.__cairn_page !== {marker} && document.readyState === 'complete'")).await;
    }

    /// Sets a form field's value as typing would.
    pub async fn fill(&self, selector: &str, value: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); e.focus(); e.value = {}; return true; }})()",
            json!(selector),
            json!(value)
        ))
        .await;
    }

    pub async fn text(&self, selector: &str) -> String {
        self.eval(&format!("(document.querySelector({}) || {{}}).textContent || ''", json!(selector)))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// A PNG of the whole page.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true})).await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Console errors, exceptions and dialogs, except resources outside
    /// `origin` that failed to load (this browser reaches only loopback).
    pub fn problems(&self, origin: &str) -> Vec<String> {
        let outside = |p: &&String| p.starts_with("log: \"Failed to load resource") && !p.contains(origin);
        self.problems.lock().unwrap().iter().filter(|p| !outside(p)).cloned().collect()
    }
}
