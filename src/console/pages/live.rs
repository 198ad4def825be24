//! `/` (the live grid) and `/cameras/{id}` (one camera, larger, with
//! today's activity); `caption` is the grid's polled status fragment.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::events::{rows, Row};
use super::{day_start, html};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::guard::{Nav, Signed};
use crate::console::ConsoleState;
use crate::nvr::store::{db, Camera, EventFilter};
use crate::nvr::web::valid_camera_id;
use axum::extract::Path;

/// One camera as the grid shows it.
pub struct Tile {
    pub id: String,
    pub name: String,
    /// `online` or `offline`.
    pub state: &'static str,
    /// People in view now: the count of its latest `count_changed` event.
    pub count: i64,
}

/// The tiles of `cams`: live state from the running pipeline, the people
/// count from the store.
async fn tiles(st: &ConsoleState, cams: Vec<Camera>) -> ConsoleResult<Vec<Tile>> {
    let ids: Vec<String> = cams.iter().map(|c| c.id.clone()).collect();
    let counts = st
        .nvr
        .store
        .read(move |c| {
            ids.iter()
                .map(|id| {
                    let f = EventFilter {
                        camera_id: Some(id.clone()),
                        kind: Some("count_changed".into()),
                        limit: 1,
                        ..Default::default()
                    };
                    let page = db::event_page::<serde_json::Value>(c, &f)?;
                    Ok(page
                        .events
                        .first()
                        .and_then(|e| e.payload["count"].as_i64())
                        .unwrap_or(0))
                })
                .collect::<Result<Vec<i64>, _>>()
        })
        .await?;
    Ok(cams
        .into_iter()
        .zip(counts)
        .map(|(c, count)| {
            let online = c.enabled
                && st
                    .nvr
                    .cameras
                    .as_ref()
                    .and_then(|l| l.status(&c.id))
                    .is_some_and(|s| s.online);
            Tile {
                state: if online { "online" } else { "offline" },
                id: c.id,
                name: c.name,
                count,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "live.html")]
struct GridView {
    nav: Option<Nav>,
    cameras: Vec<Tile>,
}

/// `GET /`: every camera's latest frame (refreshed by our script), state and people count.
pub async fn grid(State(st): State<Arc<ConsoleState>>, who: Signed) -> ConsoleResult<Response> {
    let cams = st.nvr.store.read(db::list_cameras).await?;
    html(&GridView {
        nav: Some(who.nav()),
        cameras: tiles(&st, cams).await?,
    })
}

/// Camera `id` (a valid id, or 400), or 404: the one lookup of the pages
/// that show one camera.
pub(crate) async fn one_camera(st: &ConsoleState, id: String) -> ConsoleResult<Camera> {
    valid_camera_id(&id)?;
    st.nvr
        .store
        .read(move |c| db::get_camera(c, &id))
        .await?
        .ok_or(ConsoleError::NotFound("camera"))
}

#[derive(Template)]
#[template(path = "caption.html")]
struct CaptionView {
    cam: Tile,
}

/// `GET /console/cameras/{id}/caption`: the grid's status line of one
/// camera, which htmx swaps in every 2 s. Signed out, it tells htmx to
/// load the sign-in page instead of swapping it into the grid.
pub async fn caption(
    State(st): State<Arc<ConsoleState>>,
    who: Result<Signed, ConsoleError>,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    if let Err(ConsoleError::SignIn) = who {
        let mut resp = StatusCode::UNAUTHORIZED.into_response();
        resp.headers_mut().insert(
            HeaderName::from_static("hx-redirect"),
            HeaderValue::from_static("/login"),
        );
        return Ok(resp);
    }
    who?;
    let cam = one_camera(&st, id).await?;
    let cam = tiles(&st, vec![cam]).await?.remove(0);
    html(&CaptionView { cam })
}

#[derive(Template)]
#[template(path = "camera.html")]
struct CameraView {
    nav: Option<Nav>,
    cam: Tile,
    events: Vec<Row>,
    day: String,
}

/// `GET /cameras/{id}`: a larger live view and the camera's events today (UTC).
pub async fn camera(
    State(st): State<Arc<ConsoleState>>,
    who: Signed,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let cam = one_camera(&st, id).await?;
    let today = day_start(st.nvr.clock.now_ms());
    let f = EventFilter {
        camera_id: Some(cam.id.clone()),
        after: Some(today),
        limit: 200,
        max_bytes: Some(st.nvr.limits.max_list_bytes),
        ..Default::default()
    };
    let (events, _) = rows(&st, f).await?;
    let cam = tiles(&st, vec![cam]).await?.remove(0);
    html(&CameraView {
        nav: Some(who.nav()),
        cam,
        events,
        day: super::when_part(today, 0..10),
    })
}
