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
    Block, Change, MergeFn, NewVersion, PackageChange, PackageRecord, ProxyTarball, PublishOutcome, Registry, Scope, Store, StoreError,
    StoreResult, Task, Token, User, VersionRecord,
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

/// How often a package write is tried when writers keep colliding.
const WRITE_ATTEMPTS: u32 = 6;

/// The pause before try `tries + 1`: 10-20 ms, doubling each time (half of it random).
fn backoff(tries: u32) -> Duration {
    let base = 10u64 << tries.min(6);
    let random = u16::from_le_bytes(crate::util::random_bytes(2).try_into().expect("two bytes")) as u64;
    Duration::from_millis(base / 2 + random % (base / 2 + 1))
}

fn cidrs_to_text(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialize")
}

fn cidrs_from_text(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("tokens.cidr_whitelist: {e}")))
}

/// Records a change for the `_changes` feed inside the caller's transaction.
macro_rules! record_change {
    ($tx:expr, $kind:expr, $package:expr, $data:expr, $now:expr) => {
        sqlx::query("INSERT INTO changes (type, package, data, created_at) VALUES ($1, $2, $3, $4)")
            .bind($kind)
            .bind($package)
            .bind($data)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

macro_rules! sql_store {
    ($store:ident, $db:ty, $pool:ty, $backend:literal, $migrations:expr, $skip_locked:literal, $for_update:literal) => {
        pub struct $store {
            pool: $pool,
            /// SQLite has one writer: writes queue here in the process instead
            /// of polling SQLite's busy handler (sleeps of up to 100 ms).
            writes: tokio::sync::Mutex<()>,
        }

        impl $store {
            /// `finish_task` for callers that already hold the write turn.
            async fn finish_task_unlocked(&self, id: &str, state: &str, error: Option<&str>, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE tasks SET state = $1, error = $2, finished_at = $3, updated_at = $3 WHERE id = $4")
                    .bind(state)
                    .bind(error)
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            /// Whether `e` is a transient collision between writers worth retrying:
            /// a serialization failure or deadlock (PostgreSQL), a busy or locked database (SQLite).
            fn retryable(e: &StoreError) -> bool {
                let StoreError::Database(sqlx::Error::Database(db)) = e else { return false };
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if $backend == "postgres" {
                    code == "40001" || code == "40P01"
                } else {
                    code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
                }
            }

            /// Runs a write transaction, again (after a short jittered pause) when it
            /// failed on a transient collision; a collision that persists is `Contended`.
            async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> StoreResult<T>
            where
                F: FnMut() -> Fut,
                Fut: std::future::Future<Output = StoreResult<T>>,
            {
                let mut tries = 1;
                loop {
                    match attempt().await {
                        Err(e) if Self::retryable(&e) => {
                            if tries >= WRITE_ATTEMPTS {
                                tracing::warn!(error = %e, what, tries, "giving up on a write that kept colliding");
                                return Err(StoreError::Contended(format!("{what}: the database is busy; try again")));
                            }
                            tracing::debug!(error = %e, what, tries, "retrying a write after a collision");
                            tokio::time::sleep(backoff(tries)).await;
                            tries += 1;
                        }
                        other => return other,
                    }
                }
            }

            /// The package's versions, oldest first.
            async fn package_versions(conn: &mut <$db as sqlx::Database>::Connection, name: &str) -> StoreResult<Vec<VersionRecord>> {
                sqlx::query("SELECT * FROM versions WHERE package = $1 ORDER BY created_at, version")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(Self::version_from_row)
                    .collect()
            }

            /// Locks the package's row: the first lock of every transaction that
            /// writes a package, so two writers never wait for each other in
            /// opposite orders. Its rev and registry, `None` when there is no such package.
            async fn lock_package(conn: &mut <$db as sqlx::Database>::Connection, name: &str) -> StoreResult<Option<(String, Option<String>)>> {
                let row = sqlx::query(concat!("SELECT rev, registry_id FROM packages WHERE name = $1", $for_update))
                    .bind(name)
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(|r| Ok((r.try_get("rev")?, r.try_get("registry_id")?))).transpose()
            }

            /// Points `tag` at `version`; a new tag goes after the package's other tags.
            async fn upsert_tag(conn: &mut <$db as sqlx::Database>::Connection, name: &str, tag: &str, version: &str) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO dist_tags (package, tag, version, seq) VALUES ($1, $2, $3, \
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM dist_tags WHERE package = $1)) \
                     ON CONFLICT (package, tag) DO UPDATE SET version = excluded.version",
                )
                .bind(name)
                .bind(tag)
                .bind(version)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Restores the tag invariant: a tag naming a missing version is removed,
            /// except `latest`, which moves to the highest remaining version.
            async fn repair_tags(conn: &mut <$db as sqlx::Database>::Connection, name: &str) -> StoreResult<()> {
                let versions = sqlx::query("SELECT version FROM versions WHERE package = $1 ORDER BY created_at, version")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<String, _>("version"))
                    .collect::<Result<Vec<_>, _>>()?;
                let tags = sqlx::query("SELECT tag, version FROM dist_tags WHERE package = $1")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get::<String, _>("tag")?, r.try_get::<String, _>("version")?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                for (tag, version) in &tags {
                    if tag != "latest" && !versions.contains(version) {
                        sqlx::query("DELETE FROM dist_tags WHERE package = $1 AND tag = $2").bind(name).bind(tag).execute(&mut *conn).await?;
                    }
                }
                if tags.iter().any(|(t, v)| t == "latest" && versions.contains(v)) {
                    return Ok(());
                }
                match super::highest_version(versions.iter().map(String::as_str)).or(versions.last().map(String::as_str)) {
                    Some(h) => Self::upsert_tag(conn, name, "latest", h).await,
                    None => {
                        sqlx::query("DELETE FROM dist_tags WHERE package = $1 AND tag = 'latest'").bind(name).execute(&mut *conn).await?;
                        Ok(())
                    }
                }
            }

            /// Sets the package's search fields from its `latest` version.
            async fn refresh_search_fields(conn: &mut <$db as sqlx::Database>::Connection, name: &str) -> StoreResult<()> {
                let row = sqlx::query(
                    "SELECT v.manifest FROM dist_tags t JOIN versions v ON v.package = t.package AND v.version = t.version \
                     WHERE t.package = $1 AND t.tag = 'latest'",
                )
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(row) = row else { return Ok(()) };
                let manifest: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>("manifest")?).unwrap_or_default();
                let description = manifest.get("description").and_then(|d| d.as_str()).map(str::to_string);
                let keywords = manifest.get("keywords").filter(|k| k.is_array()).map(|k| k.to_string());
                sqlx::query("UPDATE packages SET description = $1, keywords = $2 WHERE name = $3")
                    .bind(description)
                    .bind(keywords)
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Sets (or with `None` removes) `deprecated` in the stored manifest; a gone version is skipped.
            async fn deprecate(conn: &mut <$db as sqlx::Database>::Connection, name: &str, version: &str, message: Option<&str>) -> StoreResult<()> {
                let row = sqlx::query("SELECT manifest FROM versions WHERE package = $1 AND version = $2")
                    .bind(name)
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(row) = row else { return Ok(()) };
                let text: String = row.try_get("manifest")?;
                let mut manifest: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("manifest of {name}@{version}: {e}")))?;
                let Some(fields) = manifest.as_object_mut() else {
                    return Err(StoreError::Corrupt(format!("manifest of {name}@{version} is not an object")));
                };
                match message {
                    Some(m) => fields.insert("deprecated".into(), serde_json::Value::String(m.to_string())),
                    None => fields.shift_remove("deprecated"),
                };
                sqlx::query("UPDATE versions SET manifest = $1 WHERE package = $2 AND version = $3")
                    .bind(manifest.to_string())
                    .bind(name)
                    .bind(version)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            async fn publish_once(&self, new: &NewVersion) -> StoreResult<PublishOutcome> {
                let v = &new.version;
                let mut tx = self.pool.begin().await?;
                let now = super::now_ms();
                let created = sqlx::query(
                    "INSERT INTO packages (name, rev, description, keywords, created_at, modified_at, registry_id) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&new.package)
                .bind(&new.new_rev)
                .bind(&new.description)
                .bind(&new.keywords)
                .bind(v.created_at.min(now))
                .bind(&new.sync_registry)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                // The package row is locked before any other row is touched.
                let Some((_, registry_id)) = Self::lock_package(&mut *tx, &new.package).await? else {
                    return Err(StoreError::Contended(format!("package {} was removed during this publish; try again", new.package)));
                };
                if let Some(registry) = &new.sync_registry {
                    if !created && registry_id.as_deref() != Some(registry.as_str()) {
                        return Ok(PublishOutcome::RegistryMismatch);
                    }
                } else if created {
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
                    Self::upsert_tag(&mut *tx, &new.package, tag, &v.version).await?;
                }
                record_change!(tx, "PACKAGE_VERSION_ADDED", &new.package, serde_json::json!({"version": v.version, "rev": new.new_rev}).to_string(), now);
                let owners = Self::package_owners(&mut *tx, &new.package).await?;
                let detail = serde_json::json!({"version": v.version, "tags": new.tags});
                Self::record_hook_event(&mut *tx, &new.package, "package:publish", detail, &owners, now).await?;
                let mut update = String::from("UPDATE packages SET rev = $1, modified_at = $2");
                if new.description.is_some() || new.keywords.is_some() || created {
                    update.push_str(", description = $4, keywords = $5");
                }
                update.push_str(" WHERE name = $3");
                let mut q = sqlx::query(&update).bind(&new.new_rev).bind(now).bind(&new.package);
                if new.description.is_some() || new.keywords.is_some() || created {
                    q = q.bind(&new.description).bind(&new.keywords);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(PublishOutcome::Published)
            }

            async fn update_package_once(&self, name: &str, c: &PackageChange) -> StoreResult<Option<Vec<VersionRecord>>> {
                let mut tx = self.pool.begin().await?;
                let Some((rev, _)) = Self::lock_package(&mut *tx, name).await? else { return Ok(None) };
                if c.expected_rev.as_ref().is_some_and(|expected| expected != &rev) {
                    return Ok(None);
                }
                let before = Self::event_snapshot(&mut *tx, name, c).await?;
                sqlx::query("UPDATE packages SET rev = $1, modified_at = $2 WHERE name = $3")
                    .bind(&c.new_rev)
                    .bind(c.now)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let removed = Self::remove_versions(&mut *tx, name, &c.remove_versions, c.now).await?;
                for (version, manifest) in &c.manifests {
                    sqlx::query("UPDATE versions SET manifest = $1 WHERE package = $2 AND version = $3")
                        .bind(manifest)
                        .bind(name)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                }
                for (version, message) in &c.deprecations {
                    Self::deprecate(&mut *tx, name, version, message.as_deref()).await?;
                }
                for tag in &c.remove_tags {
                    sqlx::query("DELETE FROM dist_tags WHERE package = $1 AND tag = $2").bind(name).bind(tag).execute(&mut *tx).await?;
                }
                for (tag, version) in &c.set_tags {
                    let exists = sqlx::query("SELECT 1 FROM versions WHERE package = $1 AND version = $2")
                        .bind(name)
                        .bind(version)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if !exists {
                        return Err(StoreError::Invalid(format!("version {version} of {name} is not published")));
                    }
                    Self::upsert_tag(&mut *tx, name, tag, version).await?;
                }
                Self::repair_tags(&mut *tx, name).await?;
                Self::refresh_search_fields(&mut *tx, name).await?;
                Self::apply_people(&mut *tx, name, c).await?;
                record_change!(tx, "PACKAGE_UPDATED", name, serde_json::json!({"rev": c.new_rev, "removed": c.remove_versions}).to_string(), c.now);
                Self::record_update_events(&mut *tx, name, c, &before, &removed).await?;
                tx.commit().await?;
                Ok(Some(removed))
            }

            /// Deletes the versions that still exist, leaving tombstones; the deleted rows.
            async fn remove_versions(conn: &mut <$db as sqlx::Database>::Connection, name: &str, versions: &[String], now: i64) -> StoreResult<Vec<VersionRecord>> {
                let mut removed = Vec::new();
                for version in versions {
                    let row = sqlx::query("DELETE FROM versions WHERE package = $1 AND version = $2 RETURNING *")
                        .bind(name)
                        .bind(version)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if let Some(row) = row {
                        removed.push(Self::version_from_row(&row)?);
                        sqlx::query("INSERT INTO tombstones (package, version, unpublished_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                            .bind(name)
                            .bind(version)
                            .bind(now)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(removed)
            }

            /// Maintainers and stars of a change.
            async fn apply_people(conn: &mut <$db as sqlx::Database>::Connection, name: &str, c: &PackageChange) -> StoreResult<()> {
                if let Some(list) = &c.maintainers {
                    sqlx::query("DELETE FROM maintainers WHERE package = $1").bind(name).execute(&mut *conn).await?;
                    for user in list {
                        sqlx::query("INSERT INTO maintainers (package, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                            .bind(name)
                            .bind(user)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                if let Some((user, starred)) = &c.star {
                    let sql = if *starred {
                        "INSERT INTO stars (package, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                    } else {
                        "DELETE FROM stars WHERE package = $1 AND user_name = $2"
                    };
                    sqlx::query(sql).bind(name).bind(user).execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn delete_package_once(&self, name: &str, expected_rev: Option<&str>) -> StoreResult<Option<Vec<VersionRecord>>> {
                let mut tx = self.pool.begin().await?;
                let Some((rev, _)) = Self::lock_package(&mut *tx, name).await? else { return Ok(None) };
                if expected_rev.is_some_and(|expected| expected != rev) {
                    return Ok(None);
                }
                let versions = Self::package_versions(&mut *tx, name).await?;
                let owners = Self::package_owners(&mut *tx, name).await?;
                sqlx::query("DELETE FROM packages WHERE name = $1").bind(name).execute(&mut *tx).await?;
                let now = super::now_ms();
                let detail = serde_json::json!({"versions": versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>()});
                Self::record_hook_event(&mut *tx, name, "package:unpublish", detail, &owners, now).await?;
                record_change!(tx, "PACKAGE_UNPUBLISHED", name, "{}".to_string(), now);
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

            async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
                if $backend == "sqlite" {
                    Some(self.writes.lock().await)
                } else {
                    None
                }
            }

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
                    is_admin: row.try_get(col("is_admin").as_str())?,
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

            fn registry_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Registry> {
                Ok(Registry {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    host: row.try_get("host")?,
                    change_stream: row.try_get("change_stream")?,
                    kind: row.try_get("type")?,
                    user_prefix: row.try_get("user_prefix")?,
                    auth_token: row.try_get("auth_token")?,
                    is_default: row.try_get("is_default")?,
                    from_config: row.try_get("from_config")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn scope_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Scope> {
                Ok(Scope {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    registry_id: row.try_get("registry_id")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn task_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Task> {
                Ok(Task {
                    id: row.try_get("id")?,
                    kind: row.try_get("type")?,
                    target: row.try_get("target")?,
                    state: row.try_get("state")?,
                    priority: row.try_get::<i32, _>("priority")? as i64,
                    data: row.try_get("data")?,
                    attempts: row.try_get::<i32, _>("attempts")? as i64,
                    error: row.try_get("error")?,
                    author: row.try_get("author")?,
                    claimed_by: row.try_get("claimed_by")?,
                    run_after: row.try_get("run_after")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    finished_at: row.try_get("finished_at")?,
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

            async fn change_signals(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<super::ChangeSignal>>> {
                Self::listen(&self.pool).await
            }

            async fn create_user(&self, user: &User) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO users (id, name, email, password_hash, rev, created_at, updated_at, is_admin) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&user.id)
                .bind(&user.name)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(&user.rev)
                .bind(user.created_at)
                .bind(user.updated_at)
                .bind(user.is_admin)
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
                let _turn = self.write_turn().await;
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
                let _turn = self.write_turn().await;
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
                     u.updated_at AS u_updated_at, u.is_admin AS u_is_admin \
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
                let _turn = self.write_turn().await;
                let done = sqlx::query("DELETE FROM tokens WHERE user_id = $1 AND token_key = $2")
                    .bind(user_id)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_tokens(&self, uses: &[(String, i64)]) -> StoreResult<()> {
                let _turn = self.write_turn().await;
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
                // One snapshot for all the queries: the rev matches the versions and tags.
                let mut tx = self.pool.begin().await?;
                if $backend == "postgres" {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
                }
                let Some(row) = sqlx::query("SELECT * FROM packages WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?
                else {
                    return Ok(None);
                };
                let versions = Self::package_versions(&mut *tx, name).await?;
                let tags = sqlx::query("SELECT tag, version FROM dist_tags WHERE package = $1 ORDER BY CASE WHEN tag = 'latest' THEN 0 ELSE 1 END, seq, tag")
                    .bind(name)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("tag")?, r.try_get("version")?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                let maintainers = sqlx::query(
                    "SELECT m.user_name, u.email FROM maintainers m LEFT JOIN users u ON u.name = m.user_name \
                     WHERE m.package = $1 ORDER BY m.user_name",
                )
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("user_name")?, r.try_get("email")?)))
                .collect::<StoreResult<Vec<_>>>()?;
                let stars = sqlx::query("SELECT user_name FROM stars WHERE package = $1 ORDER BY user_name")
                    .bind(name)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| Ok(r.try_get("user_name")?))
                    .collect::<StoreResult<Vec<_>>>()?;
                tx.commit().await?;
                Ok(Some(PackageRecord {
                    name: row.try_get("name")?,
                    rev: row.try_get("rev")?,
                    created_at: row.try_get("created_at")?,
                    modified_at: row.try_get("modified_at")?,
                    versions,
                    tags,
                    maintainers,
                    stars,
                    registry_id: row.try_get("registry_id")?,
                }))
            }

            async fn package_rev(&self, name: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT rev FROM packages WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.try_get("rev")).transpose()?)
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
                let _turn = self.write_turn().await;
                self.retrying("publish", || self.publish_once(new)).await
            }

            async fn update_package(&self, name: &str, c: &PackageChange) -> StoreResult<Option<Vec<VersionRecord>>> {
                let _turn = self.write_turn().await;
                self.retrying("package update", || self.update_package_once(name, c)).await
            }

            async fn delete_package(&self, name: &str, expected_rev: Option<&str>) -> StoreResult<Option<Vec<VersionRecord>>> {
                let _turn = self.write_turn().await;
                self.retrying("package removal", || self.delete_package_once(name, expected_rev)).await
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

            async fn untombstone(&self, package: &str, version: &str) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query("DELETE FROM tombstones WHERE package = $1 AND version = $2").bind(package).bind(version).execute(&self.pool).await?;
                Ok(())
            }

            async fn import_downloads(&self, package: &str, days: &[(String, i64)]) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                for (day, count) in days {
                    sqlx::query(
                        "INSERT INTO downloads (package, version, day, count) VALUES ($1, '*', $2, $3) \
                         ON CONFLICT (package, version, day) DO UPDATE SET count = excluded.count",
                    )
                    .bind(package)
                    .bind(day)
                    .bind(*count)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn put_block(&self, b: &Block) -> StoreResult<Block> {
                let _turn = self.write_turn().await;
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
                let _turn = self.write_turn().await;
                let done = sqlx::query("DELETE FROM blocks WHERE package = $1").bind(package).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn block(&self, package: &str) -> StoreResult<Option<Block>> {
                let row = sqlx::query("SELECT * FROM blocks WHERE package = $1").bind(package).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::block_from_row).transpose()
            }

            async fn list_registries(&self, offset: i64, limit: i64) -> StoreResult<(Vec<Registry>, i64)> {
                let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM registries").fetch_one(&self.pool).await?.try_get("n")?;
                let rows = sqlx::query("SELECT * FROM registries ORDER BY created_at, name LIMIT $1 OFFSET $2")
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                Ok((rows.iter().map(Self::registry_from_row).collect::<StoreResult<_>>()?, total))
            }

            async fn registry(&self, id_or_name: &str) -> StoreResult<Option<Registry>> {
                let row = sqlx::query("SELECT * FROM registries WHERE id = $1 OR name = $1 ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1")
                    .bind(id_or_name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::registry_from_row).transpose()
            }

            async fn create_registry(&self, r: &Registry) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                if r.is_default {
                    sqlx::query("UPDATE registries SET is_default = $1").bind(false).execute(&mut *tx).await?;
                }
                sqlx::query(
                    "INSERT INTO registries (id, name, host, change_stream, type, user_prefix, auth_token, is_default, from_config, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&r.id)
                .bind(&r.name)
                .bind(&r.host)
                .bind(&r.change_stream)
                .bind(&r.kind)
                .bind(&r.user_prefix)
                .bind(&r.auth_token)
                .bind(r.is_default)
                .bind(r.from_config)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || format!("registry {}", r.name)))?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_registry(&self, r: &Registry) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                if r.is_default {
                    sqlx::query("UPDATE registries SET is_default = $1 WHERE id <> $2").bind(false).bind(&r.id).execute(&mut *tx).await?;
                }
                sqlx::query(
                    "UPDATE registries SET name = $1, host = $2, change_stream = $3, type = $4, auth_token = $5, is_default = $6, \
                     from_config = $7, updated_at = $8 WHERE id = $9",
                )
                .bind(&r.name)
                .bind(&r.host)
                .bind(&r.change_stream)
                .bind(&r.kind)
                .bind(&r.auth_token)
                .bind(r.is_default)
                .bind(r.from_config)
                .bind(r.updated_at)
                .bind(&r.id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || format!("registry {}", r.name)))?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_registry(&self, id: &str) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM scopes WHERE registry_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM registries WHERE id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn scopes(&self, registry_id: Option<&str>) -> StoreResult<Vec<Scope>> {
                let rows = match registry_id {
                    Some(id) => sqlx::query("SELECT * FROM scopes WHERE registry_id = $1 ORDER BY name").bind(id).fetch_all(&self.pool).await?,
                    None => sqlx::query("SELECT * FROM scopes ORDER BY name").fetch_all(&self.pool).await?,
                };
                rows.iter().map(Self::scope_from_row).collect()
            }

            async fn scope_by_name(&self, name: &str) -> StoreResult<Option<Scope>> {
                let row = sqlx::query("SELECT * FROM scopes WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::scope_from_row).transpose()
            }

            async fn create_scope(&self, sc: &Scope) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query("INSERT INTO scopes (id, name, registry_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&sc.id)
                    .bind(&sc.name)
                    .bind(&sc.registry_id)
                    .bind(sc.created_at)
                    .bind(sc.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_unique(e, || format!("scope {}", sc.name)))?;
                Ok(())
            }

            async fn delete_scope(&self, id: &str) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("DELETE FROM scopes WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn enqueue_task(&self, t: &Task, merge: &MergeFn) -> StoreResult<Task> {
                let _turn = self.write_turn().await;
                // A concurrent enqueue may win the unique "one waiting task" index; then merge into it.
                for _ in 0..5 {
                    let mut tx = self.pool.begin().await?;
                    let existing = sqlx::query(&format!("SELECT * FROM tasks WHERE type = $1 AND target = $2 AND state = 'waiting' {}", $skip_locked.replace(" SKIP LOCKED", "")))
                        .bind(&t.kind)
                        .bind(&t.target)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = existing {
                        let mut current = Self::task_from_row(&row)?;
                        current.data = merge(&current.data, &t.data);
                        current.priority = current.priority.max(t.priority);
                        current.updated_at = t.updated_at;
                        sqlx::query("UPDATE tasks SET data = $1, priority = $2, updated_at = $3 WHERE id = $4")
                            .bind(&current.data)
                            .bind(current.priority as i32)
                            .bind(current.updated_at)
                            .bind(&current.id)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        return Ok(current);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO tasks (id, type, target, state, priority, data, attempts, error, author, claimed_by, run_after, \
                         heartbeat_at, created_at, updated_at, finished_at) \
                         VALUES ($1, $2, $3, 'waiting', $4, $5, 0, NULL, $6, NULL, $7, NULL, $8, $8, NULL)",
                    )
                    .bind(&t.id)
                    .bind(&t.kind)
                    .bind(&t.target)
                    .bind(t.priority as i32)
                    .bind(&t.data)
                    .bind(&t.author)
                    .bind(t.run_after)
                    .bind(t.created_at)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Ok(_) => {
                            tx.commit().await?;
                            let mut out = t.clone();
                            out.state = "waiting".into();
                            return Ok(out);
                        }
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(StoreError::Conflict(format!("task for {}", t.target)))
            }

            async fn task(&self, id: &str) -> StoreResult<Option<Task>> {
                let row = sqlx::query("SELECT * FROM tasks WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::task_from_row).transpose()
            }

            async fn claim_task(&self, worker: &str, now: i64) -> StoreResult<Option<Task>> {
                let _turn = self.write_turn().await;
                // A task whose target already runs waits (the unique index `tasks_one_running`
                // refuses the second of two simultaneous claims: no claim this time).
                let row = sqlx::query(&format!(
                    "UPDATE tasks SET state = 'processing', claimed_by = $1, attempts = attempts + 1, heartbeat_at = $2, updated_at = $2 \
                     WHERE id = (SELECT id FROM tasks t WHERE state = 'waiting' AND run_after <= $2 \
                     AND NOT EXISTS (SELECT 1 FROM tasks r WHERE r.state = 'processing' AND r.type = t.type AND r.target = t.target) \
                     ORDER BY priority DESC, created_at LIMIT 1 {}) AND state = 'waiting' RETURNING *",
                    $skip_locked
                ))
                .bind(worker)
                .bind(now)
                .fetch_optional(&self.pool)
                .await;
                match row {
                    Ok(row) => row.as_ref().map(Self::task_from_row).transpose(),
                    Err(e) => match map_unique(e, String::new) {
                        StoreError::Conflict(_) => Ok(None),
                        e => Err(e),
                    },
                }
            }

            async fn heartbeat_task(&self, id: &str, worker: &str, now: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query("UPDATE tasks SET heartbeat_at = $1 WHERE id = $2 AND claimed_by = $3 AND state = 'processing'")
                    .bind(now)
                    .bind(id)
                    .bind(worker)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn finish_task(&self, id: &str, state: &str, error: Option<&str>, now: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                self.finish_task_unlocked(id, state, error, now).await
            }

            async fn retry_task(&self, id: &str, run_after: i64, error: &str, now: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(
                    "UPDATE tasks SET state = 'waiting', claimed_by = NULL, run_after = $1, error = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(run_after)
                .bind(error)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await;
                match done {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        // A newer waiting task for the same target exists; it will do the work.
                        self.finish_task_unlocked(id, "error", Some(&format!("{error}; superseded by a newer waiting task")), now).await
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn recover_stale_tasks(&self, cutoff: i64, now: i64) -> StoreResult<u64> {
                let _turn = self.write_turn().await;
                let stale = sqlx::query("SELECT id FROM tasks WHERE state = 'processing' AND (heartbeat_at IS NULL OR heartbeat_at < $1)")
                    .bind(cutoff)
                    .fetch_all(&self.pool)
                    .await?;
                let mut n = 0;
                for row in stale {
                    let id: String = row.try_get("id")?;
                    let moved = sqlx::query(
                        "UPDATE tasks SET state = 'waiting', claimed_by = NULL, run_after = $1, updated_at = $1, \
                         error = 'its worker stopped; queued again' WHERE id = $2 AND state = 'processing' AND (heartbeat_at IS NULL OR heartbeat_at < $3)",
                    )
                    .bind(now)
                    .bind(&id)
                    .bind(cutoff)
                    .execute(&self.pool)
                    .await;
                    match moved {
                        Ok(r) => n += r.rows_affected(),
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                            self.finish_task_unlocked(&id, "error", Some("its worker stopped; a newer waiting task replaces it"), now).await?;
                            n += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(n)
            }

            async fn changes_since(&self, since: i64, limit: i64) -> StoreResult<Vec<Change>> {
                sqlx::query("SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(since)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(Change {
                            seq: r.try_get("seq")?,
                            kind: r.try_get("type")?,
                            package: r.try_get("package")?,
                            data: r.try_get("data")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn change_position(&self, registry_id: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT since FROM change_positions WHERE registry_id = $1").bind(registry_id).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.try_get("since")).transpose()?)
            }

            async fn set_change_position(&self, registry_id: &str, since: &str, now: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO change_positions (registry_id, since, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (registry_id) DO UPDATE SET since = excluded.since, updated_at = excluded.updated_at",
                )
                .bind(registry_id)
                .bind(since)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn proxy_packument(&self, name: &str) -> StoreResult<Option<(String, String, i64)>> {
                let row = sqlx::query("SELECT registry_id, doc, fetched_at FROM proxy_packuments WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| Ok::<_, StoreError>((r.try_get("registry_id")?, r.try_get("doc")?, r.try_get("fetched_at")?))).transpose()?)
            }

            async fn put_proxy_packument(&self, name: &str, registry_id: &str, doc: &str, now: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO proxy_packuments (name, registry_id, doc, fetched_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET registry_id = excluded.registry_id, doc = excluded.doc, fetched_at = excluded.fetched_at",
                )
                .bind(name)
                .bind(registry_id)
                .bind(doc)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn proxy_tarball(&self, name: &str, file: &str) -> StoreResult<Option<ProxyTarball>> {
                let row = sqlx::query("SELECT * FROM proxy_tarballs WHERE name = $1 AND file = $2").bind(name).bind(file).fetch_optional(&self.pool).await?;
                row.map(|r| {
                    Ok(ProxyTarball {
                        name: r.try_get("name")?,
                        file: r.try_get("file")?,
                        version: r.try_get("version")?,
                        blob_key: r.try_get("blob_key")?,
                        size: r.try_get("size")?,
                        integrity: r.try_get("integrity")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .transpose()
            }

            async fn put_proxy_tarball(&self, t: &ProxyTarball) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(
                    "INSERT INTO proxy_tarballs (name, file, version, blob_key, size, integrity, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name, file) DO NOTHING",
                )
                .bind(&t.name)
                .bind(&t.file)
                .bind(&t.version)
                .bind(&t.blob_key)
                .bind(t.size)
                .bind(&t.integrity)
                .bind(t.created_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn referenced_blobs(&self, keys: &[String]) -> StoreResult<Vec<String>> {
                let mut found = Vec::new();
                for chunk in keys.chunks(200) {
                    let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                    let sql = format!(
                        "SELECT tarball_key AS k FROM versions WHERE tarball_key IN ({list}) \
                         UNION SELECT blob_key AS k FROM proxy_tarballs WHERE blob_key IN ({list}) \
                         UNION SELECT blob_key AS k FROM binaries WHERE blob_key IN ({list})"
                    );
                    let mut q = sqlx::query(&sql);
                    for key in chunk {
                        q = q.bind(key);
                    }
                    for row in q.fetch_all(&self.pool).await? {
                        found.push(row.try_get("k")?);
                    }
                }
                Ok(found)
            }

            async fn add_downloads(&self, rows: &[(String, String, String, i64)]) -> StoreResult<()> {
                let _turn = self.write_turn().await;
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

// SQLite has a single writer, so a claim needs no row locks; PostgreSQL skips
// rows other workers are claiming.
// A package write locks the package's row first: `FOR UPDATE` on PostgreSQL;
// SQLite's writers are serialized by `write_turn` and its database lock.
sql_store!(SqliteStore, sqlx::Sqlite, sqlx::SqlitePool, "sqlite", embedded::SQLITE, "", "");
sql_store!(PostgresStore, sqlx::Postgres, sqlx::PgPool, "postgres", embedded::POSTGRES, "FOR UPDATE SKIP LOCKED", " FOR UPDATE");
hooks_sql!(SqliteStore, sqlx::Sqlite, "sqlite", "", "");
hooks_sql!(PostgresStore, sqlx::Postgres, "postgres", "FOR UPDATE SKIP LOCKED", " FOR UPDATE");
binaries_sql!(SqliteStore, sqlx::Sqlite);
binaries_sql!(PostgresStore, sqlx::Postgres);
web_sql!(SqliteStore, sqlx::Sqlite);
web_sql!(PostgresStore, sqlx::Postgres);

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
        Ok(SqliteStore { pool, writes: tokio::sync::Mutex::new(()) })
    }
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let options = PgConnectOptions::from_str(url)?;
        let pool =
            PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10)).connect_with(options).await?;
        Ok(PostgresStore { pool, writes: tokio::sync::Mutex::new(()) })
    }
}
