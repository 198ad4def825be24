//! `GET /api/v1/events/stream`: live events over SSE, or over a WebSocket
//! when the request asks to upgrade; and `POST /api/v1/events/ticket`.
//!
//! No gap, no duplicate: a stream subscribes to the live broadcast FIRST,
//! then replays the store after the client's cursor, then forwards live
//! events whose id is above the last one sent. Events are published only
//! after their commit, in id order, so anything committed before the
//! subscription is in the replay and anything after is in the broadcast.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::error::{WebError, WebResult};
use super::extract::Query;
use super::{bearer, credential_valid, current, principal_from_token, NvrState};
use crate::nvr::auth::{AuthError, Credential, Principal};
use crate::nvr::store::{db, Event, EventFilter};

/// Events per replay page.
const REPLAY_PAGE: u32 = 500;

/// Items between the per-connection producer and the socket; small, so a
/// slow socket shows up as lag on the broadcast rather than as memory.
const HANDOFF: usize = 16;

/// What a stream delivers.
#[derive(Debug)]
pub enum StreamMsg {
    Event(Arc<Event>),
    /// The client fell this many events behind the live buffer; they were
    /// skipped for it (it can fetch them with `after_id`).
    Lagged(u64),
    /// The stream's token was revoked or expired: the last message.
    End(&'static str),
}

/// Query of the stream endpoint.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Single-use ticket, for clients that cannot send headers.
    ticket: Option<String>,
    /// Cursor for clients that cannot send `Last-Event-ID` (WebSocket, first connect).
    after_id: Option<i64>,
}

/// `POST /api/v1/events/ticket`: a single-use ticket for the stream.
pub async fn ticket(State(st): State<Arc<NvrState>>, p: Principal) -> Json<Value> {
    Json(json!({ "ticket": st.tickets.issue(&p), "expires_in": st.tickets.ttl_s() }))
}

fn cursor(headers: &HeaderMap, q: &StreamQuery) -> WebResult<Option<i64>> {
    if let Some(v) = headers.get("last-event-id") {
        let id = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|i| *i >= 0)
            .ok_or_else(|| WebError::BadRequest("Last-Event-ID must be an event id".into()))?;
        return Ok(Some(id));
    }
    Ok(q.after_id)
}

/// Serves the stream as SSE, or as a WebSocket when asked to upgrade.
/// Everything that can make the request a 400 is checked before a ticket is
/// redeemed, so a refused request does not spend it.
pub async fn stream(State(st): State<Arc<NvrState>>, req: Request) -> WebResult<Response> {
    let (mut parts, _) = req.into_parts();
    let Query(q) = Query::<StreamQuery>::from_request_parts(&mut parts, &st).await?;
    let after = cursor(&parts.headers, &q)?;
    let wants_ws = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let ws = if wants_ws {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &st)
            .await
            .map_err(|r| WebError::BadRequest(r.body_text()))?;
        Some(upgrade)
    } else {
        None
    };
    let who = authenticate(&st, q.ticket.as_deref(), &parts.headers).await?;
    let rx = subscribe(st.clone(), after, who.credential);
    if let Some(ws) = ws {
        return Ok(upgrade(&st, ws, move |socket| {
            serve_ws(socket, rx, None, ws_frame)
        }));
    }
    let events = ReceiverStream::new(rx).map(|m| Ok::<_, Infallible>(sse_event(&m)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Who a stream request is: a bearer token if it sends one, else its
/// single-use ticket (redeemed here, so call this after every 400 check),
/// whose credential is checked again now: a ticket bought before its
/// user's removal or password reset opens nothing.
pub async fn authenticate(
    st: &NvrState,
    ticket: Option<&str>,
    headers: &HeaderMap,
) -> WebResult<Principal> {
    Ok(match (ticket, bearer(headers)) {
        (_, Some(token)) => principal_from_token(st, token).await?,
        (Some(t), None) => current(st, st.tickets.redeem(t)?).await?,
        (None, None) => return Err(AuthError::Missing.into()),
    })
}

/// Completes a WebSocket upgrade with the configured message limits.
pub fn upgrade<F, Fut>(st: &NvrState, ws: WebSocketUpgrade, serve: F) -> Response
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let max = st.limits.ws_max_message;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(serve)
}

/// Resolves when `cred` stops standing (re-checked every `every`, and at a
/// JWT's expiry), with the reason to give the client.
async fn until_invalid(st: &NvrState, cred: Credential, every: Duration) -> &'static str {
    loop {
        let wait = match cred {
            Credential::Jwt { expires_s, .. } => {
                let left_ms = (expires_s * 1000 - st.clock.now_ms()).max(0) as u64;
                every.min(Duration::from_millis(left_ms))
            }
            Credential::ApiToken { .. } => every,
        };
        st.clock.sleep(wait).await;
        match credential_valid(st, cred).await {
            Ok(_) => {}
            Err(AuthError::Expired) => return "token expired",
            Err(AuthError::Store(e)) => {
                // The store could not answer: keep the stream, ask again later.
                tracing::warn!(error = %e, "stream token re-check failed");
            }
            Err(_) => return "token revoked",
        }
    }
}

fn sse_event(m: &StreamMsg) -> SseEvent {
    match m {
        StreamMsg::Event(ev) => SseEvent::default()
            .id(ev.id.to_string())
            .data(serde_json::to_string(&**ev).unwrap_or_default()),
        StreamMsg::Lagged(n) => SseEvent::default()
            .event("lagged")
            .data(json!({ "missed": n }).to_string()),
        StreamMsg::End(why) => SseEvent::default()
            .event("closed")
            .data(json!({ "reason": why }).to_string()),
    }
}

fn ws_frame(m: &StreamMsg) -> Option<String> {
    Some(match m {
        StreamMsg::Event(ev) => json!({ "event": &**ev }).to_string(),
        StreamMsg::Lagged(n) => json!({ "lagged": { "missed": n } }).to_string(),
        StreamMsg::End(why) => json!({ "closed": { "reason": why } }).to_string(),
    })
}

/// Sends `hello` (if any), then each message as `frame` writes it (`None`
/// skips it: a filtered event), until either side ends; a revoked or
/// expired credential closes with 1008 and its reason.
pub async fn serve_ws(
    mut socket: WebSocket,
    mut rx: mpsc::Receiver<StreamMsg>,
    hello: Option<String>,
    mut frame: impl FnMut(&StreamMsg) -> Option<String> + Send,
) {
    if let Some(h) = hello {
        if socket.send(Message::Text(h.into())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                if let StreamMsg::End(why) = m {
                    let frame = CloseFrame { code: close_code::POLICY, reason: why.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                let Some(text) = frame(&m) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Clients need not send anything; pings are answered by axum.
                // A message over the size limit is an error: the socket closes.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Starts the per-connection producer: replay after `after` (if given),
/// then live events. It ends when the receiver is dropped, or when `cred`
/// (what the client authenticated with) is revoked or expires, after a last
/// [`StreamMsg::End`].
pub fn subscribe(
    st: Arc<NvrState>,
    after: Option<i64>,
    cred: Credential,
) -> mpsc::Receiver<StreamMsg> {
    let (tx, rx) = mpsc::channel(HANDOFF);
    // Subscribe before reading the store: that ordering is the no-gap guarantee.
    let live = st.store.subscribe();
    // This stream's own token: cancelled with the daemon's.
    let stop = st.shutdown.child_token();
    tokio::spawn(async move {
        let feed = async {
            let mut last = after.unwrap_or(0);
            if after.is_some() && replay(&st, &tx, &mut last).await.is_err() {
                return;
            }
            forward(live, &tx, last, stop).await;
        };
        tokio::select! {
            _ = feed => {}
            why = until_invalid(&st, cred, st.limits.stream_recheck) => {
                // Best effort: a client too slow to take it still sees the end.
                let _ = tx.try_send(StreamMsg::End(why));
            }
        }
    });
    rx
}

/// Sends stored events after `*last`, page by page; `Err` when the client left.
async fn replay(st: &NvrState, tx: &mpsc::Sender<StreamMsg>, last: &mut i64) -> Result<(), ()> {
    loop {
        let f = EventFilter {
            after_id: Some(*last),
            limit: REPLAY_PAGE,
            ascending: true,
            max_bytes: Some(st.limits.max_list_bytes / 4),
            ..EventFilter::default()
        };
        let page = match st.store.read(move |c| db::list_events(c, &f)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "stream replay failed");
                return Err(());
            }
        };
        // A page cut by the byte budget is short too: only an empty one ends the replay.
        if page.is_empty() {
            return Ok(());
        }
        for ev in page {
            *last = ev.id;
            tx.send(StreamMsg::Event(Arc::new(ev)))
                .await
                .map_err(|_| ())?;
        }
    }
}

/// Forwards live events above `last`, reporting lag instead of blocking;
/// returns when the client leaves or the daemon stops.
async fn forward(
    mut live: broadcast::Receiver<Arc<Event>>,
    tx: &mpsc::Sender<StreamMsg>,
    mut last: i64,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            // Stopping wins over a backlog of live events.
            biased;
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            r = live.recv() => r,
        };
        let out = match msg {
            Ok(ev) if ev.id > last => {
                last = ev.id;
                StreamMsg::Event(ev)
            }
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => StreamMsg::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64) -> Arc<Event> {
        Arc::new(Event {
            id,
            camera_id: "c".into(),
            kind: "t".into(),
            label: None,
            score: None,
            track_id: None,
            started_at: 0,
            ended_at: None,
            bbox: None,
            snapshot_path: None,
            model_id: None,
            model_sha256: None,
            payload: serde_json::Value::Null,
            created_at: 0,
        })
    }

    #[tokio::test]
    async fn a_slow_client_is_told_it_lagged_and_skips_what_it_already_has() {
        let (btx, brx) = broadcast::channel(4);
        let (tx, mut rx) = mpsc::channel(HANDOFF);
        // Ids 1..=10 published before the client reads anything; the last
        // replayed id was 2, so 1 and 2 must not come again.
        for id in 1..=10 {
            btx.send(ev(id)).unwrap();
        }
        drop(btx);
        forward(brx, &tx, 2, CancellationToken::new()).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(m) = rx.recv().await {
            got.push(match m {
                StreamMsg::Event(e) => format!("e{}", e.id),
                StreamMsg::Lagged(n) => format!("lag{n}"),
                StreamMsg::End(why) => why.to_owned(),
            });
        }
        assert_eq!(got, ["lag6", "e7", "e8", "e9", "e10"]);
    }

    #[test]
    fn a_cancelled_token_ends_the_stream_before_any_live_event() {
        use futures_util::FutureExt;
        let (btx, brx) = broadcast::channel(4);
        let (tx, mut rx) = mpsc::channel(HANDOFF);
        btx.send(ev(1)).unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        // The broadcast is still open and has an event: only the token ends it.
        assert!(forward(brx, &tx, 0, stop).now_or_never().is_some());
        assert!(rx.try_recv().is_err());
    }
}
