//! One camera's life: start ffmpeg, read frames, index chunks, notice
//! stalls and exits, restart with backoff, and report health as events.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::child::{cap_log, end, last_line_of, log_tail, pid_file, read_pid, spawn, FrameWatch};
use super::codec;
use super::command::{ffmpeg_hwaccels, hwaccel_failed, hwaccel_wanted, Encode, Plan, Source};
use super::detect::{self, obj, Mailbox, PendingFrame};
use super::recorder::{Chunks, ListTail};
use super::stall::StallWatch;
use super::stats::{CameraStats, RecordInfo};
use super::{Ctx, IngestError};
use crate::backoff::Backoff;
use crate::nvr::store::{Camera, NewEvent, RecordMode};
use crate::redact::Secrets;

/// How often `latest.jpg` is checked for a new frame.
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

/// Runs the camera until `stop` is cancelled (shutdown, or the camera was
/// edited or removed).
pub async fn run(ctx: Arc<Ctx>, chunks: Chunks, cam: Camera, stop: CancellationToken) {
    let stats = ctx.stats.camera(&cam.id);
    // Every text about this camera that leaves ingest (status, events, log) is scrubbed with it.
    let secrets = Secrets::of_url(&cam.source_url);
    let source = match Source::parse(&cam.source_url) {
        Ok(s) => s,
        Err(e) => {
            let e = secrets.scrub(&IngestError::from(e).to_string());
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
            stop.clone(),
        ))
    });
    let mut backoff = Backoff::new(ctx.cfg.backoff_min_ms, ctx.cfg.backoff_max_ms);
    // `down_since` stays unset until a failure: the first `camera_online`
    // after a clean start has `down_ms: null`.
    let mut health = Health::default();
    let hwaccel = {
        let (mode, ffmpeg) = (ctx.cfg.hwaccel, ctx.cfg.ffmpeg.clone());
        let dev = std::path::Path::new("/dev/nvidia0");
        tokio::task::spawn_blocking(move || hwaccel_wanted(mode, dev, || ffmpeg_hwaccels(&ffmpeg)))
            .await
            .unwrap_or(false)
    };
    let mut runner = Runner {
        ctx: &ctx,
        chunks: &chunks,
        cam: &cam,
        secrets: &secrets,
        stats: &stats,
        mailbox: &mailbox,
        health: &mut health,
        backoff: &mut backoff,
        hwaccel,
    };
    loop {
        let outcome = runner.run_once(&source, &stop).await;
        stats.pid.store(0, Relaxed);
        stats.online.store(false, Relaxed);
        if matches!(outcome, Outcome::Stopped) {
            break;
        }
        if let Outcome::HwaccelFailed(e) = &outcome {
            runner.hwaccel = false;
            let error = secrets.scrub(e);
            tracing::warn!(camera = %cam.id, %error, "GPU decoding (-hwaccel cuda) failed; decoding in software from now on");
            continue;
        }
        runner.went_down(&outcome).await;
        stats.restarts.fetch_add(1, Relaxed);
        if !runner.backoff.wait(&*ctx.clock, &stop).await {
            break;
        }
    }
    if let Some(d) = detector {
        let _ = d.await;
    }
}

struct Runner<'a> {
    ctx: &'a Ctx,
    chunks: &'a Chunks,
    cam: &'a Camera,
    secrets: &'a Secrets,
    stats: &'a CameraStats,
    mailbox: &'a Mailbox,
    health: &'a mut Health,
    backoff: &'a mut Backoff,
    /// Decode on the GPU; cleared for good once ffmpeg fails with it.
    hwaccel: bool,
}

impl Runner<'_> {
    /// One ffmpeg process, from spawn to exit.
    async fn run_once(&mut self, source: &Source, stop: &CancellationToken) -> Outcome {
        let (ctx, cam) = (self.ctx, self.cam);
        let run_id = ctx.clock.now_ms();
        let inprogress = self.chunks.inprogress_dir(&cam.id);
        // Also where the run's ffmpeg log goes, so it exists without recording too.
        if let Err(e) = std::fs::create_dir_all(&inprogress) {
            return Outcome::SpawnFailed(format!("{}: {e}", inprogress.display()));
        }
        let latest = ctx.frames_dir.join(crate::paths::latest_frame(&cam.id));
        if let Err(e) = std::fs::create_dir_all(latest.parent().unwrap_or(&ctx.frames_dir)) {
            return Outcome::SpawnFailed(format!("{}: {e}", latest.display()));
        }
        // A probe may wait on a silent camera: stopping must not wait for it.
        let encode = tokio::select! {
            r = self.record_plan(source) => match r {
                Ok(e) => e,
                Err(e) => return Outcome::ProbeFailed(e.to_string()),
            },
            _ = stop.cancelled() => return Outcome::Stopped,
        };
        let plan = Plan {
            source,
            latest: &latest,
            cfg: &ctx.cfg,
            fps: if cam.detect_fps > 0.0 {
                cam.detect_fps
            } else {
                1.0
            },
            record_into: cam.record.then_some(inprogress.as_path()),
            encode,
            run_id,
            hwaccel: self.hwaccel,
        };
        self.stats.gpu_decode.store(self.hwaccel, Relaxed);
        let log = inprogress.join(format!("{run_id}.log"));
        let pid_file = pid_file(&inprogress, run_id);
        let mut child = match spawn(&ctx.cfg.ffmpeg, &plan, &log, &pid_file) {
            Ok(c) => c,
            Err(e) => return Outcome::SpawnFailed(e.to_string()),
        };
        let ffmpeg_pid = read_pid(&pid_file).await;
        self.stats.pid.store(ffmpeg_pid.unwrap_or(0), Relaxed);
        let mut list = ListTail::new(Plan::list_path(&inprogress, run_id));
        let mut frames = FrameWatch::new(latest);
        let stall = Duration::from_secs(u64::from(ctx.cfg.stall_timeout_s.max(1)));
        let mut silence = StallWatch::new(stall, ctx.clock.mono());
        let mut frame_tick = tokio::time::interval(FRAME_POLL);
        let mut list_tick = tokio::time::interval(LIST_POLL);
        let outcome = loop {
            tokio::select! {
                _ = frame_tick.tick() => {
                    if let Some(jpeg) = frames.new_frame() {
                        silence.frame(ctx.clock.mono());
                        self.on_frame(jpeg).await;
                    }
                }
                _ = list_tick.tick() => {
                    self.index(&mut list, run_id).await;
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
        self.index(&mut list, run_id).await;
        match self.chunks.close_run(&cam.id, run_id).await {
            Ok((n, _)) => {
                self.stats.chunks.fetch_add(n as u64, Relaxed);
            }
            Err(e) => tracing::error!(camera = %cam.id, error = %e, "cannot close run"),
        }
        match outcome {
            Outcome::Exited(_) if self.hwaccel && hwaccel_failed(&log_text) => {
                Outcome::HwaccelFailed(last_line_of(&log_text).to_owned())
            }
            Outcome::Exited(_) => {
                if let Some(line) = codec::record_failure(&log_text).filter(|_| cam.record) {
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

    /// A frame arrived (ffmpeg replaced `latest.jpg`): count it, offer it to the detector.
    async fn on_frame(&mut self, jpeg: Vec<u8>) {
        let now = self.ctx.clock.now_ms();
        self.stats.frames.fetch_add(1, Relaxed);
        self.stats.last_frame_at.store(now, Relaxed);
        if !self.health.online {
            self.came_up(now).await;
        }
        if self.cam.detect_fps > 0.0 {
            let f = PendingFrame {
                jpeg: Arc::new(jpeg),
                at_ms: now,
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
