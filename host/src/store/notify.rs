//! Change signals between processes sharing one database, so that each keeps
//! its caches true without waiting for a TTL:
//! - PostgreSQL: LISTEN/NOTIFY on channel `cairn_package`, fed by the triggers
//!   of migration 0011 (every committed change to what a packument is built
//!   from). Each process also notifies itself twice a second; hearing its own
//!   heartbeat proves that everything committed before it was heard.
//! - SQLite: the change log of migration 0015 (the same changes, appended by
//!   triggers in the write's transaction), read every [`POLL_EVERY`]. Another
//!   process on the same file is `cairn sync`, or a second server.
//!
//! Both send [`ChangeSignal::Live`] once they have passed on everything
//! committed so far, at least every second while they work.

use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::Row;
use tokio::sync::mpsc;

use super::sql::{PostgresStore, SqliteStore};
use super::{ChangeSignal, StoreResult};

const CHANNEL: &str = "cairn_package";
/// How often a process proves its feed works (PostgreSQL) or reads the log (SQLite).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// SQLite: log rows read at once.
const POLL_LIMIT: i64 = 1000;
/// SQLite: log rows older than this are deleted (a poller that falls further
/// behind has stopped sending `Live` long before, and its cache expires by TTL).
const KEEP: Duration = Duration::from_secs(600);
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Passes `signal` on; false once the consumer is gone. A full queue means the
/// consumer fell behind: it is told `Lost` (and drops everything) instead.
async fn forward(tx: &mpsc::Sender<ChangeSignal>, signal: ChangeSignal) -> bool {
    match tx.try_send(signal) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => tx.send(ChangeSignal::Lost).await.is_ok(),
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

impl SqliteStore {
    /// Reads the change log from its current end, until the receiver is dropped.
    pub(super) async fn listen(pool: &sqlx::SqlitePool) -> StoreResult<Option<mpsc::Receiver<ChangeSignal>>> {
        let mut last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM package_changes").fetch_one(pool).await?;
        let (tx, rx) = mpsc::channel(1024);
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut pruned = Instant::now();
            loop {
                match Self::changes_after(&pool, last).await {
                    Ok(changes) => {
                        let caught_up = (changes.len() as i64) < POLL_LIMIT;
                        // A write logs its package once per row it changed.
                        let mut told = std::collections::HashSet::new();
                        for (seq, name) in changes {
                            last = seq;
                            if told.insert(name.clone()) && !forward(&tx, ChangeSignal::Package(name)).await {
                                return;
                            }
                        }
                        if !caught_up {
                            continue;
                        }
                        if !forward(&tx, ChangeSignal::Live).await {
                            return;
                        }
                    }
                    // No `Live` then: the consumer's window runs out.
                    Err(e) => tracing::warn!(error = %e, "reading the change log failed; retrying"),
                }
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = Instant::now();
                    let before = crate::store::now_ms() - KEEP.as_millis() as i64;
                    if let Err(e) = sqlx::query("DELETE FROM package_changes WHERE created_at < $1").bind(before).execute(&pool).await {
                        tracing::warn!(error = %e, "pruning the change log failed");
                    }
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
        Ok(Some(rx))
    }

    async fn changes_after(pool: &sqlx::SqlitePool, seq: i64) -> StoreResult<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT seq, package FROM package_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seq)
            .bind(POLL_LIMIT)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("seq")?, r.try_get("package")?))).collect()
    }
}

impl PostgresStore {
    /// Listens on a connection taken from the pool for good, until the
    /// receiver is dropped. A lost connection is reconnected by sqlx; what was
    /// sent meanwhile is unknown, so `Lost` is signalled.
    pub(super) async fn listen(pool: &sqlx::PgPool) -> StoreResult<Option<mpsc::Receiver<ChangeSignal>>> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let (tx, rx) = mpsc::channel(1024);
        // Not a package name (those have no spaces), and this process's own.
        let heartbeat = format!(" live {}", uuid::Uuid::new_v4().simple());
        tokio::spawn(Self::send_heartbeats(pool.clone(), heartbeat.clone(), tx.clone()));
        tokio::spawn(async move {
            loop {
                let signal = match listener.try_recv().await {
                    Ok(Some(n)) if n.payload() == heartbeat => ChangeSignal::Live,
                    // Another process's heartbeat.
                    Ok(Some(n)) if n.payload().starts_with(' ') => continue,
                    Ok(Some(n)) => ChangeSignal::Package(n.payload().to_string()),
                    Ok(None) => ChangeSignal::Lost,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other nodes' changes failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        ChangeSignal::Lost
                    }
                };
                if !forward(&tx, signal).await {
                    return;
                }
            }
        });
        Ok(Some(rx))
    }

    /// NOTIFY is delivered in commit order: once the listener hears this
    /// heartbeat, it has heard every change committed before it.
    async fn send_heartbeats(pool: sqlx::PgPool, heartbeat: String, tx: mpsc::Sender<ChangeSignal>) {
        while !tx.is_closed() {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&heartbeat).execute(&pool).await {
                tracing::debug!(error = %e, "sending the change feed's heartbeat failed");
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    }
}
