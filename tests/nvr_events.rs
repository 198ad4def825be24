//! Events: CRUD, filters, idempotency, and the live stream over SSE and
//! WebSocket with `Last-Event-ID` resume and tickets.

mod common;

use std::time::Duration;

use common::{client, error_code, Daemon, SseClient};
use serde_json::{json, Value};

/// Long enough for a loaded CI box; only hit when a test is failing.
const WAIT: Duration = Duration::from_secs(20);

fn post_event(d: &Daemon, t: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(d.nvr_url("/api/v1/events"))
        .bearer_auth(t)
        .json(body)
        .send()
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().unwrap())
}

fn get(d: &Daemon, t: &str, path: &str) -> Vec<Value> {
    let r = client().get(d.nvr_url(path)).bearer_auth(t).send().unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().unwrap()
}

#[test]
fn events_are_stored_filtered_and_idempotent() {
    let d = common::start_nvr(&[]);
    let t = d.admin_token();
    let full = json!({
        "camera_id": "cam1", "type": "person_entered", "label": "person", "score": 0.91,
        "track_id": 7, "started_at": 1_700_000_000_000i64, "bbox": [10.0, 20.0, 30.0, 40.0],
        "snapshot_path": "frames/cam1/7.jpg", "model_id": "yolov4-tiny-416",
        "model_sha256": "a".repeat(64), "payload": {"zone": "door"}
    });
    let (s, ev) = post_event(&d, &t, &full);
    assert_eq!(s, 201);
    let id = ev["id"].as_i64().unwrap();
    assert_eq!(ev["type"], "person_entered");
    assert_eq!(ev["bbox"], json!([10.0, 20.0, 30.0, 40.0]));
    assert_eq!(ev["payload"]["zone"], "door");
    // The same (camera, track, start) again: 200 and the same row.
    let (s, again) = post_event(&d, &t, &full);
    assert_eq!(s, 200);
    assert_eq!(again, ev);
    let one: Value = client()
        .get(d.nvr_url(&format!("/api/v1/events/{id}")))
        .bearer_auth(&t)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one, ev);

    for i in 0..5 {
        let cam = if i % 2 == 0 { "cam1" } else { "cam2" };
        let (s, _) = post_event(
            &d,
            &t,
            &json!({"camera_id": cam, "type": "count_changed", "started_at": 1_700_000_001_000i64 + i,
                    "payload": {"count": i}}),
        );
        assert_eq!(s, 201);
    }
    assert_eq!(get(&d, &t, "/api/v1/events").len(), 6);
    assert_eq!(get(&d, &t, "/api/v1/events?camera_id=cam2").len(), 2);
    assert_eq!(
        get(&d, &t, "/api/v1/events?type=count_changed&camera=cam1").len(),
        3
    );
    assert_eq!(get(&d, &t, "/api/v1/events?label=person").len(), 1);
    assert_eq!(get(&d, &t, "/api/v1/events?after=1700000001002").len(), 3);
    assert_eq!(get(&d, &t, "/api/v1/events?before=1700000001000").len(), 1);
    let page = get(&d, &t, &format!("/api/v1/events?after_id={id}&limit=2"));
    assert_eq!(page.len(), 2);
    assert_eq!(
        page[0]["id"].as_i64().unwrap(),
        id + 1,
        "after_id pages oldest first"
    );
    let latest = get(&d, &t, "/api/v1/events/latest?limit=3");
    assert_eq!(latest.len(), 3);
    assert!(
        latest[0]["id"].as_i64() > latest[1]["id"].as_i64(),
        "latest is newest first"
    );

    // Bad input: 400, and nothing is stored.
    let bad = [
        json!({"type": "x"}),
        json!({"camera_id": "cam1"}),
        json!({"camera_id": "cam1", "type": "Bad Type"}),
        json!({"camera_id": "../x", "type": "t"}),
        json!({"camera_id": "cam1", "type": "t", "score": 1.5}),
        json!({"camera_id": "cam1", "type": "t", "bbox": [1, 2, 3]}),
        json!({"camera_id": "cam1", "type": "t", "started_at": 10, "ended_at": 5}),
        json!({"camera_id": "cam1", "type": "t", "model_sha256": "xyz"}),
        json!({"camera_id": "cam1", "type": "t", "payload": [1, 2]}),
        json!({"camera_id": "cam1", "type": "t", "unknown": 1}),
    ];
    for b in &bad {
        let r = client()
            .post(d.nvr_url("/api/v1/events"))
            .bearer_auth(&t)
            .json(b)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{b}");
        assert_eq!(error_code(r), "bad_request");
    }
    for q in [
        "limit=0",
        "limit=5000",
        "after_id=x",
        "order=sideways",
        "bogus=1",
        "after=5&before=1",
    ] {
        let r = client()
            .get(d.nvr_url(&format!("/api/v1/events?{q}")))
            .bearer_auth(&t)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
    let huge = json!({"camera_id": "cam1", "type": "t", "payload": {"x": "y".repeat(2 << 20)}});
    let r = client()
        .post(d.nvr_url("/api/v1/events"))
        .bearer_auth(&t)
        .json(&huge)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r), "payload_too_large");
    // None of the refused requests stored anything.
    assert_eq!(get(&d, &t, "/api/v1/events?limit=1000").len(), 6);
    let r = client()
        .get(d.nvr_url("/api/v1/events/99999"))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

fn event_id(m: &common::SseMsg) -> i64 {
    let v: Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(
        m.id.as_deref(),
        Some(v["id"].to_string().as_str()),
        "SSE id = event id"
    );
    v["id"].as_i64().unwrap()
}

fn marker(n: i64) -> Value {
    json!({"camera_id": "cam1", "type": "count_changed", "payload": {"n": n}})
}

#[test]
fn sse_resumes_with_last_event_id_without_gap_or_duplicate() {
    let d = common::start_nvr(&[]);
    let t = d.admin_token();
    let auth = format!("Authorization: Bearer {t}");
    // Without a token: 401.
    let c = SseClient::connect(d.nvr_addr(), "/api/v1/events/stream", &[]);
    assert_eq!(c.status, 401);

    let mut c = SseClient::connect(
        d.nvr_addr(),
        "/api/v1/events/stream",
        std::slice::from_ref(&auth),
    );
    assert_eq!(c.status, 200);
    let mut ids = Vec::new();
    for n in 0..3 {
        let (s, ev) = post_event(&d, &t, &marker(n));
        assert_eq!(s, 201);
        ids.push(ev["id"].as_i64().unwrap());
    }
    for want in &ids {
        let m = c.next(WAIT).expect("live event");
        assert_eq!(event_id(&m), *want);
    }
    let last_seen = *ids.last().unwrap();
    drop(c);

    // Five more while disconnected.
    let mut missed = Vec::new();
    for n in 10..15 {
        missed.push(post_event(&d, &t, &marker(n)).1["id"].as_i64().unwrap());
    }
    let mut c = SseClient::connect(
        d.nvr_addr(),
        "/api/v1/events/stream",
        &[auth.clone(), format!("Last-Event-ID: {last_seen}")],
    );
    assert_eq!(c.status, 200);
    for want in &missed {
        assert_eq!(event_id(&c.next(WAIT).expect("replayed event")), *want);
    }
    // Then live again, and nothing in between (no duplicate of the replay).
    let live = post_event(&d, &t, &marker(99)).1["id"].as_i64().unwrap();
    assert_eq!(event_id(&c.next(WAIT).expect("live after replay")), live);

    // A bad Last-Event-ID is a 400, not a silent full replay.
    let c = SseClient::connect(
        d.nvr_addr(),
        "/api/v1/events/stream",
        &[auth, "Last-Event-ID: banana".into()],
    );
    assert_eq!(c.status, 400);
}

#[test]
fn websocket_with_ticket_sees_the_same_sequence() {
    let d = common::start_nvr(&[]);
    let t = d.admin_token();
    let viewer = d.viewer_token("v");
    for n in 0..3 {
        post_event(&d, &t, &marker(n));
    }
    let all: Vec<i64> = get(&d, &t, "/api/v1/events?order=asc")
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let ticket = |tok: &str| -> String {
        let r = client()
            .post(d.nvr_url("/api/v1/events/ticket"))
            .bearer_auth(tok)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A viewer may stream; the ticket stands in for the header.
    let tk = ticket(&viewer);
    let url = format!(
        "ws://{}/api/v1/events/stream?ticket={tk}&after_id=0",
        d.nvr_addr()
    );
    let stream = std::net::TcpStream::connect(d.nvr_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(url.as_str(), stream).expect("ws handshake");
    let mut next = || -> Value {
        loop {
            match ws.read().expect("ws frame") {
                tungstenite::Message::Text(s) => return serde_json::from_str(s.as_str()).unwrap(),
                _ => continue,
            }
        }
    };
    for want in &all {
        assert_eq!(next()["event"]["id"].as_i64().unwrap(), *want);
    }
    let live = post_event(&d, &t, &marker(50)).1["id"].as_i64().unwrap();
    assert_eq!(next()["event"]["id"].as_i64().unwrap(), live);

    // Single use: the same ticket again is refused, over SSE too.
    let c = SseClient::connect(
        d.nvr_addr(),
        &format!("/api/v1/events/stream?ticket={tk}"),
        &[],
    );
    assert_eq!(c.status, 401);
    let c = SseClient::connect(d.nvr_addr(), "/api/v1/events/stream?ticket=forged", &[]);
    assert_eq!(c.status, 401);
    // A fresh ticket works for SSE, resuming by after_id.
    let tk2 = ticket(&viewer);
    let mut c = SseClient::connect(
        d.nvr_addr(),
        &format!("/api/v1/events/stream?ticket={tk2}&after_id={}", all[1]),
        &[],
    );
    assert_eq!(c.status, 200);
    assert_eq!(event_id(&c.next(WAIT).unwrap()), all[2]);
    assert_eq!(event_id(&c.next(WAIT).unwrap()), live);
}

#[test]
fn sigterm_ends_open_streams_and_the_daemon() {
    let mut d = common::start_nvr(&[]);
    let t = d.admin_token();
    let mut c = SseClient::connect(
        d.nvr_addr(),
        "/api/v1/events/stream",
        &[format!("Authorization: Bearer {t}")],
    );
    assert_eq!(c.status, 200);
    post_event(&d, &t, &marker(1));
    assert!(c.next(WAIT).is_some());
    assert!(d.terminate(), "daemon hung on SIGTERM with a stream open");
    assert!(c.next(WAIT).is_none(), "stream ends with the daemon");
}
