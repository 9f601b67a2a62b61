//! The plugin platform through the real server: each kind loaded and called,
//! policies and block rules changing what may be published, hot swap under
//! load, hostile plugins contained, bad configuration refused.

use std::time::Duration;

use cairn_e2e::publish::{publish_with, tarball};
use cairn_e2e::samples::{BLOCK_RULES, CHAT_HOOK, HOSTILE, SCOPE_POLICY};
use cairn_e2e::{assert_error, cairn_bin, plugin, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

const PW: &str = "password123";

fn plugin_toml(name: &str, kind: &str, file: &str, extra: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\nkind = {kind:?}\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n",
        plugin(file).display().to_string()
    )
}

/// Functional tests give plugins a generous budget: they run beside a busy test
/// suite on 2 cores, and time limits have tests of their own (hostile plugins).
const RELAXED: &str = "timeout_ms = 2000";

/// `scope_policy.wasm` (or another build of the sample: `file`) as `acme-scopes`.
fn scope_policy_from(file: &str, publishers: &str) -> String {
    plugin_toml("acme-scopes", "auth-policy", file, RELAXED, &format!("publishers = {{ {publishers} }}\nprivate_scopes = [\"@secret\"]"))
}

fn scope_policy(publishers: &str) -> String {
    scope_policy_from("scope_policy", publishers)
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn users(s: &Server) -> (String, String, String) {
    (s.add_admin("admin", PW).await, s.add_user("alice", PW).await, s.add_user("bob", PW).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_policy_limits_publishing_and_private_reads() {
    for (label, file) in SCOPE_POLICY {
        eprintln!("scope policy: {label} ({file}.wasm)");
        scope_policy_limits(file).await;
    }
}

async fn scope_policy_limits(file: &str) {
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&scope_policy_from(file, "\"@acme\" = [\"alice\"]"))).await;
    let (_, alice, bob) = users(&s).await;
    // The compiled plugin is cached on disk (`plugin_cache_dir`, shared by the
    // test servers) for the next start, named by the hash of the wasm file.
    let hash = hex_sha256(&std::fs::read(plugin(file)).unwrap());
    let cached = std::fs::read_dir(cairn_e2e::shared_plugin_cache())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with(&hash) && e.path().extension().is_some_and(|x| x == "cwasm"));
    assert!(cached, "{file}: the precompiled plugin is in the cache");
    assert!(!s.data_dir.path().join("plugin-cache").exists(), "plugin_cache_dir replaces <data_dir>/plugin-cache");

    // With the real npm CLI: bob may not publish in @acme, alice may.
    let npm = NpmProject::new(&s, &bob, "@acme/tool", "1.0.0");
    let out = npm.run(&["publish"]);
    assert!(!out.status.success(), "bob's publish must be refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr.lines().filter(|l| l.contains("error")).collect::<Vec<_>>().join("\n");
    assert!(stderr.contains("403") && stderr.contains("acme-scopes"), "npm output should name the plugin: {tail}");
    let npm = NpmProject::new(&s, &alice, "@acme/tool", "1.0.0");
    let out = npm.run(&["publish"]);
    assert!(out.status.success(), "alice may publish: {}", String::from_utf8_lossy(&out.stderr));
    // Other scopes are not restricted.
    let p = publish_with(&s, Some(&bob), "@other/thing", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);

    // Private scope: anonymous reads refused, authenticated reads fine.
    let p = publish_with(&s, Some(&alice), "@secret/stuff", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let (status, body) = s.get("/@secret%2fstuff", None).await;
    assert_error(status, &body, 403);
    assert!(body["reason"].as_str().unwrap().contains("acme-scopes"));
    let (status, body) = s.get("/@secret/stuff/-/stuff-1.0.0.tgz", None).await;
    assert_error(status, &body, 403);
    // A refused reader cannot tell which private packages exist.
    let (status, body) = s.get("/@secret%2fnothing-here", None).await;
    assert_error(status, &body, 403);
    let (status, _) = s.get("/@secret%2fstuff", Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get("/@acme%2ftool", None).await;
    assert_eq!(status, StatusCode::OK);

    // The built-in policy still applies first: a plugin cannot let bob publish alice's package.
    let p = publish_with(&s, Some(&bob), "@acme/tool", "1.0.1", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_rules_reject_publishes_with_their_reason() {
    for (label, file) in BLOCK_RULES {
        eprintln!("block rules: {label} ({file}.wasm)");
        block_rules_reject(file).await;
    }
}

async fn block_rules_reject(file: &str) {
    let config = "name_patterns = [\"^evil-\"]\nlicenses = [\"GPL-3.0\"]\nblock_install_scripts = true";
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&plugin_toml("rules", "block-rule", file, RELAXED, config))).await;
    let (_, alice, _) = users(&s).await;
    let before = cairn_e2e::publish::blob_files(&s);
    for (name, extra, needle) in [
        ("evil-pkg", json!({}), "evil"),
        ("gpl-pkg", json!({"license": "GPL-3.0"}), "GPL-3.0"),
        ("script-pkg", json!({"scripts": {"postinstall": "node x.js"}}), "script"),
    ] {
        let p = publish_with(&s, Some(&alice), name, "1.0.0", extra, None).await;
        assert_error(p.status, &p.body, 403);
        let reason = p.body["reason"].as_str().unwrap();
        assert!(reason.contains("rules") && reason.contains(needle), "{name}: {reason}");
        let (status, _) = s.get(&format!("/{name}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name} must not be stored");
    }
    assert_eq!(cairn_e2e::publish::blob_files(&s), before, "no blob left behind");
    let p = publish_with(&s, Some(&alice), "good-pkg", "1.0.0", json!({"license": "MIT", "scripts": {"test": "x"}}), None).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_formatter_and_upstream_adapters_are_called_through_the_server() {
    // A second Cairn is the npm-compatible upstream; it also serves a static JSON index file? No:
    // the static index is served by a tiny loopback server below.
    let upstream = Server::start(Backend::Sqlite).await;
    let up_alice = upstream.add_user("alice", PW).await;
    let tgz = tarball("left-pad", "1.3.0", json!({}));
    let p = publish_with(&upstream, Some(&up_alice), "left-pad", "1.3.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED);

    let index_tarball_url = upstream.url("/left-pad/-/left-pad-1.3.0.tgz");
    let index = json!({"packages": {"left-pad": {"versions": {"1.3.0": {"tarball": index_tarball_url, "description": "pads"}}}}});
    let index_server = StaticServer::serve(index.to_string()).await;

    let allowed = format!("allowed_hosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]", upstream.addr.port(), index_server.port);
    let tail = [
        plugin_toml("chat", "hook-formatter", "chat_hook", RELAXED, "username = \"registry-bot\""),
        plugin_toml("npm-up", "upstream-adapter", "npm_upstream", &allowed, &format!("registry = {:?}", upstream.base)),
        plugin_toml(
            "index",
            "upstream-adapter",
            "static_index",
            &allowed,
            &format!("index_url = \"http://127.0.0.1:{}/index.json\"", index_server.port),
        ),
        plugin_toml("nohosts", "upstream-adapter", "npm_upstream", "", &format!("registry = {:?}", upstream.base)),
    ]
    .join("\n");
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&tail)).await;
    let admin = s.add_admin("admin", PW).await;
    let alice = s.add_user("alice", PW).await;

    let call = |name: &'static str, body: Value| {
        let (s, admin) = (&s, admin.clone());
        async move { s.call(Method::POST, &format!("/-/admin/plugins/{name}/test"), Some(&admin), Some(&body)).await }
    };
    let (status, out) = call("chat", json!({"kind": "package:publish", "package": "foo", "version": "1.0.0", "actor": "alice"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["content_type"], json!("application/json"));
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("alice") && text.contains("foo@1.0.0"), "{text}");
    assert_eq!(body["username"], json!("registry-bot"));

    let (status, out) = call("npm-up", json!({"package": "left-pad"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["packument"]["versions"]["1.3.0"]["version"], json!("1.3.0"));
    let (status, out) = call("npm-up", json!({"package": "no-such-package"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["packument"], Value::Null);
    let (status, out) = call("npm-up", json!({"package": "left-pad", "version": "1.3.0", "url": index_tarball_url})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["integrity"], json!(cairn_e2e::publish::integrity(&tgz)));

    let (status, out) = call("index", json!({"package": "left-pad"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["packument"]["versions"]["1.3.0"]["dist"]["tarball"], json!(index_tarball_url));
    assert_eq!(out["packument"]["dist-tags"]["latest"], json!("1.3.0"));

    // fetch outside allowed_hosts is refused by the host: the plugin reports an error.
    let (status, out) = call("nohosts", json!({"package": "left-pad"})).await;
    assert_error(status, &out, 503);
    assert!(out["reason"].as_str().unwrap().contains("allowed_hosts"), "{out}");

    // Only admins may list, reload or test plugins.
    let (status, body) = s.call(Method::POST, "/-/admin/plugins/chat/test", Some(&alice), Some(&json!({}))).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/admin/plugins", None).await;
    assert_error(status, &body, 401);
    let (status, list) = s.get("/-/admin/plugins", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let entries = list["plugins"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let chat = entries.iter().find(|p| p["name"] == json!("chat")).unwrap();
    assert_eq!(chat["kind"], json!("hook-formatter"));
    assert_eq!(chat["wit_version"], json!("0.1.1"));
    assert_eq!(chat["calls"], json!(1));
    assert_eq!(chat["hash"].as_str().unwrap().len(), 64);
    assert!(chat["p50_ms"].is_number() && chat["p99_ms"].is_number(), "{chat}");
    let nohosts = entries.iter().find(|p| p["name"] == json!("nohosts")).unwrap();
    assert_eq!(nohosts["errors"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_changes_decisions_without_restart_or_failed_requests() {
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&scope_policy("\"@acme\" = [\"alice\"]"))).await;
    let (admin, alice, bob) = users(&s).await;
    let p = publish_with(&s, Some(&alice), "@acme/a", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED);
    let p = publish_with(&s, Some(&bob), "@acme/b", "1.0.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
    let pid = s.pid();

    // Concurrent readers during the swaps: every request must succeed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (client, url, stop) = (s.client.clone(), s.url("/@acme%2fa"), stop.clone());
        readers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }

    // Edit the config and reload through the admin endpoint: bob may now publish, alice not.
    s.rewrite_config(&scope_policy("\"@acme\" = [\"bob\"]"));
    let (status, out) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["loaded"][0]["name"], json!("acme-scopes"));
    let p = publish_with(&s, Some(&bob), "@acme/b", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let p = publish_with(&s, Some(&alice), "@acme/c", "1.0.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);

    // A broken reload keeps the old set.
    s.rewrite_config("[[plugins]]\nname = \"gone\"\nkind = \"auth-policy\"\npath = \"/nonexistent/plugin.wasm\"\n");
    let (status, out) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
    assert_error(status, &out, 422);
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains("gone") && reason.contains("nonexistent"), "{reason}");
    let p = publish_with(&s, Some(&alice), "@acme/c", "1.0.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);

    // SIGHUP reloads too: with no plugins configured, alice may publish again.
    s.rewrite_config("");
    std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status().unwrap();
    let mut published = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, list) = s.get("/-/admin/plugins", Some(&admin)).await;
        if list["plugins"].as_array().is_some_and(|a| a.is_empty()) {
            let p = publish_with(&s, Some(&alice), "@acme/c", "1.0.0", json!({}), None).await;
            assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
            published = true;
            break;
        }
    }
    assert!(published, "SIGHUP did not reload: {}", s.log());
    assert_eq!(s.pid(), pid, "no restart");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        let (ok, failed) = r.await.unwrap();
        assert!(failed.is_empty(), "requests failed during reloads: {failed:?}");
        total += ok;
    }
    assert!(total > 20, "the readers made only {total} requests");
}

/// A new instance's first call gets the setup budget (at least 1 s) whatever
/// `timeout_ms` says, so an engine that warms up on its first call works with
/// the defaults; later calls on it get `timeout_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_gets_a_longer_first_call() {
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&plugin_toml(
        "h-ok",
        "auth-policy",
        "hostile",
        RELAXED,
        "mode = \"ok\"",
    )))
    .await;
    let (admin, alice, _) = users(&s).await;
    let p = publish_with(&s, Some(&alice), "victim", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED);
    // Every call spins 300 ms; calls get 100 ms, a new instance's first one 1 s.
    s.rewrite_config(&plugin_toml("h-slow", "auth-policy", "hostile", "timeout_ms = 100", "mode = \"slow\"\nspin_ms = 300"));
    let (status, out) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, body) = s.get("/victim", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "the first call on a new instance has time: {body}");
    let (status, body) = s.get("/victim", Some(&alice)).await;
    assert_error(status, &body, 503);
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("h-slow") && reason.contains("timed out after 100 ms"), "{reason}");
    // The timed-out instance was dropped: the next call is a new instance's first.
    let (status, body) = s.get("/victim", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Only the endless loop meets the short time budget; the other modes get a
/// relaxed one, so that on a busy machine `alloc` still ends at the memory cap
/// rather than the clock.
fn hostile_limits(mode: &str) -> String {
    let timeout = if mode == "loop" { "timeout_ms = 100" } else { RELAXED };
    format!("{timeout}\nmax_memory_mb = {HOSTILE_MEMORY_MB}")
}

/// Below what `alloc` asks for (1 GiB), above what a JavaScript engine needs to start.
const HOSTILE_MEMORY_MB: u64 = 96;

/// What every build of the hostile sample does, and what the fault says.
const HOSTILE_MODES: &[(&str, &str)] =
    &[("loop", "timed out"), ("alloc", "memory limit"), ("trap", "hostile trap"), ("garbage", "malformed")];
/// Sandbox escapes only the Rust build tries (a JavaScript engine has no file or socket API).
const RUST_ESCAPES: &[(&str, &str)] = &[("file", "hostile: file"), ("socket", "hostile: socket")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_stopped_and_the_server_keeps_answering() {
    for (label, file) in HOSTILE {
        eprintln!("hostile: {label} ({file}.wasm)");
        let escapes = if *label == "rust" { RUST_ESCAPES } else { &[] };
        hostile_contained(label, file, &[HOSTILE_MODES, escapes].concat()).await;
    }
}

async fn hostile_contained(label: &str, file: &str, modes: &[(&str, &str)]) {
    // Each hostile plugin alone in front of reads: test each by reloading a
    // config with just that one (the reload path is itself under test elsewhere).
    // Started with it in a harmless mode, so that its compilation (long for a
    // JavaScript engine in a debug build, then cached) is part of the start.
    let s =
        Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&plugin_toml("h-ok", "auth-policy", file, RELAXED, "mode = \"ok\"")))
            .await;
    let (admin, alice, _) = users(&s).await;
    let p = publish_with(&s, Some(&alice), "victim", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED);
    for &(mode, needle) in modes {
        s.rewrite_config(&plugin_toml(&format!("h-{mode}"), "auth-policy", file, &hostile_limits(mode), &format!("mode = {mode:?}")));
        let (status, out) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{label} {mode}: {out}");
        let started = std::time::Instant::now();
        let (status, body) = s.get("/victim", Some(&alice)).await;
        assert_error(status, &body, 503);
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("h-{mode}")), "{label} {mode}: the error names the plugin: {reason}");
        assert!(reason.contains(needle), "{label} {mode}: expected {needle:?} in {reason}");
        assert!(started.elapsed() < Duration::from_secs(10), "{label} {mode} took {:?}", started.elapsed());
        // The server keeps answering other requests, and stays up for the next call.
        let (status, _) = s.get("/-/ping", None).await;
        assert_eq!(status, StatusCode::OK, "{label} {mode}");
        let (status, _) = s.get("/victim", Some(&alice)).await;
        assert_eq!(status.as_u16(), 503, "{label} {mode}: the second call fails the same way");
        assert!(s.log().contains(&format!("h-{mode}")), "{label} {mode}: the fault is logged with the plugin name");
    }
    // The file and socket attempts failed inside the sandbox (the guest printed its error).
    let log = s.log();
    assert!(!log.contains("root:x:0:0"), "the guest read /etc/passwd");

    // on_error = "allow" lets requests through a faulty plugin.
    s.rewrite_config(&plugin_toml("h-trap", "auth-policy", file, "on_error = \"allow\"", "mode = \"trap\""));
    let (status, _) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get("/victim", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = s.get("/-/admin/plugins", Some(&admin)).await;
    assert!(list["plugins"][0]["errors"].as_u64().unwrap() >= 1);
    // A plugin that behaves is called normally: deny with its reason, then allow.
    s.rewrite_config(&plugin_toml("h-deny", "auth-policy", file, RELAXED, "mode = \"deny\""));
    let (status, _) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get("/victim", Some(&alice)).await;
    assert_error(status, &body, 403);
    assert!(body["reason"].as_str().unwrap().contains("hostile says no"), "{label}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugin_configuration_is_refused_at_start() {
    let mut cases = vec![
        (
            "[[plugins]]\nname = \"missing\"\nkind = \"auth-policy\"\npath = \"/nonexistent/x.wasm\"\n".to_string(),
            vec!["missing", "cannot read"],
        ),
        (
            format!("[[plugins]]\nname = \"notwasm\"\nkind = \"auth-policy\"\npath = {:?}\n", cairn_bin().display().to_string()),
            vec!["notwasm", "not a WebAssembly"],
        ),
        (plugin_toml("typo", "auth-policy", "scope_policy", "timeout = 5", ""), vec!["timeout"]),
    ];
    // Each build of the samples refuses a bad configuration the same way,
    // naming the offending key or value.
    for (_, file) in SCOPE_POLICY {
        cases.push((plugin_toml("wrongkind", "block-rule", file, "", ""), vec!["wrongkind", "auth-policy"]));
        cases.push((plugin_toml("unknownkey", "auth-policy", file, "", "publisher = {}"), vec!["unknownkey", "unknown field `publisher`"]));
        cases.push((plugin_toml("noat", "auth-policy", file, "", "private_scopes = [\"acme\"]"), vec!["noat", "`@acme`"]));
    }
    for (_, file) in HOSTILE {
        cases.push((plugin_toml("initfail", "auth-policy", file, "", "mode = \"init-fail\""), vec!["initfail", "init refused by config"]));
    }
    for (_, file) in BLOCK_RULES {
        cases.push((plugin_toml("badcfg", "block-rule", file, "", "name_patterns = [\"(unclosed\"]"), vec!["badcfg", "(unclosed"]));
        cases.push((plugin_toml("badtype", "block-rule", file, "", "licenses = \"MIT\""), vec!["badtype", "`licenses`"]));
    }
    for (_, file) in CHAT_HOOK {
        cases.push((
            plugin_toml("unknownkey", "hook-formatter", file, "", "user_name = \"x\""),
            vec!["unknownkey", "unknown field `user_name`"],
        ));
    }
    for (tail, needles) in cases {
        let result = Server::try_start_with(ServerOptions::new(Backend::Sqlite).tail(&tail)).await;
        let Err(log) = result else { panic!("started with a bad plugin config:\n{tail}") };
        for n in needles {
            assert!(log.contains(n), "expected {n:?} in the start error:\n{log}");
        }
    }
}

#[test]
fn plugin_check_describes_components() {
    let out = std::process::Command::new(cairn_bin()).args(["plugin", "check"]).arg(plugin("block_rules")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kind:        block-rule") && stdout.contains("cairn:plugin@0.1.1"), "{stdout}");
    let samples = [(SCOPE_POLICY, "auth-policy"), (BLOCK_RULES, "block-rule"), (CHAT_HOOK, "hook-formatter"), (HOSTILE, "auth-policy")];
    let every_build = samples.iter().flat_map(|(builds, kind)| builds.iter().map(move |(_, file)| (*file, *kind)));
    for (file, kind) in [
        ("static_index", "upstream-adapter"),
        ("npm_upstream", "upstream-adapter"),
        ("cloudevents_hook", "hook-formatter"),
        ("hostile_hook", "hook-formatter"),
        ("node_dist", "upstream-adapter"),
    ]
    .into_iter()
    .chain(every_build)
    {
        let out = std::process::Command::new(cairn_bin()).args(["plugin", "check"]).arg(plugin(file)).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(kind), "{file}");
    }
    let out = std::process::Command::new(cairn_bin()).args(["plugin", "check"]).arg(cairn_bin()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly"));
    // A build against the previous contract version is usable, and says so.
    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/chat_hook-0.1.0.wasm");
    let out = std::process::Command::new(cairn_bin()).args(["plugin", "check"]).arg(&old).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hook-formatter") && stdout.contains("cairn:plugin@0.1.0 (this Cairn: 0.1.1)"), "{stdout}");
}

/// A throwaway npm project with its own config, publishing to `server` as the token's user.
struct NpmProject {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl NpmProject {
    fn new(s: &Server, token: &str, name: &str, version: &str) -> NpmProject {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let host = s.base.trim_start_matches("http://");
        std::fs::write(home.path().join("npmrc"), format!("registry={}/\n//{host}/:_authToken={token}\n", s.base)).unwrap();
        std::fs::write(dir.path().join("package.json"), json!({"name": name, "version": version, "description": "x"}).to_string()).unwrap();
        NpmProject { dir, home }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("npm")
            .args(args)
            .current_dir(self.dir.path())
            .env("npm_config_userconfig", self.home.path().join("npmrc"))
            .env("npm_config_cache", self.home.path().join("cache"))
            .env("npm_config_update_notifier", "false")
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .output()
            .expect("run npm")
    }
}

/// Serves one JSON document at any path, on loopback.
struct StaticServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl StaticServer {
    async fn serve(body: String) -> StaticServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let body = body.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 8192];
                    let _ = sock.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        StaticServer { port, task }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A registry whose `type` names an upstream-adapter plugin syncs through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_through_an_upstream_adapter_plugin() {
    sync_through(&plugin("npm_upstream")).await
}

/// The same with `npm_upstream.wasm` as built against `cairn:plugin@0.1.0`
/// (a committed build): older adapters still load, link and sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_through_an_adapter_built_against_0_1_0() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/npm_upstream-0.1.0.wasm");
    sync_through(&path).await
}

async fn sync_through(adapter: &std::path::Path) {
    let upstream = Server::start(Backend::Sqlite).await;
    let alice = upstream.add_user("alice", PW).await;
    for v in ["1.0.0", "1.1.0"] {
        let p = publish_with(&upstream, Some(&alice), "via-plugin", v, json!({}), None).await;
        assert_eq!(p.status, StatusCode::CREATED);
    }
    let tail = format!(
        "[[plugins]]\nname = \"npm-up\"\nkind = \"upstream-adapter\"\npath = {:?}\nallowed_hosts = [\"127.0.0.1:{}\"]\n{RELAXED}\n\
         [plugins.config]\nregistry = {:?}\n\n[[registries]]\nname = \"through-plugin\"\nhost = {:?}\ntype = \"npm-up\"\ndefault = true\n",
        adapter.display().to_string(),
        upstream.addr.port(),
        upstream.base,
        upstream.base
    );
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&tail)).await;
    let bob = s.add_user("bob", PW).await;
    let (status, task) = s.call(Method::PUT, "/-/package/via-plugin/syncs", Some(&bob), Some(&json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let mut state = String::new();
    for _ in 0..600 {
        let (_, t) = s.get(&format!("/-/package/via-plugin/syncs/{id}"), None).await;
        state = t["state"].as_str().unwrap_or("").to_string();
        if state == "success" || state == "error" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, log) = s.get(&format!("/-/package/via-plugin/syncs/{id}/log"), None).await;
    assert_eq!(state, "success", "{log}");
    assert!(log.as_str().unwrap().contains("npm-up"), "the log names the adapter: {log}");
    let (status, doc) = s.get("/via-plugin", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["versions"].as_object().unwrap().len(), 2);
    assert!(doc["versions"]["1.1.0"]["dist"]["tarball"].as_str().unwrap().starts_with(&s.base));
    let (status, _) = s.get("/via-plugin/-/via-plugin-1.1.0.tgz", None).await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------- read authorization everywhere

/// Every read route an anonymous client can call about `name` (with a version
/// and its tarball), as (label, path).
fn read_routes(name: &str) -> Vec<(String, String)> {
    let enc = cairn_e2e::publish::enc(name);
    let file = cairn_e2e::publish::tarball_path(name, "1.0.0");
    [
        ("packument", format!("/{enc}")),
        ("version", format!("/{enc}/1.0.0")),
        ("tag", format!("/{enc}/latest")),
        ("tarball", file),
        ("dist-tags", format!("/-/package/{enc}/dist-tags")),
        ("collaborators", format!("/-/package/{enc}/collaborators")),
        ("blocks", format!("/-/package/{enc}/blocks")),
        ("downloads point", format!("/downloads/point/last-week/{name}")),
        ("downloads range", format!("/downloads/range/last-week/{name}")),
    ]
    .into_iter()
    .map(|(l, p)| (l.to_string(), p))
    .collect()
}

/// The names listed by search, `_changes` and `starredByUser` for a caller.
async fn listed(s: &Server, token: Option<&str>, text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let names = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap_or_else(|| panic!("{list} in {v}"))
            .iter()
            .filter_map(|r| r.pointer(field)?.as_str().map(str::to_string))
            .collect()
    };
    let (st, search) = s.get(&format!("/-/v1/search?text={text}&size=250"), token).await;
    assert_eq!(st, StatusCode::OK, "{search}");
    let (st, changes) = s.get("/_changes", token).await;
    assert_eq!(st, StatusCode::OK, "{changes}");
    let (st, stars) = s.get("/-/_view/starredByUser?key=%22alice%22", token).await;
    assert_eq!(st, StatusCode::OK, "{stars}");
    (names(&search, "objects", "/package/name"), names(&changes, "results", "/id"), names(&stars, "rows", "/value"))
}

/// With `scope_policy.wasm` hiding `@secret` from anonymous callers, they
/// learn nothing about `@secret/*` from any route: the same status and body
/// (but for the name) for a package that exists and one that does not, and
/// no listing names it. Authenticated callers see everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_scope_is_hidden_from_every_read_route() {
    for (label, file) in SCOPE_POLICY {
        eprintln!("scope policy: {label} ({file}.wasm)");
        private_scope_is_hidden(file).await;
    }
}

async fn private_scope_is_hidden(file: &str) {
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).tail(&scope_policy_from(file, ""))).await;
    let (_, alice, bob) = users(&s).await;
    for name in ["@secret/stuff", "@open/stuff"] {
        let p = publish_with(&s, Some(&alice), name, "1.0.0", json!({"keywords": ["stuff"]}), None).await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
        let doc = cairn_e2e::publish::write_doc(&s, &alice, name).await;
        let star = json!({"_id": doc["_id"], "_rev": doc["_rev"], "users": {"alice": true}});
        let (st, body) = s.call(Method::PUT, &format!("/{}", cairn_e2e::publish::enc(name)), Some(&alice), Some(&star)).await;
        assert!(st.is_success(), "star {name}: {st} {body}");
    }
    // A download to count.
    let (st, _) = s.get("/@secret/stuff/-/stuff-1.0.0.tgz", Some(&bob)).await;
    assert_eq!(st, StatusCode::OK);

    for ((label, existing), (_, missing)) in read_routes("@secret/stuff").into_iter().zip(read_routes("@secret/nothing")) {
        let (st_e, body_e) = s.get(&existing, None).await;
        let (st_m, body_m) = s.get(&missing, None).await;
        assert_error(st_e, &body_e, 403);
        assert_eq!(
            (st_e, body_e.to_string().replace("stuff", "X")),
            (st_m, body_m.to_string().replace("nothing", "X")),
            "{label}: existing vs missing"
        );
        let (st, body) = s.get(&existing, Some(&bob)).await;
        assert_eq!(st, StatusCode::OK, "{label} as bob: {body}");
        let (st, body) = s.get(&existing.replace("secret", "open"), None).await;
        assert_eq!(st, StatusCode::OK, "{label} of an open scope, anonymously: {body}");
    }
    // Sync tasks and their logs: refused before the task is looked up.
    for tail in ["syncs/00000000-0000-0000-0000-000000000000", "syncs/00000000-0000-0000-0000-000000000000/log"] {
        let (st_e, body_e) = s.get(&format!("/-/package/@secret%2fstuff/{tail}"), None).await;
        let (st_m, body_m) = s.get(&format!("/-/package/@secret%2fnothing/{tail}"), None).await;
        assert_error(st_e, &body_e, 403);
        assert_eq!((st_e, body_e.to_string().replace("stuff", "X")), (st_m, body_m.to_string().replace("nothing", "X")), "{tail}");
    }

    let (search, changes, stars) = listed(&s, None, "stuff").await;
    for (what, names) in [("search", &search), ("_changes", &changes), ("starredByUser", &stars)] {
        assert!(names.contains(&"@open/stuff".to_string()), "{what} lists open packages anonymously: {names:?}");
        assert!(!names.iter().any(|n| n.starts_with("@secret/")), "{what} names a private package to an anonymous caller: {names:?}");
    }
    let (st, body) = s.get("/-/v1/search?text=secret", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!((body["objects"].clone(), body["total"].clone()), (json!([]), json!(0)), "search for the scope itself: {body}");
    let (search, changes, stars) = listed(&s, Some(&bob), "stuff").await;
    for (what, names) in [("search", &search), ("_changes", &changes), ("starredByUser", &stars)] {
        assert!(names.contains(&"@secret/stuff".to_string()), "{what} lists private packages to bob: {names:?}");
    }
}

/// In proxy mode a refused read never reaches the upstream, and the
/// upstream's search results are filtered by the same policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_proxy_reads_never_reach_the_upstream() {
    let fake = cairn_e2e::upstream::FakeUpstream::start().await;
    for name in ["@secret/remote", "@open/remote"] {
        fake.add_version(name, "1.0.0", json!({}));
    }
    let top = "sync_mode = \"proxy\"\nupstream_timeout_secs = 5\n";
    let tail = format!("{}\n{}", fake.registry_toml("up", ""), scope_policy(""));
    let s = Server::start_with(ServerOptions::new(Backend::Sqlite).toml(top).tail(&tail)).await;
    let (_, _, bob) = users(&s).await;
    for (label, path) in read_routes("@secret/remote") {
        let (st, body) = s.get(&path, None).await;
        assert_error(st, &body, 403);
        let asked: Vec<String> = fake.seen().iter().map(|x| x.path.clone()).filter(|p| p.contains("secret")).collect();
        assert!(asked.is_empty(), "{label}: the upstream was asked {asked:?}");
    }
    let (st, body) = s.get("/-/v1/search?text=remote", None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["objects"].as_array().unwrap().iter().filter_map(|o| o["package"]["name"].as_str()).collect();
    assert_eq!(names, vec!["@open/remote"], "anonymous search through the proxy: {body}");
    let (st, body) = s.get("/-/v1/search?text=remote", Some(&bob)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["objects"].as_array().unwrap().len(), 2, "bob's search through the proxy: {body}");
    let (st, body) = s.get("/@secret%2fremote", Some(&bob)).await;
    assert_eq!(st, StatusCode::OK, "bob reads through the proxy: {body}");
}
