//! face_detection on real photos with the real CenterFace, age and gender
//! models, in-process on port 9100's router (the `infer` CLI's face dump:
//! tests/daemon/cli.rs).

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{fixture, models_dir, temp_dir};
use crate::harness::{Ai, App};

const PERSON_JPG: &str = "/usr/share/darknet/data/person.jpg";

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

async fn post(d: &Ai, path: &str, body: Value) -> (u16, Value) {
    let r = d.post_json(path, None, &body).await;
    (r.status, r.json())
}

async fn faces(d: &Ai, image: &Path, params: Value) -> Value {
    let (status, v) = post(
        d,
        "/infer",
        json!({"task": "face_detection", "data": {"frame": {"b64": b64(image)}}, "params": params}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["task"], "face_detection");
    assert_eq!(
        v["face_count"].as_u64().unwrap() as usize,
        v["faces"].as_array().unwrap().len(),
        "{v}"
    );
    v
}

async fn get(d: &Ai, path: &str) -> Value {
    d.get(path, None).await.json()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Box inside the image, landmarks inside the box, in a face's order:
/// eyes left to right and above the nose, the nose above the mouth.
fn assert_plausible_face(f: &Value, w: f64, h: f64) {
    let b = nums(&f["bbox"]);
    assert!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= w && b[3] <= h, "{f}");
    assert!(b[2] - b[0] >= 8.0 && b[3] - b[1] >= 8.0, "{f}");
    let c = f["confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&c), "{f}");
    let lm: Vec<Vec<f64>> = f["landmarks"]
        .as_array()
        .unwrap()
        .iter()
        .map(nums)
        .collect();
    assert_eq!(lm.len(), 5);
    for p in &lm {
        let inside =
            p[0] >= b[0] - 1.0 && p[0] <= b[2] + 1.0 && p[1] >= b[1] - 1.0 && p[1] <= b[3] + 1.0;
        assert!(inside, "landmark {p:?} outside its box: {f}");
    }
    let (le, re, nose, ml, mr) = (&lm[0], &lm[1], &lm[2], &lm[3], &lm[4]);
    assert!(le[0] < re[0] && ml[0] < mr[0], "left/right order: {f}");
    assert!(le[1].max(re[1]) < nose[1], "eyes above the nose: {f}");
    assert!(nose[1] < ml[1].min(mr[1]), "nose above the mouth: {f}");
}

#[tokio::test]
async fn faces_age_and_gender_on_real_photos() {
    let d = Ai::start(&[]);

    // zidane.jpg (1280x720): two men.
    let z = faces(&d, &fixture("samples/zidane.jpg"), json!({})).await;
    assert_eq!(z["face_count"], 2, "{z}");
    for f in z["faces"].as_array().unwrap() {
        assert_plausible_face(f, 1280.0, 720.0);
        assert_eq!(f["gender"], "M", "{f}");
        assert!(f["gender_confidence"].as_f64().unwrap() > 0.5, "{f}");
        let age = f["age"].as_u64().expect("age in whole years");
        assert!((20..=75).contains(&age), "adult men: {f}");
    }
    assert!(
        z["model_id"] == "centerface" && z["executed_at"].as_i64().unwrap() > 1_600_000_000_000
    );

    // astronaut.png (512x512): one woman.
    let a = faces(&d, &fixture("samples/astronaut.png"), json!({})).await;
    assert_eq!(a["face_count"], 1, "{a}");
    let f = &a["faces"][0];
    assert_plausible_face(f, 512.0, 512.0);
    assert_eq!(f["gender"], "F", "{f}");
    let age = f["age"].as_f64().unwrap();
    assert!((20.0..=65.0).contains(&age), "an adult: {f}");

    // person.jpg: a person seen from behind, with a dog and a horse: no face.
    let p = faces(&d, &fixture(PERSON_JPG), json!({})).await;
    assert_eq!(p["face_count"], 0, "{p}");
    assert_eq!(p["faces"], json!([]));

    // Each network loaded once; attributes ran once per frame with faces.
    let h = get(&d, "/health").await;
    assert_eq!(h["models"]["centerface"]["inferences"], 3, "{h}");
    assert_eq!(h["models"]["age-v1"]["inferences"], 2, "{h}");
    assert_eq!(h["models"]["gender-v1"]["inferences"], 2, "{h}");
    assert_eq!(h["models"]["yolov4-tiny-416"]["loaded"], false, "{h}");
}

#[tokio::test]
async fn params_shape_the_answer() {
    let d = Ai::start(&[]);
    let zidane = fixture("samples/zidane.jpg");

    // attributes: false skips age and gender and never loads their models.
    let v = faces(&d, &zidane, json!({"attributes": false})).await;
    assert_eq!(v["face_count"], 2, "{v}");
    for f in v["faces"].as_array().unwrap() {
        assert!(f.get("age").is_none() && f.get("gender").is_none(), "{f}");
    }
    let ad = get(&d, "/adapters").await;
    let loaded = |id: &str| {
        ad["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no adapter {id}: {ad}"))["loaded"]
            .clone()
    };
    assert_eq!(loaded("centerface"), true);
    assert_eq!(loaded("age-v1"), false);

    // max_faces keeps the best face.
    let all = faces(&d, &zidane, json!({})).await;
    let one = faces(&d, &zidane, json!({"max_faces": 1})).await;
    assert_eq!(one["face_count"], 1);
    let best = all["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["confidence"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(one["faces"][0]["confidence"].as_f64().unwrap(), best);
    assert_eq!(one["faces"][0]["age"], all["faces"][0]["age"]);

    // min_confidence above the weaker face drops it.
    let weakest = all["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["confidence"].as_f64().unwrap())
        .fold(1.0, f64::min);
    let strict = faces(
        &d,
        &zidane,
        json!({"min_confidence": (weakest + best) / 2.0}),
    )
    .await;
    assert_eq!(strict["face_count"], 1, "{strict}");

    for bad in [
        json!({"max_faces": 0}),
        json!({"max_faces": 100000}),
        json!({"min_confidence": 1.5}),
        json!({"attributes": "yes"}),
        json!({"max_face": 3}),
    ] {
        let (status, v) = post(
            &d,
            "/infer",
            json!({"task": "face_detection", "data": {"frame": {"b64": b64(&zidane)}}, "params": bad}),
        ).await;
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }
    // A model of the wrong kind is refused, not run.
    let (status, v) = post(
        &d,
        "/infer",
        json!({"task": "person_detection", "data": {"frame": {"b64": b64(&zidane)}},
               "params": {"model": "centerface"}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn discovery_and_pipeline_include_faces() {
    let d = Ai::start(&[]);
    let caps = get(&d, "/capabilities").await;
    assert!(
        caps["tasks"]
            .as_array()
            .unwrap()
            .contains(&json!("face_detection")),
        "{caps}"
    );
    let ad = get(&d, "/adapters").await;
    let face = ad["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "centerface")
        .cloned()
        .unwrap();
    assert_eq!(face["tasks"], json!(["face_detection"]));
    assert_eq!(face["kind"], "centerface");
    let s = get(&d, "/schema?task=face_detection").await;
    assert_eq!(
        s["response"]["properties"]["task"]["const"],
        "face_detection"
    );
    assert!(s["request"]["properties"]["params"]["properties"]["max_faces"].is_object());

    let (status, v) = post(
        &d,
        "/pipeline/run",
        json!({"steps": ["person_detection", "face_detection"],
               "data": {"frame": {"b64": b64(&fixture("samples/zidane.jpg"))}},
               "params": {"max_faces": 5}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["results"]["person_detection"]["count"].as_u64().unwrap() >= 2,
        "{v}"
    );
    assert_eq!(v["results"]["face_detection"]["face_count"], 2, "{v}");

    // Without the face model the task is not offered and answers 503.
    let dir = temp_dir("noface");
    let src = models_dir();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let d2 = Ai::start(&[("OPENNVR_MODELS_DIR", dir.to_str().unwrap())]);
    let caps = get(&d2, "/capabilities").await;
    assert_eq!(caps["tasks"], json!([]), "{caps}");
    let (status, v) = post(
        &d2,
        "/infer",
        json!({"task": "face_detection", "data": {"frame": {"b64": b64(&fixture(PERSON_JPG))}}}),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "task_unavailable");
}

/// Our class weights are the ones the age-and-gender package ships.
#[test]
fn age_weights_match_the_package_manifest() {
    let m: Value =
        serde_json::from_slice(&std::fs::read(fixture("age_and_gender.manifest.json")).unwrap())
            .unwrap();
    let w = nums(&m["models"]["age"]["age_weights"]);
    assert_eq!(w.len(), opennvr_edge::ai::faces::AGE_CLASSES);
    for (i, v) in w.iter().enumerate() {
        assert_eq!(
            *v as f32,
            opennvr_edge::ai::faces::age_of_class(i),
            "class {i}"
        );
    }
    assert_eq!(m["preprocessing"]["face_chip_padding"], 0.2);
    assert_eq!(opennvr_edge::ai::align::CHIP_PADDING, 0.2);
}
