//! The real npm CLI against Cairn: `npm ping`, `whoami`, `token list/revoke`,
//! `logout`, and interactive `npm login` / `npm adduser` driven through a
//! pseudo-terminal (tests/scripts/npm_login_pty.py).
//!
//! Every npm run gets a throwaway user config, global config and cache, so
//! nothing from the machine's ~/.npmrc leaks in, and is bounded by a timeout.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cairn_e2e::clients::{isolated_command, Run};
use cairn_e2e::{both_backends, Backend, Method, Server, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

both_backends!(npm_ping, npm_whoami_tokens_and_logout, npm_login_interactive, npm_adduser_interactive);

/// Bound on one plain npm command.
const NPM_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound the pty script puts on an interactive npm run (seconds), and ours on the script.
const PTY_SCRIPT_TIMEOUT_SECS: u64 = 30;
const PTY_TIMEOUT: Duration = Duration::from_secs(PTY_SCRIPT_TIMEOUT_SECS + 15);

const PASSWORD: &str = "correct-horse-1";

/// One npm "machine": its own npmrc, global config, cache and working directory.
struct Npm {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/`
    registry: String,
    /// `//127.0.0.1:PORT/`, the prefix npm uses for per-registry settings.
    nerf: String,
}

fn from_output(what: String, out: Output) -> Run {
    Run::from_output(what, out, String::new())
}

fn key_of(raw_token: &str) -> String {
    Sha512::digest(raw_token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn pty_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("npm_login_pty.py")
}

impl Npm {
    /// A config that points at `server` and holds no credentials.
    fn new(server: &Server) -> Npm {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("work")).unwrap();
        std::fs::write(dir.path().join("globalnpmrc"), "").unwrap();
        let npm = Npm { dir, registry: format!("{}/", server.base), nerf: format!("//{}/", server.addr) };
        npm.write_npmrc(None);
        npm
    }

    fn npmrc_path(&self) -> PathBuf {
        self.dir.path().join("npmrc")
    }

    fn write_npmrc(&self, token: Option<&str>) {
        let mut text = format!("registry={}\n", self.registry);
        if let Some(t) = token {
            text.push_str(&format!("{}:_authToken={t}\n", self.nerf));
        }
        std::fs::write(self.npmrc_path(), text).expect("write npmrc");
    }

    fn npmrc(&self) -> String {
        std::fs::read_to_string(self.npmrc_path()).unwrap_or_default()
    }

    /// The `_authToken` the npmrc holds for this server, if any.
    fn token(&self) -> Option<String> {
        let prefix = format!("{}:_authToken=", self.nerf);
        self.npmrc().lines().find_map(|l| l.trim().strip_prefix(&prefix).map(|t| t.trim().to_string()))
    }

    /// A command with the isolated npm environment (used for npm and for the pty script).
    fn command(&self, program: &str) -> tokio::process::Command {
        let d = self.dir.path();
        let mut cmd = isolated_command(program, &self.npmrc_path(), &d.join("globalnpmrc"), &d.join("cache"));
        cmd.current_dir(d.join("work"));
        cmd
    }

    async fn run_cmd(what: String, mut cmd: tokio::process::Command, limit: Duration) -> Run {
        match tokio::time::timeout(limit, cmd.output()).await {
            Ok(Ok(out)) => from_output(what, out),
            Ok(Err(e)) => panic!("could not run `{what}`: {e} (is it installed and on PATH?)"),
            // Dropping the future kills the child (kill_on_drop).
            Err(_) => panic!("`{what}` did not finish within {limit:?}"),
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("npm");
        cmd.args(args);
        Self::run_cmd(format!("npm {}", args.join(" ")), cmd, NPM_TIMEOUT).await
    }

    /// Runs npm and asserts exit 0.
    async fn ok(&self, args: &[&str]) -> Run {
        self.run(args).await.assert_ok()
    }

    /// Runs npm and asserts it fails.
    async fn fails(&self, args: &[&str]) -> Run {
        self.run(args).await.assert_failed()
    }

    /// `npm token list --json`, parsed.
    async fn token_list(&self) -> Vec<Value> {
        let run = self.ok(&["token", "list", "--json"]).await;
        let v: Value =
            serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("token list is not JSON ({e}): {}", run.describe()));
        v.as_array().unwrap_or_else(|| panic!("token list is not an array: {}", run.describe())).clone()
    }

    /// Runs `npm <subcommand> --auth-type=legacy` on a pseudo-terminal, answering
    /// the Username/Password(/Email) prompts.
    async fn interactive(&self, subcommand: &str, username: &str, password: &str, email: Option<&str>) -> Run {
        let mut cmd = self.command("python3");
        cmd.arg(pty_script()).args(["--username", username, "--password", password, "--timeout", &PTY_SCRIPT_TIMEOUT_SECS.to_string()]);
        if let Some(e) = email {
            cmd.args(["--email", e]);
        }
        let registry = self.registry.clone();
        cmd.args(["--", "npm", subcommand, "--auth-type=legacy", "--registry", &registry]);
        let what = format!("npm {subcommand} --auth-type=legacy --registry {registry} (on a pty, as {username})");
        Self::run_cmd(what, cmd, PTY_TIMEOUT).await
    }
}

async fn whoami_status(server: &Server, token: &str) -> (StatusCode, Value) {
    server.get("/-/whoami", Some(token)).await
}

/// `npm ping` reaches `/-/ping` and reports PONG.
async fn npm_ping(backend: Backend) {
    let s = Server::start(backend).await;
    let npm = Npm::new(&s);
    let run = npm.ok(&["ping"]).await;
    assert!(run.all().contains("PONG"), "no PONG in: {}", run.describe());
    assert!(run.all().contains(&npm.registry), "ping should name the registry: {}", run.describe());
}

/// A user made over HTTP, with the token written into the npmrc:
/// `npm whoami`, `npm token list`, `npm token revoke`, `npm logout`.
async fn npm_whoami_tokens_and_logout(backend: Backend) {
    let s = Server::start(backend).await;
    let login_token = s.add_user("alice", PASSWORD).await;
    let login_key = key_of(&login_token);
    let npm = Npm::new(&s);
    npm.write_npmrc(Some(&login_token));

    // whoami
    let run = npm.ok(&["whoami"]).await;
    assert_eq!(run.stdout.trim(), "alice", "{}", run.describe());

    // token list: the login token, masked, under its key.
    let list = npm.token_list().await;
    assert_eq!(list.len(), 1, "{list:?}");
    let t = &list[0];
    assert_eq!(t["key"], json!(login_key), "{t}");
    let masked = t["token"].as_str().unwrap_or_else(|| panic!("no token field in {t}"));
    assert!(masked.starts_with("cairn_") && masked.contains("...") && masked.len() < 20, "not masked: {masked}");
    assert!(login_token.starts_with(&masked[..masked.find("...").unwrap()]), "{masked} vs the token");
    assert!(login_token.ends_with(&masked[masked.find("...").unwrap() + 3..]), "{masked} vs the token");
    assert_eq!(t["name"], json!("login"), "{t}");
    assert_eq!(t["readonly"], json!(false), "{t}");
    let human = npm.ok(&["token", "list"]).await;
    assert!(!human.all().contains(&login_token), "token list leaks the raw token: {}", human.describe());
    assert!(human.stdout.contains(masked) && human.stdout.contains(&login_key[..6]), "{}", human.describe());

    // A second token, made over HTTP, shows up in npm's list...
    let (status, created) = s.call(Method::POST, "/-/npm/v1/tokens", Some(&login_token), Some(&json!({"password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second = created["token"].as_str().unwrap().to_string();
    let second_key = created["key"].as_str().unwrap().to_string();
    assert_eq!(second_key, key_of(&second));
    assert_eq!(whoami_status(&s, &second).await, (StatusCode::OK, json!({"username": "alice"})));
    let keys: Vec<Value> = npm.token_list().await.iter().map(|t| t["key"].clone()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&json!(second_key)) && keys.contains(&json!(login_key)), "{keys:?}");

    // ...and `npm token revoke <first 8 chars of the key>` removes it.
    let run = npm.ok(&["token", "revoke", &second_key[..8]]).await;
    assert!(run.all().contains("Removed 1 token"), "{}", run.describe());
    let (status, body) = whoami_status(&s, &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked token still works: {body}");
    assert_eq!(whoami_status(&s, &login_token).await.0, StatusCode::OK, "revoking one token must not touch another");
    let list = npm.token_list().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["key"], json!(login_key));

    // npm logout revokes the token on the server and removes it from the npmrc.
    npm.ok(&["logout"]).await;
    assert_eq!(npm.token(), None, "npm logout left the token in the npmrc:\n{}", npm.npmrc());
    let (status, body) = whoami_status(&s, &login_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "token still valid after npm logout: {body}");
    let run = npm.fails(&["whoami"]).await;
    assert!(run.all().contains("ENEEDAUTH"), "{}", run.describe());

    // Even with the old token put back, the server refuses it.
    npm.write_npmrc(Some(&login_token));
    let run = npm.fails(&["whoami"]).await;
    assert!(run.all().contains("E401"), "{}", run.describe());
}

/// `npm login --auth-type=legacy` typed at a terminal: a wrong password is refused
/// and writes nothing; the right one stores a working token in the npmrc.
async fn npm_login_interactive(backend: Backend) {
    let s = Server::start(backend).await;
    let http_token = s.add_user("alice", PASSWORD).await;

    // Wrong password: npm fails with E401 and stores no token.
    let npm = Npm::new(&s);
    let run = npm.interactive("login", "alice", "wrong-password-9", None).await;
    assert!(!run.success(), "login with a wrong password succeeded: {}", run.describe());
    assert!(run.all().contains("E401"), "{}", run.describe());
    assert_eq!(npm.token(), None, "a failed login wrote a token:\n{}", npm.npmrc());

    // Right password.
    let run = npm.interactive("login", "alice", PASSWORD, None).await;
    assert!(run.success(), "{}", run.describe());
    assert!(run.stdout.contains("Username:") && run.stdout.contains("Password:"), "prompts: {}", run.describe());
    assert!(!run.stdout.contains("Email"), "npm login should not ask for an email: {}", run.describe());
    assert!(run.stdout.contains(&format!("Logged in on {}", npm.registry)), "{}", run.describe());
    assert!(!run.all().contains(PASSWORD), "the password was echoed: {}", run.describe());
    let token = npm.token().unwrap_or_else(|| panic!("no _authToken for {} in the npmrc:\n{}\n{}", npm.nerf, npm.npmrc(), run.describe()));
    assert!(token.starts_with("cairn_"), "{token}");
    assert_ne!(token, http_token, "login must issue a new token");
    assert_eq!(whoami_status(&s, &token).await, (StatusCode::OK, json!({"username": "alice"})));

    let run = npm.ok(&["whoami"]).await;
    assert_eq!(run.stdout.trim(), "alice", "{}", run.describe());
    // The new token is listed as a login token next to the one made over HTTP.
    let keys: Vec<Value> = npm.token_list().await.iter().map(|t| t["key"].clone()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&json!(key_of(&token))) && keys.contains(&json!(key_of(&http_token))), "{keys:?}");

    // And logging out again revokes only that token.
    npm.ok(&["logout"]).await;
    assert_eq!(npm.token(), None, "{}", npm.npmrc());
    assert_eq!(whoami_status(&s, &token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami_status(&s, &http_token).await.0, StatusCode::OK);
}

/// `npm adduser --auth-type=legacy` typed at a terminal registers a new user
/// (with the email answered at the prompt) and stores a working token.
async fn npm_adduser_interactive(backend: Backend) {
    let s = Server::start(backend).await;
    let npm = Npm::new(&s);
    let run = npm.interactive("adduser", "bob", PASSWORD, Some("bob@example.com")).await;
    assert!(run.success(), "{}", run.describe());
    assert!(run.stdout.contains("Email (this will be public):"), "email prompt: {}", run.describe());
    assert!(run.stdout.contains(&format!("Logged in on {}", npm.registry)), "{}", run.describe());
    assert!(!run.all().contains(PASSWORD), "the password was echoed: {}", run.describe());
    let token = npm.token().unwrap_or_else(|| panic!("no _authToken for {} in the npmrc:\n{}\n{}", npm.nerf, npm.npmrc(), run.describe()));
    assert_eq!(whoami_status(&s, &token).await, (StatusCode::OK, json!({"username": "bob"})));

    let run = npm.ok(&["whoami"]).await;
    assert_eq!(run.stdout.trim(), "bob", "{}", run.describe());
    // The account exists with the email typed at the prompt.
    let (status, doc) = s.get("/-/user/org.couchdb.user:bob", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["name"], json!("bob"));
    assert_eq!(doc["email"], json!("bob@example.com"));
    // The password typed at the prompt is the account's password.
    let (status, body) = s.login("bob", PASSWORD, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // adduser of the existing name with another password is refused; the npmrc keeps its token.
    let other = Npm::new(&s);
    let run = other.interactive("adduser", "bob", "another-password-2", Some("bob@example.com")).await;
    assert!(!run.success(), "adduser over an existing user with a wrong password succeeded: {}", run.describe());
    assert_eq!(other.token(), None, "{}", other.npmrc());
    assert_eq!(whoami_status(&s, &token).await.0, StatusCode::OK);
}
