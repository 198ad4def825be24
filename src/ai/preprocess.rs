//! Image to tensor: letterboxing keeps the aspect ratio so people and faces
//! are not squashed, and remembers how to map boxes back to source pixels.

use image::RgbImage;

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
    letterbox_window(img, [0, 0, img.width(), img.height()], dst_w, dst_h, map)
}

/// Letterboxes the window `[x, y, w, h]` of `img` (clipped to it) into a
/// `[1,3,dst_h,dst_w]` tensor, as if the window had been copied out first
/// (the resize sees no pixel outside it), without that copy. The returned
/// placement maps to window pixels.
pub fn letterbox_window(
    img: &RgbImage,
    win: [u32; 4],
    dst_w: u32,
    dst_h: u32,
    map: PixelMap,
) -> (F32Tensor, Letterbox) {
    let iw = img.width();
    let [x, y, ww, wh] = clip(img, win);
    let lb = Letterbox::fit(ww.max(1), wh.max(1), dst_w, dst_h);
    let (w, h) = (dst_w as usize, dst_h as usize);
    let plane = w * h;
    let mut data = vec![map.pad; 3 * plane];
    let tensor = |data| F32Tensor {
        shape: vec![1, 3, h, w],
        data,
    };
    if ww == 0 || wh == 0 {
        // Nothing to place: all padding.
        return (tensor(data), lb);
    }
    // Rows of the placed pixels, interleaved RGB: the window itself when no
    // resize is needed, else the resized window.
    let resized;
    let (pixels, stride, offset) = if (lb.new_w, lb.new_h) == (ww, wh) {
        let stride = iw as usize * 3;
        (
            img.as_raw().as_slice(),
            stride,
            y as usize * stride + x as usize * 3,
        )
    } else {
        resized = resize_window(img, [x, y, ww, wh], lb.new_w, lb.new_h);
        (resized.as_slice(), lb.new_w as usize * 3, 0)
    };
    let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
    let order: [usize; 3] = if map.bgr { [2, 1, 0] } else { [0, 1, 2] };
    let row_len = lb.new_w as usize * 3;
    for r in 0..lb.new_h as usize {
        let row = &pixels[offset + r * stride..][..row_len];
        let base = (r + py) * w + px;
        for (c, &ch) in order.iter().enumerate() {
            let out = &mut data[c * plane + base..][..lb.new_w as usize];
            for (o, p) in out.iter_mut().zip(row.chunks_exact(3)) {
                *o = f32::from(p[ch]) / map.divisor;
            }
        }
    }
    (tensor(data), lb)
}

/// The window `[x, y, w, h]` clipped to `img` (its width or height 0 when
/// nothing of it lies inside).
fn clip(img: &RgbImage, win: [u32; 4]) -> [u32; 4] {
    let (iw, ih) = img.dimensions();
    let (x, y) = (
        win[0].min(iw.saturating_sub(1)),
        win[1].min(ih.saturating_sub(1)),
    );
    [x, y, win[2].min(iw - x), win[3].min(ih - y)]
}

/// The window `[x, y, w, h]` of `img` (clipped to it) resized to `out_w` x
/// `out_h`, interleaved RGB: the antialiased bilinear convolution (Pillow's
/// `BILINEAR`, image's `Triangle`) on SIMD kernels picked at run time. Values
/// are within one level of `imageops::resize(.., Triangle)` (fixed-point
/// arithmetic; `parity_with_image_triangle_on_a_real_frame`). An empty
/// window or output gives black.
pub fn resize_window(img: &RgbImage, win: [u32; 4], out_w: u32, out_h: u32) -> Vec<u8> {
    use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let mut out = vec![0u8; out_w as usize * out_h as usize * 3];
    let win = clip(img, win);
    if win[2] == 0 || win[3] == 0 || out.is_empty() {
        return out;
    }
    // An RgbImage always holds w * h * 3 bytes of U8x3 (alignment 1), the
    // window is inside it and both sides are non-empty, so none of these can
    // fail; a failure would be a bug here, not bad input.
    let src = images::ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
        .expect("an RgbImage is a U8x3 buffer");
    let window = images::CroppedImage::new(&src, win[0], win[1], win[2], win[3])
        .expect("window inside the image");
    let mut dst = images::Image::from_slice_u8(out_w, out_h, &mut out, PixelType::U8x3)
        .expect("output buffer sized for U8x3");
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&window, &mut dst, &opts)
        .expect("same pixel type on both sides");
    out
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

    fn sample(name: &str) -> RgbImage {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/dist/samples/");
        image::open(format!("{dir}{name}")).unwrap().into_rgb8()
    }

    /// The resize against image's `Triangle` (what it replaced) on real
    /// photos at the detector's shrinks: within rounding (measured with
    /// AVX2: mean 0.10-0.12 levels, max 1; the bound leaves one level for
    /// other kernels), so a kernel that drifts, or loses the antialiasing,
    /// fails here.
    #[test]
    fn parity_with_image_triangle_on_a_real_frame() {
        for (name, w, h) in [("zidane.jpg", 416, 234), ("bus.jpg", 312, 416)] {
            let img = sample(name);
            let ours = resize_window(&img, [0, 0, img.width(), img.height()], w, h);
            let theirs = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            let diffs: Vec<u8> = ours
                .iter()
                .zip(theirs.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .collect();
            let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
            let max = *diffs.iter().max().unwrap();
            assert_eq!(ours.len(), theirs.as_raw().len());
            assert!(mean < 0.5, "{name}: mean {mean}");
            assert!(max <= 2, "{name}: max {max}");
        }
    }

    /// A window letterboxes exactly as its copy would: same tensor, same
    /// placement, nothing from outside the window bleeding in at its edges.
    #[test]
    fn a_window_is_letterboxed_as_its_copy_would_be() {
        let img = sample("zidane.jpg");
        let map = PixelMap {
            bgr: false,
            divisor: 255.0,
            pad: 0.5,
        };
        for win in [
            [100, 50, 600, 500],
            [700, 300, 416, 416],
            [1000, 600, 900, 900],
        ] {
            let (x, y) = (win[0], win[1]);
            let (w, h) = (win[2].min(1280 - x), win[3].min(720 - y));
            let copy = image::imageops::crop_imm(&img, x, y, w, h).to_image();
            let (a, la) = letterbox_window(&img, win, 416, 416, map);
            let (b, lb) = letterbox_to(&copy, 416, 416, map);
            assert_eq!(la, lb, "{win:?}");
            assert!(a.data == b.data, "{win:?}");
        }
        // A window past the corner is clipped to the corner pixel, an
        // empty output is empty: neither panics.
        let (t, lb) = letterbox_window(&img, [5000, 5000, 9, 9], 4, 4, map);
        assert_eq!((lb.src_w, lb.src_h, t.data.len()), (1, 1, 48));
        assert!(resize_window(&img, [0, 0, 1280, 720], 0, 10).is_empty());
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
