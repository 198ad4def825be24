//! Splits ffmpeg's `image2pipe` MJPEG stream into whole JPEG files.
//!
//! ffmpeg hands us already-encoded JPEGs, so `latest.jpg` and event
//! snapshots are the bytes as they came (no re-encode on our side), and the
//! detector decodes each frame once. ffmpeg's mjpeg encoder writes no
//! embedded thumbnails, so a frame ends at its first EOI marker.

/// Reassembles JPEGs from arbitrary pipe reads.
#[derive(Debug)]
pub struct MjpegSplitter {
    buf: Vec<u8>,
    /// Where the EOI search resumes, so each byte is scanned once.
    scan_from: usize,
    max_frame: usize,
    /// Bytes thrown away: garbage before a SOI, or a frame over the cap.
    pub discarded: u64,
}

const SOI: [u8; 2] = [0xFF, 0xD8];
const EOI: [u8; 2] = [0xFF, 0xD9];

impl MjpegSplitter {
    /// `max_frame` bounds memory when the stream is not JPEG at all.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::with_capacity(256 * 1024),
            scan_from: 2,
            max_frame,
            discarded: 0,
        }
    }

    /// Adds bytes read from the pipe; returns every JPEG they completed.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            // Drop anything before the start of an image.
            match find(&self.buf, &SOI, 0) {
                Some(0) => {}
                Some(i) => {
                    self.discarded += i as u64;
                    self.buf.drain(..i);
                    self.scan_from = 2;
                }
                None => {
                    // Keep a trailing 0xFF: it may be the first half of a SOI.
                    let keep = usize::from(self.buf.last() == Some(&0xFF));
                    self.discarded += (self.buf.len() - keep) as u64;
                    self.buf.drain(..self.buf.len() - keep);
                    self.scan_from = 2;
                    return out;
                }
            }
            match find(&self.buf, &EOI, self.scan_from.saturating_sub(1).max(2)) {
                Some(end) => {
                    let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
                    self.scan_from = 2;
                    out.push(frame);
                }
                None => {
                    if self.buf.len() > self.max_frame {
                        self.discarded += self.buf.len() as u64;
                        self.buf.clear();
                        self.scan_from = 2;
                    } else {
                        self.scan_from = self.buf.len();
                    }
                    return out;
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8; 2], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(2)
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(fill: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend(std::iter::repeat_n(fill, len));
        v.extend([0xFF, 0xD9]);
        v
    }

    #[test]
    fn reassembles_frames_across_any_split() {
        let a = jpeg(1, 100);
        let b = jpeg(2, 7);
        let mut stream = b"junk".to_vec();
        stream.extend(&a);
        stream.extend(&b);
        for chunk in [1, 2, 3, 5, 64, 1000] {
            let mut s = MjpegSplitter::new(1 << 20);
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                got.extend(s.push(part));
            }
            assert_eq!(got, vec![a.clone(), b.clone()], "chunk size {chunk}");
            assert_eq!(s.discarded, 4);
        }
    }

    #[test]
    fn real_ffmpeg_frames_decode() {
        // A frame as ffmpeg's mjpeg encoder writes it: a real JPEG.
        let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 10, 10]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        let mut s = MjpegSplitter::new(1 << 20);
        let mut two = bytes.clone();
        two.extend(&bytes);
        let got = s.push(&two);
        assert_eq!(got.len(), 2);
        let back = image::load_from_memory(&got[1]).unwrap();
        assert_eq!((back.width(), back.height()), (16, 8));
    }

    #[test]
    fn oversized_or_garbage_input_is_bounded() {
        let mut s = MjpegSplitter::new(50);
        assert!(s.push(&[0xFF, 0xD8]).is_empty());
        assert!(s.push(&[0u8; 100]).is_empty());
        assert!(
            s.buf.is_empty(),
            "over the cap the partial frame is dropped"
        );
        assert!(s.push(&[7u8; 1000]).is_empty());
        assert!(s.buf.len() <= 1);
        assert_eq!(s.push(&jpeg(3, 10)), vec![jpeg(3, 10)]);
    }
}
