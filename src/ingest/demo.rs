//! The demo camera: Debian's `vtest.avi` (a street clip with pedestrians,
//! from `opencv-doc`) transcoded once to H.264 MP4 and replayed in real
//! time, looped, as `camera_0`. It lets a newcomer see recordings and person
//! events without owning a camera; `run --demo` turns it on.

use std::path::{Path, PathBuf};

use super::command::x264_args;
use crate::config::Config;
use crate::nvr::store::{db, CameraPatch, Store, StoreError};
use crate::paths::DataDir;

/// Where Debian's `opencv-doc` puts the clip.
pub const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
/// The demo camera's id.
pub const CAMERA_ID: &str = "camera_0";

/// Chunk length for the demo when the config leaves the default: a newcomer
/// should see a recording within a minute, not after the first 60 s chunk.
pub const DEMO_SEGMENT_S: u32 = 20;

/// Why the demo camera could not be set up; `run --demo` stops with it.
/// Each variant says its cause in its message (no `source()`).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The clip is not installed.
    #[error("demo clip {0} not found: install Debian's opencv-doc (scripts/setup.sh does)")]
    NoClip(PathBuf),
    /// A file step failed: `what` is the step, `path` its file.
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    /// ffmpeg refused the clip (its last words).
    #[error("transcoding {path} failed: {reason}")]
    Transcode { path: PathBuf, reason: String },
    /// The camera row could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking transcode task died; a bug.
    #[error("internal demo failure: {0}")]
    Internal(&'static str),
}

/// A file step's error with its step and path.
fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DemoError + 'a {
    move |cause| DemoError::Io {
        what,
        path: path.to_owned(),
        cause,
    }
}

/// Shortens chunks to [`DEMO_SEGMENT_S`] unless `segment_s` was configured.
pub fn adjust(cfg: &mut Config) {
    if cfg.ingest.segment_s == crate::config::IngestConfig::default().segment_s {
        cfg.ingest.segment_s = DEMO_SEGMENT_S;
    }
}

/// Transcodes `src` to an H.264 MP4 at `dest` unless it is already there.
/// `record_mode = "auto"` would record vtest.avi (msmpeg4) by transcoding
/// live, but that costs libx264 for as long as the demo runs; transcoding
/// once lets the demo record by stream copy. A keyframe every second lets
/// chunks be cut close to their length.
pub fn transcode(ffmpeg: &Path, src: &Path, dest: &Path) -> Result<(), DemoError> {
    if dest.is_file() {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let tmp = dir.join(".demo-transcode.mp4");
    let mut cmd = std::process::Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(src)
        .arg("-an")
        .args(x264_args("veryfast"))
        .args(["-g", "10", "-movflags", "+faststart"])
        .arg(&tmp);
    run_ffmpeg(cmd, ffmpeg, src)?;
    std::fs::rename(&tmp, dest).map_err(io("placing", dest))
}

/// Runs an ffmpeg that makes a clip from `src`; its stderr is the error.
fn run_ffmpeg(mut cmd: std::process::Command, ffmpeg: &Path, src: &Path) -> Result<(), DemoError> {
    let out = cmd.output().map_err(io("running", ffmpeg))?;
    if !out.status.success() {
        return Err(DemoError::Transcode {
            path: src.to_owned(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Debian opencv-doc's real still of a street façade (no people).
pub const STILL: &str = "/usr/share/doc/opencv-doc/examples/data/leuvenA.jpg";

/// What a quiet camera sends, for the motion tests and the benchmark:
/// [`STILL`] for `secs` seconds at 10 fps with temporal sensor noise, then
/// the `-vf` filters in `more` (`",eq=..."`, or empty), as H.264 at `dest`.
pub fn quiet_clip(ffmpeg: &Path, secs: u32, more: &str, dest: &Path) -> Result<(), DemoError> {
    let vf = format!("scale=752:564,noise=alls=24:allf=t+u{more},format=yuv420p");
    let mut cmd = std::process::Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-loop", "1", "-framerate", "10", "-i", STILL])
        .args(["-t", &secs.to_string(), "-vf", &vf])
        .args(x264_args("veryfast"))
        .arg(dest);
    run_ffmpeg(cmd, ffmpeg, Path::new(STILL))
}

/// Makes sure `camera_0` exists, replaying the transcoded clip.
pub async fn ensure(cfg: &Config, store: &Store) -> Result<(), DemoError> {
    let src = std::env::var_os("OPENNVR_DEMO_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VTEST));
    if !src.is_file() {
        return Err(DemoError::NoClip(src));
    }
    let rel = DataDir::new(&cfg.paths).demo_clip();
    let dest = std::path::absolute(&rel).map_err(io("resolving", &rel))?;
    let ffmpeg = cfg.ingest.ffmpeg.clone();
    let d = dest.clone();
    tokio::task::spawn_blocking(move || transcode(&ffmpeg, &src, &d))
        .await
        .map_err(|_| DemoError::Internal("transcoding the demo clip"))??;
    let patch = CameraPatch {
        name: Some("Demo camera (vtest.avi)".into()),
        source_url: Some(format!("file://{}", dest.display())),
        ..CameraPatch::default()
    };
    let created = store
        .writer()
        .call(move |c, now| db::create_camera(c, CAMERA_ID, &patch, now))
        .await;
    match created {
        Ok(_) => tracing::info!("demo camera {CAMERA_ID} created"),
        Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_shortens_only_default_chunks() {
        let mut cfg = Config::default();
        adjust(&mut cfg);
        assert_eq!(cfg.ingest.segment_s, DEMO_SEGMENT_S);
        cfg.ingest.segment_s = 45;
        adjust(&mut cfg);
        assert_eq!(cfg.ingest.segment_s, 45);
    }
}
