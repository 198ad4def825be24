//! One camera's life: start ffmpeg, read frames, index chunks, notice
//! stalls and exits, restart with backoff, and report health as events.

use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::command::{Plan, Source};
use super::detect::{self, obj, Mailbox, PendingFrame};
use super::recorder::{pid_file, Chunks, ListTail};
use super::stats::CameraStats;
use super::Ctx;
use crate::nvr::store::{Camera, NewEvent};

/// Largest JPEG accepted from ffmpeg; far above any real frame.
const MAX_FRAME_BYTES: usize = 32 << 20;
/// How often `latest.jpg` is checked for a new frame.
const FRAME_POLL: Duration = Duration::from_millis(40);
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
    // `down_since` stays unset until a failure: the first `camera_online`
    // after a clean start has `down_ms: null`.
    let mut health = Health::default();
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
        // Also where the run's ffmpeg log goes, so it exists without recording too.
        if let Err(e) = std::fs::create_dir_all(&inprogress) {
            return Outcome::SpawnFailed(format!("{}: {e}", inprogress.display()));
        }
        let latest = ctx.frames_dir.join(&cam.id).join("latest.jpg");
        if let Err(e) = std::fs::create_dir_all(latest.parent().unwrap_or(&ctx.frames_dir)) {
            return Outcome::SpawnFailed(format!("{}: {e}", latest.display()));
        }
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
            run_id,
        };
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
        // Connecting and probing a camera can take a while: until the first
        // frame the allowance is at least FIRST_FRAME_GRACE.
        let stall = Duration::from_secs(u64::from(ctx.cfg.stall_timeout_s.max(1)));
        let mut allowance = stall.max(FIRST_FRAME_GRACE);
        let mut last_frame = Instant::now();
        let mut frame_tick = tokio::time::interval(FRAME_POLL);
        let mut list_tick = tokio::time::interval(LIST_POLL);
        let outcome = loop {
            tokio::select! {
                _ = frame_tick.tick() => {
                    if let Some(jpeg) = frames.next() {
                        last_frame = Instant::now();
                        allowance = stall;
                        self.on_frame(jpeg).await;
                    }
                }
                _ = list_tick.tick() => {
                    self.index(&mut list, run_id).await;
                    cap_log(&log);
                    if last_frame.elapsed() > allowance {
                        break Outcome::Stalled(last_frame.elapsed().as_millis() as u64);
                    }
                }
                _ = child.wait() => break Outcome::Exited(String::new()),
                _ = stopped(stop) => break Outcome::Stopped,
            }
        };
        end(
            &mut child,
            ffmpeg_pid,
            !matches!(outcome, Outcome::Exited(_)),
        )
        .await;
        let last_error = last_line(&log);
        self.index(&mut list, run_id).await;
        match self.chunks.close_run(&cam.id, run_id).await {
            Ok((n, _)) => {
                self.stats.chunks.fetch_add(n as u64, Relaxed);
            }
            Err(e) => tracing::error!(camera = %cam.id, error = %e, "cannot close run"),
        }
        match outcome {
            Outcome::Exited(_) => {
                let msg = match child.try_wait() {
                    Ok(Some(st)) if last_error.is_empty() => format!("ffmpeg exited: {st}"),
                    _ => last_error,
                };
                Outcome::Exited(msg)
            }
            o => o,
        }
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

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs ffmpeg under a small `sh` shim that forwards exactly one SIGTERM.
///
/// If the daemon dies, ffmpeg must close the chunk it is writing. The
/// kernel's parent-death signal (`PR_SET_PDEATHSIG`) does that, but it fires
/// each time the child is handed to another thread of the dying process, so
/// a child of the multi-threaded daemon gets several SIGTERMs, and ffmpeg
/// treats a second signal as "exit now, skip the trailer". So the death signal
/// goes to the single-threaded shim, which passes one SIGTERM on to ffmpeg
/// and waits for it. The shim writes ffmpeg's pid to `pid_file` (the startup
/// reconciliation waits for that pid). ffmpeg's stdin is ours through the
/// shim: `q` there is how we stop it (see [`end`]).
const SHIM: &str = r#"trap '' INT
"$0" "$@" <&0 &
p=$!
echo $p > "$OPENNVR_FFMPEG_PID"
trap 'kill -TERM $p 2>/dev/null; trap "" TERM' TERM
wait $p; r=$?
while kill -0 $p 2>/dev/null; do wait $p; r=$?; done
exit $r"#;

fn spawn(
    ffmpeg: &std::path::Path,
    plan: &Plan<'_>,
    log: &std::path::Path,
    pid_file: &std::path::Path,
) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SHIM)
        .arg(ffmpeg)
        .args(plan.args())
        .env("OPENNVR_FFMPEG_PID", pid_file)
        .stdin(Stdio::piped())
        // Frames and logs go to files, not pipes: if the daemon dies, every
        // write to a broken pipe is a SIGPIPE that ffmpeg counts like SIGTERM.
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
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
async fn end(child: &mut Child, ffmpeg_pid: Option<u32>, polite: bool) {
    if let (true, Some(mut stdin)) = (polite, child.stdin.take()) {
        let asked = stdin.write_all(b"q").await.and(stdin.flush().await);
        if asked.is_ok() && tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    if let Some(pid) = ffmpeg_pid {
        // SAFETY: kill(2) on ffmpeg, whose parent (the shim) we have not reaped yet.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

/// ffmpeg's pid, as the shim wrote it (it may take a moment to appear).
async fn read_pid(file: &std::path::Path) -> Option<u32> {
    for _ in 0..50 {
        let pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if pid.is_some() {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Largest ffmpeg log kept per run; a camera that streams garbage makes
/// ffmpeg log an error per frame, for months.
const MAX_LOG_BYTES: u64 = 1 << 20;

/// Empties the run's log when it grows past [`MAX_LOG_BYTES`] (ffmpeg
/// appends with `O_APPEND`, so it simply continues at the new end).
fn cap_log(log: &std::path::Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(log) {
            let _ = f.set_len(0);
        }
    }
}

/// The last line ffmpeg logged (it logs errors only), for `last_error`.
fn last_line(log: &std::path::Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Notices each new `latest.jpg`: ffmpeg writes it atomically (temp file,
/// rename), so a new (inode, mtime) is a new, complete frame. The mtime is
/// there because a freed inode number is often reused by the next file.
struct FrameWatch {
    path: std::path::PathBuf,
    seen: Option<(u64, i64, i64)>,
}

impl FrameWatch {
    /// Starts from whatever `latest.jpg` is there now (an old run's frame).
    fn new(path: std::path::PathBuf) -> Self {
        let seen = inode(&path);
        Self { path, seen }
    }

    /// The new frame's bytes, if ffmpeg has replaced the file since the last call.
    fn next(&mut self) -> Option<Vec<u8>> {
        let ino = inode(&self.path)?;
        if self.seen == Some(ino) {
            return None;
        }
        let bytes = std::fs::read(&self.path).ok()?;
        // Replaced again between stat and read: that newer frame is fine too.
        self.seen = inode(&self.path);
        (bytes.len() <= MAX_FRAME_BYTES).then_some(bytes)
    }
}

fn inode(p: &std::path::Path) -> Option<(u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
}
