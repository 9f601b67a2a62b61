//! Persistent state behind one trait, [`Store`], with a SQLite and a PostgreSQL
//! implementation generated from the same SQL (see `sql.rs`).
//!
//! Invariants:
//! - Only this module knows SQL or sqlx.
//! - Times are `i64` milliseconds since the Unix epoch in both databases.
//! - A uniqueness violation is reported as [`StoreError::Conflict`], never as a raw database error.
//! - Every transaction that writes a package locks its `packages` row first
//!   (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite has one writer), so writers
//!   of one package queue instead of deadlocking. Serialization failures,
//!   deadlocks and SQLite busy errors are retried here a few times with jittered
//!   backoff, and reported as [`StoreError::Contended`] if they persist.
//! - Every dist-tag names a version that exists, and a package with versions
//!   has a `latest` tag: a tag set to a missing version fails with
//!   [`StoreError::Invalid`]; removing the version a tag names removes the tag,
//!   except `latest`, which moves to the highest remaining version (see
//!   [`highest_version`]). Tags are listed `latest` first, then in creation order.

pub mod hooks;
#[macro_use]
mod hooks_sql;
#[macro_use]
pub mod binaries;
mod notify;
#[macro_use]
pub mod web;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::redact_url;

pub use binaries::{BinaryEntry, BinaryStore};
pub use hooks::HookStore;
pub use sql::{PostgresStore, SqliteStore};
pub use web::WebStore;

/// A change another process made, told by the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSignal {
    /// Something a packument is built from changed for this package.
    Package(String),
    /// Signals may have been missed (the connection was lost, or the consumer
    /// fell behind): treat everything as changed.
    Lost,
    /// Every change committed until now has been signalled. Sent at least
    /// every second while the feed works.
    Live,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub rev: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Marked admin by the operator (`cairn user create --admin`).
    pub is_admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// sha512 hex of the raw token.
    pub key: String,
    pub user_id: String,
    /// Masked form of the raw token, safe to show.
    pub mark: String,
    pub name: Option<String>,
    pub readonly: bool,
    pub automation: bool,
    pub cidr_whitelist: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
}

/// A package with everything the packument is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    pub name: String,
    pub rev: String,
    pub created_at: i64,
    pub modified_at: i64,
    /// Ordered by creation time.
    pub versions: Vec<VersionRecord>,
    /// `latest` first, then the others in the order they were created.
    pub tags: Vec<(String, String)>,
    /// User names with their email (None when the user no longer exists or has none).
    pub maintainers: Vec<(String, Option<String>)>,
    pub stars: Vec<String>,
    /// The registry the package is synced from; None when published here.
    pub registry_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub version: String,
    /// JSON of the version document.
    pub manifest: String,
    pub readme: Option<String>,
    pub tarball_key: String,
    pub tarball_file: String,
    pub size: i64,
    pub integrity: String,
    pub publisher: Option<String>,
    pub created_at: i64,
}

/// One publish, applied in one transaction.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub package: String,
    pub version: VersionRecord,
    /// Tags to point at this version.
    pub tags: Vec<String>,
    pub publisher: String,
    /// Admins may publish to packages they do not maintain.
    pub publisher_is_admin: bool,
    pub new_rev: String,
    pub description: Option<String>,
    pub keywords: Option<String>,
    /// Set for versions synced from a registry: no maintainer check, and a new
    /// package records this registry. A package published here refuses them.
    pub sync_registry: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Published,
    NotMaintainer,
    VersionExists,
    /// A synced version for a package that was published here (or comes from another registry).
    RegistryMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub id: String,
    pub name: String,
    pub host: String,
    pub change_stream: Option<String>,
    /// `npm`, `cnpm`, or the name of an upstream-adapter plugin.
    pub kind: String,
    pub user_prefix: String,
    pub auth_token: Option<String>,
    pub is_default: bool,
    pub from_config: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub id: String,
    pub name: String,
    pub registry_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub state: String,
    pub priority: i64,
    /// JSON options.
    pub data: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub author: Option<String>,
    pub claimed_by: Option<String>,
    pub run_after: i64,
    pub heartbeat_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub kind: String,
    pub package: String,
    pub data: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarball {
    pub name: String,
    pub file: String,
    pub version: String,
    pub blob_key: String,
    pub size: i64,
    pub integrity: String,
    pub created_at: i64,
}

/// Merges the options of a new task into those of the waiting one (both JSON).
pub type MergeFn = dyn Fn(&str, &str) -> String + Send + Sync;

/// A change to an existing package, applied in one transaction under the
/// package's row lock, and only if the package's rev still equals
/// `expected_rev` (when given). Without `expected_rev` every part is applied
/// to the package as it is then (removing a version that is gone already does
/// nothing), so it means the same whatever was published meanwhile.
///
/// The search fields (description, keywords) always follow the `latest`
/// version's manifest after the change.
#[derive(Debug, Clone, Default)]
pub struct PackageChange {
    pub expected_rev: Option<String>,
    pub new_rev: String,
    pub now: i64,
    pub remove_versions: Vec<String>,
    /// (version, new manifest JSON)
    pub manifests: Vec<(String, String)>,
    /// (version, deprecation message or None to undeprecate), applied to the
    /// stored manifest as it is when the change runs; gone versions are skipped.
    pub deprecations: Vec<(String, Option<String>)>,
    /// Each tag must name a version that exists after `remove_versions`, else
    /// the whole change fails with [`StoreError::Invalid`].
    pub set_tags: Vec<(String, String)>,
    pub remove_tags: Vec<String>,
    pub maintainers: Option<Vec<String>>,
    /// (user, starred)
    pub star: Option<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: String,
    pub package: String,
    pub reason: String,
    pub operator: String,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The change would break an invariant (e.g. a tag naming a missing version).
    #[error("{0}")]
    Invalid(String),
    /// Writers kept colliding (deadlocks, serialization failures, busy
    /// database) after a few retries.
    #[error("{0}")]
    Contended(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: HookStore + BinaryStore + WebStore + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Waits for open connections to finish and closes the pool.
    async fn close(&self);
    async fn ping(&self) -> StoreResult<()>;
    /// Changes committed by any process sharing the database (this one
    /// included), as they commit; `None` where the backend has no such feed
    /// (SQLite: one process per file).
    async fn change_signals(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<ChangeSignal>>>;

    /// Fails with `Conflict` when the name is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    /// Replaces email, password hash, rev and updated_at of the user with this id.
    async fn update_user(&self, user: &User) -> StoreResult<()>;

    async fn create_token(&self, token: &Token) -> StoreResult<()>;
    /// The token with this key and the user owning it.
    async fn token_with_user(&self, key: &str) -> StoreResult<Option<(Token, User)>>;
    async fn tokens_for_user(&self, user_id: &str) -> StoreResult<Vec<Token>>;
    /// Deletes the user's token; false when the user has no token with that key.
    async fn delete_token(&self, user_id: &str, key: &str) -> StoreResult<bool>;
    /// Records last-use times in one batch (keys that no longer exist are ignored).
    async fn touch_tokens(&self, uses: &[(String, i64)]) -> StoreResult<()>;

    async fn package(&self, name: &str) -> StoreResult<Option<PackageRecord>>;
    /// Just the package's current rev (cheap revalidation of cached documents).
    async fn package_rev(&self, name: &str) -> StoreResult<Option<String>>;
    /// The version whose tarball file name is `file`.
    async fn version_by_file(&self, package: &str, file: &str) -> StoreResult<Option<VersionRecord>>;
    /// Creates the package when missing (publisher becomes its maintainer), checks
    /// the publisher maintains it otherwise, inserts the version and moves tags.
    async fn publish(&self, new: &NewVersion) -> StoreResult<PublishOutcome>;
    /// Applies `change`; the removed versions, or `None` when the package is gone
    /// or its rev is not `expected_rev`.
    async fn update_package(&self, name: &str, change: &PackageChange) -> StoreResult<Option<Vec<VersionRecord>>>;
    /// Deletes the package (if its rev matches); its versions, for blob cleanup.
    async fn delete_package(&self, name: &str, expected_rev: Option<&str>) -> StoreResult<Option<Vec<VersionRecord>>>;
    /// Names of packages matching `text` in name, description or keywords, and the total count.
    async fn search(&self, text: &str, from: i64, size: i64) -> StoreResult<(Vec<String>, i64)>;
    async fn starred_by(&self, user: &str) -> StoreResult<Vec<String>>;
    /// Whether `package`@`version` was published once and then unpublished.
    async fn is_tombstoned(&self, package: &str, version: &str) -> StoreResult<bool>;
    /// Lets a version be stored again (a forced re-sync of history).
    async fn untombstone(&self, package: &str, version: &str) -> StoreResult<()>;
    /// Sets the imported (upstream) daily download counts of a package.
    async fn import_downloads(&self, package: &str, days: &[(String, i64)]) -> StoreResult<()>;

    async fn put_block(&self, block: &Block) -> StoreResult<Block>;
    async fn delete_block(&self, package: &str) -> StoreResult<bool>;
    async fn block(&self, package: &str) -> StoreResult<Option<Block>>;

    async fn list_registries(&self, offset: i64, limit: i64) -> StoreResult<(Vec<Registry>, i64)>;
    async fn registry(&self, id_or_name: &str) -> StoreResult<Option<Registry>>;
    /// Fails with `Conflict` when the name is taken.
    async fn create_registry(&self, r: &Registry) -> StoreResult<()>;
    async fn update_registry(&self, r: &Registry) -> StoreResult<()>;
    /// Deletes the registry and its scopes.
    async fn delete_registry(&self, id: &str) -> StoreResult<bool>;
    async fn scopes(&self, registry_id: Option<&str>) -> StoreResult<Vec<Scope>>;
    async fn scope_by_name(&self, name: &str) -> StoreResult<Option<Scope>>;
    async fn create_scope(&self, s: &Scope) -> StoreResult<()>;
    async fn delete_scope(&self, id: &str) -> StoreResult<bool>;

    /// Queues `task`, or merges it into the waiting task of the same target
    /// (`merge(existing_data, new_data)`). Returns the task that will run.
    async fn enqueue_task(&self, task: &Task, merge: &MergeFn) -> StoreResult<Task>;
    async fn task(&self, id: &str) -> StoreResult<Option<Task>>;
    /// Atomically claims the next runnable task for `worker`.
    async fn claim_task(&self, worker: &str, now: i64) -> StoreResult<Option<Task>>;
    async fn heartbeat_task(&self, id: &str, worker: &str, now: i64) -> StoreResult<()>;
    /// Ends a task in `success` or `error`.
    async fn finish_task(&self, id: &str, state: &str, error: Option<&str>, now: i64) -> StoreResult<()>;
    /// Puts a task back in the queue to run after `run_after` (merging into a waiting twin if one appeared).
    async fn retry_task(&self, id: &str, run_after: i64, error: &str, now: i64) -> StoreResult<()>;
    /// Returns tasks whose worker stopped sending heartbeats before `cutoff` to the
    /// queue (or ends them when a newer waiting task replaces them); how many.
    async fn recover_stale_tasks(&self, cutoff: i64, now: i64) -> StoreResult<u64>;

    /// At most `limit` changes with `seq > since`.
    async fn changes_since(&self, since: i64, limit: i64) -> StoreResult<Vec<Change>>;
    async fn change_position(&self, registry_id: &str) -> StoreResult<Option<String>>;
    async fn set_change_position(&self, registry_id: &str, since: &str, now: i64) -> StoreResult<()>;

    async fn proxy_packument(&self, name: &str) -> StoreResult<Option<(String, String, i64)>>;
    async fn put_proxy_packument(&self, name: &str, registry_id: &str, doc: &str, now: i64) -> StoreResult<()>;
    async fn proxy_tarball(&self, name: &str, file: &str) -> StoreResult<Option<ProxyTarball>>;
    /// False when another request stored the same file first.
    async fn put_proxy_tarball(&self, t: &ProxyTarball) -> StoreResult<bool>;

    /// The keys among `keys` that a row references (a version's tarball, a
    /// proxied tarball); the others are orphans to the blob sweep.
    async fn referenced_blobs(&self, keys: &[String]) -> StoreResult<Vec<String>>;

    /// Adds (package, version, day, count) rows to the daily download counts.
    async fn add_downloads(&self, rows: &[(String, String, String, i64)]) -> StoreResult<()>;
    /// Per-day totals for `package` between two `YYYY-MM-DD` days, inclusive.
    async fn downloads(&self, package: &str, start: &str, end: &str) -> StoreResult<Vec<(String, i64)>>;
}

/// Opens the database named by `url` (`sqlite:` or `postgres:`), creating a
/// SQLite file and its directory when missing, and applies migrations.
pub async fn open(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(url, max_connections).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(PostgresStore::connect(url, max_connections).await?)
    } else {
        return Err(StoreError::Database(sqlx::Error::Configuration(format!("unsupported database url {}", redact_url(url)).into())));
    };
    store.migrate().await?;
    Ok(store)
}

/// The version `latest` moves to when its version goes: the highest by semver
/// order, preferring versions without a prerelease part (as npm does).
pub fn highest_version<'a>(versions: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    versions
        .filter_map(|v| nodejs_semver::Version::parse(v).ok().map(|p| (!p.is_prerelease(), p, v)))
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .map(|(_, _, v)| v)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
