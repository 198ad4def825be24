//! `opennvr-edge infer`: run a task on image files and print the API's JSON,
//! one line per image, without a server.

use std::path::PathBuf;

use anyhow::Context;

use crate::ai::{Params, Task};
use crate::config::Config;
use crate::frame::{decode_image, Frame};

/// Arguments of `infer`.
#[derive(Debug, clap::Args)]
pub struct InferArgs {
    /// Task name, as in `POST /infer`.
    #[arg(long)]
    pub task: String,
    /// Camera the images belong to: tracks then persist across the images, in order.
    #[arg(long)]
    pub camera: Option<String>,
    /// Time between consecutive images, for the tracker (ms).
    #[arg(long, default_value_t = 100)]
    pub interval_ms: i64,
    /// Detector model id from the manifest.
    #[arg(long)]
    pub model: Option<String>,
    /// Minimum confidence.
    #[arg(long)]
    pub confidence: Option<f32>,
    /// Image files (JPEG or PNG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

pub fn infer(cfg: Config, args: InferArgs) -> anyhow::Result<()> {
    let task = Task::parse(&args.task)?;
    let engine = super::build_engine(&cfg)?;
    let params = Params {
        model: args.model,
        confidence: args.confidence,
        ..Params::default()
    };
    let t0 = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    for (i, path) in args.images.iter().enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let frame = Frame {
            image: decode_image(&bytes, cfg.ai.max_image_pixels)?,
            camera: args.camera.clone(),
            timestamp_ms: Some(t0 + i as i64 * args.interval_ms),
        };
        let out = engine.run(task, &frame, &params)?;
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}
