//! Adapter contract v1 under `/v1` (KAI-C, OpenNVR's app SDK, upstream's
//! conformance kit), what needs a process: the WebSocket stream protocol
//! and its bearer token, Prometheus metrics with the demo camera running.
//! The plain HTTP of the contract (registration, the envelope, a full
//! queue, the token) is tested in-process: `tests/http/compat_v1.rs`.

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::common::contract::{assert_prometheus_type, envelope_error, parse_metrics};
use crate::common::{client, fixture, temp_dir, wait_for, Daemon};

const MIN: Duration = Duration::from_secs(60);

fn bus() -> Vec<u8> {
    std::fs::read(fixture("samples/bus.jpg")).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn post_json(d: &Daemon, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut r = client().post(d.ai_url(path)).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// A config file for the daemon with `body` as its text.
fn config(body: &str) -> String {
    let p = temp_dir("v1cfg").join("config.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn metrics(d: &Daemon, path: &str) -> HashMap<String, f64> {
    let r = client().get(d.ai_url(path)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_prometheus_type(r.headers()["content-type"].to_str().unwrap());
    parse_metrics(&r.text().unwrap())
}

#[test]
fn metrics_parse_and_move_after_an_inference_and_with_the_camera() {
    let d = Daemon::start(&[("OPENNVR_DEMO", "true")]);
    let ok = r#"adapter_infer_total{source="api",task="person_detection",outcome="ok"}"#;
    let count = r#"adapter_infer_latency_seconds_count{task="person_detection"}"#;
    let before = metrics(&d, "/metrics");
    assert_eq!(before[ok], 0.0);
    for name in [
        "adapter_infer_latency_seconds_bucket{task=\"person_detection\",le=\"+Inf\"}",
        "adapter_inflight_requests",
        "adapter_stream_connections_active",
    ] {
        assert!(before.contains_key(name), "no {name}");
    }
    let body = json!({"task": "person_detection", "data": {"frame": {"b64": b64(&bus())}}});
    let (s, v) = post_json(&d, "/infer", &body, None);
    assert_eq!(s, 200, "{v}");
    let after = metrics(&d, "/v1/metrics");
    assert_eq!(after[ok], 1.0);
    assert_eq!(after[count], before[count] + 1.0);
    let model = v["model_id"].as_str().unwrap();
    assert_eq!(
        after[&format!("adapter_model_loaded{{model=\"{model}\"}}")],
        1.0
    );
    // The demo camera's pipeline shows up, labelled by camera id.
    let frames = r#"opennvr_camera_frames_total{camera="camera_0"}"#;
    let analysed = r#"adapter_infer_total{source="camera",task="person_counting",outcome="ok"}"#;
    wait_for(3 * MIN, || {
        let m = metrics(&d, "/metrics");
        (m.get(frames).copied().unwrap_or(0.0) > 0.0 && m[analysed] > 0.0).then_some(())
    })
    .expect("camera figures move");
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn ws_open(d: &Daemon, path: &str, token: Option<&str>) -> Result<Ws, u16> {
    let mut req = format!("ws://{}{path}", d.ai)
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let stream = TcpStream::connect(&d.ai).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("ws handshake: {e}"),
    }
}

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).unwrap();
}

fn recv(ws: &mut Ws) -> Value {
    match ws.read().unwrap() {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The close code the server ends with.
fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => return u16::from(f.code),
            Ok(Message::Close(None)) => return 1005,
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

fn frame(ws: &mut Ws, seq: u64, ts_ms: u64, jpeg: &[u8]) {
    send(
        ws,
        json!({"type": "frame", "seq": seq, "ts_ms": ts_ms, "content_type": "image/jpeg"}),
    );
    ws.send(Message::binary(jpeg.to_vec())).unwrap();
}

fn track_ids(result: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = result["result"]["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["track_id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn stream_protocol_end_to_end() {
    // One runner: a stream's in-flight bound follows the runner count, and
    // the busy answers below count on one.
    let cfg = config(
        "[ai]\nworkers = 1\nstream_idle_timeout_s = 2\nstream_max_frame_bytes = 600000\nmax_streams = 2\n",
    );
    let d = Daemon::start(&[("OPENNVR_CONFIG", &cfg)]);
    let jpeg = bus();
    let mut ws = ws_open(&d, "/v1/infer/stream", None).unwrap();
    send(
        &mut ws,
        json!({"type": "handshake", "client_id": "kai-c", "camera_id": "cam-7",
                         "frame_transport": "websocket", "task": "person_counting"}),
    );
    let ack = recv(&mut ws);
    assert_eq!(ack["type"], "handshake_ack", "{ack}");
    assert_eq!(ack["frame_transport"], "websocket");
    assert_eq!(ack["max_inflight"], 1);
    assert!(!ack["session_id"].as_str().unwrap().is_empty());

    frame(&mut ws, 1, 1_000, &jpeg);
    let r1 = recv(&mut ws);
    assert_eq!(
        (r1["type"].as_str(), r1["seq"].as_u64()),
        (Some("result"), Some(1)),
        "{r1}"
    );
    assert_eq!(r1["ts_ms"], 1_000);
    assert!(r1["inference_ms"].is_u64());
    let ids = track_ids(&r1);
    assert!(ids.len() >= 3, "{r1}");
    // The same camera, the next frame: the same people keep their ids.
    frame(&mut ws, 2, 1_200, &jpeg);
    let r2 = recv(&mut ws);
    assert_eq!(r2["seq"], 2);
    assert_eq!(track_ids(&r2), ids);
    // The stream counts in the metrics while it is open.
    assert_eq!(
        metrics(&d, "/metrics")["adapter_stream_connections_active"],
        1.0
    );

    send(&mut ws, json!({"type": "stats"}));
    let st = recv(&mut ws);
    assert_eq!(st["type"], "stats", "{st}");
    assert!(
        st["fps"].as_f64().unwrap() > 0.0 && st["queue_depth"].is_u64(),
        "{st}"
    );

    // Paused: frames are dropped; resumed: the next one is answered.
    send(&mut ws, json!({"type": "pause"}));
    frame(&mut ws, 3, 1_400, &jpeg);
    send(&mut ws, json!({"type": "resume"}));
    frame(&mut ws, 4, 1_600, &jpeg);
    assert_eq!(recv(&mut ws)["seq"], 4, "seq 3 was sent while paused");

    // A frame that fails comes back as the §7 envelope inside its result.
    frame(&mut ws, 5, 1_800, b"not an image");
    let bad = recv(&mut ws);
    assert_eq!(bad["seq"], 5);
    assert_eq!(
        envelope_error(&bad["result"])["category"],
        "transport_error"
    );

    // Bounds: a second stream of this client is over its share (1 of 2).
    assert_eq!(ws_open(&d, "/v1/infer/stream", None).err(), Some(503));
    send(&mut ws, json!({"type": "close", "reason": "done"}));
    assert_eq!(close_code(&mut ws), 1000);

    // Protocol errors close with 4001, oversized frames with 1009, silence
    // with 4001 after the idle timeout (KAI-C's root path serves the same).
    let mut ws = ws_open(&d, "/infer/stream", None).unwrap();
    send(&mut ws, json!({"type": "hello"}));
    assert_eq!(close_code(&mut ws), 4001);
    // A long reason (serde names every field it expected) still makes a valid
    // close frame: a control frame carries at most 125 bytes.
    let mut ws = ws_open(&d, "/v1/infer/stream", None).unwrap();
    let unknown = "an_unknown_field_".repeat(12);
    send(
        &mut ws,
        json!({"type": "handshake", "client_id": "c", unknown: 1}),
    );
    assert_eq!(close_code(&mut ws), 4001);
    let mut ws = ws_open(&d, "/v1/infer/stream", None).unwrap();
    // Upstream's integer camera id is a camera name like any other.
    send(
        &mut ws,
        json!({"type": "handshake", "client_id": "c", "camera_id": 7}),
    );
    assert_eq!(recv(&mut ws)["type"], "handshake_ack");
    ws.send(Message::binary(jpeg.clone())).unwrap();
    assert_eq!(close_code(&mut ws), 4001, "binary without frame metadata");
    let mut ws = ws_open(&d, "/v1/infer/stream", None).unwrap();
    send(&mut ws, json!({"type": "handshake", "client_id": "c"}));
    recv(&mut ws);
    send(
        &mut ws,
        json!({"type": "frame", "seq": 1, "ts_ms": 0, "content_type": "image/jpeg"}),
    );
    let _ = ws.send(Message::binary(vec![0u8; 700_000]));
    assert_eq!(close_code(&mut ws), 1009);
    let mut ws = ws_open(&d, "/v1/infer/stream", None).unwrap();
    send(&mut ws, json!({"type": "handshake", "client_id": "c"}));
    recv(&mut ws);
    assert_eq!(close_code(&mut ws), 4001, "idle");
}

#[test]
fn bearer_token_is_asked_of_the_stream_upgrade() {
    // The rest of the port's token: `tests/http/compat_v1.rs`.
    let token = "s3cret-token";
    let d = Daemon::start(&[("OPENNVR_ADAPTER_TOKEN", token)]);
    // The stream refuses the upgrade without it.
    assert_eq!(ws_open(&d, "/v1/infer/stream", None).err(), Some(401));
    let mut ws = ws_open(&d, "/v1/infer/stream", Some(token)).unwrap();
    send(&mut ws, json!({"type": "handshake", "client_id": "kai-c"}));
    assert_eq!(recv(&mut ws)["type"], "handshake_ack");
}
