//! The slow-client guard: a client gets `request_timeout_secs` to send a
//! request's headers, counted from the connection's start or from the end of
//! the previous answer, so a stalled request head and an idle keep-alive
//! connection are both closed after it.
//!
//! One sweeper task checks every connection's deadline four times per timeout
//! (at most every 250 ms) and aborts the connections past theirs. A request
//! only stores two atomics: its connection's deadline is lifted when its
//! headers are in (hyper calls the service) and set again when its answer's
//! body is dropped (hyper has written it). hyper's own header-read timer does
//! the same with a boxed sleep created, put into the runtime's timer wheel and
//! taken out again on every request, which is what this replaces.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A deadline that is not running (a request is being handled).
const LIFTED: u64 = u64::MAX;

/// The guard of one server: the coarse clock, the timeout and the connections.
pub struct Guard {
    timeout_ms: u64,
    tick: Duration,
    started: Instant,
    /// Milliseconds since `started`, as of the sweeper's last tick.
    now_ms: AtomicU64,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, (Arc<Deadline>, AbortHandle)>>,
}

/// One connection's deadline (ms on the guard's clock, or [`LIFTED`]).
pub struct Deadline {
    at_ms: AtomicU64,
    guard: Arc<Guard>,
}

impl Guard {
    pub fn new(timeout: Duration) -> Arc<Guard> {
        Arc::new(Guard {
            timeout_ms: timeout.as_millis() as u64,
            tick: (timeout / 4).min(Duration::from_millis(250)),
            started: Instant::now(),
            now_ms: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// A deadline for a new connection, running from now.
    pub fn deadline(self: &Arc<Self>) -> Arc<Deadline> {
        let deadline = Arc::new(Deadline { at_ms: AtomicU64::new(LIFTED), guard: self.clone() });
        deadline.start();
        deadline
    }

    /// Watches the connection `task` runs under `deadline`.
    pub fn watch(&self, deadline: Arc<Deadline>, task: AbortHandle) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections.lock().expect("connections lock").insert(id, (deadline, task));
    }

    /// Runs until aborted: ticks the clock and closes connections past their deadline.
    pub async fn sweep(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = self.started.elapsed().as_millis() as u64;
            self.now_ms.store(now, Ordering::Relaxed);
            let mut closed = 0usize;
            self.connections.lock().expect("connections lock").retain(|_, (deadline, task)| {
                if task.is_finished() {
                    return false;
                }
                if deadline.at_ms.load(Ordering::Relaxed) > now {
                    return true;
                }
                task.abort();
                closed += 1;
                false
            });
            if closed > 0 {
                tracing::debug!(closed, "closed connections that sent no complete request head within request_timeout_secs");
            }
        }
    }

    /// Connections being watched (finished ones leave at the next tick).
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.connections.lock().expect("connections lock").len()
    }
}

impl Deadline {
    /// The client has `request_timeout_secs` from now to send a request head.
    fn start(&self) {
        let now = self.guard.now_ms.load(Ordering::Relaxed);
        self.at_ms.store(now + self.guard.timeout_ms, Ordering::Relaxed);
    }

    /// A request head is in: no deadline while it is handled.
    pub fn lift(&self) {
        self.at_ms.store(LIFTED, Ordering::Relaxed);
    }
}

/// An answer's body that starts its connection's deadline again when hyper
/// drops it (written, or given up).
pub struct Restarts<B> {
    body: B,
    deadline: Arc<Deadline>,
}

impl<B> Restarts<B> {
    pub fn new(body: B, deadline: Arc<Deadline>) -> Self {
        Restarts { body, deadline }
    }
}

impl<B> Drop for Restarts<B> {
    fn drop(&mut self) {
        self.deadline.start();
    }
}

impl<B: Body + Unpin> Body for Restarts<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_past_its_deadline_is_aborted_and_a_busy_one_is_not() {
        let ms = Duration::from_millis;
        let guard = Guard::new(ms(400));
        let sweeper = tokio::spawn(guard.clone().sweep());
        let idle = guard.deadline();
        let idle_task = tokio::spawn(std::future::pending::<()>());
        guard.watch(idle, idle_task.abort_handle());
        let busy = guard.deadline();
        busy.lift();
        let busy_task = tokio::spawn(std::future::pending::<()>());
        guard.watch(busy.clone(), busy_task.abort_handle());

        tokio::time::sleep(ms(600)).await;
        assert!(idle_task.await.unwrap_err().is_cancelled(), "the idle connection is closed");
        assert!(!busy_task.is_finished(), "a connection whose request is being handled stays");

        // Its answer written, the busy connection has the timeout again to send the next head.
        drop(Restarts::new((), busy));
        tokio::time::sleep(ms(200)).await;
        assert!(!busy_task.is_finished());
        tokio::time::sleep(ms(500)).await;
        assert!(busy_task.await.unwrap_err().is_cancelled());
        assert_eq!(guard.watched(), 0);
        sweeper.abort();
    }
}
