//! An object detector: a loaded model plus the decoder and labels that make
//! its raw outputs into boxes in source pixels.

use image::RgbImage;
use serde::Deserialize;

use super::backend::{fixed, Backend, LoadedModel};
use super::error::AiError;
use super::nms::{nms, RawDetection};
use super::preprocess::{letterbox_window, PixelMap};
use super::yolo::{DarknetLayout, Decoder};
use crate::catalog::{Catalog, Integrity, Labels, ModelEntry};

/// Sidecar JSON for darknet-converted models.
#[derive(Debug, Deserialize)]
struct DarknetSidecar {
    #[serde(flatten)]
    layout: DarknetLayout,
    #[serde(default)]
    labels: Option<String>,
    #[serde(default = "default_pad")]
    pad_value: f32,
}

fn default_pad() -> f32 {
    0.5
}

/// A detector ready to run on frames.
pub struct Detector {
    model: Box<dyn LoadedModel>,
    decoder: Decoder,
    labels: Vec<String>,
    input_size: u32,
    pad: f32,
}

/// Model kinds this module can decode; `/capabilities` only offers detection
/// tasks for these.
pub fn is_detector_kind(kind: &str) -> bool {
    matches!(kind, "yolo-darknet" | "yolo-ultralytics")
}

/// The square input side from the manifest; multiples of 32 only (YOLO strides).
fn input_size_of(entry: &ModelEntry) -> Option<u32> {
    entry
        .input_size()
        .filter(|s| *s >= 32 && *s <= 4096 && s % 32 == 0)
}

/// The error for a model that is in the manifest but cannot serve.
pub(super) fn unavailable(entry: &ModelEntry, reason: impl Into<String>) -> AiError {
    AiError::TaskUnavailable {
        task: entry.id.clone(),
        reason: reason.into(),
    }
}

fn read_labels(catalog: &Catalog, file: &str) -> Result<Vec<String>, std::io::Error> {
    Ok(std::fs::read_to_string(catalog.path(file))?
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Refuses a model whose files are missing or differ from their sha256.
pub(super) fn verified(catalog: &Catalog, entry: &ModelEntry) -> Result<(), AiError> {
    match catalog.verify(entry) {
        Integrity::Ok => Ok(()),
        Integrity::Missing => Err(unavailable(entry, "model file missing")),
        Integrity::Altered { .. } => {
            Err(unavailable(entry, "model file does not match its sha256"))
        }
    }
}

/// The entry's labels, whichever way the manifest gives them.
pub(super) fn labels_of(
    catalog: &Catalog,
    entry: &ModelEntry,
    sidecar_labels: Option<String>,
) -> Result<Vec<String>, AiError> {
    let file = match (&entry.labels, sidecar_labels) {
        (Some(Labels::Inline(v)), _) => return Ok(v.clone()),
        (Some(Labels::File(f)), _) => f.file.clone(),
        (None, Some(f)) => f,
        (None, None) => return Ok(Vec::new()),
    };
    read_labels(catalog, &file).map_err(|e| unavailable(entry, format!("labels {file}: {e}")))
}

impl Detector {
    /// Verifies the file's checksum, then loads it with `backend`.
    pub fn load(
        backend: &dyn Backend,
        catalog: &Catalog,
        entry: &ModelEntry,
    ) -> Result<Self, AiError> {
        verified(catalog, entry)?;
        let input_size =
            input_size_of(entry).ok_or_else(|| unavailable(entry, "model input size unknown"))?;
        let (decoder, sidecar_labels, pad) = match entry.kind.as_str() {
            "yolo-darknet" => {
                let cfg = entry
                    .sidecar
                    .as_ref()
                    .map(|s| s.file.as_str())
                    .ok_or_else(|| unavailable(entry, "darknet model needs a sidecar"))?;
                let text = std::fs::read_to_string(catalog.path(cfg))
                    .map_err(|e| unavailable(entry, format!("sidecar {cfg}: {e}")))?;
                let side: DarknetSidecar = serde_json::from_str(&text)
                    .map_err(|e| unavailable(entry, format!("sidecar {cfg}: {e}")))?;
                (Decoder::Darknet(side.layout), side.labels, side.pad_value)
            }
            "yolo-ultralytics" => (
                Decoder::Ultralytics,
                None,
                entry.input.pad_value.unwrap_or(114.0 / 255.0),
            ),
            other => {
                return Err(unavailable(
                    entry,
                    format!("not a detector kind: {other:?}"),
                ))
            }
        };
        let labels = labels_of(catalog, entry, sidecar_labels)?;
        let s = input_size as usize;
        let model = backend.load(&catalog.path(&entry.file), &fixed(&[1, 3, s, s]))?;
        Ok(Self {
            model,
            decoder,
            labels,
            input_size,
            pad,
        })
    }

    /// The label of a class id, or its number when the model ships no labels.
    pub fn label(&self, class_id: u32) -> String {
        self.labels
            .get(class_id as usize)
            .cloned()
            .unwrap_or_else(|| class_id.to_string())
    }

    /// Every label in class order (empty when the model ships none).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The side of the model's square input, pixels: the camera pipeline's
    /// motion regions are cropped to it.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// The class id of a label, if the model knows it.
    pub fn class_of(&self, label: &str) -> Option<u32> {
        self.labels
            .iter()
            .position(|l| l == label)
            .map(|i| i as u32)
    }

    /// Boxes in source pixels, NMS applied, best first.
    pub fn detect(
        &self,
        img: &RgbImage,
        min_score: f32,
        iou: f32,
    ) -> Result<Vec<RawDetection>, AiError> {
        self.detect_window(img, [0, 0, img.width(), img.height()], min_score, iou)
    }

    /// [`Self::detect`] on the window `[x, y, w, h]` of `img`, as if it had
    /// been copied out (without the copy); boxes in window pixels.
    pub fn detect_window(
        &self,
        img: &RgbImage,
        win: [u32; 4],
        min_score: f32,
        iou: f32,
    ) -> Result<Vec<RawDetection>, AiError> {
        let map = PixelMap {
            bgr: false,
            divisor: 255.0,
            pad: self.pad,
        };
        let size = self.input_size;
        let (input, lb) = letterbox_window(img, win, size, size, map);
        let out = self.model.run(input)?;
        let raw =
            self.decoder
                .decode(&out, self.model.output_names(), self.input_size, min_score)?;
        let mut dets = nms(raw, iou);
        for d in &mut dets {
            d.bbox = lb.to_source(d.bbox);
        }
        dets.retain(|d| d.bbox[2] > d.bbox[0] && d.bbox[3] > d.bbox[1]);
        Ok(dets)
    }
}
