//! `/recordings?camera=ID&day=YYYY-MM-DD`: one camera's day as a timeline
//! of its chunks with the events on it; a chunk plays in `<video>` and the
//! next one follows (our script), or opens by itself without it.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{day_start, html, parse_day, when_part};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::guard::{Nav, Signed};
use crate::console::ConsoleState;
use crate::nvr::store::db;
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
        d => parse_day(d)
            .ok_or_else(|| ConsoleError::BadRequest("day must be a date, YYYY-MM-DD".into()))?,
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
                let evs = db::event_starts(c, &cam, start, start + DAY_MS, MAX_TICKS)?;
                Ok((recs, evs))
            })
            .await?;
        if let (Some(a), Some(b)) = (recs.first(), recs.iter().map(|r| r.end_ms).max()) {
            // Whole minutes around the chunks, inside the day.
            first = (a.start_ms - a.start_ms.rem_euclid(60_000)).max(start);
            last = (b + 60_000 - b.rem_euclid(60_000)).min(start + DAY_MS);
        }
        ticks = evs
            .iter()
            .filter(|e| (first..last).contains(*e))
            .map(|e| minutes(e - first))
            .collect();
        chunks = recs
            .into_iter()
            .map(|r| Chunk {
                url: format!("/console/recordings/{}/{}/chunk.mp4", r.camera_id, r.id),
                id: r.id,
                from: when_part(r.start_ms, 11..19),
                to: when_part(r.end_ms, 11..19),
                seconds: (r.end_ms - r.start_ms) / 1000,
                x: minutes((r.start_ms - first).max(0)),
                width: minutes(r.end_ms - r.start_ms.max(first)).max(0.05),
                events: evs
                    .iter()
                    .filter(|e| (r.start_ms..r.end_ms).contains(*e))
                    .count(),
            })
            .collect();
    }
    html(&DayView {
        nav: Some(who.nav()),
        cameras,
        camera,
        day: when_part(start, 0..10),
        chunks,
        ticks,
        span: Span {
            minutes: minutes(last - first).max(1.0),
            from: when_part(first, 11..16),
            to: if last - start >= DAY_MS {
                "24:00".to_owned()
            } else {
                when_part(last, 11..16)
            },
        },
    })
}
