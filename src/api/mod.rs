//! The AI adapter's HTTP surface (port 9100): OpenNVR's adapter API.

pub(crate) mod auth;
mod deepstack;
mod error;
mod infer;
mod options;
mod request;
mod schema;
mod system;
pub(crate) mod v1;

pub use system::health_body;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};

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
    /// The bearer token (contract v1 §3.8) for the whole port.
    pub auth: auth::AdapterAuth,
    /// What `/metrics` and `/v1/metrics` expose (engine, streams; `run`
    /// registers the cameras and the MQTT mirror).
    pub metrics: Arc<crate::metrics::Registry>,
    /// Contract v1's stream bounds.
    pub v1: Arc<v1::V1>,
    /// The daemon's shutdown: open v1 streams close (1001) when it fires
    /// (an upgraded socket has left the server's drain).
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AiState {
    /// The state `run` serves for `cfg`: frames under the data dir's frames
    /// folder; the port's token and metrics; no MQTT part (`run` hands the
    /// mirror's in when MQTT is on).
    /// In-process tests build it the same way.
    pub fn new(
        cfg: &crate::config::Config,
        engine: Arc<Engine>,
        hw: Arc<Hardware>,
    ) -> std::io::Result<Self> {
        let metrics = Arc::new(crate::metrics::Registry::new());
        let v1 = Arc::new(v1::V1::new(cfg));
        metrics.register(engine.clone());
        metrics.register(v1.clone());
        let token = auth::AdapterAuth::new(cfg.ai.token.as_deref(), cfg.ai.listen, engine.clock());
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
            auth: token,
            metrics,
            v1,
            shutdown: tokio_util::sync::CancellationToken::new(),
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
        .route("/metrics", get(v1::system::metrics))
        // KAI-C registers an adapter by probing its URL's `/hardware/evaluation`.
        .route("/hardware/evaluation", get(v1::system::hardware_evaluation))
        .route("/infer/stream", get(v1::stream_handler))
        .nest("/v1", v1::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}
