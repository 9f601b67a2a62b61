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

use wasmtime::{Engine, EngineWeak, Store};

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
            // Counted first: the engine's epoch is never ahead of `ticks`.
            self.ticks.fetch_add(1, Ordering::SeqCst);
            engine.increment_epoch();
        }
    }

    /// Sets the deadline of a call on `store` that gets `budget`, and keeps
    /// the clock running until it has passed.
    pub(super) fn arm<T>(&self, store: &mut Store<T>, budget: Duration) {
        let n = (budget.as_millis() as u64).div_ceil(TICK.as_millis() as u64) + 1;
        store.set_epoch_deadline(n);
        // Read after the deadline is set: the engine's epoch then was at most
        // `ticks` now, so the store's deadline is at most `target`.
        let target = self.ticks.load(Ordering::SeqCst) + n;
        if self.until.fetch_max(target, Ordering::SeqCst) < target {
            self.thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_ticks_only_while_a_deadline_is_armed() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let clock = EpochClock::start(&engine).unwrap();
        std::thread::sleep(TICK * 6);
        assert_eq!(clock.ticks.load(Ordering::SeqCst), 0, "nothing armed: no ticks");
        let mut store = Store::new(&engine, ());
        clock.arm(&mut store, TICK * 4);
        let n = 5; // 4 ticks of budget, plus one for the tick under way
        assert_eq!(clock.until.load(Ordering::SeqCst), n);
        let started = std::time::Instant::now();
        while clock.ticks.load(Ordering::SeqCst) < n {
            assert!(started.elapsed() < Duration::from_secs(5), "the clock did not run to the deadline");
            std::thread::sleep(TICK);
        }
        std::thread::sleep(TICK * 6);
        assert_eq!(clock.ticks.load(Ordering::SeqCst), n, "past the deadline the clock stops");
    }
}
