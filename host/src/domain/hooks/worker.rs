//! The background side of hooks: one fan-out loop turns outbox events into
//! one delivery per matching hook, keeping the event once with the package
//! document as it is then (its payload), and `[hooks] workers` delivery loops
//! claim due deliveries (up to [`CLAIM_BATCH`] at once, one per hook) and send
//! them concurrently, each request's body built from the stored event and the
//! hook ([`body`]): the same bytes on every retry. One task records the
//! attempts' ends, all that are waiting in one transaction (the single SQLite
//! writer is the scarce part). Nothing here runs on a request's path.
//! Every process, hooks enabled or not, also prunes what is no longer needed
//! ([`prune`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use serde_json::{json, Value};

use crate::domain::packument::{self, Lookup};
use crate::domain::App;
use crate::store::hooks::{Attempt, Delivery, Hook, HookEvent, NewDelivery, SentEvent};
use crate::store::now_ms;

use super::deliver;
use super::targets::TargetPolicy;

/// Events fanned out per round.
const FAN_OUT_BATCH: i64 = 100;
/// Pause of an idle fan-out loop (events are written by any process's store).
const FAN_OUT_IDLE: Duration = Duration::from_millis(100);
/// Longest pause of an idle delivery loop (woken at once by a fan-out here).
const DELIVERY_IDLE: Duration = Duration::from_millis(500);
/// Deliveries a loop claims at once (one per hook at most), sent concurrently.
const CLAIM_BATCH: i64 = 16;
/// Attempt ends recorded in one transaction at most.
const FINISH_BATCH: usize = 256;
/// Tries to record a batch of attempt ends.
const FINISH_TRIES: u32 = 3;
/// Fanned-out events kept in memory for the deliveries that follow them.
const EVENT_CACHE: usize = 16;

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
    let (finished, to_record) = mpsc::unbounded_channel();
    let deliverer = Arc::new(Deliverer { app: app.clone(), client, wakeup: wakeup.clone(), events: Default::default(), finished });
    let mut handles =
        vec![pruner, tokio::spawn(fan_out_loop(app.clone(), wakeup.clone())), tokio::spawn(finish_loop(app.clone(), to_record, wakeup))];
    for _ in 0..app.config.hooks.workers {
        handles.push(tokio::spawn(delivery_loop(deliverer.clone())));
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
        // One document per package and round: it is read after every event
        // of the round was committed, so it shows each of them.
        let mut payloads = HashMap::new();
        for event in events {
            match fan_out(&app, &event, &mut payloads).await {
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

/// The package document now, as JSON text, for the delivery's `payload`: the
/// cache's serialization of it, neither copied as a value nor serialized again.
async fn payload(app: &App, package: &str) -> crate::domain::Result<String> {
    Ok(match packument::lookup(app, package, true).await? {
        Lookup::Found(entry) => String::from_utf8_lossy(&entry.full.body).into_owned(),
        Lookup::Missing(_) => json!({ "name": package }).to_string(),
    })
}

/// npm's hook body, with the event's payload (JSON text) spliced in as it is
/// (the document can be large). Made of what never changes (the stored event,
/// the hook's owner), so a delivery carries the same bytes on every attempt.
pub(super) fn body(event: &SentEvent, hook: &Hook) -> String {
    let payload = &event.payload;
    let change: Value = serde_json::from_str(&event.data).unwrap_or_else(|_| json!({}));
    let version = change.get("version").cloned().unwrap_or(Value::Null);
    let text = |s: &str| Value::from(s).to_string();
    format!(
        "{{\"event\":{},\"name\":{},\"type\":\"package\",\"version\":{version},\"hookOwner\":{{\"username\":{}}},\"payload\":{payload},\"change\":{change},\"time\":{}}}",
        text(&event.event),
        text(&event.package),
        text(&hook.owner),
        event.created_at,
    )
}

/// One event to its deliveries; whether any was created. `payloads` holds the
/// documents this round already read.
async fn fan_out(app: &App, event: &HookEvent, payloads: &mut HashMap<String, Arc<String>>) -> crate::domain::Result<bool> {
    let hooks = app.store.matching_hooks(&event.package, &event.owners).await?;
    let deliveries: Vec<NewDelivery> =
        hooks.iter().map(|hook| NewDelivery { id: uuid::Uuid::new_v4().simple().to_string(), hook_id: hook.id.clone() }).collect();
    let payload = match (deliveries.is_empty(), payloads.get(&event.package)) {
        (true, _) => Arc::default(),
        (false, Some(payload)) => payload.clone(),
        (false, None) => {
            let payload = Arc::new(payload(app, &event.package).await?);
            payloads.insert(event.package.clone(), payload.clone());
            payload
        }
    };
    let done = app.store.fan_out(event, &payload, &deliveries, now_ms()).await?;
    Ok(done && !deliveries.is_empty())
}

/// What the delivery loops share: the outbound client, the events of the
/// deliveries in flight (each event goes to every matching hook, so it is
/// read once, not once per delivery) and the queue of attempt ends that one
/// task records, many per transaction.
struct Deliverer {
    app: Arc<App>,
    client: crate::outbound::Outbound,
    wakeup: Arc<tokio::sync::Notify>,
    events: std::sync::Mutex<VecDeque<Arc<SentEvent>>>,
    finished: mpsc::UnboundedSender<(Delivery, Attempt)>,
}

impl Deliverer {
    /// The stored event `seq`, from memory when a recent claim read it.
    async fn event(&self, seq: i64) -> crate::domain::Result<Option<Arc<SentEvent>>> {
        if let Some(event) = self.events.lock().expect("not poisoned").iter().find(|e| e.seq == seq) {
            return Ok(Some(event.clone()));
        }
        let Some(event) = self.app.store.sent_event(seq).await? else { return Ok(None) };
        let event = Arc::new(event);
        let mut events = self.events.lock().expect("not poisoned");
        if events.len() >= EVENT_CACHE {
            events.pop_front();
        }
        events.push_back(event.clone());
        Ok(Some(event))
    }

    /// One attempt of a claimed delivery; its end goes to the recording task.
    async fn send(&self, delivery: Delivery, hook: Hook, event: Option<Arc<SentEvent>>) {
        let cfg = &self.app.config.hooks;
        let (plugins, url) = (&self.app.plugins, self.app.config.public_url.as_str());
        let outcome = deliver::attempt(
            &self.client,
            plugins,
            url,
            &hook,
            &delivery,
            event.as_deref(),
            cfg.max_attempts as i64,
            cfg.retry_base_ms,
            now_ms,
        )
        .await;
        if let Attempt::Failed { error, .. } = &outcome {
            tracing::warn!(hook = hook.id, delivery = delivery.id, attempts = delivery.attempts, error, "hook delivery failed");
        }
        // Only fails once the recording task is gone (shutting down); the
        // lease then runs out and the delivery is sent again, under the same id.
        let _ = self.finished.send((delivery, outcome));
    }
}

/// Claims up to [`CLAIM_BATCH`] due deliveries (one per hook at most) and
/// sends them concurrently, again and again.
async fn delivery_loop(d: Arc<Deliverer>) {
    let lease = d.app.config.hooks.timeout_ms as i64 * 2 + 30_000;
    loop {
        let notified = d.wakeup.notified();
        let claimed = match d.app.store.claim_deliveries(now_ms(), lease, CLAIM_BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming hook deliveries failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            let _ = tokio::time::timeout(DELIVERY_IDLE, notified).await;
            continue;
        }
        // Each its own task: building, signing and sending a body is CPU work
        // that the runtime's threads then share.
        let mut sends = tokio::task::JoinSet::new();
        for (delivery, hook) in claimed {
            // Read here, one after the other: the deliveries of a batch mostly share their event.
            let event = match delivery.body {
                Some(_) => None,
                None => match d.event(delivery.event_seq).await {
                    Ok(event) => event,
                    Err(e) => {
                        // Left claimed: it goes out once its lease runs out.
                        tracing::warn!(error = %e, delivery = delivery.id, "reading a hook delivery's event failed");
                        continue;
                    }
                },
            };
            let d = d.clone();
            sends.spawn(async move { d.send(delivery, hook, event).await });
        }
        while sends.join_next().await.is_some() {}
    }
}

/// Records attempt ends, all that are waiting in one transaction, and wakes
/// the delivery loops: the next delivery of those hooks may be due now.
async fn finish_loop(app: Arc<App>, mut finished: mpsc::UnboundedReceiver<(Delivery, Attempt)>, wakeup: Arc<tokio::sync::Notify>) {
    while let Some(first) = finished.recv().await {
        let mut batch = vec![first];
        while batch.len() < FINISH_BATCH {
            match finished.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        for round in 1..=FINISH_TRIES {
            match app.store.finish_deliveries(&batch, now_ms()).await {
                Ok(()) => break,
                // After the last try the leases run out and these deliveries
                // are sent again, under the same ids (receivers deduplicate).
                Err(e) => {
                    tracing::warn!(error = %e, deliveries = batch.len(), round, "recording hook deliveries failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        wakeup.notify_waiters();
    }
}

/// What one [`prune`] deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    /// Outbox events never fanned out.
    pub events: u64,
    /// Fanned-out events no delivery refers to any more.
    pub sent_events: u64,
}

/// Deletes what is no longer needed, as of `now`: delivered and failed
/// deliveries that finished more than `[hooks] retention_days` ago or are not
/// among the newest [`DELIVERY_HISTORY`](super::DELIVERY_HISTORY) finished
/// ones of their hook (all the history endpoint shows), and outbox events
/// older than the retention (events no process fanned out, because hooks were
/// disabled everywhere), then the fanned-out events (with their payloads)
/// that no delivery refers to any more. A pending delivery is never deleted, so nothing
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
    for _ in 0..PRUNE_MAX_BATCHES {
        let n = app.store.prune_sent_events(PRUNE_BATCH).await?;
        pruned.sent_events += n;
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
                if p.deliveries > 0 || p.sent_events > 0 {
                    tracing::info!(deliveries = p.deliveries, events = p.sent_events, "pruned old hook deliveries and their events");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_npms_with_the_payload_as_given() {
        let payload = r#"{"name":"@s/p\"q","versions":{"1.0.0":{}}}"#;
        let event = SentEvent {
            seq: 1,
            package: "@s/p\"q".into(),
            event: "package:publish".into(),
            data: r#"{"version":"1.0.0","tags":["latest"]}"#.into(),
            created_at: 1_700_000_000_000,
            payload: payload.into(),
        };
        let hook = Hook {
            id: "h".into(),
            owner: "ann".into(),
            kind: "package".into(),
            name: "p".into(),
            endpoint: String::new(),
            secret: String::new(),
            formatter: None,
            created_at: 0,
            updated_at: 0,
            delivered: false,
            last_delivery: None,
            response_code: None,
            status: "active".into(),
        };
        let text = body(&event, &hook);
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "event": "package:publish",
                "name": "@s/p\"q",
                "type": "package",
                "version": "1.0.0",
                "hookOwner": {"username": "ann"},
                "payload": {"name": "@s/p\"q", "versions": {"1.0.0": {}}},
                "change": {"version": "1.0.0", "tags": ["latest"]},
                "time": 1_700_000_000_000i64,
            })
        );
        assert!(text.contains(payload), "the payload text is kept byte for byte");
        let keys: Vec<&String> = parsed.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["event", "name", "type", "version", "hookOwner", "payload", "change", "time"]);
    }
}
