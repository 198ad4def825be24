//! Port 9100 at the root, as OpenNVR's legacy clients speak it: KAI-C's
//! connector and the web UI send `{task, input: {frame: {uri}, params}}`,
//! upstream's legacy adapters read options straight from `input` and spell
//! `confidence` as `confidence_threshold`; the backend stores the flat
//! `{label, confidence, bbox, count}` of `person_detection`; the UI asks
//! `/schema` without a task and reads `.schemas`; FastAPI clients read an
//! error's `.detail`.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::fixture;
use crate::harness::{Ai, App};

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

async fn post(d: &Ai, path: &str, body: &Value) -> (u16, Value) {
    let r = d.post_json(path, None, body).await;
    (r.status, r.json())
}

async fn ok(d: &Ai, body: Value) -> Value {
    let (s, v) = post(d, "/infer", &body).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// A 400 whose message and `detail` both name every one of `names`.
async fn refused(d: &Ai, body: Value, names: &[&str]) {
    let (s, v) = post(d, "/infer", &body).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    let (msg, detail) = (
        v["error"]["message"].as_str().unwrap(),
        v["detail"].as_str().unwrap(),
    );
    assert_eq!(msg, detail);
    for n in names {
        assert!(msg.contains(n), "{n} not named in {msg:?}");
    }
}

fn bboxes(v: &Value) -> Vec<Value> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["bbox"].clone())
        .collect()
}

/// GET `path`, its body as JSON whatever the status.
async fn get_json(d: &Ai, path: &str) -> Value {
    d.get(path, None).await.json()
}

#[tokio::test]
async fn options_are_read_wherever_upstream_clients_put_them() {
    let frames = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(frames.path().join("camera_0")).unwrap();
    std::fs::copy(
        fixture("samples/bus.jpg"),
        frames.path().join("camera_0/latest.jpg"),
    )
    .unwrap();
    let d = Ai::start(&[("OPENNVR_FRAMES_DIR", frames.path().to_str().unwrap())]);
    // The web UI's request for camera 0: a frame URI, options in input.params.
    let ui = |params: Value| {
        json!({"task": "person_detection",
               "input": {"frame": {"uri": "opennvr://frames/camera_0/latest.jpg"}, "params": params}})
    };
    let all = ok(&d, ui(json!({}))).await;
    let n = all["count"].as_u64().unwrap();
    assert!(n >= 3, "bus.jpg has at least three people: {all}");

    // What the backend stores: the best detection, flat at the top level.
    let best = all["detections"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["confidence"]
                .as_f64()
                .partial_cmp(&b["confidence"].as_f64())
                .unwrap()
        })
        .unwrap();
    assert_eq!(all["label"], "person");
    assert_eq!(all["confidence"], best["confidence"]);
    assert_eq!(all["bbox"], best["bbox"]);
    assert!(
        all["executed_at"].as_i64().unwrap() > 1_600_000_000_000,
        "{all}"
    );

    // input.params.confidence changes the answer (it was silently ignored).
    let strict = ok(&d, ui(json!({"confidence": 0.99}))).await;
    let m = strict["count"].as_u64().unwrap();
    assert!(m < n, "confidence 0.99 kept {m} of {n}: {strict}");
    // KAI-C's spelling, the legacy placement straight in `input`, `data.params`
    // and the spec's top-level params all mean the same.
    for body in [
        ui(json!({"confidence_threshold": 0.99})),
        json!({"task": "person_detection",
               "input": {"frame": {"uri": "opennvr://frames/camera_0/latest.jpg"},
                         "confidence_threshold": 0.99}}),
        json!({"task": "person_detection",
               "data": {"frame": {"b64": b64(&fixture("samples/bus.jpg"))},
                        "params": {"confidence": 0.99}}}),
        json!({"task": "person_detection", "params": {"confidence": 0.99},
               "input": {"frame": {"uri": "opennvr://frames/camera_0/latest.jpg"},
                         "params": {"confidence_threshold": 0.99}}}),
    ] {
        let v = ok(&d, body.clone()).await;
        assert_eq!(bboxes(&v), bboxes(&strict), "{body}");
    }
    // Nothing found: confidence 0 and no box, the list empty.
    let none = ok(&d, ui(json!({"confidence": 1.0}))).await;
    assert_eq!(
        (none["count"].as_u64(), none["confidence"].as_f64()),
        (Some(0), Some(0.0))
    );
    assert!(none.get("bbox").is_none(), "{none}");

    // Unknown keys are named, wherever they are; conflicting values too.
    refused(
        &d,
        ui(json!({"confidense": 0.5, "zoom": 2})),
        &["input.params.confidense", "input.params.zoom"],
    )
    .await;
    refused(
        &d,
        json!({"task": "person_detection",
               "input": {"frame": {"uri": "opennvr://frames/camera_0/latest.jpg"}, "colour": "red"}}),
        &["input.colour"],
    )
    .await;
    refused(
        &d,
        json!({"task": "person_detection", "params": {"confidence": 0.5},
               "input": {"frame": {"uri": "opennvr://frames/camera_0/latest.jpg"},
                         "params": {"confidence_threshold": 0.9}}}),
        &["params.confidence", "input.params.confidence_threshold"],
    )
    .await;
    refused(
        &d,
        json!({"task": "person_detection", "data": {"frame": {"uri": "x"}},
               "input": {"frame": {"uri": "y"}}}),
        &["data", "input"],
    )
    .await;
    refused(
        &d,
        json!({"task": "person_detection", "parms": {}, "input": {}}),
        &["parms"],
    )
    .await;
    // Legacy endpoint tests: a body without `task` is a 400.
    let (s, _) = post(
        &d,
        "/infer",
        &json!({"data": {"frame": {"uri": "opennvr://frames/camera_0/latest.jpg"}}}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn discovery_routes_and_error_detail() {
    let d = Ai::start(&[]);
    // The UI's "all schemas" call reads `.schemas`, keyed by task.
    let all = get_json(&d, "/schema").await;
    let schemas = all["schemas"].as_object().expect("schemas");
    for task in [
        "person_counting",
        "person_detection",
        "object_detection",
        "face_detection",
        "scene_description",
    ] {
        let s = &schemas[task];
        assert_eq!(s["response"]["properties"]["task"]["const"], task);
        // The UI's AIAdapterSchema: task, description, response_fields.
        assert_eq!(s["task"], task);
        assert!(s["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(s["response_fields"], s["response"]["properties"]);
        let p = &s["request"]["properties"];
        assert!(
            p["input"]["properties"]["params"]["properties"]["confidence_threshold"].is_object()
        );
    }
    assert_eq!(
        schemas["face_detection"]["response"]["properties"]["executed_at"]["type"],
        "integer"
    );
    let r = d.get("/schema?task=speech_to_text", None).await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["error"]["code"], "unknown_task");
    assert!(
        v["detail"].as_str().unwrap().contains("speech_to_text"),
        "{v}"
    );

    // Upstream's /tasks: every task with its model and whether it can run.
    let t = get_json(&d, "/tasks").await;
    let list = t["tasks"].as_array().unwrap();
    assert_eq!(t["count"].as_u64(), Some(list.len() as u64));
    let pd = list
        .iter()
        .find(|x| x["task"] == "person_detection")
        .unwrap();
    assert_eq!(pd["enabled"], true, "{t}");
    assert!(
        pd["adapter"].as_str().unwrap().starts_with("yolov4-tiny"),
        "{t}"
    );
    assert_eq!(pd["model_loaded"], false, "models load on first use: {t}");
    let fd = list.iter().find(|x| x["task"] == "face_detection").unwrap();
    assert!(
        fd["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "centerface"),
        "{t}"
    );
    assert!(fd["description"].as_str().is_some_and(|s| !s.is_empty()));

    // The UI's health check wants status "ok"; capabilities lists tasks.
    assert_eq!(get_json(&d, "/health").await["status"], "ok");
    assert!(
        get_json(&d, "/capabilities").await["tasks"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    // Every error carries `detail`, unknown routes and wrong methods too.
    for (r, status) in [
        (d.get("/faces/list", None).await, 404),
        (d.get("/infer", None).await, 405),
    ] {
        assert_eq!(r.status, status);
        let v = r.json();
        assert_eq!(v["detail"], v["error"]["message"], "{v}");
    }
}

#[tokio::test]
async fn faces_and_pipelines_in_the_spec_types() {
    let d = Ai::start(&[]);
    let frame = json!({"frame": {"b64": b64(&fixture("samples/zidane.jpg"))}});
    let v = ok(&d, json!({"task": "face_detection", "input": frame})).await;
    assert_eq!(v["face_count"], 2, "{v}");
    assert!(v["executed_at"].is_i64(), "{v}");
    for f in v["faces"].as_array().unwrap() {
        assert!(f["age"].is_u64(), "age in whole years: {f}");
        let lm = f["landmarks"].as_array().unwrap();
        assert_eq!(lm.len(), 5);
        for p in lm {
            let p = p.as_array().unwrap();
            assert!(
                p.len() == 2 && p.iter().all(Value::is_i64),
                "integer pixels: {f}"
            );
        }
    }
    // The same shapes inside a pipeline, options read from input.params.
    let (s, p) = post(
        &d,
        "/pipeline/run",
        &json!({"steps": ["person_detection", "face_detection"], "input": frame}),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let r = &p["results"];
    assert_eq!(r["face_detection"]["faces"], v["faces"]);
    assert_eq!(r["person_detection"]["label"], "person");
    assert!(r["person_detection"]["executed_at"].is_i64());
    assert!(r["person_detection"]["bbox"].is_array(), "{p}");
    let (s, p) = post(
        &d,
        "/pipeline/run",
        &json!({"steps": ["face_detection"], "input": {"frame": frame["frame"], "params": {"max_faces": 1}}}),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["results"]["face_detection"]["face_count"], 1);
    // A failing pipeline's body carries `detail` too.
    let (s, p) = post(
        &d,
        "/pipeline/run",
        &json!({"steps": ["person_detection"], "input": frame, "params": {"model": "nope"}}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["detail"], p["error"]["message"], "{p}");
}
