//! Webhook housekeeping: what the pruning every process runs keeps and drops.

use cairn::domain::hooks::worker::{self, Pruned};
use cairn::domain::hooks::DELIVERY_HISTORY;
use cairn::store::hooks::{Attempt, Hook, NewDelivery};
use cairn::store::now_ms;

use crate::harness::TestApp;

const DAY: i64 = 86_400_000;

fn hook(owner: &str, package: &str) -> Hook {
    let now = now_ms();
    Hook {
        id: uuid::Uuid::new_v4().simple().to_string(),
        owner: owner.into(),
        kind: "package".into(),
        name: package.into(),
        endpoint: "http://127.0.0.1:9/".into(),
        secret: "s3cret".into(),
        formatter: None,
        created_at: now,
        updated_at: now,
        delivered: false,
        last_delivery: None,
        response_code: None,
        status: "active".into(),
    }
}

/// Fans every outbox event out to its hooks, as of `now`.
async fn fan_out_all(t: &TestApp, now: i64) -> usize {
    let events = t.app.store.hook_events(1000).await.unwrap();
    for e in &events {
        let hooks = t.app.store.matching_hooks(&e.package, &e.owners).await.unwrap();
        let deliveries: Vec<_> =
            hooks.iter().map(|h| NewDelivery { id: uuid::Uuid::new_v4().simple().to_string(), hook_id: h.id.clone() }).collect();
        assert!(t.app.store.fan_out(e, "{}", &deliveries, now).await.unwrap());
    }
    events.len()
}

/// Finished deliveries go once older than `[hooks] retention_days` (30 by
/// default) or beyond the newest `DELIVERY_HISTORY` of their hook; a pending
/// delivery stays however old it is, and so does an event not yet fanned out
/// within the retention.
#[tokio::test]
async fn old_hook_deliveries_are_pruned_and_pending_ones_stay() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    let h = hook("alice", "pruned");
    assert!(t.app.store.create_hook(&h, 20).await.unwrap());
    let n = DELIVERY_HISTORY as usize + 3;
    for i in 0..n {
        t.publish(&alice, "pruned", &format!("1.0.{i}")).await.unwrap();
    }
    let t0 = now_ms();
    assert_eq!(fan_out_all(&t, t0).await, n);
    // All but the newest delivered (or failed), in order; the newest waits for a retry.
    for i in 0..n {
        let (d, _, _) = t.app.store.claim_delivery(t0, 60_000).await.unwrap().expect("a due delivery");
        let outcome = match i {
            _ if i == n - 1 => Attempt::Retry { code: Some(503), error: "the endpoint answered 503".into(), run_after: t0 + 400 * DAY },
            0 => Attempt::Failed { code: Some(410), error: "the endpoint answered 410".into() },
            _ => Attempt::Delivered { code: 200 },
        };
        t.app.store.finish_delivery(&d, &outcome, t0).await.unwrap();
    }
    // One more event that no process fans out.
    t.publish(&alice, "pruned", "2.0.0").await.unwrap();
    let states = |list: &[cairn::store::hooks::Delivery]| list.iter().filter(|d| d.state == "pending").count();

    // Within the retention: only what the history no longer shows (the oldest finished ones).
    assert_eq!(worker::prune(&t.app, t0 + DAY).await.unwrap(), Pruned { deliveries: 2, events: 0, sent_events: 2 });
    let left = t.app.store.deliveries(&h.id, 1000).await.unwrap();
    assert_eq!((left.len(), states(&left)), (n - 2, 1));
    assert_eq!(worker::prune(&t.app, t0 + DAY).await.unwrap(), Pruned::default(), "nothing more to do");
    assert_eq!(worker::prune(&t.app, t0 + 29 * DAY).await.unwrap(), Pruned::default());

    // Past it: every finished delivery and the stale event; the pending delivery stays.
    assert_eq!(
        worker::prune(&t.app, t0 + 31 * DAY).await.unwrap(),
        Pruned { deliveries: n as u64 - 3, events: 1, sent_events: n as u64 - 3 }
    );
    let left = t.app.store.deliveries(&h.id, 1000).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].state.as_str(), left[0].attempts), ("pending", 1));
    assert!(t.app.store.hook_events(10).await.unwrap().is_empty());
    // And it is still delivered when due.
    let (d, _, event) = t.app.store.claim_delivery(t0 + 400 * DAY, 60_000).await.unwrap().expect("the retried delivery");
    assert_eq!((d.id.as_str(), d.attempts), (left[0].id.as_str(), 2));
    assert_eq!(event.map(|e| (e.seq, e.payload)), Some((d.event_seq, "{}".to_string())), "its event outlives the others");
}
