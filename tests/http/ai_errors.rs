//! Bad input gets a clear 4xx in one JSON shape, and the adapter keeps
//! serving; in-process on port 9100's router.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{fixture, temp_dir};
use crate::harness::{Ai, App};

const PERSON_JPG: &str = "/usr/share/darknet/data/person.jpg";

async fn post_raw(d: &Ai, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = d.post_raw(path, "application/json", body).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn post(d: &Ai, body: Value) -> (u16, Value) {
    post_raw(d, "/infer", serde_json::to_vec(&body).unwrap()).await
}

fn assert_error(got: (u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(got.1["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn frame_paths_cannot_escape_the_frames_dir() {
    let base = temp_dir("escape");
    let frames = base.join("frames");
    std::fs::create_dir_all(frames.join("cam")).unwrap();
    let secret = base.join("secret.jpg");
    std::fs::copy(fixture(PERSON_JPG), &secret).unwrap();
    std::fs::copy(fixture(PERSON_JPG), frames.join("cam/ok.jpg")).unwrap();
    std::os::unix::fs::symlink(&secret, frames.join("cam/link.jpg")).unwrap();
    let d = Ai::start(&[("OPENNVR_FRAMES_DIR", frames.to_str().unwrap())]);
    let uri = |u: &str| json!({"task": "person_detection", "data": {"frame": {"uri": u}}});
    for bad in [
        "opennvr://frames/cam/../../secret.jpg",
        "opennvr://frames/../secret.jpg",
        "opennvr://frames/cam/%2e%2e/%2e%2e/secret.jpg",
        "opennvr://frames/cam/..%2F..%2Fsecret.jpg",
        "opennvr://frames/cam/link.jpg",
        "opennvr://frames//etc/passwd",
    ] {
        assert_error(post(&d, uri(bad)).await, 403, "forbidden_path");
    }
    assert_error(post(&d, uri("/etc/passwd")).await, 400, "bad_request");
    assert_error(
        post(&d, uri("file:///etc/passwd")).await,
        400,
        "bad_request",
    );
    assert_error(
        post(&d, uri("opennvr://frames/cam/missing.jpg")).await,
        404,
        "frame_not_found",
    );
    // The legitimate frame still works afterwards.
    let (s, v) = post(&d, uri("opennvr://frames/cam/ok.jpg")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["count"], 1);
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let d = Ai::start(&[]);
    let good = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(fixture(PERSON_JPG)).unwrap());
    let jpeg = std::fs::read(fixture(PERSON_JPG)).unwrap();
    let broken = base64::engine::general_purpose::STANDARD.encode(&jpeg[..jpeg.len() / 3]);
    let text = base64::engine::general_purpose::STANDARD.encode(b"this is not an image at all");
    let frame = |b: &str| json!({"frame": {"b64": b}});

    assert_error(
        post_raw(&d, "/infer", b"{not json".to_vec()).await,
        400,
        "bad_request",
    );
    assert_error(post_raw(&d, "/infer", Vec::new()).await, 400, "bad_request");
    assert_error(
        post(&d, json!({"data": frame(&good)})).await,
        400,
        "bad_request",
    );
    assert_error(
        post(&d, json!({"task": 7, "data": frame(&good)})).await,
        400,
        "bad_request",
    );
    assert_error(
        post(&d, json!({"task": "person_counting"})).await,
        400,
        "bad_request",
    );
    assert_error(
        post(&d, json!({"task": "person_counting", "data": frame("%%%")})).await,
        400,
        "bad_request",
    );
    assert_error(
        post(
            &d,
            json!({"task": "person_counting", "data": frame(&good), "params": {"confidence": 2}}),
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        post(
            &d,
            json!({"task": "person_counting", "data": frame(&good), "params": {"bogus": 1}}),
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        post(&d, json!({"task": "mind_reading", "data": frame(&good)})).await,
        422,
        "unknown_task",
    );
    assert_error(
        post(
            &d,
            json!({"task": "person_counting", "data": frame(&broken)}),
        )
        .await,
        422,
        "undecodable_image",
    );
    assert_error(
        post(&d, json!({"task": "person_counting", "data": frame(&text)})).await,
        415,
        "unsupported_media",
    );
    assert_error(
        post(
            &d,
            json!({"task": "person_counting", "data": frame(&good), "params": {"model": "nope"}}),
        )
        .await,
        422,
        "unknown_model",
    );
    // 17 MiB body: over the 16 MiB default.
    let huge = format!(
        r#"{{"task":"person_counting","data":{{"frame":{{"b64":"{}"}}}}}}"#,
        "A".repeat(17 << 20)
    );
    assert_error(
        post_raw(&d, "/infer", huge.into_bytes()).await,
        413,
        "payload_too_large",
    );

    // Pipelines: an unknown step is refused before anything runs.
    let (s, v) = post_raw(
        &d,
        "/pipeline/run",
        serde_json::to_vec(
            &json!({"steps": ["person_detection", "levitation"], "data": frame(&good)}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["status"], "error");
    assert_eq!(v["failed_at"], "levitation");
    assert_eq!(v["partial_results"], json!({}));
    // A step failing at run time keeps the results before it.
    let (s, v) = post_raw(
        &d,
        "/pipeline/run",
        serde_json::to_vec(&json!({"steps": ["person_detection"], "data": frame(&good), "params": {"model": "nope"}}))
            .unwrap(),
    ).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["failed_at"], "person_detection");
    assert_error(
        post_raw(&d, "/pipeline/run", b"[]".to_vec()).await,
        400,
        "bad_request",
    );

    // Unknown routes and methods.
    assert_eq!(d.get("/nope", None).await.status, 404);
    let r = d.get("/infer", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "method_not_allowed");

    // Still serving, and nothing was counted as an inference.
    let h = d.get("/health", None).await.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["models"]["yolov4-tiny-416"]["inferences"], 0, "{h}");
}

#[tokio::test]
async fn discovery_endpoints_describe_the_box() {
    let d = Ai::start(&[]);
    let caps = d.get("/capabilities", None).await.json();
    assert_eq!(
        caps["tasks"],
        json!([
            "person_counting",
            "person_detection",
            "object_detection",
            "face_detection",
            "scene_description"
        ])
    );
    let ad = d.get("/adapters", None).await.json();
    let ids: Vec<&str> = ad["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"yolov4-tiny-416") && ids.contains(&"yolov4-tiny-320"),
        "{ad}"
    );
    assert!(
        ad["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["loaded"] == false),
        "lazy loading: {ad}"
    );
    let h = d.get("/health", None).await.json();
    let hw = &h["hardware"];
    assert!(hw["ram_total_gb"].as_f64().unwrap() > 0.0);
    assert!(hw["cpu_cores"].as_u64().unwrap() >= 1);
    assert!(hw.get("gpu_device").is_some() && hw.get("vram_total_gb").is_some());
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    let s = d.get("/schema?task=person_counting", None).await.json();
    assert_eq!(
        s["response"]["properties"]["task"]["const"],
        "person_counting"
    );
    assert_eq!(d.get("/schema?task=nope", None).await.status, 404);
    // Without a task: every task's, keyed by name (what upstream's UI asks for).
    let all = d.get("/schema", None).await.json();
    assert_eq!(
        all["schemas"]["face_detection"]["response"]["properties"]["task"]["const"],
        "face_detection"
    );

    // Without models the daemon still serves, with no tasks.
    let empty = temp_dir("nomodels");
    let d2 = Ai::start(&[("OPENNVR_MODELS_DIR", empty.to_str().unwrap())]);
    let caps = d2.get("/capabilities", None).await.json();
    assert_eq!(caps["tasks"], json!([]));
}
