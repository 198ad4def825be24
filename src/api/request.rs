//! Turning an HTTP request (JSON or multipart) into a task request with a
//! frame source, without decoding the image yet: decoding (base64 and the
//! image) is CPU work and happens on the blocking pool, once per request.
//!
//! The body is read only for an admitted request, and every byte buffered is
//! reserved against the engine's body budget first (see [`Admission`]).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::options::gather;
use crate::ai::{Admission, AiError, Params};
use crate::frame::{decode_b64, decode_image, Frame, FrameStore};

/// `data.frame` as clients send it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameRef {
    uri: Option<String>,
    b64: Option<String>,
    timestamp_ms: Option<i64>,
}

/// `data`, or upstream OpenNVR's `input`: the same object. Options may sit
/// in its `params` (KAI-C, the web UI) or straight in it (upstream's legacy
/// adapters read them there); see [`super::options`].
#[derive(Debug, Default, Deserialize)]
struct DataIn {
    frame: Option<FrameRef>,
    #[serde(default, deserialize_with = "camera_id_field")]
    camera_id: Option<String>,
    params: Option<Map<String, Value>>,
    /// Every other key: options, or a 400 naming it.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// A camera id as clients send it: our string ids (1..128 characters), or
/// upstream OpenNVR's integer ones (read as their decimal text).
pub(super) fn camera_id_of(v: Value) -> Result<Option<String>, AiError> {
    let id = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(AiError::BadRequest(
                "`camera_id` must be a string or an integer".into(),
            ))
        }
    };
    if id.is_empty() || id.len() > 128 {
        return Err(AiError::BadRequest(
            "`camera_id` must be 1..128 characters".into(),
        ));
    }
    Ok(Some(id))
}

fn camera_id_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    camera_id_of(Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// The top level; an unknown key is a 400 that names it (a misspelt
/// `params` would otherwise be silently ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    task: Option<String>,
    steps: Option<Vec<String>>,
    data: Option<DataIn>,
    input: Option<DataIn>,
    params: Option<Map<String, Value>>,
}

/// Where the frame's bytes are.
#[derive(Debug)]
pub enum FrameSource {
    Uri(String),
    /// An uploaded file part, sharing the request's buffer where it can.
    Bytes(Bytes),
    /// Still base64: decoded on the blocking pool, once admitted work runs.
    B64(String),
}

/// A parsed `/infer` or `/pipeline/run` request.
#[derive(Debug)]
pub struct TaskRequest {
    pub task: Option<String>,
    pub steps: Option<Vec<String>>,
    pub source: FrameSource,
    pub camera_id: Option<String>,
    pub timestamp_ms: Option<i64>,
    pub params: Params,
}

impl TaskRequest {
    /// Reads and decodes the frame (blocking: file I/O and JPEG decoding).
    pub fn load_frame(&self, frames: &FrameStore, max_pixels: u64) -> Result<Frame, AiError> {
        let (bytes, uri_camera) = match &self.source {
            FrameSource::Uri(u) => {
                let (b, cam) = frames.read(u)?;
                (std::borrow::Cow::Owned(b), Some(cam))
            }
            FrameSource::Bytes(b) => (std::borrow::Cow::Borrowed(b.as_ref()), None),
            FrameSource::B64(s) => (std::borrow::Cow::Owned(decode_b64(s)?), None),
        };
        Ok(Frame {
            image: decode_image(&bytes, max_pixels)?.into(),
            camera: self.camera_id.clone().or(uri_camera),
            timestamp_ms: self.timestamp_ms,
        })
    }
}

/// Past the limit we keep reading (and discarding) this much more, so a
/// client still sending gets our 413 instead of a reset connection.
const DRAIN_BYTES: usize = 64 << 20;

/// Reads a body of at most `limit` bytes, reserving each byte against the
/// body budget before buffering it (a declared length is reserved at once,
/// so a request the budget cannot hold is refused before it is read).
async fn read_limited(
    body: Body,
    declared: Option<usize>,
    limit: usize,
    ticket: &mut Admission,
) -> Result<Vec<u8>, AiError> {
    let mut buf = Vec::new();
    if let Some(n) = declared.filter(|n| *n <= limit) {
        ticket.reserve(n)?;
        buf.reserve_exact(n);
    }
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AiError::BodyIncomplete(e.to_string()))?;
        total += chunk.len();
        if total > limit {
            while total <= limit + DRAIN_BYTES {
                match stream.next().await {
                    Some(Ok(c)) => total += c.len(),
                    _ => break,
                }
            }
            return Err(too_large(limit));
        }
        ticket.reserve(total.saturating_sub(ticket.reserved()))?;
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn too_large(limit: usize) -> AiError {
    AiError::TooLarge(format!("request body exceeds {limit} bytes"))
}

fn from_body(b: WireRequest, upload: Option<Bytes>) -> Result<TaskRequest, AiError> {
    let (place, data) = match (b.data, b.input) {
        (Some(_), Some(_)) => {
            return Err(AiError::BadRequest(
                "`data` and `input` are the same object: give one".into(),
            ))
        }
        (None, Some(d)) => ("input", d),
        (d, None) => ("data", d.unwrap_or_default()),
    };
    let empty = Map::new();
    let params = gather(&[
        ("params".into(), b.params.as_ref().unwrap_or(&empty)),
        (
            format!("{place}.params"),
            data.params.as_ref().unwrap_or(&empty),
        ),
        (place.into(), &data.rest),
    ])?;
    let frame = data.frame.unwrap_or_default();
    let source = match (upload, frame.uri, frame.b64) {
        (Some(bytes), None, None) => FrameSource::Bytes(bytes),
        (None, Some(u), None) => FrameSource::Uri(u),
        (None, None, Some(b)) => FrameSource::B64(b),
        (None, None, None) => {
            return Err(AiError::BadRequest(
                "a frame is required: data.frame.uri, data.frame.b64 or a multipart file".into(),
            ))
        }
        _ => return Err(AiError::BadRequest("give exactly one frame source".into())),
    };
    Ok(TaskRequest {
        task: b.task,
        steps: b.steps,
        source,
        camera_id: data.camera_id,
        timestamp_ms: frame.timestamp_ms,
        params,
    })
}

/// Parses JSON, or `multipart/form-data` with a file part plus text parts
/// `task`, `steps` (comma-separated or a JSON array), `camera_id`,
/// `timestamp_ms` and `params` (JSON). Call it for an admitted request only:
/// the body's bytes are reserved on `ticket`.
pub async fn parse(
    req: Request,
    limit: usize,
    ticket: &mut Admission,
) -> Result<TaskRequest, AiError> {
    let is_multipart = mime_of(&req) == "multipart/form-data";
    let (parts, bytes) = read_whole(req, limit, ticket).await?;
    if is_multipart {
        return parse_multipart(Request::from_parts(parts, Body::from(bytes)), limit, ticket).await;
    }
    let body: WireRequest = serde_json::from_slice(&bytes)
        .map_err(|e| AiError::BadRequest(format!("invalid JSON body: {e}")))?;
    from_body(body, None)
}

/// A request's media type, lowercased, without parameters (`""` when absent).
pub(super) fn mime_of(req: &Request) -> String {
    let value = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mime = value.unwrap_or("").split(';').next().unwrap_or("");
    mime.trim().to_ascii_lowercase()
}

/// Reads `req`'s whole body within `limit` (see [`read_limited`]), keeping
/// its head so a multipart body can be parsed from both.
pub(super) async fn read_whole(
    req: Request,
    limit: usize,
    ticket: &mut Admission,
) -> Result<(axum::http::request::Parts, Vec<u8>), AiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let (parts, body) = req.into_parts();
    Ok((parts, read_limited(body, declared, limit, ticket).await?))
}

/// Text fields one form may carry; every client sends a handful.
const MAX_FORM_FIELDS: usize = 64;

/// A multipart form read from a body already in memory: its one file part
/// (named one of `file_fields`, or any part with a file name) and its text
/// fields in order. The file part may be gathered into a buffer of its own,
/// so its size is reserved on `ticket` once more: the body budget bounds
/// what is really held.
pub(super) async fn read_form(
    req: Request,
    limit: usize,
    ticket: &mut Admission,
    file_fields: &[&str],
) -> Result<(Option<Bytes>, Vec<(String, String)>), AiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            AiError::BadRequest(format!("invalid multipart body: {e}"))
        }
    };
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| AiError::BadRequest(format!("invalid multipart body: {e}")))?;
    let (mut file, mut fields) = (None, Vec::new());
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        if field.file_name().is_some() || file_fields.contains(&name.as_str()) {
            if file.is_some() {
                return Err(AiError::BadRequest("only one file part is accepted".into()));
            }
            let bytes = field.bytes().await.map_err(bad)?;
            ticket.reserve(bytes.len())?;
            file = Some(bytes);
            continue;
        }
        if fields.len() == MAX_FORM_FIELDS {
            return Err(AiError::BadRequest(format!(
                "at most {MAX_FORM_FIELDS} form fields are accepted"
            )));
        }
        fields.push((name, field.text().await.map_err(bad)?));
    }
    Ok((file, fields))
}

/// Parses a multipart body already read into memory into the root API's
/// request: `task`, `steps`, `params`, `camera_id`, `timestamp_ms` and one
/// image part (`frame`, `file` or `image`).
async fn parse_multipart(
    req: Request,
    limit: usize,
    ticket: &mut Admission,
) -> Result<TaskRequest, AiError> {
    let (upload, fields) = read_form(req, limit, ticket, &["frame", "file", "image"]).await?;
    let mut obj = serde_json::Map::new();
    let mut data = serde_json::Map::new();
    let mut frame = serde_json::Map::new();
    for (name, text) in fields {
        let value = match name.as_str() {
            "task" => serde_json::Value::String(text),
            "steps" => match serde_json::from_str(&text) {
                Ok(v @ serde_json::Value::Array(_)) => v,
                _ => text.split(',').map(|s| s.trim().to_owned()).collect(),
            },
            "params" => serde_json::from_str(&text)
                .map_err(|e| AiError::BadRequest(format!("params is not JSON: {e}")))?,
            "camera_id" => {
                data.insert(name, text.into());
                continue;
            }
            "timestamp_ms" => {
                let ts: i64 = text
                    .trim()
                    .parse()
                    .map_err(|_| AiError::BadRequest("timestamp_ms must be an integer".into()))?;
                frame.insert(name, ts.into());
                continue;
            }
            other => {
                return Err(AiError::BadRequest(format!(
                    "unexpected multipart field {other:?}"
                )))
            }
        };
        obj.insert(name, value);
    }
    data.insert("frame".into(), frame.into());
    obj.insert("data".into(), data.into());
    let body: WireRequest = serde_json::from_value(obj.into())
        .map_err(|e| AiError::BadRequest(format!("invalid multipart fields: {e}")))?;
    from_body(body, upload)
}
