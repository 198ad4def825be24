//! The one place errors become HTTP: status codes and the JSON error shape
//! `{"error": {"code", "message"}}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(status_of(&self.0), StatusCode::INTERNAL_SERVER_ERROR) {
            tracing::error!(error = %self.0, "request failed");
        }
        let resp = (
            status_of(&self.0),
            Json(json!({ "error": error_body(&self.0) })),
        )
            .into_response();
        with_retry_after(&self.0, resp)
    }
}
