//! What a detector file costs on tract at other input shapes, batches and
//! precisions: the evidence behind docs/performance.md's "tract settings"
//! (rectangular inputs, batching, int8), kept so it can be re-measured on
//! another box or tract release.
//!
//! `cargo bench --bench variants -- --model PATH --shapes "1,3,416,416;2,3,416,416"
//! [--threads N] [--iters N]` prints one JSON line per shape: load time, and
//! the model run's median and p90 in ms, and per image (batch > 1). The
//! input is a fixed pattern: the run time of these networks does not depend
//! on pixel values.

use std::path::Path;
use std::time::Instant;

use opennvr_edge::ai::backend::{fixed, Backend, F32Tensor, TractBackend};

mod common;

use common::{models_dir, opt, stats};

fn main() {
    let model =
        opt("--model").map_or_else(|| models_dir().join("yolov4-tiny-416.onnx"), Into::into);
    let iters: usize = opt("--iters")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(1);
    let threads: usize = opt("--threads").and_then(|s| s.parse().ok()).unwrap_or(1);
    let shapes = opt("--shapes").unwrap_or_else(|| "1,3,416,416".into());
    TractBackend::set_threads(threads);
    for shape in shapes.split(';') {
        let shape: Vec<usize> = shape
            .split(',')
            .map(|n| n.trim().parse().expect("--shapes: N,C,H,W;..."))
            .collect();
        let t0 = Instant::now();
        let m = TractBackend
            .load(Path::new(&model), &fixed(&shape))
            .expect("load");
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let len: usize = shape.iter().product();
        let input = F32Tensor {
            shape: shape.clone(),
            data: (0..len).map(|i| (i * 7919 % 255) as f32 / 255.0).collect(),
        };
        for _ in 0..2 {
            m.run(input.clone()).expect("warm-up");
        }
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            m.run(input.clone()).expect("run");
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p90) = stats(ms);
        println!(
            "{{\"model\":{model:?},\"shape\":{shape:?},\"threads\":{threads},\"iters\":{iters},\
             \"load_ms\":{load_ms:.1},\"median_ms\":{p50:.2},\"p90_ms\":{p90:.2},\
             \"per_image_ms\":{:.2}}}",
            p50 / shape[0] as f64
        );
    }
}
