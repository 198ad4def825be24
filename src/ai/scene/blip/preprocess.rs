//! BLIP's image preprocessing, as transformers' `BlipImageProcessor` does it:
//! a bicubic resize of the RGB bytes to the encoder's square side (Pillow's
//! resampler, whose two 8-bit passes round to bytes in between), then
//! `byte / 255` in f64 stored as f32, then `(x - mean) / std` in f32 with
//! OpenAI CLIP's mean and std. Written to give the reference's values
//! bit for bit, so captions match the reference's token for token.

use image::RgbImage;

/// OpenAI CLIP's per-channel mean, BLIP's default.
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's per-channel standard deviation, BLIP's default.
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Fixed-point bits of Pillow's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: the first source pixel and its fixed-point weights.
struct Coeffs {
    taps: Vec<(usize, Vec<i32>)>,
}

impl Coeffs {
    /// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for a resize
    /// of `in_size` pixels to `out_size` (support widened when shrinking).
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 2.0 * filterscale;
        let ss = 1.0 / filterscale;
        let taps = (0..out_size)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                // C's (int) truncates toward zero, as `as i64` does.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let w: Vec<f64> = (xmin..xmax)
                    .map(|x| bicubic((x as f64 - center + 0.5) * ss))
                    .collect();
                let total: f64 = w.iter().sum();
                let fixed = w
                    .iter()
                    .map(|&k| {
                        let k = if total != 0.0 { k / total } else { k };
                        let v = k * f64::from(1u32 << PRECISION_BITS);
                        (if v < 0.0 { v - 0.5 } else { v + 0.5 }).trunc() as i32
                    })
                    .collect();
                (xmin, fixed)
            })
            .collect();
        Self { taps }
    }
}

/// Pillow's `clip8`: the fixed-point sum back to a byte.
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One separable pass over interleaved RGB rows: `len` pixels per line,
/// `stride` bytes between neighbours along the pass.
fn convolve(
    src: &[u8],
    get: impl Fn(usize, usize) -> usize,
    c: &Coeffs,
    out: &mut [u8],
    lines: usize,
) {
    let n_out = c.taps.len();
    for line in 0..lines {
        for (o, (first, w)) in c.taps.iter().enumerate() {
            for ch in 0..3 {
                let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                for (i, k) in w.iter().enumerate() {
                    acc = acc
                        .wrapping_add(i32::from(src[get(line, first + i) + ch]).wrapping_mul(*k));
                }
                out[(line * n_out + o) * 3 + ch] = clip8(acc);
            }
        }
    }
}

/// Resizes to `side` x `side` with Pillow's bicubic filter: the horizontal
/// pass first, then the vertical, each skipped when that side already fits.
pub fn resize_bicubic(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let s = side as usize;
    let mut data = img.as_raw().clone();
    let mut cur_w = w;
    if w != s {
        let c = Coeffs::new(w, s);
        let mut out = vec![0u8; s * h * 3];
        convolve(&data, |line, x| (line * w + x) * 3, &c, &mut out, h);
        data = out;
        cur_w = s;
    }
    if h != s {
        let c = Coeffs::new(h, s);
        // Lines are columns here; the output is written transposed, then
        // turned back.
        let mut t = vec![0u8; cur_w * s * 3];
        convolve(&data, |col, y| (y * cur_w + col) * 3, &c, &mut t, cur_w);
        let mut out = vec![0u8; s * cur_w * 3];
        for col in 0..cur_w {
            for y in 0..s {
                let (a, b) = ((col * s + y) * 3, (y * cur_w + col) * 3);
                out[b..b + 3].copy_from_slice(&t[a..a + 3]);
            }
        }
        data = out;
    }
    RgbImage::from_raw(side, side, data).expect("side x side x 3 bytes")
}

/// `pixel_values` for the encoder: `[1, 3, side, side]`, channel-major.
pub fn pixel_values(img: &RgbImage, side: u32) -> Vec<f32> {
    let img = resize_bicubic(img, side);
    let n = (side * side) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for ch in 0..3 {
            let x = (f64::from(p[ch]) * (1.0 / 255.0)) as f32;
            out[ch * n + i] = (x - MEAN[ch]) / STD[ch];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (from, to) in [(640, 384), (100, 384), (1280, 384), (384, 384)] {
            let c = Coeffs::new(from, to);
            for (_, w) in &c.taps {
                let sum: i64 = w.iter().map(|&k| i64::from(k)).sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= w.len() as i64,
                    "{from}->{to}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_normalises_per_channel() {
        let img = RgbImage::from_pixel(50, 30, image::Rgb([200, 100, 0]));
        let r = resize_bicubic(&img, 16);
        assert!(r.pixels().all(|p| p.0 == [200, 100, 0]));
        let v = pixel_values(&img, 16);
        let red = ((200.0f64 / 255.0) as f32 - MEAN[0]) / STD[0];
        assert_eq!(v[0], red);
        assert_eq!(v[256 * 2], (0.0 - MEAN[2]) / STD[2]);
    }
}
