//! `/api/v1/recordings/{camera_id}`: the MP4 chunk index, and the chunks
//! themselves with HTTP Range support (for timeline scrubbing).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{WebError, WebResult};
use super::extract::{Path, Query};
use super::files;
use super::{valid_camera_id, NvrState};
use crate::nvr::auth::Principal;
use crate::nvr::store::{db, Recording};

/// Latest accepted time: 9999-12-31, so seconds * 1000 cannot overflow.
const MAX_UNIX_S: f64 = 253_402_300_799.0;

/// The required range of `GET /api/v1/recordings/{camera_id}`, in Unix seconds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    start_unix: f64,
    end_unix: f64,
}

/// One chunk as the API shows it.
#[derive(Serialize)]
pub struct Chunk {
    id: i64,
    camera_id: String,
    start_unix: f64,
    end_unix: f64,
    duration_s: f64,
    size_bytes: i64,
    url: String,
}

impl From<Recording> for Chunk {
    fn from(r: Recording) -> Self {
        Chunk {
            url: format!("/api/v1/recordings/{}/{}/content", r.camera_id, r.id),
            id: r.id,
            start_unix: r.start_ms as f64 / 1000.0,
            end_unix: r.end_ms as f64 / 1000.0,
            duration_s: (r.end_ms - r.start_ms) as f64 / 1000.0,
            size_bytes: r.size_bytes,
            camera_id: r.camera_id,
        }
    }
}

fn to_ms(v: f64, name: &str) -> WebResult<i64> {
    if !(v.is_finite() && (0.0..=MAX_UNIX_S).contains(&v)) {
        return Err(WebError::BadRequest(format!(
            "{name} must be Unix seconds between 0 and {MAX_UNIX_S}"
        )));
    }
    Ok((v * 1000.0).round() as i64)
}

/// `GET /api/v1/recordings/{camera_id}?start_unix=X&end_unix=Y`: the chunks
/// overlapping `[X, Y)`, oldest first. A chunk ending exactly at X, or
/// starting exactly at Y, is outside.
pub async fn list(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path(camera_id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> WebResult<Json<Vec<Chunk>>> {
    valid_camera_id(&camera_id)?;
    let (start, end) = (
        to_ms(q.start_unix, "start_unix")?,
        to_ms(q.end_unix, "end_unix")?,
    );
    if start > end {
        return Err(WebError::BadRequest(
            "start_unix must not be after end_unix".into(),
        ));
    }
    let rows = st
        .store
        .read(move |c| db::recordings_in_range(c, &camera_id, start, end))
        .await?;
    Ok(Json(rows.into_iter().map(Chunk::from).collect()))
}

/// `GET /api/v1/recordings/{camera_id}/{recording_id}/content`: the MP4,
/// with `Range`, `If-Modified-Since` and `HEAD` handled by tower-http.
pub async fn content(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path((camera_id, id)): Path<(String, i64)>,
    req: Request,
) -> WebResult<Response> {
    valid_camera_id(&camera_id)?;
    let rec = st
        .store
        .read(move |c| db::get_recording(c, &camera_id, id))
        .await?
        .ok_or(WebError::NotFound("recording"))?;
    files::serve(&st.recordings_dir, &rec.path, "recording file", req).await
}
