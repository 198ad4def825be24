//! A camera's `detect_url` sub-stream over the camera API: validated like
//! `source_url`, its credentials never echoed, a redacted echo keeping the
//! stored URL, `""` clearing it.

use axum::http::Method;
use serde_json::json;

use crate::harness::{App, Nvr};

fn stored_detect_url(h: &Nvr, id: &str) -> Option<String> {
    let db = rusqlite::Connection::open(h.data_dir().join("opennvr.db")).unwrap();
    db.query_row("SELECT detect_url FROM cameras WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test]
async fn detect_url_is_validated_redacted_kept_on_echo_and_cleared() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let t = Some(admin.as_str());
    let sub = "rtsp://admin:hunter2@10.0.0.5:554/stream2";
    let r = h
        .post_json(
            "/api/v1/cameras",
            t,
            &json!({"id": "door", "source_url": "rtsp://admin:hunter2@10.0.0.5:554/stream1",
                    "detect_url": sub}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(!r.text().contains("hunter2"), "{}", r.text());
    let cam = r.json();
    assert_eq!(cam["detect_url"], "rtsp://admin:***@10.0.0.5:554/stream2");
    assert_eq!(stored_detect_url(&h, "door").as_deref(), Some(sub));

    // A GET, edited and PUT back with the redacted URL, keeps the real one.
    let mut body = h.get("/api/v1/cameras/door", t).await.json();
    body["name"] = json!("Door");
    let r = h.json(Method::PUT, "/api/v1/cameras/door", t, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(stored_detect_url(&h, "door").as_deref(), Some(sub));

    // The same URL rules as source_url: 400, nothing changes.
    for bad in [
        json!({"detect_url": "ftp://x"}),
        json!({"detect_url": "concat:/a|/b"}),
        json!({"detect_url": "file://relative"}),
        json!({"detect_url": "rtsp://h/\n"}),
        json!({"detect_url": "x".repeat(2049)}),
    ] {
        let r = h.json(Method::PUT, "/api/v1/cameras/door", t, &bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.code(), "bad_request");
    }
    assert_eq!(stored_detect_url(&h, "door").as_deref(), Some(sub));

    // "" clears it; a camera made without one has none.
    let r = h
        .json(
            Method::PUT,
            "/api/v1/cameras/door",
            t,
            &json!({"detect_url": ""}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["detect_url"].is_null());
    assert_eq!(stored_detect_url(&h, "door"), None);
    let r = h
        .post_json(
            "/api/v1/cameras/yard",
            t,
            &json!({"source_url": "rtsp://10.0.0.6/s"}),
        )
        .await;
    assert!(r.json()["detect_url"].is_null());
}
