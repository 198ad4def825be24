//! Adapter contract v1 under `/v1` (KAI-C, OpenNVR's app SDK, upstream's
//! conformance kit): the envelope and the failure envelope, the WebSocket
//! stream protocol, Prometheus metrics, and the bearer token.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::common::{client, fixture, get_json, temp_dir, wait_for, Daemon};

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

/// The §7 envelope's `error`, checked for its required fields.
fn envelope_error(v: &Value) -> &Value {
    assert_eq!(v["status"], "error", "{v}");
    let e = &v["error"];
    for k in ["category", "code", "message", "transient", "details"] {
        assert!(e.get(k).is_some(), "no error.{k}: {v}");
    }
    e
}

/// A config file for the daemon with `body` as its text.
fn config(body: &str) -> String {
    let p = temp_dir("v1cfg").join("config.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn registration_surface_health_capabilities_hardware() {
    let d = Daemon::start(&[]);
    let h = get_json(&d.ai_url("/v1/health"));
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["adapter_name"], "opennvr-edge");
    assert!(
        h["model_name"].as_str().unwrap().starts_with("yolov4-tiny"),
        "{h}"
    );
    assert!(h["started_at"].as_str().unwrap().ends_with('Z'), "{h}");
    assert!(h["uptime_seconds"].is_u64());

    let c = get_json(&d.ai_url("/v1/capabilities"));
    assert_eq!(c["adapter"]["supported_contract_versions"], json!(["1"]));
    let fp = c["model"]["fingerprint"].as_str().unwrap();
    assert_eq!(fp.len(), "sha256:".len() + 64, "{fp}");
    assert_eq!(c["model"]["modalities_in"], json!(["image"]));
    assert_eq!(c["endpoints"]["infer_stream"]["supported"], true);
    let tasks = c["tasks_advertised"].as_array().unwrap();
    assert!(tasks.contains(&json!("object_detection")), "{c}");
    let det = &c["detector"];
    let side = det["input"]["width"].as_u64().unwrap();
    assert!(
        h["model_name"]
            .as_str()
            .unwrap()
            .ends_with(&side.to_string()),
        "{c}"
    );
    let labels = det["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 80);
    assert_eq!(labels[0], "person");

    let hw = get_json(&d.ai_url("/v1/hardware/evaluation"));
    let root = get_json(&d.ai_url("/health"));
    assert!(
        ["ok", "warn", "blocked"].contains(&hw["verdict"].as_str().unwrap()),
        "{hw}"
    );
    assert_eq!(
        hw["details"]["cpu_cores"], root["hardware"]["cpu_cores"],
        "{hw}"
    );
    assert_eq!(hw["details"]["model_installed"], true);
    let why = hw["reasoning"].as_str().unwrap();
    assert!(why.contains("cores") && why.contains("GB RAM"), "{why}");
    assert_eq!(root["auth"]["token_required"], false, "{root}");
    assert_eq!(
        root["auth"]["warning"],
        Value::Null,
        "loopback needs no warning"
    );
}

#[test]
fn infer_answers_the_v1_envelope_from_json_and_multipart() {
    let d = Daemon::start(&[]);
    // KAI-C's body: frame_b64, the task and flat params (its name for confidence).
    let body = json!({"frame_b64": b64(&bus()), "task": "person_detection",
                      "camera_id": "cam-7", "confidence_threshold": 0.3});
    let (s, v) = post_json(&d, "/v1/infer", &body, None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "ok");
    assert!(v["model_name"].as_str().unwrap().starts_with("yolov4-tiny"));
    assert_eq!(v["model_version"].as_str().unwrap().len(), 12);
    assert!(v["inference_ms"].is_u64());
    let r = &v["result"];
    assert_eq!(r["frame_dimensions"], json!({"w": 810, "h": 1080}));
    let dets = r["detections"].as_array().unwrap();
    assert!(dets.len() >= 3, "{r}");
    for d in dets {
        assert_eq!(d["label"], "person");
        let b = &d["bbox"];
        let (x, y, w, h) = (
            b["x"].as_f64().unwrap(),
            b["y"].as_f64().unwrap(),
            b["w"].as_f64().unwrap(),
            b["h"].as_f64().unwrap(),
        );
        assert!(x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0, "{d}");
        assert!(x + w <= 1.0 + 1e-6 && y + h <= 1.0 + 1e-6, "{d}");
    }
    // The threshold is honoured, not dropped: 0.99 keeps (almost) nobody.
    let strict = json!({"frame_b64": b64(&bus()), "task": "person_detection",
                        "confidence_threshold": 0.99});
    let (_, v99) = post_json(&d, "/v1/infer", &strict, None);
    assert!(
        v99["result"]["count"].as_u64().unwrap() < dets.len() as u64,
        "{v99}"
    );

    // The contract's multipart: a `frame` part and `params` as JSON.
    let form = Form::new()
        .part(
            "frame",
            Part::bytes(bus())
                .file_name("capture.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        )
        .text(
            "params",
            r#"{"task": "object_detection", "classes": ["bus"]}"#,
        );
    let r = client()
        .post(d.ai_url("/v1/infer"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    let dets = v["result"]["detections"].as_array().unwrap();
    assert!(
        !dets.is_empty() && dets.iter().all(|d| d["label"] == "bus"),
        "{v}"
    );

    // Failures are the envelope: an unknown key by name, a foreign type.
    let (s, v) = post_json(
        &d,
        "/v1/infer",
        &json!({"frame_b64": b64(&bus()), "colour": 1}),
        None,
    );
    assert_eq!(s, 400);
    let e = envelope_error(&v);
    assert_eq!(e["category"], "transport_error");
    assert_eq!(e["transient"], false);
    assert!(e["message"].as_str().unwrap().contains("colour"), "{v}");
    let r = client()
        .post(d.ai_url("/v1/infer"))
        .body("x")
        .header("content-type", "text/plain")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        envelope_error(&r.json().unwrap())["code"],
        "unsupported_content_type"
    );
    let (s, v) = post_json(
        &d,
        "/v1/infer",
        &json!({"frame_b64": b64(&bus()), "task": "fly"}),
        None,
    );
    assert_eq!(s, 422);
    assert_eq!(envelope_error(&v)["category"], "not_supported");
}

/// A request whose headers promise a body that never comes: it holds its
/// admission place until the body deadline.
fn stalled(d: &Daemon) -> TcpStream {
    let mut s = TcpStream::connect(&d.ai).unwrap();
    write!(s, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{").unwrap();
    s
}

/// Every sample of a Prometheus exposition, by `name{labels}`; panics on a
/// line that is not a comment or a sample.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        out.insert(series.to_owned(), value);
    }
    out
}

fn metrics(d: &Daemon, path: &str) -> HashMap<String, f64> {
    let r = client().get(d.ai_url(path)).send().unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse_metrics(&r.text().unwrap())
}

#[test]
fn a_full_queue_is_a_transient_503_envelope() {
    let d = Daemon::start(&[]);
    // One client holds at most half of the 8 places: four stalled bodies.
    let held: Vec<TcpStream> = (0..4).map(|_| stalled(&d)).collect();
    wait_for(MIN, || {
        (metrics(&d, "/metrics")["adapter_queue_depth"] == 4.0).then_some(())
    })
    .expect("four requests admitted");
    let r = client()
        .post(d.ai_url("/v1/infer"))
        .json(&json!({"frame_b64": b64(&bus())}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().unwrap();
    let e = envelope_error(&v);
    assert_eq!(e["category"], "overloaded");
    assert_eq!(e["code"], "queue_full");
    assert_eq!(e["transient"], true);
    assert_eq!(e["retry_after_ms"], 1000);
    let refused = r#"adapter_infer_total{source="api",task="",outcome="refused"}"#;
    assert!(metrics(&d, "/v1/metrics")[refused] >= 1.0);
    drop(held);
    wait_for(MIN, || {
        let (s, _) = post_json(&d, "/v1/infer", &json!({"frame_b64": b64(&bus())}), None);
        (s == 200).then_some(())
    })
    .expect("places come back when the stalled clients leave");
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
    let cfg = config(
        "[ai]\nstream_idle_timeout_s = 2\nstream_max_frame_bytes = 600000\nmax_streams = 2\n",
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
    let mut ws = ws_open(&d, "/v1/infer/stream", None).unwrap();
    send(&mut ws, json!({"type": "handshake", "client_id": "c"}));
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
fn bearer_token_closes_the_port_but_health() {
    let token = "s3cret-token";
    let d = Daemon::start(&[("OPENNVR_ADAPTER_TOKEN", token)]);
    for open in ["/health", "/v1/health"] {
        assert_eq!(
            client().get(d.ai_url(open)).send().unwrap().status(),
            200,
            "{open}"
        );
    }
    // Registration probes are open for the first five minutes.
    assert_eq!(
        client()
            .get(d.ai_url("/v1/capabilities"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let body = json!({"frame_b64": b64(&bus()), "task": "person_detection"});
    let (s, v) = post_json(&d, "/v1/infer", &body, None);
    assert_eq!(s, 401);
    let e = envelope_error(&v);
    assert_eq!(
        (e["category"].as_str(), e["code"].as_str()),
        (Some("permission_denied"), Some("auth_missing"))
    );
    let (s, v) = post_json(&d, "/v1/infer", &body, Some("s3cret"));
    assert_eq!(s, 401);
    assert_eq!(envelope_error(&v)["code"], "auth_invalid");
    assert_eq!(post_json(&d, "/v1/infer", &body, Some(token)).0, 200);
    // The root API and the metrics too.
    let root = json!({"task": "person_detection", "data": {"frame": {"b64": b64(&bus())}}});
    let (s, v) = post_json(&d, "/infer", &root, None);
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "auth_missing");
    assert_eq!(post_json(&d, "/infer", &root, Some(token)).0, 200);
    assert_eq!(
        client().get(d.ai_url("/metrics")).send().unwrap().status(),
        401
    );
    let r = client()
        .get(d.ai_url("/v1/metrics"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The stream refuses the upgrade without it.
    assert_eq!(ws_open(&d, "/v1/infer/stream", None).err(), Some(401));
    let mut ws = ws_open(&d, "/v1/infer/stream", Some(token)).unwrap();
    send(&mut ws, json!({"type": "handshake", "client_id": "kai-c"}));
    assert_eq!(recv(&mut ws)["type"], "handshake_ack");
    let h = get_json(&d.ai_url("/health"));
    assert_eq!(h["auth"]["token_required"], true, "{h}");
    // Correlation ids come back.
    let r = client()
        .get(d.ai_url("/v1/health"))
        .header("x-correlation-id", "abc-123")
        .send()
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "abc-123");
}
