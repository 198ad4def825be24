//! One camera's life: start ffmpeg, read frames, index chunks, notice
//! stalls and exits, restart with backoff, and report health as events.

use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::command::{Plan, Source};
use super::detect::{self, obj, Mailbox, PendingFrame};
use super::mjpeg::MjpegSplitter;
use super::recorder::{pid_file, Chunks, ListTail};
use super::stats::CameraStats;
use super::{write_atomic, Ctx};
use crate::nvr::store::{Camera, NewEvent};

/// Largest JPEG accepted from ffmpeg; far above any real frame.
const MAX_FRAME_BYTES: usize = 32 << 20;
/// How often the segment list is checked for finished chunks.
const LIST_POLL: Duration = Duration::from_millis(500);
/// Least time a new ffmpeg gets to deliver its first frame.
const FIRST_FRAME_GRACE: Duration = Duration::from_secs(30);
/// How long a stopping ffmpeg gets to close its chunk before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

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
}

/// Online/offline bookkeeping, so each transition is reported once.
#[derive(Debug, Default)]
struct Health {
    online: bool,
    down_since: Option<i64>,
    reported_down: bool,
}

/// Runs the camera until `stop`.
pub async fn run(ctx: Arc<Ctx>, chunks: Chunks, cam: Camera, mut stop: watch::Receiver<bool>) {
    let stats = ctx.stats.camera(&cam.id);
    let source = match Source::parse(&cam.source_url) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(camera = %cam.id, error = %e, "camera not started");
            stats.set_error(Some(e.to_string()));
            stopped(&mut stop).await;
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
    let mut health = Health {
        down_since: Some(ctx.clock.now_ms()),
        ..Health::default()
    };
    let mut runner = Runner {
        ctx: &ctx,
        chunks: &chunks,
        cam: &cam,
        stats: &stats,
        mailbox: &mailbox,
        health: &mut health,
        backoff: &mut backoff,
    };
    loop {
        let outcome = runner.run_once(&source, &mut stop).await;
        stats.pid.store(0, Relaxed);
        stats.online.store(false, Relaxed);
        if matches!(outcome, Outcome::Stopped) {
            break;
        }
        runner.went_down(&outcome).await;
        stats.restarts.fetch_add(1, Relaxed);
        let delay = runner.backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop) => break,
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
    stats: &'a CameraStats,
    mailbox: &'a Mailbox,
    health: &'a mut Health,
    backoff: &'a mut Backoff,
}

impl Runner<'_> {
    /// One ffmpeg process, from spawn to exit.
    async fn run_once(&mut self, source: &Source, stop: &mut watch::Receiver<bool>) -> Outcome {
        let (ctx, cam) = (self.ctx, self.cam);
        let run_id = ctx.clock.now_ms();
        let inprogress = self.chunks.inprogress_dir(&cam.id);
        if cam.record {
            if let Err(e) = std::fs::create_dir_all(&inprogress) {
                return Outcome::SpawnFailed(format!("{}: {e}", inprogress.display()));
            }
        }
        let plan = Plan {
            source,
            cfg: &ctx.cfg,
            fps: if cam.detect_fps > 0.0 {
                cam.detect_fps
            } else {
                1.0
            },
            record_into: cam.record.then_some(inprogress.as_path()),
            run_id,
        };
        let mut child = match spawn(&ctx.cfg.ffmpeg, &plan) {
            Ok(c) => c,
            Err(e) => return Outcome::SpawnFailed(e.to_string()),
        };
        self.stats.pid.store(child.id().unwrap_or(0), Relaxed);
        let pid_file = pid_file(&inprogress, run_id);
        if cam.record {
            if let Err(e) = std::fs::write(&pid_file, child.id().unwrap_or(0).to_string()) {
                tracing::warn!(camera = %cam.id, error = %e, "cannot write ffmpeg pid file");
            }
        }
        let last_err = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let last = last_err.clone();
            let camera = cam.id.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::debug!(camera, "ffmpeg: {l}");
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = l;
                }
            });
        }
        let mut stdout = match child.stdout.take() {
            Some(s) => s,
            None => return Outcome::SpawnFailed("ffmpeg has no stdout".into()),
        };
        let mut list = ListTail::new(Plan::list_path(&inprogress, run_id));
        let mut split = MjpegSplitter::new(MAX_FRAME_BYTES);
        let mut buf = vec![0u8; 256 * 1024];
        // Connecting and probing a camera can take a while: until the first
        // frame the allowance is at least FIRST_FRAME_GRACE.
        let stall = Duration::from_secs(u64::from(ctx.cfg.stall_timeout_s.max(1)));
        let mut allowance = stall.max(FIRST_FRAME_GRACE);
        let mut last_frame = Instant::now();
        let mut tick = tokio::time::interval(LIST_POLL);
        let outcome = loop {
            tokio::select! {
                r = stdout.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break Outcome::Exited(String::new()),
                    Ok(n) => {
                        for jpeg in split.push(&buf[..n]) {
                            last_frame = Instant::now();
                            allowance = stall;
                            self.on_frame(jpeg).await;
                        }
                    }
                },
                _ = tick.tick() => {
                    self.index(&mut list, run_id).await;
                    if last_frame.elapsed() > allowance {
                        break Outcome::Stalled(last_frame.elapsed().as_millis() as u64);
                    }
                }
                _ = stopped(stop) => break Outcome::Stopped,
            }
        };
        end(
            &mut child,
            &mut stdout,
            !matches!(outcome, Outcome::Exited(_)),
        )
        .await;
        self.index(&mut list, run_id).await;
        let _ = std::fs::remove_file(Plan::list_path(&inprogress, run_id));
        let _ = std::fs::remove_file(&pid_file);
        match outcome {
            Outcome::Exited(_) => {
                let msg = last_err.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let msg = match child.try_wait() {
                    Ok(Some(st)) if msg.is_empty() => format!("ffmpeg exited: {st}"),
                    _ => msg,
                };
                Outcome::Exited(msg)
            }
            o => o,
        }
    }

    /// A frame arrived: count it, publish it as `latest.jpg`, offer it to the detector.
    async fn on_frame(&mut self, jpeg: Vec<u8>) {
        let now = self.ctx.clock.now_ms();
        self.stats.frames.fetch_add(1, Relaxed);
        self.stats.last_frame_at.store(now, Relaxed);
        if !self.health.online {
            self.came_up(now).await;
        }
        let latest = self.ctx.frames_dir.join(&self.cam.id).join("latest.jpg");
        if let Err(e) = write_atomic(&latest, &jpeg) {
            tracing::warn!(camera = %self.cam.id, error = %e, "cannot write latest.jpg");
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
                    self.ctx.chunk_landed.notify_one();
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
        let (kind, reason) = match outcome {
            Outcome::Stalled(ms) => ("camera_stalled", json!({"stalled_ms": ms})),
            Outcome::Exited(e) => ("camera_offline", json!({"reason": "exited", "error": e})),
            Outcome::SpawnFailed(e) => (
                "camera_offline",
                json!({"reason": "spawn_failed", "error": e}),
            ),
            Outcome::Stopped => return,
        };
        let msg = reason
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("stalled");
        self.stats.set_error(Some(msg.to_owned()));
        tracing::warn!(camera = %self.cam.id, kind, %reason, "camera down");
        if self.health.online {
            self.health.online = false;
            self.health.down_since = Some(now);
        }
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

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Starts ffmpeg so that it dies with us: if the daemon is killed, the
/// kernel sends ffmpeg SIGTERM and it still closes its current chunk.
/// Its stdin is ours: `q` there is how we stop it (see [`end`]).
fn spawn(ffmpeg: &std::path::Path, plan: &Plan<'_>) -> std::io::Result<Child> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(plan.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Ends ffmpeg: politely first, SIGKILL after a grace period; either way
/// it is reaped. Politely is `q` on its stdin, not a signal: ffmpeg treats a
/// *second* signal as "exit now, skip the trailer", and under systemd or a
/// terminal it may already have had one, which would lose the last chunk.
///
/// Its stdout is drained meanwhile: ffmpeg blocked on a full pipe never
/// gets round to reading the `q`.
async fn end(child: &mut Child, stdout: &mut ChildStdout, polite: bool) {
    if let (true, Some(mut stdin)) = (polite, child.stdin.take()) {
        let asked = stdin.write_all(b"q").await.and(stdin.flush().await);
        let drain = async {
            let mut sink = vec![0u8; 64 * 1024];
            while matches!(stdout.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let exit = async { tokio::join!(drain, child.wait()).1 };
        if asked.is_ok() && tokio::time::timeout(STOP_GRACE, exit).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
