//! Binary mirror storage: one row per mirrored file, and one per directory
//! whose every child was mirrored. The SQL is the `binaries_sql!` macro below,
//! expanded by `sql.rs` for both backends.

use async_trait::async_trait;

use super::StoreResult;

/// One entry of a mirrored tree. `parent` is `/` or `/a/b/`; a directory's
/// `name` ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryEntry {
    pub category: String,
    pub parent: String,
    pub name: String,
    pub id: String,
    pub is_dir: bool,
    pub size: i64,
    /// The date as the upstream shows it.
    pub date: String,
    pub sha256: Option<String>,
    pub blob_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait BinaryStore {
    /// The entries of one directory, by name; with `since`, only those
    /// modified at or after it (milliseconds), oldest first, at most `limit`.
    async fn binary_entries(&self, category: &str, parent: &str, since: Option<i64>, limit: i64) -> StoreResult<Vec<BinaryEntry>>;
    async fn binary_entry(&self, category: &str, parent: &str, name: &str) -> StoreResult<Option<BinaryEntry>>;
    /// Inserts or replaces the entry (keeping its `id` and `created_at`), and
    /// moves the `updated_at` of every directory row above it to the entry's
    /// (in the same transaction, so `since` listings of a parent show a
    /// directory that changed below); returns the blob key the replaced row
    /// named, if another.
    async fn put_binary_entry(&self, e: &BinaryEntry) -> StoreResult<Option<String>>;
}

/// The directory rows above entries of `parent` (`/a/b/`: `("/", "a/")`,
/// `("/a/", "b/")`).
pub fn ancestors(parent: &str) -> Vec<(String, String)> {
    let segments: Vec<&str> = parent.split('/').filter(|s| !s.is_empty()).collect();
    (0..segments.len())
        .map(|i| {
            let above: String = segments[..i].iter().map(|s| format!("{s}/")).collect();
            (format!("/{above}"), format!("{}/", segments[i]))
        })
        .collect()
}

/// `binaries_sql!(Store, Db)`: `impl BinaryStore` for one backend.
macro_rules! binaries_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            fn binary_row(r: &<$db as sqlx::Database>::Row) -> StoreResult<$crate::store::binaries::BinaryEntry>
            {
                Ok($crate::store::binaries::BinaryEntry {
                    category: r.try_get("category")?,
                    parent: r.try_get("parent")?,
                    name: r.try_get("name")?,
                    id: r.try_get("id")?,
                    is_dir: r.try_get("is_dir")?,
                    size: r.try_get("size")?,
                    date: r.try_get("date")?,
                    sha256: r.try_get("sha256")?,
                    blob_key: r.try_get("blob_key")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }
        }

        #[async_trait]
        impl $crate::store::binaries::BinaryStore for $store {
            async fn binary_entries(&self, category: &str, parent: &str, since: Option<i64>, limit: i64) -> StoreResult<Vec<$crate::store::binaries::BinaryEntry>> {
                let rows = match since {
                    None => {
                        sqlx::query("SELECT * FROM binaries WHERE category = $1 AND parent = $2 ORDER BY name LIMIT $3")
                            .bind(category)
                            .bind(parent)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some(since) => {
                        sqlx::query("SELECT * FROM binaries WHERE category = $1 AND parent = $2 AND updated_at >= $3 ORDER BY updated_at, name LIMIT $4")
                            .bind(category)
                            .bind(parent)
                            .bind(since)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                rows.iter().map(Self::binary_row).collect()
            }

            async fn binary_entry(&self, category: &str, parent: &str, name: &str) -> StoreResult<Option<$crate::store::binaries::BinaryEntry>> {
                let row = sqlx::query("SELECT * FROM binaries WHERE category = $1 AND parent = $2 AND name = $3")
                    .bind(category)
                    .bind(parent)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::binary_row).transpose()
            }

            async fn put_binary_entry(&self, e: &$crate::store::binaries::BinaryEntry) -> StoreResult<Option<String>> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let old: Option<Option<String>> = sqlx::query("SELECT blob_key FROM binaries WHERE category = $1 AND parent = $2 AND name = $3")
                    .bind(&e.category)
                    .bind(&e.parent)
                    .bind(&e.name)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("blob_key"))
                    .transpose()?;
                sqlx::query(
                    "INSERT INTO binaries (category, parent, name, id, is_dir, size, date, sha256, blob_key, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (category, parent, name) DO UPDATE SET is_dir = excluded.is_dir, size = excluded.size, \
                     date = excluded.date, sha256 = excluded.sha256, blob_key = excluded.blob_key, updated_at = excluded.updated_at",
                )
                .bind(&e.category)
                .bind(&e.parent)
                .bind(&e.name)
                .bind(&e.id)
                .bind(e.is_dir)
                .bind(e.size)
                .bind(&e.date)
                .bind(&e.sha256)
                .bind(&e.blob_key)
                .bind(e.created_at)
                .bind(e.updated_at)
                .execute(&mut *tx)
                .await?;
                for (parent, name) in $crate::store::binaries::ancestors(&e.parent) {
                    sqlx::query("UPDATE binaries SET updated_at = $1 WHERE category = $2 AND parent = $3 AND name = $4 AND updated_at < $1")
                        .bind(e.updated_at)
                        .bind(&e.category)
                        .bind(parent)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(old.flatten().filter(|k| Some(k) != e.blob_key.as_ref()))
            }
        }
    };
}
