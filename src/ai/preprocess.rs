//! Image to tensor: letterboxing keeps the aspect ratio so people and faces
//! are not squashed, and remembers how to map boxes back to source pixels.

use image::{imageops, RgbImage};

use super::backend::F32Tensor;

/// How a source image was placed into the network input.
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
        Self::fit(w, h, size, size)
    }

    /// Computes the placement of a `w`x`h` image into a `dst_w`x`dst_h` input
    /// (CenterFace runs at 4:3, the shape of most camera frames).
    pub fn fit(w: u32, h: u32, dst_w: u32, dst_h: u32) -> Self {
        let scale = (dst_w as f32 / w as f32).min(dst_h as f32 / h as f32);
        let nw = ((w as f32 * scale).round() as u32).clamp(1, dst_w);
        let nh = ((h as f32 * scale).round() as u32).clamp(1, dst_h);
        Self {
            scale,
            pad_x: ((dst_w - nw) / 2) as f32,
            pad_y: ((dst_h - nh) / 2) as f32,
            src_w: w,
            src_h: h,
            new_w: nw,
            new_h: nh,
        }
    }

    /// Maps a point in network pixels to source pixels (not clamped: a
    /// landmark of a face cut by the frame edge may lie outside it).
    pub fn point_to_source(&self, p: [f32; 2]) -> [f32; 2] {
        [
            (p[0] - self.pad_x) / self.scale,
            (p[1] - self.pad_y) / self.scale,
        ]
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

/// How a network wants its pixels: models differ in channel order and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelMap {
    /// Channel planes in B, G, R order (Caffe and OpenCV lineage) instead of R, G, B.
    pub bgr: bool,
    /// Each byte is divided by this (255 for 0..1 inputs, 1 for raw 0..255);
    /// a division, not a multiplication by the inverse, so values are exact.
    pub divisor: f32,
    /// Value of the padding around the letterboxed image.
    pub pad: f32,
}

/// Letterboxes `img` into a `[1,3,size,size]` RGB tensor scaled to 0..1,
/// padding with `pad` (darknet uses 0.5 grey).
///
/// The resize is bilinear with a support widened by the shrink factor
/// (antialiased, like Pillow's `BILINEAR`): a 1080p frame shrunk 2.6x
/// without it aliases fine detail away, and YOLOv4-tiny then misses people
/// (bus.jpg at 416 px: 2 people above 0.35 without it, 3 with it).
pub fn letterbox(img: &RgbImage, size: u32, pad: f32) -> (F32Tensor, Letterbox) {
    letterbox_to(
        img,
        size,
        size,
        PixelMap {
            bgr: false,
            divisor: 255.0,
            pad,
        },
    )
}

/// Letterboxes `img` into a `[1,3,dst_h,dst_w]` tensor laid out as `map` says.
pub fn letterbox_to(
    img: &RgbImage,
    dst_w: u32,
    dst_h: u32,
    map: PixelMap,
) -> (F32Tensor, Letterbox) {
    let lb = Letterbox::fit(img.width(), img.height(), dst_w, dst_h);
    let resized;
    let src = if (lb.new_w, lb.new_h) == img.dimensions() {
        img
    } else {
        resized = imageops::resize(img, lb.new_w, lb.new_h, imageops::FilterType::Triangle);
        &resized
    };
    let (w, h) = (dst_w as usize, dst_h as usize);
    let plane = w * h;
    let mut data = vec![map.pad; 3 * plane];
    let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
    let order: [usize; 3] = if map.bgr { [2, 1, 0] } else { [0, 1, 2] };
    for (y, row) in src.rows().enumerate() {
        let base = (y + py) * w + px;
        for (x, p) in row.enumerate() {
            let i = base + x;
            for (c, &ch) in order.iter().enumerate() {
                data[c * plane + i] = p[ch] as f32 / map.divisor;
            }
        }
    }
    (
        F32Tensor {
            shape: vec![1, 3, h, w],
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

    #[test]
    fn bgr_raw_bytes_into_a_wide_input() {
        let img = RgbImage::from_pixel(2, 2, image::Rgb([10, 20, 30]));
        let map = PixelMap {
            bgr: true,
            divisor: 1.0,
            pad: 0.0,
        };
        let (t, lb) = letterbox_to(&img, 4, 2, map);
        assert_eq!(t.shape, vec![1, 3, 2, 4]);
        assert_eq!((lb.pad_x, lb.pad_y, lb.scale), (1.0, 0.0, 1.0));
        assert_eq!(&t.data[0..4], &[0.0, 30.0, 30.0, 0.0]); // B plane, row 0
        assert_eq!(t.data[8 + 1], 20.0); // G
        assert_eq!(t.data[16 + 1], 10.0); // R
        assert_eq!(lb.point_to_source([2.0, 1.0]), [1.0, 1.0]);
    }
}
