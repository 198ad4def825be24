//! Typed rows, shared by the store, the web layer and the CLI.

use serde::{Deserialize, Serialize};

use crate::config::CameraMotion;

/// What a user or token may do: viewers read, admins also write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    /// The spelling stored in the `role` columns and JWT claims.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// A login account. The hash never leaves the store layer in an API answer.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    /// Carried in refresh tokens; bumping it revokes them.
    #[serde(skip)]
    pub token_version: i64,
    pub created_at: i64,
}

/// A long-lived integration token, as listed (never the secret itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// How a camera's video is put into MP4 chunks. MP4 holds H.264 and H.265
/// by stream copy (near-free); other codecs (MJPEG, MPEG-4 part 2, msmpeg4)
/// must be transcoded, which costs CPU, so `auto` decides per camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// Probe the codec at start: copy H.264/H.265, transcode the rest.
    #[default]
    Auto,
    /// Always stream copy (no probe); a codec MP4 cannot hold is an error.
    Copy,
    /// Always transcode to H.264.
    Transcode,
}

impl RecordMode {
    /// The spelling stored in the `record_mode` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordMode::Auto => "auto",
            RecordMode::Copy => "copy",
            RecordMode::Transcode => "transcode",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<RecordMode> {
        match s {
            "auto" => Some(RecordMode::Auto),
            "copy" => Some(RecordMode::Copy),
            "transcode" => Some(RecordMode::Transcode),
            _ => None,
        }
    }
}

/// A camera as stored (the web layer redacts `source_url` on the way out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Camera {
    pub id: String,
    pub name: String,
    pub source_url: String,
    pub enabled: bool,
    pub detect_fps: f64,
    pub record: bool,
    pub record_mode: RecordMode,
    pub retention_days: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The low-resolution sub-stream detection reads (`None`: the main
    /// stream); redacted on the way out like `source_url`.
    pub detect_url: Option<String>,
    /// Motion settings set through the camera API; they replace the config
    /// file's entry for this camera. `None`: the file's entry applies.
    pub motion: Option<CameraMotion>,
}

/// The settable fields of a camera; `None` keeps the current value on update.
#[derive(Debug, Clone, Default)]
pub struct CameraPatch {
    pub name: Option<String>,
    pub source_url: Option<String>,
    pub enabled: Option<bool>,
    pub detect_fps: Option<f64>,
    pub record: Option<bool>,
    pub record_mode: Option<RecordMode>,
    pub retention_days: Option<i64>,
    /// `Some("")` clears the sub-stream.
    pub detect_url: Option<String>,
    /// `Some(None)` clears the API's motion settings (back to the file's).
    pub motion: Option<Option<CameraMotion>>,
}

/// One MP4 chunk in the recordings index.
#[derive(Debug, Clone)]
pub struct Recording {
    pub id: i64,
    pub camera_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub size_bytes: i64,
    /// Relative to `<data_dir>/recordings`.
    pub path: String,
}

/// An event to store, from the pipeline or `POST /api/v1/events`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub camera_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub track_id: Option<i64>,
    /// Epoch ms; the writer's clock when absent.
    #[serde(default)]
    pub started_at: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// `[x, y, w, h]` in pixels of the analysed frame.
    #[serde(default)]
    pub bbox: Option<[f64; 4]>,
    #[serde(default)]
    pub snapshot_path: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub model_sha256: Option<String>,
    #[serde(default)]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A stored event; its `id` is the stream cursor (SSE `id:`).
///
/// `P` is how the payload is held: a parsed tree (the default, for code
/// that reads it) or the stored JSON text ([`RawPayload`], for pages that
/// are only passed on to a client, so a page costs its text and no more).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<P = serde_json::Value> {
    pub id: i64,
    pub camera_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub score: Option<f64>,
    pub track_id: Option<i64>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub bbox: Option<[f64; 4]>,
    pub snapshot_path: Option<String>,
    pub model_id: Option<String>,
    pub model_sha256: Option<String>,
    pub payload: P,
    pub created_at: i64,
}

/// An event payload as stored: JSON text, checked but not parsed into a tree.
pub type RawPayload = Box<serde_json::value::RawValue>;

/// How a stored payload's JSON text becomes an [`Event`]'s payload.
pub trait Payload: Sized {
    /// Takes the stored text; fails only for a hand-edited, corrupt column.
    fn from_stored(text: String) -> Result<Self, serde_json::Error>;
}

impl Payload for serde_json::Value {
    fn from_stored(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&text)
    }
}

impl Payload for RawPayload {
    fn from_stored(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text)
    }
}

/// A page of events and whether the byte budget cut it short.
#[derive(Debug)]
pub struct EventPage<P = serde_json::Value> {
    pub events: Vec<Event<P>>,
    /// More rows matched, but the page reached [`EventFilter::max_bytes`].
    pub truncated: bool,
}

/// Which events to list; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub camera_id: Option<String>,
    pub kind: Option<String>,
    pub label: Option<String>,
    /// `started_at >= after` (epoch ms).
    pub after: Option<i64>,
    /// `started_at < before` (epoch ms).
    pub before: Option<i64>,
    /// `id > after_id`: the catch-up cursor.
    pub after_id: Option<i64>,
    /// `id < before_id`: the cursor for newest-first pages.
    pub before_id: Option<i64>,
    pub limit: u32,
    /// Oldest first when true (catch-up); newest first otherwise.
    pub ascending: bool,
    /// Stop the page once its events hold about this many bytes of stored
    /// text (at least one event always comes); `None` for no budget.
    pub max_bytes: Option<usize>,
}
