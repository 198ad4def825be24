//! `/api/v1/events`: the durable event log (list, latest, one, create).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::extract::{Json as JsonBody, Path, Query};
use super::{files, valid_camera_id, Admin, NvrState};
use crate::nvr::auth::Principal;
use crate::nvr::store::{db, Event, EventFilter, NewEvent};

/// Largest page a list returns; catch up with `after_id` for more.
pub const MAX_LIMIT: u32 = 1000;

/// Filters of `GET /api/v1/events`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(alias = "camera")]
    camera_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    label: Option<String>,
    after: Option<i64>,
    before: Option<i64>,
    after_id: Option<i64>,
    limit: Option<u32>,
    /// `asc` or `desc`; defaults to `asc` with `after_id` (catch-up), else `desc`.
    order: Option<String>,
}

impl ListQuery {
    fn filter(self, default_limit: u32) -> WebResult<EventFilter> {
        if let Some(c) = &self.camera_id {
            valid_camera_id(c)?;
        }
        let ascending = match self.order.as_deref() {
            None => self.after_id.is_some(),
            Some("asc") => true,
            Some("desc") => false,
            Some(_) => return Err(WebError::BadRequest("order must be asc or desc".into())),
        };
        let limit = self.limit.unwrap_or(default_limit);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(WebError::BadRequest(format!(
                "limit must be 1..={MAX_LIMIT}"
            )));
        }
        if let (Some(a), Some(b)) = (self.after, self.before) {
            if a > b {
                return Err(WebError::BadRequest(
                    "after must not be later than before".into(),
                ));
            }
        }
        Ok(EventFilter {
            camera_id: self.camera_id,
            kind: self.kind,
            label: self.label,
            after: self.after,
            before: self.before,
            after_id: self.after_id,
            limit,
            ascending,
        })
    }
}

async fn query(st: &NvrState, f: EventFilter) -> WebResult<Json<Vec<Event>>> {
    Ok(Json(st.store.read(move |c| db::list_events(c, &f)).await?))
}

/// `GET /api/v1/events`.
pub async fn list(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Query(q): Query<ListQuery>,
) -> WebResult<Json<Vec<Event>>> {
    query(&st, q.filter(100)?).await
}

/// `GET /api/v1/events/latest`: the newest events (same filters), newest first.
pub async fn latest(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Query(mut q): Query<ListQuery>,
) -> WebResult<Json<Vec<Event>>> {
    q.order = Some("desc".into());
    query(&st, q.filter(20)?).await
}

/// `GET /api/v1/events/{id}`.
pub async fn get_one(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path(id): Path<i64>,
) -> WebResult<Json<Event>> {
    let ev = st.store.read(move |c| db::get_event(c, id)).await?;
    Ok(Json(ev.ok_or(WebError::NotFound("event"))?))
}

/// `GET /api/v1/events/{id}/snapshot.jpg`: the frame the pipeline saved
/// with the event (the best sighting for `person_left`).
pub async fn snapshot(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Path(id): Path<i64>,
    req: Request,
) -> WebResult<Response> {
    let ev = st.store.read(move |c| db::get_event(c, id)).await?;
    let ev = ev.ok_or(WebError::NotFound("event"))?;
    let rel = ev.snapshot_path.ok_or(WebError::NotFound("snapshot"))?;
    files::serve(&st.snapshots_dir, &rel, "snapshot", req).await
}

fn bad(msg: &str) -> WebError {
    WebError::BadRequest(msg.to_owned())
}

fn short_text(v: &Option<String>, max: usize, field: &str) -> WebResult<()> {
    match v {
        Some(s) if s.is_empty() || s.len() > max || s.chars().any(char::is_control) => Err(
            WebError::BadRequest(format!("{field} must have 1-{max} printable characters")),
        ),
        _ => Ok(()),
    }
}

/// Checks an incoming event before it reaches the writer.
pub fn validate(e: &NewEvent) -> WebResult<()> {
    valid_camera_id(&e.camera_id)?;
    let kind_ok = !e.kind.is_empty()
        && e.kind.len() <= 64
        && e.kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !kind_ok {
        return Err(bad("type must be 1-64 characters of a-z 0-9 _"));
    }
    short_text(&e.label, 128, "label")?;
    short_text(&e.snapshot_path, 1024, "snapshot_path")?;
    short_text(&e.model_id, 256, "model_id")?;
    if let Some(h) = &e.model_sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("model_sha256 must be 64 hex digits"));
        }
    }
    if e.score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        return Err(bad("score must be in [0, 1]"));
    }
    if e.started_at.is_some_and(|t| t < 0) {
        return Err(bad("started_at must be epoch milliseconds >= 0"));
    }
    if let (Some(s), Some(end)) = (e.started_at, e.ended_at) {
        if end < s {
            return Err(bad("ended_at must not be before started_at"));
        }
    }
    Ok(())
}

/// `POST /api/v1/events` (admin or an admin API token): stores an external
/// event. 201 with the new row, or 200 with the existing row when the same
/// `(camera_id, track_id, started_at)` was stored before (idempotent retry).
pub async fn create(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    JsonBody(e): JsonBody<NewEvent>,
) -> WebResult<(StatusCode, Json<Event>)> {
    validate(&e)?;
    if e.ended_at.is_some() && e.started_at.is_none() {
        return Err(bad("ended_at needs started_at"));
    }
    let (ev, created) = st.store.insert_event(e).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ev)))
}
