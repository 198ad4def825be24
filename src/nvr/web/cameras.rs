//! `/api/v1/cameras`: the camera topology and its CRUD.
//!
//! Source URLs often carry credentials (`rtsp://user:pass@...`); they are
//! stored as given but never echoed back in full.

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
use crate::nvr::auth::Principal;
use crate::nvr::store::{db, Camera, CameraPatch};

/// What hides a secret in an echoed URL.
const MASK: &str = "***";

/// Query keys whose values are treated as secrets.
const SECRET_KEYS: &[&str] = &["pass", "pwd", "token", "key", "secret", "auth"];

/// `source_url` with the password of the userinfo and secret-looking query
/// values replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(p) => p,
        None => return url.to_owned(),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if SECRET_KEYS
                            .iter()
                            .any(|s| k.to_ascii_lowercase().contains(s)) =>
                    {
                        format!("{k}={MASK}")
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn public(mut c: Camera) -> Camera {
    c.source_url = redact_url(&c.source_url);
    c
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
    retention_days: Option<i64>,
    #[serde(default)]
    created_at: Option<Value>,
    #[serde(default)]
    updated_at: Option<Value>,
}

impl CameraBody {
    /// Validates the fields that are present.
    fn patch(self) -> WebResult<CameraPatch> {
        let _ = (self.created_at, self.updated_at);
        if let Some(n) = &self.name {
            if n.trim().is_empty() || n.chars().count() > 128 {
                return Err(WebError::BadRequest(
                    "name must have 1-128 characters".into(),
                ));
            }
        }
        if let Some(u) = &self.source_url {
            let scheme_ok = [
                "rtsp://", "rtsps://", "http://", "https://", "rtmp://", "file://",
            ]
            .iter()
            .any(|s| u.to_ascii_lowercase().starts_with(s));
            if !scheme_ok || u.len() > 2048 || u.chars().any(char::is_control) {
                return Err(WebError::BadRequest(
                    "source_url must be an rtsp, rtsps, http(s), rtmp or file URL".into(),
                ));
            }
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
        Ok(CameraPatch {
            name: self.name.map(|n| n.trim().to_owned()),
            source_url: self.source_url,
            enabled: self.enabled,
            detect_fps: self.detect_fps,
            record: self.record,
            retention_days: self.retention_days,
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
    let rel = format!("{}/latest.jpg", cam.id);
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
    let running = st.cameras.as_ref().and_then(|s| s.status(&cam.id));
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
    valid_camera_id(&id)?;
    let patch = b.patch()?;
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
    Ok((StatusCode::CREATED, Json(public(cam))))
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
    let mut patch = b.patch()?;
    let cam = st
        .store
        .writer()
        .call(move |c, now| {
            let current = db::get_camera(c, &id)?;
            if let (Some(cur), Some(new)) = (&current, &patch.source_url) {
                if *new == redact_url(&cur.source_url) {
                    patch.source_url = None;
                }
            }
            db::update_camera(c, &id, &patch, now)
        })
        .await?;
    Ok(Json(public(cam)))
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            redact_url("rtsp://admin:hunter2@10.0.0.5:554/stream1"),
            "rtsp://admin:***@10.0.0.5:554/stream1"
        );
        assert_eq!(
            redact_url("rtsp://a:b:c@d@host/x?user=u&password=p&channel=1"),
            "rtsp://a:***@host/x?user=u&password=***&channel=1"
        );
        assert_eq!(redact_url("rtsp://host/x"), "rtsp://host/x");
        assert_eq!(
            redact_url("http://h/snap?token=abc"),
            "http://h/snap?token=***"
        );
        assert_eq!(redact_url("garbage"), "garbage");
    }
}
