//! `scene_description`: one plain sentence about a picture, for a
//! notification ("two people at the door"). Two engines answer behind the
//! one task name: a captioning model when one is installed ([`Captioner`]),
//! and, on every box, a description grounded in what the detectors see
//! ([`grounded`]). `params.engine` picks one ([`choose`]).

pub mod blip;
pub mod grounded;

use std::sync::Arc;

use image::RgbImage;

use super::error::AiError;

/// A model that turns a picture into a sentence (BLIP). Implemented by the
/// captioner's own module; the task code sees only this, so the grounded
/// description and the model answer the same way.
pub trait Captioner: Send + Sync {
    /// The installed model's id (its manifest name), reported as `model_id`.
    fn model_id(&self) -> &str;
    /// One caption for `image`, decoded to text. Blocking (CPU-bound):
    /// call it on the engine's runners (or the event describer's thread).
    fn caption(&self, image: &RgbImage) -> Result<String, AiError>;
}

/// Which engine answers, from `params.engine` (already validated against
/// [`crate::ai::task::SCENE_ENGINES`]) and the installed captioner
/// (`installed`, asked only when it matters, since it may load the model):
/// `Some` captioner, or `None` for the grounded description. Unset means
/// the captioner when there is one; `"blip"` without one installed is the
/// client's mistake (400), said with what to send instead.
pub fn choose(
    asked: Option<&str>,
    installed: impl FnOnce() -> Result<Option<Arc<dyn Captioner>>, AiError>,
) -> Result<Option<Arc<dyn Captioner>>, AiError> {
    match asked {
        Some("detections") => Ok(None),
        Some("blip") => installed()?.map(Some).ok_or_else(|| {
            AiError::BadRequest(
                "params.engine \"blip\": no captioning model is installed on this box; \
                 send \"detections\" or leave params.engine unset"
                    .into(),
            )
        }),
        None => installed(),
        Some(other) => Err(AiError::BadRequest(format!(
            "params.engine must be one of \"blip\", \"detections\"; got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Captioner for Fixed {
        fn model_id(&self) -> &str {
            "fixed"
        }
        fn caption(&self, _: &RgbImage) -> Result<String, AiError> {
            Ok("a caption".into())
        }
    }

    fn some() -> Result<Option<Arc<dyn Captioner>>, AiError> {
        Ok(Some(Arc::new(Fixed)))
    }

    fn none() -> Result<Option<Arc<dyn Captioner>>, AiError> {
        Ok(None)
    }

    #[test]
    fn the_captioner_by_default_the_detections_on_request() {
        let id = |r: Result<Option<Arc<dyn Captioner>>, AiError>| {
            r.unwrap().map(|c| c.model_id().to_owned())
        };
        assert_eq!(id(choose(None, some)).as_deref(), Some("fixed"));
        assert_eq!(id(choose(Some("blip"), some)).as_deref(), Some("fixed"));
        assert_eq!(id(choose(None, none)), None, "grounded without a captioner");
        let asked_detections = choose(Some("detections"), || -> Result<_, AiError> {
            panic!("the captioner is not even looked up")
        });
        assert!(asked_detections.unwrap().is_none());
    }

    #[test]
    fn blip_without_a_captioner_and_unknown_engines_are_bad_requests() {
        let e = choose(Some("blip"), none).err().unwrap();
        assert!(matches!(e, AiError::BadRequest(_)));
        assert!(e.to_string().contains("detections"), "{e}");
        let e = choose(Some("gpt"), some).err().unwrap();
        assert!(e.to_string().contains("\"blip\", \"detections\""), "{e}");
    }
}
