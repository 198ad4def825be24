//! The real detector on real photos and footage, in-process on port 9100's router.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{fixture, temp_dir, vtest_frames};
use crate::harness::{Ai, App};

const PERSON_JPG: &str = "/usr/share/darknet/data/person.jpg";
const FRUITS_JPG: &str = "/usr/share/doc/opencv-doc/examples/data/fruits.jpg";

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

async fn infer(d: &Ai, body: Value) -> Value {
    let (status, v) = crate::harness::infer(d, &body).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn labels(v: &Value) -> Vec<String> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn counts_people_on_real_photos() {
    let d = Ai::start(&[]);
    let bus = infer(
        &d,
        json!({"task": "person_counting", "data": {"frame": {"b64": b64(&fixture("samples/bus.jpg"))}}}),
    ).await;
    let n = bus["count"].as_u64().unwrap();
    assert!(n >= 3, "bus.jpg: {bus}");
    assert_eq!(n as usize, bus["detections"].as_array().unwrap().len());
    assert_eq!(bus["task"], "person_counting");
    assert!(bus["model_id"].as_str().unwrap().starts_with("yolov4-tiny"));
    // Epoch milliseconds, as upstream's response models have it.
    assert!(
        bus["executed_at"].as_i64().unwrap() > 1_600_000_000_000,
        "{bus}"
    );
    for det in bus["detections"].as_array().unwrap() {
        let b: Vec<i64> = det["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert!(b[0] >= 0 && b[1] >= 0 && b[2] > 0 && b[3] > 0, "{det}");
        assert!(
            b[0] + b[2] <= 810 && b[1] + b[3] <= 1080,
            "box outside bus.jpg: {det}"
        );
        assert!(det["track_id"].is_u64(), "{det}");
    }

    // `input` is accepted as upstream OpenNVR's synonym of `data`.
    let person = infer(
        &d,
        json!({"task": "person_counting", "input": {"frame": {"b64": b64(&fixture(PERSON_JPG))}}}),
    )
    .await;
    assert_eq!(person["count"], 1, "person.jpg: {person}");

    let objects = infer(
        &d,
        json!({"task": "object_detection", "data": {"frame": {"b64": b64(&fixture(PERSON_JPG))}}}),
    )
    .await;
    let l = labels(&objects);
    for want in ["person", "dog", "horse"] {
        assert!(l.iter().any(|x| x == want), "no {want} in {l:?}");
    }
    let only_dogs = infer(
        &d,
        json!({"task": "object_detection", "data": {"frame": {"b64": b64(&fixture(PERSON_JPG))}},
               "params": {"classes": ["dog"]}}),
    )
    .await;
    assert_eq!(labels(&only_dogs), vec!["dog"]);

    let nobody = infer(
        &d,
        json!({"task": "person_detection", "data": {"frame": {"b64": b64(&fixture(FRUITS_JPG))}}}),
    )
    .await;
    assert_eq!(nobody["count"], 0, "fruits.jpg: {nobody}");
    assert_eq!(nobody["detections"], json!([]));

    // The model is loaded once and counted in /health.
    let h = d.get("/health", None).await.json();
    let m = &h["models"]["yolov4-tiny-416"];
    assert_eq!(m["loaded"], true, "{h}");
    assert_eq!(m["inferences"], 5, "{h}");
    // setup.sh installs the pinned onnxruntime, so `cpu_runtime = "auto"` runs on it.
    assert_eq!(m["backend"], "onnxruntime-cpu");
}

/// Two consecutive frames of a street camera: the same people keep their ids.
#[tokio::test]
async fn track_ids_persist_across_consecutive_vtest_frames() {
    let frames = temp_dir("frames");
    vtest_frames(&frames.join("street"), 40, 41);
    let d = Ai::start(&[("OPENNVR_FRAMES_DIR", frames.to_str().unwrap())]);
    let run = |file: &str, ts: i64| {
        infer(
            &d,
            json!({"task": "person_counting",
                   "data": {"frame": {"uri": format!("opennvr://frames/street/{file}"), "timestamp_ms": ts}}}),
        )
    };
    let a = run("f1.jpg", 1_000).await;
    let b = run("f2.jpg", 1_100).await;
    let dets = |v: &Value| -> Vec<([f32; 4], u64)> {
        v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let b: Vec<f32> = d["bbox"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect();
                (
                    [b[0], b[1], b[0] + b[2], b[1] + b[3]],
                    d["track_id"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (da, db) = (dets(&a), dets(&b));
    assert!(da.len() >= 2, "expected pedestrians in vtest frame: {a}");
    let mut ids_a: Vec<u64> = da.iter().map(|x| x.1).collect();
    ids_a.sort();
    ids_a.dedup();
    assert_eq!(ids_a.len(), da.len(), "ids unique within a frame");
    let mut same = 0;
    for (ba, ia) in &da {
        if let Some((_, ib)) = db
            .iter()
            .find(|(bb, _)| opennvr_edge::ai::nms::iou(ba, bb) > 0.6)
        {
            assert_eq!(
                ia, ib,
                "the same pedestrian changed id between consecutive frames"
            );
            same += 1;
        }
    }
    assert!(
        same >= 2,
        "too few pedestrians matched across frames: {a} / {b}"
    );
    // A different camera has its own id space.
    let other = infer(
        &d,
        json!({"task": "person_counting",
               "data": {"camera_id": "other", "frame": {"uri": "opennvr://frames/street/f1.jpg"}}}),
    )
    .await;
    let min_other = dets(&other).iter().map(|x| x.1).min().unwrap();
    assert_eq!(min_other, 1);
}

#[tokio::test]
async fn multipart_upload_and_pipeline_decode_once() {
    let d = Ai::start(&[]);
    let photo = std::fs::read(fixture(PERSON_JPG)).unwrap();
    let r = d
        .post_multipart(
            "/infer",
            &[("task", "person_detection")],
            &[("frame", "person.jpg", &photo)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["count"], 1, "{v}");

    let r = d
        .post_json(
            "/pipeline/run",
            None,
            &json!({"steps": ["person_detection", "object_detection"],
                    "data": {"frame": {"b64": b64(&fixture(PERSON_JPG))}}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "success");
    assert_eq!(v["results"]["person_detection"]["count"], 1);
    assert!(v["results"]["object_detection"]["count"].as_u64().unwrap() >= 3);
}
