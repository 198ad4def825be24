//! An object detector: a loaded model plus the decoder and labels that make
//! its raw outputs into boxes in source pixels.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::RgbImage;
use serde::Deserialize;

use super::backend::{fixed, Backend, LoadedModel};
use super::error::AiError;
use super::nms::{nms, RawDetection};
use super::preprocess::{letterbox_window, Letterbox, PixelMap};
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
    /// Plans for whole frames that fill less than the square
    /// ([`Self::detect_window_fitted`]); `None` until [`Self::fitting`].
    fitted: Option<Fitted>,
    /// The model file, for [`Fitted`]'s loads.
    path: PathBuf,
}

/// The most rectangular plans one detector keeps. Each is a second copy of
/// the network planned for another input shape (tens of MB for the shipped
/// detectors); cameras come in two or three aspect ratios (16:9, 4:3), and a
/// frame of a shape past the cap runs on the square, as it did before.
pub const MAX_FITTED: usize = 3;

/// Rectangular plans of one detector, loaded on first use and kept: the
/// camera frames of one shape always need the same one. A shape whose load
/// failed is remembered as `None` and served by the square from then on.
struct Fitted {
    backend: Arc<dyn Backend>,
    plans: Mutex<Vec<(Shape, Plan)>>,
}

/// An input's `(width, height)`, pixels.
type Shape = (u32, u32);

/// A shape's plan, `None` when it could not be planned.
type Plan = Option<Arc<dyn LoadedModel>>;

/// One side of a fitted input: the letterboxed side rounded up to the
/// stride (32, YOLO's), at most the square's side.
fn fit_side(side: u32, square: u32) -> u32 {
    side.div_ceil(32).saturating_mul(32).clamp(32, square)
}

/// The window `[x, y, w, h]` that is all of `img`.
pub fn all_of(img: &RgbImage) -> [u32; 4] {
    [0, 0, img.width(), img.height()]
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
        let path = catalog.path(&entry.file);
        let model = backend.load(&path, &fixed(&[1, 3, s, s]))?;
        Ok(Self {
            model,
            decoder,
            labels,
            input_size,
            pad,
            fitted: None,
            path,
        })
    }

    /// Lets [`Self::detect_window_fitted`] plan rectangular inputs on `backend`
    /// (the file's checksum was verified by [`Self::load`]).
    pub fn fitting(mut self, backend: Arc<dyn Backend>) -> Self {
        self.fitted = Some(Fitted {
            backend,
            plans: Mutex::new(Vec::new()),
        });
        self
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

    /// Boxes in source pixels, NMS applied, best first: the frame
    /// letterboxed into the model's square input.
    pub fn detect(
        &self,
        img: &RgbImage,
        min_score: f32,
        iou: f32,
    ) -> Result<Vec<RawDetection>, AiError> {
        self.detect_window(img, all_of(img), min_score, iou)
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
        let side = self.input_size;
        self.detect_on(self.model.as_ref(), (side, side), img, win, min_score, iou)
    }

    /// The input a `w`x`h` frame fits: the square's scale, each side
    /// rounded up to the stride. A 4:3 frame at 416 gets 416x320, a 16:9 one
    /// 416x256: the padding the square would add is not computed at all.
    pub fn fitted_shape(&self, w: u32, h: u32) -> (u32, u32) {
        let s = self.input_size;
        let lb = Letterbox::new(w, h, s);
        (fit_side(lb.new_w, s), fit_side(lb.new_h, s))
    }

    /// [`Self::detect_window`] on the input the window fits
    /// ([`Self::fitted_shape`]): the same scale, without the square's padding
    /// bands (23 % less work for a 4:3 frame, 38 % for 16:9), boxes in window
    /// pixels. For a camera's full pass (the window is the whole frame:
    /// [`all_of`]) and its slim crops, whose shapes repeat; the plan for a new
    /// shape is loaded on first use (blocking, once). Runs on the square when
    /// the window fills it, when [`Self::fitting`] was not called, past
    /// [`MAX_FITTED`] shapes, or when the shape cannot be planned.
    pub fn detect_window_fitted(
        &self,
        img: &RgbImage,
        win: [u32; 4],
        min_score: f32,
        iou: f32,
    ) -> Result<Vec<RawDetection>, AiError> {
        let shape = self.fitted_shape(win[2], win[3]);
        match self.fitted_plan(shape) {
            Some(plan) => self.detect_on(plan.as_ref(), shape, img, win, min_score, iou),
            None => self.detect_window(img, win, min_score, iou),
        }
    }

    /// The loaded plan for `shape`, loading it when there is room; `None`
    /// means the square.
    fn fitted_plan(&self, shape: Shape) -> Plan {
        let fitted = self.fitted.as_ref()?;
        if shape == (self.input_size, self.input_size) {
            return None;
        }
        // Held while a plan loads: the runners wanting a new shape wait for
        // the one load instead of each making their own copy.
        let mut plans = super::lock(&fitted.plans);
        if let Some((_, plan)) = plans.iter().find(|(s, _)| *s == shape) {
            return plan.clone();
        }
        if plans.len() >= MAX_FITTED {
            return None;
        }
        let (w, h) = (shape.0 as usize, shape.1 as usize);
        let t0 = std::time::Instant::now();
        let plan = match fitted.backend.load(&self.path, &fixed(&[1, 3, h, w])) {
            Ok(m) => {
                let ms = t0.elapsed().as_millis() as u64;
                tracing::info!(
                    width = w,
                    height = h,
                    ms,
                    "detector planned for a frame shape"
                );
                Some(Arc::from(m))
            }
            Err(e) => {
                tracing::warn!(width = w, height = h, error = %e, "cannot plan the detector for a frame shape; the square serves it");
                None
            }
        };
        plans.push((shape, plan.clone()));
        plan
    }

    /// The shapes planned so far, loaded or failed (tests).
    #[cfg(test)]
    pub(crate) fn fitted_shapes(&self) -> Vec<(u32, u32)> {
        self.fitted.as_ref().map_or_else(Vec::new, |f| {
            super::lock(&f.plans).iter().map(|(s, _)| *s).collect()
        })
    }

    /// Letterboxes the window `win` (`[x, y, w, h]`) of `img` into `model`'s
    /// `(w, h)` input and decodes the boxes back to window pixels.
    fn detect_on(
        &self,
        model: &dyn LoadedModel,
        (w, h): (u32, u32),
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
        let (input, lb) = letterbox_window(img, win, w, h, map);
        let out = model.run(input)?;
        let raw = self
            .decoder
            .decode(&out, model.output_names(), (w, h), min_score)?;
        let mut dets = nms(raw, iou);
        for d in &mut dets {
            d.bbox = lb.to_source(d.bbox);
        }
        dets.retain(|d| d.bbox[2] > d.bbox[0] && d.bbox[3] > d.bbox[1]);
        Ok(dets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::backend::{Dim, F32Tensor};
    use std::path::Path;

    /// A backend whose models answer no boxes and log each input's shape;
    /// loads of `refused` heights fail.
    #[derive(Default)]
    struct Recording {
        loads: Mutex<Vec<Vec<usize>>>,
        runs: Arc<Mutex<Vec<Vec<usize>>>>,
        refused: Option<usize>,
    }

    struct Silent(Arc<Mutex<Vec<Vec<usize>>>>, Vec<String>);

    impl LoadedModel for Silent {
        fn run(&self, input: F32Tensor) -> Result<Vec<F32Tensor>, AiError> {
            super::super::lock(&self.0).push(input.shape);
            // YOLOv8's layout, 8 candidates scoring nothing.
            Ok(vec![F32Tensor {
                shape: vec![1, 6, 8],
                data: vec![0.0; 48],
            }])
        }
        fn output_names(&self) -> &[String] {
            &self.1
        }
        fn backend(&self) -> &'static str {
            "recording"
        }
    }

    impl Backend for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn load(&self, _: &Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError> {
            let shape: Vec<usize> = input
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Batch => 0,
                })
                .collect();
            super::super::lock(&self.loads).push(shape.clone());
            if Some(shape[2]) == self.refused {
                return Err(AiError::inference("cannot plan"));
            }
            Ok(Box::new(Silent(self.runs.clone(), vec!["out".into()])))
        }
    }

    fn detector(backend: Arc<Recording>) -> Detector {
        Detector {
            model: backend
                .load(Path::new("m.onnx"), &fixed(&[1, 3, 416, 416]))
                .unwrap(),
            decoder: Decoder::Ultralytics,
            labels: vec!["person".into()],
            input_size: 416,
            pad: 0.5,
            fitted: None,
            path: PathBuf::from("m.onnx"),
        }
        .fitting(backend)
    }

    #[test]
    fn a_frame_fits_the_stride_aligned_input_of_the_squares_scale() {
        let d = detector(Arc::default());
        assert_eq!(d.fitted_shape(768, 576), (416, 320), "4:3");
        assert_eq!(
            d.fitted_shape(1280, 720),
            (416, 256),
            "16:9 (234 rounded up)"
        );
        assert_eq!(d.fitted_shape(576, 768), (320, 416), "portrait");
        assert_eq!(d.fitted_shape(800, 800), (416, 416), "square");
        assert_eq!(
            d.fitted_shape(2000, 10),
            (416, 32),
            "a sliver keeps one stride"
        );
        assert_eq!(d.fitted_shape(1, 1), (416, 416), "upscaled to the square");
    }

    #[test]
    fn fitted_plans_load_once_per_shape_up_to_the_cap() {
        let backend = Arc::new(Recording {
            refused: Some(128),
            ..Recording::default()
        });
        let d = detector(backend.clone());
        let img = |w, h| RgbImage::new(w, h);
        let shapes = [
            (768, 576),
            (1280, 720),
            (768, 576),
            (416, 128),
            (416, 128),
            (1000, 100),
            (640, 640),
        ];
        for (w, h) in shapes {
            assert!(d
                .detect_window_fitted(&img(w, h), [0, 0, w, h], 0.3, 0.45)
                .unwrap()
                .is_empty());
        }
        let loads = super::super::lock(&backend.loads).clone();
        assert_eq!(
            loads,
            vec![
                vec![1, 3, 416, 416],
                vec![1, 3, 320, 416],
                vec![1, 3, 256, 416],
                vec![1, 3, 128, 416],
            ],
            "one load per new shape, a refused one not retried, none past the cap"
        );
        let ran: Vec<usize> = super::super::lock(&backend.runs)
            .iter()
            .map(|s| s[2])
            .collect();
        assert_eq!(
            ran,
            vec![320, 256, 320, 416, 416, 416, 416],
            "the refused shape, the one past the cap and the square frame run on the square"
        );
        assert_eq!(d.fitted_shapes(), vec![(416, 320), (416, 256), (416, 128)]);
        assert_eq!(MAX_FITTED, 3, "this test fills the cap with three shapes");
    }

    /// A window runs in the input it fits at 1:1, a slim crop in a slim
    /// plan; windows share the plans of frames of the same shape.
    #[test]
    fn a_slim_window_runs_in_its_own_fitted_input() {
        let backend = Arc::new(Recording::default());
        let d = detector(backend.clone());
        let frame = RgbImage::new(1280, 720);
        for win in [
            [100, 50, 320, 416],
            [0, 0, 1280, 720],
            [400, 0, 416, 320],
            [9, 9, 416, 416],
        ] {
            assert!(d
                .detect_window_fitted(&frame, win, 0.3, 0.45)
                .unwrap()
                .is_empty());
        }
        let ran: Vec<Vec<usize>> = super::super::lock(&backend.runs).clone();
        assert_eq!(
            ran,
            vec![
                vec![1, 3, 416, 320],
                vec![1, 3, 256, 416],
                vec![1, 3, 320, 416],
                vec![1, 3, 416, 416],
            ]
        );
        assert_eq!(d.fitted_shapes(), vec![(320, 416), (416, 256), (416, 320)]);
    }
}
