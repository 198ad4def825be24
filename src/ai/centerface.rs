//! CenterFace's decoder: four maps at a quarter of the input resolution
//! (face-centre heatmap, log box size, centre offset, ten landmark channels)
//! into faces with five landmarks, in network pixels.

use super::backend::F32Tensor;
use super::error::AiError;
use super::nms::{nms_indices, RawDetection};

/// CenterFace's output stride.
const STRIDE: f32 = 4.0;

/// Candidates kept before NMS: a low threshold on a big frame must not turn
/// NMS quadratic.
const MAX_CANDIDATES: usize = 1000;

/// One face: box `[x1,y1,x2,y2]`, score and landmarks (image-left eye,
/// image-right eye, nose tip, mouth left, mouth right).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: [[f32; 2]; 5],
}

/// One `[1, C, h, w]` output, checked.
fn map(t: &F32Tensor, channels: usize, hw: (usize, usize)) -> Result<&[f32], AiError> {
    if t.shape != [1, channels, hw.0, hw.1] || t.data.len() != channels * hw.0 * hw.1 {
        return Err(AiError::inference(format!(
            "centerface output has shape {:?}, expected [1,{channels},{},{}]",
            t.shape, hw.0, hw.1
        )));
    }
    Ok(&t.data)
}

/// Decodes the outputs (in the model's order: heatmap, scale, offset,
/// landmarks) of a `width`x`height` input; NMS at `iou`; best first.
pub fn decode(
    outputs: &[F32Tensor],
    width: u32,
    height: u32,
    min_score: f32,
    iou: f32,
) -> Result<Vec<Face>, AiError> {
    let [heat, scale, offset, lms] = outputs else {
        return Err(AiError::inference(format!(
            "centerface gives 4 outputs, got {}",
            outputs.len()
        )));
    };
    let (h, w) = match heat.shape.as_slice() {
        [1, 1, h, w] => (*h, *w),
        s => {
            return Err(AiError::inference(format!(
                "centerface heatmap has shape {s:?}"
            )))
        }
    };
    let heat = map(heat, 1, (h, w))?;
    let scale = map(scale, 2, (h, w))?;
    let offset = map(offset, 2, (h, w))?;
    let lms = map(lms, 10, (h, w))?;
    let plane = h * w;
    let (fw, fh) = (width as f32, height as f32);
    let mut cells: Vec<usize> = (0..plane).filter(|&i| heat[i] > min_score).collect();
    if cells.len() > MAX_CANDIDATES {
        cells.sort_by(|&a, &b| heat[b].total_cmp(&heat[a]));
        cells.truncate(MAX_CANDIDATES);
    }
    let mut faces = Vec::with_capacity(cells.len());
    for i in cells {
        let (y, x) = ((i / w) as f32, (i % w) as f32);
        let bh = scale[i].exp() * STRIDE;
        let bw = scale[plane + i].exp() * STRIDE;
        let cy = (y + offset[i] + 0.5) * STRIDE;
        let cx = (x + offset[plane + i] + 0.5) * STRIDE;
        let x1 = (cx - bw / 2.0).clamp(0.0, fw);
        let y1 = (cy - bh / 2.0).clamp(0.0, fh);
        let mut landmarks = [[0.0f32; 2]; 5];
        for (j, p) in landmarks.iter_mut().enumerate() {
            *p = [
                lms[(2 * j + 1) * plane + i] * bw + x1,
                lms[2 * j * plane + i] * bh + y1,
            ];
        }
        let face = Face {
            bbox: [x1, y1, (x1 + bw).min(fw), (y1 + bh).min(fh)],
            score: heat[i],
            landmarks,
        };
        if face.landmarks.iter().flatten().all(|v| v.is_finite()) {
            faces.push(face);
        }
    }
    let raw: Vec<RawDetection> = faces
        .iter()
        .map(|f| RawDetection {
            bbox: f.bbox,
            score: f.score,
            class_id: 0,
        })
        .collect();
    Ok(nms_indices(&raw, iou)
        .into_iter()
        .map(|k| faces[k])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(c: usize, h: usize, w: usize, data: Vec<f32>) -> F32Tensor {
        F32Tensor {
            shape: vec![1, c, h, w],
            data,
        }
    }

    /// A 2x2 map (an 8x8 input): one face centred in cell (row 1, col 0),
    /// 8 px wide and 4 px high, plus a weaker duplicate NMS must drop.
    fn outputs() -> Vec<F32Tensor> {
        let mut heat = vec![0.0; 4];
        heat[2] = 0.9; // row 1, col 0
        heat[3] = 0.6; // row 1, col 1: overlaps the first
        let mut scale = vec![0.0; 8];
        scale[2] = 1.0f32.ln(); // height 4
        scale[4 + 2] = 2.0f32.ln(); // width 8
        scale[3] = 1.0f32.ln();
        scale[4 + 3] = 2.0f32.ln();
        let mut offset = vec![0.0; 8];
        offset[4 + 3] = -1.0; // the duplicate's centre lands on the first's
        let mut lms = vec![0.0; 40];
        for j in 0..5 {
            lms[(2 * j) * 4 + 2] = 0.1 * j as f32; // y, relative to height
            lms[(2 * j + 1) * 4 + 2] = 0.2 * j as f32; // x, relative to width
        }
        vec![
            t(1, 2, 2, heat),
            t(2, 2, 2, scale),
            t(2, 2, 2, offset),
            t(10, 2, 2, lms),
        ]
    }

    #[test]
    fn decodes_box_and_landmarks_in_input_pixels() {
        let faces = decode(&outputs(), 8, 8, 0.5, 0.3).unwrap();
        assert_eq!(faces.len(), 1, "{faces:?}");
        let f = faces[0];
        assert_eq!(f.score, 0.9);
        // centre (0.5*4, 1.5*4) = (2, 6); 8x4 box clipped at 0 on the left.
        assert_eq!(f.bbox, [0.0, 4.0, 8.0, 8.0]);
        for (j, p) in f.landmarks.iter().enumerate() {
            let j = j as f32;
            assert!((p[0] - 0.2 * j * 8.0).abs() < 1e-5, "{p:?}");
            assert!((p[1] - (4.0 + 0.1 * j * 4.0)).abs() < 1e-5, "{p:?}");
        }
        // Raising the threshold above both scores leaves nothing.
        assert!(decode(&outputs(), 8, 8, 0.95, 0.3).unwrap().is_empty());
        // A loose NMS keeps the duplicate too.
        assert_eq!(decode(&outputs(), 8, 8, 0.5, 1.0).unwrap().len(), 2);
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let mut o = outputs();
        o[3] = t(10, 2, 1, vec![0.0; 20]);
        assert!(decode(&o, 8, 8, 0.5, 0.3).is_err());
        assert!(decode(&outputs()[..3], 8, 8, 0.5, 0.3).is_err());
        let mut o = outputs();
        o[0].data.pop();
        assert!(decode(&o, 8, 8, 0.5, 0.3).is_err());
    }
}
