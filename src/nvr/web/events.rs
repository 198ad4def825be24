//! `/api/v1/events`: the durable event log (list, latest, one, create).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::extract::{Json as JsonBody, Path, Query};
use super::{files, valid_camera_id, Admin, NvrState};
use crate::nvr::auth::Principal;
use crate::nvr::store::{db, Event, EventFilter, EventPage, NewEvent, RawPayload, StoreError};

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
    /// Upstream's spelling of `after`, inclusive: ISO 8601 or epoch (see [`instant_ms`]).
    from: Option<String>,
    /// Upstream's `to`, inclusive (`before` is exclusive): ISO 8601 or epoch.
    to: Option<String>,
    after_id: Option<i64>,
    /// `id < before_id`: where a newest-first page cut short continues.
    before_id: Option<i64>,
    limit: Option<u32>,
    /// `asc` or `desc`; defaults to `asc` with `after_id` (catch-up), else `desc`.
    order: Option<String>,
}

/// Epoch numbers at or above this are milliseconds, below it seconds
/// (1e11 s is the year 5138; 1e11 ms is March 1973).
const MS_FROM: f64 = 1e11;

/// Reads a `from`/`to` instant as epoch milliseconds: an epoch number
/// (seconds below 1e11, else milliseconds; decimals allowed) or ISO 8601
/// with an offset, or without one (taken as UTC), or a date alone (its
/// midnight UTC; eight digits are a basic-format date, not 1970's seconds).
/// A `+` that the query string turned into a space is read back as `+`.
pub fn instant_ms(field: &str, text: &str) -> WebResult<i64> {
    use time::format_description::well_known::Iso8601;
    let t = text.trim().replace(' ', "+");
    let date = |t: &str| {
        time::Date::parse(t, &Iso8601::DEFAULT)
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
    };
    if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(ms) = date(&t) {
            return Ok(ms);
        }
    }
    if let Ok(n) = t.parse::<f64>() {
        if (0.0..1e16).contains(&n) {
            let ms = if n >= MS_FROM { n } else { n * 1000.0 };
            return Ok(ms.round() as i64);
        }
    }
    let at = time::OffsetDateTime::parse(&t, &Iso8601::DEFAULT)
        .or_else(|_| time::PrimitiveDateTime::parse(&t, &Iso8601::DEFAULT).map(|p| p.assume_utc()));
    match at
        .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64)
        .or_else(|_| date(&t))
    {
        Ok(ms) => Ok(ms),
        Err(_) => Err(WebError::BadRequest(format!(
            "{field} must be ISO 8601 (e.g. 2026-01-31T12:00:00Z) or epoch seconds or milliseconds"
        ))),
    }
}

/// One bound given at most once: ours (`after`/`before`) or upstream's (`from`/`to`).
fn one_of(ours: Option<i64>, theirs: Option<i64>, names: &str) -> WebResult<Option<i64>> {
    match (ours, theirs) {
        (Some(_), Some(_)) => Err(WebError::BadRequest(format!("give {names}, not both"))),
        (a, b) => Ok(a.or(b)),
    }
}

impl ListQuery {
    fn filter(mut self, default_limit: u32, max_bytes: usize) -> WebResult<EventFilter> {
        let from = self
            .from
            .as_deref()
            .map(|t| instant_ms("from", t))
            .transpose()?;
        let to = self
            .to
            .as_deref()
            .map(|t| instant_ms("to", t))
            .transpose()?;
        self.after = one_of(self.after, from, "after or from")?;
        self.before = one_of(self.before, to.map(|t| t.saturating_add(1)), "before or to")?;
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
            before_id: self.before_id,
            limit,
            ascending,
            max_bytes: Some(max_bytes),
        })
    }
}

/// Header naming the `after_id` that continues an oldest-first page cut short.
pub const NEXT_AFTER_ID: HeaderName = HeaderName::from_static("x-next-after-id");
/// Header naming the `before_id` that continues a newest-first page cut short.
pub const NEXT_BEFORE_ID: HeaderName = HeaderName::from_static("x-next-before-id");

/// One page as JSON, written from the stored payload text (no parsed tree
/// per event), so a page costs about its own size. A page the byte budget
/// cut short says where to continue in a header.
async fn query(st: &NvrState, f: EventFilter) -> WebResult<Response> {
    let ascending = f.ascending;
    let page: EventPage<RawPayload> = st.store.read(move |c| db::event_page(c, &f)).await?;
    let body = serde_json::to_vec(&page.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let (true, Some(last)) = (page.truncated, page.events.last()) {
        let name = if ascending {
            NEXT_AFTER_ID
        } else {
            NEXT_BEFORE_ID
        };
        resp.headers_mut().insert(name, HeaderValue::from(last.id));
    }
    Ok(resp)
}

/// `GET /api/v1/events`.
pub async fn list(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let f = q.filter(100, st.limits.max_list_bytes)?;
    query(&st, f).await
}

/// `GET /api/v1/events/latest`: the newest events (same filters), newest first.
pub async fn latest(
    State(st): State<Arc<NvrState>>,
    _: Principal,
    Query(mut q): Query<ListQuery>,
) -> WebResult<Response> {
    q.order = Some("desc".into());
    let f = q.filter(20, st.limits.max_list_bytes)?;
    query(&st, f).await
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

/// Longest stored snapshot path.
const MAX_SNAPSHOT_PATH: usize = 255;

/// A snapshot path is relative to the snapshots dir: plain names of
/// `A-Z a-z 0-9 _ - .` joined by single `/`, none of them `.` or `..`.
fn valid_snapshot_path(p: &str) -> WebResult<()> {
    let ok = !p.is_empty()
        && p.len() <= MAX_SNAPSHOT_PATH
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(WebError::BadRequest(format!(
            "snapshot_path must be a relative path under the snapshots dir: 1-{MAX_SNAPSHOT_PATH} \
             characters of A-Z a-z 0-9 _ - . in segments joined by /, no . or .. segments"
        )))
    }
}

/// Refuses a payload over `max` bytes of JSON, naming the cap.
fn payload_within(e: &NewEvent, max: usize) -> WebResult<()> {
    let Some(p) = &e.payload else { return Ok(()) };
    let len = serde_json::to_vec(p).map(|v| v.len()).unwrap_or(usize::MAX);
    if len > max {
        return Err(WebError::TooLarge(format!(
            "payload is {len} bytes of JSON; the limit is {max} bytes (nvr.max_event_payload_bytes)"
        )));
    }
    Ok(())
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
    if let Some(p) = &e.snapshot_path {
        valid_snapshot_path(p)?;
    }
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
/// `(camera_id, type, track_id, started_at)` was stored before (idempotent retry).
pub async fn create(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    JsonBody(e): JsonBody<NewEvent>,
) -> WebResult<(StatusCode, Json<Event>)> {
    validate(&e)?;
    payload_within(&e, st.limits.max_event_payload)?;
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

#[cfg(test)]
mod tests {
    use super::instant_ms;

    #[test]
    fn instants_in_every_spelling_upstream_clients_send() {
        let ms = 1_769_860_800_000; // 2026-01-31T12:00:00Z
        let day = 1_769_817_600_000; // 2026-01-31T00:00:00Z
        for (text, want) in [
            ("2026-01-31T12:00:00Z", ms),
            ("2026-01-31T13:00:00 01:00", ms), // `+` turned into a space by the query string
            ("2026-01-31T12:00:00", ms),
            ("1769860800", ms),
            ("1769860800000", ms),
            ("1769860800.0", ms),
            ("2026-01-31", day),
            ("20260131", day),
        ] {
            assert_eq!(instant_ms("from", text).unwrap(), want, "{text}");
        }
        for bad in ["yesterday", "-5", "NaN", "inf", "2026-13-01"] {
            assert!(instant_ms("from", bad).is_err(), "{bad}");
        }
    }
}
