//! The SQL of [`HookStore`](super::hooks::HookStore) and of the outbox rows a
//! package write inserts in its own transaction. Expanded by `sql.rs` for both
//! backends, like `sql_store!`.

/// `hooks_sql!(Store, Db, backend, skip_locked, for_update)`
macro_rules! hooks_sql {
    ($store:ident, $db:ty, $backend:literal, $skip_locked:literal, $for_update:literal) => {
        impl $store {
            /// The package's maintainers, as the transaction sees them.
            async fn package_owners(conn: &mut <$db as sqlx::Database>::Connection, name: &str) -> StoreResult<Vec<String>> {
                let rows = sqlx::query("SELECT user_name FROM maintainers WHERE package = $1 ORDER BY user_name")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get::<String, _>("user_name")?)).collect()
            }

            /// Adds one event to the outbox, inside the caller's transaction.
            async fn record_hook_event(
                conn: &mut <$db as sqlx::Database>::Connection,
                package: &str,
                event: &str,
                data: serde_json::Value,
                owners: &[String],
                now: i64,
            ) -> StoreResult<()> {
                sqlx::query("INSERT INTO hook_events (package, event, data, owners, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(package)
                    .bind(event)
                    .bind(data.to_string())
                    .bind(serde_json::to_string(owners).expect("strings serialize"))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// What a change can alter, read before it is applied (to name its events after).
            async fn event_snapshot(
                conn: &mut <$db as sqlx::Database>::Connection,
                name: &str,
                c: &PackageChange,
            ) -> StoreResult<$crate::store::hooks_sql::Snapshot> {
                let tags = sqlx::query("SELECT tag, version FROM dist_tags WHERE package = $1")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get::<String, _>("tag")?, r.try_get::<String, _>("version")?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                let owners = Self::package_owners(conn, name).await?;
                let mut deprecated = Vec::new();
                for version in c.manifests.iter().map(|(v, _)| v).chain(c.deprecations.iter().map(|(v, _)| v)) {
                    deprecated.push((version.clone(), Self::deprecation(conn, name, version).await?));
                }
                let starred = match &c.star {
                    Some((user, _)) => Some(
                        sqlx::query("SELECT 1 FROM stars WHERE package = $1 AND user_name = $2")
                            .bind(name)
                            .bind(user)
                            .fetch_optional(&mut *conn)
                            .await?
                            .is_some(),
                    ),
                    None => None,
                };
                Ok($crate::store::hooks_sql::Snapshot { tags, owners, deprecated, starred })
            }

            /// The `deprecated` message of a stored version (None: not deprecated or gone).
            async fn deprecation(conn: &mut <$db as sqlx::Database>::Connection, name: &str, version: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT manifest FROM versions WHERE package = $1 AND version = $2")
                    .bind(name)
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let manifest: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>("manifest")?).unwrap_or_default();
                Ok(manifest.get("deprecated").and_then(|d| d.as_str()).filter(|d| !d.is_empty()).map(str::to_string))
            }

            /// Records the events of an applied change: what differs from `before`.
            async fn record_update_events(
                conn: &mut <$db as sqlx::Database>::Connection,
                name: &str,
                c: &PackageChange,
                before: &$crate::store::hooks_sql::Snapshot,
                removed: &[VersionRecord],
            ) -> StoreResult<()> {
                let after = Self::event_snapshot(conn, name, c).await?;
                let events = $crate::store::hooks_sql::diff(before, &after, removed, c.star.as_ref().map(|(u, _)| u.as_str()));
                // Owner hooks of a removed maintainer still hear of the removal.
                let mut owners = after.owners.clone();
                owners.extend(before.owners.iter().filter(|o| !after.owners.contains(o)).cloned());
                for (event, data) in events {
                    Self::record_hook_event(conn, name, event, data, &owners, c.now).await?;
                }
                Ok(())
            }

            fn hook_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<$crate::store::hooks::Hook> {
                Ok($crate::store::hooks::Hook {
                    id: row.try_get("id")?,
                    owner: row.try_get("owner")?,
                    kind: row.try_get("type")?,
                    name: row.try_get("name")?,
                    endpoint: row.try_get("endpoint")?,
                    secret: row.try_get("secret")?,
                    formatter: row.try_get("formatter")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    delivered: row.try_get("delivered")?,
                    last_delivery: row.try_get("last_delivery")?,
                    response_code: row.try_get::<Option<i32>, _>("response_code")?.map(i64::from),
                    status: row.try_get("status")?,
                })
            }

            /// The fanned-out event `seq` (None: pruned, which a pending delivery prevents).
            async fn load_sent_event(pool: &sqlx::Pool<$db>, seq: i64) -> StoreResult<Option<$crate::store::hooks::SentEvent>> {
                let row = sqlx::query("SELECT * FROM hook_payloads WHERE event_seq = $1").bind(seq).fetch_optional(pool).await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some($crate::store::hooks::SentEvent {
                    seq: r.try_get("event_seq")?,
                    package: r.try_get("package")?,
                    event: r.try_get("event")?,
                    data: r.try_get("data")?,
                    created_at: r.try_get("created_at")?,
                    payload: r.try_get("payload")?,
                }))
            }

            fn delivery_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<$crate::store::hooks::Delivery> {
                Ok($crate::store::hooks::Delivery {
                    id: row.try_get("id")?,
                    hook_id: row.try_get("hook_id")?,
                    event_seq: row.try_get("event_seq")?,
                    event: row.try_get("event")?,
                    package: row.try_get("package")?,
                    body: Some(row.try_get::<String, _>("body")?).filter(|b| !b.is_empty()),
                    state: row.try_get("state")?,
                    attempts: row.try_get::<i32, _>("attempts")? as i64,
                    response_code: row.try_get::<Option<i32>, _>("response_code")?.map(i64::from),
                    last_error: row.try_get("last_error")?,
                    run_after: row.try_get("run_after")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    finished_at: row.try_get("finished_at")?,
                })
            }
        }

        hooks_store_impl!($store, $db, $backend, $skip_locked, $for_update);
    };
}

/// The state a change's events are computed from.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub tags: Vec<(String, String)>,
    pub owners: Vec<String>,
    /// (version, deprecation message) of the versions the change touches.
    pub deprecated: Vec<(String, Option<String>)>,
    /// Whether the starring user had starred the package.
    pub starred: Option<bool>,
}

/// The events between two snapshots: unpublishes, tags, deprecations, owners,
/// stars; `package:change` when nothing more specific changed.
pub fn diff(
    before: &Snapshot,
    after: &Snapshot,
    removed: &[super::VersionRecord],
    star_user: Option<&str>,
) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let mut out = Vec::new();
    for v in removed {
        out.push(("package:unpublish", json!({"version": v.version})));
    }
    let removed_versions: Vec<&str> = removed.iter().map(|v| v.version.as_str()).collect();
    for (tag, version) in &after.tags {
        if !before.tags.iter().any(|(t, v)| t == tag && v == version) {
            out.push(("package:dist-tag", json!({"tag": tag, "version": version})));
        }
    }
    for (tag, version) in &before.tags {
        if !after.tags.iter().any(|(t, _)| t == tag) {
            out.push(("package:dist-tag-rm", json!({"tag": tag, "version": version})));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for ((version, was), (_, now)) in before.deprecated.iter().zip(&after.deprecated) {
        if was == now || removed_versions.contains(&version.as_str()) || !seen.insert(version.clone()) {
            continue;
        }
        match now {
            Some(message) => out.push(("package:deprecate", json!({"version": version, "deprecated": message}))),
            None => out.push(("package:undeprecate", json!({"version": version}))),
        }
    }
    for user in after.owners.iter().filter(|u| !before.owners.contains(u)) {
        out.push(("package:owner", json!({"user": user})));
    }
    for user in before.owners.iter().filter(|u| !after.owners.contains(u)) {
        out.push(("package:owner-rm", json!({"user": user})));
    }
    if let (Some(user), Some(was), Some(now)) = (star_user, before.starred, after.starred) {
        if was != now {
            out.push((if now { "package:star" } else { "package:unstar" }, json!({"user": user})));
        }
    }
    if out.is_empty() {
        out.push(("package:change", json!({})));
    }
    out
}

/// `impl HookStore` for one backend.
macro_rules! hooks_store_impl {
    ($store:ident, $db:ty, $backend:literal, $skip_locked:literal, $for_update:literal) => {
        #[async_trait]
        impl $crate::store::hooks::HookStore for $store {
            async fn create_hook(&self, h: &$crate::store::hooks::Hook, max_per_user: i64) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                // The owner's row is the lock that makes count-then-insert safe.
                sqlx::query(concat!("SELECT id FROM users WHERE name = $1", $for_update)).bind(&h.owner).fetch_optional(&mut *tx).await?;
                let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM hooks WHERE owner = $1").bind(&h.owner).fetch_one(&mut *tx).await?.try_get("n")?;
                if count >= max_per_user {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO hooks (id, owner, type, name, endpoint, secret, created_at, updated_at, delivered, status, formatter) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, $10)",
                )
                .bind(&h.id)
                .bind(&h.owner)
                .bind(&h.kind)
                .bind(&h.name)
                .bind(&h.endpoint)
                .bind(&h.secret)
                .bind(h.created_at)
                .bind(h.updated_at)
                .bind(&h.status)
                .bind(&h.formatter)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn hook(&self, id: &str) -> StoreResult<Option<$crate::store::hooks::Hook>> {
                let row = sqlx::query("SELECT * FROM hooks WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::hook_from_row).transpose()
            }

            async fn hooks(&self, owner: Option<&str>, name: Option<&str>, offset: i64, limit: i64) -> StoreResult<Vec<$crate::store::hooks::Hook>> {
                sqlx::query(
                    "SELECT * FROM hooks WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR name = $2) \
                     ORDER BY created_at, id LIMIT $3 OFFSET $4",
                )
                .bind(owner)
                .bind(name)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::hook_from_row)
                .collect()
            }

            async fn hook_overviews(&self, owner: Option<&str>, offset: i64, limit: i64) -> StoreResult<Vec<$crate::store::hooks::HookOverview>> {
                // `state <> 'pending'` lets SQLite use the partial index of finished deliveries.
                let rows = sqlx::query(
                    "SELECT h.*, \
                     (SELECT COUNT(*) FROM hook_deliveries d WHERE d.hook_id = h.id AND d.state = 'pending') AS pending_count, \
                     (SELECT COUNT(*) FROM hook_deliveries d WHERE d.hook_id = h.id AND d.state <> 'pending' AND d.state = 'failed') \
                     AS failed_count FROM hooks h WHERE ($1 IS NULL OR h.owner = $1) ORDER BY h.created_at, h.id LIMIT $2 OFFSET $3",
                )
                .bind(owner)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::hooks::HookOverview {
                            hook: Self::hook_from_row(r)?,
                            pending: r.try_get("pending_count")?,
                            failed: r.try_get("failed_count")?,
                        })
                    })
                    .collect()
            }

            async fn update_hook(&self, id: &str, endpoint: &str, secret: &str, formatter: Option<&str>, now: i64) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("UPDATE hooks SET endpoint = $1, secret = $2, formatter = $3, updated_at = $4 WHERE id = $5")
                    .bind(endpoint)
                    .bind(secret)
                    .bind(formatter)
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_hook(&self, id: &str) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM hook_deliveries WHERE hook_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM hooks WHERE id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn hook_events(&self, limit: i64) -> StoreResult<Vec<$crate::store::hooks::HookEvent>> {
                sqlx::query("SELECT * FROM hook_events ORDER BY seq LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| {
                        let owners: String = r.try_get("owners")?;
                        Ok($crate::store::hooks::HookEvent {
                            seq: r.try_get("seq")?,
                            package: r.try_get("package")?,
                            event: r.try_get("event")?,
                            data: r.try_get("data")?,
                            owners: serde_json::from_str(&owners).map_err(|e| StoreError::Corrupt(format!("hook_events.owners: {e}")))?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn matching_hooks(&self, package: &str, owners: &[String]) -> StoreResult<Vec<$crate::store::hooks::Hook>> {
                let scope = $crate::store::hooks::scope_of(package).unwrap_or("");
                let mut hooks: Vec<$crate::store::hooks::Hook> = sqlx::query(
                    "SELECT * FROM hooks WHERE (type = 'package' AND name = $1) OR (type = 'scope' AND name = $2) ORDER BY created_at, id",
                )
                .bind(package)
                .bind(scope)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::hook_from_row)
                .collect::<StoreResult<_>>()?;
                for owner in owners {
                    let rows = sqlx::query("SELECT * FROM hooks WHERE type = 'owner' AND name = $1 ORDER BY created_at, id").bind(owner).fetch_all(&self.pool).await?;
                    for row in &rows {
                        let hook = Self::hook_from_row(row)?;
                        if !hooks.iter().any(|h| h.id == hook.id) {
                            hooks.push(hook);
                        }
                    }
                }
                Ok(hooks)
            }

            async fn fan_out(
                &self,
                e: &$crate::store::hooks::HookEvent,
                payload: &str,
                deliveries: &[$crate::store::hooks::NewDelivery],
                now: i64,
            ) -> StoreResult<bool> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let taken = sqlx::query("DELETE FROM hook_events WHERE seq = $1").bind(e.seq).execute(&mut *tx).await?.rows_affected();
                if taken == 0 {
                    return Ok(false);
                }
                if !deliveries.is_empty() {
                    // Once per event: the deliveries' rows hold no body.
                    sqlx::query(
                        "INSERT INTO hook_payloads (event_seq, package, event, data, created_at, payload) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (event_seq) DO NOTHING",
                    )
                    .bind(e.seq)
                    .bind(&e.package)
                    .bind(&e.event)
                    .bind(&e.data)
                    .bind(e.created_at)
                    .bind(payload)
                    .execute(&mut *tx)
                    .await?;
                }
                for d in deliveries {
                    sqlx::query(
                        "INSERT INTO hook_deliveries (id, hook_id, event_seq, event, package, body, state, attempts, run_after, claimed_until, \
                         created_at, updated_at) SELECT $1, $2, $3, $4, $5, '', 'pending', 0, $6, 0, $6, $6 \
                         WHERE EXISTS (SELECT 1 FROM hooks WHERE id = $2) ON CONFLICT (event_seq, hook_id) DO NOTHING",
                    )
                    .bind(&d.id)
                    .bind(&d.hook_id)
                    .bind(e.seq)
                    .bind(&e.event)
                    .bind(&e.package)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_deliveries(
                &self,
                now: i64,
                lease_ms: i64,
                limit: i64,
            ) -> StoreResult<Vec<($crate::store::hooks::Delivery, $crate::store::hooks::Hook)>> {
                let turn = self.write_turn().await;
                // Only the oldest pending delivery of a hook qualifies, so one
                // statement claims at most one per hook.
                let rows = sqlx::query(&format!(
                    "UPDATE hook_deliveries SET attempts = attempts + 1, claimed_until = $1, updated_at = $2 \
                     WHERE id IN (SELECT d.id FROM hook_deliveries d WHERE d.state = 'pending' AND d.run_after <= $2 AND d.claimed_until <= $2 \
                     AND NOT EXISTS (SELECT 1 FROM hook_deliveries o WHERE o.hook_id = d.hook_id AND o.state = 'pending' AND o.event_seq < d.event_seq) \
                     ORDER BY d.event_seq LIMIT $3 {}) AND claimed_until <= $2 RETURNING *",
                    $skip_locked
                ))
                .bind(now + lease_ms)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                // The reads need no turn of the single writer.
                drop(turn);
                let mut deliveries = rows.iter().map(Self::delivery_from_row).collect::<StoreResult<Vec<_>>>()?;
                if deliveries.is_empty() {
                    return Ok(Vec::new());
                }
                deliveries.sort_by_key(|d| d.event_seq);
                let placeholders: Vec<String> = (1..=deliveries.len()).map(|i| format!("${i}")).collect();
                let sql = format!("SELECT * FROM hooks WHERE id IN ({})", placeholders.join(", "));
                let mut query = sqlx::query(&sql);
                for d in &deliveries {
                    query = query.bind(&d.hook_id);
                }
                let mut hooks = std::collections::HashMap::new();
                for row in query.fetch_all(&self.pool).await? {
                    let hook = Self::hook_from_row(&row)?;
                    hooks.insert(hook.id.clone(), hook);
                }
                // A hook deleted meanwhile took its deliveries with it.
                Ok(deliveries
                    .into_iter()
                    .filter_map(|d| {
                        let hook = hooks.get(&d.hook_id)?.clone();
                        Some((d, hook))
                    })
                    .collect())
            }

            async fn sent_event(&self, seq: i64) -> StoreResult<Option<$crate::store::hooks::SentEvent>> {
                Self::load_sent_event(&self.pool, seq).await
            }

            async fn finish_deliveries(
                &self,
                finished: &[($crate::store::hooks::Delivery, $crate::store::hooks::Attempt)],
                now: i64,
            ) -> StoreResult<()> {
                use $crate::store::hooks::Attempt;
                if finished.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                for (d, attempt) in finished {
                    let (state, code, error, run_after) = match attempt {
                        Attempt::Delivered { code } => ("delivered", Some(*code), None, d.run_after),
                        Attempt::Retry { code, error, run_after } => ("pending", *code, Some(error.as_str()), *run_after),
                        Attempt::Failed { code, error } => ("failed", *code, Some(error.as_str()), d.run_after),
                    };
                    let finished_at = (state != "pending").then_some(now);
                    sqlx::query(
                        "UPDATE hook_deliveries SET state = $1, response_code = $2, last_error = COALESCE($3, last_error), run_after = $4, \
                         claimed_until = 0, updated_at = $5, finished_at = $6 WHERE id = $7",
                    )
                    .bind(state)
                    .bind(code.map(|c| c as i32))
                    .bind(error)
                    .bind(run_after)
                    .bind(now)
                    .bind(finished_at)
                    .bind(&d.id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE hooks SET delivered = (delivered OR $1), last_delivery = $2, response_code = $3 WHERE id = $4")
                        .bind(state == "delivered")
                        .bind(now)
                        .bind(code.map(|c| c as i32))
                        .bind(&d.hook_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn deliveries(&self, hook_id: &str, limit: i64) -> StoreResult<Vec<$crate::store::hooks::Delivery>> {
                sqlx::query("SELECT * FROM hook_deliveries WHERE hook_id = $1 ORDER BY event_seq DESC LIMIT $2")
                    .bind(hook_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::delivery_from_row)
                    .collect()
            }

            async fn prune_deliveries(&self, finished_before: i64, keep_per_hook: i64, limit: i64) -> StoreResult<u64> {
                // Rows another worker holds are skipped (PostgreSQL), so two
                // pruning processes never wait on, or deadlock with, each other.
                let _turn = self.write_turn().await;
                let old = sqlx::query(&format!(
                    "DELETE FROM hook_deliveries WHERE id IN (SELECT id FROM hook_deliveries \
                     WHERE state <> 'pending' AND finished_at < $1 LIMIT $2 {})",
                    $skip_locked
                ))
                .bind(finished_before)
                .bind(limit)
                .execute(&self.pool)
                .await?
                .rows_affected();
                let left = limit - old as i64;
                if left <= 0 {
                    return Ok(old);
                }
                // Beyond the newest `keep_per_hook` finished deliveries of each hook.
                let surplus = sqlx::query(&format!(
                    "DELETE FROM hook_deliveries WHERE id IN (SELECT id FROM hook_deliveries WHERE state <> 'pending' AND id IN \
                     (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY hook_id ORDER BY event_seq DESC) AS n \
                     FROM hook_deliveries WHERE state <> 'pending') ranked WHERE n > $1) LIMIT $2 {})",
                    $skip_locked
                ))
                .bind(keep_per_hook)
                .bind(left)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(old + surplus)
            }

            async fn prune_sent_events(&self, limit: i64) -> StoreResult<u64> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(&format!(
                    "DELETE FROM hook_payloads WHERE event_seq IN (SELECT p.event_seq FROM hook_payloads p \
                     WHERE NOT EXISTS (SELECT 1 FROM hook_deliveries d WHERE d.event_seq = p.event_seq) LIMIT $1 {})",
                    $skip_locked
                ))
                .bind(limit)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done)
            }

            async fn prune_hook_events(&self, created_before: i64, limit: i64) -> StoreResult<u64> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(&format!(
                    "DELETE FROM hook_events WHERE seq IN (SELECT seq FROM hook_events WHERE created_at < $1 ORDER BY seq LIMIT $2 {})",
                    $skip_locked
                ))
                .bind(created_before)
                .bind(limit)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done)
            }
        }
    };
}
