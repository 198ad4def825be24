//! face_detection on real photos with the real CenterFace, age and gender
//! models, over real HTTP (and the `infer` CLI).

mod common;

use std::path::Path;

use base64::Engine as _;
use common::{client, fixture, models_dir, temp_dir, Daemon};
use serde_json::{json, Value};

const PERSON_JPG: &str = "/usr/share/darknet/data/person.jpg";

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let r = client().post(d.ai_url(path)).json(&body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap())
}

fn faces(d: &Daemon, image: &Path, params: Value) -> Value {
    let (status, v) = post(
        d,
        "/infer",
        json!({"task": "face_detection", "data": {"frame": {"b64": b64(image)}}, "params": params}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["task"], "face_detection");
    assert_eq!(
        v["face_count"].as_u64().unwrap() as usize,
        v["faces"].as_array().unwrap().len(),
        "{v}"
    );
    v
}

fn get(d: &Daemon, path: &str) -> Value {
    client().get(d.ai_url(path)).send().unwrap().json().unwrap()
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

#[test]
fn faces_age_and_gender_on_real_photos() {
    let d = Daemon::start(&[]);

    // zidane.jpg (1280x720): two men.
    let z = faces(&d, &fixture("samples/zidane.jpg"), json!({}));
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
    let a = faces(&d, &fixture("samples/astronaut.png"), json!({}));
    assert_eq!(a["face_count"], 1, "{a}");
    let f = &a["faces"][0];
    assert_plausible_face(f, 512.0, 512.0);
    assert_eq!(f["gender"], "F", "{f}");
    let age = f["age"].as_f64().unwrap();
    assert!((20.0..=65.0).contains(&age), "an adult: {f}");

    // person.jpg: a person seen from behind, with a dog and a horse: no face.
    let p = faces(&d, &fixture(PERSON_JPG), json!({}));
    assert_eq!(p["face_count"], 0, "{p}");
    assert_eq!(p["faces"], json!([]));

    // Each network loaded once; attributes ran once per frame with faces.
    let h = get(&d, "/health");
    assert_eq!(h["models"]["centerface"]["inferences"], 3, "{h}");
    assert_eq!(h["models"]["age-v1"]["inferences"], 2, "{h}");
    assert_eq!(h["models"]["gender-v1"]["inferences"], 2, "{h}");
    assert_eq!(h["models"]["yolov4-tiny-416"]["loaded"], false, "{h}");
}

#[test]
fn params_shape_the_answer() {
    let d = Daemon::start(&[]);
    let zidane = fixture("samples/zidane.jpg");

    // attributes: false skips age and gender and never loads their models.
    let v = faces(&d, &zidane, json!({"attributes": false}));
    assert_eq!(v["face_count"], 2, "{v}");
    for f in v["faces"].as_array().unwrap() {
        assert!(f.get("age").is_none() && f.get("gender").is_none(), "{f}");
    }
    let ad = get(&d, "/adapters");
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
    let all = faces(&d, &zidane, json!({}));
    let one = faces(&d, &zidane, json!({"max_faces": 1}));
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
    );
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
        );
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }
    // A model of the wrong kind is refused, not run.
    let (status, v) = post(
        &d,
        "/infer",
        json!({"task": "person_detection", "data": {"frame": {"b64": b64(&zidane)}},
               "params": {"model": "centerface"}}),
    );
    assert_eq!(status, 400, "{v}");
}

#[test]
fn discovery_and_pipeline_include_faces() {
    let d = Daemon::start(&[]);
    let caps = get(&d, "/capabilities");
    assert!(
        caps["tasks"]
            .as_array()
            .unwrap()
            .contains(&json!("face_detection")),
        "{caps}"
    );
    let ad = get(&d, "/adapters");
    let face = ad["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "centerface")
        .cloned()
        .unwrap();
    assert_eq!(face["tasks"], json!(["face_detection"]));
    assert_eq!(face["kind"], "centerface");
    let s = get(&d, "/schema?task=face_detection");
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
    );
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
    let d2 = Daemon::start(&[("OPENNVR_MODELS_DIR", dir.to_str().unwrap())]);
    let caps = get(&d2, "/capabilities");
    assert_eq!(caps["tasks"], json!([]), "{caps}");
    let (status, v) = post(
        &d2,
        "/infer",
        json!({"task": "face_detection", "data": {"frame": {"b64": b64(&fixture(PERSON_JPG))}}}),
    );
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

#[test]
fn infer_cli_reports_faces_and_dumps_chips() {
    let out_dir = temp_dir("chips");
    let out = common::succeed(
        common::cli()
            .args(["infer", "--task", "face_detection", "--dump-chips"])
            .arg(&out_dir)
            .arg(fixture("samples/astronaut.png")),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["face_count"], 1, "{v}");
    let dump = out_dir.join("astronaut");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dump.join("faces.json")).unwrap()).unwrap();
    let f = &doc["faces"][0];
    assert_eq!(f["age_probs"].as_array().unwrap().len(), 81);
    assert_eq!(f["gender"], "F");
    let chip = image::open(dump.join(f["age_chip"]["file"].as_str().unwrap())).unwrap();
    assert_eq!((chip.width(), chip.height()), (64, 64));
    let chip = image::open(dump.join(f["gender_chip"]["file"].as_str().unwrap())).unwrap();
    assert_eq!((chip.width(), chip.height()), (32, 32));
    assert!(dump.join("image.png").is_file());
    // The age in the dump is the one the API reports (rounded to whole years).
    let age = f["age"].as_f64().unwrap();
    assert_eq!(v["faces"][0]["age"].as_u64(), Some(age.round() as u64));
}
