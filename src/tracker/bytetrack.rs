//! The ByteTrack-style association loop for a single video stream.
//!
//! Each [`Tracker::update`]:
//! 1. works out how many nominal frames have elapsed since the previous call
//!    (`dt`, see [`Tracker::update`]) and forgets tracks unseen for
//!    `max_lost_ms` or longer;
//! 2. predicts every remaining track forward by `dt` with its Kalman filter;
//! 3. **stage 1** matches confident detections (`score >= high_thresh`) against
//!    all tracks, tracked and lost, by IoU of the predicted box;
//! 4. **stage 2** matches weak detections (`low_thresh <= score < high_thresh`)
//!    against tracks that were being tracked until now and are still
//!    unmatched, with a stricter IoU;
//! 5. marks unmatched tracked tracks as lost and starts a new track for every
//!    unmatched confident detection.
//!
//! Matches are only made between equal `class_id`s.
//!
//! Assignment is **greedy by best IoU**: all gated (track, detection) pairs
//! are sorted by IoU, highest first (ties broken by track then detection
//! order, so results are deterministic), and taken while both sides are free.
//! We chose greedy over Hungarian/Jonker-Volgenant because it only ever
//! touches pairs that pass the IoU gate (cost is O(n*m) to gate plus
//! O(p log p) for p gated pairs, never O(n^3)), has no failure modes on
//! degenerate inputs, and with Kalman-predicted boxes it differs from the
//! optimal assignment only in dense, ambiguous overlaps.

use std::collections::VecDeque;

use super::coast::Coast;
use super::kalman::{to_measurement, KalmanBox};
use super::{Predicted, TrackInput, TrackerConfig};

/// Frame interval assumed until the tracker has seen two calls; 5 fps is the
/// typical analytics rate on the edge boxes.
pub const DEFAULT_FRAME_MS: f64 = 200.0;

/// How many recent call gaps feed the nominal-frame median: enough to shrug
/// off a few dropped or bursty frames, small enough to follow a rate change
/// within seconds.
const GAP_WINDOW: usize = 32;

/// Upper bound on `dt` (in nominal frames) for one prediction, so a huge clock
/// jump cannot push coasting boxes towards infinity. Tracks that old are
/// normally expired by `max_lost_ms` before this matters.
const MAX_DT_FRAMES: f64 = 10_000.0;

/// A track whose centre moves, or whose width or height changes, by no more
/// than this fraction of its height from where it settled counts as still
/// ([`Predicted::still_since_ms`]): detector jitter on a standing person is a
/// few per cent of its height; a step is far more.
pub const STILL_TOLERANCE: f64 = 0.2;

/// Whether a track was matched in the latest update; the distinction decides
/// which association stages may use it and whether it counts as active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// Matched (or started) in the most recent update.
    Tracked,
    /// Not matched in the most recent update but still within `max_lost_ms`,
    /// so a confident detection can still revive it under the same id.
    Lost,
}

/// Read-only view of one track, for the tests to see where the tracker
/// believes objects are without reaching into its internals.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSnapshot {
    /// The id [`Tracker::update`] hands out for this object.
    pub id: u64,
    /// Class the track was started with; never changes.
    pub class_id: u32,
    /// Kalman-filtered `x1,y1,x2,y2` (predicted position for lost tracks),
    /// smoother than the raw detections.
    pub bbox: [f32; 4],
    /// Centre velocity in pixels per nominal frame, for direction-of-travel
    /// rules.
    pub velocity: [f32; 2],
    /// Score of the detection that last matched this track.
    pub score: f32,
    /// Whether it was seen in the latest update.
    pub state: TrackState,
    /// Caller clock time of the latest sighting, for staleness checks.
    pub last_seen_ms: i64,
    /// Number of detections matched so far; lets callers ignore one-frame
    /// flickers.
    pub hits: u32,
}

/// Internal per-object state.
#[derive(Debug, Clone)]
struct Track {
    id: u64,
    class_id: u32,
    kf: KalmanBox,
    state: TrackState,
    score: f32,
    last_seen_ms: i64,
    hits: u32,
    /// Time held unlooked-at does not age it ([`Tracker::hold`]).
    coast: Coast,
    /// Where it settled (a measurement, `cx, cy, aspect, h`) and since when.
    still: ([f64; 4], i64),
}

impl Track {
    fn mark_seen(&mut self, meas: [f64; 4], score: f32, now_ms: i64) {
        self.kf.update(meas);
        self.state = TrackState::Tracked;
        self.score = score;
        self.last_seen_ms = now_ms;
        self.hits = self.hits.saturating_add(1);
        self.coast.seen(now_ms);
        if moved(&self.still.0, &meas) {
            self.still = (meas, now_ms);
        }
    }
}

/// Whether measurement `m` (`cx, cy, aspect, h`) has left `anchor` by more
/// than [`STILL_TOLERANCE`] of the anchor's height.
fn moved(anchor: &[f64; 4], m: &[f64; 4]) -> bool {
    let limit = STILL_TOLERANCE * anchor[3];
    let shift = (m[0] - anchor[0]).hypot(m[1] - anchor[1]);
    let widths = (m[2] * m[3] - anchor[2] * anchor[3]).abs();
    !(shift <= limit && widths <= limit && (m[3] - anchor[3]).abs() <= limit)
}

/// A validated detection, converted to `f64` once so every later step can
/// trust it.
#[derive(Debug, Clone, Copy)]
struct Det {
    /// Position in the caller's input slice, so results line up with it.
    index: usize,
    bbox: [f64; 4],
    score: f32,
    class_id: u32,
}

/// Tracker for one video stream: feed it each frame's detections, get back a
/// stable id per detection.
///
/// Ids start at 1, increase, and are never reused within one `Tracker`.
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    last_update_ms: Option<i64>,
    /// Recent positive gaps between calls, for the nominal frame time.
    gaps: VecDeque<i64>,
    active: usize,
}

impl Tracker {
    /// Creates an empty tracker; configuration is fixed for its lifetime so
    /// ids and thresholds stay consistent for one stream.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
            last_update_ms: None,
            gaps: VecDeque::with_capacity(GAP_WINDOW),
            active: 0,
        }
    }

    /// Associates one frame's detections with tracks and returns, for each
    /// input detection in order, the id it was assigned.
    ///
    /// `now_ms` is supplied by the caller (an injectable clock: tests never
    /// sleep, and replayed footage can use its own timestamps). Time going
    /// backwards is tolerated: nothing is predicted and nothing expires.
    ///
    /// Every valid detection with `score >= high_thresh` always gets
    /// `Some(id)` (a new id if it matched nothing), so the API can report an
    /// id for everything it reports. A detection with
    /// `low_thresh <= score < high_thresh` gets `Some` only when it continues
    /// a track that was tracked in the previous update. Detections below
    /// `low_thresh`, or with a non-finite score or coordinate, or with zero or
    /// negative width/height, get `None` and do not affect any track.
    ///
    /// Motion: velocities are per *nominal frame*, where the nominal frame
    /// time is the median of the last few positive gaps between calls
    /// (including this one), or 200 ms before any gap exists. Tracks are
    /// predicted by `dt = (now_ms - previous_now_ms) / nominal_frame_ms`, so
    /// a skipped frame predicts twice as far and irregular call rates keep
    /// working.
    pub fn update(&mut self, dets: &[TrackInput], now_ms: i64) -> Vec<Option<u64>> {
        let mut out = vec![None; dets.len()];
        let dt = self.advance_clock(now_ms);

        let max_lost = self.cfg.max_lost_ms;
        self.tracks
            .retain(|t| t.coast.unseen_ms(t.last_seen_ms, now_ms) < max_lost);

        let was_tracked: Vec<bool> = self
            .tracks
            .iter()
            .map(|t| t.state == TrackState::Tracked)
            .collect();
        for t in &mut self.tracks {
            if t.state != TrackState::Tracked {
                t.kf.freeze_height_velocity();
            }
            t.kf.predict(dt);
        }
        let predicted: Vec<[f64; 4]> = self.tracks.iter().map(|t| t.kf.bbox()).collect();

        let (high, low) = self.split_detections(dets);
        let mut track_used = vec![false; self.tracks.len()];

        // Stage 1: confident detections against every track.
        let mut high_used = vec![false; high.len()];
        self.associate(
            &high,
            &mut high_used,
            &mut track_used,
            |_| true,
            |ti, d| iou(&predicted[ti], d),
            f64::from(self.cfg.match_iou),
            now_ms,
            &mut out,
        );

        // Stage 1b: what stage 1 left, by centre distance (see
        // `TrackerConfig::match_distance`); IoU matches always win.
        let gate = f64::from(self.cfg.match_distance);
        self.associate(
            &high,
            &mut high_used,
            &mut track_used,
            |_| true,
            |ti, d| proximity(&predicted[ti], d, gate),
            f64::MIN_POSITIVE,
            now_ms,
            &mut out,
        );

        // Stage 2: weak detections against still-unmatched, recently tracked
        // tracks only; a weak box is not enough to revive a lost track.
        let mut low_used = vec![false; low.len()];
        self.associate(
            &low,
            &mut low_used,
            &mut track_used,
            |i| was_tracked[i],
            |ti, d| iou(&predicted[ti], d),
            f64::from(self.cfg.low_match_iou),
            now_ms,
            &mut out,
        );

        for (t, used) in self.tracks.iter_mut().zip(&track_used) {
            // A held track was not looked for: it keeps its state.
            if !used && !t.coast.held() {
                t.state = TrackState::Lost;
            }
        }

        for (d, used) in high.iter().zip(&high_used) {
            if !used {
                let id = self.start_track(d, now_ms);
                out[d.index] = Some(id);
            }
        }

        self.active = self
            .tracks
            .iter()
            .filter(|t| t.state == TrackState::Tracked)
            .count();
        out
    }

    /// Number of tracks matched or started in the latest update — i.e. objects
    /// currently in view (test-only: the callers count what `update` returns).
    #[cfg(test)]
    pub fn active_tracks(&self) -> usize {
        self.active
    }

    /// Snapshot of every track still remembered (tracked and lost), for tests.
    #[cfg(test)]
    pub fn tracks(&self) -> Vec<TrackSnapshot> {
        self.tracks
            .iter()
            .map(|t| {
                let b = t.kf.bbox();
                let v = t.kf.velocity();
                TrackSnapshot {
                    id: t.id,
                    class_id: t.class_id,
                    bbox: [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32],
                    velocity: [v[0] as f32, v[1] as f32],
                    score: t.score,
                    state: t.state,
                    last_seen_ms: t.last_seen_ms,
                    hits: t.hits,
                }
            })
            .collect()
    }

    /// Holds the tracks `ids` (and releases every other) from `now_ms` on:
    /// the caller is not looking for them (motion gating's stationary
    /// tracks, outside every crop). Until released, a held track is not
    /// aged (the time does not count towards `max_lost_ms`), not marked
    /// lost when unmatched, and not moved by its velocity, which is zeroed
    /// (it stands still); a detection can still match it. Callers that
    /// never hold (the API's trackers) see no change.
    pub fn hold(&mut self, ids: &[u64], now_ms: i64) {
        for t in &mut self.tracks {
            let held = ids.contains(&t.id);
            if held && !t.coast.held() {
                t.kf.stop();
            }
            t.coast.set(held, now_ms);
        }
    }

    /// Where every remembered track (tracked or lost, not yet forgotten)
    /// is expected at `now_ms`, and whether it stands still; nothing is
    /// changed. The camera pipeline's motion gating runs the detector
    /// around these, so an object that stops moving is still looked at
    /// while it is tracked, until it has stood still long enough to be
    /// left to the periodic full pass.
    pub fn predicted(&self, now_ms: i64) -> Vec<Predicted> {
        let dt = match self.last_update_ms {
            Some(prev) if now_ms > prev => {
                ((now_ms - prev) as f64 / self.nominal_frame_ms()).clamp(0.0, MAX_DT_FRAMES)
            }
            _ => 0.0,
        };
        self.tracks
            .iter()
            .filter(|t| t.coast.unseen_ms(t.last_seen_ms, now_ms) < self.cfg.max_lost_ms)
            .map(|t| {
                let mut kf = t.kf.clone();
                if t.state != TrackState::Tracked {
                    kf.freeze_height_velocity();
                }
                kf.predict(dt);
                Predicted {
                    id: t.id,
                    bbox: kf.bbox().map(|v| v as f32),
                    still_since_ms: (t.state == TrackState::Tracked).then_some(t.still.1),
                }
            })
            .collect()
    }

    /// The tracks the update at `now_ms` matched, low-score continuations
    /// included: what keeps a track alive here, so the camera's event rules
    /// can agree with the tracker on when a person is gone (they see only
    /// the detections above the reporting threshold).
    pub fn matched_at(&self, now_ms: i64) -> Vec<u64> {
        self.tracks
            .iter()
            .filter(|t| t.last_seen_ms == now_ms)
            .map(|t| t.id)
            .collect()
    }

    /// The frame interval currently used to turn elapsed time into `dt`,
    /// exposed so operators can see what rate the tracker inferred.
    pub fn nominal_frame_ms(&self) -> f64 {
        if self.gaps.is_empty() {
            return DEFAULT_FRAME_MS;
        }
        let mut sorted: Vec<i64> = self.gaps.iter().copied().collect();
        sorted.sort_unstable();
        // Upper median; gaps are always >= 1 ms, so this is never zero.
        sorted[sorted.len() / 2] as f64
    }

    /// Records the gap since the previous call and returns it in nominal
    /// frames (0 for the first call or when time did not move forward).
    fn advance_clock(&mut self, now_ms: i64) -> f64 {
        let prev = self.last_update_ms.replace(now_ms);
        let Some(prev) = prev else {
            return 0.0;
        };
        let gap = now_ms.saturating_sub(prev);
        if gap <= 0 {
            return 0.0;
        }
        if self.gaps.len() == GAP_WINDOW {
            self.gaps.pop_front();
        }
        self.gaps.push_back(gap);
        (gap as f64 / self.nominal_frame_ms()).clamp(0.0, MAX_DT_FRAMES)
    }

    /// Validates detections and sorts them into the confident and weak
    /// stages; everything else is dropped here so later code never sees a
    /// NaN or an inverted box.
    fn split_detections(&self, dets: &[TrackInput]) -> (Vec<Det>, Vec<Det>) {
        let mut high = Vec::new();
        let mut low = Vec::new();
        for (index, d) in dets.iter().enumerate() {
            let Some(bbox) = valid_bbox(d) else {
                continue;
            };
            let det = Det {
                index,
                bbox,
                score: d.score,
                class_id: d.class_id,
            };
            if d.score >= self.cfg.high_thresh {
                high.push(det);
            } else if d.score >= self.cfg.low_thresh {
                low.push(det);
            }
        }
        (high, low)
    }

    /// Greedy assignment of unused `dets` to eligible, unused tracks by
    /// `similarity` (best first, at least `min`); updates matched tracks,
    /// `out`, and both used-flags.
    #[allow(clippy::too_many_arguments)]
    fn associate(
        &mut self,
        dets: &[Det],
        det_used: &mut [bool],
        track_used: &mut [bool],
        eligible: impl Fn(usize) -> bool,
        similarity: impl Fn(usize, &[f64; 4]) -> f64,
        min: f64,
        now_ms: i64,
        out: &mut [Option<u64>],
    ) {
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            if track_used[ti] || !eligible(ti) {
                continue;
            }
            for (di, d) in dets.iter().enumerate() {
                if det_used[di] || d.class_id != t.class_id {
                    continue;
                }
                let v = similarity(ti, &d.bbox);
                // `>=` with a NaN threshold is false, so a broken config
                // simply disables matching rather than misbehaving.
                if v > 0.0 && v >= min {
                    pairs.push((v, ti, di));
                }
            }
        }
        pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for (_, ti, di) in pairs {
            if track_used[ti] || det_used[di] {
                continue;
            }
            track_used[ti] = true;
            det_used[di] = true;
            let d = &dets[di];
            let t = &mut self.tracks[ti];
            t.mark_seen(to_measurement(d.bbox), d.score, now_ms);
            out[d.index] = Some(t.id);
        }
    }

    fn start_track(&mut self, d: &Det, now_ms: i64) -> u64 {
        let id = self.next_id;
        // 2^64 ids cannot be exhausted in practice; saturate rather than wrap
        // so ids can never go back to small, already-used values.
        self.next_id = self.next_id.saturating_add(1);
        self.tracks.push(Track {
            id,
            class_id: d.class_id,
            kf: KalmanBox::new(to_measurement(d.bbox)),
            state: TrackState::Tracked,
            score: d.score,
            last_seen_ms: now_ms,
            hits: 1,
            coast: Coast::default(),
            still: (to_measurement(d.bbox), now_ms),
        });
        id
    }
}

/// Returns the box as `f64` if the detection is usable: finite score and
/// coordinates, strictly positive width and height (also in `f64`, so tiny
/// boxes that are positive but whose size underflows are rejected too).
fn valid_bbox(d: &TrackInput) -> Option<[f64; 4]> {
    if !d.score.is_finite() || !d.bbox.iter().all(|v| v.is_finite()) {
        return None;
    }
    let b = d.bbox.map(f64::from);
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    (w > 0.0 && h > 0.0).then_some(b)
}

/// How close two `x1,y1,x2,y2` boxes of similar height are: 1 at the same
/// centre, falling to 0 at `gate` box heights apart; 0 when the heights
/// differ by more than 1.5x (a different object) or a box is degenerate.
fn proximity(a: &[f64; 4], b: &[f64; 4], gate: f64) -> f64 {
    let (ha, hb) = (a[3] - a[1], b[3] - b[1]);
    if !(ha > 0.0 && hb > 0.0 && gate > 0.0) || ha.max(hb) > 1.5 * ha.min(hb) {
        return 0.0;
    }
    let dx = (a[0] + a[2] - b[0] - b[2]) / 2.0;
    let dy = (a[1] + a[3] - b[1] - b[3]) / 2.0;
    let d = dx.hypot(dy) / ((ha + hb) / 2.0);
    if d.is_finite() && d < gate {
        1.0 - d / gate
    } else {
        0.0
    }
}

/// Intersection over union of two `x1,y1,x2,y2` boxes; 0 for degenerate or
/// non-finite boxes (e.g. a coasting prediction whose height went negative).
fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = a[2].min(b[2]) - a[0].max(b[0]);
    let ih = a[3].min(b[3]) - a[1].max(b[1]);
    if !(iw > 0.0 && ih > 0.0) {
        return 0.0;
    }
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let inter = iw * ih;
    let union = area_a + area_b - inter;
    let v = inter / union;
    if v.is_finite() && union > 0.0 {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x1: f32, y1: f32, w: f32, h: f32, score: f32, class_id: u32) -> TrackInput {
        TrackInput {
            bbox: [x1, y1, x1 + w, y1 + h],
            score,
            class_id,
        }
    }

    fn person(x1: f32, y1: f32) -> TrackInput {
        det(x1, y1, 50.0, 120.0, 0.9, 0)
    }

    #[test]
    fn predicted_positions_follow_the_walk_and_forget_old_tracks() {
        let mut t = Tracker::new(TrackerConfig::default());
        assert!(t.predicted(0).is_empty());
        for f in 0..10i64 {
            t.update(&[person(100.0 + 10.0 * f as f32, 50.0)], f * 200);
        }
        // Two frames after the last sighting: about 20 px further right.
        let p = t.predicted(9 * 200 + 400);
        assert_eq!(p.len(), 1);
        assert!((p[0].bbox[0] - 210.0).abs() < 5.0, "{p:?}");
        assert_eq!(t.tracks().len(), 1, "nothing changed");
        assert!(t.predicted(9 * 200 + 3_000).is_empty(), "past max_lost_ms");
    }

    #[test]
    fn iou_basics() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        let half = iou(&a, &[5.0, 0.0, 15.0, 10.0]);
        assert!((half - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(iou(&a, &[f64::NAN, 0.0, 10.0, 10.0]), 0.0);
        assert_eq!(iou(&a, &[10.0, 10.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn fast_small_objects_at_low_fps_keep_ids_by_distance() {
        // 30x80 px pedestrians moving 40 px per frame (2.5 fps): no overlap
        // with the previous box at first, yet each keeps its id; two people
        // walking in opposite directions 200 px apart never swap.
        let mut t = Tracker::new(TrackerConfig::default());
        for f in 0..8i64 {
            let x = 40.0 * f as f32;
            let a = det(100.0 + x, 100.0, 30.0, 80.0, 0.9, 0);
            let b = det(700.0 - x, 300.0, 30.0, 80.0, 0.9, 0);
            assert_eq!(
                t.update(&[a, b], f * 400),
                vec![Some(1), Some(2)],
                "frame {f}"
            );
        }
        assert!(proximity(&[0.0, 0.0, 30.0, 80.0], &[40.0, 0.0, 70.0, 80.0], 0.6) > 0.0);
        assert_eq!(
            proximity(&[0.0, 0.0, 30.0, 80.0], &[60.0, 0.0, 90.0, 80.0], 0.6),
            0.0
        );
        assert_eq!(
            proximity(&[0.0, 0.0, 30.0, 80.0], &[0.0, 0.0, 30.0, 200.0], 0.6),
            0.0
        );
        // Turned off, the same walk fragments.
        let cfg = TrackerConfig {
            match_distance: 0.0,
            ..TrackerConfig::default()
        };
        let mut t = Tracker::new(cfg);
        t.update(&[det(100.0, 100.0, 30.0, 80.0, 0.9, 0)], 0);
        assert_eq!(
            t.update(&[det(140.0, 100.0, 30.0, 80.0, 0.9, 0)], 400),
            vec![Some(2)]
        );
    }

    #[test]
    fn consecutive_frames_with_small_motion_keep_ids() {
        let mut t = Tracker::new(TrackerConfig::default());
        let a = t.update(&[person(100.0, 100.0), person(400.0, 100.0)], 0);
        assert_eq!(a, vec![Some(1), Some(2)]);
        // Reversed order and slightly moved: ids follow the objects.
        let b = t.update(&[person(404.0, 102.0), person(103.0, 99.0)], 200);
        assert_eq!(b, vec![Some(2), Some(1)]);
        assert_eq!(t.active_tracks(), 2);
    }

    #[test]
    fn constant_velocity_walker_survives_gap_with_empty_frames() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut ids = Vec::new();
        for f in 0..20i64 {
            let now = f * 200;
            let x = 20.0 + 20.0 * f as f32; // 20 px/frame: gone from its old box in 3 frames
            if (9..12).contains(&f) {
                assert_eq!(t.update(&[], now), Vec::<Option<u64>>::new());
                assert_eq!(t.active_tracks(), 0);
                assert_eq!(t.tracks().len(), 1, "coasting track must survive");
                continue;
            }
            let r = t.update(&[person(x, 200.0)], now);
            ids.push(r[0]);
        }
        assert_eq!(ids.len(), 17);
        assert!(ids.iter().all(|id| *id == Some(1)), "{ids:?}");
        assert_eq!(t.active_tracks(), 1);
    }

    #[test]
    fn constant_velocity_walker_survives_gap_without_calls() {
        // Same walk, but the caller simply does not call during the gap: the
        // 800 ms jump must be predicted as four nominal frames.
        let mut t = Tracker::new(TrackerConfig::default());
        let mut ids = Vec::new();
        for f in 0..20i64 {
            if (9..12).contains(&f) {
                continue;
            }
            let x = 20.0 + 20.0 * f as f32;
            ids.push(t.update(&[person(x, 200.0)], f * 100)[0]);
        }
        assert!(ids.iter().all(|id| *id == Some(1)), "{ids:?}");
        assert_eq!(t.nominal_frame_ms(), 100.0);
    }

    #[test]
    fn walker_without_prediction_would_be_lost() {
        // Sanity check that the tests above exercise the Kalman filter: the
        // last seen box and the box after the gap do not overlap at all.
        let before = person(20.0 + 20.0 * 8.0, 200.0).bbox.map(f64::from);
        let after = person(20.0 + 20.0 * 12.0, 200.0).bbox.map(f64::from);
        assert_eq!(iou(&before, &after), 0.0);
    }

    #[test]
    fn crossing_people_keep_distinct_ids() {
        let mut t = Tracker::new(TrackerConfig::default());
        let (mut id_a, mut id_b) = (None, None);
        for f in 0..30i64 {
            let fx = f as f32;
            // A walks right, B walks left, vertically offset by 40 px so the
            // boxes overlap heavily but never completely while passing.
            let a = person(50.0 + 15.0 * fx, 100.0);
            let b = person(500.0 - 15.0 * fx, 140.0);
            // Alternate order so list position cannot carry identity.
            let r = if f % 2 == 0 {
                t.update(&[a, b], f * 200)
            } else {
                let r = t.update(&[b, a], f * 200);
                vec![r[1], r[0]]
            };
            if f == 0 {
                id_a = r[0];
                id_b = r[1];
            }
            assert_eq!(r[0], id_a, "frame {f}");
            assert_eq!(r[1], id_b, "frame {f}");
        }
        assert_ne!(id_a, id_b);
        assert_eq!(t.tracks().len(), 2);
    }

    /// The ids an update matched, a low-score continuation included, and
    /// not those it only carried.
    #[test]
    fn matched_at_names_the_tracks_an_update_matched() {
        let mut t = Tracker::new(TrackerConfig::default());
        let ids = t.update(&[person(100.0, 100.0), person(400.0, 100.0)], 0);
        let (a, b) = (ids[0].unwrap(), ids[1].unwrap());
        let mut both = t.matched_at(0);
        both.sort();
        assert_eq!(both, vec![a.min(b), a.max(b)]);
        let weak = TrackInput {
            score: (t.cfg.low_thresh + t.cfg.high_thresh) / 2.0,
            ..person(102.0, 100.0)
        };
        let ids = t.update(&[weak], 200);
        assert_eq!(ids, vec![Some(a)], "a weak detection continues the track");
        assert_eq!(t.matched_at(200), vec![a]);
        assert!(t.matched_at(100).is_empty());
    }

    #[test]
    fn track_expires_after_max_lost_ms() {
        let cfg = TrackerConfig::default();
        let mut t = Tracker::new(cfg);
        assert_eq!(t.update(&[person(100.0, 100.0)], 0), vec![Some(1)]);
        // Unseen for just under max_lost_ms: revived with the same id.
        t.update(&[], 1000);
        assert_eq!(t.update(&[person(100.0, 100.0)], 2999), vec![Some(1)]);
        // Now unseen for exactly max_lost_ms: forgotten, a new id is issued.
        t.update(&[], 4000);
        assert_eq!(t.tracks().len(), 1);
        t.update(&[], 2999 + cfg.max_lost_ms);
        assert!(t.tracks().is_empty());
        assert_eq!(t.active_tracks(), 0);
        let r = t.update(&[person(100.0, 100.0)], 2999 + cfg.max_lost_ms + 200);
        assert_eq!(r, vec![Some(2)]);
    }

    #[test]
    fn class_gating() {
        let mut t = Tracker::new(TrackerConfig::default());
        assert_eq!(
            t.update(&[det(0.0, 0.0, 50.0, 100.0, 0.9, 0)], 0),
            vec![Some(1)]
        );
        // Same box, different class: must not inherit id 1.
        assert_eq!(
            t.update(&[det(0.0, 0.0, 50.0, 100.0, 0.9, 2)], 200),
            vec![Some(2)]
        );
        // The class-0 track is still remembered (lost) and can come back.
        assert_eq!(
            t.update(&[det(1.0, 0.0, 50.0, 100.0, 0.9, 0)], 400),
            vec![Some(1)]
        );
        // Low-score stage is class-gated too.
        t.update(&[det(0.0, 0.0, 50.0, 100.0, 0.9, 0)], 600);
        assert_eq!(
            t.update(&[det(0.0, 0.0, 50.0, 100.0, 0.2, 7)], 800),
            vec![None]
        );
    }

    #[test]
    fn low_score_continues_but_never_starts_a_track() {
        let mut t = Tracker::new(TrackerConfig::default());
        // A weak detection alone starts nothing.
        assert_eq!(
            t.update(&[det(0.0, 0.0, 50.0, 100.0, 0.2, 0)], 0),
            vec![None]
        );
        assert_eq!(t.active_tracks(), 0);
        assert!(t.tracks().is_empty());

        assert_eq!(t.update(&[person(100.0, 100.0)], 200), vec![Some(1)]);
        let weak = det(102.0, 101.0, 50.0, 120.0, 0.2, 0);
        let elsewhere = det(600.0, 100.0, 50.0, 120.0, 0.2, 0);
        assert_eq!(t.update(&[weak, elsewhere], 400), vec![Some(1), None]);
        assert_eq!(t.active_tracks(), 1);

        // Below low_thresh: ignored entirely, the track goes lost.
        assert_eq!(
            t.update(&[det(102.0, 101.0, 50.0, 120.0, 0.05, 0)], 600),
            vec![None]
        );
        assert_eq!(t.active_tracks(), 0);
        // A weak detection cannot revive a lost track ...
        assert_eq!(t.update(&[weak], 800), vec![None]);
        // ... but a confident one can.
        assert_eq!(t.update(&[person(102.0, 101.0)], 1000), vec![Some(1)]);
    }

    #[test]
    fn confident_detection_always_gets_an_id() {
        let mut t = Tracker::new(TrackerConfig::default());
        // Two identical confident boxes: one continues nothing, both get ids.
        let r = t.update(&[person(0.0, 0.0), person(0.0, 0.0)], 0);
        assert_eq!(r, vec![Some(1), Some(2)]);
        let r = t.update(&[person(0.0, 0.0), person(0.0, 0.0), person(0.0, 0.0)], 200);
        assert!(r.iter().all(Option::is_some));
        let mut ids: Vec<u64> = r.iter().flatten().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3]);
        // Exactly at the threshold counts as confident.
        let r = t.update(&[det(900.0, 0.0, 10.0, 10.0, 0.35, 4)], 400);
        assert_eq!(r, vec![Some(4)]);
    }

    #[test]
    fn invalid_boxes_return_none_without_panicking() {
        let mut t = Tracker::new(TrackerConfig::default());
        let bad = [
            TrackInput {
                bbox: [f32::NAN, 0.0, 10.0, 10.0],
                score: 0.9,
                class_id: 0,
            },
            TrackInput {
                bbox: [0.0, 0.0, f32::INFINITY, 10.0],
                score: 0.9,
                class_id: 0,
            },
            TrackInput {
                bbox: [0.0, 0.0, 10.0, 10.0],
                score: f32::NAN,
                class_id: 0,
            },
            TrackInput {
                bbox: [10.0, 10.0, 0.0, 0.0], // negative size
                score: 0.9,
                class_id: 0,
            },
            TrackInput {
                bbox: [5.0, 5.0, 5.0, 20.0], // zero width
                score: 0.9,
                class_id: 0,
            },
            TrackInput {
                bbox: [0.0, 0.0, 10.0, 10.0],
                score: f32::INFINITY,
                class_id: 0,
            },
            person(100.0, 100.0),
        ];
        let r = t.update(&bad, 0);
        assert_eq!(r, vec![None, None, None, None, None, None, Some(1)]);
        let r = t.update(&bad, 200);
        assert_eq!(r, vec![None, None, None, None, None, None, Some(1)]);
        assert_eq!(t.tracks().len(), 1);
    }

    #[test]
    fn extreme_but_finite_values_do_not_panic() {
        let mut t = Tracker::new(TrackerConfig::default());
        let huge = TrackInput {
            bbox: [-f32::MAX, -f32::MAX, f32::MAX, f32::MAX],
            score: 1.0,
            class_id: u32::MAX,
        };
        let tiny = TrackInput {
            bbox: [0.0, 0.0, f32::MIN_POSITIVE, f32::MIN_POSITIVE],
            score: 1.0,
            class_id: 0,
        };
        for (i, now) in [0, i64::MAX, i64::MIN, 5, i64::MAX].into_iter().enumerate() {
            let r = t.update(&[huge, tiny], now);
            assert!(r.iter().all(Option::is_some), "call {i}: {r:?}");
        }
        for s in t.tracks() {
            assert!(s.bbox.iter().all(|v| !v.is_nan()), "{s:?}");
        }
    }

    #[test]
    fn empty_input_is_fine() {
        let mut t = Tracker::new(TrackerConfig::default());
        assert!(t.update(&[], 0).is_empty());
        assert!(t.update(&[], 0).is_empty());
        assert_eq!(t.active_tracks(), 0);
        assert_eq!(t.nominal_frame_ms(), DEFAULT_FRAME_MS);
    }

    #[test]
    fn many_detections_get_unique_ids() {
        let mut t = Tracker::new(TrackerConfig::default());
        let grid: Vec<TrackInput> = (0..3000)
            .map(|i| {
                det(
                    (i % 100) as f32 * 30.0,
                    (i / 100) as f32 * 30.0,
                    20.0,
                    20.0,
                    0.9,
                    0,
                )
            })
            .collect();
        let first = t.update(&grid, 0);
        let mut ids: Vec<u64> = first.iter().flatten().copied().collect();
        assert_eq!(ids.len(), 3000);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3000);
        // Same scene again: every detection keeps its id.
        assert_eq!(t.update(&grid, 200), first);
        // A pile of identical boxes (dense worst case for the gate).
        let pile = vec![person(10.0, 10.0); 500];
        let r = t.update(&pile, 400);
        assert!(r.iter().all(Option::is_some));
    }

    #[test]
    fn ids_are_never_reused() {
        let cfg = TrackerConfig {
            max_lost_ms: 100,
            ..TrackerConfig::default()
        };
        let mut t = Tracker::new(cfg);
        let mut seen = Vec::new();
        for f in 0..10i64 {
            // Each call is past max_lost_ms, so every detection is a new track.
            let r = t.update(&[person(0.0, 0.0)], f * 1000);
            seen.push(r[0].unwrap_or(0));
        }
        assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    }

    #[test]
    fn nominal_frame_time_follows_median_gap() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[], 0);
        assert_eq!(t.nominal_frame_ms(), DEFAULT_FRAME_MS);
        for now in [40, 80, 120, 500, 540] {
            t.update(&[], now);
        }
        // Gaps 40,40,40,380,40: one long gap does not move the median.
        assert_eq!(t.nominal_frame_ms(), 40.0);
        // Time going backwards is ignored for the median.
        t.update(&[], 10);
        assert_eq!(t.nominal_frame_ms(), 40.0);
    }

    #[test]
    fn snapshot_shows_the_track_state_and_box() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[person(0.0, 0.0)], 0);
        let snaps = t.tracks();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].state, TrackState::Tracked);
        assert_eq!(snaps[0].bbox, [0.0, 0.0, 50.0, 120.0]);
    }

    #[test]
    fn a_held_track_outlives_crop_only_frames_and_an_unheld_one_is_lost_as_before() {
        let cfg = TrackerConfig::default();
        let mut t = Tracker::new(cfg);
        // Two people standing, seen for 3 s.
        for f in 0..15i64 {
            assert_eq!(
                t.update(&[person(100.0, 50.0), person(600.0, 50.0)], f * 200),
                vec![Some(1), Some(2)]
            );
        }
        // 20 s of frames on which the detector looked only around person 2
        // (who is no longer detected) and held person 1, outside every crop.
        let mut now = 14 * 200;
        for _ in 0..100 {
            now += 200;
            t.hold(&[1], now);
            t.update(&[], now);
        }
        let p = t.predicted(now);
        assert_eq!(p.iter().map(|p| p.id).collect::<Vec<_>>(), vec![1], "{p:?}");
        assert!((p[0].bbox[0] - 100.0).abs() < 1.0, "held still: {p:?}");
        assert_eq!(p[0].still_since_ms, Some(0), "still seen where it stood");
        // Released (a full pass) and seen where it stood: the same id.
        now += 200;
        t.hold(&[], now);
        assert_eq!(t.update(&[person(101.0, 50.0)], now), vec![Some(1)]);
        // Released and no longer seen: lost after `max_lost_ms` of looking,
        // as any track, and its last look says so at once.
        let gone = now;
        while now - gone < cfg.max_lost_ms {
            now += 200;
            t.update(&[], now);
            let p = t.predicted(now);
            assert!(p.iter().all(|p| p.still_since_ms.is_none()), "{p:?}");
        }
        assert!(t.tracks().is_empty(), "{:?}", t.tracks());
    }

    #[test]
    fn jitter_is_still_a_step_is_not() {
        let mut t = Tracker::new(TrackerConfig::default());
        for f in 0..10i64 {
            let jitter = if f % 2 == 0 { 3.0 } else { -3.0 };
            t.update(&[person(100.0 + jitter, 50.0 - jitter)], f * 200);
        }
        assert_eq!(t.predicted(1_800)[0].still_since_ms, Some(0));
        // A step of a third of its height: moving again, still from now on.
        t.update(&[person(140.0, 50.0)], 2_000);
        assert_eq!(t.predicted(2_000)[0].still_since_ms, Some(2_000));
    }
}
