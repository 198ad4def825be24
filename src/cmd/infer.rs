//! `opennvr-edge infer`: run a task on image files and print the API's JSON,
//! one line per image, without a server.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::ai::align::{ChipDetails, CHIP_PADDING};
use crate::ai::{Engine, Params, Task};
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
    /// face_detection: minimum face score.
    #[arg(long)]
    pub min_confidence: Option<f32>,
    /// face_detection: cap on reported faces.
    #[arg(long)]
    pub max_faces: Option<usize>,
    /// face_detection: skip age and gender.
    #[arg(long)]
    pub no_attributes: bool,
    /// face_detection: also write each image's decoded pixels, aligned chips
    /// (PNG), chip geometry and class probabilities under DIR/<image stem>/,
    /// for models/face_parity.py.
    #[arg(long, value_name = "DIR", hide = true)]
    pub dump_chips: Option<PathBuf>,
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
        min_confidence: args.min_confidence,
        max_faces: args.max_faces,
        attributes: args.no_attributes.then_some(false),
        ..Params::default()
    };
    if args.dump_chips.is_some() && task != Task::FaceDetection {
        anyhow::bail!("--dump-chips only applies to --task face_detection");
    }
    let t0 = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    // With a camera, the images are its frames: one tracker of our own.
    let mut tracker = args.camera.as_ref().map(|_| engine.person_tracker());
    for (i, path) in args.images.iter().enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let frame = Frame {
            image: decode_image(&bytes, cfg.ai.max_image_pixels)?.into(),
            camera: args.camera.clone(),
            timestamp_ms: Some(t0 + i as i64 * args.interval_ms),
        };
        if let Some(dir) = &args.dump_chips {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            dump_chips(&engine, &frame, &params, &dir.join(stem.as_ref()))?;
        }
        let out = match (&mut tracker, task) {
            (Some(t), Task::PersonCounting) => {
                serde_json::to_value(engine.count_people(t, &frame, &params)?)?
            }
            _ => engine.run(task, &frame, &params, std::net::Ipv4Addr::LOCALHOST.into())?,
        };
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}

/// Writes what the parity script compares with onnxruntime and dlib: the
/// decoded image (so both sides read the same pixels), each face's chips,
/// their geometry (dlib `chip_details`: rect and angle) and probabilities.
fn dump_chips(engine: &Engine, frame: &Frame, params: &Params, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    frame.image.save(dir.join("image.png"))?;
    let (a, model_id) = engine.analyze_faces(&frame.image, params)?;
    let mut faces = Vec::new();
    for (i, f) in a.faces.iter().enumerate() {
        let mut face = json!({"bbox": f.bbox, "score": f.score, "landmarks": f.landmarks});
        if let (Some(attrs), Some((age_chip, gender_chip))) = (&a.attributes, a.chips.get(i)) {
            let at = &attrs[i];
            for (name, chip) in [("age", age_chip), ("gender", gender_chip)] {
                let file = format!("face{i}_{name}.png");
                chip.save(dir.join(&file))?;
                let d = ChipDetails::for_face(&f.landmarks, chip.width(), CHIP_PADDING);
                face[format!("{name}_chip")] = json!({
                    "file": file,
                    "size": chip.width(),
                    "rect": d.map(|d| [d.rect.l, d.rect.t, d.rect.r, d.rect.b]),
                    "angle": d.map(|d| d.angle),
                });
            }
            face["age"] = json!(at.age);
            face["age_probs"] = json!(at.age_probs);
            face["gender"] = json!(at.gender);
            face["gender_probs"] = json!(at.gender_probs);
        }
        faces.push(face);
    }
    let doc = json!({"model_id": model_id, "padding": CHIP_PADDING, "faces": faces});
    std::fs::write(dir.join("faces.json"), serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}
