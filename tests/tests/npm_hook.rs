//! `npm hook add|ls|update|rm` (npm 10: npm 11 dropped the command) against
//! Cairn's Hook Management API, and the hook it registers receiving a signed
//! delivery.
//!
//! npm 10 comes from `$CAIRN_NPM10`, or else from
//! `${CAIRN_CLIENTS_DIR:-~/.cache/cairn-test-clients}/npm10`, where
//! tests/run.sh installs it. A missing client fails the test.

use std::path::PathBuf;
use std::time::Duration;

use cairn_e2e::clients::{isolated_command, tail, Run};
use cairn_e2e::hook_receiver::Receiver;
use cairn_e2e::publish::{poll, publish_ok, PW};
use cairn_e2e::{both_backends, Backend, Server, ServerOptions};
use serde_json::{json, Value};

both_backends!(npm_hook_add_ls_update_rm);

const SECRET: &str = "npm-hook-secret-1";

fn npm10() -> PathBuf {
    let p = match std::env::var_os("CAIRN_NPM10") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).expect("HOME is not set");
            let dir =
                std::env::var_os("CAIRN_CLIENTS_DIR").map(PathBuf::from).unwrap_or_else(|| home.join(".cache").join("cairn-test-clients"));
            dir.join("npm10").join("node_modules").join(".bin").join("npm")
        }
    };
    assert!(p.exists(), "npm 10 not found at {}: run tests/run.sh (it installs it) or set CAIRN_NPM10", p.display());
    p
}

/// One user's npm 10: its own npmrc (registry + token), cache and HOME.
struct Npm<'a> {
    server: &'a Server,
    dir: tempfile::TempDir,
}

impl<'a> Npm<'a> {
    fn new(server: &'a Server, token: &str) -> Npm<'a> {
        let dir = tempfile::tempdir().unwrap();
        let npmrc = format!("registry={}/\n//{}/:_authToken={token}\n", server.base.trim_end_matches('/'), server.addr);
        std::fs::write(dir.path().join("npmrc"), npmrc).unwrap();
        std::fs::write(dir.path().join("globalnpmrc"), "").unwrap();
        Npm { server, dir }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let p = |s: &str| self.dir.path().join(s);
        let mut cmd = isolated_command(npm10(), &p("npmrc"), &p("globalnpmrc"), &p("cache"));
        cmd.args(args).current_dir(self.dir.path()).env("HOME", self.dir.path());
        let what = format!("npm {}", args.join(" "));
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output()).await.unwrap_or_else(|_| panic!("{what} timed out")).unwrap();
        Run::from_output(what, out, tail(&self.server.log(), 20))
    }
}

async fn npm_hook_add_ls_update_rm(backend: Backend) {
    let toml = "[hooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_base_ms = 50\n";
    let s = Server::start_with(ServerOptions::new(backend).tail(toml)).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    let (r, r2) = (Receiver::start(0).await, Receiver::start(0).await);
    let npm = Npm::new(&s, &alice);

    // add: a package hook, a scope hook and an owner hook (`~user`).
    let added = npm.run(&["hook", "add", "foo", &r.url, SECRET, "--json"]).await.assert_ok().json();
    assert_eq!((&added["type"], &added["name"], &added["endpoint"]), (&json!("package"), &json!("foo"), &json!(r.url)), "{added}");
    assert!(added.get("secret").is_none(), "{added}");
    let id = added["id"].as_str().unwrap().to_string();
    let scope = npm.run(&["hook", "add", "@acme", &r.url, SECRET, "--json"]).await.assert_ok().json();
    assert_eq!((&scope["type"], &scope["name"]), (&json!("scope"), &json!("@acme")), "{scope}");
    let owner = npm.run(&["hook", "add", "~bob", &r.url, SECRET, "--json"]).await.assert_ok().json();
    assert_eq!((&owner["type"], &owner["name"]), (&json!("owner"), &json!("bob")), "{owner}");
    // Refused endpoints surface as npm errors.
    let bad = npm.run(&["hook", "add", "foo", "http://10.0.0.1/x", SECRET]).await.assert_failed();
    assert!(bad.all().contains("422") || bad.all().contains("refused"), "{}", bad.describe());

    // ls: all of alice's hooks, or those of one package; bob sees none of them.
    let all = npm.run(&["hook", "ls", "--json"]).await.assert_ok().json();
    let names: Vec<&Value> = all.as_array().unwrap().iter().map(|h| &h["name"]).collect();
    assert_eq!(names, [&json!("foo"), &json!("@acme"), &json!("bob")], "{all}");
    let text = npm.run(&["hook", "ls", "foo"]).await.assert_ok().stdout;
    assert!(text.contains(&id) && text.contains(&r.url) && !text.contains("@acme"), "{text}");
    let theirs = Npm::new(&s, &bob).run(&["hook", "ls", "--json"]).await.assert_ok().json();
    assert_eq!(theirs, json!([]), "{theirs}");

    // update: a new endpoint; a publish reaches it, signed with the new secret.
    let updated = npm.run(&["hook", "update", &id, &r2.url, "new-secret-2", "--json"]).await.assert_ok().json();
    assert_eq!((&updated["id"], &updated["endpoint"]), (&json!(id), &json!(r2.url)), "{updated}");
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let got = poll(30, || async { r2.received().first().cloned() }).await.expect("a delivery to the updated endpoint");
    assert!(got.signed_with("new-secret-2"), "{got:?}");
    assert_eq!((&got.json()["event"], &got.json()["name"]), (&json!("package:publish"), &json!("foo")));

    // rm: gone from the list; bob cannot remove alice's hooks.
    let not_theirs = Npm::new(&s, &bob).run(&["hook", "rm", &id]).await.assert_failed();
    assert!(not_theirs.all().contains("403"), "{}", not_theirs.describe());
    let removed = npm.run(&["hook", "rm", &id, "--json"]).await.assert_ok().json();
    assert_eq!(removed["id"], json!(id), "{removed}");
    let left = npm.run(&["hook", "ls", "--json"]).await.assert_ok().json();
    assert_eq!(left.as_array().unwrap().len(), 2, "{left}");
}
