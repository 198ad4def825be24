//! `/events` (the filterable list, thumbnails with their boxes) and
//! `/events/{id}` (the snapshot large, and the recording at its moment).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{duration, html, when};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::guard::{Nav, Signed};
use crate::console::ConsoleState;
use crate::nvr::store::{db, Event, EventFilter};
use crate::nvr::web::events::instant_ms;
use crate::nvr::web::files::open_confined;
use crate::nvr::web::valid_camera_id;

/// A picture with the detection box over it, in the picture's own pixels.
pub struct Picture {
    pub url: String,
    pub width: u32,
    pub height: u32,
    /// `[x, y, w, h]`, drawn as an SVG rect over the picture.
    pub rect: Option<[f64; 4]>,
}

/// One event as the list shows it.
pub struct Row {
    pub id: i64,
    pub camera_id: String,
    pub kind: String,
    pub label: String,
    pub at: String,
    pub score: String,
    pub track: String,
    pub duration: String,
    pub picture: Option<Picture>,
}

/// The pixel size of a stored snapshot, read from its header only.
fn picture_size(st: &ConsoleState, rel: &str) -> Option<(u32, u32)> {
    let f = open_confined(&st.nvr.snapshots_dir, rel)?;
    image::ImageReader::new(std::io::BufReader::new(f))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

fn row(st: &ConsoleState, e: Event) -> Row {
    let picture = e.snapshot_path.as_deref().and_then(|rel| {
        let (width, height) = picture_size(st, rel)?;
        Some(Picture {
            url: format!("/console/events/{}/snapshot.jpg", e.id),
            width,
            height,
            rect: e.bbox,
        })
    });
    let lasted = e.payload["duration_ms"]
        .as_i64()
        .or(e.ended_at.map(|end| end - e.started_at));
    Row {
        id: e.id,
        at: when(e.started_at),
        score: e.score.map(|s| format!("{s:.2}")).unwrap_or_default(),
        track: e.track_id.map(|t| format!("#{t}")).unwrap_or_default(),
        duration: lasted.map(duration).unwrap_or_default(),
        label: e.label.unwrap_or_default(),
        camera_id: e.camera_id,
        kind: e.kind,
        picture,
    }
}

/// The rows `f` selects (newest first) and whether more are older than the last.
pub async fn rows(st: &Arc<ConsoleState>, f: EventFilter) -> ConsoleResult<(Vec<Row>, bool)> {
    let page = st
        .nvr
        .store
        .read(move |c| db::event_page::<serde_json::Value>(c, &f))
        .await?;
    let more = page.truncated;
    let st = st.clone();
    // Snapshot headers are read from disk: off the async threads.
    let rows =
        tokio::task::spawn_blocking(move || page.events.into_iter().map(|e| row(&st, e)).collect())
            .await
            .map_err(|e| ConsoleError::Render(e.to_string()))?;
    Ok((rows, more))
}

/// The filter form's fields; empty fields (as a GET form sends them) are unset.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    camera: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Continue below this id (the "older" link).
    before_id: Option<i64>,
}

/// Event types the filter offers (others can still be typed into the URL).
const KINDS: [&str; 6] = [
    "person_entered",
    "person_left",
    "count_changed",
    "camera_online",
    "camera_offline",
    "camera_stalled",
];

/// Events per page.
const PAGE: u32 = 100;

#[derive(Template)]
#[template(path = "events.html")]
struct ListView {
    nav: Option<Nav>,
    q: ListQuery,
    cameras: Vec<String>,
    kinds: [&'static str; 6],
    events: Vec<Row>,
    older: Option<String>,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `GET /events?camera=&kind=&from=&to=`: newest first, a page at a time.
pub async fn list(
    State(st): State<Arc<ConsoleState>>,
    who: Signed,
    Query(q): Query<ListQuery>,
) -> ConsoleResult<Response> {
    let camera = some(&q.camera);
    if let Some(c) = &camera {
        valid_camera_id(c)?;
    }
    let from = some(&q.from).map(|t| instant_ms("from", &t)).transpose()?;
    let to = some(&q.to).map(|t| instant_ms("to", &t)).transpose()?;
    let f = EventFilter {
        camera_id: camera,
        kind: some(&q.kind),
        after: from,
        before: to.map(|t| t.saturating_add(1)),
        before_id: q.before_id,
        limit: PAGE,
        max_bytes: Some(st.nvr.limits.max_list_bytes),
        ..Default::default()
    };
    let (events, cut) = rows(&st, f).await?;
    let older = match events.last() {
        Some(last) if cut || events.len() == PAGE as usize => Some(
            serde_urlencoded::to_string([
                ("camera", q.camera.as_str()),
                ("kind", q.kind.as_str()),
                ("from", q.from.as_str()),
                ("to", q.to.as_str()),
                ("before_id", &last.id.to_string()),
            ])
            .unwrap_or_default(),
        ),
        _ => None,
    };
    let cameras = st.nvr.store.read(db::list_cameras).await?;
    html(&ListView {
        nav: Some(who.nav()),
        q,
        cameras: cameras.into_iter().map(|c| c.id).collect(),
        kinds: KINDS,
        events,
        older,
    })
}

/// Where an event's moment is recorded: the chunk's media URL and the
/// offset into it, seconds.
pub struct Playback {
    pub url: String,
    pub offset_s: String,
}

#[derive(Template)]
#[template(path = "event.html")]
struct OneView {
    nav: Option<Nav>,
    e: Row,
    playback: Option<Playback>,
}

/// `GET /events/{id}`: the snapshot large with its box, and the chunk that
/// holds the event's moment, which our script seeks to.
pub async fn one(
    State(st): State<Arc<ConsoleState>>,
    who: Signed,
    Path(id): Path<i64>,
) -> ConsoleResult<Response> {
    let ev = st
        .nvr
        .store
        .read(move |c| db::get_event(c, id))
        .await?
        .ok_or(ConsoleError::NotFound("event"))?;
    let (cam, at) = (ev.camera_id.clone(), ev.started_at);
    let chunk = st
        .nvr
        .store
        .read(move |c| db::recordings_in_range(c, &cam, at, at.saturating_add(1)))
        .await?
        .into_iter()
        .next();
    let playback = chunk.map(|r| Playback {
        url: format!("/console/recordings/{}/{}/chunk.mp4", r.camera_id, r.id),
        offset_s: format!("{:.3}", (at - r.start_ms).max(0) as f64 / 1000.0),
    });
    let st2 = st.clone();
    let e = tokio::task::spawn_blocking(move || row(&st2, ev))
        .await
        .map_err(|e| ConsoleError::Render(e.to_string()))?;
    html(&OneView {
        nav: Some(who.nav()),
        e,
        playback,
    })
}
