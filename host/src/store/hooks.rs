//! Webhook storage: hooks, the event outbox and deliveries. The SQL is in
//! `hooks_sql.rs`; the outbox rows of a package write are inserted by `sql.rs`
//! in the write's own transaction.

use async_trait::async_trait;

use super::StoreResult;

/// A registered hook. `secret` signs deliveries and never leaves the server.
#[derive(Clone, PartialEq, Eq)]
pub struct Hook {
    pub id: String,
    /// The user who registered it.
    pub owner: String,
    /// `package`, `scope` or `owner`.
    pub kind: String,
    pub name: String,
    pub endpoint: String,
    pub secret: String,
    /// The `hook-formatter` plugin that builds its requests (npm's JSON body when None).
    pub formatter: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered: bool,
    pub last_delivery: Option<i64>,
    pub response_code: Option<i64>,
    pub status: String,
}

/// Hand-written so that no log line can print the secret.
impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A hook with how many of its deliveries are pending and failed.
#[derive(Debug, Clone)]
pub struct HookOverview {
    pub hook: Hook,
    pub pending: i64,
    pub failed: i64,
}

/// One event of the outbox, waiting to be fanned out to deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    pub seq: i64,
    pub package: String,
    pub event: String,
    /// JSON detail (`version`, `tag`, `user`, ...).
    pub data: String,
    /// The package's maintainers when the event happened (owner hooks match them).
    pub owners: Vec<String>,
    pub created_at: i64,
}

/// A delivery created by the fan-out of an event (its request is built when it is sent).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub hook_id: String,
}

/// A fanned-out event, stored once for all its deliveries and kept while any
/// refers to it: what their requests are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEvent {
    pub seq: i64,
    pub package: String,
    pub event: String,
    /// JSON detail (`version`, `tag`, `user`, ...).
    pub data: String,
    pub created_at: i64,
    /// The package document when the event was fanned out (JSON text).
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub hook_id: String,
    pub event_seq: i64,
    pub event: String,
    pub package: String,
    /// The body of a delivery fanned out before migration 0014 (which stored
    /// one per delivery); None for the others, built from their [`SentEvent`].
    pub body: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub response_code: Option<i64>,
    pub last_error: Option<String>,
    pub run_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered {
        code: i64,
    },
    /// Pending again, not before `run_after`.
    Retry {
        code: Option<i64>,
        error: String,
        run_after: i64,
    },
    Failed {
        code: Option<i64>,
        error: String,
    },
}

#[async_trait]
pub trait HookStore: Send + Sync {
    /// Inserts the hook unless its owner has `max_per_user` hooks already (false then).
    async fn create_hook(&self, hook: &Hook, max_per_user: i64) -> StoreResult<bool>;
    async fn hook(&self, id: &str) -> StoreResult<Option<Hook>>;
    /// Hooks of `owner` (everyone's with None), optionally only those named `name`, oldest first.
    async fn hooks(&self, owner: Option<&str>, name: Option<&str>, offset: i64, limit: i64) -> StoreResult<Vec<Hook>>;
    /// [`hooks`](HookStore::hooks) (without the name filter) with the counts
    /// of their pending and failed deliveries.
    async fn hook_overviews(&self, owner: Option<&str>, offset: i64, limit: i64) -> StoreResult<Vec<HookOverview>>;
    /// Sets endpoint, secret and formatter; false when there is no such hook.
    async fn update_hook(&self, id: &str, endpoint: &str, secret: &str, formatter: Option<&str>, now: i64) -> StoreResult<bool>;
    /// Deletes the hook and its deliveries; false when there is no such hook.
    async fn delete_hook(&self, id: &str) -> StoreResult<bool>;

    /// The oldest `limit` events of the outbox.
    async fn hook_events(&self, limit: i64) -> StoreResult<Vec<HookEvent>>;
    /// The hooks an event of `package` (with these maintainers) goes to.
    async fn matching_hooks(&self, package: &str, owners: &[String]) -> StoreResult<Vec<Hook>>;
    /// Removes event `seq` from the outbox and, when there are deliveries,
    /// keeps the event once with `payload` (a [`SentEvent`]) and inserts the
    /// deliveries, in one transaction; false (and nothing inserted) when
    /// another worker did it first.
    async fn fan_out(&self, event: &HookEvent, payload: &str, deliveries: &[NewDelivery], now: i64) -> StoreResult<bool>;
    /// Claims up to `limit` due deliveries for `lease_ms`, at most one per
    /// hook: each the oldest pending delivery of its hook (so a hook's
    /// deliveries go out one at a time, in event order), oldest first; counts
    /// the attempts. With their hooks.
    async fn claim_deliveries(&self, now: i64, lease_ms: i64, limit: i64) -> StoreResult<Vec<(Delivery, Hook)>>;
    /// The fanned-out event `seq` (None: pruned, which a pending delivery prevents).
    async fn sent_event(&self, seq: i64) -> StoreResult<Option<SentEvent>>;
    /// Records the ends of attempts on the deliveries and their hooks, in one transaction.
    async fn finish_deliveries(&self, finished: &[(Delivery, Attempt)], now: i64) -> StoreResult<()>;

    /// Claims one delivery ([`claim_deliveries`](Self::claim_deliveries)),
    /// with its hook and its event (None only for a delivery that carries its own `body`).
    async fn claim_delivery(&self, now: i64, lease_ms: i64) -> StoreResult<Option<(Delivery, Hook, Option<SentEvent>)>> {
        let Some((delivery, hook)) = self.claim_deliveries(now, lease_ms, 1).await?.into_iter().next() else { return Ok(None) };
        let event = match delivery.body {
            Some(_) => None,
            None => self.sent_event(delivery.event_seq).await?,
        };
        Ok(Some((delivery, hook, event)))
    }
    /// Records one attempt's end ([`finish_deliveries`](Self::finish_deliveries)).
    async fn finish_delivery(&self, delivery: &Delivery, attempt: &Attempt, now: i64) -> StoreResult<()> {
        self.finish_deliveries(&[(delivery.clone(), attempt.clone())], now).await
    }
    /// The hook's latest deliveries, newest first.
    async fn deliveries(&self, hook_id: &str, limit: i64) -> StoreResult<Vec<Delivery>>;

    /// Deletes up to `limit` finished (delivered or failed) deliveries that
    /// finished before `finished_before` or are not among the newest
    /// `keep_per_hook` finished ones of their hook; never a pending one. How
    /// many were deleted.
    async fn prune_deliveries(&self, finished_before: i64, keep_per_hook: i64, limit: i64) -> StoreResult<u64>;
    /// Deletes up to `limit` outbox events written before `created_before`
    /// (events no process fanned out in time). How many were deleted.
    async fn prune_hook_events(&self, created_before: i64, limit: i64) -> StoreResult<u64>;
    /// Deletes up to `limit` fanned-out events ([`SentEvent`]s) no delivery
    /// refers to any more (a delivery never gains an event later). How many
    /// were deleted.
    async fn prune_sent_events(&self, limit: i64) -> StoreResult<u64>;
}

/// The scope (`@s`) of a package name, if any.
pub fn scope_of(package: &str) -> Option<&str> {
    package.starts_with('@').then(|| package.split_once('/').map(|(s, _)| s)).flatten()
}
