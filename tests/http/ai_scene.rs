//! `scene_description` on real frames, in-process on port 9100's router:
//! the grounded description (the engine every box has) on Debian's vtest
//! street clip, opencv's building photo, dark and greyscale frames; the
//! spec's `/pipeline/run` example; `params.engine`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use opennvr_edge::ai::scene::grounded::count_word;

use crate::common::{fixture, temp_dir, vtest_frames};
use crate::harness::{Ai, App};

const BUILDING_JPG: &str = "/usr/share/doc/opencv-doc/examples/data/building.jpg";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The adapter with its frames dir at `frames`, so the spec's
/// `opennvr://<camera>/<file>` URIs resolve there.
fn adapter(frames: &Path) -> Ai {
    Ai::start(&[("OPENNVR_FRAMES_DIR", frames.to_str().unwrap())])
}

/// vtest frame `n` as a JPEG file in `dir`.
fn vtest_frame(dir: &Path, n: u32) -> PathBuf {
    let sub = dir.join(format!("vtest-{n}"));
    vtest_frames(&sub, n, n);
    sub.join("f1.jpg")
}

/// `path` decoded, changed pixel by pixel, and saved as a JPEG at `out`.
fn altered(path: &Path, out: &Path, f: impl Fn([u8; 3]) -> [u8; 3]) {
    let mut img = image::open(path).unwrap().to_rgb8();
    for p in img.pixels_mut() {
        p.0 = f(p.0);
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    img.save(out).unwrap();
}

/// How the sentence says `n` people (its count words are unit-tested
/// with the sentence builder).
fn people(n: u64) -> String {
    match n {
        1 => "a person".into(),
        n => format!("{} people", count_word(n as usize)),
    }
}

/// The spec's pipeline, `["person_detection", "scene_description"]` on a
/// frame by URI: both results come back, and the sentence says the people
/// person_detection found, in words, with their count.
async fn pipeline(ai: &Ai, uri: &str) -> (u64, String, Value) {
    let r = ai
        .post_json(
            "/pipeline/run",
            None,
            &json!({"steps": ["person_detection", "scene_description"],
                    "data": {"frame": {"uri": uri}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "success", "{v}");
    let det = &v["results"]["person_detection"];
    let scene = v["results"]["scene_description"].clone();
    assert_eq!(det["task"], "person_detection", "{v}");
    assert_eq!(scene["task"], "scene_description", "{v}");
    let n = det["count"].as_u64().unwrap();
    let caption = scene["caption"].as_str().unwrap().to_owned();
    (n, caption, scene)
}

#[tokio::test]
async fn the_specs_pipeline_describes_vtest_people_with_their_count() {
    let frames = temp_dir("scene-frames");
    let ai = adapter(&frames);
    let mut counts = Vec::new();
    for n in [40, 300, 600] {
        let src = vtest_frame(&temp_dir("scene-vtest"), n);
        let cam = frames.join("camera_warehouse");
        std::fs::create_dir_all(&cam).unwrap();
        std::fs::copy(&src, cam.join(format!("street-{n}.jpg"))).unwrap();
        let uri = format!("opennvr://camera_warehouse/street-{n}.jpg");
        let (people_seen, caption, scene) = pipeline(&ai, &uri).await;
        assert!(people_seen >= 1, "vtest frame {n} has pedestrians");
        let said = people(people_seen);
        assert!(
            caption.to_lowercase().contains(&said),
            "frame {n}: {people_seen} people, said {caption:?}"
        );
        assert!(caption.starts_with("Day. "), "{caption}");
        assert_eq!(
            scene["model_id"], "detections:yolov4-tiny-416+centerface",
            "{scene}"
        );
        // Upstream's shape: exactly its five fields.
        let mut keys: Vec<&str> = scene
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["caption", "executed_at", "latency_ms", "model_id", "task"]
        );
        counts.push(people_seen);
    }
    assert!(
        counts.iter().any(|c| *c > 1),
        "some frame has several people: {counts:?}"
    );
}

#[tokio::test]
async fn dark_and_greyscale_frames_say_night_and_a_building_has_no_people() {
    let frames = temp_dir("scene-night");
    let ai = adapter(&frames);
    let src = vtest_frame(&temp_dir("scene-vtest"), 300);
    // The spec's own file name: a dark corner of a warehouse.
    altered(
        &src,
        &frames.join("camera_warehouse/dark_corner.jpg"),
        |p| p.map(|c| c / 6),
    );
    altered(&src, &frames.join("camera_ir/grey.jpg"), |[r, g, b]| {
        let y = ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000) as u8;
        [y, y, y]
    });
    for uri in [
        "opennvr://camera_warehouse/dark_corner.jpg",
        "opennvr://frames/camera_ir/grey.jpg",
    ] {
        let (n, caption, _) = pipeline(&ai, uri).await;
        assert!(caption.starts_with("Night. "), "{uri}: {caption}");
        if n > 0 {
            assert!(
                caption.to_lowercase().contains(&people(n)),
                "{uri}: {caption}"
            );
        }
    }

    let building = std::fs::read(fixture(BUILDING_JPG)).unwrap();
    let (status, v) = crate::harness::infer(
        &ai,
        &json!({"task": "scene_description", "data": {"frame": {"b64": b64(&building)}}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let caption = v["caption"].as_str().unwrap().to_lowercase();
    assert!(caption.starts_with("day. "), "{caption}");
    assert!(
        !caption.contains("person") && !caption.contains("people") && !caption.contains("face"),
        "building.jpg: {caption}"
    );
}

#[tokio::test]
async fn a_face_is_said_and_the_engine_param_is_checked() {
    let ai = Ai::start(&[]);
    let astronaut = std::fs::read(fixture("samples/astronaut.png")).unwrap();
    let body = |params: Value| {
        json!({"task": "scene_description", "data": {"frame": {"b64": b64(&astronaut)}},
               "params": params})
    };
    let (status, grounded) =
        crate::harness::infer(&ai, &body(json!({"engine": "detections"}))).await;
    assert_eq!(status, 200, "{grounded}");
    let caption = grounded["caption"].as_str().unwrap();
    assert!(
        caption.contains("a person") || caption.contains("A person"),
        "{caption}"
    );
    assert!(caption.contains("visible face"), "{caption}");

    // Unset, on a box without a captioner (models/dist has none; the BLIP
    // engine itself is proven in ai::scene::blip's tests): the same grounded
    // answer, and asking for BLIP is the client's mistake.
    let (status, default) = crate::harness::infer(&ai, &body(json!({}))).await;
    assert_eq!(status, 200, "{default}");
    assert_eq!(default["caption"], grounded["caption"]);
    assert_eq!(default["model_id"], grounded["model_id"]);
    let (status, blip) = crate::harness::infer(&ai, &body(json!({"engine": "blip"}))).await;
    assert_eq!(status, 400, "{blip}");
    assert_eq!(blip["error"]["code"], "bad_request");
    let msg = blip["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("blip") && msg.contains("\"detections\""),
        "{msg}"
    );

    let (status, bad) = crate::harness::infer(&ai, &body(json!({"engine": "gpt-4"}))).await;
    assert_eq!(status, 400, "{bad}");
    let msg = bad["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("\"blip\", \"detections\"") && msg.contains("gpt-4"),
        "{msg}"
    );
    // Options sit where upstream's clients put them, for this task too.
    let (status, _) = crate::harness::infer(
        &ai,
        &json!({"task": "scene_description",
                "input": {"frame": {"b64": b64(&astronaut)}, "engine": 7}}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_task_is_listed_with_its_schema_and_on_v1() {
    let ai = Ai::start(&[]);
    let caps = ai.get("/capabilities", None).await.json();
    assert!(
        caps["tasks"]
            .as_array()
            .unwrap()
            .contains(&json!("scene_description")),
        "{caps}"
    );
    let tasks = ai.get("/tasks", None).await.json();
    let scene = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "scene_description")
        .cloned()
        .expect("listed in /tasks");
    assert_eq!(scene["enabled"], true, "{scene}");
    let schema = ai.get("/schema?task=scene_description", None).await.json();
    assert_eq!(
        schema["response"]["required"],
        json!(["task", "caption", "model_id", "latency_ms", "executed_at"])
    );
    assert_eq!(
        schema["request"]["properties"]["params"]["properties"]["engine"]["enum"],
        json!(["blip", "detections"])
    );
    let adapters = ai.get("/adapters", None).await.json();
    let detector = adapters["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "yolov4-tiny-416")
        .cloned()
        .unwrap();
    assert!(
        detector["tasks"]
            .as_array()
            .unwrap()
            .contains(&json!("scene_description")),
        "the detector serves the grounded description: {detector}"
    );

    let bus = std::fs::read(fixture("samples/bus.jpg")).unwrap();
    let r = ai
        .post_json(
            "/v1/infer",
            None,
            &json!({"task": "scene_description", "frame_b64": b64(&bus)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let caption = v["result"]["caption"].as_str().unwrap();
    assert!(
        caption.contains("people") && caption.contains("bus"),
        "{caption}"
    );
    assert_eq!(v["result"]["detections"], json!([]));
    assert_eq!(v["model_name"], "detections:yolov4-tiny-416+centerface");
}
