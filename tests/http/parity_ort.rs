//! Decode parity: our tract path (letterbox, model, decoder, NMS) against
//! an independent onnxruntime reference (`models/reference.py`) on the same
//! ONNX files and images; every confident box must match one-to-one by class
//! with IoU >= 0.9 (`models/parity.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{fixture, models_dir, temp_dir};
use opennvr_edge::ai::backend::TractBackend;
use opennvr_edge::ai::detector::Detector;
use opennvr_edge::catalog::Catalog;
use serde_json::json;

/// The models venv's python, which `scripts/setup.sh` gives onnxruntime.
fn venv_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("models/fetch.sh"))
        .arg("--print-python")
        .output()
        .expect("models/fetch.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn tract_matches_onnxruntime_within_iou_0_9() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = venv_python();
    let catalog = Catalog::open(&models_dir()).unwrap();
    let work = temp_dir("parity");
    let vtest_frame = work.join("vtest.jpg");
    let st = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(fixture("/usr/share/doc/opencv-doc/examples/data/vtest.avi"))
        .args(["-vf", r"select=eq(n\,60)", "-vsync", "vfr", "-q:v", "2"])
        .arg(&vtest_frame)
        .status()
        .unwrap();
    assert!(st.success());
    let images = [
        fixture("samples/bus.jpg"),
        fixture("/usr/share/darknet/data/person.jpg"),
        vtest_frame,
    ];
    let mut compared = 0;
    for id in ["yolov4-tiny-416", "yolov4-tiny-320"] {
        let entry = catalog.get(id).unwrap();
        let det = Detector::load(&TractBackend, &catalog, entry).unwrap();
        for img_path in &images {
            let img = image::open(img_path).unwrap().into_rgb8();
            let ours: Vec<_> = det
                .detect(&img, 0.25, 0.45)
                .unwrap()
                .iter()
                .map(|d| json!({"bbox": d.bbox, "confidence": d.score, "class_id": d.class_id}))
                .collect();
            compared += ours.len();
            let ours_path = work.join("ours.json");
            std::fs::write(&ours_path, json!({ "detections": ours }).to_string()).unwrap();
            let reference = Command::new(&py)
                .arg(root.join("models/reference.py"))
                .arg("--model")
                .arg(catalog.path(&entry.file))
                .arg("--image")
                .arg(img_path)
                .args(["--conf", "0.25", "--iou", "0.45"])
                .output()
                .unwrap();
            assert!(
                reference.status.success(),
                "{}",
                String::from_utf8_lossy(&reference.stderr)
            );
            let ref_path = work.join("ref.json");
            std::fs::write(&ref_path, &reference.stdout).unwrap();
            let parity = Command::new(&py)
                .arg(root.join("models/parity.py"))
                .arg(&ours_path)
                .arg(&ref_path)
                .args(["--min-conf", "0.3", "--min-iou", "0.9"])
                .output()
                .unwrap();
            assert!(
                parity.status.success(),
                "{id} on {}: {}{}",
                img_path.display(),
                String::from_utf8_lossy(&parity.stdout),
                String::from_utf8_lossy(&parity.stderr)
            );
        }
    }
    assert!(compared >= 10, "parity compared too few boxes: {compared}");
}
