//! Multi-object tracking: turns per-frame detections into stable track ids.
//!
//! Detectors report boxes frame by frame with no notion of identity; events,
//! counting and "the same person is still there" logic need an id that persists
//! while an object stays in view. This module provides a ByteTrack-style
//! tracker (IoU association against constant-velocity Kalman predictions, with
//! a second pass that lets low-confidence detections keep existing tracks
//! alive) and a per-camera registry so ids persist across API calls.
//!
//! Design notes for integrators:
//! * Association is **greedy by best IoU** (global, deterministic), not
//!   Hungarian; see [`bytetrack`] for why.
//! * Time is injected (`now_ms`); the tracker never reads a clock. Prediction
//!   is scaled by `elapsed / nominal_frame_ms`, where the nominal frame time is
//!   the median of recent call gaps (200 ms before any gap is seen).
//! * Pure std + serde; no allocation per track beyond a small struct.

pub mod bytetrack;
pub mod clients;
pub mod coast;
pub mod kalman;
pub mod registry;

pub use bytetrack::Tracker;
pub use clients::ClientTrackers;
pub use coast::Coast;
pub use registry::TrackerRegistry;

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Removes the entry with the smallest `last_used` (least recently used);
/// `false` when the map is empty. Shared by the registries' caps.
fn evict_oldest<K: Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    last_used: impl Fn(&V) -> i64,
) -> bool {
    let oldest = map
        .iter()
        .min_by_key(|(_, v)| last_used(v))
        .map(|(k, _)| k.clone());
    oldest.is_some_and(|k| map.remove(&k).is_some())
}

/// Tunables for [`Tracker`]; kept in one struct (with serde support) so they
/// can live in the daemon's config file and be shared by every camera.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackerConfig {
    /// Detections scoring at or above this are trusted enough to start tracks
    /// and to claim any track (stage 1); below it they might be clutter.
    pub high_thresh: f32,
    /// Detections between this and `high_thresh` are too weak to start a track
    /// but are usually a partly occluded real object, so they may continue a
    /// currently tracked one (stage 2). Below this they are ignored.
    pub low_thresh: f32,
    /// Minimum IoU between a prediction and a confident detection for them to
    /// be the same object; lenient because the prediction itself is uncertain.
    pub match_iou: f32,
    /// Minimum IoU for the low-confidence stage; stricter, because a weak
    /// detection should only extend a track it clearly lines up with.
    pub low_match_iou: f32,
    /// Fallback for confident detections the IoU stage left unmatched: the
    /// largest centre distance, in box heights, at which one may still
    /// continue an unmatched track of similar size. At 2-5 fps a distant
    /// pedestrian moves more than its own width between frames, so its boxes
    /// stop overlapping before the Kalman filter has learnt its velocity.
    /// 0 turns the fallback off.
    pub match_distance: f32,
    /// How long a track may go unseen before it is forgotten; bridges short
    /// occlusions without letting stale tracks steal new objects for ever.
    pub max_lost_ms: i64,
}

impl Default for TrackerConfig {
    /// ByteTrack-like defaults tuned for the edge detectors' score ranges.
    fn default() -> Self {
        Self {
            high_thresh: 0.35,
            low_thresh: 0.1,
            match_iou: 0.3,
            low_match_iou: 0.5,
            match_distance: 0.6,
            max_lost_ms: 3000,
        }
    }
}

/// Where a remembered track is expected, for motion gating
/// ([`Tracker::predicted`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predicted {
    /// The track's id, so the gate can name the tracks it holds
    /// ([`Tracker::hold`]).
    pub id: u64,
    /// `x1,y1,x2,y2` in pixels.
    pub bbox: [f32; 4],
    /// Since when the track's box has stayed put (centre shift, width and
    /// height change each within [`bytetrack::STILL_TOLERANCE`] of its
    /// height), on the caller's clock; `None` when it was not seen at its
    /// latest look (lost), so it is looked for again.
    pub still_since_ms: Option<i64>,
}

/// One detection handed to the tracker; deliberately minimal so any detector
/// output (or an API payload) can be converted into it without the tracker
/// depending on detector types.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackInput {
    /// `x1, y1, x2, y2` in pixels; pixel space (not normalised) so the
    /// height-relative Kalman noise behaves the same as in SORT/ByteTrack.
    pub bbox: [f32; 4],
    /// Detector confidence; decides which association stage the box joins.
    pub score: f32,
    /// Detector class; tracks only ever match detections of the same class so
    /// a person can never turn into a car.
    pub class_id: u32,
}
