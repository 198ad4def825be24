//! Face analysis: CenterFace finds faces and their five landmarks; dlib-style
//! chips cut from those landmarks go, all faces of a frame in one batch, to
//! the age and gender networks.

use image::RgbImage;

use super::align::{extract_chip, ChipDetails, CHIP_PADDING};
use super::backend::{fixed, Backend, Dim, F32Tensor, LoadedModel};
use super::centerface::{self, Face};
use super::detector::{labels_of, unavailable, verified};
use super::error::AiError;
use super::preprocess::{letterbox_to, PixelMap};
use crate::catalog::{Catalog, ModelEntry};

/// Model kinds this module loads; the engine makes slots only for known kinds.
pub fn is_face_kind(kind: &str) -> bool {
    matches!(kind, "centerface" | "dlib-age" | "dlib-gender")
}

/// CenterFace at a fixed input size, ready to run on frames.
pub struct FaceDetector {
    model: Box<dyn LoadedModel>,
    width: u32,
    height: u32,
}

impl FaceDetector {
    /// Verifies the file, then plans it for a `width`x`height` input
    /// (multiples of 32: the network downsamples five times).
    pub fn load(
        backend: &dyn Backend,
        catalog: &Catalog,
        entry: &ModelEntry,
        width: u32,
        height: u32,
    ) -> Result<Self, AiError> {
        verified(catalog, entry)?;
        if entry.kind != "centerface" {
            return Err(unavailable(
                entry,
                format!("not a face detector kind: {:?}", entry.kind),
            ));
        }
        let ok = |v: u32| (32..=4096).contains(&v) && v.is_multiple_of(32);
        if !ok(width) || !ok(height) {
            return Err(unavailable(
                entry,
                format!("input {width}x{height}: sides must be multiples of 32 in 32..4096"),
            ));
        }
        let shape = fixed(&[1, 3, height as usize, width as usize]);
        let model = backend.load(&catalog.path(&entry.file), &shape)?;
        Ok(Self {
            model,
            width,
            height,
        })
    }

    /// Faces in source pixels, NMS applied, best first.
    pub fn detect(&self, img: &RgbImage, min_score: f32, iou: f32) -> Result<Vec<Face>, AiError> {
        // CenterFace was trained on OpenCV frames: BGR bytes, no scaling.
        let map = PixelMap {
            bgr: true,
            divisor: 1.0,
            pad: 0.0,
        };
        let (input, lb) = letterbox_to(img, self.width, self.height, map);
        let out = self.model.run(input)?;
        let mut faces = centerface::decode(&out, self.width, self.height, min_score, iou)?;
        for f in &mut faces {
            f.bbox = lb.to_source(f.bbox);
            for p in &mut f.landmarks {
                *p = lb.point_to_source(*p);
            }
        }
        faces.retain(|f| f.bbox[2] > f.bbox[0] && f.bbox[3] > f.bbox[1]);
        Ok(faces)
    }
}

/// What an attribute network estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// 81 classes: 0.25 years, then 1..80.
    Age,
    /// Two classes, labelled by the manifest (`[female, male]`).
    Gender,
}

/// Number of age classes of `dlib-age` models.
pub const AGE_CLASSES: usize = 81;

/// The age a class stands for: dlib's age predictor gives class 0 a quarter
/// year (babies) and class `i` `i` years; the package's manifest records the
/// same weights (checked by `tests/http/ai_faces.rs`).
pub fn age_of_class(i: usize) -> f32 {
    if i == 0 {
        0.25
    } else {
        i as f32
    }
}

/// The expected age of an 81-class distribution, accumulated in f32 in class
/// order as dlib's C++ loop does (a different order can move the last digit).
pub fn expected_age(p: &[f32]) -> f32 {
    p.iter()
        .enumerate()
        .fold(0.0f32, |acc, (i, &v)| acc + age_of_class(i) * v)
}

/// An age or gender network with its chip size and input normalisation.
pub struct AttributeNet {
    model: Box<dyn LoadedModel>,
    attribute: Attribute,
    size: u32,
    means: [f32; 3],
    divisor: f32,
    labels: Vec<String>,
}

impl AttributeNet {
    /// Verifies the file and plans it with a free batch, so one plan serves
    /// any number of faces (see `docs/faces.md` for the measurement).
    pub fn load(
        backend: &dyn Backend,
        catalog: &Catalog,
        entry: &ModelEntry,
    ) -> Result<Self, AiError> {
        verified(catalog, entry)?;
        let attribute = match entry.kind.as_str() {
            "dlib-age" => Attribute::Age,
            "dlib-gender" => Attribute::Gender,
            other => {
                return Err(unavailable(
                    entry,
                    format!("not an attribute kind: {other:?}"),
                ))
            }
        };
        let size = entry
            .input_size()
            .filter(|s| (8..=512).contains(s))
            .ok_or_else(|| unavailable(entry, "model input size unknown"))?;
        let norm = entry
            .input
            .normalization
            .as_ref()
            .filter(|n| n.scale.is_finite() && n.scale > 0.0)
            .ok_or_else(|| unavailable(entry, "input normalization missing"))?;
        let labels = labels_of(catalog, entry, None)?;
        if attribute == Attribute::Gender && labels.len() != 2 {
            return Err(unavailable(entry, "a gender model needs two labels"));
        }
        let s = size as usize;
        let shape = [Dim::Batch, Dim::Fixed(3), Dim::Fixed(s), Dim::Fixed(s)];
        let model = backend.load(&catalog.path(&entry.file), &shape)?;
        Ok(Self {
            model,
            attribute,
            size,
            means: norm.means,
            // 1/256 in the manifest: dividing by its exact inverse matches
            // the reference arithmetic bit for bit.
            divisor: 1.0 / norm.scale,
            labels,
        })
    }

    /// What this network estimates.
    pub fn attribute(&self) -> Attribute {
        self.attribute
    }

    /// The side of the square chip it takes.
    pub fn chip_size(&self) -> u32 {
        self.size
    }

    /// Class labels from the manifest (empty for age).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    fn classes(&self) -> usize {
        match self.attribute {
            Attribute::Age => AGE_CLASSES,
            Attribute::Gender => 2,
        }
    }

    /// `[N,3,S,S]` RGB, `(byte - mean) / divisor`, from chips of this size.
    pub fn tensor(&self, chips: &[&RgbImage]) -> Result<F32Tensor, AiError> {
        let s = self.size as usize;
        let plane = s * s;
        let mut data = vec![0.0f32; chips.len() * 3 * plane];
        for (n, chip) in chips.iter().enumerate() {
            if chip.dimensions() != (self.size, self.size) {
                return Err(AiError::inference(format!(
                    "chip is {:?}, the network takes {s}x{s}",
                    chip.dimensions()
                )));
            }
            let base = n * 3 * plane;
            for (i, p) in chip.pixels().enumerate() {
                for c in 0..3 {
                    data[base + c * plane + i] = (p[c] as f32 - self.means[c]) / self.divisor;
                }
            }
        }
        Ok(F32Tensor {
            shape: vec![chips.len(), 3, s, s],
            data,
        })
    }

    /// Class probabilities per chip, in chip order, from one batched run.
    pub fn probabilities(&self, chips: &[&RgbImage]) -> Result<Vec<Vec<f32>>, AiError> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.model.run(self.tensor(chips)?)?;
        let k = self.classes();
        let t = out
            .first()
            .filter(|t| t.shape == [chips.len(), k] && t.data.len() == chips.len() * k)
            .ok_or_else(|| {
                AiError::inference(format!(
                    "{:?} network gave {:?}, expected [{}, {k}]",
                    self.attribute,
                    out.first().map(|t| &t.shape),
                    chips.len()
                ))
            })?;
        Ok(t.data.chunks(k).map(<[f32]>::to_vec).collect())
    }

    /// `("F" | "M", probability)` from a gender distribution; a tie picks
    /// the first label, as the reference comparison does.
    pub fn gender(&self, p: &[f32]) -> (String, f32) {
        let i = usize::from(p.len() == 2 && p[0] < p[1]);
        let label = self.labels.get(i).map_or("", String::as_str);
        let code = match label.chars().next() {
            Some('f' | 'F') => "F".to_owned(),
            Some('m' | 'M') => "M".to_owned(),
            _ => label.to_owned(),
        };
        (code, p.get(i).copied().unwrap_or(0.0))
    }
}

/// Age and gender of one face, with the distributions they come from.
#[derive(Debug, Clone)]
pub struct FaceAttributes {
    pub age: f32,
    pub age_probs: Vec<f32>,
    pub gender: String,
    pub gender_confidence: f32,
    pub gender_probs: Vec<f32>,
}

/// Everything one frame's face analysis produced; the chips stay for
/// `infer --dump-chips` and the parity script.
#[derive(Debug, Clone, Default)]
pub struct FaceAnalysis {
    pub faces: Vec<Face>,
    /// One per face when attributes were asked for.
    pub attributes: Option<Vec<FaceAttributes>>,
    /// `(age chip, gender chip)` per face when attributes were asked for.
    pub chips: Vec<(RgbImage, RgbImage)>,
    /// Time in the age and gender networks, for per-model stats (µs).
    pub attribute_us: [u64; 2],
}

/// The dlib-style chip of `face` at `size` (black if its landmarks are unusable).
pub fn face_chip(img: &RgbImage, face: &Face, size: u32) -> RgbImage {
    match ChipDetails::for_face(&face.landmarks, size, CHIP_PADDING) {
        Some(d) => extract_chip(img, &d),
        None => RgbImage::new(size, size),
    }
}

/// Detects up to `max_faces` faces and, given the two networks, estimates
/// their age and gender in one batch per network.
pub fn analyze(
    detector: &FaceDetector,
    attributes: Option<(&AttributeNet, &AttributeNet)>,
    img: &RgbImage,
    min_score: f32,
    iou: f32,
    max_faces: usize,
) -> Result<FaceAnalysis, AiError> {
    let mut faces = detector.detect(img, min_score, iou)?;
    faces.truncate(max_faces);
    let Some((age_net, gender_net)) = attributes else {
        return Ok(FaceAnalysis {
            faces,
            ..FaceAnalysis::default()
        });
    };
    let chips: Vec<(RgbImage, RgbImage)> = faces
        .iter()
        .map(|f| {
            (
                face_chip(img, f, age_net.chip_size()),
                face_chip(img, f, gender_net.chip_size()),
            )
        })
        .collect();
    let timed = |net: &AttributeNet, pick: fn(&(RgbImage, RgbImage)) -> &RgbImage| {
        let batch: Vec<&RgbImage> = chips.iter().map(pick).collect();
        let t0 = std::time::Instant::now();
        let p = net.probabilities(&batch)?;
        Ok::<_, AiError>((p, t0.elapsed().as_micros() as u64))
    };
    let (ages, age_us) = timed(age_net, |c| &c.0)?;
    let (genders, gender_us) = timed(gender_net, |c| &c.1)?;
    let attrs = ages
        .into_iter()
        .zip(genders)
        .map(|(a, g)| {
            let (gender, gender_confidence) = gender_net.gender(&g);
            FaceAttributes {
                age: expected_age(&a),
                age_probs: a,
                gender,
                gender_confidence,
                gender_probs: g,
            }
        })
        .collect();
    Ok(FaceAnalysis {
        faces,
        attributes: Some(attrs),
        chips,
        attribute_us: [age_us, gender_us],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_age_weights_classes() {
        let mut p = vec![0.0; AGE_CLASSES];
        p[0] = 0.5;
        p[40] = 0.5;
        assert!((expected_age(&p) - 20.125).abs() < 1e-6);
        p = vec![0.0; AGE_CLASSES];
        p[80] = 1.0;
        assert_eq!(expected_age(&p), 80.0);
    }
}
