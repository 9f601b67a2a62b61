//! The background side of hooks: one fan-out loop turns outbox events into
//! one delivery per matching hook (with the body fixed then, so every retry
//! sends, and signs, the same bytes), and `[hooks] workers` delivery loops
//! claim due deliveries and send them. Nothing here runs on a request's path.
//! Every process, hooks enabled or not, also prunes what is no longer needed
//! ([`prune`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::packument::{self, Lookup};
use crate::domain::App;
use crate::store::hooks::{Hook, HookEvent, NewDelivery};
use crate::store::now_ms;

use super::deliver;
use super::targets::TargetPolicy;

/// Events fanned out per round.
const FAN_OUT_BATCH: i64 = 100;
/// Pause of an idle fan-out loop (events are written by any process's store).
const FAN_OUT_IDLE: Duration = Duration::from_millis(100);
/// Longest pause of an idle delivery loop (woken at once by a fan-out here).
const DELIVERY_IDLE: Duration = Duration::from_millis(500);

/// How often a process prunes old deliveries and events.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per statement: short transactions, other writers get turns between.
const PRUNE_BATCH: i64 = 1000;
/// Statements per kind and round; a larger backlog is worked off over several rounds.
const PRUNE_MAX_BATCHES: usize = 100;

/// Starts the pruning loop, and (unless `[hooks] enabled = false`) the fan-out
/// loop and the delivery workers.
pub fn start(app: Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let pruner = tokio::spawn(prune_loop(app.clone()));
    if !app.config.hooks.enabled {
        return vec![pruner];
    }
    let wakeup = Arc::new(tokio::sync::Notify::new());
    let policy = Arc::new(TargetPolicy::new(app.config.hooks.allowed_nets()));
    let client = deliver::client(policy, Duration::from_millis(app.config.hooks.timeout_ms));
    let mut handles = vec![pruner, tokio::spawn(fan_out_loop(app.clone(), wakeup.clone()))];
    for _ in 0..app.config.hooks.workers {
        handles.push(tokio::spawn(delivery_loop(app.clone(), client.clone(), wakeup.clone())));
    }
    handles
}

async fn fan_out_loop(app: Arc<App>, wakeup: Arc<tokio::sync::Notify>) {
    loop {
        let events = match app.store.hook_events(FAN_OUT_BATCH).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "reading hook events failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if events.is_empty() {
            tokio::time::sleep(FAN_OUT_IDLE).await;
            continue;
        }
        for event in events {
            match fan_out(&app, &event).await {
                Ok(true) => wakeup.notify_waiters(),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, seq = event.seq, "fanning out a hook event failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// The package document now, for the delivery's `payload`.
async fn payload(app: &App, package: &str) -> crate::domain::Result<Value> {
    Ok(match packument::lookup(app, package, true).await? {
        Lookup::Found(entry) => entry.value.clone(),
        Lookup::Missing(_) => json!({ "name": package }),
    })
}

/// npm's hook body.
fn body(event: &HookEvent, hook: &Hook, payload: &Value) -> String {
    let change: Value = serde_json::from_str(&event.data).unwrap_or_else(|_| json!({}));
    json!({
        "event": event.event,
        "name": event.package,
        "type": "package",
        "version": change.get("version").cloned().unwrap_or(Value::Null),
        "hookOwner": { "username": hook.owner },
        "payload": payload,
        "change": change,
        "time": event.created_at,
    })
    .to_string()
}

/// One event to its deliveries; whether any was created.
async fn fan_out(app: &App, event: &HookEvent) -> crate::domain::Result<bool> {
    let hooks = app.store.matching_hooks(&event.package, &event.owners).await?;
    let mut deliveries = Vec::with_capacity(hooks.len());
    if !hooks.is_empty() {
        let payload = payload(app, &event.package).await?;
        for hook in &hooks {
            deliveries.push(NewDelivery {
                id: uuid::Uuid::new_v4().simple().to_string(),
                hook_id: hook.id.clone(),
                body: body(event, hook, &payload),
            });
        }
    }
    let done = app.store.fan_out(event, &deliveries, now_ms()).await?;
    Ok(done && !deliveries.is_empty())
}

async fn delivery_loop(app: Arc<App>, client: crate::outbound::Outbound, wakeup: Arc<tokio::sync::Notify>) {
    let cfg = &app.config.hooks;
    let lease = cfg.timeout_ms as i64 * 2 + 30_000;
    loop {
        let notified = wakeup.notified();
        let claimed = match app.store.claim_delivery(now_ms(), lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming a hook delivery failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((delivery, hook)) = claimed else {
            let _ = tokio::time::timeout(DELIVERY_IDLE, notified).await;
            continue;
        };
        let outcome = deliver::attempt(&client, &app.plugins, &hook, &delivery, cfg.max_attempts as i64, cfg.retry_base_ms, now_ms).await;
        if let crate::store::hooks::Attempt::Failed { error, .. } = &outcome {
            tracing::warn!(hook = hook.id, delivery = delivery.id, attempts = delivery.attempts, error, "hook delivery failed");
        }
        if let Err(e) = app.store.finish_delivery(&delivery, &outcome, now_ms()).await {
            tracing::warn!(error = %e, delivery = delivery.id, "recording a hook delivery failed");
        }
        // The next one to this hook may be due now.
        wakeup.notify_waiters();
    }
}

/// What one [`prune`] deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub events: u64,
}

/// Deletes what is no longer needed, as of `now`: delivered and failed
/// deliveries that finished more than `[hooks] retention_days` ago or are not
/// among the newest [`DELIVERY_HISTORY`](super::DELIVERY_HISTORY) finished
/// ones of their hook (all the history endpoint shows), and outbox events
/// older than the retention (events no process fanned out, because hooks were
/// disabled everywhere). A pending delivery is never deleted, so nothing
/// undelivered is lost and per-hook order (which only looks at pending
/// deliveries) is untouched. Safe on any number of processes at once.
pub async fn prune(app: &App, now: i64) -> crate::domain::Result<Pruned> {
    let before = now - i64::from(app.config.hooks.retention_days) * 86_400_000;
    let mut pruned = Pruned::default();
    for _ in 0..PRUNE_MAX_BATCHES {
        let n = app.store.prune_deliveries(before, super::DELIVERY_HISTORY, PRUNE_BATCH).await?;
        pruned.deliveries += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    for _ in 0..PRUNE_MAX_BATCHES {
        let n = app.store.prune_hook_events(before, PRUNE_BATCH).await?;
        pruned.events += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    Ok(pruned)
}

async fn prune_loop(app: Arc<App>) {
    loop {
        match prune(&app, now_ms()).await {
            Ok(p) => {
                if p.deliveries > 0 {
                    tracing::info!(deliveries = p.deliveries, "pruned old hook deliveries");
                }
                if p.events > 0 {
                    tracing::warn!(
                        events = p.events,
                        retention_days = app.config.hooks.retention_days,
                        "dropped hook events that no process fanned out within the retention (is [hooks] enabled anywhere?)"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning hook deliveries failed"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}
