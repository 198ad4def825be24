//! Face analysis latency on the real models and a real photo, for docs/performance.md.
//!
//! `cargo bench --bench faces -- [--iters N] [--image PATH]` prints one JSON line per
//! measurement: CenterFace at 640x480 (model only, and end to end: letterbox + model +
//! decode + NMS), then the age and gender networks per face (chip extraction, and
//! batches of 1 and 8 chips through one plan with a symbolic batch, as the daemon loads
//! them). `models/bench_faces_ort.py` is the onnxruntime counterpart.

use std::time::Instant;

use image::RgbImage;
use opennvr_edge::ai::backend::{fixed, Backend, TractBackend};
use opennvr_edge::ai::faces::{face_chip, AttributeNet, FaceDetector};
use opennvr_edge::ai::preprocess::{letterbox_to, PixelMap};

mod common;

use common::{stats, BenchArgs};

fn time(iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..2 {
        f();
    }
    stats(
        (0..iters)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() {
    let BenchArgs {
        iters,
        img,
        catalog,
    } = BenchArgs::parse(20, "samples/zidane.jpg");
    let entry = |id: &str| catalog.get(id).expect("model in manifest").clone();
    let (w, h) = (640u32, 480u32);
    for threads in [1, 2] {
        TractBackend::set_threads(threads);
        let t0 = Instant::now();
        let det = FaceDetector::load(&TractBackend, &catalog, &entry("centerface"), w, h)
            .expect("load centerface");
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let raw = TractBackend
            .load(
                &catalog.path("centerface.onnx"),
                &fixed(&[1, 3, h as usize, w as usize]),
            )
            .expect("load");
        let map = PixelMap {
            bgr: true,
            divisor: 1.0,
            pad: 0.0,
        };
        let (input, _) = letterbox_to(&img, w, h, map);
        let (m50, m90) = time(iters, || {
            raw.run(input.clone()).expect("run");
        });
        let mut faces = Vec::new();
        let (e50, e90) = time(iters, || {
            faces = det.detect(&img, 0.5, 0.3).expect("detect")
        });
        println!(
            "{{\"runtime\":\"tract\",\"stage\":\"centerface\",\"input\":\"{w}x{h}\",\"threads\":{threads},\
             \"iters\":{iters},\"load_ms\":{load_ms:.1},\"model_median_ms\":{m50:.2},\"model_p90_ms\":{m90:.2},\
             \"e2e_median_ms\":{e50:.2},\"e2e_p90_ms\":{e90:.2},\"faces\":{}}}",
            faces.len()
        );
        let face = faces.first().expect("the bench image has a face");
        for id in ["age-v1", "gender-v1"] {
            let e = entry(id);
            let t = Instant::now();
            let net = AttributeNet::load(&TractBackend, &catalog, &e).expect("load");
            let load_ms = t.elapsed().as_secs_f64() * 1e3;
            let size = net.chip_size();
            let chip = face_chip(&img, face, size);
            let (c50, _) = time(iters, || {
                face_chip(&img, face, size);
            });
            for batch in [1usize, 8] {
                let chips: Vec<&RgbImage> = vec![&chip; batch];
                let (s50, s90) = time(iters, || {
                    net.probabilities(&chips).expect("run");
                });
                println!(
                    "{{\"runtime\":\"tract\",\"stage\":\"{id}\",\"chip\":{size},\"threads\":{threads},\"batch\":{batch},\
                     \"iters\":{iters},\"load_ms\":{load_ms:.1},\"chip_ms\":{c50:.3},\"symbolic_batch_median_ms\":{s50:.3},\
                     \"symbolic_batch_p90_ms\":{s90:.3},\"per_face_ms\":{:.3}}}",
                    s50 / batch as f64
                );
            }
        }
    }
}
