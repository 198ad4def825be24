//! Detection on crops of one frame (the camera pipeline's motion regions):
//! each crop runs through the detector at full resolution, its boxes are
//! moved back into frame pixels, and the crops' answers are merged into
//! one list, as if one detector had looked at the whole frame.
//!
//! A person standing across a crop's inner edge is seen cut in that crop;
//! when another crop sees the same person whole, the cut box is dropped
//! before NMS, so the whole box wins even when the cut one scores higher.
//! The detectors load with a fixed batch of one, so crops run one by one,
//! each in the input its window fits (a slim crop in a slim input).

use image::RgbImage;

use super::detector::Detector;
use super::error::AiError;
use super::nms::{nms, RawDetection};

/// A box this close (pixels) to a crop edge inside the frame is cut by it.
const EDGE: f32 = 2.0;
/// A cut box is the same object as a whole box of another crop when at
/// least this fraction of it lies inside that box.
const SAME_OBJECT: f32 = 0.6;

/// One box and where it came from.
#[derive(Debug, Clone, Copy)]
struct Seen {
    det: RawDetection,
    crop: usize,
    cut: bool,
}

/// Runs `det` on each crop `[x1, y1, x2, y2]` of `img` (clipped to it) and
/// returns the merged boxes in frame pixels, NMS applied, best first.
pub fn detect_crops(
    det: &Detector,
    img: &RgbImage,
    crops: &[[u32; 4]],
    min_score: f32,
    iou: f32,
) -> Result<Vec<RawDetection>, AiError> {
    let (w, h) = img.dimensions();
    let mut seen = Vec::new();
    for (i, c) in crops.iter().enumerate() {
        let (x1, y1) = (c[0].min(w), c[1].min(h));
        let (x2, y2) = (c[2].clamp(x1, w), c[3].clamp(y1, h));
        if x2 - x1 < 2 || y2 - y1 < 2 {
            continue;
        }
        let inner = [x1 > 0, y1 > 0, x2 < w, y2 < h];
        let edges = [x1, y1, x2, y2].map(|v| v as f32);
        let win = [x1, y1, x2 - x1, y2 - y1];
        for mut d in det.detect_window_fitted(img, win, min_score, iou)? {
            d.bbox = [
                d.bbox[0] + edges[0],
                d.bbox[1] + edges[1],
                d.bbox[2] + edges[0],
                d.bbox[3] + edges[1],
            ];
            seen.push(Seen {
                det: d,
                crop: i,
                cut: is_cut(&d.bbox, &edges, inner),
            });
        }
    }
    Ok(merge(seen, iou))
}

/// Whether `b` touches one of the crop's edges that lie inside the frame.
fn is_cut(b: &[f32; 4], edges: &[f32; 4], inner: [bool; 4]) -> bool {
    (inner[0] && b[0] - edges[0] <= EDGE)
        || (inner[1] && b[1] - edges[1] <= EDGE)
        || (inner[2] && edges[2] - b[2] <= EDGE)
        || (inner[3] && edges[3] - b[3] <= EDGE)
}

/// Drops cut boxes another crop sees whole, then NMS across crops.
fn merge(seen: Vec<Seen>, iou: f32) -> Vec<RawDetection> {
    let kept: Vec<RawDetection> = seen
        .iter()
        .filter(|s| {
            !s.cut
                || !seen.iter().any(|o| {
                    !o.cut
                        && o.crop != s.crop
                        && o.det.class_id == s.det.class_id
                        && covered(&s.det.bbox, &o.det.bbox) >= SAME_OBJECT
                })
        })
        .map(|s| s.det)
        .collect();
    nms(kept, iou)
}

/// The fraction of `a`'s area inside `b`.
fn covered(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = (a[2] - a[0]) * (a[3] - a[1]);
    if area > 0.0 {
        iw * ih / area
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(b: [f32; 4], score: f32, crop: usize, cut: bool) -> Seen {
        Seen {
            det: RawDetection {
                bbox: b,
                score,
                class_id: 0,
            },
            crop,
            cut,
        }
    }

    #[test]
    fn a_cut_box_gives_way_to_the_whole_one_of_another_crop() {
        // Crop 0 ends at x = 400 and sees the left part of a person (scored
        // higher); crop 1 sees all of them.
        let edges = [0.0, 0.0, 400.0, 416.0];
        let cut_box = [360.0, 100.0, 399.0, 300.0];
        assert!(is_cut(&cut_box, &edges, [false, false, true, true]));
        assert!(
            !is_cut(&cut_box, &edges, [false, false, false, true]),
            "frame edge"
        );
        let out = merge(
            vec![
                seen(cut_box, 0.9, 0, true),
                seen([360.0, 100.0, 440.0, 300.0], 0.7, 1, false),
                seen([10.0, 10.0, 50.0, 90.0], 0.8, 0, false),
            ],
            0.45,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1].bbox, [360.0, 100.0, 440.0, 300.0]);
        // Seen only cut: kept, it is all we have.
        let out = merge(vec![seen(cut_box, 0.9, 0, true)], 0.45);
        assert_eq!(out.len(), 1);
        // Two crops seeing the same person whole: NMS keeps one.
        let b = [100.0, 100.0, 150.0, 220.0];
        let out = merge(vec![seen(b, 0.8, 0, false), seen(b, 0.7, 1, false)], 0.45);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.8);
    }
}
