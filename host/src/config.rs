//! Typed configuration: TOML file, then `CAIRN_*` environment overrides.
//!
//! Every struct denies unknown fields, so a typo in an operator's file is an
//! error that names the key instead of a silently ignored setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Base of every URL Cairn hands out (tarballs, logs). No trailing slash.
    /// Default: `http://` + the address the server actually listens on.
    pub public_url: String,
    /// True when `public_url` was not configured and is derived from the listen address.
    #[serde(skip)]
    pub public_url_derived: bool,
    /// Directory for the default SQLite file and the local blob store.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://user@host/db`. Default: `sqlite://<data_dir>/cairn.db`.
    pub database_url: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: u64,
    /// Seconds a client may take to send request headers, and separately the body.
    pub request_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Seconds a process keeps serving after SIGINT/SIGTERM with `/-/ready`
    /// answering 503, so a load balancer takes it out before it stops accepting.
    pub shutdown_delay_secs: u64,
    /// Maximum database connections in the pool.
    pub database_max_connections: u32,
    /// Seconds a cached packument is trusted before it is rebuilt (writes in
    /// this process invalidate at once; this bounds staleness across processes).
    pub packument_cache_ttl_secs: u64,
    /// Packuments kept in memory at most.
    pub packument_cache_entries: usize,
    /// Bytes the in-memory caches (packuments, proxied documents, upstream
    /// 404s) may hold together; with the entry counts, whichever bound is
    /// reached first evicts the least used entries.
    pub cache_max_bytes: u64,
    /// Bytes of small tarballs kept in memory (hot installs read the same
    /// files over and over); 0 turns it off. Files over 1/16 of it (at most
    /// 1 MiB) are always streamed from the blob store.
    pub tarball_cache_bytes: u64,
    /// Threads of the async runtime that serves requests (`cairn serve`);
    /// 0: one per core.
    pub worker_threads: usize,
    /// Seconds between flushes of buffered download counts.
    pub downloads_flush_secs: u64,
    /// Tarball blobs no row references are removed once older than this.
    pub blob_sweep_min_age_secs: u64,
    /// Seconds between sweeps of unreferenced blobs (one runs at start; 0: only that one).
    pub blob_sweep_interval_secs: u64,
    pub auth: AuthConfig,
    pub publish: PublishConfig,
    pub log: LogConfig,
    /// Where tarballs, binaries and task logs are kept: files under `data_dir`, or S3-compatible object storage.
    pub blobs: BlobsConfig,
    /// Webhooks: limits, delivery workers, retries, allowed private targets.
    pub hooks: HooksConfig,
    /// The web UI for people (pages chosen by `Accept: text/html` on `/`, and under `/-/web/`).
    pub web: WebConfig,
    /// WebAssembly plugins, run in the order given.
    pub plugins: Vec<PluginConfig>,
    /// Where compiled plugins are cached (one file per plugin build and Cairn
    /// build). Default: `<data_dir>/plugin-cache`. Processes of one Cairn build
    /// may share it (files are written whole and renamed into place).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Who may sync from upstreams, and whether reads fall through to them.
    pub sync_mode: SyncMode,
    /// What happens to versions (and packages) gone upstream.
    pub sync_delete_mode: SyncDeleteMode,
    /// Whether an upstream 404 for a package counts as "gone" (then `sync_delete_mode` applies).
    pub sync_delete_on_not_found: bool,
    /// Sync tasks run at once by this process.
    pub sync_workers: usize,
    /// Attempts of a task before it ends in `error` (upstream 5xx and timeouts retry with backoff).
    pub sync_max_attempts: u32,
    /// Seconds without a heartbeat after which a processing task goes back to the queue.
    pub sync_task_timeout_secs: u64,
    /// Seconds an upstream request may take.
    pub upstream_timeout_secs: u64,
    /// Proxy mode: seconds a packument from upstream is served before it is refreshed.
    pub proxy_max_age_secs: u64,
    /// Proxy mode: seconds an upstream 404 is remembered.
    pub proxy_negative_ttl_secs: u64,
    /// Seconds an upstream that failed (unreachable, timed out, 5xx) is not asked
    /// again by reads a client waits on (proxy reads, search). 0: always ask.
    pub upstream_outage_secs: u64,
    /// Milliseconds between polls of an upstream's changes feed.
    pub changes_poll_ms: u64,
    /// Upstream registries (seeded into the database at start).
    pub registries: Vec<RegistryConfig>,
    /// Binary mirrors served under `/-/binary/<category>/`.
    pub binaries: Vec<BinaryConfig>,
    /// The file this configuration came from (for plugin paths and reloads).
    #[serde(skip)]
    pub config_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The sync API is refused.
    None,
    /// Only admins may sync.
    Admin,
    /// Any authenticated user may sync.
    All,
    /// As `all`, and reads of unknown packages fetch them from the upstream (pull-through cache).
    Proxy,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncDeleteMode {
    /// Remove local versions that are gone upstream (and the package when it is gone).
    Delete,
    /// Keep versions; block the package when it is gone upstream.
    Block,
    /// Keep everything.
    Ignore,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub name: String,
    pub host: String,
    /// `npm`, `cnpm`, or the name of an upstream-adapter plugin.
    #[serde(rename = "type", default = "default_registry_type")]
    pub kind: String,
    #[serde(default)]
    pub default: bool,
    /// Sent upstream as a Bearer token; never shown by any endpoint or log.
    pub auth_token: Option<String>,
    /// A CouchDB-style `_changes` URL to follow.
    pub change_stream: Option<String>,
    /// Scopes whose packages sync from this registry.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Prefix of maintainer names synced from this registry. Default `<name>:`.
    pub user_prefix: Option<String>,
}

/// One binary mirror (`[[binaries]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BinaryConfig {
    /// The URL segment: `/-/binary/<category>/`.
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// The source: `node` (autoindex HTML of a Node.js-style dist site),
    /// `bucket` (S3/GCS ListObjects XML), `github` (a repository's releases),
    /// `api` (another Cairn's `/-/binary/<category>/`), or the name of an
    /// upstream-adapter plugin exporting `binary-source` (see [`BUILT_IN_SOURCES`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// The upstream directory the tree is read from (ends with `/`); for
    /// `bucket` the bucket's URL. `github`: optional, shown only (default:
    /// the releases URL of `api_url`). Optional for a plugin source (which
    /// reads its own configuration). Shown as `distUrl`.
    #[serde(default)]
    pub dist_url: String,
    #[serde(default)]
    pub repo_url: String,
    /// `github`: the API base URL (required; no public host is assumed).
    #[serde(default)]
    pub api_url: String,
    /// `github`: `owner/name`; default: the last two path segments of `repo_url`.
    #[serde(default)]
    pub repo: String,
    /// Seconds between scheduled syncs; 0: only on request.
    #[serde(default)]
    pub sync_interval_secs: u64,
    /// Glob patterns (`*` and `?`) of directory names not mirrored.
    #[serde(default)]
    pub ignore_dirs: Vec<String>,
    /// Glob patterns of file names not mirrored.
    #[serde(default)]
    pub ignore_files: Vec<String>,
    /// Largest file mirrored, in bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// A semver range (npm syntax) of the version directories kept
    /// (`v1.2.3/` or `1.2.3/`); directories not named like a version are kept.
    #[serde(default)]
    pub include_versions: Option<String>,
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl BinaryConfig {
    /// A `github` source: `api_url` required, `repo` taken from `repo_url`
    /// when not given, `dist_url` (shown only) defaulting to the releases URL.
    fn github_defaults(&mut self) -> Result<(), ConfigError> {
        let category = self.category.clone();
        let invalid = move |why: &str| ConfigError::Invalid(format!("binary {category}: {why}"));
        if !is_http_url(&self.api_url) {
            return Err(invalid("a github source needs api_url, starting with http:// or https://"));
        }
        while self.api_url.ends_with('/') {
            self.api_url.pop();
        }
        if self.repo.is_empty() {
            let path = self.repo_url.split_once("://").map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
            let parts: Vec<&str> = path.trim_end_matches('/').trim_end_matches(".git").split('/').filter(|p| !p.is_empty()).collect();
            if parts.len() >= 2 {
                self.repo = parts[parts.len() - 2..].join("/");
            }
        }
        let ok_part = |p: &str| !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !self.repo.split_once('/').is_some_and(|(o, n)| ok_part(o) && ok_part(n)) {
            return Err(invalid("a github source needs repo = \"owner/name\" (or a repo_url ending in /owner/name)"));
        }
        if self.dist_url.is_empty() {
            self.dist_url = format!("{}/repos/{}/releases/", self.api_url, self.repo);
        }
        Ok(())
    }
}

/// The `[[binaries]] type`s built in; any other must name an upstream-adapter plugin.
pub const BUILT_IN_SOURCES: &[&str] = &["node", "bucket", "github", "api"];

impl Config {
    /// Whether `binary`'s source is a plugin (its `type` names a configured
    /// upstream-adapter plugin and no built-in source).
    pub fn is_plugin_source(&self, binary: &BinaryConfig) -> bool {
        names_plugin_source(&self.plugins, &binary.kind)
    }
}

fn names_plugin_source(plugins: &[PluginConfig], kind: &str) -> bool {
    !BUILT_IN_SOURCES.contains(&kind) && plugins.iter().any(|p| p.name == kind && p.kind == PluginKind::UpstreamAdapter)
}

fn default_max_file_bytes() -> u64 {
    1 << 30
}

fn default_registry_type() -> String {
    "npm".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    AuthPolicy,
    BlockRule,
    UpstreamAdapter,
    HookFormatter,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::AuthPolicy => "auth-policy",
            PluginKind::BlockRule => "block-rule",
            PluginKind::UpstreamAdapter => "upstream-adapter",
            PluginKind::HookFormatter => "hook-formatter",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail closed: the request is refused (auth-policy, block-rule) or the call fails.
    Deny,
    /// Fail open: a faulty plugin is skipped.
    Allow,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    pub kind: PluginKind,
    /// The component file; relative paths are relative to the config file's directory.
    pub path: PathBuf,
    /// Wall-time budget per call. Default 50 ms (30 s for upstream adapters, which wait on the network).
    pub timeout_ms: Option<u64>,
    /// Memory cap. Default 128 MiB: room for a JavaScript or Python engine
    /// (9-13 MiB per instance) and the data it parses.
    pub max_memory_mb: Option<u64>,
    /// What a trap, timeout, memory exhaustion or malformed result means. Default `deny`.
    pub on_error: Option<OnError>,
    /// Hosts (`host` or `host:port`) the plugin may reach through `fetch` (upstream adapters only).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Free-form settings the plugin reads through the host interface.
    #[serde(default)]
    pub config: toml::Table,
}

impl PluginConfig {
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(if self.kind == PluginKind::UpstreamAdapter { 30_000 } else { 50 })
    }
    pub fn max_memory_mb(&self) -> u64 {
        self.max_memory_mb.unwrap_or(128)
    }
    pub fn on_error(&self) -> OnError {
        self.on_error.unwrap_or(OnError::Deny)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// User names that are admins once their account exists. Admin accounts are
    /// never created over HTTP: a listed name that does not exist yet cannot be
    /// registered; create it with `cairn user create NAME --admin`. Default: none.
    pub admins: Vec<String>,
    /// When false nobody may register over HTTP (the CLI can still create users).
    pub allow_public_registration: bool,
    /// Seconds between flushes of tokens' `lastUsedAt` to the database.
    pub last_used_flush_secs: u64,
    /// Wrong passwords for one account within `login_window_secs` before its
    /// password logins are refused with 429 (tokens keep working). 0 disables.
    pub login_max_failures: u32,
    /// Failed password logins from one client address (an IPv6 /64) within
    /// `login_window_secs` before that address is refused with 429. 0 disables.
    pub login_max_failures_per_ip: u32,
    /// The counting window, and the first lockout; each further lockout doubles (up to 16×).
    pub login_window_secs: u64,
}

/// Who may create which new packages (new versions of existing packages only
/// need maintainership).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Scopes (`@name`) anyone may create packages under, besides their own
    /// `@<username>`. `"*"` opens every scope that is not another user's name.
    pub allowed_scopes: Vec<String>,
    /// Whether users may create unscoped packages.
    pub allow_unscoped: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Whether this process fans out events and sends deliveries (events are recorded either way).
    pub enabled: bool,
    /// Hooks one user may have; past it creation is refused (403).
    pub max_per_user: u32,
    /// Delivery loops of this process; each sends up to 16 deliveries (one per hook) at once.
    pub workers: usize,
    /// Attempts of a delivery before it ends `failed`.
    pub max_attempts: u32,
    /// Milliseconds one delivery request may take (connect, send, answer).
    pub timeout_ms: u64,
    /// The first retry's delay in milliseconds; each further retry doubles it (with jitter).
    pub retry_base_ms: u64,
    /// CIDRs that endpoints may resolve to although they are loopback, private,
    /// link-local or unspecified (refused by default).
    pub allow_private_targets: Vec<String>,
    /// Days a finished delivery (and an event no process fanned out) is kept.
    pub retention_days: u32,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            enabled: true,
            max_per_user: 20,
            workers: 2,
            max_attempts: 8,
            timeout_ms: 10_000,
            retry_base_ms: 30_000,
            allow_private_targets: Vec::new(),
            retention_days: 30,
        }
    }
}

impl HooksConfig {
    /// `allow_private_targets`, parsed (validated at load).
    pub fn allowed_nets(&self) -> Vec<ipnet::IpNet> {
        self.allow_private_targets.iter().filter_map(|c| c.parse().ok()).collect()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// Files under `<data_dir>/blobs`.
    #[default]
    Local,
    /// An S3-compatible bucket.
    S3,
}

/// `[blobs]`: the blob store. The S3 keys are read when `kind = "s3"`, and by
/// `cairn blobs copy` when it copies to or from S3.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    pub kind: BlobKind,
    pub bucket: Option<String>,
    /// `http(s)://host:port` of an S3-compatible server; none: the provider's default.
    pub endpoint: Option<String>,
    /// Default: `AWS_DEFAULT_REGION` / `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// A key prefix (e.g. `prod/`) under which every blob is stored.
    pub prefix: String,
    /// With `secret_access_key`; without both, the standard AWS environment variables apply.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Credentials are never printed, not even in a debug dump of the config.
impl std::fmt::Debug for BlobsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("BlobsConfig")
            .field("kind", &self.kind)
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint.as_deref().map(redact_url))
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &hidden(&self.access_key_id))
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .finish()
    }
}

impl BlobsConfig {
    /// Checks the S3 keys (needed when `kind = "s3"`, and by `cairn blobs copy`).
    pub fn validate_s3(&self) -> Result<(), ConfigError> {
        let bucket = self.bucket.as_deref().unwrap_or("");
        let ok_bucket = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !ok_bucket {
            return Err(ConfigError::Invalid(format!(
                "[blobs] bucket {bucket:?} must be an S3 bucket name (3-63 lowercase letters, digits, '-' or '.')"
            )));
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.contains('@') {
                return Err(ConfigError::Invalid("[blobs] endpoint must be an http:// or https:// URL without credentials".into()));
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(ConfigError::Invalid("[blobs] access_key_id and secret_access_key go together".into()));
        }
        if self.prefix.starts_with('/') || self.prefix.contains("//") || self.prefix.contains("..") {
            return Err(ConfigError::Invalid(format!("[blobs] prefix {:?} must be a relative key prefix such as \"prod/\"", self.prefix)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Whether the pages are served (npm's web login, `POST /-/v1/login`, too).
    pub enabled: bool,
    /// The name shown in page titles and the header.
    pub title: String,
    /// A logo image file (PNG, SVG, JPEG, GIF or WebP) served at `/-/web/logo`; none by default.
    pub logo: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { enabled: true, title: "Cairn".into(), logo: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `cairn=debug,sqlx=warn`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7001".parse().expect("static address"),
            public_url: String::new(),
            public_url_derived: false,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            // A 100 MB tarball is ~134 MB as base64, plus the manifest.
            max_body_bytes: 150 * 1024 * 1024,
            request_timeout_secs: 60,
            shutdown_grace_secs: 30,
            shutdown_delay_secs: 0,
            database_max_connections: 16,
            packument_cache_ttl_secs: 5,
            packument_cache_entries: 10_000,
            cache_max_bytes: 256 * 1024 * 1024,
            tarball_cache_bytes: 64 * 1024 * 1024,
            worker_threads: 0,
            downloads_flush_secs: 30,
            blob_sweep_min_age_secs: 3600,
            blob_sweep_interval_secs: 3600,
            auth: AuthConfig::default(),
            publish: PublishConfig::default(),
            log: LogConfig::default(),
            blobs: BlobsConfig::default(),
            hooks: HooksConfig::default(),
            web: WebConfig::default(),
            plugins: Vec::new(),
            plugin_cache_dir: None,
            config_path: None,
            sync_mode: SyncMode::All,
            sync_delete_mode: SyncDeleteMode::Ignore,
            sync_delete_on_not_found: false,
            sync_workers: 2,
            sync_max_attempts: 5,
            sync_task_timeout_secs: 60,
            upstream_timeout_secs: 60,
            proxy_max_age_secs: 300,
            proxy_negative_ttl_secs: 60,
            upstream_outage_secs: 30,
            changes_poll_ms: 1000,
            registries: Vec::new(),
            binaries: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admins: Vec::new(),
            allow_public_registration: true,
            last_used_flush_secs: 30,
            login_max_failures: 10,
            login_max_failures_per_ip: 50,
            login_window_secs: 300,
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig { allowed_scopes: Vec::new(), allow_unscoped: true }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    fn validate_binaries(&mut self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        let plugins = &self.plugins;
        for b in &mut self.binaries {
            if let Some(range) = &b.include_versions {
                if nodejs_semver::Range::parse(range).is_err() {
                    return Err(ConfigError::Invalid(format!("binary {}: include_versions {range:?} is not a semver range", b.category)));
                }
            }
            let ok_name = !b.category.is_empty()
                && b.category.len() <= 100
                && b.category.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !b.category.starts_with('.');
            if !ok_name || !seen.insert(b.category.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "[[binaries]] category {:?} must be unique letters, digits, '-', '_' or '.'",
                    b.category
                )));
            }
            let plugin = names_plugin_source(plugins, &b.kind);
            if !BUILT_IN_SOURCES.contains(&b.kind.as_str()) && !plugin {
                return Err(ConfigError::Invalid(format!(
                    "binary {}: type {:?} is neither a known source ({}) nor a configured upstream-adapter plugin",
                    b.category,
                    b.kind,
                    BUILT_IN_SOURCES.join(", ")
                )));
            }
            if plugin && b.dist_url.is_empty() {
                continue;
            }
            if b.kind == "github" {
                b.github_defaults()?;
            }
            if !is_http_url(&b.dist_url) {
                return Err(ConfigError::Invalid(format!("binary {}: dist_url must start with http:// or https://", b.category)));
            }
            if !b.dist_url.ends_with('/') {
                b.dist_url.push('/');
            }
        }
        Ok(())
    }

    fn validate_hooks(&self) -> Result<(), ConfigError> {
        let h = &self.hooks;
        if h.workers > 64 || h.max_attempts == 0 || !(1..=600_000).contains(&h.timeout_ms) || h.max_per_user == 0 {
            return Err(ConfigError::Invalid(
                "[hooks] workers must be 0-64, max_attempts and max_per_user at least 1, timeout_ms 1-600000".into(),
            ));
        }
        if !(1..=3650).contains(&h.retention_days) {
            return Err(ConfigError::Invalid("[hooks] retention_days must be 1-3650".into()));
        }
        for cidr in &h.allow_private_targets {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                return Err(ConfigError::Invalid(format!("[hooks] allow_private_targets: {cidr:?} is not a CIDR like 10.0.0.0/8")));
            }
        }
        Ok(())
    }

    /// Loads the file (if any), applies environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                let mut config = Config::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })?;
                config.config_path = Some(path.to_path_buf());
                config
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_string())
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("CAIRN_LISTEN") {
            self.listen =
                v.parse().map_err(|e: std::net::AddrParseError| ConfigError::Env { name: "CAIRN_LISTEN", message: e.to_string() })?;
        }
        if let Some(v) = get("CAIRN_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("CAIRN_PUBLIC_URL") {
            self.public_url = v;
            self.public_url_derived = false;
        }
        if let Some(v) = get("CAIRN_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        Ok(())
    }

    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.public_url.is_empty() {
            self.public_url = format!("http://{}", self.listen);
            self.public_url_derived = true;
        }
        while self.public_url.ends_with('/') {
            self.public_url.pop();
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!("public_url must start with http:// or https://, got {:?}", self.public_url)));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("max_body_bytes must be at least 1024".into()));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid("database_max_connections must be at least 1".into()));
        }
        let mut registry_names = std::collections::HashSet::new();
        for r in &self.registries {
            if r.name.is_empty() || !registry_names.insert(r.name.clone()) {
                return Err(ConfigError::Invalid(format!("registry name {:?} is empty or used twice", r.name)));
            }
            if !(r.host.starts_with("http://") || r.host.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!("registry {}: host must start with http:// or https://", r.name)));
            }
            let plugin_type = self.plugins.iter().any(|p| p.name == r.kind && p.kind == PluginKind::UpstreamAdapter);
            if !matches!(r.kind.as_str(), "npm" | "cnpm") && !plugin_type {
                return Err(ConfigError::Invalid(format!(
                    "registry {}: type {:?} is neither npm, cnpm nor the name of an upstream-adapter plugin",
                    r.name, r.kind
                )));
            }
            for scope in &r.scopes {
                if !scope.starts_with('@') || scope.len() < 2 || scope.contains('/') {
                    return Err(ConfigError::Invalid(format!("registry {}: scope {scope:?} must look like @name", r.name)));
                }
            }
        }
        for scope in &self.publish.allowed_scopes {
            if scope != "*" && (!scope.starts_with('@') || scope.len() < 2 || scope.contains('/')) {
                return Err(ConfigError::Invalid(format!("[publish] allowed_scopes: {scope:?} must look like @name (or be \"*\")")));
            }
        }
        if self.auth.login_window_secs == 0 || self.auth.login_window_secs > 86_400 {
            return Err(ConfigError::Invalid("[auth] login_window_secs must be 1-86400".into()));
        }
        if self.registries.iter().filter(|r| r.default).count() > 1 {
            return Err(ConfigError::Invalid("only one registry may be the default".into()));
        }
        if self.sync_workers > 64 || self.sync_max_attempts == 0 {
            return Err(ConfigError::Invalid("sync_workers must be 0-64 and sync_max_attempts at least 1".into()));
        }
        self.validate_hooks()?;
        self.validate_binaries()?;
        if self.blobs.kind == BlobKind::S3 {
            self.blobs.validate_s3()?;
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.plugins {
            if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(ConfigError::Invalid(format!("plugin name {:?} must be non-empty letters, digits, '-' or '_'", p.name)));
            }
            if !names.insert(p.name.clone()) {
                return Err(ConfigError::Invalid(format!("plugin name {:?} is used twice", p.name)));
            }
            if !(1..=600_000).contains(&p.timeout_ms()) {
                return Err(ConfigError::Invalid(format!("plugin {}: timeout_ms must be 1-600000", p.name)));
            }
            if !(1..=4096).contains(&p.max_memory_mb()) {
                return Err(ConfigError::Invalid(format!("plugin {}: max_memory_mb must be 1-4096", p.name)));
            }
            if !p.allowed_hosts.is_empty() && p.kind != PluginKind::UpstreamAdapter {
                return Err(ConfigError::Invalid(format!("plugin {}: allowed_hosts is only for upstream-adapter plugins", p.name)));
            }
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:")) {
                return Err(ConfigError::Invalid(format!("database_url must start with sqlite: or postgres:, got {:?}", redact_url(url))));
            }
        }
        Ok(())
    }

    /// After binding: a derived `public_url` names the real address (port 0 picks one).
    pub fn bound_to(&mut self, addr: SocketAddr) {
        if self.public_url_derived {
            self.public_url = format!("http://{addr}");
        }
    }

    /// The database URL in effect: the configured one, or the SQLite file under `data_dir`.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("cairn.db").display()),
        }
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }
}

/// Hides the credentials (`user:password@`, or a bare `token@`) of every URL
/// in `text` as `***@`, for log lines, errors and answers. The URL stays
/// recognisable; only the upstream request itself carries the credentials.
pub fn redact_url(text: &str) -> String {
    rewrite_userinfo(text, "***@")
}

/// Removes the credentials of every URL in `text` (`http://u:p@h/` → `http://h/`),
/// for URLs shown as data (a registry's `host`).
pub fn strip_userinfo(text: &str) -> String {
    rewrite_userinfo(text, "")
}

fn rewrite_userinfo(text: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends where the path, query or fragment (or the surrounding text) begins.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | ',' | '\\') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(replacement);
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl Config {
    /// Where compiled plugins are cached: `plugin_cache_dir`, else `<data_dir>/plugin-cache`.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugin_cache_dir.clone().unwrap_or_else(|| self.data_dir.join("plugin-cache"))
    }

    /// A plugin's file, resolved against the config file's directory.
    pub fn plugin_path(&self, plugin: &PluginConfig) -> PathBuf {
        match (&self.config_path, plugin.path.is_absolute()) {
            (Some(cfg), false) => cfg.parent().unwrap_or(Path::new(".")).join(&plugin.path),
            _ => plugin.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let mut c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7001");
        assert_eq!(c.public_url, "http://127.0.0.1:7001");
        assert_eq!(c.effective_database_url(), "sqlite://./data/cairn.db");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.contains("listen_port"), "{err}");
        let err = Config::from_toml("[auth]\nadmin = [\"x\"]\n").unwrap_err();
        assert!(err.contains("admin"), "{err}");
    }

    #[test]
    fn contract_keys_parse() {
        let c = Config::from_toml(
            r#"
listen = "127.0.0.1:7001"
public_url = "http://127.0.0.1:7001/"
data_dir = "./data"
database_url = "sqlite://./data/cairn.db"
[auth]
admins = ["admin", "root"]
allow_public_registration = false
"#,
        )
        .unwrap();
        assert_eq!(c.auth.admins, vec!["admin", "root"]);
        assert!(!c.auth.allow_public_registration);
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "CAIRN_LISTEN" => Some("127.0.0.1:9999".into()),
            "CAIRN_DATABASE_URL" => Some("postgres://postgres@127.0.0.1/x".into()),
            "CAIRN_PUBLIC_URL" => Some("https://r.example".into()),
            "CAIRN_DATA_DIR" => Some("/tmp/d".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.public_url, "https://r.example");
        assert_eq!(c.effective_database_url(), "postgres://postgres@127.0.0.1/x");
        assert!(c.apply_env(|k| (k == "CAIRN_LISTEN").then(|| "nope".into())).is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://***@h/db");
        assert_eq!(redact_url("postgres://tok3n@h/db"), "postgres://***@h/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact_url("GET http://u:p@127.0.0.1:9/x failed (see http://a:b@h2) and https://h3/y@z"),
            "GET http://***@127.0.0.1:9/x failed (see http://***@h2) and https://h3/y@z"
        );
        assert_eq!(strip_userinfo("http://u:p%40ss@h:1/p?q=a@b"), "http://h:1/p?q=a@b");
        assert_eq!(strip_userinfo("no url here"), "no url here");
    }

    #[test]
    fn blobs_table_parses_and_is_checked() {
        let mut c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.blobs.kind, BlobKind::Local);
        let text = "[blobs]\nkind = \"s3\"\nbucket = \"cairn\"\nendpoint = \"http://127.0.0.1:5055\"\nregion = \"us-east-1\"\nprefix = \"prod/\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"s3cr3t\"\n";
        let mut c = Config::from_toml(text).unwrap();
        c.validate().unwrap();
        assert_eq!((c.blobs.kind, c.blobs.bucket.as_deref(), c.blobs.prefix.as_str()), (BlobKind::S3, Some("cairn"), "prod/"));
        assert!(!format!("{c:?}").contains("s3cr3t"), "the secret is not in a debug dump");
        for bad in [
            "[blobs]\nkind = \"s3\"\n",
            "[blobs]\nkind = \"s3\"\nbucket = \"Bad_Name\"\n",
            "[blobs]\nkind = \"s3\"\nbucket = \"ok-name\"\nendpoint = \"127.0.0.1:9\"\n",
            "[blobs]\nkind = \"s3\"\nbucket = \"ok-name\"\naccess_key_id = \"only-one\"\n",
            "[blobs]\nkind = \"s3\"\nbucket = \"ok-name\"\nprefix = \"/abs\"\n",
        ] {
            assert!(Config::from_toml(bad).unwrap().validate().is_err(), "{bad}");
        }
        assert!(Config::from_toml("[blobs]\nkind = \"gcs\"\n").is_err());
        // The S3 keys may sit beside kind = "local" (for `cairn blobs copy`).
        Config::from_toml("[blobs]\nbucket = \"ok-name\"\n").unwrap().validate().unwrap();
    }

    #[test]
    fn no_admin_by_default_and_publish_rules_parse() {
        let c = Config::default();
        assert!(c.auth.admins.is_empty());
        assert!(c.publish.allowed_scopes.is_empty() && c.publish.allow_unscoped);
        let mut c = Config::from_toml("[publish]\nallowed_scopes = [\"@acme\", \"*\"]\nallow_unscoped = false\n").unwrap();
        c.validate().unwrap();
        let mut c = Config::from_toml("[publish]\nallowed_scopes = [\"acme\"]\n").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn hook_retention_is_checked() {
        assert_eq!(Config::default().hooks.retention_days, 30);
        let mut c = Config::from_toml("[hooks]\nretention_days = 7\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.hooks.retention_days, 7);
        for bad in ["0", "3651"] {
            let mut c = Config::from_toml(&format!("[hooks]\nretention_days = {bad}\n")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("retention_days"), "{bad}: {err}");
        }
    }
}
