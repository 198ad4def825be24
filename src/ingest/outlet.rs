//! A camera's event outlet: the task between its detection worker and the
//! event store. The worker hands over what [`TrackEvents`] emitted and goes
//! back to its frames; the outlet writes snapshots, stores the events in
//! the order they were emitted and, with `[events] describe`, holds each
//! `person_entered` until its description is back ([`super::describe`]).
//!
//! Bounds: a description is waited for at most `describe_timeout_ms`, and
//! at most `describe_backlog` events of the camera wait behind it; past
//! either, the event goes out without one (its payload says why), so no
//! event is ever lost or reordered and the wait is bounded. The worker's
//! hand-over channel ([`CHANNEL`]) is the only thing it can wait on, and
//! the outlet keeps draining it whatever a description does. A snapshot
//! that cannot be written leaves its event without one
//! (`payload.snapshot_error`), never drops it. The outlet observes each
//! frame's latency once its last event is stored.
//!
//! [`TrackEvents`]: super::tracks::TrackEvents

use std::collections::VecDeque;
use std::sync::Arc;

use image::RgbImage;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::describe::{Description, Outcome};
use super::detect::to_event;
use super::stats::CameraStats;
use super::tracks::Emitted;
use super::Ctx;
use crate::nvr::store::NewEvent;

/// Emitted events a detection worker may hand over before it waits. Small
/// on purpose: each can hold a raw frame (`Arc<RgbImage>`, up to 2.7 MB at
/// 1280 px), so this bounds the frames queued per camera to 8. When the
/// store or the disk is slower than that, detection waits on the writer
/// (its newer frames are then dropped as usual, never queued): acceptable,
/// since events are what detection is for.
pub const CHANNEL: usize = 8;

/// One emitted event handed to the outlet. `read`, on the last event a
/// frame emitted, is when that frame was read: once it is stored the
/// frame's latency is observed (`opennvr_camera_frame_to_event_seconds`).
#[derive(Debug)]
pub struct Handed {
    /// What [`TrackEvents`] emitted.
    pub event: Emitted<Arc<RgbImage>>,
    /// When the frame was read, on its frame's last event only.
    pub read: Option<Instant>,
}

/// Why an event went out without a description (`payload.description_skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The describer's queue was full.
    Busy,
    /// No description within `describe_timeout_ms`.
    Timeout,
    /// `describe_backlog` events were waiting behind it.
    Backlog,
    /// The camera stopped first.
    Stopped,
    /// Describing failed (logged).
    Failed,
}

impl Skipped {
    fn as_str(self) -> &'static str {
        match self {
            Skipped::Busy => "busy",
            Skipped::Timeout => "timeout",
            Skipped::Backlog => "backlog",
            Skipped::Stopped => "stopped",
            Skipped::Failed => "failed",
        }
    }
}

/// What an event waits for before it may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Nothing: stored as soon as those before it are.
    Nothing,
    /// The description with this sequence number.
    For(u64),
    /// Nothing any more: it goes out undescribed, for this reason.
    Skip(Skipped),
}

struct Held {
    ev: NewEvent,
    /// `(sequence, deadline on the monotonic clock)` while waiting.
    waiting: Option<(u64, Duration)>,
}

/// The order keeper: events in emission order, the head held while its
/// description is owed. Pure (times are passed in), so every rule is
/// tested without a camera, a model or a clock.
pub struct Ordered {
    held: VecDeque<Held>,
    timeout: Duration,
    backlog: usize,
}

impl Ordered {
    /// `timeout`: longest wait for a description; `backlog`: most events
    /// held behind one.
    pub fn new(timeout: Duration, backlog: usize) -> Self {
        Self {
            held: VecDeque::new(),
            timeout,
            backlog,
        }
    }

    /// Takes the next emitted event at monotonic time `now`.
    pub fn push(&mut self, mut ev: NewEvent, wait: Wait, now: Duration) {
        let waiting = match wait {
            Wait::Nothing => None,
            Wait::For(seq) => Some((seq, now + self.timeout)),
            Wait::Skip(why) => {
                annotate(&mut ev, Err(why));
                None
            }
        };
        self.held.push_back(Held { ev, waiting });
    }

    /// A description came back; one nobody waits for any more is dropped.
    pub fn resolve(&mut self, seq: u64, outcome: Outcome) {
        if let Some(h) = self
            .held
            .iter_mut()
            .find(|h| h.waiting.is_some_and(|(s, _)| s == seq))
        {
            h.waiting = None;
            annotate(&mut h.ev, outcome.map_err(|_| Skipped::Failed));
        }
    }

    /// The events that may be stored now, in order: everything up to the
    /// first one still waiting within its deadline and the backlog.
    /// `stopping`: the camera stops, nothing waits any more.
    pub fn ready(&mut self, now: Duration, stopping: bool) -> Vec<NewEvent> {
        let mut out = Vec::new();
        let limit = self.backlog + 1;
        loop {
            let over = self.held.len() > limit;
            let Some(head) = self.held.front_mut() else {
                break;
            };
            if let Some((_, deadline)) = head.waiting {
                let why = if stopping {
                    Skipped::Stopped
                } else if now >= deadline {
                    Skipped::Timeout
                } else if over {
                    Skipped::Backlog
                } else {
                    break;
                };
                head.waiting = None;
                annotate(&mut head.ev, Err(why));
            }
            if let Some(h) = self.held.pop_front() {
                out.push(h.ev);
            }
        }
        out
    }

    /// When the head's wait runs out, on the monotonic clock.
    pub fn deadline(&self) -> Option<Duration> {
        self.held.front()?.waiting.map(|(_, d)| d)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Writes a description (or why there is none) into the event's payload:
/// `description` + `description_model`, or `description: null` +
/// `description_skipped`.
fn annotate(ev: &mut NewEvent, d: Result<Description, Skipped>) {
    let p = ev.payload.get_or_insert_with(Default::default);
    match d {
        Ok(d) => {
            p.insert("description".into(), Value::String(d.caption));
            p.insert("description_model".into(), Value::String(d.model_id));
        }
        Err(why) => {
            p.insert("description".into(), Value::Null);
            p.insert("description_skipped".into(), json!(why.as_str()));
        }
    }
}

/// Runs a camera's outlet until the worker drops its sender; then stores
/// what is held (undescribed if still waiting) and ends.
pub async fn run(
    ctx: Arc<Ctx>,
    camera: String,
    stats: Arc<CameraStats>,
    model: (String, Option<String>),
    mut events: mpsc::Receiver<Handed>,
) {
    let timeout = Duration::from_millis(ctx.events.describe_timeout_ms);
    let mut ordered = Ordered::new(timeout, ctx.events.describe_backlog);
    let (reply, mut replies) = mpsc::unbounded_channel::<(u64, Outcome)>();
    let (mut seq, mut open) = (0u64, true);
    let mut latency = Latency::default();
    loop {
        for ev in ordered.ready(ctx.clock.mono(), !open) {
            ctx.emit(&stats, ev).await;
            latency.stored(&stats);
        }
        if !open && ordered.is_empty() {
            break;
        }
        let until = ordered
            .deadline()
            .map(|d| d.saturating_sub(ctx.clock.mono()));
        let timer = async {
            match until {
                Some(d) => ctx.clock.sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            e = events.recv(), if open => {
                let Some(Handed { event: e, read }) = e else {
                    open = false;
                    continue;
                };
                let snapshot = match (&e, &ctx.describer) {
                    (Emitted::Entered { frame, .. }, Some(_)) => Some(frame.clone()),
                    _ => None,
                };
                let ev = to_event(&ctx.snapshots_dir, &camera, &model, e).await;
                let wait = match (snapshot, &ctx.describer) {
                    (Some(image), Some(d)) => {
                        seq += 1;
                        if d.request(image, seq, &reply) {
                            Wait::For(seq)
                        } else {
                            Wait::Skip(Skipped::Busy)
                        }
                    }
                    _ => Wait::Nothing,
                };
                ordered.push(ev, wait, ctx.clock.mono());
                latency.pushed(read);
            }
            Some((s, outcome)) = replies.recv() => {
                if let Err(e) = &outcome {
                    tracing::warn!(camera, error = %e, "cannot describe an event snapshot");
                }
                ordered.resolve(s, outcome);
            }
            _ = timer => {}
        }
    }
}

/// Frames whose events are in the outlet: their latency is observed when
/// the last of their events is stored (events are stored in order).
#[derive(Default)]
struct Latency {
    pushed: u64,
    stored: u64,
    /// `(index of the frame's last event, when the frame was read)`.
    frames: VecDeque<(u64, Instant)>,
}

impl Latency {
    fn pushed(&mut self, read: Option<Instant>) {
        if let Some(read) = read {
            self.frames.push_back((self.pushed, read));
        }
        self.pushed += 1;
    }

    fn stored(&mut self, stats: &CameraStats) {
        self.stored += 1;
        while let Some(&(i, read)) = self.frames.front() {
            if i >= self.stored {
                break;
            }
            stats.latency.0.observe(read.elapsed().as_secs_f64());
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ev(kind: &str, track: i64) -> NewEvent {
        NewEvent {
            camera_id: "door".into(),
            kind: kind.into(),
            track_id: Some(track),
            ..NewEvent::default()
        }
    }

    fn kinds(v: &[NewEvent]) -> Vec<(String, Option<i64>)> {
        v.iter().map(|e| (e.kind.clone(), e.track_id)).collect()
    }

    fn said(e: &NewEvent) -> (Value, Option<&Value>) {
        let p = e.payload.as_ref().expect("a payload");
        (p["description"].clone(), p.get("description_skipped"))
    }

    fn described(caption: &str) -> Outcome {
        Ok(Description {
            caption: caption.into(),
            model_id: "detections:yolov4-tiny-416".into(),
        })
    }

    #[test]
    fn without_waits_events_pass_straight_through() {
        let mut o = Ordered::new(10 * S, 4);
        o.push(ev("person_entered", 1), Wait::Nothing, S);
        o.push(ev("count_changed", 0), Wait::Nothing, S);
        let out = o.ready(S, false);
        assert_eq!(out.len(), 2);
        assert!(out[0].payload.is_none(), "describe off: payload untouched");
        assert!(o.is_empty() && o.deadline().is_none());
    }

    #[test]
    fn a_left_never_overtakes_its_entered_and_the_description_lands() {
        let mut o = Ordered::new(10 * S, 4);
        o.push(ev("person_entered", 1), Wait::For(1), S);
        o.push(ev("count_changed", 0), Wait::Nothing, S);
        o.push(ev("person_left", 1), Wait::Nothing, 2 * S);
        assert!(
            o.ready(3 * S, false).is_empty(),
            "held behind the description"
        );
        assert_eq!(o.deadline(), Some(11 * S));
        o.resolve(1, described("Day. A person in the centre."));
        let out = o.ready(3 * S, false);
        assert_eq!(
            kinds(&out),
            [
                ("person_entered".into(), Some(1)),
                ("count_changed".into(), Some(0)),
                ("person_left".into(), Some(1))
            ]
        );
        assert_eq!(said(&out[0]).0, "Day. A person in the centre.");
        let p = out[0].payload.as_ref().unwrap();
        assert_eq!(p["description_model"], "detections:yolov4-tiny-416");
        assert!(out[2].payload.is_none());
    }

    #[test]
    fn a_late_description_times_out_and_is_then_ignored() {
        let mut o = Ordered::new(10 * S, 4);
        o.push(ev("person_entered", 1), Wait::For(7), S);
        o.push(ev("person_left", 1), Wait::Nothing, 2 * S);
        assert!(o.ready(11 * S - Duration::from_millis(1), false).is_empty());
        let out = o.ready(11 * S, false);
        assert_eq!(out.len(), 2);
        assert_eq!(said(&out[0]), (Value::Null, Some(&json!("timeout"))));
        o.resolve(7, described("too late"));
        assert!(o.is_empty() && o.ready(12 * S, false).is_empty());
    }

    #[test]
    fn a_backlog_ends_the_wait_and_later_descriptions_still_land() {
        let mut o = Ordered::new(10 * S, 2);
        o.push(ev("person_entered", 1), Wait::For(1), S);
        o.push(ev("person_entered", 2), Wait::For(2), S);
        o.push(ev("count_changed", 0), Wait::Nothing, S);
        assert!(
            o.ready(S, false).is_empty(),
            "two behind the head: still waiting"
        );
        o.resolve(2, described("Day. Two people on the left."));
        o.push(ev("person_left", 3), Wait::Nothing, S);
        let out = o.ready(S, false);
        assert_eq!(said(&out[0]), (Value::Null, Some(&json!("backlog"))));
        assert_eq!(said(&out[1]).0, "Day. Two people on the left.");
        assert_eq!(out.len(), 4, "the rest follow in order");
    }

    #[test]
    fn a_frames_latency_is_observed_once_its_last_event_is_stored() {
        let stats = CameraStats::default();
        let mut l = Latency::default();
        l.pushed(None); // a tick's event: no frame
        l.pushed(None); // frame A's first event
        l.pushed(Some(Instant::now())); // frame A's last event
        l.stored(&stats);
        l.stored(&stats);
        assert_eq!(
            stats.latency.0.count(),
            0,
            "frame A's last event not stored yet"
        );
        l.stored(&stats);
        assert_eq!(stats.latency.0.count(), 1);
        l.pushed(Some(Instant::now()));
        l.stored(&stats);
        assert_eq!(stats.latency.0.count(), 2);
    }

    #[test]
    fn busy_failed_and_stopped_are_said() {
        let mut o = Ordered::new(10 * S, 4);
        o.push(ev("person_entered", 1), Wait::Skip(Skipped::Busy), S);
        o.push(ev("person_entered", 2), Wait::For(1), S);
        o.push(ev("person_entered", 3), Wait::For(2), S);
        o.resolve(1, Err("no detector".into()));
        let out = o.ready(S, false);
        assert_eq!(said(&out[0]), (Value::Null, Some(&json!("busy"))));
        assert_eq!(said(&out[1]), (Value::Null, Some(&json!("failed"))));
        assert_eq!(out.len(), 2, "the third still waits");
        let out = o.ready(S, true);
        assert_eq!(said(&out[0]), (Value::Null, Some(&json!("stopped"))));
        assert!(o.is_empty());
    }
}
