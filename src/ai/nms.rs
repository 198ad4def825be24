//! Non-maximum suppression: one box per object, per class.

/// A box in some pixel space with its best class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawDetection {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: u32,
}

/// Intersection over union of two `[x1,y1,x2,y2]` boxes; 0 for degenerate ones.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy class-aware NMS: keeps the best box and drops others of the same
/// class overlapping it by more than `iou_thresh`. Output is sorted by score.
pub fn nms(dets: Vec<RawDetection>, iou_thresh: f32) -> Vec<RawDetection> {
    nms_indices(&dets, iou_thresh)
        .into_iter()
        .map(|i| dets[i])
        .collect()
}

/// Candidates NMS looks at: the best this many by score. NMS costs
/// candidates × kept boxes, so without a cap `confidence: 0, iou: 1` turns
/// one detection into seconds of work; no scene has this many objects.
pub const MAX_CANDIDATES: usize = 1000;

/// [`nms`] as indices into `dets`, best first, for callers that keep more
/// per box than a [`RawDetection`] holds (face landmarks). Boxes with
/// non-finite values are dropped; only the best [`MAX_CANDIDATES`] are
/// considered.
pub fn nms_indices(dets: &[RawDetection], iou_thresh: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..dets.len())
        .filter(|&i| dets[i].score.is_finite() && dets[i].bbox.iter().all(|v| v.is_finite()))
        .collect();
    let best_first = |a: &usize, b: &usize| dets[*b].score.total_cmp(&dets[*a].score);
    if order.len() > MAX_CANDIDATES {
        order.select_nth_unstable_by(MAX_CANDIDATES, best_first);
        order.truncate(MAX_CANDIDATES);
    }
    order.sort_by(best_first);
    let mut keep: Vec<usize> = Vec::with_capacity(order.len().min(128));
    for i in order {
        let d = &dets[i];
        if keep
            .iter()
            .all(|&k| dets[k].class_id != d.class_id || iou(&dets[k].bbox, &d.bbox) <= iou_thresh)
        {
            keep.push(i);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(b: [f32; 4], s: f32, c: u32) -> RawDetection {
        RawDetection {
            bbox: b,
            score: s,
            class_id: c,
        }
    }

    #[test]
    fn iou_basics() {
        assert_eq!(iou(&[0., 0., 10., 10.], &[0., 0., 10., 10.]), 1.0);
        assert_eq!(iou(&[0., 0., 10., 10.], &[20., 20., 30., 30.]), 0.0);
        assert!((iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0., 0., 0., 0.], &[0., 0., 0., 0.]), 0.0);
    }

    #[test]
    fn suppresses_within_class_only() {
        let out = nms(
            vec![
                det([0., 0., 10., 10.], 0.8, 0),
                det([1., 1., 11., 11.], 0.9, 0),
                det([1., 1., 11., 11.], 0.7, 16),
                det([f32::NAN, 0., 1., 1.], 0.99, 0),
            ],
            0.45,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].class_id, 16);
    }

    #[test]
    fn only_the_best_candidates_are_considered() {
        // Disjoint boxes with iou 1 keep everything: the cap is what bounds it.
        let many: Vec<RawDetection> = (0..50_000)
            .map(|i| {
                det(
                    [i as f32 * 20.0, 0., i as f32 * 20.0 + 10.0, 10.],
                    i as f32 / 1e5,
                    0,
                )
            })
            .collect();
        let out = nms(many, 1.0);
        assert_eq!(out.len(), MAX_CANDIDATES);
        assert_eq!(out[0].score, 49_999.0 / 1e5);
        assert!(out.iter().all(|d| d.score >= 49_000.0 / 1e5));
    }
}
