//! Contract v1's failure envelope (§7): `{status: "error", error: {category,
//! code, message, transient, retry_after_ms, details}}`. The HTTP status is
//! the one `api::error` gives every [`AiError`]; this adds the category and
//! retry advice KAI-C decides its retries by.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::ai::AiError;
use crate::api::error::status_of;

/// How long a client should wait after a full queue (also `Retry-After`).
pub const RETRY_AFTER_MS: u64 = 1000;

/// An [`AiError`] on its way out of a `/v1` handler.
#[derive(Debug)]
pub struct V1Error(pub AiError);

impl From<AiError> for V1Error {
    fn from(e: AiError) -> Self {
        V1Error(e)
    }
}

/// The contract's category and code for an error.
fn category_code(e: &AiError) -> (&'static str, &'static str) {
    match e {
        AiError::BadRequest(_)
        | AiError::BodyIncomplete(_)
        | AiError::TooLarge(_)
        | AiError::UndecodableImage(_)
        | AiError::FrameNotFound(_) => ("transport_error", "malformed_input"),
        AiError::UnsupportedMedia(_) => ("transport_error", "unsupported_content_type"),
        AiError::ForbiddenPath(_) => ("permission_denied", "permission_path_denied"),
        AiError::UnknownTask(_) => ("not_supported", "unknown_task"),
        AiError::UnknownModel(_) => ("not_supported", "unknown_model"),
        AiError::TaskUnavailable { .. } => ("model_error", "weights_missing"),
        AiError::Busy => ("overloaded", "queue_full"),
        AiError::Inference(_) => ("model_error", "inference_runtime_crash"),
    }
}

/// The envelope's body; also embedded in a stream's `result` message.
pub fn envelope(e: &AiError) -> Value {
    let (category, code) = category_code(e);
    let transient = matches!(e, AiError::Busy | AiError::BodyIncomplete(_));
    let retry_after_ms = matches!(e, AiError::Busy).then_some(RETRY_AFTER_MS);
    json!({
        "status": "error",
        "error": {
            "category": category,
            "code": code,
            "message": e.to_string(),
            "transient": transient,
            "retry_after_ms": retry_after_ms,
            "details": {"opennvr_code": e.code()},
        }
    })
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0, "v1 request failed");
        }
        let mut resp = (status, Json(envelope(&self.0))).into_response();
        if matches!(self.0, AiError::Busy) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Unknown `/v1` paths, in the envelope's shape.
pub async fn not_found() -> Response {
    let body = json!({"status": "error", "error": {
        "category": "not_supported", "code": "not_found",
        "message": "no such endpoint under /v1", "transient": false, "details": {}}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
