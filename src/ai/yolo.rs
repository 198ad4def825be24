//! Decoders for the two YOLO output layouts users bring:
//! darknet heads (raw conv outputs, anchors, sigmoid) and the
//! Ultralytics YOLOv8/YOLO11 export (`[1, 4+C, N]`, already activated).

use serde::Deserialize;

use super::backend::F32Tensor;
use super::error::AiError;
use super::nms::RawDetection;

/// One darknet `[yolo]` head: which output carries it and its anchors (the
/// sidecar's `stride` is not read: the grid comes from the output's shape).
#[derive(Debug, Clone, Deserialize)]
pub struct DarknetHead {
    pub name: String,
    /// `(w, h)` in network-input pixels.
    pub anchors: Vec<[f32; 2]>,
}

/// Darknet heads as described by the sidecar JSON `models/fetch.sh` writes.
#[derive(Debug, Clone, Deserialize)]
pub struct DarknetLayout {
    pub outputs: Vec<DarknetHead>,
    pub scale_x_y: f32,
    pub classes: usize,
}

/// How to read a detector's raw outputs.
#[derive(Debug, Clone)]
pub enum Decoder {
    Darknet(DarknetLayout),
    /// `[1, 4+C, N]` (or transposed `[1, N, 4+C]`): cx, cy, w, h in input pixels, then class scores.
    Ultralytics,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn inverse_sigmoid(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

impl Decoder {
    /// Returns every box scoring at least `min_score`, in network-input pixels, before NMS.
    /// `names` are the model's output names, used to find darknet heads;
    /// `input` is the network input's `(width, height)`, square or not.
    pub fn decode(
        &self,
        outputs: &[F32Tensor],
        names: &[String],
        input: (u32, u32),
        min_score: f32,
    ) -> Result<Vec<RawDetection>, AiError> {
        match self {
            Decoder::Darknet(layout) => decode_darknet(layout, outputs, names, input, min_score),
            Decoder::Ultralytics => {
                let out = outputs
                    .first()
                    .ok_or_else(|| AiError::inference("model has no output"))?;
                decode_ultralytics(out, min_score)
            }
        }
    }
}

fn decode_darknet(
    layout: &DarknetLayout,
    outputs: &[F32Tensor],
    names: &[String],
    (in_w, in_h): (u32, u32),
    min_score: f32,
) -> Result<Vec<RawDetection>, AiError> {
    let c = layout.classes;
    let sxy = layout.scale_x_y;
    // Objectness below this cannot reach min_score after the class product.
    let min_logit = inverse_sigmoid(min_score);
    let mut dets = Vec::new();
    for (i, head) in layout.outputs.iter().enumerate() {
        let idx = names.iter().position(|n| *n == head.name).unwrap_or(i);
        let t = outputs
            .get(idx)
            .ok_or_else(|| AiError::inference(format!("missing output {}", head.name)))?;
        let na = head.anchors.len();
        let [_, ch, gh, gw] = t.shape[..] else {
            return Err(AiError::inference(format!(
                "head {} has shape {:?}",
                head.name, t.shape
            )));
        };
        if ch != na * (5 + c) || t.data.len() != ch * gh * gw {
            return Err(AiError::inference(format!(
                "head {} has {} channels, expected {}",
                head.name,
                ch,
                na * (5 + c)
            )));
        }
        let plane = gh * gw;
        let at = |a: usize, k: usize, cell: usize| t.data[(a * (5 + c) + k) * plane + cell];
        for (a, anchor) in head.anchors.iter().enumerate() {
            for cell in 0..plane {
                let obj_logit = at(a, 4, cell);
                if obj_logit < min_logit {
                    continue;
                }
                let obj = sigmoid(obj_logit);
                let (gx, gy) = ((cell % gw) as f32, (cell / gw) as f32);
                let cx = (gx + sigmoid(at(a, 0, cell)) * sxy - (sxy - 1.0) / 2.0) / gw as f32;
                let cy = (gy + sigmoid(at(a, 1, cell)) * sxy - (sxy - 1.0) / 2.0) / gh as f32;
                let w = at(a, 2, cell).min(20.0).exp() * anchor[0];
                let h = at(a, 3, cell).min(20.0).exp() * anchor[1];
                let (cx, cy) = (cx * in_w as f32, cy * in_h as f32);
                let bbox = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
                // Like darknet, one box yields a detection for every class that
                // clears the threshold: a rider is both `person` and `motorbike`,
                // and keeping only the best class would lose the person.
                for k in 0..c {
                    let score = obj * sigmoid(at(a, 5 + k, cell));
                    if score >= min_score && score.is_finite() {
                        dets.push(RawDetection {
                            bbox,
                            score,
                            class_id: k as u32,
                        });
                    }
                }
            }
        }
    }
    Ok(dets)
}

fn decode_ultralytics(t: &F32Tensor, min_score: f32) -> Result<Vec<RawDetection>, AiError> {
    let [_, d1, d2] = t.shape[..] else {
        return Err(AiError::inference(format!(
            "expected a [1, 4+C, N] output, got {:?}",
            t.shape
        )));
    };
    // Exports put the small attribute axis first; a transposed export puts it last.
    let (attrs, n, channel_first) = if d1 <= d2 {
        (d1, d2, true)
    } else {
        (d2, d1, false)
    };
    if attrs < 5 || t.data.len() != attrs * n {
        return Err(AiError::inference(format!(
            "bad output shape {:?}",
            t.shape
        )));
    }
    let get = |k: usize, i: usize| {
        if channel_first {
            t.data[k * n + i]
        } else {
            t.data[i * attrs + k]
        }
    };
    let mut dets = Vec::new();
    for i in 0..n {
        let (best, score) = (4..attrs)
            .map(|k| (k - 4, get(k, i)))
            .fold((0, f32::NEG_INFINITY), |m, v| if v.1 > m.1 { v } else { m });
        if score < min_score || !score.is_finite() {
            continue;
        }
        let (cx, cy, w, h) = (get(0, i), get(1, i), get(2, i), get(3, i));
        dets.push(RawDetection {
            bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
            score,
            class_id: best as u32,
        });
    }
    Ok(dets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn darknet_cell_decodes_to_expected_box() {
        // One head, one anchor, 2 classes, stride 32: a 2x2 grid at input
        // 64, and a 4x2 grid at a wide 128x64 input.
        let layout = DarknetLayout {
            outputs: vec![DarknetHead {
                name: "h".into(),
                anchors: vec![[20.0, 40.0]],
            }],
            scale_x_y: 1.0,
            classes: 2,
        };
        // Centre of cell (1, 1): x (1.5/gw)*w, y (1.5/gh)*h; w 20, h 40.
        for ((gw, gh), input, want) in [
            ((2, 2), (64, 64), [38.0, 28.0, 58.0, 68.0]),
            ((4, 2), (128, 64), [38.0, 28.0, 58.0, 68.0]),
            ((2, 4), (64, 128), [38.0, 28.0, 58.0, 68.0]),
        ] {
            let mut data = vec![-10.0f32; 7 * gh * gw];
            let cell = gw + 1; // x=1, y=1
            let set = |d: &mut Vec<f32>, k: usize, v: f32| d[k * gh * gw + cell] = v;
            set(&mut data, 0, 0.0); // sigmoid 0.5 -> centre of the cell
            set(&mut data, 1, 0.0);
            set(&mut data, 2, 0.0); // exp(0) * anchor
            set(&mut data, 3, 0.0);
            set(&mut data, 4, 10.0); // objectness ~1
            set(&mut data, 6, 10.0); // class 1
            let t = F32Tensor {
                shape: vec![1, 7, gh, gw],
                data,
            };
            let dets = Decoder::Darknet(layout.clone())
                .decode(&[t], &["h".into()], input, 0.5)
                .unwrap();
            assert_eq!(dets.len(), 1);
            let d = dets[0];
            assert_eq!(d.class_id, 1);
            for (a, b) in d.bbox.iter().zip(want) {
                assert!((a - b).abs() < 1e-3, "{input:?}: {:?}", d.bbox);
            }
        }
    }

    #[test]
    fn ultralytics_both_orientations() {
        // 8 candidates (more than the 6 attributes, as in real exports), 2 classes.
        let n = 8;
        let rows = [
            [100.0, 50.0, 20.0, 10.0, 0.1, 0.9],
            [10.0, 10.0, 4.0, 4.0, 0.2, 0.1],
        ];
        let mut cf = vec![0.0; 6 * n];
        let mut cl = vec![0.0; 6 * n];
        for (i, r) in rows.iter().enumerate() {
            for (k, v) in r.iter().enumerate() {
                cf[k * n + i] = *v;
                cl[i * 6 + k] = *v;
            }
        }
        for t in [
            F32Tensor {
                shape: vec![1, 6, n],
                data: cf,
            },
            F32Tensor {
                shape: vec![1, n, 6],
                data: cl,
            },
        ] {
            let d = Decoder::Ultralytics
                .decode(&[t], &[], (640, 640), 0.5)
                .unwrap();
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].class_id, 1);
            assert_eq!(d[0].bbox, [90.0, 45.0, 110.0, 55.0]);
        }
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let t = F32Tensor {
            shape: vec![1, 3],
            data: vec![0.0; 3],
        };
        assert!(Decoder::Ultralytics
            .decode(&[t], &[], (640, 640), 0.5)
            .is_err());
        assert!(Decoder::Ultralytics
            .decode(&[], &[], (640, 640), 0.5)
            .is_err());
    }
}
