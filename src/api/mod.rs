//! The AI adapter's HTTP surface (port 9100): OpenNVR's adapter API.

mod error;
mod infer;
mod options;
mod request;
mod schema;
mod system;

pub use system::health_body;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::ai::Engine;
use crate::frame::FrameStore;
use crate::hw::Hardware;
use crate::serve::{method_not_allowed, not_found};

/// A part of `/health` filled by a higher layer at wiring time (`cmd/run.rs`):
/// the adapter port reaches nothing of the NVR side, not even the MQTT
/// mirror, only the values it is handed.
pub type HealthPart = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Everything the adapter's handlers share.
pub struct AiState {
    pub engine: Arc<Engine>,
    pub frames: FrameStore,
    pub hw: Arc<Hardware>,
    pub started: Instant,
    pub max_body: usize,
    pub max_pixels: u64,
    /// The MQTT mirror's counters for `/health`; `None` when MQTT is off.
    pub mqtt: Option<HealthPart>,
}

impl AiState {
    /// The state `run` serves for `cfg`: frames under the data dir's frames
    /// folder; no MQTT part (`run` hands the mirror's in when MQTT is on).
    /// In-process tests build it the same way.
    pub fn new(
        cfg: &crate::config::Config,
        engine: Arc<Engine>,
        hw: Arc<Hardware>,
    ) -> std::io::Result<Self> {
        Ok(AiState {
            engine,
            frames: FrameStore::new(
                &crate::paths::DataDir::new(&cfg.paths).frames(),
                cfg.ai.max_body_bytes as u64,
            )?,
            hw,
            started: Instant::now(),
            max_body: cfg.ai.max_body_bytes,
            max_pixels: cfg.ai.max_image_pixels,
            mqtt: None,
        })
    }
}

/// Builds the adapter's router.
pub fn router(state: Arc<AiState>) -> Router {
    let limit = state.max_body;
    Router::new()
        .route("/health", get(system::health))
        .route("/capabilities", get(system::capabilities))
        .route("/tasks", get(system::tasks))
        .route("/adapters", get(system::adapters))
        .route("/schema", get(schema::schema))
        .route("/infer", post(infer::infer))
        .route("/pipeline/run", post(infer::pipeline))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
