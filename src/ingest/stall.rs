//! Stall detection for one ffmpeg run: how long since its last frame,
//! against an allowance that is longer until the first frame (connecting to
//! and probing a camera can take a while). Time is the injected clock's
//! monotonic time, so the rule is tested by moving time.

use std::time::Duration;

/// Least time a new ffmpeg gets to deliver its first frame.
pub const FIRST_FRAME_GRACE: Duration = Duration::from_secs(30);

/// The silence allowed to one run, and when it last broke.
#[derive(Debug, Clone)]
pub struct StallWatch {
    stall: Duration,
    allowance: Duration,
    last_frame: Duration,
}

impl StallWatch {
    /// A run started at `now` (monotonic) that must deliver a frame at least
    /// every `stall_timeout` (at least [`FIRST_FRAME_GRACE`] for the first).
    pub fn new(stall_timeout: Duration, now: Duration) -> Self {
        Self {
            stall: stall_timeout,
            allowance: stall_timeout.max(FIRST_FRAME_GRACE),
            last_frame: now,
        }
    }

    /// A frame arrived at `now`: from here on only `stall_timeout` is allowed.
    pub fn frame(&mut self, now: Duration) {
        self.last_frame = now;
        self.allowance = self.stall;
    }

    /// How long the run has been silent at `now`, once that is past its allowance.
    pub fn stalled(&self, now: Duration) -> Option<Duration> {
        let silent = now.saturating_sub(self.last_frame);
        (silent > self.allowance).then_some(silent)
    }
}

/// The heartbeat of a run that records without decoding frames (a camera
/// whose detection reads its `detect_url`): the bytes its chunks hold grow
/// as ffmpeg muxes packets. A run whose chunks stop growing is stalled.
#[derive(Debug)]
pub struct ChunkGrowth {
    dir: std::path::PathBuf,
    prefix: String,
    bytes: u64,
}

impl ChunkGrowth {
    /// Watches the chunks `<run_id>-*.mp4` in `dir` (the `.inprogress` folder).
    pub fn new(dir: &std::path::Path, run_id: i64) -> Self {
        Self {
            dir: dir.to_owned(),
            prefix: format!("{run_id}-"),
            bytes: 0,
        }
    }

    /// Whether the run's chunks grew since the last call (a finished chunk
    /// moved out of the folder makes the sum drop: not growth, and the
    /// next call compares with the new sum).
    pub fn grew(&mut self) -> bool {
        let now: u64 = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with(&self.prefix) && n.ends_with(".mp4")
            })
            .filter_map(|e| e.metadata().ok().map(|m| m.len()))
            .sum();
        let grew = now > self.bytes;
        self.bytes = now;
        grew
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn chunk_growth_counts_only_this_runs_chunks_growing() {
        let dir = std::env::temp_dir().join(format!("onvr-growth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut g = ChunkGrowth::new(&dir, 7);
        assert!(!g.grew(), "no chunk yet");
        std::fs::write(dir.join("7-000000.mp4"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("8-000000.mp4"), [0u8; 99]).unwrap();
        assert!(g.grew());
        assert!(!g.grew(), "same size: no growth");
        std::fs::write(dir.join("8-000000.mp4"), [0u8; 200]).unwrap();
        assert!(!g.grew(), "another run's chunk");
        std::fs::write(dir.join("7-000000.mp4"), [0u8; 20]).unwrap();
        assert!(g.grew());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_frame_gets_the_grace_then_the_stall_timeout_applies() {
        let clock = ManualClock::new(0);
        clock.advance(5_000);
        let mut w = StallWatch::new(Duration::from_secs(20), clock.mono());
        clock.advance(30_000);
        assert_eq!(
            w.stalled(clock.mono()),
            None,
            "30 s is the first frame's grace"
        );
        clock.advance(1);
        assert_eq!(w.stalled(clock.mono()), Some(Duration::from_millis(30_001)));
        w.frame(clock.mono());
        clock.advance(20_000);
        assert_eq!(w.stalled(clock.mono()), None);
        clock.advance(500);
        assert_eq!(w.stalled(clock.mono()), Some(Duration::from_millis(20_500)));
        // Each frame restarts the count.
        w.frame(clock.mono());
        clock.advance(19_999);
        assert_eq!(w.stalled(clock.mono()), None);
    }

    #[test]
    fn a_stall_timeout_longer_than_the_grace_is_kept_for_the_first_frame() {
        let clock = ManualClock::new(0);
        let w = StallWatch::new(Duration::from_secs(45), clock.mono());
        clock.advance(45_000);
        assert_eq!(w.stalled(clock.mono()), None);
        clock.advance(1);
        assert!(w.stalled(clock.mono()).is_some());
    }
}
