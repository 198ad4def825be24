//! What the NVR shows of the camera pipeline without knowing it: the shape
//! of a camera's live status and the trait the pipeline implements to give
//! it. `nvr` sits below `ingest` (ingest writes through `nvr::store`), so the
//! pipeline reports up through this seam, wired in `cmd/run.rs`.

use serde::Serialize;

/// A camera's live counters, as `GET /api/v1/cameras/{id}/status` shows them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CameraStatus {
    pub online: bool,
    pub ffmpeg_pid: Option<u32>,
    pub frames: u64,
    pub analysed: u64,
    pub dropped: u64,
    pub restarts: u64,
    pub chunks: u64,
    pub events: u64,
    pub last_frame_at: Option<i64>,
    pub last_error: Option<String>,
    /// The camera's video codec as ffprobe names it (`h264`, `mjpeg`...).
    pub codec: Option<String>,
    /// `copy` or `transcode`: how chunks are being recorded.
    pub record_method: Option<String>,
    /// Frames motion gating let pass without a detector run.
    pub gated: u64,
    /// Crops the detector ran on (motion gating's regions).
    pub regions: u64,
    /// Full-frame detector passes under motion gating (periodic, or when
    /// a frame needed more crops than allowed).
    pub full_passes: u64,
    /// The pid of the ffmpeg that decodes the `detect_url` sub-stream, if any.
    pub detect_ffmpeg_pid: Option<u32>,
    /// 95th percentile of frame-to-event latency (an analysed frame read to
    /// its events stored, or to the end of its analysis when it emitted
    /// none), milliseconds, as the bound of its histogram bucket.
    pub latency_p95_ms: Option<u64>,
    /// `cuda` when ffmpeg decodes on the GPU (`[ingest] hwaccel`), else `software`.
    pub decode: &'static str,
}

/// The running cameras' counters, read by the status endpoint.
pub trait LiveCameras: Send + Sync {
    /// The status of `camera`, or `None` if it has never run.
    fn status(&self, camera: &str) -> Option<CameraStatus>;
}
