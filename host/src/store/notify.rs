//! Change signals between processes sharing one database: PostgreSQL's
//! LISTEN/NOTIFY on channel `cairn_package`, fed by the triggers of migration
//! 0011 (every committed change to what a packument is built from). SQLite
//! has one process per file, so it has none.

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::sql::{PostgresStore, SqliteStore};
use super::{ChangeSignal, StoreResult};

const CHANNEL: &str = "cairn_package";

impl SqliteStore {
    pub(super) async fn listen(_pool: &sqlx::SqlitePool) -> StoreResult<Option<mpsc::Receiver<ChangeSignal>>> {
        Ok(None)
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
        tokio::spawn(async move {
            loop {
                let signal = match listener.try_recv().await {
                    Ok(Some(n)) => ChangeSignal::Package(n.payload().to_string()),
                    Ok(None) => ChangeSignal::Lost,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other nodes' changes failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        ChangeSignal::Lost
                    }
                };
                // A full queue means the consumer fell behind: it drops everything instead.
                match tx.try_send(signal) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if tx.send(ChangeSignal::Lost).await.is_err() {
                            return;
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        Ok(Some(rx))
    }
}
