//! Cameras CRUD and the recordings index (range queries, Range requests).

mod common;

use common::{client, error_code, write_file, Daemon};
use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

fn authed(rb: RequestBuilder, token: &str) -> reqwest::blocking::Response {
    rb.bearer_auth(token).send().unwrap()
}

#[test]
fn cameras_round_trip_and_hide_credentials() {
    let d = common::start_nvr(&[]);
    let t = d.admin_token();
    let url = "rtsp://admin:hunter2@10.0.0.5:554/stream1";
    let r = authed(
        client().post(d.nvr_url("/api/v1/cameras")).json(&json!({
            "id": "front_door", "name": "Front door", "source_url": url,
            "detect_fps": 5, "record": true, "retention_days": 14
        })),
        &t,
    );
    assert_eq!(r.status(), 201);
    let text = r.text().unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let cam: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cam["source_url"], "rtsp://admin:***@10.0.0.5:554/stream1");
    assert_eq!(cam["retention_days"], 14);
    assert_eq!(cam["enabled"], true);

    // Create via the path form too; duplicates conflict.
    let r = authed(
        client()
            .post(d.nvr_url("/api/v1/cameras/yard"))
            .json(&json!({"source_url": "rtsp://10.0.0.6/s"})),
        &t,
    );
    assert_eq!(r.status(), 201);
    let r = authed(
        client()
            .post(d.nvr_url("/api/v1/cameras/yard"))
            .json(&json!({"source_url": "rtsp://10.0.0.6/s"})),
        &t,
    );
    assert_eq!(r.status(), 409);

    // List, one, update (echoing the redacted URL keeps the real one).
    let list: Vec<Value> = authed(client().get(d.nvr_url("/api/v1/cameras")), &t)
        .json()
        .unwrap();
    assert_eq!(list.len(), 2);
    let mut body = cam.clone();
    body["name"] = json!("Front door (new)");
    body["enabled"] = json!(false);
    let r = authed(
        client()
            .put(d.nvr_url("/api/v1/cameras/front_door"))
            .json(&body),
        &t,
    );
    assert_eq!(r.status(), 200);
    let one: Value = authed(client().get(d.nvr_url("/api/v1/cameras/front_door")), &t)
        .json()
        .unwrap();
    assert_eq!(one["name"], "Front door (new)");
    assert_eq!(one["enabled"], false);
    assert_eq!(one["source_url"], "rtsp://admin:***@10.0.0.5:554/stream1");
    let db = rusqlite::Connection::open(d.data_dir.join("opennvr.db")).unwrap();
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
        let r = authed(
            client()
                .put(d.nvr_url("/api/v1/cameras/front_door"))
                .json(b),
            &t,
        );
        assert_eq!(r.status(), 400, "{b}");
        assert_eq!(error_code(r), "bad_request");
    }
    let r = authed(
        client()
            .put(d.nvr_url("/api/v1/cameras/front_door"))
            .header("content-type", "application/json")
            .body("{\"name\":"),
        &t,
    );
    assert_eq!(r.status(), 400);
    let r = authed(
        client()
            .post(d.nvr_url("/api/v1/cameras/bad%20id"))
            .json(&json!({"source_url": "rtsp://h/"})),
        &t,
    );
    assert_eq!(r.status(), 400);
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = authed(
        client()
            .put(d.nvr_url("/api/v1/cameras/front_door"))
            .json(&json!({"name": huge})),
        &t,
    );
    assert_eq!(r.status(), 413);
    let after: Value = authed(client().get(d.nvr_url("/api/v1/cameras/front_door")), &t)
        .json()
        .unwrap();
    assert_eq!(after, one);

    // Delete.
    let r = authed(client().delete(d.nvr_url("/api/v1/cameras/yard")), &t);
    assert_eq!(r.status(), 204);
    let r = authed(client().get(d.nvr_url("/api/v1/cameras/yard")), &t);
    assert_eq!(r.status(), 404);
    let r = authed(client().delete(d.nvr_url("/api/v1/cameras/yard")), &t);
    assert_eq!(r.status(), 404);
}

/// Chunks of cam1 at [1000,1060), [1060,1120), [1200,1260) s, and one of cam2.
fn seed_recordings(d: &Daemon) {
    let db = rusqlite::Connection::open(d.data_dir.join("opennvr.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let rows = [
        ("cam1", 1_000_000, 1_060_000, "cam1/a.mp4"),
        ("cam1", 1_060_000, 1_120_000, "cam1/b.mp4"),
        ("cam1", 1_200_000, 1_260_000, "cam1/c.mp4"),
        ("cam2", 1_000_000, 1_060_000, "cam2/a.mp4"),
    ];
    for (cam, s, e, path) in rows {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        write_file(&d.data_dir.join("recordings").join(path), &bytes);
        db.execute(
            "INSERT INTO recordings (camera_id, start_ms, end_ms, size_bytes, path) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![cam, s, e, bytes.len() as i64, path],
        )
        .unwrap();
    }
}

#[test]
fn recordings_range_queries_and_range_requests() {
    let d = common::start_nvr(&[]);
    let t = d.viewer_token("viewer");
    seed_recordings(&d);
    let q = |cam: &str, s: &str, e: &str| {
        authed(
            client().get(d.nvr_url(&format!(
                "/api/v1/recordings/{cam}?start_unix={s}&end_unix={e}"
            ))),
            &t,
        )
    };
    let starts = |s: &str, e: &str| -> Vec<f64> {
        let r = q("cam1", s, e);
        assert_eq!(r.status(), 200, "{s}..{e}");
        let v: Vec<Value> = r.json().unwrap();
        v.iter()
            .map(|c| c["start_unix"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(starts("0", "5000"), vec![1000.0, 1060.0, 1200.0]);
    // Edges: a chunk ending exactly at start, or starting exactly at end, is out.
    assert_eq!(starts("1060", "1200"), vec![1060.0]);
    assert_eq!(starts("1059.999", "1060.001"), vec![1000.0, 1060.0]);
    assert_eq!(starts("1120", "1200"), Vec::<f64>::new());
    assert_eq!(starts("1130", "1130"), Vec::<f64>::new());
    assert_eq!(starts("1210", "1211"), vec![1200.0]);
    let full: Vec<Value> = q("cam1", "1000", "1001").json().unwrap();
    assert_eq!(full.len(), 1);
    let c = &full[0];
    assert_eq!(c["camera_id"], "cam1");
    assert_eq!(c["end_unix"], 1060.0);
    assert_eq!(c["duration_s"], 60.0);
    assert_eq!(c["size_bytes"], 1000);
    let url = c["url"].as_str().unwrap().to_owned();
    // Another camera's chunks never leak in; unknown camera is just empty.
    let other: Vec<Value> = q("cam3", "0", "5000").json().unwrap();
    assert!(other.is_empty());

    // Bad params: 400.
    for (s, e) in [
        ("abc", "1"),
        ("10", "5"),
        ("-1", "5"),
        ("1", "inf"),
        ("NaN", "1"),
    ] {
        assert_eq!(q("cam1", s, e).status(), 400, "{s}..{e}");
    }
    let r = authed(
        client().get(d.nvr_url("/api/v1/recordings/cam1?start_unix=1")),
        &t,
    );
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r), "bad_request");
    let r = authed(client().get(d.nvr_url("/api/v1/recordings/cam1")), &t);
    assert_eq!(r.status(), 400);

    // The chunk, whole and by Range.
    let expected: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let r = authed(client().get(d.nvr_url(&url)), &t);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.bytes().unwrap().to_vec(), expected);
    let r = authed(
        client()
            .get(d.nvr_url(&url))
            .header("range", "bytes=100-199"),
        &t,
    );
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/1000");
    assert_eq!(r.bytes().unwrap().to_vec(), expected[100..200].to_vec());
    let r = authed(
        client().get(d.nvr_url(&url)).header("range", "bytes=-10"),
        &t,
    );
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().to_vec(), expected[990..].to_vec());
    let r = authed(
        client().get(d.nvr_url(&url)).header("range", "bytes=5000-"),
        &t,
    );
    assert_eq!(r.status(), 416);
    // Auth required; wrong camera or id is 404.
    assert_eq!(client().get(d.nvr_url(&url)).send().unwrap().status(), 401);
    let wrong = url.replace("/cam1/", "/cam2/");
    assert_eq!(authed(client().get(d.nvr_url(&wrong)), &t).status(), 404);
    let r = authed(
        client().get(d.nvr_url("/api/v1/recordings/cam1/999/content")),
        &t,
    );
    assert_eq!(r.status(), 404);
}
