//! `scene_description`: one plain sentence about a picture, for a
//! notification ("two people at the door"). Two engines answer behind the
//! one task name: a captioning model when one is installed ([`Captioner`]),
//! and, on every box, a description grounded in what the detectors see.

use image::RgbImage;

use super::error::AiError;

/// A model that turns a picture into a sentence (BLIP). Implemented by the
/// captioner's own module; the task code sees only this, so the grounded
/// description and the model answer the same way.
pub trait Captioner: Send + Sync {
    /// The installed model's id (its manifest name), reported as `model_id`.
    fn model_id(&self) -> &str;
    /// One caption for `image`, decoded to text. Blocking (CPU-bound):
    /// call it on the engine's runners.
    fn caption(&self, image: &RgbImage) -> Result<String, AiError>;
}
pub mod blip;
