//! OpenNVR's AI adapter contract v1 under `/v1` (what current KAI-C and
//! OpenNVR's app SDK speak): health, capabilities, hardware evaluation,
//! metrics, `/infer` with the v1 envelope and failure envelope, and the
//! `/infer/stream` WebSocket protocol, over the same engine and admission
//! as the root API. Auth is the port's (`api::auth`).

mod body;
mod envelope;
mod infer;
mod result;
mod stream;
pub(super) mod system;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

pub use body::{read as read_body, Parsed};
pub use infer::{run, Image, Job};

use super::AiState;
use crate::config::Config;
use crate::metrics::{Collect, Exposition, Kind};
use crate::slots::Slots;

/// The stream bounds and what `/v1/capabilities` advertises.
#[derive(Debug)]
pub struct V1 {
    /// Open streams (at most half per client address).
    streams: Slots,
    /// `ai.max_streams`.
    pub max_streams: usize,
    /// `ai.stream_idle_timeout_s`.
    pub idle: Duration,
    /// `ai.stream_max_frame_bytes`, at most `ai.max_body_bytes` (a stream
    /// frame is no larger than what `/infer` accepts).
    pub max_frame_bytes: usize,
    /// Inferences that run at once (`ai.workers`): the contract's `max_inflight`.
    pub max_inflight: usize,
}

impl V1 {
    /// The settings of `cfg`.
    pub fn new(cfg: &Config) -> Self {
        let max = cfg.ai.max_streams.max(1);
        Self {
            streams: Slots::new(max, max.div_ceil(2)),
            max_streams: max,
            idle: Duration::from_secs(cfg.ai.stream_idle_timeout_s.max(1)),
            max_frame_bytes: cfg
                .ai
                .stream_max_frame_bytes
                .min(cfg.ai.max_body_bytes)
                .max(1024),
            max_inflight: cfg.ai.runners(),
        }
    }
}

impl Collect for V1 {
    fn collect(&self, out: &mut Exposition) {
        out.family(
            "adapter_stream_connections_active",
            "Open /v1/infer/stream WebSockets.",
            Kind::Gauge,
        );
        let open = self.streams.held() as f64;
        out.sample("adapter_stream_connections_active", &[], open);
    }
}

/// The `/v1` routes (nested by `api::router`).
pub fn routes() -> Router<Arc<AiState>> {
    Router::new()
        .route("/health", get(system::health))
        .route("/capabilities", get(system::capabilities))
        .route("/hardware/evaluation", get(system::hardware_evaluation))
        .route("/metrics", get(system::metrics))
        .route("/infer", post(infer::infer))
        .route("/infer/stream", get(stream::stream))
        .route("/vision/detection", post(super::deepstack::detection))
        .route("/vision/face", post(super::deepstack::face))
        .fallback(envelope::not_found)
}

/// The stream handler, also served at the root's `/infer/stream`: KAI-C's
/// stream proxy replaces the adapter URL's path with `/infer/stream`.
pub use stream::stream as stream_handler;
