//! Cameras CRUD and the recordings index (range queries, Range requests),
//! in-process on port 8000's router.

use axum::body::Body;
use axum::http::Method;
use serde_json::{json, Value};

use crate::common::write_file;
use crate::harness::{bearer, request, App, Nvr, Resp};

/// `method path` with `token` and a raw JSON text body.
async fn send_text(h: &Nvr, method: Method, path: &str, token: &str, body: &str) -> Resp {
    h.send(
        bearer(request(method, path), token)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn cameras_round_trip_and_hide_credentials() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let t = Some(admin.as_str());
    let url = "rtsp://admin:hunter2@10.0.0.5:554/stream1";
    let r = h
        .post_json(
            "/api/v1/cameras",
            t,
            &json!({
                "id": "front_door", "name": "Front door", "source_url": url,
                "detect_fps": 5, "record": true, "retention_days": 14
            }),
        )
        .await;
    assert_eq!(r.status, 201);
    let text = r.text();
    assert!(!text.contains("hunter2"), "{text}");
    let cam = r.json();
    assert_eq!(cam["source_url"], "rtsp://admin:***@10.0.0.5:554/stream1");
    assert_eq!(cam["retention_days"], 14);
    assert_eq!(cam["enabled"], true);

    // Create via the path form too; duplicates conflict.
    let yard = json!({"source_url": "rtsp://10.0.0.6/s"});
    let r = h.post_json("/api/v1/cameras/yard", t, &yard).await;
    assert_eq!(r.status, 201);
    let r = h.post_json("/api/v1/cameras/yard", t, &yard).await;
    assert_eq!(r.status, 409);

    // List, one, update (echoing the redacted URL keeps the real one).
    let list = h.get("/api/v1/cameras", t).await.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let mut body = cam.clone();
    body["name"] = json!("Front door (new)");
    body["enabled"] = json!(false);
    let r = h
        .json(Method::PUT, "/api/v1/cameras/front_door", t, &body)
        .await;
    assert_eq!(r.status, 200);
    let one = h.get("/api/v1/cameras/front_door", t).await.json();
    assert_eq!(one["name"], "Front door (new)");
    assert_eq!(one["enabled"], false);
    assert_eq!(one["source_url"], "rtsp://admin:***@10.0.0.5:554/stream1");
    let db = rusqlite::Connection::open(h.data_dir().join("opennvr.db")).unwrap();
    let stored: String = db
        .query_row(
            "SELECT source_url FROM cameras WHERE id = 'front_door'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, url, "the real URL survives a redacted echo");

    // Bad input: 4xx in our JSON shape, nothing changes.
    let bad = [
        json!({"name": ""}),
        json!({"detect_fps": -1}),
        json!({"retention_days": -1}),
        json!({"source_url": "ftp://x"}),
        json!({"nmae": "typo"}),
        json!({"id": "other"}),
    ];
    for b in &bad {
        let r = h
            .json(Method::PUT, "/api/v1/cameras/front_door", t, b)
            .await;
        assert_eq!(r.status, 400, "{b}");
        assert_eq!(r.code(), "bad_request");
    }
    let r = send_text(
        &h,
        Method::PUT,
        "/api/v1/cameras/front_door",
        &admin,
        "{\"name\":",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = h
        .post_json(
            "/api/v1/cameras/bad%20id",
            t,
            &json!({"source_url": "rtsp://h/"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = h
        .json(
            Method::PUT,
            "/api/v1/cameras/front_door",
            t,
            &json!({"name": huge}),
        )
        .await;
    assert_eq!(r.status, 413);
    let after = h.get("/api/v1/cameras/front_door", t).await.json();
    assert_eq!(after, one);

    // Delete.
    assert_eq!(h.delete("/api/v1/cameras/yard", &admin).await.status, 204);
    assert_eq!(h.get("/api/v1/cameras/yard", t).await.status, 404);
    assert_eq!(h.delete("/api/v1/cameras/yard", &admin).await.status, 404);
}

/// Chunks of cam1 at [1000,1060), [1060,1120), [1200,1260) s, and one of cam2.
fn seed_recordings(h: &Nvr) {
    let db = rusqlite::Connection::open(h.data_dir().join("opennvr.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let rows = [
        ("cam1", 1_000_000, 1_060_000, "cam1/a.mp4"),
        ("cam1", 1_060_000, 1_120_000, "cam1/b.mp4"),
        ("cam1", 1_200_000, 1_260_000, "cam1/c.mp4"),
        ("cam2", 1_000_000, 1_060_000, "cam2/a.mp4"),
    ];
    for (cam, s, e, path) in rows {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        write_file(&h.data_dir().join("recordings").join(path), &bytes);
        db.execute(
            "INSERT INTO recordings (camera_id, start_ms, end_ms, size_bytes, path) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![cam, s, e, bytes.len() as i64, path],
        )
        .unwrap();
    }
}

/// GET `path` with `token` and a `Range` header.
async fn get_range(h: &Nvr, path: &str, token: &str, range: &str) -> Resp {
    h.send(
        bearer(request(Method::GET, path), token)
            .header("range", range)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn recordings_range_queries_and_range_requests() {
    let h = Nvr::start().await;
    let t = h.viewer_token("viewer").await;
    seed_recordings(&h);
    let q = |cam: &'static str, s: &'static str, e: &'static str| {
        let (h, t) = (&h, t.clone());
        async move {
            h.get(
                &format!("/api/v1/recordings/{cam}?start_unix={s}&end_unix={e}"),
                Some(&t),
            )
            .await
        }
    };
    let starts = |s: &'static str, e: &'static str| {
        let q = &q;
        async move {
            let r = q("cam1", s, e).await;
            assert_eq!(r.status, 200, "{s}..{e}");
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["start_unix"].as_f64().unwrap())
                .collect::<Vec<f64>>()
        }
    };
    assert_eq!(starts("0", "5000").await, vec![1000.0, 1060.0, 1200.0]);
    // Edges: a chunk ending exactly at start, or starting exactly at end, is out.
    assert_eq!(starts("1060", "1200").await, vec![1060.0]);
    assert_eq!(starts("1059.999", "1060.001").await, vec![1000.0, 1060.0]);
    assert_eq!(starts("1120", "1200").await, Vec::<f64>::new());
    assert_eq!(starts("1130", "1130").await, Vec::<f64>::new());
    assert_eq!(starts("1210", "1211").await, vec![1200.0]);
    let full: Vec<Value> = serde_json::from_value(q("cam1", "1000", "1001").await.json()).unwrap();
    assert_eq!(full.len(), 1);
    let c = &full[0];
    assert_eq!(c["camera_id"], "cam1");
    assert_eq!(c["end_unix"], 1060.0);
    assert_eq!(c["duration_s"], 60.0);
    assert_eq!(c["size_bytes"], 1000);
    let url = c["url"].as_str().unwrap().to_owned();
    // Another camera's chunks never leak in; unknown camera is just empty.
    assert_eq!(q("cam3", "0", "5000").await.json(), json!([]));

    // Bad params: 400.
    for (s, e) in [
        ("abc", "1"),
        ("10", "5"),
        ("-1", "5"),
        ("1", "inf"),
        ("NaN", "1"),
    ] {
        assert_eq!(q("cam1", s, e).await.status, 400, "{s}..{e}");
    }
    let r = h
        .get("/api/v1/recordings/cam1?start_unix=1", Some(&t))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "bad_request");
    assert_eq!(h.get("/api/v1/recordings/cam1", Some(&t)).await.status, 400);

    // The chunk, whole and by Range.
    let expected: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let r = h.get(&url, Some(&t)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "video/mp4");
    assert_eq!(r.body, expected);
    let r = get_range(&h, &url, &t, "bytes=100-199").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), "bytes 100-199/1000");
    assert_eq!(r.body, expected[100..200].to_vec());
    let r = get_range(&h, &url, &t, "bytes=-10").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, expected[990..].to_vec());
    let r = get_range(&h, &url, &t, "bytes=5000-").await;
    assert_eq!(r.status, 416);
    // Auth required; wrong camera or id is 404.
    assert_eq!(h.get(&url, None).await.status, 401);
    let wrong = url.replace("/cam1/", "/cam2/");
    assert_eq!(h.get(&wrong, Some(&t)).await.status, 404);
    let r = h.get("/api/v1/recordings/cam1/999/content", Some(&t)).await;
    assert_eq!(r.status, 404);
}
