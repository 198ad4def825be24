//! The demo camera: Debian's `vtest.avi` (a street clip with pedestrians,
//! from `opencv-doc`) transcoded once to H.264 MP4 and replayed in real
//! time, looped, as `camera_0`. It lets a newcomer see recordings and person
//! events without owning a camera; `run --demo` turns it on.

use std::path::{Path, PathBuf};

use anyhow::Context;

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
pub fn transcode(ffmpeg: &Path, src: &Path, dest: &Path) -> anyhow::Result<()> {
    if dest.is_file() {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".demo-transcode.mp4");
    let out = std::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(src)
        .arg("-an")
        .args(x264_args("veryfast"))
        .args(["-g", "10", "-movflags", "+faststart"])
        .arg(&tmp)
        .output()
        .with_context(|| format!("running {}", ffmpeg.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "transcoding {} failed: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// Makes sure `camera_0` exists, replaying the transcoded clip.
pub async fn ensure(cfg: &Config, store: &Store) -> anyhow::Result<()> {
    let src = std::env::var_os("OPENNVR_DEMO_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VTEST));
    anyhow::ensure!(
        src.is_file(),
        "demo clip {} not found: install Debian's opencv-doc (scripts/setup.sh does)",
        src.display()
    );
    let dest = std::path::absolute(DataDir::new(&cfg.paths).demo_clip())?;
    let ffmpeg = cfg.ingest.ffmpeg.clone();
    let d = dest.clone();
    tokio::task::spawn_blocking(move || transcode(&ffmpeg, &src, &d)).await??;
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
