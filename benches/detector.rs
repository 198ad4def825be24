//! Detector latency on the real model and a real photo, for docs/performance.md.
//!
//! `cargo bench --bench detector -- [--iters N] [--image PATH]` prints one JSON
//! line per (runtime, input size, threads): model-only and end-to-end
//! (letterbox + model + decode + NMS) median and p90 in ms, on tract and on
//! our onnxruntime backend. `models/bench.sh` runs this beside onnxruntime's
//! own Python binding on the same ONNX files and image.

use std::time::Instant;

use image::RgbImage;
use opennvr_edge::ai::backend::onnxruntime::default_lib;
use opennvr_edge::ai::backend::{fixed, Backend, OrtBackend, TractBackend};
use opennvr_edge::ai::detector::Detector;
use opennvr_edge::ai::preprocess::letterbox;
use opennvr_edge::catalog::Catalog;

mod common;

use common::{models_dir, stats, BenchArgs};

fn main() {
    let BenchArgs {
        iters,
        img,
        catalog,
    } = BenchArgs::parse(30, "samples/bus.jpg");
    let lib = default_lib(&models_dir());
    for id in ["yolov4-tiny-320", "yolov4-tiny-416"] {
        for threads in [1, 2] {
            TractBackend::set_threads(threads);
            measure("tract", &TractBackend, &catalog, id, threads, iters, &img);
            // Our onnxruntime backend, the library models/fetch.sh installed.
            let ort = OrtBackend::open(&lib, threads, 1).expect("onnxruntime (scripts/setup.sh)");
            measure("onnxruntime", &ort, &catalog, id, threads, iters, &img);
        }
    }
}

/// Times model `id` on `backend`: the model alone, and end to end
/// (letterbox + model + decode + NMS); prints one JSON line.
fn measure(
    runtime: &str,
    backend: &dyn Backend,
    catalog: &Catalog,
    id: &str,
    threads: usize,
    iters: usize,
    img: &RgbImage,
) {
    let entry = catalog.get(id).expect("model in manifest");
    let size = entry.input_size().expect("input size");
    let t0 = Instant::now();
    let det = Detector::load(backend, catalog, entry).expect("load");
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let model = backend
        .load(
            &catalog.path(&entry.file),
            &fixed(&[1, 3, size as usize, size as usize]),
        )
        .expect("load");
    let (input, _) = letterbox(img, size, 0.5);
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
        det.detect(img, 0.35, 0.45).expect("detect");
        e2e_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (m50, m90) = stats(model_ms);
    let (e50, e90) = stats(e2e_ms);
    println!(
        "{{\"runtime\":\"{runtime}\",\"model\":\"{id}\",\"size\":{size},\"threads\":{threads},\"iters\":{iters},\
         \"load_ms\":{load_ms:.1},\"model_median_ms\":{m50:.2},\"model_p90_ms\":{m90:.2},\
         \"e2e_median_ms\":{e50:.2},\"e2e_p90_ms\":{e90:.2}}}"
    );
}
