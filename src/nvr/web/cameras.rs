//! `/api/v1/cameras`: the camera topology and its CRUD.
//!
//! Source URLs often carry credentials (`rtsp://user:pass@...`); they are
//! stored as given but never echoed back in full, and every text about a
//! camera (its status's `last_error`) is scrubbed of them ([`crate::redact`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::error::{WebError, WebResult};
use super::extract::{Json as JsonBody, Path};
use super::{files, valid_camera_id, Admin, NvrState};
use crate::config::CameraMotion;
use crate::nvr::auth::Principal;
use crate::nvr::store::{db, Camera, CameraPatch, RecordMode};
use crate::redact;
use crate::source_url::Source;

fn public(mut c: Camera) -> Camera {
    c.source_url = redact::url(&c.source_url);
    c.detect_url = c.detect_url.as_deref().map(redact::url);
    c
}

/// The checks every camera URL passes (`source_url`, `detect_url`): what
/// passes here is what ingest starts.
fn valid_url(field: &str, u: &str) -> WebResult<()> {
    if u.len() > 2048 || u.chars().any(char::is_control) {
        return Err(WebError::BadRequest(format!(
            "{field} must be at most 2048 bytes, without control characters"
        )));
    }
    Source::parse(u).map_err(|e| WebError::BadRequest(format!("{field}: {e}")))?;
    Ok(())
}

/// A camera in a request. Read-only fields a client may echo back from a GET
/// (`id`, timestamps) are accepted and ignored; anything else unknown is a 400.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CameraBody {
    id: Option<String>,
    name: Option<String>,
    source_url: Option<String>,
    enabled: Option<bool>,
    detect_fps: Option<f64>,
    record: Option<bool>,
    record_mode: Option<RecordMode>,
    retention_days: Option<i64>,
    /// The sub-stream detection reads (`""` clears it).
    detect_url: Option<String>,
    /// Motion settings (`{"enabled", "masks"}`) replacing the config file's
    /// for this camera; `null` clears them, absent keeps them.
    #[serde(default, deserialize_with = "present")]
    motion: Option<Option<CameraMotion>>,
    #[serde(default)]
    created_at: Option<Value>,
    #[serde(default)]
    updated_at: Option<Value>,
}

/// A field that is present, even as `null` (`Some(None)`); with
/// `#[serde(default)]` an absent one stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl CameraBody {
    /// Validates the fields that are present.
    pub(crate) fn patch(self) -> WebResult<CameraPatch> {
        let _ = (self.created_at, self.updated_at);
        if let Some(n) = &self.name {
            if n.trim().is_empty() || n.chars().count() > 128 {
                return Err(WebError::BadRequest(
                    "name must have 1-128 characters".into(),
                ));
            }
            // A name ends up in logs, MQTT discovery and HTML: no NUL, newline or escape.
            if n.chars().any(char::is_control) {
                return Err(WebError::BadRequest(
                    "name must not contain control characters (NUL, newline, tab...)".into(),
                ));
            }
        }
        if let Some(u) = &self.source_url {
            valid_url("source_url", u)?;
        }
        if let Some(u) = self.detect_url.as_deref().filter(|u| !u.is_empty()) {
            valid_url("detect_url", u)?;
        }
        if let Some(f) = self.detect_fps {
            // 0 records (and keeps latest.jpg at 1 fps) without detection.
            if !(f.is_finite() && (0.0..=60.0).contains(&f)) {
                return Err(WebError::BadRequest("detect_fps must be in [0, 60]".into()));
            }
        }
        if let Some(d) = self.retention_days {
            if !(0..=3650).contains(&d) {
                return Err(WebError::BadRequest(
                    "retention_days must be 0..=3650".into(),
                ));
            }
        }
        if let Some(Some(m)) = &self.motion {
            m.check()
                .map_err(|e| WebError::BadRequest(format!("motion.{e}")))?;
        }
        Ok(CameraPatch {
            name: self.name.map(|n| n.trim().to_owned()),
            source_url: self.source_url,
            enabled: self.enabled,
            detect_fps: self.detect_fps,
            record: self.record,
            record_mode: self.record_mode,
            retention_days: self.retention_days,
            detect_url: self.detect_url,
            motion: self.motion,
        })
    }
}

/// `GET /api/v1/cameras`: every camera.
pub async fn list(State(st): State<Arc<NvrState>>, _: Principal) -> WebResult<Json<Vec<Camera>>> {
    let cams = st.store.read(db::list_cameras).await?;
    Ok(Json(cams.into_iter().map(public).collect()))
}

/// `GET /api/v1/cameras/{id}`.
pub async fn get_one(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path(id): Path<String>,
) -> WebResult<Json<Camera>> {
    valid_camera_id(&id)?;
    let cam = st.store.read(move |c| db::get_camera(c, &id)).await?;
    Ok(Json(public(cam.ok_or(WebError::NotFound("camera"))?)))
}

/// `GET /api/v1/cameras/{id}/snapshot.jpg`: the camera's latest frame,
/// as the ingest pipeline last wrote it (replaced atomically, never torn).
pub async fn snapshot(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path(id): Path<String>,
    req: Request,
) -> WebResult<Response> {
    let cam = existing(&st, id).await?;
    let rel = crate::paths::latest_frame(&cam.id);
    files::serve(&st.frames_dir, &rel, "frame", req).await
}

/// `GET /api/v1/cameras/{id}/status`: is the camera up, and what its
/// pipeline has done (frames, analysed, dropped, restarts, chunks, events).
pub async fn status(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path(id): Path<String>,
) -> WebResult<Json<Value>> {
    let cam = existing(&st, id).await?;
    let mut running = st.cameras.as_ref().and_then(|s| s.status(&cam.id));
    // Ingest scrubs its errors already; this is the last door before a viewer.
    if let Some(e) = running.as_mut().and_then(|r| r.last_error.as_mut()) {
        *e = redact::Secrets::of_camera(&cam.source_url, cam.detect_url.as_deref()).scrub(e);
    }
    // A plain struct of numbers and strings: serialising it cannot fail.
    let mut v = serde_json::to_value(running.clone().unwrap_or_default()).unwrap_or_default();
    v["camera_id"] = Value::from(cam.id);
    v["running"] = Value::from(running.is_some() && cam.enabled);
    Ok(Json(v))
}

async fn existing(st: &NvrState, id: String) -> WebResult<Camera> {
    valid_camera_id(&id)?;
    let cam = st.store.read(move |c| db::get_camera(c, &id)).await?;
    cam.ok_or(WebError::NotFound("camera"))
}

/// `POST /api/v1/cameras` (admin) with the id in the body.
pub async fn create(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    JsonBody(b): JsonBody<CameraBody>,
) -> WebResult<(StatusCode, Json<Camera>)> {
    let id =
        b.id.clone()
            .ok_or_else(|| WebError::BadRequest("field `id` is required".into()))?;
    insert(st, id, b).await
}

/// `POST /api/v1/cameras/{id}` (admin).
pub async fn create_at(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CameraBody>,
) -> WebResult<(StatusCode, Json<Camera>)> {
    if b.id.as_deref().is_some_and(|b| b != id) {
        return Err(WebError::BadRequest(
            "body `id` differs from the path".into(),
        ));
    }
    insert(st, id, b).await
}

async fn insert(
    st: Arc<NvrState>,
    id: String,
    b: CameraBody,
) -> WebResult<(StatusCode, Json<Camera>)> {
    let cam = add(&st, id, b.patch()?).await?;
    Ok((StatusCode::CREATED, Json(public(cam))))
}

/// Adds camera `id` (the API's and the console's one way): a valid id and
/// a source URL are required.
pub(crate) async fn add(st: &NvrState, id: String, patch: CameraPatch) -> WebResult<Camera> {
    valid_camera_id(&id)?;
    if patch.source_url.is_none() {
        return Err(WebError::BadRequest(
            "field `source_url` is required".into(),
        ));
    }
    let cam = st
        .store
        .writer()
        .call(move |c, now| db::create_camera(c, &id, &patch, now))
        .await?;
    tracing::info!(camera = %cam.id, "camera added");
    Ok(cam)
}

/// `PUT /api/v1/cameras/{id}` (admin): changes the fields given. A redacted
/// URL sent back unchanged (from a GET) keeps the stored one.
pub async fn update(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CameraBody>,
) -> WebResult<Json<Camera>> {
    valid_camera_id(&id)?;
    if b.id.as_deref().is_some_and(|b| b != id) {
        return Err(WebError::BadRequest("a camera's id cannot change".into()));
    }
    let cam = change(&st, id, b.patch()?).await?;
    Ok(Json(public(cam)))
}

/// Changes camera `id` by `patch` (the API's and the console's one way). A
/// redacted URL sent back unchanged (from a GET, or a form that showed it)
/// keeps the stored one.
pub(crate) async fn change(st: &NvrState, id: String, mut patch: CameraPatch) -> WebResult<Camera> {
    st.store
        .writer()
        .call(move |c, now| {
            let current = db::get_camera(c, &id)?;
            if let (Some(cur), Some(new)) = (&current, &patch.source_url) {
                if *new == redact::url(&cur.source_url) {
                    patch.source_url = None;
                }
            }
            let stored = current.as_ref().and_then(|c| c.detect_url.as_deref());
            if let (Some(cur), Some(new)) = (stored, &patch.detect_url) {
                if *new == redact::url(cur) {
                    patch.detect_url = None;
                }
            }
            db::update_camera(c, &id, &patch, now)
        })
        .await
        .map_err(Into::into)
}

/// `DELETE /api/v1/cameras/{id}` (admin); its recordings and events stay.
pub async fn remove(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    Path(id): Path<String>,
) -> WebResult<StatusCode> {
    valid_camera_id(&id)?;
    st.store
        .writer()
        .call(move |c, _| db::delete_camera(c, &id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
