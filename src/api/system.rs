//! `GET /health`, `/capabilities`, `/tasks`, `/adapters`: what the box is and can do.

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
        "mqtt": st.mqtt.as_ref().map(|m| m()),
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

/// `GET /tasks`: every task with the model that serves it, in upstream's
/// shape (`{tasks: [{task, adapter, enabled, model_loaded, description}], count}`).
/// `enabled` is whether its models are installed (as `/capabilities` says);
/// `model_loaded` whether they are in memory yet (they load on first use).
pub async fn tasks(State(st): State<Arc<AiState>>) -> Json<Value> {
    let ready = st.engine.capabilities();
    let adapters = st.engine.adapters();
    let list: Vec<Value> = crate::ai::Task::ALL
        .into_iter()
        .map(|t| {
            let serving: Vec<_> = adapters
                .iter()
                .filter(|a| a.tasks.contains(&t.name()))
                .collect();
            json!({
                "task": t.name(),
                "adapter": serving.first().map(|a| a.id.as_str()),
                "models": serving.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
                "enabled": ready.contains(&t.name()),
                "model_loaded": !serving.is_empty() && serving.iter().all(|a| a.loaded),
                "description": t.description(),
            })
        })
        .collect();
    Json(json!({ "count": list.len(), "tasks": list }))
}
