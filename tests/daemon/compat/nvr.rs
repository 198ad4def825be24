//! Port 8000 as upstream OpenNVR's web UI follows events: over
//! `POST /events/ws-ticket` + the `/events/ws` WebSocket with `camera_id` /
//! `task` filters (an upgrade needs a real socket). Its plain HTTP (the
//! `/auth/me` tiers, logout, `from`/`to`, trailing slashes) is tested
//! in-process: `tests/http/compat_nvr.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{client, start_nvr, Daemon};

/// Long enough for a loaded CI box; only hit when a test is failing.
const WAIT: Duration = Duration::from_secs(20);

fn post(d: &Daemon, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(d.nvr_url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

type Socket = tungstenite::WebSocket<std::net::TcpStream>;

fn ws_ticket(d: &Daemon, token: &str) -> String {
    let (s, v) = post(d, token, "/api/v1/events/ws-ticket", &json!({}));
    assert_eq!(s, 200, "{v}");
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    v["ticket"].as_str().unwrap().to_owned()
}

fn connect(d: &Daemon, query: &str) -> Result<Socket, String> {
    let url = format!("ws://{}/api/v1/events/ws?{query}", d.nvr_addr());
    let stream = std::net::TcpStream::connect(d.nvr_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    tungstenite::client(url.as_str(), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

fn next(ws: &mut Socket) -> Value {
    loop {
        match ws.read().expect("ws frame") {
            tungstenite::Message::Text(s) => return serde_json::from_str(s.as_str()).unwrap(),
            _ => continue,
        }
    }
}

#[test]
fn upstream_event_websocket_filters_and_frames() {
    let d = start_nvr(&[]);
    let t = d.admin_token();
    let viewer = d.viewer_token("v");
    let tk = ws_ticket(&d, &viewer);
    let mut ws = connect(
        &d,
        &format!("ticket={tk}&camera_id=cam_a&task=person_counting"),
    )
    .unwrap();
    let hello = next(&mut ws);
    assert_eq!(hello["event_type"], "subscribed");
    assert_eq!(
        hello["filters"],
        json!({"camera_id": "cam_a", "task": ["person_counting"]})
    );

    let ev = |cam: &str, kind: &str, model: Option<&str>, at: i64| {
        let mut e = json!({"camera_id": cam, "type": kind, "label": "person", "score": 0.9,
                           "track_id": at, "started_at": at, "bbox": [10.0, 20.0, 30.0, 40.0]});
        if let Some(m) = model {
            e["model_id"] = json!(m);
        }
        let (s, v) = post(&d, &t, "/api/v1/events", &e);
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    };
    ev("cam_b", "person_entered", Some("yolov4-tiny-416"), 1); // other camera
    ev("cam_a", "door_opened", None, 2); // other task
    let want = ev("cam_a", "person_entered", Some("yolov4-tiny-416"), 3);
    // What upstream's UI reads off a frame.
    let f = next(&mut ws);
    assert_eq!(f["event_type"], "inference_result", "{f}");
    assert_eq!(
        (f["id"].as_i64(), f["timestamp"].as_i64()),
        (Some(want), Some(3))
    );
    assert_eq!(
        (f["camera_id"].as_str(), f["task"].as_str()),
        (Some("cam_a"), Some("person_counting"))
    );
    assert_eq!(f["model_id"], "yolov4-tiny-416");
    let p = &f["payload"];
    assert_eq!(
        (p["label"].as_str(), p["confidence"].as_f64()),
        (Some("person"), Some(0.9))
    );
    assert_eq!(p["bbox"], json!([10.0, 20.0, 30.0, 40.0]));

    // A ticket is single use.
    assert!(connect(&d, &format!("ticket={tk}")).is_err());
    // A bad filter is a 400 before the ticket is spent; then it still works.
    let tk = ws_ticket(&d, &t);
    assert!(connect(&d, &format!("ticket={tk}&camera_id=../x")).is_err());
    assert!(connect(&d, &format!("ticket={tk}&colour=red")).is_err());
    // Replay from the start, filtered by an event type: a camera event.
    let mut ws = connect(&d, &format!("ticket={tk}&after_id=0&task=door_opened")).unwrap();
    assert_eq!(next(&mut ws)["event_type"], "subscribed");
    let f = next(&mut ws);
    assert_eq!(
        (f["event_type"].as_str(), f["task"].as_str()),
        (Some("camera_event"), Some("door_opened"))
    );
}
