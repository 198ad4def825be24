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
    /// One plain sentence about the frame (`ai::scene`): a captioning
    /// model's when one is installed, else grounded in the detectors.
    SceneDescription,
}

impl Task {
    /// Every task, in the order `/capabilities` lists them.
    pub const ALL: [Task; 5] = [
        Task::PersonCounting,
        Task::PersonDetection,
        Task::ObjectDetection,
        Task::FaceDetection,
        Task::SceneDescription,
    ];

    /// The wire name, as clients send it and `/capabilities` lists it.
    pub fn name(self) -> &'static str {
        match self {
            Task::PersonCounting => "person_counting",
            Task::PersonDetection => "person_detection",
            Task::ObjectDetection => "object_detection",
            Task::FaceDetection => "face_detection",
            Task::SceneDescription => "scene_description",
        }
    }

    /// One line for `/tasks` and `/schema`, so a UI can label the task.
    pub fn description(self) -> &'static str {
        match self {
            Task::PersonCounting => "people with track ids that persist across calls per camera",
            Task::PersonDetection => "people in one frame; the best one also at the top level",
            Task::ObjectDetection => "every COCO class, with labels",
            Task::FaceDetection => "faces with five landmarks, age and gender",
            Task::SceneDescription => {
                "one plain sentence about the frame: a captioning model's when installed, \
                 else what the detectors see (objects, where, faces, the light)"
            }
        }
    }

    /// Whether the object detector serves this task (the others have their
    /// own models, so their availability is decided separately).
    /// `scene_description` counts: its grounded engine, the one every box
    /// has, is the object detector's answer put in words.
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
/// [`Params::NAMES`] lists the wire names; keep it in step with the fields.
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
    /// For `scene_description`: which engine answers, one of
    /// [`SCENE_ENGINES`]; unset means the captioner when one is installed.
    pub engine: Option<String>,
}

impl Params {
    /// Every option's wire name: request parsing refuses any other key
    /// (after resolving [`Params::canonical`] aliases) and names it.
    pub const NAMES: [&'static str; 9] = [
        "confidence",
        "iou",
        "max_detections",
        "model",
        "classes",
        "min_confidence",
        "max_faces",
        "attributes",
        "engine",
    ];

    /// Our name for an option upstream clients spell differently:
    /// KAI-C and upstream's YOLO adapters send `confidence_threshold`.
    /// `None` for a key that is no option at all.
    pub fn canonical(key: &str) -> Option<&'static str> {
        match key {
            "confidence_threshold" => Some("confidence"),
            k => Params::NAMES.into_iter().find(|n| *n == k),
        }
    }
}

/// Upper bound of `max_faces`: every face costs two network rows.
pub const MAX_FACES_LIMIT: usize = 256;

/// Upper bound of `max_detections`: NMS never keeps more candidates.
pub const MAX_DETECTIONS_LIMIT: usize = super::nms::MAX_CANDIDATES;

/// The values of `params.engine` for `scene_description`: the captioning
/// model, or the sentence grounded in the detectors.
pub const SCENE_ENGINES: [&str; 2] = ["blip", "detections"];

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
        if let Some(e) = self.engine.as_deref() {
            if !SCENE_ENGINES.contains(&e) {
                return Err(AiError::BadRequest(format!(
                    "params.engine must be one of {}; got {e:?}",
                    SCENE_ENGINES.map(|n| format!("{n:?}")).join(", ")
                )));
            }
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
    /// For `person_detection`, the best detection's (see [`DetectionResult::best`]).
    pub confidence: f64,
    /// `person_detection` only: `"person"`, as upstream's flat answer has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    /// `person_detection` only: the best detection's box; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[i32; 4]>,
    pub detections: Vec<DetectionOut>,
    pub latency_ms: u64,
    /// Epoch milliseconds, as upstream's response models have it.
    pub executed_at: i64,
    pub model_id: String,
}

impl DetectionResult {
    /// Puts the best detection at the top level (`label`, `confidence`,
    /// `bbox`): the flat shape upstream's backend stores for
    /// `person_detection`. The list stays. No detection: confidence 0, no box.
    pub fn best(mut self) -> Self {
        let top = self
            .detections
            .iter()
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
        self.label = Some("person");
        self.bbox = top.map(|d| d.bbox);
        self.confidence = top.map_or(0.0, |d| d.confidence);
        self
    }
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
    /// Image-left eye, image-right eye, nose tip, mouth left, mouth right;
    /// `[x, y]` in whole source pixels, as the spec shows them.
    pub landmarks: [[i32; 2]; 5],
    /// Expected age in whole years (the spec's integer); absent with `attributes: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
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
    /// Epoch milliseconds, as upstream's response models have it.
    pub executed_at: i64,
    /// The face detector's id.
    pub model_id: String,
}

/// The answer to `scene_description`, in upstream's shape (exactly these
/// fields: its response model forbids others).
#[derive(Debug, Clone, Serialize)]
pub struct SceneResult {
    pub task: &'static str,
    /// One plain sentence.
    pub caption: String,
    /// What produced it: the captioning model's id, or
    /// `detections:<detector>[+<face model>]` for the grounded description.
    pub model_id: String,
    pub latency_ms: u64,
    /// Epoch milliseconds, as upstream's response models have it.
    pub executed_at: i64,
}

/// Rounds to a whole number, for landmark pixels and ages (the spec's
/// integers); saturates instead of wrapping.
pub fn whole(v: f32) -> i32 {
    v.round() as i32
}
