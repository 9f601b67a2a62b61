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

use super::{
    Block, NewVersion, PackageChange, PackageRecord, PublishOutcome, Store, StoreError, StoreResult, Token, User, VersionRecord,
};

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

            fn version_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<VersionRecord> {
                Ok(VersionRecord {
                    version: row.try_get("version")?,
                    manifest: row.try_get("manifest")?,
                    readme: row.try_get("readme")?,
                    tarball_key: row.try_get("tarball_key")?,
                    tarball_file: row.try_get("tarball_file")?,
                    size: row.try_get("size")?,
                    integrity: row.try_get("integrity")?,
                    publisher: row.try_get("publisher")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn block_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Block> {
                Ok(Block {
                    id: row.try_get("id")?,
                    package: row.try_get("package")?,
                    reason: row.try_get("reason")?,
                    operator: row.try_get("operator")?,
                    created_at: row.try_get("created_at")?,
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

            async fn package(&self, name: &str) -> StoreResult<Option<PackageRecord>> {
                let Some(row) = sqlx::query("SELECT * FROM packages WHERE name = $1").bind(name).fetch_optional(&self.pool).await?
                else {
                    return Ok(None);
                };
                let versions = sqlx::query("SELECT * FROM versions WHERE package = $1 ORDER BY created_at, version")
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::version_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let tags = sqlx::query("SELECT tag, version FROM dist_tags WHERE package = $1 ORDER BY tag")
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("tag")?, r.try_get("version")?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                let maintainers = sqlx::query(
                    "SELECT m.user_name, u.email FROM maintainers m LEFT JOIN users u ON u.name = m.user_name \
                     WHERE m.package = $1 ORDER BY m.user_name",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("user_name")?, r.try_get("email")?)))
                .collect::<StoreResult<Vec<_>>>()?;
                let stars = sqlx::query("SELECT user_name FROM stars WHERE package = $1 ORDER BY user_name")
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok(r.try_get("user_name")?))
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(Some(PackageRecord {
                    name: row.try_get("name")?,
                    rev: row.try_get("rev")?,
                    created_at: row.try_get("created_at")?,
                    modified_at: row.try_get("modified_at")?,
                    versions,
                    tags,
                    maintainers,
                    stars,
                }))
            }

            async fn version_by_file(&self, package: &str, file: &str) -> StoreResult<Option<VersionRecord>> {
                let row = sqlx::query("SELECT * FROM versions WHERE package = $1 AND tarball_file = $2")
                    .bind(package)
                    .bind(file)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::version_from_row).transpose()
            }

            async fn publish(&self, new: &NewVersion) -> StoreResult<PublishOutcome> {
                let v = &new.version;
                let mut tx = self.pool.begin().await?;
                let created = sqlx::query(
                    "INSERT INTO packages (name, rev, description, keywords, created_at, modified_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&new.package)
                .bind(&new.new_rev)
                .bind(&new.description)
                .bind(&new.keywords)
                .bind(v.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if created {
                    sqlx::query("INSERT INTO maintainers (package, user_name) VALUES ($1, $2)")
                        .bind(&new.package)
                        .bind(&new.publisher)
                        .execute(&mut *tx)
                        .await?;
                } else if !new.publisher_is_admin {
                    let maintains = sqlx::query("SELECT 1 FROM maintainers WHERE package = $1 AND user_name = $2")
                        .bind(&new.package)
                        .bind(&new.publisher)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if !maintains {
                        return Ok(PublishOutcome::NotMaintainer);
                    }
                }
                let inserted = sqlx::query(
                    "INSERT INTO versions (package, version, manifest, readme, tarball_key, tarball_file, size, integrity, \
                     publisher, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&new.package)
                .bind(&v.version)
                .bind(&v.manifest)
                .bind(&v.readme)
                .bind(&v.tarball_key)
                .bind(&v.tarball_file)
                .bind(v.size)
                .bind(&v.integrity)
                .bind(&v.publisher)
                .bind(v.created_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(PublishOutcome::VersionExists),
                    Err(e) => return Err(e.into()),
                }
                for tag in &new.tags {
                    sqlx::query(
                        "INSERT INTO dist_tags (package, tag, version) VALUES ($1, $2, $3) \
                         ON CONFLICT (package, tag) DO UPDATE SET version = excluded.version",
                    )
                    .bind(&new.package)
                    .bind(tag)
                    .bind(&v.version)
                    .execute(&mut *tx)
                    .await?;
                }
                let mut update = String::from("UPDATE packages SET rev = $1, modified_at = $2");
                if new.description.is_some() || new.keywords.is_some() || created {
                    update.push_str(", description = $4, keywords = $5");
                }
                update.push_str(" WHERE name = $3");
                let mut q = sqlx::query(&update).bind(&new.new_rev).bind(v.created_at).bind(&new.package);
                if new.description.is_some() || new.keywords.is_some() || created {
                    q = q.bind(&new.description).bind(&new.keywords);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(PublishOutcome::Published)
            }

            async fn update_package(&self, name: &str, c: &PackageChange) -> StoreResult<Option<Vec<VersionRecord>>> {
                let mut tx = self.pool.begin().await?;
                let updated = match &c.expected_rev {
                    Some(rev) => sqlx::query("UPDATE packages SET rev = $1, modified_at = $2 WHERE name = $3 AND rev = $4")
                        .bind(&c.new_rev)
                        .bind(c.now)
                        .bind(name)
                        .bind(rev)
                        .execute(&mut *tx)
                        .await?,
                    None => sqlx::query("UPDATE packages SET rev = $1, modified_at = $2 WHERE name = $3")
                        .bind(&c.new_rev)
                        .bind(c.now)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?,
                };
                if updated.rows_affected() == 0 {
                    return Ok(None);
                }
                let mut removed = Vec::new();
                for version in &c.remove_versions {
                    let row = sqlx::query("DELETE FROM versions WHERE package = $1 AND version = $2 RETURNING *")
                        .bind(name)
                        .bind(version)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = row {
                        removed.push(Self::version_from_row(&row)?);
                        sqlx::query("INSERT INTO tombstones (package, version, unpublished_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                            .bind(name)
                            .bind(version)
                            .bind(c.now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query("DELETE FROM dist_tags WHERE package = $1 AND version = $2")
                        .bind(name)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                }
                for (version, manifest) in &c.manifests {
                    sqlx::query("UPDATE versions SET manifest = $1 WHERE package = $2 AND version = $3")
                        .bind(manifest)
                        .bind(name)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                }
                for tag in &c.remove_tags {
                    sqlx::query("DELETE FROM dist_tags WHERE package = $1 AND tag = $2")
                        .bind(name)
                        .bind(tag)
                        .execute(&mut *tx)
                        .await?;
                }
                for (tag, version) in &c.set_tags {
                    sqlx::query(
                        "INSERT INTO dist_tags (package, tag, version) VALUES ($1, $2, $3) \
                         ON CONFLICT (package, tag) DO UPDATE SET version = excluded.version",
                    )
                    .bind(name)
                    .bind(tag)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(list) = &c.maintainers {
                    sqlx::query("DELETE FROM maintainers WHERE package = $1").bind(name).execute(&mut *tx).await?;
                    for user in list {
                        sqlx::query("INSERT INTO maintainers (package, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                            .bind(name)
                            .bind(user)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                if let Some((user, starred)) = &c.star {
                    let sql = if *starred {
                        "INSERT INTO stars (package, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                    } else {
                        "DELETE FROM stars WHERE package = $1 AND user_name = $2"
                    };
                    sqlx::query(sql).bind(name).bind(user).execute(&mut *tx).await?;
                }
                if let Some((description, keywords)) = &c.search_fields {
                    sqlx::query("UPDATE packages SET description = $1, keywords = $2 WHERE name = $3")
                        .bind(description)
                        .bind(keywords)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(removed))
            }

            async fn delete_package(&self, name: &str, expected_rev: Option<&str>) -> StoreResult<Option<Vec<VersionRecord>>> {
                let mut tx = self.pool.begin().await?;
                let versions = sqlx::query("SELECT * FROM versions WHERE package = $1")
                    .bind(name)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(Self::version_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let deleted = match expected_rev {
                    Some(rev) => sqlx::query("DELETE FROM packages WHERE name = $1 AND rev = $2").bind(name).bind(rev).execute(&mut *tx).await?,
                    None => sqlx::query("DELETE FROM packages WHERE name = $1").bind(name).execute(&mut *tx).await?,
                };
                if deleted.rows_affected() == 0 {
                    return Ok(None);
                }
                let now = super::now_ms();
                for v in &versions {
                    sqlx::query("INSERT INTO tombstones (package, version, unpublished_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(name)
                        .bind(&v.version)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(versions))
            }

            async fn search(&self, text: &str, from: i64, size: i64) -> StoreResult<(Vec<String>, i64)> {
                let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                let pattern = format!("%{escaped}%");
                let prefix = format!("{escaped}%");
                const MATCH: &str = "(lower(name) LIKE $1 ESCAPE '\\' OR lower(coalesce(description, '')) LIKE $1 ESCAPE '\\' \
                                     OR lower(coalesce(keywords, '')) LIKE $1 ESCAPE '\\')";
                let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM packages WHERE {MATCH}"))
                    .bind(&pattern)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                let names = sqlx::query(&format!(
                    "SELECT name FROM packages WHERE {MATCH} ORDER BY CASE WHEN lower(name) = $2 THEN 0 \
                     WHEN lower(name) LIKE $3 ESCAPE '\\' THEN 1 ELSE 2 END, modified_at DESC, name LIMIT $4 OFFSET $5"
                ))
                .bind(&pattern)
                .bind(text.to_lowercase())
                .bind(&prefix)
                .bind(size)
                .bind(from)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok(r.try_get("name")?))
                .collect::<StoreResult<Vec<_>>>()?;
                Ok((names, total))
            }

            async fn starred_by(&self, user: &str) -> StoreResult<Vec<String>> {
                sqlx::query("SELECT package FROM stars WHERE user_name = $1 ORDER BY package")
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok(r.try_get("package")?))
                    .collect()
            }

            async fn is_tombstoned(&self, package: &str, version: &str) -> StoreResult<bool> {
                Ok(sqlx::query("SELECT 1 FROM tombstones WHERE package = $1 AND version = $2")
                    .bind(package)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some())
            }

            async fn put_block(&self, b: &Block) -> StoreResult<Block> {
                let row = sqlx::query(
                    "INSERT INTO blocks (package, id, reason, operator, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (package) DO UPDATE SET reason = excluded.reason, operator = excluded.operator RETURNING *",
                )
                .bind(&b.package)
                .bind(&b.id)
                .bind(&b.reason)
                .bind(&b.operator)
                .bind(b.created_at)
                .fetch_one(&self.pool)
                .await?;
                Self::block_from_row(&row)
            }

            async fn delete_block(&self, package: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM blocks WHERE package = $1").bind(package).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn block(&self, package: &str) -> StoreResult<Option<Block>> {
                let row = sqlx::query("SELECT * FROM blocks WHERE package = $1").bind(package).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::block_from_row).transpose()
            }

            async fn add_downloads(&self, rows: &[(String, String, String, i64)]) -> StoreResult<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for (package, version, day, count) in rows {
                    sqlx::query(
                        "INSERT INTO downloads (package, version, day, count) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (package, version, day) DO UPDATE SET count = downloads.count + excluded.count",
                    )
                    .bind(package)
                    .bind(version)
                    .bind(day)
                    .bind(*count)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn downloads(&self, package: &str, start: &str, end: &str) -> StoreResult<Vec<(String, i64)>> {
                sqlx::query(
                    "SELECT day, CAST(SUM(count) AS BIGINT) AS n FROM downloads \
                     WHERE package = $1 AND day >= $2 AND day <= $3 GROUP BY day ORDER BY day",
                )
                .bind(package)
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("day")?, r.try_get("n")?)))
                .collect()
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
