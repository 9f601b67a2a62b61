//! The epoch clock behind every plugin call's wall-time deadline: a thread
//! that advances the engine's epoch every [`TICK`], but only while some call
//! armed since could still be running. An idle server (no plugins, or none
//! called) does not wake up 200 times a second for nothing.
//!
//! A call arms its deadline as "the current tick + n"; the clock keeps
//! ticking until the latest such tick is reached, so a runaway call is always
//! interrupted. Ticks are counted here (this thread is the engine's only
//! incrementer), which is what makes "the current tick" known.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// Epoch ticks: the deadline granularity.
pub(super) const TICK: Duration = Duration::from_millis(5);
/// How often an idle clock checks that its engine still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

pub(super) struct EpochClock {
    /// Ticks so far (the engine's epoch).
    ticks: AtomicU64,
    /// The tick until which the clock must run.
    until: AtomicU64,
    thread: std::thread::Thread,
}

impl EpochClock {
    /// Starts the clock's thread for `engine` (it ends with the engine).
    pub(super) fn start(engine: &Engine) -> std::io::Result<Arc<EpochClock>> {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<EpochClock>>();
        let weak = engine.weak();
        let handle = std::thread::Builder::new().name("cairn-wasm-epoch".into()).spawn(move || {
            if let Ok(clock) = rx.recv() {
                clock.run(weak);
            }
        })?;
        let clock = Arc::new(EpochClock { ticks: AtomicU64::new(0), until: AtomicU64::new(0), thread: handle.thread().clone() });
        let _ = tx.send(clock.clone());
        Ok(clock)
    }

    fn run(&self, engine: EngineWeak) {
        loop {
            if self.ticks.load(Ordering::SeqCst) >= self.until.load(Ordering::SeqCst) {
                // Nothing armed is still waiting for a tick: sleep until a call
                // arms one (waking once a second to end with the engine).
                std::thread::park_timeout(IDLE_CHECK);
                if engine.upgrade().is_none() {
                    return;
                }
                continue;
            }
            std::thread::sleep(TICK);
            let Some(engine) = engine.upgrade() else { return };
            engine.increment_epoch();
            self.ticks.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The deadline, in the store's terms (ticks from now), of a call that
    /// gets `budget`; the clock runs until it has passed.
    pub(super) fn arm(&self, budget: Duration) -> u64 {
        let n = (budget.as_millis() as u64).div_ceil(TICK.as_millis() as u64) + 1;
        let target = self.ticks.load(Ordering::SeqCst) + n;
        if self.until.fetch_max(target, Ordering::SeqCst) < target {
            self.thread.unpark();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_ticks_only_while_a_deadline_is_armed() {
        let engine = Engine::default();
        let clock = EpochClock::start(&engine).unwrap();
        std::thread::sleep(TICK * 6);
        assert_eq!(clock.ticks.load(Ordering::SeqCst), 0, "nothing armed: no ticks");
        let n = clock.arm(TICK * 4);
        assert_eq!(n, 5);
        let started = std::time::Instant::now();
        while clock.ticks.load(Ordering::SeqCst) < n {
            assert!(started.elapsed() < Duration::from_secs(5), "the clock did not run to the deadline");
            std::thread::sleep(TICK);
        }
        std::thread::sleep(TICK * 6);
        assert_eq!(clock.ticks.load(Ordering::SeqCst), n, "past the deadline the clock stops");
    }
}
