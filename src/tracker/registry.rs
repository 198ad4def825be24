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

use super::{TrackInput, Tracker, TrackerConfig};

/// A camera's tracker plus when it was last fed, for idle eviction.
#[derive(Debug, Clone)]
struct Entry {
    tracker: Tracker,
    last_used_ms: i64,
}

/// Per-camera trackers, so ids persist across API calls for the same camera;
/// idle cameras are evicted.
///
/// Not internally synchronised: wrap it in a `Mutex` when shared between
/// request handlers (updates are short, so one lock is fine).
#[derive(Debug, Clone)]
pub struct TrackerRegistry {
    cfg: TrackerConfig,
    idle_evict_ms: i64,
    max_cameras: usize,
    cameras: HashMap<String, Entry>,
}

impl TrackerRegistry {
    /// Creates an empty registry. Every camera's tracker uses `cfg`; a camera
    /// not updated for `idle_evict_ms` or longer is dropped on the next call
    /// to [`update`](Self::update) or [`evict_idle`](Self::evict_idle).
    ///
    /// `idle_evict_ms` should normally be at least `cfg.max_lost_ms`: by then
    /// every track of an idle camera has expired anyway, so eviction loses
    /// nothing but the id counter.
    pub fn new(cfg: TrackerConfig, idle_evict_ms: i64) -> Self {
        Self {
            cfg,
            idle_evict_ms,
            max_cameras: usize::MAX,
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

    /// Runs `camera`'s tracker on one frame of detections (see
    /// [`Tracker::update`] for the meaning of the result), creating the tracker
    /// on first use. Other cameras idle for `idle_evict_ms` or longer are
    /// evicted first; the camera being updated never is, since it is
    /// evidently not idle.
    pub fn update(&mut self, camera: &str, dets: &[TrackInput], now_ms: i64) -> Vec<Option<u64>> {
        self.evict_idle_except(now_ms, Some(camera));
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
            });
        entry.last_used_ms = now_ms;
        entry.tracker.update(dets, now_ms)
    }

    /// Number of cameras with a live tracker, for metrics.
    pub fn cameras(&self) -> usize {
        self.cameras.len()
    }

    /// Drops every camera idle for `idle_evict_ms` or longer and returns how
    /// many were dropped; lets a housekeeping task reclaim memory even when no
    /// frames arrive at all.
    pub fn evict_idle(&mut self, now_ms: i64) -> usize {
        self.evict_idle_except(now_ms, None)
    }

    /// Forgets one camera immediately, e.g. when it is deleted from the
    /// configuration; returns whether it was present.
    pub fn remove(&mut self, camera: &str) -> bool {
        self.cameras.remove(camera).is_some()
    }

    /// The tracker of `camera`, if it has one, so API handlers can read track
    /// snapshots or counts without feeding a frame.
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
        let oldest = self
            .cameras
            .iter()
            .min_by_key(|(_, e)| e.last_used_ms)
            .map(|(name, _)| name.clone());
        match oldest {
            Some(name) => self.cameras.remove(&name).is_some(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(x1: f32) -> TrackInput {
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
            reg.update("front", &[person(0.0), person(300.0)], 0),
            vec![Some(1), Some(2)]
        );
        // A different camera starts its own id space, even for the same boxes.
        assert_eq!(reg.update("back", &[person(300.0)], 10), vec![Some(1)]);
        // Ids persist across calls for the same camera.
        assert_eq!(
            reg.update("front", &[person(302.0), person(1.0)], 200),
            vec![Some(2), Some(1)]
        );
        assert_eq!(reg.update("back", &[person(600.0)], 210), vec![Some(2)]);
        assert_eq!(reg.cameras(), 2);
        assert_eq!(reg.get("front").map(Tracker::active_tracks), Some(2));
    }

    #[test]
    fn idle_cameras_are_evicted() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 5_000);
        reg.update("a", &[person(0.0)], 0);
        reg.update("b", &[person(0.0)], 1_000);
        assert_eq!(reg.cameras(), 2);
        // "a" has been idle 5 s when "b" is fed: evicted; "b" is kept.
        reg.update("b", &[person(0.0)], 5_000);
        assert_eq!(reg.cameras(), 1);
        assert!(reg.get("a").is_none());
        // "a" comes back with a fresh tracker.
        assert_eq!(reg.update("a", &[person(0.0)], 5_100), vec![Some(1)]);
        // Housekeeping without frames.
        assert_eq!(reg.evict_idle(9_999), 0);
        assert_eq!(reg.evict_idle(10_100), 2);
        assert_eq!(reg.cameras(), 0);
    }

    #[test]
    fn camera_being_updated_is_never_evicted() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), 100);
        reg.update("a", &[person(0.0)], 0);
        reg.update("a", &[], 10_000);
        assert_eq!(reg.cameras(), 1);
    }

    #[test]
    fn max_cameras_evicts_least_recently_used() {
        let mut reg = TrackerRegistry::new(TrackerConfig::default(), i64::MAX).with_max_cameras(2);
        reg.update("a", &[person(0.0)], 0);
        reg.update("b", &[person(0.0)], 1);
        reg.update("a", &[person(0.0)], 2);
        reg.update("c", &[person(0.0)], 3);
        assert_eq!(reg.cameras(), 2);
        assert!(reg.get("b").is_none());
        assert!(reg.get("a").is_some() && reg.get("c").is_some());
        assert!(reg.remove("a"));
        assert!(!reg.remove("a"));
        assert_eq!(reg.cameras(), 1);
    }
}
