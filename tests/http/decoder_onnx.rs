//! The YOLOv8/YOLO11 decoder through a real ONNX file and the real runtime:
//! `fixtures/yolov8-known.onnx` outputs a known `[1,84,128]` tensor
//! (see `fixtures/make_yolov8_fixture.py`), so the boxes are known exactly.

use crate::common;

use opennvr_edge::ai::backend::TractBackend;
use opennvr_edge::ai::detector::Detector;
use opennvr_edge::catalog::{sha256_file, Catalog};

#[test]
fn ultralytics_export_decodes_and_maps_back_through_the_letterbox() {
    let dir = common::temp_dir("v8");
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yolov8-known.onnx");
    std::fs::copy(&src, dir.join("v8.onnx")).unwrap();
    let sha = sha256_file(&dir.join("v8.onnx")).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(
            r#"{{"version":1,"models":[{{"id":"v8","file":"v8.onnx","sha256":"{sha}",
               "kind":"yolo-ultralytics","input":{{"shape":[1,3,64,64]}}}}]}}"#
        ),
    )
    .unwrap();
    let catalog = Catalog::open(&dir).unwrap();
    let det = Detector::load(&TractBackend, &catalog, catalog.get("v8").unwrap()).unwrap();
    // 128x64 source: letterbox scale 0.5, 16 px of padding above and below.
    let img = image::RgbImage::new(128, 64);
    let out = det.detect(&img, 0.5, 0.45).unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].class_id, 0);
    assert!((out[0].score - 0.9).abs() < 1e-6);
    assert_eq!(out[0].bbox, [48.0, 24.0, 80.0, 40.0]);
    assert_eq!(out[1].class_id, 16);
    assert_eq!(out[1].bbox, [70.0, 38.0, 90.0, 58.0]);
    // Without labels in the manifest, classes are reported by number.
    assert_eq!(det.label(16), "16");
    // A threshold above every score finds nothing.
    assert!(det.detect(&img, 0.95, 0.45).unwrap().is_empty());
}
