//! Port 8000 as upstream OpenNVR's clients call it: the camera-agent SDK
//! decides a user's tier from `/auth/me` (`is_superuser`, else `role_name`)
//! and logs out; FastAPI clients add trailing slashes to collections; the
//! web UI filters events by `from`/`to` and follows them over
//! `POST /events/ws-ticket` + `/events/ws` with `camera_id` / `task` filters.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{client, start_nvr, Daemon};

/// Long enough for a loaded CI box; only hit when a test is failing.
const WAIT: Duration = Duration::from_secs(20);

fn get(d: &Daemon, token: &str, path: &str) -> (u16, Value) {
    let r = client()
        .get(d.nvr_url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn post(d: &Daemon, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(d.nvr_url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// The camera-agent's rule: superusers and `role_name` "admin" are admins,
/// "operator" operators, anyone else a viewer.
fn agent_tier(me: &Value) -> &'static str {
    if me["is_superuser"] == true {
        return "admin";
    }
    match me["role_name"]
        .as_str()
        .unwrap_or("")
        .to_lowercase()
        .as_str()
    {
        "admin" => "admin",
        "operator" => "operator",
        _ => "viewer",
    }
}

fn login_pair(d: &Daemon, user: &str, password: &str) -> (String, String) {
    let (s, v) = post(
        d,
        "",
        "/api/v1/auth/login-json",
        &json!({"username": user, "password": password}),
    );
    assert_eq!(s, 200, "{v}");
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn auth_me_tiers_and_logout() {
    let d = start_nvr(&[]);
    let (access, refresh) = login_pair(&d, "admin", &d.admin_password());
    let viewer = d.viewer_token("v");

    let (s, me) = get(&d, &access, "/api/v1/auth/me");
    assert_eq!(s, 200);
    assert_eq!(agent_tier(&me), "admin", "{me}");
    assert_eq!(
        (me["role_name"].as_str(), me["role_id"].as_i64()),
        (Some("admin"), Some(1))
    );
    assert_eq!(
        (me["mfa_enabled"].as_bool(), me["email"].is_null()),
        (Some(false), true)
    );
    let (_, vme) = get(&d, &viewer, "/api/v1/auth/me");
    assert_eq!(agent_tier(&vme), "viewer", "{vme}");
    assert_eq!(
        (vme["is_superuser"].as_bool(), vme["role_id"].as_i64()),
        (Some(false), Some(2))
    );

    // Logout with a JWT: its refresh tokens stop working; the stateless
    // access token stands until it expires, as documented.
    let (s, out) = post(&d, &access, "/api/v1/auth/logout", &json!({}));
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["revoked"], "refresh_tokens");
    assert!(out["access_expires_at"].as_i64().unwrap() > 1_600_000_000);
    let (s, _) = post(
        &d,
        "",
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh}),
    );
    assert_eq!(s, 401, "a refresh token outlived logout");
    assert_eq!(get(&d, &access, "/api/v1/auth/me").0, 200);
    // A new login gets a working pair.
    let (fresh, refresh) = login_pair(&d, "admin", &d.admin_password());
    let (s, _) = post(
        &d,
        "",
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh}),
    );
    assert_eq!(s, 200);

    // Logout with an API token revokes that token.
    let (s, tok) = post(
        &d,
        &fresh,
        "/api/v1/tokens/",
        &json!({"name": "agent", "role": "viewer"}),
    );
    assert_eq!(s, 201, "{tok}");
    let api = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(agent_tier(&get(&d, &api, "/api/v1/auth/me").1), "viewer");
    let (s, out) = post(&d, &api, "/api/v1/auth/logout", &json!({}));
    assert_eq!((s, out["revoked"].as_str()), (200, Some("api_token")));
    assert_eq!(get(&d, &api, "/api/v1/auth/me").0, 401);
    // Without a credential there is nothing to log out of.
    assert_eq!(post(&d, "", "/api/v1/auth/logout", &json!({})).0, 401);
}

#[test]
fn from_to_filters_and_trailing_slashes() {
    let d = start_nvr(&[]);
    let t = d.admin_token();
    // 1_700_000_000 s is 2023-11-14T22:13:20Z; the three are 100 s apart.
    let mut ids = Vec::new();
    for i in 0..3i64 {
        let (s, ev) = post(
            &d,
            &t,
            "/api/v1/events/",
            &json!({"camera_id": "cam", "type": "door_opened", "started_at": 1_700_000_000_000i64 + i * 100_000}),
        );
        assert_eq!(s, 201, "{ev}");
        ids.push(ev["id"].as_i64().unwrap());
    }
    let found = |q: &str| -> Vec<i64> {
        let (s, v) = get(&d, &t, &format!("/api/v1/events/?order=asc&{q}"));
        assert_eq!(s, 200, "{q}: {v}");
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    // ISO 8601 and epoch seconds; `to` is inclusive.
    assert_eq!(found("from=2023-11-14T22:15:00Z&to=1700000100"), [ids[1]]);
    // Epoch milliseconds, and an offset whose `+` the query string made a space.
    assert_eq!(found("from=1700000100000"), &ids[1..]);
    assert_eq!(found("to=2023-11-14T23:15:00+01:00"), &ids[..2]);
    assert_eq!(found("from=2023-11-14T22:16:40"), [ids[2]]);
    // Ours still work beside them.
    assert_eq!(found("after=1700000100000&before=1700000200000"), [ids[1]]);
    for bad in [
        "from=yesterday",
        "from=1&after=1",
        "to=2023-13-40T00:00:00Z",
    ] {
        let (s, v) = get(&d, &t, &format!("/api/v1/events?{bad}"));
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["detail"], v["error"]["message"]);
    }
    for path in [
        "/api/v1/cameras/",
        "/api/v1/tokens/",
        "/api/v1/recordings/cam/?start_unix=0&end_unix=1",
    ] {
        assert_eq!(get(&d, &t, path).0, 200, "{path}");
    }
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
