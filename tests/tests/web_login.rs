//! npm's web login (`POST /-/v1/login`): over HTTP, and with the real npm 11
//! CLI (whose default auth type is `web`), completed by a browser-like client
//! signing in at the printed loginUrl.

use std::time::Duration;

use cairn_e2e::browser::Browser;
use cairn_e2e::clients::isolated_command;
use cairn_e2e::{both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

both_backends!(web_login_over_http, web_login_limits_and_disabled, npm_login_web, npm_adduser_web);

const PASSWORD: &str = "correct-horse-1";

async fn start_login(s: &Server, token: Option<&str>) -> (String, String) {
    let (status, body) = s.call(Method::POST, "/-/v1/login", token, Some(&json!({"hostname": "build-box <b>"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let login = body["loginUrl"].as_str().expect("loginUrl").to_string();
    let done = body["doneUrl"].as_str().expect("doneUrl").to_string();
    assert!(login.starts_with(&s.base) && done.starts_with(&s.base), "{body}");
    (login, done)
}

async fn poll_done(s: &Server, done: &str) -> (StatusCode, Option<String>, Value) {
    let resp = s.client.get(done).send().await.expect("doneUrl");
    let status = resp.status();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

/// Start, poll (202 + Retry-After), sign in at the loginUrl (CSRF checked), poll
/// (the token, once), and the token is a normal one.
async fn web_login_over_http(backend: Backend) {
    let s = Server::start(backend).await;
    s.add_user("alice", PASSWORD).await;
    // A stale token in npm's config must not break the login.
    let (login, done) = start_login(&s, Some("cairn_stale")).await;
    let (status, retry, _) = poll_done(&s, &done).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(retry.as_deref(), Some("1"));

    let mut browser = Browser::new();
    let page = browser.get(&login).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("build-box &lt;b&gt;"), "the host name is shown escaped: {}", page.body);
    let csrf = page.csrf();
    // Without the CSRF token (a form posted from another site) nothing happens.
    let refused = browser.post(&login, &[("name", "alice"), ("password", PASSWORD), ("csrf", "0000")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    // A wrong password shows the form again.
    let wrong = browser.post(&login, &[("name", "alice"), ("password", "wrong-password-1"), ("csrf", &csrf)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(wrong.body.contains("wrong user name or password"), "{}", wrong.body);
    assert_eq!(poll_done(&s, &done).await.0, StatusCode::ACCEPTED);

    let ok = browser.post(&login, &[("name", "alice"), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.body.contains("npm is logged in"), "{}", ok.body);
    assert!(browser.cookies.contains_key("cairn_session"), "signing in also starts a session: {:?}", browser.cookies);

    let (status, _, body) = poll_done(&s, &done).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("cairn_"), "{token}");
    assert_eq!(s.get("/-/whoami", Some(&token)).await, (StatusCode::OK, json!({"username": "alice"})));
    let (_, tokens) = s.get("/-/npm/v1/tokens", Some(&token)).await;
    assert!(tokens["objects"].as_array().unwrap().iter().any(|t| t["name"] == json!("web login")), "{tokens}");
    // Single use: the doneUrl answers the token once, and the loginUrl is spent.
    assert_eq!(poll_done(&s, &done).await.0, StatusCode::NOT_FOUND);
    assert_eq!(browser.get(&login).await.status, StatusCode::NOT_FOUND);
    // Made-up secrets are unknown.
    assert_eq!(poll_done(&s, &format!("{}/-/v1/done/{}", s.base, "ab".repeat(32))).await.0, StatusCode::NOT_FOUND);

    // Registration at the loginUrl: a taken name is refused and shown on the page.
    let (login3, _) = start_login(&s, None).await;
    let mut stranger = Browser::new();
    let csrf3 = stranger.get(&login3).await.csrf();
    let taken = stranger.post(&login3, &[("name", "alice"), ("email", "a@example.com"), ("password", PASSWORD), ("csrf", &csrf3)]).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(taken.body.contains("already exists"), "{}", taken.body);

    // Signed in already: the loginUrl only asks to confirm.
    let (login2, done2) = start_login(&s, None).await;
    let page = browser.get(&login2).await;
    assert!(page.body.contains("You are signed in as"), "{}", page.body);
    let confirmed = browser.post(&login2, &[("csrf", &page.csrf())]).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let (status, _, body) = poll_done(&s, &done2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["token"].as_str().unwrap(), token, "every login gets its own token");
}

/// Failed sign-ins count against the login limits (429 with Retry-After), and
/// `[web] enabled = false` removes the route (npm then falls back to its prompt).
async fn web_login_limits_and_disabled(backend: Backend) {
    let s = Server::start_with(ServerOptions::new(backend).auth("login_max_failures = 2")).await;
    s.add_user("alice", PASSWORD).await;
    let (login, _) = start_login(&s, None).await;
    let mut browser = Browser::new();
    let csrf = browser.get(&login).await.csrf();
    for _ in 0..2 {
        let wrong = browser.post(&login, &[("name", "alice"), ("password", "wrong-password-1"), ("csrf", &csrf)]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    }
    let locked = browser.post(&login, &[("name", "alice"), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{}", locked.body);
    assert!(locked.header("retry-after").is_some());

    let off = Server::start_with(ServerOptions::new(backend).toml("[web]\nenabled = false")).await;
    let (status, body) = off.call(Method::POST, "/-/v1/login", None, Some(&json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let resp = off.client.get(off.url("/-/web/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = off.client.get(off.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
}

/// `npm login` with npm 11's defaults (auth-type web): it prints the loginUrl,
/// the browser signs in there, npm stores the token, and `npm whoami` works.
async fn npm_login_web(backend: Backend) {
    let s = Server::start(backend).await;
    s.add_user("alice", PASSWORD).await;
    npm_web(&s, "login", &[("name", "alice"), ("password", PASSWORD)], "alice").await;
}

/// `npm adduser` with npm 11's defaults: the person registers at the loginUrl.
async fn npm_adduser_web(backend: Backend) {
    let s = Server::start(backend).await;
    npm_web(&s, "adduser", &[("name", "carol"), ("email", "carol@example.com"), ("password", PASSWORD)], "carol").await;
    let (status, body) = s.login("carol", PASSWORD, None).await;
    assert_eq!(status, StatusCode::CREATED, "the account registered in the browser: {body}");
}

/// Runs `npm SUBCOMMAND` (web auth), posts `fields` to the printed loginUrl,
/// and checks npm stored a token of `user` that `npm whoami` accepts.
async fn npm_web(s: &Server, subcommand: &str, fields: &[(&str, &str)], user: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (npmrc, global, cache) = (dir.path().join("npmrc"), dir.path().join("globalnpmrc"), dir.path().join("cache"));
    std::fs::write(&npmrc, "").unwrap();
    std::fs::write(&global, "").unwrap();
    let registry = format!("{}/", s.base);
    let mut cmd = isolated_command("npm", &npmrc, &global, &cache);
    cmd.args([subcommand, "--registry", &registry])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("npm runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let login_url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(at) = line.find("http") {
                if line.contains("/-/web/login/") {
                    return line[at..].trim().to_string();
                }
            }
        }
        panic!("npm ended without printing a login URL:\n{printed}")
    })
    .await
    .expect("npm printed no login URL within 60 s");

    let mut browser = Browser::new();
    let page = browser.get(&login_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();
    let mut form = fields.to_vec();
    form.push(("csrf", &csrf));
    let ok = browser.post(&login_url, &form).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("npm ends").unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(status.success(), "npm {subcommand} failed:\n{printed}{rest}\n{}", s.log());
    assert!(rest.contains(&format!("Logged in on {registry}")), "{printed}{rest}");
    let config = std::fs::read_to_string(&npmrc).unwrap();
    let token =
        config.lines().find_map(|l| l.strip_prefix(&format!("//{}/:_authToken=", s.addr))).expect("token in the npmrc").trim().to_string();
    assert_eq!(s.get("/-/whoami", Some(&token)).await, (StatusCode::OK, json!({"username": user})));

    let mut whoami = isolated_command("npm", &npmrc, &global, &cache);
    whoami.args(["whoami", "--registry", &registry]).current_dir(dir.path());
    let out = tokio::time::timeout(Duration::from_secs(60), whoami.output()).await.expect("npm whoami ends").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), user);
}
