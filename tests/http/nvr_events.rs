//! Events: CRUD, filters, idempotency, and the live SSE stream with
//! `Last-Event-ID` resume and tickets, in-process on port 8000's router.
//! (The WebSocket form needs a real connection: tests/daemon/streams.rs.)

use axum::body::Body;
use axum::http::Method;
use serde_json::{json, Value};

use crate::common::event_id;
use crate::harness::{bearer, request, App, Nvr, Sse};

async fn post_event(h: &Nvr, t: &str, body: &Value) -> (u16, Value) {
    let r = h.post_json("/api/v1/events", Some(t), body).await;
    (r.status, r.json())
}

async fn get(h: &Nvr, t: &str, path: &str) -> Vec<Value> {
    let r = h.get(path, Some(t)).await;
    assert_eq!(r.status, 200, "{path}");
    serde_json::from_value(r.json()).unwrap()
}

#[tokio::test]
async fn events_are_stored_filtered_and_idempotent() {
    let h = Nvr::start().await;
    let t = h.admin_token().await;
    let full = json!({
        "camera_id": "cam1", "type": "person_entered", "label": "person", "score": 0.91,
        "track_id": 7, "started_at": 1_700_000_000_000i64, "bbox": [10.0, 20.0, 30.0, 40.0],
        "snapshot_path": "frames/cam1/7.jpg", "model_id": "yolov4-tiny-416",
        "model_sha256": "a".repeat(64), "payload": {"zone": "door"}
    });
    let (s, ev) = post_event(&h, &t, &full).await;
    assert_eq!(s, 201);
    let id = ev["id"].as_i64().unwrap();
    assert_eq!(ev["type"], "person_entered");
    assert_eq!(ev["bbox"], json!([10.0, 20.0, 30.0, 40.0]));
    assert_eq!(ev["payload"]["zone"], "door");
    // The same (camera, track, start) again: 200 and the same row.
    let (s, again) = post_event(&h, &t, &full).await;
    assert_eq!(s, 200);
    assert_eq!(again, ev);
    let one = h
        .get(&format!("/api/v1/events/{id}"), Some(&t))
        .await
        .json();
    assert_eq!(one, ev);

    for i in 0..5 {
        let cam = if i % 2 == 0 { "cam1" } else { "cam2" };
        let (s, _) = post_event(
            &h,
            &t,
            &json!({"camera_id": cam, "type": "count_changed", "started_at": 1_700_000_001_000i64 + i,
                    "payload": {"count": i}}),
        )
        .await;
        assert_eq!(s, 201);
    }
    assert_eq!(get(&h, &t, "/api/v1/events").await.len(), 6);
    assert_eq!(get(&h, &t, "/api/v1/events?camera_id=cam2").await.len(), 2);
    assert_eq!(
        get(&h, &t, "/api/v1/events?type=count_changed&camera=cam1")
            .await
            .len(),
        3
    );
    assert_eq!(get(&h, &t, "/api/v1/events?label=person").await.len(), 1);
    assert_eq!(
        get(&h, &t, "/api/v1/events?after=1700000001002")
            .await
            .len(),
        3
    );
    assert_eq!(
        get(&h, &t, "/api/v1/events?before=1700000001000")
            .await
            .len(),
        1
    );
    let page = get(&h, &t, &format!("/api/v1/events?after_id={id}&limit=2")).await;
    assert_eq!(page.len(), 2);
    assert_eq!(
        page[0]["id"].as_i64().unwrap(),
        id + 1,
        "after_id pages oldest first"
    );
    let latest = get(&h, &t, "/api/v1/events/latest?limit=3").await;
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
        let r = h.post_json("/api/v1/events", Some(&t), b).await;
        assert_eq!(r.status, 400, "{b}");
        assert_eq!(r.code(), "bad_request");
    }
    for q in [
        "limit=0",
        "limit=5000",
        "after_id=x",
        "order=sideways",
        "bogus=1",
        "after=5&before=1",
    ] {
        let r = h.get(&format!("/api/v1/events?{q}"), Some(&t)).await;
        assert_eq!(r.status, 400, "{q}");
    }
    let huge = json!({"camera_id": "cam1", "type": "t", "payload": {"x": "y".repeat(2 << 20)}});
    let r = h.post_json("/api/v1/events", Some(&t), &huge).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "payload_too_large");
    // None of the refused requests stored anything.
    assert_eq!(get(&h, &t, "/api/v1/events?limit=1000").await.len(), 6);
    let r = h.get("/api/v1/events/99999", Some(&t)).await;
    assert_eq!(r.status, 404);
}

fn marker(n: i64) -> Value {
    json!({"camera_id": "cam1", "type": "count_changed", "payload": {"n": n}})
}

/// Opens the event stream at `path` with extra headers `(name, value)`.
async fn stream(h: &Nvr, path: &str, headers: &[(&str, &str)]) -> Sse {
    let mut rb = request(Method::GET, path).header("accept", "text/event-stream");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    h.open(rb.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn sse_resumes_with_last_event_id_without_gap_or_duplicate() {
    let h = Nvr::start().await;
    let t = h.admin_token().await;
    let auth = format!("Bearer {t}");
    let auth = ("authorization", auth.as_str());
    // Without a token: 401.
    assert_eq!(stream(&h, "/api/v1/events/stream", &[]).await.status, 401);

    let mut c = stream(&h, "/api/v1/events/stream", &[auth]).await;
    assert_eq!(c.status, 200);
    let mut ids = Vec::new();
    for n in 0..3 {
        let (s, ev) = post_event(&h, &t, &marker(n)).await;
        assert_eq!(s, 201);
        ids.push(ev["id"].as_i64().unwrap());
    }
    for want in &ids {
        let m = c.next().await.expect("live event");
        assert_eq!(event_id(&m), *want);
    }
    let last_seen = ids.last().unwrap().to_string();
    drop(c);

    // Five more while disconnected.
    let mut missed = Vec::new();
    for n in 10..15 {
        missed.push(
            post_event(&h, &t, &marker(n)).await.1["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut c = stream(
        &h,
        "/api/v1/events/stream",
        &[auth, ("last-event-id", &last_seen)],
    )
    .await;
    assert_eq!(c.status, 200);
    for want in &missed {
        assert_eq!(event_id(&c.next().await.expect("replayed event")), *want);
    }
    // Then live again, and nothing in between (no duplicate of the replay).
    let live = post_event(&h, &t, &marker(99)).await.1["id"]
        .as_i64()
        .unwrap();
    assert_eq!(event_id(&c.next().await.expect("live after replay")), live);

    // A bad Last-Event-ID is a 400, not a silent full replay.
    let c = stream(
        &h,
        "/api/v1/events/stream",
        &[auth, ("last-event-id", "banana")],
    )
    .await;
    assert_eq!(c.status, 400);
}

/// Tickets are single use, and expire on the daemon's clock (30 s by default).
#[tokio::test]
async fn sse_tickets_are_single_use_and_expire() {
    let h = Nvr::start().await;
    let t = h.admin_token().await;
    let viewer = h.viewer_token("v").await;
    for n in 0..3 {
        post_event(&h, &t, &marker(n)).await;
    }
    let all: Vec<i64> = get(&h, &t, "/api/v1/events?order=asc")
        .await
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let ticket = |tok: String| {
        let h = &h;
        async move {
            let r = h
                .send(
                    bearer(request(Method::POST, "/api/v1/events/ticket"), &tok)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(r.status, 200);
            r.json()["ticket"].as_str().unwrap().to_owned()
        }
    };
    // A viewer may stream; the ticket stands in for the header, resuming by after_id.
    let tk = ticket(viewer.clone()).await;
    let with = |tk: &str, after: i64| format!("/api/v1/events/stream?ticket={tk}&after_id={after}");
    let mut c = stream(&h, &with(&tk, all[0]), &[]).await;
    assert_eq!(c.status, 200);
    assert_eq!(event_id(&c.next().await.unwrap()), all[1]);
    assert_eq!(event_id(&c.next().await.unwrap()), all[2]);
    let live = post_event(&h, &t, &marker(50)).await.1["id"]
        .as_i64()
        .unwrap();
    assert_eq!(event_id(&c.next().await.unwrap()), live);
    // Single use: the same ticket again is refused; a forged one too.
    assert_eq!(stream(&h, &with(&tk, 0), &[]).await.status, 401);
    let forged = stream(&h, "/api/v1/events/stream?ticket=forged", &[]).await;
    assert_eq!(forged.status, 401);
    // Unused, a ticket works until its TTL has passed on the clock.
    let tk = ticket(viewer.clone()).await;
    h.advance_s(29);
    assert_eq!(stream(&h, &with(&tk, 0), &[]).await.status, 200);
    let tk = ticket(viewer).await;
    h.advance_s(31);
    assert_eq!(stream(&h, &with(&tk, 0), &[]).await.status, 401);
}
