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
    /// `cuda` when ffmpeg decodes on the GPU (`[ingest] hwaccel`), else `software`.
    pub decode: &'static str,
}

/// The running cameras' counters, read by the status endpoint.
pub trait LiveCameras: Send + Sync {
    /// The status of `camera`, or `None` if it has never run.
    fn status(&self, camera: &str) -> Option<CameraStatus>;
}
