//! The NVR core (port 8000). Until the store and auth land it answers only
//! `/health`; everything else is a JSON 404, never an open endpoint.

use std::time::Instant;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// Builds the NVR router.
pub fn router(started: Instant) -> Router {
    Router::new()
        .route(
            "/health",
            get(move || async move {
                Json::<Value>(json!({
                    "status": "ok",
                    "version": env!("CARGO_PKG_VERSION"),
                    "uptime_s": started.elapsed().as_secs(),
                }))
            }),
        )
        .fallback(crate::api::not_found)
        .method_not_allowed_fallback(crate::api::method_not_allowed)
}
