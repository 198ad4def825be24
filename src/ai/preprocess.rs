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
        }
    }

    fn resized(&self) -> (u32, u32) {
        let nw = (self.src_w as f32 * self.scale).round().max(1.0) as u32;
        let nh = (self.src_h as f32 * self.scale).round().max(1.0) as u32;
        (nw, nh)
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
pub fn letterbox(img: &RgbImage, size: u32, pad: f32) -> (F32Tensor, Letterbox) {
    let lb = Letterbox::new(img.width(), img.height(), size);
    let (nw, nh) = lb.resized();
    let resized = if (nw, nh) == img.dimensions() {
        img.clone()
    } else {
        imageops::resize(img, nw, nh, imageops::FilterType::Triangle)
    };
    let s = size as usize;
    let plane = s * s;
    let mut data = vec![pad; 3 * plane];
    let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
    for (y, row) in resized.rows().enumerate() {
        let base = (y + py) * s + px;
        for (x, p) in row.enumerate() {
            let i = base + x;
            data[i] = p[0] as f32 / 255.0;
            data[plane + i] = p[1] as f32 / 255.0;
            data[2 * plane + i] = p[2] as f32 / 255.0;
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
}
