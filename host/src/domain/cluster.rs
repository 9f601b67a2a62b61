//! Several processes on one PostgreSQL: a package changed by one process is
//! dropped from the packument caches of all the others at once, not after
//! `packument_cache_ttl_secs` (which stays as the safety net).
//!
//! Every invalidation after a write (`PackumentCache::invalidate`) puts the
//! name in this process's [`Outbox`]; the announcer sends it with
//! `Store::announce` (`NOTIFY`) as `<process id> <name>`; the listener of every
//! process (`Store::listen`, `LISTEN` on a connection of its own) drops the
//! names other processes announce. A lost listening connection, or an outbox
//! that overflowed, drops every entry instead: nothing announced is missed
//! silently. On SQLite (one machine) none of this runs.
//!
//! Tokens, blocks' effects on reads and everything else are read from the
//! database on each request, so they need no announcement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use crate::domain::App;
use crate::store::Heard;

/// Names queued at most; past it one "everything changed" is announced.
const MAX_QUEUED: usize = 1024;
/// What an announcement names to say "drop everything".
const EVERYTHING: &str = "*";

/// Names changed here, waiting to be announced.
pub struct Outbox {
    /// This process, so that it skips its own announcements.
    node: String,
    queue: Mutex<Vec<String>>,
    overflow: AtomicBool,
    ready: tokio::sync::Notify,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            node: hex::encode(crate::util::random_bytes(8)),
            queue: Mutex::new(Vec::new()),
            overflow: AtomicBool::new(false),
            ready: tokio::sync::Notify::new(),
        }
    }

    pub fn push(&self, name: &str) {
        let mut queue = self.queue.lock().expect("outbox lock");
        if queue.len() >= MAX_QUEUED {
            self.overflow.store(true, Ordering::SeqCst);
        } else if !queue.iter().any(|n| n == name) {
            queue.push(name.to_string());
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// What to announce now: the queued names, or "everything" after an overflow.
    pub fn drain(&self) -> Vec<String> {
        let names = std::mem::take(&mut *self.queue.lock().expect("outbox lock"));
        if self.overflow.swap(false, Ordering::SeqCst) {
            return vec![EVERYTHING.to_string()];
        }
        names
    }
}

/// Starts the announcer and the listener (PostgreSQL only).
pub fn start(app: Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    if app.store.backend() != "postgres" {
        return Vec::new();
    }
    if app.config.database_max_connections < 2 {
        // The listener keeps a connection of the pool: with one, nothing else could run.
        tracing::warn!("database_max_connections = 1: other processes' changes are seen after packument_cache_ttl_secs only");
        return Vec::new();
    }
    vec![tokio::spawn(announce(app.clone())), tokio::spawn(listen(app))]
}

async fn announce(app: Arc<App>) {
    let outbox = &app.packuments.outbox;
    loop {
        outbox.ready.notified().await;
        for name in outbox.drain() {
            if let Err(e) = app.store.announce(&format!("{} {name}", outbox.node)).await {
                // The others see the change after their cache TTL.
                tracing::warn!(error = %e, package = name, "announcing a change to the other processes failed");
            }
        }
    }
}

async fn listen(app: Arc<App>) {
    loop {
        match app.store.listen().await {
            Ok(None) => return,
            Ok(Some(mut heard)) => {
                // Changes made before the listening began may have been missed.
                app.packuments.clear();
                while let Some(h) = heard.next().await {
                    apply(&app, h);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other processes' changes; retrying in 5 s");
                app.packuments.clear();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Applies one announcement heard.
fn apply(app: &App, heard: Heard) {
    match heard {
        Heard::Message(m) => match m.split_once(' ') {
            Some((node, _)) if node == app.packuments.outbox.node => {}
            Some((_, EVERYTHING)) => app.packuments.clear(),
            Some((_, name)) => app.packuments.forget(name),
            None => tracing::debug!(message = m, "ignoring a malformed change announcement"),
        },
        Heard::Gap => {
            tracing::info!("the connection listening for other processes' changes was lost: packument cache dropped");
            app.packuments.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_is_bounded_and_deduplicated() {
        let o = Outbox::new();
        o.push("a");
        o.push("a");
        o.push("b");
        assert_eq!(o.drain(), ["a", "b"]);
        assert!(o.drain().is_empty());
        for i in 0..MAX_QUEUED + 5 {
            o.push(&format!("p{i}"));
        }
        assert_eq!(o.drain(), [EVERYTHING], "an overflow announces everything");
        assert!(o.drain().is_empty());
    }
}
