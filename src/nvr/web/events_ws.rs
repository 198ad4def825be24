//! `GET /api/v1/events/ws` (with `POST /api/v1/events/ws-ticket`): the
//! event WebSocket as upstream OpenNVR's server and web UI speak it, beside
//! our own `/events/stream`. Same events, same no-gap replay and the same
//! authentication (a ticket, or a bearer token); upstream's frame shape and
//! its `camera_id` / `task` filters.
//!
//! Frames: `{"event_type": "subscribed", "filters": {...}}` first; then per
//! event `{"event_type", "id", "camera_id", "model_id", "task", "timestamp",
//! "payload"}`, where `event_type` is `inference_result` for an event a model
//! produced and `camera_event` for the others, `task` is the task behind it
//! (`person_counting` for the tracker's person events, else the event type)
//! and `payload` is our event with `confidence` (its score) and `count`
//! added, the fields upstream's UI reads; `{"event_type": "lagged",
//! "dropped": N}` (N cumulative) when the client fell behind.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::error::{WebError, WebResult};
use super::extract::Query;
use super::stream::{authenticate, serve_ws, subscribe, upgrade, StreamMsg};
use super::{valid_camera_id, NvrState};
use crate::nvr::store::Event;

/// At most this many `task` filters, each at most 64 bytes.
const MAX_TASKS: usize = 16;

/// Event types the camera pipeline's tracker writes for `person_counting`.
const COUNTING_KINDS: [&str; 3] = ["person_entered", "person_left", "count_changed"];

/// What a socket asked for.
#[derive(Default)]
struct Filters {
    ticket: Option<String>,
    after_id: Option<i64>,
    camera_id: Option<String>,
    tasks: Vec<String>,
}

impl Filters {
    /// Reads the query; `task` may repeat. Unknown keys are a 400.
    fn parse(pairs: Vec<(String, String)>) -> WebResult<Filters> {
        let mut f = Filters::default();
        for (k, v) in pairs {
            match k.as_str() {
                "ticket" => f.ticket = Some(v),
                "camera_id" => {
                    valid_camera_id(&v)?;
                    f.camera_id = Some(v);
                }
                "task" if v.is_empty() || v.len() > 64 => {
                    return Err(WebError::BadRequest("task must be 1-64 bytes".into()))
                }
                "task" => f.tasks.push(v),
                "after_id" => {
                    let id = v
                        .parse()
                        .map_err(|_| WebError::BadRequest("after_id must be an event id".into()))?;
                    f.after_id = Some(id);
                }
                other => {
                    return Err(WebError::BadRequest(format!(
                    "unknown query parameter {other:?}; known: ticket, camera_id, task, after_id"
                )))
                }
            }
        }
        if f.tasks.len() > MAX_TASKS {
            return Err(WebError::BadRequest(format!(
                "at most {MAX_TASKS} task filters"
            )));
        }
        Ok(f)
    }

    fn wants(&self, ev: &Event) -> bool {
        self.camera_id.as_ref().is_none_or(|c| *c == ev.camera_id)
            && (self.tasks.is_empty()
                || self.tasks.iter().any(|t| *t == ev.kind || t == task_of(ev)))
    }
}

/// The task behind an event, in upstream's vocabulary.
fn task_of(ev: &Event) -> &str {
    if COUNTING_KINDS.contains(&ev.kind.as_str()) {
        "person_counting"
    } else {
        &ev.kind
    }
}

/// One event in upstream's frame shape.
fn frame_of(ev: &Event) -> Value {
    let mut payload = serde_json::to_value(ev).unwrap_or(Value::Null);
    payload["confidence"] = json!(ev.score);
    payload["count"] = ev.payload.get("count").cloned().unwrap_or(Value::Null);
    json!({
        "event_type": if ev.model_id.is_some() { "inference_result" } else { "camera_event" },
        "id": ev.id,
        "camera_id": ev.camera_id,
        "model_id": ev.model_id,
        "task": task_of(ev),
        "timestamp": ev.started_at,
        "payload": payload,
    })
}

/// `GET /api/v1/events/ws?ticket=...&camera_id=...&task=...`: WebSocket only.
/// Every 400 is decided before the ticket is redeemed.
pub async fn ws(State(st): State<Arc<NvrState>>, req: Request) -> WebResult<Response> {
    let (mut parts, _) = req.into_parts();
    let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(&mut parts, &st).await?;
    let filters = Filters::parse(pairs)?;
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &st)
        .await
        .map_err(|r| WebError::BadRequest(r.body_text()))?;
    let who = authenticate(&st, filters.ticket.as_deref(), &parts.headers).await?;
    let rx = subscribe(st.clone(), filters.after_id, who.credential);
    let hello = json!({
        "event_type": "subscribed",
        "filters": {"camera_id": filters.camera_id, "task": filters.tasks},
    })
    .to_string();
    let mut dropped = 0u64;
    let frame = move |m: &StreamMsg| match m {
        StreamMsg::Event(ev) => filters.wants(ev).then(|| frame_of(ev).to_string()),
        StreamMsg::Lagged(n) => {
            dropped += n;
            Some(json!({"event_type": "lagged", "dropped": dropped}).to_string())
        }
        // The end is a close frame (1008 and the reason), sent by serve_ws.
        StreamMsg::End(_) => None,
    };
    Ok(upgrade(&st, ws, move |socket| {
        serve_ws(socket, rx, Some(hello), frame)
    }))
}
