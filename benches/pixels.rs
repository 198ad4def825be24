//! The two per-frame pixel costs beside the detector, old and new side by
//! side in one run (docs/performance.md): the snapshot JPEG encode (image's
//! `JpegEncoder` against `ingest::raw::to_jpeg`, plus jpeg-encoder at 4:2:0
//! for comparison) and the letterbox resize (`imageops::resize` `Triangle`
//! against `ai::preprocess::resize_window`).
//!
//! `cargo bench --bench pixels -- [--iters N] [--image PATH]`: a vtest frame
//! (768x576, from ffmpeg) and the 1280x720 photo `samples/zidane.jpg` (or
//! PATH); one line per case, median and p90 ms per operation. Old and new
//! alternate within each iteration, so a drifting machine slows both alike.

use std::time::Instant;

use image::imageops::{self, FilterType};
use image::RgbImage;
use opennvr_edge::ai::preprocess::resize_window;
use opennvr_edge::ingest::raw::to_jpeg;

mod common;

use common::{stats, vtest_frame, BenchArgs};

/// image's encoder at our quality, as `to_jpeg` was before.
fn image_jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    img.write_with_encoder(enc).expect("encode");
    out
}

/// jpeg-encoder at 4:2:0 (its default below quality 90), not used: for comparison.
fn jpeg_420(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, 85);
    let (w, h) = (img.width() as u16, img.height() as u16);
    enc.encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    out
}

/// Times each of `ops` `iters` times, alternating, after one warm-up each;
/// prints their medians and p90s on one line.
fn compare(case: &str, iters: usize, ops: &[(&str, &dyn Fn() -> usize)]) {
    let mut ms = vec![Vec::with_capacity(iters); ops.len()];
    let mut sizes = vec![0; ops.len()];
    for (i, (_, f)) in ops.iter().enumerate() {
        sizes[i] = f();
    }
    for _ in 0..iters {
        for (i, (_, f)) in ops.iter().enumerate() {
            let t = Instant::now();
            std::hint::black_box(f());
            ms[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut line = format!("{case:<28}");
    for ((name, _), (v, size)) in ops.iter().zip(ms.into_iter().zip(sizes)) {
        let (p50, p90) = stats(v);
        line += &format!("  {name}: {p50:7.2} ms (p90 {p90:7.2}, {size} B)");
    }
    println!("{line}");
}

fn main() {
    let args = BenchArgs::parse(30, "samples/zidane.jpg");
    let frames = [("vtest", vtest_frame()), ("photo", args.img)];
    println!("iters {} per operation; ms per operation", args.iters);
    for (name, img) in &frames {
        let case = format!("jpeg {name} {}x{}", img.width(), img.height());
        compare(
            &case,
            args.iters,
            &[
                ("image", &|| image_jpeg(img).len()),
                ("new", &|| to_jpeg(img).expect("encode").len()),
                ("new 4:2:0", &|| jpeg_420(img).len()),
            ],
        );
    }
    for (name, img) in &frames {
        let (w, h) = img.dimensions();
        let scale = (416.0 / w as f32).min(416.0 / h as f32);
        let (nw, nh) = (
            (w as f32 * scale).round() as u32,
            (h as f32 * scale).round() as u32,
        );
        let case = format!("resize {name} {w}x{h}->{nw}x{nh}");
        compare(
            &case,
            args.iters,
            &[
                ("image", &|| {
                    imageops::resize(img, nw, nh, FilterType::Triangle).len()
                }),
                ("new", &|| resize_window(img, [0, 0, w, h], nw, nh).len()),
            ],
        );
    }
}
