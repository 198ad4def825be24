//! The one place NVR errors become HTTP: status, `{"error":{"code","message"}}`,
//! and the headers that go with them (`WWW-Authenticate`, `Retry-After`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::nvr::auth::AuthError;
use crate::nvr::store::StoreError;

/// Everything a handler on port 8000 can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Malformed JSON, a bad parameter, a value out of range.
    #[error("{0}")]
    BadRequest(String),
    /// The body, or a part of it, is over its limit (the message names it).
    #[error("{0}")]
    TooLarge(String),
    /// The body is not the content type the endpoint takes.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// Something the path names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Authentication or authorisation said no.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebError {
    /// Status and stable machine-readable code.
    pub(crate) fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            WebError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            WebError::UnsupportedMedia(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media")
            }
            WebError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            WebError::Auth(a) => match a {
                AuthError::Missing => (StatusCode::UNAUTHORIZED, "unauthorized"),
                AuthError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
                AuthError::Expired => (StatusCode::UNAUTHORIZED, "token_expired"),
                AuthError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
                AuthError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                AuthError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                AuthError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
                AuthError::TokenCannotMint | AuthError::TokenCannotGrant => {
                    (StatusCode::FORBIDDEN, "forbidden")
                }
                AuthError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                AuthError::Store(s) => store_status(s),
                AuthError::Hash(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            WebError::Store(s) => store_status(s),
        }
    }
}

fn store_status(e: &StoreError) -> (StatusCode, &'static str) {
    match e {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        StoreError::Conflict(_) | StoreError::Refused(_) => (StatusCode::CONFLICT, "conflict"),
        StoreError::WriterGone => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        StoreError::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        // Internal details go to the log, not to the client; server-side
        // conditions the operator can act on get a plain sentence.
        let message = match &self {
            WebError::Auth(AuthError::Busy(_)) => self.to_string(),
            _ if status == StatusCode::INSUFFICIENT_STORAGE => {
                tracing::error!(error = %self, "write refused");
                "the data disk is full; nothing was stored (free space or lower retention)"
                    .to_owned()
            }
            _ if status.is_server_error() => {
                tracing::error!(error = %self, "request failed");
                "internal error; see the daemon log".to_owned()
            }
            _ => self.to_string(),
        };
        let mut resp = crate::serve::error_response(status, code, &message);
        let h = resp.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let WebError::Auth(AuthError::RateLimited(s) | AuthError::Busy(s)) = &self {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE && !h.contains_key(header::RETRY_AFTER) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Shorthand for handlers.
pub type WebResult<T> = Result<T, WebError>;
