//! Where frames come from: `opennvr://` URIs confined to the frames dir,
//! inline base64, or uploaded bytes; and decoding them, once, with limits.

use std::io::Cursor;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use image::{ImageReader, RgbImage};
use percent_encoding::percent_decode_str;

use crate::confine::Confined;

mod error;
mod jpeg;

pub use error::FrameError;

/// A decoded frame and what we know about where it came from.
pub struct Frame {
    /// Shared, not owned: a camera's frame is the one its reader decoded,
    /// also held by the mailbox and by the events that snapshot it, never
    /// copied for the engine.
    pub image: Arc<RgbImage>,
    /// The camera the frame belongs to, which keys tracker state.
    pub camera: Option<String>,
    /// Capture time, if the caller knows it; otherwise the engine's clock is used.
    pub timestamp_ms: Option<i64>,
}

/// The frames root; every URI resolves strictly beneath it.
#[derive(Debug, Clone)]
pub struct FrameStore {
    root: PathBuf,
    max_bytes: u64,
}

/// A URI resolved to a path of plain names under the root (not opened yet).
#[derive(Debug)]
pub struct ResolvedFrame {
    /// Relative to the frames root.
    pub rel: PathBuf,
    pub camera: String,
}

impl FrameStore {
    /// `root` is created if missing so a fresh install has somewhere to put frames.
    pub fn new(root: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.canonicalize()?,
            max_bytes,
        })
    }

    /// Resolves `opennvr://frames/<camera>/<file>` (or the seed's shorter
    /// `opennvr://<camera>/<file>`).
    ///
    /// Each segment is percent-decoded once and must be a plain name: no `..`,
    /// `.`, separators or NUL. Symlinks that point out are caught when the
    /// file is opened ([`FrameStore::read`]).
    pub fn resolve(&self, uri: &str) -> Result<ResolvedFrame, FrameError> {
        let rest = uri.strip_prefix("opennvr://").ok_or_else(|| {
            FrameError::BadRequest(format!("frame uri must start with opennvr://: {uri:?}"))
        })?;
        let mut segs: Vec<&str> = rest.split('/').collect();
        if segs.first() == Some(&"frames") {
            segs.remove(0);
        }
        if segs.len() < 2 {
            return Err(FrameError::BadRequest(
                "frame uri must be opennvr://frames/<camera>/<file>".into(),
            ));
        }
        let mut rel = PathBuf::new();
        for raw in &segs {
            let seg = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| FrameError::BadRequest("frame uri is not valid UTF-8".into()))?;
            let plain = !seg.is_empty()
                && !seg.contains(['/', '\\', '\0'])
                && matches!(
                    Path::new(seg.as_ref()).components().next(),
                    Some(Component::Normal(_))
                )
                && Path::new(seg.as_ref()).components().count() == 1;
            if !plain {
                return Err(FrameError::Forbidden(format!(
                    "illegal segment {raw:?} in frame uri"
                )));
            }
            rel.push(seg.as_ref());
        }
        let camera = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(ResolvedFrame { rel, camera })
    }

    /// Reads a frame's bytes, opened confined to the frames dir (a symlink
    /// out is refused, and what is read is the file that was checked), and
    /// refuses files above the size limit.
    pub fn read(&self, uri: &str) -> Result<(Vec<u8>, String), FrameError> {
        let r = self.resolve(uri)?;
        match crate::confine::read(&self.root, &r.rel, self.max_bytes) {
            Ok(Some(bytes)) => Ok((bytes, r.camera)),
            Ok(None) => Err(FrameError::TooLarge(format!(
                "frame is over the limit of {} bytes",
                self.max_bytes
            ))),
            Err(Confined::Escapes) => Err(FrameError::Forbidden(format!(
                "{uri:?} leaves the frames dir"
            ))),
            Err(Confined::Missing) => Err(FrameError::NotFound(uri.to_owned())),
        }
    }
}

/// Decodes base64 (optionally a `data:` URL), ignoring whitespace.
pub fn decode_b64(s: &str) -> Result<Vec<u8>, FrameError> {
    let body = match s.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, b)| b).unwrap_or(""),
        None => s,
    };
    let clean: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .map_err(|e| FrameError::BadRequest(format!("frame.b64 is not valid base64: {e}")))
}

/// Decodes JPEG or PNG bytes from a client to RGB, refusing images over
/// `max_pixels` before allocating them, and torn JPEGs.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, FrameError> {
    decode(bytes, max_pixels, true)
}

fn decode(bytes: &[u8], max_pixels: u64, walk_scans: bool) -> Result<RgbImage, FrameError> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| FrameError::Undecodable(e.to_string()))
    };
    let r = reader()?;
    let format = r.format();
    match format {
        Some(image::ImageFormat::Jpeg) => {
            // The decoder fills a truncated scan with grey; a torn upload must not be analysed as a frame.
            let tail = &bytes[bytes.len().saturating_sub(64)..];
            if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
                return Err(FrameError::Undecodable(
                    "truncated JPEG (no end-of-image marker)".into(),
                ));
            }
        }
        Some(image::ImageFormat::Png) => {}
        Some(f) => {
            return Err(FrameError::Unsupported(format!(
                "{f:?} frames are not accepted"
            )))
        }
        None => return Err(FrameError::Unsupported("not a JPEG or PNG image".into())),
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| FrameError::Undecodable(e.to_string()))?;
    check_size(w as usize, h as usize, max_pixels)?;
    if walk_scans && format == Some(image::ImageFormat::Jpeg) {
        // ...and so does one torn mid-scan with an end marker appended.
        jpeg::check_whole(bytes).map_err(|e| FrameError::Undecodable(e.to_string()))?;
    }
    let img = reader()?
        .decode()
        .map_err(|e| FrameError::Undecodable(e.to_string()))?;
    Ok(img.into_rgb8())
}

/// Refuses empty images and images over `max_pixels` (before allocating).
fn check_size(w: usize, h: usize, max_pixels: u64) -> Result<(), FrameError> {
    if w == 0 || h == 0 {
        return Err(FrameError::Undecodable("empty image".into()));
    }
    if (w as u64).saturating_mul(h as u64) > max_pixels {
        return Err(FrameError::TooLarge(format!(
            "image is {w}x{h}, limit {max_pixels} pixels"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (FrameStore, PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "opennvr-frames-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let root = base.join("frames");
        std::fs::create_dir_all(root.join("cam")).unwrap();
        std::fs::write(root.join("cam/a.jpg"), b"x").unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        (FrameStore::new(&root, 1 << 20).unwrap(), base)
    }

    #[test]
    fn resolves_both_uri_forms() {
        let (s, _) = store();
        assert_eq!(
            s.resolve("opennvr://frames/cam/a.jpg").unwrap().camera,
            "cam"
        );
        assert_eq!(s.resolve("opennvr://cam/a.jpg").unwrap().camera, "cam");
        assert!(matches!(
            s.read("opennvr://frames/cam/b.jpg"),
            Err(FrameError::NotFound(_))
        ));
    }

    #[test]
    fn traversal_is_refused() {
        let (s, base) = store();
        for uri in [
            "opennvr://frames/cam/../../secret",
            "opennvr://frames/../secret",
            "opennvr://frames/cam/%2e%2e/%2e%2e/secret",
            "opennvr://frames/cam/..%2f..%2fsecret",
            "opennvr://frames/cam/..%5c..%5csecret",
            "opennvr://frames/cam/a.jpg%00",
            "opennvr://frames//etc/passwd",
            "opennvr://frames/cam/./a.jpg",
        ] {
            assert!(
                matches!(s.resolve(uri), Err(FrameError::Forbidden(_))),
                "{uri} was not refused"
            );
        }
        std::os::unix::fs::symlink(base.join("secret"), base.join("frames/cam/link.jpg")).ok();
        assert!(matches!(
            s.read("opennvr://frames/cam/link.jpg"),
            Err(FrameError::Forbidden(_))
        ));
        assert!(matches!(
            s.resolve("file:///etc/passwd"),
            Err(FrameError::BadRequest(_))
        ));
    }

    #[test]
    fn decode_rejects_garbage_and_bombs() {
        assert!(matches!(
            decode_image(b"hello", 100),
            Err(FrameError::Unsupported(_))
        ));
        let mut png = Vec::new();
        RgbImage::new(20, 20)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(decode_image(&png, 400).is_ok());
        assert!(matches!(
            decode_image(&png, 399),
            Err(FrameError::TooLarge(_))
        ));
        let truncated = &png[..png.len() / 2];
        assert!(matches!(
            decode_image(truncated, 400),
            Err(FrameError::Undecodable(_))
        ));
        let mut jpeg = Vec::new();
        RgbImage::new(64, 64)
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        assert!(decode_image(&jpeg, 64 * 64).is_ok());
        let torn = &jpeg[..jpeg.len() - 2];
        assert!(matches!(
            decode_image(torn, 64 * 64),
            Err(FrameError::Undecodable(_))
        ));
        // Torn mid-scan with the end marker appended: still refused.
        let mut noisy = RgbImage::new(64, 64);
        for (i, p) in noisy.pixels_mut().enumerate() {
            *p = image::Rgb([(i * 7) as u8, (i * 13) as u8, (i * 29) as u8]);
        }
        let mut full = Vec::new();
        noisy
            .write_to(&mut Cursor::new(&mut full), image::ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(
            decode_image(&full, 64 * 64).unwrap(),
            image::load_from_memory(&full).unwrap().into_rgb8()
        );
        let mut torn = full[..full.len() / 2].to_vec();
        torn.extend_from_slice(&[0xFF, 0xD9]);
        assert!(matches!(
            decode_image(&torn, 64 * 64),
            Err(FrameError::Undecodable(_))
        ));
        assert_eq!(decode_b64("data:image/png;base64,aGk=").unwrap(), b"hi");
        assert!(decode_b64("!!").is_err());
    }
}
