//! Raw frames from ffmpeg: binary PPM (`P6`, rgb24, 8 bits), written by
//! ffmpeg's `image2` muxer through a temp file and a rename like the JPEG
//! before it, so the reader sees a whole frame or the previous one. No
//! JPEG encode in ffmpeg and no decode here: the pixels are copied once.
//! JPEG is made only where one is served: event snapshots, encoded here,
//! and the live `latest.jpg`, which ffmpeg writes once a second beside the
//! raw frames (`command`).

use image::RgbImage;

/// Quality of the JPEGs we encode (event snapshots).
const JPEG_QUALITY: u8 = 85;

/// Why a raw frame file was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RawFrameError {
    /// Not a PPM header we write (`P6 <w> <h> 255`).
    #[error("not a raw rgb24 frame: {0}")]
    Header(&'static str),
    /// More pixels than `max_image_pixels`.
    #[error("frame of {0}x{1} pixels is too large")]
    TooLarge(u32, u32),
    /// The pixel data is not exactly `w * h * 3` bytes: a torn or foreign file.
    #[error("frame has {got} pixel bytes, expected {want}")]
    Length { got: usize, want: usize },
}

/// Reads the next whitespace-delimited decimal field of a PPM header.
fn field(b: &[u8], pos: &mut usize) -> Result<u32, RawFrameError> {
    while b.get(*pos).is_some_and(u8::is_ascii_whitespace) {
        *pos += 1;
    }
    let start = *pos;
    while b.get(*pos).is_some_and(u8::is_ascii_digit) && *pos - start < 6 {
        *pos += 1;
    }
    std::str::from_utf8(&b[start..*pos])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RawFrameError::Header("bad number"))
}

/// The frame in `bytes` (a whole PPM file); the buffer becomes the image's
/// own, so the pixels are moved once, not copied twice.
pub fn parse_ppm(mut bytes: Vec<u8>, max_pixels: u64) -> Result<RgbImage, RawFrameError> {
    if !bytes.starts_with(b"P6") {
        return Err(RawFrameError::Header("no P6 magic"));
    }
    let mut pos = 2;
    let (w, h, max) = (
        field(&bytes, &mut pos)?,
        field(&bytes, &mut pos)?,
        field(&bytes, &mut pos)?,
    );
    if max != 255 {
        return Err(RawFrameError::Header("not 8 bits per channel"));
    }
    if w == 0 || h == 0 {
        return Err(RawFrameError::Header("empty frame"));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(RawFrameError::TooLarge(w, h));
    }
    // Exactly one whitespace byte ends the header.
    if !bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        return Err(RawFrameError::Header("no end of header"));
    }
    let want = w as usize * h as usize * 3;
    let got = bytes.len() - pos - 1;
    if got != want {
        return Err(RawFrameError::Length { got, want });
    }
    bytes.drain(..=pos);
    RgbImage::from_raw(w, h, bytes).ok_or(RawFrameError::Length { got, want })
}

/// A frame as JPEG, for an event snapshot (blocking, a few ms).
///
/// jpeg-encoder, not image's encoder: several times faster with the same
/// quality tables (IJG scaling of the Annex K tables) and the same 4:4:4
/// sampling, with AVX2 kernels where the CPU has them. Refused only when a
/// side exceeds 65535 pixels, which JPEG cannot hold.
pub fn to_jpeg(img: &RgbImage) -> std::io::Result<Vec<u8>> {
    let (w, h) = img.dimensions();
    let too_large = || std::io::Error::other(format!("{w}x{h} is too large for a JPEG"));
    let (w16, h16) = (
        u16::try_from(w).map_err(|_| too_large())?,
        u16::try_from(h).map_err(|_| too_large())?,
    );
    let mut out = Vec::with_capacity(img.as_raw().len() / 10);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
    // Its default below quality 90 is 4:2:0: 16 % smaller, 1.4 dB lower
    // PSNR on a vtest frame than the 4:4:4 we have always written.
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
    enc.encode(img.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(std::io::Error::other)?;
    Ok(out)
}

/// Encodes `img` and replaces `path` with it atomically (blocking).
pub fn write_jpeg(path: &std::path::Path, img: &RgbImage) -> std::io::Result<()> {
    super::write_atomic(path, &to_jpeg(img)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppm(w: u32, h: u32, extra: isize) -> Vec<u8> {
        let mut b = format!("P6\n{w} {h}\n255\n").into_bytes();
        let n = (w * h * 3) as isize + extra;
        b.extend((0..n).map(|i| i as u8));
        b
    }

    #[test]
    fn a_whole_frame_parses_and_a_torn_one_does_not() {
        let img = parse_ppm(ppm(4, 3, 0), 100).unwrap();
        assert_eq!(img.dimensions(), (4, 3));
        assert_eq!(img.get_pixel(1, 0).0, [3, 4, 5]);
        assert_eq!(
            parse_ppm(ppm(4, 3, -1), 100),
            Err(RawFrameError::Length { got: 35, want: 36 })
        );
        assert!(parse_ppm(ppm(4, 3, 1), 100).is_err());
        assert_eq!(
            parse_ppm(ppm(40, 30, 0), 100),
            Err(RawFrameError::TooLarge(40, 30))
        );
        assert!(parse_ppm(b"P5\n1 1\n255\n\0".to_vec(), 100).is_err());
        assert!(parse_ppm(b"P6\n1 1\n65535\n\0\0\0\0\0\0".to_vec(), 100).is_err());
        assert!(parse_ppm(b"P6".to_vec(), 100).is_err());
    }

    /// A real frame from ffmpeg parses; the same file cut short (what a
    /// writer killed mid-frame leaves, were it not renamed into place
    /// whole) is refused, never analysed.
    #[test]
    fn a_real_ffmpeg_frame_parses_and_its_torn_copy_is_refused() {
        let dir = std::env::temp_dir().join(format!("onvr-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("f.ppm");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/models/dist/samples");
        let img = std::fs::read_dir(src)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "jpg"))
            .unwrap();
        let ok = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&img)
            .args(["-pix_fmt", "rgb24", "-c:v", "ppm", "-f", "image2"])
            .arg(&out)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let bytes = std::fs::read(&out).unwrap();
        let frame = parse_ppm(bytes.clone(), 40_000_000).unwrap();
        let (w, h) = frame.dimensions();
        assert!(w > 100 && h > 100);
        let torn = bytes[..bytes.len() / 2].to_vec();
        assert!(matches!(
            parse_ppm(torn, 40_000_000),
            Err(RawFrameError::Length { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Frame 50 of vtest (a real camera frame, 768x576), from ffmpeg.
    fn vtest_frame() -> RgbImage {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i", super::super::demo::VTEST])
            .args(["-vf", "select=eq(n\\,50)", "-frames:v", "1"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .expect("ffmpeg (scripts/setup.sh)");
        RgbImage::from_raw(768, 576, out.stdout).expect("one 768x576 frame")
    }

    /// Peak signal-to-noise ratio of `b` against `a`, dB, over all channels.
    fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
        let se: f64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        10.0 * (255.0f64.powi(2) / (se / a.as_raw().len() as f64)).log10()
    }

    /// A snapshot of a real frame decodes whole through our own decoder
    /// path (which refuses torn scans) and through image's, at the frame's
    /// size and close to it. The bound: image's encoder, used before, made
    /// 39.4 dB of this frame at this quality (this one 39.5 dB).
    #[test]
    fn a_real_frame_snapshot_decodes_whole_and_close_to_the_frame() {
        let frame = vtest_frame();
        let jpeg = to_jpeg(&frame).unwrap();
        let ours = crate::frame::decode_image(&jpeg, 40_000_000).unwrap();
        let theirs = image::load_from_memory(&jpeg).unwrap().into_rgb8();
        assert_eq!(ours.dimensions(), (768, 576));
        assert_eq!(theirs.dimensions(), (768, 576));
        let db = psnr(&frame, &ours);
        assert!(db > 38.5, "{db:.2} dB");
        assert!(crate::frame::decode_image(&jpeg[..jpeg.len() / 2], 40_000_000).is_err());
    }

    #[test]
    fn jpeg_round_trips_the_frame_size() {
        let img = parse_ppm(ppm(32, 16, 0), 10_000).unwrap();
        let jpeg = to_jpeg(&img).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (32, 16));
    }
}
