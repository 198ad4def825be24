//! The detection worker of one camera: takes the newest frame, runs person
//! detection on the shared engine (no HTTP hop) through the camera's own
//! tracker, which this worker owns (nothing on the AI port can reach it),
//! and hands the events [`TrackEvents`] derives to the camera's
//! [`outlet`](super::outlet), which writes them with their snapshots (and
//! descriptions) while this worker goes on with the next frame.
//!
//! The camera reader never waits for the detector: frames pass through a
//! one-frame [`Mailbox`], so when detection falls behind the older frame is
//! replaced and counted as dropped (per camera), and memory stays bounded:
//! one frame in the mailbox and one in flight per camera. The worker takes
//! a runner first ([`crate::ai::Engine::camera_turn`]: first come first
//! served, so with more cameras than runners they take turns and none
//! starves), then the newest frame; it records each frame's latency from
//! being read to its events written.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::gating::Gating;
use super::outlet;
use super::stats::CameraStats;
use super::tracks::{Emitted, Sighting, TrackEvents};
use super::{Ctx, IngestError};
use crate::ai::task::Params;
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

    /// The newest frame, if there is one.
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
    stop: CancellationToken,
) {
    let c = &ctx.cfg;
    let mut events = TrackEvents::new(c.min_hits, ctx.leave_after_ms, c.count_debounce_ms)
        .with_count_interval(c.count_min_interval_ms);
    let model_id = match ctx.cfg.detect_models.get(&camera) {
        Some(m) => m.clone(),
        None => ctx.engine.default_model().to_owned(),
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
    let gate = Arc::new(Mutex::new(Gating::new(&c.motion, &camera)));
    loop {
        tokio::select! {
            _ = mailbox.ready() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let out = events.tick(ctx.clock.now_ms());
                hand_over(&tx, &camera, out).await;
                continue;
            }
            _ = stop.cancelled() => break,
        }
        // The runner first, then the newest frame: a camera that waited its
        // turn analyses what it sees now, not what it saw when it queued.
        let turn = tokio::select! {
            t = ctx.engine.camera_turn() => t,
            _ = stop.cancelled() => break,
        };
        let (Ok(turn), Some(frame)) = (turn, mailbox.try_take()) else {
            continue;
        };
        let (cam, image, at, tracker, params) = (
            camera.clone(),
            frame.image.clone(),
            frame.at_ms,
            tracker.clone(),
            params.clone(),
        );
        let (gate, counters) = (gate.clone(), stats.clone());
        let result = ctx
            .engine
            .run_camera(turn, move |e| {
                let f = Frame {
                    image: RgbImage::clone(&image),
                    camera: Some(cam),
                    timestamp_ms: Some(at),
                };
                let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
                // Motion gating (ingest::gating): crops, a full pass, or nothing.
                let mut g = gate.lock().unwrap_or_else(|p| p.into_inner());
                g.count_people(e, &mut t, &f, &params, &counters)
            })
            .await;
        let seen: Vec<Sighting> = match result {
            Ok(None) => {
                let out = events.tick(frame.at_ms);
                hand_over(&tx, &camera, out).await;
                continue;
            }
            Ok(Some(r)) => {
                stats.analysed.fetch_add(1, Relaxed);
                r.detections
                    .iter()
                    .filter_map(|d| {
                        Some(Sighting {
                            track_id: d.track_id.flatten()?,
                            bbox: d.bbox.map(f64::from),
                            score: d.confidence,
                        })
                    })
                    .collect()
            }
            Err(e) => {
                // A bad frame or a failed inference: skip it.
                stats.dropped.fetch_add(1, Relaxed);
                stats.set_error(Some(format!("detection: {e}")));
                continue;
            }
        };
        let out = events.update(frame.at_ms, &seen, &frame.image);
        hand_over(&tx, &camera, out).await;
        stats.latency.0.observe(frame.read.elapsed().as_secs_f64());
    }
    let out = events.end_all(ctx.clock.now_ms());
    hand_over(&tx, &camera, out).await;
    // The outlet stores what it holds, then ends: the last events are written
    // before the camera task returns.
    drop(tx);
    let _ = writer.await;
}

/// Gives emitted events to the camera's outlet, in order. Waits only when
/// [`outlet::CHANNEL`] events are already waiting for the store.
async fn hand_over(
    tx: &tokio::sync::mpsc::Sender<Emitted<Arc<RgbImage>>>,
    camera: &str,
    out: Vec<Emitted<Arc<RgbImage>>>,
) {
    for e in out {
        if tx.send(e).await.is_err() {
            tracing::error!(camera, "event outlet gone; event lost");
        }
    }
}

/// Builds the stored event, writing its snapshot first so the row never
/// points at a file that is not there.
pub(super) async fn to_event(
    ctx: &Ctx,
    camera: &str,
    model: &(String, Option<String>),
    e: Emitted<Arc<RgbImage>>,
) -> Result<NewEvent, IngestError> {
    let base = NewEvent {
        camera_id: camera.to_owned(),
        label: Some("person".into()),
        model_id: Some(model.0.clone()),
        model_sha256: model.1.clone(),
        ..NewEvent::default()
    };
    Ok(match e {
        Emitted::Entered {
            track_id,
            at,
            bbox,
            score,
            frame,
        } => NewEvent {
            kind: "person_entered".into(),
            score: Some(score),
            track_id: Some(track_id as i64),
            started_at: Some(at),
            bbox: Some(bbox),
            snapshot_path: Some(snapshot(ctx, camera, at, track_id, "entered", frame).await?),
            ..base
        },
        Emitted::Left {
            track_id,
            entered_at,
            at,
            bbox,
            score,
            frame,
        } => NewEvent {
            kind: "person_left".into(),
            score: Some(score),
            track_id: Some(track_id as i64),
            started_at: Some(at),
            ended_at: Some(at),
            bbox: Some(bbox),
            snapshot_path: Some(snapshot(ctx, camera, at, track_id, "left", frame).await?),
            payload: obj(json!({"entered_at": entered_at, "duration_ms": at - entered_at})),
            ..base
        },
        Emitted::Count {
            count,
            previous,
            at,
        } => NewEvent {
            kind: "count_changed".into(),
            started_at: Some(at),
            payload: obj(json!({"count": count, "previous": previous})),
            ..base
        },
    })
}

/// Encodes the frame (the only JPEG encode on the detection path) and
/// writes `<snapshots>/<camera>/<at>-<track>-<what>.jpg`; returns its path
/// relative to the snapshots dir, as stored on the event.
async fn snapshot(
    ctx: &Ctx,
    camera: &str,
    at: i64,
    track: u64,
    what: &str,
    image: Arc<RgbImage>,
) -> Result<String, IngestError> {
    let rel = format!("{camera}/{at}-{track}-{what}.jpg");
    let path = ctx.snapshots_dir.join(&rel);
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
