//! The one typed configuration of the daemon.
//!
//! Every field has a serde default so an empty file (or no file) gives a
//! working daemon; a few `OPENNVR_*` environment variables override the file
//! because that is how systemd units and containers are usually tuned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded; reported at startup, never at run time.
/// A variant says its cause in its message, so it does not return it from `source()`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `OPENNVR_CONFIG` could not be read.
    #[error("cannot read config {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config {path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: Box<toml::de::Error>,
    },
    /// An environment override does not parse.
    #[error("invalid value for {var}: {value:?}")]
    Env { var: &'static str, value: String },
    /// A value parses but cannot work (`[ingest.motion]`).
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Top-level configuration, as read from TOML.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub ai: AiConfig,
    pub nvr: NvrConfig,
    pub paths: PathsConfig,
    pub detector: DetectorConfig,
    pub faces: FacesConfig,
    pub captioner: CaptionerConfig,
    pub tracker: TrackerSettings,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub events: EventsConfig,
    pub console: ConsoleConfig,
}

/// The AI adapter (port 9100).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Localhost by default: the adapter has no auth, like OpenNVR's, so it is
    /// only exposed when the operator says so.
    pub listen: SocketAddr,
    /// Largest request body (JSON with a base64 frame, or multipart), bytes.
    pub max_body_bytes: usize,
    /// Largest decoded image, in pixels; protects memory from decompression bombs.
    pub max_image_pixels: u64,
    /// Requests allowed to wait for or hold an inference slot; the next gets 503.
    pub queue_depth: usize,
    /// Inferences that run at once (camera frames and API requests share
    /// them); 0 (the default) = one per core. tract parallelises only the
    /// matrix products of one inference, and poorly on small boxes, so one
    /// single-threaded runner per core analyses 19-37 % more camera frames
    /// on two cores than one runner with two threads (docs/performance.md),
    /// at the price of a slower lone `/infer` request.
    pub workers: usize,
    /// Threads inside one inference; 0 = the cores shared out among the
    /// `workers` (at least 1 each).
    pub threads: usize,
    /// Request body bytes buffered across all admitted requests at once; a
    /// request that would pass it gets 503, so stalled uploads cannot hold
    /// the box's memory.
    pub body_budget_bytes: usize,
    /// `/infer` clients (peer addresses) whose person_counting trackers are
    /// kept; the least recently seen is forgotten first.
    pub max_clients: usize,
    /// Cameras kept per `/infer` client; a client inventing names evicts
    /// only its own cameras.
    pub max_cameras_per_client: usize,
    /// How far a frame's `timestamp_ms` may run ahead of its camera's
    /// tracker clock (the last frame's time plus the real time since); a
    /// frame further ahead is refused with 400.
    pub max_timestamp_jump_ms: i64,
    /// Bearer token the adapter requires (contract v1 §3.8) on every route
    /// but `/health` and `/v1/health`; unset: no auth (loopback use).
    /// `OPENNVR_ADAPTER_TOKEN` overrides it. Never serialized.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// `/v1/infer/stream` WebSockets open at once (at most half per client).
    pub max_streams: usize,
    /// A stream that sends nothing for this long is closed (seconds).
    pub stream_idle_timeout_s: u64,
    /// Largest frame one stream message may carry, bytes.
    pub stream_max_frame_bytes: usize,
    /// Where models run (docs/gpu.md): `auto` uses CUDA when a GPU is found
    /// and its libraries load, else the CPU; `cuda` refuses to start without.
    pub device: Device,
    /// Plan models in half precision on CUDA: faster, parity looser than f32.
    pub cuda_f16: bool,
    /// Which runtime serves the models when they run on the CPU
    /// (docs/performance.md): onnxruntime runs the same ONNX files 2-3x
    /// faster than tract on x86 boxes, tract is pure Rust and always there.
    pub cpu_runtime: CpuRuntime,
    /// The onnxruntime library `cpu_runtime` loads; empty = the one
    /// `models/fetch.sh` installs beside the models
    /// (`<models_dir>/runtime/`). Loaded only when its sha256 is the one
    /// this build pins (`models/runtime.sha256`).
    pub onnxruntime_lib: PathBuf,
}

/// `[ai] device`: which runtime serves the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// CUDA when an NVIDIA GPU is found and the CUDA libraries load, else the CPU.
    #[default]
    Auto,
    /// tract on the CPU, always.
    Cpu,
    /// tract's CUDA runtime; the daemon does not start without it.
    Cuda,
}

/// `[ai] cpu_runtime`: which runtime serves the models on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuRuntime {
    /// onnxruntime when its pinned library loads, else tract (the log says why).
    #[default]
    Auto,
    /// onnxruntime; the daemon does not start without it.
    Onnxruntime,
    /// tract, always.
    Tract,
}

/// The TOML spelling, for the environment overrides.
fn parse_lowercase<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, ()> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|_| ())
}

/// `FromStr` in the TOML spelling, for the config's lowercase enums.
macro_rules! lowercase_from_str {
    ($($t:ty),+) => {$(
        impl std::str::FromStr for $t {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                parse_lowercase(s)
            }
        }
    )+};
}

lowercase_from_str!(CpuRuntime, Device, Hwaccel);

/// `[ingest] hwaccel`: where ffmpeg decodes the frames for detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hwaccel {
    /// Software decoding, always.
    #[default]
    None,
    /// `-hwaccel cuda` (NVDEC) first; software when ffmpeg fails with it.
    Cuda,
    /// `cuda` when this ffmpeg lists it and an NVIDIA device node exists.
    Auto,
}

impl AiConfig {
    /// The number of runners: `workers`, or one per core when 0.
    pub fn runners(&self) -> usize {
        match self.workers {
            0 => cores(),
            n => n,
        }
    }

    /// Threads per inference (tract's matrix products, onnxruntime's
    /// intra-op pool): `threads`, or the cores shared out among the runners
    /// when 0.
    pub fn runner_threads(&self) -> usize {
        match self.threads {
            0 => (cores() / self.runners()).max(1),
            n => n,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 9100).into(),
            max_body_bytes: 16 * 1024 * 1024,
            max_image_pixels: 40_000_000,
            queue_depth: 8,
            workers: 0,
            threads: 0,
            body_budget_bytes: 64 * 1024 * 1024,
            max_clients: 64,
            max_cameras_per_client: 32,
            max_timestamp_jump_ms: 60_000,
            token: None,
            max_streams: 16,
            stream_idle_timeout_s: 60,
            stream_max_frame_bytes: 8 * 1024 * 1024,
            device: Device::Auto,
            cuda_f16: false,
            cpu_runtime: CpuRuntime::Auto,
            onnxruntime_lib: PathBuf::new(),
        }
    }
}

/// The NVR core (port 8000).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NvrConfig {
    pub listen: SocketAddr,
    /// Largest request body on 8000, bytes; events and camera edits are small,
    /// so anything bigger is refused before it is buffered.
    pub max_body_bytes: usize,
    /// Lifetime of an access token (seconds); short, because access tokens are
    /// not checked against the store and so cannot be revoked early.
    pub access_token_ttl_s: i64,
    /// Lifetime of a refresh token (seconds); refreshes are checked against the
    /// user's token version, so a password change revokes them.
    pub refresh_token_ttl_s: i64,
    /// Lifetime of a stream ticket (seconds); just long enough to open the stream.
    pub ticket_ttl_s: i64,
    /// Failed logins per username within `login_window_s` before 429.
    pub login_failures_per_user: u32,
    /// Failed logins per client IP within `login_window_s` before 429; higher
    /// than per user because one IP may be a NAT with several people behind it.
    pub login_failures_per_ip: u32,
    /// The sliding window for the two limits above (seconds).
    pub login_window_s: i64,
    /// Live events buffered per stream before a slow client is told `lagged`.
    pub stream_buffer: usize,
    /// Password checks (Argon2id, ~19 MiB each) running at once; more wait.
    pub login_hash_concurrency: usize,
    /// How long a login waits for a hashing slot before 503 (milliseconds).
    pub login_hash_wait_ms: u64,
    /// Largest `payload` of a stored event (bytes of JSON); events carry
    /// metadata, pictures go in snapshots.
    pub max_event_payload_bytes: usize,
    /// A page of `GET /api/v1/events` stops after about this many bytes of
    /// JSON, and says where to continue.
    pub max_list_bytes: usize,
    /// Largest WebSocket message (and frame) a stream client may send; they
    /// never need to send more than a ping or a close.
    pub ws_max_message_bytes: usize,
    /// How often an open stream re-checks its token (seconds): a revoked or
    /// expired token ends the stream within this time.
    pub stream_recheck_s: u64,
    /// Most users `POST /api/v1/users` (and the console) may create; each
    /// is a row and a login the rate limiter tracks.
    pub max_users: usize,
}

impl Default for NvrConfig {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 8000).into(),
            max_body_bytes: 256 * 1024,
            access_token_ttl_s: 15 * 60,
            refresh_token_ttl_s: 7 * 24 * 3600,
            ticket_ttl_s: 30,
            login_failures_per_user: 5,
            login_failures_per_ip: 20,
            login_window_s: 300,
            stream_buffer: 1024,
            login_hash_concurrency: 2,
            login_hash_wait_ms: 10_000,
            max_event_payload_bytes: 16 * 1024,
            max_list_bytes: 4 * 1024 * 1024,
            ws_max_message_bytes: 16 * 1024,
            stream_recheck_s: 30,
            max_users: 100,
        }
    }
}

/// The web console on the NVR port (`src/console/`, docs/console.md): its
/// cookie sessions are held in memory, so each is bounded here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A session unused this long (seconds) is over; the next page asks to sign in again.
    pub session_idle_s: i64,
    /// A session ends this long (seconds) after sign-in, however much it is used.
    pub session_max_s: i64,
    /// Sessions held at once across all users, so a flood of logins cannot
    /// grow memory. Only expired ones are swept to make room: when the table
    /// is full of live sessions a sign-in is refused, never another user's
    /// session ended.
    pub max_sessions: usize,
    /// Sessions one user holds at once; signing in past it ends that user's
    /// own least recently used session, so nobody can crowd others out.
    pub max_sessions_per_user: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            session_idle_s: 12 * 3600,
            session_max_s: 7 * 86_400,
            max_sessions: 1024,
            max_sessions_per_user: 16,
        }
    }
}

/// Where state lives on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// Database, secrets, recordings. Relative paths resolve against the working directory.
    pub data_dir: PathBuf,
    /// What `models/fetch.sh` produced: `manifest.json` and the weights.
    pub models_dir: PathBuf,
    /// Root that `opennvr://frames/<camera>/<file>` URIs resolve under; nothing escapes it.
    /// Empty means `<data_dir>/frames`.
    pub frames_dir: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            models_dir: PathBuf::from("models/dist"),
            frames_dir: PathBuf::new(),
        }
    }
}

impl PathsConfig {
    /// The frames root, defaulting under the data dir.
    pub fn frames_dir(&self) -> PathBuf {
        if self.frames_dir.as_os_str().is_empty() {
            self.data_dir.join("frames")
        } else {
            self.frames_dir.clone()
        }
    }
}

/// Which detector serves the detection tasks and how its output is filtered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// A model id from the models manifest.
    pub model: String,
    /// Detections below this score are not reported.
    pub confidence: f32,
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub iou: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            model: "yolov4-tiny-416".into(),
            confidence: 0.35,
            iou: 0.45,
        }
    }
}

/// Which models serve `face_detection` and how faces are filtered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacesConfig {
    /// Face detector model id (kind `centerface`).
    pub model: String,
    /// Age model id (kind `dlib-age`).
    pub age_model: String,
    /// Gender model id (kind `dlib-gender`).
    pub gender_model: String,
    /// Detector input width; a multiple of 32. Frames are letterboxed into it.
    pub input_width: u32,
    /// Detector input height; a multiple of 32.
    pub input_height: u32,
    /// Faces below this score are not reported.
    pub confidence: f32,
    /// IoU above which a lower-scored face box is suppressed.
    pub iou: f32,
    /// Cap on reported faces per frame.
    pub max_faces: usize,
}

impl Default for FacesConfig {
    fn default() -> Self {
        Self {
            model: "centerface".into(),
            age_model: "age-v1".into(),
            gender_model: "gender-v1".into(),
            input_width: 640,
            input_height: 480,
            confidence: 0.5,
            iou: 0.3,
            max_faces: 64,
        }
    }
}

/// The captioning model behind `scene_description` (BLIP, kind
/// `blip-caption`) and what one caption may cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptionerConfig {
    /// Model id; empty: the first `blip-caption` entry of the manifest.
    pub model: String,
    /// Most tokens per caption, the `[DEC]` prompt included (transformers'
    /// `max_length`; BLIP's default 20); at most the model's cache slots + 1.
    pub max_length: usize,
    /// 1: greedy (BLIP's default); 2..=8: beam search. Each beam is one
    /// more row in every decoder step.
    pub num_beams: usize,
    /// Beam scores are divided by `length ^ length_penalty` (transformers' 1.0).
    pub length_penalty: f64,
}

impl Default for CaptionerConfig {
    fn default() -> Self {
        Self {
            model: String::new(),
            max_length: 20,
            num_beams: 1,
            length_penalty: 1.0,
        }
    }
}

/// Tracking tunables that operators may want to change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerSettings {
    /// A track unseen this long is dropped.
    pub max_lost_ms: i64,
    /// A camera whose tracker saw nothing for this long is forgotten.
    pub idle_evict_ms: i64,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self {
            max_lost_ms: 3_000,
            idle_evict_ms: 10 * 60 * 1000,
        }
    }
}

/// Camera ingest: the ffmpeg child per camera, chunking, frames and events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// The ffmpeg binary (Debian's `ffmpeg`); a bare name is looked up on PATH.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary, used only to salvage chunks left by a crash.
    pub ffprobe: PathBuf,
    /// Length of one MP4 chunk, seconds; cut at the first keyframe after it.
    pub segment_s: u32,
    /// RTSP transport: `tcp` survives lossy Wi-Fi and NAT; `udp` has less latency.
    pub rtsp_transport: String,
    /// ffmpeg's socket timeout for network cameras, seconds: a silent camera
    /// makes ffmpeg exit after this, and the supervisor restarts it.
    pub io_timeout_s: u32,
    /// No frame for this long and the ffmpeg child is killed as stalled, seconds.
    pub stall_timeout_s: u32,
    /// First restart delay after a failure, milliseconds; doubles per failure.
    pub backoff_min_ms: u64,
    /// Cap on the restart delay, milliseconds.
    pub backoff_max_ms: u64,
    /// How often the supervisor re-reads the cameras table, milliseconds.
    pub poll_ms: u64,
    /// Frames wider than this are scaled down before JPEG encoding and detection.
    pub max_frame_width: u32,
    /// Consecutive sightings before a track counts as a person (filters flicker).
    pub min_hits: u32,
    /// A person count must hold this long before `count_changed` fires, ms.
    pub count_debounce_ms: i64,
    /// Least time between two `count_changed` of one camera, ms (0: no
    /// limit). Changes inside it are held; the count as it stands when it is
    /// over goes out, so the latest count is never lost (docs/ingest.md).
    pub count_min_interval_ms: i64,
    /// Longest an ffprobe of a camera's codec may take before the start
    /// counts as failed, seconds (`record_mode = "auto"` probes each start).
    pub probe_timeout_s: u32,
    /// libx264 preset for cameras recorded by transcoding (codecs MP4 cannot
    /// hold by stream copy); `ultrafast` spends less CPU for bigger chunks.
    pub transcode_preset: String,
    /// Motion gating: the detector runs only around motion and tracked
    /// people, plus a full-frame pass now and then (`[ingest.motion]`).
    pub motion: MotionConfig,
    /// The detector per camera id (a model id of the manifest), for cameras
    /// that should not use `[detector] model`: `yolov4-tiny-320` costs ~0.6x
    /// of 416 (recall against 416 in docs/performance.md). Checked at start:
    /// an id that is not an installed detector stops `run` with this key named.
    pub detect_models: std::collections::BTreeMap<String, String>,
    /// The detector of every other camera: `auto` (the default) runs the
    /// `[detector] model`'s int8 copy (`<model>-int8`, made by
    /// models/fetch.sh) where it is installed and the models run on
    /// onnxruntime, where it is 1.4x faster at the same recall
    /// (docs/performance.md), and `[detector] model` itself elsewhere (tract
    /// and the GPU run int8 no faster); or a model id of the manifest,
    /// checked at start like `detect_models`.
    pub camera_model: String,
    /// Decode on the GPU (`cuda`, or `auto` where it can): falls back to
    /// software decoding when ffmpeg fails with it (docs/gpu.md).
    pub hwaccel: Hwaccel,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            segment_s: 60,
            rtsp_transport: "tcp".into(),
            io_timeout_s: 10,
            stall_timeout_s: 20,
            backoff_min_ms: 1_000,
            backoff_max_ms: 60_000,
            poll_ms: 2_000,
            max_frame_width: 1280,
            min_hits: 2,
            count_debounce_ms: 1_000,
            count_min_interval_ms: 5_000,
            probe_timeout_s: 15,
            transcode_preset: "veryfast".into(),
            motion: MotionConfig::default(),
            detect_models: Default::default(),
            camera_model: "auto".into(),
            hwaccel: Hwaccel::None,
        }
    }
}

/// Motion gating (`[ingest.motion]`, see docs/ingest.md): a cheap motion
/// detector per camera on a small grey frame decides where the person
/// detector looks, so a quiet camera costs almost nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MotionConfig {
    /// Gating on for every camera; off runs the detector on every frame
    /// (the ungated baseline). A camera's own entry overrides it.
    pub enabled: bool,
    /// Width of the grey frame motion is found on, pixels (16..=1280).
    pub width: u32,
    /// Grey-level change (0-255) a pixel needs to count as moving, after
    /// the frame's overall brightness shift is taken out.
    pub threshold: u8,
    /// Smallest moving blob, as a fraction of the frame's area.
    pub min_area: f64,
    /// How fast the background follows the scene, per frame (0..1].
    pub alpha: f32,
    /// More than this fraction of the frame changing at once is a lighting
    /// change (IR switch, lights on): the background is re-seeded and no
    /// motion is reported.
    pub global_fraction: f32,
    /// A full-frame detector pass at least this often, seconds, so people
    /// who stand still are found; 0: never.
    pub full_pass_s: u32,
    /// Most crops per frame; a frame that needs more gets a full-frame pass.
    pub max_regions: usize,
    /// A tracked person whose box has stayed put (centre, width and height
    /// each within a fifth of its height) for this long, seconds, with no
    /// motion on it, is stationary: no crops for it, only the periodic full
    /// pass looks at it, and the time unlooked-at does not age its track
    /// (docs/ingest.md, "Stationary people"). 0: every track gets crops on
    /// every frame.
    pub stationary_s: u32,
    /// Per-camera settings, by camera id.
    pub cameras: std::collections::BTreeMap<String, CameraMotion>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            width: 320,
            threshold: 25,
            min_area: 0.0005,
            alpha: 0.05,
            global_fraction: 0.4,
            full_pass_s: 10,
            max_regions: 2,
            stationary_s: 3,
            cameras: Default::default(),
        }
    }
}

/// Most mask polygons one camera may have: a mask is cheap to apply, but a
/// client must not make us store or test an unbounded list.
pub const MAX_MASKS: usize = 16;

/// Points one mask polygon may have: a triangle at least, and enough for a
/// hand-drawn outline without being a bitmap.
pub const MASK_POINTS: std::ops::RangeInclusive<usize> = 3..=64;

/// One camera's motion settings: `[ingest.motion.cameras.<id>]` in the
/// config file, or the camera's `motion` set through the camera API, which
/// replaces the file's entry as a whole (docs/ingest.md, "Masks through
/// the camera API").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraMotion {
    /// Overrides `[ingest.motion] enabled` for this camera.
    pub enabled: Option<bool>,
    /// Areas where motion is ignored (trees, a road, a clock): polygons of
    /// at least three `[x, y]` points in 0..=1 of the frame's width and
    /// height; a rectangle is four points.
    pub masks: Vec<Vec<[f64; 2]>>,
}

impl CameraMotion {
    /// Refuses masks the gating must not take: at most [`MAX_MASKS`]
    /// polygons of [`MASK_POINTS`] points, each coordinate a finite number
    /// in 0..=1. The one check for the config file, the camera API and the
    /// console; the message names the offending polygon (and point).
    pub fn check(&self) -> Result<(), String> {
        if self.masks.len() > MAX_MASKS {
            return Err(format!(
                "masks: at most {MAX_MASKS} polygons (got {})",
                self.masks.len()
            ));
        }
        for (i, m) in self.masks.iter().enumerate() {
            if !MASK_POINTS.contains(&m.len()) {
                return Err(format!(
                    "masks[{i}]: a polygon is {} to {} [x, y] points (got {})",
                    MASK_POINTS.start(),
                    MASK_POINTS.end(),
                    m.len()
                ));
            }
            let outside = m
                .iter()
                .position(|p| !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
            if let Some(j) = outside {
                return Err(format!(
                    "masks[{i}][{j}]: x and y are fractions of the frame, in 0..=1"
                ));
            }
        }
        Ok(())
    }
}

impl MotionConfig {
    /// The config file's settings for `camera` (empty when it has no entry).
    pub fn camera(&self, camera: &str) -> CameraMotion {
        self.cameras.get(camera).cloned().unwrap_or_default()
    }

    /// What `camera` runs with: `api` (its `motion` set through the camera
    /// API) when there is one, replacing the file's entry as a whole, so
    /// what the API shows is what runs; else the file's entry.
    pub fn effective(&self, camera: &str, api: Option<&CameraMotion>) -> CameraMotion {
        api.cloned().unwrap_or_else(|| self.camera(camera))
    }

    /// Whether gating is on under `settings` (its own `enabled`, else the
    /// global one).
    pub fn enabled_in(&self, settings: &CameraMotion) -> bool {
        settings.enabled.unwrap_or(self.enabled)
    }

    /// Refuses values the gating cannot work with, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if !(16..=1280).contains(&self.width) {
            return Err(format!(
                "ingest.motion.width {} not in 16..=1280",
                self.width
            ));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(format!("ingest.motion.alpha {} not in (0, 1]", self.alpha));
        }
        if !(self.global_fraction > 0.0 && self.global_fraction <= 1.0) {
            return Err("ingest.motion.global_fraction not in (0, 1]".into());
        }
        if !(0.0..1.0).contains(&self.min_area) {
            return Err("ingest.motion.min_area not in [0, 1)".into());
        }
        if self.max_regions == 0 || self.max_regions > 16 {
            return Err("ingest.motion.max_regions not in 1..=16".into());
        }
        for (id, c) in &self.cameras {
            c.check()
                .map_err(|e| format!("ingest.motion.cameras.{id}.{e}"))?;
        }
        Ok(())
    }
}

/// How recordings and event snapshots are aged out; per-camera age limits
/// live on the camera (`retention_days`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Total bytes of recordings kept across cameras; 0 = no byte budget.
    pub max_bytes: u64,
    /// Oldest chunks go while the recordings disk has less free space than this.
    pub min_free_bytes: u64,
    /// How often retention runs, seconds (and once after every new chunk
    /// when a byte budget is set).
    pub interval_s: u64,
    /// Events (rows and snapshots) older than this go, days; 0 = no age
    /// limit. Snapshots go sooner, with their camera's `retention_days`.
    pub events_max_age_days: u64,
    /// Events kept per camera, newest first; 0 = no budget. A busy camera
    /// makes ~86k a day (docs/performance.md).
    pub events_max_per_camera: u64,
    /// Event rows deleted per writer job, so retention never holds the one
    /// writer for long.
    pub events_batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_bytes: 0,
            min_free_bytes: 1 << 30,
            interval_s: 300,
            events_max_age_days: 30,
            events_max_per_camera: 1_000_000,
            events_batch: 500,
        }
    }
}

/// Connection limits of the two ports (`[http.ai]`, `[http.nvr]`; `src/serve.rs`,
/// docs/security.md). Every client on the LAN can open sockets; these bound
/// what they hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The AI adapter's port (9100).
    pub ai: HttpLimits,
    /// The NVR core's port (8000).
    pub nvr: HttpLimits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            // The adapter serves a few local clients, each request a whole inference.
            ai: HttpLimits {
                max_connections: 128,
                max_connections_per_ip: 32,
                ..HttpLimits::default()
            },
            nvr: HttpLimits::default(),
        }
    }
}

/// The limits of one port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Open connections at once on this port; the next is answered 503 and closed.
    pub max_connections: usize,
    /// Open connections at once from one client address, so one client cannot
    /// take every slot (browsers open about six per host).
    pub max_connections_per_ip: usize,
    /// Time to send a request's headers; also how long an idle keep-alive
    /// connection is kept (seconds).
    pub header_timeout_s: u64,
    /// Time to send a whole request body, from the request's arrival (seconds).
    pub body_timeout_s: u64,
    /// How long a response write may make no progress before the connection is
    /// dropped: a client that stopped reading a download or a stream (seconds).
    pub send_timeout_s: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_ip: 64,
            header_timeout_s: 15,
            body_timeout_s: 60,
            send_timeout_s: 60,
        }
    }
}

impl HttpLimits {
    /// `header_timeout_s` as a duration (at least one second).
    pub fn header_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.header_timeout_s.max(1))
    }

    /// `body_timeout_s` as a duration (at least one second).
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.body_timeout_s.max(1))
    }

    /// `send_timeout_s` as a duration (at least one second).
    pub fn send_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.send_timeout_s.max(1))
    }
}

/// What camera events carry beyond the detection itself (docs/ingest.md,
/// "Described events").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// `person_entered` events carry a `scene_description` of their
    /// snapshot in their payload; described off the detection path.
    pub describe: bool,
    /// Snapshots waiting to be described, across cameras; a
    /// `person_entered` that finds the queue full is stored without a
    /// description (`description_skipped: "busy"`).
    pub describe_queue: usize,
    /// Longest a `person_entered` waits for its description, milliseconds;
    /// then it is stored without one (`"timeout"`).
    pub describe_timeout_ms: u64,
    /// Events of one camera held behind a description at most; one more and
    /// the wait ends (`"backlog"`), so a burst never queues without bound.
    pub describe_backlog: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            describe: false,
            describe_queue: 8,
            describe_timeout_ms: 15_000,
            describe_backlog: 32,
        }
    }
}

/// The MQTT mirror (docs/mqtt.md); off while `host` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address; empty disables the mirror.
    pub host: String,
    /// Broker port (1883 is plain MQTT; 8883 usually TLS).
    pub port: u16,
    /// Broker credentials; empty username means anonymous.
    pub username: String,
    /// Sent only with a username; never logged (prefer the env override to a world-readable file).
    pub password: String,
    /// MQTT client id; empty means `opennvr-edge-<node_id>`.
    pub client_id: String,
    /// First level of every topic (Frigate's `frigate`), so automations port over.
    pub topic_prefix: String,
    /// This box's id in Home Assistant unique ids and device topics; empty
    /// means a random id generated at first start into `<data_dir>/mqtt-node-id`,
    /// so two boxes never collide.
    pub node_id: String,
    /// Most events kept waiting for the broker; beyond it the oldest are
    /// dropped and counted, so a broker that never returns costs bounded work.
    pub outbox_cap: u64,
    /// Seconds between `<prefix>/stats` messages.
    pub stats_interval_s: u64,
    /// Home Assistant's discovery prefix; empty disables discovery.
    pub discovery_prefix: String,
    /// TLS to the broker with the system's roots; needs the `mqtt-tls` build feature.
    pub tls: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 1883,
            username: String::new(),
            password: String::new(),
            client_id: String::new(),
            topic_prefix: "opennvr".into(),
            node_id: String::new(),
            outbox_cap: 100_000,
            stats_interval_s: 60,
            discovery_prefix: "homeassistant".into(),
            tls: false,
        }
    }
}

impl Config {
    /// Reads `path` (if any), then applies environment overrides from `env`.
    ///
    /// `env` is injected so tests need not mutate the process environment.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|cause| ConfigError::Read {
                    path: p.to_owned(),
                    cause,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_owned(),
                    cause: Box::new(e),
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env(env)?;
        cfg.ingest.motion.check().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(var: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Env { var, value: v })
        }
        if let Some(v) = env("OPENNVR_AI_LISTEN") {
            self.ai.listen = num("OPENNVR_AI_LISTEN", v)?;
        }
        // Set but blank (a unit's `Environment=OPENNVR_ADAPTER_TOKEN=`, an
        // unset compose variable) is not an override: it would open the port.
        if let Some(v) = env("OPENNVR_ADAPTER_TOKEN").filter(|v| !v.trim().is_empty()) {
            self.ai.token = Some(v);
        }
        if let Some(v) = env("OPENNVR_NVR_LISTEN") {
            self.nvr.listen = num("OPENNVR_NVR_LISTEN", v)?;
        }
        if let Some(v) = env("OPENNVR_DATA_DIR") {
            self.paths.data_dir = v.into();
        }
        if let Some(v) = env("OPENNVR_MODELS_DIR") {
            self.paths.models_dir = v.into();
        }
        if let Some(v) = env("OPENNVR_FRAMES_DIR") {
            self.paths.frames_dir = v.into();
        }
        if let Some(v) = env("OPENNVR_EVENTS_DESCRIBE") {
            self.events.describe = num("OPENNVR_EVENTS_DESCRIBE", v)?;
        }
        if let Some(v) = env("OPENNVR_DETECTOR_MODEL") {
            self.detector.model = v;
        }
        if let Some(v) = env("OPENNVR_ACCESS_TOKEN_TTL_S") {
            self.nvr.access_token_ttl_s = num("OPENNVR_ACCESS_TOKEN_TTL_S", v)?;
        }
        if let Some(v) = env("OPENNVR_LOGIN_FAILURES_PER_USER") {
            self.nvr.login_failures_per_user = num("OPENNVR_LOGIN_FAILURES_PER_USER", v)?;
        }
        if let Some(v) = env("OPENNVR_LOGIN_FAILURES_PER_IP") {
            self.nvr.login_failures_per_ip = num("OPENNVR_LOGIN_FAILURES_PER_IP", v)?;
        }
        if let Some(v) = env("OPENNVR_LOGIN_WINDOW_S") {
            self.nvr.login_window_s = num("OPENNVR_LOGIN_WINDOW_S", v)?;
        }
        if let Some(v) = env("OPENNVR_STREAM_BUFFER") {
            self.nvr.stream_buffer = num("OPENNVR_STREAM_BUFFER", v)?;
        }
        if let Some(v) = env("OPENNVR_STREAM_RECHECK_S") {
            self.nvr.stream_recheck_s = num("OPENNVR_STREAM_RECHECK_S", v)?;
        }
        if let Some(v) = env("OPENNVR_MAX_USERS") {
            self.nvr.max_users = num("OPENNVR_MAX_USERS", v)?;
        }
        if let Some(v) = env("OPENNVR_AI_DEVICE") {
            self.ai.device = num("OPENNVR_AI_DEVICE", v)?;
        }
        if let Some(v) = env("OPENNVR_AI_CPU_RUNTIME") {
            self.ai.cpu_runtime = num("OPENNVR_AI_CPU_RUNTIME", v)?;
        }
        if let Some(v) = env("OPENNVR_AI_ONNXRUNTIME_LIB") {
            self.ai.onnxruntime_lib = v.into();
        }
        if let Some(v) = env("OPENNVR_HWACCEL") {
            self.ingest.hwaccel = num("OPENNVR_HWACCEL", v)?;
        }
        if let Some(v) = env("OPENNVR_FFMPEG") {
            self.ingest.ffmpeg = v.into();
        }
        if let Some(v) = env("OPENNVR_CAMERA_MODEL") {
            self.ingest.camera_model = v;
        }
        if let Some(v) = env("OPENNVR_MOTION") {
            self.ingest.motion.enabled = num("OPENNVR_MOTION", v)?;
        }
        if let Some(v) = env("OPENNVR_SEGMENT_S") {
            self.ingest.segment_s = num("OPENNVR_SEGMENT_S", v)?;
        }
        if let Some(v) = env("OPENNVR_STALL_TIMEOUT_S") {
            self.ingest.stall_timeout_s = num("OPENNVR_STALL_TIMEOUT_S", v)?;
        }
        if let Some(v) = env("OPENNVR_IO_TIMEOUT_S") {
            self.ingest.io_timeout_s = num("OPENNVR_IO_TIMEOUT_S", v)?;
        }
        if let Some(v) = env("OPENNVR_BACKOFF_MAX_MS") {
            self.ingest.backoff_max_ms = num("OPENNVR_BACKOFF_MAX_MS", v)?;
        }
        if let Some(v) = env("OPENNVR_RETENTION_MAX_BYTES") {
            self.retention.max_bytes = num("OPENNVR_RETENTION_MAX_BYTES", v)?;
        }
        if let Some(v) = env("OPENNVR_RETENTION_MIN_FREE_BYTES") {
            self.retention.min_free_bytes = num("OPENNVR_RETENTION_MIN_FREE_BYTES", v)?;
        }
        self.mqtt.apply_env(&env, num)?;
        Ok(())
    }
}

impl MqttConfig {
    /// The mirror runs only when a broker is named.
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }

    /// `OPENNVR_MQTT_*` overrides, kept here so the mirror's settings stay in one block.
    fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
        num: fn(&'static str, String) -> Result<u64, ConfigError>,
    ) -> Result<(), ConfigError> {
        let text: [(&str, &mut String); 6] = [
            ("OPENNVR_MQTT_HOST", &mut self.host),
            ("OPENNVR_MQTT_USERNAME", &mut self.username),
            ("OPENNVR_MQTT_PASSWORD", &mut self.password),
            ("OPENNVR_MQTT_CLIENT_ID", &mut self.client_id),
            ("OPENNVR_MQTT_PREFIX", &mut self.topic_prefix),
            ("OPENNVR_MQTT_NODE_ID", &mut self.node_id),
        ];
        for (var, field) in text {
            if let Some(v) = env(var) {
                *field = v;
            }
        }
        if let Some(v) = env("OPENNVR_MQTT_PORT") {
            self.port = u16::try_from(num("OPENNVR_MQTT_PORT", v.clone())?).map_err(|_| {
                ConfigError::Env {
                    var: "OPENNVR_MQTT_PORT",
                    value: v,
                }
            })?;
        }
        if let Some(v) = env("OPENNVR_MQTT_OUTBOX_CAP") {
            self.outbox_cap = num("OPENNVR_MQTT_OUTBOX_CAP", v)?;
        }
        if let Some(v) = env("OPENNVR_MQTT_STATS_INTERVAL_S") {
            self.stats_interval_s = num("OPENNVR_MQTT_STATS_INTERVAL_S", v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::load(None, env_of(&[])).unwrap();
        assert_eq!(c.ai.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.nvr.listen.to_string(), "0.0.0.0:8000");
        assert_eq!(c.paths.frames_dir(), PathBuf::from("data/frames"));
    }

    #[test]
    fn gpu_settings_parse_from_the_file_and_the_environment_and_refuse_typos() {
        let c = Config::load(None, env_of(&[])).unwrap();
        assert_eq!(
            (c.ai.device, c.ingest.hwaccel),
            (Device::Auto, Hwaccel::None)
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[ai]\ndevice = \"cuda\"\ncuda_f16 = true\n[ingest]\nhwaccel = \"auto\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), env_of(&[])).unwrap();
        assert_eq!(
            (c.ai.device, c.ai.cuda_f16, c.ingest.hwaccel),
            (Device::Cuda, true, Hwaccel::Auto)
        );
        let env = env_of(&[("OPENNVR_AI_DEVICE", "cpu"), ("OPENNVR_HWACCEL", "cuda")]);
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(
            (c.ai.device, c.ingest.hwaccel),
            (Device::Cpu, Hwaccel::Cuda)
        );
        let e = Config::load(None, env_of(&[("OPENNVR_AI_DEVICE", "gpu")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for OPENNVR_AI_DEVICE: \"gpu\""
        );
        std::fs::write(&f, "[ai]\ndevice = \"tpu\"\n").unwrap();
        assert!(Config::load(Some(&f), env_of(&[])).is_err());
    }

    #[test]
    fn cpu_runtime_reads_from_the_file_and_the_environment() {
        let c = Config::load(None, env_of(&[])).unwrap();
        assert_eq!(c.ai.cpu_runtime, CpuRuntime::Auto);
        assert!(c.ai.onnxruntime_lib.as_os_str().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[ai]\ncpu_runtime = \"tract\"\nonnxruntime_lib = \"/x/l.so\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), env_of(&[])).unwrap();
        assert_eq!(c.ai.cpu_runtime, CpuRuntime::Tract);
        assert_eq!(c.ai.onnxruntime_lib, PathBuf::from("/x/l.so"));
        let env = env_of(&[
            ("OPENNVR_AI_CPU_RUNTIME", "onnxruntime"),
            ("OPENNVR_AI_ONNXRUNTIME_LIB", "/y/l.so"),
        ]);
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(c.ai.cpu_runtime, CpuRuntime::Onnxruntime);
        assert_eq!(c.ai.onnxruntime_lib, PathBuf::from("/y/l.so"));
        let e = Config::load(None, env_of(&[("OPENNVR_AI_CPU_RUNTIME", "ort")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for OPENNVR_AI_CPU_RUNTIME: \"ort\""
        );
    }

    #[test]
    fn env_overrides_file() {
        let dir = std::env::temp_dir().join(format!("opennvr-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[ai]\nlisten = \"0.0.0.0:9999\"\n[paths]\ndata_dir = \"/x\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env_of(&[
                ("OPENNVR_AI_LISTEN", "127.0.0.1:1234"),
                ("OPENNVR_FRAMES_DIR", "/f"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ai.listen.to_string(), "127.0.0.1:1234");
        assert_eq!(c.paths.data_dir, PathBuf::from("/x"));
        assert_eq!(c.paths.frames_dir(), PathBuf::from("/f"));
    }

    #[test]
    fn a_blank_adapter_token_variable_keeps_the_files_token() {
        let dir = std::env::temp_dir().join(format!("opennvr-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "[ai]\ntoken = \"from-file\"\n").unwrap();
        for blank in ["", "  "] {
            let c = Config::load(Some(&f), env_of(&[("OPENNVR_ADAPTER_TOKEN", blank)])).unwrap();
            assert_eq!(c.ai.token.as_deref(), Some("from-file"), "{blank:?}");
        }
        let c = Config::load(Some(&f), env_of(&[("OPENNVR_ADAPTER_TOKEN", "env")])).unwrap();
        assert_eq!(c.ai.token.as_deref(), Some("env"));
    }

    #[test]
    fn nvr_settings_have_safe_defaults_and_env_overrides() {
        let c = Config::load(None, env_of(&[])).unwrap();
        assert_eq!(c.nvr.access_token_ttl_s, 900);
        assert_eq!(c.nvr.login_failures_per_user, 5);
        let c = Config::load(
            None,
            env_of(&[
                ("OPENNVR_ACCESS_TOKEN_TTL_S", "60"),
                ("OPENNVR_LOGIN_FAILURES_PER_USER", "3"),
                ("OPENNVR_LOGIN_FAILURES_PER_IP", "9"),
                ("OPENNVR_STREAM_BUFFER", "16"),
                ("OPENNVR_LOGIN_WINDOW_S", "2"),
                ("OPENNVR_STREAM_RECHECK_S", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.nvr.login_window_s, 2);
        assert_eq!(c.nvr.stream_recheck_s, 1);
        assert_eq!(c.nvr.access_token_ttl_s, 60);
        assert_eq!(c.nvr.login_failures_per_user, 3);
        assert_eq!(c.nvr.login_failures_per_ip, 9);
        assert_eq!(c.nvr.stream_buffer, 16);
        assert!(Config::load(None, env_of(&[("OPENNVR_STREAM_BUFFER", "-1")])).is_err());
    }

    #[test]
    fn bad_env_and_unknown_keys_are_errors() {
        assert!(Config::load(None, env_of(&[("OPENNVR_NVR_LISTEN", "nope")])).is_err());
        let dir = std::env::temp_dir().join(format!("opennvr-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "[ai]\nlisen = \"0.0.0.0:9999\"\n").unwrap();
        assert!(matches!(
            Config::load(Some(&f), env_of(&[])),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn motion_settings_are_checked_at_load_and_env_turns_gating_off() {
        let dir = std::env::temp_dir().join(format!("opennvr-cfg-motion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let ok =
            "[ingest.motion.cameras.door]\nenabled = false\nmasks = [[[0, 0], [1, 0], [1, 0.2]]]\n";
        std::fs::write(&f, ok).unwrap();
        let c = Config::load(Some(&f), env_of(&[])).unwrap();
        let m = &c.ingest.motion;
        assert!(!m.enabled_in(&m.camera("door")) && m.enabled_in(&m.camera("yard")));
        assert_eq!(m.camera("door").masks.len(), 1);
        let off = Config::load(None, env_of(&[("OPENNVR_MOTION", "false")])).unwrap();
        assert!(!off
            .ingest
            .motion
            .enabled_in(&off.ingest.motion.camera("yard")));
        for bad in [
            "[ingest.motion.cameras.door]\nmasks = [[[0, 0], [1, 0]]]\n",
            "[ingest.motion.cameras.door]\nmasks = [[[0, 0], [2, 0], [1, 1]]]\n",
            "[ingest.motion]\nalpha = 0.0\n",
            "[ingest.motion]\nmax_regions = 0\n",
        ] {
            std::fs::write(&f, bad).unwrap();
            let e = Config::load(Some(&f), env_of(&[])).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid(m) if m.contains("ingest.motion")),
                "{e}"
            );
        }
    }

    #[test]
    fn camera_masks_are_bounded_and_the_error_names_the_polygon_and_point() {
        let square = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let with = |masks: Vec<Vec<[f64; 2]>>| CameraMotion {
            enabled: None,
            masks,
        };
        assert_eq!(with(vec![]).check(), Ok(()));
        assert_eq!(with(vec![square.clone(); MAX_MASKS]).check(), Ok(()));
        let edge = vec![[0.0, 0.0]; *MASK_POINTS.end()];
        assert_eq!(
            with(vec![edge.clone(), square[..3].to_vec()]).check(),
            Ok(())
        );
        let mut long = edge.clone();
        long.push([0.5, 0.5]);
        let cases: Vec<(Vec<Vec<[f64; 2]>>, &str)> = vec![
            (
                vec![square.clone(); MAX_MASKS + 1],
                "masks: at most 16 polygons (got 17)",
            ),
            (
                vec![square.clone(), square[..2].to_vec()],
                "masks[1]: a polygon is 3 to 64",
            ),
            (vec![long], "(got 65)"),
            (
                vec![vec![[0.0, 0.0], [1.0, 0.0], [1.5, 1.0]]],
                "masks[0][2]: x and y",
            ),
            (
                vec![vec![[0.0, -0.1], [1.0, 0.0], [1.0, 1.0]]],
                "masks[0][0]:",
            ),
            (
                vec![vec![[f64::NAN, 0.0], [1.0, 0.0], [1.0, 1.0]]],
                "masks[0][0]:",
            ),
            (
                vec![vec![[0.0, 0.0], [f64::INFINITY, 0.0], [1.0, 1.0]]],
                "masks[0][1]:",
            ),
        ];
        for (masks, want) in cases {
            let e = with(masks).check().unwrap_err();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }

    #[test]
    fn api_motion_settings_replace_the_files_entry_as_a_whole() {
        let mut m = MotionConfig::default();
        m.cameras.insert(
            "door".into(),
            CameraMotion {
                enabled: Some(false),
                masks: vec![vec![[0.0, 0.0], [1.0, 0.0], [1.0, 0.2]]],
            },
        );
        // No API settings: the file's entry (or nothing) runs.
        assert_eq!(m.effective("door", None), m.cameras["door"]);
        assert_eq!(m.effective("yard", None), CameraMotion::default());
        assert!(!m.enabled_in(&m.effective("door", None)));
        // API settings replace the entry: masks and `enabled` together, an
        // `enabled` left unset following `[ingest.motion] enabled`.
        let api = CameraMotion {
            enabled: None,
            masks: vec![],
        };
        let eff = m.effective("door", Some(&api));
        assert_eq!(eff, api);
        assert!(m.enabled_in(&eff));
    }

    #[test]
    fn mqtt_is_off_by_default_and_env_configures_it() {
        let c = Config::load(None, env_of(&[])).unwrap();
        assert!(c.mqtt.host.is_empty());
        assert_eq!(
            (c.mqtt.port, c.mqtt.topic_prefix.as_str()),
            (1883, "opennvr")
        );
        let c = Config::load(
            None,
            env_of(&[
                ("OPENNVR_MQTT_HOST", "broker.lan"),
                ("OPENNVR_MQTT_PORT", "1884"),
                ("OPENNVR_MQTT_PREFIX", "nvr"),
                ("OPENNVR_MQTT_USERNAME", "u"),
                ("OPENNVR_MQTT_PASSWORD", "p"),
                ("OPENNVR_MQTT_OUTBOX_CAP", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(c.mqtt.host, "broker.lan");
        assert_eq!(c.mqtt.port, 1884);
        assert_eq!(c.mqtt.topic_prefix, "nvr");
        assert_eq!(
            (c.mqtt.username.as_str(), c.mqtt.password.as_str()),
            ("u", "p")
        );
        assert_eq!(c.mqtt.outbox_cap, 10);
        assert!(Config::load(None, env_of(&[("OPENNVR_MQTT_PORT", "70000")])).is_err());
    }

    #[test]
    fn packaged_config_sets_only_the_package_paths() {
        // /etc/opennvr-edge/config.toml in the .deb: the service can write only
        // below /var/lib/opennvr-edge and its runtime dir (tmpfs, where the raw
        // frames go, sparing the data disk), the models ship in /usr/share and
        // the onnxruntime library in /usr/lib/opennvr-edge.
        let text = include_str!("../packaging/config.deb.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.paths.data_dir, PathBuf::from("/var/lib/opennvr-edge"));
        assert_eq!(
            c.paths.models_dir,
            PathBuf::from("/usr/share/opennvr-edge/models")
        );
        assert_eq!(
            c.paths.frames_dir(),
            PathBuf::from("/run/opennvr-edge/frames")
        );
        assert_eq!(
            c.ai.onnxruntime_lib,
            PathBuf::from("/usr/lib/opennvr-edge/libonnxruntime.so.1.20.1")
        );
        let mut rest = c.clone();
        rest.paths = PathsConfig::default();
        rest.ai.onnxruntime_lib = PathBuf::new();
        assert_eq!(
            toml::to_string(&rest).unwrap(),
            toml::to_string(&Config::default()).unwrap()
        );
    }

    #[test]
    fn example_config_documents_the_defaults() {
        let text = include_str!("../packaging/config.example.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(
            toml::to_string(&c).unwrap(),
            toml::to_string(&Config::default()).unwrap()
        );
    }
}
