//! Detector latency on the real model and a real photo, for docs/performance.md.
//!
//! `cargo bench --bench detector -- [--iters N] [--image PATH]` prints one JSON
//! line per (input size, threads): model-only and end-to-end (letterbox +
//! model + decode + NMS) median and p90 in ms. `models/bench.sh` runs this
//! beside onnxruntime on the same ONNX files and image.

use std::time::Instant;

use opennvr_edge::ai::backend::{fixed, Backend, TractBackend};
use opennvr_edge::ai::detector::Detector;
use opennvr_edge::ai::preprocess::letterbox;

mod common;

use common::{stats, BenchArgs};

fn main() {
    let BenchArgs {
        iters,
        img,
        catalog,
    } = BenchArgs::parse(30, "samples/bus.jpg");
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
