//! The AI adapter's HTTP surface (port 9100): OpenNVR's adapter API.

pub mod auth;
mod deepstack;
mod error;
mod infer;
mod request;
mod schema;
mod system;
pub mod v1;

pub use system::health_body;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};

pub use error::{method_not_allowed, not_found};

use crate::ai::Engine;
use crate::frame::FrameStore;
use crate::hw::Hardware;

/// Everything the adapter's handlers share.
pub struct AiState {
    pub engine: Arc<Engine>,
    pub frames: FrameStore,
    pub hw: Arc<Hardware>,
    pub started: Instant,
    pub max_body: usize,
    pub max_pixels: u64,
    /// The MQTT mirror's counters for `/health`; `None` when MQTT is off.
    pub mqtt: Option<crate::mqtt::Status>,
    /// The bearer token (contract v1 §3.8) for the whole port.
    pub auth: auth::AdapterAuth,
    /// What `/metrics` and `/v1/metrics` expose (engine, cameras, streams).
    pub metrics: Arc<crate::metrics::Registry>,
    /// Contract v1's stream bounds.
    pub v1: Arc<v1::V1>,
}

/// Builds the adapter's router.
pub fn router(state: Arc<AiState>) -> Router {
    let limit = state.max_body;
    Router::new()
        .route("/health", get(system::health))
        .route("/capabilities", get(system::capabilities))
        .route("/adapters", get(system::adapters))
        .route("/schema", get(schema::schema))
        .route("/infer", post(infer::infer))
        .route("/pipeline/run", post(infer::pipeline))
        .route("/metrics", get(v1::system::metrics))
        .route("/infer/stream", get(v1::stream_handler))
        .nest("/v1", v1::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}
