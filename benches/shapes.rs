//! Does switching input shapes on one shared onnxruntime session cost time?
//! A camera's gated frames alternate the fitted full pass (416x320 on a 4:3
//! frame) and slim crops (320x416) on the same free-shape session pool.
//!
//! `cargo bench --bench shapes -- [--iters N]`: one JSON line per pattern,
//! median and p90 ms per detection, on frame 50 of vtest.

use std::sync::Arc;
use std::time::Instant;

use opennvr_edge::ai::backend::onnxruntime::default_lib;
use opennvr_edge::ai::backend::{Backend, OrtBackend};
use opennvr_edge::ai::detector::{all_of, Detector};

mod common;

use common::{models_dir, stats, vtest_frame, BenchArgs};

fn main() {
    let BenchArgs { iters, catalog, .. } = BenchArgs::parse(60, "samples/bus.jpg");
    let img = vtest_frame();
    let lib = default_lib(&models_dir());
    let ort: Arc<dyn Backend> = Arc::new(OrtBackend::open(&lib, 1, 1).expect("onnxruntime"));
    let id = common::opt("--model").unwrap_or_else(|| "yolov4-tiny-416".into());
    let entry = catalog.get(&id).expect("model");
    let det = Detector::load(ort.as_ref(), &catalog, entry)
        .expect("load")
        .fitting(ort.clone());
    let full = all_of(&img);
    let slim = [224, 80, 320, 416];
    for w in [full, slim] {
        for _ in 0..3 {
            det.detect_window_fitted(&img, w, 0.2, 0.45)
                .expect("warm-up");
        }
    }
    let patterns: [(&str, &[[u32; 4]]); 3] = [
        ("full only", &[full]),
        ("slim only", &[slim]),
        ("full, slim alternating", &[full, slim]),
    ];
    for round in 0..2 {
        for (name, seq) in patterns {
            let mut ms = Vec::with_capacity(iters);
            for i in 0..iters {
                let w = seq[i % seq.len()];
                let t = Instant::now();
                det.detect_window_fitted(&img, w, 0.2, 0.45)
                    .expect("detect");
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let (m50, m90) = stats(ms);
            println!("{{\"round\":{round},\"pattern\":\"{name}\",\"iters\":{iters},\"median_ms\":{m50:.2},\"p90_ms\":{m90:.2}}}");
        }
    }
}
