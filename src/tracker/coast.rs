//! How long a track has gone unseen *while looked for*.
//!
//! Motion gating does not run the detector where nothing moves: a person
//! standing still is looked at only by the periodic full pass (see
//! `ingest::regions`). Time in which a track was deliberately not looked at
//! ("held") must not count towards losing it, or every stationary person
//! would leave and come back at each full pass. [`Coast`] keeps that
//! account; the tracker and the camera's event rules (`ingest::tracks`)
//! each keep one per track, fed the same holds, so they agree on when a
//! person is gone.

/// One track's loss clock: unseen time minus the time it was held.
/// Never held, it is plain `now - last_seen`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coast {
    /// Held time since the last sighting, over holds that have ended.
    credit_ms: i64,
    /// When the hold in progress began.
    held_since: Option<i64>,
}

impl Coast {
    /// Holds (`held`) or releases the track at `now_ms`; holding what is
    /// held, or releasing what is not, changes nothing.
    pub fn set(&mut self, held: bool, now_ms: i64) {
        match (held, self.held_since) {
            (true, None) => self.held_since = Some(now_ms),
            (false, Some(s)) => {
                self.credit_ms = self
                    .credit_ms
                    .saturating_add(now_ms.saturating_sub(s).max(0));
                self.held_since = None;
            }
            _ => {}
        }
    }

    /// The track was seen at `now_ms`: the account starts again (a hold in
    /// progress goes on from now).
    pub fn seen(&mut self, now_ms: i64) {
        self.credit_ms = 0;
        if self.held_since.is_some() {
            self.held_since = Some(now_ms);
        }
    }

    /// Whether a hold is in progress.
    pub fn held(&self) -> bool {
        self.held_since.is_some()
    }

    /// Time unseen while looked for, at `now_ms`, for a track last seen at
    /// `last_seen_ms`.
    pub fn unseen_ms(&self, last_seen_ms: i64, now_ms: i64) -> i64 {
        let holding = self
            .held_since
            .map_or(0, |s| now_ms.saturating_sub(s).max(0));
        now_ms
            .saturating_sub(last_seen_ms)
            .saturating_sub(self.credit_ms)
            .saturating_sub(holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_time_does_not_count_and_a_sighting_starts_afresh() {
        let mut c = Coast::default();
        assert_eq!(c.unseen_ms(0, 1_000), 1_000, "never held: plain time");
        c.set(true, 1_000);
        c.set(true, 5_000);
        assert!(c.held());
        assert_eq!(c.unseen_ms(0, 30_000), 1_000, "held from 1 s on");
        c.set(false, 30_000);
        assert!(!c.held());
        assert_eq!(c.unseen_ms(0, 30_500), 1_500);
        c.seen(31_000);
        assert_eq!(c.unseen_ms(31_000, 32_000), 1_000);
        // Seen while held: the hold goes on from the sighting.
        c.set(true, 32_000);
        c.seen(33_000);
        assert_eq!(c.unseen_ms(33_000, 90_000), 0);
        c.set(false, 90_000);
        assert_eq!(c.unseen_ms(33_000, 90_200), 200);
    }
}
