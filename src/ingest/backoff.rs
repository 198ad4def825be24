//! Capped exponential restart delay for camera processes.
//!
//! A camera that is unplugged for a week must not cost a process spawn per
//! second, yet one that blinks must come back quickly: the delay doubles per
//! failed start up to a cap, and resets once a start delivers frames.

use std::time::Duration;

/// The delay before the next start of a camera's ffmpeg child.
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

    /// Back to the shortest delay: the camera proved healthy.
    pub fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
