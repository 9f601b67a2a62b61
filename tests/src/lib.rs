//! Test harness: start the real `cairn` binary on a random port with its own
//! data directory (and, for PostgreSQL, its own database), and talk to it.
//!
//! Every test that touches storage is written once and run on both backends
//! through [`both_backends!`].

pub mod browser;
pub mod cdp;
pub mod clients;
pub mod crash;
pub mod fake_http;
pub mod fuzz;
pub mod hook_receiver;
pub mod pg;
pub mod publish;
pub mod s3;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

pub use reqwest::{Method, StatusCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod NAME { fn sqlite(); fn postgres(); }` calling `async fn NAME(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// The `cairn` binary cargo built next to this test executable (or `$CAIRN_BIN`).
pub fn cairn_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(format!("cairn{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not found: run `cargo test --workspace` (it builds the cairn binary)", bin.display());
    bin
}

pub struct ServerOptions {
    pub backend: Backend,
    /// Extra TOML appended to the generated config (top-level keys must come first,
    /// so give tables like `[auth]` here in full).
    pub toml: String,
    pub auth_toml: String,
    /// The `[publish]` table's body; empty means `allowed_scopes = ["*"]` (tests
    /// publish under made-up scopes; a scope named like another user stays refused).
    pub publish_toml: String,
    /// TOML placed last, e.g. `[[plugins]]` tables.
    pub tail: String,
    /// Share another server's database (e.g. two processes on one PostgreSQL).
    pub database_url: Option<String>,
}

impl ServerOptions {
    pub fn new(backend: Backend) -> Self {
        ServerOptions {
            backend,
            toml: String::new(),
            auth_toml: String::new(),
            publish_toml: String::new(),
            tail: String::new(),
            database_url: None,
        }
    }
    pub fn toml(mut self, extra: &str) -> Self {
        self.toml.push_str(extra);
        self.toml.push('\n');
        self
    }
    pub fn database(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_string());
        self
    }
    pub fn tail(mut self, extra: &str) -> Self {
        self.tail.push_str(extra);
        self.tail.push('\n');
        self
    }
    pub fn auth(mut self, extra: &str) -> Self {
        self.auth_toml.push_str(extra);
        self.auth_toml.push('\n');
        self
    }
    /// Keys of the `[publish]` table (replacing the harness default).
    pub fn publish(mut self, extra: &str) -> Self {
        self.publish_toml.push_str(extra);
        self.publish_toml.push('\n');
        self
    }
}

/// A running `cairn serve`. Killed (and its database dropped) on drop.
pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub database_url: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    /// The thread copying the child's stderr into `log`; joined after the
    /// child exits, so the log holds every line it wrote.
    reader: Option<std::thread::JoinHandle<()>>,
    log: Arc<Mutex<String>>,
    db: Option<pg::TempDatabase>,
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Server::start_with(ServerOptions::new(backend)).await
    }

    pub async fn start_with(opts: ServerOptions) -> Server {
        match Server::try_start_with(opts).await {
            Ok(s) => s,
            Err(log) => panic!("cairn did not start; its log:\n{log}"),
        }
    }

    /// Like `start_with`, but a server that exits at start is an `Err` with its log.
    pub async fn try_start_with(opts: ServerOptions) -> Result<Server, String> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (db, database_url) = match (opts.backend, &opts.database_url) {
            (_, Some(url)) => (None, url.clone()),
            (Backend::Sqlite, None) => (None, format!("sqlite://{}", data_dir.path().join("cairn.db").display())),
            (Backend::Postgres, None) => {
                let db = pg::TempDatabase::create().await;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let config_path = data_dir.path().join("cairn.toml");
        let config = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ndatabase_url = {:?}\nplugin_cache_dir = {:?}\n{}\n[auth]\nlast_used_flush_secs = 1\n{}\n[publish]\n{}\n# -- extra --\n{}",
            data_dir.path().display().to_string(),
            database_url,
            shared_plugin_cache().display().to_string(),
            opts.toml,
            opts.auth_toml,
            if opts.publish_toml.is_empty() { "allowed_scopes = [\"*\"]\n" } else { &opts.publish_toml },
            opts.tail
        );
        std::fs::write(&config_path, config).expect("write config");
        let mut server = Server {
            base: String::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            data_dir,
            config_path,
            database_url,
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            child: None,
            reader: None,
            log: Arc::new(Mutex::new(String::new())),
            db,
        };
        server.spawn(&[]).await?;
        Ok(server)
    }

    /// Starts the process and waits for its "serving" log line. Public URL is
    /// derived from the bound port unless the config sets one.
    async fn spawn(&mut self, env: &[(&str, &str)]) -> Result<(), String> {
        let mut cmd = Command::new(cairn_bin());
        cmd.arg("serve").arg("--config").arg(&self.config_path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cairn");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listen=").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
                if std::env::var_os("CAIRN_TEST_ECHO").is_some() {
                    eprintln!("[cairn] {line}");
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        // Generous: the first server to load a JavaScript plugin compiles it
        // (70 s in a debug build on a loaded 2-core machine; then it is cached).
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(240))).await.unwrap();
        let Ok(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = tokio::task::spawn_blocking(move || reader.join()).await;
            return Err(self.log.lock().unwrap().clone());
        };
        self.addr = addr.parse().expect("listen address");
        self.base = format!("http://{}", self.addr);
        self.child = Some(child);
        self.reader = Some(reader);
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal and waits for the process to exit; returns its exit status.
    pub async fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let reader = self.reader.take();
        Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            // The pipe closes with the process: the reader ends after the last line.
            if let Some(r) = reader {
                let _ = r.join();
            }
            status
        })
        .await
        .unwrap()
    }

    /// Restarts after a stop, with the same config and data.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop_with("TERM").await;
        }
        if let Err(log) = self.spawn(&[]).await {
            panic!("cairn did not restart; its log:\n{log}");
        }
    }

    /// Sends a request; returns status and the body parsed as JSON (or `Value::String` of the text).
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// Registers (or logs in) `name` with `password`; returns the token.
    pub async fn add_user(&self, name: &str, password: &str) -> String {
        let (status, body) = self.login(name, password, Some(&format!("{name}@example.com"))).await;
        assert_eq!(status, StatusCode::CREATED, "adduser {name}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Creates an admin the only way there is, `cairn user create NAME --admin`
    /// against this server's database, then logs in; returns the token.
    pub async fn add_admin(&self, name: &str, password: &str) -> String {
        let email = format!("{name}@example.com");
        let out = self.cli(&["user", "create", name, "--admin", "--email", &email, "--password-stdin"], &format!("{password}\n")).await;
        assert!(out.status.success(), "cairn user create {name} --admin: {}", String::from_utf8_lossy(&out.stderr));
        let (status, body) = self.login(name, password, None).await;
        assert_eq!(status, StatusCode::CREATED, "login {name}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Runs `cairn ARGS --config <this server's config>` with `stdin`.
    pub async fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(args).arg("--config").arg(&self.config_path);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let stdin = stdin.to_string();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = cmd.spawn().expect("spawn cairn");
            child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    pub async fn login(&self, name: &str, password: &str, email: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({
            "_id": format!("org.couchdb.user:{name}"),
            "name": name,
            "password": password,
            "type": "user",
            "roles": [],
            "date": "2024-01-01T12:00:00.000Z",
        });
        if let Some(e) = email {
            body["email"] = json!(e);
        }
        self.call(Method::PUT, &format!("/-/user/org.couchdb.user:{name}"), None, Some(&body)).await
    }

    /// Every byte Cairn keeps: files under the data dir, and for PostgreSQL a dump of its tables.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        fn walk(dir: &Path, out: &mut Vec<u8>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_none_or(|e| e != "toml") {
                    out.extend(std::fs::read(&p).unwrap_or_default());
                }
            }
        }
        walk(self.data_dir.path(), &mut all);
        if let Some(db) = &self.db {
            all.extend(db.dump_text().await.into_bytes());
        }
        all
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// True when `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts the error body shape `{"error": "...", "reason": "..."}`.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected: u16) {
    assert_eq!(status.as_u16(), expected, "status (body: {body})");
    assert!(body["error"].as_str().is_some_and(|s| !s.is_empty()), "error field in {body}");
    assert!(body["reason"].as_str().is_some_and(|s| !s.is_empty()), "reason field in {body}");
}

/// The directory holding the sample plugins built for wasm32-wasip2:
/// `$CAIRN_PLUGIN_DIR`, or built once by `plugins/build.sh` into the target dir.
pub fn plugin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("CAIRN_PLUGIN_DIR") {
            return PathBuf::from(dir);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let exe = std::env::current_exe().expect("test executable path");
        let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
        let out = target.join("plugins-dist");
        let status = Command::new("bash")
            .arg(root.join("plugins/build.sh"))
            .arg(&out)
            .env("CARGO_TARGET_DIR", target.join("wasm-plugins"))
            .status()
            .expect("run plugins/build.sh");
        assert!(status.success(), "plugins/build.sh failed");
        out
    })
    .clone()
}

/// The compiled-plugin cache every test server shares (`plugin_cache_dir`):
/// a JavaScript plugin takes seconds to compile, once per cairn build rather
/// than once per server. One folder per build of the binary (its size and
/// time), the folders of older builds removed.
pub fn shared_plugin_cache() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let bin = cairn_bin();
        let meta = std::fs::metadata(&bin).expect("cairn binary");
        let stamp = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        let root = bin.parent().expect("target/<profile>").join("e2e-plugin-cache");
        let dir = root.join(format!("{stamp}-{}", meta.len()));
        for old in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if old.path() != dir {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        std::fs::create_dir_all(&dir).expect("plugin cache dir");
        dir
    })
    .clone()
}

/// Path of one sample plugin, e.g. `plugin("scope_policy")`.
pub fn plugin(name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The builds of each sample plugin, one per guest language: `(label, file
/// stem for [`plugin`])`. The shared end-to-end cases of a sample run once per
/// entry, so adding an implementation (e.g. `("py", "block_rules_py")`) is one
/// line here.
pub mod samples {
    pub const SCOPE_POLICY: &[(&str, &str)] = &[("rust", "scope_policy"), ("js", "scope_policy_js")];
    pub const BLOCK_RULES: &[(&str, &str)] = &[("rust", "block_rules"), ("js", "block_rules_js"), ("py", "block_rules_py")];
    pub const CHAT_HOOK: &[(&str, &str)] = &[("rust", "chat_hook"), ("js", "chat_hook_js")];
    /// The misbehaving auth policy (modes `loop`, `alloc`, `trap`, `garbage`,
    /// `ok`, `deny`, `init-fail` in every language).
    pub const HOSTILE: &[(&str, &str)] = &[("rust", "hostile"), ("js", "hostile_js")];
}

impl Server {
    /// Rewrites the config file (the generated part stays) with `extra` appended, for reloads.
    pub fn rewrite_config(&self, extra: &str) {
        let text = std::fs::read_to_string(&self.config_path).expect("config");
        let base = text.split("\n# -- extra --\n").next().unwrap_or(&text).to_string();
        std::fs::write(&self.config_path, format!("{base}\n# -- extra --\n{extra}\n")).expect("write config");
    }
}

impl Server {
    /// `kill -9` (std's `Child::kill` is SIGKILL): no shutdown, no flush. Waits
    /// for the exit and for the last log line; `restart` then starts it again
    /// on the same config, data dir and database.
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let reader = self.reader.take();
        tokio::task::spawn_blocking(move || {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(r) = reader {
                let _ = r.join();
            }
        })
        .await
        .unwrap();
    }
}
