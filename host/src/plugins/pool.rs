//! Warm instance pools: a store per instance with its memory cap and epoch
//! deadline, instantiation (with `init`), taking an instance for a call and
//! settling the call (faults drop the instance; successes return it).

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::{auth, binsrc, block, hook, rich_hook, upstream};
use super::host_imports::{HostState, Limits};
use super::plugin::{Fault, LoadedPlugin};

/// Idle instances kept per plugin.
const MAX_WARM: usize = 16;
/// The least a new instance's setup (instantiate + `init`) and its first call
/// each get, whatever `timeout_ms` says: a plugin that embeds a language
/// engine (JavaScript, Python) pays for warming it up there, once per instance.
const SETUP_BUDGET: Duration = Duration::from_secs(1);

/// The wall time a new instance's setup, and its first call, get under `timeout`.
pub fn setup_budget(timeout: Duration) -> Duration {
    timeout.max(SETUP_BUDGET)
}
/// An instance is retired after this many calls, bounding leaks inside guests.
const MAX_USES: u64 = 10_000;
const STDERR_CAPACITY: usize = 64 * 1024;

/// A plugin linked and ready to instantiate, per world.
pub(super) enum Pre {
    Auth(auth::AuthPolicyPre<HostState>),
    Block(block::BlockRulePre<HostState>),
    Upstream(upstream::UpstreamAdapterPre<HostState>),
    /// An upstream adapter built against `binary-source-adapter` (0.1.1).
    BinarySource(binsrc::BinarySourceAdapterPre<HostState>),
    /// Built against `hook-formatter`: `formatter.format(event)`.
    Hook(hook::HookFormatterPre<HostState>),
    /// Built against `rich-hook-formatter` (0.1.1): `rich-formatter.format(event, context)`.
    RichHook(rich_hook::RichHookFormatterPre<HostState>),
}

/// An instance's exports, per world.
pub(super) enum Bound {
    Auth(auth::AuthPolicy),
    Block(block::BlockRule),
    Upstream(upstream::UpstreamAdapter),
    BinarySource(binsrc::BinarySourceAdapter),
    Hook(hook::HookFormatter),
    RichHook(rich_hook::RichHookFormatter),
}

/// An instance with `init` called, and its store.
pub(super) struct Warm {
    pub(super) store: Store<HostState>,
    pub(super) bound: Bound,
    uses: u64,
}

impl LoadedPlugin {
    fn new_store(&self) -> Store<HostState> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new().stderr(stderr.clone()).build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.meta.max_memory_bytes)
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limits: Limits { inner: limits, memory_bytes: 0 },
                meta: self.meta.clone(),
                stderr,
                budget: self.meta.timeout,
            },
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store
    }

    /// The wall time a call on `warm` gets: `timeout_ms`, or [`SETUP_BUDGET`]
    /// when it is the instance's first call.
    pub(super) fn budget(&self, warm: &Warm) -> Duration {
        if warm.uses == 0 {
            setup_budget(self.meta.timeout)
        } else {
            self.meta.timeout
        }
    }

    /// Arms the epoch deadline of `store` for `budget` of wall time.
    pub(super) fn arm(&self, store: &mut Store<HostState>, budget: Duration) {
        store.data_mut().budget = budget;
        self.clock.arm(store, budget);
    }

    /// A fresh instance with `init` already called. Setup gets at least
    /// [`SETUP_BUDGET`]: it is a one-time cost per instance, not the plugin's decision.
    pub(super) async fn instantiate(&self) -> Result<Warm, Fault> {
        let mut store = self.new_store();
        self.arm(&mut store, setup_budget(self.meta.timeout));
        let result: wasmtime::Result<(Bound, Result<(), String>)> = async {
            Ok(match &self.pre {
                Pre::Auth(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Auth(b), r)
                }
                Pre::Block(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Block(b), r)
                }
                Pre::Upstream(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Upstream(b), r)
                }
                Pre::BinarySource(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::BinarySource(b), r)
                }
                Pre::Hook(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::Hook(b), r)
                }
                Pre::RichHook(p) => {
                    let b = p.instantiate_async(&mut store).await?;
                    let r = b.call_init(&mut store).await?;
                    (Bound::RichHook(b), r)
                }
            })
        }
        .await;
        match result {
            Ok((bound, Ok(()))) => Ok(Warm { store, bound, uses: 0 }),
            Ok((_, Err(message))) => Err(Fault { message: format!("init failed: {message}") }),
            Err(e) => Err(self.fault(&store, &e)),
        }
    }

    pub(super) fn fault(&self, store: &Store<HostState>, e: &wasmtime::Error) -> Fault {
        let what = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!("timed out after {} ms", store.data().budget.as_millis()),
            _ if format!("{e:#}").contains("forcing trap when growing memory") => {
                format!("exceeded its memory limit of {} MiB", self.meta.max_memory_bytes / (1024 * 1024))
            }
            _ => format!("trapped: {}", first_line(&format!("{e:#}"))),
        };
        let stderr = String::from_utf8_lossy(&store.data().stderr.contents()).trim().to_string();
        let stderr: String = stderr.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
        let message = if stderr.is_empty() { what } else { format!("{what}; stderr: {stderr}") };
        Fault { message }
    }

    /// Takes a warm instance (or makes one) with the deadline set.
    pub(super) async fn take(&self, started: Instant) -> Result<Warm, Fault> {
        let popped = self.warm.lock().expect("warm pool lock").pop();
        let mut warm = match popped {
            Some(w) => w,
            None => match self.instantiate().await {
                Ok(w) => w,
                Err(fault) => {
                    self.stats.record(started.elapsed(), true);
                    tracing::warn!(plugin = %self.meta.name, error = %fault.message, "plugin failed to start");
                    return Err(fault);
                }
            },
        };
        let budget = self.budget(&warm);
        self.arm(&mut warm.store, budget);
        Ok(warm)
    }

    /// Records the call's outcome and returns the instance to the pool unless it faulted.
    pub(super) fn settle<R>(
        &self,
        started: Instant,
        mut warm: Warm,
        outcome: wasmtime::Result<R>,
        validate: impl FnOnce(&R) -> Result<(), String>,
    ) -> Result<R, Fault> {
        let result = match outcome {
            Ok(value) => match validate(&value) {
                Ok(()) => Ok(value),
                Err(why) => Err(Fault { message: format!("returned a malformed result: {why}") }),
            },
            Err(e) => Err(self.fault(&warm.store, &e)),
        };
        self.stats.record(started.elapsed(), result.is_err());
        match &result {
            Ok(_) => {
                warm.uses += 1;
                let stderr_full = warm.store.data().stderr.contents().len() > STDERR_CAPACITY / 2;
                if warm.uses < MAX_USES && !stderr_full {
                    let mut pool = self.warm.lock().expect("warm pool lock");
                    if pool.len() < MAX_WARM {
                        pool.push(warm);
                    }
                }
            }
            Err(fault) => {
                tracing::warn!(plugin = %self.meta.name, kind = self.meta.kind.as_str(), error = %fault.message, "plugin call failed");
            }
        }
        result
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(500).collect()
}
