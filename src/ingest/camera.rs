//! One camera's life: start ffmpeg, read frames, index chunks, notice
//! stalls and exits, restart with backoff, and report health as events.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::child::{cap_log, end, last_line_of, log_tail, pid_file, read_pid, spawn, FrameWatch};
use super::codec;
use super::command::{ffmpeg_hwaccels, hwaccel_failed, hwaccel_wanted, Encode, Plan, Source};
use super::detect::{self, obj, Mailbox, PendingFrame};
use super::recorder::{Chunks, ListTail};
use super::stall::{ChunkGrowth, StallWatch};
use super::stats::{CameraStats, RecordInfo};
use super::{raw, Ctx, IngestError};
use crate::backoff::Backoff;
use crate::config::CameraMotion;
use crate::nvr::store::{Camera, NewEvent, RecordMode};
use crate::redact::Secrets;

/// How often `latest.ppm` is checked for a new frame.
const FRAME_POLL: Duration = Duration::from_millis(40);
/// How often the segment list is checked for finished chunks.
const LIST_POLL: Duration = Duration::from_millis(500);

/// How one ffmpeg run ended.
#[derive(Debug)]
enum Outcome {
    /// We were told to stop (shutdown, or the camera was edited or removed).
    Stopped,
    /// ffmpeg exited (camera unreachable, stream ended, crashed, killed).
    Exited(String),
    /// No frame for `stall_timeout_s`; we killed it.
    Stalled(u64),
    /// ffmpeg could not be started at all.
    SpawnFailed(String),
    /// ffprobe could not tell the codec (`record_mode = "auto"`).
    ProbeFailed(String),
    /// ffmpeg could not decode on the GPU (`-hwaccel cuda`); retried at
    /// once in software (ffmpeg's last line).
    HwaccelFailed(String),
    /// ffmpeg could not set up the recording: the codec cannot be recorded
    /// the way `record_mode` asks (a clear message, not ffmpeg's last line).
    Unrecordable(String),
}

/// Online/offline bookkeeping, so each transition is reported once.
#[derive(Debug, Default)]
struct Health {
    online: bool,
    down_since: Option<i64>,
    reported_down: bool,
}

/// What one ffmpeg of a camera does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Records (when the camera records) and decodes frames: one stream.
    Whole,
    /// Records the main stream only; its heartbeat is the chunks growing.
    RecordOnly,
    /// Decodes the `detect_url` sub-stream only. Its failures are logged and
    /// retried on their own backoff; they never touch the recording.
    Feed,
}

/// Runs the camera until `stop` is cancelled (shutdown, or the camera was
/// edited or removed). A camera with a `detect_url` that records runs two
/// ffmpeg processes: one records `source_url` by stream copy, the other
/// decodes the sub-stream for the detector, so a failing sub-stream never
/// stops the recording (one process with two inputs would end both).
pub async fn run(
    ctx: Arc<Ctx>,
    chunks: Chunks,
    cam: Camera,
    motion: watch::Receiver<CameraMotion>,
    stop: CancellationToken,
) {
    let stats = ctx.stats.camera(&cam.id);
    // Every text about this camera that leaves ingest (status, events, log) is scrubbed with it.
    let secrets = Secrets::of_camera(&cam.source_url, cam.detect_url.as_deref());
    let parse =
        |u: &str| Source::parse(u).map_err(|e| secrets.scrub(&IngestError::from(e).to_string()));
    let sources = parse(&cam.source_url).and_then(|main| {
        let sub = cam.detect_url.as_deref().map(parse).transpose()?;
        Ok((main, sub))
    });
    let (main, sub) = match sources {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(camera = %cam.id, error = %e, "camera not started");
            stats.set_error(Some(e));
            stop.cancelled().await;
            return;
        }
    };
    let mailbox = Arc::new(Mailbox::default());
    let detector = (cam.detect_fps > 0.0).then(|| {
        tokio::spawn(detect::run(
            ctx.clone(),
            cam.id.clone(),
            mailbox.clone(),
            stats.clone(),
            motion,
            stop.clone(),
        ))
    });
    let hwaccel = {
        let (mode, ffmpeg) = (ctx.cfg.hwaccel, ctx.cfg.ffmpeg.clone());
        let dev = std::path::Path::new("/dev/nvidia0");
        tokio::task::spawn_blocking(move || hwaccel_wanted(mode, dev, || ffmpeg_hwaccels(&ffmpeg)))
            .await
            .unwrap_or(false)
    };
    let (main, feed, role) = match sub {
        Some(sub) if cam.record => (main, Some(sub), Role::RecordOnly),
        // Nothing to record: the sub-stream is all this camera needs.
        Some(sub) => (sub, None, Role::Whole),
        None => (main, None, Role::Whole),
    };
    let runner = |role| Runner {
        ctx: &ctx,
        chunks: &chunks,
        cam: &cam,
        secrets: &secrets,
        stats: &stats,
        mailbox: &mailbox,
        role,
        // `down_since` stays unset until a failure: the first `camera_online`
        // after a clean start has `down_ms: null`.
        health: Health::default(),
        backoff: Backoff::new(ctx.cfg.backoff_min_ms, ctx.cfg.backoff_max_ms),
        hwaccel,
    };
    match feed {
        Some(f) => {
            tokio::join!(
                supervise(runner(role), &main, &stop),
                supervise(runner(Role::Feed), &f, &stop)
            );
        }
        None => supervise(runner(role), &main, &stop).await,
    }
    if let Some(d) = detector {
        let _ = d.await;
    }
}

/// Runs and restarts one ffmpeg of the camera until `stop`.
async fn supervise(mut runner: Runner<'_>, source: &Source, stop: &CancellationToken) {
    loop {
        let outcome = runner.run_once(source, stop).await;
        runner.set_pid(0);
        if runner.role != Role::Feed {
            runner.stats.online.store(false, Relaxed);
        }
        if matches!(outcome, Outcome::Stopped) {
            break;
        }
        if let Outcome::HwaccelFailed(e) = &outcome {
            runner.hwaccel = false;
            let error = runner.secrets.scrub(e);
            tracing::warn!(camera = %runner.cam.id, %error, "GPU decoding (-hwaccel cuda) failed; decoding in software from now on");
            continue;
        }
        runner.went_down(&outcome).await;
        if !runner.backoff.wait(&*runner.ctx.clock, stop).await {
            break;
        }
    }
}

struct Runner<'a> {
    ctx: &'a Ctx,
    chunks: &'a Chunks,
    cam: &'a Camera,
    secrets: &'a Secrets,
    stats: &'a CameraStats,
    mailbox: &'a Mailbox,
    role: Role,
    health: Health,
    backoff: Backoff,
    /// Decode on the GPU; cleared for good once ffmpeg fails with it.
    hwaccel: bool,
}

impl Runner<'_> {
    /// One ffmpeg process, from spawn to exit.
    async fn run_once(&mut self, source: &Source, stop: &CancellationToken) -> Outcome {
        let (ctx, cam) = (self.ctx, self.cam);
        let (role, run_id) = (self.role, ctx.clock.now_ms());
        let inprogress = self.chunks.inprogress_dir(&cam.id);
        let latest = ctx.frames_dir.join(crate::paths::latest_raw_frame(&cam.id));
        let frames_dir = latest.parent().unwrap_or(&ctx.frames_dir).to_owned();
        // Where the run's ffmpeg log and pid go (inprogress also without
        // recording, so it exists); the feed's beside its frames, out of
        // the recorder's way.
        let run_dir = if role == Role::Feed {
            frames_dir.clone()
        } else {
            inprogress.clone()
        };
        for dir in [&inprogress, &frames_dir] {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return Outcome::SpawnFailed(format!("{}: {e}", dir.display()));
            }
        }
        // A probe may wait on a silent camera: stopping must not wait for it.
        let encode = tokio::select! {
            r = self.record_plan(source), if role != Role::Feed => match r {
                Ok(e) => e,
                Err(e) => return Outcome::ProbeFailed(e.to_string()),
            },
            _ = std::future::ready(()), if role == Role::Feed => Encode::Copy,
            _ = stop.cancelled() => return Outcome::Stopped,
        };
        let records = cam.record && role != Role::Feed;
        let plan = Plan {
            source,
            frames: (role != Role::RecordOnly).then_some(latest.as_path()),
            cfg: &ctx.cfg,
            fps: if cam.detect_fps > 0.0 {
                cam.detect_fps
            } else {
                1.0
            },
            record_into: records.then_some(inprogress.as_path()),
            encode,
            run_id,
            hwaccel: self.hwaccel,
        };
        if role != Role::RecordOnly {
            self.stats.gpu_decode.store(self.hwaccel, Relaxed);
        }
        let log = run_dir.join(format!("{run_id}.log"));
        let pid_file = pid_file(&run_dir, run_id);
        let mut child = match spawn(&ctx.cfg.ffmpeg, &plan, &log, &pid_file) {
            Ok(c) => c,
            Err(e) => return Outcome::SpawnFailed(e.to_string()),
        };
        let ffmpeg_pid = read_pid(&pid_file).await;
        self.set_pid(ffmpeg_pid.unwrap_or(0));
        let mut list = ListTail::new(Plan::list_path(&inprogress, run_id));
        let mut growth = ChunkGrowth::new(&inprogress, run_id);
        let mut frames = FrameWatch::new(latest);
        let stall = Duration::from_secs(u64::from(ctx.cfg.stall_timeout_s.max(1)));
        let mut silence = StallWatch::new(stall, ctx.clock.mono());
        let mut frame_tick = tokio::time::interval(FRAME_POLL);
        let mut list_tick = tokio::time::interval(LIST_POLL);
        let outcome = loop {
            tokio::select! {
                // The recording-only run leaves the frames to the sub-stream's run.
                _ = frame_tick.tick(), if role != Role::RecordOnly => {
                    if let Some(bytes) = frames.new_frame() {
                        silence.frame(ctx.clock.mono());
                        self.on_frame(bytes).await;
                    }
                }
                _ = list_tick.tick() => {
                    if records {
                        self.index(&mut list, run_id).await;
                    }
                    if role == Role::RecordOnly && growth.grew() {
                        silence.frame(ctx.clock.mono());
                        self.alive().await;
                    }
                    cap_log(&log);
                    if let Some(silent) = silence.stalled(ctx.clock.mono()) {
                        break Outcome::Stalled(silent.as_millis() as u64);
                    }
                }
                _ = child.wait() => break Outcome::Exited(String::new()),
                _ = stop.cancelled() => break Outcome::Stopped,
            }
        };
        end(
            &mut child,
            ffmpeg_pid,
            !matches!(outcome, Outcome::Exited(_)),
        )
        .await;
        let log_text = log_tail(&log);
        if role == Role::Feed {
            // Nothing of a feed's run outlives it.
            let _ = std::fs::remove_file(&log);
            let _ = std::fs::remove_file(&pid_file);
        } else {
            self.index(&mut list, run_id).await;
            match self.chunks.close_run(&cam.id, run_id).await {
                Ok((n, _)) => {
                    self.stats.chunks.fetch_add(n as u64, Relaxed);
                }
                Err(e) => tracing::error!(camera = %cam.id, error = %e, "cannot close run"),
            }
        }
        match outcome {
            Outcome::Exited(_) if self.hwaccel && hwaccel_failed(&log_text) => {
                Outcome::HwaccelFailed(last_line_of(&log_text).to_owned())
            }
            Outcome::Exited(_) => {
                if let Some(line) = codec::record_failure(&log_text).filter(|_| records) {
                    return self.unrecordable(source, encode, line).await;
                }
                let last_error = last_line_of(&log_text);
                let msg = match child.try_wait() {
                    Ok(Some(st)) if last_error.is_empty() => format!("ffmpeg exited: {st}"),
                    _ => last_error.to_owned(),
                };
                Outcome::Exited(msg)
            }
            o => o,
        }
    }

    /// How this run records (`record_mode`; `auto` probes the codec first),
    /// shown in the camera's status.
    async fn record_plan(&self, source: &Source) -> Result<Encode, IngestError> {
        let (cam, cfg) = (self.cam, &self.ctx.cfg);
        if !cam.record {
            self.stats.set_record(RecordInfo::default());
            return Ok(Encode::Copy);
        }
        let codec = match cam.record_mode {
            RecordMode::Auto => Some(codec::probe(cfg, source, self.secrets).await?),
            RecordMode::Copy | RecordMode::Transcode => None,
        };
        let encode = codec::choose(cam.record_mode, codec.as_deref());
        self.stats.set_record(RecordInfo {
            codec,
            method: Some(encode.as_str()),
        });
        Ok(encode)
    }

    /// The run died because its video cannot be recorded as asked: says so
    /// clearly, naming the codec (probed now if it was not before).
    async fn unrecordable(&self, source: &Source, encode: Encode, ffmpeg: &str) -> Outcome {
        let known = self.stats.record.lock().ok().and_then(|r| r.codec.clone());
        let codec = match known {
            Some(c) => Some(c),
            None => codec::probe(&self.ctx.cfg, source, self.secrets).await.ok(),
        };
        let msg =
            codec::unrecordable_message(self.cam.record_mode, encode, codec.as_deref(), ffmpeg);
        self.stats.set_record(RecordInfo {
            codec,
            method: Some(encode.as_str()),
        });
        Outcome::Unrecordable(msg)
    }

    /// A frame arrived (ffmpeg replaced `latest.ppm`): count it, offer it to the detector.
    async fn on_frame(&mut self, bytes: Vec<u8>) {
        let now = self.ctx.clock.now_ms();
        let image = match raw::parse_ppm(bytes, self.ctx.max_pixels) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                self.stats.set_error(Some(e.to_string()));
                return;
            }
        };
        self.stats.frames.fetch_add(1, Relaxed);
        self.stats.last_frame_at.store(now, Relaxed);
        if self.role == Role::Whole {
            self.alive().await;
        }
        if self.cam.detect_fps > 0.0 {
            let f = PendingFrame {
                image,
                at_ms: now,
                read: std::time::Instant::now(),
            };
            if self.mailbox.put(f) {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Indexes the chunks ffmpeg has finished since the last look.
    async fn index(&mut self, list: &mut ListTail, run_id: i64) {
        for seg in list.poll() {
            match self.chunks.finish(&self.cam.id, run_id, &seg).await {
                Ok(Some(_)) => {
                    self.stats.chunks.fetch_add(1, Relaxed);
                    // A byte budget is enforced per chunk; age and free
                    // space are checked every `interval_s` (a full scan).
                    if self.ctx.retention.max_bytes > 0 {
                        self.ctx.chunk_landed.notify_one();
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(camera = %self.cam.id, error = %e, "cannot index chunk"),
            }
        }
    }

    /// The camera's ffmpeg shows life (a frame, or its chunks grew): the
    /// first sign after a start or an outage brings the camera online.
    async fn alive(&mut self) {
        if !self.health.online {
            self.came_up(self.ctx.clock.now_ms()).await;
        }
    }

    /// Shows the run's ffmpeg pid in the status (the feed's as `detect_ffmpeg_pid`).
    fn set_pid(&self, pid: u32) {
        match self.role {
            Role::Feed => self.stats.detect_pid.store(pid, Relaxed),
            _ => self.stats.pid.store(pid, Relaxed),
        }
    }

    async fn came_up(&mut self, now: i64) {
        self.health.online = true;
        self.stats.online.store(true, Relaxed);
        self.stats.set_error(None);
        self.backoff.reset();
        let down_ms = self.health.down_since.take().map(|t| now - t);
        let payload = json!({
            "down_ms": down_ms,
            "restarts": self.stats.restarts.load(Relaxed),
        });
        self.health.reported_down = false;
        self.event("camera_online", now, payload).await;
    }

    /// Reports the camera down once per outage (`camera_stalled` when we
    /// killed a silent ffmpeg, `camera_offline` otherwise).
    async fn went_down(&mut self, outcome: &Outcome) {
        if self.role == Role::Feed {
            return self.feed_down(outcome);
        }
        self.stats.restarts.fetch_add(1, Relaxed);
        let now = self.ctx.clock.now_ms();
        // ffmpeg's lines repeat the camera's URL: scrubbed before they reach
        // the status, the event (SSE, MQTT) or the log.
        let offline = |reason: &str, e: &str| {
            let error = self.secrets.scrub(e);
            ("camera_offline", json!({"reason": reason, "error": error}))
        };
        let (kind, mut reason) = match outcome {
            Outcome::Stalled(ms) => ("camera_stalled", json!({"stalled_ms": ms})),
            Outcome::Exited(e) => offline("exited", e),
            Outcome::SpawnFailed(e) => offline("spawn_failed", e),
            Outcome::ProbeFailed(e) => offline("probe_failed", e),
            Outcome::Unrecordable(e) => offline("unrecordable", e),
            Outcome::Stopped | Outcome::HwaccelFailed(_) => return,
        };
        if matches!(outcome, Outcome::Unrecordable(_)) {
            reason["record_mode"] = json!(self.cam.record_mode.as_str());
        }
        let msg = reason
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("stalled");
        self.stats.set_error(Some(msg.to_owned()));
        tracing::warn!(camera = %self.cam.id, kind, %reason, "camera down");
        if self.health.online || self.health.down_since.is_none() {
            self.health.down_since = Some(now);
        }
        self.health.online = false;
        if self.health.reported_down {
            return;
        }
        self.health.reported_down = true;
        let mut payload = reason;
        let last = self.stats.last_frame_at.load(Relaxed);
        payload["last_frame_at"] = if last > 0 { json!(last) } else { json!(null) };
        self.event(kind, now, payload).await;
    }

    /// The sub-stream's ffmpeg ended: said in the status and the log (the
    /// recording goes on, so no outage event); it restarts on its backoff.
    fn feed_down(&self, outcome: &Outcome) {
        let why = match outcome {
            Outcome::Stalled(ms) => format!("stalled for {ms} ms"),
            Outcome::Exited(e) | Outcome::SpawnFailed(e) => e.clone(),
            Outcome::ProbeFailed(e) | Outcome::Unrecordable(e) => e.clone(),
            Outcome::Stopped | Outcome::HwaccelFailed(_) => return,
        };
        let e = format!("detect_url: {}", self.secrets.scrub(&why));
        tracing::warn!(camera = %self.cam.id, error = %e, "sub-stream down");
        self.stats.set_error(Some(e));
    }

    async fn event(&self, kind: &str, at: i64, payload: serde_json::Value) {
        let ev = NewEvent {
            camera_id: self.cam.id.clone(),
            kind: kind.into(),
            started_at: Some(at),
            payload: obj(payload),
            ..NewEvent::default()
        };
        self.ctx.emit(self.stats, ev).await;
    }
}
