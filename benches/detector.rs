//! Detector latency on the real model and a real photo, for docs/performance.md.
//!
//! `cargo bench --bench detector -- [--iters N] [--image PATH]` prints one JSON
//! line per (input size, threads): model-only and end-to-end (letterbox +
//! model + decode + NMS) median and p90 in ms. `models/bench.sh` runs this
//! beside onnxruntime on the same ONNX files and image.

use std::path::PathBuf;
use std::time::Instant;

use opennvr_edge::ai::backend::{fixed, Backend, TractBackend};
use opennvr_edge::ai::detector::Detector;
use opennvr_edge::ai::preprocess::letterbox;
use opennvr_edge::catalog::Catalog;

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let iters: usize = opt("--iters").and_then(|s| s.parse().ok()).unwrap_or(30);
    let models =
        PathBuf::from(std::env::var("OPENNVR_MODELS_DIR").unwrap_or_else(|_| "models/dist".into()));
    let image = opt("--image")
        .map(PathBuf::from)
        .unwrap_or_else(|| models.join("samples/bus.jpg"));
    let img = image::open(&image).expect("bench image").into_rgb8();
    let catalog = Catalog::open(&models).expect("models manifest (run scripts/setup.sh)");
    for id in ["yolov4-tiny-320", "yolov4-tiny-416"] {
        let entry = catalog.get(id).expect("model in manifest");
        let size = entry.input_size().expect("input size");
        for threads in [1, 2] {
            TractBackend::set_threads(threads);
            let t0 = Instant::now();
            let det = Detector::load(&TractBackend, &catalog, entry).expect("load");
            let load_ms = t0.elapsed().as_secs_f64() * 1e3;
            let model = TractBackend
                .load(
                    &catalog.path(&entry.file),
                    &fixed(&[1, 3, size as usize, size as usize]),
                )
                .expect("load");
            let (input, _) = letterbox(&img, size, 0.5);
            for _ in 0..3 {
                model.run(input.clone()).expect("warm-up");
            }
            let mut model_ms = Vec::with_capacity(iters);
            let mut e2e_ms = Vec::with_capacity(iters);
            for _ in 0..iters {
                let t = Instant::now();
                model.run(input.clone()).expect("run");
                model_ms.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                det.detect(&img, 0.35, 0.45).expect("detect");
                e2e_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let (m50, m90) = stats(model_ms);
            let (e50, e90) = stats(e2e_ms);
            println!(
                "{{\"runtime\":\"tract\",\"model\":\"{id}\",\"size\":{size},\"threads\":{threads},\"iters\":{iters},\
                 \"load_ms\":{load_ms:.1},\"model_median_ms\":{m50:.2},\"model_p90_ms\":{m90:.2},\
                 \"e2e_median_ms\":{e50:.2},\"e2e_p90_ms\":{e90:.2}}}"
            );
        }
    }
}
