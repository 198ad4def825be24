//! Motion gating for one camera: [`motion`](super::motion) says where
//! something moved, [`regions`](super::regions) turns that and the tracked
//! people into a plan, and the engine runs the plan (crops, a full pass,
//! or nothing). With gating off every frame gets the full pass.

use std::sync::atomic::Ordering::Relaxed;

use super::motion::MotionDetector;
use super::regions::{Plan, Planner};
use super::stats::CameraStats;
use crate::ai::task::{DetectionResult, Params};
use crate::ai::{AiError, Engine, PersonTracker};
use crate::config::{CameraMotion, MotionConfig};
use crate::frame::Frame;

/// One camera's gate; `None` inside when gating is off for it.
#[derive(Debug, Clone)]
pub struct Gating(Option<(MotionDetector, Planner)>);

impl Gating {
    /// The gate for a camera's own `settings` (the file's entry or the
    /// camera API's) under `cfg`'s tunables. A running camera given new
    /// settings gets a new gate: its background is seeded from the next
    /// frame, and that frame gets a full pass.
    pub fn with(cfg: &MotionConfig, settings: &CameraMotion) -> Self {
        Self(cfg.enabled_in(settings).then(|| {
            let every = i64::from(cfg.full_pass_s) * 1_000;
            (
                MotionDetector::with_masks(cfg, settings.masks.clone()),
                Planner::new(every, cfg.max_regions)
                    .with_still_after(i64::from(cfg.stationary_s) * 1_000),
            )
        }))
    }

    /// Decides what to run on `frame` (blocking, but cheap: the motion check
    /// on a small grey copy, and the plan): [`Plan::Full`] when gating is
    /// off. Needs no runner, so a camera whose frames are all
    /// [`Plan::Skip`] never waits behind the detector. Holds in `tracker`
    /// the stationary people the plan does not look at ([`Self::held`]),
    /// so the time they go unlooked-at does not age them. Counts gated
    /// frames into `stats`.
    pub fn plan(
        &mut self,
        engine: &Engine,
        tracker: &mut PersonTracker,
        frame: &Frame,
        params: &Params,
        stats: &CameraStats,
    ) -> Result<Plan, AiError> {
        let Some((motion, planner)) = &mut self.0 else {
            return Ok(Plan::Full);
        };
        let at = frame
            .timestamp_ms
            .unwrap_or_else(|| engine.clock().now_ms());
        let moved = motion.detect(&frame.image);
        let model = engine.detector_input_size(params)?;
        let tracked = tracker.predicted(at);
        let plan = planner.plan(at, frame.image.dimensions(), model, &moved.boxes, &tracked);
        tracker.hold(planner.held(), at);
        if plan == Plan::Skip {
            stats.gated.fetch_add(1, Relaxed);
        }
        Ok(plan)
    }

    /// The track ids the latest plan does not look at (none when gating is
    /// off): the camera's event rules hold them too
    /// ([`TrackEvents::hold`](super::tracks::TrackEvents::hold)).
    pub fn held(&self) -> &[u64] {
        self.0.as_ref().map_or(&[], |(_, p)| p.held())
    }

    /// Runs person counting on `frame` as `plan` says (blocking, on a
    /// runner); `None` when the plan was to run nothing. Counts full passes
    /// (when gating is on) and crops into `stats`.
    pub fn run(
        &self,
        engine: &Engine,
        tracker: &mut PersonTracker,
        frame: &Frame,
        params: &Params,
        plan: &Plan,
        stats: &CameraStats,
    ) -> Result<Option<DetectionResult>, AiError> {
        match plan {
            Plan::Skip => Ok(None),
            Plan::Full => {
                if self.0.is_some() {
                    stats.full_passes.fetch_add(1, Relaxed);
                }
                engine.count_people(tracker, frame, params).map(Some)
            }
            Plan::Regions(r) => {
                stats.regions.fetch_add(r.len() as u64, Relaxed);
                engine.count_people_in(tracker, frame, params, r).map(Some)
            }
        }
    }

    /// [`Self::plan`] then [`Self::run`] on one frame, as the camera worker
    /// does without its scheduling (the footage tests).
    #[cfg(test)]
    pub fn count_people(
        &mut self,
        engine: &Engine,
        tracker: &mut PersonTracker,
        frame: &Frame,
        params: &Params,
        stats: &CameraStats,
    ) -> Result<Option<DetectionResult>, AiError> {
        let plan = self.plan(engine, tracker, frame, params, stats)?;
        self.run(engine, tracker, frame, params, &plan, stats)
    }
}
