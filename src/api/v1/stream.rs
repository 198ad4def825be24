//! `/v1/infer/stream`: contract v1's WebSocket protocol (§6).
//!
//! The client opens with a `handshake` (its `client_id`, optional
//! `camera_id`; our extension: optional `task` and `params`), we answer
//! `handshake_ack` (transport `websocket`, sink `websocket`, `max_inflight`
//! 1). Then each `frame` text message is followed by one binary message with
//! the JPEG or PNG, and we answer a `result` (`seq`, `ts_ms`,
//! `inference_ms`, the §5.1 result, or a §7 envelope inside it when that
//! frame failed). `pause` drops frames until `resume`; `stats` is answered
//! with `inflight`, `queue_depth` and `fps`; `close` ends the stream (1000).
//!
//! Bounds: a stream holds one of `ai.max_streams` places (at most half per
//! client) for its life; one frame is in flight (we read the next message
//! only after answering); a message over `ai.stream_max_frame_bytes` closes
//! the stream (1009); a stream silent for `ai.stream_idle_timeout_s` is
//! closed (4001). Every frame is admitted like an `/infer` request (a full
//! queue answers that frame with the `queue_full` envelope, not a close).
//! Protocol errors close with 4001 (policy) and a reason; a task whose
//! model is not installed closes with 4002.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::envelope::{envelope, V1Error};
use super::infer::{run, split_params, Image, Job};
use super::result::to_v1;
use crate::ai::{AiError, Params, Task};
use crate::api::AiState;
use crate::slots::Slot;

/// Close codes (§6.5).
const POLICY: u16 = 4001;
const MODEL_ERROR: u16 = 4002;
const NORMAL: u16 = 1000;
const TOO_BIG: u16 = 1009;
const GOING_AWAY: u16 = 1001;
/// A close frame's reason is at most 123 bytes (RFC 6455 §5.5: 125 less the code).
const MAX_REASON: usize = 123;

/// The opening message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Handshake {
    #[serde(rename = "type")]
    kind: String,
    client_id: String,
    /// A string, or upstream's integer id (`split_params` reads both).
    camera_id: Option<Value>,
    frame_transport: Option<String>,
    shared_memory_root: Option<String>,
    result_sink: Option<String>,
    expected_input_rate_hz: Option<f64>,
    correlation_id: Option<String>,
    /// Ours: the task every frame runs (default `object_detection`).
    task: Option<String>,
    /// Ours: the task's params, as `/v1/infer` takes them.
    params: Option<Map<String, Value>>,
}

/// A frame's metadata; its bytes are the next (binary) message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameMeta {
    #[serde(rename = "type")]
    _kind: String,
    seq: u64,
    ts_ms: u64,
    content_type: String,
}

/// What a handshake settles.
struct Terms {
    task: Task,
    camera: Option<String>,
    params: Params,
}

fn terms(text: &str) -> Result<Terms, String> {
    let hs: Handshake = serde_json::from_str(text).map_err(|e| format!("bad handshake: {e}"))?;
    if hs.kind != "handshake" {
        return Err(format!("expected a handshake, got {:?}", hs.kind));
    }
    if hs.client_id.is_empty() || hs.client_id.len() > 128 {
        return Err("client_id must be 1..128 characters".into());
    }
    if hs
        .expected_input_rate_hz
        .is_some_and(|r| r.is_nan() || r <= 0.0)
    {
        return Err("expected_input_rate_hz must be positive".into());
    }
    if hs.frame_transport.as_deref() == Some("shared_memory") && hs.shared_memory_root.is_none() {
        return Err("shared_memory_root is required with frame_transport shared_memory".into());
    }
    if !matches!(
        hs.frame_transport.as_deref(),
        None | Some("websocket" | "shared_memory")
    ) {
        return Err("frame_transport must be websocket or shared_memory".into());
    }
    let _ = (&hs.result_sink, &hs.correlation_id);
    let mut m = hs.params.unwrap_or_default();
    if let Some(t) = hs.task {
        m.insert("task".into(), Value::String(t));
    }
    if let Some(c) = hs.camera_id {
        m.insert("camera_id".into(), c);
    }
    let (task, camera, params) = split_params(m).map_err(|e| e.to_string())?;
    params.validate().map_err(|e| e.to_string())?;
    Ok(Terms {
        task,
        camera,
        params,
    })
}

/// Answers the upgrade: a stream place first (a full house is a 503
/// envelope, before the socket opens).
pub async fn stream(State(st): State<Arc<AiState>>, req: Request) -> Result<Response, V1Error> {
    let client = crate::serve::peer_ip(req.extensions());
    let (mut parts, _) = req.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &st)
        .await
        .map_err(|r| {
            AiError::BadRequest(format!(
                "{} (open it as a WebSocket: GET with Upgrade: websocket)",
                r.body_text()
            ))
        })?;
    let place = st.v1.streams.take(client).ok_or(AiError::Busy)?;
    let max = st.v1.max_frame_bytes;
    Ok(upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |ws| async move {
            Stream {
                ws,
                st,
                client,
                place: Some(place),
            }
            .serve()
            .await
        })
        .into_response())
}

/// One open stream.
struct Stream {
    ws: WebSocket,
    st: Arc<AiState>,
    client: IpAddr,
    /// The stream's place, given back before our close frame is sent: a
    /// client that has read the close may open its next stream at once.
    place: Option<Slot>,
}

/// What ended a wait for the next message.
enum Next {
    Text(String),
    Binary(axum::body::Bytes),
    /// Closed, broken or closed by us: nothing more to do.
    Gone,
}

impl Stream {
    async fn close(&mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let frame = CloseFrame {
            code,
            reason: reason[..end].to_owned().into(),
        };
        self.place.take();
        let _ = self.ws.send(Message::Close(Some(frame))).await;
    }

    async fn send(&mut self, v: Value) -> bool {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .is_ok()
    }

    /// The next data message, within the idle timeout (pings do not extend
    /// it: a client that only pings still loses its place), or nothing once
    /// the daemon shuts down (closed with 1001).
    async fn next(&mut self) -> Next {
        let deadline = tokio::time::Instant::now() + self.st.v1.idle;
        let stop = self.st.shutdown.clone();
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => {
                    self.close(GOING_AWAY, "the adapter is shutting down").await;
                    return Next::Gone;
                }
                got = tokio::time::timeout_at(deadline, self.ws.recv()) => got,
            };
            match got {
                Err(_) => {
                    self.close(POLICY, "idle timeout").await;
                    return Next::Gone;
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return Next::Gone,
                Ok(Some(Err(e))) => {
                    let text = e.to_string().to_ascii_lowercase();
                    let too_big = text.contains("too long") || text.contains("limit exceeded");
                    if too_big {
                        self.close(TOO_BIG, "message over ai.stream_max_frame_bytes")
                            .await;
                    }
                    return Next::Gone;
                }
                Ok(Some(Ok(Message::Text(t)))) => return Next::Text(t.as_str().to_owned()),
                Ok(Some(Ok(Message::Binary(b)))) => return Next::Binary(b),
                Ok(Some(Ok(_))) => {} // pings are answered by axum
            }
        }
    }

    async fn serve(mut self) {
        let Next::Text(first) = self.next().await else {
            return;
        };
        let terms = match terms(&first) {
            Ok(t) => t,
            Err(why) => return self.close(POLICY, &why).await,
        };
        let session = hex::encode(rand::random::<[u8; 12]>());
        let ack = json!({"type": "handshake_ack", "frame_transport": "websocket",
            "result_sink": "websocket", "max_inflight": 1, "session_id": session});
        if !self.send(ack).await {
            return;
        }
        if !self.st.engine.can_run(terms.task) {
            let why = format!("{} is not installed on this box", terms.task.name());
            return self.close(MODEL_ERROR, &why).await;
        }
        let (started, mut answered, mut paused) = (Instant::now(), 0u64, false);
        loop {
            let text = match self.next().await {
                Next::Text(t) => t,
                Next::Binary(_) => {
                    let why = "binary message without a preceding frame message";
                    return self.close(POLICY, why).await;
                }
                Next::Gone => return,
            };
            let msg: Value = match serde_json::from_str(&text) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return self
                        .close(POLICY, "control messages are JSON objects")
                        .await
                }
            };
            match msg["type"].as_str().unwrap_or("") {
                "pause" => paused = true,
                "resume" => paused = false,
                "close" => return self.close(NORMAL, "closed by the client").await,
                "stats" => {
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    let fps = (answered as f64 / secs * 100.0).round() / 100.0;
                    let stats = json!({"type": "stats", "inflight": 0,
                        "queue_depth": self.st.engine.queue_len(), "fps": fps});
                    if !self.send(stats).await {
                        return;
                    }
                }
                "frame" => {
                    let meta = match serde_json::from_value::<FrameMeta>(msg) {
                        Ok(m) if !m.content_type.is_empty() => m,
                        Ok(_) => return self.close(POLICY, "content_type is required").await,
                        Err(e) => return self.close(POLICY, &format!("bad frame: {e}")).await,
                    };
                    let bytes = match self.next().await {
                        Next::Binary(b) if !b.is_empty() => b,
                        Next::Gone => return,
                        _ => {
                            let why = "a frame message must be followed by its binary frame";
                            return self.close(POLICY, why).await;
                        }
                    };
                    if paused {
                        continue;
                    }
                    let result = infer(self.st.clone(), self.client, &terms, &meta, bytes).await;
                    answered += 1;
                    if !self.send(result).await {
                        return;
                    }
                }
                "frame_ref" => {
                    let why = "shared-memory frames are not supported (transport is websocket)";
                    return self.close(POLICY, why).await;
                }
                other => {
                    let why = format!("unknown message type {other:?}");
                    return self.close(POLICY, &why).await;
                }
            }
        }
    }
}

/// Runs one frame; a failure becomes the envelope inside the result.
async fn infer(
    st: Arc<AiState>,
    client: IpAddr,
    terms: &Terms,
    meta: &FrameMeta,
    bytes: axum::body::Bytes,
) -> Value {
    let outcome = async {
        let mut ticket = st.engine.admit(client)?;
        ticket.reserve(bytes.len())?;
        let job = Job {
            task: terms.task,
            image: Image::Bytes(bytes),
            camera: terms.camera.clone(),
            timestamp_ms: i64::try_from(meta.ts_ms).ok().filter(|t| *t > 0),
            params: terms.params.clone(),
        };
        run(&st, ticket, client, job).await
    }
    .await;
    let (inference_ms, result) = match outcome {
        Ok(done) => (
            done.answer["latency_ms"].as_u64().unwrap_or(0),
            to_v1(terms.task, &done.answer, done.width, done.height),
        ),
        Err(e) => (0, envelope(&e)),
    };
    json!({"type": "result", "seq": meta.seq, "ts_ms": meta.ts_ms,
               "inference_ms": inference_ms, "result": result})
}
