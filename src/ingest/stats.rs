//! Live counters per camera, for `GET /api/v1/cameras/{id}/status`: whether
//! it is online, its ffmpeg pid, frames in, analysed and dropped, restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::nvr::live::{CameraStatus, LiveCameras};

/// One camera's counters; updated lock-free by its tasks.
#[derive(Debug, Default)]
pub struct CameraStats {
    pub online: AtomicBool,
    pub pid: AtomicU32,
    pub frames: AtomicU64,
    pub analysed: AtomicU64,
    /// Frames the detector skipped because it was still busy with an older one.
    pub dropped: AtomicU64,
    pub restarts: AtomicU64,
    pub chunks: AtomicU64,
    pub events: AtomicU64,
    pub last_frame_at: AtomicI64,
    pub last_error: Mutex<Option<String>>,
    /// How the current run records; see [`RecordInfo`].
    pub record: Mutex<RecordInfo>,
    /// The current run decodes on the GPU (`-hwaccel cuda`).
    pub gpu_decode: AtomicBool,
}

/// What a camera's recording does: the probed codec (`record_mode = "auto"`,
/// or after a failure) and `copy` or `transcode`; both `None` when not recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordInfo {
    pub codec: Option<String>,
    pub method: Option<&'static str>,
}

impl CameraStats {
    /// A consistent-enough copy for display.
    pub fn status(&self) -> CameraStatus {
        let pid = self.pid.load(Relaxed);
        let last = self.last_frame_at.load(Relaxed);
        let rec = self.record.lock().map(|r| r.clone()).unwrap_or_default();
        CameraStatus {
            online: self.online.load(Relaxed),
            ffmpeg_pid: (pid != 0).then_some(pid),
            frames: self.frames.load(Relaxed),
            analysed: self.analysed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            chunks: self.chunks.load(Relaxed),
            events: self.events.load(Relaxed),
            last_frame_at: (last != 0).then_some(last),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            codec: rec.codec,
            record_method: rec.method.map(str::to_owned),
            decode: if self.gpu_decode.load(Relaxed) {
                "cuda"
            } else {
                "software"
            },
        }
    }

    /// Remembers how the current run records, for the status endpoint.
    pub fn set_record(&self, info: RecordInfo) {
        if let Ok(mut g) = self.record.lock() {
            *g = info;
        }
    }

    /// Remembers the latest failure for the status endpoint.
    pub fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }
}

/// Every camera's counters, keyed by camera id.
#[derive(Debug, Default)]
pub struct IngestStats(Mutex<HashMap<String, Arc<CameraStats>>>);

impl IngestStats {
    /// The counters of `camera`, created on first use.
    pub fn camera(&self, camera: &str) -> Arc<CameraStats> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(camera.to_owned()).or_default().clone()
    }

    /// Forgets a camera that was removed or disabled.
    pub fn remove(&self, camera: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(camera);
    }
}

impl LiveCameras for IngestStats {
    fn status(&self, camera: &str) -> Option<CameraStatus> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(camera).map(|s| s.status())
    }
}

/// The per-camera families of `/metrics`: name, help, kind, in the order
/// of [`CameraStats::figures`].
const FAMILIES: [(&str, &str, crate::metrics::Kind); 7] = {
    use crate::metrics::Kind::{Counter, Gauge};
    [
        (
            "opennvr_camera_online",
            "1 while the camera delivers frames.",
            Gauge,
        ),
        (
            "opennvr_camera_frames_total",
            "Frames read (at detect fps).",
            Counter,
        ),
        (
            "opennvr_camera_frames_analysed_total",
            "Frames analysed.",
            Counter,
        ),
        (
            "opennvr_camera_frames_dropped_total",
            "Frames skipped: the detector was busy.",
            Counter,
        ),
        (
            "opennvr_camera_restarts_total",
            "Restarts of the camera's ffmpeg.",
            Counter,
        ),
        (
            "opennvr_camera_chunks_total",
            "Recording chunks indexed.",
            Counter,
        ),
        (
            "opennvr_camera_events_total",
            "Events the camera's pipeline stored.",
            Counter,
        ),
    ]
};

impl CameraStats {
    /// The values of [`FAMILIES`], in order.
    fn figures(&self) -> [u64; 7] {
        [
            u64::from(self.online.load(Relaxed)),
            self.frames.load(Relaxed),
            self.analysed.load(Relaxed),
            self.dropped.load(Relaxed),
            self.restarts.load(Relaxed),
            self.chunks.load(Relaxed),
            self.events.load(Relaxed),
        ]
    }
}

/// Camera pipeline figures for `/metrics`, one series per running camera
/// (bounded by the cameras table; a removed camera's series go with it).
impl crate::metrics::Collect for IngestStats {
    fn collect(&self, out: &mut crate::metrics::Exposition) {
        let mut cams: Vec<(String, [u64; 7])> = {
            let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            m.iter().map(|(k, v)| (k.clone(), v.figures())).collect()
        };
        cams.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, help, kind)) in FAMILIES.into_iter().enumerate() {
            out.family(name, help, kind);
            for (cam, figures) in &cams {
                out.sample(name, &[("camera", cam)], figures[i] as f64);
            }
        }
    }
}
