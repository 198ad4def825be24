//! The tasks the adapter offers, their parameters and their result shapes.
//!
//! Result field names follow OpenNVR's seed API so existing clients parse
//! our answers unchanged.

use serde::{Deserialize, Serialize};

use super::error::AiError;

/// A logical task a client can ask for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// People with track ids that persist across calls for the same camera.
    PersonCounting,
    /// People in this frame alone, no tracking state touched.
    PersonDetection,
    /// Every COCO class, with labels.
    ObjectDetection,
}

impl Task {
    /// Every task, in the order `/capabilities` lists them.
    pub const ALL: [Task; 3] = [
        Task::PersonCounting,
        Task::PersonDetection,
        Task::ObjectDetection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::PersonCounting => "person_counting",
            Task::PersonDetection => "person_detection",
            Task::ObjectDetection => "object_detection",
        }
    }

    /// Parses a task name; an unknown name is a 422, not a 400, because the
    /// request itself was well-formed.
    pub fn parse(s: &str) -> Result<Task, AiError> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| AiError::UnknownTask(s.to_owned()))
    }
}

/// Optional per-request tuning; every field falls back to the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Minimum score of a reported detection (0..1).
    pub confidence: Option<f32>,
    /// NMS IoU threshold (0..1).
    pub iou: Option<f32>,
    /// Cap on reported detections, best first.
    pub max_detections: Option<usize>,
    /// A detector model id from the manifest, instead of the configured one.
    pub model: Option<String>,
    /// For `object_detection`: only these labels.
    pub classes: Option<Vec<String>>,
}

impl Params {
    /// Rejects values that would make the result meaningless.
    pub fn validate(&self) -> Result<(), AiError> {
        for (name, v) in [("confidence", self.confidence), ("iou", self.iou)] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return Err(AiError::BadRequest(format!(
                        "params.{name} must be within 0..1"
                    )));
                }
            }
        }
        if self.max_detections == Some(0) {
            return Err(AiError::BadRequest(
                "params.max_detections must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One reported box.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionOut {
    /// `[x, y, w, h]` in source pixels, as the seed API reports them.
    pub bbox: [i32; 4],
    pub confidence: f64,
    /// Present on `person_counting`; `null` for a box the tracker did not claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The answer to every detection task.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionResult {
    pub task: &'static str,
    /// Always `detections.len()`.
    pub count: usize,
    /// Mean confidence of the reported detections; 0 when there are none.
    pub confidence: f64,
    pub detections: Vec<DetectionOut>,
    pub latency_ms: u64,
    pub executed_at: String,
    pub model_id: String,
}

/// Rounds to 4 decimals (as f64, so JSON shows 0.9423, not f32 noise).
pub fn round4(v: f32) -> f64 {
    (f64::from(v) * 10_000.0).round() / 10_000.0
}

/// `[x1,y1,x2,y2]` floats to the seed's integer `[x,y,w,h]`.
pub fn xywh(b: [f32; 4]) -> [i32; 4] {
    let x = b[0].round() as i32;
    let y = b[1].round() as i32;
    [
        x,
        y,
        (b[2].round() as i32 - x).max(0),
        (b[3].round() as i32 - y).max(0),
    ]
}
