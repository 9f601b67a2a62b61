//! The SQL implementation of [`Store`], written once and instantiated for
//! SQLite and PostgreSQL by `sql_store!`. Both dialects accept `$N`
//! placeholders, `ON CONFLICT` and `RETURNING`, so the statements are shared;
//! where a dialect differs, the macro takes the differing piece as a parameter.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::Row;

use super::{Store, StoreError, StoreResult, Token, User};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations: Vec<Migration> = list
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, Cow::Borrowed(*sql), false)
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ignore_missing: false, locking: true, no_tx: false }
}

fn map_unique(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Database(e),
    }
}

fn cidrs_to_text(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialize")
}

fn cidrs_from_text(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("tokens.cidr_whitelist: {e}")))
}

macro_rules! sql_store {
    ($store:ident, $db:ty, $pool:ty, $backend:literal, $migrations:expr) => {
        pub struct $store {
            pool: $pool,
        }

        impl $store {
            fn user_from_row(row: &<$db as sqlx::Database>::Row, prefix: &str) -> StoreResult<User> {
                let col = |c: &str| format!("{prefix}{c}");
                Ok(User {
                    id: row.try_get(col("id").as_str())?,
                    name: row.try_get(col("name").as_str())?,
                    email: row.try_get(col("email").as_str())?,
                    password_hash: row.try_get(col("password_hash").as_str())?,
                    rev: row.try_get(col("rev").as_str())?,
                    created_at: row.try_get(col("created_at").as_str())?,
                    updated_at: row.try_get(col("updated_at").as_str())?,
                })
            }

            fn token_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Token> {
                let cidrs: String = row.try_get("cidr_whitelist")?;
                Ok(Token {
                    key: row.try_get("token_key")?,
                    user_id: row.try_get("user_id")?,
                    mark: row.try_get("mark")?,
                    name: row.try_get("name")?,
                    readonly: row.try_get("readonly")?,
                    automation: row.try_get("automation")?,
                    cidr_whitelist: cidrs_from_text(&cidrs)?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn migrate(&self) -> StoreResult<()> {
                migrator($migrations).run(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, user: &User) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (id, name, email, password_hash, rev, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&user.id)
                .bind(&user.name)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(&user.rev)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&self.pool)
                .await
                .map_err(|e| map_unique(e, || format!("user {}", user.name)))?;
                Ok(())
            }

            async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
                let row = sqlx::query("SELECT * FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Self::user_from_row(&r, "")).transpose()
            }

            async fn update_user(&self, user: &User) -> StoreResult<()> {
                sqlx::query("UPDATE users SET email = $1, password_hash = $2, rev = $3, updated_at = $4 WHERE id = $5")
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .bind(&user.rev)
                    .bind(user.updated_at)
                    .bind(&user.id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_token(&self, t: &Token) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO tokens (token_key, user_id, mark, name, readonly, automation, cidr_whitelist, \
                     created_at, updated_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&t.key)
                .bind(&t.user_id)
                .bind(&t.mark)
                .bind(&t.name)
                .bind(t.readonly)
                .bind(t.automation)
                .bind(cidrs_to_text(&t.cidr_whitelist))
                .bind(t.created_at)
                .bind(t.updated_at)
                .bind(t.last_used_at)
                .execute(&self.pool)
                .await
                .map_err(|e| map_unique(e, || "token".to_string()))?;
                Ok(())
            }

            async fn token_with_user(&self, key: &str) -> StoreResult<Option<(Token, User)>> {
                let row = sqlx::query(
                    "SELECT t.*, u.id AS u_id, u.name AS u_name, u.email AS u_email, \
                     u.password_hash AS u_password_hash, u.rev AS u_rev, u.created_at AS u_created_at, \
                     u.updated_at AS u_updated_at \
                     FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_key = $1",
                )
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    None => Ok(None),
                    Some(r) => Ok(Some((Self::token_from_row(&r)?, Self::user_from_row(&r, "u_")?))),
                }
            }

            async fn tokens_for_user(&self, user_id: &str) -> StoreResult<Vec<Token>> {
                let rows = sqlx::query("SELECT * FROM tokens WHERE user_id = $1 ORDER BY created_at, token_key")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::token_from_row).collect()
            }

            async fn delete_token(&self, user_id: &str, key: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM tokens WHERE user_id = $1 AND token_key = $2")
                    .bind(user_id)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_tokens(&self, uses: &[(String, i64)]) -> StoreResult<()> {
                if uses.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for (key, at) in uses {
                    sqlx::query(
                        "UPDATE tokens SET last_used_at = $1 WHERE token_key = $2 \
                         AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(*at)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::SqlitePool, "sqlite", embedded::SQLITE);
sql_store!(PostgresStore, sqlx::Postgres, sqlx::PgPool, "postgres", embedded::POSTGRES);

impl SqliteStore {
    /// Opens (creating if missing) the SQLite file: WAL journal, foreign keys on,
    /// a busy timeout so concurrent writers wait instead of failing.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        let pool = SqlitePoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        Ok(SqliteStore { pool })
    }
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(PostgresStore { pool })
    }
}
