//! The detection worker of one camera: takes its frames in order, runs person
//! detection on the shared engine (no HTTP hop) through the camera's own
//! tracker, which this worker owns (nothing on the AI port can reach it),
//! and hands the events [`TrackEvents`] derives to the camera's
//! [`outlet`](super::outlet), which writes them with their snapshots (and
//! descriptions) while this worker goes on with the next frame.
//!
//! The camera reader never waits for the detector: frames pass through a
//! one-frame [`Mailbox`] to the worker, which holds at most two more: the
//! one in flight (waiting for a runner or running; the engine reads it in
//! place) and the one planned to go next while that one waits. Frames are
//! analysed in the order they were read, so a camera that falls behind for
//! a moment (a burst of other cameras' work) catches up without losing a
//! frame; only when it is three frames behind does a newer frame replace
//! the one in the mailbox, counted as dropped (per camera). So memory stays
//! bounded (see docs/ingest.md, "Memory") and so does the lag: a frame is
//! at most two frames behind when it is taken. The worker takes each frame
//! and runs the motion check and plan on it ([`Gating::plan`], no runner
//! needed: a quiet camera never waits behind a busy one), then, when there
//! is something to look at, a runner ([`crate::ai::Engine::camera_turn`]:
//! first come first served, so with more cameras than runners they take
//! turns and none starves) for that frame and its plan. While it waits,
//! the next frame is checked: one with nothing to look at is done, not
//! dropped. Each analysed frame's latency is recorded from being read to
//! its events stored (by the outlet), or to the end of its analysis when
//! it emitted none.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::gating::Gating;
use super::outlet;
use super::regions::Plan;
use super::stats::CameraStats;
use super::tracks::{Emitted, Sighting, TrackEvents};
use super::{Ctx, IngestError};
use crate::ai::task::Params;
use crate::ai::{AiError, PersonTracker};
use crate::config::CameraMotion;
use crate::frame::Frame;
use crate::nvr::store::NewEvent;

/// One raw frame and when it arrived.
#[derive(Debug, Clone)]
pub struct PendingFrame {
    pub image: Arc<RgbImage>,
    pub at_ms: i64,
    /// When it was read (monotonic), for the frame-to-event latency.
    pub read: Instant,
}

impl PendingFrame {
    /// The engine's view of this frame of `camera`: the same pixels, shared
    /// (an `Arc`), not copied, so a frame in flight costs no second buffer.
    pub fn for_engine(&self, camera: &str) -> Frame {
        Frame {
            image: self.image.clone(),
            camera: Some(camera.to_owned()),
            timestamp_ms: Some(self.at_ms),
        }
    }
}

/// Holds at most one frame: a newer one replaces it.
#[derive(Debug, Default)]
pub struct Mailbox {
    slot: Mutex<Option<PendingFrame>>,
    notify: Notify,
}

impl Mailbox {
    /// Leaves `f` for the worker; `true` when it replaced a frame the worker
    /// never got to (a dropped frame).
    pub fn put(&self, f: PendingFrame) -> bool {
        let replaced = self
            .slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(f)
            .is_some();
        self.notify.notify_one();
        replaced
    }

    /// Waits until a frame is there, without taking it.
    pub async fn ready(&self) {
        loop {
            if self
                .slot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                return;
            }
            self.notify.notified().await;
        }
    }

    /// Whether no frame is waiting (tests watch the worker take frames).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// The waiting frame (the newest read), if there is one.
    pub fn try_take(&self) -> Option<PendingFrame> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Runs until `stop`; then ends the open tracks (`person_left`) so every
/// entry has its exit.
pub async fn run(
    ctx: Arc<Ctx>,
    camera: String,
    mailbox: Arc<Mailbox>,
    stats: Arc<CameraStats>,
    mut motion: watch::Receiver<CameraMotion>,
    stop: CancellationToken,
) {
    let c = &ctx.cfg;
    let mut events = TrackEvents::new(c.min_hits, ctx.leave_after_ms, c.count_debounce_ms)
        .with_count_interval(c.count_min_interval_ms);
    let model_id = match ctx.cfg.detect_models.get(&camera) {
        Some(m) => m.clone(),
        None => ctx.engine.camera_model(&c.camera_model),
    };
    let params = Params {
        model: Some(model_id.clone()),
        ..Params::default()
    };
    let model = (model_id.clone(), ctx.engine.model_sha256(&model_id));
    let tracker = Arc::new(Mutex::new(ctx.engine.person_tracker()));
    let (tx, rx) = tokio::sync::mpsc::channel(outlet::CHANNEL);
    let writer = tokio::spawn(outlet::run(
        ctx.clone(),
        camera.clone(),
        stats.clone(),
        model,
        rx,
    ));
    let gate = Arc::new(Mutex::new(Gating::with(
        &c.motion,
        &motion.borrow_and_update(),
    )));
    let planner = Planning {
        ctx: &ctx,
        camera: &camera,
        gate: &gate,
        tracker: &tracker,
        params: &params,
        stats: &stats,
    };
    // A frame already planned while the one before it waited for a runner.
    let mut next: Option<(PendingFrame, Planned)> = None;
    // The newest frame found to need nothing while a planned one waited,
    // and whom its plan held: its time reaches the track rules once the
    // frame before it is done, so they never see time go backwards.
    let mut skipped: Option<(i64, Vec<u64>)> = None;
    'frames: loop {
        let (frame, plan) = match next.take() {
            Some((frame, (plan, held))) => {
                events.hold(frame.at_ms, &held);
                (frame, plan)
            }
            None => {
                tokio::select! {
                    _ = mailbox.ready() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        // No frames: nobody is held (a stalled camera's people leave).
                        let now = ctx.clock.now_ms();
                        events.hold(now, &[]);
                        let out = events.tick(now);
                        hand_over(&tx, &camera, out, None).await;
                        continue;
                    }
                    _ = stop.cancelled() => break,
                }
                let Some(frame) = mailbox.try_take() else {
                    continue;
                };
                // New motion settings (the camera API) apply from this frame on.
                if motion.has_changed().unwrap_or(false) {
                    let g = Gating::with(&c.motion, &motion.borrow_and_update());
                    *gate.lock().unwrap_or_else(|p| p.into_inner()) = g;
                }
                // The cheap part first, off the runners: the motion check and
                // the plan (ingest::gating). A frame with nothing to look at
                // never waits behind another camera's detector. The people
                // the plan leaves unlooked-at do not leave meanwhile.
                match planner.plan(&frame).await {
                    Ok((Plan::Skip, held)) => {
                        events.hold(frame.at_ms, &held);
                        let out = events.tick(frame.at_ms);
                        hand_over(&tx, &camera, out, None).await;
                        continue;
                    }
                    Ok((plan, held)) => {
                        events.hold(frame.at_ms, &held);
                        (frame, plan)
                    }
                    Err(e) => {
                        failed(&stats, &e);
                        continue;
                    }
                }
            }
        };
        // Then a runner (first come, first served) for this frame and its
        // plan, which is not redone (planning moves the gate on: a full
        // pass planned counts as done). While it waits, the camera's next
        // frames are still checked: one with nothing to look at is done at
        // once, and the first that needs the detector is planned to go
        // next, after this one (frames in the order read); frames after it
        // wait in the mailbox, the newest winning.
        let turn = {
            let turn = ctx.engine.camera_turn();
            tokio::pin!(turn);
            loop {
                tokio::select! {
                    t = &mut turn => break t,
                    _ = mailbox.ready(), if next.is_none() => {
                        let Some(newer) = mailbox.try_take() else {
                            continue;
                        };
                        match planner.plan(&newer).await {
                            Ok((Plan::Skip, held)) => skipped = Some((newer.at_ms, held)),
                            Ok(planned) => next = Some((newer, planned)),
                            Err(e) => failed(&stats, &e),
                        }
                    }
                    _ = stop.cancelled() => break 'frames,
                }
            }
        };
        let Ok(turn) = turn else {
            continue;
        };
        let f = frame.for_engine(&camera);
        let (tracker, params) = (tracker.clone(), params.clone());
        let (gate, counters) = (gate.clone(), stats.clone());
        let result = ctx
            .engine
            .run_camera(turn, move |e| {
                let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
                let g = gate.lock().unwrap_or_else(|p| p.into_inner());
                let at = f.timestamp_ms.unwrap_or_default();
                let r = g.run(e, &mut t, &f, &params, &plan, &counters)?;
                Ok(r.map(|r| (r, t.matched_at(at))))
            })
            .await;
        match result {
            Ok(Some((r, matched))) => {
                stats.analysed.fetch_add(1, Relaxed);
                events.matched(frame.at_ms, &matched);
                let seen: Vec<Sighting> = r
                    .detections
                    .iter()
                    .filter_map(|d| {
                        Some(Sighting {
                            track_id: d.track_id.flatten()?,
                            bbox: d.bbox.map(f64::from),
                            score: d.confidence,
                        })
                    })
                    .collect();
                let out = events.update(frame.at_ms, &seen, &frame.image);
                if out.is_empty() {
                    // Nothing to write: the frame is done once analysed.
                    stats.latency.0.observe(frame.read.elapsed().as_secs_f64());
                }
                hand_over(&tx, &camera, out, Some(frame.read)).await;
            }
            Ok(None) => {
                let out = events.tick(frame.at_ms);
                hand_over(&tx, &camera, out, None).await;
            }
            Err(e) => failed(&stats, &e),
        }
        // A newer frame checked meanwhile: its time, after this one's.
        if let Some((at, held)) = skipped.take().filter(|(at, _)| *at > frame.at_ms) {
            events.hold(at, &held);
            let out = events.tick(at);
            hand_over(&tx, &camera, out, None).await;
        }
    }
    let out = events.end_all(ctx.clock.now_ms());
    hand_over(&tx, &camera, out, None).await;
    // The outlet stores what it holds, then ends: the last events are written
    // before the camera task returns.
    drop(tx);
    let _ = writer.await;
}

/// What planning a frame needs, borrowed from the worker: the motion check
/// and the plan run on the blocking pool (cheap, no runner).
struct Planning<'a> {
    ctx: &'a Ctx,
    camera: &'a str,
    gate: &'a Arc<Mutex<Gating>>,
    tracker: &'a Arc<Mutex<PersonTracker>>,
    params: &'a Params,
    stats: &'a Arc<CameraStats>,
}

/// A frame's plan and the stationary people it leaves unlooked-at
/// ([`Gating::held`]).
type Planned = (Plan, Vec<u64>);

impl Planning<'_> {
    /// [`Gating::plan`] for `frame` (the camera's frames in order) and whom
    /// it holds.
    async fn plan(&self, frame: &PendingFrame) -> Result<Planned, AiError> {
        let f = frame.for_engine(self.camera);
        let engine = self.ctx.engine.clone();
        let (gate, tracker) = (self.gate.clone(), self.tracker.clone());
        let (params, counters) = (self.params.clone(), self.stats.clone());
        tokio::task::spawn_blocking(move || {
            let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
            let mut g = gate.lock().unwrap_or_else(|p| p.into_inner());
            let plan = g.plan(&engine, &mut t, &f, &params, &counters)?;
            Ok((plan, g.held().to_vec()))
        })
        .await
        .unwrap_or_else(|e| Err(AiError::inference(format!("motion check failed: {e}"))))
    }
}

/// A bad frame or a failed inference: the frame is skipped (counted as
/// dropped) and the camera's status says why.
fn failed(stats: &CameraStats, e: &AiError) {
    stats.dropped.fetch_add(1, Relaxed);
    stats.set_error(Some(format!("detection: {e}")));
}

/// Gives emitted events to the camera's outlet, in order; the last one
/// carries `read`, when its frame was read, so the outlet observes the
/// frame-to-event latency once they are stored. Waits when
/// [`outlet::CHANNEL`] events are already waiting for the store.
async fn hand_over(
    tx: &tokio::sync::mpsc::Sender<outlet::Handed>,
    camera: &str,
    out: Vec<Emitted<Arc<RgbImage>>>,
    read: Option<Instant>,
) {
    let last = out.len();
    for (i, event) in out.into_iter().enumerate() {
        let read = read.filter(|_| i + 1 == last);
        if tx.send(outlet::Handed { event, read }).await.is_err() {
            tracing::error!(camera, "event outlet gone; event lost");
        }
    }
}

/// Builds the stored event, writing its snapshot first so the row never
/// points at a file that is not there. A snapshot that cannot be written
/// (disk full, I/O error) leaves the event without one, its payload's
/// `snapshot_error` saying why: the event itself is never lost, so a
/// `person_left` always has its `person_entered`.
pub(super) async fn to_event(
    snapshots: &Path,
    camera: &str,
    model: &(String, Option<String>),
    e: Emitted<Arc<RgbImage>>,
) -> NewEvent {
    let base = NewEvent {
        camera_id: camera.to_owned(),
        label: Some("person".into()),
        model_id: Some(model.0.clone()),
        model_sha256: model.1.clone(),
        ..NewEvent::default()
    };
    let (ev, shot) = match e {
        Emitted::Entered {
            track_id,
            at,
            bbox,
            score,
            frame,
        } => (
            NewEvent {
                kind: "person_entered".into(),
                score: Some(score),
                track_id: Some(track_id as i64),
                started_at: Some(at),
                bbox: Some(bbox),
                ..base
            },
            Some((at, track_id, "entered", frame)),
        ),
        Emitted::Left {
            track_id,
            entered_at,
            at,
            bbox,
            score,
            frame,
        } => (
            NewEvent {
                kind: "person_left".into(),
                score: Some(score),
                track_id: Some(track_id as i64),
                started_at: Some(at),
                ended_at: Some(at),
                bbox: Some(bbox),
                payload: obj(json!({"entered_at": entered_at, "duration_ms": at - entered_at})),
                ..base
            },
            Some((at, track_id, "left", frame)),
        ),
        Emitted::Count {
            count,
            previous,
            at,
        } => (
            NewEvent {
                kind: "count_changed".into(),
                started_at: Some(at),
                payload: obj(json!({"count": count, "previous": previous})),
                ..base
            },
            None,
        ),
    };
    let Some((at, track, what, frame)) = shot else {
        return ev;
    };
    match snapshot(snapshots, camera, at, track, what, frame).await {
        Ok(rel) => NewEvent {
            snapshot_path: Some(rel),
            ..ev
        },
        Err(e) => {
            tracing::warn!(camera, error = %e, "cannot write event snapshot; event stored without it");
            let mut ev = ev;
            ev.payload
                .get_or_insert_with(Default::default)
                .insert("snapshot_error".into(), json!(e.to_string()));
            ev
        }
    }
}

/// Encodes the frame (the only JPEG encode on the detection path) and
/// writes `<snapshots>/<camera>/<at>-<track>-<what>.jpg`; returns its path
/// relative to the snapshots dir, as stored on the event.
async fn snapshot(
    snapshots: &Path,
    camera: &str,
    at: i64,
    track: u64,
    what: &str,
    image: Arc<RgbImage>,
) -> Result<String, IngestError> {
    let rel = format!("{camera}/{at}-{track}-{what}.jpg");
    let path = snapshots.join(&rel);
    tokio::task::spawn_blocking(move || super::raw::write_jpeg(&path, &image))
        .await
        .map_err(|_| IngestError::Internal("writing a snapshot"))??;
    Ok(rel)
}

/// A JSON object as an event payload.
pub fn obj(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    match v {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(frame: Arc<RgbImage>) -> Emitted<Arc<RgbImage>> {
        Emitted::Left {
            track_id: 3,
            entered_at: 1_000,
            at: 4_000,
            bbox: [1.0, 2.0, 30.0, 60.0],
            score: 0.8,
            frame,
        }
    }

    #[test]
    fn the_engine_reads_the_frame_in_flight_in_place() {
        let pending = PendingFrame {
            image: Arc::new(RgbImage::new(1280, 720)),
            at_ms: 1_234,
            read: Instant::now(),
        };
        let f = pending.for_engine("door");
        assert!(
            Arc::ptr_eq(&f.image, &pending.image),
            "the engine gets the reader's pixels, not a copy"
        );
        assert_eq!(
            (f.camera.as_deref(), f.timestamp_ms),
            (Some("door"), Some(1_234))
        );
    }

    #[tokio::test]
    async fn an_unwritable_snapshot_keeps_the_event_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let model = ("yolov4-tiny-416".to_owned(), None);
        let frame = Arc::new(RgbImage::new(16, 16));
        let ok = to_event(dir.path(), "door", &model, left(frame.clone())).await;
        let rel = ok.snapshot_path.expect("written");
        assert!(dir.path().join(rel).is_file());
        assert!(!ok.payload.unwrap().contains_key("snapshot_error"));
        // A file where the camera's snapshot folder should be: the write fails.
        std::fs::write(dir.path().join("gate"), b"not a folder").unwrap();
        let ev = to_event(dir.path(), "gate", &model, left(frame)).await;
        assert_eq!(ev.kind, "person_left");
        assert_eq!(ev.snapshot_path, None);
        let p = ev.payload.expect("a payload");
        assert_eq!(p["duration_ms"], 3_000, "the rest of the event is kept");
        let why = p["snapshot_error"].as_str().expect("a reason");
        assert!(!why.is_empty());
    }
}
