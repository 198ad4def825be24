//! Turns tracked person boxes into events: `person_entered` once a track is
//! confirmed, `person_left` when it has been gone long enough, and a
//! debounced, rate-limited `count_changed` per camera.
//!
//! Why the rate limit: on a busy street the count changes about once a
//! second, and every change is a stored row (and an MQTT message). At most
//! one `count_changed` per `min_interval_ms` is emitted; a change inside the
//! interval is held, and when the interval is over the count as it then
//! stands goes out, so the latest count is never lost (only the
//! intermediate values are).
//!
//! Pure logic on injected times, so every rule is tested without a camera or
//! a clock. `F` is whatever stands for a frame (the shared raw frame,
//! `Arc<RgbImage>`, in the pipeline), kept for the best sighting of each
//! confirmed track only: a track that never confirms (flicker, a passing
//! false positive) holds no frame, so the frames held are at most one per
//! person present (people seen best in the same frame share it).

use std::collections::BTreeMap;

use crate::tracker::Coast;

/// One tracked person in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sighting {
    pub track_id: u64,
    /// `[x, y, w, h]` in frame pixels.
    pub bbox: [f64; 4],
    pub score: f64,
}

/// What a frame produced, for the event store.
#[derive(Debug, Clone, PartialEq)]
pub enum Emitted<F> {
    /// A track reached `min_hits`; `at` is when it was first seen.
    Entered {
        track_id: u64,
        at: i64,
        bbox: [f64; 4],
        score: f64,
        frame: F,
    },
    /// A confirmed track went unseen for `leave_after_ms`; carries its best sighting.
    Left {
        track_id: u64,
        entered_at: i64,
        /// Last sighting; never equal to `entered_at`, which keys the entry event.
        at: i64,
        bbox: [f64; 4],
        score: f64,
        frame: F,
    },
    /// The number of people present settled on a new value.
    Count {
        count: usize,
        previous: usize,
        at: i64,
    },
}

#[derive(Debug)]
struct Track<F> {
    first_seen: i64,
    last_seen: i64,
    hits: u32,
    entered: bool,
    /// Best score and box so far (since confirmation, once confirmed).
    best: (f64, [f64; 4]),
    /// The frame of the best sighting; `None` until the track is confirmed.
    frame: Option<F>,
    /// Time held (motion gating did not look for it) does not count
    /// towards leaving, as in the tracker.
    coast: Coast,
}

/// Per-camera event state.
#[derive(Debug)]
pub struct TrackEvents<F> {
    tracks: BTreeMap<u64, Track<F>>,
    min_hits: u32,
    leave_after_ms: i64,
    debounce_ms: i64,
    /// Least time between two `count_changed`, ms (0: no limit).
    min_interval_ms: i64,
    /// When the last `count_changed` went out.
    last_count_at: Option<i64>,
    reported: usize,
    candidate: Option<(usize, i64)>,
}

impl<F: Clone> TrackEvents<F> {
    /// `leave_after_ms` should match the tracker's `max_lost_ms`, so an event
    /// says "left" exactly when the tracker forgets the id.
    pub fn new(min_hits: u32, leave_after_ms: i64, debounce_ms: i64) -> Self {
        Self {
            tracks: BTreeMap::new(),
            min_hits: min_hits.max(1),
            leave_after_ms,
            debounce_ms,
            min_interval_ms: 0,
            last_count_at: None,
            reported: 0,
            candidate: None,
        }
    }

    /// At most one `count_changed` per `ms` (0: no limit); changes inside
    /// the interval are held, and the count as it stands when it is over
    /// goes out (`ingest.count_min_interval_ms`).
    pub fn with_count_interval(mut self, ms: i64) -> Self {
        self.min_interval_ms = ms.max(0);
        self
    }

    /// Feeds one analysed frame taken at `now`.
    pub fn update(&mut self, now: i64, seen: &[Sighting], frame: &F) -> Vec<Emitted<F>> {
        let mut out = Vec::new();
        for s in seen {
            let t = self.tracks.entry(s.track_id).or_insert_with(|| Track {
                first_seen: now,
                last_seen: now,
                hits: 0,
                entered: false,
                best: (f64::MIN, s.bbox),
                frame: None,
                coast: Coast::default(),
            });
            t.hits += 1;
            t.last_seen = now;
            t.coast.seen(now);
            if t.entered && s.score > t.best.0 {
                t.best = (s.score, s.bbox);
                t.frame = Some(frame.clone());
            }
            if !t.entered && t.hits >= self.min_hits {
                t.entered = true;
                t.best = (s.score, s.bbox);
                t.frame = Some(frame.clone());
                out.push(Emitted::Entered {
                    track_id: s.track_id,
                    at: t.first_seen,
                    bbox: s.bbox,
                    score: s.score,
                    frame: frame.clone(),
                });
            }
        }
        out.extend(self.tick(now));
        out
    }

    /// From the frame at `now` on, the tracks `ids` are held (and every
    /// other released): motion gating left them, standing still, to the
    /// periodic full pass, so the time they go unseen does not count
    /// towards `leave_after_ms` (the tracker holds the same ids, so the two
    /// still agree on when a person is gone). Call it for every frame,
    /// before [`Self::update`] or [`Self::tick`].
    pub fn hold(&mut self, now: i64, ids: &[u64]) {
        for (id, t) in &mut self.tracks {
            t.coast.set(ids.contains(id), now);
        }
    }

    /// The tracks `ids` were matched on the frame at `now` by detections too
    /// weak to report (ByteTrack's low-score continuations): they are still
    /// there, as the tracker keeps them, but neither count as a sighting
    /// towards entering nor give the event a frame. Without this a person
    /// seen only weakly for `leave_after_ms` left here while the tracker
    /// kept the id, and entered a second time under it. Call it before
    /// [`Self::update`] for the same frame.
    pub fn matched(&mut self, now: i64, ids: &[u64]) {
        for id in ids {
            if let Some(t) = self.tracks.get_mut(id) {
                t.last_seen = t.last_seen.max(now);
                t.coast.seen(now);
            }
        }
    }

    /// Time passes without a frame: tracks may leave and the count settle.
    pub fn tick(&mut self, now: i64) -> Vec<Emitted<F>> {
        let mut out = self.expire(now);
        out.extend(self.count(now));
        out
    }

    /// Tracks unseen for longer than `leave_after_ms` leave.
    fn expire(&mut self, now: i64) -> Vec<Emitted<F>> {
        let gone: Vec<u64> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.coast.unseen_ms(t.last_seen, now) > self.leave_after_ms)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in gone {
            let Some(t) = self.tracks.remove(&id) else {
                continue;
            };
            // Confirmed tracks always hold a frame (set on confirmation).
            if let (true, Some(frame)) = (t.entered, t.frame) {
                out.push(Emitted::Left {
                    track_id: id,
                    entered_at: t.first_seen,
                    at: t.last_seen.max(t.first_seen + 1),
                    bbox: t.best.1,
                    score: t.best.0,
                    frame,
                });
            }
        }
        out
    }

    /// Ends every confirmed track now: the camera went away.
    pub fn end_all(&mut self, now: i64) -> Vec<Emitted<F>> {
        for t in self.tracks.values_mut() {
            t.last_seen = t.last_seen.min(now);
            t.coast.set(false, now);
        }
        let mut out = self.expire(i64::MAX);
        // The camera's last word: neither debounced nor rate-limited.
        self.candidate = Some((0, i64::MIN / 2));
        self.last_count_at = None;
        out.extend(self.count(now));
        out
    }

    /// People present: confirmed tracks not yet left.
    pub fn present(&self) -> usize {
        self.tracks.values().filter(|t| t.entered).count()
    }

    fn count(&mut self, now: i64) -> Option<Emitted<F>> {
        let n = self.present();
        if n == self.reported {
            self.candidate = None;
            return None;
        }
        let since = match self.candidate {
            Some((c, since)) if c == n => since,
            _ => {
                self.candidate = Some((n, now));
                now
            }
        };
        let limited = self
            .last_count_at
            .is_some_and(|at| now - at < self.min_interval_ms);
        if now - since >= self.debounce_ms && !limited {
            let previous = std::mem::replace(&mut self.reported, n);
            self.candidate = None;
            self.last_count_at = Some(now);
            return Some(Emitted::Count {
                count: n,
                previous,
                at: now,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u64, score: f64) -> Sighting {
        Sighting {
            track_id: id,
            bbox: [id as f64, 0.0, 10.0, 20.0],
            score,
        }
    }

    /// A person the tracker keeps through weak (unreported) detections
    /// does not leave, so never enters twice under one id; weak matches
    /// alone neither confirm a track nor pick its frame.
    #[test]
    fn a_person_seen_only_weakly_stays_and_never_enters_twice() {
        let mut ev = TrackEvents::new(2, 1_000, 0);
        ev.update(0, &[s(1, 0.9)], &"f0");
        let entered = ev.update(200, &[s(1, 0.9)], &"f1");
        assert!(matches!(entered[0], Emitted::Entered { track_id: 1, .. }));
        // 1.4 s seen only by low-score detections: still there.
        let mut out = Vec::new();
        for at in (400..=1_800).step_by(200) {
            ev.matched(at, &[1]);
            out.extend(ev.update(at, &[], &"weak"));
        }
        assert!(
            out.iter().all(|e| !matches!(e, Emitted::Left { .. })),
            "{out:?}"
        );
        let back = ev.update(2_000, &[s(1, 0.95)], &"f2");
        assert!(
            back.iter().all(|e| !matches!(e, Emitted::Entered { .. })),
            "{back:?}"
        );
        // Then unseen: it leaves 1 s after the last weak or strong match,
        // with the best reported frame.
        let left = ev.tick(3_001);
        assert!(
            matches!(
                left[0],
                Emitted::Left {
                    track_id: 1,
                    at: 2_000,
                    frame: "f2",
                    ..
                }
            ),
            "{left:?}"
        );
        // Weak matches of a track never reported are ignored.
        ev.matched(3_200, &[7]);
        assert_eq!(ev.present(), 0);
        assert!(
            ev.update(3_400, &[s(7, 0.9)], &"f3").is_empty(),
            "one hit of two"
        );
    }

    #[test]
    fn enter_needs_min_hits_and_leave_carries_the_best_frame() {
        let mut ev = TrackEvents::new(2, 1_000, 500);
        assert!(ev.update(0, &[s(1, 0.5)], &"f0").is_empty());
        let out = ev.update(200, &[s(1, 0.9)], &"f1");
        assert_eq!(
            out[0],
            Emitted::Entered {
                track_id: 1,
                at: 0,
                bbox: [1.0, 0.0, 10.0, 20.0],
                score: 0.9,
                frame: "f1"
            }
        );
        assert_eq!(out.len(), 1, "count is debounced");
        ev.update(400, &[s(1, 0.6)], &"f2");
        let out = ev.update(800, &[s(1, 0.6)], &"f3");
        assert_eq!(
            out,
            vec![Emitted::Count {
                count: 1,
                previous: 0,
                at: 800
            }]
        );
        // Gone: nothing until leave_after_ms has passed since the last sighting.
        assert!(ev.update(1_700, &[], &"f4").is_empty());
        let out = ev.update(1_900, &[], &"f5");
        assert_eq!(
            out[0],
            Emitted::Left {
                track_id: 1,
                entered_at: 0,
                at: 800,
                bbox: [1.0, 0.0, 10.0, 20.0],
                score: 0.9,
                frame: "f1"
            }
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            ev.update(2_400, &[], &"f6"),
            vec![Emitted::Count {
                count: 0,
                previous: 1,
                at: 2_400
            }]
        );
    }

    #[test]
    fn only_confirmed_tracks_hold_a_frame() {
        let mut ev = TrackEvents::new(3, 1_000, 500);
        let f0 = std::sync::Arc::new(0u8);
        ev.update(0, &[s(7, 0.9)], &f0);
        ev.update(200, &[s(7, 0.95)], &f0);
        assert_eq!(
            std::sync::Arc::strong_count(&f0),
            1,
            "unconfirmed: no frame kept"
        );
        let f1 = std::sync::Arc::new(1u8);
        let out = ev.update(400, &[s(7, 0.5)], &f1);
        assert!(matches!(&out[0], Emitted::Entered { frame, .. } if **frame == 1));
        drop(out);
        assert_eq!(
            std::sync::Arc::strong_count(&f1),
            2,
            "confirmed: its frame kept"
        );
        ev.update(600, &[s(7, 0.6)], &f0);
        assert_eq!(
            std::sync::Arc::strong_count(&f1),
            1,
            "a better sighting replaces it"
        );
        let out = ev.update(5_000, &[], &f1);
        assert!(
            matches!(&out[0], Emitted::Left { frame, score, .. } if **frame == 0 && *score == 0.6)
        );
    }

    #[test]
    fn flicker_neither_enters_nor_changes_the_count() {
        let mut ev = TrackEvents::new(3, 1_000, 500);
        ev.update(0, &[s(7, 0.9)], &());
        ev.update(200, &[s(7, 0.9)], &());
        assert!(
            ev.update(5_000, &[], &()).is_empty(),
            "two hits: never entered, never left"
        );
        // A second person who stays shorter than the debounce never shows in the count.
        let mut ev = TrackEvents::new(1, 100, 500);
        assert!(matches!(
            ev.update(0, &[s(1, 0.9)], &())[..],
            [Emitted::Entered { .. }]
        ));
        ev.update(100, &[s(1, 0.9), s(2, 0.9)], &());
        let out = ev.update(300, &[s(1, 0.9)], &());
        assert!(
            matches!(out[..], [Emitted::Left { track_id: 2, .. }]),
            "{out:?}"
        );
        assert!(ev.update(600, &[s(1, 0.9)], &()).is_empty());
        let out = ev.update(900, &[s(1, 0.9)], &());
        assert_eq!(
            out,
            vec![Emitted::Count {
                count: 1,
                previous: 0,
                at: 900
            }]
        );
    }

    #[test]
    fn single_hit_tracks_leave_after_they_entered_and_end_all_closes() {
        let mut ev = TrackEvents::new(1, 1_000, 0);
        let out = ev.update(50, &[s(3, 0.8)], &());
        assert!(matches!(out[0], Emitted::Entered { at: 50, .. }));
        assert_eq!(
            out[1],
            Emitted::Count {
                count: 1,
                previous: 0,
                at: 50
            },
            "no debounce at 0 ms"
        );
        let out = ev.end_all(60);
        assert!(
            matches!(
                out[0],
                Emitted::Left {
                    entered_at: 50,
                    at: 51,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(
            out[1],
            Emitted::Count {
                count: 0,
                previous: 1,
                at: 60
            }
        );
        assert_eq!(ev.present(), 0);
    }
    #[test]
    fn count_changes_are_rate_limited_and_the_latest_count_still_goes_out() {
        let count = |out: Vec<Emitted<()>>| -> Vec<(usize, usize, i64)> {
            out.into_iter()
                .filter_map(|e| match e {
                    Emitted::Count {
                        count,
                        previous,
                        at,
                    } => Some((count, previous, at)),
                    _ => None,
                })
                .collect()
        };
        // No debounce, one count_changed per 5 s at most; tracks leave after 2.5 s.
        let mut ev = TrackEvents::new(1, 2_500, 0).with_count_interval(5_000);
        assert_eq!(count(ev.update(0, &[s(1, 0.9)], &())), vec![(1, 0, 0)]);
        // A crowd comes and partly goes inside the interval: nothing is emitted...
        let mut held = Vec::new();
        held.extend(count(ev.update(1_000, &[s(1, 0.9), s(2, 0.9)], &())));
        held.extend(count(ev.update(
            2_000,
            &[s(1, 0.9), s(2, 0.9), s(3, 0.9)],
            &(),
        )));
        held.extend(count(ev.update(4_000, &[s(1, 0.9), s(3, 0.9)], &())));
        held.extend(count(ev.tick(4_999)));
        assert!(held.is_empty(), "{held:?}");
        assert_eq!(ev.present(), 2, "2 left at 4.5 s");
        // ...and once it is over, the count as it stands (2; 1 was the last reported).
        assert_eq!(count(ev.tick(5_000)), vec![(2, 1, 5_000)]);
        // The last change of a quiet period goes out without any further frame.
        assert!(count(ev.tick(6_000)).is_empty(), "both still there");
        assert!(
            count(ev.tick(9_000)).is_empty(),
            "both left at 6.5 s, inside 5 s of 5 s"
        );
        assert_eq!(count(ev.tick(10_000)), vec![(0, 2, 10_000)]);
        assert!(
            count(ev.tick(60_000)).is_empty(),
            "nothing changed: nothing sent"
        );
        // After a long quiet, the first change goes out at once.
        assert_eq!(
            count(ev.update(60_000, &[s(4, 0.9)], &())),
            vec![(1, 0, 60_000)]
        );
        // A change that returns to the reported value inside the interval is no change.
        assert!(count(ev.update(60_050, &[s(4, 0.9), s(5, 0.9)], &())).is_empty());
        assert!(
            count(ev.update(63_000, &[s(4, 0.9)], &())).is_empty(),
            "5 left"
        );
        assert!(count(ev.update(65_100, &[s(4, 0.9)], &())).is_empty());
        // Shutdown's final count is not held back by the limit.
        assert_eq!(count(ev.end_all(65_200)), vec![(0, 1, 65_200)]);
        // Interval 0 is the old behaviour: every settled change goes out.
        let mut ev = TrackEvents::new(1, 100, 0);
        assert_eq!(count(ev.update(0, &[s(1, 0.9)], &())), vec![(1, 0, 0)]);
        assert_eq!(
            count(ev.update(1, &[s(1, 0.9), s(2, 0.9)], &())),
            vec![(2, 1, 1)]
        );
    }

    #[test]
    fn a_held_person_neither_leaves_nor_flaps_the_count() {
        let mut ev = TrackEvents::new(2, 3_000, 500);
        let mut out = Vec::new();
        for f in 0..10 {
            out.extend(ev.update(f * 200, &[s(1, 0.8)], &()));
        }
        // Held, standing still, for a minute of frames: no detector saw it.
        for f in 10..310 {
            ev.hold(f * 200, &[1]);
            out.extend(ev.tick(f * 200));
        }
        // A full pass sees it again.
        ev.hold(62_000, &[]);
        out.extend(ev.update(62_000, &[s(1, 0.8)], &()));
        let kinds: Vec<_> = out.iter().map(std::mem::discriminant).collect();
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(out[0], Emitted::Entered { track_id: 1, .. }));
        assert!(
            matches!(out[1], Emitted::Count { count: 1, .. }),
            "{kinds:?}"
        );
        // Released and not seen: it leaves `leave_after_ms` after that.
        ev.hold(62_200, &[]);
        assert!(ev.tick(65_000).is_empty());
        assert!(matches!(
            ev.tick(65_001)[..],
            [
                Emitted::Left {
                    track_id: 1,
                    at: 62_000,
                    ..
                },
                ..
            ]
        ));
        // A camera that stops ends a held person too.
        ev.update(70_000, &[s(2, 0.8)], &());
        ev.update(70_200, &[s(2, 0.8)], &());
        ev.hold(70_400, &[2]);
        let end = ev.end_all(70_400);
        assert!(
            matches!(end[0], Emitted::Left { track_id: 2, .. }),
            "{end:?}"
        );
    }
}
