//! Errors of the inference layer. HTTP status codes are assigned in one place,
//! `api::error`, so this layer stays usable from the CLI.

use crate::frame::FrameError;

/// Everything that can go wrong between a request and a result.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// The request is malformed (bad JSON, missing or ill-typed fields).
    #[error("{0}")]
    BadRequest(String),
    /// The frame URI names no file under the frames dir.
    #[error("frame not found: {0}")]
    FrameNotFound(String),
    /// The frame URI tries to leave the frames dir.
    #[error("forbidden frame path: {0}")]
    ForbiddenPath(String),
    /// The request body broke off or took too long to arrive.
    #[error("reading the request body: {0}")]
    BodyIncomplete(String),
    /// The body or frame exceeds a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The bytes are not an image format we decode.
    #[error("unsupported media: {0}")]
    UnsupportedMedia(String),
    /// The bytes claim to be an image but do not decode.
    #[error("undecodable image: {0}")]
    UndecodableImage(String),
    /// No task of that name exists.
    #[error("unknown task: {0}")]
    UnknownTask(String),
    /// The request names a model that is not in the manifest.
    #[error("unknown model: {0}")]
    UnknownModel(String),
    /// The task exists but its model is not installed or failed to load.
    #[error("task {task} unavailable: {reason}")]
    TaskUnavailable { task: String, reason: String },
    /// The inference queue is full; the client should retry shortly.
    #[error("inference queue full")]
    Busy,
    /// The backend failed while running a loaded model, or its outputs are
    /// not what the model promised. The cause is kept (typed where it has a
    /// type) and said in the message, so it is not also a `source()`.
    #[error("inference failed: {0}")]
    Inference(Box<dyn std::error::Error + Send + Sync>),
}

/// A frame error keeps its message and becomes the variant of the same meaning.
impl From<FrameError> for AiError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadRequest(m) => AiError::BadRequest(m),
            FrameError::NotFound(m) => AiError::FrameNotFound(m),
            FrameError::Forbidden(m) => AiError::ForbiddenPath(m),
            FrameError::TooLarge(m) => AiError::TooLarge(m),
            FrameError::Unsupported(m) => AiError::UnsupportedMedia(m),
            FrameError::Undecodable(m) => AiError::UndecodableImage(m),
        }
    }
}

impl AiError {
    /// An [`AiError::Inference`] from a cause: an error value, or a message
    /// for what our own decoders found wrong.
    pub fn inference(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AiError::Inference(cause.into())
    }

    /// A short machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AiError::BadRequest(_) => "bad_request",
            AiError::FrameNotFound(_) => "frame_not_found",
            AiError::ForbiddenPath(_) => "forbidden_path",
            AiError::BodyIncomplete(_) => "body_incomplete",
            AiError::TooLarge(_) => "payload_too_large",
            AiError::UnsupportedMedia(_) => "unsupported_media",
            AiError::UndecodableImage(_) => "undecodable_image",
            AiError::UnknownTask(_) => "unknown_task",
            AiError::UnknownModel(_) => "unknown_model",
            AiError::TaskUnavailable { .. } => "task_unavailable",
            AiError::Busy => "busy",
            AiError::Inference(_) => "inference_failed",
        }
    }
}
