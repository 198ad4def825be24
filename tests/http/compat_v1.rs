//! Adapter contract v1 under `/v1` (KAI-C, OpenNVR's app SDK, upstream's
//! conformance kit): registration, the envelope and the failure envelope,
//! a full queue, and the bearer token. (The WebSocket stream protocol and
//! the metrics of a running camera need a process: `tests/daemon/compat/v1.rs`.)

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{header, Method};
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use crate::common::contract::{assert_prometheus_type, envelope_error, parse_metrics};
use crate::common::fixture;
use crate::harness::{request, Ai, App, Resp};

/// Bounded waits on what other requests in this task do: yields, not sleeps.
const YIELDS: usize = 10_000;

fn bus() -> Vec<u8> {
    std::fs::read(fixture("samples/bus.jpg")).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn post_json(d: &Ai, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let r = d.post_json(path, token, body).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn get_json(d: &Ai, path: &str) -> Value {
    d.get(path, None).await.json()
}

async fn metrics(d: &Ai, path: &str) -> HashMap<String, f64> {
    let r = d.get(path, None).await;
    assert_eq!(r.status, 200);
    assert_prometheus_type(r.header("content-type"));
    parse_metrics(&r.text())
}

#[tokio::test]
async fn registration_surface_health_capabilities_hardware() {
    let d = Ai::start(&[]);
    let h = get_json(&d, "/v1/health").await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["adapter_name"], "opennvr-edge");
    assert!(
        h["model_name"].as_str().unwrap().starts_with("yolov4-tiny"),
        "{h}"
    );
    assert!(h["started_at"].as_str().unwrap().ends_with('Z'), "{h}");
    assert!(h["uptime_seconds"].is_u64());

    let c = get_json(&d, "/v1/capabilities").await;
    assert_eq!(c["adapter"]["supported_contract_versions"], json!(["1"]));
    let fp = c["model"]["fingerprint"].as_str().unwrap();
    assert_eq!(fp.len(), "sha256:".len() + 64, "{fp}");
    assert_eq!(c["model"]["modalities_in"], json!(["image"]));
    assert_eq!(c["endpoints"]["infer_stream"]["supported"], true);
    let tasks = c["tasks_advertised"].as_array().unwrap();
    assert!(tasks.contains(&json!("object_detection")), "{c}");
    let det = &c["detector"];
    let side = det["input"]["width"].as_u64().unwrap();
    assert!(
        h["model_name"]
            .as_str()
            .unwrap()
            .ends_with(&side.to_string()),
        "{c}"
    );
    let labels = det["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 80);
    assert_eq!(labels[0], "person");

    let hw = get_json(&d, "/v1/hardware/evaluation").await;
    let root = get_json(&d, "/health").await;
    assert!(
        ["ok", "warn", "blocked"].contains(&hw["verdict"].as_str().unwrap()),
        "{hw}"
    );
    assert_eq!(
        hw["details"]["cpu_cores"], root["hardware"]["cpu_cores"],
        "{hw}"
    );
    assert_eq!(hw["details"]["model_installed"], true);
    let why = hw["reasoning"].as_str().unwrap();
    assert!(why.contains("cores") && why.contains("GB RAM"), "{why}");
    assert_eq!(root["auth"]["token_required"], false, "{root}");
    assert_eq!(
        root["auth"]["warning"],
        Value::Null,
        "loopback needs no warning"
    );
}

#[tokio::test]
async fn infer_answers_the_v1_envelope_from_json_and_multipart() {
    let d = Ai::start(&[]);
    // KAI-C's body: frame_b64, the task and flat params (its name for confidence).
    let body = json!({"frame_b64": b64(&bus()), "task": "person_detection",
                      "camera_id": "cam-7", "confidence_threshold": 0.3});
    let (s, v) = post_json(&d, "/v1/infer", &body, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "ok");
    assert!(v["model_name"].as_str().unwrap().starts_with("yolov4-tiny"));
    assert_eq!(v["model_version"].as_str().unwrap().len(), 12);
    assert!(v["inference_ms"].is_u64());
    let r = &v["result"];
    assert_eq!(r["frame_dimensions"], json!({"w": 810, "h": 1080}));
    let dets = r["detections"].as_array().unwrap();
    assert!(dets.len() >= 3, "{r}");
    for d in dets {
        assert_eq!(d["label"], "person");
        let b = &d["bbox"];
        let (x, y, w, h) = (
            b["x"].as_f64().unwrap(),
            b["y"].as_f64().unwrap(),
            b["w"].as_f64().unwrap(),
            b["h"].as_f64().unwrap(),
        );
        assert!(x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0, "{d}");
        assert!(x + w <= 1.0 + 1e-6 && y + h <= 1.0 + 1e-6, "{d}");
    }
    // The threshold is honoured, not dropped: 0.99 keeps (almost) nobody.
    let strict = json!({"frame_b64": b64(&bus()), "task": "person_detection",
                        "confidence_threshold": 0.99});
    let (_, v99) = post_json(&d, "/v1/infer", &strict, None).await;
    assert!(
        v99["result"]["count"].as_u64().unwrap() < dets.len() as u64,
        "{v99}"
    );

    // Upstream's camera ids are integers: read as their decimal text, on
    // `/v1` and at the root; other numbers are still refused.
    let numeric = json!({"frame_b64": b64(&bus()), "task": "person_counting", "camera_id": 7});
    let (s, v) = post_json(&d, "/v1/infer", &numeric, None).await;
    assert_eq!(s, 200, "{v}");
    let fractional = json!({"frame_b64": b64(&bus()), "camera_id": 7.5});
    let (s, v) = post_json(&d, "/v1/infer", &fractional, None).await;
    assert_eq!(s, 400, "{v}");
    let root = json!({"task": "person_counting",
                      "data": {"frame": {"b64": b64(&bus())}, "camera_id": 7}});
    let (s, v) = post_json(&d, "/infer", &root, None).await;
    assert_eq!(s, 200, "{v}");

    // The contract's multipart: a `frame` part and `params` as JSON.
    let r = d
        .post_multipart(
            "/v1/infer",
            &[(
                "params",
                r#"{"task": "object_detection", "classes": ["bus"]}"#,
            )],
            &[("frame", "capture.jpg", &bus())],
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let dets = v["result"]["detections"].as_array().unwrap();
    assert!(
        !dets.is_empty() && dets.iter().all(|d| d["label"] == "bus"),
        "{v}"
    );

    // Failures are the envelope: an unknown key by name, a foreign type.
    let (s, v) = post_json(
        &d,
        "/v1/infer",
        &json!({"frame_b64": b64(&bus()), "colour": 1}),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let e = envelope_error(&v);
    assert_eq!(e["category"], "transport_error");
    assert_eq!(e["transient"], false);
    assert!(e["message"].as_str().unwrap().contains("colour"), "{v}");
    let r = d.post_raw("/v1/infer", "text/plain", b"x".to_vec()).await;
    assert_eq!(r.status, 415);
    assert_eq!(
        envelope_error(&r.json())["code"],
        "unsupported_content_type"
    );
    let (s, v) = post_json(
        &d,
        "/v1/infer",
        &json!({"frame_b64": b64(&bus()), "task": "fly"}),
        None,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(envelope_error(&v)["category"], "not_supported");
}

/// A request whose headers promise a body that never comes: it holds its
/// admission place for as long as it is not dropped.
async fn stalled(d: &Ai) -> Resp {
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))])
        .chain(futures_util::stream::pending());
    d.send(
        request(Method::POST, "/v1/infer")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, 100_000)
            .body(Body::from_stream(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_full_queue_is_a_transient_503_envelope() {
    let d = Ai::start(&[]);
    // One client holds at most half of the 8 places: four stalled bodies,
    // polled beside the test until it drops them.
    let held = futures_util::future::join_all((0..4).map(|_| stalled(&d)));
    let full = async {
        let mut depth = 0.0;
        for _ in 0..YIELDS {
            depth = metrics(&d, "/metrics").await["adapter_queue_depth"];
            if depth == 4.0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(depth, 4.0, "four requests admitted");
        let r = d
            .post_json("/v1/infer", None, &json!({"frame_b64": b64(&bus())}))
            .await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), "1");
        let v = r.json();
        let e = envelope_error(&v);
        assert_eq!(e["category"], "overloaded");
        assert_eq!(e["code"], "queue_full");
        assert_eq!(e["transient"], true);
        assert_eq!(e["retry_after_ms"], 1000);
        let refused = r#"adapter_infer_total{source="api",task="",outcome="refused"}"#;
        assert!(metrics(&d, "/v1/metrics").await[refused] >= 1.0);
    };
    tokio::select! {
        r = held => panic!("a stalled request was answered: {r:?}"),
        () = full => {}
    }
    // `held` is dropped: its places come back.
    let mut s = 0;
    for _ in 0..YIELDS {
        s = post_json(&d, "/v1/infer", &json!({"frame_b64": b64(&bus())}), None)
            .await
            .0;
        if s == 200 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(s, 200, "places come back when the stalled clients leave");
}

#[tokio::test]
async fn bearer_token_closes_the_port_but_health() {
    let token = "s3cret-token";
    let d = Ai::start(&[("OPENNVR_ADAPTER_TOKEN", token)]);
    for open in ["/health", "/v1/health"] {
        assert_eq!(d.get(open, None).await.status, 200, "{open}");
    }
    // Registration probes are open for the first five minutes.
    assert_eq!(d.get("/v1/capabilities", None).await.status, 200);
    let body = json!({"frame_b64": b64(&bus()), "task": "person_detection"});
    let (s, v) = post_json(&d, "/v1/infer", &body, None).await;
    assert_eq!(s, 401);
    let e = envelope_error(&v);
    assert_eq!(
        (e["category"].as_str(), e["code"].as_str()),
        (Some("permission_denied"), Some("auth_missing"))
    );
    let (s, v) = post_json(&d, "/v1/infer", &body, Some("s3cret")).await;
    assert_eq!(s, 401);
    assert_eq!(envelope_error(&v)["code"], "auth_invalid");
    assert_eq!(post_json(&d, "/v1/infer", &body, Some(token)).await.0, 200);
    // The root API and the metrics too.
    let root = json!({"task": "person_detection", "data": {"frame": {"b64": b64(&bus())}}});
    let (s, v) = post_json(&d, "/infer", &root, None).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "auth_missing");
    assert_eq!(post_json(&d, "/infer", &root, Some(token)).await.0, 200);
    assert_eq!(d.get("/metrics", None).await.status, 401);
    assert_eq!(d.get("/v1/metrics", Some(token)).await.status, 200);
    // (The stream's upgrade: `tests/daemon/compat/v1.rs`.)
    let h = get_json(&d, "/health").await;
    assert_eq!(h["auth"]["token_required"], true, "{h}");
    // Correlation ids come back.
    let r = d
        .send(
            request(Method::GET, "/v1/health")
                .header("x-correlation-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.header("x-correlation-id"), "abc-123");
}
