//! The web UI: pages over HTTP (content negotiation, escaping, read
//! authorization in lists, banners, sign-in, tokens, CSRF) and in a real
//! headless Chromium over the DevTools protocol (search, package page, version
//! switch, copy button, sign-in, tokens, a hostile readme with a clean
//! console, a private scope hidden), with screenshots of the main pages under
//! `$CARGO_TARGET_TMPDIR/web-screenshots/`. The hook pages: who may see and
//! delete which hook, deliveries to a real loopback receiver, no secret in
//! any page, CSRF on the delete form.

use cairn_e2e::browser::{attr_after, Browser};
use cairn_e2e::cdp::Chrome;
use cairn_e2e::hook_receiver::Receiver;
use cairn_e2e::publish::{assert_published, poll, publish_ok, publish_with};
use cairn_e2e::upstream::{sync_ok, wait_success, FakeUpstream};
use cairn_e2e::{both_backends, plugin, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::json;
use sha2::Digest;

both_backends!(pages_over_http, pages_in_chromium, hook_pages);

const PW: &str = "correct-horse-1";

const HOSTILE_README: &str = "# Demo two\n\nHello <b>bold</b>.\n\n<script>alert('script')</script>\n\n\
    [click me](javascript:alert('link'))\n\n<img src=\"nope.png\" onerror=\"alert('onerror')\">\n\n\
    <a href=\"JAVASCRIPT:alert('upper')\" onclick=\"alert('onclick')\">other</a>\n\n[docs](docs/guide.md)\n";

fn options(backend: Backend, fake: &FakeUpstream) -> ServerOptions {
    let plugin_toml = format!(
        "[[plugins]]\nname = \"scopes\"\nkind = \"auth-policy\"\npath = {:?}\ntimeout_ms = 2000\n[plugins.config]\npublishers = {{ \"@secret\" = [\"alice\"] }}\nprivate_scopes = [\"@secret\"]\n",
        plugin("scope_policy").display().to_string()
    );
    ServerOptions::new(backend)
        .toml("[web]\ntitle = \"Acme <Registry>\"")
        .tail(&plugin_toml)
        .tail(&fake.registry_toml("fake", ""))
        .tail(HOOKS_TOML)
}

/// alice publishes `web-dep`, `web-demo` 1.0.0, 1.1.0 and 2.0.0 (hostile readme),
/// a deprecated `web-old`, and `@secret/hidden` (which depends on `web-dep`).
async fn seed(s: &Server) -> String {
    let alice = s.add_user("alice", PW).await;
    let publish = |name: &'static str, version: &'static str, extra: serde_json::Value| {
        let alice = alice.clone();
        async move { assert_published(&publish_with(s, Some(&alice), name, version, extra, None).await) }
    };
    publish("web-dep", "1.0.0", json!({"description": "a dependency", "readme": "dep"})).await;
    let demo = |readme: &str| {
        json!({"description": "Demo <package> for the UI", "keywords": ["demo", "ui<x>"], "license": "MIT",
               "repository": {"type": "git", "url": "git+https://example.com/acme/demo.git"}, "homepage": "https://example.com/demo",
               "dependencies": {"web-dep": "^1.0.0"}, "readme": readme})
    };
    publish("web-demo", "1.0.0", demo("# Demo one\n\nReadme of version one.")).await;
    publish("web-demo", "1.1.0", demo("# Demo one-one\n\nReadme of version one-one.")).await;
    publish("web-demo", "2.0.0", demo(HOSTILE_README)).await;
    publish("web-old", "1.0.0", json!({"description": "old", "readme": "old"})).await;
    let doc = json!({"_id": "web-old", "name": "web-old", "versions": {"1.0.0": {"deprecated": "use web-demo <now>"}}});
    let (status, body) = s.call(Method::PUT, "/web-old", Some(&alice), Some(&doc)).await;
    assert!(status.is_success(), "deprecate: {body}");
    publish("@secret/hidden", "1.0.0", json!({"description": "top secret", "dependencies": {"web-dep": "1"}, "readme": "secret"})).await;
    alice
}

/// The admin `root` syncs `synced-pkg` from the fake upstream; the task's id.
async fn seed_sync(s: &Server, fake: &FakeUpstream) -> String {
    fake.add_version("synced-pkg", "1.0.0", json!({"description": "from upstream"}));
    let root = s.add_admin("root", PW).await;
    let id = sync_ok(s, &root, "synced-pkg", json!({"skipDependencies": true})).await;
    wait_success(s, "synced-pkg", &id, 60).await;
    id
}

async fn html(b: &mut Browser, s: &Server, path: &str) -> String {
    let page = b.get(&s.url(path)).await;
    assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    assert!(page.header("content-type").unwrap().starts_with("text/html"), "{path}");
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline') script"), "{path}: {csp}");
    page.body
}

/// Every page over plain HTTP.
async fn pages_over_http(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let s = Server::start_with(options(backend, &fake)).await;
    seed(&s).await;
    let task = seed_sync(&s, &fake).await;
    let mut anon = Browser::new();

    // `/` keeps answering npm with JSON; a browser gets the home page.
    let (status, root) = s.get("/", None).await;
    assert_eq!(status, StatusCode::OK, "{root}");
    assert_eq!(root["engine"], json!("cairn"), "{root}");
    let resp = s.client.get(s.url("/")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(resp.headers()["vary"], "Accept");
    let home = html(&mut anon, &s, "/").await;
    assert!(home.contains("<title>Home · Acme &lt;Registry&gt;</title>"), "{home}");
    assert!(home.contains("web-demo") && home.contains("Demo &lt;package&gt; for the UI"), "{home}");
    assert!(!home.contains("secret"), "a private scope on the home page: {home}");
    // Counts of what the reader may read: not @secret/hidden (4 packages, 6 versions).
    assert!(home.contains("<strong id=\"count-packages\">4</strong>"), "{home}");
    assert!(home.contains("<strong id=\"count-versions\">6</strong>"), "{home}");

    // Assets are Cairn's own.
    for (path, kind) in [("/-/web/app.css", "text/css"), ("/-/web/app.js", "text/javascript")] {
        let page = anon.get(&s.url(path)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.header("content-type").unwrap().starts_with(kind));
    }

    // Search: escaped, paged, private scope hidden from anonymous readers.
    let results = html(&mut anon, &s, "/-/web/search?q=web").await;
    assert!(results.contains("href=\"/-/web/package/web-demo\"") && results.contains("ui&lt;x&gt;"), "{results}");
    assert!(!results.contains("secret"), "{results}");
    let results = html(&mut anon, &s, "/-/web/search?q=secret").await;
    assert!(results.contains("0 results"), "{results}");

    // Package page: latest readme, sanitised; metadata; dependents filtered.
    let demo = html(&mut anon, &s, "/-/web/package/web-demo").await;
    for expected in [
        "<title>web-demo@2.0.0 · Acme &lt;Registry&gt;</title>",
        "npm install web-demo",
        "pnpm add web-demo",
        "yarn add web-demo",
        "https://example.com/acme/demo",
        "MIT",
        "sha512-",
        "<b>bold</b>",
        "https://example.com/acme/demo/blob/HEAD/docs/guide.md",
        "Versions (3)",
    ] {
        assert!(demo.contains(expected), "{expected} missing from the package page:\n{demo}");
    }
    let lower = demo.to_lowercase();
    for bad in ["<script>alert", "javascript:", "onerror", "onclick"] {
        assert!(!lower.contains(bad), "{bad} survived sanitising:\n{demo}");
    }
    let v1 = html(&mut anon, &s, "/-/web/package/web-demo?version=1.0.0").await;
    assert!(v1.contains("Readme of version one.") && v1.contains("npm install web-demo@1.0.0"), "{v1}");
    let dep = html(&mut anon, &s, "/-/web/package/web-dep").await;
    assert!(dep.contains("href=\"/-/web/package/web-demo\""), "dependents list web-demo: {dep}");
    assert!(!dep.contains("secret"), "dependents show a private package: {dep}");
    let old = html(&mut anon, &s, "/-/web/package/web-old").await;
    assert!(old.contains("Deprecated: </strong>use web-demo &lt;now&gt;"), "{old}");
    assert_eq!(anon.get(&s.url("/-/web/package/@secret/hidden")).await.status, StatusCode::FORBIDDEN);

    // A block shows a banner (451).
    let (_, login) = s.login("root", PW, None).await;
    let admin = login["token"].as_str().unwrap().to_string();
    let (status, body) = s.call(Method::PUT, "/-/package/web-old/blocks", Some(&admin), Some(&json!({"reason": "malware <x>"}))).await;
    assert!(status.is_success(), "{body}");
    let blocked = anon.get(&s.url("/-/web/package/web-old")).await;
    assert_eq!(blocked.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert!(blocked.body.contains("malware &lt;x&gt;"), "{}", blocked.body);

    signed_in_over_http(&s).await;
    admin_over_http(&s, &task).await;
}

/// Admin pages: refused to others, tasks with logs, blocks, plugins.
async fn admin_over_http(s: &Server, task: &str) {
    let mut b = Browser::new();
    assert_eq!(b.get(&s.url("/-/web/admin")).await.status, StatusCode::UNAUTHORIZED);
    for (name, allowed) in [("alice", false), ("root", true)] {
        let mut b = Browser::new();
        let csrf = b.get(&s.url("/-/web/signin")).await.csrf();
        assert_eq!(
            b.post(&s.url("/-/web/signin"), &[("name", name), ("password", PW), ("csrf", &csrf)]).await.status,
            StatusCode::SEE_OTHER
        );
        let page = b.get(&s.url("/-/web/admin")).await;
        if !allowed {
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
            assert_eq!(b.get(&s.url(&format!("/-/web/admin/tasks/{task}"))).await.status, StatusCode::FORBIDDEN);
            continue;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let home = b.get(&s.url("/-/web/")).await.body;
        assert!(home.contains("<strong id=\"count-packages\">5</strong>"), "an admin reads @secret: {home}");
        for expected in [
            format!("/-/web/admin/tasks/{task}"),
            "synced-pkg".into(),
            "malware &lt;x&gt;".into(),
            "<td>scopes</td>".into(),
            "<td>fake".into(),
        ] {
            assert!(page.body.contains(&expected), "{expected} missing from the admin page:\n{}", page.body);
        }
        let log = b.get(&s.url(&format!("/-/web/admin/tasks/{task}"))).await;
        assert_eq!(log.status, StatusCode::OK);
        assert!(log.body.contains("synced-pkg") && log.body.contains("id=\"task-state\">success"), "{}", log.body);
        assert!(!log.body.contains("http-equiv=\"refresh\""), "a finished task does not reload");
    }
}

/// Sign in (CSRF), see the private scope, create and revoke a token, sign out.
async fn signed_in_over_http(s: &Server) {
    let mut b = Browser::new();
    let page = b.get(&s.url("/-/web/signin")).await;
    let cookie = page.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"), "{cookie}");
    let csrf = page.csrf();
    let forged = b.post(&s.url("/-/web/signin"), &[("name", "alice"), ("password", PW)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "a form without the CSRF token");
    let wrong = b.post(&s.url("/-/web/signin"), &[("name", "alice"), ("password", "nope-nope-1"), ("csrf", &csrf)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = b.post(&s.url("/-/web/signin"), &[("name", "alice"), ("password", PW), ("csrf", &csrf)]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(b.cookies.contains_key("cairn_session"));

    let user = html(&mut b, s, "/-/web/user").await;
    assert!(user.contains("@secret/hidden") && user.contains("web-demo"), "{user}");
    let home = html(&mut b, s, "/-/web/").await;
    assert!(home.contains("<strong id=\"count-packages\">5</strong>") && home.contains("href=\"/-/web/package/@secret/hidden\""), "{home}");
    assert!(home.contains("<strong id=\"count-versions\">7</strong>"), "{home}");
    let results = html(&mut b, s, "/-/web/search?q=secret").await;
    assert!(results.contains("@secret/hidden"), "signed in, alice may read @secret: {results}");
    let csrf = attr_after(&user, "name=\"csrf\"", "value").unwrap();
    let created = b
        .post(&s.url("/-/web/tokens"), &[("name", "ci"), ("readonly", "on"), ("cidr", "127.0.0.1/32"), ("password", PW), ("csrf", &csrf)])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let start = created.body.find("id=\"new-token-value\">").expect("the new token is shown") + "id=\"new-token-value\">".len();
    let token = created.body[start..start + 70].to_string();
    assert!(token.starts_with("cairn_"), "{token}");
    assert_eq!(s.get("/-/whoami", Some(&token)).await, (StatusCode::OK, json!({"username": "alice"})));
    let (status, _) = s.call(Method::PUT, "/-/package/web-demo/dist-tags/x", Some(&token), Some(&json!("1.0.0"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the token is read-only");
    let again = html(&mut b, s, "/-/web/user").await;
    assert!(!again.contains(&token), "the token is shown only once");
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&token)).await;
    let key = list["objects"].as_array().unwrap().iter().find(|t| t["name"] == json!("ci")).unwrap()["key"].as_str().unwrap().to_string();
    assert_eq!(
        list["objects"].as_array().unwrap().iter().find(|t| t["key"] == json!(key)).unwrap()["cidr_whitelist"],
        json!(["127.0.0.1/32"])
    );
    let revoked = b.post(&s.url(&format!("/-/web/tokens/{key}/delete")), &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(s.get("/-/whoami", Some(&token)).await.0, StatusCode::UNAUTHORIZED);

    let out = b.post(&s.url("/-/web/signout"), &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!b.cookies.contains_key("cairn_session"));
    assert_eq!(b.get(&s.url("/-/web/user")).await.status, StatusCode::UNAUTHORIZED);
}

/// The same in headless Chromium, with screenshots.
async fn pages_in_chromium(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let s = Server::start_with(options(backend, &fake)).await;
    let alice = seed(&s).await;
    let task = seed_sync(&s, &fake).await;
    // A hook with one delivery, for the admin's hook pages.
    let receiver = Receiver::start(0).await;
    let hook = add_hook(&s, &alice, "package", "web-hooked", &receiver.url, SECRETS[0]).await;
    publish_ok(&s, &alice, "web-hooked", "1.0.0").await;
    delivery_done(&s, &alice, &hook).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots").join(format!("{backend:?}").to_lowercase());
    std::fs::create_dir_all(&shots).unwrap();
    let chrome = Chrome::launch().await;
    let tab = chrome.tab().await;

    tab.goto(&s.url("/")).await;
    assert_eq!(tab.eval("document.title").await, json!("Home · Acme <Registry>"));
    assert!(!tab.text("main").await.contains("secret"));
    tab.screenshot(&shots.join("home.png")).await;

    // Search from the header, open the package.
    tab.fill("#site-q", "demo").await;
    tab.click_and_wait("header form.search button").await;
    tab.wait_for("document.querySelector('#result-count')").await;
    assert!(tab.text("#result-count").await.starts_with("1 result"), "{}", tab.text("main").await);
    tab.screenshot(&shots.join("search.png")).await;
    tab.click_and_wait("#results a.name").await;
    tab.wait_for("document.querySelector('#package-version')").await;
    assert_eq!(tab.text("#package-version").await, "2.0.0");
    assert!(tab.text("#readme").await.contains("Hello bold."));
    assert_eq!(tab.eval("document.querySelectorAll('#readme script, #readme [onerror], #readme [onclick]').length").await, json!(0));
    assert_eq!(
        tab.eval("[...document.querySelectorAll('#readme a')].filter(a => a.href.toLowerCase().startsWith('javascript')).length").await,
        json!(0)
    );
    tab.screenshot(&shots.join("package.png")).await;
    // At phone width nothing scrolls sideways.
    tab.call("Emulation.setDeviceMetricsOverride", json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true})).await;
    tab.wait_for("document.documentElement.scrollWidth <= 391").await;
    tab.screenshot(&shots.join("package-phone.png")).await;
    tab.call("Emulation.clearDeviceMetricsOverride", json!({})).await;

    // Copy the install command: the button reports it (clipboard or selection).
    tab.eval("document.querySelector('[data-copy=install-npm]').click()").await;
    tab.wait_for("['copied', 'selected'].includes(document.querySelector('[data-copy=install-npm]').dataset.state)").await;

    // Switch versions with the selector (the script submits on change).
    tab.eval("const s = document.querySelector('#version-select'); s.value = '1.0.0'; window.__cairn_page = 1; s.dispatchEvent(new Event('change'))").await;
    tab.wait_for("window.__cairn_page === undefined && document.readyState === 'complete'").await;
    assert_eq!(tab.text("#package-version").await, "1.0.0");
    assert!(tab.text("#readme").await.contains("Readme of version one."));
    assert_eq!(tab.text("#install-npm").await, "npm install web-demo@1.0.0");

    // A private scope is not there for a signed-out person.
    tab.goto(&s.url("/-/web/search?q=hidden")).await;
    assert!(tab.text("#result-count").await.starts_with("0 results"));
    tab.goto(&s.url("/-/web/package/web-dep")).await;
    assert!(!tab.text("#dependents").await.contains("secret"));

    chromium_signed_in(&s, &tab, &shots).await;
    chromium_admin(&s, &tab, &shots, &task).await;
    chromium_hooks(&s, &tab, &shots, &hook).await;
    assert_eq!(tab.problems(&s.base), Vec::<String>::new(), "console errors, exceptions or dialogs");
}

async fn chromium_signed_in(s: &Server, tab: &cairn_e2e::cdp::Tab, shots: &std::path::Path) {
    tab.goto(&s.url("/-/web/signin")).await;
    tab.fill("#name", "alice").await;
    tab.fill("#password", PW).await;
    tab.click_and_wait("main form button[type=submit]").await;
    tab.wait_for("location.pathname === '/-/web/user' && document.querySelector('#create-token')").await;
    assert!(tab.text("main").await.contains("@secret/hidden"));

    tab.fill("#token-name", "browser").await;
    tab.fill("#token-password", PW).await;
    tab.click_and_wait("#create-token button[type=submit]").await;
    tab.wait_for("document.querySelector('#new-token-value')").await;
    let token = tab.text("#new-token-value").await;
    assert!(token.starts_with("cairn_"), "{}", tab.text("main").await);
    assert_eq!(s.get("/-/whoami", Some(&token)).await.0, StatusCode::OK);
    tab.screenshot(&shots.join("user.png")).await;
    let key: String = sha2::Sha512::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let rows = tab.eval("document.querySelectorAll('table.tokens tbody tr').length").await;
    tab.click_and_wait(&format!("tr[data-key='{key}'] button.danger")).await;
    tab.wait_for("document.querySelector('#create-token') && !document.querySelector('#new-token-value')").await;
    let after = tab.eval("document.querySelectorAll('table.tokens tbody tr').length").await;
    assert_eq!(after, json!(rows.as_i64().unwrap() - 1), "{}", tab.text("main").await);
    assert_eq!(tab.eval(&format!("document.querySelectorAll(\"tr[data-key='{key}']\").length")).await, json!(0));
    assert_eq!(s.get("/-/whoami", Some(&token)).await.0, StatusCode::UNAUTHORIZED, "the revoked token");

    tab.click_and_wait("header nav form button").await;
    tab.wait_for("document.querySelector('header nav').textContent.includes('Sign in')").await;
}

/// An admin signs in and reads a sync task's log.
async fn chromium_admin(s: &Server, tab: &cairn_e2e::cdp::Tab, shots: &std::path::Path, task: &str) {
    tab.goto(&s.url("/-/web/signin")).await;
    tab.fill("#name", "root").await;
    tab.fill("#password", PW).await;
    tab.click_and_wait("main form button[type=submit]").await;
    tab.wait_for("location.pathname === '/-/web/user'").await;
    tab.click_and_wait("header nav a[href$='/-/web/admin']").await;
    tab.wait_for("document.querySelector('#task-list')").await;
    tab.screenshot(&shots.join("admin.png")).await;
    tab.click_and_wait(&format!("a[href$='/-/web/admin/tasks/{task}']")).await;
    tab.wait_for("document.querySelector('#task-log')").await;
    assert_eq!(tab.text("#task-state").await, "success");
    assert!(tab.text("#task-log").await.contains("synced-pkg"), "{}", tab.text("main").await);
    tab.screenshot(&shots.join("task.png")).await;
}

/// The admin opens the hooks from the admin page, then a hook's deliveries.
async fn chromium_hooks(s: &Server, tab: &cairn_e2e::cdp::Tab, shots: &std::path::Path, hook: &str) {
    tab.goto(&s.url("/-/web/admin")).await;
    tab.click_and_wait("#hooks-link").await;
    tab.wait_for("document.querySelector('table.hooks')").await;
    let row = format!("tr[data-hook='{hook}']");
    assert!(tab.text(&row).await.contains("web-hooked"), "{}", tab.text("main").await);
    tab.screenshot(&shots.join("hooks.png")).await;
    tab.click_and_wait(&format!("{row} a")).await;
    tab.wait_for("document.querySelector('#delivery-list')").await;
    assert_eq!(tab.text("#delivery-list .state").await, "delivered");
    assert!(!tab.text("main").await.contains(SECRETS[0]));
    tab.screenshot(&shots.join("hook.png")).await;
}

/// Behind an https public URL the cookies are `Secure`; the configured logo is
/// served by Cairn and shown in the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_cookies_and_logo() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"8\" height=\"8\"/>").unwrap();
    let toml = format!("public_url = \"https://registry.example.test/npm\"\n[web]\nlogo = {:?}", logo.display().to_string());
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).toml(&toml)).await;
    let mut b = Browser::new();
    let page = b.get(&s.url("/-/web/signin")).await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page.header("set-cookie").unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("Path=/npm;"), "{cookie}");
    assert!(page.body.contains("src=\"/npm/-/web/logo\"") && page.body.contains("href=\"/npm/-/web/app.css\""), "{}", page.body);
    let logo = b.get(&s.url("/-/web/logo")).await;
    assert_eq!(logo.status, StatusCode::OK);
    assert_eq!(logo.header("content-type").as_deref(), Some("image/svg+xml"));
    assert!(logo.body.starts_with("<svg"));
}

const HOOKS_TOML: &str = "[hooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_base_ms = 50\ntimeout_ms = 2000\n";
/// The secrets of the hooks `hook_pages` registers: no page may show any.
const SECRETS: [&str; 3] = ["alice-secret-one-1", "alice-secret-two-2", "bob-secret-three-3"];

/// A browser signed in as `name`.
async fn sign_in(s: &Server, name: &str) -> Browser {
    let mut b = Browser::new();
    let csrf = b.get(&s.url("/-/web/signin")).await.csrf();
    let done = b.post(&s.url("/-/web/signin"), &[("name", name), ("password", PW), ("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    b
}

/// Registers a hook over the API; its id.
async fn add_hook(s: &Server, token: &str, kind: &str, name: &str, endpoint: &str, secret: &str) -> String {
    let body = json!({"type": kind, "name": name, "endpoint": endpoint, "secret": secret});
    let (status, hook) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(token), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    hook["id"].as_str().unwrap().to_string()
}

/// Waits until the newest delivery of hook `id` is delivered or failed.
async fn delivery_done(s: &Server, token: &str, id: &str) {
    let done = poll(30, || async {
        let (_, list) = s.get(&format!("/-/npm/v1/hooks/hook/{id}/deliveries"), Some(token)).await;
        let state = list["objects"][0]["state"].clone();
        (state == json!("delivered") || state == json!("failed")).then_some(())
    })
    .await;
    assert!(done.is_some(), "hook {id}: no finished delivery");
}

/// The `<tr>` of hook `id` in a hook table.
fn hook_row<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page.find(&format!("data-hook=\"{id}\"")).unwrap_or_else(|| panic!("no row of hook {id}:\n{page}"));
    &page[start..start + page[start..].find("</tr>").unwrap()]
}

/// The hook pages: refused to others, deliveries from a real receiver, the
/// endpoint's user info redacted, no secret anywhere, CSRF on deletes.
async fn hook_pages(backend: Backend) {
    let s = Server::start_with(ServerOptions::new(backend).tail(HOOKS_TOML)).await;
    let ok = Receiver::start(0).await;
    let gone = Receiver::start_failing_with(410, usize::MAX).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    s.add_admin("root", PW).await;
    let h_ok = add_hook(&s, &alice, "package", "hooked", &ok.url, SECRETS[0]).await;
    let h_gone = add_hook(&s, &alice, "package", "hooked", &gone.url, SECRETS[1]).await;
    let h_bob = add_hook(&s, &bob, "owner", "bob", "http://bob:hunter2-pw@127.0.0.1:9/x", SECRETS[2]).await;
    publish_ok(&s, &alice, "hooked", "1.0.0").await;
    delivery_done(&s, &alice, &h_ok).await;
    delivery_done(&s, &alice, &h_gone).await;
    let mut pages = Vec::new();

    // Signed out: 401 (the page says to sign in); another user: 403, the delete form too.
    let mut anon = Browser::new();
    for path in ["/-/web/admin/hooks".to_string(), format!("/-/web/hooks/{h_ok}")] {
        let page = anon.get(&s.url(&path)).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(page.body.contains("href=\"/-/web/signin\""), "{}", page.body);
    }
    let mut b = sign_in(&s, "bob").await;
    assert_eq!(b.get(&s.url("/-/web/admin/hooks")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get(&s.url(&format!("/-/web/hooks/{h_ok}"))).await.status, StatusCode::FORBIDDEN);
    let bob_page = b.get(&s.url("/-/web/user")).await;
    let bob_csrf = bob_page.csrf();
    assert!(hook_row(&bob_page.body, &h_bob).contains("http://***@127.0.0.1:9/x"), "{}", bob_page.body);
    assert!(!bob_page.body.contains(&h_ok) && !bob_page.body.contains("hunter2"), "{}", bob_page.body);
    let refused = b.post(&s.url(&format!("/-/web/hooks/{h_ok}/delete")), &[("csrf", &bob_csrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(s.get(&format!("/-/npm/v1/hooks/hook/{h_ok}"), Some(&alice)).await.0, StatusCode::OK);
    pages.push(bob_page.body);

    // An admin sees every hook, its last delivery and its pending and failed counts.
    let mut root = sign_in(&s, "root").await;
    let admin = root.get(&s.url("/-/web/admin")).await;
    assert!(admin.body.contains("href=\"/-/web/admin/hooks\""), "{}", admin.body);
    let list = root.get(&s.url("/-/web/admin/hooks")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let row = hook_row(&list.body, &h_ok);
    for expected in ["<td>alice</td>", "hooked</a>", ok.url.as_str(), "<td class=\"response\">200</td>", "<td class=\"failed\">0</td>"] {
        assert!(row.contains(expected), "{expected} missing from {row}");
    }
    let row = hook_row(&list.body, &h_gone);
    assert!(row.contains("<td class=\"response\">410</td>") && row.contains("<td class=\"failed\">1</td>"), "{row}");
    assert!(row.contains("<td class=\"pending\">0</td>"), "{row}");
    let row = hook_row(&list.body, &h_bob);
    assert!(row.contains("<td>bob</td>") && row.contains("http://***@127.0.0.1:9/x") && !row.contains("hunter2"), "{row}");
    pages.push(list.body);

    // A hook's deliveries: event, state, attempts, response, the last error.
    let page = root.get(&s.url(&format!("/-/web/hooks/{h_ok}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let row = &page.body[page.body.find("data-delivery=").expect("a delivery row")..];
    for expected in ["<td>package:publish</td>", "<td>hooked</td>", ">delivered</span>", "<td class=\"attempts\">1</td>", ">200</td>"] {
        assert!(row.contains(expected), "{expected} missing from {row}");
    }
    pages.push(page.body);
    let page = root.get(&s.url(&format!("/-/web/hooks/{h_gone}"))).await;
    let row = &page.body[page.body.find("data-delivery=").expect("a delivery row")..];
    assert!(row.contains(">failed</span>") && row.contains(">410</td>"), "{row}");
    let error = &row[row.find("class=\"error-text\">").expect("the error text")..];
    assert!(error.contains("410"), "{error}");
    let root_csrf = page.csrf();
    pages.push(page.body);

    // Deleting needs the page's CSRF token: none, or another session's, is 403.
    let delete_gone = s.url(&format!("/-/web/hooks/{h_gone}/delete"));
    for fields in [vec![("from", "admin")], vec![("from", "admin"), ("csrf", bob_csrf.as_str())]] {
        let forged = root.post(&delete_gone, &fields).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
        assert_eq!(s.get(&format!("/-/npm/v1/hooks/hook/{h_gone}"), Some(&alice)).await.0, StatusCode::OK, "still there");
    }
    let deleted = root.post(&delete_gone, &[("from", "admin"), ("csrf", &root_csrf)]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.header("location").as_deref(), Some("/-/web/admin/hooks"));
    assert_eq!(s.get(&format!("/-/npm/v1/hooks/hook/{h_gone}"), Some(&alice)).await.0, StatusCode::NOT_FOUND);

    // The owner: their hooks on their page, their hook's page, and deleting it.
    let mut a = sign_in(&s, "alice").await;
    let user = a.get(&s.url("/-/web/user")).await;
    assert!(hook_row(&user.body, &h_ok).contains("<td class=\"response\">200</td>"), "{}", user.body);
    assert!(!user.body.contains(&h_bob) && !user.body.contains(&h_gone), "{}", user.body);
    let page = a.get(&s.url(&format!("/-/web/hooks/{h_ok}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    pages.push(page.body);
    let deleted = a.post(&s.url(&format!("/-/web/hooks/{h_ok}/delete")), &[("csrf", &user.csrf())]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.header("location").as_deref(), Some("/-/web/user"));
    assert_eq!(s.get(&format!("/-/npm/v1/hooks/hook/{h_ok}"), Some(&alice)).await.0, StatusCode::NOT_FOUND);
    let user = a.get(&s.url("/-/web/user")).await;
    assert!(!user.body.contains(&h_ok), "{}", user.body);
    pages.push(user.body);

    for page in &pages {
        for secret in SECRETS {
            assert!(!page.contains(secret), "a hook's secret in a page:\n{page}");
        }
    }
}
