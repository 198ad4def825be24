//! Capped exponential backoff: the one retry delay of the daemon (camera
//! restarts, the MQTT mirror's reconnects, the event-write retry).
//!
//! A camera that is unplugged for a week must not cost a process spawn per
//! second, yet one that blinks must come back quickly: the delay doubles per
//! failure up to a cap, and resets once the thing proved healthy. Waits run
//! on the injected [`Clock`], so tests move time instead of sleeping.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

/// The delay before the next attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    /// Starts at `min_ms` and never exceeds `max_ms` (at least `min_ms`).
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        let min_ms = min_ms.max(1);
        Self {
            min_ms,
            max_ms: max_ms.max(min_ms),
            next_ms: min_ms,
        }
    }

    /// The delay to wait now; the one after is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next_ms;
        self.next_ms = self.next_ms.saturating_mul(2).min(self.max_ms);
        Duration::from_millis(d)
    }

    /// Back to the shortest delay: the retried thing proved healthy.
    pub fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }

    /// Waits the next delay on `clock`; `false` when `stop` is cancelled
    /// first (the caller gives up instead of retrying).
    pub async fn wait(&mut self, clock: &dyn Clock, stop: &CancellationToken) -> bool {
        let d = self.next_delay();
        tokio::select! {
            _ = clock.sleep(d) => true,
            _ = stop.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::new(500, 3_000);
        let got: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, [500, 1_000, 2_000, 3_000, 3_000, 3_000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
        let mut odd = Backoff::new(0, 0);
        assert_eq!(odd.next_delay(), Duration::from_millis(1));
        assert_eq!(odd.next_delay(), Duration::from_millis(1));
    }

    /// Spawns `b.wait` and returns when it is parked on the clock.
    async fn waiting(
        clock: &Arc<ManualClock>,
        mut b: Backoff,
        stop: &CancellationToken,
    ) -> tokio::task::JoinHandle<(bool, Duration)> {
        let (c, s) = (clock.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let went = b.wait(&*c, &s).await;
            (went, c.mono())
        });
        clock.sleeping(1).await;
        task
    }

    #[tokio::test]
    async fn a_wait_lasts_the_delay_in_clock_time() {
        let clock = Arc::new(ManualClock::new(0));
        let stop = CancellationToken::new();
        let mut b = Backoff::new(500, 3_000);
        b.next_delay();
        // The second wait is 1 s: moving 999 ms leaves it waiting.
        let task = waiting(&clock, b, &stop).await;
        clock.advance(999);
        // Let the woken task run (one thread): it must go back to waiting.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished());
        clock.advance(1);
        assert_eq!(task.await.unwrap(), (true, Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn a_cancelled_wait_ends_at_once_without_time_moving() {
        let clock = Arc::new(ManualClock::new(0));
        let stop = CancellationToken::new();
        let task = waiting(&clock, Backoff::new(60_000, 60_000), &stop).await;
        stop.cancel();
        assert_eq!(task.await.unwrap(), (false, Duration::ZERO));
    }
}
