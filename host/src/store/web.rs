//! Web UI storage: npm's web logins, browser sessions, and the few listings
//! the pages need beyond the npm API's (recent packages, counts, dependents).
//! The SQL is the `web_sql!` macro below, expanded by `sql.rs` for both backends.

use async_trait::async_trait;

use super::{StoreResult, User};

/// A pending npm web login (`POST /-/v1/login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebLogin {
    /// sha512 hex of the id in the loginUrl.
    pub login_key: String,
    /// sha512 hex of the secret in the doneUrl.
    pub done_key: String,
    pub hostname: Option<String>,
    /// Set once a person signed in at the loginUrl.
    pub user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What polling the doneUrl finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebLoginPoll {
    /// Signed in: the row is gone (a doneUrl answers a token once); the user.
    Approved(User),
    Pending,
    /// Unknown, expired or already answered.
    Gone,
}

/// A package in a listing of the home page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSummary {
    pub name: String,
    pub description: Option<String>,
    pub modified_at: i64,
}

#[async_trait]
pub trait WebStore {
    async fn create_web_login(&self, login: &WebLogin) -> StoreResult<()>;
    /// The unexpired login whose loginUrl id hashes to `login_key`.
    async fn web_login(&self, login_key: &str, now: i64) -> StoreResult<Option<WebLogin>>;
    /// Marks an unexpired, not yet approved login as signed in by `user_id`; false when there is none.
    async fn approve_web_login(&self, login_key: &str, user_id: &str, now: i64) -> StoreResult<bool>;
    /// Takes an approved login (deleting it, so only one poll gets it) or says it is pending or gone.
    async fn poll_web_login(&self, done_key: &str, now: i64) -> StoreResult<WebLoginPoll>;
    /// Deletes expired logins and sessions.
    async fn purge_web(&self, now: i64) -> StoreResult<()>;

    async fn create_web_session(&self, session_key: &str, user_id: &str, now: i64, expires_at: i64) -> StoreResult<()>;
    /// The user of an unexpired session.
    async fn web_session_user(&self, session_key: &str, now: i64) -> StoreResult<Option<User>>;
    async fn delete_web_session(&self, session_key: &str) -> StoreResult<()>;

    /// Packages by last change, newest first, from position `offset`.
    async fn recent_packages(&self, offset: i64, limit: i64) -> StoreResult<Vec<PackageSummary>>;
    /// (packages, versions) stored here.
    async fn package_counts(&self) -> StoreResult<(i64, i64)>;
    /// Up to `limit` packages named after `after` (in name order) with their
    /// number of versions: a walk over every package, for counts a read
    /// policy filters.
    async fn package_version_counts(&self, after: &str, limit: i64) -> StoreResult<Vec<(String, i64)>>;
    /// Packages whose `latest` manifest text mentions `"name"` (candidates: the
    /// caller checks the dependency fields), by name, at most `limit`.
    async fn dependent_candidates(&self, name: &str, limit: i64) -> StoreResult<Vec<(String, String)>>;
    /// Packages `user` maintains, by name.
    async fn packages_of(&self, user: &str) -> StoreResult<Vec<String>>;
    /// The readme stored with one version.
    async fn version_readme(&self, package: &str, version: &str) -> StoreResult<Option<String>>;
    /// The newest tasks (sync and binary syncs), newest first.
    async fn recent_tasks(&self, limit: i64) -> StoreResult<Vec<super::Task>>;
    /// The newest blocks, newest first.
    async fn recent_blocks(&self, limit: i64) -> StoreResult<Vec<super::Block>>;
}

/// `web_sql!(Store, Db)`: `impl WebStore` for one backend.
macro_rules! web_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl $crate::store::web::WebStore for $store {
            async fn create_web_login(&self, l: &$crate::store::web::WebLogin) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO web_logins (login_key, done_key, hostname, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&l.login_key)
                .bind(&l.done_key)
                .bind(&l.hostname)
                .bind(&l.user_id)
                .bind(l.created_at)
                .bind(l.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn web_login(&self, login_key: &str, now: i64) -> StoreResult<Option<$crate::store::web::WebLogin>> {
                let row = sqlx::query("SELECT * FROM web_logins WHERE login_key = $1 AND expires_at > $2")
                    .bind(login_key)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok($crate::store::web::WebLogin {
                        login_key: r.try_get("login_key")?,
                        done_key: r.try_get("done_key")?,
                        hostname: r.try_get("hostname")?,
                        user_id: r.try_get("user_id")?,
                        created_at: r.try_get("created_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .transpose()
            }

            async fn approve_web_login(&self, login_key: &str, user_id: &str, now: i64) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("UPDATE web_logins SET user_id = $1 WHERE login_key = $2 AND user_id IS NULL AND expires_at > $3")
                    .bind(user_id)
                    .bind(login_key)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn poll_web_login(&self, done_key: &str, now: i64) -> StoreResult<$crate::store::web::WebLoginPoll> {
                use $crate::store::web::WebLoginPoll;
                let _turn = self.write_turn().await;
                let taken = sqlx::query(
                    "DELETE FROM web_logins WHERE done_key = $1 AND user_id IS NOT NULL AND expires_at > $2 RETURNING user_id",
                )
                .bind(done_key)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = taken {
                    let user_id: String = row.try_get("user_id")?;
                    let user = sqlx::query("SELECT * FROM users WHERE id = $1").bind(&user_id).fetch_optional(&self.pool).await?;
                    return Ok(match user {
                        Some(r) => WebLoginPoll::Approved(Self::user_from_row(&r, "")?),
                        None => WebLoginPoll::Gone,
                    });
                }
                let pending = sqlx::query("SELECT 1 AS one FROM web_logins WHERE done_key = $1 AND expires_at > $2")
                    .bind(done_key)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(if pending.is_some() { WebLoginPoll::Pending } else { WebLoginPoll::Gone })
            }

            async fn purge_web(&self, now: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query("DELETE FROM web_logins WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
                sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
                Ok(())
            }

            async fn create_web_session(&self, session_key: &str, user_id: &str, now: i64, expires_at: i64) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query("INSERT INTO web_sessions (session_key, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(session_key)
                    .bind(user_id)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn web_session_user(&self, session_key: &str, now: i64) -> StoreResult<Option<User>> {
                let row = sqlx::query(
                    "SELECT u.* FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.session_key = $1 AND s.expires_at > $2",
                )
                .bind(session_key)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Self::user_from_row(&r, "")).transpose()
            }

            async fn delete_web_session(&self, session_key: &str) -> StoreResult<()> {
                let _turn = self.write_turn().await;
                sqlx::query("DELETE FROM web_sessions WHERE session_key = $1").bind(session_key).execute(&self.pool).await?;
                Ok(())
            }

            async fn recent_packages(&self, offset: i64, limit: i64) -> StoreResult<Vec<$crate::store::web::PackageSummary>> {
                let rows =
                    sqlx::query("SELECT name, description, modified_at FROM packages ORDER BY modified_at DESC, name LIMIT $1 OFFSET $2")
                        .bind(limit)
                        .bind(offset)
                        .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::web::PackageSummary {
                            name: r.try_get("name")?,
                            description: r.try_get("description")?,
                            modified_at: r.try_get("modified_at")?,
                        })
                    })
                    .collect()
            }

            async fn package_counts(&self) -> StoreResult<(i64, i64)> {
                let row = sqlx::query("SELECT (SELECT COUNT(*) FROM packages) AS p, (SELECT COUNT(*) FROM versions) AS v")
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_get("p")?, row.try_get("v")?))
            }

            async fn package_version_counts(&self, after: &str, limit: i64) -> StoreResult<Vec<(String, i64)>> {
                let rows = sqlx::query(
                    "SELECT p.name, (SELECT COUNT(*) FROM versions v WHERE v.package = p.name) AS n FROM packages p \
                     WHERE p.name > $1 ORDER BY p.name LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("n")?))).collect()
            }

            async fn dependent_candidates(&self, name: &str, limit: i64) -> StoreResult<Vec<(String, String)>> {
                let escaped = name.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                let rows = sqlx::query(
                    "SELECT v.package, v.manifest FROM versions v JOIN dist_tags t \
                     ON t.package = v.package AND t.tag = 'latest' AND t.version = v.version \
                     WHERE v.package <> $1 AND v.manifest LIKE $2 ESCAPE '\\' ORDER BY v.package LIMIT $3",
                )
                .bind(name)
                .bind(format!("%\"{escaped}\"%"))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok((r.try_get("package")?, r.try_get("manifest")?))).collect()
            }

            async fn packages_of(&self, user: &str) -> StoreResult<Vec<String>> {
                let rows = sqlx::query("SELECT package FROM maintainers WHERE user_name = $1 ORDER BY package")
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get("package")?)).collect()
            }

            async fn version_readme(&self, package: &str, version: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT readme FROM versions WHERE package = $1 AND version = $2")
                    .bind(package)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => r.try_get("readme")?,
                    None => None,
                })
            }

            async fn recent_tasks(&self, limit: i64) -> StoreResult<Vec<Task>> {
                let rows = sqlx::query("SELECT * FROM tasks ORDER BY created_at DESC, id LIMIT $1").bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(Self::task_from_row).collect()
            }

            async fn recent_blocks(&self, limit: i64) -> StoreResult<Vec<Block>> {
                let rows = sqlx::query("SELECT * FROM blocks ORDER BY created_at DESC, package LIMIT $1").bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(Self::block_from_row).collect()
            }
        }
    };
}
