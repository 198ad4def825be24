//! The DeepStack / CodeProject.AI vision API (Frigate's `deepstack`
//! detector, Blue Iris, Home Assistant, Agent DVR): multipart `image`,
//! predictions best first with COCO labels and pixel corners.

use axum::http::Method;
use serde_json::Value;

use crate::common::fixture;
use crate::harness::{bearer, multipart, request, Ai, App};

fn photo(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap()
}

/// POST `path` with the `image` part (when given) and text `fields`.
async fn post(d: &Ai, path: &str, image: Option<&[u8]>, fields: &[(&str, &str)]) -> (u16, Value) {
    let files: Vec<(&str, &str, &[u8])> = image
        .map(|b| ("image", "image.jpg", b))
        .into_iter()
        .collect();
    let r = d.post_multipart(path, fields, &files).await;
    (r.status, r.json())
}

fn confidences(v: &Value) -> Vec<f64> {
    v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["confidence"].as_f64().unwrap())
        .collect()
}

/// Every prediction inside a `w` x `h` image, with integer corners.
fn assert_pixel_boxes(v: &Value, w: i64, h: i64) {
    for p in v["predictions"].as_array().unwrap() {
        let c = |k: &str| {
            p[k].as_i64()
                .unwrap_or_else(|| panic!("{k} not an integer: {p}"))
        };
        let (x0, y0, x1, y1) = (c("x_min"), c("y_min"), c("x_max"), c("y_max"));
        assert!(
            0 <= x0 && x0 < x1 && x1 <= w && 0 <= y0 && y0 < y1 && y1 <= h,
            "{p}"
        );
    }
}

#[tokio::test]
async fn detection_on_bus_jpg_answers_deepstacks_shape() {
    let d = Ai::start(&[]);
    let bus = photo("samples/bus.jpg");
    // Frigate sends its api_key field even when the server has none.
    let (s, v) = post(&d, "/v1/vision/detection", Some(&bus), &[("api_key", "")]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true);
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(v["count"].as_u64().unwrap() as usize, preds.len());
    let labels: Vec<&str> = preds.iter().map(|p| p["label"].as_str().unwrap()).collect();
    assert!(
        labels.iter().filter(|l| **l == "person").count() >= 3,
        "{labels:?}"
    );
    assert!(labels.contains(&"bus"), "{labels:?}");
    let c = confidences(&v);
    assert!(c.windows(2).all(|w| w[0] >= w[1]), "not best first: {c:?}");
    assert!(c.iter().all(|c| *c >= 0.4), "default min_confidence: {c:?}");
    assert_pixel_boxes(&v, 810, 1080);
    assert!(v["inferenceMs"].is_u64() && v["processMs"].is_u64(), "{v}");
    assert!(v["processMs"].as_u64() >= v["inferenceMs"].as_u64());

    // min_confidence filters.
    let (_, strict) = post(
        &d,
        "/v1/vision/detection",
        Some(&bus),
        &[("min_confidence", "0.8")],
    )
    .await;
    let cs = confidences(&strict);
    assert!(cs.len() < c.len() && cs.iter().all(|c| *c >= 0.8), "{cs:?}");

    // Errors in DeepStack's shape.
    let (s, v) = post(
        &d,
        "/v1/vision/detection",
        None,
        &[("min_confidence", "0.5")],
    )
    .await;
    assert_eq!((s, &v["success"]), (400, &Value::Bool(false)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("image"), "{v}");
    let (s, v) = post(&d, "/v1/vision/detection", Some(&bus), &[("colour", "red")]).await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
    let (s, v) = post(&d, "/v1/vision/detection", Some(b"nope"), &[]).await;
    assert_eq!((s, &v["success"]), (415, &Value::Bool(false)), "{v}");
}

#[tokio::test]
async fn face_finds_the_astronauts_face_and_api_key_is_checked_with_a_token() {
    let d = Ai::start(&[("OPENNVR_ADAPTER_TOKEN", "k3y")]);
    let face = photo("samples/astronaut.png");
    let (s, v) = post(&d, "/v1/vision/face", Some(&face), &[("api_key", "k3y")]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["count"], 1, "{v}");
    let p = &v["predictions"][0];
    assert_eq!(p["label"], "face");
    assert!(p["confidence"].as_f64().unwrap() > 0.5, "{p}");
    assert_pixel_boxes(&v, 512, 512);
    // Wrong or missing key: 401 in DeepStack's shape; a bearer header works too.
    let (s, v) = post(&d, "/v1/vision/face", Some(&face), &[("api_key", "nope")]).await;
    assert_eq!((s, &v["success"]), (401, &Value::Bool(false)), "{v}");
    assert_eq!(
        post(&d, "/v1/vision/detection", Some(&face), &[]).await.0,
        401
    );
    let rb = bearer(request(Method::POST, "/v1/vision/detection"), "k3y");
    let r = d
        .send(multipart(rb, &[], &[("image", "image.jpg", &face)]))
        .await;
    assert_eq!(r.status, 200);
}
