//! The NVR core (port 8000) under attack, in-process: symlinked files,
//! oversized payloads, tokens minting tokens, the events key and stored paths.
//! What needs the real daemon (memory, sockets, a full disk) stays in
//! tests/daemon/hardening/nvr.rs.

use serde_json::{json, Value};

use crate::harness::{App, Nvr};

/// Whether `body` contains `secret` anywhere.
fn leaks(body: &[u8], secret: &[u8]) -> bool {
    body.windows(secret.len()).any(|w| w == secret)
}

#[tokio::test]
async fn symlinks_in_the_frames_and_snapshots_dirs_are_not_followed() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let viewer = h.viewer_token("vic").await;
    let (admin, viewer) = (Some(admin.as_str()), Some(viewer.as_str()));
    let secret_path = h.data_dir().join("jwt-secret");
    let secret = std::fs::read(&secret_path).unwrap();
    let r = h
        .post_json(
            "/api/v1/cameras",
            admin,
            &json!({"id": "cam1", "source_url": "rtsp://127.0.0.1:9/x", "enabled": false}),
        )
        .await;
    assert_eq!(r.status, 201);
    let frames = h.data_dir().join("frames/cam1");
    std::fs::create_dir_all(&frames).unwrap();
    // A real frame is served (so the 404s below mean something).
    std::fs::write(frames.join("latest.jpg"), b"real-jpeg").unwrap();
    let r = h.get("/api/v1/cameras/cam1/snapshot.jpg", viewer).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"real-jpeg");
    std::fs::remove_file(frames.join("latest.jpg")).unwrap();
    std::os::unix::fs::symlink(&secret_path, frames.join("latest.jpg")).unwrap();
    let r = h.get("/api/v1/cameras/cam1/snapshot.jpg", viewer).await;
    assert!(!leaks(&r.body, &secret), "the jwt secret was served");
    assert_eq!(r.status, 404);

    // Event snapshots: a symlinked file, and a file under a symlinked dir.
    let snaps = h.data_dir().join("snapshots");
    std::fs::create_dir_all(snaps.join("cam1")).unwrap();
    std::fs::write(snaps.join("cam1/real.jpg"), b"real-snapshot").unwrap();
    std::os::unix::fs::symlink(&secret_path, snaps.join("cam1/link.jpg")).unwrap();
    std::os::unix::fs::symlink(h.data_dir(), snaps.join("up")).unwrap();
    for (i, rel, want) in [
        (1, "cam1/real.jpg", Some(&b"real-snapshot"[..])),
        (2, "cam1/link.jpg", None),
        (3, "up/jwt-secret", None),
    ] {
        let r = h
            .post_json(
                "/api/v1/events",
                admin,
                &json!({"camera_id": "cam1", "type": "snap", "track_id": i, "snapshot_path": rel}),
            )
            .await;
        assert_eq!(r.status, 201, "{rel}");
        let id = r.json()["id"].as_i64().unwrap();
        let r = h
            .get(&format!("/api/v1/events/{id}/snapshot.jpg"), viewer)
            .await;
        assert!(
            !leaks(&r.body, &secret),
            "the jwt secret was served for {rel}"
        );
        match want {
            Some(bytes) => {
                assert_eq!(r.status, 200, "{rel}");
                assert_eq!(r.body, bytes);
            }
            None => assert_eq!(r.status, 404, "{rel}"),
        }
    }
}

#[tokio::test]
async fn an_oversized_event_payload_is_refused_naming_the_cap() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let admin = Some(admin.as_str());
    let big = "x".repeat(200 * 1024);
    let r = h
        .post_json(
            "/api/v1/events",
            admin,
            &json!({"camera_id": "cam1", "type": "external", "payload": {"blob": big}}),
        )
        .await;
    let text = r.text();
    let head = &text[..text.len().min(200)];
    assert_eq!(r.status, 413, "{head}");
    assert!(text.contains("payload") && text.contains("bytes"), "{head}");
    let list = h.get("/api/v1/events", admin).await.json();
    assert_eq!(list, json!([]), "nothing stored");
}

#[tokio::test]
async fn api_tokens_cannot_mint_tokens() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let body = json!({"name": "integration", "role": "admin", "expires_in_s": 60});
    let (api, _) = h.api_token(&admin, &body).await;
    let r = h
        .post_json(
            "/api/v1/tokens",
            Some(&api),
            &json!({"name": "forever", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
}

/// An API token's own expiry is read on the daemon's clock too.
#[tokio::test]
async fn api_tokens_expire_when_their_time_has_passed() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let body = json!({"name": "short", "role": "viewer", "expires_in_s": 60});
    let (api, _) = h.api_token(&admin, &body).await;
    h.advance_s(59);
    assert_eq!(h.get("/api/v1/events", Some(&api)).await.status, 200);
    h.advance_s(2);
    assert_eq!(h.get("/api/v1/events", Some(&api)).await.status, 401);
}

#[tokio::test]
async fn events_of_different_types_at_one_instant_are_both_stored() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let post = |kind: &'static str| {
        let (h, admin) = (&h, admin.clone());
        async move {
            let body = json!({"camera_id": "cam1", "type": kind, "track_id": 7,
                              "started_at": 1_700_000_000_000i64});
            let r = h.post_json("/api/v1/events", Some(&admin), &body).await;
            (r.status, r.json()["id"].as_i64().unwrap())
        }
    };
    let (s1, entered) = post("person_entered").await;
    let (s2, left) = post("person_left").await;
    assert_eq!((s1, s2), (201, 201));
    assert_ne!(entered, left);
    // The same type again is still an idempotent repeat.
    assert_eq!(post("person_left").await, (200, left));
}

#[tokio::test]
async fn snapshot_paths_must_be_plain_relative_paths() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let admin = Some(admin.as_str());
    let long = format!("cam1/{}.jpg", "a".repeat(600));
    let event =
        |path: &str| json!({"camera_id": "cam1", "type": "external", "snapshot_path": path});
    for bad in [
        "../jwt-secret",
        "/etc/passwd",
        "cam1/../../jwt-secret",
        "./cam1/a.jpg",
        "cam1//a.jpg",
        "cam1\\..\\a.jpg",
        long.as_str(),
    ] {
        let r = h.post_json("/api/v1/events", admin, &event(bad)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.code(), "bad_request");
    }
    let r = h
        .post_json(
            "/api/v1/events",
            admin,
            &event("cam1/1700000000000-7-entered.jpg"),
        )
        .await;
    assert_eq!(r.status, 201);
    let list: Vec<Value> =
        serde_json::from_value(h.get("/api/v1/events", admin).await.json()).unwrap();
    assert_eq!(list.len(), 1, "nothing of the refused ones was stored");
}
