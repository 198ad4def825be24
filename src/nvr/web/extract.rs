//! Axum's extractors with rejections turned into [`WebError`], so malformed
//! JSON, bad query parameters and oversized bodies answer in our JSON shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::error::WebError;

fn rejected(status: StatusCode, text: String) -> WebError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => WebError::TooLarge(text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => WebError::UnsupportedMedia(text),
        _ => WebError::BadRequest(text),
    }
}

/// Defines a wrapper around an axum extractor whose rejection becomes a `WebError`.
macro_rules! wrap_extractor {
    ($(#[$doc:meta])* $name:ident, $inner:path, $trait:ident, $arg:ident: $argty:ty, $call:ident) => {
        $(#[$doc])*
        pub struct $name<T>(pub T);

        impl<T, S> $trait<S> for $name<T>
        where
            $inner: $trait<S>,
            <$inner as $trait<S>>::Rejection: IntoResponse + RejectionText,
            S: Send + Sync,
        {
            type Rejection = WebError;

            async fn $call($arg: $argty, state: &S) -> Result<Self, Self::Rejection> {
                match <$inner as $trait<S>>::$call($arg, state).await {
                    Ok(v) => Ok($name(v.0)),
                    Err(r) => Err(rejected(r.status_code(), r.text())),
                }
            }
        }
    };
}

/// Gives every axum rejection one status and text accessor.
pub trait RejectionText {
    fn status_code(&self) -> StatusCode;
    fn text(&self) -> String;
}

macro_rules! rejection_text {
    ($($t:ty),*) => {$(
        impl RejectionText for $t {
            fn status_code(&self) -> StatusCode { self.status() }
            fn text(&self) -> String { self.body_text() }
        }
    )*};
}

rejection_text!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::FormRejection,
    axum::extract::rejection::PathRejection
);

wrap_extractor!(
    /// JSON body; 400 for malformed, 413 for too large, 415 for the wrong type.
    Json, axum::Json<T>, FromRequest, req: Request, from_request
);
wrap_extractor!(
    /// Query string; 400 when a parameter is missing or does not parse.
    Query, axum::extract::Query<T>, FromRequestParts, parts: &mut Parts, from_request_parts
);
wrap_extractor!(
    /// URL-encoded form body (the OAuth2 password login).
    Form, axum::Form<T>, FromRequest, req: Request, from_request
);
wrap_extractor!(
    /// Path parameters; 400 when one does not parse.
    Path, axum::extract::Path<T>, FromRequestParts, parts: &mut Parts, from_request_parts
);
