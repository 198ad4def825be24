//! The one place errors become HTTP: status codes and the JSON error shape
//! `{"error": {"code", "message"}, "detail": message}` (`detail` is where
//! FastAPI clients, upstream OpenNVR's among them, read the reason).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ai::AiError;

/// An [`AiError`] on its way out of a handler.
#[derive(Debug)]
pub struct ApiError(pub AiError);

impl From<AiError> for ApiError {
    fn from(e: AiError) -> Self {
        ApiError(e)
    }
}

/// The status code for an inference-layer error.
pub fn status_of(e: &AiError) -> StatusCode {
    match e {
        AiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AiError::FrameNotFound(_) => StatusCode::NOT_FOUND,
        AiError::ForbiddenPath(_) => StatusCode::FORBIDDEN,
        AiError::BodyIncomplete(_) => StatusCode::REQUEST_TIMEOUT,
        AiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        AiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        AiError::UndecodableImage(_) | AiError::UnknownTask(_) | AiError::UnknownModel(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AiError::TaskUnavailable { .. } | AiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        AiError::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body for an error, shared with the pipeline's error shape.
pub fn error_body(e: &AiError) -> serde_json::Value {
    json!({ "code": e.code(), "message": e.to_string() })
}

/// Adds `Retry-After` to overload answers so clients back off instead of hammering.
pub fn with_retry_after(e: &AiError, mut resp: Response) -> Response {
    if matches!(e, AiError::Busy) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// Answers `e` with `status` instead of its usual one (a route where the
/// same failure means something else, e.g. an unknown task in a path-like
/// lookup is a 404).
pub fn respond(status: StatusCode, e: &AiError) -> Response {
    if matches!(status, StatusCode::INTERNAL_SERVER_ERROR) {
        tracing::error!(error = %e, "request failed");
    }
    with_retry_after(
        e,
        crate::serve::error_response(status, e.code(), &e.to_string()),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond(status_of(&self.0), &self.0)
    }
}
