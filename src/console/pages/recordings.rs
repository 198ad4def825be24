//! `/recordings?camera=ID&day=YYYY-MM-DD`: one camera's day as a timeline
//! of its chunks with the events on it; a chunk plays in `<video>` and the
//! next one follows (our script), or opens by itself without it.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{day_start, html, when};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::guard::{Nav, Signed};
use crate::console::ConsoleState;
use crate::nvr::store::{db, EventFilter};
use crate::nvr::web::events::instant_ms;
use crate::nvr::web::valid_camera_id;

/// The page's form.
#[derive(Deserialize, Default)]
pub struct DayQuery {
    #[serde(default)]
    camera: String,
    #[serde(default)]
    day: String,
}

/// One chunk on the timeline; positions are minutes into the day.
pub struct Chunk {
    pub id: i64,
    pub url: String,
    pub from: String,
    pub to: String,
    pub seconds: i64,
    pub x: f64,
    pub width: f64,
    pub events: usize,
}

#[derive(Template)]
#[template(path = "recordings.html")]
struct DayView {
    nav: Option<Nav>,
    cameras: Vec<String>,
    camera: String,
    day: String,
    chunks: Vec<Chunk>,
    /// Minutes into the timeline of each event on it.
    ticks: Vec<f64>,
    /// The timeline's span: its width in minutes and its ends' times of day.
    span: Span,
}

/// What the timeline covers: from the first chunk's start to the last
/// chunk's end (the whole day when there are none), so short chunks show.
pub struct Span {
    pub minutes: f64,
    pub from: String,
    pub to: String,
}

const DAY_MS: i64 = 86_400_000;
/// Events drawn on one day's timeline at most.
const MAX_TICKS: u32 = 1000;

fn minutes(ms: i64) -> f64 {
    (ms as f64 / 60_000.0 * 100.0).round() / 100.0
}

/// `GET /recordings`: the first camera and today (UTC) unless the form says otherwise.
pub async fn day(
    State(st): State<Arc<ConsoleState>>,
    who: Signed,
    Query(q): Query<DayQuery>,
) -> ConsoleResult<Response> {
    let cameras: Vec<String> = st
        .nvr
        .store
        .read(db::list_cameras)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let camera = match q.camera.trim() {
        "" => cameras.first().cloned().unwrap_or_default(),
        c => c.to_owned(),
    };
    let start = match q.day.trim() {
        "" => day_start(st.nvr.clock.now_ms()),
        d if d.len() == 10 => day_start(instant_ms("day", d)?),
        _ => return Err(ConsoleError::BadRequest("day must be YYYY-MM-DD".into())),
    };
    let (mut chunks, mut ticks) = (Vec::new(), Vec::new());
    let (mut first, mut last) = (start, start + DAY_MS);
    if !camera.is_empty() {
        valid_camera_id(&camera)?;
        let cam = camera.clone();
        let (recs, evs) = st
            .nvr
            .store
            .read(move |c| {
                let recs = db::recordings_in_range(c, &cam, start, start + DAY_MS)?;
                let f = EventFilter {
                    camera_id: Some(cam),
                    after: Some(start),
                    before: Some(start + DAY_MS),
                    limit: MAX_TICKS,
                    ascending: true,
                    ..Default::default()
                };
                Ok((recs, db::list_events(c, &f)?))
            })
            .await?;
        if let (Some(a), Some(b)) = (recs.first(), recs.iter().map(|r| r.end_ms).max()) {
            // Whole minutes around the chunks, inside the day.
            first = (a.start_ms - a.start_ms.rem_euclid(60_000)).max(start);
            last = (b + 60_000 - b.rem_euclid(60_000)).min(start + DAY_MS);
        }
        ticks = evs
            .iter()
            .filter(|e| (first..last).contains(&e.started_at))
            .map(|e| minutes(e.started_at - first))
            .collect();
        chunks = recs
            .into_iter()
            .map(|r| Chunk {
                url: format!("/console/recordings/{}/{}/chunk.mp4", r.camera_id, r.id),
                id: r.id,
                from: when(r.start_ms)[11..].to_owned(),
                to: when(r.end_ms)[11..].to_owned(),
                seconds: (r.end_ms - r.start_ms) / 1000,
                x: minutes((r.start_ms - first).max(0)),
                width: minutes(r.end_ms - r.start_ms.max(first)).max(0.05),
                events: evs
                    .iter()
                    .filter(|e| (r.start_ms..r.end_ms).contains(&e.started_at))
                    .count(),
            })
            .collect();
    }
    html(&DayView {
        nav: Some(who.nav()),
        cameras,
        camera,
        day: when(start)[..10].to_owned(),
        chunks,
        ticks,
        span: Span {
            minutes: minutes(last - first).max(1.0),
            from: when(first)[11..16].to_owned(),
            to: if last - start >= DAY_MS {
                "24:00".to_owned()
            } else {
                when(last)[11..16].to_owned()
            },
        },
    })
}
