//! Whether a JPEG's entropy-coded data holds the whole image.
//!
//! Decoders pad a scan that ends early with zero bits and carry on, so a torn
//! upload (even with an end-of-image marker appended) decodes to an image
//! whose lower part is invented. This walks the Huffman-coded blocks of
//! sequential JPEGs (what cameras and ffmpeg write) without any IDCT and
//! reports a scan that runs out of data before its last block. Progressive
//! and arithmetic-coded files are not walked.

/// Why a JPEG is not whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Torn {
    /// The data ends (or a marker comes) before the last block of a scan.
    #[error("truncated JPEG: the scan ends before the image does")]
    Truncated,
    /// The structure is not a JPEG we can follow.
    #[error("corrupt JPEG: {0}")]
    Corrupt(&'static str),
}

/// One Huffman table in the form of ITU T.81 F.2.2.3.
#[derive(Debug, Clone, Default)]
struct Huff {
    maxcode: [i32; 17],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

impl Huff {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Self {
        let mut h = Huff {
            values,
            maxcode: [-1; 17],
            ..Huff::default()
        };
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                h.valptr[len] = k;
                h.mincode[len] = code;
                code += n;
                k += n;
                h.maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        h
    }
}

#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
}

/// Reads entropy-coded bits; a marker (or the end) is the end of the data.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    left: u32,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, Torn> {
        if self.left == 0 {
            let b = *self.data.get(self.pos).ok_or(Torn::Truncated)?;
            if b == 0xFF {
                match self.data.get(self.pos + 1) {
                    Some(0x00) => self.pos += 2,
                    _ => return Err(Torn::Truncated),
                }
            } else {
                self.pos += 1;
            }
            self.acc = u32::from(b);
            self.left = 8;
        }
        self.left -= 1;
        Ok((self.acc >> self.left) & 1)
    }

    fn skip(&mut self, n: u8) -> Result<(), Torn> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    fn decode(&mut self, h: &Huff) -> Result<u8, Torn> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | self.bit()? as i32;
            if code <= h.maxcode[len] {
                let i = h.valptr[len] + code - h.mincode[len];
                return h
                    .values
                    .get(i as usize)
                    .copied()
                    .ok_or(Torn::Corrupt("bad Huffman table"));
            }
        }
        Err(Torn::Corrupt("bad Huffman code"))
    }

    /// At a restart interval: drops the partial byte, expects an RSTn marker.
    fn restart(&mut self) -> Result<(), Torn> {
        self.left = 0;
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xFF), Some(0xD0..=0xD7)) => {
                self.pos += 2;
                Ok(())
            }
            _ => Err(Torn::Truncated),
        }
    }
}

fn be16(d: &[u8], at: usize) -> Result<usize, Torn> {
    match (d.get(at), d.get(at + 1)) {
        (Some(a), Some(b)) => Ok(usize::from(*a) << 8 | usize::from(*b)),
        _ => Err(Torn::Truncated),
    }
}

/// Scans walked in one file; a sequential JPEG has one per component at most.
const MAX_SCANS: usize = 16;

/// Parsing state between markers.
#[derive(Default)]
struct Jpeg {
    width: u32,
    height: u32,
    comps: Vec<Component>,
    dc: [Option<Huff>; 4],
    ac: [Option<Huff>; 4],
    restart: u32,
}

/// `Ok` when every scan of a sequential Huffman JPEG has all its blocks (or
/// the file is of a kind this does not walk).
pub fn check_whole(d: &[u8]) -> Result<(), Torn> {
    if d.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(Torn::Corrupt("no start-of-image marker"));
    }
    let mut j = Jpeg::default();
    let mut pos = 2;
    let mut scans = 0;
    loop {
        // Like libjpeg, tolerate stray bytes (and fill bytes) before a marker.
        while pos + 1 < d.len() && (d[pos] != 0xFF || matches!(d[pos + 1], 0x00 | 0xFF)) {
            pos += 1;
        }
        let Some(&m) = d.get(pos + 1) else {
            // The end, outside any scan: the decoder decides.
            return Ok(());
        };
        pos += 2;
        match m {
            0xD9 => return Ok(()),
            0xD0..=0xD8 | 0x01 => continue,
            _ => {}
        }
        let len = be16(d, pos)?;
        let seg = d.get(pos + 2..pos + len).ok_or(Torn::Truncated)?;
        if len < 2 {
            return Err(Torn::Corrupt("bad segment length"));
        }
        pos += len;
        match m {
            // One frame per file: a second header could name a larger image
            // than the one whose size was checked before decoding.
            0xC0 | 0xC1 if !j.comps.is_empty() => {
                return Err(Torn::Corrupt("a second frame header"))
            }
            0xC0 | 0xC1 => j.frame(seg)?,
            // Progressive, lossless, arithmetic: not walked.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(()),
            0xC4 => j.tables(seg)?,
            0xDD => j.restart = be16(seg, 0)? as u32,
            0xDA => {
                scans += 1;
                if scans > MAX_SCANS {
                    return Err(Torn::Corrupt("too many scans"));
                }
                pos += j.scan(seg, &d[pos..])?;
            }
            _ => {}
        }
    }
}

impl Jpeg {
    fn frame(&mut self, s: &[u8]) -> Result<(), Torn> {
        let n = usize::from(*s.get(5).ok_or(Torn::Truncated)?);
        self.height = be16(s, 1)? as u32;
        self.width = be16(s, 3)? as u32;
        self.comps = (0..n)
            .map(|i| {
                let c = s.get(6 + 3 * i..9 + 3 * i).ok_or(Torn::Truncated)?;
                let (h, v) = (u32::from(c[1] >> 4), u32::from(c[1] & 15));
                if h == 0 || v == 0 {
                    return Err(Torn::Corrupt("bad sampling factors"));
                }
                Ok(Component { id: c[0], h, v })
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn tables(&mut self, mut s: &[u8]) -> Result<(), Torn> {
        while !s.is_empty() {
            let (class, id) = (s[0] >> 4, usize::from(s[0] & 15));
            let counts: [u8; 16] = s
                .get(1..17)
                .ok_or(Torn::Truncated)?
                .try_into()
                .map_err(|_| Torn::Truncated)?;
            let total: usize = counts.iter().map(|c| usize::from(*c)).sum();
            let values = s.get(17..17 + total).ok_or(Torn::Truncated)?.to_vec();
            let h = Huff::new(&counts, values);
            match (class, id) {
                (0, 0..=3) => self.dc[id] = Some(h),
                (1, 0..=3) => self.ac[id] = Some(h),
                _ => return Err(Torn::Corrupt("bad Huffman table id")),
            }
            s = &s[17 + total..];
        }
        Ok(())
    }

    /// Walks one scan over `data`; returns the bytes it used.
    fn scan(&self, s: &[u8], data: &[u8]) -> Result<usize, Torn> {
        if self.width == 0 || self.height == 0 || self.comps.is_empty() {
            return Err(Torn::Corrupt("scan before frame header"));
        }
        let n = usize::from(*s.first().ok_or(Torn::Truncated)?);
        if n == 0 || n > 4 || n > self.comps.len() {
            return Err(Torn::Corrupt("bad component count in scan"));
        }
        let mut parts = Vec::with_capacity(n);
        for i in 0..n {
            let c = s.get(1 + 2 * i..3 + 2 * i).ok_or(Torn::Truncated)?;
            let comp = *self
                .comps
                .iter()
                .find(|k| k.id == c[0])
                .ok_or(Torn::Corrupt("scan names an unknown component"))?;
            let dc = self.dc[usize::from(c[1] >> 4) & 3]
                .as_ref()
                .ok_or(Torn::Corrupt("missing DC table"))?;
            let ac = self.ac[usize::from(c[1] & 15) & 3]
                .as_ref()
                .ok_or(Torn::Corrupt("missing AC table"))?;
            parts.push((comp, dc, ac));
        }
        let hmax = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = self.comps.iter().map(|c| c.v).max().unwrap_or(1);
        let (w, h) = (self.width, self.height);
        // Blocks per MCU of each part, and the MCU count.
        let (mcus, per_mcu): (u64, Vec<u32>) = if n == 1 {
            let c = parts[0].0;
            let bw = (w * c.h).div_ceil(hmax).div_ceil(8);
            let bh = (h * c.v).div_ceil(vmax).div_ceil(8);
            (u64::from(bw) * u64::from(bh), vec![1])
        } else {
            let mw = w.div_ceil(8 * hmax);
            let mh = h.div_ceil(8 * vmax);
            (
                u64::from(mw) * u64::from(mh),
                parts.iter().map(|p| p.0.h * p.0.v).collect(),
            )
        };
        // Every block takes at least two bits (a DC code and an AC end), so a
        // scan that promises more blocks than its data can hold is torn; this
        // also keeps the walk proportional to the bytes sent, not the size claimed.
        let blocks = mcus.saturating_mul(per_mcu.iter().map(|b| u64::from(*b)).sum());
        if blocks.saturating_mul(2) > (data.len() as u64).saturating_mul(8) {
            return Err(Torn::Truncated);
        }
        let mut bits = Bits {
            data,
            pos: 0,
            acc: 0,
            left: 0,
        };
        for m in 0..mcus {
            if self.restart > 0 && m > 0 && m % u64::from(self.restart) == 0 {
                bits.restart()?;
            }
            for ((_, dc, ac), blocks) in parts.iter().zip(&per_mcu) {
                for _ in 0..*blocks {
                    block(&mut bits, dc, ac)?;
                }
            }
        }
        Ok(bits.pos)
    }
}

/// Consumes one 8x8 block's coefficients.
fn block(bits: &mut Bits<'_>, dc: &Huff, ac: &Huff) -> Result<(), Torn> {
    let s = bits.decode(dc)?;
    bits.skip(s)?;
    let mut k = 1;
    while k < 64 {
        let rs = bits.decode(ac)?;
        let (r, s) = (rs >> 4, rs & 15);
        if s == 0 {
            if r == 15 {
                k += 16;
                continue;
            }
            break;
        }
        k += usize::from(r);
        bits.skip(s)?;
        k += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};
    use std::io::Cursor;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut img = RgbImage::new(w, h);
        for (i, p) in img.pixels_mut().enumerate() {
            *p = Rgb([(i * 7) as u8, (i * 13) as u8, (i * 29) as u8]);
        }
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn whole_files_pass_and_torn_ones_do_not() {
        for (w, h) in [(64, 64), (33, 17), (1, 1)] {
            let full = jpeg(w, h);
            assert_eq!(check_whole(&full), Ok(()), "{w}x{h}");
            let mut torn = full[..full.len() * 2 / 3].to_vec();
            torn.extend_from_slice(&[0xFF, 0xD9]);
            if w > 1 {
                assert_eq!(check_whole(&torn), Err(Torn::Truncated), "{w}x{h}");
            }
        }
        assert!(check_whole(b"nope").is_err());
    }

    /// Header segments of a 65535x65535 greyscale frame, a Huffman table, a
    /// restart interval, then a scan with `comps` components.
    fn hostile(comps: u8) -> Vec<u8> {
        let mut d = vec![0xFF, 0xD8];
        d.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0]);
        let mut dht = vec![0xFF, 0xC4, 0, 20, 0x00];
        dht.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(&dht);
        let mut ac = dht.clone();
        ac[4] = 0x10;
        d.extend_from_slice(&ac);
        d.extend_from_slice(&[0xFF, 0xDD, 0, 4, 0xFF, 0xFF]);
        let len = 6 + 2 * u16::from(comps);
        d.extend_from_slice(&[0xFF, 0xDA, 0, len as u8, comps]);
        for _ in 0..comps {
            d.extend_from_slice(&[1, 0x00]);
        }
        d.extend_from_slice(&[0, 63, 0]);
        d
    }

    #[test]
    fn hostile_scans_are_refused_without_walking_the_claimed_size() {
        // No components: nothing would be read, yet 67 M MCUs would be walked.
        assert_eq!(
            check_whole(&hostile(0)),
            Err(Torn::Corrupt("bad component count in scan"))
        );
        // One component, 4 GPixel claimed, a few bytes of data: torn at once.
        let mut one = hostile(1);
        one.extend_from_slice(&[0u8; 64]);
        assert_eq!(check_whole(&one), Err(Torn::Truncated));
        // A second frame header after the first.
        let mut two = jpeg(16, 16);
        let sof = two.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let seg_len = usize::from(two[sof + 2]) << 8 | usize::from(two[sof + 3]);
        let header = two[sof..sof + 2 + seg_len].to_vec();
        two.splice(sof..sof, header);
        assert_eq!(
            check_whole(&two),
            Err(Torn::Corrupt("a second frame header"))
        );
    }
}
