//! The ffmpeg child of one camera run: how it is started (under a shim, so
//! a crash of the daemon still lets it close its chunk), stopped, how its
//! frames and log are read back without pipes, and how the next start waits
//! out the children a dead daemon left behind.
//!
//! The one rule behind all of it: ffmpeg treats a *second* signal as "exit
//! now, skip the trailer", which loses the chunk being recorded. So nothing
//! here may ever deliver it two signals (docs/ingest.md).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use super::command::Plan;

/// Largest raw frame accepted from ffmpeg (a 4K rgb24 frame is 25 MB).
const MAX_FRAME_BYTES: usize = 32 << 20;
/// How long a stopping ffmpeg gets to close its chunk before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

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

/// Starts ffmpeg for `plan` under [`SHIM`]: its stderr appended to `log`,
/// its pid written to `pid_file`, our end of its stdin kept for [`end`].
pub fn spawn(
    ffmpeg: &Path,
    plan: &Plan<'_>,
    log: &Path,
    pid_file: &Path,
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
pub async fn end(child: &mut Child, ffmpeg_pid: Option<u32>, polite: bool) {
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
pub async fn read_pid(file: &Path) -> Option<u32> {
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

/// The file that names a run's ffmpeg process while it runs (written by
/// [`SHIM`]; removed when the run is closed).
pub fn pid_file(dir: &Path, run_id: i64) -> PathBuf {
    dir.join(format!("{run_id}.pid"))
}

/// Waits (bounded by `limit`, then SIGKILL) for the ffmpeg children of a
/// daemon that died: the shim sent them one SIGTERM and they are closing
/// their last chunk, which must not be judged before they are done. `dirs`
/// are the `.inprogress` folders, where each run left its [`pid_file`]. A
/// pid counts only while its command line still names the run's files
/// (pids are reused). Blocking: run it off the async threads.
pub fn wait_for_dead_runs(dirs: &[PathBuf], limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    for dir in dirs {
        for f in super::recorder::files(dir) {
            let Some(run) = f
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
            else {
                continue;
            };
            let pid: Option<i32> = std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let Some(pid) = pid else {
                continue;
            };
            let alive = || {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&format!("{run}.csv")))
            };
            while alive() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive() {
                // SAFETY: plain kill(2) on a pid verified above to be that run's ffmpeg.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Largest ffmpeg log kept per run; a camera that streams garbage makes
/// ffmpeg log an error per frame, for months.
const MAX_LOG_BYTES: u64 = 1 << 20;

/// Empties the run's log when it grows past [`MAX_LOG_BYTES`] (ffmpeg
/// appends with `O_APPEND`, so it simply continues at the new end).
pub fn cap_log(log: &Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(log) {
            let _ = f.set_len(0);
        }
    }
}

/// The end of a run's ffmpeg log (it logs errors only): enough for the
/// lines that explain an exit, never the whole capped log.
pub fn log_tail(log: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 << 10;
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
        let _ = f.take(TAIL).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last non-empty line of a log text, trimmed (for `last_error`).
pub fn last_line_of(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
}

/// Notices each new `latest.ppm`: ffmpeg writes it atomically (temp file,
/// rename), so a new (inode, mtime) is a new, complete frame. The mtime is
/// there because a freed inode number is often reused by the next file.
pub struct FrameWatch {
    path: PathBuf,
    seen: Option<(u64, i64, i64)>,
}

impl FrameWatch {
    /// Starts from whatever `latest.ppm` is there now (an old run's frame).
    pub fn new(path: PathBuf) -> Self {
        let seen = inode(&path);
        Self { path, seen }
    }

    /// The new frame's bytes, if ffmpeg has replaced the file since the last call.
    pub fn new_frame(&mut self) -> Option<Vec<u8>> {
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

fn inode(p: &Path) -> Option<(u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
}
