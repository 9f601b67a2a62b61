//! Persistent state behind one trait, [`Store`], with a SQLite and a PostgreSQL
//! implementation generated from the same SQL (see `sql.rs`).
//!
//! Invariants:
//! - Only this module knows SQL or sqlx.
//! - Times are `i64` milliseconds since the Unix epoch in both databases.
//! - A uniqueness violation is reported as [`StoreError::Conflict`], never as a raw database error.

mod sql;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::redact_url;

pub use sql::{PostgresStore, SqliteStore};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub rev: String,
    pub created_at: i64,
    pub updated_at: i64,
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
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Waits for open connections to finish and closes the pool.
    async fn close(&self);
    async fn ping(&self) -> StoreResult<()>;

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
}

/// Opens the database named by `url` (`sqlite:` or `postgres:`), creating a
/// SQLite file and its directory when missing, and applies migrations.
pub async fn open(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(url, max_connections).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(PostgresStore::connect(url, max_connections).await?)
    } else {
        return Err(StoreError::Database(sqlx::Error::Configuration(
            format!("unsupported database url {}", redact_url(url)).into(),
        )));
    };
    store.migrate().await?;
    Ok(store)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
