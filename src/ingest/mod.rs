//! Cameras come alive: one ffmpeg child per enabled camera records MP4
//! chunks and hands decoded frames to the detector; tracks become events.
//!
//! - [`command`]: the ffmpeg command line (record by stream copy or H.264
//!   transcode + raw rgb24 frames, [`raw`]); [`codec`]: which of the two (`record_mode`).
//! - [`camera`]: one camera's supervisor loop (spawn, read, [`stall`],
//!   restart with [`crate::backoff`]), health events; [`child`]: the ffmpeg
//!   process itself (shim, stop with `q`, frames and log through files, and
//!   waiting out the children of a daemon that died).
//! - [`detect`]: the detection worker (drops frames when behind) and event building.
//! - [`outlet`]: a camera's event writer (order kept, descriptions awaited
//!   within bounds); [`describe`]: the describer thread for `[events] describe`.
//! - [`gating`]: motion gating, from [`motion`] (where something moved) and
//!   [`regions`] (which crops of the frame the detector sees, or none).
//! - [`tracks`]: track -> event rules (pure).
//! - [`recorder`]: chunks into the index, crash reconciliation. [`retention`]: ageing out
//!   (recordings; events and snapshots through [`events_retention`]).
//! - [`demo`]: the demo camera from Debian's `vtest.avi`.
//!
//! [`Supervisor`] owns them: it reconciles the recordings folder once, then
//! keeps one camera task per enabled camera in the table, polling for edits.

pub(crate) mod camera;
pub(crate) mod child;
pub(crate) mod codec;
pub(crate) mod command;
pub mod demo;
pub(crate) mod describe;
pub(crate) mod detect;
pub(crate) mod events_retention;
#[cfg(test)]
mod footage;
pub(crate) mod gating;
pub mod motion;
pub(crate) mod outlet;
pub mod raw;
pub mod recorder;
pub mod regions;
pub(crate) mod retention;
pub(crate) mod stall;
pub(crate) mod stats;
pub(crate) mod tracks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ai::Engine;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::{CameraMotion, Config, EventsConfig, IngestConfig, RetentionConfig};
use crate::nvr::store::{db, Camera, NewEvent, Store, StoreError};
use crate::paths::{DataDir, Recordings};

pub use stats::{CameraStats, IngestStats};

/// Why an ingest step failed; logged and retried, never fatal to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The camera's `source_url` is not a scheme we hand to ffmpeg.
    #[error(transparent)]
    BadSource(#[from] crate::source_url::BadSource),
    /// ffprobe could not tell the camera's codec (its answer, scrubbed of secrets).
    #[error("cannot probe the camera's codec: {0}")]
    Probe(String),
    /// ffmpeg (or ffprobe) could not be started.
    #[error("cannot start {0}: {1}")]
    Spawn(String, std::io::Error),
    /// A file operation on recordings, frames or snapshots failed.
    #[error("file error: {0}")]
    Io(std::io::Error),
    /// The event store refused a write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task died; a bug.
    #[error("internal ingest failure: {0}")]
    Internal(&'static str),
}

/// A file operation failed; the message says the cause (so no `source()`).
impl From<std::io::Error> for IngestError {
    fn from(e: std::io::Error) -> Self {
        IngestError::Io(e)
    }
}

/// What every camera task shares.
pub struct Ctx {
    pub store: Store,
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub cfg: IngestConfig,
    pub retention: RetentionConfig,
    /// The tracker's forget time; tracks leave after it.
    pub leave_after_ms: i64,
    pub max_pixels: u64,
    pub recordings_dir: Recordings,
    pub frames_dir: PathBuf,
    pub snapshots_dir: PathBuf,
    pub stats: Arc<IngestStats>,
    /// Fired on every new chunk, when a byte budget is set, so it is enforced promptly.
    pub chunk_landed: Arc<Notify>,
    /// The MQTT mirror runs: event retention spares what it has not published.
    pub mirror_on: bool,
    /// `[events]`: whether and within which bounds events are described.
    pub events: EventsConfig,
    /// Describes `person_entered` snapshots; `None` unless `[events] describe`.
    pub describer: Option<Arc<describe::Describer>>,
}

impl Ctx {
    /// Builds the shared context from the daemon's config.
    pub fn new(cfg: &Config, store: Store, engine: Arc<Engine>, clock: Arc<dyn Clock>) -> Self {
        let data = DataDir::new(&cfg.paths);
        Self {
            store,
            clock,
            cfg: cfg.ingest.clone(),
            retention: cfg.retention.clone(),
            leave_after_ms: cfg.tracker.max_lost_ms,
            max_pixels: cfg.ai.max_image_pixels,
            recordings_dir: data.recordings(),
            frames_dir: data.frames(),
            snapshots_dir: data.snapshots(),
            stats: Arc::new(IngestStats::default()),
            chunk_landed: Arc::new(Notify::new()),
            mirror_on: cfg.mqtt.enabled(),
            events: cfg.events.clone(),
            describer: cfg
                .events
                .describe
                .then(|| Arc::new(describer(engine.clone(), &cfg.events))),
            engine,
        }
    }
}

/// The describer of `[events] describe`: a camera snapshot decoded, then
/// `scene_description` on the engine (the captioner when installed, else
/// the grounded description).
fn describer(engine: Arc<Engine>, cfg: &EventsConfig) -> describe::Describer {
    let f = move |image: &image::RgbImage| -> describe::Outcome {
        let r = engine
            .describe(image, &crate::ai::Params::default())
            .map_err(|e| e.to_string())?;
        Ok(describe::Description {
            caption: r.caption,
            model_id: r.model_id,
        })
    };
    describe::Describer::start(Arc::new(f), cfg.describe_queue)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader sees the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A running camera task and what it was started with.
struct Running {
    key: Camera,
    /// The camera's motion settings as its detection worker runs them: a
    /// change is sent here, not a restart ([`detect::run`] takes it up on
    /// its next frame).
    motion: watch::Sender<CameraMotion>,
    /// A child of the supervisor's token: cancelled alone when the camera
    /// is edited or removed, with all the others at shutdown.
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Keeps one camera task per enabled camera until `stop` is cancelled.
pub struct Supervisor;

impl Supervisor {
    /// Starts supervising in the background; the handle ends after every
    /// camera has stopped (its ffmpeg closed its last chunk) on `stop`.
    pub fn spawn(ctx: Arc<Ctx>, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(supervise(ctx, stop))
    }
}

async fn supervise(ctx: Arc<Ctx>, stop: CancellationToken) {
    let chunks = recorder::Chunks::new(
        ctx.recordings_dir.clone(),
        ctx.store.clone(),
        ctx.cfg.ffprobe.clone(),
    );
    match chunks.reconcile().await {
        Ok(r) => tracing::info!(?r, "recordings reconciled"),
        Err(e) => tracing::error!(error = %e, "recordings reconciliation failed"),
    }
    let retention = tokio::spawn(retention::run(
        ctx.clone(),
        chunks.clone(),
        ctx.chunk_landed.clone(),
        stop.child_token(),
    ));
    let mut running: HashMap<String, Running> = HashMap::new();
    let poll = Duration::from_millis(ctx.cfg.poll_ms.max(100));
    loop {
        match ctx.store.read(db::list_cameras).await {
            Ok(cams) => sync(&ctx, &chunks, &stop, &mut running, cams).await,
            Err(e) => tracing::warn!(error = %e, "cannot list cameras"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => break,
        }
    }
    // The cameras' tokens are children of `stop`: all of them were cancelled
    // with it, so every ffmpeg got its `q` at once, not after the others.
    for r in running.into_values() {
        let _ = r.task.await;
    }
    let _ = retention.await;
}

/// Starts, restarts (after an edit) and stops camera tasks to match the table.
async fn sync(
    ctx: &Arc<Ctx>,
    chunks: &recorder::Chunks,
    stop: &CancellationToken,
    running: &mut HashMap<String, Running>,
    cams: Vec<Camera>,
) {
    let wanted: HashMap<String, Camera> = cams
        .into_iter()
        .filter(|c| c.enabled)
        .map(|c| (c.id.clone(), c))
        .collect();
    let stale: Vec<String> = running
        .iter()
        .filter(|(id, r)| wanted.get(*id).is_none_or(|c| key(c) != r.key) || r.task.is_finished())
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(r) = running.remove(&id) {
            r.stop.cancel();
            let _ = r.task.await;
        }
        if !wanted.contains_key(&id) {
            ctx.stats.remove(&id);
        }
    }
    for (id, cam) in wanted {
        let motion = ctx.cfg.motion.effective(&id, cam.motion.as_ref());
        if let Some(r) = running.get(&id) {
            r.motion.send_if_modified(|now| {
                let changed = *now != motion;
                *now = motion;
                changed
            });
            continue;
        }
        let token = stop.child_token();
        let (tx, rx) = watch::channel(motion);
        let task = tokio::spawn(camera::run(
            ctx.clone(),
            chunks.clone(),
            cam.clone(),
            rx,
            token.clone(),
        ));
        running.insert(
            id,
            Running {
                key: key(&cam),
                motion: tx,
                stop: token,
                task,
            },
        );
    }
}

/// What a camera's ffmpeg and worker are started with: a change to any of
/// it restarts the camera. Not its timestamps (an edit that changes
/// nothing restarts nothing), its name or retention (read elsewhere, from
/// the store), nor its motion settings, which reach the running worker
/// without a restart (the recording goes on).
fn key(c: &Camera) -> Camera {
    Camera {
        name: String::new(),
        retention_days: 0,
        created_at: 0,
        updated_at: 0,
        motion: None,
        ..c.clone()
    }
}

/// How many times a pipeline event write is tried before it is logged as lost.
const EMIT_TRIES: u32 = 3;

impl Ctx {
    /// Stores a pipeline event through the one event store (so it reaches
    /// the API, the live stream and the MQTT mirror). A failed write is
    /// tried [`EMIT_TRIES`] times in all, with the common backoff between
    /// tries (0.2 s, then 0.4 s): the only failures are a dying or broken
    /// database. Not cut short by shutdown: these may be the last events
    /// (tracks ended).
    pub async fn emit(&self, stats: &CameraStats, ev: NewEvent) {
        let mut backoff = Backoff::new(200, 400);
        for attempt in 1..=EMIT_TRIES {
            match self.store.insert_event(ev.clone()).await {
                Ok(_) => {
                    stats
                        .events
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Err(e) if attempt < EMIT_TRIES => {
                    tracing::warn!(camera = %ev.camera_id, error = %e, "event write failed; retrying");
                    self.clock.sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    tracing::error!(camera = %ev.camera_id, kind = %ev.kind, error = %e, "event lost")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_motion_only_edit_keeps_the_camera_running_and_any_other_edit_restarts_it() {
        let cam = Camera {
            id: "door".into(),
            name: "Door".into(),
            source_url: "rtsp://10.0.0.5/s".into(),
            enabled: true,
            detect_fps: 5.0,
            record: true,
            record_mode: Default::default(),
            retention_days: 7,
            created_at: 1,
            updated_at: 1,
            detect_url: None,
            motion: None,
        };
        let masked = Camera {
            updated_at: 2,
            motion: Some(CameraMotion {
                enabled: Some(false),
                masks: vec![vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]],
            }),
            ..cam.clone()
        };
        assert_eq!(key(&masked), key(&cam));
        let renamed = Camera {
            name: "Front door".into(),
            retention_days: 30,
            ..masked.clone()
        };
        assert_eq!(
            key(&renamed),
            key(&cam),
            "name and retention restart nothing"
        );
        let edits = [
            Camera {
                detect_fps: 2.0,
                ..masked.clone()
            },
            Camera {
                source_url: "rtsp://10.0.0.6/s".into(),
                ..masked.clone()
            },
            Camera {
                detect_url: Some("rtsp://10.0.0.5/sub".into()),
                ..masked.clone()
            },
            Camera {
                record: false,
                ..masked.clone()
            },
        ];
        for e in edits {
            assert_ne!(key(&e), key(&cam), "{e:?}");
        }
    }
}
