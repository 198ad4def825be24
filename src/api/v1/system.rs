//! `/v1/health`, `/v1/capabilities`, `/v1/hardware/evaluation` and the
//! metrics (`/v1/metrics`, `/metrics`): what contract v1 clients (KAI-C)
//! register an adapter by.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::infer::model_version;
use crate::ai::backend::on_gpu;
use crate::ai::Task;
use crate::api::AiState;
use crate::hw::HardwareReport;
use crate::metrics;

/// The adapter's name in the contract's identity fields.
pub const ADAPTER_NAME: &str = "opennvr-edge";

/// Seconds-precision RFC 3339 (`checked_at`, `started_at`).
fn rfc3339_s(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `GET /v1/health`: liveness and identity, cheap (no hardware probe).
pub async fn health(State(st): State<Arc<AiState>>) -> Json<Value> {
    let model = st.engine.default_model().to_owned();
    let up = st.started.elapsed();
    let started = time::OffsetDateTime::now_utc() - up;
    let status = if st.engine.can_run(Task::ObjectDetection) {
        "ok"
    } else {
        "error"
    };
    Json(json!({
        "status": status,
        "adapter_name": ADAPTER_NAME,
        "adapter_version": env!("CARGO_PKG_VERSION"),
        "model_version": model_version(&st, &model),
        "model_name": model,
        "started_at": rfc3339_s(started),
        "uptime_seconds": up.as_secs(),
    }))
}

/// `GET /v1/capabilities`: identity, endpoints, scheduling and the
/// detector spec (input size, labels) KAI-C's region pipeline uses.
pub async fn capabilities(State(st): State<Arc<AiState>>) -> Json<Value> {
    let engine = st.engine.clone();
    let labels = tokio::task::spawn_blocking(move || engine.detector_labels().ok())
        .await
        .ok()
        .flatten();
    let id = st.engine.default_model().to_owned();
    let entry = st.engine.model_entry(&id);
    let size_mb = entry
        .and_then(|e| st.engine.model_file_len(&e.file))
        .map(|n| (n as f64 / 1e4).round() / 100.0);
    let detector = match (entry.and_then(|e| e.input_size()), labels) {
        (Some(side), Some(labels)) => json!({
            "input": {"width": side, "height": side, "layout": "nhwc", "dtype": "uint8",
                      "pixel_format": "rgb"},
            "accelerator": {"backend": "cpu", "device": null},
            "labels": labels,
            "max_detections": 300,
        }),
        _ => Value::Null,
    };
    let extra = [
        (
            "/vision/detection",
            "DeepStack / CodeProject.AI object detection (multipart image)",
        ),
        (
            "/vision/face",
            "DeepStack / CodeProject.AI face detection (multipart image)",
        ),
    ];
    Json(json!({
        "adapter": {
            "name": ADAPTER_NAME,
            "version": env!("CARGO_PKG_VERSION"),
            "vendor": "opennvr-edge developers",
            "license": env!("CARGO_PKG_LICENSE"),
            "model_card_url": null,
            "supported_contract_versions": ["1"],
        },
        "model": {
            "name": id,
            "version": model_version(&st, &id),
            "framework": "tract-onnx",
            "size_mb": size_mb,
            "modalities_in": ["image"],
            "modalities_out": ["bbox_classes"],
            "fingerprint": entry.map(|e| format!("sha256:{}", e.sha256)),
        },
        "endpoints": {
            "infer": {"supported": true,
                      "input_content_types": ["multipart/form-data", "application/json"]},
            "infer_stream": {"supported": true, "max_concurrent_streams": st.v1.max_streams,
                             "supports_shared_memory": false},
            "extra": extra.iter().map(|(path, purpose)|
                json!({"path": path, "method": "POST", "purpose": purpose})).collect::<Vec<_>>(),
        },
        "tasks_advertised": st.engine.capabilities(),
        "permissions": {"gpu": false, "network_egress": [], "host_filesystem": [],
                        "shared_memory_paths": [], "host_metadata": false},
        "scheduling": {"max_inflight": st.v1.max_inflight, "preferred_batch_size": 1,
                       "fair_queuing": "none"},
        "cost": {"currency": "USD", "estimated_per_call": 0.0, "estimated_per_hour": 0.0,
                 "rate_limit_per_minute": null, "is_metered": false},
        "detector": detector,
    }))
}

/// Free memory below this blocks: loading a detector and decoding a
/// large frame need about this much.
const BLOCK_FREE_GB: f64 = 0.25;
/// Below this, or fewer cores than this, the verdict is a warning.
const WARN_FREE_GB: f64 = 0.5;
const WARN_CORES: usize = 2;

/// The verdict for a hardware report: `(verdict, reasoning)`.
pub fn verdict(hw: &HardwareReport, model_ok: bool, model: &str) -> (&'static str, String) {
    let backend = hw.gpu.as_ref().and_then(|g| g.ai_backend);
    let gpu = match (&hw.gpu_device, backend) {
        (Some(name), Some(b)) if on_gpu(b) => format!("{name} runs inference ({b})"),
        (Some(name), _) => format!("{name} present but unused (inference runs on the CPU)"),
        (None, _) => "no NVIDIA GPU (inference runs on the CPU, as designed)".into(),
    };
    let facts = format!(
        "{} cores, {:.1} GB RAM ({:.1} GB free), {gpu}",
        hw.cpu_cores, hw.ram_total_gb, hw.ram_free_gb
    );
    if !model_ok {
        return (
            "blocked",
            format!("detector {model} is not installed; {facts}"),
        );
    }
    if hw.ram_free_gb < BLOCK_FREE_GB {
        return (
            "blocked",
            format!("too little free memory to run the detector; {facts}"),
        );
    }
    if hw.ram_free_gb < WARN_FREE_GB || hw.cpu_cores < WARN_CORES {
        return (
            "warn",
            format!("low memory or few cores, expect slow inference; {facts}"),
        );
    }
    ("ok", format!("detector {model} installed; {facts}"))
}

/// `GET /v1/hardware/evaluation`: a verdict from the hardware probe.
pub async fn hardware_evaluation(State(st): State<Arc<AiState>>) -> Json<Value> {
    let hw = st.hw.clone();
    let report = tokio::task::spawn_blocking(move || hw.report()).await.ok();
    let model = st.engine.default_model().to_owned();
    let model_ok = st.engine.can_run(Task::ObjectDetection);
    let health = st.engine.model_health();
    let latency = health.get(&model).and_then(|h| h.avg_latency_ms);
    let (verdict, reasoning, details) = match &report {
        Some(r) => {
            let (v, why) = verdict(r, model_ok, &model);
            let details = json!({
                "cpu_cores": r.cpu_cores, "ram_total_gb": r.ram_total_gb,
                "ram_free_gb": r.ram_free_gb, "cpu_usage_percent": r.cpu_usage_percent,
                "gpu_available": r.gpu_device.is_some(), "gpu_name": r.gpu_device,
                "vram_total_gb": r.vram_total_gb, "vram_free_gb": r.vram_free_gb,
                "backend": st.engine.backend_name(), "model": model, "model_installed": model_ok,
                "avg_latency_ms": latency,
            });
            (v, why, details)
        }
        None => ("warn", "the hardware probe failed".to_owned(), json!({})),
    };
    Json(json!({
        "verdict": verdict,
        "reasoning": reasoning,
        "checked_at": rfc3339_s(time::OffsetDateTime::now_utc()),
        "details": details,
    }))
}

/// `GET /metrics` and `/v1/metrics`: the Prometheus exposition.
pub async fn metrics(State(st): State<Arc<AiState>>) -> Response {
    let text = st.metrics.render();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(cores: usize, free: f64) -> HardwareReport {
        HardwareReport {
            ram_total_gb: 8.0,
            ram_free_gb: free,
            cpu_cores: cores,
            cpu_usage_percent: 0.0,
            gpu_device: None,
            vram_total_gb: None,
            vram_free_gb: None,
            gpu: None,
        }
    }

    #[test]
    fn verdicts_follow_memory_cores_and_the_model() {
        assert_eq!(verdict(&hw(4, 4.0), true, "m").0, "ok");
        assert_eq!(verdict(&hw(1, 4.0), true, "m").0, "warn");
        assert_eq!(verdict(&hw(4, 0.4), true, "m").0, "warn");
        assert_eq!(verdict(&hw(4, 0.1), true, "m").0, "blocked");
        let (v, why) = verdict(&hw(4, 4.0), false, "yolo");
        assert_eq!(v, "blocked");
        assert!(why.contains("yolo") && why.contains("4 cores"), "{why}");
    }
}
