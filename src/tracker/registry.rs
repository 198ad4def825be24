//! One [`Tracker`] per camera, kept between API calls.
//!
//! Clients send a camera's frames one request at a time; without a place to
//! keep each camera's tracker, every request would start from id 1 again. The
//! registry owns those trackers, keyed by camera name, and drops the ones that
//! stop receiving frames so memory does not grow with every camera name ever
//! seen.
//!
//! Id spaces are per camera: ids start at 1 for each camera. When a camera is
//! evicted and later comes back it gets a fresh tracker, so its ids start at 1
//! again; consumers that persist ids should key them by
//! `(camera, id, first_seen time)` or keep `idle_evict_ms` long.

use std::collections::HashMap;

use super::{evict_oldest, TrackInput, Tracker, TrackerConfig};

/// A camera's tracker plus when it was last fed, for idle eviction.
#[derive(Debug, Clone)]
struct Entry {
    tracker: Tracker,
    /// The registry's clock (real time) at the last update.
    last_used_ms: i64,
    /// The frame clock (the caller's timestamps) at the last update.
    last_frame_ms: i64,
}

/// A frame time the registry refuses: too far ahead of the camera's clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "timestamp_ms {got_ms} is {ahead_ms} ms ahead of camera {camera:?}'s tracker clock \
     (at most {limit_ms}); send capture times that advance with real time, or omit timestamp_ms"
)]
pub struct TimeJump {
    /// The camera whose clock the frame would have moved.
    pub camera: String,
    /// The frame's `timestamp_ms`.
    pub got_ms: i64,
    /// How far ahead of the tracker's clock it was.
    pub ahead_ms: i64,
    /// The most that is accepted (`ai.max_timestamp_jump_ms`).
    pub limit_ms: i64,
}

/// Per-camera trackers, so ids persist across API calls for the same camera;
/// idle cameras are evicted.
///
/// Two clocks: `now_ms` (real time, the registry's own) decides idleness and
/// eviction, so no frame time can age other cameras out; the frame time
/// (`frame_ms`, the caller's capture time) drives each camera's tracker and
/// may not run ahead of that camera's clock by more than `max_jump_ms`. A
/// frame older than the camera's last one is treated as arriving at that
/// time (late frames happen with concurrent requests).
///
/// Not internally synchronised: wrap it in a `Mutex` when shared between
/// request handlers (updates are short, so one lock is fine).
#[derive(Debug, Clone)]
pub struct TrackerRegistry {
    cfg: TrackerConfig,
    idle_evict_ms: i64,
    max_cameras: usize,
    max_jump_ms: i64,
    cameras: HashMap<String, Entry>,
}

impl TrackerRegistry {
    /// Creates an empty registry. Every camera's tracker uses `cfg`; a camera
    /// not updated for `idle_evict_ms` or longer (registry clock) is dropped
    /// on the next call to [`update`](Self::update).
    ///
    /// `idle_evict_ms` should normally be at least `cfg.max_lost_ms`: by then
    /// every track of an idle camera has expired anyway, so eviction loses
    /// nothing but the id counter.
    pub fn new(cfg: TrackerConfig, idle_evict_ms: i64) -> Self {
        Self {
            cfg,
            idle_evict_ms,
            max_cameras: usize::MAX,
            max_jump_ms: i64::MAX,
            cameras: HashMap::new(),
        }
    }

    /// Caps how many cameras are kept (least recently used is evicted first),
    /// so a client inventing camera names cannot grow memory without bound
    /// within one idle period. `0` is treated as `1`.
    pub fn with_max_cameras(mut self, max_cameras: usize) -> Self {
        self.max_cameras = max_cameras.max(1);
        self
    }

    /// Refuses frame times further than `max_jump_ms` ahead of a camera's
    /// clock (see [`TimeJump`]); a far-future time would end every track.
    pub fn with_max_jump(mut self, max_jump_ms: i64) -> Self {
        self.max_jump_ms = max_jump_ms.max(0);
        self
    }

    /// The frame time `update` would use for `camera`, or why it refuses it.
    /// `None` (no capture time) advances the camera's clock by real time.
    pub fn frame_time(
        &self,
        camera: &str,
        frame_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<i64, TimeJump> {
        let Some(e) = self.cameras.get(camera) else {
            return Ok(frame_ms.unwrap_or(now_ms));
        };
        let expected = e
            .last_frame_ms
            .saturating_add(now_ms.saturating_sub(e.last_used_ms).max(0));
        let Some(t) = frame_ms else {
            return Ok(expected);
        };
        let ahead = t.saturating_sub(expected);
        if ahead > self.max_jump_ms {
            return Err(TimeJump {
                camera: camera.to_owned(),
                got_ms: t,
                ahead_ms: ahead,
                limit_ms: self.max_jump_ms,
            });
        }
        Ok(t.max(e.last_frame_ms))
    }

    /// Runs `camera`'s tracker on one frame of detections (see
    /// [`Tracker::update`] for the meaning of the result), creating the tracker
    /// on first use. Other cameras idle for `idle_evict_ms` or longer are
    /// evicted first; the camera being updated never is, since it is
    /// evidently not idle.
    pub fn update(
        &mut self,
        camera: &str,
        dets: &[TrackInput],
        frame_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Vec<Option<u64>>, TimeJump> {
        self.evict_idle_except(now_ms, Some(camera));
        let t = self.frame_time(camera, frame_ms, now_ms)?;
        if !self.cameras.contains_key(camera) {
            while self.cameras.len() >= self.max_cameras {
                if !self.evict_least_recently_used() {
                    break;
                }
            }
        }
        let cfg = self.cfg;
        let entry = self
            .cameras
            .entry(camera.to_owned())
            .or_insert_with(|| Entry {
                tracker: Tracker::new(cfg),
                last_used_ms: now_ms,
                last_frame_ms: t,
            });
        entry.last_used_ms = now_ms;
        entry.last_frame_ms = t;
        Ok(entry.tracker.update(dets, t))
    }

    /// Number of cameras with a live tracker (test-only view).
    #[cfg(test)]
    pub fn cameras(&self) -> usize {
        self.cameras.len()
    }

    /// Drops every camera idle for `idle_evict_ms` or longer and returns how
    /// many were dropped (test-only: `update` evicts as it goes).
    #[cfg(test)]
    pub fn evict_idle(&mut self, now_ms: i64) -> usize {
        self.evict_idle_except(now_ms, None)
    }

    /// Forgets one camera immediately; returns whether it was present (test-only).
    #[cfg(test)]
    pub fn remove(&mut self, camera: &str) -> bool {
        self.cameras.remove(camera).is_some()
    }

    /// The tracker of `camera`, if it has one (test-only view).
    #[cfg(test)]
    pub fn get(&self, camera: &str) -> Option<&Tracker> {
        self.cameras.get(camera).map(|e| &e.tracker)
    }

    fn evict_idle_except(&mut self, now_ms: i64, keep: Option<&str>) -> usize {
        let before = self.cameras.len();
        let limit = self.idle_evict_ms;
        self.cameras.retain(|name, e| {
            Some(name.as_str()) == keep || now_ms.saturating_sub(e.last_used_ms) < limit
        });
        before - self.cameras.len()
    }

    fn evict_least_recently_used(&mut self) -> bool {
        evict_oldest(&mut self.cameras, |e| e.last_used_ms)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A confident person box at `x1`, for tracker tests.
    pub(crate) fn person(x1: f32) -> TrackInput {
        TrackInput {
            bbox: [x1, 100.0, x1 + 50.0, 220.0],
            score: 0.9,
            class_id: 0,
        }
    }

    #[test]
    fn separate_id_spaces_per_camera() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 60_000);
        assert_eq!(
            reg.update("front", &[person(0.0), person(300.0)], Some(0), 0)
                .unwrap(),
            vec![Some(1), Some(2)]
        );
        // A different camera starts its own id space, even for the same boxes.
        assert_eq!(
            reg.update("back", &[person(300.0)], Some(10), 10).unwrap(),
            vec![Some(1)]
        );
        // Ids persist across calls for the same camera.
        assert_eq!(
            reg.update("front", &[person(302.0), person(1.0)], Some(200), 200)
                .unwrap(),
            vec![Some(2), Some(1)]
        );
        assert_eq!(
            reg.update("back", &[person(600.0)], Some(210), 210)
                .unwrap(),
            vec![Some(2)]
        );
        assert_eq!(reg.cameras(), 2);
        assert_eq!(reg.get("front").map(Tracker::active_tracks), Some(2));
    }

    #[test]
    fn idle_cameras_are_evicted() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 5_000);
        reg.update("a", &[person(0.0)], Some(0), 0).unwrap();
        reg.update("b", &[person(0.0)], Some(1_000), 1_000).unwrap();
        assert_eq!(reg.cameras(), 2);
        // "a" has been idle 5 s when "b" is fed: evicted; "b" is kept.
        reg.update("b", &[person(0.0)], Some(5_000), 5_000).unwrap();
        assert_eq!(reg.cameras(), 1);
        assert!(reg.get("a").is_none());
        // "a" comes back with a fresh tracker.
        assert_eq!(
            reg.update("a", &[person(0.0)], Some(5_100), 5_100).unwrap(),
            vec![Some(1)]
        );
        // Housekeeping without frames.
        assert_eq!(reg.evict_idle(9_999), 0);
        assert_eq!(reg.evict_idle(10_100), 2);
        assert_eq!(reg.cameras(), 0);
    }

    #[test]
    fn camera_being_updated_is_never_evicted() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 100);
        reg.update("a", &[person(0.0)], Some(0), 0).unwrap();
        reg.update("a", &[], Some(10_000), 10_000).unwrap();
        assert_eq!(reg.cameras(), 1);
    }

    #[test]
    fn max_cameras_evicts_least_recently_used() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), i64::MAX).with_max_cameras(2);
        reg.update("a", &[person(0.0)], Some(0), 0).unwrap();
        reg.update("b", &[person(0.0)], Some(1), 1).unwrap();
        reg.update("a", &[person(0.0)], Some(2), 2).unwrap();
        reg.update("c", &[person(0.0)], Some(3), 3).unwrap();
        assert_eq!(reg.cameras(), 2);
        assert!(reg.get("b").is_none());
        assert!(reg.get("a").is_some() && reg.get("c").is_some());
        assert!(reg.remove("a"));
        assert!(!reg.remove("a"));
        assert_eq!(reg.cameras(), 1);
    }

    #[test]
    fn frame_times_far_ahead_are_refused_and_late_ones_clamped() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 60_000).with_max_jump(10_000);
        reg.update("a", &[person(0.0)], Some(1_000), 500).unwrap();
        // 2 s of real time later, 2.1 s of frame time: fine.
        assert_eq!(reg.frame_time("a", Some(3_100), 2_500), Ok(3_100));
        // Far ahead of the camera's clock: refused, and nothing changed.
        let err = reg
            .update("a", &[], Some(4_102_444_800_000), 2_600)
            .unwrap_err();
        assert_eq!(err.limit_ms, 10_000);
        assert_eq!(reg.get("a").map(Tracker::active_tracks), Some(1));
        // Late frames are taken at the camera's last time; none means real time.
        assert_eq!(reg.frame_time("a", Some(0), 2_600), Ok(1_000));
        assert_eq!(reg.frame_time("a", None, 2_600), Ok(3_100));
        // Another camera starts its own clock.
        assert_eq!(reg.frame_time("b", Some(9), 2_600), Ok(9));
    }

    #[test]
    fn frame_times_do_not_age_other_cameras() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 5_000);
        reg.update("a", &[person(0.0)], Some(0), 0).unwrap();
        reg.update("b", &[person(0.0)], Some(i64::MAX / 2), 100)
            .unwrap();
        assert!(
            reg.get("a").is_some(),
            "a frame time is no clock for eviction"
        );
    }
}
