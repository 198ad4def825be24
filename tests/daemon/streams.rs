//! The live event stream over a real connection: the WebSocket form (an
//! HTTP upgrade needs a real socket), and SIGTERM ending open streams with the
//! daemon. The SSE stream's behaviour is tested in-process (tests/http).

use std::time::Duration;

use crate::common::{self, client, event_id, Daemon, SseClient};
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

fn marker(n: i64) -> Value {
    json!({"camera_id": "cam1", "type": "count_changed", "payload": {"n": n}})
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
