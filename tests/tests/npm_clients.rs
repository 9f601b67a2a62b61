//! Real package managers against Cairn's registry protocol.
//!
//! With the npm CLI: `publish` (unscoped and scoped), `view`, `dist-tag`,
//! `deprecate`, `owner`, `unpublish`, `search`, `star`/`stars`/`unstar`; with
//! yarn berry: `yarn npm publish`, `yarn npm info`, `yarn npm tag`.
//! With npm, pnpm and yarn berry: installing a three-level dependency tree
//! into a clean project, checking what landed in node_modules and that every
//! lockfile integrity is the sha512 of the tarball bytes Cairn serves, then
//! reinstalling from the lockfile alone (`npm ci`, `pnpm install
//! --frozen-lockfile`, `yarn install --immutable`) on another clean machine.
//!
//! pnpm and yarn come from `$CAIRN_PNPM` / `$CAIRN_YARN`, or else from the
//! cache directory tests/run.sh installs them into
//! (`${CAIRN_CLIENTS_DIR:-~/.cache/cairn-test-clients}`). A missing client
//! fails the test; nothing is skipped.
//!
//! Every client run gets a throwaway HOME, npmrc, global npmrc, cache and
//! store, so nothing from the machine's own configuration (for instance
//! `omit-lockfile-registry-resolved` in ~/.npmrc) leaks in, and is bounded by
//! a timeout. Failure messages carry the command's output and the tail of the
//! server's request log.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use cairn_e2e::clients::{isolated_command, tail, Run};
use cairn_e2e::{both_backends, Backend, Server, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

both_backends!(publish_and_view, install_tree_npm);

/// Bound on one npm command that does not install.
const CMD_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on one install (npm install, pnpm add, yarn add).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(240);

const PASSWORD: &str = "correct-horse-1";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// Where tests/run.sh installs pnpm and yarn when the env vars are not set.
fn clients_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_CLIENTS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).expect("HOME is not set");
    home.join(".cache").join("cairn-test-clients")
}

/// The client binary named by `var`, or `<clients dir>/node_modules/.bin/<bin>`; fails if neither exists.
fn client_bin(var: &str, bin: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "{var}={} does not exist", p.display());
        return p;
    }
    let dir = clients_dir();
    let p = dir.join("node_modules").join(".bin").join(bin);
    assert!(
        p.exists(),
        "{bin} not found: {var} is not set and {} does not exist. Run tests/run.sh (it installs the clients), \
         or install them yourself with `npm install --prefix {} pnpm@9 @yarnpkg/cli-dist@4`",
        p.display(),
        dir.display()
    );
    p
}

fn pnpm_bin() -> PathBuf {
    client_bin("CAIRN_PNPM", "pnpm")
}

fn yarn_bin() -> PathBuf {
    client_bin("CAIRN_YARN", "yarn")
}

/// `sha512-<base64>`, the npm integrity string of `bytes`.
fn sri(bytes: &[u8]) -> String {
    format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes)))
}

/// A short random suffix so that package names differ between tests.
fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The registry path of a package document: `/name` or `/@scope%2fname`.
fn doc_path(name: &str) -> String {
    format!("/{}", name.replace('/', "%2f"))
}

/// One user's machine: its own HOME, npmrc (registry + that user's token),
/// caches and stores, all in a temp dir.
struct Machine<'a> {
    server: &'a Server,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/`
    registry: String,
    token: String,
}

impl<'a> Machine<'a> {
    fn new(server: &'a Server, token: &str) -> Machine<'a> {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["home", "work", "pkgs"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let registry = format!("{}/", server.base);
        std::fs::write(dir.path().join("npmrc"), format!("registry={registry}\n//{}/:_authToken={token}\n", server.addr)).unwrap();
        std::fs::write(dir.path().join("globalnpmrc"), "").unwrap();
        Machine { server, dir, registry, token: token.to_string() }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A command with the isolated environment, run in `cwd`.
    fn command(&self, program: &Path, cwd: &Path) -> tokio::process::Command {
        let mut cmd = isolated_command(program, &self.path("npmrc"), &self.path("globalnpmrc"), &self.path("npm-cache"));
        let home = self.path("home");
        cmd.current_dir(cwd)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("YARN_ENABLE_IMMUTABLE_INSTALLS", "false")
            .env("YARN_ENABLE_TELEMETRY", "0")
            .env("YARN_ENABLE_GLOBAL_CACHE", "false")
            .env("YARN_ENABLE_PROGRESS_BARS", "false")
            .env("YARN_ENABLE_COLORS", "false")
            .env("YARN_ENABLE_HYPERLINKS", "false")
            .env("COREPACK_ENABLE_STRICT", "0");
        cmd
    }

    async fn run_cmd(&self, what: String, mut cmd: tokio::process::Command, limit: Duration) -> Run {
        let out: Output = match tokio::time::timeout(limit, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("could not run `{what}`: {e}"),
            // Dropping the future kills the child (kill_on_drop).
            Err(_) => panic!("`{what}` did not finish within {limit:?}\n--- server log (tail) ---\n{}", tail(&self.server.log(), 40)),
        };
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
            server_log: tail(&self.server.log(), 40),
        }
    }

    /// `npm ARGS` in `cwd` (default: the machine's work dir).
    async fn npm_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command(Path::new("npm"), cwd);
        cmd.args(args);
        let limit = if args.first() == Some(&"install") { INSTALL_TIMEOUT } else { CMD_TIMEOUT };
        self.run_cmd(format!("npm {}", args.join(" ")), cmd, limit).await
    }

    async fn npm(&self, args: &[&str]) -> Run {
        self.npm_in(&self.path("work"), args).await
    }

    /// `npm ARGS`, asserting exit 0.
    async fn npm_ok(&self, args: &[&str]) -> Run {
        self.npm(args).await.assert_ok()
    }

    /// `npm ARGS`, asserting failure.
    async fn npm_fails(&self, args: &[&str]) -> Run {
        self.npm(args).await.assert_failed()
    }

    /// Trimmed stdout of `npm view ARGS`.
    async fn view(&self, args: &[&str]) -> String {
        let mut all = vec!["view"];
        all.extend_from_slice(args);
        self.npm_ok(&all).await.stdout.trim().to_string()
    }

    /// Writes a package directory for `manifest` (package.json, index.js, README.md)
    /// and returns its path.
    fn write_package(&self, manifest: &Value, index_js: &str) -> PathBuf {
        let name = manifest["name"].as_str().unwrap();
        let version = manifest["version"].as_str().unwrap();
        let dir = self.path("pkgs").join(format!("{}-{version}", name.replace('/', "+")));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("package.json"), serde_json::to_string_pretty(manifest).unwrap()).unwrap();
        std::fs::write(dir.join("index.js"), index_js).unwrap();
        std::fs::write(dir.join("README.md"), format!("# {name}\n\nVersion {version}, published by a Cairn test.\n")).unwrap();
        dir
    }

    /// `npm publish` of `manifest` (plus an index.js); returns the run.
    async fn try_publish(&self, manifest: &Value, index_js: &str) -> Run {
        let dir = self.write_package(manifest, index_js);
        self.npm_in(&dir, &["publish", "--json"]).await
    }

    /// `npm publish` of `manifest`; asserts success and returns the integrity npm computed.
    async fn publish(&self, manifest: &Value, index_js: &str) -> String {
        let run = self.try_publish(manifest, index_js).await;
        assert!(run.success(), "{}", run.describe());
        // npm reads the document first; the 404 of a new package must not show as a notice.
        assert!(!run.stderr.contains("not found"), "{}", run.describe());
        let v = run.json();
        // npm prints the pack result, keyed by package name in some versions.
        let integrity = v["integrity"].as_str().or_else(|| v[manifest["name"].as_str().unwrap()]["integrity"].as_str());
        integrity.unwrap_or_else(|| panic!("no integrity in npm publish --json output: {}", run.describe())).to_string()
    }

    /// Publishes a minimal package NAME@VERSION.
    async fn publish_simple(&self, name: &str, version: &str) -> String {
        self.publish(&manifest(name, version, json!({})), "module.exports = 1;\n").await
    }

    /// The full packument, fetched over HTTP with this machine's token.
    async fn packument(&self, name: &str) -> Value {
        let (status, body) = self.server.get(&doc_path(name), Some(&self.token)).await;
        assert_eq!(status, StatusCode::OK, "GET {}: {body}", doc_path(name));
        body
    }

    /// The bytes served at `url` (asserting 200).
    async fn fetch(&self, url: &str) -> Vec<u8> {
        let resp = self.server.client.get(url).bearer_auth(&self.token).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body").to_vec();
        assert_eq!(status, StatusCode::OK, "GET {url}: {}", String::from_utf8_lossy(&bytes));
        bytes
    }

    /// `(dist.tarball, sha512 of the bytes served there)` for NAME@VERSION; also
    /// checks the packument's own `dist.integrity` against those bytes.
    async fn served_tarball(&self, name: &str, version: &str) -> (String, String) {
        let doc = self.packument(name).await;
        let dist = &doc["versions"][version]["dist"];
        let url = dist["tarball"].as_str().unwrap_or_else(|| panic!("no dist.tarball for {name}@{version} in {doc}")).to_string();
        let bytes = self.fetch(&url).await;
        let integrity = sri(&bytes);
        assert_eq!(
            dist["integrity"].as_str(),
            Some(integrity.as_str()),
            "packument dist.integrity of {name}@{version} vs the served bytes at {url}"
        );
        let shasum: String = sha1::Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            dist["shasum"].as_str(),
            Some(shasum.as_str()),
            "packument dist.shasum of {name}@{version} vs the served bytes at {url}"
        );
        (url, integrity)
    }
}

fn manifest(name: &str, version: &str, dependencies: Value) -> Value {
    json!({
        "name": name,
        "version": version,
        "description": format!("{name} for the Cairn client tests"),
        "main": "index.js",
        "license": "MIT",
        "dependencies": dependencies,
    })
}

/// `npm view ... versions --json` prints a string for one version and an array for several.
fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        other => panic!("not a version list: {other}"),
    }
}

// ---------------------------------------------------------------------------
// npm CLI commands
// ---------------------------------------------------------------------------

/// `npm publish` of an unscoped and a scoped package (no --access), `npm view`,
/// and the integrity of what is served; republishing a version is refused.
async fn publish_and_view(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    for name in [format!("pub-{sfx}"), format!("@sc{sfx}/pub-{sfx}")] {
        let published = m.publish_simple(&name, "1.0.0").await;

        let run = m.npm_ok(&["view", &name, "--json"]).await;
        let v = run.json();
        assert_eq!(v["name"], json!(name), "{}", run.describe());
        assert_eq!(v["version"], json!("1.0.0"), "{}", run.describe());
        assert_eq!(v["dist-tags"], json!({"latest": "1.0.0"}), "{}", run.describe());
        assert_eq!(as_list(&v["versions"]), vec!["1.0.0"], "{}", run.describe());
        assert_eq!(v["description"], json!(format!("{name} for the Cairn client tests")), "{}", run.describe());

        let viewed = m.view(&[&format!("{name}@1.0.0"), "dist.integrity"]).await;
        assert_eq!(viewed, published, "npm view dist.integrity vs what npm publish computed");
        let (url, served) = m.served_tarball(&name, "1.0.0").await;
        assert_eq!(served, published, "sha512 of the bytes served at {url} vs what npm publish computed");
        assert!(url.starts_with(&m.registry), "tarball URL {url} is not under {}", m.registry);

        // A second version moves latest; the first one stays.
        m.publish_simple(&name, "1.0.1").await;
        assert_eq!(m.view(&[&name, "version"]).await, "1.0.1");
        assert_eq!(as_list(&m.npm_ok(&["view", &name, "versions", "--json"]).await.json()), vec!["1.0.0", "1.0.1"]);

        // The human view: maintainers, publisher and time, and the latest version's readme.
        let run = m.npm_ok(&["view", &name]).await;
        assert!(run.stdout.contains("- alice <alice@example.com>"), "maintainers: {}", run.describe());
        assert!(
            run.stdout.contains("published just now by alice <alice@example.com>")
                || run.stdout.contains("ago by alice <alice@example.com>"),
            "{}",
            run.describe()
        );
        assert!(run.stdout.contains(&format!("{name}@1.0.1 | MIT | deps: none | versions: 2")), "{}", run.describe());
        let readme = m.view(&[&name, "readme"]).await;
        assert!(readme.contains("Version 1.0.1, published by a Cairn test."), "npm view readme: {readme:?}");

        // Publishing over an existing version is refused, and changes nothing.
        let run = m.try_publish(&manifest(&name, "1.0.0", json!({"left-pad": "1.0.0"})), "changed\n").await;
        assert!(!run.success(), "republishing {name}@1.0.0 succeeded: {}", run.describe());
        assert_eq!(m.view(&[&format!("{name}@1.0.0"), "dist.integrity"]).await, published);
    }
}

/// `npm dist-tag add/ls/rm`, and installs following the tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dist_tags() {
    let s = Server::start(Backend::Sqlite).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    for name in [format!("tags-{sfx}"), format!("@sc{sfx}/tags-{sfx}")] {
        m.publish_simple(&name, "1.0.0").await;
        m.publish_simple(&name, "1.1.0").await;

        let run = m.npm_ok(&["dist-tag", "add", &format!("{name}@1.1.0"), "beta"]).await;
        assert!(run.stdout.contains(&format!("+beta: {name}@1.1.0")), "{}", run.describe());
        let run = m.npm_ok(&["dist-tag", "ls", &name]).await;
        let lines: Vec<&str> = run.stdout.lines().map(str::trim).collect();
        assert!(lines.contains(&"beta: 1.1.0") && lines.contains(&"latest: 1.1.0"), "{}", run.describe());
        assert_eq!(m.npm_ok(&["view", &name, "dist-tags", "--json"]).await.json(), json!({"latest": "1.1.0", "beta": "1.1.0"}));

        // Moving latest back: `npm view` and `npm install` follow it; the tag installs its version.
        m.npm_ok(&["dist-tag", "add", &format!("{name}@1.0.0"), "latest"]).await;
        assert_eq!(m.view(&[&name, "version"]).await, "1.0.0");
        // (From a machine with an empty cache: the publisher's cache already holds the tarballs.)
        let reader = Machine::new(&s, &token);
        let project = new_project(&reader, "tags");
        let run = reader.npm_in(&project, &["install", &name]).await;
        assert!(run.success(), "{}", run.describe());
        assert_eq!(installed_version(&project, &name), "1.0.0", "npm install {name} with latest=1.0.0");
        let run = reader.npm_in(&project, &["install", &format!("{name}@beta")]).await;
        assert!(run.success(), "{}", run.describe());
        assert_eq!(installed_version(&project, &name), "1.1.0", "npm install {name}@beta");

        let run = m.npm_ok(&["dist-tag", "rm", &name, "beta"]).await;
        assert!(run.stdout.contains(&format!("-beta: {name}@1.1.0")), "{}", run.describe());
        let run = m.npm_ok(&["dist-tag", "ls", &name]).await;
        assert!(!run.stdout.contains("beta"), "{}", run.describe());
        assert_eq!(m.npm_ok(&["view", &name, "dist-tags", "--json"]).await.json(), json!({"latest": "1.0.0"}));
    }
}

/// `npm deprecate NAME@1.0.0 msg`, then undeprecating with "".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecate() {
    let s = Server::start(Backend::Sqlite).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    for name in [format!("dep-{sfx}"), format!("@sc{sfx}/dep-{sfx}")] {
        m.publish_simple(&name, "1.0.0").await;
        m.publish_simple(&name, "1.1.0").await;
        let v1 = format!("{name}@1.0.0");
        let v11 = format!("{name}@1.1.0");

        m.npm_ok(&["deprecate", &v1, "use 1.1.0 instead"]).await;
        assert_eq!(m.view(&[&v1, "deprecated"]).await, "use 1.1.0 instead");
        assert_eq!(m.view(&[&v11, "deprecated"]).await, "", "only 1.0.0 was deprecated");

        // Installing the deprecated version warns about it.
        let reader = Machine::new(&s, &token);
        let project = new_project(&reader, "dep");
        let run = reader.npm_in(&project, &["install", &v1]).await;
        assert!(run.success(), "{}", run.describe());
        assert!(run.all().contains("use 1.1.0 instead"), "no deprecation warning: {}", run.describe());

        m.npm_ok(&["deprecate", &v1, ""]).await;
        assert_eq!(m.view(&[&v1, "deprecated"]).await, "", "undeprecated with \"\"");
        // The versions themselves are unchanged.
        assert_eq!(as_list(&m.npm_ok(&["view", &name, "versions", "--json"]).await.json()), vec!["1.0.0", "1.1.0"]);
        assert_eq!(m.view(&[&name, "version"]).await, "1.1.0");
    }
}

/// `npm owner add/ls/rm`; a new owner can publish with their own token, and cannot once removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners() {
    let s = Server::start(Backend::Sqlite).await;
    let alice = Machine::new(&s, &s.add_user("alice", PASSWORD).await);
    let bob = Machine::new(&s, &s.add_user("bob", PASSWORD).await);
    let sfx = suffix();
    for name in [format!("own-{sfx}"), format!("@sc{sfx}/own-{sfx}")] {
        alice.publish_simple(&name, "1.0.0").await;
        let owner_names =
            |run: &Run| -> Vec<String> { run.stdout.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect() };
        let run = alice.npm_ok(&["owner", "ls", &name]).await;
        assert_eq!(owner_names(&run), vec!["alice"], "{}", run.describe());
        assert!(run.stdout.contains("alice <alice@example.com>"), "{}", run.describe());

        // Not an owner yet: bob cannot publish.
        let run = bob.try_publish(&manifest(&name, "1.0.1", json!({})), "").await;
        assert!(!run.success(), "bob published before being an owner: {}", run.describe());

        let run = alice.npm_ok(&["owner", "add", "bob", &name]).await;
        assert!(run.stdout.contains(&format!("+ bob ({name})")), "{}", run.describe());
        let run = alice.npm_ok(&["owner", "ls", &name]).await;
        let mut names = owner_names(&run);
        names.sort();
        assert_eq!(names, vec!["alice", "bob"], "{}", run.describe());

        bob.publish_simple(&name, "1.0.1").await;
        assert_eq!(alice.view(&[&name, "version"]).await, "1.0.1");

        let run = alice.npm_ok(&["owner", "rm", "bob", &name]).await;
        assert!(run.stdout.contains(&format!("- bob ({name})")), "{}", run.describe());
        let run = alice.npm_ok(&["owner", "ls", &name]).await;
        assert_eq!(owner_names(&run), vec!["alice"], "{}", run.describe());
        let run = bob.try_publish(&manifest(&name, "1.0.2", json!({})), "").await;
        assert!(!run.success(), "bob published after being removed: {}", run.describe());
        assert_eq!(as_list(&alice.npm_ok(&["view", &name, "versions", "--json"]).await.json()), vec!["1.0.0", "1.0.1"]);
    }
    // Adding a user who does not exist fails.
    let name = format!("own-{sfx}");
    let run = alice.npm_fails(&["owner", "add", "nobody-here", &name]).await;
    assert!(run.all().contains("nobody-here"), "{}", run.describe());
}

/// `npm unpublish NAME@VERSION`, then the whole package with --force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish() {
    let s = Server::start(Backend::Sqlite).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    for name in [format!("unp-{sfx}"), format!("@sc{sfx}/unp-{sfx}")] {
        m.publish_simple(&name, "1.0.0").await;
        m.publish_simple(&name, "1.0.1").await;
        let (url_101, _) = m.served_tarball(&name, "1.0.1").await;
        let (url_100, _) = m.served_tarball(&name, "1.0.0").await;

        m.npm_ok(&["unpublish", &format!("{name}@1.0.1")]).await;
        assert_eq!(as_list(&m.npm_ok(&["view", &name, "versions", "--json"]).await.json()), vec!["1.0.0"]);
        assert_eq!(m.view(&[&name, "version"]).await, "1.0.0", "latest falls back to the remaining version");
        let resp = s.client.get(&url_101).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "tarball of the unpublished version at {url_101}");
        m.fetch(&url_100).await;

        let run = m.npm_ok(&["unpublish", &name, "--force"]).await;
        assert!(run.stdout.contains(&format!("- {name}")), "{}", run.describe());
        let run = m.npm_fails(&["view", &name]).await;
        assert!(run.all().contains("E404"), "{}", run.describe());
        let (status, body) = s.get(&doc_path(&name), Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let resp = s.client.get(&url_100).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "tarball after unpublishing the package at {url_100}");
    }
}

/// `npm search KEYWORD` finds the package with its version and a date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search() {
    let s = Server::start(Backend::Sqlite).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    let keyword = format!("cairnkw{sfx}");
    let name = format!("srch-{sfx}");
    let scoped = format!("@sc{sfx}/srch-{sfx}");
    let other = format!("other-{sfx}");
    for n in [&name, &scoped] {
        let mut man = manifest(n, "1.0.0", json!({}));
        man["keywords"] = json!([keyword, "cairn-test"]);
        m.publish(&man, "").await;
    }
    m.publish_simple(&other, "1.0.0").await;
    // A second version: search reports the latest.
    let mut man = manifest(&name, "1.2.0", json!({}));
    man["keywords"] = json!([keyword, "cairn-test"]);
    m.publish(&man, "").await;

    let run = m.npm_ok(&["search", &keyword, "--json"]).await;
    let results = run.json();
    let results = results.as_array().unwrap_or_else(|| panic!("not an array: {}", run.describe()));
    let found = |n: &str| results.iter().find(|r| r["name"] == json!(n)).cloned();
    for (n, version) in [(&name, "1.2.0"), (&scoped, "1.0.0")] {
        let r = found(n).unwrap_or_else(|| panic!("{n} not found by keyword: {}", run.describe()));
        assert_eq!(r["version"], json!(version), "{r}");
        assert_eq!(r["description"], json!(format!("{n} for the Cairn client tests")), "{r}");
        let date = r["date"].as_str().unwrap_or_else(|| panic!("no date in {r}"));
        assert!(date.len() >= 10 && date.starts_with("20"), "date {date:?} in {r}");
        assert!(as_list(&r["keywords"]).contains(&keyword), "{r}");
        // npm prints the publisher and maintainers; the registry names them by `username`.
        assert_eq!(r["publisher"]["username"], json!("alice"), "{r}");
        let maintainers = r["maintainers"].as_array().unwrap_or_else(|| panic!("no maintainers in {r}"));
        assert!(maintainers.iter().any(|m| m["username"] == json!("alice")), "{r}");
    }
    assert!(found(&other).is_none(), "{other} has no such keyword: {}", run.describe());

    // The human output has no holes either.
    let run = m.npm_ok(&["search", &keyword]).await;
    assert!(run.stdout.contains(&name) && run.stdout.contains(&scoped), "{}", run.describe());
    // npm prints "prehistoric" for a missing date and "???" for a missing publisher.
    for hole in ["undefined", "Invalid Date", "prehistoric", "???"] {
        assert!(!run.stdout.contains(hole), "{hole:?} in: {}", run.describe());
    }
    assert!(run.stdout.contains("Version 1.2.0 published 20") && run.stdout.contains("by alice"), "{}", run.describe());

    // By name.
    let run = m.npm_ok(&["search", &other, "--json"]).await;
    let results = run.json();
    assert!(results.as_array().is_some_and(|a| a.iter().any(|r| r["name"] == json!(other))), "{}", run.describe());
    // Nothing found is an empty list, not an error.
    let run = m.npm_ok(&["search", &format!("nothing{sfx}matches"), "--json"]).await;
    assert_eq!(run.json(), json!([]), "{}", run.describe());
}

/// `yarn npm publish` (yarn berry builds the publish body itself), `yarn npm info`
/// and `yarn npm tag`; npm sees the same package and bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_publish_and_tags() {
    let yarn = yarn_bin();
    let s = Server::start(Backend::Sqlite).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    let yarn_run = |dir: PathBuf, args: Vec<String>| {
        let mut cmd = m.command(&yarn, &dir);
        cmd.args(&args);
        let what = format!("yarn {} (in {})", args.join(" "), dir.display());
        let m = &m;
        async move {
            let run = m.run_cmd(what, cmd, INSTALL_TIMEOUT).await;
            assert!(run.success(), "{}", run.describe());
            run
        }
    };
    for name in [format!("ypub-{sfx}"), format!("@sc{sfx}/ypub-{sfx}")] {
        for version in ["1.0.0", "1.1.0"] {
            let dir = m.write_package(&manifest(&name, version, json!({})), "module.exports = 'y';\n");
            write_yarnrc(&m, &dir);
            std::fs::write(dir.join("yarn.lock"), "").unwrap();
            yarn_run(dir.clone(), vec!["install".into()]).await;
            let run = yarn_run(dir.clone(), vec!["npm".into(), "publish".into()]).await;
            assert!(run.stdout.contains("Package archive published"), "{}", run.describe());
        }
        let project = m.path("work").join(format!("yinfo-{}", name.replace(['@', '/'], "")));
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("package.json"), r#"{"name":"yinfo","private":true}"#).unwrap();
        std::fs::write(project.join("yarn.lock"), "").unwrap();
        write_yarnrc(&m, &project);

        // npm sees both versions, and the bytes it is served match the recorded integrity.
        assert_eq!(as_list(&m.npm_ok(&["view", &name, "versions", "--json"]).await.json()), vec!["1.0.0", "1.1.0"]);
        assert_eq!(m.view(&[&name, "version"]).await, "1.1.0");
        let (url, integrity) = m.served_tarball(&name, "1.1.0").await;
        assert_eq!(m.view(&[&format!("{name}@1.1.0"), "dist.integrity"]).await, integrity, "{url}");
        assert_eq!(m.view(&[&format!("{name}@1.1.0"), "_npmUser.name"]).await, "alice");

        let run = yarn_run(project.clone(), vec!["npm".into(), "info".into(), name.clone(), "--json".into()]).await;
        let info = run.json();
        assert_eq!(info["name"], json!(name), "{}", run.describe());
        assert_eq!(info["version"], json!("1.1.0"), "{}", run.describe());

        yarn_run(project.clone(), vec!["npm".into(), "tag".into(), "add".into(), format!("{name}@1.0.0"), "stable".into()]).await;
        let run = yarn_run(project.clone(), vec!["npm".into(), "tag".into(), "list".into(), name.clone()]).await;
        assert!(run.stdout.contains("stable") && run.stdout.contains("1.0.0"), "{}", run.describe());
        assert_eq!(m.npm_ok(&["view", &name, "dist-tags", "--json"]).await.json(), json!({"latest": "1.1.0", "stable": "1.0.0"}));
        yarn_run(project.clone(), vec!["npm".into(), "tag".into(), "remove".into(), name.clone(), "stable".into()]).await;
        assert_eq!(m.npm_ok(&["view", &name, "dist-tags", "--json"]).await.json(), json!({"latest": "1.1.0"}));
    }
}

/// `npm star`, `npm stars`, `npm unstar`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stars() {
    let s = Server::start(Backend::Sqlite).await;
    let token = s.add_user("alice", PASSWORD).await;
    let m = Machine::new(&s, &token);
    let sfx = suffix();
    let name = format!("star-{sfx}");
    let scoped = format!("@sc{sfx}/star-{sfx}");
    let unstarred = format!("nostar-{sfx}");
    for n in [&name, &scoped, &unstarred] {
        m.publish_simple(n, "1.0.0").await;
    }
    m.npm_ok(&["star", &name]).await;
    m.npm_ok(&["star", &scoped]).await;
    let run = m.npm_ok(&["stars"]).await;
    let listed: Vec<&str> = run.stdout.lines().map(str::trim).collect();
    assert!(listed.contains(&name.as_str()) && listed.contains(&scoped.as_str()), "{}", run.describe());
    assert!(!listed.contains(&unstarred.as_str()), "{}", run.describe());

    // Publishing a new version keeps the stars.
    m.publish_simple(&name, "1.0.1").await;
    let run = m.npm_ok(&["stars"]).await;
    assert!(run.stdout.lines().any(|l| l.trim() == name), "{}", run.describe());

    m.npm_ok(&["unstar", &name]).await;
    let run = m.npm_ok(&["stars"]).await;
    let listed: Vec<&str> = run.stdout.lines().map(str::trim).collect();
    assert!(!listed.contains(&name.as_str()) && listed.contains(&scoped.as_str()), "{}", run.describe());
    m.npm_ok(&["unstar", &scoped]).await;
    let run = m.npm_ok(&["stars"]).await;
    assert!(!run.stdout.contains(&name) && !run.stdout.contains(&scoped), "{}", run.describe());
}

// ---------------------------------------------------------------------------
// Installing a dependency tree with npm, pnpm and yarn berry
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Npm,
    Pnpm,
    Yarn,
}

/// A fresh project directory under the machine's temp dir.
fn new_project(m: &Machine<'_>, name: &str) -> PathBuf {
    let dir = m.path("work").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&json!({"name": name, "version": "1.0.0", "private": true})).unwrap(),
    )
    .unwrap();
    dir
}

fn installed_version(project: &Path, name: &str) -> String {
    let p = project.join("node_modules").join(name).join("package.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["version"].as_str().unwrap().to_string()
}

/// The three packages of the tree, `a` depending on `b` depending on `c`.
struct Tree {
    a: String,
    b: String,
    c: String,
}

/// Publishes c@1.0.0, c@2.0.0 (latest, outside b's range), b@1.0.0 -> c@^1.0.0,
/// a@1.0.0 -> b@^1.0.0.
async fn publish_tree(m: &Machine<'_>, scoped: bool) -> Tree {
    let sfx = suffix();
    let name = |p: &str| if scoped { format!("@tree{sfx}/{p}-{sfx}") } else { format!("{p}-{sfx}") };
    let t = Tree { a: name("a"), b: name("b"), c: name("c") };
    m.publish(&manifest(&t.c, "1.0.0", json!({})), "module.exports = 'c';\n").await;
    m.publish(&manifest(&t.c, "2.0.0", json!({})), "module.exports = 'C2';\n").await;
    m.publish(&manifest(&t.b, "1.0.0", json!({ &t.c: "^1.0.0" })), &format!("module.exports = 'b' + require({:?});\n", t.c)).await;
    m.publish(&manifest(&t.a, "1.0.0", json!({ &t.b: "^1.0.0" })), &format!("module.exports = 'a' + require({:?});\n", t.b)).await;
    t
}

/// Resolves a -> b -> c the way node does from the project and returns their
/// versions and what `require(a)` evaluates to.
async fn resolve_with_node(m: &Machine<'_>, project: &Path, t: &Tree) -> Run {
    const SCRIPT: &str = r#"
const path = require('path');
const names = JSON.parse(process.argv[1]);
const out = {};
let from = process.cwd();
for (const n of names) {
  const p = require.resolve(n + '/package.json', { paths: [from] });
  out[n] = require(p).version;
  from = path.dirname(p);
}
out.value = require(require.resolve(names[0], { paths: [process.cwd()] }));
console.log(JSON.stringify(out));
"#;
    let mut cmd = m.command(Path::new("node"), project);
    let names = json!([t.a, t.b, t.c]).to_string();
    cmd.arg("-e").arg(SCRIPT).arg(&names);
    m.run_cmd(format!("node -e <resolve a -> b -> c> {names}"), cmd, CMD_TIMEOUT).await
}

/// `resolution: {integrity: ..., tarball: ...}` of `name@version` in a pnpm v9 lockfile.
fn pnpm_resolution(lock: &str, name: &str, version: &str) -> Option<Vec<(String, String)>> {
    let keys = [format!("  {name}@{version}:"), format!("  '{name}@{version}':")];
    let mut in_packages = false;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_packages = line == "packages:";
            continue;
        }
        if in_packages && keys.iter().any(|k| line == k) {
            for l in lines.by_ref() {
                if !l.starts_with("    ") {
                    return None;
                }
                if let Some(rest) = l.trim().strip_prefix("resolution: {") {
                    let inner = rest.trim_end_matches('}');
                    return Some(
                        inner
                            .split(", ")
                            .filter_map(|kv| kv.split_once(": "))
                            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('\'').to_string()))
                            .collect(),
                    );
                }
            }
            return None;
        }
    }
    None
}

/// Publishes the tree, installs `a` with `client` into a clean project, and
/// checks node_modules and the lockfile against the tarballs Cairn serves.
async fn install_tree(backend: Backend, client: Client, scoped: bool) {
    // Fail before doing any work when the client is missing.
    match client {
        Client::Npm => {}
        Client::Pnpm => {
            pnpm_bin();
        }
        Client::Yarn => {
            yarn_bin();
        }
    }
    let s = Server::start(backend).await;
    let token = s.add_user("alice", PASSWORD).await;
    let publisher = Machine::new(&s, &token);
    let t = publish_tree(&publisher, scoped).await;

    // The tarballs as served, for the lockfile checks.
    let mut served = Vec::new();
    for n in [&t.a, &t.b, &t.c] {
        let (url, integrity) = publisher.served_tarball(n, "1.0.0").await;
        served.push((n.clone(), url, integrity));
    }

    // Install from another machine, with empty caches: the publisher's npm cache
    // already holds the tarballs, which would hide how they are served.
    let m = Machine::new(&s, &token);
    let project = new_project(&m, "project");
    let run = client_install(&m, client, &project, Some(&t.a)).await;
    assert!(run.success(), "{}", run.describe());
    let ctx = run.describe();

    // The dependency is recorded with a caret range.
    let pj: Value = serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap()).unwrap();
    assert_eq!(pj["dependencies"][&t.a], json!("^1.0.0"), "project package.json: {pj}\n{ctx}");

    // node finds a -> b -> c, each at 1.0.0 (c@2.0.0 is latest but outside b's range).
    let node = resolve_with_node(&m, &project, &t).await;
    assert!(node.success(), "{}\n--- install ---\n{ctx}", node.describe());
    let mut expected = json!({"value": "abc"});
    for n in [&t.a, &t.b, &t.c] {
        expected[n] = json!("1.0.0");
    }
    assert_eq!(node.json(), expected, "{}", node.describe());

    check_lockfile(client, &project, &t, &served);

    // A clean reinstall from the lockfile alone, on a third machine, fetches the
    // same bytes again and verifies them against the recorded integrity/checksum.
    let m3 = Machine::new(&s, &token);
    let again = new_project(&m3, "project");
    let lockfile = match client {
        Client::Npm => "package-lock.json",
        Client::Pnpm => "pnpm-lock.yaml",
        Client::Yarn => "yarn.lock",
    };
    for f in ["package.json", lockfile] {
        std::fs::copy(project.join(f), again.join(f)).unwrap();
    }
    let run = client_install(&m3, client, &again, None).await;
    assert!(run.success(), "{}", run.describe());
    let node = resolve_with_node(&m3, &again, &t).await;
    assert!(node.success(), "{}\n--- install ---\n{}", node.describe(), run.describe());
    assert_eq!(node.json(), expected, "{}", node.describe());
    assert_eq!(
        std::fs::read_to_string(again.join(lockfile)).unwrap(),
        std::fs::read_to_string(project.join(lockfile)).unwrap(),
        "{lockfile} changed on a frozen install"
    );
}

/// With `add`: `npm install A` / `pnpm add A` / `yarn add A` in `project`. Without:
/// the frozen reinstall from the lockfile (`npm ci` / `pnpm install --frozen-lockfile`
/// / `yarn install --immutable`).
async fn client_install(m: &Machine<'_>, client: Client, project: &Path, add: Option<&str>) -> Run {
    match client {
        Client::Npm => match add {
            Some(a) => m.npm_in(project, &["install", a]).await,
            None => m.npm_in(project, &["ci"]).await,
        },
        Client::Pnpm => {
            let mut cmd = m.command(&pnpm_bin(), project);
            let store = m.path("pnpm-store");
            let args: Vec<&str> = match add {
                Some(a) => vec!["add", a],
                None => vec!["install", "--frozen-lockfile"],
            };
            cmd.args(&args).arg("--store-dir").arg(&store).arg("--reporter=append-only");
            m.run_cmd(format!("pnpm {} --store-dir {}", args.join(" "), store.display()), cmd, INSTALL_TIMEOUT).await
        }
        Client::Yarn => {
            write_yarnrc(m, project);
            let args: Vec<&str> = match add {
                Some(a) => {
                    // An empty lockfile makes this directory the project root.
                    std::fs::write(project.join("yarn.lock"), "").unwrap();
                    vec!["add", a]
                }
                None => vec!["install", "--immutable"],
            };
            let mut cmd = m.command(&yarn_bin(), project);
            cmd.args(&args);
            m.run_cmd(format!("yarn {}", args.join(" ")), cmd, INSTALL_TIMEOUT).await
        }
    }
}

/// The project's .yarnrc.yml: this server as the registry, with the machine's token.
fn write_yarnrc(m: &Machine<'_>, project: &Path) {
    let s = m.server;
    // Yarn 4.10+ quarantines versions younger than `npmMinimalAgeGate` (default
    // one day, judged by the packument's `time`); the test packages are seconds old.
    std::fs::write(
        project.join(".yarnrc.yml"),
        format!(
            "npmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - \"{}\"\nenableTelemetry: false\nenableGlobalCache: false\n\
             cacheFolder: ./.yarn/cache\nnodeLinker: node-modules\nnpmAuthToken: \"{}\"\nnpmMinimalAgeGate: 0\n",
            s.base,
            s.addr.ip(),
            m.token
        ),
    )
    .unwrap();
}

/// The lockfile `client` wrote in `project` records every package of the tree
/// at 1.0.0 with the integrity of the bytes Cairn serves.
fn check_lockfile(client: Client, project: &Path, t: &Tree, served: &[(String, String, String)]) {
    match client {
        Client::Npm => {
            for n in [&t.a, &t.b, &t.c] {
                assert_eq!(installed_version(project, n), "1.0.0", "node_modules/{n}");
            }
            let lock: Value =
                serde_json::from_str(&std::fs::read_to_string(project.join("package-lock.json")).expect("package-lock.json")).unwrap();
            let packages = lock["packages"].as_object().unwrap_or_else(|| panic!("no packages in {lock}"));
            for (n, url, integrity) in served {
                let key = format!("node_modules/{n}");
                let entry = packages.get(&key).unwrap_or_else(|| panic!("no {key} in package-lock.json: {lock}"));
                assert_eq!(entry["version"], json!("1.0.0"), "{key}: {entry}");
                assert_eq!(
                    entry["integrity"].as_str(),
                    Some(integrity.as_str()),
                    "package-lock {key} integrity vs the bytes served at {url}"
                );
                assert_eq!(entry["resolved"].as_str(), Some(url.as_str()), "package-lock {key} resolved");
            }
        }
        Client::Pnpm => {
            // Only a is linked at the top; b and c live in the virtual store.
            assert_eq!(installed_version(project, &t.a), "1.0.0");
            for n in [&t.b, &t.c] {
                let p = project.join("node_modules/.pnpm").join(format!("{}@1.0.0", n.replace('/', "+"))).join("node_modules").join(n);
                assert!(p.join("package.json").exists(), "{} missing", p.display());
            }
            let lock = std::fs::read_to_string(project.join("pnpm-lock.yaml")).expect("pnpm-lock.yaml");
            for (n, url, integrity) in served {
                let res =
                    pnpm_resolution(&lock, n, "1.0.0").unwrap_or_else(|| panic!("no resolution for {n}@1.0.0 in pnpm-lock.yaml:\n{lock}"));
                let got = res.iter().find(|(k, _)| k == "integrity").map(|(_, v)| v.as_str());
                assert_eq!(got, Some(integrity.as_str()), "pnpm-lock {n}@1.0.0 integrity vs the bytes served at {url}\n{lock}");
                if let Some((_, tarball)) = res.iter().find(|(k, _)| k == "tarball") {
                    assert_eq!(tarball, url, "pnpm-lock {n}@1.0.0 tarball");
                }
            }
        }
        Client::Yarn => {
            for n in [&t.a, &t.b, &t.c] {
                assert_eq!(installed_version(project, n), "1.0.0", "node_modules/{n}");
            }
            let lock = std::fs::read_to_string(project.join("yarn.lock")).expect("yarn.lock");
            for n in [&t.a, &t.b, &t.c] {
                let line = format!("resolution: \"{n}@npm:1.0.0\"");
                assert!(lock.contains(&line), "no `{line}` in yarn.lock:\n{lock}");
            }
            assert!(!lock.contains(&format!("{}@npm:2.0.0", t.c)), "c@2.0.0 is outside b's range:\n{lock}");
        }
    }
}

async fn install_tree_npm(backend: Backend) {
    install_tree(backend, Client::Npm, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_tree_npm_scoped() {
    install_tree(Backend::Sqlite, Client::Npm, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_tree_pnpm() {
    install_tree(Backend::Sqlite, Client::Pnpm, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_tree_pnpm_scoped() {
    install_tree(Backend::Sqlite, Client::Pnpm, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_tree_yarn() {
    install_tree(Backend::Sqlite, Client::Yarn, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_tree_yarn_scoped() {
    install_tree(Backend::Sqlite, Client::Yarn, true).await
}

/// The pnpm lockfile parser itself, on a lockfile as pnpm 9 writes it.
#[test]
fn pnpm_lock_parsing() {
    let lock = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      a-1:\n        specifier: ^1.0.0\n        version: 1.0.0\n\n\
                packages:\n\n  '@s/b-1@1.0.0':\n    resolution: {integrity: sha512-AAA==, tarball: http://x/b.tgz}\n\n  a-1@1.0.0:\n    resolution: {integrity: sha512-BBB==}\n\n\
                snapshots:\n\n  a-1@1.0.0:\n    dependencies:\n      '@s/b-1': 1.0.0\n";
    assert_eq!(
        pnpm_resolution(lock, "@s/b-1", "1.0.0"),
        Some(vec![("integrity".into(), "sha512-AAA==".into()), ("tarball".into(), "http://x/b.tgz".into())])
    );
    assert_eq!(pnpm_resolution(lock, "a-1", "1.0.0"), Some(vec![("integrity".into(), "sha512-BBB==".into())]));
    assert_eq!(pnpm_resolution(lock, "c-1", "1.0.0"), None);
}
