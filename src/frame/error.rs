//! The frame module's own errors, so that base code does not depend on the
//! inference layer; `ai::AiError` maps each one to its own variant (and
//! `api::error` from there to HTTP).

/// Why a frame could not be found, read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The URI or base64 text is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The URI names no file under the frames dir.
    #[error("frame not found: {0}")]
    NotFound(String),
    /// The URI tries to leave the frames dir.
    #[error("forbidden frame path: {0}")]
    Forbidden(String),
    /// The file or image exceeds a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The bytes are not an image format we decode.
    #[error("unsupported media: {0}")]
    Unsupported(String),
    /// The bytes claim to be an image but do not decode.
    #[error("undecodable image: {0}")]
    Undecodable(String),
}
