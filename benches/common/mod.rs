//! What the benchmarks share: arguments, the models catalog, a test image, percentiles.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use image::RgbImage;
use opennvr_edge::catalog::Catalog;
use opennvr_edge::ingest::demo::VTEST;

/// The value after `name` on the command line, if any.
pub fn opt(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The models folder: `OPENNVR_MODELS_DIR`, else `models/dist`.
pub fn models_dir() -> PathBuf {
    PathBuf::from(std::env::var("OPENNVR_MODELS_DIR").unwrap_or_else(|_| "models/dist".into()))
}

/// `-- [--iters N] [--image PATH]`, with the models from `OPENNVR_MODELS_DIR` or `models/dist`.
pub struct BenchArgs {
    pub iters: usize,
    pub img: RgbImage,
    pub catalog: Catalog,
}

impl BenchArgs {
    /// Parses the arguments; `default_iters` and `default_image` (under the models dir) differ per bench.
    pub fn parse(default_iters: usize, default_image: &str) -> Self {
        let models = models_dir();
        let image = opt("--image")
            .map(PathBuf::from)
            .unwrap_or_else(|| models.join(default_image));
        Self {
            iters: opt("--iters")
                .and_then(|s| s.parse().ok())
                .unwrap_or(default_iters),
            img: image::open(&image).expect("bench image").into_rgb8(),
            catalog: Catalog::open(&models).expect("models manifest (run scripts/setup.sh)"),
        }
    }
}

/// Median and p90 (nearest rank) of samples in ms.
pub fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

/// Frame 50 of vtest, 768x576.
pub fn vtest_frame() -> RgbImage {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i", VTEST, "-vf", "select=eq(n\\,50)"])
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg");
    RgbImage::from_raw(768, 576, out.stdout).expect("a 768x576 vtest frame")
}
