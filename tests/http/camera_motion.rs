//! A camera's motion settings (`motion: {enabled, masks}`) over the camera
//! API and the console's camera page: stored, shown, replaced and cleared;
//! bad settings are a 400 that names what is wrong and changes nothing; the
//! console form goes through the same check, with its CSRF token. That the
//! running camera takes them up without a restart: tests/daemon/motion.rs.

use axum::http::Method;
use serde_json::{json, Value};

use crate::console::Console;
use crate::harness::{App, Nvr};

/// A rectangle over the top fifth of the frame (floats: stored masks
/// come back as floats, and JSON's `0` and `0.0` are different values).
fn top() -> Value {
    json!([[0.0, 0.0], [1.0, 0.0], [1.0, 0.2], [0.0, 0.2]])
}

async fn put(h: &Nvr, token: &str, id: &str, body: &Value) -> crate::harness::Resp {
    h.json(
        Method::PUT,
        &format!("/api/v1/cameras/{id}"),
        Some(token),
        body,
    )
    .await
}

/// Creates camera `door` (disabled) with the [`top`] mask; its 201.
async fn add_door(h: &Nvr, admin: &str) -> crate::harness::Resp {
    let r = h
        .post_json(
            "/api/v1/cameras/door",
            Some(admin),
            &json!({"source_url": "rtsp://10.0.0.5/s", "enabled": false,
                    "motion": {"masks": [top()]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r
}

async fn camera(h: &Nvr, token: &str, id: &str) -> Value {
    let r = h.get(&format!("/api/v1/cameras/{id}"), Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn motion_is_set_shown_kept_replaced_and_cleared_through_the_camera_api() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let viewer = h.viewer_token("vera").await;
    // Created without: `null` (the config file's entry applies).
    let r = h
        .post_json(
            "/api/v1/cameras",
            Some(&admin),
            &json!({"id": "yard", "source_url": "rtsp://10.0.0.9/s", "enabled": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["motion"], Value::Null);
    // Created with: stored and echoed as given, `enabled` unset is `null`.
    let r = add_door(&h, &admin).await;
    let want = json!({"enabled": null, "masks": [top()]});
    assert_eq!(r.json()["motion"], want);
    // Viewers read it (GET one and the list), as every camera field.
    assert_eq!(camera(&h, &viewer, "door").await["motion"], want);
    let list = h.get("/api/v1/cameras", Some(&viewer)).await.json();
    assert_eq!(list[0]["id"], "door");
    assert_eq!(list[0]["motion"], want);
    // An edit of another field keeps it; so does echoing the camera back.
    let r = put(&h, &admin, "door", &json!({"name": "Front door"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["motion"], want);
    let echoed = camera(&h, &admin, "door").await;
    assert_eq!(
        put(&h, &admin, "door", &echoed).await.json()["motion"],
        want
    );
    // A new `motion` replaces the old one as a whole.
    let two = json!({"enabled": false, "masks": [top(), [[0.0, 1.0], [0.5, 0.5], [1.0, 1.0]]]});
    let r = put(&h, &admin, "door", &json!({ "motion": two })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["motion"], two);
    let r = put(&h, &admin, "door", &json!({"motion": {"enabled": true}})).await;
    assert_eq!(r.json()["motion"], json!({"enabled": true, "masks": []}));
    // A viewer cannot write it.
    let r = put(&h, &viewer, "door", &json!({ "motion": two })).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // `null` clears it: back to the config file's entry.
    let r = put(&h, &admin, "door", &json!({"motion": null})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["motion"], Value::Null);
    assert_eq!(camera(&h, &admin, "door").await["motion"], Value::Null);
}

/// `(body, what the 400's message must say)`: each bad in one way.
fn bad_bodies() -> Vec<(Value, &'static str)> {
    let point = json!([0.5, 0.5]);
    let square = top();
    vec![
        (
            json!({"motion": {"masks": [[[0, 0], [1, 1]]]}}),
            "motion.masks[0]: a polygon is 3 to 64",
        ),
        (
            json!({"motion": {"masks": [vec![point.clone(); 65]]}}),
            "(got 65)",
        ),
        (
            json!({"motion": {"masks": vec![square.clone(); 17]}}),
            "motion.masks: at most 16 polygons (got 17)",
        ),
        (
            json!({"motion": {"masks": [square.clone(), [[0, 0], [1.5, 0], [1, 1]]]}}),
            "motion.masks[1][1]: x and y are fractions of the frame, in 0..=1",
        ),
        (
            json!({"motion": {"masks": [[[0, -0.1], [1, 0], [1, 1]]]}}),
            "motion.masks[0][0]",
        ),
        // Not even a number JSON can carry: refused by the parser.
        (
            json!({"motion": {"masks": [[[0, 0], [1, 0], [1, 1, 1]]]}}),
            "motion.masks[0][2]",
        ),
        (
            json!({"motion": {"masks": [["a", "b", "c"]]}}),
            "motion.masks",
        ),
        (json!({"motion": {"masks": "everywhere"}}), "motion.masks"),
        (json!({"motion": {"enabled": "yes"}}), "motion.enabled"),
        (json!({"motion": {"zones": []}}), "unknown field `zones`"),
        (json!({"motion": [top()]}), "motion"),
    ]
}

#[tokio::test]
async fn bad_motion_settings_are_a_clear_400_and_change_nothing() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    add_door(&h, &admin).await;
    let before = camera(&h, &admin, "door").await;
    h.advance_s(5);
    for (body, says) in bad_bodies() {
        let r = put(&h, &admin, "door", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{body}: {message:?} lacks {says:?}");
        // Nothing changed, not even `updated_at`.
        assert_eq!(camera(&h, &admin, "door").await, before, "{body}");
        // Nor is a camera created with it.
        let mut create = body.clone();
        create["source_url"] = json!("rtsp://10.0.0.6/s");
        let r = h
            .post_json("/api/v1/cameras/side", Some(&admin), &create)
            .await;
        assert_eq!(r.status, 400, "{create}: {}", r.text());
        let r = h.get("/api/v1/cameras/side", Some(&admin)).await;
        assert_eq!(r.status, 404, "{create}");
    }
    // The body is bounded ([nvr] max_body_bytes, 256 KiB): polygons enough
    // to pass it are refused before they are parsed.
    let huge = json!({"motion": {"masks": vec![vec![[0.25, 0.25]; 64]; 1200]}});
    let r = put(&h, &admin, "door", &huge).await;
    assert_eq!(r.status, 413, "{}", &r.text()[..200.min(r.text().len())]);
    assert_eq!(camera(&h, &admin, "door").await, before);
    // The largest allowed settings pass (16 polygons of 64 points).
    let edge: Vec<[f64; 2]> = (0..64)
        .map(|i| {
            let a = f64::from(i) / 64.0 * std::f64::consts::TAU;
            [0.5 + 0.4 * a.cos(), 0.5 + 0.4 * a.sin()]
        })
        .collect();
    let most = json!({"motion": {"enabled": true, "masks": vec![edge; 16]}});
    let r = put(&h, &admin, "door", &most).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["motion"]["masks"].as_array().unwrap().len(), 16);
}

/// The value of the `masks` textarea on a camera page.
fn textarea(page: &str) -> String {
    let at = page
        .find(r#"<textarea name="masks""#)
        .expect("the masks textarea");
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find("</textarea>").unwrap();
    rest[start..end].replace("&quot;", "\"")
}

#[tokio::test]
async fn the_console_camera_page_shows_and_saves_motion_through_the_apis_check() {
    let file_mask = vec![vec![[0.0, 0.8], [1.0, 0.8], [1.0, 1.0]]];
    let c = Console::start_edited(
        |cfg| {
            let entry = cfg.ingest.motion.cameras.entry("door".into()).or_default();
            entry.masks = file_mask.clone();
        },
        None,
    )
    .await;
    crate::console::add_camera(&c, "door", "rtsp://10.0.0.5/s").await;
    let admin = c.nvr.admin_token().await;
    let mut b = c.admin().await;
    // Before: the config file's entry is shown, the form is empty.
    let page = b.get("/admin/cameras/door").await.text();
    assert!(page.contains(r#"<form id="camera-motion""#), "{page}");
    assert!(page.contains("The config file's settings apply"), "{page}");
    assert!(page.contains("[[[0.0,0.8],[1.0,0.8],[1.0,1.0]]]"), "{page}");
    assert_eq!(textarea(&page), "[]");
    // Saved with the page's CSRF token: stored as the API stores it.
    let masks = "[[[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]]]";
    let from = "/admin/cameras/door";
    let action = "/admin/cameras/door/motion";
    let r = b
        .submit(from, action, &[("gating", "off"), ("masks", masks)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let saved =
        json!({"enabled": false, "masks": [[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]]});
    let cam = c.nvr.get("/api/v1/cameras/door", Some(&admin)).await.json();
    assert_eq!(cam["motion"], saved);
    let page = b.get(from).await.text();
    assert!(
        page.contains("These settings replace the config file"),
        "{page}"
    );
    assert!(page.contains(r#"<option value="off" selected>"#), "{page}");
    assert_eq!(
        serde_json::from_str::<Value>(&textarea(&page)).unwrap(),
        saved["masks"]
    );
    // Refused by the API's own check: 400, the page says why and keeps the
    // text posted, and nothing changed.
    for (bad, says) in [
        (
            "[[[0, 0], [1, 1]]]",
            "motion.masks[0]: a polygon is 3 to 64",
        ),
        ("[[[0, 0], [2, 0], [1, 1]]]", "motion.masks[0][1]"),
        ("not json", "masks are not JSON polygons"),
    ] {
        let r = b
            .submit(from, action, &[("gating", "on"), ("masks", bad)])
            .await;
        assert_eq!(r.status, 400, "{bad}");
        let page = r.text();
        let shown = page.split(r#"id="motion-error">"#).nth(1).unwrap_or("");
        assert!(shown.contains(says), "{bad}: {page}");
        assert_eq!(textarea(&page), bad);
        let cam = c.nvr.get("/api/v1/cameras/door", Some(&admin)).await.json();
        assert_eq!(cam["motion"], saved, "{bad}");
    }
    // Without the token: refused, nothing changed.
    let r = b.post(action, &[("gating", "on"), ("masks", "[]")]).await;
    assert_eq!(r.status, 403);
    let cam = c.nvr.get("/api/v1/cameras/door", Some(&admin)).await.json();
    assert_eq!(cam["motion"], saved);
    // A viewer may not post it.
    let mut v = c.viewer("vera").await;
    let r = v.submit("/", action, &[("masks", "[]")]).await;
    assert_eq!(r.status, 403);
    // Back to the config file's settings.
    let r = b.submit(from, action, &[("action", "file")]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cam = c.nvr.get("/api/v1/cameras/door", Some(&admin)).await.json();
    assert_eq!(cam["motion"], Value::Null);
}
