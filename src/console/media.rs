//! Pictures and video for the cookie session: a camera's latest frame, an
//! event's snapshot, an MP4 chunk with HTTP Range (206, Content-Range).
//! Each is opened confined to its folder, symlinks included
//! (`nvr::web::files`, `crate::confine`), from a path the store holds,
//! never one the browser names.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;

use super::error::{ConsoleError, ConsoleResult};
use super::guard::Signed;
use super::ConsoleState;
use crate::nvr::store::db;
use crate::nvr::web::{files, valid_camera_id};

/// Every picture and chunk goes out `no-store`, as pages do: nothing the
/// session showed stays readable in a shared browser's cache after logout.
fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /console/cameras/{id}/live.jpg`: the camera's latest frame, never cached.
pub async fn live(
    State(st): State<Arc<ConsoleState>>,
    _: Signed,
    Path(id): Path<String>,
    req: Request,
) -> ConsoleResult<Response> {
    valid_camera_id(&id)?;
    let known = st.nvr.store.read(move |c| db::get_camera(c, &id)).await?;
    let cam = known.ok_or(ConsoleError::NotFound("camera"))?;
    let rel = crate::paths::latest_frame(&cam.id);
    let resp = files::serve(&st.nvr.frames_dir, &rel, "frame", req).await?;
    Ok(no_store(resp))
}

/// `GET /console/events/{id}/snapshot.jpg`: the picture kept with the event.
pub async fn snapshot(
    State(st): State<Arc<ConsoleState>>,
    _: Signed,
    Path(id): Path<i64>,
    req: Request,
) -> ConsoleResult<Response> {
    let ev = st.nvr.store.read(move |c| db::get_event(c, id)).await?;
    let rel = ev
        .and_then(|e| e.snapshot_path)
        .ok_or(ConsoleError::NotFound("snapshot"))?;
    let resp = files::serve(&st.nvr.snapshots_dir, &rel, "snapshot", req).await?;
    Ok(no_store(resp))
}

/// `GET /console/recordings/{camera}/{id}/chunk.mp4`: one chunk, with
/// `Range` (what `<video>` asks for), `If-Modified-Since` and `HEAD`.
pub async fn chunk(
    State(st): State<Arc<ConsoleState>>,
    _: Signed,
    Path((camera, id)): Path<(String, i64)>,
    req: Request,
) -> ConsoleResult<Response> {
    valid_camera_id(&camera)?;
    let rec = st
        .nvr
        .store
        .read(move |c| db::get_recording(c, &camera, id))
        .await?
        .ok_or(ConsoleError::NotFound("recording"))?;
    let resp = files::serve(&st.nvr.recordings_dir, &rec.path, "recording file", req).await?;
    Ok(no_store(resp))
}
