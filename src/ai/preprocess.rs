//! Image to tensor: letterboxing keeps the aspect ratio so people are not
//! squashed, and remembers how to map boxes back to source pixels.

use image::{imageops, RgbImage};

use super::backend::F32Tensor;

/// How a source image was placed into the square network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub src_w: u32,
    pub src_h: u32,
    /// Size of the resized image inside the square.
    pub new_w: u32,
    pub new_h: u32,
}

impl Letterbox {
    /// Computes the placement of a `w`x`h` image into a `size`x`size` input.
    pub fn new(w: u32, h: u32, size: u32) -> Self {
        let scale = (size as f32 / w as f32).min(size as f32 / h as f32);
        let nw = ((w as f32 * scale).round() as u32).clamp(1, size);
        let nh = ((h as f32 * scale).round() as u32).clamp(1, size);
        Self {
            scale,
            pad_x: ((size - nw) / 2) as f32,
            pad_y: ((size - nh) / 2) as f32,
            src_w: w,
            src_h: h,
            new_w: nw,
            new_h: nh,
        }
    }

    /// Maps `[x1,y1,x2,y2]` in network pixels to source pixels, clamped to the image.
    pub fn to_source(&self, b: [f32; 4]) -> [f32; 4] {
        let w = self.src_w as f32;
        let h = self.src_h as f32;
        [
            ((b[0] - self.pad_x) / self.scale).clamp(0.0, w),
            ((b[1] - self.pad_y) / self.scale).clamp(0.0, h),
            ((b[2] - self.pad_x) / self.scale).clamp(0.0, w),
            ((b[3] - self.pad_y) / self.scale).clamp(0.0, h),
        ]
    }
}

/// Letterboxes `img` into a `[1,3,size,size]` RGB tensor scaled to 0..1,
/// padding with `pad` (darknet uses 0.5 grey).
///
/// The resize is bilinear with a support widened by the shrink factor
/// (antialiased, like Pillow's `BILINEAR`): a 1080p frame shrunk 2.6x
/// without it aliases fine detail away, and YOLOv4-tiny then misses people
/// (bus.jpg at 416 px: 2 people above 0.35 without it, 3 with it).
pub fn letterbox(img: &RgbImage, size: u32, pad: f32) -> (F32Tensor, Letterbox) {
    let lb = Letterbox::new(img.width(), img.height(), size);
    let resized;
    let src = if (lb.new_w, lb.new_h) == img.dimensions() {
        img
    } else {
        resized = imageops::resize(img, lb.new_w, lb.new_h, imageops::FilterType::Triangle);
        &resized
    };
    let s = size as usize;
    let plane = s * s;
    let mut data = vec![pad; 3 * plane];
    let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
    const K: f32 = 1.0 / 255.0;
    for (y, row) in src.rows().enumerate() {
        let base = (y + py) * s + px;
        for (x, p) in row.enumerate() {
            let i = base + x;
            data[i] = p[0] as f32 * K;
            data[plane + i] = p[1] as f32 * K;
            data[2 * plane + i] = p[2] as f32 * K;
        }
    }
    (
        F32Tensor {
            shape: vec![1, 3, s, s],
            data,
        },
        lb,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_image_is_padded_vertically_and_maps_back() {
        let lb = Letterbox::new(800, 400, 400);
        assert_eq!(lb.scale, 0.5);
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 100.0));
        let b = lb.to_source([10.0, 110.0, 110.0, 210.0]);
        assert_eq!(b, [20.0, 20.0, 220.0, 220.0]);
    }

    #[test]
    fn tensor_has_pad_and_pixels() {
        let img = RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 51]));
        let (t, lb) = letterbox(&img, 4, 0.5);
        assert_eq!(t.shape, vec![1, 3, 4, 4]);
        assert_eq!(lb.pad_y, 1.0);
        assert_eq!(t.data[0], 0.5); // top pad row, R plane
        assert_eq!(t.data[4], 1.0); // row 1, R
        assert_eq!(t.data[16 + 4], 0.0); // row 1, G
        assert!((t.data[32 + 4] - 0.2).abs() < 1e-6); // row 1, B
    }

    #[test]
    fn shrinking_is_antialiased() {
        // A 1-pixel checkerboard shrunk 4x must become mid grey, not alias to black or white.
        let img = RgbImage::from_fn(64, 64, |x, y| {
            let v = if (x + y) % 2 == 0 { 255 } else { 0 };
            image::Rgb([v, v, v])
        });
        let (t, _) = letterbox(&img, 16, 0.5);
        for v in &t.data {
            assert!((v - 0.5).abs() < 0.05, "{v}");
        }
    }
}
