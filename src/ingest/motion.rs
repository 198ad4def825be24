//! A cheap motion detector per camera: where in the frame something moved.
//!
//! The frame is shrunk to a small grey image (area average, then a 3x3
//! blur, which together flatten sensor noise and compression blocks) and
//! compared with a running-average background. The frame's overall
//! brightness shift (the median difference) is taken out first, so a slow
//! exposure drift is not motion; a pixel moves when what is left passes
//! `threshold`. Moving pixels are dilated, joined into 8-connected blobs,
//! and blobs smaller than `min_area` are dropped. When more than
//! `global_fraction` of the watched frame changes at once, or the overall
//! shift steps by more than half the threshold in one frame (an IR switch,
//! lights on; bright areas clip, so the shift does not explain all of it),
//! that is a lighting change, not motion: the background is
//! re-seeded from this frame and nothing is reported, so it costs one
//! quiet frame instead of a storm of detections. Masked areas (polygons in
//! normalised coordinates) are never watched.

use image::RgbImage;

use crate::config::MotionConfig;

/// `[x1, y1, x2, y2]` in full-frame pixels.
pub type Rect = [u32; 4];

/// What one frame showed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Motion {
    /// Moving areas, in full-frame pixels.
    pub boxes: Vec<Rect>,
    /// The whole scene changed (lighting): the background was re-seeded.
    pub global: bool,
}

/// Dilation passes of the moving-pixel mask (3x3 each): joins the parts of
/// one walking person into one blob.
const DILATE: usize = 2;

/// Fixed sizes for one frame size: the small image and the watched pixels.
#[derive(Debug, Clone)]
struct Layout {
    src: (u32, u32),
    w: usize,
    h: usize,
    /// Small-image column of each source column, and row of each source row.
    xmap: Vec<usize>,
    ymap: Vec<usize>,
    /// Source pixels summed into each small pixel.
    count: Vec<u32>,
    /// `false` where a mask excludes the pixel.
    watched: Vec<bool>,
}

/// One camera's motion state.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    width: u32,
    threshold: f32,
    min_area: f64,
    alpha: f32,
    global_fraction: f32,
    masks: Vec<Vec<[f64; 2]>>,
    layout: Option<Layout>,
    background: Vec<f32>,
}

impl MotionDetector {
    /// A detector with `cfg`'s tunables and `camera`'s masks from the file.
    pub fn new(cfg: &MotionConfig, camera: &str) -> Self {
        Self::with_masks(cfg, cfg.camera(camera).masks)
    }

    /// A detector with `cfg`'s tunables that never watches inside `masks`
    /// (polygons in 0..=1 of the frame, checked by [`crate::config::CameraMotion::check`]).
    pub fn with_masks(cfg: &MotionConfig, masks: Vec<Vec<[f64; 2]>>) -> Self {
        Self {
            width: cfg.width.max(16),
            threshold: f32::from(cfg.threshold),
            min_area: cfg.min_area,
            alpha: cfg.alpha.clamp(0.001, 1.0),
            global_fraction: cfg.global_fraction,
            masks,
            layout: None,
            background: Vec::new(),
        }
    }

    /// Compares `img` with the background and learns it. The first frame
    /// (and the first after a size change) only seeds the background.
    pub fn detect(&mut self, img: &RgbImage) -> Motion {
        let (sw, sh) = img.dimensions();
        if sw == 0 || sh == 0 {
            return Motion::default();
        }
        if self.layout.as_ref().is_none_or(|l| l.src != (sw, sh)) {
            self.layout = Some(self.layout_for(sw, sh));
            self.background.clear();
        }
        let Some(l) = self.layout.as_ref() else {
            return Motion::default();
        };
        let grey = blur(&shrink(img, l), l.w, l.h);
        if self.background.is_empty() {
            self.background = grey;
            return Motion::default();
        }
        let shift = median_shift(&grey, &self.background, &l.watched);
        let moving: Vec<bool> = grey
            .iter()
            .zip(&self.background)
            .zip(&l.watched)
            .map(|((g, b), w)| *w && (g - b - shift).abs() > self.threshold)
            .collect();
        let watched = l.watched.iter().filter(|w| **w).count().max(1);
        let changed = moving.iter().filter(|m| **m).count();
        // A step in overall brightness (exposure, IR, lights) clips some
        // areas and not others, so what is left after the shift is not to
        // be trusted either: a lighting change, like a change everywhere.
        let step = shift.abs() > self.threshold / 2.0;
        if step || changed as f32 > self.global_fraction * watched as f32 {
            self.background = grey;
            return Motion {
                boxes: Vec::new(),
                global: true,
            };
        }
        let min_px = (self.min_area * (l.w * l.h) as f64).max(1.0);
        let boxes = blobs(&moving, l.w, l.h)
            .into_iter()
            .filter(|b| b.area as f64 >= min_px)
            .map(|b| to_frame(b.rect, l))
            .collect();
        for (b, g) in self.background.iter_mut().zip(&grey) {
            *b += self.alpha * (g - *b);
        }
        Motion {
            boxes,
            global: false,
        }
    }

    fn layout_for(&self, sw: u32, sh: u32) -> Layout {
        let w = self.width.min(sw) as usize;
        let h = ((sh as u64 * w as u64) / sw as u64).max(1) as usize;
        let xmap: Vec<usize> = (0..sw as usize).map(|x| x * w / sw as usize).collect();
        let ymap: Vec<usize> = (0..sh as usize).map(|y| y * h / sh as usize).collect();
        let mut count = vec![0u32; w * h];
        for &y in &ymap {
            for &x in &xmap {
                count[y * w + x] += 1;
            }
        }
        let watched = (0..w * h)
            .map(|i| {
                let p = [
                    ((i % w) as f64 + 0.5) / w as f64,
                    ((i / w) as f64 + 0.5) / h as f64,
                ];
                !self.masks.iter().any(|m| inside(m, p))
            })
            .collect();
        Layout {
            src: (sw, sh),
            w,
            h,
            xmap,
            ymap,
            count,
            watched,
        }
    }
}

/// Area-averaged grey (BT.601 luma) at the layout's small size.
fn shrink(img: &RgbImage, l: &Layout) -> Vec<f32> {
    let mut sum = vec![0u32; l.w * l.h];
    for (y, row) in img.rows().enumerate() {
        let base = l.ymap[y] * l.w;
        for (x, p) in row.enumerate() {
            let [r, g, b] = p.0;
            sum[base + l.xmap[x]] +=
                (77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b)) >> 8;
        }
    }
    sum.iter()
        .zip(&l.count)
        .map(|(s, c)| *s as f32 / (*c).max(1) as f32)
        .collect()
}

/// 3x3 box blur, edges clamped.
fn blur(src: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for y in 0..h {
        for x in 0..w {
            let (mut s, mut n) = (0.0, 0.0);
            for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    s += src[yy * w + xx];
                    n += 1.0;
                }
            }
            out[y * w + x] = s / n;
        }
    }
    out
}

/// The median of `cur - bg` over watched pixels: the frame's overall
/// brightness shift (whole grey levels are precise enough).
fn median_shift(cur: &[f32], bg: &[f32], watched: &[bool]) -> f32 {
    let mut hist = [0u32; 511];
    let mut n = 0u32;
    for ((c, b), w) in cur.iter().zip(bg).zip(watched) {
        if *w {
            hist[((c - b).round() as i32 + 255).clamp(0, 510) as usize] += 1;
            n += 1;
        }
    }
    let mut seen = 0;
    for (i, k) in hist.iter().enumerate() {
        seen += k;
        if seen * 2 >= n {
            return i as f32 - 255.0;
        }
    }
    0.0
}

/// A connected group of moving pixels in the small image.
#[derive(Debug, Clone, Copy)]
struct Blob {
    /// `[x1, y1, x2, y2]`, inclusive, small-image pixels.
    rect: [usize; 4],
    /// Moving pixels in it before dilation.
    area: usize,
}

/// 8-connected blobs of the dilated mask, each with its undilated area.
fn blobs(moving: &[bool], w: usize, h: usize) -> Vec<Blob> {
    let mut grown = moving.to_vec();
    for _ in 0..DILATE {
        grown = dilate(&grown, w, h);
    }
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !grown[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut rect, mut area) = ([w, h, 0, 0], 0);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            rect = [
                rect[0].min(x),
                rect[1].min(y),
                rect[2].max(x),
                rect[3].max(y),
            ];
            area += usize::from(moving[i]);
            for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = yy * w + xx;
                    if grown[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(Blob { rect, area });
    }
    out
}

/// 3x3 binary dilation.
fn dilate(m: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; m.len()];
    for y in 0..h {
        for x in 0..w {
            if m[y * w + x] {
                for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        out[yy * w + xx] = true;
                    }
                }
            }
        }
    }
    out
}

/// A small-image rectangle (inclusive) in full-frame pixels (exclusive end).
fn to_frame(r: [usize; 4], l: &Layout) -> Rect {
    let (sw, sh) = (l.src.0 as usize, l.src.1 as usize);
    [
        (r[0] * sw / l.w) as u32,
        (r[1] * sh / l.h) as u32,
        ((r[2] + 1) * sw).div_ceil(l.w).min(sw) as u32,
        ((r[3] + 1) * sh).div_ceil(l.h).min(sh) as u32,
    ]
}

/// Even-odd test: is the normalised point `p` inside polygon `poly`?
fn inside(poly: &[[f64; 2]], p: [f64; 2]) -> bool {
    let mut odd = false;
    let mut j = poly.len().wrapping_sub(1);
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            odd = !odd;
        }
        j = i;
    }
    odd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraMotion;

    /// A textured grey scene with a dark 40x80 "person" at `x` (none if `None`).
    fn scene(x: Option<u32>, light: i32) -> RgbImage {
        RgbImage::from_fn(640, 480, |px, py| {
            let base = 100 + ((px / 16 + py / 16) % 2) as i32 * 40 + light;
            let v = match x {
                Some(x) if (x..x + 40).contains(&px) && (200..280).contains(&py) => 20,
                _ => base.clamp(0, 255),
            };
            image::Rgb([v as u8; 3])
        })
    }

    #[test]
    fn a_moving_block_is_found_where_it_is() {
        let mut m = MotionDetector::new(&MotionConfig::default(), "c");
        assert_eq!(m.detect(&scene(None, 0)), Motion::default(), "seeds");
        assert!(m.detect(&scene(None, 0)).boxes.is_empty(), "still");
        let got = m.detect(&scene(Some(300), 0));
        assert!(!got.global);
        assert_eq!(got.boxes.len(), 1, "{got:?}");
        let b = got.boxes[0];
        assert!(
            b[0] <= 300 && b[2] >= 340 && b[1] <= 200 && b[3] >= 280,
            "{b:?}"
        );
        assert!(b[2] - b[0] < 80 && b[3] - b[1] < 130, "tight: {b:?}");
    }

    #[test]
    fn a_lighting_step_reseeds_instead_of_reporting_motion() {
        let mut m = MotionDetector::new(&MotionConfig::default(), "c");
        m.detect(&scene(None, 0));
        // A little brighter: the shift is taken out, nothing moves.
        assert_eq!(m.detect(&scene(None, 8)), Motion::default());
        // A step: a lighting change; after it the new scene is the background.
        let got = m.detect(&scene(None, 60));
        assert!(got.global && got.boxes.is_empty(), "{got:?}");
        assert_eq!(m.detect(&scene(None, 60)), Motion::default());
        // A change no brightness shift explains (an IR switch changes how
        // every surface reflects): global.
        let flat = RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([if (x / 16 + y / 16) % 2 == 0 { 180 } else { 60 }; 3])
        });
        let got = m.detect(&flat);
        assert!(got.global && got.boxes.is_empty(), "{got:?}");
        assert_eq!(m.detect(&flat), Motion::default(), "re-seeded");
    }

    #[test]
    fn masked_areas_are_never_watched() {
        let mut cfg = MotionConfig::default();
        let rect = vec![[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]];
        cfg.cameras.insert(
            "c".into(),
            CameraMotion {
                enabled: None,
                masks: vec![rect],
            },
        );
        assert!(cfg.check().is_ok());
        let mut m = MotionDetector::new(&cfg, "c");
        m.detect(&scene(None, 0));
        assert!(m.detect(&scene(Some(300), 0)).boxes.is_empty());
        // The same block outside the mask is seen.
        let mut other = MotionDetector::new(&cfg, "other");
        other.detect(&scene(None, 0));
        assert_eq!(other.detect(&scene(Some(300), 0)).boxes.len(), 1);
        cfg.cameras.get_mut("c").unwrap().masks[0][0] = [1.5, 0.0];
        assert!(cfg.check().unwrap_err().contains("cameras.c.masks"));
    }

    #[test]
    fn small_specks_are_below_min_area() {
        let mut m = MotionDetector::new(&MotionConfig::default(), "c");
        let base = scene(None, 0);
        m.detect(&base);
        let mut speck = base.clone();
        speck.put_pixel(320, 240, image::Rgb([255; 3]));
        speck.put_pixel(321, 240, image::Rgb([255; 3]));
        assert!(m.detect(&speck).boxes.is_empty());
        assert!(inside(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.2, 0.2]));
        assert!(!inside(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.8, 0.8]));
    }
}
