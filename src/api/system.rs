//! `GET /health`, `/capabilities`, `/adapters`: what the box is and can do.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AiState;

/// Liveness plus the hardware and model heuristics OpenNVR's brain uses to place work.
pub async fn health(State(st): State<Arc<AiState>>) -> Json<Value> {
    let body = tokio::task::spawn_blocking(move || health_body(&st))
        .await
        .unwrap_or(Value::Null);
    Json(body)
}

/// The `/health` body, also published as `<prefix>/stats` by the MQTT mirror.
/// Blocking (it refreshes sysinfo): call it off the async threads.
pub fn health_body(st: &AiState) -> Value {
    json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": st.started.elapsed().as_secs(),
        "hardware": st.hw.report(),
        "models": st.engine.model_health(),
        "mqtt": st.mqtt.as_ref().map(|m| m.report()),
        "auth": st.auth.report(),
    })
}

/// Tasks this box can run now (their models are installed).
pub async fn capabilities(State(st): State<Arc<AiState>>) -> Json<Value> {
    Json(json!({ "tasks": st.engine.capabilities() }))
}

/// Every model adapter in the manifest and whether it is loaded.
pub async fn adapters(State(st): State<Arc<AiState>>) -> Json<Value> {
    Json(json!({ "adapters": st.engine.adapters() }))
}
