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
    /// Faces with five landmarks and, by default, age and gender.
    FaceDetection,
}

impl Task {
    /// Every task, in the order `/capabilities` lists them.
    pub const ALL: [Task; 4] = [
        Task::PersonCounting,
        Task::PersonDetection,
        Task::ObjectDetection,
        Task::FaceDetection,
    ];

    /// The wire name, as clients send it and `/capabilities` lists it.
    pub fn name(self) -> &'static str {
        match self {
            Task::PersonCounting => "person_counting",
            Task::PersonDetection => "person_detection",
            Task::ObjectDetection => "object_detection",
            Task::FaceDetection => "face_detection",
        }
    }

    /// Whether the object detector serves this task (the others have their
    /// own models, so their availability is decided separately).
    pub fn uses_detector(self) -> bool {
        !matches!(self, Task::FaceDetection)
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
    /// For `face_detection`: minimum face score (0..1); `confidence` is the
    /// detectors' and is left alone so one pipeline can tune both.
    pub min_confidence: Option<f32>,
    /// For `face_detection`: cap on reported faces, best first.
    pub max_faces: Option<usize>,
    /// For `face_detection`: `false` skips age and gender (faster); unset
    /// means "when the attribute models are installed".
    pub attributes: Option<bool>,
}

/// Upper bound of `max_faces`: every face costs two network rows.
pub const MAX_FACES_LIMIT: usize = 256;

/// Upper bound of `max_detections`: NMS never keeps more candidates.
pub const MAX_DETECTIONS_LIMIT: usize = super::nms::MAX_CANDIDATES;

/// Upper bound of `classes` entries (COCO has 80 labels).
pub const MAX_CLASSES: usize = 128;

impl Params {
    /// Rejects values that would make the result meaningless.
    pub fn validate(&self) -> Result<(), AiError> {
        for (name, v) in [
            ("confidence", self.confidence),
            ("iou", self.iou),
            ("min_confidence", self.min_confidence),
        ] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return Err(AiError::BadRequest(format!(
                        "params.{name} must be within 0..1"
                    )));
                }
            }
        }
        if self
            .max_detections
            .is_some_and(|n| n == 0 || n > MAX_DETECTIONS_LIMIT)
        {
            return Err(AiError::BadRequest(format!(
                "params.max_detections must be within 1..{MAX_DETECTIONS_LIMIT}"
            )));
        }
        if let Some(c) = &self.classes {
            if c.len() > MAX_CLASSES || c.iter().any(|l| l.len() > 64) {
                return Err(AiError::BadRequest(format!(
                    "params.classes takes at most {MAX_CLASSES} labels of at most 64 bytes"
                )));
            }
        }
        if self.model.as_ref().is_some_and(|m| m.len() > 128) {
            return Err(AiError::BadRequest(
                "params.model must be at most 128 bytes".into(),
            ));
        }
        if self
            .max_faces
            .is_some_and(|n| n == 0 || n > MAX_FACES_LIMIT)
        {
            return Err(AiError::BadRequest(format!(
                "params.max_faces must be within 1..{MAX_FACES_LIMIT}"
            )));
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

/// One reported face.
#[derive(Debug, Clone, Serialize)]
pub struct FaceOut {
    /// `[x1, y1, x2, y2]` in source pixels, as the seed's face answer has it
    /// (unlike the detection tasks' `[x, y, w, h]`).
    pub bbox: [i32; 4],
    pub confidence: f64,
    /// Image-left eye, image-right eye, nose tip, mouth left, mouth right; `[x, y]`.
    pub landmarks: [[f64; 2]; 5],
    /// Expected age in years (one decimal); absent with `attributes: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<f64>,
    /// `"M"` or `"F"`; absent with `attributes: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Probability of the reported gender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender_confidence: Option<f64>,
}

/// The answer to `face_detection`, in the seed's shape.
#[derive(Debug, Clone, Serialize)]
pub struct FaceResult {
    pub task: &'static str,
    pub faces: Vec<FaceOut>,
    /// Always `faces.len()`.
    pub face_count: usize,
    pub latency_ms: u64,
    pub executed_at: String,
    /// The face detector's id.
    pub model_id: String,
}

/// Rounds to 1 decimal, for pixel coordinates and ages.
pub fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}
