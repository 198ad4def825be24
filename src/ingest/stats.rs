//! Live counters per camera, for `GET /api/v1/cameras/{id}/status`: whether
//! it is online, its ffmpeg pid, frames in, analysed and dropped, restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::metrics::Histogram;
use crate::nvr::live::{CameraStatus, LiveCameras};

/// Frame-to-event latency bounds, seconds: fine below a second (the goal
/// is a p95 under 1 s), coarse above.
pub const FRAME_LATENCY_BUCKETS_S: &[f64] = &[
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// A camera's frame-to-event latency histogram.
#[derive(Debug)]
pub struct FrameLatency(pub Histogram);

impl Default for FrameLatency {
    fn default() -> Self {
        Self(Histogram::new(FRAME_LATENCY_BUCKETS_S))
    }
}

/// One camera's counters; updated lock-free by its tasks.
#[derive(Debug, Default)]
pub struct CameraStats {
    pub online: AtomicBool,
    pub pid: AtomicU32,
    /// The sub-stream's ffmpeg (`detect_url`), 0 when there is none.
    pub detect_pid: AtomicU32,
    /// From an analysed frame being read to its events being stored (to the
    /// end of its analysis when it emitted none; gated frames are not counted).
    pub latency: FrameLatency,
    pub frames: AtomicU64,
    pub analysed: AtomicU64,
    /// Frames the detector skipped because it was still busy with an older one.
    pub dropped: AtomicU64,
    pub restarts: AtomicU64,
    pub chunks: AtomicU64,
    pub events: AtomicU64,
    pub last_frame_at: AtomicI64,
    /// Motion gating: frames with no detector run, crops run, full passes.
    pub gated: AtomicU64,
    pub regions: AtomicU64,
    pub full_passes: AtomicU64,
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
            gated: self.gated.load(Relaxed),
            regions: self.regions.load(Relaxed),
            full_passes: self.full_passes.load(Relaxed),
            detect_ffmpeg_pid: Some(self.detect_pid.load(Relaxed)).filter(|p| *p != 0),
            latency_p95_ms: self
                .latency
                .0
                .quantile_bound(0.95)
                .map(|s| (s * 1000.0).round() as u64),
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
const FAMILIES: [(&str, &str, crate::metrics::Kind); 10] = {
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
        (
            "opennvr_camera_frames_gated_total",
            "Frames motion gating passed without a detector run.",
            Counter,
        ),
        (
            "opennvr_camera_regions_total",
            "Crops the detector ran on under motion gating.",
            Counter,
        ),
        (
            "opennvr_camera_full_passes_total",
            "Full-frame detector passes under motion gating.",
            Counter,
        ),
    ]
};

impl CameraStats {
    /// The values of [`FAMILIES`], in order.
    fn figures(&self) -> [u64; 10] {
        [
            u64::from(self.online.load(Relaxed)),
            self.frames.load(Relaxed),
            self.analysed.load(Relaxed),
            self.dropped.load(Relaxed),
            self.restarts.load(Relaxed),
            self.chunks.load(Relaxed),
            self.events.load(Relaxed),
            self.gated.load(Relaxed),
            self.regions.load(Relaxed),
            self.full_passes.load(Relaxed),
        ]
    }
}

/// Camera pipeline figures for `/metrics`, one series per running camera
/// (bounded by the cameras table; a removed camera's series go with it).
impl crate::metrics::Collect for IngestStats {
    fn collect(&self, out: &mut crate::metrics::Exposition) {
        let mut cams: Vec<(String, Arc<CameraStats>)> = {
            let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        cams.sort_by(|a, b| a.0.cmp(&b.0));
        let figures: Vec<[u64; 10]> = cams.iter().map(|(_, s)| s.figures()).collect();
        for (i, (name, help, kind)) in FAMILIES.into_iter().enumerate() {
            out.family(name, help, kind);
            for ((cam, _), f) in cams.iter().zip(&figures) {
                out.sample(name, &[("camera", cam)], f[i] as f64);
            }
        }
        let name = "opennvr_camera_frame_to_event_seconds";
        out.family(
            name,
            "From an analysed frame being read to its events being stored (frames that \
             emitted no event: to the end of their analysis; gated frames are not counted).",
            crate::metrics::Kind::Histogram,
        );
        for (cam, s) in &cams {
            out.histogram(name, &[("camera", cam)], &s.latency.0);
        }
    }
}
