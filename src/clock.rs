//! An injectable clock, so time-based logic (tracks expiring, uptime, stall
//! detection, backoff waits) is tested by moving time rather than by sleeping.
//!
//! Two kinds of time: the wall clock ([`Clock::now_ms`], epoch milliseconds,
//! for what is stored or shown; it may jump) and monotonic time
//! ([`Clock::mono`], never goes back, for measuring how long something took
//! and for waiting, [`Clock::sleep`]). A deadline is always taken on the
//! monotonic side, so a wall-clock jump (NTP, a Jetson without an RTC) can
//! neither fire nor postpone it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// Wall and monotonic time, and sleeping on the latter, from whatever
/// source the caller chose.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Time since an arbitrary origin fixed for the clock's life; never decreases.
    fn mono(&self) -> Duration;
    /// Resolves once [`Clock::mono`] has moved on by `d` from now.
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()>;
}

/// The real clocks: the system's wall clock and tokio's monotonic timer
/// (so tokio's paused test time moves it too).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn mono(&self) -> Duration {
        static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
        ORIGIN.get_or_init(tokio::time::Instant::now).elapsed()
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that only moves when told to; for tests. Pending sleeps wake
/// when [`ManualClock::advance`] moves monotonic time past their deadline.
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    /// Monotonic time and the number of sleeps waiting on it; sleepers wait
    /// for a change, so nothing polls.
    mono: watch::Sender<Mono>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Mono {
    now: Duration,
    sleepers: usize,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(0)
    }
}

impl ManualClock {
    /// Wall time starts at `start_ms`, monotonic time at zero.
    pub fn new(start_ms: i64) -> Self {
        Self {
            wall_ms: AtomicI64::new(start_ms),
            mono: watch::Sender::new(Mono::default()),
        }
    }

    /// Moves wall time by `ms`; a positive `ms` moves monotonic time too
    /// (it never goes back) and wakes the sleeps that are due.
    pub fn advance(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        if ms > 0 {
            let d = Duration::from_millis(ms as u64);
            self.mono.send_modify(|m| m.now += d);
        }
    }

    /// Resolves once at least `n` sleeps are waiting on this clock: a test
    /// moves time only after the code under test has started its wait.
    pub async fn sleeping(&self, n: usize) {
        let mut rx = self.mono.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        let _ = rx.wait_for(|m| m.sleepers >= n).await;
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn mono(&self) -> Duration {
        self.mono.borrow().now
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        let deadline = self.mono() + d;
        let mut rx = self.mono.subscribe();
        Box::pin(async move {
            let _waiting = Sleeper::enter(&self.mono);
            let _ = rx.wait_for(|m| m.now >= deadline).await;
        })
    }
}

/// Counts one pending sleep for [`ManualClock::sleeping`] while it lives.
struct Sleeper<'a>(&'a watch::Sender<Mono>);

impl<'a> Sleeper<'a> {
    fn enter(tx: &'a watch::Sender<Mono>) -> Self {
        tx.send_modify(|m| m.sleepers += 1);
        Self(tx)
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|m| m.sleepers -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn manual_time_moves_only_when_told_and_never_back() {
        let c = ManualClock::new(1_000);
        assert_eq!((c.now_ms(), c.mono()), (1_000, Duration::ZERO));
        c.advance(250);
        assert_eq!((c.now_ms(), c.mono()), (1_250, Duration::from_millis(250)));
        // A wall clock stepped back (NTP) leaves monotonic time where it was.
        c.advance(-1_000);
        assert_eq!((c.now_ms(), c.mono()), (250, Duration::from_millis(250)));
    }

    #[test]
    fn a_sleep_wakes_exactly_when_time_reaches_its_deadline() {
        let c = ManualClock::new(0);
        c.advance(100);
        let mut nap = c.sleep(Duration::from_millis(500));
        assert!(nap.as_mut().now_or_never().is_none());
        c.advance(499);
        assert!(nap.as_mut().now_or_never().is_none());
        c.advance(1);
        assert!(nap.as_mut().now_or_never().is_some());
        // A zero sleep is due at once.
        assert!(c.sleep(Duration::ZERO).now_or_never().is_some());
    }

    #[tokio::test]
    async fn pending_sleeps_are_counted_and_woken_by_advance() {
        let c = std::sync::Arc::new(ManualClock::new(0));
        let task = tokio::spawn({
            let c = c.clone();
            async move {
                let (a, b) = (
                    c.sleep(Duration::from_secs(1)),
                    c.sleep(Duration::from_secs(2)),
                );
                tokio::join!(a, b);
                c.mono()
            }
        });
        c.sleeping(2).await;
        c.advance(1_000);
        c.advance(1_000);
        assert_eq!(task.await.unwrap(), Duration::from_secs(2));
        // Both sleepers left: the count went back down.
        assert_eq!(c.mono.borrow().sleepers, 0);
    }
}
