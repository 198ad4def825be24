//! Where the detector looks in one frame (pure planning, no pixels).
//!
//! From the motion boxes and the tracked people's predicted boxes it
//! chooses model-sized crops of the full-resolution frame: each target,
//! grown by a margin, gets a square of the model's input side (larger only
//! when the target is larger) centred on it and shifted inside the frame;
//! crops that overlap a lot, or whose targets fit one crop together, are
//! merged until none do. Every target is covered. A frame that would need
//! more than `max_regions` crops, or crops that together cover half the
//! frame or more (several inferences where one would see it all), or whose
//! crop is the whole frame anyway, gets one full-frame pass instead, and so does any frame when the last
//! full pass is `full_every_ms` old (people who stand still and are no
//! longer tracked are found again). Nothing moving and nothing tracked, and
//! no full pass due: the detector does not run at all.
//!
//! Stationary tracks: a track seen at its latest look whose box has stayed
//! put (see [`Predicted::still_since_ms`]) for `still_after_ms` or longer,
//! and which no motion box overlaps, is not a target: it is left to the
//! periodic full pass, and the plan names it among the [`Planner::held`]
//! tracks (when no crop holds its centre), which the tracker and the event
//! rules then do not age. Motion over it makes it a target again at once;
//! a full pass that misses it makes it lost, and lost tracks are always
//! targets, so it is looked for in crops until found or forgotten.

use super::motion::Rect;
use crate::tracker::Predicted;

/// What to run on one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No detector run.
    Skip,
    /// The whole (letterboxed) frame, as without gating.
    Full,
    /// These crops of the frame, `[x1, y1, x2, y2]` in frame pixels.
    Regions(Vec<Rect>),
}

/// A target is grown by this fraction of its size on every side (at least
/// [`MIN_MARGIN`] pixels): a walking person's next step stays in the crop.
const MARGIN: f32 = 0.15;
const MIN_MARGIN: f32 = 8.0;
/// Two crops overlapping by more than this fraction of the smaller are merged.
const MERGE_OVERLAP: f64 = 0.5;

/// One camera's planning state: when the last full pass ran, and which
/// tracks the latest plan does not look at.
#[derive(Debug, Clone)]
pub struct Planner {
    full_every_ms: i64,
    max_regions: usize,
    /// How long a track stands still before it is left to the full pass
    /// (0: never).
    still_after_ms: i64,
    last_full: Option<i64>,
    held: Vec<u64>,
}

impl Planner {
    /// `full_every_ms`: the longest gap between full passes (0: only when
    /// needed); `max_regions`: the most crops per frame.
    pub fn new(full_every_ms: i64, max_regions: usize) -> Self {
        Self {
            full_every_ms,
            max_regions: max_regions.max(1),
            still_after_ms: 0,
            last_full: None,
            held: Vec::new(),
        }
    }

    /// Leaves tracks that stood still for `ms` (and that no motion
    /// overlaps) to the periodic full pass; 0 (the default): every track is
    /// a target.
    pub fn with_still_after(mut self, ms: i64) -> Self {
        self.still_after_ms = ms.max(0);
        self
    }

    /// The tracks the latest plan does not look at: stationary ones, unless
    /// a full pass or a crop holding their centre sees them anyway.
    pub fn held(&self) -> &[u64] {
        &self.held
    }

    /// Plans the frame taken at `now_ms` (the injectable clock's time) of
    /// size `frame`, for a detector with a square `model` input.
    pub fn plan(
        &mut self,
        now_ms: i64,
        frame: (u32, u32),
        model: u32,
        motion: &[Rect],
        tracked: &[Predicted],
    ) -> Plan {
        let due = self.full_every_ms > 0
            && self
                .last_full
                .is_none_or(|t| now_ms < t || now_ms - t >= self.full_every_ms);
        let (still, moving): (Vec<&Predicted>, Vec<&Predicted>) = tracked
            .iter()
            .partition(|p| self.stationary(p, now_ms, motion));
        let targets: Vec<[f32; 4]> = motion
            .iter()
            .map(|r| r.map(|v| v as f32))
            .chain(moving.iter().map(|p| p.bbox))
            .filter_map(|b| grown(b, frame))
            .collect();
        let plan = if due {
            Plan::Full
        } else if targets.is_empty() {
            Plan::Skip
        } else {
            self.crops(frame, model, &targets)
        };
        if plan == Plan::Full {
            self.last_full = Some(now_ms);
        }
        let unseen = |p: &&Predicted| match &plan {
            Plan::Full => false,
            Plan::Skip => true,
            Plan::Regions(r) => !r.iter().any(|c| holds_centre(c, &p.bbox)),
        };
        self.held = still.into_iter().filter(unseen).map(|p| p.id).collect();
        plan
    }

    /// Whether `p` is left to the full pass on the frame at `now_ms`: seen
    /// at its latest look, still for `still_after_ms`, and no motion on it.
    fn stationary(&self, p: &Predicted, now_ms: i64, motion: &[Rect]) -> bool {
        let b = p.bbox;
        let on_it = |m: &Rect| {
            (m[0] as f32) < b[2]
                && (m[2] as f32) > b[0]
                && (m[1] as f32) < b[3]
                && (m[3] as f32) > b[1]
        };
        self.still_after_ms > 0
            && p.still_since_ms
                .is_some_and(|s| now_ms.saturating_sub(s) >= self.still_after_ms)
            && !motion.iter().any(on_it)
    }

    fn crops(&self, frame: (u32, u32), model: u32, targets: &[[f32; 4]]) -> Plan {
        let mut regions: Vec<(Rect, [f32; 4])> = targets
            .iter()
            .map(|t| (square_around(t, frame, model), *t))
            .collect();
        while let Some((i, j)) = mergeable(&regions, model) {
            let (_, b) = regions.swap_remove(j);
            let a = regions[i].1;
            let union = [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ];
            regions[i] = (square_around(&union, frame, model), union);
        }
        let regions: Vec<(Rect, [f32; 4])> = regions
            .into_iter()
            .map(|(r, t)| (slimmed(r, &t, frame, model), t))
            .collect();
        let whole = |r: &Rect| r[2] - r[0] >= frame.0 && r[3] - r[1] >= frame.1;
        let cropped: u64 = regions.iter().map(|(r, _)| area(r)).sum();
        let costly = regions.len() > 1 && cropped * 2 >= area(&[0, 0, frame.0, frame.1]);
        if regions.len() > self.max_regions || costly || regions.iter().any(|(r, _)| whole(r)) {
            return Plan::Full;
        }
        Plan::Regions(regions.into_iter().map(|(r, _)| r).collect())
    }
}

/// The first pair of crops worth merging: their targets fit one model-sized
/// crop, or the crops overlap by more than [`MERGE_OVERLAP`] of the smaller.
fn mergeable(regions: &[(Rect, [f32; 4])], model: u32) -> Option<(usize, usize)> {
    for i in 0..regions.len() {
        for j in i + 1..regions.len() {
            let (ra, a) = regions[i];
            let (rb, b) = regions[j];
            let span = (a[2].max(b[2]) - a[0].min(b[0])).max(a[3].max(b[3]) - a[1].min(b[1]));
            let smaller = area(&ra).min(area(&rb)).max(1) as f64;
            if span <= model as f32 || overlap(&ra, &rb) as f64 > MERGE_OVERLAP * smaller {
                return Some((i, j));
            }
        }
    }
    None
}

/// A target box grown by the margin and clipped to the frame; `None` when
/// nothing of it is inside (a prediction that left the frame) or it is not
/// a box at all.
fn grown(b: [f32; 4], frame: (u32, u32)) -> Option<[f32; 4]> {
    if !b.iter().all(|v| v.is_finite()) || b[2] <= b[0] || b[3] <= b[1] {
        return None;
    }
    let mx = ((b[2] - b[0]) * MARGIN).max(MIN_MARGIN);
    let my = ((b[3] - b[1]) * MARGIN).max(MIN_MARGIN);
    let (w, h) = (frame.0 as f32, frame.1 as f32);
    let g = [
        (b[0] - mx).max(0.0),
        (b[1] - my).max(0.0),
        (b[2] + mx).min(w),
        (b[3] + my).min(h),
    ];
    (g[2] > g[0] && g[3] > g[1]).then_some(g)
}

/// A crop of side `max(model, target)` centred on the target, shifted to
/// lie inside the frame (and no larger than it).
fn square_around(t: &[f32; 4], frame: (u32, u32), model: u32) -> Rect {
    let side = (t[2] - t[0]).max(t[3] - t[1]).ceil().max(model as f32) as u32;
    let span = |lo: f32, hi: f32, len: u32| {
        let s = side.min(len);
        let centre = (lo + hi) / 2.0;
        let start = (centre - s as f32 / 2.0)
            .round()
            .clamp(0.0, (len - s) as f32) as u32;
        (start, start + s)
    };
    let (x1, x2) = span(t[0], t[2], frame.0);
    let (y1, y2) = span(t[1], t[3], frame.1);
    [x1, y1, x2, y2]
}

/// The short side of a slim crop: three quarters of the model's side,
/// rounded up to the detector's stride (416: 320, 320: 256).
fn slim_side(model: u32) -> u32 {
    (model * 3 / 4).div_ceil(32) * 32
}

/// A model-sized square crop `r` made slim where its target `t` fits: a
/// standing person gets a `slim x model` crop (320x416 at 416), a lying or
/// wide one `model x slim`, centred on the target and inside the frame.
/// The detector runs such a crop in the input it fits at the same 1:1
/// scale (`Detector::detect_window_fitted`), about a quarter less work than
/// the square: as much as a fitted full pass of a 4:3 frame, no more.
fn slimmed(r: Rect, t: &[f32; 4], frame: (u32, u32), model: u32) -> Rect {
    let slim = slim_side(model);
    let (w, h) = (r[2] - r[0], r[3] - r[1]);
    if w != model || h != model || slim >= model {
        return r;
    }
    let narrow = |lo: f32, hi: f32, len: u32| {
        let start = ((lo + hi) / 2.0 - slim as f32 / 2.0)
            .round()
            .clamp(0.0, len.saturating_sub(slim) as f32) as u32;
        (start, start + slim)
    };
    if t[2] - t[0] <= slim as f32 {
        let (x1, x2) = narrow(t[0], t[2], frame.0);
        [x1, r[1], x2, r[3]]
    } else if t[3] - t[1] <= slim as f32 {
        let (y1, y2) = narrow(t[1], t[3], frame.1);
        [r[0], y1, r[2], y2]
    } else {
        r
    }
}

/// Whether the centre of box `b` lies inside crop `c`.
fn holds_centre(c: &Rect, b: &[f32; 4]) -> bool {
    let (x, y) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    (c[0] as f32) <= x && x < c[2] as f32 && (c[1] as f32) <= y && y < c[3] as f32
}

fn area(r: &Rect) -> u64 {
    u64::from(r[2].saturating_sub(r[0])) * u64::from(r[3].saturating_sub(r[1]))
}

fn overlap(a: &Rect, b: &Rect) -> u64 {
    let w = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let h = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    u64::from(w) * u64::from(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: (u32, u32) = (1920, 1080);

    /// A planner whose first full pass is behind it.
    fn planner() -> Planner {
        let mut p = Planner::new(10_000, 3);
        assert_eq!(p.plan(0, HD, 416, &[], &[]), Plan::Full, "first frame");
        p
    }

    /// A track that has just moved (never stationary).
    fn moving(id: u64, bbox: [f32; 4]) -> Predicted {
        Predicted {
            id,
            bbox,
            still_since_ms: None,
        }
    }

    fn covers(r: &Rect, b: &Rect) -> bool {
        r[0] <= b[0] && r[1] <= b[1] && r[2] >= b[2] && r[3] >= b[3]
    }

    #[test]
    fn nothing_moving_nothing_tracked_runs_nothing_until_a_full_pass_is_due() {
        let mut p = planner();
        assert_eq!(p.plan(200, HD, 416, &[], &[]), Plan::Skip);
        assert_eq!(p.plan(9_999, HD, 416, &[], &[]), Plan::Skip);
        assert_eq!(p.plan(10_000, HD, 416, &[], &[]), Plan::Full);
        assert_eq!(p.plan(10_200, HD, 416, &[], &[]), Plan::Skip);
        // The clock stepping back does not stop full passes.
        assert_eq!(p.plan(5_000, HD, 416, &[], &[]), Plan::Full);
        // Never, when turned off (but a frame that needs it still gets one).
        let mut never = Planner::new(0, 2);
        assert_eq!(never.plan(0, HD, 416, &[], &[]), Plan::Skip);
    }

    #[test]
    fn one_small_mover_gets_one_slim_model_high_crop_around_it() {
        let mut p = planner();
        let m = [1000, 500, 1040, 600];
        let Plan::Regions(r) = p.plan(200, HD, 416, &[m], &[]) else {
            panic!()
        };
        assert_eq!(r.len(), 1);
        assert_eq!((r[0][2] - r[0][0], r[0][3] - r[0][1]), (320, 416));
        assert!(covers(&r[0], &m));
        // At the frame's corner the crop is shifted inside it.
        let Plan::Regions(r) = p.plan(400, HD, 416, &[[1900, 1060, 1920, 1080]], &[]) else {
            panic!()
        };
        assert_eq!(r, vec![[1600, 664, 1920, 1080]]);
        // A wide, low target gets a model-wide, slim-high crop; one too big
        // for either keeps the square (the 320 model: 256 and 320).
        let wide = [600, 500, 900, 560];
        let Plan::Regions(r) = p.plan(600, HD, 416, &[wide], &[]) else {
            panic!()
        };
        assert_eq!((r[0][2] - r[0][0], r[0][3] - r[0][1]), (416, 320));
        assert!(covers(&r[0], &wide));
        let Plan::Regions(r) = p.plan(800, HD, 320, &[[600, 500, 840, 740]], &[]) else {
            panic!()
        };
        assert_eq!((r[0][2] - r[0][0], r[0][3] - r[0][1]), (320, 320));
        let Plan::Regions(r) = p.plan(1_000, HD, 320, &[m], &[]) else {
            panic!()
        };
        assert_eq!((r[0][2] - r[0][0], r[0][3] - r[0][1]), (256, 320));
    }

    #[test]
    fn near_targets_merge_far_ones_do_not_and_every_target_is_covered() {
        let mut p = planner();
        let motion = [
            [100, 100, 150, 200],
            [300, 150, 350, 250],
            [1500, 700, 1560, 820],
        ];
        let tracked = [moving(1, [1600.0, 100.0, 1650.0, 220.0])];
        let Plan::Regions(r) = p.plan(200, HD, 416, &motion, &tracked) else {
            panic!()
        };
        assert_eq!(r.len(), 3, "{r:?}");
        for m in motion {
            assert!(r.iter().any(|c| covers(c, &m)), "{m:?} in {r:?}");
        }
        assert!(r.iter().any(|c| covers(c, &[1600, 100, 1650, 220])));
        // A big mover gets a crop as big as it (the detector shrinks it).
        let Plan::Regions(r) = p.plan(400, HD, 416, &[[200, 100, 900, 1000]], &[]) else {
            panic!()
        };
        assert!(r[0][3] - r[0][1] >= 900 && covers(&r[0], &[200, 100, 900, 1000]));
    }

    #[test]
    fn too_many_crops_or_a_small_frame_become_one_full_pass() {
        let mut p = planner();
        let spread: Vec<Rect> = (0..4)
            .map(|i| [i * 480 + 10, 500, i * 480 + 50, 600])
            .collect();
        assert_eq!(p.plan(200, HD, 416, &spread, &[]), Plan::Full);
        // That full pass counts: the next periodic one is 10 s after it.
        assert_eq!(p.plan(10_100, HD, 416, &[], &[]), Plan::Skip);
        // A frame no bigger than the model: a crop would be the frame.
        assert_eq!(
            p.plan(10_300, (320, 240), 416, &[[10, 10, 20, 20]], &[]),
            Plan::Full
        );
        // Two crops covering most of a small frame: one full pass is cheaper.
        let two = [[10, 10, 40, 90], [700, 480, 740, 570]];
        assert_eq!(p.plan(10_400, (768, 576), 416, &two, &[]), Plan::Full);
        // Predictions off the frame or broken are not targets.
        let off = [
            moving(1, [-500.0, 10.0, -400.0, 100.0]),
            moving(2, [f32::NAN, 0.0, 1.0, 1.0]),
        ];
        assert_eq!(p.plan(10_600, HD, 416, &[], &off), Plan::Skip);
    }

    #[test]
    fn a_track_standing_still_is_left_to_the_full_pass_until_motion_touches_it() {
        let mut p = Planner::new(10_000, 3).with_still_after(3_000);
        assert_eq!(p.plan(0, HD, 416, &[], &[]), Plan::Full);
        let at = [1000.0, 500.0, 1040.0, 600.0];
        let standing = |since| Predicted {
            id: 7,
            bbox: at,
            still_since_ms: Some(since),
        };
        // Still for less than 3 s: looked at in a crop, not held.
        let Plan::Regions(r) = p.plan(2_800, HD, 416, &[], &[standing(0)]) else {
            panic!()
        };
        assert!(covers(&r[0], &[1000, 500, 1040, 600]) && p.held().is_empty());
        // Still for 3 s: no crop for it, nothing runs, and it is held.
        assert_eq!(p.plan(3_000, HD, 416, &[], &[standing(0)]), Plan::Skip);
        assert_eq!(p.held(), [7]);
        // Motion elsewhere: a crop there only; it stays held.
        let far = [100, 100, 150, 200];
        let Plan::Regions(r) = p.plan(3_200, HD, 416, &[far], &[standing(0)]) else {
            panic!()
        };
        assert_eq!(r.len(), 1);
        assert!(covers(&r[0], &far) && p.held() == [7], "{r:?}");
        // Motion near it whose crop holds its centre: seen, so not held.
        let near = [1050, 520, 1080, 600];
        let Plan::Regions(r) = p.plan(3_400, HD, 416, &[near], &[standing(0)]) else {
            panic!()
        };
        assert!(covers(&r[0], &near) && p.held().is_empty(), "{r:?}");
        // Motion on it: a target again at once.
        let on = [1020, 550, 1060, 640];
        let Plan::Regions(r) = p.plan(3_600, HD, 416, &[on], &[standing(0)]) else {
            panic!()
        };
        assert!(covers(&r[0], &[1000, 500, 1060, 640]) && p.held().is_empty());
        // Lost at its latest look (the full pass missed it): looked for.
        let lost = Predicted {
            still_since_ms: None,
            ..standing(0)
        };
        assert!(matches!(
            p.plan(3_800, HD, 416, &[], &[lost]),
            Plan::Regions(_)
        ));
        // The periodic full pass looks at everything: nothing is held.
        assert_eq!(p.plan(10_000, HD, 416, &[], &[standing(0)]), Plan::Full);
        assert!(p.held().is_empty());
        assert_eq!(p.plan(10_200, HD, 416, &[], &[standing(0)]), Plan::Skip);
        // Without the rule (the default), a still track is always a target.
        let mut always = Planner::new(0, 3);
        let plan = always.plan(60_000, HD, 416, &[], &[standing(0)]);
        assert!(matches!(plan, Plan::Regions(_)) && always.held().is_empty());
    }
}
