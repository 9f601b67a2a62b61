//! Processes sharing one database (nodes on PostgreSQL; a server and
//! `cairn sync` on one SQLite file): what another one changed is dropped from
//! this one's caches as it commits (the store's change signals), so a publish
//! on one node is visible on all of them at once. While the signals flow,
//! cached packuments do not expire; the TTL is the safety net for when they
//! stop. Tokens and blocks need nothing here: they are read from the database
//! on every request.

use std::sync::Arc;

use crate::domain::App;
use crate::store::ChangeSignal;

/// Follows the store's change signals until the server stops; `None` when
/// listening could not start (logged: the TTL still bounds staleness).
pub async fn start(app: Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    // The listener holds one pooled connection for good.
    if app.config.database_max_connections < 2 && app.store.backend() == "postgres" {
        tracing::warn!("database_max_connections is 1: not listening for other nodes' changes (cached documents may lag by the cache TTL)");
        return None;
    }
    let mut signals = match app.store.change_signals().await {
        Ok(Some(rx)) => rx,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other nodes' changes; cached documents may lag by the cache TTL");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            match signal {
                ChangeSignal::Package(name) => app.packuments.invalidate(&name),
                ChangeSignal::Lost => app.packuments.unfollow(),
                ChangeSignal::Live => app.packuments.follow(),
            }
        }
    }))
}
